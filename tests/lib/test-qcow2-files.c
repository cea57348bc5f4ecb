/* The file layer on real images made at test time with qemu-img and qemu-io. */
#include "config.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qp-qcow2-file.h"

static char *tmpdir;

static char *
tmp_path(const char *name)
{
  return g_build_filename(tmpdir, name, NULL);
}

/* qemu-img times the LUKS key derivation with the thread's CPU time and fails with
 * "Unable to get accurate CPU usage" when that did not advance over its first PBKDF2
 * round (a third of the runs on an AMD EPYC host, 2026-12-03). That is the machine, not
 * the image: such a failure is retried, up to 20 times. */
#define QP_FILES_TRIES 20

/* Run a command in the temp dir; fail the test on a non-zero exit. */
static char *
run_argv(const char *const *argv)
{
  for (guint attempt = 1;; attempt++) {
    g_autoptr(GError) error = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status = 0;

    if (!g_spawn_sync(tmpdir, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &out, &err,
                      &status, &error))
      g_error("cannot run %s: %s", argv[0], error->message);
    if (g_spawn_check_wait_status(status, &error))
      return g_steal_pointer(&out);
    if (attempt == QP_FILES_TRIES || err == NULL || strstr(err, "accurate CPU usage") == NULL) {
      g_autofree char *cmd = g_strjoinv(" ", (char **)argv);
      g_error("%s failed: %s\n%s", cmd, error->message, err);
    }
  }
}

#define RUN(...)                                                                                   \
  G_STMT_START                                                                                     \
  {                                                                                                \
    const char *const argv_[] = { __VA_ARGS__, NULL };                                             \
    g_free(run_argv(argv_));                                                                       \
  }                                                                                                \
  G_STMT_END

static QpQcow2Header *
read_ok(const char *name)
{
  g_autofree char *path = tmp_path(name);
  g_autoptr(GError) error = NULL;
  QpQcow2Header *h = qp_qcow2_file_read_header(path, &error);
  g_assert_no_error(error);
  g_assert_nonnull(h);
  return h;
}

/* qemu-img check's count of allocated clusters, the reference for our scan. */
static guint64
qemu_allocated_clusters(const char *name)
{
  const char *const argv[] = { "qemu-img", "check", "--output=json", "-f", "qcow2", name, NULL };
  g_autofree char *out = run_argv(argv);
  g_autoptr(GRegex) re = g_regex_new("\"allocated-clusters\": *([0-9]+)", 0, 0, NULL);
  g_autoptr(GMatchInfo) m = NULL;
  g_autofree char *num = NULL;

  if (!g_regex_match(re, out, 0, &m))
    g_error("no allocated-clusters in: %s", out);
  num = g_match_info_fetch(m, 1);
  return g_ascii_strtoull(num, NULL, 10);
}

static void
scan_ok(const char *name, const QpQcow2Header *h, QpQcow2Allocation *a)
{
  g_autofree char *path = tmp_path(name);
  g_autoptr(GError) error = NULL;
  g_assert_true(qp_qcow2_file_scan_allocation(path, h, a, &error));
  g_assert_no_error(error);
}

static void
test_files_v2(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", "v2.qcow2", "3G");
  h = read_ok("v2.qcow2");
  g_assert_cmpuint(h->version, ==, 2);
  g_assert_cmpuint(h->header_length, ==, 72);
  g_assert_cmpuint(h->refcount_bits, ==, 16);
  g_assert_cmpuint(h->virtual_size, ==, 3ULL << 30);
  g_assert_cmpuint(h->cluster_size, ==, 65536);
  g_assert_false(h->extended_l2);
}

static void
test_files_cluster_sizes(void)
{
  static const struct {
    const char *size;
    guint32 bits;
  } sizes[] = { { "512", 9 }, { "4k", 12 }, { "64k", 16 }, { "128k", 17 }, { "2M", 21 } };
  for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
    g_autofree char *name = g_strdup_printf("c%u.qcow2", sizes[i].bits);
    g_autofree char *opt = g_strdup_printf("cluster_size=%s", sizes[i].size);
    g_autoptr(QpQcow2Header) h = NULL;
    QpQcow2Allocation a;
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", opt, name, "1G");
    RUN("qemu-io", "-f", "qcow2", "-c", "write 0 8k", "-c", "write 700M 4k", name);
    h = read_ok(name);
    g_assert_cmpuint(h->version, ==, 3);
    g_assert_cmpuint(h->cluster_bits, ==, sizes[i].bits);
    g_assert_cmpuint(h->cluster_size, ==, 1ULL << sizes[i].bits);
    scan_ok(name, h, &a);
    g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters(name));
    g_assert_cmpuint(a.data_clusters, >=, 2);
  }
}

