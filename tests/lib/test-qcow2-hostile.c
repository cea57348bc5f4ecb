/* Hostile headers: a valid v3 image synthesized in memory, then broken one field at a
 * time. Every case must end in the right error class, never a crash or an overread. */
#include "config.h"

#include <string.h>

#include "qp-qcow2.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)

#define EXT_BACKING_FORMAT 0xe2792acaU
#define EXT_FEATURE_TABLE  0x6803f857U
#define EXT_CRYPTO         0x0537be77U
#define EXT_BITMAPS        0x23852875U
#define EXT_DATA_FILE      0x44415441U
#define OFLAG_COPIED       (1ULL << 63)

/* Layout for cluster size C: cluster 0 header + extensions (+ backing name at
 * BACKING_OFFSET), 1 refcount table, 2 L1 table, 3 L2 table, 4 data, 5 zero-alloc data. */
#define BACKING_OFFSET       1024 /* with clusters of 4 KiB and more */
#define BACKING_OFFSET_SMALL 256  /* below */
#define N_CLUSTERS           6

typedef struct {
  guint32 version;
  guint32 cluster_bits;
  guint64 virtual_size;
  guint64 incompat;
  guint64 autoclear;
  guint32 refcount_order;
  guint32 header_length;
  guint8 compression;
  guint32 crypt_method;
  const char *backing; /* NULL: none */
  const char *backing_format;
  gboolean feature_table;
  guint n_unknown_ext; /* 0-length unknown extensions */
  gboolean no_end_marker;
} Spec;

typedef struct {
  guint8 *data;
  gsize len;
  gsize ext_pos; /* where the next extension goes */
} Image;

static void
put32(guint8 *p, guint32 v)
{
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void
put64(guint8 *p, guint64 v)
{
  put32(p, v >> 32);
  put32(p + 4, (guint32)v);
}

static void
image_add_ext(Image *img, guint32 type, const void *data, guint32 len)
{
  gsize padded = (len + 7) & ~7U;
  g_assert_cmpuint(img->ext_pos + 8 + padded, <=, img->len);
  put32(img->data + img->ext_pos, type);
  put32(img->data + img->ext_pos + 4, len);
  if (len > 0)
    memcpy(img->data + img->ext_pos + 8, data, len);
  img->ext_pos += 8 + padded;
}

static Spec
spec_default(void)
{
  Spec s = {
    .version = 3,
    .cluster_bits = 16,
    .virtual_size = 1 * MiB,
    .refcount_order = 4,
    .header_length = 112,
    .backing = "base.qcow2",
    .backing_format = "qcow2",
    .feature_table = TRUE,
  };
  return s;
}

static Image *
image_build(const Spec *s)
{
  Image *img = g_new0(Image, 1);
  guint64 c = 1ULL << s->cluster_bits;
  guint8 *h;
  guint8 *l2;
  guint32 l2_entry = (s->incompat & (1ULL << 4)) ? 16 : 8;
  guint64 l1_cover = c * (c / l2_entry);
  guint32 l1_size = (guint32)((s->virtual_size + l1_cover - 1) / l1_cover);
  guint32 hlen = s->version == 2 ? 72 : s->header_length;

  img->len = N_CLUSTERS * c;
  img->data = g_malloc0(img->len);
  h = img->data;
  put32(h + 0, 0x514649fb);
  put32(h + 4, s->version);
  if (s->backing != NULL) {
    guint64 off = c >= 4096 ? BACKING_OFFSET : BACKING_OFFSET_SMALL;
    put64(h + 8, off);
    put32(h + 16, (guint32)strlen(s->backing));
    memcpy(h + off, s->backing, strlen(s->backing));
  }
  put32(h + 20, s->cluster_bits);
  put64(h + 24, s->virtual_size);
  put32(h + 32, s->crypt_method);
  put32(h + 36, l1_size);
  put64(h + 40, 2 * c);
  put64(h + 48, 1 * c);
  put32(h + 56, 1);
  if (s->version == 3) {
    put64(h + 72, s->incompat);
    put64(h + 88, s->autoclear);
    put32(h + 96, s->refcount_order);
    put32(h + 100, s->header_length);
    if (s->header_length > 104)
      h[104] = s->compression;
  }
  img->ext_pos = hlen;
  if (s->backing_format != NULL)
    image_add_ext(img, EXT_BACKING_FORMAT, s->backing_format, strlen(s->backing_format));
  if (s->feature_table) {
    guint8 table[48 * 2] = { 0 };
    table[0] = 0;
    table[1] = 5;
    memcpy(table + 2, "future-feature", 14);
    table[48] = 1;
    table[49] = 0;
    memcpy(table + 50, "lazy refcounts", 14);
    image_add_ext(img, EXT_FEATURE_TABLE, table, sizeof(table));
  }
  for (guint i = 0; i < s->n_unknown_ext; i++)
    image_add_ext(img, 0x1000 + i, NULL, 0);
  if (!s->no_end_marker)
    image_add_ext(img, 0, NULL, 0);

  /* Refcount table -> one block (contents irrelevant to the parser). */
  put64(img->data + 1 * c, 0);
  /* L1[0] -> L2 at cluster 3. */
  put64(img->data + 2 * c, (3 * c) | OFLAG_COPIED);
  l2 = img->data + 3 * c;
  put64(l2 + 0 * l2_entry, (4 * c) | OFLAG_COPIED); /* normal */
  if (l2_entry == 8) {
    put64(l2 + 2 * l2_entry, 1);                          /* zero, no host cluster */
    put64(l2 + 3 * l2_entry, (5 * c) | 1 | OFLAG_COPIED); /* zero with host cluster */
  } else {
    put64(l2 + 3 * l2_entry, (5 * c) | OFLAG_COPIED);
    put64(l2 + 3 * l2_entry + 8, 0xffffffff00000000ULL); /* all subclusters zero */
  }
  return img;
}

static void
image_free(Image *img)
{
  g_free(img->data);
  g_free(img);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Image, image_free)

static QpQcow2Header *
parse(const Image *img, GError **error)
{
  return qp_qcow2_header_parse(img->data, img->len, img->len, error);
}

static void
expect_error(const Image *img, int code, const char *fragment)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = parse(img, &error);
  g_assert_null(h);
  g_assert_error(error, QP_QCOW2_ERROR, code);
  if (fragment != NULL && strstr(error->message, fragment) == NULL)
    g_error("message '%s' lacks '%s'", error->message, fragment);
}

