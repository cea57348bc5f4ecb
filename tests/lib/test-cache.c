/* QEMU's cache arithmetic and the policy of spec section 3. */
#include "config.h"

#include "qp-cache.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define TiB (1024ULL * GiB)

static QpCacheGeometry
geo_make(guint64 v, guint32 bits, gboolean ext)
{
  QpCacheGeometry g = { .virtual_size = v, .cluster_bits = bits, .extended_l2 = ext };
  return g;
}

static void
test_cache_l2_full(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, FALSE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 128 * MiB);
  g = geo_make(1 * TiB, 16, TRUE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 256 * MiB);
  /* Rounded up to whole clusters (L2 tables). */
  g = geo_make(1 * MiB, 16, FALSE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 64 * KiB);
  g = geo_make(1, 9, FALSE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 512);
  /* ceil(V / C): one byte past a cluster needs another entry. */
  g = geo_make(64 * KiB * 8192 + 1, 16, FALSE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 128 * KiB);
  g = geo_make(0, 16, FALSE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, 0);
  /* No overflow near 2^64. */
  g = geo_make(G_MAXUINT64, 21, TRUE);
  g_assert_cmpuint(qp_cache_l2_full(&g), ==, (G_MAXUINT64 / (2 * MiB) + 1) * 16);
}

/* Spec section 1: what QEMU's default 32 MiB L2 cache covers. */
static void
test_cache_coverage_table(void)
{
  static const struct {
    guint32 bits;
    gboolean ext;
    guint64 covered;
  } rows[] = {
    { 16, FALSE, 256 * GiB }, { 16, TRUE, 128 * GiB }, { 17, FALSE, 512 * GiB },
    { 17, TRUE, 256 * GiB },  { 21, FALSE, 8 * TiB },  { 21, TRUE, 4 * TiB },
  };
  for (guint i = 0; i < G_N_ELEMENTS(rows); i++) {
    /* Large enough that 32 MiB does not hold all L2 tables. */
    QpCacheGeometry g = geo_make(64 * TiB, rows[i].bits, rows[i].ext);
    QpCacheSplit s;
    guint64 entry = rows[i].ext ? 16 : 8;
    guint64 covered;

    qp_cache_qemu_default(&g, &s);
    g_assert_cmpuint(s.l2_cache_size, ==, 32 * MiB);
    g_assert_cmpuint(s.l2_entry_size, ==, 4096);
    g_assert_cmpuint(s.l2_entries, ==, 8192);
    covered = s.l2_entries * s.l2_entry_size / entry * (1ULL << rows[i].bits);
    g_assert_cmpuint(covered, ==, rows[i].covered);
    g_assert_cmpfloat_with_epsilon(s.l2_coverage, (double)rows[i].covered / (double)(64 * TiB),
                                   1e-12);
  }
}

static void
test_cache_default(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, FALSE);
  QpCacheSplit s;

  qp_cache_qemu_default(&g, &s);
  g_assert_cmpuint(s.l2_cache_size, ==, 32 * MiB);
  g_assert_cmpuint(s.refcount_cache_size, ==, 256 * KiB);
  g_assert_cmpfloat_with_epsilon(s.l2_coverage, 0.25, 1e-12);

  /* Small image: the whole L2 fits, entries are clusters. */
  g = geo_make(10 * GiB, 16, FALSE);
  qp_cache_qemu_default(&g, &s);
  g_assert_cmpuint(s.l2_cache_size, ==, 1280 * KiB);
  g_assert_cmpuint(s.l2_entry_size, ==, 64 * KiB);
  g_assert_cmpuint(s.l2_entries, ==, 20);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);
}

