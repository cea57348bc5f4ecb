#!/usr/bin/python3
"""Count individual test results from meson's testlog.json files (one or more).

GLib tests speak TAP ("ok N /path", "not ok N ...", "# SKIP"); pytest -v prints
"file::name PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS". Each line counts once. A meson test
that failed without reporting any individual failure (a crash, a timeout, a suite that
could not start) counts as one failure, so nothing can fail silently.
Prints 'N passed, N failed, N skipped' as the last line; exits 1 when anything failed."""

import json
import re
import sys

TAP = re.compile(r"^(not ok|ok)\b(.*)$")
PYTEST = re.compile(r"^\S+::\S+.*?\s(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def count(output):
    passed = failed = skipped = 0
    for line in output.splitlines():
        m = TAP.match(line)
        if m:
            if "# SKIP" in m.group(2).upper():
                skipped += 1
            elif m.group(1) == "ok":
                passed += 1
            else:
                failed += 1
            continue
        m = PYTEST.match(line)
        if m:
            word = m.group(1)
            if word in ("PASSED", "XFAIL"):
                passed += 1
            elif word == "SKIPPED":
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def main(paths):
    total_p = total_f = total_s = 0
    for path in paths:
        with open(path, encoding="utf-8") as log:
            lines = log.readlines()
        for line in lines:
            entry = json.loads(line)
            p, f, s = count(entry.get("stdout") or "")
            result = entry.get("result")
            if result in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS") and f == 0:
                f = 1
                print(f"meson test {entry.get('name')} ended {result} with no failure line")
            if result == "SKIP" and p + f + s == 0:
                s = 1
            if p + f + s == 0 and result == "OK":
                p = 1
            print(f"{entry.get('name')}: {p} passed, {f} failed, {s} skipped")
            total_p += p
            total_f += f
            total_s += s
    print(f"{total_p} passed, {total_f} failed, {total_s} skipped")
    return 1 if total_f else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
