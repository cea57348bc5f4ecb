/* A domain's exported object: the generated skeleton with its method handlers as
 * interface vfuncs, so that thousands of domains carry no signal closures of their own. */
#pragma once

#include "qp-dbus-generated.h"
#include "qp-figures.h"

G_BEGIN_DECLS

typedef struct {
  gboolean (*set_policy)(QpDomain *iface, GDBusMethodInvocation *invocation, guint percent,
                         GVariant *options, gpointer data);
  gboolean (*clear_policy)(QpDomain *iface, GDBusMethodInvocation *invocation, GVariant *options,
                           gpointer data);
  gboolean (*apply)(QpDomain *iface, GDBusMethodInvocation *invocation, GVariant *options,
                    gpointer data);
} QpDaemonDomainHandlers;

#define QP_TYPE_DAEMON_DOMAIN (qp_daemon_domain_get_type())
G_DECLARE_FINAL_TYPE(QpDaemonDomain, qp_daemon_domain, QP, DAEMON_DOMAIN, QpDomainSkeleton)

/* @handlers must outlive the object; @data (not referenced) is passed to them. */
QpDomain *
qp_daemon_domain_new(const QpDaemonDomainHandlers *handlers, gpointer data);

/* Takes @disks (NULL: none); emits PropertiesChanged when they differ from the last. */
void
qp_daemon_domain_set_disks(QpDaemonDomain *self, QpDiskFigures *disks);

G_END_DECLS
