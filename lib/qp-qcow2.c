/* qcow2 header parsing and validation, in the order of QEMU's qcow2_do_open.
 *
 * Every field is untrusted: each read goes through qp-be.h, each offset and size is
 * checked for overflow (sizes by division, offsets by subtraction) before use. */
#include "config.h"

#include <glib/gi18n.h>
#include <inttypes.h>
#include <string.h>

#include "qp-be.h"
#include "qp-qcow2-private.h"

G_DEFINE_QUARK(qp_qcow2_error, qp_qcow2_error)

/* Header layout (docs/interop/qcow2.txt). */
#define QP_QCOW2_V2_HEADER_LENGTH      72
#define QP_QCOW2_V3_MIN_HEADER_LENGTH  104
#define QP_QCOW2_OFF_MAGIC             0
#define QP_QCOW2_OFF_VERSION           4
#define QP_QCOW2_OFF_BACKING_OFFSET    8
#define QP_QCOW2_OFF_BACKING_SIZE      16
#define QP_QCOW2_OFF_CLUSTER_BITS      20
#define QP_QCOW2_OFF_SIZE              24
#define QP_QCOW2_OFF_CRYPT_METHOD      32
#define QP_QCOW2_OFF_L1_SIZE           36
#define QP_QCOW2_OFF_L1_OFFSET         40
#define QP_QCOW2_OFF_REFTABLE_OFFSET   48
#define QP_QCOW2_OFF_REFTABLE_CLUSTERS 56
#define QP_QCOW2_OFF_NB_SNAPSHOTS      60
#define QP_QCOW2_OFF_SNAPSHOTS_OFFSET  64
#define QP_QCOW2_OFF_INCOMPAT          72
#define QP_QCOW2_OFF_COMPAT            80
#define QP_QCOW2_OFF_AUTOCLEAR         88
#define QP_QCOW2_OFF_REFCOUNT_ORDER    96
#define QP_QCOW2_OFF_HEADER_LENGTH     100
#define QP_QCOW2_OFF_COMPRESSION_TYPE  104

/* Feature bits QEMU knows (QCOW2_INCOMPAT_MASK, QCOW2_AUTOCLEAR_MASK). */
#define QP_QCOW2_INCOMPAT_KNOWN                                                                    \
  (QP_QCOW2_INCOMPAT_DIRTY | QP_QCOW2_INCOMPAT_CORRUPT | QP_QCOW2_INCOMPAT_DATA_FILE               \
   | QP_QCOW2_INCOMPAT_COMPRESSION | QP_QCOW2_INCOMPAT_EXTL2)

/* Header extension types. */
#define QP_QCOW2_EXT_END            0x00000000U
#define QP_QCOW2_EXT_BACKING_FORMAT 0xe2792acaU
#define QP_QCOW2_EXT_FEATURE_TABLE  0x6803f857U
#define QP_QCOW2_EXT_CRYPTO_HEADER  0x0537be77U
#define QP_QCOW2_EXT_BITMAPS        0x23852875U
#define QP_QCOW2_EXT_DATA_FILE      0x44415441U
#define QP_QCOW2_EXT_HEADER_SIZE    8
#define QP_QCOW2_FEATURE_ENTRY_SIZE 48 /* type, bit, 46-byte name */
#define QP_QCOW2_FEATURE_NAME_SIZE  46
#define QP_QCOW2_CRYPTO_EXT_SIZE    16
#define QP_QCOW2_BITMAPS_EXT_SIZE   24

/* QEMU's limits (block/qcow2.h). The L1 limit bounds the virtual size to 2^61 bytes,
 * so the cache arithmetic in qp-cache.c cannot overflow. */
#define QP_QCOW2_MAX_L1_SIZE               (32ULL * 1024 * 1024) /* bytes: 2 PiB at 64 KiB */
#define QP_QCOW2_MAX_REFTABLE_SIZE         (8ULL * 1024 * 1024)  /* bytes: 2 PiB at 64 KiB */
#define QP_QCOW2_MAX_SNAPSHOTS             65536
#define QP_QCOW2_SNAPSHOT_HEADER_SIZE      40 /* fixed part of a snapshot table entry */
#define QP_QCOW2_MAX_BITMAPS               65535
#define QP_QCOW2_MAX_BITMAP_DIRECTORY_SIZE (1024ULL * QP_QCOW2_MAX_BITMAPS)
/* bs->backing_format is char[16], bs->backing_file char[4096] but the header
 * field is capped at 1023 bytes. */
