/* Layer dictionaries for D-Bus. */
#include "config.h"

#include "qp-figures.h"

#include "qp-cache.h"

const char *
qp_figures_action_name(QpPlanAction action)
{
  switch (action) {
  case QP_PLAN_WRITE:
    return "write";
  case QP_PLAN_UNCHANGED:
    return "unchanged";
  case QP_PLAN_SKIP:
  default:
    return "skip";
  }
}

/* Paths, formats and backing names come from XML and image headers: D-Bus strings must be
 * valid UTF-8, so invalid bytes become U+FFFD instead of a GVariant critical. */
static GVariant *
qp_figures_string(const char *text)
{
  return g_variant_new_take_string(g_utf8_make_valid(text != NULL ? text : "", -1));
}

/* One {sv} entry. Typed constructors, not g_variant_builder_add(…, "{sv}", …): the format
 * string parsing cost more than the values themselves (a daemon builds one dictionary per
 * layer per reconcile, tens of thousands at start on a big host). */
static void
qp_figures_put(GVariantBuilder *dict, const char *key, GVariant *value)
{
  g_variant_builder_add_value(
      dict, g_variant_new_dict_entry(g_variant_new_string(key), g_variant_new_variant(value)));
}

static void
qp_figures_add_header(GVariantBuilder *dict, const QpQcow2Header *header, QpCacheGeometry *geo)
{
  QpCacheSplit def = { 0 };

  geo->virtual_size = header->virtual_size;
  geo->cluster_bits = header->cluster_bits;
  geo->extended_l2 = header->extended_l2;
  qp_cache_qemu_default(geo, &def);
  qp_figures_put(dict, "virtual-size", g_variant_new_uint64(header->virtual_size));
  qp_figures_put(dict, "cluster-size", g_variant_new_uint64(header->cluster_size));
  qp_figures_put(dict, "extended-l2", g_variant_new_boolean(header->extended_l2));
  qp_figures_put(dict, "l2-entry-size", g_variant_new_uint32(header->l2_entry_size));
  qp_figures_put(dict, "l2-full-size", g_variant_new_uint64(qp_cache_l2_full(geo)));
  qp_figures_put(dict, "qemu-default-l2-cache-size", g_variant_new_uint64(def.l2_cache_size));
  qp_figures_put(dict, "qemu-default-l2-coverage", g_variant_new_double(def.l2_coverage));
}

static void
qp_figures_add_policy(GVariantBuilder *dict, guint percent, guint64 max_size,
                      const QpCacheSplit *split, gboolean raised)
{
  qp_figures_put(dict, "percent", g_variant_new_uint32(percent));
  qp_figures_put(dict, "max-size", g_variant_new_uint64(max_size));
  qp_figures_put(dict, "l2-cache-size", g_variant_new_uint64(split->l2_cache_size));
  qp_figures_put(dict, "refcount-cache-size", g_variant_new_uint64(split->refcount_cache_size));
  qp_figures_put(dict, "l2-coverage", g_variant_new_double(split->l2_coverage));
  qp_figures_put(dict, "raised-to-minimum", g_variant_new_boolean(raised));
}

GVariant *
qp_figures_from_plan_item(const QpPlanItem *item, gboolean written)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
  QpCacheGeometry geo = { 0 };

  qp_figures_put(&dict, "dev", qp_figures_string(item->dev != NULL ? item->dev : ""));
  qp_figures_put(&dict, "depth", g_variant_new_uint32(item->depth));
  if (item->path != NULL)
    qp_figures_put(&dict, "path", qp_figures_string(item->path));
  if (item->format != NULL)
    qp_figures_put(&dict, "format", qp_figures_string(item->format));
  qp_figures_put(&dict, "action", g_variant_new_string(qp_figures_action_name(item->action)));
  if (written)
    qp_figures_put(&dict, "written", g_variant_new_boolean(written));
  if (item->reason != NULL)
    qp_figures_put(&dict, "reason", qp_figures_string(item->reason));
  qp_figures_put(&dict, "current-max-size", g_variant_new_uint64(item->current_max_size));
  if (item->header != NULL) {
    qp_figures_add_header(&dict, item->header, &geo);
    if (item->action != QP_PLAN_SKIP)
      qp_figures_add_policy(&dict, item->percent, item->max_size, &item->policy,
                            item->raised_to_minimum);
  }
  return g_variant_builder_end(&dict);
}

GVariant *
qp_figures_from_layer(const QpQcow2Layer *layer, guint depth, guint percent, guint64 max)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
  QpCacheGeometry geo = { 0 };

  qp_figures_put(&dict, "depth", g_variant_new_uint32(depth));
  qp_figures_put(&dict, "path", qp_figures_string(layer->path));
  qp_figures_put(&dict, "format", qp_figures_string(layer->format != NULL ? layer->format : ""));
  if (layer->header == NULL) {
    qp_figures_put(&dict, "action", g_variant_new_string("skip"));
    qp_figures_put(&dict, "reason", g_variant_new_string("not qcow2"));
    return g_variant_builder_end(&dict);
  }
  qp_figures_add_header(&dict, layer->header, &geo);
  if (layer->header->backing_file != NULL)
    qp_figures_put(&dict, "backing-file", qp_figures_string(layer->header->backing_file));
  if (percent > 0) {
    QpCacheSplit split = { 0 };
    gboolean raised = FALSE;
    guint64 size = qp_cache_policy(&geo, percent, max, &raised, &split);
    qp_figures_add_policy(&dict, percent, size, &split, raised);
  }
  return g_variant_builder_end(&dict);
}