static void
test_valid(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = parse(img, &error);
  QpQcow2Allocation a = { 0 };
  QpQcow2FeatureName *f;

  g_assert_no_error(error);
  g_assert_nonnull(h);
  g_assert_cmpuint(h->version, ==, 3);
  g_assert_cmpuint(h->cluster_size, ==, 65536);
  g_assert_cmpuint(h->virtual_size, ==, 1 * MiB);
  g_assert_cmpuint(h->l1_size, ==, 1);
  g_assert_cmpuint(h->refcount_bits, ==, 16);
  g_assert_cmpstr(h->backing_file, ==, "base.qcow2");
  g_assert_cmpstr(h->backing_format, ==, "qcow2");
  g_assert_false(h->extended_l2);
  g_assert_cmpuint(h->l2_entry_size, ==, 8);
  g_assert_false(h->dirty);
  g_assert_false(h->corrupt);
  g_assert_cmpint(h->compression_type, ==, QP_QCOW2_COMPRESSION_ZLIB);
  g_assert_cmpuint(h->feature_names->len, ==, 2);
  f = g_ptr_array_index(h->feature_names, 0);
  g_assert_cmpstr(f->name, ==, "future-feature");
  g_assert_cmpuint(h->nb_unknown_extensions, ==, 0);

  g_assert_true(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, &error));
  g_assert_no_error(error);
  g_assert_cmpuint(a.l2_tables, ==, 1);
  g_assert_cmpuint(a.data_clusters, ==, 2);
}

