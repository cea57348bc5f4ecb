/* placeholder: implemented by its owner */
#include "qp-cli.h"
#include <stdio.h>
int
qp_cli_analyze(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
int
qp_cli_recommend(int argc, char **argv)
{
  fprintf(stderr, "not implemented\n");
  return QP_CLI_EXIT_USAGE;
}
