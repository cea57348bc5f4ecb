# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared helpers of the CLI suites: the built qcow2-policyctl and real qemu-img/qemu-io."""

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qpbuild import GIB, KIB, MIB, TIB, ctl_path, need, run_qemu_img  # noqa: E402,F401

# Every command here either finishes in well under a second or is a bug (a hang on a
# FIFO, say); the long qemu-img runs pass their own timeout.
TIMEOUT = 10


def run(args, check=True, timeout=TIMEOUT, **kwargs):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ctl(*args, check=False, timeout=TIMEOUT):
    return run([ctl_path(), *[str(a) for a in args]], check=check, timeout=timeout)


def analyze_json(*args):
    proc = ctl("analyze", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    data = json.loads(proc.stdout)
    assert isinstance(data, list)
    return data


def qemu_img(*args, timeout=120):
    argv = [need("qemu-img"), *[str(a) for a in args]]
    proc = run_qemu_img(lambda: run(argv, check=False, timeout=timeout))
    if proc.returncode != 0:
        raise AssertionError(f"{argv!r} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def qemu_io(image, commands, extra=(), timeout=120):
    args = [need("qemu-io"), *extra]
    for c in commands:
        args += ["-c", c]
    args.append(str(image))
    return run(args, timeout=timeout)


def qemu_info(image, extra=()):
    return json.loads(qemu_img("info", "--output=json", *extra, image).stdout)


def qemu_check(*args):
    # qemu-img check exits 0 when clean, 2 for corruptions and 3 for leaks (a dirty
    # lazy-refcounts image has both until repaired); all of those still count clusters.
    proc = run([need("qemu-img"), "check", "--output=json", *[str(a) for a in args]],
               check=False, timeout=600)
    assert proc.returncode in (0, 2, 3), proc.stderr
    result = json.loads(proc.stdout)
    assert result["check-errors"] == 0, result
    return result


def round_up(x, a):
    return (x + a - 1) // a * a


def l2_full(virtual_size, cluster_size, extended_l2):
    """Spec section 2, computed independently of the C engine."""
    entry = 16 if extended_l2 else 8
    return round_up(-(-virtual_size // cluster_size) * entry, cluster_size)


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