/* Every prefix shorter than header + extensions + backing name is TRUNCATED. */
static void
test_truncated_everywhere(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  gsize needed = BACKING_OFFSET + strlen(s.backing);

  for (gsize len = 0; len < needed; len++) {
    g_autoptr(GError) error = NULL;
    /* A copy of exactly len bytes, so any overread is a heap overread. */
    g_autofree guint8 *copy = g_memdup2(img->data, MAX(len, 1));
    g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(copy, len, G_MAXUINT64, &error);
    g_assert_null(h);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
  for (gsize len = 0; len < needed; len += 7) {
    g_autoptr(GError) error = NULL;
    g_autofree guint8 *copy = g_memdup2(img->data, MAX(len, 1));
    /* The file itself ends there: tables past its end are TRUNCATED as well. */
    g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(copy, len, len, &error);
    g_assert_null(h);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(img->data, needed, G_MAXUINT64, &error);
    g_assert_no_error(error);
    g_assert_nonnull(h);
  }
}

static void
test_magic_version(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  img->data[0] = 'X';
  expect_error(img, QP_QCOW2_ERROR_NOT_QCOW2, "magic");
  img->data[0] = 'Q';
  for (guint32 v = 0; v < 6; v++) {
    g_autofree char *frag = g_strdup_printf("version is %u", v);
    if (v == 2 || v == 3)
      continue;
    put32(img->data + 4, v);
    expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, frag);
  }
  put32(img->data + 4, 0xffffffff);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "4294967295");
}

static void
test_cluster_bits(void)
{
  static const guint32 bad[] = { 0, 8, 22, 31, 32, 63, 64, 255, 0xffffffff };
  for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
    Spec s = spec_default();
    g_autoptr(Image) img = image_build(&s);
    g_autofree char *frag = g_strdup_printf("cluster_bits is %u, must be between 9 and 21", bad[i]);
    put32(img->data + 20, bad[i]);
    expect_error(img, QP_QCOW2_ERROR_INVALID, frag);
  }
  for (guint32 bits = 9; bits <= 21; bits++) {
    Spec s = spec_default();
    g_autoptr(Image) img = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = NULL;
    QpQcow2Allocation a = { 0 };
    s.cluster_bits = bits;
    s.feature_table = bits > 9; /* 512-byte clusters: keep extensions below the name */
    img = image_build(&s);
    h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(h->cluster_size, ==, 1ULL << bits);
    g_assert_true(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, &error));
    g_assert_cmpuint(a.l2_tables, ==, 1);
    g_assert_cmpuint(a.data_clusters, ==, 2);
  }
}

static void
test_header_length(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  put32(img->data + 100, 103);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "header_length is 103");
  put32(img->data + 100, 65537);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "header_length is 65537");
  put32(img->data + 100, 0xffffffff);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "header_length");

  /* 104: no compression byte, zlib assumed even if byte 104 says otherwise. */
  {
    Spec s2 = spec_default();
    g_autoptr(Image) img2 = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = NULL;
    s2.header_length = 104;
    s2.backing_format = NULL;
    s2.feature_table = FALSE;
    img2 = image_build(&s2);
    /* the END marker sits at 104..111; a type byte 7 there is part of it */
    h = parse(img2, &error);
    g_assert_no_error(error);
    g_assert_cmpint(h->compression_type, ==, QP_QCOW2_COMPRESSION_ZLIB);
  }
}

static void
test_version2(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = NULL;
  s.version = 2;
  img = image_build(&s);
  /* v3 fields are ignored in v2: refcount_order garbage there must not matter. */
  h = parse(img, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(h->header_length, ==, 72);
  g_assert_cmpuint(h->refcount_order, ==, 4);
  g_assert_cmpuint(h->incompatible_features, ==, 0);
  g_assert_cmpstr(h->backing_format, ==, "qcow2");
}

static void
test_refcount_order(void)
{
  for (guint32 order = 0; order <= 8; order++) {
    Spec s = spec_default();
    g_autoptr(Image) img = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = NULL;
    s.refcount_order = order;
    img = image_build(&s);
    h = parse(img, &error);
    if (order <= 6) {
      g_assert_no_error(error);
      g_assert_cmpuint(h->refcount_bits, ==, 1U << order);
    } else {
      g_autofree char *frag = g_strdup_printf("refcount_order is %u", order);
      g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID);
      g_assert_nonnull(strstr(error->message, frag));
    }
  }
}

