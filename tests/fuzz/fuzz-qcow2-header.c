/* libFuzzer target: the whole untrusted-input path of lib/ on one buffer.
 *
 * Built as a fuzzer with -Dfuzzing=true (clang); the same entry point is replayed over a
 * corpus generated with qemu-img in every normal test run (tests/lib/test-fuzz-replay.c). */
#include "config.h"

#include <stdint.h>

#include "fuzz-qcow2-header.h"
#include "qp-cache.h"
#include "qp-qcow2.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(data, size, size, &error);
  QpQcow2Allocation alloc;
  QpCacheGeometry geo;
  QpCacheSplit split;

  if (h == NULL) {
    /* Fallible functions set the error exactly when they fail. */
    g_assert(error != NULL);
    return 0;
  }
  g_assert(error == NULL);
  if (!qp_qcow2_allocation_scan_buffer(h, data, size, &alloc, &error))
    g_assert(error != NULL);

  geo.virtual_size = h->virtual_size;
  geo.cluster_bits = h->cluster_bits;
  geo.extended_l2 = h->extended_l2;
  qp_cache_qemu_default(&geo, &split);
  g_assert(split.l2_coverage >= 0.0 && split.l2_coverage <= 1.0);
  qp_cache_policy(&geo, 1 + (guint)(size % 100), size, NULL, &split);
  g_assert(split.l2_entries >= QP_CACHE_MIN_L2_ENTRIES);
  return 0;
}
