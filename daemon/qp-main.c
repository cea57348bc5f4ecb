/* qcow2-policyd: keeps the qcow2 L2 cache sizes in libvirt domain XML at a declared
 * percentage. */
#include "config.h"

#include <glib/gi18n.h>
#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <locale.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qp-config.h"
#include "qp-daemon.h"

#define QP_CONFIG_FILE SYSCONFDIR "/qcow2-policyd/qcow2-policyd.conf"

/* libvirt prints every error on stderr by default; ours go through GError and the log */
static void
qp_main_quiet_libvirt(void *opaque, virErrorPtr err)
{
}

/* Levels more verbose than this are dropped: log-level=warning, message or info. */
static GLogLevelFlags qp_main_log_drop = G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG;

static GLogWriterOutput
qp_main_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                   gpointer user_data)
{
  if ((level & qp_main_log_drop) != 0)
    return G_LOG_WRITER_HANDLED;
  return g_log_writer_default(level, fields, n_fields, user_data);
}

static void
qp_main_set_log_level(const char *level, gboolean verbose)
{
  if (verbose || g_strcmp0(level, "debug") == 0)
    qp_main_log_drop = 0;
  else if (g_strcmp0(level, "info") == 0)
    qp_main_log_drop = G_LOG_LEVEL_DEBUG;
  else if (g_strcmp0(level, "warning") == 0)
    qp_main_log_drop = G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG;
  /* the default writer drops info and debug unless told otherwise */
  if ((qp_main_log_drop & G_LOG_LEVEL_INFO) == 0)
    g_log_set_debug_enabled(TRUE);
  g_log_set_writer_func(qp_main_log_writer, NULL, NULL);
}

/* GLib before 2.76 keeps freed slices (GVariants, hash tables: megabytes after a
 * GetManagedObjects of thousands of domains) in caches of its own that the heap never gets
 * back; GLib 2.76 dropped that allocator for malloc. G_SLICE is read by GLib's own
 * constructor, before main(), so set it and run again. The systemd unit sets it already;
 * if the exec fails we only keep the memory. */
static void
qp_main_use_system_malloc(char **argv)
{
  const char *preload = g_getenv("LD_PRELOAD");

  if (glib_check_version(2, 76, 0) == NULL || g_getenv("G_SLICE") != NULL)
    return;
  /* under valgrind /proc/self/exe is valgrind's tool, which refuses to run; GLib uses
   * malloc there anyway */
  if (preload != NULL && strstr(preload, "vgpreload") != NULL)
    return;
  if (!g_setenv("G_SLICE", "always-malloc", TRUE))
    return;
  execv("/proc/self/exe", argv);
}

int
main(int argc, char **argv)
{
  gboolean opt_system = FALSE;
  gboolean opt_session = FALSE;
  gboolean opt_verbose = FALSE;
  gboolean opt_version = FALSE;
  g_autofree char *opt_uri = NULL;
  g_autofree char *opt_config = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(QpConfig) config = NULL;
  g_autoptr(QpDaemon) daemon = NULL;
  const GOptionEntry entries[] = {
    { "system", 0, 0, G_OPTION_ARG_NONE, &opt_system, N_("Use the system bus (default)"), NULL },
    { "session", 0, 0, G_OPTION_ARG_NONE, &opt_session,
      N_("Use the session bus, allow every caller (development and tests)"), NULL },
    { "connect", 'c', 0, G_OPTION_ARG_STRING, &opt_uri,
      N_("libvirt connection URI (default: from the configuration, else qemu:///system)"), "URI" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &opt_config,
      N_("Configuration file (default: /etc/qcow2-policyd/qcow2-policyd.conf)"), "FILE" },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &opt_verbose, N_("Log debug messages"), NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &opt_version, N_("Print the version and exit"), NULL },
    { NULL },
  };

  /* One malloc arena for all threads. A second one gets, by glibc's round robin, either
   * the libvirt-open thread or a worker, so that the resident size after a start of
   * 1,000 domains varied from run to run between 32.1 and 34.7 MiB; with one it is
   * 31.9-32.0 MiB (docs/benchmarks.md, "Daemon scale", 2026-12-03). The lock costs
   * about 0.1 s of that start; the daemon is never malloc-bound otherwise. */
  qp_main_use_system_malloc(argv);
  mallopt(M_ARENA_MAX, 1);
  setlocale(LC_ALL, "");
  bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
  textdomain(GETTEXT_PACKAGE);

  context = g_option_context_new(NULL);
  g_option_context_set_summary(context, _("Keep qcow2 L2 cache sizes in libvirt domain XML at "
                                          "a declared percentage."));
  g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse(context, &argc, &argv, &error)) {
    g_printerr("qcow2-policyd: %s\n", error->message);
    return 2;
  }
  if (opt_version) {
    g_print("qcow2-policyd %s\n", PACKAGE_VERSION);
    return 0;
  }
  if (opt_system && opt_session) {
    g_printerr("qcow2-policyd: %s\n", _("--system and --session exclude each other"));
    return 2;
  }
  config = qp_config_load(opt_config != NULL ? opt_config : QP_CONFIG_FILE, opt_config != NULL,
                          &error);
  if (config == NULL) {
    g_printerr("qcow2-policyd: %s\n", error->message);
    return 1;
  }
  if (opt_uri != NULL) {
    g_free(config->uri);
    config->uri = g_steal_pointer(&opt_uri);
  }
  qp_main_set_log_level(config->log_level, opt_verbose);

  /* libxml2's one-time setup is not thread-safe; the workers parse domain XML */
  xmlInitParser();
  gvir_init(NULL, NULL);
  virSetErrorFunc(NULL, qp_main_quiet_libvirt);
  /* libvirt's events run on the GLib main loop, no thread of their own */
  gvir_event_register();

  daemon = qp_daemon_new(g_steal_pointer(&config), opt_session);
  if (!qp_daemon_run(daemon, &error)) {
    g_printerr("qcow2-policyd: %s\n", error->message);
    return 1;
  }
  return 0;
}