#define QP_QCOW2_MAX_BACKING_FORMAT 16
#define QP_QCOW2_MAX_BACKING_FILE   1023
#define QP_QCOW2_EXTL2_SUBCLUSTERS  32
#define QP_QCOW2_CRYPT_NONE         0
#define QP_QCOW2_CRYPT_AES          1
#define QP_QCOW2_CRYPT_LUKS         2

static void
qp_qcow2_feature_name_free(QpQcow2FeatureName *feature)
{
  g_free(feature->name);
  g_free(feature);
}

void
qp_qcow2_header_free(QpQcow2Header *header)
{
  if (header == NULL)
    return;
  g_free(header->backing_file);
  g_free(header->backing_format);
  g_free(header->data_file);
  if (header->feature_names != NULL)
    g_ptr_array_unref(header->feature_names);
  g_free(header);
}

const char *
qp_qcow2_compression_name(QpQcow2Compression type)
{
  switch (type) {
  case QP_QCOW2_COMPRESSION_ZLIB:
    return "zlib";
  case QP_QCOW2_COMPRESSION_ZSTD:
    return "zstd";
  default:
    return "unknown";
  }
}

static gboolean
qp_qcow2_truncated(GError **error, const char *what, guint64 end, gsize len)
{
  g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
              _("%s ends at byte %" PRIu64 " but only %zu bytes are available"), what, end, len);
  return FALSE;
}

/* QEMU's qcow2_validate_table, plus a check against the file's size. */
static gboolean
qp_qcow2_validate_table(const QpQcow2Header *h, guint64 offset, guint64 entries, guint64 entry_len,
                        guint64 max_bytes, guint64 file_size, const char *name, GError **error)
{
  guint64 bytes;

  if (entries > max_bytes / entry_len) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("%s too large: %" PRIu64 " entries of %" PRIu64
                  " bytes exceed QEMU's limit of %" PRIu64 " bytes"),
                name, entries, entry_len, max_bytes);
    return FALSE;
  }
  bytes = entries * entry_len;
  if ((guint64)G_MAXINT64 - bytes < offset) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("%s offset invalid: 0x%" PRIx64 " plus %" PRIu64 " bytes wraps past 2^63"), name,
                offset, bytes);
    return FALSE;
  }
  if ((offset & (h->cluster_size - 1)) != 0) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("%s offset invalid: 0x%" PRIx64 " is not aligned to the "
                  "cluster size %" PRIu64),
                name, offset, h->cluster_size);
    return FALSE;
  }
  if (bytes > 0 && offset + bytes > file_size) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
                _("%s at offset 0x%" PRIx64 " (%" PRIu64
                  " bytes) reaches past the end of the file (%" PRIu64 " bytes)"),
                name, offset, bytes, file_size);
    return FALSE;
  }
  return TRUE;
}

typedef enum {
  QP_QCOW2_WALK_FULL,       /* validate and record everything (qcow2_read_extensions) */
  QP_QCOW2_WALK_NAMES_ONLY, /* collect feature names for an error message; never fail */
} QpQcow2WalkMode;

static char *
qp_qcow2_strndup(const guint8 *p, gsize n)
{
  /* A NUL inside the field ends the string, as QEMU's C strings do. */
  return g_strndup((const char *)p, n);
}

static void
qp_qcow2_parse_feature_table(QpQcow2Header *h, const guint8 *p, guint32 elen)
{
  guint32 n = elen / QP_QCOW2_FEATURE_ENTRY_SIZE;

  if (h->feature_names == NULL)
    h->feature_names = g_ptr_array_new_with_free_func((GDestroyNotify)qp_qcow2_feature_name_free);
  for (guint32 i = 0; i < n; i++) {
    const guint8 *e = p + (gsize)i * QP_QCOW2_FEATURE_ENTRY_SIZE;
    QpQcow2FeatureName *f = g_new0(QpQcow2FeatureName, 1);
    f->type = e[0];
    f->bit = e[1];
    f->name = qp_qcow2_strndup(e + 2, QP_QCOW2_FEATURE_NAME_SIZE);
    g_ptr_array_add(h->feature_names, f);
  }
}

/* Walk the header extensions in [header_length, ext_end) as qcow2_read_extensions
 * does. The loop advances at least 8 bytes each turn and ext_end <= 2 MiB, so it
 * ends within 2^18 turns whatever the image says. */