/* Spec section 2: the measured 1 TiB example. */
static void
test_cache_1tib_example(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, FALSE);
  QpCacheSplit s;
  gboolean raised = TRUE;
  guint64 cs = qp_cache_policy(&g, 100, 0, &raised, &s);

  g_assert_cmpuint(cs, ==, 128 * MiB + 256 * KiB);
  g_assert_false(raised);
  g_assert_cmpuint(s.cache_size, ==, cs);
  g_assert_cmpuint(s.l2_cache_size, ==, 128 * MiB);
  g_assert_cmpuint(s.refcount_cache_size, ==, 256 * KiB);
  g_assert_cmpuint(s.l2_entry_size, ==, 64 * KiB);
  g_assert_cmpuint(s.l2_entries, ==, 2048);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);

  /* 4 KiB less: refcount keeps 4C, L2 falls short, entries shrink to 4 KiB. */
  qp_cache_split_combined(&g, cs - 4096, &s);
  g_assert_cmpuint(s.refcount_cache_size, ==, 256 * KiB);
  g_assert_cmpuint(s.l2_cache_size, ==, 128 * MiB - 4096);
  g_assert_cmpuint(s.l2_entry_size, ==, 4096);
  g_assert_cmpuint(s.l2_entries, ==, 32767);
  g_assert_cmpfloat(s.l2_coverage, <, 1.0);
  g_assert_cmpfloat_with_epsilon(s.l2_coverage, 32767.0 / 32768.0, 1e-12);
}

static void
test_cache_split_small(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, FALSE);
  QpCacheSplit s;

  /* Below 4C everything goes to the refcount cache; L2 keeps its 2-entry floor. */
  qp_cache_split_combined(&g, 100 * KiB, &s);
  g_assert_cmpuint(s.refcount_cache_size, ==, 100 * KiB);
  g_assert_cmpuint(s.l2_cache_size, ==, 0);
  g_assert_cmpuint(s.l2_entries, ==, 2);
  g_assert_cmpuint(s.l2_entry_size, ==, 4096);
  /* No 32 MiB cap on this path. */
  qp_cache_split_combined(&g, 64 * MiB + 256 * KiB, &s);
  g_assert_cmpuint(s.l2_cache_size, ==, 64 * MiB);
  g_assert_cmpfloat_with_epsilon(s.l2_coverage, 0.5, 1e-12);
}

static void
test_cache_policy_percent(void)
{
  static const struct {
    guint64 v;
    guint percent;
    guint64 l2;
  } cases[] = {
    /* 1 TiB, 64 KiB: L2FULL 128 MiB; a policy never goes below QEMU's 32 MiB. */
    { 1 * TiB, 50, 64 * MiB },
    { 1 * TiB, 75, 96 * MiB },
    { 1 * TiB, 25, 32 * MiB },
    { 1 * TiB, 10, 32 * MiB },
    { 1 * TiB, 1, 32 * MiB },
    /* 3 TiB: L2FULL 384 MiB; ceil then round up to 4096. */
    { 3 * TiB, 33, 132878336 },
    { 3 * TiB, 99, 398626816 },
    { 3 * TiB, 100, 384 * MiB },
    /* Small images get all of L2FULL whatever the percentage. */
    { 10 * GiB, 1, 1280 * KiB },
    { 10 * GiB, 100, 1280 * KiB },
  };
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    QpCacheGeometry g = geo_make(cases[i].v, 16, FALSE);
    QpCacheSplit s;
    guint64 cs = qp_cache_policy(&g, cases[i].percent, 0, NULL, &s);
    g_assert_cmpuint(cs, ==, cases[i].l2 + 256 * KiB);
    g_assert_cmpuint(s.l2_cache_size, ==, cases[i].l2);
    g_assert_cmpuint(s.l2_cache_size % 4096, ==, 0);
  }
}

static void
test_cache_policy_cap(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, FALSE);
  QpCacheSplit s;
  gboolean raised = TRUE;
  guint64 cs;

  /* A cap above the value changes nothing. */
  cs = qp_cache_policy(&g, 100, 1 * GiB, &raised, &s);
  g_assert_cmpuint(cs, ==, 128 * MiB + 256 * KiB);
  g_assert_false(raised);
  /* A smaller cap lowers it. */
  cs = qp_cache_policy(&g, 100, 64 * MiB, &raised, &s);
  g_assert_cmpuint(cs, ==, 64 * MiB);
  g_assert_false(raised);
  g_assert_cmpuint(s.l2_cache_size, ==, 64 * MiB - 256 * KiB);
  g_assert_cmpuint(s.l2_entry_size, ==, 4096);
  /* A cap exactly at the minimum is kept. */
  cs = qp_cache_policy(&g, 100, qp_cache_minimum(&g), &raised, &s);
  g_assert_cmpuint(cs, ==, 256 * KiB + 8 * KiB);
  g_assert_false(raised);
  /* Below the minimum: raised, with the flag. */
  cs = qp_cache_policy(&g, 100, 1, &raised, &s);
  g_assert_cmpuint(cs, ==, 4 * 64 * KiB + 2 * 4096);
  g_assert_true(raised);
  g_assert_cmpuint(s.l2_entries, ==, 2);
  g_assert_cmpuint(s.l2_cache_size, ==, 8 * KiB);
  /* NULL flag pointer is allowed. */
  cs = qp_cache_policy(&g, 50, 1, NULL, NULL);
  g_assert_cmpuint(cs, ==, 264 * KiB);
}

