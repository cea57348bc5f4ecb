/* Replays every fuzz target's entry point, built without libFuzzer, in the normal test
 * run (suite "fuzz"):
 * - qcow2-header over images made at test time with qemu-img, plus a fixed, seeded set
 *   of truncations and byte mutations of each image;
 * - every target over its kept corpus (tests/fuzz/corpus/TARGET/) and every crash
 *   reproducer ever found (tests/fuzz/crashes/TARGET/), and the XML targets over a
 *   fixed set of truncations of their corpus.
 *
 *   test-fuzz-replay --write-corpus DIR   writes the qcow2 seed images for libFuzzer. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "fuzz-targets.h"
#include "qp-qcow2.h"

/* Mutations per seed: enough to reach every header field many times in a few seconds. */
#define QP_REPLAY_MUTATIONS 3000

typedef struct {
  const char *name;
  const char *const *argv; /* qemu-img / qemu-io commands, NULL-separated groups */
} Seed;

static char *tmpdir;
static GPtrArray *seeds; /* of GBytes */

/* QEMU's LUKS key-slot benchmark fails now and then ("Unable to get accurate CPU usage":
 * the thread's CPU time did not advance over its first PBKDF2 round; seen in a third of
 * the runs on an AMD EPYC host, 2026-12-03); twenty tries make that rare enough for CI. */
#define QP_REPLAY_TRIES 20

static void
run(const char *const *argv)
{
  for (guint attempt = 1;; attempt++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *out = NULL; /* kept off stdout: it is the TAP stream */
    g_autofree char *err = NULL;
    int status = 0;
    if (g_spawn_sync(tmpdir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                     &status, &error)
        && g_spawn_check_wait_status(status, &error))
      return;
    if (attempt == QP_REPLAY_TRIES || err == NULL || strstr(err, "accurate CPU usage") == NULL)
      g_error("%s: %s %s", argv[0], error != NULL ? error->message : "?", err != NULL ? err : "");
  }
}

/* A copy of seed @from with an extension of an unknown type inserted first in the
 * extension area, written as @to and kept as a seed. */
