/* qcow2-policyctl: command dispatch. */
#include "config.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>

#include "qp-cli.h"

typedef struct {
  const char *name;
  QpCliCommandFunc func;
  const char *summary;
} QpCliCommand;

static const QpCliCommand commands[] = {
  { "analyze", qp_cli_analyze, N_("Show qcow2 geometry and cache figures of image files") },
  { "recommend", qp_cli_recommend, N_("Compare cluster layouts for a disk size") },
  { "plan", qp_cli_plan, N_("Show what the policy in a domain XML file would write") },
  { "apply-xml", qp_cli_apply_xml, N_("Print a domain XML file with the policy applied") },
  { "status", qp_cli_status, N_("Show the daemon's state") },
  { "list", qp_cli_list, N_("List domains and their policy state") },
  { "show", qp_cli_show, N_("Show one domain's disks and figures") },
  { "set", qp_cli_set, N_("Set a domain's policy") },
  { "clear", qp_cli_clear, N_("Remove a domain's policy") },
  { "reconcile", qp_cli_reconcile, N_("Reconcile every domain now") },
};

void
qp_cli_print_error(const char *context, const GError *error)
{
  if (context != NULL)
    g_printerr("qcow2-policyctl: %s: %s\n", context, error->message);
  else
    g_printerr("qcow2-policyctl: %s\n", error->message);
}

static void
print_usage(FILE *stream)
{
  fprintf(stream, "%s\n\n%s\n", _("Usage: qcow2-policyctl COMMAND [OPTIONS…]"), _("Commands:"));
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++)
    fprintf(stream, "  %-10s %s\n", commands[i].name, _(commands[i].summary));
  fprintf(stream, "\n%s\n", _("Run “qcow2-policyctl COMMAND --help” for a command's options."));
}

/* Options that may also stand before the command name; they are handed on to the command as
 * if they followed it (a command that does not take one says so). */
static gboolean
is_leading_option(const char *arg)
{
  return g_str_equal(arg, "--session") || g_str_equal(arg, "--json");
}

int
main(int argc, char **argv)
{
  g_autofree char **cmd_argv = NULL;
  const char *name;
  int first = 1;

  setlocale(LC_ALL, "");
  bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
  textdomain(GETTEXT_PACKAGE);

  while (first < argc && is_leading_option(argv[first]))
    first++;
  if (first >= argc) {
    print_usage(stderr);
    return QP_CLI_EXIT_USAGE;
  }
  name = argv[first];
  if (g_str_equal(name, "--help") || g_str_equal(name, "-h") || g_str_equal(name, "help")) {
    print_usage(stdout);
    return QP_CLI_EXIT_OK;
  }
  if (g_str_equal(name, "--version")) {
    printf("qcow2-policyctl %s\n", PACKAGE_VERSION);
    return QP_CLI_EXIT_OK;
  }
  /* the command's argv: its name, the leading options, then what followed the name */
  cmd_argv = g_new0(char *, argc + 1);
  cmd_argv[0] = argv[first];
  memcpy(cmd_argv + 1, argv + 1, (first - 1) * sizeof(char *));
  memcpy(cmd_argv + first, argv + first + 1, (argc - first - 1) * sizeof(char *));
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (g_str_equal(name, commands[i].name))
      return commands[i].func(argc - 1, cmd_argv);
  }
  g_printerr(_("qcow2-policyctl: unknown command “%s”\n"), name);
  print_usage(stderr);
  return QP_CLI_EXIT_USAGE;
}
