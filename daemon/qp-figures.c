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

static void
qp_figures_add_header(GVariantDict *dict, const QpQcow2Header *header, QpCacheGeometry *geo)
{
  QpCacheSplit def = { 0 };

  geo->virtual_size = header->virtual_size;
  geo->cluster_bits = header->cluster_bits;
  geo->extended_l2 = header->extended_l2;
  qp_cache_qemu_default(geo, &def);
  g_variant_dict_insert(dict, "virtual-size", "t", header->virtual_size);
  g_variant_dict_insert(dict, "cluster-size", "t", header->cluster_size);
  g_variant_dict_insert(dict, "extended-l2", "b", header->extended_l2);
  g_variant_dict_insert(dict, "l2-entry-size", "u", header->l2_entry_size);
  g_variant_dict_insert(dict, "l2-full-size", "t", qp_cache_l2_full(geo));
  g_variant_dict_insert(dict, "qemu-default-l2-cache-size", "t", def.l2_cache_size);
  g_variant_dict_insert(dict, "qemu-default-l2-coverage", "d", def.l2_coverage);
}

static void
qp_figures_add_policy(GVariantDict *dict, guint percent, guint64 max_size,
                      const QpCacheSplit *split, gboolean raised)
{
  g_variant_dict_insert(dict, "percent", "u", percent);
  g_variant_dict_insert(dict, "max-size", "t", max_size);
  g_variant_dict_insert(dict, "l2-cache-size", "t", split->l2_cache_size);
  g_variant_dict_insert(dict, "refcount-cache-size", "t", split->refcount_cache_size);
  g_variant_dict_insert(dict, "l2-coverage", "d", split->l2_coverage);
  g_variant_dict_insert(dict, "raised-to-minimum", "b", raised);
}

GVariant *
qp_figures_from_plan_item(const QpPlanItem *item, gboolean written)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT(NULL);
  QpCacheGeometry geo = { 0 };

  g_variant_dict_insert(&dict, "dev", "s", item->dev != NULL ? item->dev : "");
  g_variant_dict_insert(&dict, "depth", "u", item->depth);
  if (item->path != NULL)
    g_variant_dict_insert(&dict, "path", "s", item->path);
  if (item->format != NULL)
    g_variant_dict_insert(&dict, "format", "s", item->format);
  g_variant_dict_insert(&dict, "action", "s", qp_figures_action_name(item->action));
  if (written)
    g_variant_dict_insert(&dict, "written", "b", written);
  if (item->reason != NULL)
    g_variant_dict_insert(&dict, "reason", "s", item->reason);
  g_variant_dict_insert(&dict, "current-max-size", "t", item->current_max_size);
  if (item->header != NULL) {
    qp_figures_add_header(&dict, item->header, &geo);
    if (item->action != QP_PLAN_SKIP)
      qp_figures_add_policy(&dict, item->percent, item->max_size, &item->policy,
                            item->raised_to_minimum);
  }
  return g_variant_dict_end(&dict);
}

GVariant *
qp_figures_from_layer(const QpQcow2Layer *layer, guint depth, guint percent, guint64 max)
{
  g_auto(GVariantDict) dict = G_VARIANT_DICT_INIT(NULL);
  QpCacheGeometry geo = { 0 };

  g_variant_dict_insert(&dict, "depth", "u", depth);
  g_variant_dict_insert(&dict, "path", "s", layer->path);
  g_variant_dict_insert(&dict, "format", "s", layer->format != NULL ? layer->format : "");
  if (layer->header == NULL) {
    g_variant_dict_insert(&dict, "action", "s", "skip");
    g_variant_dict_insert(&dict, "reason", "s", "not qcow2");
    return g_variant_dict_end(&dict);
  }
  qp_figures_add_header(&dict, layer->header, &geo);
  if (layer->header->backing_file != NULL)
    g_variant_dict_insert(&dict, "backing-file", "s", layer->header->backing_file);
  if (percent > 0) {
    QpCacheSplit split = { 0 };
    gboolean raised = FALSE;
    guint64 size = qp_cache_policy(&geo, percent, max, &raised, &split);
    qp_figures_add_policy(&dict, percent, size, &split, raised);
  }
  return g_variant_dict_end(&dict);
}
