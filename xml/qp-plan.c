/* The plan (what the policy writes for each disk and layer) and its rewrite of the
 * document. Reads image headers through lib/; never probes a format (the declared
 * <driver type> and <format type> are trusted, spec section 4). */
#include "config.h"

#include <glib/gi18n.h>
#include <libxml/tree.h>
#include <string.h>
#include <sys/stat.h>

#include "qp-cache.h"
#include "qp-plan.h"
#include "qp-qcow2-file.h"
#include "qp-xml-private.h"

/* Mismatching chains listed in one error; more are counted, so a document with
 * thousands of disks cannot make the message grow without bound. */
#define QP_PLAN_MAX_MESSAGES 20

/* Two spaces per level: how libvirt indents the XML it writes. */
#define QP_PLAN_INDENT "  "

static void
qp_plan_item_free(QpPlanItem *item)
{
  if (item == NULL)
    return;
  g_free(item->dev);
  g_free(item->path);
  g_free(item->format);
  g_free(item->source_type);
  g_free(item->reason);
  qp_qcow2_header_free(item->header);
  g_free(item);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpPlanItem, qp_plan_item_free)

void
qp_plan_free(QpPlan *plan)
{
  if (plan == NULL)
    return;
  g_free(plan->name);
  g_free(plan->uuid);
  qp_policy_free(plan->policy);
  if (plan->items != NULL)
    g_ptr_array_unref(plan->items);
  g_free(plan);
}

static QpPlanItem *
item_new(const QpDomainDisk *disk, guint disk_index, guint depth, const char *path,
         const char *format, const char *source_type)
{
  QpPlanItem *item = g_new0(QpPlanItem, 1);

  item->dev = g_strdup(disk->dev);
  item->disk_index = disk_index;
  item->depth = depth;
  item->path = g_strdup(path);
  item->format = g_strdup(format);
  item->source_type = g_strdup(source_type);
  return item;
}

static void
item_skip(QpPlanItem *item, gboolean failed, const char *reason)
{
  item->action = QP_PLAN_SKIP;
  item->failed = failed;
  g_free(item->reason);
  item->reason = g_strdup(reason);
}

/* Fill the figures of a qcow2 layer whose header was read; takes @header. */
static void
item_size(QpPlanItem *item, QpQcow2Header *header, guint percent, guint64 max,
          const QpDiskLayer *xml_layer)
{
  QpCacheGeometry geo = {
    .virtual_size = header->virtual_size,
    .cluster_bits = header->cluster_bits,
    .extended_l2 = header->extended_l2,
  };

  item->header = header;
  item->l2_full = qp_cache_l2_full(&geo);
  qp_cache_qemu_default(&geo, &item->qemu_default);
  item->percent = percent;
  item->max_size = qp_cache_policy(&geo, percent, max, &item->raised_to_minimum, &item->policy);
  if (xml_layer != NULL && xml_layer->has_metadata_cache)
    item->current_max_size = xml_layer->metadata_cache_max_size;
  item->action = (xml_layer != NULL && xml_layer->has_metadata_cache
                  && xml_layer->metadata_cache_max_size == item->max_size)
                     ? QP_PLAN_UNCHANGED
                     : QP_PLAN_WRITE;
}

/* Why a disk's top layer is not something we can size, or NULL when it is. */
static char *
top_skip_reason(const QpDomainDisk *disk, xmlNodePtr node)
{
  const QpDiskLayer *top = g_ptr_array_index(disk->layers, 0);
  const char *type = top->source_type;
  xmlNodePtr source = qp_xml_child(node, "source");

  if (g_strcmp0(type, "network") == 0) {
    g_autofree char *protocol = qp_xml_prop(source, "protocol");
    return g_strdup_printf(_("network source (%s)"), protocol != NULL ? protocol : "?");
  }
  if (g_strcmp0(type, "volume") == 0) {
    g_autofree char *pool = qp_xml_prop(source, "pool");
    g_autofree char *volume = qp_xml_prop(source, "volume");
    return g_strdup_printf(_("volume source (pool %s, volume %s): cannot be resolved "
                             "without libvirt"),
                           pool != NULL ? pool : "?", volume != NULL ? volume : "?");
  }
  if (g_strcmp0(type, "file") != 0 && g_strcmp0(type, "block") != 0)
    return g_strdup_printf(_("%s source: not an image file"), type != NULL ? type : "?");
  if (top->path == NULL) {
    if (g_strcmp0(disk->device, "cdrom") == 0 || g_strcmp0(disk->device, "floppy") == 0)
      return g_strdup_printf(_("no source (empty %s)"), disk->device);
    return g_strdup(_("no source"));
  }
  if (top->format == NULL)
    return g_strdup(_("no declared format (formats are never probed)"));
  if (g_strcmp0(top->format, "qcow2") != 0)
    return g_strdup_printf(_("not qcow2 (%s)"), top->format);
  return NULL;
}

