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

/* A command's options and arguments, then its bus. */
typedef struct {
  gboolean session;
  gboolean json;
  char *max;
  char *chain;
  char **rest;
  guint percent;     /* set's PERCENT */
  guint64 max_bytes; /* --max */
  GDBusConnection *bus;
} QpCliDaemon;

/* A daemon command: how it is called, how many arguments it takes. */
typedef struct {
  const char *name;
  const char *params;       /* N_(), NULL for none */
  const char *summary;      /* N_() */
  guint n_args;             /* exactly this many */
  const char *n_args_error; /* N_(), for another count; NULL: "unexpected argument" */
  gboolean with_json;
  gboolean with_policy; /* --max and --chain */
  /* checks of the values beyond their count, NULL for none */
  gboolean (*check)(QpCliDaemon *d, GError **error);
} QpCliDaemonCommand;

static gboolean
qp_cli_daemon_check_set(QpCliDaemon *d, GError **error);

static const QpCliDaemonCommand qp_cli_daemon_commands[] = {
  { "status", NULL, N_("Show the daemon's state."), 0, NULL, TRUE, FALSE, NULL },
  { "list", NULL, N_("List domains and their policy state."), 0, NULL, TRUE, FALSE, NULL },
  { "show", N_("DOMAIN"), N_("Show one domain's disks and figures."), 1,
    N_("expected one DOMAIN (name or UUID)"), TRUE, FALSE, NULL },
  { "set", N_("DOMAIN PERCENT"),
    N_("Set a domain's policy: keep PERCENT of each image's L2 tables in QEMU's cache."), 2,
    N_("expected DOMAIN and PERCENT"), FALSE, TRUE, qp_cli_daemon_check_set },
  { "clear", N_("DOMAIN"), N_("Remove a domain's policy."), 1,
    N_("expected one DOMAIN (name or UUID)"), FALSE, FALSE, NULL },
  { "reconcile", NULL, N_("Reconcile every domain now."), 0, NULL, TRUE, FALSE, NULL },
};

static void
qp_cli_daemon_clear(QpCliDaemon *d)
{
  g_free(d->max);
  g_free(d->chain);
  g_strfreev(d->rest);
  g_clear_object(&d->bus);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(QpCliDaemon, qp_cli_daemon_clear)

/* Parse the options of @cmd (--session always; --json, --max/--chain when it takes them) and
 * check its arguments. On a usage error prints it and returns FALSE. */
static gboolean
qp_cli_daemon_parse(const QpCliDaemonCommand *cmd, int argc, char **argv, QpCliDaemon *d)
{
  g_autoptr(GError) error = NULL;
  const GOptionEntry common[] = {
    { "session", 0, 0, G_OPTION_ARG_NONE, &d->session,
      N_("Talk to a daemon on the session bus instead of the system bus"), NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_STRING_ARRAY, &d->rest, NULL, NULL },
    { NULL },
  };
  const GOptionEntry json[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &d->json, N_("Print JSON"), NULL },
    { NULL },
  };
  const GOptionEntry policy[] = {
    { "max", 0, 0, G_OPTION_ARG_STRING, &d->max, N_("Cap on the max_size written for one image"),
      N_("SIZE") },
    { "chain", 0, 0, G_OPTION_ARG_STRING, &d->chain,
      N_("Size the top image only (top, the default) or every qcow2 layer (all)"), N_("top|all") },
    { NULL },
  };
  g_autoptr(GOptionContext) context
      = g_option_context_new(cmd->params != NULL ? _(cmd->params) : NULL);
  g_autofree char *prgname = g_strdup_printf("qcow2-policyctl %s", cmd->name);
  guint n_args;

  g_set_prgname(prgname);
  g_option_context_set_summary(context, _(cmd->summary));
  g_option_context_add_main_entries(context, common, GETTEXT_PACKAGE);
  if (cmd->with_json)
    g_option_context_add_main_entries(context, json, GETTEXT_PACKAGE);
  if (cmd->with_policy)
    g_option_context_add_main_entries(context, policy, GETTEXT_PACKAGE);
  g_option_context_set_translation_domain(context, GETTEXT_PACKAGE);
  if (!qp_cli_parse_options(context, &argc, &argv))
    return FALSE;
  n_args = d->rest != NULL ? g_strv_length(d->rest) : 0;
  if (n_args != cmd->n_args) {
    if (cmd->n_args_error != NULL)
      qp_cli_usage_error(cmd->name, "%s", _(cmd->n_args_error));
    else
      qp_cli_usage_error(cmd->name, _("unexpected argument “%s”"), d->rest[cmd->n_args]);
    return FALSE;
  }
  if (cmd->check != NULL && !cmd->check(d, &error)) {
    qp_cli_usage_error(cmd->name, "%s", error->message);
    return FALSE;
  }
  return TRUE;
}

