/* Authorizing D-Bus callers: polkit keyed on the caller's bus name; without polkit only
 * uid 0; with --session (development) everyone. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define QP_AUTH_ACTION_SET_POLICY "org.qcow2policyd.Policy1.set-policy"
#define QP_AUTH_ACTION_APPLY      "org.qcow2policyd.Policy1.apply"
#define QP_AUTH_ACTION_ANALYZE    "org.qcow2policyd.Policy1.analyze"

typedef struct _QpAuth QpAuth;

/* @allow_all: --session mode. Otherwise polkit is used when built with it and polkitd
 * answers; else uid 0 only. */
QpAuth *
qp_auth_new(gboolean allow_all);
void
qp_auth_free(QpAuth *auth);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(QpAuth, qp_auth_free)

/* Check that the sender of @invocation may do @action_id. The result is a gboolean;
 * errors are QP_ERROR_NOT_AUTHORIZED or QP_ERROR_AUTH_CANCELED. */
void
qp_auth_check_async(QpAuth *auth, GDBusMethodInvocation *invocation, const char *action_id,
                    gboolean interactive, GCancellable *cancellable, GAsyncReadyCallback callback,
                    gpointer user_data);
gboolean
qp_auth_check_finish(QpAuth *auth, GAsyncResult *res, GError **error);

/* The caller's uid (org.freedesktop.DBus.GetConnectionUnixUser); a guint32. */
void
qp_auth_get_caller_uid_async(GDBusMethodInvocation *invocation, GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean
qp_auth_get_caller_uid_finish(GAsyncResult *res, guint32 *uid, GError **error);

G_END_DECLS
