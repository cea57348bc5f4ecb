/* libvirt domain XML: safe parsing and the disks.
 *
 * Thread safety: every parse gets its own parser context, error collector and SAX
 * wrappers; nothing here keeps global mutable state. libxml2's own one-time setup,
 * xmlInitParser(), is run through g_once by every entry point that parses, so callers
 * need not call it (calling it at startup as well is harmless). xmlCleanupParser() is
 * never called: it would break other threads. */
#include "config.h"

#include <glib/gi18n.h>
#include <libxml/SAX2.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlsave.h>
#include <string.h>

#include "qp-domain-xml.h"
#include "qp-xml-private.h"

G_DEFINE_QUARK(qp - xml - error - quark, qp_xml_error)

struct _QpDomainXml {
  xmlDocPtr doc;
  gboolean had_decl;
  char *name;
  char *uuid;
};

/* What one parse saw, reached from the parser context's _private. */
typedef struct {
  gboolean have_error;
  char *error_message;
  int error_line;
  int error_column;
  gboolean unsafe;
  gboolean too_deep;
} QpParseState;

static gpointer
init_parser_once(gpointer data)
{
  xmlInitParser();
  return NULL;
}

static void
ensure_parser_initialized(void)
{
  static GOnce once = G_ONCE_INIT;
  g_once(&once, init_parser_once, NULL);
}

/* Structured error handler of one context: keeps the first error, prints nothing. */
static void
collect_error(void *user_data, xmlErrorPtr err)
{
  xmlParserCtxtPtr ctxt = user_data;
  QpParseState *state;

  if (ctxt == NULL || err == NULL)
    return;
  state = ctxt->_private;
  if (state == NULL || state->have_error || err->level < XML_ERR_ERROR)
    return;
  state->have_error = TRUE;
  state->error_message = g_strchomp(g_strdup(err->message != NULL ? err->message : "?"));
  /* libxml2 splits some messages over lines; a failure is reported on one */
  g_strdelimit(state->error_message, "\n", ' ');
  state->error_line = err->line;
  state->error_column = err->int2;
}

/* A document type declaration is refused as soon as the parser meets it, before any of
 * its internal subset (entity declarations) is read. */
static void
refuse_internal_subset(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id)
{
  xmlParserCtxtPtr ctxt = ctx;
  QpParseState *state = ctxt->_private;

  state->unsafe = TRUE;
  xmlStopParser(ctxt);
}

static void
refuse_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                   const xmlChar *system_id, xmlChar *content)
{
  xmlParserCtxtPtr ctxt = ctx;
  QpParseState *state = ctxt->_private;

  state->unsafe = TRUE;
  xmlStopParser(ctxt);
}

/* Bounds nesting while parsing, so a deep document never builds a deep tree. */
static void
bounded_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                      const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                      int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
  xmlParserCtxtPtr ctxt = ctx;
  QpParseState *state = ctxt->_private;

  /* nameNr counts the open ancestors of this element */
  if (ctxt->nameNr >= QP_XML_MAX_DEPTH) {
    state->too_deep = TRUE;
    xmlStopParser(ctxt);
    return;
  }
  xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                        nb_defaulted, attributes);
}

