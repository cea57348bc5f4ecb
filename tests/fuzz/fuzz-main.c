/* libFuzzer glue: one executable per target, QP_FUZZ_ENTRY names its entry point. */
#include "config.h"

#include <glib.h>

#include "fuzz-targets.h"

#ifndef QP_FUZZ_ENTRY
#error "QP_FUZZ_ENTRY must name the target's entry point"
#endif

/* libFuzzer's hooks (it declares them in no header). */
int
LLVMFuzzerInitialize(int *argc, char ***argv);
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  qp_fuzz_init();
  return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  return QP_FUZZ_ENTRY(data, size);
}
