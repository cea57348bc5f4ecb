/* qcow2-policyctl status, list, show, set, clear, reconcile: talk to qcow2-policyd over
 * D-Bus (the API is documented in schemas/org.qcow2policyd.Policy1.xml). */
#include "config.h"

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "qp-cli-format.h"
#include "qp-cli.h"
#include "qp-size.h"

#define QP_BUS_NAME      "org.qcow2policyd.Policy1"
#define QP_ROOT_PATH     "/org/qcow2policyd/Policy1"
#define QP_MANAGER_PATH  QP_ROOT_PATH "/Manager"
#define QP_MANAGER_IFACE "org.qcow2policyd.Policy1.Manager"
#define QP_DOMAIN_IFACE  "org.qcow2policyd.Policy1.Domain"

/* Reconcile-all and SetPolicy wait for libvirt and image reads; thousands of domains on a
 * slow host take minutes, not hours. */
#define QP_CLI_LONG_CALL_TIMEOUT_MS (30 * 60 * 1000)

typedef struct {
  gboolean session;
  gboolean json;
  char *max;
  char *chain;
  char **rest;
} QpCliDaemonOpts;

static void
qp_cli_daemon_opts_clear(QpCliDaemonOpts *opts)
{
  g_free(opts->max);
  g_free(opts->chain);
  g_strfreev(opts->rest);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QpCliDaemonOpts, qp_cli_daemon_opts_clear)

/* Parse the options of @command: --session always; --json, --max/--chain when asked for. */
static gboolean
qp_cli_daemon_parse(const char *command, const char *params, const char *summary,
                    gboolean with_json, gboolean with_policy, int *argc, char ***argv,
                    QpCliDaemonOpts *opts)
{
  const GOptionEntry common[] = {
    { "session", 0, 0, G_OPTION_ARG_NONE, &opts->session,
      N_("Talk to a daemon on the session bus instead of the system bus"), NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &opts->rest, NULL, NULL },
    { NULL },
  };
  const GOptionEntry json[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &opts->json, N_("Print JSON"), NULL },
    { NULL },
  };
  const GOptionEntry policy[] = {
    { "max", 0, 0, G_OPTION_ARG_STRING, &opts->max, N_("Cap on the max_size written for one image"),
      N_("SIZE") },
    { "chain", 0, 0, G_OPTION_ARG_STRING, &opts->chain,
      N_("Size the top image only (top, the default) or every qcow2 layer (all)"), N_("top|all") },
    { NULL },
  };
  g_autoptr(GOptionContext) context = g_option_context_new(params);
  g_autofree char *prgname = g_strdup_printf("qcow2-policyctl %s", command);

  g_set_prgname(prgname);
  g_option_context_set_summary(context, summary);
  g_option_context_add_main_entries(context, common, GETTEXT_PACKAGE);
  if (with_json)
    g_option_context_add_main_entries(context, json, GETTEXT_PACKAGE);
  if (with_policy)
    g_option_context_add_main_entries(context, policy, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
  return qp_cli_parse_options(context, argc, argv);
}

static guint
qp_cli_daemon_n_args(const QpCliDaemonOpts *opts)
{
  return opts->rest != NULL ? g_strv_length(opts->rest) : 0;
}