static gboolean
qp_qcow2_walk_extensions(QpQcow2Header *h, const guint8 *buf, gsize len, guint64 file_size,
                         guint64 ext_end, QpQcow2WalkMode mode, GError **error)
{
  guint64 offset = h->header_length;

  while (offset < ext_end) {
    guint32 magic = 0;
    guint32 elen = 0;
    const guint8 *data;

    if (ext_end - offset < QP_QCOW2_EXT_HEADER_SIZE) {
      if (mode == QP_QCOW2_WALK_NAMES_ONLY)
        return TRUE;
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                  _("header extension at offset %" PRIu64
                    " too large: its 8-byte type and length reach past the end of the "
                    "extension area (%" PRIu64 ")"),
                  offset, ext_end);
      return FALSE;
    }
    if (!qp_be_read_u32_safe(buf, len, offset, &magic)
        || !qp_be_read_u32_safe(buf, len, offset + 4, &elen)) {
      if (mode == QP_QCOW2_WALK_NAMES_ONLY && len >= file_size)
        return TRUE;
      return qp_qcow2_truncated(error, _("header extension header"), offset + 8, len);
    }
    offset += QP_QCOW2_EXT_HEADER_SIZE;
    if (elen > ext_end - offset) {
      if (mode == QP_QCOW2_WALK_NAMES_ONLY)
        return TRUE;
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                  _("header extension 0x%08x too large: length %u, but only %" PRIu64
                    " bytes remain before offset %" PRIu64),
                  magic, elen, ext_end - offset, ext_end);
      return FALSE;
    }
    if (magic == QP_QCOW2_EXT_END)
      return TRUE;
    if (!qp_be_in_bounds(len, offset, elen)) {
      if (mode == QP_QCOW2_WALK_NAMES_ONLY && len >= file_size)
        return TRUE;
      return qp_qcow2_truncated(error, _("header extension data"), offset + elen, len);
    }
    data = buf + offset;

    if (mode == QP_QCOW2_WALK_NAMES_ONLY) {
      if (magic == QP_QCOW2_EXT_FEATURE_TABLE)
        qp_qcow2_parse_feature_table(h, data, elen);
      offset += ((guint64)elen + 7) & ~(guint64)7;
      continue;
    }

    switch (magic) {
    case QP_QCOW2_EXT_BACKING_FORMAT:
      if (elen >= QP_QCOW2_MAX_BACKING_FORMAT) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("backing format extension length is %u, must be below %d"), elen,
                    QP_QCOW2_MAX_BACKING_FORMAT);
        return FALSE;
      }
      g_free(h->backing_format);
      h->backing_format = qp_qcow2_strndup(data, elen);
      break;

    case QP_QCOW2_EXT_FEATURE_TABLE:
      if (h->feature_names != NULL)
        g_ptr_array_set_size(h->feature_names, 0);
      qp_qcow2_parse_feature_table(h, data, elen);
      break;

    case QP_QCOW2_EXT_CRYPTO_HEADER:
      if (h->crypt_method != QP_QCOW2_CRYPT_LUKS) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("full disk encryption header extension found, but crypt_method is %u "
                      "(it is only valid with LUKS, 2)"),
                    h->crypt_method);
        return FALSE;
      }
      if (elen != QP_QCOW2_CRYPTO_EXT_SIZE) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("full disk encryption header extension length is %u, must be %d"), elen,
                    QP_QCOW2_CRYPTO_EXT_SIZE);
        return FALSE;
      }
      h->crypto_header_offset = qp_be_u64(data);
      h->crypto_header_length = qp_be_u64(data + 8);
      if ((h->crypto_header_offset & (h->cluster_size - 1)) != 0) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("encryption header offset %" PRIu64
                      " is not a multiple of the cluster size %" PRIu64),
                    h->crypto_header_offset, h->cluster_size);
        return FALSE;
      }
      break;

    case QP_QCOW2_EXT_BITMAPS: {
      guint32 nb;
      guint32 reserved;
      guint64 dir_size;
      guint64 dir_offset;

      if (elen != QP_QCOW2_BITMAPS_EXT_SIZE) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("bitmaps extension length is %u, must be %d"), elen,
                    QP_QCOW2_BITMAPS_EXT_SIZE);
        return FALSE;
      }
      /* Without the autoclear bit a program unaware of bitmaps wrote the image:
       * QEMU considers them all inconsistent and ignores the extension. */
      if ((h->autoclear_features & QP_QCOW2_AUTOCLEAR_BITMAPS) == 0)
        break;
      nb = qp_be_u32(data);
      reserved = qp_be_u32(data + 4);
      dir_size = qp_be_u64(data + 8);
      dir_offset = qp_be_u64(data + 16);
      if (reserved != 0) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("bitmaps extension reserved field is 0x%08x, must be zero"), reserved);
        return FALSE;
      }
      if (nb > QP_QCOW2_MAX_BITMAPS) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("nb_bitmaps is %u, must not exceed %d"), nb, QP_QCOW2_MAX_BITMAPS);
        return FALSE;
      }
      if (nb == 0) {
        g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                            _("nb_bitmaps is 0 in a bitmaps extension, must be at least 1"));
        return FALSE;
      }
      if ((dir_offset & (h->cluster_size - 1)) != 0) {
        g_set_error(
            error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
            _("bitmap_directory_offset 0x%" PRIx64 " is not aligned to the cluster size %" PRIu64),
            dir_offset, h->cluster_size);
        return FALSE;
      }
      if (dir_size > QP_QCOW2_MAX_BITMAP_DIRECTORY_SIZE) {
        g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                    _("bitmap_directory_size is %" PRIu64 ", must not exceed %llu"), dir_size,
                    QP_QCOW2_MAX_BITMAP_DIRECTORY_SIZE);
        return FALSE;
      }
      h->nb_bitmaps = nb;
      h->bitmap_directory_size = dir_size;
      h->bitmap_directory_offset = dir_offset;
      break;
    }

    case QP_QCOW2_EXT_DATA_FILE:
      g_free(h->data_file);
      h->data_file = qp_qcow2_strndup(data, elen);
      break;

    default:
      h->nb_unknown_extensions++;
      break;
    }
    offset += ((guint64)elen + 7) & ~(guint64)7;
  }
  return TRUE;
}