static void
test_incompatible(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;

  /* Bit 5 is named by the feature table: the message carries its name. */
  s.incompat = 1ULL << 5;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "5 (future-feature)");
  g_clear_pointer(&img, image_free);

  /* Unnamed bits are listed by number. */
  s.incompat = (1ULL << 40) | (1ULL << 63);
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "40, 63");
  g_clear_pointer(&img, image_free);

  /* Known bits: dirty and corrupt are reported, not refused. */
  s.incompat = 1 | 2;
  img = image_build(&s);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_true(h->dirty);
    g_assert_true(h->corrupt);
  }
}

static void
test_compression(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;

  s.compression = 2;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "compression_type is 2");
  g_clear_pointer(&img, image_free);
  s.compression = 1;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "bit (3) is not set");
  g_clear_pointer(&img, image_free);
  s.compression = 0;
  s.incompat = 1ULL << 3;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "bit (3) is set");
  g_clear_pointer(&img, image_free);
  s.compression = 1;
  img = image_build(&s);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpint(h->compression_type, ==, QP_QCOW2_COMPRESSION_ZSTD);
  }
}

static void
test_extended_l2(void)
{
  for (guint32 bits = 12; bits <= 16; bits++) {
    Spec s = spec_default();
    g_autoptr(Image) img = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = NULL;
    s.cluster_bits = bits;
    s.incompat = 1ULL << 4;
    img = image_build(&s);
    h = parse(img, &error);
    if (bits < 14) {
      g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID);
      g_assert_nonnull(strstr(error->message, "subcluster"));
    } else {
      QpQcow2Allocation a = { 0 };
      g_assert_no_error(error);
      g_assert_true(h->extended_l2);
      g_assert_cmpuint(h->l2_entry_size, ==, 16);
      g_assert_cmpuint(h->subcluster_size, ==, (1ULL << bits) / 32);
      g_assert_true(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, &error));
      g_assert_cmpuint(a.data_clusters, ==, 2);
    }
  }
}

static void
test_crypt(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;

  s.crypt_method = 1;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "crypt_method is 1");
  g_clear_pointer(&img, image_free);
  s.crypt_method = 3;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_UNSUPPORTED, "crypt_method is 3");
  g_clear_pointer(&img, image_free);
  s.crypt_method = 2;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "0x0537be77");
  g_clear_pointer(&img, image_free);

  /* A crypto extension without LUKS, and one with the wrong length. */
  s.crypt_method = 0;
  s.no_end_marker = TRUE;
  img = image_build(&s);
  {
    guint8 ext[16] = { 0 };
    put64(ext, 3 * 65536);
    image_add_ext(img, EXT_CRYPTO, ext, 16);
    image_add_ext(img, 0, NULL, 0);
  }
  expect_error(img, QP_QCOW2_ERROR_INVALID, "crypt_method is 0");
  put32(img->data + 32, 2);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(h->crypto_header_offset, ==, 3 * 65536);
  }
}

static void
test_table_offsets(void)
{
  static const guint64 wrap = 0xffffffffffffff00ULL;
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);

  /* L1 */
  put64(img->data + 40, wrap);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "active L1 table offset invalid");
  put64(img->data + 40, 2 * 65536 + 8);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "not aligned");
  put64(img->data + 40, 100 * 65536);
  expect_error(img, QP_QCOW2_ERROR_TRUNCATED, "active L1 table");
  put64(img->data + 40, 2 * 65536);

  /* Refcount table */
  put64(img->data + 48, wrap);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "reference count table offset invalid");
  put64(img->data + 48, 65536);
  put32(img->data + 56, 0);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "refcount_table_clusters is 0");
  put32(img->data + 56, 129); /* 129 clusters of 64 KiB > 8 MiB */
  expect_error(img, QP_QCOW2_ERROR_INVALID, "reference count table too large");
  put32(img->data + 56, 0xffffffff);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "too large");
  put32(img->data + 56, 1);

  /* Snapshot table: offset checked only with snapshots. */
  put64(img->data + 64, wrap);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID); /* still misaligned */
  }
  put64(img->data + 64, 0);
  put32(img->data + 60, 65537);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "snapshot table too large");
  put32(img->data + 60, 1);
  put64(img->data + 64, wrap);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "snapshot table offset invalid");
  put64(img->data + 64, 5 * 65536);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(h->nb_snapshots, ==, 1);
  }
}

