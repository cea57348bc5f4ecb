/* placeholder: implemented by its owner */
#include "qp-cli.h"
#include <stdio.h>
int
qp_cli_status(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_list(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_show(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_set(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_clear(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_reconcile(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