static gboolean
qp_qcow2_refuse_unknown_features(QpQcow2Header *h, const guint8 *buf, gsize len, guint64 file_size,
                                 guint64 ext_end, GError **error)
{
  guint64 unknown = h->incompatible_features & ~(guint64)QP_QCOW2_INCOMPAT_KNOWN;
  g_autoptr(GString) names = g_string_new(NULL);
  g_autoptr(GString) bits = g_string_new(NULL);

  /* The names are a courtesy: a broken table only loses them, unless the buffer
   * is shorter than the file (then the caller must read more). */
  if (!qp_qcow2_walk_extensions(h, buf, len, file_size, ext_end, QP_QCOW2_WALK_NAMES_ONLY, error))
    return FALSE;

  for (guint bit = 0; bit < 64; bit++) {
    if ((unknown & (1ULL << bit)) == 0)
      continue;
    if (bits->len > 0)
      g_string_append(bits, ", ");
    g_string_append_printf(bits, "%u", bit);
    for (guint i = 0; h->feature_names != NULL && i < h->feature_names->len; i++) {
      QpQcow2FeatureName *f = g_ptr_array_index(h->feature_names, i);
      if (f->type != 0 || f->bit != bit || f->name[0] == '\0')
        continue;
      if (names->len > 0)
        g_string_append(names, ", ");
      {
        /* the name is 46 bytes of the image: anything at all */
        g_autofree char *shown = g_utf8_make_valid(f->name, -1);
        g_string_append_printf(names, "%u (%s)", bit, shown);
      }
      break;
    }
  }
  if (names->len > 0) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                _("unsupported incompatible feature bit(s) %s: %s (incompatible_features "
                  "0x%" PRIx64 ")"),
                bits->str, names->str, h->incompatible_features);
  } else {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                _("unsupported incompatible feature bit(s) %s (incompatible_features "
                  "0x%" PRIx64 ")"),
                bits->str, h->incompatible_features);
  }
  return FALSE;
}