static void
test_l1_size(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);

  put32(img->data + 36, 0xffffffff);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "active L1 table too large");
  put32(img->data + 36, 4 * 1024 * 1024 + 1);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "active L1 table too large");
  /* Exactly QEMU's limit: allowed by size, but past the end of this file. */
  put32(img->data + 36, 4 * 1024 * 1024);
  expect_error(img, QP_QCOW2_ERROR_TRUNCATED, "active L1 table");
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = qp_qcow2_header_parse(img->data, img->len, G_MAXUINT64, &error);
    QpQcow2Allocation a;
    g_assert_no_error(error);
    /* The buffer scan must refuse a table the buffer cannot hold. */
    g_assert_false(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, &error));
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
  /* Too small for the virtual size. */
  put32(img->data + 36, 1);
  put64(img->data + 24, 1024ULL * 1024 * 1024 * 1024);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "l1_size is 1, too small");
  put32(img->data + 36, 0);
  put64(img->data + 24, 0);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    QpQcow2Allocation a;
    g_assert_no_error(error);
    g_assert_true(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, &error));
    g_assert_cmpuint(a.l2_tables, ==, 0);
  }
  /* A virtual size no L1 table can cover. */
  put32(img->data + 36, 1);
  put64(img->data + 24, G_MAXUINT64);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "too big");
}

static void
test_extensions(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;

  /* Length past the end of the extension area. */
  s.no_end_marker = TRUE;
  s.feature_table = FALSE;
  img = image_build(&s);
  put32(img->data + img->ext_pos, 0x12345678);
  put32(img->data + img->ext_pos + 4, 0xffffffff);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "too large");
  put32(img->data + img->ext_pos + 4, BACKING_OFFSET - (guint32)img->ext_pos - 8 + 1);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "too large");
  /* Exactly to the end: fine, and no END marker is needed. */
  put32(img->data + img->ext_pos + 4, BACKING_OFFSET - (guint32)img->ext_pos - 8);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(h->nb_unknown_extensions, ==, 1);
  }
  /* An extension header straddling the end of the area. */
  put32(img->data + 8 + 4, 0);
  put64(img->data + 8, img->ext_pos + 4);
  put32(img->data + 16, 0);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "extension");
  g_clear_pointer(&img, image_free);

  /* Backing format length limits. */
  s = spec_default();
  s.backing_format = "0123456789abcde"; /* 15 */
  img = image_build(&s);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(h->backing_format, ==, "0123456789abcde");
  }
  g_clear_pointer(&img, image_free);
  s.backing_format = "0123456789abcdef"; /* 16 */
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "backing format extension length is 16");
  g_clear_pointer(&img, image_free);

  /* Bitmaps: wrong length; ignored without the autoclear bit. */
  s = spec_default();
  s.no_end_marker = TRUE;
  img = image_build(&s);
  {
    guint8 ext[24] = { 0 };
    put32(ext, 1);
    put64(ext + 8, 1024);
    put64(ext + 16, 3 * 65536);
    image_add_ext(img, EXT_BITMAPS, ext, 20);
    image_add_ext(img, 0, NULL, 0);
    expect_error(img, QP_QCOW2_ERROR_INVALID, "bitmaps extension length is 20");
  }
  g_clear_pointer(&img, image_free);
  for (guint round = 0; round < 4; round++) {
    guint8 ext[24] = { 0 };
    s = spec_default();
    s.no_end_marker = TRUE;
    s.autoclear = round == 0 ? 0 : 1;
    img = image_build(&s);
    put32(ext, round == 2 ? 0 : 3);
    put64(ext + 8, 1024);
    put64(ext + 16, round == 3 ? 3 * 65536 + 512 : 3 * 65536);
    image_add_ext(img, EXT_BITMAPS, ext, 24);
    image_add_ext(img, 0, NULL, 0);
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(QpQcow2Header) h = parse(img, &error);
      if (round == 0) {
        g_assert_no_error(error);
        g_assert_cmpuint(h->nb_bitmaps, ==, 0);
      } else if (round == 1) {
        g_assert_no_error(error);
        g_assert_cmpuint(h->nb_bitmaps, ==, 3);
        g_assert_cmpuint(h->bitmap_directory_offset, ==, 3 * 65536);
      } else {
        g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID);
      }
    }
    g_clear_pointer(&img, image_free);
  }

  /* Data file: bit without name, name with bit, raw bit without file. */
  s = spec_default();
  s.incompat = 1ULL << 2;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "0x44415441");
  g_clear_pointer(&img, image_free);
  s.no_end_marker = TRUE;
  img = image_build(&s);
  image_add_ext(img, EXT_DATA_FILE, "data.raw", 8);
  image_add_ext(img, 0, NULL, 0);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(h->data_file, ==, "data.raw");
  }
  g_clear_pointer(&img, image_free);
  s = spec_default();
  s.autoclear = 2;
  img = image_build(&s);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "data-file-raw");
}