static void
test_files_extended_l2(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "extl2.qcow2", "10G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 4k", "-c", "write 5G 64k", "extl2.qcow2");
  h = read_ok("extl2.qcow2");
  g_assert_true(h->extended_l2);
  g_assert_cmpuint(h->l2_entry_size, ==, 16);
  g_assert_cmpuint(h->subcluster_size, ==, 2048);
  g_assert_cmpuint(h->incompatible_features & QP_QCOW2_INCOMPAT_EXTL2, !=, 0);
  scan_ok("extl2.qcow2", h, &a);
  g_assert_cmpuint(a.l2_tables, ==, 2);
  g_assert_cmpuint(a.data_clusters, ==, 2);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("extl2.qcow2"));
}

static void
test_files_zstd(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", "zstd.qcow2", "1G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write -c 0 64k", "-c", "write 1M 64k", "zstd.qcow2");
  h = read_ok("zstd.qcow2");
  g_assert_cmpint(h->compression_type, ==, QP_QCOW2_COMPRESSION_ZSTD);
  g_assert_cmpstr(qp_qcow2_compression_name(h->compression_type), ==, "zstd");
  scan_ok("zstd.qcow2", h, &a);
  g_assert_cmpuint(a.data_clusters, ==, 2);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("zstd.qcow2"));
}

static void
test_files_data_file(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=data.raw", "ext.qcow2", "1G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "-c", "write 100M 128k", "ext.qcow2");
  h = read_ok("ext.qcow2");
  g_assert_cmpstr(h->data_file, ==, "data.raw");
  g_assert_cmpuint(h->incompatible_features & QP_QCOW2_INCOMPAT_DATA_FILE, !=, 0);
  scan_ok("ext.qcow2", h, &a);
  /* Host offsets are in data.raw, offset 0 included. */
  g_assert_cmpuint(a.data_clusters, ==, 3);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("ext.qcow2"));

  /* Preallocated: every cluster, the one at data-file offset 0 as well. */
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=data2.raw,preallocation=metadata",
      "ext2.qcow2", "1G");
  g_clear_pointer(&h, qp_qcow2_header_free);
  h = read_ok("ext2.qcow2");
  scan_ok("ext2.qcow2", h, &a);
  g_assert_cmpuint(a.data_clusters, ==, 16384);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("ext2.qcow2"));
}

static void
test_files_refcount_bits(void)
{
  g_autoptr(QpQcow2Header) h1 = NULL;
  g_autoptr(QpQcow2Header) h64 = NULL;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=1", "r1.qcow2", "1G");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=64", "r64.qcow2", "1G");
  h1 = read_ok("r1.qcow2");
  h64 = read_ok("r64.qcow2");
  g_assert_cmpuint(h1->refcount_order, ==, 0);
  g_assert_cmpuint(h1->refcount_bits, ==, 1);
  g_assert_cmpuint(h64->refcount_order, ==, 6);
  g_assert_cmpuint(h64->refcount_bits, ==, 64);
}

static void
test_files_chain(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chain = NULL;
  g_autofree char *top = tmp_path("chain/top.qcow2");
  QpQcow2Layer *l;

  RUN("mkdir", "-p", "chain/sub");
  RUN("qemu-img", "create", "-q", "-f", "raw", "chain/sub/base.raw", "1G");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
      "chain/sub/mid.qcow2");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-b", "sub/mid.qcow2", "-F", "qcow2",
      "chain/top.qcow2");
  chain = qp_qcow2_chain_resolve(top, "qcow2", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(chain->len, ==, 3);
  l = g_ptr_array_index(chain, 0);
  g_assert_cmpstr(l->path, ==, top);
  g_assert_cmpstr(l->header->backing_file, ==, "sub/mid.qcow2");
  l = g_ptr_array_index(chain, 1);
  {
    g_autofree char *want = tmp_path("chain/sub/mid.qcow2");
    g_assert_cmpstr(l->path, ==, want);
  }
  g_assert_cmpstr(l->format, ==, "qcow2");
  g_assert_nonnull(l->header);
  g_assert_cmpuint(l->header->virtual_size, ==, 1ULL << 30);
  l = g_ptr_array_index(chain, 2);
  {
    g_autofree char *want = tmp_path("chain/sub/base.raw");
    g_assert_cmpstr(l->path, ==, want);
  }
  g_assert_cmpstr(l->format, ==, "raw");
  g_assert_null(l->header);
}

