/* Replays the fuzz target over a corpus made at test time with qemu-img, plus a fixed,
 * seeded set of truncations and byte mutations of each image.
 *
 *   test-fuzz-replay --write-corpus DIR   writes the seed images for libFuzzer instead. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "fuzz-qcow2-header.h"

/* Mutations per seed: enough to reach every header field many times in a few seconds. */
#define QP_REPLAY_MUTATIONS 3000

typedef struct {
  const char *name;
  const char *const *argv; /* qemu-img / qemu-io commands, NULL-separated groups */
} Seed;

static char *tmpdir;
static GPtrArray *seeds; /* of GBytes */

static void
run(const char *const *argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *out = NULL; /* kept off stdout: it is the TAP stream */
  g_autofree char *err = NULL;
  int status = 0;
  if (!g_spawn_sync(tmpdir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                    &status, &error)
      || !g_spawn_check_wait_status(status, &error))
    g_error("%s: %s %s", argv[0], error->message, err != NULL ? err : "");
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
  };
  static const char *const names[] = {
    "s-v3.qcow2",  "s-v2.qcow2", "s-512.qcow2",    "s-extl2.qcow2",    "s-zstd.qcow2",
    "s-ext.qcow2", "s-r1.qcow2", "s-backed.qcow2", "s-prealloc.qcow2",
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
}

static void
test_replay_seeds(void)
{
  for (guint i = 0; i < seeds->len; i++) {
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(g_ptr_array_index(seeds, i), &len);
    g_assert_cmpuint(len, >, 0);
    g_assert_cmpint(LLVMFuzzerTestOneInput(data, len), ==, 0);
  }
}

static void
test_replay_truncations(void)
{
  for (guint i = 0; i < seeds->len; i++) {
    gsize len = 0;
    const guint8 *data = g_bytes_get_data(g_ptr_array_index(seeds, i), &len);
    for (gsize cut = 0; cut < MIN(len, 2048); cut++) {
      /* An exact-size copy, so an overread past @cut is a heap overread. */
      g_autofree guint8 *copy = g_memdup2(data, MAX(cut, 1));
      LLVMFuzzerTestOneInput(copy, cut);
    }
  }
}

static void
test_replay_mutations(void)
{
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
      LLVMFuzzerTestOneInput(copy, window);
    }
  }
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
  g_autoptr(GError) error = NULL;
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
  tmpdir = g_dir_make_tmp("qp-fuzz-XXXXXX", &error);
  g_assert_no_error(error);
  make_seeds();
  g_test_add_func("/fuzz-replay/seeds", test_replay_seeds);
  g_test_add_func("/fuzz-replay/truncations", test_replay_truncations);
  g_test_add_func("/fuzz-replay/mutations", test_replay_mutations);
  ret = g_test_run();
  g_ptr_array_unref(seeds);
  rm_rf(tmpdir);
  g_free(tmpdir);
  return ret;
}