/* Backing names come from image headers: they must be text XML can carry. */
static gboolean
path_fits_xml(const char *path)
{
  if (!g_utf8_validate(path, -1, NULL))
    return FALSE;
  for (const char *c = path; *c != '\0'; c++) {
    if ((guchar)*c < 0x20)
      return FALSE;
  }
  return TRUE;
}

static gboolean
same_file(const char *a, const char *b)
{
  struct stat sa, sb;

  if (g_strcmp0(a, b) == 0)
    return TRUE;
  if (a == NULL || b == NULL || stat(a, &sa) != 0 || stat(b, &sb) != 0)
    return FALSE;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static const char *
source_type_of(const char *path)
{
  struct stat st;

  if (stat(path, &st) == 0 && S_ISBLK(st.st_mode))
    return "block";
  return "file";
}

/* Compare the XML's explicit chain with the headers' chain. Problems are appended to
 * @mismatches; returns the number of XML layers that matched (layers below that are
 * added by the rewrite). */
static void
check_chain(const char *domain, const QpDomainDisk *disk, GPtrArray *chain, GPtrArray *mismatches)
{
  guint xml_layers = disk->layers->len;

  for (guint d = 1; d < xml_layers; d++) {
    const QpDiskLayer *x = g_ptr_array_index(disk->layers, d);
    const QpQcow2Layer *h = d < chain->len ? g_ptr_array_index(chain, d) : NULL;
    const QpQcow2Layer *parent = g_ptr_array_index(chain, MIN(d, chain->len) - 1);

    if (h == NULL) {
      g_ptr_array_add(mismatches,
                      g_strdup_printf(_("domain “%s”: disk “%s”: backing chain depth %u: the "
                                        "XML names %s (%s) but %s has no backing file"),
                                      domain, disk->dev, d, x->path != NULL ? x->path : "?",
                                      x->format != NULL ? x->format : "?", parent->path));
      return;
    }
    if (x->path == NULL || !same_file(x->path, h->path) || g_strcmp0(x->format, h->format) != 0) {
      g_ptr_array_add(mismatches,
                      g_strdup_printf(_("domain “%s”: disk “%s”: backing chain depth %u: the "
                                        "XML names %s (%s) but the image headers give %s (%s)"),
                                      domain, disk->dev, d,
                                      x->path != NULL
                                          ? x->path
                                          : (x->source_type != NULL ? x->source_type : "?"),
                                      x->format != NULL ? x->format : "?", h->path, h->format));
      return;
    }
  }
  if (disk->chain_terminated && chain->len > xml_layers) {
    const QpQcow2Layer *h = g_ptr_array_index(chain, xml_layers);
    const QpQcow2Layer *parent = g_ptr_array_index(chain, xml_layers - 1);
    g_ptr_array_add(mismatches,
                    g_strdup_printf(_("domain “%s”: disk “%s”: backing chain depth %u: the XML "
                                      "chain ends but %s has the backing file %s (%s)"),
                                    domain, disk->dev, xml_layers, parent->path, h->path,
                                    h->format));
  }
}

/* Items for one disk under chain="all". */
static void
plan_chain(QpPlan *plan, const QpDomainDisk *disk, guint index, guint percent, guint64 max,
           GPtrArray *mismatches)
{
  const QpDiskLayer *top = g_ptr_array_index(disk->layers, 0);
  const char *domain = plan->name != NULL ? plan->name : "?";
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chain = qp_qcow2_chain_resolve(top->path, top->format, &error);
  guint before = mismatches->len;

  if (chain != NULL) {
    for (guint d = 1; d < chain->len; d++) {
      const QpQcow2Layer *h = g_ptr_array_index(chain, d);
      if (!path_fits_xml(h->path)) {
        g_autofree char *shown = g_utf8_make_valid(h->path, -1);
        g_set_error(&error, QP_XML_ERROR, QP_XML_ERROR_CHAIN_MISMATCH,
                    _("backing file name “%s” cannot be written in XML"), shown);
        g_clear_pointer(&chain, g_ptr_array_unref);
        break;
      }
    }
  }
  if (chain == NULL) {
    /* The top image may still be readable on its own. */
    g_autoptr(GError) top_error = NULL;
    QpQcow2Header *header = qp_qcow2_file_read_header(top->path, &top_error);
    QpPlanItem *item = item_new(disk, index, 0, top->path, top->format, top->source_type);

    g_ptr_array_add(plan->items, item);
    if (header == NULL) {
      item_skip(item, TRUE, top_error->message);
      return;
    }
    item_size(item, header, percent, max, top);
    item = item_new(disk, index, 1, NULL, NULL, NULL);
    item_skip(item, TRUE, error->message);
    g_ptr_array_add(plan->items, item);
    return;
  }

  check_chain(domain, disk, chain, mismatches);
  if (mismatches->len > before)
    return;

  for (guint d = 0; d < chain->len; d++) {
    QpQcow2Layer *h = g_ptr_array_index(chain, d);
    const QpDiskLayer *x = d < disk->layers->len ? g_ptr_array_index(disk->layers, d) : NULL;
    QpPlanItem *item;

    if (d == 0)
      item = item_new(disk, index, 0, top->path, top->format, top->source_type);
    else if (x != NULL)
      item = item_new(disk, index, d, x->path, x->format, x->source_type);
    else
      item = item_new(disk, index, d, h->path, h->format, source_type_of(h->path));
    item->chain_added = d > 0 && x == NULL;
    g_ptr_array_add(plan->items, item);
    if (g_strcmp0(h->format, "qcow2") != 0) {
      g_autofree char *reason = g_strdup_printf(_("not qcow2 (%s)"), h->format);
      item_skip(item, FALSE, reason);
      continue;
    }
    item_size(item, g_steal_pointer(&h->header), percent, max, x);
  }
}

static void
plan_disk(QpPlan *plan, const QpDomainDisk *disk, xmlNodePtr node, guint index,
          GPtrArray *mismatches)
{
  const QpDiskLayer *top = g_ptr_array_index(disk->layers, 0);
  g_autofree char *reason = NULL;
  QpPlanItem *item;
  guint percent = 0;
  guint64 max = 0;
  QpChainMode chain = QP_CHAIN_TOP;

  if (disk->dev == NULL) {
    item = item_new(disk, index, 0, top->path, top->format, top->source_type);
    item_skip(item, FALSE, _("no target dev"));
    g_ptr_array_add(plan->items, item);
    return;
  }
  if (!qp_policy_for_disk(plan->policy, disk->dev, &percent, &max, &chain)) {
    item = item_new(disk, index, 0, top->path, top->format, top->source_type);
    item_skip(item, FALSE, _("skip=\"yes\" in the policy"));
    g_ptr_array_add(plan->items, item);
    return;
  }
  reason = top_skip_reason(disk, node);
  if (reason != NULL) {
    item = item_new(disk, index, 0, top->path, top->format, top->source_type);
    item_skip(item, FALSE, reason);
    g_ptr_array_add(plan->items, item);
    return;
  }
  if (chain == QP_CHAIN_ALL) {
    plan_chain(plan, disk, index, percent, max, mismatches);
    return;
  }
  {
    g_autoptr(GError) error = NULL;
    QpQcow2Header *header = qp_qcow2_file_read_header(top->path, &error);

    item = item_new(disk, index, 0, top->path, top->format, top->source_type);
    g_ptr_array_add(plan->items, item);
    if (header == NULL)
      item_skip(item, TRUE, error->message);
    else
      item_size(item, header, percent, max, top);
  }
}

QpPlan *
qp_plan_build(const QpDomainXml *doc, const QpPolicy *default_policy, GError **error)
{
  g_autoptr(QpPlan) plan = g_new0(QpPlan, 1);
  g_autoptr(GPtrArray) disks = NULL;
  g_autoptr(GPtrArray) nodes = NULL;
  g_autoptr(GPtrArray) mismatches = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) policy_error = NULL;
  g_autofree char *shown_name = NULL;

  g_return_val_if_fail(doc != NULL, NULL);

  plan->name = g_strdup(qp_domain_xml_get_name(doc));
  shown_name = qp_xml_display(plan->name, 256);
  plan->uuid = g_strdup(qp_domain_xml_get_uuid(doc));
  plan->items = g_ptr_array_new_with_free_func((GDestroyNotify)qp_plan_item_free);
  plan->policy = qp_policy_from_domain(doc, &policy_error);
  if (policy_error != NULL) {
    g_propagate_error(error, g_steal_pointer(&policy_error));
    return NULL;
  }
  if (plan->policy == NULL)
    plan->policy = qp_policy_copy(default_policy);
  if (plan->policy == NULL)
    return g_steal_pointer(&plan);
  if (plan->policy->percent < 1 || plan->policy->percent > 100) {
    g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_POLICY,
                _("domain “%s”: percent %u is outside 1 to 100"), shown_name,
                plan->policy->percent);
    return NULL;
  }

  disks = qp_domain_xml_get_disks(doc, error);
  if (disks == NULL) {
    if (error != NULL && *error != NULL) {
      char *one_line = qp_xml_display((*error)->message, -1);
      g_free((*error)->message);
      (*error)->message = one_line;
    }
    g_prefix_error(error, _("domain “%s”: "), shown_name);
    return NULL;
  }
  nodes = qp_domain_xml_disk_nodes(doc);
  g_assert(nodes->len == disks->len);
  for (guint i = 0; i < disks->len; i++)
    plan_disk(plan, g_ptr_array_index(disks, i), g_ptr_array_index(nodes, i), i, mismatches);

  if (mismatches->len > 0) {
    g_autoptr(GString) msg = g_string_new(NULL);
    for (guint i = 0; i < mismatches->len && i < QP_PLAN_MAX_MESSAGES; i++) {
      if (i > 0)
        g_string_append_c(msg, '\n');
      {
        g_autofree char *line = qp_xml_display(g_ptr_array_index(mismatches, i), -1);
        g_string_append(msg, line);
      }
    }
    if (mismatches->len > QP_PLAN_MAX_MESSAGES)
      g_string_append_printf(msg, _("\n… and %u more mismatching chains"),
                             mismatches->len - QP_PLAN_MAX_MESSAGES);
    g_set_error_literal(error, QP_XML_ERROR, QP_XML_ERROR_CHAIN_MISMATCH, msg->str);
    return NULL;
  }
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action == QP_PLAN_WRITE || item->chain_added)
      plan->changes = TRUE;
  }
  return g_steal_pointer(&plan);
}

