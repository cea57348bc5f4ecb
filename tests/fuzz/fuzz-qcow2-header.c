/* Fuzz target: the whole untrusted-input path of lib/ on one buffer — header fields in
 * QEMU's order, the header extension walk (both the full walk and the names-only walk
 * used for unknown-feature messages), the allocation scan and the cache arithmetic. */
#include "config.h"

#include <string.h>

#include "fuzz-targets.h"
#include "qp-cache.h"
#include "qp-qcow2.h"

/* What every header the parser accepts must satisfy, whatever the bytes were. */
static void
check_header(const QpQcow2Header *h)
{
  g_assert(h->version == 2 || h->version == 3);
  g_assert_cmpuint(h->cluster_bits, >=, QP_QCOW2_MIN_CLUSTER_BITS);
  g_assert_cmpuint(h->cluster_bits, <=, QP_QCOW2_MAX_CLUSTER_BITS);
  g_assert_cmpuint(h->cluster_size, ==, 1ULL << h->cluster_bits);
  g_assert(h->l2_entry_size == (h->extended_l2 ? 16 : 8));
  g_assert_cmpuint(h->subcluster_size, ==, h->extended_l2 ? h->cluster_size / 32 : h->cluster_size);
  g_assert_cmpuint(h->refcount_order, <=, 6);
  g_assert_cmpuint(h->refcount_bits, ==, 1U << h->refcount_order);
  g_assert(h->compression_type == QP_QCOW2_COMPRESSION_ZLIB
           || h->compression_type == QP_QCOW2_COMPRESSION_ZSTD);
  g_assert(qp_qcow2_compression_name(h->compression_type) != NULL);
  if (h->backing_file != NULL)
    g_assert_cmpuint(strlen(h->backing_file), <=, 1023);
  for (guint i = 0; h->feature_names != NULL && i < h->feature_names->len; i++) {
    const QpQcow2FeatureName *f = g_ptr_array_index(h->feature_names, i);
    /* the type byte is kept as stored: QEMU does not check it either */
    g_assert(f->name != NULL);
  }
}

static void
check_cache(const QpQcow2Header *h, size_t size)
{
  QpCacheGeometry geo = {
    .virtual_size = h->virtual_size,
    .cluster_bits = h->cluster_bits,
    .extended_l2 = h->extended_l2,
  };
  QpCacheSplit split;
  gboolean raised = FALSE;
  guint64 l2_full = qp_cache_l2_full(&geo);
  guint percent = 1 + (guint)(size % 100);
  guint64 uncapped;
  guint64 written;

  qp_cache_qemu_default(&geo, &split);
  g_assert(split.l2_coverage >= 0.0 && split.l2_coverage <= 1.0);
  g_assert_cmpuint(split.l2_cache_size, <=, MAX(l2_full, 32ULL * 1024 * 1024));
  uncapped = qp_cache_policy(&geo, percent, 0, &raised, NULL);
  g_assert(!raised);
  written = qp_cache_policy(&geo, percent, size, &raised, &split);
  g_assert_cmpuint(split.l2_entries, >=, QP_CACHE_MIN_L2_ENTRIES);
  /* a cap lowers the value, but never below QEMU's minimum unless the policy itself is */
  g_assert_cmpuint(written, <=, uncapped);
  g_assert_cmpuint(written, >=, MIN(uncapped, qp_cache_minimum(&geo)));
  if (size >= uncapped)
    g_assert_cmpuint(written, ==, uncapped);
  g_assert(split.l2_coverage >= 0.0 && split.l2_coverage <= 1.0);
  written = qp_cache_policy(&geo, 100, 0, &raised, &split);
  g_assert(!raised);
  g_assert(split.l2_coverage >= 0.0 && split.l2_coverage <= 1.0);
}

int
qp_fuzz_qcow2_header(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) unknown_error = NULL;
  g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(data, size, size, &error);
  g_autoptr(QpQcow2Header) unknown = NULL;
  QpQcow2Allocation alloc;

  /* The file size unknown: the names-only walk must then ask for more bytes rather
   * than give up, and the table checks against the file size are skipped. */
  unknown = qp_qcow2_header_parse(data, size, G_MAXUINT64, &unknown_error);
  g_assert((unknown == NULL) == (unknown_error != NULL));
  if (unknown != NULL)
    check_header(unknown);

  if (h == NULL) {
    /* Fallible functions set the error exactly when they fail. */
    g_assert(error != NULL);
    g_assert(error->domain == QP_QCOW2_ERROR);
    g_assert(error->message != NULL && error->message[0] != '\0');
    g_assert(g_utf8_validate(error->message, -1, NULL));
    return 0;
  }
  g_assert(error == NULL);
  check_header(h);
  /* What validates against the real size also validates when the size is unknown. */
  g_assert_no_error(unknown_error);

  if (qp_qcow2_allocation_scan_buffer(h, data, size, &alloc, &error)) {
    g_assert(error == NULL);
    g_assert_cmpuint(alloc.l2_tables, <=, h->l1_size);
  } else {
    g_assert(error != NULL);
  }
  check_cache(h, size);
  return 0;
}
