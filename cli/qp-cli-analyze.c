/* qcow2-policyctl analyze and recommend: image files and layouts, no daemon. */
#include "config.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "qp-cache.h"
#include "qp-cli-format.h"
#include "qp-cli.h"
#include "qp-qcow2-file.h"
#include "qp-qcow2.h"
#include "qp-size.h"

/* QEMU's Linux default L2 cache, the budget recommend assumes unless told otherwise. */
#define QP_RECOMMEND_DEFAULT_BUDGET QP_CACHE_QEMU_DEFAULT_L2_MAX
/* A guest page / filesystem block: the write size allocation granularity is compared to
 * unless --io-size says otherwise. */
#define QP_RECOMMEND_DEFAULT_IO_SIZE 4096
/* QEMU refuses an image whose L1 table exceeds QCOW_MAX_L1_SIZE (32 MiB): a layout that
 * needs more cannot hold the disk. */
#define QP_RECOMMEND_MAX_L1_BYTES (32ULL * 1024 * 1024)
/* Cluster sizes recommend compares: 64 KiB (QEMU's default) up to QEMU's 2 MiB maximum;
 * smaller clusters only multiply metadata for a disk image. */
#define QP_RECOMMEND_MIN_CLUSTER_BITS 16

typedef struct {
  gboolean json;
  gboolean chain;
  gboolean allocation;
  gboolean have_percent;
  guint percent;
  guint64 max; /* 0: no cap */
} QpAnalyzeOptions;

/* The cache figures of one qcow2 image. */
typedef struct {
  guint64 l2_full;
  QpCacheSplit qemu;
  guint64 policy_cache_size;
  QpCacheSplit policy;
} QpAnalyzeFigures;

typedef struct {
  char *filename;
  char *format;
  QpQcow2Header *header; /* NULL for a layer that is not qcow2 */
  QpAnalyzeFigures figures;
  gboolean have_allocation;
  QpQcow2Allocation allocation;
  GPtrArray *backing; /* of QpImageReport: the backing layers, with --chain */
} QpImageReport;

static void
qp_image_report_free(QpImageReport *report)
{
  if (report == NULL)
    return;
  g_free(report->filename);
  g_free(report->format);
  qp_qcow2_header_free(report->header);
  if (report->backing != NULL)
    g_ptr_array_unref(report->backing);
  g_free(report);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpImageReport, qp_image_report_free)

static void
geometry_from_header(const QpQcow2Header *header, QpCacheGeometry *geo)
{
  geo->virtual_size = header->virtual_size;
  geo->cluster_bits = header->cluster_bits;
  geo->extended_l2 = header->extended_l2;
}

static void
compute_figures(const QpAnalyzeOptions *opts, const char *filename, const QpQcow2Header *header,
                QpAnalyzeFigures *fig)
{
  QpCacheGeometry geo = { 0 };
  gboolean raised = FALSE;

  geometry_from_header(header, &geo);
  fig->l2_full = qp_cache_l2_full(&geo);
  qp_cache_qemu_default(&geo, &fig->qemu);
  if (!opts->have_percent)
    return;
  fig->policy_cache_size = qp_cache_policy(&geo, opts->percent, opts->max, &raised, &fig->policy);
  if (raised) {
    g_autofree char *max = qp_size_format(opts->max);
    g_autofree char *minimum = qp_size_format(fig->policy_cache_size);
    g_printerr(_("qcow2-policyctl: warning: %s: --max %s is below QEMU's minimum cache for "
                 "this image; using %s\n"),
               filename, max, minimum);
  }
}

/* Errors from the engine name the file already; make sure every message does. */
static void
prefix_with_path(GError **error, const char *path)
{
  if (error != NULL && *error != NULL && !g_str_has_prefix((*error)->message, path))
    g_prefix_error(error, "%s: ", path);
}

static QpImageReport *
report_new_qcow2(const QpAnalyzeOptions *opts, const char *filename, QpQcow2Header *header,
                 QpCliProgress *progress, GError **error)
{
  g_autoptr(QpImageReport) report = g_new0(QpImageReport, 1);

  report->filename = g_strdup(filename);
  report->format = g_strdup("qcow2");
  report->header = header;
  compute_figures(opts, filename, header, &report->figures);
  if (opts->allocation) {
    qp_cli_progress_update(progress, _("Scanning the allocation of %s…"), filename);
    if (!qp_qcow2_file_scan_allocation(filename, header, &report->allocation, error)) {
      prefix_with_path(error, filename);
      return NULL;
    }
    report->have_allocation = TRUE;
  }
  return g_steal_pointer(&report);
}