static void
add_unknown_extension(const char *from, const char *to)
{
  g_autofree char *path = g_build_filename(tmpdir, from, NULL);
  g_autofree char *out = g_build_filename(tmpdir, to, NULL);
  g_autoptr(GError) error = NULL;
  /* type 0x12345678, 5 bytes of data padded to 8 */
  static const guint8 ext[16] = { 0x12, 0x34, 0x56, 0x78, 0, 0, 0, 5, 'f', 'u', 'z', 'z', '!' };
  g_autofree char *data = NULL;
  guint8 *buf;
  gsize len = 0;
  guint32 header_length;
  guint64 backing_offset = 0;

  if (!g_file_get_contents(path, &data, &len, &error))
    g_error("%s", error->message);
  g_assert_cmpuint(len, >=, 4096);
  buf = (guint8 *)data;
  header_length = GUINT32_FROM_BE(*(guint32 *)(buf + 100));
  g_assert_cmpuint(header_length, >=, 104);
  g_assert_cmpuint(header_length, <, 1024);
  for (guint i = 0; i < 8; i++)
    backing_offset = backing_offset << 8 | buf[8 + i];
  /* everything after the header moves 16 bytes; qemu-img leaves the rest of the first
   * cluster zero, so nothing is pushed out */
  memmove(buf + header_length + sizeof(ext), buf + header_length,
          4096 - header_length - sizeof(ext));
  memcpy(buf + header_length, ext, sizeof(ext));
  if (backing_offset != 0) {
    backing_offset += sizeof(ext);
    for (guint i = 0; i < 8; i++)
      buf[8 + i] = (guint8)(backing_offset >> (56 - 8 * i));
  }
  if (!g_file_set_contents(out, data, len, &error))
    g_error("%s", error->message);
  /* the parser must take it */
  {
    g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(buf, len, len, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(h->nb_unknown_extensions, ==, 1);
  }
  g_ptr_array_add(seeds, g_bytes_new_take(g_steal_pointer(&data), len));
}

static void
make_seeds(void)
{
  static const char *const cmds[][12] = {
    { "qemu-img", "create", "-q", "-f", "qcow2", "s-v3.qcow2", "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "s-v2.qcow2", "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "s-512.qcow2", "8M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=16k",
      "s-extl2.qcow2", "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", "s-zstd.qcow2",
      "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=s-data.raw", "s-ext.qcow2",
      "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1", "s-r1.qcow2", "64M" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-b", "s-v3.qcow2", "-F", "qcow2",
      "s-backed.qcow2" },
    { "qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata,cluster_size=4k",
      "s-prealloc.qcow2", "16M" },
    { "qemu-io", "-f", "qcow2", "-c", "write 0 64k", "-c", "write -c 1M 64k", "-c",
      "write -z 2M 64k", "s-v3.qcow2" },
    { "qemu-img", "bitmap", "--add", "s-r1.qcow2", "b0" },
    /* the encryption header extension; a short iteration time keeps creation fast */
    { "qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=fuzz", "-o",
      "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "s-luks.qcow2", "64M" },
  };
  static const char *const names[] = {
    "s-v3.qcow2",  "s-v2.qcow2", "s-512.qcow2",    "s-extl2.qcow2",    "s-zstd.qcow2",
    "s-ext.qcow2", "s-r1.qcow2", "s-backed.qcow2", "s-prealloc.qcow2", "s-luks.qcow2",
  };
  for (guint i = 0; i < G_N_ELEMENTS(cmds); i++)
    run(cmds[i]);
  seeds = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
  for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
    g_autofree char *path = g_build_filename(tmpdir, names[i], NULL);
    g_autoptr(GError) error = NULL;
    char *data = NULL;
    gsize len = 0;
    if (!g_file_get_contents(path, &data, &len, &error))
      g_error("%s", error->message);
    g_ptr_array_add(seeds, g_bytes_new_take(data, len));
  }
  /* qemu-img writes no unknown extension: add one to two seeds, before the others */
  add_unknown_extension("s-v3.qcow2", "s-unknown-ext.qcow2");
  add_unknown_extension("s-backed.qcow2", "s-backed-unknown-ext.qcow2");
}

/* Made on first use: the subprocesses of the corpus tests need no images. */
static void
ensure_seeds(void)
{
  g_autoptr(GError) error = NULL;

  if (seeds != NULL)
    return;
  tmpdir = g_dir_make_tmp("qp-fuzz-XXXXXX", &error);
  g_assert_no_error(error);
  make_seeds();
}

static void
test_replay_seeds(void)
{
  ensure_seeds();
  for (guint i = 0; i < seeds->len; i++) {
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(g_ptr_array_index(seeds, i), &len);
    g_assert_cmpuint(len, >, 0);
    g_assert_cmpint(qp_fuzz_qcow2_header(data, len), ==, 0);
  }
}

static void
test_replay_truncations(void)
{
  ensure_seeds();
  for (guint i = 0; i < seeds->len; i++) {
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(g_ptr_array_index(seeds, i), &len);
    for (gsize cut = 0; cut < MIN(len, 2048); cut++) {
      /* An exact-size copy, so an overread past @cut is a heap overread. */
      g_autofree guint8 *copy = g_memdup2(data, MAX(cut, 1));
      qp_fuzz_qcow2_header(copy, cut);
    }
  }
}

static void
test_replay_mutations(void)
{
  ensure_seeds();
  g_autoptr(GRand) rand = g_rand_new_with_seed(0x71637732);
  for (guint i = 0; i < seeds->len; i++) {
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(g_ptr_array_index(seeds, i), &len);
    /* The header cluster and the metadata right after it; data clusters are not parsed. */
    gsize window = MIN(len, 256 * 1024);
    g_autofree guint8 *copy = g_malloc(window);
    for (guint m = 0; m < QP_REPLAY_MUTATIONS; m++) {
      guint flips = g_rand_int_range(rand, 1, 6);
      memcpy(copy, data, window);
      for (guint f = 0; f < flips; f++) {
        gsize pos = g_rand_boolean(rand) ? (gsize)g_rand_int_range(rand, 0, 112)
                                         : (gsize)g_rand_int_range(rand, 0, (gint32)window);
        copy[pos] = (guint8)g_rand_int(rand);
      }
      qp_fuzz_qcow2_header(copy, window);
    }
  }
}

/* ---- kept corpora and crash reproducers, for every target ---- */

typedef int (*QpFuzzEntry)(const uint8_t *data, size_t size);

typedef struct {
  const char *name; /* tests/fuzz/corpus/NAME, tests/fuzz/crashes/NAME */
  QpFuzzEntry entry;
  gboolean corpus_in_git;  /* FALSE: qcow2 seeds are made at test time instead */
  guint truncation_stride; /* 0: no truncations (the qcow2 images have their own) */
} QpFuzzTarget;

/* Every 5th (policy) or 7th (domain) prefix of each XML seed: cuts inside every kind of
 * token, in seconds even under valgrind. */
static const QpFuzzTarget targets[] = {
  { "qcow2-header", qp_fuzz_qcow2_header, FALSE, 0 },
  { "policy", qp_fuzz_policy, TRUE, 5 },
  { "domain-xml", qp_fuzz_domain_xml, TRUE, 7 },
  { "xml-rewrite", qp_fuzz_xml_rewrite, TRUE, 7 },
};

/* Feed every file of tests/fuzz/@kind/@target to the entry point; returns the count. */
static guint
replay_dir(const QpFuzzTarget *target, const char *kind, guint stride)
{
  const char *srcdir = g_getenv("QP_SOURCE_DIR");
  g_autofree char *dir = NULL;
  g_autoptr(GDir) d = NULL;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;

  /* set by tests/meson.build; without it the kept files would silently not be read */
  g_assert_nonnull(srcdir);
  dir = g_build_filename(srcdir, "tests", "fuzz", kind, target->name, NULL);
  d = g_dir_open(dir, 0, NULL);
  if (d == NULL)
    return 0;
  while ((name = g_dir_read_name(d)) != NULL) {
    if (name[0] != '.' && !g_str_equal(name, "README"))
      g_ptr_array_add(names, g_strdup(name));
  }
  /* a fixed order, so a failure names the same file every run */
  g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *path = g_build_filename(dir, g_ptr_array_index(names, i), NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *data = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &data, &len, &error))
      g_error("%s", error->message);
    /* stderr reaches the log when the child fails: the last name is the input */
    g_printerr("%s: %s (%zu bytes)\n", target->name, path, len);
    {
      /* an exact-size copy, so an overread is a heap overread under a sanitizer */
      g_autofree guint8 *copy = g_memdup2(data, MAX(len, 1));
      g_assert_cmpint(target->entry(copy, len), ==, 0);
    }
    /* libFuzzer's own finds (lf-*) are whole already; their prefixes cost valgrind
     * minutes and add little to the hand-written seeds' */
    if (g_str_has_prefix(g_ptr_array_index(names, i), "lf-"))
      continue;
    for (gsize cut = 0; stride > 0 && cut < len; cut += stride) {
      g_autofree guint8 *copy = g_memdup2(data, MAX(cut, 1));
      g_assert_cmpint(target->entry(copy, cut), ==, 0);
    }
  }
  return names->len;
}

