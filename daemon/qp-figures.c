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

static void
qp_figures_add_header(GVariantBuilder *dict, const QpQcow2Header *header, QpCacheGeometry *geo)
{
  QpCacheSplit def = { 0 };

  geo->virtual_size = header->virtual_size;
  geo->cluster_bits = header->cluster_bits;
  geo->extended_l2 = header->extended_l2;
  qp_cache_qemu_default(geo, &def);
  g_variant_builder_add(dict, "{sv}", "virtual-size", g_variant_new("t", header->virtual_size));
  g_variant_builder_add(dict, "{sv}", "cluster-size", g_variant_new("t", header->cluster_size));
  g_variant_builder_add(dict, "{sv}", "extended-l2", g_variant_new("b", header->extended_l2));
  g_variant_builder_add(dict, "{sv}", "l2-entry-size", g_variant_new("u", header->l2_entry_size));
  g_variant_builder_add(dict, "{sv}", "l2-full-size", g_variant_new("t", qp_cache_l2_full(geo)));
  g_variant_builder_add(dict, "{sv}", "qemu-default-l2-cache-size",
                        g_variant_new("t", def.l2_cache_size));
  g_variant_builder_add(dict, "{sv}", "qemu-default-l2-coverage",
                        g_variant_new("d", def.l2_coverage));
}

static void
qp_figures_add_policy(GVariantBuilder *dict, guint percent, guint64 max_size,
                      const QpCacheSplit *split, gboolean raised)
{
  g_variant_builder_add(dict, "{sv}", "percent", g_variant_new("u", percent));
  g_variant_builder_add(dict, "{sv}", "max-size", g_variant_new("t", max_size));
  g_variant_builder_add(dict, "{sv}", "l2-cache-size", g_variant_new("t", split->l2_cache_size));
  g_variant_builder_add(dict, "{sv}", "refcount-cache-size",
                        g_variant_new("t", split->refcount_cache_size));
  g_variant_builder_add(dict, "{sv}", "l2-coverage", g_variant_new("d", split->l2_coverage));
  g_variant_builder_add(dict, "{sv}", "raised-to-minimum", g_variant_new("b", raised));
}

GVariant *
qp_figures_from_plan_item(const QpPlanItem *item, gboolean written)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
  QpCacheGeometry geo = { 0 };

  g_variant_builder_add(&dict, "{sv}", "dev",
                        qp_figures_string(item->dev != NULL ? item->dev : ""));
  g_variant_builder_add(&dict, "{sv}", "depth", g_variant_new("u", item->depth));
  if (item->path != NULL)
    g_variant_builder_add(&dict, "{sv}", "path", qp_figures_string(item->path));
  if (item->format != NULL)
    g_variant_builder_add(&dict, "{sv}", "format", qp_figures_string(item->format));
  g_variant_builder_add(&dict, "{sv}", "action",
                        g_variant_new("s", qp_figures_action_name(item->action)));
  if (written)
    g_variant_builder_add(&dict, "{sv}", "written", g_variant_new("b", written));
  if (item->reason != NULL)
    g_variant_builder_add(&dict, "{sv}", "reason", qp_figures_string(item->reason));
  g_variant_builder_add(&dict, "{sv}", "current-max-size",
                        g_variant_new("t", item->current_max_size));
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

  g_variant_builder_add(&dict, "{sv}", "depth", g_variant_new("u", depth));
  g_variant_builder_add(&dict, "{sv}", "path", qp_figures_string(layer->path));
  g_variant_builder_add(&dict, "{sv}", "format",
                        qp_figures_string(layer->format != NULL ? layer->format : ""));
  if (layer->header == NULL) {
    g_variant_builder_add(&dict, "{sv}", "action", g_variant_new("s", "skip"));
    g_variant_builder_add(&dict, "{sv}", "reason", g_variant_new("s", "not qcow2"));
    return g_variant_builder_end(&dict);
  }
  qp_figures_add_header(&dict, layer->header, &geo);
  if (layer->header->backing_file != NULL)
    g_variant_builder_add(&dict, "{sv}", "backing-file",
                          qp_figures_string(layer->header->backing_file));
  if (percent > 0) {
    QpCacheSplit split = { 0 };
    gboolean raised = FALSE;
    guint64 size = qp_cache_policy(&geo, percent, max, &raised, &split);
    qp_figures_add_policy(&dict, percent, size, &split, raised);
  }
  return g_variant_builder_end(&dict);
}