static QpImageReport *
analyze_image(const QpAnalyzeOptions *opts, const char *path, QpCliProgress *progress,
              GError **error)
{
  g_autoptr(QpImageReport) report = NULL;
  g_autoptr(GPtrArray) layers = NULL;
  QpQcow2Layer *top;

  if (!opts->chain) {
    QpQcow2Header *header = qp_qcow2_file_read_header(path, error);
    if (header == NULL) {
      prefix_with_path(error, path);
      return NULL;
    }
    return report_new_qcow2(opts, path, header, progress, error);
  }

  layers = qp_qcow2_chain_resolve(path, "qcow2", error);
  if (layers == NULL) {
    prefix_with_path(error, path);
    return NULL;
  }
  if (layers->len == 0 || ((QpQcow2Layer *)g_ptr_array_index(layers, 0))->header == NULL) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_CHAIN,
                _("%s: the backing chain has no qcow2 top image"), path);
    return NULL;
  }
  top = g_ptr_array_index(layers, 0);
  report = report_new_qcow2(opts, path, g_steal_pointer(&top->header), progress, error);
  if (report == NULL)
    return NULL;
  report->backing = g_ptr_array_new_with_free_func((GDestroyNotify)qp_image_report_free);
  for (guint i = 1; i < layers->len; i++) {
    QpQcow2Layer *layer = g_ptr_array_index(layers, i);
    QpImageReport *sub;

    if (layer->header != NULL) {
      sub = report_new_qcow2(opts, layer->path, g_steal_pointer(&layer->header), progress, error);
      if (sub == NULL) {
        g_prefix_error(error, _("%s: backing chain: "), path);
        return NULL;
      }
    } else {
      sub = g_new0(QpImageReport, 1);
      sub->filename = g_strdup(layer->path);
      sub->format = g_strdup(layer->format);
    }
    g_ptr_array_add(report->backing, sub);
  }
  return g_steal_pointer(&report);
}

static void
json_add_split(JsonBuilder *b, const QpCacheSplit *split)
{
  qp_cli_json_add_uint(b, "l2-cache-size", split->l2_cache_size);
  qp_cli_json_add_uint(b, "refcount-cache-size", split->refcount_cache_size);
}

static void
json_add_report(JsonBuilder *b, const QpAnalyzeOptions *opts, const QpImageReport *report)
{
  const QpQcow2Header *h = report->header;
  const QpAnalyzeFigures *fig = &report->figures;

  /* JSON strings are UTF-8; a file name need not be. */
  g_autofree char *filename = g_utf8_make_valid(report->filename, -1);

  json_builder_begin_object(b);
  qp_cli_json_add_string_or_null(b, "filename", filename);
  qp_cli_json_add_string_or_null(b, "format", report->format);
  if (h == NULL) {
    json_builder_end_object(b);
    return;
  }
  qp_cli_json_add_uint(b, "format-version", h->version);
  qp_cli_json_add_uint(b, "virtual-size", h->virtual_size);
  qp_cli_json_add_uint(b, "cluster-size", h->cluster_size);
  qp_cli_json_add_boolean(b, "extended-l2", h->extended_l2);
  qp_cli_json_add_uint(b, "subcluster-size", h->subcluster_size);
  qp_cli_json_add_uint(b, "l2-entry-size", h->l2_entry_size);
  qp_cli_json_add_uint(b, "l1-size", h->l1_size);
  qp_cli_json_add_uint(b, "refcount-bits", h->refcount_bits);
  qp_cli_json_add_string_or_null(b, "compression-type",
                                 qp_qcow2_compression_name(h->compression_type));
  qp_cli_json_add_boolean(b, "lazy-refcounts", h->lazy_refcounts);
  qp_cli_json_add_boolean(b, "dirty", h->dirty);
  qp_cli_json_add_boolean(b, "corrupt", h->corrupt);
  qp_cli_json_add_uint(b, "snapshots", h->nb_snapshots);
  qp_cli_json_add_string_or_null(b, "backing-file", h->backing_file);
  qp_cli_json_add_string_or_null(b, "backing-format", h->backing_format);
  qp_cli_json_add_string_or_null(b, "data-file", h->data_file);
  qp_cli_json_add_uint(b, "l2-full-size", fig->l2_full);

  json_builder_set_member_name(b, "qemu-default");
  json_builder_begin_object(b);
  json_add_split(b, &fig->qemu);
  json_builder_set_member_name(b, "l2-coverage");
  json_builder_add_double_value(b, fig->qemu.l2_coverage);
  json_builder_end_object(b);

  if (opts->have_percent) {
    json_builder_set_member_name(b, "policy");
    json_builder_begin_object(b);
    qp_cli_json_add_uint(b, "percent", opts->percent);
    json_add_split(b, &fig->policy);
    qp_cli_json_add_uint(b, "cache-size", fig->policy_cache_size);
    json_builder_set_member_name(b, "l2-coverage");
    json_builder_add_double_value(b, fig->policy.l2_coverage);
    json_builder_end_object(b);
  }
  if (report->have_allocation) {
    json_builder_set_member_name(b, "allocation");
    json_builder_begin_object(b);
    qp_cli_json_add_uint(b, "l2-tables", report->allocation.l2_tables);
    qp_cli_json_add_uint(b, "data-clusters", report->allocation.data_clusters);
    json_builder_end_object(b);
  }
  if (report->backing != NULL) {
    json_builder_set_member_name(b, "backing-chain");
    json_builder_begin_array(b);
    for (guint i = 0; i < report->backing->len; i++)
      json_add_report(b, opts, g_ptr_array_index(report->backing, i));
    json_builder_end_array(b);
  }
  json_builder_end_object(b);
}

