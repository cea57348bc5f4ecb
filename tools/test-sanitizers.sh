#!/bin/bash
# The C unit suites under AddressSanitizer + UndefinedBehaviorSanitizer (a second build
# directory, gcc, -Db_sanitize=address,undefined), then under valgrind (the normal build's
# binaries). Every Python suite that drives the built CLI and daemon runs against the
# sanitized binaries too, so their code paths are checked as well.
#
#   tools/test-sanitizers.sh [NORMAL_BUILD_DIR]     (default: $BUILDDIR or build)
#
# Results: SANITIZE_BUILDDIR/meson-logs/testlog.json (default build-sanitize) holds the
# sanitizer run and, appended with "-valgrind" names, the valgrind run, so
#   python3 tests/summarize.py build-sanitize/meson-logs/testlog.json
# counts both. Exits 1 when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
normal=${1:-${BUILDDIR:-build}}
san=${SANITIZE_BUILDDIR:-build-sanitize}
started=$(date +%s)

# The suites with unit tests written in C (every TAP test of them runs under valgrind
# too), and the suites that run the built programs. e2e needs a real libvirtd and QEMU
# and runs in the normal build only; style checks no code. A suite that does not exist
# (yet) selects nothing.
c_suites=(lib fuzz xml daemon)
py_suites=(cli daemon security)

fail() {
  echo "test-sanitizers: $*" >&2
  exit 1
}

# Every test of the given suites whose command is not itself a wrapper (test-xml-valgrind
# runs valgrind, which cannot run sanitized binaries); with "c", TAP tests only.
tests_of() {
  local dir=$1 kind=$2
  shift 2
  meson introspect --tests "$dir" | /usr/bin/python3 -c '
import json, sys
kind, suites = sys.argv[1], sys.argv[2:]
for t in json.load(sys.stdin):
    if not any(s.split(":")[-1] in suites for s in t["suite"]):
        continue
    if "valgrind" in t["cmd"][0] or "valgrind" in t["name"]:
        continue
    if kind == "c" and t.get("protocol") != "tap":
        continue
    print(t["name"])
' "$kind" "$@"
}

export G_SLICE=always-malloc
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

if [ ! -d "$san" ]; then
  meson setup "$san" -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug \
    >/dev/null || fail "meson setup $san failed"
fi
meson compile -C "$san" >/dev/null || fail "meson compile -C $san failed"
mapfile -t san_tests < <( (tests_of "$san" c "${c_suites[@]}"; tests_of "$san" py "${py_suites[@]}") |
  awk '!seen[$0]++')
[ "${#san_tests[@]}" -gt 0 ] || fail "no tests found in $san"
echo "== ASan+UBSan ($san): ${san_tests[*]}"
# ASan and UBSan make the C code two to three times slower
meson test -C "$san" --print-errorlogs --num-processes 2 --timeout-multiplier 3 "${san_tests[@]}"
san_rc=$?
san_done=$(date +%s)

# valgrind: the normal build's C unit tests. With --wrap, meson names the log after the
# wrapper (meson-logs/testlog-valgrind.json), so the main run's testlog.json is left alone.
if [ ! -d "$normal" ]; then
  meson setup "$normal" >/dev/null || fail "meson setup $normal failed"
fi
meson compile -C "$normal" >/dev/null || fail "meson compile -C $normal failed"
supp=()
for f in /usr/share/glib-2.0/valgrind/glib.supp "$PWD/tools/valgrind.supp"; do
  [ -f "$f" ] && supp+=("--suppressions=$f")
done
# test-xml already runs under valgrind in every normal run (test-xml-valgrind)
mapfile -t vg_tests < <(tests_of "$normal" c "${c_suites[@]}" | grep -vx test-xml)
echo "== valgrind ($normal): ${vg_tests[*]}"
meson test -C "$normal" --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
  --wrap="valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes --trace-children=yes --trace-children-skip=*qemu-img*,*qemu-io* ${supp[*]}" \
  "${vg_tests[@]}"
vg_rc=$?

# One file for tests/summarize.py: the valgrind entries join the sanitizer log.
/usr/bin/python3 - "$normal/meson-logs/testlog-valgrind.json" \
  >>"$san/meson-logs/testlog.json" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    entry = json.loads(line)
    entry["name"] = entry["name"] + "-valgrind"
    print(json.dumps(entry))
PY
end=$(date +%s)
echo "test-sanitizers: ASan+UBSan $((san_done - started)) s, valgrind $((end - san_done)) s," \
  "total $((end - started)) s"
[ $san_rc -eq 0 ] && [ $vg_rc -eq 0 ]