static void
expect_chain_error(const char *name, int code, const char *fragment)
{
  g_autofree char *path = tmp_path(name);
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chain = qp_qcow2_chain_resolve(path, "qcow2", &error);
  g_assert_null(chain);
  g_assert_error(error, QP_QCOW2_ERROR, code);
  if (strstr(error->message, fragment) == NULL)
    g_error("message '%s' lacks '%s'", error->message, fragment);
}

static void
test_files_loop(void)
{
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "loop-a.qcow2", "1G");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-b", "loop-a.qcow2", "-F", "qcow2",
      "loop-b.qcow2");
  RUN("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", "loop-b.qcow2", "loop-a.qcow2");
  expect_chain_error("loop-b.qcow2", QP_QCOW2_ERROR_CHAIN, "loop");
  /* An image naming itself. */
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "self.qcow2", "1G");
  RUN("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", "self.qcow2", "self.qcow2");
  expect_chain_error("self.qcow2", QP_QCOW2_ERROR_CHAIN, "loop");
  /* The same file through a symlink is the same device and inode. */
  RUN("ln", "-s", "loop-b.qcow2", "loop-link.qcow2");
  RUN("qemu-img", "rebase", "-u", "-F", "qcow2", "-b", "loop-link.qcow2", "loop-a.qcow2");
  expect_chain_error("loop-b.qcow2", QP_QCOW2_ERROR_CHAIN, "loop");
}

/* libvirt numbers the top image 1 and refuses image 201: 200 images pass. */
static void
test_files_depth(void)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) chain = NULL;
  g_autofree char *top200 = NULL;

  RUN("mkdir", "-p", "deep");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "deep/l0.qcow2", "1M");
  for (guint i = 1; i <= 200; i++) {
    g_autofree char *name = g_strdup_printf("deep/l%u.qcow2", i);
    g_autofree char *back = g_strdup_printf("l%u.qcow2", i - 1);
    RUN("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", back, "-F", "qcow2", name, "1M");
  }
  top200 = tmp_path("deep/l199.qcow2");
  chain = qp_qcow2_chain_resolve(top200, "qcow2", &error);
  g_assert_no_error(error);
  g_assert_cmpuint(chain->len, ==, QP_QCOW2_MAX_CHAIN_DEPTH);
  expect_chain_error("deep/l200.qcow2", QP_QCOW2_ERROR_CHAIN, "deeper than 200");
}

static void
test_files_missing(void)
{
  g_autofree char *path = tmp_path("nonexistent.qcow2");
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(path, &error);

  g_assert_null(h);
  g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO);
  g_assert_true(g_str_has_prefix(error->message, path));
  g_assert_nonnull(strstr(error->message, g_strerror(ENOENT)));

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2",
      "orphan.qcow2", "1G");
  expect_chain_error("orphan.qcow2", QP_QCOW2_ERROR_IO, "backing file of");
}

static void
test_files_no_backing_format(void)
{
  g_autofree char *path = tmp_path("nofmt.qcow2");
  g_autofree char *data = NULL;
  gsize len = 0;
  gboolean patched = FALSE;

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "nofmt-base.qcow2", "1G");
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-b", "nofmt-base.qcow2", "-F", "qcow2",
      "nofmt.qcow2");
  /* qemu-img no longer writes a backing file without a format (images from before
   * QEMU 6.1 have none): turn the backing format extension into an unknown one. */
  g_assert_true(g_file_get_contents(path, &data, &len, NULL));
  for (gsize off = 104; off + 8 <= MIN(len, 4096); off += 8) {
    if ((guint8)data[off] == 0xe2 && (guint8)data[off + 1] == 0x79 && (guint8)data[off + 2] == 0x2a
        && (guint8)data[off + 3] == 0xca) {
      data[off] = 0x7f;
      patched = TRUE;
      break;
    }
  }
  g_assert_true(patched);
  g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
  {
    g_autoptr(QpQcow2Header) h = read_ok("nofmt.qcow2");
    g_assert_cmpstr(h->backing_file, ==, "nofmt-base.qcow2");
    g_assert_null(h->backing_format);
    g_assert_cmpuint(h->nb_unknown_extensions, ==, 1);
  }
  expect_chain_error("nofmt.qcow2", QP_QCOW2_ERROR_CHAIN, "backing format not recorded in");
}