static GDBusConnection *
qp_cli_daemon_bus(const QpCliDaemonOpts *opts)
{
  g_autoptr(GError) error = NULL;
  GDBusConnection *bus
      = g_bus_get_sync(opts->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
  if (bus == NULL)
    qp_cli_print_error(opts->session ? _("session bus") : _("system bus"), error);
  return bus;
}

static void
qp_cli_daemon_error(const char *context, GError *error)
{
  if (g_dbus_error_is_remote_error(error)) {
    g_autofree char *name = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
    if (g_strcmp0(name, "org.freedesktop.DBus.Error.ServiceUnknown") == 0
        || g_strcmp0(name, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0) {
      g_autoptr(GError) e = g_error_new_literal(G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                                                _("qcow2-policyd is not running on this bus"));
      qp_cli_print_error(context, e);
      return;
    }
  }
  qp_cli_print_error(context, error);
}

static GVariant *
qp_cli_daemon_call(GDBusConnection *bus, const char *path, const char *iface, const char *method,
                   GVariant *args, const char *reply, int timeout, GError **error)
{
  /* a polkit agent may ask for a password when the user is at a terminal */
  GDBusCallFlags flags = isatty(STDIN_FILENO) ? G_DBUS_CALL_FLAGS_ALLOW_INTERACTIVE_AUTHORIZATION
                                              : G_DBUS_CALL_FLAGS_NONE;
  return g_dbus_connection_call_sync(bus, QP_BUS_NAME, path, iface, method, args,
                                     reply != NULL ? G_VARIANT_TYPE(reply) : NULL, flags, timeout,
                                     NULL, error);
}

static GVariant *
qp_cli_daemon_options(gboolean authorized)
{
  GVariantBuilder b;
  g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
  if (authorized && isatty(STDIN_FILENO))
    g_variant_builder_add(&b, "{sv}", "interactive", g_variant_new_boolean(TRUE));
  return g_variant_builder_end(&b);
}

/* Properties of every object, as GetManagedObjects gives them. */
static GVariant *
qp_cli_daemon_objects(GDBusConnection *bus, GError **error)
{
  g_autoptr(GVariant) reply
      = qp_cli_daemon_call(bus, QP_ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                           "GetManagedObjects", NULL, "(a{oa{sa{sv}}})", -1, error);
  if (reply == NULL)
    return NULL;
  return g_variant_get_child_value(reply, 0);
}

static GVariant *
qp_cli_daemon_props(GDBusConnection *bus, const char *path, const char *iface, GError **error)
{
  g_autoptr(GVariant) reply
      = qp_cli_daemon_call(bus, path, "org.freedesktop.DBus.Properties", "GetAll",
                           g_variant_new("(s)", iface), "(a{sv})", -1, error);
  if (reply == NULL)
    return NULL;
  return g_variant_get_child_value(reply, 0);
}

/* A domain by name, or by UUID. */
static char *
qp_cli_daemon_domain_path(GDBusConnection *bus, const char *domain, GError **error)
{
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error_local = NULL;
  char *path = NULL;

  reply = qp_cli_daemon_call(bus, QP_MANAGER_PATH, QP_MANAGER_IFACE, "GetDomainByName",
                             g_variant_new("(s@a{sv})", domain, qp_cli_daemon_options(FALSE)),
                             "(o)", -1, &error_local);
  if (reply != NULL) {
    g_variant_get(reply, "(o)", &path);
    return path;
  }
  if (strlen(domain) == 36 && g_uuid_string_is_valid(domain)) {
    g_autofree char *elem = g_ascii_strdown(domain, -1);
    g_autofree char *candidate = NULL;
    g_autoptr(GVariant) props = NULL;
    g_strdelimit(elem, "-", '_');
    candidate = g_strconcat(QP_ROOT_PATH "/domain/", elem, NULL);
    props = qp_cli_daemon_props(bus, candidate, QP_DOMAIN_IFACE, NULL);
    if (props != NULL)
      return g_steal_pointer(&candidate);
  }
  g_propagate_error(error, g_steal_pointer(&error_local));
  return NULL;
}

static const char *
qp_cli_lookup_s(GVariant *dict, const char *key)
{
  const char *val = NULL;
  if (!g_variant_lookup(dict, key, "&s", &val))
    return "";
  return val;
}

static guint64
qp_cli_lookup_t(GVariant *dict, const char *key)
{
  guint64 val = 0;
  g_autoptr(GVariant) v = g_variant_lookup_value(dict, key, NULL);
  if (v == NULL)
    return 0;
  if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
    val = g_variant_get_uint64(v);
  else if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
    val = g_variant_get_uint32(v);
  return val;
}

/* a{sv} of basic types → a JSON object with the same keys */
static JsonNode *
qp_cli_variant_to_json(GVariant *value)
{
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARIANT)) {
    g_autoptr(GVariant) inner = g_variant_get_variant(value);
    return qp_cli_variant_to_json(inner);
  }
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_VARDICT)) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    GVariantIter iter;
    const char *key;
    GVariant *child;
    json_builder_begin_object(b);
    g_variant_iter_init(&iter, value);
    while (g_variant_iter_next(&iter, "{&sv}", &key, &child)) {
      g_autoptr(GVariant) c = child;
      json_builder_set_member_name(b, key);
      json_builder_add_value(b, qp_cli_variant_to_json(c));
    }
    json_builder_end_object(b);
    return json_builder_get_root(b);
  }
  if (g_variant_is_of_type(value, G_VARIANT_TYPE_ARRAY)) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    GVariantIter iter;
    GVariant *child;
    json_builder_begin_array(b);
    g_variant_iter_init(&iter, value);
    while ((child = g_variant_iter_next_value(&iter)) != NULL) {
      g_autoptr(GVariant) c = child;
      json_builder_add_value(b, qp_cli_variant_to_json(c));
    }
    json_builder_end_array(b);
    return json_builder_get_root(b);
  }
  return json_gvariant_serialize(value);
}

