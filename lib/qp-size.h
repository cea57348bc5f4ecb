/* Scaled integers as libvirt reads them (virScaleInteger): "512", "64K", "1GiB", "2TB". */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QP_SIZE_ERROR (qp_size_error_quark())
GQuark
qp_size_error_quark(void);

typedef enum {
  QP_SIZE_ERROR_INVALID,  /* not a number with a known unit */
  QP_SIZE_ERROR_OVERFLOW, /* larger than 2^64 - 1 bytes */
} QpSizeError;

/* Units, case-insensitive: B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB, E/EiB (powers of 1024),
 * KB, MB, GB, TB, PB, EB (powers of 1000). No sign, no fraction, no exponent, no spaces
 * other than none; the whole string must be consumed. Errors quote @str. */
gboolean
qp_size_parse(const char *str, guint64 *out, GError **error);

/* "128 MiB", "1.5 GiB", "512 B": for tables meant for people. */
char *
qp_size_format(guint64 bytes);

G_END_DECLS
