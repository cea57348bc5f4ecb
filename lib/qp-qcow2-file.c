/* File access for the qcow2 engine: safe opening, bounded header reads, allocation scans
 * with one pread per table, and backing chain resolution. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qp-be.h"
#include "qp-qcow2-file.h"
#include "qp-qcow2-private.h"

/* First read of an image: the header, its extensions and the backing file name of
 * every image qemu-img writes fit in 4 KiB. Only when the parser needs more (a header
 * that really uses its first cluster) do we read up to the first cluster. */
#define QP_QCOW2_FILE_FIRST_READ 4096

/* Paths and backing names are bytes from the caller and from image headers; messages
 * go to D-Bus, JSON and logs, which carry only UTF-8. Every public function of this
 * file passes its error through here. */
static void
qp_qcow2_error_make_valid(GError **error)
{
  if (error == NULL || *error == NULL || g_utf8_validate((*error)->message, -1, NULL))
    return;
  {
    char *valid = g_utf8_make_valid((*error)->message, -1);
    g_free((*error)->message);
    (*error)->message = valid;
  }
}

static gboolean
qp_qcow2_pread_full(int fd, guint8 *buf, gsize count, guint64 offset, gsize *got, GError **error)
{
  gsize done = 0;

  while (done < count) {
    ssize_t n = pread(fd, buf + done, count - done, (off_t)(offset + done));
    if (n < 0) {
      int saved = errno;
      if (saved == EINTR)
        continue;
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO,
                  _("cannot read %zu bytes at offset %" PRIu64 ": %s"), count, offset,
                  g_strerror(saved));
      return FALSE;
    }
    if (n == 0)
      break;
    done += (gsize)n;
  }
  if (got != NULL) {
    *got = done;
  } else if (done < count) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
                _("short read: %zu of %zu bytes at offset %" PRIu64), done, count, offset);
    return FALSE;
  }
  return TRUE;
}

static int
qp_qcow2_file_open_unchecked(const char *path, guint64 *file_size, GError **error)
{
  struct stat st;
  int fd;

  g_return_val_if_fail(path != NULL, -1);

  /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. */
  fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int saved = errno;
    if (saved == ELOOP) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_A_FILE,
                  _("%s: too many levels of symbolic links (a symlink loop?)"), path);
    } else if (saved == ENXIO) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_A_FILE,
                  _("%s: not a regular file or block device (%s)"), path, g_strerror(saved));
    } else {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO, _("%s: cannot open: %s"), path,
                  g_strerror(saved));
    }
    return -1;
  }
  if (fstat(fd, &st) < 0) {
    int saved = errno;
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO, _("%s: cannot stat: %s"), path,
                g_strerror(saved));
    close(fd);
    return -1;
  }
  if (S_ISREG(st.st_mode)) {
    if (file_size != NULL)
      *file_size = (guint64)st.st_size;
  } else if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
      int saved = errno;
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO,
                  _("%s: cannot get the block device's size: %s"), path, g_strerror(saved));
      close(fd);
      return -1;
    }
    if (file_size != NULL)
      *file_size = (guint64)end;
  } else {
    const char *kind = S_ISDIR(st.st_mode)    ? _("a directory")
                       : S_ISFIFO(st.st_mode) ? _("a FIFO")
                       : S_ISSOCK(st.st_mode) ? _("a socket")
                       : S_ISCHR(st.st_mode)  ? _("a character device")
                                              : _("not a regular file");
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_NOT_A_FILE,
                _("%s: is %s, only regular files and block devices are read"), path, kind);
    close(fd);
    return -1;
  }
  return fd;
}

int
qp_qcow2_file_open(const char *path, guint64 *file_size, GError **error)
{
  int ret = qp_qcow2_file_open_unchecked(path, file_size, error);

  if (ret < 0)
    qp_qcow2_error_make_valid(error);
  return ret;
}

static QpQcow2Header *
qp_qcow2_file_read_header_fd_unchecked(int fd, guint64 file_size, const char *path, GError **error)
{
  gsize want = (gsize)MIN(file_size, (guint64)QP_QCOW2_FILE_FIRST_READ);
  g_autofree guint8 *buf = g_malloc(MAX(want, 1));
  gsize got = 0;
  g_autoptr(GError) error_local = NULL;
  QpQcow2Header *header;

  if (!qp_qcow2_pread_full(fd, buf, want, 0, &got, error)) {
    g_prefix_error(error, "%s: ", path);
    return NULL;
  }
  header = qp_qcow2_header_parse(buf, got, file_size, &error_local);
  if (header != NULL)
    return header;

  /* The header may use more of its first cluster than the first read held. */
  if (g_error_matches(error_local, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED) && got == want
      && got < file_size && got >= 24) {
    guint32 bits = qp_be_u32(buf + 20);
    if (bits >= QP_QCOW2_MIN_CLUSTER_BITS && bits <= QP_QCOW2_MAX_CLUSTER_BITS
        && (1ULL << bits) > got) {
      gsize more = (gsize)MIN(file_size, 1ULL << bits);
      g_free(buf);
      buf = g_malloc(more);
      if (!qp_qcow2_pread_full(fd, buf, more, 0, &got, error)) {
        g_prefix_error(error, "%s: ", path);
        return NULL;
      }
      g_clear_error(&error_local);
      header = qp_qcow2_header_parse(buf, got, file_size, &error_local);
      if (header != NULL)
        return header;
    }
  }
  g_propagate_prefixed_error(error, g_steal_pointer(&error_local), "%s: ", path);
  return NULL;
}

