/* The Domain interface of an exported domain object (see qp-daemon-domain.h). */
#include "config.h"

#include "qp-daemon-domain.h"

#include "qp-dbus-generated.h"

/* In the order of the interface description. */
typedef enum {
  QP_DOMAIN_PROP_NAME,
  QP_DOMAIN_PROP_UUID,
  QP_DOMAIN_PROP_PERSISTENT,
  QP_DOMAIN_PROP_ACTIVE,
  QP_DOMAIN_PROP_PERCENT,
  QP_DOMAIN_PROP_MAX,
  QP_DOMAIN_PROP_CHAIN,
  QP_DOMAIN_PROP_POLICY_SOURCE,
  QP_DOMAIN_PROP_STATE,
  QP_DOMAIN_PROP_ERROR,
  QP_DOMAIN_PROP_DISKS,
  QP_DOMAIN_PROP_WRITE_COUNT,
  QP_DOMAIN_N_PROPS,
} QpDomainProp;

static const char *const qp_domain_prop_names[QP_DOMAIN_N_PROPS] = {
  "Name",  "UUID",         "Persistent", "Active", "Percent", "Max",
  "Chain", "PolicySource", "State",      "Error",  "Disks",   "WriteCount",
};

struct _QpDaemonDomain {
  GDBusInterfaceSkeleton parent_instance;
  const QpDaemonDomainHandlers *handlers;
  gpointer data;
  char *uuid;
  char *name;
  char *error;               /* NULL for "" */
  const char *chain;         /* interned */
  const char *policy_source; /* interned */
  const char *state;         /* interned */
  QpDiskFigures *disks;      /* NULL when none */
  guint64 max;
  guint64 write_count;
  guint percent;
  guint changed; /* 1 << QpDomainProp of each property changed since the last emission */
  gboolean persistent;
  gboolean active;
};

G_DEFINE_TYPE(QpDaemonDomain, qp_daemon_domain, G_TYPE_DBUS_INTERFACE_SKELETON)

static GVariant *
qp_daemon_domain_string(const char *text)
{
  return g_variant_new_string(text != NULL ? text : "");
}

/* Floating. Every string is valid UTF-8: the setters and QpDiskFigures made them so. */
static GVariant *
qp_daemon_domain_value(QpDaemonDomain *self, QpDomainProp prop)
{
  switch (prop) {
  case QP_DOMAIN_PROP_NAME:
    return qp_daemon_domain_string(self->name);
  case QP_DOMAIN_PROP_UUID:
    return qp_daemon_domain_string(self->uuid);
  case QP_DOMAIN_PROP_PERSISTENT:
    return g_variant_new_boolean(self->persistent);
  case QP_DOMAIN_PROP_ACTIVE:
    return g_variant_new_boolean(self->active);
  case QP_DOMAIN_PROP_PERCENT:
    return g_variant_new_uint32(self->percent);
  case QP_DOMAIN_PROP_MAX:
    return g_variant_new_uint64(self->max);
  case QP_DOMAIN_PROP_CHAIN:
    return qp_daemon_domain_string(self->chain);
  case QP_DOMAIN_PROP_POLICY_SOURCE:
    return qp_daemon_domain_string(self->policy_source);
  case QP_DOMAIN_PROP_STATE:
    return qp_daemon_domain_string(self->state);
  case QP_DOMAIN_PROP_ERROR:
    return qp_daemon_domain_string(self->error);
  case QP_DOMAIN_PROP_DISKS:
    return qp_disk_figures_to_variant(self->disks);
  case QP_DOMAIN_PROP_WRITE_COUNT:
  default:
    return g_variant_new_uint64(self->write_count);
  }
}

/* {sv} entries of the properties in @mask. */
static GVariant *
qp_daemon_domain_values(QpDaemonDomain *self, guint mask)
{
  g_auto(GVariantBuilder) dict = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);

  for (guint prop = 0; prop < QP_DOMAIN_N_PROPS; prop++) {
    if (mask & (1u << prop))
      g_variant_builder_add_value(
          &dict, g_variant_new_dict_entry(
                     g_variant_new_string(qp_domain_prop_names[prop]),
                     g_variant_new_variant(qp_daemon_domain_value(self, (QpDomainProp)prop))));
  }
  return g_variant_builder_end(&dict);
}

/* ---------- GDBusInterfaceVTable: GDBus has checked the arguments' types against the
 * interface description, and refuses Set of these read-only properties itself ---------- */

