/* qcow2 header reading and validation: the engine's view of one image.
 *
 * Pure C on GLib. The parser works on a buffer (fuzzable); qp-qcow2-file.h adds
 * the file access around it. Everything an image header says is untrusted.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QP_QCOW2_ERROR (qp_qcow2_error_quark())
GQuark
qp_qcow2_error_quark(void);

typedef enum {
  QP_QCOW2_ERROR_IO,          /* open, stat or read failed (errno text in the message) */
  QP_QCOW2_ERROR_NOT_A_FILE,  /* FIFO, directory, socket, char device, symlink loop */
  QP_QCOW2_ERROR_NOT_QCOW2,   /* wrong magic */
  QP_QCOW2_ERROR_TRUNCATED,   /* a structure reaches past the end of the buffer or file */
  QP_QCOW2_ERROR_INVALID,     /* a field QEMU refuses at open */
  QP_QCOW2_ERROR_UNSUPPORTED, /* unknown version or incompatible feature, as QEMU refuses */
  QP_QCOW2_ERROR_CHAIN,       /* backing chain loop, too deep, missing or unknown format */
} QpQcow2Error;

/* QEMU's bounds (block/qcow2.h). */
#define QP_QCOW2_MIN_CLUSTER_BITS 9
#define QP_QCOW2_MAX_CLUSTER_BITS 21
#define QP_QCOW2_MAGIC            0x514649fbU /* "QFI\xfb" */

/* Incompatible feature bits (docs/interop/qcow2.txt). */
#define QP_QCOW2_INCOMPAT_DIRTY       (1ULL << 0)
#define QP_QCOW2_INCOMPAT_CORRUPT     (1ULL << 1)
#define QP_QCOW2_INCOMPAT_DATA_FILE   (1ULL << 2)
#define QP_QCOW2_INCOMPAT_COMPRESSION (1ULL << 3)
#define QP_QCOW2_INCOMPAT_EXTL2       (1ULL << 4)

/* Compatible / autoclear bits. */
#define QP_QCOW2_COMPAT_LAZY_REFCOUNTS (1ULL << 0)
#define QP_QCOW2_AUTOCLEAR_BITMAPS     (1ULL << 0)
#define QP_QCOW2_AUTOCLEAR_DATA_RAW    (1ULL << 1)

typedef enum {
  QP_QCOW2_COMPRESSION_ZLIB = 0,
  QP_QCOW2_COMPRESSION_ZSTD = 1,
} QpQcow2Compression;

/* Everything QEMU reads from the header and its extensions. Sizes are bytes. */
typedef struct {
  guint32 version;       /* 2 or 3 */
  guint32 header_length; /* 72 for v2, as stored for v3 */
  guint32 cluster_bits;
  guint64 cluster_size;
  guint64 virtual_size;
  guint32 crypt_method; /* 0 none, 1 AES, 2 LUKS */
  guint32 l1_size;      /* entries */
  guint64 l1_table_offset;
  guint64 refcount_table_offset;
  guint32 refcount_table_clusters;
  guint32 nb_snapshots;
  guint64 snapshots_offset;
  guint64 incompatible_features;
  guint64 compatible_features;
  guint64 autoclear_features;
  guint32 refcount_order;
  guint32 refcount_bits;
  QpQcow2Compression compression_type;

  /* Derived. */
  gboolean extended_l2;
  guint32 l2_entry_size;   /* 8, or 16 with extended L2 */
  guint64 subcluster_size; /* cluster_size / 32 with extended L2, else cluster_size */
  gboolean dirty;
  gboolean corrupt;
  gboolean lazy_refcounts;

  /* Header extensions. NULL / 0 when absent. */
  char *backing_file;           /* as stored in the image, not resolved */
  char *backing_format;         /* backing format extension (0xe2792aca) */
  char *data_file;              /* external data file name extension (0x44415441) */
  gboolean data_file_raw;       /* autoclear bit 1 */
  guint64 crypto_header_offset; /* full disk encryption header extension (0x0537be77) */
  guint64 crypto_header_length;
  guint32 nb_bitmaps; /* bitmaps extension (0x23852875) */
  guint64 bitmap_directory_offset;
  guint64 bitmap_directory_size;
  GPtrArray *feature_names; /* of QpQcow2FeatureName, from extension 0x6803f857 */
  guint32 nb_unknown_extensions;
} QpQcow2Header;

typedef struct {
  guint8 type; /* 0 incompatible, 1 compatible, 2 autoclear */
  guint8 bit;
  char *name;
} QpQcow2FeatureName;

/* Parse and validate the header at the start of @buf, in QEMU's order (qcow2_do_open).
 * @buf holds the first bytes of the image: at least up to the end of the header
 * extensions and the backing file name (the first cluster, or the whole file when it
 * is shorter, always suffices). @file_size is the size of the whole image file, used to
 * check table offsets; pass G_MAXUINT64 when unknown.
 * Returns NULL with QP_QCOW2_ERROR_TRUNCATED when @buf is too short for what the
 * header says; the message names the field and its value. */
QpQcow2Header *
qp_qcow2_header_parse(const guint8 *buf, gsize len, guint64 file_size, GError **error);
void
qp_qcow2_header_free(QpQcow2Header *header);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpQcow2Header, qp_qcow2_header_free)

/* Short human names for JSON/tables: "zlib"/"zstd". */
const char *
qp_qcow2_compression_name(QpQcow2Compression type);

/* Allocation found by walking the L1 and L2 tables. */
typedef struct {
  guint64 l2_tables;     /* allocated L2 tables referenced from the active L1 */
  guint64 data_clusters; /* L2 entries with a host cluster (normal or compressed), plus
                          * zero clusters with a preallocated host offset */
} QpQcow2Allocation;

/* Walk the active L1 table and every allocated L2 table of an image held whole in @buf
 * (fuzzable). Every table offset is validated against @len before use. */
gboolean
qp_qcow2_allocation_scan_buffer(const QpQcow2Header *header, const guint8 *buf, gsize len,
                                QpQcow2Allocation *out, GError **error);

G_END_DECLS