/* Each directory runs in a child: an input that aborts fails its own test, and the
 * other targets are still replayed and counted. */
static gboolean
in_child(void)
{
  if (g_test_subprocess())
    return TRUE;
  g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDERR);
  /* not g_test_trap_assert_passed: its abort would end the run here */
  if (!g_test_trap_has_passed())
    g_test_fail_printf("the replay failed; its stderr above names the input");
  return FALSE;
}

static void
test_replay_corpus(gconstpointer user_data)
{
  const QpFuzzTarget *target = user_data;
  guint n;

  if (!in_child())
    return;
  n = replay_dir(target, "corpus", target->truncation_stride);

  /* the seed corpus is part of the tree: an empty one means it was lost */
  if (target->corpus_in_git)
    g_assert_cmpuint(n, >, 0);
}

static void
test_replay_crashes(gconstpointer user_data)
{
  const QpFuzzTarget *target = user_data;
  guint n;

  if (!in_child())
    return;
  n = replay_dir(target, "crashes", 0);

  g_test_message("%s: %u crash reproducers replayed", target->name, n);
}

static void
rm_rf(const char *path)
{
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
    g_autofree char *child = g_build_filename(path, name, NULL);
    g_unlink(child);
  }
  g_rmdir(path);
}

int
main(int argc, char **argv)
{
  int ret = 0;

  if (argc == 3 && g_strcmp0(argv[1], "--write-corpus") == 0) {
    tmpdir = g_strdup(argv[2]);
    g_mkdir_with_parents(tmpdir, 0755);
    make_seeds();
    g_ptr_array_unref(seeds);
    g_free(tmpdir);
    return 0;
  }

  g_test_init(&argc, &argv, NULL);
  qp_fuzz_init();
  g_test_add_func("/fuzz-replay/qcow2-header/qemu-img-seeds", test_replay_seeds);
  g_test_add_func("/fuzz-replay/qcow2-header/truncations", test_replay_truncations);
  g_test_add_func("/fuzz-replay/qcow2-header/mutations", test_replay_mutations);
  for (guint i = 0; i < G_N_ELEMENTS(targets); i++) {
    g_autofree char *corpus = g_strdup_printf("/fuzz-replay/%s/corpus", targets[i].name);
    g_autofree char *crashes = g_strdup_printf("/fuzz-replay/%s/crashes", targets[i].name);
    g_test_add_data_func(corpus, &targets[i], test_replay_corpus);
    g_test_add_data_func(crashes, &targets[i], test_replay_crashes);
  }
  ret = g_test_run();
  if (seeds != NULL) {
    g_ptr_array_unref(seeds);
    rm_rf(tmpdir);
    g_free(tmpdir);
  }
  return ret;
}