static void
qp_daemon_domain_method_call(GDBusConnection *connection, const char *sender,
                             const char *object_path, const char *interface_name,
                             const char *method_name, GVariant *parameters,
                             GDBusMethodInvocation *invocation, gpointer user_data)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(user_data);
  g_autoptr(GVariant) options = NULL;

  if (g_str_equal(method_name, "SetPolicy")) {
    guint percent = 0;
    g_variant_get(parameters, "(u@a{sv})", &percent, &options);
    self->handlers->set_policy(self, invocation, percent, options, self->data);
  } else if (g_str_equal(method_name, "ClearPolicy")) {
    g_variant_get(parameters, "(@a{sv})", &options);
    self->handlers->clear_policy(self, invocation, options, self->data);
  } else if (g_str_equal(method_name, "Apply")) {
    g_variant_get(parameters, "(@a{sv})", &options);
    self->handlers->apply(self, invocation, options, self->data);
  } else {
    g_dbus_method_invocation_return_error(invocation, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD,
                                          "No method %s", method_name);
  }
}

static GVariant *
qp_daemon_domain_get_property(GDBusConnection *connection, const char *sender,
                              const char *object_path, const char *interface_name,
                              const char *property_name, GError **error, gpointer user_data)
{
  for (guint prop = 0; prop < QP_DOMAIN_N_PROPS; prop++) {
    if (g_str_equal(property_name, qp_domain_prop_names[prop]))
      return qp_daemon_domain_value(QP_DAEMON_DOMAIN(user_data), (QpDomainProp)prop);
  }
  g_set_error(error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_PROPERTY, "No property %s", property_name);
  return NULL;
}

static const GDBusInterfaceVTable qp_daemon_domain_vtable = {
  .method_call = qp_daemon_domain_method_call,
  .get_property = qp_daemon_domain_get_property,
};

/* ---------- GDBusInterfaceSkeleton ---------- */

static GDBusInterfaceInfo *
qp_daemon_domain_get_info(GDBusInterfaceSkeleton *skeleton)
{
  return qp_domain_interface_info();
}

static GDBusInterfaceVTable *
qp_daemon_domain_get_vtable(GDBusInterfaceSkeleton *skeleton)
{
  return (GDBusInterfaceVTable *)&qp_daemon_domain_vtable;
}

/* GetManagedObjects and InterfacesAdded */
static GVariant *
qp_daemon_domain_get_properties(GDBusInterfaceSkeleton *skeleton)
{
  return qp_daemon_domain_values(QP_DAEMON_DOMAIN(skeleton), (1u << QP_DOMAIN_N_PROPS) - 1);
}

/* nothing is pending between the setters and qp_daemon_domain_emit_changed() */
static void
qp_daemon_domain_flush(GDBusInterfaceSkeleton *skeleton)
{
}

static void
qp_daemon_domain_finalize(GObject *object)
{
  QpDaemonDomain *self = QP_DAEMON_DOMAIN(object);

  g_free(self->uuid);
  g_free(self->name);
  g_free(self->error);
  qp_disk_figures_free(self->disks);
  G_OBJECT_CLASS(qp_daemon_domain_parent_class)->finalize(object);
}

static void
qp_daemon_domain_class_init(QpDaemonDomainClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS(klass);
  GDBusInterfaceSkeletonClass *skeleton_class = G_DBUS_INTERFACE_SKELETON_CLASS(klass);

  object_class->finalize = qp_daemon_domain_finalize;
  skeleton_class->get_info = qp_daemon_domain_get_info;
  skeleton_class->get_vtable = qp_daemon_domain_get_vtable;
  skeleton_class->get_properties = qp_daemon_domain_get_properties;
  skeleton_class->flush = qp_daemon_domain_flush;
}

static void
qp_daemon_domain_init(QpDaemonDomain *self)
{
  self->chain = g_intern_static_string("");
  self->policy_source = g_intern_static_string("");
  self->state = g_intern_static_string("unmanaged");
}

QpDaemonDomain *
qp_daemon_domain_new(const char *uuid, const QpDaemonDomainHandlers *handlers, gpointer data)
{
  QpDaemonDomain *self = g_object_new(QP_TYPE_DAEMON_DOMAIN, NULL);
  self->uuid = g_utf8_make_valid(uuid, -1);
  self->handlers = handlers;
  self->data = data;
  return self;
}

const char *
qp_daemon_domain_get_uuid(QpDaemonDomain *self)
{
  return self->uuid;
}

const char *
qp_daemon_domain_get_name(QpDaemonDomain *self)
{
  return self->name != NULL ? self->name : "";
}

/* ---------- setters ---------- */

static void
qp_daemon_domain_changed(QpDaemonDomain *self, QpDomainProp prop)
{
  self->changed |= 1u << prop;
}

