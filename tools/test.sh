#!/bin/bash
# Install dependencies, build, and run every test suite; ends with "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }
builddir=${BUILDDIR:-build}
if [ ! -d "$builddir" ]; then
  meson setup "$builddir" || { echo "0 passed, 1 failed"; exit 1; }
fi
meson compile -C "$builddir" || { echo "0 passed, 1 failed"; exit 1; }
meson test -C "$builddir" --print-errorlogs --num-processes 2 "$@"
/usr/bin/python3 tests/summarize.py "$builddir/meson-logs/testlog.json"