static const char *
yes_no(gboolean value)
{
  return value ? _("yes") : _("no");
}

/* "32 MiB (33554432 bytes), covers 25 % of the disk (256 GiB)" */
static char *
format_cache(guint64 l2_cache_size, double coverage, guint64 virtual_size)
{
  g_autofree char *size = qp_cli_format_size_bytes(l2_cache_size);
  g_autofree char *share = qp_cli_format_share(coverage);
  g_autofree char *covered = qp_size_format((guint64)floor(coverage * (double)virtual_size));

  /* TRANSLATORS: an L2 cache size, the share of the disk it maps, and that share as a size */
  return g_strdup_printf(_("%s, covers %s of the disk (%s)"), size, share, covered);
}

static const char *
crypt_name(guint32 crypt_method)
{
  switch (crypt_method) {
  case 0:
    return _("none");
  case 1:
    return "AES";
  case 2:
    return "LUKS";
  default:
    return _("unknown");
  }
}

static void
print_report(const QpAnalyzeOptions *opts, const QpImageReport *report, guint indent)
{
  g_autoptr(QpCliTable) t = qp_cli_table_new(2);
  const QpQcow2Header *h = report->header;
  const QpAnalyzeFigures *fig = &report->figures;
  g_autoptr(GString) flags = g_string_new(NULL);

  qp_cli_table_set_indent(t, indent + 2);
  printf("%*s%s\n", (int)indent, "", report->filename);
  if (h == NULL) {
    qp_cli_table_add_field(t, _("Format"), g_strdup(report->format));
    qp_cli_table_print(t, stdout);
    return;
  }
  qp_cli_table_add_field(t, _("Format"),
                         g_strdup_printf(_("qcow2 version %u (compat %s)"), h->version,
                                         h->version >= 3 ? "1.1" : "0.10"));
  qp_cli_table_add_field(t, _("Virtual size"), qp_cli_format_size_bytes(h->virtual_size));
  qp_cli_table_add_field(t, _("Cluster size"), qp_cli_format_size_bytes(h->cluster_size));
  if (h->extended_l2) {
    g_autofree char *sub = qp_size_format(h->subcluster_size);
    qp_cli_table_add_field(t, _("Extended L2"),
                           g_strdup_printf(_("yes (32 subclusters of %s)"), sub));
  } else {
    qp_cli_table_add_field(t, _("Extended L2"), g_strdup(_("no")));
  }
  qp_cli_table_add_field(t, _("Allocation granularity"),
                         qp_cli_format_size_bytes(h->subcluster_size));
  qp_cli_table_add_field(t, _("L2 entry size"), g_strdup_printf(_("%u bytes"), h->l2_entry_size));
  qp_cli_table_add_field(t, _("L1 size"), g_strdup_printf(_("%u entries"), h->l1_size));
  qp_cli_table_add_field(t, _("Refcount bits"), g_strdup_printf("%u", h->refcount_bits));
  qp_cli_table_add_field(t, _("Compression type"),
                         g_strdup(qp_qcow2_compression_name(h->compression_type)));
  qp_cli_table_add_field(t, _("Lazy refcounts"), g_strdup(yes_no(h->lazy_refcounts)));
  qp_cli_table_add_field(t, _("Encryption"), g_strdup(crypt_name(h->crypt_method)));
  if (h->data_file != NULL)
    qp_cli_table_add_field(t, _("External data file"),
                           h->data_file_raw ? g_strdup_printf(_("%s (raw)"), h->data_file)
                                            : g_strdup(h->data_file));
  if (h->dirty)
    g_string_append(flags, _("dirty"));
  if (h->corrupt) {
    if (flags->len > 0)
      g_string_append(flags, ", ");
    g_string_append(flags, _("corrupt"));
  }
  qp_cli_table_add_field(t, _("Flags"), g_strdup(flags->len > 0 ? flags->str : _("none")));
  qp_cli_table_add_field(t, _("Snapshots"), g_strdup_printf("%u", h->nb_snapshots));
  if (h->nb_bitmaps > 0)
    qp_cli_table_add_field(t, _("Bitmaps"), g_strdup_printf("%u", h->nb_bitmaps));
  if (h->backing_file != NULL)
    qp_cli_table_add_field(
        t, _("Backing file"),
        g_strdup_printf(_("%s (format %s)"), h->backing_file,
                        h->backing_format != NULL ? h->backing_format : _("not recorded")));
  else
    qp_cli_table_add_field(t, _("Backing file"), g_strdup(_("none")));

  qp_cli_table_add_field(t, _("L2 full size"), qp_cli_format_size_bytes(fig->l2_full));
  qp_cli_table_add_field(
      t, _("QEMU default L2 cache"),
      format_cache(fig->qemu.l2_cache_size, fig->qemu.l2_coverage, h->virtual_size));
  qp_cli_table_add_field(t, _("QEMU default refcount cache"),
                         qp_cli_format_size_bytes(fig->qemu.refcount_cache_size));
  if (opts->have_percent) {
    g_autofree char *key = g_strdup_printf(_("Policy cache-size (%u %%)"), opts->percent);
    qp_cli_table_add_field(t, key, qp_cli_format_size_bytes(fig->policy_cache_size));
    qp_cli_table_add_field(
        t, _("Policy L2 cache"),
        format_cache(fig->policy.l2_cache_size, fig->policy.l2_coverage, h->virtual_size));
    qp_cli_table_add_field(t, _("Policy refcount cache"),
                           qp_cli_format_size_bytes(fig->policy.refcount_cache_size));
  }
  if (report->have_allocation) {
    qp_cli_table_add_field(t, _("Allocated L2 tables"),
                           g_strdup_printf("%" G_GUINT64_FORMAT, report->allocation.l2_tables));
    qp_cli_table_add_field(t, _("Allocated data clusters"),
                           g_strdup_printf("%" G_GUINT64_FORMAT, report->allocation.data_clusters));
  }
  qp_cli_table_print(t, stdout);
  if (report->backing != NULL) {
    printf("%*s%s\n", (int)indent + 2, "",
           report->backing->len > 0 ? _("Backing chain:") : _("Backing chain: none"));
    for (guint i = 0; i < report->backing->len; i++)
      print_report(opts, g_ptr_array_index(report->backing, i), indent + 4);
  }
}

