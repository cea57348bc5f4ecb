/* QEMU's L2/refcount cache arithmetic (block/qcow2.c read_cache_sizes and
 * qcow2_update_options_prepare, QEMU >= 4.0 on Linux) and the policy of spec section 3.
 * All sizes are bytes. Inputs are validated headers, so no product here can overflow:
 * virtual sizes are bounded by QEMU's L1 limits (see qp-qcow2.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QP_CACHE_QEMU_DEFAULT_L2_MAX  (32ULL * 1024 * 1024) /* DEFAULT_L2_CACHE_MAX_SIZE, Linux */
#define QP_CACHE_MIN_REFCOUNT_ENTRIES 4                     /* MIN_REFCOUNT_CACHE_SIZE (clusters) */
#define QP_CACHE_MIN_L2_ENTRIES       2                     /* MIN_L2_CACHE_SIZE (entries) */
#define QP_CACHE_SMALL_ENTRY          4096 /* entry size when the cache does not cover all */

/* The geometry the arithmetic needs. */
typedef struct {
  guint64 virtual_size;
  guint32 cluster_bits;
  gboolean extended_l2;
} QpCacheGeometry;

/* How QEMU divides a cache: what it gives L2 and refcounts, in whole entries. */
typedef struct {
  guint64 cache_size;          /* the combined cache-size (for a split from one value) */
  guint64 l2_cache_size;       /* bytes QEMU assigns to the L2 cache (before the entry floor) */
  guint64 refcount_cache_size; /* bytes assigned to the refcount cache */
  guint64 l2_entry_size;       /* bytes per L2 cache entry: C when the cache covers L2FULL,
                                * else min(C, 4096) */
  guint64 l2_entries;          /* whole entries, at least QP_CACHE_MIN_L2_ENTRIES */
  double l2_coverage;          /* share of L2FULL the entries hold, 0..1; 1 when L2FULL is 0 */
} QpCacheSplit;

/* L2FULL = round_up(ceil(V / C) * E, C) (QEMU's max_l2_cache). */
guint64
qp_cache_l2_full(const QpCacheGeometry *geo);

/* QEMU's default with no cache options: L2 = min(L2FULL, 32 MiB), refcount 4C. */
void
qp_cache_qemu_default(const QpCacheGeometry *geo, QpCacheSplit *out);

/* QEMU with only cache-size=@cache_size set. */
void
qp_cache_split_combined(const QpCacheGeometry *geo, guint64 cache_size, QpCacheSplit *out);

/* The smallest cache-size QEMU accepts as meaningful: 4C + 2 * min(C, 4096). */
guint64
qp_cache_minimum(const QpCacheGeometry *geo);

/* The policy (spec section 3): percent 1..100, @max 0 for no cap.
 * WANT = L2FULL at 100, else min(L2FULL, round_up(ceil(L2FULL * percent / 100), 4096));
 * L2 = max(WANT, min(L2FULL, 32 MiB)); cache-size = L2 + 4C, lowered to @max when smaller,
 * and a @max below qp_cache_minimum() raised to it (*@raised_to_minimum set, may be NULL).
 * @out gets the split QEMU will make of the result. Returns the cache-size to write. */
guint64
qp_cache_policy(const QpCacheGeometry *geo, guint percent, guint64 max, gboolean *raised_to_minimum,
                QpCacheSplit *out);

G_END_DECLS
