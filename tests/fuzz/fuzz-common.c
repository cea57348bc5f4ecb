/* What every fuzz target shares, in libFuzzer and in the replay. */
#include "config.h"

#include <glib.h>

#include "fuzz-targets.h"

void
qp_fuzz_init(void)
{
  /* a critical (a g_return_if_fail) is a bug the fuzzer must report, not a log line */
  g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING | G_LOG_FATAL_MASK);
}