QpQcow2Header *
qp_qcow2_header_parse(const guint8 *buf, gsize len, guint64 file_size, GError **error)
{
  g_autoptr(QpQcow2Header) h = g_new0(QpQcow2Header, 1);
  guint32 magic = 0;
  guint64 backing_file_offset;
  guint32 backing_file_size;
  guint64 ext_end;
  guint64 l1_index;
  guint32 l2_bits;
  guint32 shift;

  g_return_val_if_fail(buf != NULL || len == 0, NULL);

  if (!qp_be_read_u32_safe(buf, len, QP_QCOW2_OFF_MAGIC, &magic)) {
    qp_qcow2_truncated(error, _("qcow2 magic"), 4, len);
    return NULL;
  }
  if (magic != QP_QCOW2_MAGIC) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_QCOW2,
                _("not a qcow2 image: magic is 0x%08x, expected 0x%08x"), magic, QP_QCOW2_MAGIC);
    return NULL;
  }
  if (!qp_be_in_bounds(len, 0, QP_QCOW2_V2_HEADER_LENGTH)) {
    qp_qcow2_truncated(error, _("qcow2 header"), QP_QCOW2_V2_HEADER_LENGTH, len);
    return NULL;
  }

  h->version = qp_be_u32(buf + QP_QCOW2_OFF_VERSION);
  backing_file_offset = qp_be_u64(buf + QP_QCOW2_OFF_BACKING_OFFSET);
  backing_file_size = qp_be_u32(buf + QP_QCOW2_OFF_BACKING_SIZE);
  h->cluster_bits = qp_be_u32(buf + QP_QCOW2_OFF_CLUSTER_BITS);
  h->virtual_size = qp_be_u64(buf + QP_QCOW2_OFF_SIZE);
  h->crypt_method = qp_be_u32(buf + QP_QCOW2_OFF_CRYPT_METHOD);
  h->l1_size = qp_be_u32(buf + QP_QCOW2_OFF_L1_SIZE);
  h->l1_table_offset = qp_be_u64(buf + QP_QCOW2_OFF_L1_OFFSET);
  h->refcount_table_offset = qp_be_u64(buf + QP_QCOW2_OFF_REFTABLE_OFFSET);
  h->refcount_table_clusters = qp_be_u32(buf + QP_QCOW2_OFF_REFTABLE_CLUSTERS);
  h->nb_snapshots = qp_be_u32(buf + QP_QCOW2_OFF_NB_SNAPSHOTS);
  h->snapshots_offset = qp_be_u64(buf + QP_QCOW2_OFF_SNAPSHOTS_OFFSET);

  if (h->version < 2 || h->version > 3) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                _("qcow2 version is %u, must be 2 or 3"), h->version);
    return NULL;
  }

  /* Range first: nothing may shift by cluster_bits before this. */
  if (h->cluster_bits < QP_QCOW2_MIN_CLUSTER_BITS || h->cluster_bits > QP_QCOW2_MAX_CLUSTER_BITS) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("cluster_bits is %u, must be between %d and %d"), h->cluster_bits,
                QP_QCOW2_MIN_CLUSTER_BITS, QP_QCOW2_MAX_CLUSTER_BITS);
    return NULL;
  }
  h->cluster_size = 1ULL << h->cluster_bits;

  if (h->version == 2) {
    h->refcount_order = 4;
    h->header_length = QP_QCOW2_V2_HEADER_LENGTH;
  } else {
    if (!qp_be_in_bounds(len, 0, QP_QCOW2_V3_MIN_HEADER_LENGTH)) {
      qp_qcow2_truncated(error, _("qcow2 version 3 header"), QP_QCOW2_V3_MIN_HEADER_LENGTH, len);
      return NULL;
    }
    h->incompatible_features = qp_be_u64(buf + QP_QCOW2_OFF_INCOMPAT);
    h->compatible_features = qp_be_u64(buf + QP_QCOW2_OFF_COMPAT);
    h->autoclear_features = qp_be_u64(buf + QP_QCOW2_OFF_AUTOCLEAR);
    h->refcount_order = qp_be_u32(buf + QP_QCOW2_OFF_REFCOUNT_ORDER);
    h->header_length = qp_be_u32(buf + QP_QCOW2_OFF_HEADER_LENGTH);
    if (h->header_length < QP_QCOW2_V3_MIN_HEADER_LENGTH) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                  _("header_length is %u, must be at least %d for version 3"), h->header_length,
                  QP_QCOW2_V3_MIN_HEADER_LENGTH);
      return NULL;
    }
  }
  if (h->header_length > h->cluster_size) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("header_length is %u, exceeds the cluster size %" PRIu64), h->header_length,
                h->cluster_size);
    return NULL;
  }
  if (!qp_be_in_bounds(len, 0, h->header_length)) {
    qp_qcow2_truncated(error, _("qcow2 header"), h->header_length, len);
    return NULL;
  }

  if (backing_file_offset > h->cluster_size) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("backing_file_offset is %" PRIu64 ", must not exceed the cluster size %" PRIu64),
                backing_file_offset, h->cluster_size);
    return NULL;
  }
  ext_end = backing_file_offset != 0 ? backing_file_offset : h->cluster_size;

  /* Compression type: only in headers long enough to hold it. */
  if (h->header_length > QP_QCOW2_OFF_COMPRESSION_TYPE) {
    guint8 type = buf[QP_QCOW2_OFF_COMPRESSION_TYPE];
    if (type != QP_QCOW2_COMPRESSION_ZLIB && type != QP_QCOW2_COMPRESSION_ZSTD) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                  _("compression_type is %u, must be 0 (zlib) or 1 (zstd)"), type);
      return NULL;
    }
    h->compression_type = type;
  } else {
    h->compression_type = QP_QCOW2_COMPRESSION_ZLIB;
  }
  if (h->compression_type == QP_QCOW2_COMPRESSION_ZLIB
      && (h->incompatible_features & QP_QCOW2_INCOMPAT_COMPRESSION) != 0) {
    g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                        _("compression type incompatible feature bit (3) is set, but "
                          "compression_type is 0 (zlib)"));
    return NULL;
  }
  if (h->compression_type != QP_QCOW2_COMPRESSION_ZLIB
      && (h->incompatible_features & QP_QCOW2_INCOMPAT_COMPRESSION) == 0) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("compression_type is %u (%s), but the compression type incompatible "
                  "feature bit (3) is not set"),
                h->compression_type, qp_qcow2_compression_name(h->compression_type));
    return NULL;
  }

  if ((h->incompatible_features & ~(guint64)QP_QCOW2_INCOMPAT_KNOWN) != 0) {
    qp_qcow2_refuse_unknown_features(h, buf, len, file_size, ext_end, error);
    return NULL;
  }

  /* QEMU refuses read-write opens of corrupt images; reading is what we do. */
  h->dirty = (h->incompatible_features & QP_QCOW2_INCOMPAT_DIRTY) != 0;
  h->corrupt = (h->incompatible_features & QP_QCOW2_INCOMPAT_CORRUPT) != 0;
  h->lazy_refcounts = (h->compatible_features & QP_QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
  h->data_file_raw = (h->autoclear_features & QP_QCOW2_AUTOCLEAR_DATA_RAW) != 0;

  h->extended_l2 = (h->incompatible_features & QP_QCOW2_INCOMPAT_EXTL2) != 0;
  h->l2_entry_size = h->extended_l2 ? 16 : 8;
  h->subcluster_size
      = h->extended_l2 ? h->cluster_size / QP_QCOW2_EXTL2_SUBCLUSTERS : h->cluster_size;
  if (h->subcluster_size < (1ULL << QP_QCOW2_MIN_CLUSTER_BITS)) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("subcluster size is %" PRIu64
                  " bytes, must be at least 512: extended L2 entries need cluster_bits of "
                  "at least 14, cluster_bits is %u"),
                h->subcluster_size, h->cluster_bits);
    return NULL;
  }

  if (h->refcount_order > 6) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("refcount_order is %u, must not exceed 6 (64-bit refcounts)"), h->refcount_order);
    return NULL;
  }
  h->refcount_bits = 1U << h->refcount_order;

  if (h->crypt_method > QP_QCOW2_CRYPT_LUKS) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                _("crypt_method is %u, must be 0 (none), 1 (AES) or 2 (LUKS)"), h->crypt_method);
    return NULL;
  }
  /* QEMU system emulators (what runs the guest) refuse AES-CBC images. */
  if (h->crypt_method == QP_QCOW2_CRYPT_AES) {
    g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_UNSUPPORTED,
                        _("crypt_method is 1 (AES): QEMU system emulators no longer open "
                          "AES-CBC encrypted qcow2 images"));
    return NULL;
  }

  if (h->refcount_table_clusters == 0) {
    g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                        _("refcount_table_clusters is 0: the image has no reference count "
                          "table"));
    return NULL;
  }
  if (!qp_qcow2_validate_table(h, h->refcount_table_offset, h->refcount_table_clusters,
                               h->cluster_size, QP_QCOW2_MAX_REFTABLE_SIZE, file_size,
                               _("reference count table"), error))
    return NULL;
  if (!qp_qcow2_validate_table(h, h->snapshots_offset, h->nb_snapshots,
                               QP_QCOW2_SNAPSHOT_HEADER_SIZE,
                               (guint64)QP_QCOW2_SNAPSHOT_HEADER_SIZE * QP_QCOW2_MAX_SNAPSHOTS,
                               file_size, _("snapshot table"), error))
    return NULL;
  if (!qp_qcow2_validate_table(h, h->l1_table_offset, h->l1_size, 8, QP_QCOW2_MAX_L1_SIZE,
                               file_size, _("active L1 table"), error))
    return NULL;

  /* size_to_l1 without the overflow of V + 2^shift - 1. */
  l2_bits = h->cluster_bits - (h->extended_l2 ? 4 : 3);
  shift = h->cluster_bits + l2_bits;
  l1_index = (h->virtual_size >> shift) + ((h->virtual_size & ((1ULL << shift) - 1)) != 0);
  if (l1_index > G_MAXINT32) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("virtual size %" PRIu64 " is too big: it needs %" PRIu64 " L1 entries"),
                h->virtual_size, l1_index);
    return NULL;
  }
  if (h->l1_size < l1_index) {
    g_set_error(
        error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
        _("l1_size is %u, too small: the virtual size %" PRIu64 " needs %" PRIu64 " L1 entries"),
        h->l1_size, h->virtual_size, l1_index);
    return NULL;
  }

  if (!qp_qcow2_walk_extensions(h, buf, len, file_size, ext_end, QP_QCOW2_WALK_FULL, error))
    return NULL;

  if ((h->incompatible_features & QP_QCOW2_INCOMPAT_DATA_FILE) != 0) {
    if (h->data_file == NULL) {
      g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                          _("external data file bit (2) is set, but the image has no "
                            "external data file name extension (0x44415441)"));
      return NULL;
    }
  } else if (h->data_file_raw) {
    g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                        _("data-file-raw autoclear bit (1) is set, but the image has no "
                          "external data file"));
    return NULL;
  }

  /* Offset 0 holds the qcow2 header, so a real crypto header is never there. */
  if (h->crypt_method == QP_QCOW2_CRYPT_LUKS && h->crypto_header_offset == 0) {
    g_set_error_literal(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                        _("crypt_method is 2 (LUKS), but the full disk encryption header "
                          "extension (0x0537be77) is missing"));
    return NULL;
  }

  if (backing_file_offset != 0) {
    guint64 room = h->cluster_size - backing_file_offset;
    if (backing_file_size > MIN(QP_QCOW2_MAX_BACKING_FILE, room)) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                  _("backing_file_size is %u, must not exceed %" PRIu64
                    " (1023, and the name must end within the first cluster)"),
                  backing_file_size, MIN((guint64)QP_QCOW2_MAX_BACKING_FILE, room));
      return NULL;
    }
    if (!qp_be_in_bounds(len, backing_file_offset, backing_file_size)) {
      qp_qcow2_truncated(error, _("backing file name"), backing_file_offset + backing_file_size,
                         len);
      return NULL;
    }
    if (backing_file_size > 0)
      h->backing_file = qp_qcow2_strndup(buf + backing_file_offset, backing_file_size);
    if (h->backing_file != NULL && h->backing_file[0] == '\0')
      g_clear_pointer(&h->backing_file, g_free);
  }

  return g_steal_pointer(&h);
}

