/* placeholder: implemented by its owner */
#include "qp-cli.h"
#include <stdio.h>
int
qp_cli_plan(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_apply_xml(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