int
qp_cli_analyze(int argc, char **argv)
{
  QpAnalyzeOptions opts = { 0 };
  g_autofree char *percent = NULL;
  g_autofree char *max = NULL;
  g_autofree char *format = NULL;
  g_auto(GStrv) images = NULL;
  const GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &opts.json, N_("Print one JSON array"), NULL },
    { "percent", 0, 0, G_OPTION_ARG_STRING, &percent,
      N_("Show the cache a policy of N percent writes"), N_("N") },
    { "max", 0, 0, G_OPTION_ARG_STRING, &max, N_("Cap the policy's cache-size (with --percent)"),
      N_("SIZE") },
    { "chain", 0, 0, G_OPTION_ARG_NONE, &opts.chain, N_("Also analyze the backing chain"), NULL },
    { "allocation", 0, 0, G_OPTION_ARG_NONE, &opts.allocation,
      N_("Count allocated L2 tables and data clusters"), NULL },
    { "format", 0, 0, G_OPTION_ARG_STRING, &format,
      N_("Declared format of the images (default qcow2; never probed)"), N_("FMT") },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &images, NULL, NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new(_("IMAGE…"));
  g_autoptr(JsonBuilder) builder = json_builder_new();
  g_autoptr(QpCliProgress) progress = qp_cli_progress_new();
  g_autoptr(GError) error = NULL;
  guint n_images;
  int status = QP_CLI_EXIT_OK;

  g_set_prgname("qcow2-policyctl analyze");
  g_option_context_set_summary(context, _("Show qcow2 geometry, QEMU's default cache and what a "
                                          "percent policy writes, for image files."));
  g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
  if (!qp_cli_parse_options(context, &argc, &argv))
    return QP_CLI_EXIT_USAGE;
  if (percent != NULL) {
    if (!qp_cli_parse_percent("--percent", percent, &opts.percent, &error)) {
      qp_cli_usage_error("analyze", "%s", error->message);
      return QP_CLI_EXIT_USAGE;
    }
    opts.have_percent = TRUE;
  }
  if (max != NULL) {
    if (!qp_cli_parse_size("--max", max, &opts.max, &error)) {
      qp_cli_usage_error("analyze", "%s", error->message);
      return QP_CLI_EXIT_USAGE;
    }
    if (!opts.have_percent) {
      qp_cli_usage_error("analyze", "%s", _("--max needs --percent"));
      return QP_CLI_EXIT_USAGE;
    }
    if (opts.max == 0) {
      qp_cli_usage_error("analyze", "%s", _("--max: must be larger than 0"));
      return QP_CLI_EXIT_USAGE;
    }
  }
  n_images = images != NULL ? g_strv_length(images) : 0;
  if (n_images == 0) {
    qp_cli_usage_error("analyze", "%s", _("no image given"));
    return QP_CLI_EXIT_USAGE;
  }

  json_builder_begin_array(builder);
  for (guint i = 0; i < n_images; i++) {
    g_autoptr(QpImageReport) report = NULL;
    g_autoptr(GError) error_local = NULL;

    if (n_images > 1 || opts.allocation)
      qp_cli_progress_update(progress, _("[%u/%u] Analyzing %s…"), i + 1, n_images, images[i]);
    if (format != NULL && !g_str_equal(format, "qcow2")) {
      g_set_error(&error_local, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_QCOW2,
                  _("%s: not a qcow2 image (declared format “%s”); only qcow2 images are "
                    "analyzed"),
                  images[i], format);
    } else {
      report = analyze_image(&opts, images[i], progress, &error_local);
    }
    qp_cli_progress_clear(progress);
    if (report == NULL) {
      qp_cli_print_error(NULL, error_local);
      status = QP_CLI_EXIT_FAILURE;
      continue;
    }
    if (opts.json) {
      json_add_report(builder, &opts, report);
    } else {
      if (i > 0)
        printf("\n");
      print_report(&opts, report, 0);
      fflush(stdout);
    }
  }
  json_builder_end_array(builder);
  if (opts.json) {
    g_autoptr(JsonNode) root = json_builder_get_root(builder);
    qp_cli_json_print(root);
  }
  return status;
}