static void
test_extension_flood(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(QpQcow2Header) h = NULL;
  gint64 start;

  /* 2 MiB clusters and no backing file: the area is the whole first cluster. */
  s.cluster_bits = 21;
  s.backing = NULL;
  s.n_unknown_ext = 10000;
  img = image_build(&s);
  h = parse(img, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(h->nb_unknown_extensions, ==, 10000);
  g_clear_pointer(&h, qp_qcow2_header_free);
  g_clear_pointer(&img, image_free);

  /* Fill the whole cluster with 8-byte extensions and no END marker. */
  s.n_unknown_ext = (guint)((2 * MiB - 112 - 16 - 104) / 8);
  s.no_end_marker = TRUE;
  img = image_build(&s);
  start = g_get_monotonic_time();
  h = parse(img, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(h->nb_unknown_extensions, ==, s.n_unknown_ext);
  /* Bounded work: well under a second for 262,000 extensions. */
  g_assert_cmpint(g_get_monotonic_time() - start, <, G_USEC_PER_SEC);
}

static void
test_backing_name(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  g_autofree char *long_name = g_strnfill(1023, 'a');

  put32(img->data + 16, 1024);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "backing_file_size is 1024");
  put32(img->data + 16, 1023);
  memcpy(img->data + BACKING_OFFSET, long_name, 1023);
  {
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = parse(img, &error);
    g_assert_no_error(error);
    g_assert_cmpstr(h->backing_file, ==, long_name);
  }
  /* The name must end within the first cluster. */
  put64(img->data + 8, 65536 - 10);
  put32(img->data + 16, 11);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "backing_file_size is 11");
  put64(img->data + 8, 65537);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "backing_file_offset is 65537");
  put64(img->data + 8, G_MAXUINT64);
  expect_error(img, QP_QCOW2_ERROR_INVALID, "backing_file_offset");
}

static void
test_allocation_hostile(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  g_autoptr(QpQcow2Header) h = parse(img, NULL);
  guint64 c = 65536;
  guint8 *l1 = img->data + 2 * c;
  guint8 *l2 = img->data + 3 * c;
  static const struct {
    gboolean in_l1;
    guint64 value;
    int code;
  } cases[] = {
    { TRUE, 3 * 65536 + 512, QP_QCOW2_ERROR_INVALID }, /* unaligned L2 table */
    { TRUE, 6 * 65536, QP_QCOW2_ERROR_TRUNCATED },     /* L2 table past the end */
    { TRUE, 0x00fffffffffe0000ULL, QP_QCOW2_ERROR_TRUNCATED },
    { FALSE, 4 * 65536 + 512, QP_QCOW2_ERROR_INVALID }, /* unaligned data cluster */
    { FALSE, 6 * 65536, QP_QCOW2_ERROR_INVALID },       /* data past the end */
    { FALSE, 0x00ffffffffff0000ULL, QP_QCOW2_ERROR_INVALID },
    { FALSE, (1ULL << 62) | 0x3fffffffffffULL, QP_QCOW2_ERROR_INVALID }, /* compressed past end */
  };

  g_assert_nonnull(h);
  for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(Image) copy = image_build(&s);
    g_autoptr(GError) error = NULL;
    QpQcow2Allocation a;
    guint8 *target = (cases[i].in_l1 ? l1 : l2 + 8) - img->data + copy->data;
    put64(target, cases[i].value);
    g_assert_false(qp_qcow2_allocation_scan_buffer(h, copy->data, copy->len, &a, &error));
    g_assert_error(error, QP_QCOW2_ERROR, cases[i].code);
  }
  /* A compressed cluster inside the image counts. */
  put64(l2 + 8, (1ULL << 62) | (4 * c + 100));
  {
    QpQcow2Allocation a;
    g_assert_true(qp_qcow2_allocation_scan_buffer(h, img->data, img->len, &a, NULL));
    g_assert_cmpuint(a.data_clusters, ==, 3);
  }
  /* Truncated buffer: the L2 table no longer fits. */
  {
    g_autoptr(GError) error = NULL;
    QpQcow2Allocation a;
    g_assert_false(qp_qcow2_allocation_scan_buffer(h, img->data, 3 * c + 100, &a, &error));
    g_assert_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED);
  }
}