void
qp_plan_settle(QpPlan *plan)
{
  g_return_if_fail(plan != NULL);

  for (guint i = 0; i < plan->items->len; i++) {
    QpPlanItem *item = g_ptr_array_index(plan->items, i);
    if (item->action == QP_PLAN_WRITE) {
      item->current_max_size = item->max_size;
      item->action = QP_PLAN_UNCHANGED;
    }
    item->chain_added = FALSE;
  }
  plan->changes = FALSE;
}

/* ---- the rewrite ---- */

/* The indentation of @node: the blanks after the last newline of the text before it. */
static char *
indent_of(xmlNodePtr node)
{
  xmlNodePtr prev = node->prev;
  const char *text, *nl;

  if (prev == NULL || prev->type != XML_TEXT_NODE || prev->content == NULL)
    return NULL;
  text = (const char *)prev->content;
  nl = strrchr(text, '\n');
  if (nl == NULL)
    return NULL;
  for (const char *c = nl + 1; *c != '\0'; c++) {
    if (*c != ' ' && *c != '\t')
      return NULL;
  }
  return g_strdup(nl + 1);
}

static gboolean
is_blank_text(xmlNodePtr node)
{
  if (node == NULL || node->type != XML_TEXT_NODE)
    return FALSE;
  for (const xmlChar *c = node->content; c != NULL && *c != '\0'; c++) {
    if (!g_ascii_isspace(*c))
      return FALSE;
  }
  return TRUE;
}