/* recommend */

typedef struct {
  guint32 cluster_bits;
  gboolean extended_l2;
  guint64 cluster_size;
  guint64 granularity; /* subcluster size: the unit one guest write allocates */
  guint64 entry_size;  /* L2 entry bytes */
  gboolean possible;   /* the L1 table for this disk stays within QEMU's limit */
  guint64 l2_full;
  guint64 full_cache;   /* cache-size that holds L2FULL: L2FULL + 4C */
  guint64 budget_reach; /* guest bytes the budget maps, whatever the disk size */
  double coverage;      /* share of this disk the budget maps */
} QpLayout;

static void
layout_compute(QpLayout *l, guint32 cluster_bits, gboolean extended_l2, guint64 disk,
               guint64 budget)
{
  QpCacheGeometry geo
      = { .virtual_size = disk, .cluster_bits = cluster_bits, .extended_l2 = extended_l2 };
  QpCacheSplit split = { 0 };
  guint64 entries_per_table;
  guint64 clusters;
  guint64 tables;
  guint64 refcount = (guint64)QP_CACHE_MIN_REFCOUNT_ENTRIES << cluster_bits;
  guint64 mapped_entries;

  l->cluster_bits = cluster_bits;
  l->extended_l2 = extended_l2;
  l->cluster_size = 1ULL << cluster_bits;
  l->granularity = extended_l2 ? l->cluster_size / 32 : l->cluster_size;
  l->entry_size = extended_l2 ? 16 : 8;
  entries_per_table = l->cluster_size / l->entry_size;
  /* ceil(ceil(disk / C) / entries_per_table), without a product that could overflow */
  clusters = (disk >> cluster_bits) + ((disk & (l->cluster_size - 1)) != 0 ? 1 : 0);
  tables = clusters / entries_per_table + (clusters % entries_per_table != 0 ? 1 : 0);
  l->possible = tables <= QP_RECOMMEND_MAX_L1_BYTES / 8;
  l->l2_full = qp_cache_l2_full(&geo);
  l->full_cache = l->l2_full + refcount;
  /* The budget as an L2 cache next to the default 4-cluster refcount cache. */
  qp_cache_split_combined(&geo, budget > G_MAXUINT64 - refcount ? G_MAXUINT64 : budget + refcount,
                          &split);
  l->coverage = split.l2_coverage;
  mapped_entries = budget / l->entry_size;
  l->budget_reach = mapped_entries > (G_MAXUINT64 >> cluster_bits) ? G_MAXUINT64
                                                                   : mapped_entries << cluster_bits;
}