/* Domain properties in JSON: lower-case dashed keys like analyze's. */
static JsonNode *
qp_cli_domain_json(GVariant *props)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(GVariant) disks = g_variant_lookup_value(props, "Disks", G_VARIANT_TYPE("aa{sv}"));
  gboolean persistent = FALSE;
  gboolean active = FALSE;

  g_variant_lookup(props, "Persistent", "b", &persistent);
  g_variant_lookup(props, "Active", "b", &active);
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "name");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "Name"));
  json_builder_set_member_name(b, "uuid");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "UUID"));
  json_builder_set_member_name(b, "state");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "State"));
  json_builder_set_member_name(b, "persistent");
  json_builder_add_boolean_value(b, persistent);
  json_builder_set_member_name(b, "active");
  json_builder_add_boolean_value(b, active);
  qp_cli_json_add_uint(b, "percent", qp_cli_lookup_t(props, "Percent"));
  qp_cli_json_add_uint(b, "max", qp_cli_lookup_t(props, "Max"));
  json_builder_set_member_name(b, "chain");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "Chain"));
  json_builder_set_member_name(b, "policy-source");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "PolicySource"));
  json_builder_set_member_name(b, "error");
  json_builder_add_string_value(b, qp_cli_lookup_s(props, "Error"));
  qp_cli_json_add_uint(b, "write-count", qp_cli_lookup_t(props, "WriteCount"));
  json_builder_set_member_name(b, "disks");
  if (disks != NULL)
    json_builder_add_value(b, qp_cli_variant_to_json(disks));
  else
    json_builder_add_null_value(b);
  json_builder_end_object(b);
  return json_builder_get_root(b);
}

/* Domain objects' property dictionaries, sorted by name. */
static gint
qp_cli_cmp_domains(gconstpointer a, gconstpointer b)
{
  GVariant *pa = *(GVariant **)a;
  GVariant *pb = *(GVariant **)b;
  return g_strcmp0(qp_cli_lookup_s(pa, "Name"), qp_cli_lookup_s(pb, "Name"));
}

static GPtrArray *
qp_cli_daemon_domains(GVariant *objects)
{
  GPtrArray *domains = g_ptr_array_new_with_free_func((GDestroyNotify)g_variant_unref);
  GVariantIter iter;
  const char *path;
  GVariant *ifaces;

  g_variant_iter_init(&iter, objects);
  while (g_variant_iter_next(&iter, "{&o@a{sa{sv}}}", &path, &ifaces)) {
    g_autoptr(GVariant) i = ifaces;
    GVariant *props = g_variant_lookup_value(i, QP_DOMAIN_IFACE, G_VARIANT_TYPE_VARDICT);
    if (props != NULL)
      g_ptr_array_add(domains, props);
  }
  g_ptr_array_sort(domains, qp_cli_cmp_domains);
  return domains;
}

/* One message per domain in error on stderr; the exit status (spec section 5). */
static int
qp_cli_report_failures(GPtrArray *domains)
{
  guint failed = 0;
  for (guint i = 0; i < domains->len; i++) {
    GVariant *props = g_ptr_array_index(domains, i);
    if (g_str_equal(qp_cli_lookup_s(props, "State"), "error")) {
      g_printerr("qcow2-policyctl: %s: %s\n", qp_cli_lookup_s(props, "Name"),
                 qp_cli_lookup_s(props, "Error"));
      failed++;
    }
  }
  return failed > 0 ? QP_CLI_EXIT_FAILURE : QP_CLI_EXIT_OK;
}

