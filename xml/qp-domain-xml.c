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

GQuark
qp_xml_error_quark(void)
{
  return g_quark_from_static_string("qp-xml-error-quark");
}

struct _QpDomainXml {
  xmlDocPtr doc;
  gboolean had_decl;
  char *name;
  char *uuid;
  char *text; /* the document as it came, for the byte-preserving write */
  gsize text_len;
  GHashTable *spans; /* xmlNode* -> QpNodeSpan*, or NULL when unknown */
  gboolean crlf;     /* the text ends its lines with CR LF */
};

/* Where an element is in the text (bytes): [begin, end) from '<' to after '>'. */
typedef struct {
  gsize tag_end; /* after the start tag ('>'), or at "/>" of an empty element */
  gsize begin;
  gsize end;
  gboolean closed;
} QpNodeSpan;

/* What one parse saw, reached from the parser context's _private. */
typedef struct {
  gboolean have_error;
  char *error_message;
  int error_line;
  int error_column;
  gboolean unsafe;
  gboolean too_deep;
  GHashTable *spans; /* NULL: positions not wanted */
} QpParseState;

/* The elements whose positions the rewrite needs: what it changes and their neighbours. */
static gboolean
span_wanted(const xmlChar *name)
{
  static const char *const names[] = {
    "disk", "driver", "format", "source", "metadata_cache", "max_size", "backingStore",
  };
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    if (xmlStrEqual(name, BAD_CAST names[i]))
      return TRUE;
  }
  return FALSE;
}

static gsize
input_offset(xmlParserCtxtPtr ctxt)
{
  return (gsize)ctxt->input->consumed + (gsize)(ctxt->input->cur - ctxt->input->base);
}

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
  {
    g_autofree char *message = g_strchomp(g_strdup(err->message != NULL ? err->message : "?"));
    /* libxml2 splits some messages over lines, and quotes the input cut anywhere, even
     * inside a UTF-8 sequence: a failure is reported on one line of valid text */
    g_strdelimit(message, "\n", ' ');
    state->error_message = qp_xml_display(message, 512);
  }
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
  if (state->spans != NULL && ctxt->node != NULL && prefix == NULL && span_wanted(localname)) {
    QpNodeSpan *span = g_new0(QpNodeSpan, 1);
    span->tag_end = input_offset(ctxt);
    g_hash_table_insert(state->spans, ctxt->node, span);
  }
}

static void
tracked_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix, const xmlChar *uri)
{
  xmlParserCtxtPtr ctxt = ctx;
  QpParseState *state = ctxt->_private;

  if (state->spans != NULL && ctxt->node != NULL) {
    QpNodeSpan *span = g_hash_table_lookup(state->spans, ctxt->node);
    if (span != NULL) {
      span->end = input_offset(ctxt);
      span->closed = TRUE;
    }
  }
  xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

/* Turn parser offsets into offsets of @text and check each span really is its element;
 * returns FALSE when any is off (then no byte-preserving write is attempted). */
static gboolean
spans_resolve(GHashTable *spans, const char *text, gsize size, gsize shift)
{
  GHashTableIter iter;
  gpointer key, value;

  g_hash_table_iter_init(&iter, spans);
  while (g_hash_table_iter_next(&iter, &key, &value)) {
    const xmlNode *node = key;
    QpNodeSpan *span = value;
    gsize name_len = strlen((const char *)node->name);
    gsize b;

    if (!span->closed)
      return FALSE;
    span->tag_end += shift;
    span->end += shift;
    if (span->tag_end == 0 || span->tag_end > size || span->end > size || span->end < span->tag_end
        || span->end < 2 || text[span->end - 1] != '>')
      return FALSE;
    /* '<' cannot occur inside a start tag (not even in attribute values), so the
     * first one before the tag's end opens it */
    b = span->tag_end;
    while (b > 0 && text[b - 1] != '<')
      b--;
    if (b == 0)
      return FALSE;
    span->begin = b - 1;
    if (span->begin + 1 + name_len > size
        || memcmp(text + span->begin + 1, node->name, name_len) != 0
        || !(g_ascii_isspace(text[span->begin + 1 + name_len])
             || text[span->begin + 1 + name_len] == '/' || text[span->begin + 1 + name_len] == '>'))
      return FALSE;
  }
  return TRUE;
}

xmlDocPtr
qp_xml_safe_parse(const char *text, gssize len, gboolean *had_decl, GHashTable **spans,
                  GError **error)
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
  ctxt->sax->endElementNs = tracked_end_element;
  if (spans != NULL)
    state.spans = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);

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
    if (spans != NULL) {
      /* libxml2 counts offsets after a byte order mark */
      if (spans_resolve(state.spans, text, size, (gsize)(start - text)))
        *spans = g_steal_pointer(&state.spans);
      else
        *spans = NULL;
    }
    g_clear_pointer(&state.spans, g_hash_table_unref);
    g_free(state.error_message);
    ctxt->_private = NULL;
    xmlFreeParserCtxt(ctxt);
    return doc;
  }
  g_clear_pointer(&state.spans, g_hash_table_unref);
  g_free(state.error_message);
  ctxt->_private = NULL;
  if (doc != NULL)
    xmlFreeDoc(doc);
  xmlFreeParserCtxt(ctxt);
  return NULL;
}