/* The daemon cannot be reached: no bus, or nobody owns (or could be started for) its name. */
static gboolean
qp_cli_daemon_unreachable(const QpCliDaemon *d, const char *dbus_error)
{
  if (d->bus == NULL)
    return TRUE;
  return g_strcmp0(dbus_error, "org.freedesktop.DBus.Error.ServiceUnknown") == 0
         || g_strcmp0(dbus_error, "org.freedesktop.DBus.Error.NameHasNoOwner") == 0
         || (dbus_error != NULL
             && g_str_has_prefix(dbus_error, "org.freedesktop.DBus.Error.Spawn."));
}

/* Report @error on stderr (about @context, or NULL); with --json also as
 * {"error": {"bus", "dbus-error", "reachable", "message"}} on stdout, the D-Bus error name
 * (null for a bus that could not be connected to) for scripts. */
static void
qp_cli_daemon_error(const QpCliDaemon *d, const char *context, GError *error)
{
  g_autofree char *name = NULL;
  gboolean unreachable;

  if (g_dbus_error_is_remote_error(error)) {
    name = g_dbus_error_get_remote_error(error);
    g_dbus_error_strip_remote_error(error);
  }
  unreachable = qp_cli_daemon_unreachable(d, name);
  if (d->json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_begin_object(b);
    qp_cli_json_add_string_or_null(b, "bus", d->session ? "session" : "system");
    qp_cli_json_add_string_or_null(b, "dbus-error", name);
    qp_cli_json_add_boolean(b, "reachable", !unreachable);
    qp_cli_json_add_string_or_null(b, "message", error->message);
    json_builder_end_object(b);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    qp_cli_json_print(root);
  }
  if (unreachable) {
    g_autoptr(GError) e = NULL;
    if (d->session)
      /* TRANSLATORS: %s is the reason, e.g. "The name … was not provided by any .service files" */
      e = g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                      _("cannot reach qcow2-policyd on the session bus: %s; is “qcow2-policyd "
                        "--session” running in this session? leave out --session for the "
                        "system-bus daemon"),
                      error->message);
    else
      /* TRANSLATORS: %s is the reason, e.g. "Could not connect: No such file or directory" */
      e = g_error_new(G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                      _("cannot reach qcow2-policyd on the system bus: %s; is the service "
                        "running? use --session for a session-bus daemon"),
                      error->message);
    qp_cli_print_error(NULL, e);
    return;
  }
  qp_cli_print_error(context, error);
}

/* What every daemon command does first: parse and check the command line of @name, then
 * connect to the bus --session names. Returns QP_CLI_EXIT_OK when the command can go on,
 * else (the error printed) the exit status. */