/* L1/L2 entry layout (docs/interop/qcow2.txt). */
#define QP_QCOW2_OFFSET_MASK      0x00fffffffffffe00ULL /* L1E_OFFSET_MASK, L2E_OFFSET_MASK */
#define QP_QCOW2_OFLAG_COPIED     (1ULL << 63)
#define QP_QCOW2_OFLAG_COMPRESSED (1ULL << 62)
#define QP_QCOW2_OFLAG_ZERO       (1ULL << 0)

gboolean
qp_qcow2_check_l1_entry(const QpQcow2Header *h, guint64 entry, guint32 l1_index, guint64 limit,
                        guint64 *l2_offset, GError **error)
{
  guint64 offset = entry & QP_QCOW2_OFFSET_MASK;

  *l2_offset = offset;
  if (offset == 0)
    return TRUE;
  if ((offset & (h->cluster_size - 1)) != 0) {
    g_set_error(
        error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
        _("L1 entry %u: L2 table offset 0x%" PRIx64 " is not aligned to the cluster size %" PRIu64),
        l1_index, offset, h->cluster_size);
    return FALSE;
  }
  if (!qp_be_in_bounds(limit, offset, h->cluster_size)) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
                _("L1 entry %u: L2 table at offset 0x%" PRIx64
                  " reaches past the end of the image (%" PRIu64 " bytes)"),
                l1_index, offset, limit);
    return FALSE;
  }
  return TRUE;
}

