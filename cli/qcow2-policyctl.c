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

int
main(int argc, char **argv)
{
  setlocale(LC_ALL, "");
  bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
  textdomain(GETTEXT_PACKAGE);

  if (argc < 2) {
    print_usage(stderr);
    return QP_CLI_EXIT_USAGE;
  }
  if (g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "-h")
      || g_str_equal(argv[1], "help")) {
    print_usage(stdout);
    return QP_CLI_EXIT_OK;
  }
  if (g_str_equal(argv[1], "--version")) {
    printf("qcow2-policyctl %s\n", PACKAGE_VERSION);
    return QP_CLI_EXIT_OK;
  }
  for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
    if (g_str_equal(argv[1], commands[i].name))
      return commands[i].func(argc - 1, argv + 1);
  }
  g_printerr(_("qcow2-policyctl: unknown command “%s”\n"), argv[1]);
  print_usage(stderr);
  return QP_CLI_EXIT_USAGE;
}