/* Index of the recommended layout; see the rule text printed with it. */
static guint
layout_choose(const QpLayout *layouts, guint n, guint64 budget, guint64 io_size)
{
  guint64 coarsest = 0;
  gint best_fit = -1;
  gint best_cover = -1;

  /* An I/O size no layout reaches asks for the coarsest granularity there is. */
  for (guint i = 0; i < n; i++) {
    if (layouts[i].possible)
      coarsest = MAX(coarsest, layouts[i].granularity);
  }
  io_size = MIN(io_size, coarsest);
  for (guint i = 0; i < n; i++) {
    const QpLayout *l = &layouts[i];
    if (!l->possible || l->granularity < io_size)
      continue;
    /* Layouts come in increasing cluster size, so strict comparisons keep ties on the
     * smaller cluster. */
    if (l->l2_full <= budget && (best_fit < 0 || l->granularity < layouts[best_fit].granularity))
      best_fit = (gint)i;
    if (best_cover < 0 || l->coverage > layouts[best_cover].coverage
        || (l->coverage == layouts[best_cover].coverage
            && l->granularity < layouts[best_cover].granularity))
      best_cover = (gint)i;
  }
  if (best_fit >= 0)
    return (guint)best_fit;
  return best_cover >= 0 ? (guint)best_cover : 0;
}

/* A size as qemu-img reads it: the largest suffix that is exact (1T, 100G, 65536). */
static char *
qemu_img_size(guint64 bytes)
{
  const char suffixes[] = { 'E', 'P', 'T', 'G', 'M', 'K' };

  for (gsize i = 0; i < G_N_ELEMENTS(suffixes); i++) {
    guint shift = 10 * (guint)(G_N_ELEMENTS(suffixes) - i);
    if (bytes != 0 && (bytes & ((1ULL << shift) - 1)) == 0)
      return g_strdup_printf("%" G_GUINT64_FORMAT "%c", bytes >> shift, suffixes[i]);
  }
  return g_strdup_printf("%" G_GUINT64_FORMAT, bytes);
}

static char *
qemu_img_command(const QpLayout *l, guint64 disk)
{
  g_autofree char *cluster = qemu_img_size(l->cluster_size);
  g_autofree char *size = qemu_img_size(disk);

  return g_strdup_printf("qemu-img create -f qcow2 -o cluster_size=%s,extended_l2=%s IMG %s",
                         cluster, l->extended_l2 ? "on" : "off", size);
}

static char *
recommend_rule(guint64 budget, guint64 io_size)
{
  g_autofree char *b = qp_size_format(budget);
  g_autofree char *io = qp_size_format(io_size);

  return g_strdup_printf(
      _("Among the layouts whose allocation granularity is at least the I/O size (%s), the one "
        "with the smallest granularity whose L2 full size fits the %s cache budget (the whole "
        "disk stays mapped); if none fits, the one whose budget maps the largest share of the "
        "disk. Ties go to the smaller cluster size. An I/O size larger than every granularity "
        "counts as the largest one."),
      io, b);
}