static gboolean
qp_qcow2_bad_host_offset(const QpQcow2Header *h, guint64 l2_offset, guint64 index, guint64 host,
                         guint64 limit, gboolean aligned, GError **error)
{
  if (!aligned) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("L2 table at 0x%" PRIx64 ", entry %" PRIu64 ": host offset 0x%" PRIx64
                  " is not aligned to the cluster size %" PRIu64),
                l2_offset, index, host, h->cluster_size);
  } else {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_INVALID,
                _("L2 table at 0x%" PRIx64 ", entry %" PRIu64 ": host offset 0x%" PRIx64
                  " lies past the end of the image (%" PRIu64 " bytes)"),
                l2_offset, index, host, limit);
  }
  return FALSE;
}

gboolean
qp_qcow2_count_l2_table(const QpQcow2Header *h, const guint8 *l2, guint64 l2_offset, guint64 limit,
                        QpQcow2Allocation *out, GError **error)
{
  const guint64 entries = h->cluster_size / h->l2_entry_size;
  const guint64 stride = h->l2_entry_size;
  const guint64 cmask = h->cluster_size - 1;
  const gboolean external = (h->incompatible_features & QP_QCOW2_INCOMPAT_DATA_FILE) != 0;
  const gboolean extl2 = h->extended_l2;
  /* Compressed descriptors: the host offset is in bits 0 .. 61 - (cluster_bits - 8). */
  const guint64 compressed_mask = (1ULL << (62 - (h->cluster_bits - 8))) - 1;
  const guint64 data_limit = external ? G_MAXUINT64 : limit;
  guint64 count = 0;

  for (guint64 i = 0; i < entries; i++) {
    guint64 e = qp_be_u64(l2 + i * stride);
    guint64 host;

    if (e == 0)
      continue;
    if ((e & QP_QCOW2_OFLAG_COMPRESSED) != 0) {
      host = e & compressed_mask;
      if (host >= data_limit)
        return qp_qcow2_bad_host_offset(h, l2_offset, i, host, limit, TRUE, error);
      count++;
      continue;
    }
    host = e & QP_QCOW2_OFFSET_MASK;
    if (host == 0) {
      /* Offset 0 is a real cluster only in an external data file (COPIED set);
       * otherwise unallocated or a plain zero cluster. */
      if (external && (e & QP_QCOW2_OFLAG_COPIED) != 0 && !(!extl2 && (e & QP_QCOW2_OFLAG_ZERO)))
        count++;
      continue;
    }
    if ((host & cmask) != 0)
      return qp_qcow2_bad_host_offset(h, l2_offset, i, host, limit, FALSE, error);
    if (host >= data_limit)
      return qp_qcow2_bad_host_offset(h, l2_offset, i, host, limit, TRUE, error);
    count++;
  }
  out->l2_tables++;
  out->data_clusters += count;
  return TRUE;
}