/* Random byte damage in the first cluster and the tables: anything may fail, but only
 * with a QP_QCOW2_ERROR, and a parsed header must scan without overreading. */
static void
test_random_damage(void)
{
  Spec s = spec_default();
  g_autoptr(Image) img = image_build(&s);
  g_autoptr(GRand) rand = g_rand_new_with_seed(20261201);
  guint parsed = 0;

  for (guint round = 0; round < 20000; round++) {
    g_autofree guint8 *copy = g_memdup2(img->data, img->len);
    g_autoptr(GError) error = NULL;
    g_autoptr(QpQcow2Header) h = NULL;
    guint flips = g_rand_int_range(rand, 1, 8);
    gsize len = img->len;

    for (guint f = 0; f < flips; f++) {
      guint32 pos = g_rand_boolean(rand) ? g_rand_int_range(rand, 0, 128)
                                         : g_rand_int_range(rand, 0, (gint32)img->len);
      copy[pos] = (guint8)g_rand_int(rand);
    }
    if (g_rand_int_range(rand, 0, 4) == 0)
      len = g_rand_int_range(rand, 0, (gint32)img->len);
    h = qp_qcow2_header_parse(copy, len, len, &error);
    if (h == NULL) {
      g_assert_nonnull(error);
      g_assert_true(error->domain == QP_QCOW2_ERROR);
      continue;
    }
    parsed++;
    {
      QpQcow2Allocation a;
      g_autoptr(GError) scan_error = NULL;
      if (!qp_qcow2_allocation_scan_buffer(h, copy, len, &a, &scan_error))
        g_assert_true(scan_error->domain == QP_QCOW2_ERROR);
    }
  }
  /* Most single flips land in unused bytes: many must still parse. */
  g_assert_cmpuint(parsed, >, 1000);
}

int
main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  g_test_add_func("/qcow2-hostile/valid", test_valid);
  g_test_add_func("/qcow2-hostile/truncated-everywhere", test_truncated_everywhere);
  g_test_add_func("/qcow2-hostile/magic-version", test_magic_version);
  g_test_add_func("/qcow2-hostile/cluster-bits", test_cluster_bits);
  g_test_add_func("/qcow2-hostile/header-length", test_header_length);
  g_test_add_func("/qcow2-hostile/version2", test_version2);
  g_test_add_func("/qcow2-hostile/refcount-order", test_refcount_order);
  g_test_add_func("/qcow2-hostile/incompatible", test_incompatible);
  g_test_add_func("/qcow2-hostile/compression", test_compression);
  g_test_add_func("/qcow2-hostile/extended-l2", test_extended_l2);
  g_test_add_func("/qcow2-hostile/crypt", test_crypt);
  g_test_add_func("/qcow2-hostile/table-offsets", test_table_offsets);
  g_test_add_func("/qcow2-hostile/l1-size", test_l1_size);
  g_test_add_func("/qcow2-hostile/extensions", test_extensions);
  g_test_add_func("/qcow2-hostile/extension-flood", test_extension_flood);
  g_test_add_func("/qcow2-hostile/backing-name", test_backing_name);
  g_test_add_func("/qcow2-hostile/allocation", test_allocation_hostile);
  g_test_add_func("/qcow2-hostile/random-damage", test_random_damage);
  return g_test_run();
}