static void
json_add_layout(JsonBuilder *b, const QpLayout *l, guint64 disk)
{
  json_builder_begin_object(b);
  qp_cli_json_add_uint(b, "cluster-size", l->cluster_size);
  qp_cli_json_add_boolean(b, "extended-l2", l->extended_l2);
  qp_cli_json_add_uint(b, "subcluster-size", l->granularity);
  qp_cli_json_add_uint(b, "l2-entry-size", l->entry_size);
  qp_cli_json_add_boolean(b, "possible", l->possible);
  qp_cli_json_add_uint(b, "l2-full-size", l->l2_full);
  qp_cli_json_add_uint(b, "full-cache-size", l->full_cache);
  qp_cli_json_add_uint(b, "budget-reach", l->budget_reach);
  json_builder_set_member_name(b, "l2-coverage");
  json_builder_add_double_value(b, l->coverage);
  qp_cli_json_add_uint(b, "covered-size", (guint64)floor(l->coverage * (double)disk));
  json_builder_end_object(b);
}

static char *
format_reach(guint64 reach)
{
  if (reach == G_MAXUINT64)
    return g_strdup(_("everything"));
  return qp_size_format(reach);
}

static void
print_recommendation(const QpLayout *layouts, guint n, guint chosen, guint64 disk, guint64 budget,
                     guint64 io_size)
{
  g_autoptr(QpCliTable) t = qp_cli_table_new(7);
  g_autofree char *disk_text = qp_cli_format_size_bytes(disk);
  g_autofree char *budget_text = qp_cli_format_size_bytes(budget);
  g_autofree char *rule = recommend_rule(budget, io_size);
  g_autofree char *command = qemu_img_command(&layouts[chosen], disk);
  g_autofree char *full = qp_cli_format_size_bytes(layouts[chosen].full_cache);
  g_autofree char *chosen_cluster = qp_size_format(layouts[chosen].cluster_size);
  g_autofree char *chosen_gran = qp_size_format(layouts[chosen].granularity);
  const QpLayout *plain64 = NULL;
  const QpLayout *ext64 = NULL;

  printf(_("Disk size: %s\n"), disk_text);
  printf(_("L2 cache budget: %s\n\n"), budget_text);
  qp_cli_table_set_header(t, "", _("Cluster"), _("Extended L2"), _("Granularity"),
                          _("L2 full size"), _("Budget maps"), _("Disk mapped"), NULL);
  for (guint i = 1; i < 7; i++)
    qp_cli_table_set_align_right(t, i, i != 2);
  for (guint i = 0; i < n; i++) {
    const QpLayout *l = &layouts[i];
    g_autofree char *cluster = qp_size_format(l->cluster_size);
    g_autofree char *gran = qp_size_format(l->granularity);
    g_autofree char *l2full = qp_size_format(l->l2_full);
    g_autofree char *reach = format_reach(l->budget_reach);
    g_autofree char *share
        = l->possible ? qp_cli_format_share(l->coverage) : g_strdup(_("disk too large"));

    if (l->cluster_bits == QP_RECOMMEND_MIN_CLUSTER_BITS)
      *(l->extended_l2 ? &ext64 : &plain64) = l;
    qp_cli_table_add_row(t, i == chosen ? "*" : "", cluster, yes_no(l->extended_l2), gran, l2full,
                         reach, share, NULL);
  }
  qp_cli_table_print(t, stdout);
  if (plain64 != NULL && ext64 != NULL) {
    g_autofree char *a = format_reach(plain64->budget_reach);
    g_autofree char *b = format_reach(ext64->budget_reach);
    g_autofree char *bb = qp_size_format(budget);
    printf("\n");
    printf(_("Extended L2 entries take 16 bytes instead of 8, so the same cache maps half as "
             "much: with 64 KiB clusters %s of L2 cache maps %s without extended L2 and %s "
             "with it.\n"),
           bb, a, b);
  }
  printf("\n%s\n", rule);
  printf(_("Recommended: %s clusters, extended L2 %s (granularity %s).\n"), chosen_cluster,
         yes_no(layouts[chosen].extended_l2), chosen_gran);
  printf("  %s\n", command);
  printf(_("A cache that maps the whole disk with this layout: cache-size %s "
           "(libvirt <metadata_cache><max_size>).\n"),
         full);
}

