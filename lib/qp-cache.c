/* QEMU's cache arithmetic (block/qcow2.c read_cache_sizes and qcow2_update_options_prepare)
 * and the policy of spec section 3. */
#include "config.h"

#include "qp-cache.h"

/* L2 entries are 8 bytes, 16 with extended L2 (subclusters). */
#define QP_CACHE_L2_ENTRY_NORMAL   8
#define QP_CACHE_L2_ENTRY_EXTENDED 16
/* The policy rounds partial percentages to whole small entries. */
#define QP_CACHE_POLICY_ROUNDING 4096

static guint64
qp_cache_cluster_size(const QpCacheGeometry *geo)
{
  g_return_val_if_fail(geo->cluster_bits >= 9 && geo->cluster_bits <= 21, 65536);
  return 1ULL << geo->cluster_bits;
}

static guint64
qp_cache_round_up(guint64 value, guint64 align)
{
  guint64 rem = value % align;
  return rem == 0 ? value : value + (align - rem);
}

guint64
qp_cache_l2_full(const QpCacheGeometry *geo)
{
  guint64 c = qp_cache_cluster_size(geo);
  guint64 e = geo->extended_l2 ? QP_CACHE_L2_ENTRY_EXTENDED : QP_CACHE_L2_ENTRY_NORMAL;
  /* DIV_ROUND_UP without the overflow of V + C - 1 near 2^64. */
  guint64 entries = geo->virtual_size / c + (geo->virtual_size % c != 0);
  return qp_cache_round_up(entries * e, c);
}

/* What qcow2_update_options_prepare makes of an L2 byte budget. */
static void
qp_cache_finish_split(const QpCacheGeometry *geo, guint64 l2_full, QpCacheSplit *out)
{
  guint64 c = qp_cache_cluster_size(geo);

  out->l2_entry_size = out->l2_cache_size < l2_full ? MIN(c, QP_CACHE_SMALL_ENTRY) : c;
  out->l2_entries = out->l2_cache_size / out->l2_entry_size;
  if (out->l2_entries < QP_CACHE_MIN_L2_ENTRIES)
    out->l2_entries = QP_CACHE_MIN_L2_ENTRIES;
  if (l2_full == 0) {
    out->l2_coverage = 1.0;
  } else {
    double held = (double)out->l2_entries * (double)out->l2_entry_size;
    out->l2_coverage = MIN(1.0, held / (double)l2_full);
  }
}

void
qp_cache_qemu_default(const QpCacheGeometry *geo, QpCacheSplit *out)
{
  guint64 c = qp_cache_cluster_size(geo);
  guint64 l2_full = qp_cache_l2_full(geo);

  out->l2_cache_size = MIN(l2_full, QP_CACHE_QEMU_DEFAULT_L2_MAX);
  /* refcount-cache-size 0 is floored to MIN_REFCOUNT_CACHE_SIZE clusters. */
  out->refcount_cache_size = QP_CACHE_MIN_REFCOUNT_ENTRIES * c;
  out->cache_size = out->l2_cache_size + out->refcount_cache_size;
  qp_cache_finish_split(geo, l2_full, out);
}

void
qp_cache_split_combined(const QpCacheGeometry *geo, guint64 cache_size, QpCacheSplit *out)
{
  guint64 c = qp_cache_cluster_size(geo);
  guint64 l2_full = qp_cache_l2_full(geo);
  guint64 min_refcount = QP_CACHE_MIN_REFCOUNT_ENTRIES * c;

  out->cache_size = cache_size;
  /* L2 gets everything it can use only when the refcount minimum fits beside it. */
  if (cache_size >= min_refcount && cache_size - min_refcount >= l2_full) {
    out->l2_cache_size = l2_full;
    out->refcount_cache_size = cache_size - l2_full;
  } else {
    out->refcount_cache_size = MIN(cache_size, min_refcount);
    out->l2_cache_size = cache_size - out->refcount_cache_size;
  }
  qp_cache_finish_split(geo, l2_full, out);
}

guint64
qp_cache_minimum(const QpCacheGeometry *geo)
{
  guint64 c = qp_cache_cluster_size(geo);
  return QP_CACHE_MIN_REFCOUNT_ENTRIES * c + QP_CACHE_MIN_L2_ENTRIES * MIN(c, QP_CACHE_SMALL_ENTRY);
}

guint64
qp_cache_policy(const QpCacheGeometry *geo, guint percent, guint64 max, gboolean *raised_to_minimum,
                QpCacheSplit *out)
{
  guint64 c = qp_cache_cluster_size(geo);
  guint64 l2_full = qp_cache_l2_full(geo);
  guint64 want;
  guint64 l2;
  guint64 cache_size;
  QpCacheSplit tmp;

  g_return_val_if_fail(percent >= 1 && percent <= 100, 0);

  if (raised_to_minimum != NULL)
    *raised_to_minimum = FALSE;
  if (out == NULL)
    out = &tmp;

  if (percent == 100) {
    want = l2_full;
  } else {
    /* ceil(L2FULL * p / 100) computed without forming L2FULL * p. */
    guint64 share = (l2_full / 100) * percent + ((l2_full % 100) * percent + 99) / 100;
    want = MIN(l2_full, qp_cache_round_up(share, QP_CACHE_POLICY_ROUNDING));
  }
  l2 = MAX(want, MIN(l2_full, QP_CACHE_QEMU_DEFAULT_L2_MAX));
  cache_size = l2 + QP_CACHE_MIN_REFCOUNT_ENTRIES * c;

  if (max != 0 && max < cache_size) {
    guint64 minimum = qp_cache_minimum(geo);
    if (max < minimum) {
      /* Never above what the uncapped policy would write. */
      cache_size = MIN(cache_size, minimum);
      if (raised_to_minimum != NULL)
        *raised_to_minimum = TRUE;
    } else {
      cache_size = max;
    }
  }

  qp_cache_split_combined(geo, cache_size, out);
  return cache_size;
}
