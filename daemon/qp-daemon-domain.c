/* The Domain skeleton with vfunc method handlers (see qp-daemon-domain.h). */
#include "config.h"

#include "qp-daemon-domain.h"

struct _QpDaemonDomain {
  QpDomainSkeleton parent_instance;
  const QpDaemonDomainHandlers *handlers;
  gpointer data;
};

static void
qp_daemon_domain_iface_init(QpDomainIface *iface);

/* The parent's implementation of QpDomain (the property getters) is copied by GType before
 * qp_daemon_domain_iface_init replaces the method handlers. */
G_DEFINE_TYPE_WITH_CODE(QpDaemonDomain, qp_daemon_domain, QP_TYPE_DOMAIN_SKELETON,
                        G_IMPLEMENT_INTERFACE(QP_TYPE_DOMAIN, qp_daemon_domain_iface_init))

static gboolean
qp_daemon_domain_handle_set_policy(QpDomain *iface, GDBusMethodInvocation *invocation,
                                   guint percent, GVariant *options)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(iface);
  return self->handlers->set_policy(iface, invocation, percent, options, self->data);
}

static gboolean
qp_daemon_domain_handle_clear_policy(QpDomain *iface, GDBusMethodInvocation *invocation,
                                     GVariant *options)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(iface);
  return self->handlers->clear_policy(iface, invocation, options, self->data);
}

static gboolean
qp_daemon_domain_handle_apply(QpDomain *iface, GDBusMethodInvocation *invocation, GVariant *options)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(iface);
  return self->handlers->apply(iface, invocation, options, self->data);
}

static void
qp_daemon_domain_iface_init(QpDomainIface *iface)
{
  iface->handle_set_policy = qp_daemon_domain_handle_set_policy;
  iface->handle_clear_policy = qp_daemon_domain_handle_clear_policy;
  iface->handle_apply = qp_daemon_domain_handle_apply;
}

static void
qp_daemon_domain_class_init(QpDaemonDomainClass *klass)
{
}

static void
qp_daemon_domain_init(QpDaemonDomain *self)
{
}

QpDomain *
qp_daemon_domain_new(const QpDaemonDomainHandlers *handlers, gpointer data)
{
  QpDaemonDomain *self = g_object_new(QP_TYPE_DAEMON_DOMAIN, NULL);
  self->handlers = handlers;
  self->data = data;
  return QP_DOMAIN(self);
}
