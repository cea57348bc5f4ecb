/* The Domain skeleton with vfunc method handlers (see qp-daemon-domain.h). */
#include "config.h"

#include "qp-daemon-domain.h"

struct _QpDaemonDomain {
  QpDomainSkeleton parent_instance;
  const QpDaemonDomainHandlers *handlers;
  gpointer data;
  QpDiskFigures *disks;  /* the Disks property, NULL when empty */
  GVariant *disks_value; /* built for qp_domain_get_disks() only, until the next change */
};

enum {
  PROP_0,
  PROP_DISKS,
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

/* Transfer none, as the generated getter: the value lives until Disks changes. */
static GVariant *
qp_daemon_domain_get_disks(QpDomain *iface)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(iface);
  if (self->disks_value == NULL)
    self->disks_value = g_variant_ref_sink(qp_disk_figures_to_variant(self->disks));
  return self->disks_value;
}

static void
qp_daemon_domain_iface_init(QpDomainIface *iface)
{
  iface->handle_set_policy = qp_daemon_domain_handle_set_policy;
  iface->handle_clear_policy = qp_daemon_domain_handle_clear_policy;
  iface->handle_apply = qp_daemon_domain_handle_apply;
  iface->get_disks = qp_daemon_domain_get_disks;
}

/* Every read of Disks (Get, GetAll, GetManagedObjects, InterfacesAdded) comes here
 * through the generated skeleton's g_object_get_property(). */
static void
qp_daemon_domain_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(object);

  switch (prop_id) {
  case PROP_DISKS:
    g_value_take_variant(value, g_variant_ref_sink(qp_disk_figures_to_variant(self->disks)));
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void
qp_daemon_domain_set_property(GObject *object, guint prop_id, const GValue *value,
                              GParamSpec *pspec)
{
  switch (prop_id) {
  case PROP_DISKS:
    g_critical("%s: Disks is set with qp_daemon_domain_set_disks()", G_STRFUNC);
    break;
  default:
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  }
}

static void
qp_daemon_domain_finalize(GObject *object)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(object);

  qp_disk_figures_free(self->disks);
  g_clear_pointer(&self->disks_value, g_variant_unref);
  G_OBJECT_CLASS(qp_daemon_domain_parent_class)->finalize(object);
}

static void
qp_daemon_domain_class_init(QpDaemonDomainClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS(klass);

  object_class->get_property = qp_daemon_domain_get_property;
  object_class->set_property = qp_daemon_domain_set_property;
  object_class->finalize = qp_daemon_domain_finalize;
  /* Disks is kept as QpDiskFigures, not in the skeleton's GValue (see qp-figures.h) */
  g_object_class_override_property(object_class, PROP_DISKS, "disks");
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

/* The generated skeleton emits PropertiesChanged for the properties it stores, batched in
 * an idle callback; Disks it does not store, so its change is emitted here, at once. */
static void
qp_daemon_domain_emit_disks_changed(QpDaemonDomain *self)
{
  GDBusInterfaceSkeleton *skeleton = G_DBUS_INTERFACE_SKELETON(self);
  GList *connections = g_dbus_interface_skeleton_get_connections(skeleton);
  GVariantBuilder changed;
  g_autoptr(GVariant) params = NULL;

  if (connections == NULL)
    return;
  g_variant_builder_init(&changed, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add_value(
      &changed,
      g_variant_new_dict_entry(g_variant_new_string("Disks"),
                               g_variant_new_variant(qp_disk_figures_to_variant(self->disks))));
  params = g_variant_ref_sink(g_variant_new(
      "(s@a{sv}@as)", g_dbus_interface_skeleton_get_info(skeleton)->name,
      g_variant_builder_end(&changed), g_variant_new_array(G_VARIANT_TYPE_STRING, NULL, 0)));
  for (GList *l = connections; l != NULL; l = l->next)
    g_dbus_connection_emit_signal(
        l->data, NULL, g_dbus_interface_skeleton_get_object_path(skeleton),
        "org.freedesktop.DBus.Properties", "PropertiesChanged", params, NULL);
  g_list_free_full(connections, g_object_unref);
}

void
qp_daemon_domain_set_disks(QpDaemonDomain *self, QpDiskFigures *disks)
{
  g_autoptr(QpDiskFigures) old = NULL;

  if (qp_disk_figures_equal(self->disks, disks)) {
    qp_disk_figures_free(disks);
    return;
  }
  old = g_steal_pointer(&self->disks);
  self->disks = disks;
  g_clear_pointer(&self->disks_value, g_variant_unref);
  qp_daemon_domain_emit_disks_changed(self);
  g_object_notify(G_OBJECT(self), "disks");
}