static void
test_files_protocol_backing(void)
{
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "proto.qcow2", "1G");
  RUN("qemu-img", "rebase", "-u", "-F", "raw", "-b", "nbd://127.0.0.1:10809/x", "proto.qcow2");
  expect_chain_error("proto.qcow2", QP_QCOW2_ERROR_CHAIN, "network/protocol");
  RUN("qemu-img", "rebase", "-u", "-F", "raw", "-b",
      "json:{\"driver\":\"file\",\"filename\":\"/x\"}", "proto.qcow2");
  expect_chain_error("proto.qcow2", QP_QCOW2_ERROR_CHAIN, "network/protocol");
  /* A relative name with a colon after a slash is a file. */
  RUN("mkdir", "-p", "co");
  RUN("qemu-img", "create", "-q", "-f", "raw", "co/a:b.raw", "1M");
  RUN("qemu-img", "rebase", "-u", "-F", "raw", "-b", "./co/a:b.raw", "proto.qcow2");
  {
    g_autofree char *path = tmp_path("proto.qcow2");
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) chain = qp_qcow2_chain_resolve(path, "qcow2", &error);
    g_assert_no_error(error);
    g_assert_cmpuint(chain->len, ==, 2);
  }
}

static void
test_files_not_files(void)
{
  g_autofree char *fifo = tmp_path("fifo");
  g_autofree char *dir = tmp_path("adir");
  g_autofree char *link_a = tmp_path("link-a");
  g_autofree char *link_b = tmp_path("link-b");
  const char *paths[] = { fifo, dir, link_a, "/dev/null" };
  guint64 size = 0;

  g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
  g_assert_cmpint(g_mkdir(dir, 0700), ==, 0);
  g_assert_cmpint(symlink("link-b", link_a), ==, 0);
  g_assert_cmpint(symlink("link-a", link_b), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS(paths); i++) {
    g_autoptr(GError) error = NULL;
    gint64 start = g_get_monotonic_time();
    int fd = qp_qcow2_file_open(paths[i], &size, &error);
    g_assert_cmpint(fd, ==, -1);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_A_FILE);
    g_assert_true(g_str_has_prefix(error->message, paths[i]));
    /* Refused at once: nothing waits for a FIFO writer. */
    g_assert_cmpint(g_get_monotonic_time() - start, <, G_USEC_PER_SEC);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(link_a, &error);
    g_assert_null(h);
    g_assert_nonnull(strstr(error->message, "symbolic link"));
  }
}

static void
test_files_not_qcow2(void)
{
  g_autofree char *raw = tmp_path("plain.raw");
  g_autofree char *empty = tmp_path("empty");
  g_autofree char *cut = tmp_path("cut.qcow2");
  g_autofree char *data = NULL;
  gsize len = 0;

  RUN("qemu-img", "create", "-q", "-f", "raw", "plain.raw", "1M");
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(raw, &error);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_QCOW2);
  }
  g_assert_true(g_file_set_contents(empty, "", 0, NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(empty, &error);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
  /* A real image cut inside its header and inside its tables. */
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "cut.qcow2", "1G");
  g_assert_true(g_file_get_contents(cut, &data, &len, NULL));
  g_assert_true(g_file_set_contents(cut, data, 100, NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(cut, &error);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
  g_assert_true(g_file_set_contents(cut, data, 65536 + 100, NULL));
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_file_read_header(cut, &error);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
}

static void
test_files_allocation(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "alloc.qcow2", "2G");
  /* Clusters: 0; 1M (one, partial); 512M..512M+128k (two, second L2 table);
   * a zero write (no host cluster); a compressed cluster in a third L2 table. */
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "-c", "write 1M 4k", "-c", "write 512M 128k",
      "-c", "write -z 10M 64k", "-c", "write -c 1536M 64k", "alloc.qcow2");
  h = read_ok("alloc.qcow2");
  scan_ok("alloc.qcow2", h, &a);
  g_assert_cmpuint(a.l2_tables, ==, 3);
  g_assert_cmpuint(a.data_clusters, ==, 5);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("alloc.qcow2"));

  /* Empty image: no L2 tables at all. */
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "empty.qcow2", "2G");
  g_clear_pointer(&h, qp_qcow2_header_free);
  h = read_ok("empty.qcow2");
  scan_ok("empty.qcow2", h, &a);
  g_assert_cmpuint(a.l2_tables, ==, 0);
  g_assert_cmpuint(a.data_clusters, ==, 0);
}