xmlDocPtr
qp_xml_safe_parse(const char *text, gssize len, gboolean *had_decl, GError **error)
{
  QpParseState state = { 0 };
  xmlParserCtxtPtr ctxt;
  xmlDocPtr doc;
  gsize size;
  const char *start;

  g_return_val_if_fail(text != NULL, NULL);

  size = len < 0 ? strlen(text) : (gsize)len;
  if (size > QP_XML_MAX_DOCUMENT_SIZE) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_LIMIT,
                _("document of %zu bytes exceeds the limit of %d bytes"), size,
                QP_XML_MAX_DOCUMENT_SIZE);
    return NULL;
  }
  if (size == 0) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("empty document"));
    return NULL;
  }

  ensure_parser_initialized();
  ctxt = xmlNewParserCtxt();
  if (ctxt == NULL) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                        _("cannot create an XML parser context"));
    return NULL;
  }
  ctxt->_private = &state;
  ctxt->sax->serror = collect_error;
  ctxt->sax->internalSubset = refuse_internal_subset;
  ctxt->sax->entityDecl = refuse_entity_decl;
  ctxt->sax->startElementNs = bounded_start_element;

  /* No XML_PARSE_NOENT (entities stay unexpanded), no DTDLOAD/DTDATTR/DTDVALID, no
   * XInclude processing, no network. The encoding is forced to UTF-8 as libvirt writes
   * it, so bytes that are not UTF-8 are an error whatever a declaration claims. */
  doc = xmlCtxtReadMemory(ctxt, text, (int)size, NULL, "UTF-8",
                          XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);

  if (state.unsafe) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_UNSAFE,
                        _("document type declarations (DTD) and entity declarations are "
                          "not accepted"));
  } else if (state.too_deep) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_LIMIT, _("elements nested deeper than %d levels"),
                QP_XML_MAX_DEPTH);
  } else if (doc == NULL || !ctxt->wellFormed) {
    if (state.have_error)
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("line %d, column %d: %s"),
                  state.error_line, state.error_column, state.error_message);
    else
      g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("malformed document"));
  } else if (doc->intSubset != NULL || doc->extSubset != NULL) {
    /* not reachable through the SAX hooks; kept as the last line of defence */
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_UNSAFE,
                        _("document type declarations (DTD) are not accepted"));
  } else if (xmlDocGetRootElement(doc) == NULL) {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("no root element"));
  } else {
    start = text;
    if (size >= 3 && memcmp(start, "\xef\xbb\xbf", 3) == 0)
      start += 3;
    if (had_decl != NULL)
      *had_decl = (size - (gsize)(start - text)) >= 5 && memcmp(start, "<?xml", 5) == 0;
    g_free(state.error_message);
    ctxt->_private = NULL;
    xmlFreeParserCtxt(ctxt);
    return doc;
  }
  g_free(state.error_message);
  ctxt->_private = NULL;
  if (doc != NULL)
    xmlFreeDoc(doc);
  xmlFreeParserCtxt(ctxt);
  return NULL;
}

xmlNodePtr
qp_xml_child(xmlNodePtr parent, const char *name)
{
  for (xmlNodePtr n = parent != NULL ? parent->children : NULL; n != NULL; n = n->next) {
    if (n->type == XML_ELEMENT_NODE && n->ns == NULL && xmlStrEqual(n->name, BAD_CAST name))
      return n;
  }
  return NULL;
}

char *
qp_xml_prop(xmlNodePtr node, const char *name)
{
  xmlChar *value;
  char *copy;

  if (node == NULL)
    return NULL;
  value = xmlGetNoNsProp(node, BAD_CAST name);
  if (value == NULL)
    return NULL;
  copy = g_strdup((const char *)value);
  xmlFree(value);
  return copy;
}

static char *
node_text(xmlNodePtr node)
{
  xmlChar *content;
  char *copy;

  if (node == NULL)
    return NULL;
  content = xmlNodeGetContent(node);
  if (content == NULL)
    return NULL;
  copy = g_strstrip(g_strdup((const char *)content));
  xmlFree(content);
  return copy;
}

QpDomainXml *
qp_domain_xml_parse(const char *text, gssize len, GError **error)
{
  g_autoptr(xmlDoc) xdoc = NULL;
  gboolean had_decl = FALSE;
  xmlNodePtr root;
  QpDomainXml *doc;

  xdoc = qp_xml_safe_parse(text, len, &had_decl, error);
  if (xdoc == NULL)
    return NULL;
  root = xmlDocGetRootElement(xdoc);
  if (root->ns != NULL || !xmlStrEqual(root->name, BAD_CAST "domain")) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_NOT_DOMAIN,
                _("the root element is <%s>, not <domain>"), (const char *)root->name);
    return NULL;
  }
  doc = g_new0(QpDomainXml, 1);
  doc->doc = g_steal_pointer(&xdoc);
  doc->had_decl = had_decl;
  doc->name = node_text(qp_xml_child(root, "name"));
  doc->uuid = node_text(qp_xml_child(root, "uuid"));
  return doc;
}

void
qp_domain_xml_free(QpDomainXml *doc)
{
  if (doc == NULL)
    return;
  xmlFreeDoc(doc->doc);
  g_free(doc->name);
  g_free(doc->uuid);
  g_free(doc);
}

xmlDocPtr
qp_domain_xml_get_doc(const QpDomainXml *doc)
{
  return doc->doc;
}

const char *
qp_domain_xml_get_name(const QpDomainXml *doc)
{
  g_return_val_if_fail(doc != NULL, NULL);
  return doc->name;
}

const char *
qp_domain_xml_get_uuid(const QpDomainXml *doc)
{
  g_return_val_if_fail(doc != NULL, NULL);
  return doc->uuid;
}