/* Domain names and messages (which quote paths) need not be UTF-8; D-Bus strings must be:
 * invalid bytes become U+FFFD. */
static void
qp_daemon_domain_set_string(QpDaemonDomain *self, char **field, const char *value,
                            QpDomainProp prop)
{
  g_autofree char *valid = value != NULL && value[0] != '\0' ? g_utf8_make_valid(value, -1) : NULL;

  if (g_strcmp0(*field, valid) == 0)
    return;
  g_free(*field);
  *field = g_steal_pointer(&valid);
  qp_daemon_domain_changed(self, prop);
}

static void
qp_daemon_domain_set_interned(QpDaemonDomain *self, const char **field, const char *value,
                              QpDomainProp prop)
{
  const char *interned = g_intern_string(value != NULL ? value : "");
  if (*field == interned)
    return;
  *field = interned;
  qp_daemon_domain_changed(self, prop);
}

void
qp_daemon_domain_set_name(QpDaemonDomain *self, const char *name)
{
  qp_daemon_domain_set_string(self, &self->name, name, QP_DOMAIN_PROP_NAME);
}

static void
qp_daemon_domain_set_boolean(QpDaemonDomain *self, gboolean *field, gboolean value,
                             QpDomainProp prop)
{
  if (*field == !!value)
    return;
  *field = !!value;
  qp_daemon_domain_changed(self, prop);
}

void
qp_daemon_domain_set_persistent(QpDaemonDomain *self, gboolean persistent)
{
  qp_daemon_domain_set_boolean(self, &self->persistent, persistent, QP_DOMAIN_PROP_PERSISTENT);
}

void
qp_daemon_domain_set_active(QpDaemonDomain *self, gboolean active)
{
  qp_daemon_domain_set_boolean(self, &self->active, active, QP_DOMAIN_PROP_ACTIVE);
}

void
qp_daemon_domain_set_policy(QpDaemonDomain *self, guint percent, guint64 max, const char *chain,
                            const char *policy_source)
{
  if (self->percent != percent) {
    self->percent = percent;
    qp_daemon_domain_changed(self, QP_DOMAIN_PROP_PERCENT);
  }
  if (self->max != max) {
    self->max = max;
    qp_daemon_domain_changed(self, QP_DOMAIN_PROP_MAX);
  }
  qp_daemon_domain_set_interned(self, &self->chain, chain, QP_DOMAIN_PROP_CHAIN);
  qp_daemon_domain_set_interned(self, &self->policy_source, policy_source,
                                QP_DOMAIN_PROP_POLICY_SOURCE);
}

void
qp_daemon_domain_set_state(QpDaemonDomain *self, const char *state, const char *error)
{
  qp_daemon_domain_set_interned(self, &self->state, state, QP_DOMAIN_PROP_STATE);
  qp_daemon_domain_set_string(self, &self->error, error, QP_DOMAIN_PROP_ERROR);
}

void
qp_daemon_domain_set_disks(QpDaemonDomain *self, QpDiskFigures *disks)
{
  if (qp_disk_figures_equal(self->disks, disks)) {
    qp_disk_figures_free(disks);
    return;
  }
  qp_disk_figures_free(self->disks);
  self->disks = disks;
  qp_daemon_domain_changed(self, QP_DOMAIN_PROP_DISKS);
}

void
qp_daemon_domain_add_writes(QpDaemonDomain *self, guint writes)
{
  if (writes == 0)
    return;
  self->write_count += writes;
  qp_daemon_domain_changed(self, QP_DOMAIN_PROP_WRITE_COUNT);
}

void
qp_daemon_domain_emit_changed(QpDaemonDomain *self)
{
  GDBusInterfaceSkeleton *skeleton = G_DBUS_INTERFACE_SKELETON(self);
  GList *connections = NULL;
  g_autoptr(GVariant) params = NULL;
  guint changed = self->changed;

  self->changed = 0;
  if (changed == 0)
    return;
  connections = g_dbus_interface_skeleton_get_connections(skeleton);
  if (connections == NULL)
    return;
  params = g_variant_ref_sink(g_variant_new("(s@a{sv}@as)", qp_domain_interface_info()->name,
                                            qp_daemon_domain_values(self, changed),
                                            g_variant_new_array(G_VARIANT_TYPE_STRING, NULL, 0)));
  for (GList *l = connections; l != NULL; l = l->next)
    g_dbus_connection_emit_signal(
        l->data, NULL, g_dbus_interface_skeleton_get_object_path(skeleton),
        "org.freedesktop.DBus.Properties", "PropertiesChanged", params, NULL);
  g_list_free_full(connections, g_object_unref);
}
