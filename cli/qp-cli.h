/* qcow2-policyctl: the commands, each in the file for its group. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Exit statuses (spec section 5). */
#define QP_CLI_EXIT_OK      0
#define QP_CLI_EXIT_FAILURE 1 /* an image or domain failed */
#define QP_CLI_EXIT_USAGE   2

/* Each command gets argv with argv[0] the command name and returns an exit status. */
typedef int (*QpCliCommandFunc)(int argc, char **argv);

/* qp-cli-analyze.c: work on image files, no daemon. */
int
qp_cli_analyze(int argc, char **argv);
int
qp_cli_recommend(int argc, char **argv);

/* qp-cli-xml.c: work on a domain XML file, no daemon. */
int
qp_cli_plan(int argc, char **argv);
int
qp_cli_apply_xml(int argc, char **argv);

/* qp-cli-daemon.c: talk to qcow2-policyd over D-Bus. */
int
qp_cli_status(int argc, char **argv);
int
qp_cli_list(int argc, char **argv);
int
qp_cli_show(int argc, char **argv);
int
qp_cli_set(int argc, char **argv);
int
qp_cli_clear(int argc, char **argv);
int
qp_cli_reconcile(int argc, char **argv);

/* Print "qcow2-policyctl: CONTEXT: MESSAGE" on stderr (one line per failure). */
void
qp_cli_print_error(const char *context, const GError *error);

G_END_DECLS