gboolean
qp_qcow2_allocation_scan_buffer(const QpQcow2Header *h, const guint8 *buf, gsize len,
                                QpQcow2Allocation *out, GError **error)
{
  guint64 l1_bytes;

  g_return_val_if_fail(h != NULL, FALSE);
  g_return_val_if_fail(out != NULL, FALSE);

  out->l2_tables = 0;
  out->data_clusters = 0;
  l1_bytes = (guint64)h->l1_size * 8;
  if (!qp_be_in_bounds(len, h->l1_table_offset, l1_bytes)) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
                _("active L1 table at offset 0x%" PRIx64 " (%" PRIu64
                  " bytes) reaches past the end of the image (%zu bytes)"),
                h->l1_table_offset, l1_bytes, len);
    return FALSE;
  }
  for (guint32 i = 0; i < h->l1_size; i++) {
    guint64 l2_offset = 0;
    guint64 e = qp_be_u64(buf + h->l1_table_offset + (guint64)i * 8);
    if (!qp_qcow2_check_l1_entry(h, e, i, len, &l2_offset, error))
      return FALSE;
    if (l2_offset == 0)
      continue;
    if (!qp_qcow2_count_l2_table(h, buf + l2_offset, l2_offset, len, out, error))
      return FALSE;
  }
  return TRUE;
}
