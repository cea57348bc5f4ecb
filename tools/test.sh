#!/bin/bash
# Install dependencies, build, run every test suite, then the C and CLI/daemon suites again
# under ASan+UBSan and the C unit tests under valgrind (tools/test-sanitizers.sh).
# Ends with "N passed, N failed" counted from both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
builddir=${BUILDDIR:-build}
export SANITIZE_BUILDDIR=${SANITIZE_BUILDDIR:-build-sanitize}
if [ ! -d "$builddir" ]; then
  meson setup "$builddir" || { echo "0 passed, 1 failed"; exit 1; }
fi
meson compile -C "$builddir" || { echo "0 passed, 1 failed"; exit 1; }
meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@"
logs=("$builddir/meson-logs/testlog.json")
if [ "${QP_SKIP_SANITIZERS:-0}" != 1 ]; then
  bash tools/test-sanitizers.sh "$builddir"
  if [ -f "$SANITIZE_BUILDDIR/meson-logs/testlog.json" ]; then
    logs+=("$SANITIZE_BUILDDIR/meson-logs/testlog.json")
  else
    echo "tools/test-sanitizers.sh left no results"
    echo "0 passed, 1 failed"
    exit 1
  fi
fi
/usr/bin/python3 tests/summarize.py "${logs[@]}"