char *
qp_domain_xml_to_string(const QpDomainXml *doc)
{
  xmlBufferPtr buf;
  xmlSaveCtxtPtr save;
  char *out;
  int options = 0;

  g_return_val_if_fail(doc != NULL, NULL);
  buf = xmlBufferCreate();
  if (buf == NULL)
    return NULL;
  /* never XML_SAVE_FORMAT: the user's whitespace is kept as it was */
  if (!doc->had_decl)
    options |= XML_SAVE_NO_DECL;
  save = xmlSaveToBuffer(buf, "UTF-8", options);
  if (save == NULL) {
    xmlBufferFree(buf);
    return NULL;
  }
  xmlSaveDoc(save, doc->doc);
  xmlSaveClose(save);
  out = g_strndup((const char *)xmlBufferContent(buf), xmlBufferLength(buf));
  xmlBufferFree(buf);
  /* libvirt's documents end with a newline; libxml2 drops it without a declaration */
  if (!g_str_has_suffix(out, "\n")) {
    char *nl = g_strconcat(out, "\n", NULL);
    g_free(out);
    out = nl;
  }
  return out;
}

GPtrArray *
qp_domain_xml_disk_nodes(const QpDomainXml *doc)
{
  GPtrArray *nodes = g_ptr_array_new();
  xmlNodePtr root = xmlDocGetRootElement(doc->doc);
  xmlNodePtr devices = qp_xml_child(root, "devices");

  for (xmlNodePtr n = devices != NULL ? devices->children : NULL; n != NULL; n = n->next) {
    if (n->type == XML_ELEMENT_NODE && n->ns == NULL && xmlStrEqual(n->name, BAD_CAST "disk"))
      g_ptr_array_add(nodes, n);
  }
  return nodes;
}

xmlNodePtr
qp_xml_backing_child(xmlNodePtr node, gboolean *terminated)
{
  if (terminated != NULL)
    *terminated = FALSE;
  for (xmlNodePtr n = node->children; n != NULL; n = n->next) {
    if (n->type != XML_ELEMENT_NODE || n->ns != NULL
        || !xmlStrEqual(n->name, BAD_CAST "backingStore"))
      continue;
    /* libvirt's terminator is <backingStore/>: no type and no child elements */
    if (xmlHasNsProp(n, BAD_CAST "type", NULL) == NULL && xmlFirstElementChild(n) == NULL) {
      if (terminated != NULL)
        *terminated = TRUE;
      return NULL;
    }
    return n;
  }
  return NULL;
}

gboolean
qp_xml_parse_scaled(const char *digits, const char *unit, guint64 *out, GError **error)
{
  guint64 value = 0;
  guint64 base = 1;
  guint power = 0;

  if (digits == NULL || *digits == '\0') {
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("empty size"));
    return FALSE;
  }
  for (const char *p = digits; *p != '\0'; p++) {
    if (!g_ascii_isdigit(*p)) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("invalid size “%s”"), digits);
      return FALSE;
    }
    if (value > (G_MAXUINT64 - (guint64)(*p - '0')) / 10) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("size “%s” is too large"), digits);
      return FALSE;
    }
    value = value * 10 + (guint64)(*p - '0');
  }

  if (unit != NULL && *unit != '\0' && g_ascii_strcasecmp(unit, "b") != 0
      && g_ascii_strcasecmp(unit, "byte") != 0 && g_ascii_strcasecmp(unit, "bytes") != 0) {
    const char *powers = "kmgtpe";
    const char *found = strchr(powers, g_ascii_tolower(unit[0]));

    if (unit[0] == '\0' || found == NULL) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("unknown unit “%s”"), unit);
      return FALSE;
    }
    if (unit[1] == '\0' || g_ascii_strcasecmp(unit + 1, "iB") == 0)
      base = 1024;
    else if (g_ascii_strcasecmp(unit + 1, "B") == 0)
      base = 1000;
    else {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("unknown unit “%s”"), unit);
      return FALSE;
    }
    power = (guint)(found - powers) + 1;
  }
  for (guint i = 0; i < power; i++) {
    if (value > G_MAXUINT64 / base) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE, _("size “%s %s” is too large"), digits,
                  unit);
      return FALSE;
    }
    value *= base;
  }
  *out = value;
  return TRUE;
}

static void
qp_disk_layer_free(QpDiskLayer *layer)
{
  if (layer == NULL)
    return;
  g_free(layer->source_type);
  g_free(layer->path);
  g_free(layer->format);
  g_free(layer);
}