static void
test_cache_minimum(void)
{
  QpCacheGeometry g = geo_make(1 * GiB, 9, FALSE);
  g_assert_cmpuint(qp_cache_minimum(&g), ==, 4 * 512 + 2 * 512);
  g = geo_make(1 * GiB, 12, FALSE);
  g_assert_cmpuint(qp_cache_minimum(&g), ==, 4 * 4096 + 2 * 4096);
  g = geo_make(1 * GiB, 16, FALSE);
  g_assert_cmpuint(qp_cache_minimum(&g), ==, 256 * KiB + 8 * KiB);
  g = geo_make(1 * GiB, 21, TRUE);
  g_assert_cmpuint(qp_cache_minimum(&g), ==, 8 * MiB + 8 * KiB);
}

static void
test_cache_tiny(void)
{
  QpCacheGeometry g = geo_make(1 * MiB, 16, FALSE);
  QpCacheSplit s;
  gboolean raised = TRUE;
  guint64 cs = qp_cache_policy(&g, 100, 0, &raised, &s);

  g_assert_cmpuint(cs, ==, 64 * KiB + 256 * KiB);
  g_assert_false(raised);
  g_assert_cmpuint(s.l2_entry_size, ==, 64 * KiB);
  g_assert_cmpuint(s.l2_entries, ==, 2); /* one table, floored to two entries */
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);

  /* 512-byte clusters, one-cluster image. */
  g = geo_make(512, 9, FALSE);
  cs = qp_cache_policy(&g, 1, 0, NULL, &s);
  g_assert_cmpuint(cs, ==, 512 + 2048);
  g_assert_cmpuint(s.l2_cache_size, ==, 512);
  g_assert_cmpuint(s.l2_entries, ==, 2);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);
}

static void
test_cache_l2_full_zero(void)
{
  QpCacheGeometry g = geo_make(0, 16, FALSE);
  QpCacheSplit s;
  guint64 cs;

  qp_cache_qemu_default(&g, &s);
  g_assert_cmpuint(s.l2_cache_size, ==, 0);
  g_assert_cmpuint(s.l2_entries, ==, 2);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);
  cs = qp_cache_policy(&g, 100, 0, NULL, &s);
  g_assert_cmpuint(cs, ==, 256 * KiB);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);
  cs = qp_cache_policy(&g, 37, 0, NULL, &s);
  g_assert_cmpuint(cs, ==, 256 * KiB);
}

static void
test_cache_extended(void)
{
  QpCacheGeometry g = geo_make(1 * TiB, 16, TRUE);
  QpCacheSplit s;
  guint64 cs = qp_cache_policy(&g, 100, 0, NULL, &s);

  g_assert_cmpuint(cs, ==, 256 * MiB + 256 * KiB);
  g_assert_cmpfloat(s.l2_coverage, ==, 1.0);
  qp_cache_qemu_default(&g, &s);
  g_assert_cmpfloat_with_epsilon(s.l2_coverage, 0.125, 1e-12);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/cache/l2-full", test_cache_l2_full);
  g_test_add_func("/cache/coverage-table", test_cache_coverage_table);
  g_test_add_func("/cache/default", test_cache_default);
  g_test_add_func("/cache/1tib-example", test_cache_1tib_example);
  g_test_add_func("/cache/split-small", test_cache_split_small);
  g_test_add_func("/cache/policy-percent", test_cache_policy_percent);
  g_test_add_func("/cache/policy-cap", test_cache_policy_cap);
  g_test_add_func("/cache/minimum", test_cache_minimum);
  g_test_add_func("/cache/tiny", test_cache_tiny);
  g_test_add_func("/cache/l2-full-zero", test_cache_l2_full_zero);
  g_test_add_func("/cache/extended", test_cache_extended);
  return g_test_run();
}
