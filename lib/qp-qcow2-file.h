/* File access for the qcow2 engine: safe opening, header reads, allocation scans and
 * backing chain resolution. A thin layer over the buffer parsers in qp-qcow2.h. */
#pragma once

#include "qp-qcow2.h"

G_BEGIN_DECLS

/* libvirt's limit, counted as libvirt counts it: virStorageSourceGetMetadataRecurse numbers
 * the top image 1 and fails on an image whose number exceeds the QEMU driver's max_depth
 * of 200. So a chain of 200 images (the top and 199 backing layers) is accepted and one of
 * 201 images is refused. */
#define QP_QCOW2_MAX_CHAIN_DEPTH 200

/* Open @path for reading without blocking: O_RDONLY|O_NONBLOCK|O_CLOEXEC|O_NOCTTY, then
 * fstat; only regular files and block devices are accepted (a FIFO, directory, socket or
 * char device is refused at once, never read). Returns an fd or -1 with @error set.
 * @file_size gets the size (st_size, or the block device's size). */
int
qp_qcow2_file_open(const char *path, guint64 *file_size, GError **error);

/* Read and parse the header of the qcow2 image at @path. Errors are prefixed with the path. */
QpQcow2Header *
qp_qcow2_file_read_header(const char *path, GError **error);

/* Same as qp_qcow2_file_read_header on an fd opened by qp_qcow2_file_open. */
QpQcow2Header *
qp_qcow2_file_read_header_fd(int fd, guint64 file_size, const char *path, GError **error);

/* Scan allocation of the image at @path (header already read). Uses pread on the tables
 * only: never reads data clusters. */
gboolean
qp_qcow2_file_scan_allocation(const char *path, const QpQcow2Header *header, QpQcow2Allocation *out,
                              GError **error);

/* One layer of a backing chain. */
typedef struct {
  char *path;            /* resolved path (relative names resolved against the
                          * directory of the image that names them) */
  char *format;          /* declared format: "qcow2", "raw", ... never probed */
  QpQcow2Header *header; /* parsed header when format is "qcow2", else NULL */
} QpQcow2Layer;

void
qp_qcow2_layer_free(QpQcow2Layer *layer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpQcow2Layer, qp_qcow2_layer_free)

/* Resolve the chain starting at @path with declared @format (the top image first).
 * Each backing layer's format is the backing format recorded in its parent's header;
 * a qcow2 layer with a backing file but no recorded backing format is an error
 * (QP_QCOW2_ERROR_CHAIN: we never probe). Loops (same device+inode seen twice) and
 * chains deeper than QP_QCOW2_MAX_CHAIN_DEPTH are refused. A non-qcow2 layer ends the
 * chain. Returns a GPtrArray of QpQcow2Layer (element free func set). */
GPtrArray *
qp_qcow2_chain_resolve(const char *path, const char *format, GError **error);

/* Resolve a backing file name as QEMU does for local files: absolute names are kept,
 * relative names are taken relative to the directory of @image_path. */
char *
qp_qcow2_backing_path(const char *image_path, const char *backing_file);

G_END_DECLS