char *
qp_xml_display(const char *text, gssize max_chars)
{
  const char *src = text != NULL ? text : "?";
  gsize len = strlen(src);
  g_autofree char *valid = NULL;
  GString *out;
  gssize n = 0;

  /* A character takes at most 4 bytes, and each invalid byte becomes one U+FFFD: the
   * first @max_chars characters and whether another follows are all in this prefix,
   * so a long value is not copied whole only to be cut. */
  if (max_chars >= 0 && (gsize)max_chars < len / 4)
    len = 4 * (gsize)max_chars + 4;
  valid = g_utf8_make_valid(src, (gssize)len);
  out = g_string_sized_new(len);
  for (const char *c = valid; *c != '\0'; n++) {
    const char *next = g_utf8_next_char(c);
    gunichar u = (guchar)*c;

    if (max_chars >= 0 && n >= max_chars) {
      g_string_append(out, "…");
      break;
    }
    if (u == '\n')
      g_string_append(out, "\\n");
    else if (u == '\t')
      g_string_append(out, "\\t");
    else if (u < 0x20 || u == 0x7f)
      g_string_append_printf(out, "\\x%02x", (guint)u);
    else
      g_string_append_len(out, c, next - c); /* valid UTF-8: copied as it is */
    c = next;
  }
  return g_string_free(out, FALSE);
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
  g_autoptr(GHashTable) spans = NULL;
  gboolean had_decl = FALSE;
  xmlNodePtr root;
  QpDomainXml *doc;

  xdoc = qp_xml_safe_parse(text, len, &had_decl, &spans, error);
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
  doc->text_len = len < 0 ? strlen(text) : (gsize)len;
  doc->text = g_strndup(text, doc->text_len);
  doc->crlf = strstr(doc->text, "\r\n") != NULL;
  doc->spans = g_steal_pointer(&spans);
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
  g_free(doc->text);
  if (doc->spans != NULL)
    g_hash_table_unref(doc->spans);
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

const char qp_xml_mark_created[] = "created";
const char qp_xml_mark_rewritten[] = "rewritten";

/* The whole tree as libxml2 writes it. */
static char *
serialize_tree(xmlDocPtr xdoc, gboolean had_decl)
{
  xmlBufferPtr buf;
  xmlSaveCtxtPtr save;
  char *out;
  int options = 0;

  buf = xmlBufferCreate();
  if (buf == NULL)
    return NULL;
  /* never XML_SAVE_FORMAT: the user's whitespace is kept as it was */
  if (!had_decl)
    options |= XML_SAVE_NO_DECL;
  save = xmlSaveToBuffer(buf, "UTF-8", options);
  if (save == NULL) {
    xmlBufferFree(buf);
    return NULL;
  }
  xmlSaveDoc(save, xdoc);
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

static char *
dump_nodes_libxml2(xmlNodePtr first, xmlNodePtr last);

static void
append_escaped(GString *out, const char *text, gboolean attribute)
{
  for (const char *c = text; *c != '\0'; c++) {
    switch (*c) {
    case '&':
      g_string_append(out, "&amp;");
      break;
    case '<':
      g_string_append(out, "&lt;");
      break;
    case '>':
      g_string_append(out, "&gt;");
      break;
    case '\'':
      g_string_append(out, attribute ? "&apos;" : "'");
      break;
    case '\r':
      g_string_append(out, "&#13;"); /* line-end normalization would drop it */
      break;
    case '\t':
    case '\n':
      /* attribute-value normalization would turn them into spaces */
      if (attribute)
        g_string_append_printf(out, "&#%d;", *c);
      else
        g_string_append_c(out, *c);
      break;
    default:
      g_string_append_c(out, *c);
    }
  }
}

/* A node the rewrite created, written the way libvirt writes XML (single quotes). Such
 * nodes hold only elements without namespaces, attributes and plain text. */
static gboolean
write_created(GString *out, xmlNodePtr n, gboolean crlf)
{
  if (n->type == XML_TEXT_NODE) {
    gsize from = out->len;
    append_escaped(out, (const char *)n->content, FALSE);
    /* new line breaks as the document writes its own */
    if (crlf) {
      for (gsize i = from; i < out->len; i++) {
        if (out->str[i] == '\n') {
          g_string_insert_c(out, (gssize)i, '\r');
          i++;
        }
      }
    }
    return TRUE;
  }
  if (n->type != XML_ELEMENT_NODE || n->ns != NULL || n->nsDef != NULL)
    return FALSE;
  g_string_append_printf(out, "<%s", (const char *)n->name);
  for (xmlAttrPtr a = n->properties; a != NULL; a = a->next) {
    g_autofree char *value = (char *)xmlNodeListGetString(n->doc, a->children, 1);
    if (a->ns != NULL)
      return FALSE;
    g_string_append_printf(out, " %s='", (const char *)a->name);
    append_escaped(out, value != NULL ? value : "", TRUE);
    g_string_append_c(out, '\'');
  }
  if (n->children == NULL) {
    g_string_append(out, "/>");
    return TRUE;
  }
  g_string_append_c(out, '>');
  for (xmlNodePtr c = n->children; c != NULL; c = c->next) {
    if (!write_created(out, c, crlf))
      return FALSE;
  }
  g_string_append_printf(out, "</%s>", (const char *)n->name);
  return TRUE;
}

/* The siblings @first..@last, created by the rewrite or rewritten by it. */
static char *
dump_nodes(const QpDomainXml *doc, xmlNodePtr first, xmlNodePtr last)
{
  g_autoptr(GString) own = g_string_new(NULL);
  gboolean ok = TRUE;

  for (xmlNodePtr n = first; n != NULL && ok; n = n->next) {
    ok = write_created(own, n, doc->crlf);
    if (n == last)
      break;
  }
  if (ok)
    return g_string_free(g_steal_pointer(&own), FALSE);
  return dump_nodes_libxml2(first, last);
}

/* The siblings @first..@last as libxml2 writes them. */
static char *
dump_nodes_libxml2(xmlNodePtr first, xmlNodePtr last)
{
  xmlBufferPtr buf = xmlBufferCreate();
  char *out;

  if (buf == NULL)
    return NULL;
  for (xmlNodePtr n = first; n != NULL; n = n->next) {
    xmlNodeDump(buf, n->doc, n, 0, 0);
    if (n == last)
      break;
  }
  out = g_strndup((const char *)xmlBufferContent(buf), xmlBufferLength(buf));
  xmlBufferFree(buf);
  return out;
}

typedef struct {
  gsize begin;
  gsize end;
  char *text;
} QpEdit;

static void
qp_edit_clear(gpointer data)
{
  g_free(((QpEdit *)data)->text);
}

static gboolean
is_created(xmlNodePtr n)
{
  return n->_private == (void *)qp_xml_mark_created;
}

static const QpNodeSpan *
span_of(const QpDomainXml *doc, xmlNodePtr node)
{
  if (node == NULL || node->type != XML_ELEMENT_NODE || is_created(node))
    return NULL;
  return g_hash_table_lookup(doc->spans, node);
}

/* Offset of the end tag "</" of the element at @span, or -1 (an empty element). */
static gssize
end_tag_offset(const QpDomainXml *doc, const QpNodeSpan *span)
{
  for (gsize i = span->end; i > span->tag_end; i--) {
    if (doc->text[i - 1] == '<')
      return doc->text[i] == '/' ? (gssize)(i - 1) : -1;
  }
  return -1;
}

static void
add_edit(GArray *edits, gsize begin, gsize end, char *text)
{
  QpEdit e = { begin, end, text };
  g_array_append_val(edits, e);
}

/* Where the created siblings @first..@last under the original element @parent go. */
static gboolean
group_edit(const QpDomainXml *doc, xmlNodePtr parent, xmlNodePtr first, xmlNodePtr last,
           GArray *edits)
{
  const QpNodeSpan *ps = span_of(doc, parent);
  gboolean all_created = TRUE;
  char *dump;
  gssize pos;

  if (ps == NULL)
    return FALSE;
  for (xmlNodePtr n = parent->children; n != NULL; n = n->next)
    all_created = all_created && is_created(n);
  dump = dump_nodes(doc, first, last);
  if (dump == NULL)
    return FALSE;

  if (all_created && doc->text[ps->end - 2] == '/') {
    /* <driver …/> becomes <driver …>NEW</driver> */
    add_edit(edits, ps->end - 2, ps->end,
             g_strdup_printf(">%s</%s>", dump, (const char *)parent->name));
    g_free(dump);
    return TRUE;
  }
  const QpNodeSpan *prev_span = all_created ? NULL : span_of(doc, first->prev);
  const QpNodeSpan *next_span = span_of(doc, last->next);

  if (prev_span != NULL) {
    pos = (gssize)prev_span->end;
  } else if (last->next == NULL) {
    pos = end_tag_offset(doc, ps);
  } else if (last->next->type == XML_TEXT_NODE && last->next->next == NULL
             && !is_created(last->next) && last->next->content != NULL) {
    /* before the blanks that precede the end tag */
    gsize blanks = strlen((const char *)last->next->content);
    pos = end_tag_offset(doc, ps);
    if (pos < 0 || (gsize)pos < ps->tag_end + blanks
        || memcmp(doc->text + pos - blanks, last->next->content, blanks) != 0)
      pos = -1;
    else
      pos -= (gssize)blanks;
  } else if (next_span != NULL) {
    pos = (gssize)next_span->begin;
  } else {
    pos = -1;
  }
  if (pos < 0) {
    g_free(dump);
    return FALSE;
  }
  add_edit(edits, (gsize)pos, (gsize)pos, dump);
  return TRUE;
}

/* The edits that turn the original text into the rewritten tree, in document order. */
static gboolean
collect_edits(const QpDomainXml *doc, xmlNodePtr node, GArray *edits)
{
  for (xmlNodePtr c = node->children; c != NULL; c = c->next) {
    if (c->_private == (void *)qp_xml_mark_rewritten) {
      const QpNodeSpan *span = span_of(doc, c);
      if (span == NULL)
        return FALSE;
      add_edit(edits, span->begin, span->end, dump_nodes(doc, c, c));
      continue;
    }
    if (is_created(c)) {
      xmlNodePtr last = c;
      while (last->next != NULL && is_created(last->next))
        last = last->next;
      if (!group_edit(doc, node, c, last, edits))
        return FALSE;
      c = last;
      continue;
    }
    if (c->type == XML_ELEMENT_NODE && !collect_edits(doc, c, edits))
      return FALSE;
  }
  return TRUE;
}

/* The original text with only the rewritten parts replaced, or NULL when the edits
 * cannot be placed exactly. */
static char *
splice(const QpDomainXml *doc)
{
  g_autoptr(GArray) edits = g_array_new(FALSE, TRUE, sizeof(QpEdit));
  g_autoptr(GString) out = NULL;
  gsize at = 0;

  g_array_set_clear_func(edits, qp_edit_clear);
  if (doc->spans == NULL || !collect_edits(doc, (xmlNodePtr)doc->doc, edits))
    return NULL;
  out = g_string_sized_new(doc->text_len + 256 * edits->len);
  for (guint i = 0; i < edits->len; i++) {
    const QpEdit *e = &g_array_index(edits, QpEdit, i);
    if (e->begin < at || e->end < e->begin || e->end > doc->text_len || e->text == NULL)
      return NULL;
    g_string_append_len(out, doc->text + at, (gssize)(e->begin - at));
    g_string_append(out, e->text);
    at = e->end;
  }
  g_string_append_len(out, doc->text + at, (gssize)(doc->text_len - at));
  return g_string_free(g_steal_pointer(&out), FALSE);
}

static gboolean
same_ns(const xmlNs *a, const xmlNs *b)
{
  if (a == NULL || b == NULL)
    return a == b;
  return xmlStrEqual(a->href, b->href) && xmlStrEqual(a->prefix, b->prefix);
}

/* The text of the run of adjacent text nodes starting at *@n (the rewrite links new
 * indentation next to the user's; parsed again, such a run is one node); advances *@n
 * to the run's last node. */
static char *
text_run(xmlNodePtr *n)
{
  GString *s = g_string_new((const char *)(*n)->content);

  while ((*n)->next != NULL && (*n)->next->type == XML_TEXT_NODE) {
    *n = (*n)->next;
    g_string_append(s, (const char *)(*n)->content);
  }
  return g_string_free(s, FALSE);
}

/* Whether two sibling lists hold the same document: nodes, names, namespaces,
 * attributes, text. Recursion is bounded by QP_XML_MAX_DEPTH (both trees were parsed
 * under it, and the rewrite adds fewer levels than a chain's limit leaves free). */
static gboolean
same_tree(xmlNodePtr a, xmlNodePtr b)
{
  for (; a != NULL && b != NULL; a = a->next, b = b->next) {
    xmlAttrPtr pa, pb;
    xmlNsPtr na, nb;

    if (a->type != b->type || !xmlStrEqual(a->name, b->name) || !same_ns(a->ns, b->ns))
      return FALSE;
    if (a->type == XML_TEXT_NODE && (a->next == NULL || a->next->type != XML_TEXT_NODE)
        && (b->next == NULL || b->next->type != XML_TEXT_NODE)) {
      if (!xmlStrEqual(a->content, b->content))
        return FALSE;
      continue;
    }
    if (a->type == XML_TEXT_NODE) {
      g_autofree char *ta = text_run(&a);
      g_autofree char *tb = text_run(&b);
      if (g_strcmp0(ta, tb) != 0)
        return FALSE;
      continue;
    }
    if (a->type != XML_ELEMENT_NODE) {
      if (!xmlStrEqual(a->content, b->content))
        return FALSE;
      continue;
    }
    for (na = a->nsDef, nb = b->nsDef; na != NULL && nb != NULL; na = na->next, nb = nb->next) {
      if (!same_ns(na, nb))
        return FALSE;
    }
    if (na != NULL || nb != NULL)
      return FALSE;
    for (pa = a->properties, pb = b->properties; pa != NULL && pb != NULL;
         pa = pa->next, pb = pb->next) {
      if (!xmlStrEqual(pa->name, pb->name) || !same_ns(pa->ns, pb->ns))
        return FALSE;
      /* values are one text node as the parser builds them; compare the rest in full */
      if (pa->children != NULL && pb->children != NULL && pa->children->next == NULL
          && pb->children->next == NULL && pa->children->type == XML_TEXT_NODE
          && pb->children->type == XML_TEXT_NODE) {
        if (!xmlStrEqual(pa->children->content, pb->children->content))
          return FALSE;
      } else {
        g_autofree char *va = (char *)xmlNodeListGetString(a->doc, pa->children, 1);
        g_autofree char *vb = (char *)xmlNodeListGetString(b->doc, pb->children, 1);
        if (g_strcmp0(va, vb) != 0)
          return FALSE;
      }
    }
    if (pa != NULL || pb != NULL)
      return FALSE;
    if (!same_tree(a->children, b->children))
      return FALSE;
  }
  return a == NULL && b == NULL;
}

char *
qp_domain_xml_to_string(const QpDomainXml *doc)
{
  g_autofree char *spliced = NULL;
  g_autoptr(xmlDoc) check = NULL;

  g_return_val_if_fail(doc != NULL, NULL);
  spliced = splice(doc);
  if (spliced == NULL)
    return serialize_tree(doc->doc, doc->had_decl);
  /* The spliced text must hold exactly the rewritten tree; otherwise libxml2's own
   * writer is used. */
  check = qp_xml_safe_parse(spliced, -1, NULL, NULL, NULL);
  if (check == NULL || !same_tree(check->children, doc->doc->children))
    return serialize_tree(doc->doc, doc->had_decl);
  return g_steal_pointer(&spliced);
}

char *
qp_domain_xml_disk_to_string(const QpDomainXml *doc, guint disk_index)
{
  g_autoptr(GPtrArray) nodes = qp_domain_xml_disk_nodes(doc);
  xmlBufferPtr buf = NULL;
  char *text = NULL;

  if (disk_index >= nodes->len)
    return NULL;
  buf = xmlBufferCreate();
  if (xmlNodeDump(buf, doc->doc, g_ptr_array_index(nodes, disk_index), 0, 0) >= 0)
    text = g_strdup((const char *)xmlBufferContent(buf));
  xmlBufferFree(buf);
  return text;
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