static char *
qp_cli_policy_text(GVariant *props)
{
  guint64 percent = qp_cli_lookup_t(props, "Percent");
  guint64 max = qp_cli_lookup_t(props, "Max");
  const char *chain = qp_cli_lookup_s(props, "Chain");
  GString *s;

  if (percent == 0)
    return g_strdup("-");
  s = g_string_new(NULL);
  g_string_append_printf(s, "%" G_GUINT64_FORMAT "%%", percent);
  if (max > 0) {
    g_autofree char *m = qp_size_format(max);
    g_string_append_printf(s, _(", max %s"), m);
  }
  if (g_str_equal(chain, "all"))
    g_string_append(s, _(", chain all"));
  if (g_str_equal(qp_cli_lookup_s(props, "PolicySource"), "default"))
    g_string_append(s, _(" (host default)"));
  return g_string_free(s, FALSE);
}

int
qp_cli_status(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GVariant) manager = NULL;
  g_autoptr(GVariant) objects = NULL;
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;
  const char *states[] = { "applied", "pending-restart", "unmanaged", "error" };
  guint counts[G_N_ELEMENTS(states)] = { 0 };
  gboolean connected = FALSE;

  if (!qp_cli_daemon_parse("status", NULL, _("Show the daemon's state."), TRUE, FALSE, &argc, &argv,
                           &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 0) {
    qp_cli_usage_error("status", _("unexpected argument “%s”"), opts.rest[0]);
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  manager = qp_cli_daemon_props(bus, QP_MANAGER_PATH, QP_MANAGER_IFACE, &error);
  if (manager == NULL || (objects = qp_cli_daemon_objects(bus, &error)) == NULL) {
    qp_cli_daemon_error(NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  domains = qp_cli_daemon_domains(objects);
  for (guint i = 0; i < domains->len; i++) {
    const char *state = qp_cli_lookup_s(g_ptr_array_index(domains, i), "State");
    for (guint j = 0; j < G_N_ELEMENTS(states); j++) {
      if (g_str_equal(state, states[j]))
        counts[j]++;
    }
  }
  g_variant_lookup(manager, "Connected", "b", &connected);

  if (opts.json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "version");
    json_builder_add_string_value(b, qp_cli_lookup_s(manager, "Version"));
    json_builder_set_member_name(b, "uri");
    json_builder_add_string_value(b, qp_cli_lookup_s(manager, "Uri"));
    json_builder_set_member_name(b, "connected");
    json_builder_add_boolean_value(b, connected);
    qp_cli_json_add_uint(b, "domains", domains->len);
    for (guint j = 0; j < G_N_ELEMENTS(states); j++)
      qp_cli_json_add_uint(b, states[j], counts[j]);
    qp_cli_json_add_uint(b, "reconcile-interval", qp_cli_lookup_t(manager, "ReconcileInterval"));
    qp_cli_json_add_uint(b, "default-percent", qp_cli_lookup_t(manager, "DefaultPercent"));
    qp_cli_json_add_uint(b, "write-count", qp_cli_lookup_t(manager, "WriteCount"));
    qp_cli_json_add_uint(b, "reconcile-count", qp_cli_lookup_t(manager, "ReconcileCount"));
    qp_cli_json_add_uint(b, "busy", qp_cli_lookup_t(manager, "Busy"));
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    qp_cli_json_print(root);
  } else {
    g_autoptr(QpCliTable) t = qp_cli_table_new(2);
    guint64 interval = qp_cli_lookup_t(manager, "ReconcileInterval");
    guint64 def = qp_cli_lookup_t(manager, "DefaultPercent");
    qp_cli_table_add_field(t, _("Daemon"), g_strdup(qp_cli_lookup_s(manager, "Version")));
    qp_cli_table_add_field(t, _("libvirt"),
                           g_strdup_printf("%s (%s)", qp_cli_lookup_s(manager, "Uri"),
                                           connected ? _("connected") : _("not connected")));
    qp_cli_table_add_field(t, _("Domains"),
                           g_strdup_printf(_("%u: %u applied, %u pending restart, %u unmanaged, "
                                             "%u in error"),
                                           domains->len, counts[0], counts[1], counts[2],
                                           counts[3]));
    qp_cli_table_add_field(t, _("Reconcile"),
                           interval > 0 ? g_strdup_printf(_("every %" PRIu64 " s"), interval)
                                        : g_strdup(_("on events only")));
    qp_cli_table_add_field(t, _("Default policy"),
                           def > 0 ? g_strdup_printf("%" G_GUINT64_FORMAT "%%", def)
                                   : g_strdup(_("none")));
    qp_cli_table_add_field(
        t, _("Writes"),
        g_strdup_printf("%" G_GUINT64_FORMAT, qp_cli_lookup_t(manager, "WriteCount")));
    qp_cli_table_print(t, stdout);
  }
  return qp_cli_report_failures(domains);
}

int
qp_cli_list(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GVariant) objects = NULL;
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;

  if (!qp_cli_daemon_parse("list", NULL, _("List domains and their policy state."), TRUE, FALSE,
                           &argc, &argv, &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 0) {
    qp_cli_usage_error("list", _("unexpected argument “%s”"), opts.rest[0]);
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  objects = qp_cli_daemon_objects(bus, &error);
  if (objects == NULL) {
    qp_cli_daemon_error(NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  domains = qp_cli_daemon_domains(objects);
  if (opts.json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_array(b);
    for (guint i = 0; i < domains->len; i++)
      json_builder_add_value(b, qp_cli_domain_json(g_ptr_array_index(domains, i)));
    json_builder_end_array(b);
    root = json_builder_get_root(b);
    qp_cli_json_print(root);
  } else {
    g_autoptr(QpCliTable) t = qp_cli_table_new(4);
    qp_cli_table_set_header(t, _("DOMAIN"), _("STATE"), _("POLICY"), _("ERROR"), NULL);
    for (guint i = 0; i < domains->len; i++) {
      GVariant *props = g_ptr_array_index(domains, i);
      g_autofree char *policy = qp_cli_policy_text(props);
      qp_cli_table_add_row(t, qp_cli_lookup_s(props, "Name"), qp_cli_lookup_s(props, "State"),
                           policy, qp_cli_lookup_s(props, "Error"), NULL);
    }
    qp_cli_table_print(t, stdout);
  }
  return qp_cli_report_failures(domains);
}

static char *
qp_cli_layer_size(GVariant *layer, const char *key)
{
  g_autoptr(GVariant) v = g_variant_lookup_value(layer, key, G_VARIANT_TYPE_UINT64);
  if (v == NULL)
    return g_strdup("-");
  return qp_size_format(g_variant_get_uint64(v));
}

static char *
qp_cli_layer_share(GVariant *layer, const char *key)
{
  double share = 0;
  if (!g_variant_lookup(layer, key, "d", &share))
    return g_strdup("-");
  return qp_cli_format_share(share);
}

static void
qp_cli_print_domain(GVariant *props)
{
  g_autoptr(QpCliTable) fields = qp_cli_table_new(2);
  g_autoptr(QpCliTable) t = qp_cli_table_new(10);
  g_autoptr(GVariant) disks = g_variant_lookup_value(props, "Disks", G_VARIANT_TYPE("aa{sv}"));
  const char *error = qp_cli_lookup_s(props, "Error");
  gboolean active = FALSE;
  GVariantIter iter;
  GVariant *layer;

  g_variant_lookup(props, "Active", "b", &active);
  qp_cli_table_add_field(fields, _("Domain"), g_strdup(qp_cli_lookup_s(props, "Name")));
  qp_cli_table_add_field(fields, _("UUID"), g_strdup(qp_cli_lookup_s(props, "UUID")));
  qp_cli_table_add_field(fields, _("State"), g_strdup(qp_cli_lookup_s(props, "State")));
  qp_cli_table_add_field(fields, _("Running"), g_strdup(active ? _("yes") : _("no")));
  qp_cli_table_add_field(fields, _("Policy"), qp_cli_policy_text(props));
  if (error[0] != '\0')
    qp_cli_table_add_field(fields, _("Error"), g_strdup(error));
  qp_cli_table_print(fields, stdout);
  if (disks == NULL || g_variant_n_children(disks) == 0)
    return;

  printf("\n");
  qp_cli_table_set_header(t, _("DISK"), _("LAYER"), _("VIRTUAL"), _("CLUSTER"), _("L2FULL"),
                          _("QEMU DEFAULT"), _("MAX_SIZE"), _("COVERAGE"), _("ACTION"), _("PATH"),
                          NULL);
  g_variant_iter_init(&iter, disks);
  while ((layer = g_variant_iter_next_value(&iter)) != NULL) {
    g_autoptr(GVariant) l = layer;
    g_autofree char *depth = g_strdup_printf("%" G_GUINT64_FORMAT, qp_cli_lookup_t(l, "depth"));
    g_autofree char *vsize = qp_cli_layer_size(l, "virtual-size");
    g_autofree char *cluster = qp_cli_layer_size(l, "cluster-size");
    g_autofree char *full = qp_cli_layer_size(l, "l2-full-size");
    g_autofree char *def_size = qp_cli_layer_size(l, "qemu-default-l2-cache-size");
    g_autofree char *def_cov = qp_cli_layer_share(l, "qemu-default-l2-coverage");
    g_autofree char *def = g_strdup_printf("%s (%s)", def_size, def_cov);
    g_autofree char *max = qp_cli_layer_size(l, "max-size");
    g_autofree char *cov = qp_cli_layer_share(l, "l2-coverage");
    const char *action = qp_cli_lookup_s(l, "action");
    const char *reason = qp_cli_lookup_s(l, "reason");
    g_autofree char *action_text
        = reason[0] != '\0' ? g_strdup_printf("%s: %s", action, reason) : g_strdup(action);
    qp_cli_table_add_row(t, qp_cli_lookup_s(l, "dev"), depth, vsize, cluster, full, def, max, cov,
                         action_text, qp_cli_lookup_s(l, "path"), NULL);
  }
  qp_cli_table_print(t, stdout);
}

int
qp_cli_show(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GVariant) props = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;

  if (!qp_cli_daemon_parse("show", _("DOMAIN"), _("Show one domain's disks and figures."), TRUE,
                           FALSE, &argc, &argv, &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 1) {
    qp_cli_usage_error("show", "%s", _("expected one DOMAIN (name or UUID)"));
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  path = qp_cli_daemon_domain_path(bus, opts.rest[0], &error);
  if (path == NULL || (props = qp_cli_daemon_props(bus, path, QP_DOMAIN_IFACE, &error)) == NULL) {
    qp_cli_daemon_error(opts.rest[0], error);
    return QP_CLI_EXIT_FAILURE;
  }
  if (opts.json) {
    g_autoptr(JsonNode) root = qp_cli_domain_json(props);
    qp_cli_json_print(root);
  } else {
    qp_cli_print_domain(props);
  }
  if (g_str_equal(qp_cli_lookup_s(props, "State"), "error")) {
    if (!opts.json)
      g_printerr("qcow2-policyctl: %s: %s\n", qp_cli_lookup_s(props, "Name"),
                 qp_cli_lookup_s(props, "Error"));
    return QP_CLI_EXIT_FAILURE;
  }
  return QP_CLI_EXIT_OK;
}

/* After set/clear: one line with the domain's new state; 1 when it is in error. */
static int
qp_cli_daemon_report(GDBusConnection *bus, const char *domain, const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) props = qp_cli_daemon_props(bus, path, QP_DOMAIN_IFACE, &error);
  g_autofree char *policy = NULL;

  if (props == NULL) {
    qp_cli_daemon_error(domain, error);
    return QP_CLI_EXIT_FAILURE;
  }
  if (g_str_equal(qp_cli_lookup_s(props, "State"), "error")) {
    g_printerr("qcow2-policyctl: %s: %s\n", domain, qp_cli_lookup_s(props, "Error"));
    return QP_CLI_EXIT_FAILURE;
  }
  policy = qp_cli_policy_text(props);
  /* TRANSLATORS: domain name, state (applied, pending-restart…), policy ("50%" or "-") */
  printf(_("%s: %s (policy %s)\n"), domain, qp_cli_lookup_s(props, "State"), policy);
  return QP_CLI_EXIT_OK;
}

/* Call METHOD with PARAMS (consumed) on DOMAIN's object, then print the domain's state. */
static int
qp_cli_daemon_domain_call(GDBusConnection *bus, const char *domain, const char *method,
                          GVariant *params)
{
  g_autoptr(GVariant) args = g_variant_ref_sink(params);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = qp_cli_daemon_domain_path(bus, domain, &error);

  if (path == NULL) {
    qp_cli_daemon_error(domain, error);
    return QP_CLI_EXIT_FAILURE;
  }
  reply = qp_cli_daemon_call(bus, path, QP_DOMAIN_IFACE, method, args, "()",
                             QP_CLI_LONG_CALL_TIMEOUT_MS, &error);
  if (reply == NULL) {
    qp_cli_daemon_error(domain, error);
    return QP_CLI_EXIT_FAILURE;
  }
  return qp_cli_daemon_report(bus, domain, path);
}

int
qp_cli_set(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GError) error = NULL;
  GVariantBuilder options;
  guint percent = 0;
  guint64 max = 0;

  if (!qp_cli_daemon_parse("set", _("DOMAIN PERCENT"),
                           _("Set a domain's policy: keep PERCENT of each image's L2 tables in "
                             "QEMU's cache."),
                           FALSE, TRUE, &argc, &argv, &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 2) {
    qp_cli_usage_error("set", "%s", _("expected DOMAIN and PERCENT"));
    return QP_CLI_EXIT_USAGE;
  }
  if (!qp_cli_parse_percent("PERCENT", opts.rest[1], &percent, &error)
      || (opts.max != NULL && !qp_cli_parse_size("--max", opts.max, &max, &error))) {
    qp_cli_usage_error("set", "%s", error->message);
    return QP_CLI_EXIT_USAGE;
  }
  if (opts.chain != NULL && !g_str_equal(opts.chain, "top") && !g_str_equal(opts.chain, "all")) {
    qp_cli_usage_error("set", _("--chain: “%s” is neither “top” nor “all”"), opts.chain);
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&options, "{sv}", "max", g_variant_new_uint64(max));
  g_variant_builder_add(&options, "{sv}", "chain",
                        g_variant_new_string(opts.chain != NULL ? opts.chain : "top"));
  if (isatty(STDIN_FILENO))
    g_variant_builder_add(&options, "{sv}", "interactive", g_variant_new_boolean(TRUE));
  return qp_cli_daemon_domain_call(bus, opts.rest[0], "SetPolicy",
                                   g_variant_new("(ua{sv})", percent, &options));
}

int
qp_cli_clear(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;

  if (!qp_cli_daemon_parse("clear", _("DOMAIN"), _("Remove a domain's policy."), FALSE, FALSE,
                           &argc, &argv, &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 1) {
    qp_cli_usage_error("clear", "%s", _("expected one DOMAIN (name or UUID)"));
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  return qp_cli_daemon_domain_call(bus, opts.rest[0], "ClearPolicy",
                                   g_variant_new("(@a{sv})", qp_cli_daemon_options(TRUE)));
}

int
qp_cli_reconcile(int argc, char **argv)
{
  g_auto(QpCliDaemonOpts) opts = { 0 };
  g_autoptr(GDBusConnection) bus = NULL;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) objects = NULL;
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;
  guint failed = 0;

  if (!qp_cli_daemon_parse("reconcile", NULL, _("Reconcile every domain now."), TRUE, FALSE, &argc,
                           &argv, &opts))
    return QP_CLI_EXIT_USAGE;
  if (qp_cli_daemon_n_args(&opts) != 0) {
    qp_cli_usage_error("reconcile", _("unexpected argument “%s”"), opts.rest[0]);
    return QP_CLI_EXIT_USAGE;
  }
  bus = qp_cli_daemon_bus(&opts);
  if (bus == NULL)
    return QP_CLI_EXIT_FAILURE;
  reply = qp_cli_daemon_call(bus, QP_MANAGER_PATH, QP_MANAGER_IFACE, "Reconcile",
                             g_variant_new("(@a{sv})", qp_cli_daemon_options(TRUE)), "()",
                             QP_CLI_LONG_CALL_TIMEOUT_MS, &error);
  if (reply == NULL || (objects = qp_cli_daemon_objects(bus, &error)) == NULL) {
    qp_cli_daemon_error(NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  domains = qp_cli_daemon_domains(objects);
  for (guint i = 0; i < domains->len; i++) {
    if (g_str_equal(qp_cli_lookup_s(g_ptr_array_index(domains, i), "State"), "error"))
      failed++;
  }
  if (opts.json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_array(b);
    for (guint i = 0; i < domains->len; i++)
      json_builder_add_value(b, qp_cli_domain_json(g_ptr_array_index(domains, i)));
    json_builder_end_array(b);
    root = json_builder_get_root(b);
    qp_cli_json_print(root);
  } else {
    printf(ngettext("Reconciled %u domain", "Reconciled %u domains", domains->len), domains->len);
    printf(ngettext(", %u in error.\n", ", %u in error.\n", failed), failed);
  }
  return qp_cli_report_failures(domains);
}