static void
test_files_preallocated(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", "pre.qcow2", "4G");
  h = read_ok("pre.qcow2");
  scan_ok("pre.qcow2", h, &a);
  g_assert_cmpuint(a.l2_tables, ==, 8);
  g_assert_cmpuint(a.data_clusters, ==, 65536);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("pre.qcow2"));
}

static void
test_files_corrupt_l2(void)
{
  g_autofree char *path = tmp_path("bad-l2.qcow2");
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr(QpQcow2Header) h = NULL;
  g_autoptr(GError) error = NULL;
  QpQcow2Allocation a;
  guint64 l1;
  guint64 l2;

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "bad-l2.qcow2", "1G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "bad-l2.qcow2");
  h = read_ok("bad-l2.qcow2");
  g_assert_true(g_file_get_contents(path, &data, &len, NULL));
  l1 = h->l1_table_offset;
  l2 = GUINT64_FROM_BE(*(guint64 *)(data + l1)) & 0x00fffffffffffe00ULL;
  g_assert_cmpuint(l2, !=, 0);
  /* Point the first data cluster 512 bytes off its cluster boundary. */
  data[l2 + 6] |= 0x02;
  g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
  g_assert_false(qp_qcow2_file_scan_allocation(path, h, &a, &error));
  g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID);
  g_assert_true(g_str_has_prefix(error->message, path));
  g_assert_nonnull(strstr(error->message, "not aligned"));
}

static void
test_files_luks(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  RUN("qemu-img", "create", "-q", "--object", "secret,id=sec0,data=test-passphrase", "-f", "qcow2",
      "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", "luks.qcow2", "1G");
  h = read_ok("luks.qcow2");
  g_assert_cmpuint(h->crypt_method, ==, 2);
  g_assert_cmpuint(h->crypto_header_offset, !=, 0);
  g_assert_cmpuint(h->crypto_header_offset % h->cluster_size, ==, 0);
  g_assert_cmpuint(h->crypto_header_length, >, 0);
}

static void
test_files_snapshots(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "snap.qcow2", "1G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 128k", "snap.qcow2");
  RUN("qemu-img", "snapshot", "-c", "first", "snap.qcow2");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 64k 64k", "-c", "write 300M 64k", "snap.qcow2");
  RUN("qemu-img", "snapshot", "-c", "second", "snap.qcow2");
  h = read_ok("snap.qcow2");
  g_assert_cmpuint(h->nb_snapshots, ==, 2);
  g_assert_cmpuint(h->snapshots_offset, !=, 0);
  g_assert_cmpuint(h->snapshots_offset % h->cluster_size, ==, 0);
  /* The active L1 only: cluster 0, the rewritten cluster 1 and the one at 300M. */
  scan_ok("snap.qcow2", h, &a);
  g_assert_cmpuint(a.data_clusters, ==, 3);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("snap.qcow2"));
}

static void
test_files_resized(void)
{
  g_autoptr(QpQcow2Header) h = NULL;
  QpQcow2Allocation a;
  RUN("qemu-img", "create", "-q", "-f", "qcow2", "grow.qcow2", "1G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 0 64k", "grow.qcow2");
  RUN("qemu-img", "resize", "-q", "grow.qcow2", "+99G");
  RUN("qemu-io", "-f", "qcow2", "-c", "write 90G 64k", "grow.qcow2");
  h = read_ok("grow.qcow2");
  g_assert_cmpuint(h->virtual_size, ==, 100ULL << 30);
  g_assert_cmpuint(h->l1_size, >=, 200); /* 512 MiB per L1 entry at 64 KiB */
  scan_ok("grow.qcow2", h, &a);
  g_assert_cmpuint(a.l2_tables, ==, 2);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("grow.qcow2"));
  g_clear_pointer(&h, qp_qcow2_header_free);
  RUN("qemu-img", "resize", "-q", "--shrink", "grow.qcow2", "10G");
  h = read_ok("grow.qcow2");
  g_assert_cmpuint(h->virtual_size, ==, 10ULL << 30);
  scan_ok("grow.qcow2", h, &a);
  g_assert_cmpuint(a.data_clusters, ==, 1);
  g_assert_cmpuint(a.data_clusters, ==, qemu_allocated_clusters("grow.qcow2"));
}