/* Nodes are linked by hand: libxml2's xmlAdd*Sibling merge adjacent text nodes, which
 * would fold new indentation into the user's text and hide it from the byte-preserving
 * write (qp_domain_xml_to_string). Every node made here is marked as created. */
static xmlNodePtr
new_text(xmlNodePtr near, const char *text)
{
  xmlNodePtr n = xmlNewDocText(near->doc, BAD_CAST text);
  n->_private = (void *)qp_xml_mark_created;
  return n;
}

static xmlNodePtr
new_element(xmlNodePtr near, const char *name)
{
  xmlNodePtr n = xmlNewDocNode(near->doc, NULL, BAD_CAST name, NULL);
  n->_private = (void *)qp_xml_mark_created;
  return n;
}

static void
link_before(xmlNodePtr ref, xmlNodePtr n)
{
  n->parent = ref->parent;
  n->doc = ref->doc;
  n->prev = ref->prev;
  n->next = ref;
  if (ref->prev != NULL)
    ref->prev->next = n;
  else
    ref->parent->children = n;
  ref->prev = n;
}

static void
link_after(xmlNodePtr ref, xmlNodePtr n)
{
  n->parent = ref->parent;
  n->doc = ref->doc;
  n->prev = ref;
  n->next = ref->next;
  if (ref->next != NULL)
    ref->next->prev = n;
  else
    ref->parent->last = n;
  ref->next = n;
}

