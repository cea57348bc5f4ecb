/* The daemon: bus name, exported objects, the libvirt connection and its events, and the
 * scheduling of reconciles onto worker threads. Main-loop thread only. */
#pragma once

#include <gio/gio.h>

#include "qp-config.h"

G_BEGIN_DECLS

#define QP_DBUS_NAME          "org.qcow2policyd.Policy1"
#define QP_DBUS_PATH          "/org/qcow2policyd/Policy1"
#define QP_DBUS_MANAGER_PATH  QP_DBUS_PATH "/Manager"
#define QP_DBUS_DOMAIN_PREFIX QP_DBUS_PATH "/domain/"

#define QP_TYPE_DAEMON (qp_daemon_get_type())
G_DECLARE_FINAL_TYPE(QpDaemon, qp_daemon, QP, DAEMON, GObject)

/* Takes @config. @session: the session bus and no authorization (development). */
QpDaemon *
qp_daemon_new(QpConfig *config, gboolean session);

/* Own the bus name, export the objects, connect to libvirt; runs until SIGTERM/SIGINT or
 * until the bus name is lost. Returns FALSE with @error when it could not run. */
gboolean
qp_daemon_run(QpDaemon *self, GError **error);

G_END_DECLS
