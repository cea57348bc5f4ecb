/* Layer dictionaries for D-Bus. */
#include "config.h"

#include "qp-figures.h"

#include <string.h>

#include "qp-cache.h"

static const char *
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

/* One {sv} entry. Typed constructors, not g_variant_builder_add(…, "{sv}", …): the format
 * string parsing cost more than the values themselves (a daemon builds one dictionary per
 * layer per read of Disks, tens of thousands at start on a big host). */
static void
qp_figures_put(GVariantBuilder *dict, const char *key, GVariant *value)
{
  g_variant_builder_add_value(
      dict, g_variant_new_dict_entry(g_variant_new_string(key), g_variant_new_variant(value)));
}

/* Paths, formats and backing names come from XML and image headers: D-Bus strings must be
 * valid UTF-8, so invalid bytes become U+FFFD instead of a GVariant critical. */
static void
qp_figures_put_string(GVariantBuilder *dict, const char *key, const char *text)
{
  qp_figures_put(dict, key,
                 g_variant_new_take_string(g_utf8_make_valid(text != NULL ? text : "", -1)));
}

/* The header's figures, all derived from the geometry as lib/ derives them. */
static void
qp_figures_add_geometry(GVariantBuilder *dict, const QpCacheGeometry *geo)
{
  QpCacheSplit def = { 0 };

  qp_cache_qemu_default(geo, &def);
  qp_figures_put(dict, "virtual-size", g_variant_new_uint64(geo->virtual_size));
  qp_figures_put(dict, "cluster-size",
                 g_variant_new_uint64(G_GUINT64_CONSTANT(1) << geo->cluster_bits));
  qp_figures_put(dict, "extended-l2", g_variant_new_boolean(geo->extended_l2));
  qp_figures_put(dict, "l2-entry-size", g_variant_new_uint32(geo->extended_l2 ? 16 : 8));
  qp_figures_put(dict, "l2-full-size", g_variant_new_uint64(qp_cache_l2_full(geo)));
  qp_figures_put(dict, "qemu-default-l2-cache-size", g_variant_new_uint64(def.l2_cache_size));
  qp_figures_put(dict, "qemu-default-l2-coverage", g_variant_new_double(def.l2_coverage));
}