static void
link_last(xmlNodePtr parent, xmlNodePtr n)
{
  xmlNodePtr last = parent->last;

  if (last != NULL) {
    link_after(last, n);
    return;
  }
  n->parent = parent;
  n->doc = parent->doc;
  n->prev = n->next = NULL;
  parent->children = parent->last = n;
}

/* Append @child as the last element of @parent, indented like libvirt would. */
static xmlNodePtr
append_indented(xmlNodePtr parent, xmlNodePtr child)
{
  g_autofree char *parent_indent = indent_of(parent);
  xmlNodePtr last = parent->last;
  xmlNodePtr first_elem = xmlFirstElementChild(parent);

  if (last == NULL) {
    if (parent_indent != NULL) {
      g_autofree char *open = g_strconcat("\n", parent_indent, QP_PLAN_INDENT, NULL);
      g_autofree char *close = g_strconcat("\n", parent_indent, NULL);
      link_last(parent, new_text(parent, open));
      link_last(parent, child);
      link_last(parent, new_text(parent, close));
    } else {
      link_last(parent, child);
    }
    return child;
  }
  if (is_blank_text(last)) {
    g_autofree char *child_indent = first_elem != NULL ? indent_of(first_elem) : NULL;
    if (child_indent == NULL && parent_indent != NULL)
      child_indent = g_strconcat(parent_indent, QP_PLAN_INDENT, NULL);
    if (child_indent != NULL) {
      g_autofree char *open = g_strconcat("\n", child_indent, NULL);
      link_before(last, new_text(parent, open));
    }
    link_before(last, child);
    return child;
  }
  link_last(parent, child);
  return child;
}

/* Insert @child as the next sibling of @ref with @ref's indentation. */
static void
insert_after(xmlNodePtr ref, xmlNodePtr child)
{
  g_autofree char *indent = indent_of(ref);

  link_after(ref, child);
  if (indent != NULL) {
    g_autofree char *text = g_strconcat("\n", indent, NULL);
    link_before(child, new_text(ref, text));
  }
}

/* <metadata_cache><max_size unit='bytes'>N</max_size></metadata_cache> under @parent. */
static void
set_metadata_cache(xmlNodePtr parent, guint64 max_size)
{
  xmlNodePtr cache = qp_xml_child(parent, "metadata_cache");
  xmlNodePtr size;
  char digits[32];

  if (cache == NULL)
    cache = append_indented(parent, new_element(parent, "metadata_cache"));
  g_snprintf(digits, sizeof(digits), "%" G_GUINT64_FORMAT, max_size);
  size = qp_xml_child(cache, "max_size");
  if (size == NULL) {
    size = append_indented(cache, new_element(parent, "max_size"));
  } else if (size->_private != (void *)qp_xml_mark_created) {
    g_autofree char *unit = qp_xml_prop(size, "unit");
    xmlChar *content = xmlNodeGetContent(size);
    gboolean same = g_strcmp0(unit, "bytes") == 0 && xmlStrEqual(content, BAD_CAST digits);

    xmlFree(content);
    if (same)
      return; /* already exactly this: the bytes stay as they are */
    size->_private = (void *)qp_xml_mark_rewritten; /* the user's element, now ours */
  }
  xmlSetProp(size, BAD_CAST "unit", BAD_CAST "bytes");
  xmlNodeSetContent(size, BAD_CAST digits);
}

