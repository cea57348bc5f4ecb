# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the cli and xml suites share: size units, the built qcow2-policyctl and the
programs they run (their conftest.py put this folder on sys.path)."""

import os
import shutil

import pytest

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB


def ctl_path():
    build = os.environ.get("QP_BUILD_DIR")
    if not build:
        pytest.fail("QP_BUILD_DIR is not set: run the suite through meson test")
    path = os.path.join(build, "cli", "qcow2-policyctl")
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is not built")
    return path


def need(program):
    path = shutil.which(program)
    if path is None:
        # Not a skip: tools/install-deps.sh installs every program the suites run, so a
        # missing one is a broken setup the suite must report.
        pytest.fail(f"{program} is not installed (tools/install-deps.sh installs it)")
    return path


# qemu-img times the LUKS key derivation with the thread's CPU time and fails with this
# message when that did not advance over its first PBKDF2 round (a third of the runs on an
# AMD EPYC host, 2026-12-03). That is the machine, not the image, so such a run is
# repeated (as tests/fuzz/test-fuzz-replay.c and tests/lib/test-qcow2-files.c do).
QEMU_CPU_USAGE_FAILURE = "accurate CPU usage"


def run_qemu_img(run_once, tries=20):
    """run_once() -> CompletedProcess (text or bytes); repeated on that failure only."""
    for _ in range(tries):
        proc = run_once()
        err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode(errors="replace")
        if proc.returncode == 0 or QEMU_CPU_USAGE_FAILURE not in err:
            break
    return proc
