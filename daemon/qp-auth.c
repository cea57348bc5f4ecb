/* Caller authorization. */
#include "config.h"

#include "qp-auth.h"

#include <glib/gi18n.h>
#ifdef HAVE_POLKIT
#include <polkit/polkit.h>
#endif

#include "qp-error.h"

struct _QpAuth {
  gboolean allow_all;
#ifdef HAVE_POLKIT
  PolkitAuthority *authority;
#endif
};

QpAuth *
qp_auth_new(gboolean allow_all)
{
  QpAuth *auth = g_new0(QpAuth, 1);
  auth->allow_all = allow_all;
#ifdef HAVE_POLKIT
  if (!allow_all) {
    g_autoptr(GError) error = NULL;
    auth->authority = polkit_authority_get_sync(NULL, &error);
    if (auth->authority == NULL)
      g_warning("polkit is not available, only uid 0 may change anything: %s", error->message);
  }
#endif
  return auth;
}

void
qp_auth_free(QpAuth *auth)
{
  if (auth == NULL)
    return;
#ifdef HAVE_POLKIT
  g_clear_object(&auth->authority);
#endif
  g_free(auth);
}

static void
qp_auth_uid_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(GTask) task = G_TASK(user_data);
  g_autoptr(GVariant) reply = NULL;
  GError *error = NULL;
  guint32 uid = 0;

  reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), res, &error);
  if (reply == NULL) {
    g_prefix_error(&error, "%s", _("Cannot identify the caller: "));
    g_task_return_error(task, error);
    return;
  }
  g_variant_get(reply, "(u)", &uid);
  g_task_return_int(task, uid);
}

void
qp_auth_get_caller_uid_async(GDBusMethodInvocation *invocation, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);
  g_dbus_connection_call(
      g_dbus_method_invocation_get_connection(invocation), "org.freedesktop.DBus",
      "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionUnixUser",
      g_variant_new("(s)", g_dbus_method_invocation_get_sender(invocation)), G_VARIANT_TYPE("(u)"),
      G_DBUS_CALL_FLAGS_NONE, -1, cancellable, qp_auth_uid_cb, task);
}

gboolean
qp_auth_get_caller_uid_finish(GAsyncResult *res, guint32 *uid, GError **error)
{
  gssize val = g_task_propagate_int(G_TASK(res), error);
  if (val < 0)
    return FALSE;
  *uid = (guint32)val;
  return TRUE;
}

static void
qp_auth_root_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(GTask) task = G_TASK(user_data);
  GError *error = NULL;
  guint32 uid = G_MAXUINT32;

  if (!qp_auth_get_caller_uid_finish(res, &uid, &error)) {
    qp_error_convert(&error);
    g_task_return_error(task, error);
    return;
  }
  if (uid != 0) {
    g_task_return_new_error(task, QP_ERROR, QP_ERROR_NOT_AUTHORIZED,
                            _("Not authorized: without polkit only root may do this"));
    return;
  }
  g_task_return_boolean(task, TRUE);
}

#ifdef HAVE_POLKIT
static void
qp_auth_polkit_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
  g_autoptr(GTask) task = G_TASK(user_data);
  g_autoptr(PolkitAuthorizationResult) result = NULL;
  g_autoptr(GError) error = NULL;

  result = polkit_authority_check_authorization_finish(POLKIT_AUTHORITY(source), res, &error);
  if (result == NULL) {
    /* no polkitd on this bus: the same rule as a build without polkit, root only */
    if (g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN)
        || g_error_matches(error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER)) {
      GDBusMethodInvocation *invocation = g_task_get_task_data(task);
      qp_auth_get_caller_uid_async(invocation, g_task_get_cancellable(task), qp_auth_root_cb,
                                   g_steal_pointer(&task));
      return;
    }
    g_dbus_error_strip_remote_error(error);
    g_task_return_new_error(task, QP_ERROR, QP_ERROR_NOT_AUTHORIZED,
                            _("Could not check authorization: %s"), error->message);
    return;
  }
  if (polkit_authorization_result_get_is_authorized(result)) {
    g_task_return_boolean(task, TRUE);
    return;
  }
  if (polkit_authorization_result_get_dismissed(result)) {
    g_task_return_new_error(task, QP_ERROR, QP_ERROR_AUTH_CANCELED,
                            _("Authentication was dismissed"));
    return;
  }
  if (polkit_authorization_result_get_is_challenge(result)) {
    g_task_return_new_error(task, QP_ERROR, QP_ERROR_NOT_AUTHORIZED,
                            _("Not authorized: authentication is required (pass the "
                              "“interactive” option to be asked)"));
    return;
  }
  g_task_return_new_error(task, QP_ERROR, QP_ERROR_NOT_AUTHORIZED, _("Not authorized"));
}
#endif

void
qp_auth_check_async(QpAuth *auth, GDBusMethodInvocation *invocation, const char *action_id,
                    gboolean interactive, GCancellable *cancellable, GAsyncReadyCallback callback,
                    gpointer user_data)
{
  GTask *task = g_task_new(NULL, cancellable, callback, user_data);

  g_task_set_task_data(task, g_object_ref(invocation), g_object_unref);
  if (auth->allow_all) {
    g_task_return_boolean(task, TRUE);
    g_object_unref(task);
    return;
  }
#ifdef HAVE_POLKIT
  if (auth->authority != NULL) {
    g_autoptr(PolkitSubject) subject
        = polkit_system_bus_name_new(g_dbus_method_invocation_get_sender(invocation));
    PolkitCheckAuthorizationFlags flags = POLKIT_CHECK_AUTHORIZATION_FLAGS_NONE;
    if (interactive)
      flags |= POLKIT_CHECK_AUTHORIZATION_FLAGS_ALLOW_USER_INTERACTION;
    polkit_authority_check_authorization(auth->authority, subject, action_id, NULL, flags,
                                         cancellable, qp_auth_polkit_cb, task);
    return;
  }
#endif
  qp_auth_get_caller_uid_async(invocation, cancellable, qp_auth_root_cb, task);
}

gboolean
qp_auth_check_finish(QpAuth *auth, GAsyncResult *res, GError **error)
{
  return g_task_propagate_boolean(G_TASK(res), error);
}