int
qp_cli_recommend(int argc, char **argv)
{
  gboolean json = FALSE;
  g_autofree char *size = NULL;
  g_autofree char *cache = NULL;
  g_autofree char *io = NULL;
  g_auto(GStrv) rest = NULL;
  const GOptionEntry entries[] = {
    { "size", 0, 0, G_OPTION_ARG_STRING, &size, N_("Virtual size of the disk (required)"),
      N_("SIZE") },
    { "cache", 0, 0, G_OPTION_ARG_STRING, &cache,
      N_("L2 cache budget per image (default 32 MiB, QEMU's default)"), N_("SIZE") },
    { "io-size", 0, 0, G_OPTION_ARG_STRING, &io,
      N_("Typical guest write size the granularity should reach (default 4 KiB)"), N_("SIZE") },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, N_("Print JSON"), NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &rest, NULL, NULL },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new(NULL);
  g_autoptr(GError) error = NULL;
  guint64 disk = 0;
  guint64 budget = QP_RECOMMEND_DEFAULT_BUDGET;
  guint64 io_size = QP_RECOMMEND_DEFAULT_IO_SIZE;
  QpLayout layouts[2 * (QP_QCOW2_MAX_CLUSTER_BITS - QP_RECOMMEND_MIN_CLUSTER_BITS + 1)] = { 0 };
  guint n = 0;
  guint chosen;

  g_set_prgname("qcow2-policyctl recommend");
  g_option_context_set_summary(context, _("Compare qcow2 cluster layouts for a disk size: "
                                          "allocation granularity, L2 full size and what a "
                                          "cache budget maps."));
  g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
  if (!qp_cli_parse_options(context, &argc, &argv))
    return QP_CLI_EXIT_USAGE;
  if (rest != NULL && rest[0] != NULL) {
    qp_cli_usage_error("recommend", _("unexpected argument “%s”"), rest[0]);
    return QP_CLI_EXIT_USAGE;
  }
  if (size == NULL) {
    qp_cli_usage_error("recommend", "%s", _("--size is required"));
    return QP_CLI_EXIT_USAGE;
  }
  if (!qp_cli_parse_size("--size", size, &disk, &error)
      || (cache != NULL && !qp_cli_parse_size("--cache", cache, &budget, &error))
      || (io != NULL && !qp_cli_parse_size("--io-size", io, &io_size, &error))) {
    qp_cli_usage_error("recommend", "%s", error->message);
    return QP_CLI_EXIT_USAGE;
  }
  if (disk == 0 || budget == 0 || io_size == 0) {
    qp_cli_usage_error("recommend", "%s", _("--size, --cache and --io-size must be larger than 0"));
    return QP_CLI_EXIT_USAGE;
  }

  for (guint32 bits = QP_RECOMMEND_MIN_CLUSTER_BITS; bits <= QP_QCOW2_MAX_CLUSTER_BITS; bits++) {
    layout_compute(&layouts[n++], bits, FALSE, disk, budget);
    layout_compute(&layouts[n++], bits, TRUE, disk, budget);
  }
  chosen = layout_choose(layouts, n, budget, io_size);
  if (!layouts[chosen].possible) {
    g_autofree char *d = qp_size_format(disk);
    g_printerr(_("qcow2-policyctl recommend: no qcow2 layout holds a disk of %s\n"), d);
    return QP_CLI_EXIT_FAILURE;
  }

  if (json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    g_autofree char *rule = recommend_rule(budget, io_size);
    g_autofree char *command = qemu_img_command(&layouts[chosen], disk);

    json_builder_begin_object(b);
    qp_cli_json_add_uint(b, "disk-size", disk);
    qp_cli_json_add_uint(b, "cache-budget", budget);
    qp_cli_json_add_uint(b, "io-size", io_size);
    json_builder_set_member_name(b, "layouts");
    json_builder_begin_array(b);
    for (guint i = 0; i < n; i++)
      json_add_layout(b, &layouts[i], disk);
    json_builder_end_array(b);
    json_builder_set_member_name(b, "recommended");
    json_add_layout(b, &layouts[chosen], disk);
    qp_cli_json_add_string_or_null(b, "rule", rule);
    qp_cli_json_add_string_or_null(b, "qemu-img-command", command);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    qp_cli_json_print(root);
    return QP_CLI_EXIT_OK;
  }
  print_recommendation(layouts, n, chosen, disk, budget, io_size);
  return QP_CLI_EXIT_OK;
}
