/* QP_ERROR and its D-Bus names. */
#include "config.h"

#include "qp-error.h"

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "qp-domain-xml.h"
#include "qp-qcow2.h"
#include "qp-size.h"

static const GDBusErrorEntry qp_error_entries[] = {
  { QP_ERROR_FAILED, "org.qcow2policyd.Policy1.Error.Failed" },
  { QP_ERROR_INVALID_ARGS, "org.qcow2policyd.Policy1.Error.InvalidArgs" },
  { QP_ERROR_NOT_FOUND, "org.qcow2policyd.Policy1.Error.NotFound" },
  { QP_ERROR_NOT_AUTHORIZED, "org.qcow2policyd.Policy1.Error.NotAuthorized" },
  { QP_ERROR_AUTH_CANCELED, "org.qcow2policyd.Policy1.Error.AuthCanceled" },
  { QP_ERROR_INVALID_POLICY, "org.qcow2policyd.Policy1.Error.InvalidPolicy" },
  { QP_ERROR_CHAIN_MISMATCH, "org.qcow2policyd.Policy1.Error.ChainMismatch" },
  { QP_ERROR_LIBVIRT, "org.qcow2policyd.Policy1.Error.Libvirt" },
  { QP_ERROR_IMAGE, "org.qcow2policyd.Policy1.Error.Image" },
};
G_STATIC_ASSERT(G_N_ELEMENTS(qp_error_entries) == QP_ERROR_LAST);

GQuark
qp_error_quark(void)
{
  static gsize quark = 0;
  g_dbus_error_register_error_domain("qp-error-quark", &quark, qp_error_entries,
                                     G_N_ELEMENTS(qp_error_entries));
  return (GQuark)quark;
}

static QpError
qp_error_code_for(const GError *error)
{
  if (error->domain == QP_XML_ERROR) {
    if (error->code == QP_XML_ERROR_POLICY)
      return QP_ERROR_INVALID_POLICY;
    if (error->code == QP_XML_ERROR_CHAIN_MISMATCH)
      return QP_ERROR_CHAIN_MISMATCH;
    return QP_ERROR_FAILED;
  }
  if (error->domain == QP_QCOW2_ERROR)
    return QP_ERROR_IMAGE;
  if (error->domain == QP_SIZE_ERROR)
    return QP_ERROR_INVALID_ARGS;
  if (error->domain == G_IO_ERROR) {
    switch (error->code) {
    case G_IO_ERROR_NOT_FOUND:
      return QP_ERROR_NOT_FOUND;
    case G_IO_ERROR_PERMISSION_DENIED:
      return QP_ERROR_NOT_AUTHORIZED;
    case G_IO_ERROR_INVALID_ARGUMENT:
      return QP_ERROR_INVALID_ARGS;
    case G_IO_ERROR_CANCELLED:
      return QP_ERROR_AUTH_CANCELED;
    default:
      return QP_ERROR_FAILED;
    }
  }
  if (error->domain == G_FILE_ERROR) {
    if (error->code == G_FILE_ERROR_NOENT)
      return QP_ERROR_NOT_FOUND;
    if (error->code == G_FILE_ERROR_ACCES || error->code == G_FILE_ERROR_PERM)
      return QP_ERROR_NOT_AUTHORIZED;
    return QP_ERROR_IMAGE;
  }
  return QP_ERROR_FAILED;
}

void
qp_error_convert(GError **error)
{
  GError *old;

  if (error == NULL || *error == NULL)
    return;
  old = *error;
  if (old->domain == QP_ERROR)
    return;
  /* a remote D-Bus error (e.g. from polkitd) must not leak its name prefix */
  if (g_dbus_error_is_remote_error(old))
    g_dbus_error_strip_remote_error(old);
  *error = g_error_new_literal(QP_ERROR, qp_error_code_for(old), old->message);
  g_error_free(old);
}

void
qp_error_set_libvirt(GError **error, const char *context)
{
  virErrorPtr err = virGetLastError();
  const char *msg = err != NULL && err->message != NULL ? err->message : _("unknown libvirt error");
  QpError code = QP_ERROR_LIBVIRT;

  if (err != NULL && err->code == VIR_ERR_NO_DOMAIN)
    code = QP_ERROR_NOT_FOUND;
  g_set_error(error, QP_ERROR, code, "%s: %s", context, msg);
}

gboolean
qp_error_libvirt_no_domain(void)
{
  virErrorPtr err = virGetLastError();
  return err != NULL && err->code == VIR_ERR_NO_DOMAIN;
}