/* A new <backingStore type=…><format type=…/><source …/></backingStore> below @parent,
 * placed after the parent's <source> as libvirt writes it. */
static xmlNodePtr
add_backing_store(xmlNodePtr parent, const QpPlanItem *item)
{
  xmlNodePtr store = new_element(parent, "backingStore");
  xmlNodePtr source_ref = qp_xml_child(parent, "source");
  const char *type = item->source_type != NULL ? item->source_type : "file";
  xmlNodePtr node;

  xmlSetProp(store, BAD_CAST "type", BAD_CAST type);
  if (source_ref != NULL)
    insert_after(source_ref, store);
  else
    append_indented(parent, store);
  node = append_indented(store, new_element(parent, "format"));
  xmlSetProp(node, BAD_CAST "type", BAD_CAST item->format);
  node = append_indented(store, new_element(parent, "source"));
  xmlSetProp(node, BAD_CAST(g_str_equal(type, "block") ? "dev" : "file"), BAD_CAST item->path);
  return store;
}

static gboolean
apply_disk(xmlNodePtr disk_node, const QpPlan *plan, guint index, GError **error)
{
  xmlNodePtr layer_node = disk_node;
  gboolean added = FALSE;
  guint depth = 0;

  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    xmlNodePtr format;

    if (item->disk_index != index)
      continue;
    if (item->depth != depth) {
      xmlNodePtr next;

      if (item->depth != depth + 1) {
        g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                    _("disk “%s”: the plan's layers are not in order"), item->dev);
        return FALSE;
      }
      next = qp_xml_backing_child(layer_node, NULL);
      if (next == NULL) {
        if (!item->chain_added) {
          if (item->action == QP_PLAN_SKIP)
            continue;
          g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                      _("disk “%s”: the document has no backing layer %u; it changed "
                        "since the plan was made"),
                      item->dev, item->depth);
          return FALSE;
        }
        next = add_backing_store(layer_node, item);
        added = TRUE;
      }
      layer_node = next;
      depth = item->depth;
    }
    if (item->action != QP_PLAN_WRITE)
      continue;
    format = qp_xml_child(layer_node, depth == 0 ? "driver" : "format");
    if (format == NULL) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                  _("disk “%s”, layer %u: no <%s> element to carry the cache size"), item->dev,
                  depth, depth == 0 ? "driver" : "format");
      return FALSE;
    }
    set_metadata_cache(format, item->max_size);
  }
  /* Added layers are always the deepest ones: end the chain below the last. */
  if (added && qp_xml_backing_child(layer_node, NULL) == NULL)
    append_indented(layer_node, new_element(layer_node, "backingStore"));
  return TRUE;
}

gboolean
qp_plan_apply(QpDomainXml *doc, const QpPlan *plan, GError **error)
{
  g_autoptr(GPtrArray) nodes = NULL;

  g_return_val_if_fail(doc != NULL, FALSE);
  g_return_val_if_fail(plan != NULL, FALSE);

  if (plan->policy == NULL || !plan->changes)
    return TRUE;
  nodes = qp_domain_xml_disk_nodes(doc);
  /* Check that the plan fits the document before changing anything. */
  for (guint i = 0; i < plan->items->len; i++) {
    const QpPlanItem *item = g_ptr_array_index(plan->items, i);
    g_autofree char *dev = NULL;

    if (item->disk_index >= nodes->len) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                  _("disk “%s”: not in the document; it changed since the plan was made"),
                  item->dev != NULL ? item->dev : "?");
      return FALSE;
    }
    dev = qp_xml_prop(qp_xml_child(g_ptr_array_index(nodes, item->disk_index), "target"), "dev");
    if (g_strcmp0(dev, item->dev) != 0) {
      g_set_error(error, QP_XML_ERROR, QP_XML_ERROR_PARSE,
                  _("disk “%s”: not in the document; it changed since the plan was made"),
                  item->dev != NULL ? item->dev : "?");
      return FALSE;
    }
  }
  for (guint i = 0; i < nodes->len; i++) {
    if (!apply_disk(g_ptr_array_index(nodes, i), plan, i, error)) {
      g_autofree char *shown_name = qp_xml_display(plan->name, 256);
      g_prefix_error(error, _("domain “%s”: "), shown_name);
      return FALSE;
    }
  }
  return TRUE;
}
