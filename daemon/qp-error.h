/* The daemon's error domain: the only one registered with D-Bus names. Every error is
 * passed through qp_error_convert() before it crosses the bus. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define QP_ERROR (qp_error_quark())
GQuark
qp_error_quark(void);

/* Keep in step with the table in qp-error.c (checked at compile time) and with the
 * error names documented in schemas/org.qcow2policyd.Policy1.xml. */
typedef enum {
  QP_ERROR_FAILED,
  QP_ERROR_INVALID_ARGS,
  QP_ERROR_NOT_FOUND,
  QP_ERROR_NOT_AUTHORIZED,
  QP_ERROR_AUTH_CANCELED,
  QP_ERROR_INVALID_POLICY,
  QP_ERROR_CHAIN_MISMATCH,
  QP_ERROR_LIBVIRT,
  QP_ERROR_IMAGE,
  QP_ERROR_LAST /*< skip >*/
} QpError;

/* Map an error of any layer (lib, xml, GIO, polkit) onto QP_ERROR, keeping its message. */
void
qp_error_convert(GError **error);

/* Set @error from libvirt's last error of this thread, prefixed with @context. */
void
qp_error_set_libvirt(GError **error, const char *context);

/* TRUE when libvirt's last error of this thread says the domain does not exist. */
gboolean
qp_error_libvirt_no_domain(void);

G_END_DECLS