QpQcow2Header *
qp_qcow2_file_read_header_fd(int fd, guint64 file_size, const char *path, GError **error)
{
  QpQcow2Header *ret = qp_qcow2_file_read_header_fd_unchecked(fd, file_size, path, error);

  if (ret == NULL)
    qp_qcow2_error_make_valid(error);
  return ret;
}

QpQcow2Header *
qp_qcow2_file_read_header(const char *path, GError **error)
{
  guint64 file_size = 0;
  QpQcow2Header *header;
  int fd = qp_qcow2_file_open(path, &file_size, error);

  if (fd < 0)
    return NULL;
  header = qp_qcow2_file_read_header_fd(fd, file_size, path, error);
  close(fd);
  return header;
}

static gboolean
qp_qcow2_file_scan_fd(int fd, guint64 file_size, const QpQcow2Header *h, QpQcow2Allocation *out,
                      GError **error)
{
  gsize l1_bytes = (gsize)h->l1_size * 8; /* <= 32 MiB: checked by the parser */
  g_autofree guint8 *l1 = NULL;
  g_autofree guint8 *l2 = NULL;

  out->l2_tables = 0;
  out->data_clusters = 0;
  if (l1_bytes == 0)
    return TRUE;
  if (!qp_be_in_bounds(file_size, h->l1_table_offset, l1_bytes)) {
    g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_TRUNCATED,
                _("active L1 table at offset 0x%" PRIx64
                  " (%zu bytes) reaches past the end of the file (%" PRIu64 " bytes)"),
                h->l1_table_offset, l1_bytes, file_size);
    return FALSE;
  }
  l1 = g_malloc(l1_bytes);
  if (!qp_qcow2_pread_full(fd, l1, l1_bytes, h->l1_table_offset, NULL, error))
    return FALSE;

  /* One reused buffer, one pread per L2 table. */
  l2 = g_malloc(h->cluster_size);
  for (guint32 i = 0; i < h->l1_size; i++) {
    guint64 l2_offset = 0;
    if (!qp_qcow2_check_l1_entry(h, qp_be_u64(l1 + (gsize)i * 8), i, file_size, &l2_offset, error))
      return FALSE;
    if (l2_offset == 0)
      continue;
    if (!qp_qcow2_pread_full(fd, l2, h->cluster_size, l2_offset, NULL, error))
      return FALSE;
    if (!qp_qcow2_count_l2_table(h, l2, l2_offset, file_size, out, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
qp_qcow2_file_scan_allocation_unchecked(const char *path, const QpQcow2Header *header,
                                        QpQcow2Allocation *out, GError **error)
{
  guint64 file_size = 0;
  gboolean ret;
  int fd;

  g_return_val_if_fail(header != NULL, FALSE);
  g_return_val_if_fail(out != NULL, FALSE);

  fd = qp_qcow2_file_open(path, &file_size, error);
  if (fd < 0)
    return FALSE;
#ifdef POSIX_FADV_SEQUENTIAL
  (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  ret = qp_qcow2_file_scan_fd(fd, file_size, header, out, error);
  close(fd);
  if (!ret)
    g_prefix_error(error, "%s: ", path);
  return ret;
}

gboolean
qp_qcow2_file_scan_allocation(const char *path, const QpQcow2Header *header, QpQcow2Allocation *out,
                              GError **error)
{
  gboolean ret = qp_qcow2_file_scan_allocation_unchecked(path, header, out, error);

  if (!ret)
    qp_qcow2_error_make_valid(error);
  return ret;
}

void
qp_qcow2_layer_free(QpQcow2Layer *layer)
{
  if (layer == NULL)
    return;
  g_free(layer->path);
  g_free(layer->format);
  qp_qcow2_header_free(layer->header);
  g_free(layer);
}

char *
qp_qcow2_backing_path(const char *image_path, const char *backing_file)
{
  g_autofree char *dir = NULL;

  g_return_val_if_fail(image_path != NULL, NULL);
  g_return_val_if_fail(backing_file != NULL, NULL);

  if (g_path_is_absolute(backing_file))
    return g_strdup(backing_file);
  dir = g_path_get_dirname(image_path);
  if (g_strcmp0(dir, ".") == 0 && !g_str_has_prefix(image_path, "./"))
    return g_strdup(backing_file);
  return g_build_filename(dir, backing_file, NULL);
}

/* A backing name is a protocol (nbd:, json:, rbd:, ...) when a ':' comes before any '/'
 * (libvirt's rule; a relative file name with ':' can be written "./a:b"). */
static gboolean
qp_qcow2_backing_is_protocol(const char *name)
{
  const char *colon = strchr(name, ':');
  const char *slash = strchr(name, '/');
  return colon != NULL && (slash == NULL || colon < slash);
}

typedef struct {
  dev_t dev;
  ino_t ino;
} QpQcow2FileId;

static guint
qp_qcow2_file_id_hash(gconstpointer p)
{
  const QpQcow2FileId *id = p;
  return (guint)id->ino ^ (guint)(id->ino >> 32) ^ (guint)id->dev;
}

static gboolean
qp_qcow2_file_id_equal(gconstpointer a, gconstpointer b)
{
  const QpQcow2FileId *x = a;
  const QpQcow2FileId *y = b;
  return x->dev == y->dev && x->ino == y->ino;
}

/* Depth: libvirt's virStorageSourceGetMetadataRecurse numbers the top image 1 and
 * refuses an image whose number exceeds max_depth (the QEMU driver passes 200). So a
 * chain of 200 images (the top and 199 backing layers) is accepted and the 201st
 * image is refused; we count the same way. */
static GPtrArray *
qp_qcow2_chain_resolve_unchecked(const char *path, const char *format, GError **error)
{
  g_autoptr(GPtrArray) layers = g_ptr_array_new_with_free_func((GDestroyNotify)qp_qcow2_layer_free);
  g_autoptr(GHashTable) seen
      = g_hash_table_new_full(qp_qcow2_file_id_hash, qp_qcow2_file_id_equal, g_free, NULL);
  g_autofree char *cur_path = g_strdup(path);
  g_autofree char *cur_format = g_strdup(format);
  g_autofree char *parent_path = NULL;

  g_return_val_if_fail(path != NULL, NULL);
  g_return_val_if_fail(format != NULL, NULL);

  for (guint depth = 1;; depth++) {
    g_autoptr(QpQcow2Layer) layer = NULL;
    QpQcow2FileId *id;
    struct stat st;
    guint64 file_size = 0;
    int fd;

    if (depth > QP_QCOW2_MAX_CHAIN_DEPTH) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_CHAIN,
                  _("%s: backing chain is deeper than %d images (libvirt's limit); %s "
                    "would be image %u"),
                  path, QP_QCOW2_MAX_CHAIN_DEPTH, cur_path, depth);
      return NULL;
    }
    fd = qp_qcow2_file_open(cur_path, &file_size, error);
    if (fd < 0) {
      if (parent_path != NULL)
        g_prefix_error(error, _("backing file of %s: "), parent_path);
      return NULL;
    }
    if (fstat(fd, &st) < 0) {
      int saved = errno;
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_IO, _("%s: cannot stat: %s"), cur_path,
                  g_strerror(saved));
      close(fd);
      return NULL;
    }
    id = g_new0(QpQcow2FileId, 1);
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    if (g_hash_table_contains(seen, id)) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_CHAIN,
                  _("%s: backing chain loop: %s (named by %s) is already in the chain"), path,
                  cur_path, parent_path != NULL ? parent_path : path);
      g_free(id);
      close(fd);
      return NULL;
    }
    g_hash_table_add(seen, id);

    layer = g_new0(QpQcow2Layer, 1);
    layer->path = g_strdup(cur_path);
    layer->format = g_strdup(cur_format);
    if (g_strcmp0(cur_format, "qcow2") != 0) {
      /* A non-qcow2 layer ends the chain: we never look inside other formats. */
      close(fd);
      g_ptr_array_add(layers, g_steal_pointer(&layer));
      break;
    }
    layer->header = qp_qcow2_file_read_header_fd(fd, file_size, cur_path, error);
    close(fd);
    if (layer->header == NULL)
      return NULL;

    if (layer->header->backing_file == NULL) {
      g_ptr_array_add(layers, g_steal_pointer(&layer));
      break;
    }
    if (qp_qcow2_backing_is_protocol(layer->header->backing_file)) {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_CHAIN,
                  _("%s: backing file '%s': network/protocol backing file not supported"), cur_path,
                  layer->header->backing_file);
      return NULL;
    }
    if (layer->header->backing_format == NULL || layer->header->backing_format[0] == '\0') {
      g_set_error(error, QP_QCOW2_ERROR, QP_QCOW2_ERROR_CHAIN,
                  _("backing format not recorded in %s; refusing to probe (backing file "
                    "'%s')"),
                  cur_path, layer->header->backing_file);
      return NULL;
    }

    g_free(parent_path);
    parent_path = g_steal_pointer(&cur_path);
    cur_path = qp_qcow2_backing_path(parent_path, layer->header->backing_file);
    g_free(cur_format);
    cur_format = g_strdup(layer->header->backing_format);
    g_ptr_array_add(layers, g_steal_pointer(&layer));
  }
  return g_steal_pointer(&layers);
}

GPtrArray *
qp_qcow2_chain_resolve(const char *path, const char *format, GError **error)
{
  GPtrArray *ret = qp_qcow2_chain_resolve_unchecked(path, format, error);

  if (ret == NULL)
    qp_qcow2_error_make_valid(error);
  return ret;
}