void
qp_domain_disk_free(QpDomainDisk *disk)
{
  if (disk == NULL)
    return;
  g_free(disk->dev);
  g_free(disk->device);
  if (disk->layers != NULL)
    g_ptr_array_unref(disk->layers);
  g_free(disk);
}

/* Path of a file or block source, as libvirt names the attribute per source type. */
static char *
source_path(xmlNodePtr source, const char *source_type)
{
  if (source == NULL || source_type == NULL)
    return NULL;
  if (g_str_equal(source_type, "file"))
    return qp_xml_prop(source, "file");
  if (g_str_equal(source_type, "block"))
    return qp_xml_prop(source, "dev");
  return NULL;
}

/* <metadata_cache><max_size unit=…>N</max_size> under @parent (<driver> or <format>). */
static gboolean
read_metadata_cache(xmlNodePtr parent, QpDiskLayer *layer, GError **error)
{
  xmlNodePtr cache = qp_xml_child(parent, "metadata_cache");
  xmlNodePtr max_size;
  g_autofree char *digits = NULL;
  g_autofree char *unit = NULL;

  if (cache == NULL)
    return TRUE;
  layer->has_metadata_cache = TRUE;
  max_size = qp_xml_child(cache, "max_size");
  if (max_size == NULL)
    return TRUE;
  digits = node_text(max_size);
  unit = qp_xml_prop(max_size, "unit");
  if (!qp_xml_parse_scaled(digits, unit, &layer->metadata_cache_max_size, error)) {
    g_prefix_error(error, _("<metadata_cache><max_size>: "));
    return FALSE;
  }
  return TRUE;
}

static QpDiskLayer *
read_layer(xmlNodePtr node, guint depth, GError **error)
{
  QpDiskLayer *layer = g_new0(QpDiskLayer, 1);
  xmlNodePtr fmt;

  layer->depth = depth;
  layer->source_type = qp_xml_prop(node, "type");
  /* libvirt reads a missing disk type as a file */
  if (layer->source_type == NULL && depth == 0)
    layer->source_type = g_strdup("file");
  layer->path = source_path(qp_xml_child(node, "source"), layer->source_type);
  fmt = qp_xml_child(node, depth == 0 ? "driver" : "format");
  layer->format = qp_xml_prop(fmt, "type");
  if (fmt != NULL && !read_metadata_cache(fmt, layer, error)) {
    qp_disk_layer_free(layer);
    return NULL;
  }
  return layer;
}

GPtrArray *
qp_domain_xml_get_disks(const QpDomainXml *doc, GError **error)
{
  g_autoptr(GPtrArray) nodes = NULL;
  g_autoptr(GPtrArray) disks = g_ptr_array_new_with_free_func((GDestroyNotify)qp_domain_disk_free);

  g_return_val_if_fail(doc != NULL, NULL);
  nodes = qp_domain_xml_disk_nodes(doc);
  for (guint i = 0; i < nodes->len; i++) {
    xmlNodePtr node = g_ptr_array_index(nodes, i);
    g_autoptr(QpDomainDisk) disk = g_new0(QpDomainDisk, 1);
    xmlNodePtr cur = node;
    guint depth = 0;

    disk->dev = qp_xml_prop(qp_xml_child(node, "target"), "dev");
    disk->device = qp_xml_prop(node, "device");
    if (disk->device == NULL)
      disk->device = g_strdup("disk");
    disk->layers = g_ptr_array_new_with_free_func((GDestroyNotify)qp_disk_layer_free);
    /* The document's depth is bounded at parse time, so this walk is too. */
    while (cur != NULL) {
      QpDiskLayer *layer = read_layer(cur, depth, error);
      gboolean terminated = FALSE;
      xmlNodePtr next;

      if (layer == NULL) {
        g_prefix_error(error, _("disk “%s”, layer %u: "), disk->dev != NULL ? disk->dev : "?",
                       depth);
        return NULL;
      }
      g_ptr_array_add(disk->layers, layer);
      next = qp_xml_backing_child(cur, &terminated);
      if (next != NULL || terminated)
        disk->chain_explicit = TRUE;
      if (terminated)
        disk->chain_terminated = TRUE;
      cur = next;
      depth++;
    }
    g_ptr_array_add(disks, g_steal_pointer(&disk));
  }
  return g_steal_pointer(&disks);
}