/* A header whose extensions reach past the first 4 KiB read: the file layer must read
 * on, up to the first cluster, and find everything. */
static void
test_files_long_header(void)
{
  g_autofree char *path = tmp_path("long.qcow2");
  g_autofree char *data = NULL;
  gsize len = 0;
  const gsize n_ext = 1000;
  const gsize shift = n_ext * 8;
  g_autoptr(QpQcow2Header) before = NULL;
  g_autoptr(QpQcow2Header) after = NULL;

  RUN("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", "long.qcow2", "1G");
  before = read_ok("long.qcow2");
  g_assert_cmpuint(before->header_length, ==, 112);
  g_assert_true(g_file_get_contents(path, &data, &len, NULL));
  g_assert_cmpuint(len, >=, 2 * 1024 * 1024);
  /* Shift the extension area right and put 1000 empty unknown extensions first. */
  memmove(data + 112 + shift, data + 112, 4096);
  for (gsize i = 0; i < n_ext; i++) {
    guint32 type = GUINT32_TO_BE(0x51500000U + (guint32)i);
    guint32 zero = 0;
    memcpy(data + 112 + i * 8, &type, 4);
    memcpy(data + 112 + i * 8 + 4, &zero, 4);
  }
  g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
  after = read_ok("long.qcow2");
  g_assert_cmpuint(after->nb_unknown_extensions, ==, before->nb_unknown_extensions + n_ext);
  g_assert_nonnull(after->feature_names);
  g_assert_cmpuint(after->feature_names->len, ==, before->feature_names->len);
  g_assert_cmpuint(after->feature_names->len, >, 0);
}

static void
rm_rf(const char *path)
{
  g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
  const char *name;
  if (dir != NULL) {
    while ((name = g_dir_read_name(dir)) != NULL) {
      g_autofree char *child = g_build_filename(path, name, NULL);
      struct stat st;
      if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
        rm_rf(child);
      else
        g_unlink(child);
    }
  }
  g_rmdir(path);
}

int
main(int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
  g_autofree char *qemu_io = g_find_program_in_path("qemu-io");
  int ret;

  g_test_init(&argc, &argv, NULL);
  if (qemu_img == NULL || qemu_io == NULL)
    g_error("qemu-img and qemu-io are required (Debian package qemu-utils)");
  tmpdir = g_dir_make_tmp("qp-files-XXXXXX", &error);
  g_assert_no_error(error);

  g_test_add_func("/qcow2-files/v2", test_files_v2);
  g_test_add_func("/qcow2-files/cluster-sizes", test_files_cluster_sizes);
  g_test_add_func("/qcow2-files/extended-l2", test_files_extended_l2);
  g_test_add_func("/qcow2-files/zstd", test_files_zstd);
  g_test_add_func("/qcow2-files/data-file", test_files_data_file);
  g_test_add_func("/qcow2-files/refcount-bits", test_files_refcount_bits);
  g_test_add_func("/qcow2-files/chain", test_files_chain);
  g_test_add_func("/qcow2-files/loop", test_files_loop);
  g_test_add_func("/qcow2-files/depth", test_files_depth);
  g_test_add_func("/qcow2-files/missing", test_files_missing);
  g_test_add_func("/qcow2-files/no-backing-format", test_files_no_backing_format);
  g_test_add_func("/qcow2-files/protocol-backing", test_files_protocol_backing);
  g_test_add_func("/qcow2-files/not-files", test_files_not_files);
  g_test_add_func("/qcow2-files/not-qcow2", test_files_not_qcow2);
  g_test_add_func("/qcow2-files/allocation", test_files_allocation);
  g_test_add_func("/qcow2-files/preallocated", test_files_preallocated);
  g_test_add_func("/qcow2-files/corrupt-l2", test_files_corrupt_l2);
  g_test_add_func("/qcow2-files/long-header", test_files_long_header);
  g_test_add_func("/qcow2-files/luks", test_files_luks);
  g_test_add_func("/qcow2-files/snapshots", test_files_snapshots);
  g_test_add_func("/qcow2-files/resized", test_files_resized);
  ret = g_test_run();
  rm_rf(tmpdir);
  g_free(tmpdir);
  return ret;
}