static int
qp_cli_daemon_start(const char *name, int argc, char **argv, QpCliDaemon *d)
{
  g_autoptr(GError) error = NULL;
  const QpCliDaemonCommand *cmd = NULL;

  for (gsize i = 0; i < G_N_ELEMENTS(qp_cli_daemon_commands); i++) {
    if (g_str_equal(qp_cli_daemon_commands[i].name, name))
      cmd = &qp_cli_daemon_commands[i];
  }
  g_assert(cmd != NULL);
  if (!qp_cli_daemon_parse(cmd, argc, argv, d))
    return QP_CLI_EXIT_USAGE;
  d->bus = g_bus_get_sync(d->session ? G_BUS_TYPE_SESSION : G_BUS_TYPE_SYSTEM, NULL, &error);
  if (d->bus == NULL) {
    qp_cli_daemon_error(d, NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  return QP_CLI_EXIT_OK;
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
  qp_cli_json_add_string_or_null(b, "name", qp_cli_lookup_s(props, "Name"));
  qp_cli_json_add_string_or_null(b, "uuid", qp_cli_lookup_s(props, "UUID"));
  qp_cli_json_add_string_or_null(b, "state", qp_cli_lookup_s(props, "State"));
  qp_cli_json_add_boolean(b, "persistent", persistent);
  qp_cli_json_add_boolean(b, "active", active);
  qp_cli_json_add_uint(b, "percent", qp_cli_lookup_t(props, "Percent"));
  qp_cli_json_add_uint(b, "max", qp_cli_lookup_t(props, "Max"));
  qp_cli_json_add_string_or_null(b, "chain", qp_cli_lookup_s(props, "Chain"));
  qp_cli_json_add_string_or_null(b, "policy-source", qp_cli_lookup_s(props, "PolicySource"));
  qp_cli_json_add_string_or_null(b, "error", qp_cli_lookup_s(props, "Error"));
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
qp_cli_daemon_domains(GDBusConnection *bus, GError **error)
{
  g_autoptr(GVariant) objects = qp_cli_daemon_objects(bus, error);
  GPtrArray *domains;
  GVariantIter iter;
  const char *path;
  GVariant *ifaces;

  if (objects == NULL)
    return NULL;
  domains = g_ptr_array_new_with_free_func((GDestroyNotify)g_variant_unref);
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

/* The domains as a JSON array on stdout. */
static void
qp_cli_domains_json_print(GPtrArray *domains)
{
  g_autoptr(JsonBuilder) b = json_builder_new();
  g_autoptr(JsonNode) root = NULL;

  json_builder_begin_array(b);
  for (guint i = 0; i < domains->len; i++)
    json_builder_add_value(b, qp_cli_domain_json(g_ptr_array_index(domains, i)));
  json_builder_end_array(b);
  root = json_builder_get_root(b);
  qp_cli_json_print(root);
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
  int status;
  g_auto(QpCliDaemon) d = { 0 };
  g_autoptr(GVariant) manager = NULL;
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;
  const char *states[] = { "applied", "pending-restart", "unmanaged", "error" };
  guint counts[G_N_ELEMENTS(states)] = { 0 };
  gboolean connected = FALSE;

  status = qp_cli_daemon_start("status", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  manager = qp_cli_daemon_props(d.bus, QP_MANAGER_PATH, QP_MANAGER_IFACE, &error);
  if (manager == NULL || (domains = qp_cli_daemon_domains(d.bus, &error)) == NULL) {
    qp_cli_daemon_error(&d, NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  for (guint i = 0; i < domains->len; i++) {
    const char *state = qp_cli_lookup_s(g_ptr_array_index(domains, i), "State");
    for (guint j = 0; j < G_N_ELEMENTS(states); j++) {
      if (g_str_equal(state, states[j]))
        counts[j]++;
    }
  }
  g_variant_lookup(manager, "Connected", "b", &connected);

  if (d.json) {
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonNode) root = NULL;
    json_builder_begin_object(b);
    qp_cli_json_add_string_or_null(b, "version", qp_cli_lookup_s(manager, "Version"));
    qp_cli_json_add_string_or_null(b, "uri", qp_cli_lookup_s(manager, "Uri"));
    qp_cli_json_add_boolean(b, "connected", connected);
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
  int status;
  g_auto(QpCliDaemon) d = { 0 };
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;

  status = qp_cli_daemon_start("list", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  domains = qp_cli_daemon_domains(d.bus, &error);
  if (domains == NULL) {
    qp_cli_daemon_error(&d, NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  if (d.json) {
    qp_cli_domains_json_print(domains);
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
  int status;
  g_auto(QpCliDaemon) d = { 0 };
  g_autoptr(GVariant) props = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = NULL;

  status = qp_cli_daemon_start("show", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  path = qp_cli_daemon_domain_path(d.bus, d.rest[0], &error);
  if (path == NULL || (props = qp_cli_daemon_props(d.bus, path, QP_DOMAIN_IFACE, &error)) == NULL) {
    qp_cli_daemon_error(&d, d.rest[0], error);
    return QP_CLI_EXIT_FAILURE;
  }
  if (d.json) {
    g_autoptr(JsonNode) root = qp_cli_domain_json(props);
    qp_cli_json_print(root);
  } else {
    qp_cli_print_domain(props);
  }
  if (g_str_equal(qp_cli_lookup_s(props, "State"), "error")) {
    if (!d.json)
      g_printerr("qcow2-policyctl: %s: %s\n", qp_cli_lookup_s(props, "Name"),
                 qp_cli_lookup_s(props, "Error"));
    return QP_CLI_EXIT_FAILURE;
  }
  return QP_CLI_EXIT_OK;
}

/* After set/clear: one line with the domain's new state; 1 when it is in error. */
static int
qp_cli_daemon_report(const QpCliDaemon *d, const char *domain, const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) props = qp_cli_daemon_props(d->bus, path, QP_DOMAIN_IFACE, &error);
  g_autofree char *policy = NULL;

  if (props == NULL) {
    qp_cli_daemon_error(d, domain, error);
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
qp_cli_daemon_domain_call(const QpCliDaemon *d, const char *domain, const char *method,
                          GVariant *params)
{
  g_autoptr(GVariant) args = g_variant_ref_sink(params);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = qp_cli_daemon_domain_path(d->bus, domain, &error);

  if (path != NULL)
    reply = qp_cli_daemon_call(d->bus, path, QP_DOMAIN_IFACE, method, args, "()",
                               QP_CLI_LONG_CALL_TIMEOUT_MS, &error);
  if (reply == NULL) {
    qp_cli_daemon_error(d, domain, error);
    return QP_CLI_EXIT_FAILURE;
  }
  return qp_cli_daemon_report(d, domain, path);
}

static gboolean
qp_cli_daemon_check_set(QpCliDaemon *d, GError **error)
{
  if (!qp_cli_parse_percent("PERCENT", d->rest[1], &d->percent, error))
    return FALSE;
  if (d->max != NULL && !qp_cli_parse_size("--max", d->max, &d->max_bytes, error))
    return FALSE;
  if (d->chain != NULL && !g_str_equal(d->chain, "top") && !g_str_equal(d->chain, "all")) {
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                _("--chain: “%s” is neither “top” nor “all”"), d->chain);
    return FALSE;
  }
  return TRUE;
}

int
qp_cli_set(int argc, char **argv)
{
  int status;
  g_auto(QpCliDaemon) d = { 0 };
  GVariantBuilder options;

  status = qp_cli_daemon_start("set", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  g_variant_builder_init(&options, G_VARIANT_TYPE_VARDICT);
  g_variant_builder_add(&options, "{sv}", "max", g_variant_new_uint64(d.max_bytes));
  g_variant_builder_add(&options, "{sv}", "chain",
                        g_variant_new_string(d.chain != NULL ? d.chain : "top"));
  if (isatty(STDIN_FILENO))
    g_variant_builder_add(&options, "{sv}", "interactive", g_variant_new_boolean(TRUE));
  return qp_cli_daemon_domain_call(&d, d.rest[0], "SetPolicy",
                                   g_variant_new("(ua{sv})", d.percent, &options));
}

int
qp_cli_clear(int argc, char **argv)
{
  int status;
  g_auto(QpCliDaemon) d = { 0 };

  status = qp_cli_daemon_start("clear", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  return qp_cli_daemon_domain_call(&d, d.rest[0], "ClearPolicy",
                                   g_variant_new("(@a{sv})", qp_cli_daemon_options(TRUE)));
}

int
qp_cli_reconcile(int argc, char **argv)
{
  int status;
  g_auto(QpCliDaemon) d = { 0 };
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GPtrArray) domains = NULL;
  g_autoptr(GError) error = NULL;
  guint failed = 0;

  status = qp_cli_daemon_start("reconcile", argc, argv, &d);
  if (status != QP_CLI_EXIT_OK)
    return status;
  reply = qp_cli_daemon_call(d.bus, QP_MANAGER_PATH, QP_MANAGER_IFACE, "Reconcile",
                             g_variant_new("(@a{sv})", qp_cli_daemon_options(TRUE)), "()",
                             QP_CLI_LONG_CALL_TIMEOUT_MS, &error);
  if (reply == NULL || (domains = qp_cli_daemon_domains(d.bus, &error)) == NULL) {
    qp_cli_daemon_error(&d, NULL, error);
    return QP_CLI_EXIT_FAILURE;
  }
  for (guint i = 0; i < domains->len; i++) {
    if (g_str_equal(qp_cli_lookup_s(g_ptr_array_index(domains, i), "State"), "error"))
      failed++;
  }
  if (d.json) {
    qp_cli_domains_json_print(domains);
  } else {
    printf(ngettext("Reconciled %u domain", "Reconciled %u domains", domains->len), domains->len);
    printf(ngettext(", %u in error.\n", ", %u in error.\n", failed), failed);
  }
  return qp_cli_report_failures(domains);
}