static void
qp_figures_geometry_of(const QpQcow2Header *header, QpCacheGeometry *geo)
{
  geo->virtual_size = header->virtual_size;
  geo->cluster_bits = header->cluster_bits;
  geo->extended_l2 = header->extended_l2;
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

/* ---------- Domain.Disks, kept compact ---------- */

#define QP_FIGURES_ABSENT G_MAXSIZE

enum {
  QP_LAYER_HEADER = 1 << 0, /* the image was read: geo is valid */
  QP_LAYER_WRITTEN = 1 << 1,
  QP_LAYER_RAISED = 1 << 2,
};

/* One plan item's facts; every other figure is derived from them when Disks is read. */
typedef struct {
  QpCacheGeometry geo;
  guint64 current_max_size;
  guint64 max_size;
  gsize dev, path, format, reason; /* offsets into the string pool, QP_FIGURES_ABSENT */
  guint32 depth;
  guint32 percent;
  guint8 action;
  guint8 flags;
} QpLayerFigures;

struct _QpDiskFigures {
  gsize size; /* of the whole block: records, then the string pool */
  gsize n_layers;
  QpLayerFigures layers[];
};

void
qp_disk_figures_builder_init(QpDiskFiguresBuilder *builder)
{
  builder->layers = g_array_new(FALSE, TRUE, sizeof(QpLayerFigures));
  builder->pool = g_string_new(NULL);
}

static gsize
qp_disk_figures_pool_add(GString *pool, const char *text)
{
  g_autofree char *valid = NULL;
  gsize offset = pool->len;

  if (text == NULL)
    return QP_FIGURES_ABSENT;
  valid = g_utf8_make_valid(text, -1);
  g_string_append_len(pool, valid, (gssize)strlen(valid) + 1);
  return offset;
}

void
qp_disk_figures_builder_add(QpDiskFiguresBuilder *builder, const QpPlanItem *item, gboolean written)
{
  QpLayerFigures layer;

  memset(&layer, 0, sizeof layer); /* padding too: qp_disk_figures_equal compares bytes */
  layer.dev = qp_disk_figures_pool_add(builder->pool, item->dev != NULL ? item->dev : "");
  layer.path = qp_disk_figures_pool_add(builder->pool, item->path);
  layer.format = qp_disk_figures_pool_add(builder->pool, item->format);
  layer.reason = qp_disk_figures_pool_add(builder->pool, item->reason);
  layer.depth = item->depth;
  layer.action = (guint8)item->action;
  layer.current_max_size = item->current_max_size;
  if (written)
    layer.flags |= QP_LAYER_WRITTEN;
  if (item->header != NULL) {
    layer.flags |= QP_LAYER_HEADER;
    qp_figures_geometry_of(item->header, &layer.geo);
    layer.percent = item->percent;
    layer.max_size = item->max_size;
    if (item->raised_to_minimum)
      layer.flags |= QP_LAYER_RAISED;
  }
  g_array_append_val(builder->layers, layer);
}

QpDiskFigures *
qp_disk_figures_builder_end(QpDiskFiguresBuilder *builder)
{
  gsize records = builder->layers->len * sizeof(QpLayerFigures);
  gsize size = sizeof(QpDiskFigures) + records + builder->pool->len;
  QpDiskFigures *figures = g_malloc0(size);

  figures->size = size;
  figures->n_layers = builder->layers->len;
  if (records > 0)
    memcpy(figures->layers, builder->layers->data, records);
  memcpy((char *)figures->layers + records, builder->pool->str, builder->pool->len);
  g_array_unref(g_steal_pointer(&builder->layers));
  g_string_free(g_steal_pointer(&builder->pool), TRUE);
  return figures;
}

void
qp_disk_figures_builder_clear(QpDiskFiguresBuilder *builder)
{
  g_clear_pointer(&builder->layers, g_array_unref);
  if (builder->pool != NULL)
    g_string_free(g_steal_pointer(&builder->pool), TRUE);
}

QpDiskFigures *
qp_disk_figures_copy(const QpDiskFigures *figures)
{
  return figures != NULL ? g_memdup2(figures, figures->size) : NULL;
}

void
qp_disk_figures_free(QpDiskFigures *figures)
{
  g_free(figures);
}

gboolean
qp_disk_figures_equal(const QpDiskFigures *a, const QpDiskFigures *b)
{
  gsize a_layers = a != NULL ? a->n_layers : 0;
  gsize b_layers = b != NULL ? b->n_layers : 0;

  if (a_layers == 0 || b_layers == 0)
    return a_layers == b_layers;
  return a->size == b->size && memcmp(a, b, a->size) == 0;
}

static void
qp_disk_figures_put_pooled(GVariantBuilder *dict, const char *key, const char *pool, gsize offset)
{
  /* pool strings were made valid UTF-8 when stored */
  if (offset != QP_FIGURES_ABSENT)
    qp_figures_put(dict, key, g_variant_new_string(pool + offset));
}

static GVariant *
qp_disk_figures_layer_to_variant(const QpLayerFigures *layer, const char *pool)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);

  qp_disk_figures_put_pooled(&dict, "dev", pool, layer->dev);
  qp_figures_put(&dict, "depth", g_variant_new_uint32(layer->depth));
  qp_disk_figures_put_pooled(&dict, "path", pool, layer->path);
  qp_disk_figures_put_pooled(&dict, "format", pool, layer->format);
  qp_figures_put(&dict, "action", g_variant_new_string(qp_figures_action_name(layer->action)));
  if (layer->flags & QP_LAYER_WRITTEN)
    qp_figures_put(&dict, "written", g_variant_new_boolean(TRUE));
  qp_disk_figures_put_pooled(&dict, "reason", pool, layer->reason);
  qp_figures_put(&dict, "current-max-size", g_variant_new_uint64(layer->current_max_size));
  if (layer->flags & QP_LAYER_HEADER) {
    qp_figures_add_geometry(&dict, &layer->geo);
    if (layer->action != QP_PLAN_SKIP) {
      QpCacheSplit split = { 0 };
      /* the plan's split: qp_cache_policy() splits the size it returns this way */
      qp_cache_split_combined(&layer->geo, layer->max_size, &split);
      qp_figures_add_policy(&dict, layer->percent, layer->max_size, &split,
                            (layer->flags & QP_LAYER_RAISED) != 0);
    }
  }
  return g_variant_builder_end(&dict);
}

GVariant *
qp_disk_figures_to_variant(const QpDiskFigures *figures)
{
  g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE("aa{sv}"));

  if (figures != NULL) {
    const char *pool = (const char *)&figures->layers[figures->n_layers];
    for (gsize i = 0; i < figures->n_layers; i++)
      g_variant_builder_add_value(&builder,
                                  qp_disk_figures_layer_to_variant(&figures->layers[i], pool));
  }
  return g_variant_builder_end(&builder);
}

/* ---------- Manager.AnalyzeImage ---------- */

GVariant *
qp_figures_from_layer(const QpQcow2Layer *layer, guint depth, guint percent, guint64 max)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
  QpCacheGeometry geo = { 0 };

  qp_figures_put(&dict, "depth", g_variant_new_uint32(depth));
  qp_figures_put_string(&dict, "path", layer->path);
  qp_figures_put_string(&dict, "format", layer->format);
  if (layer->header == NULL) {
    qp_figures_put(&dict, "action", g_variant_new_string("skip"));
    qp_figures_put(&dict, "reason", g_variant_new_string("not qcow2"));
    return g_variant_builder_end(&dict);
  }
  qp_figures_geometry_of(layer->header, &geo);
  qp_figures_add_geometry(&dict, &geo);
  if (layer->header->backing_file != NULL)
    qp_figures_put_string(&dict, "backing-file", layer->header->backing_file);
  if (percent > 0) {
    QpCacheSplit split = { 0 };
    gboolean raised = FALSE;
    guint64 size = qp_cache_policy(&geo, percent, max, &raised, &split);
    qp_figures_add_policy(&dict, percent, size, &split, raised);
  }
  return g_variant_builder_end(&dict);
}
