# SPDX-License-Identifier: LGPL-2.1-or-later
"""qcow2-policyctl's exit statuses (spec section 5) and --help for analyze and recommend."""

import json
import os
import subprocess

import pytest

from conftest import GIB, ctl, qemu_img


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "u.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, GIB)
    return path


def test_top_level_help():
    proc = ctl("--help")
    assert proc.returncode == 0
    for command in ("analyze", "recommend"):
        assert command in proc.stdout


def test_no_command():
    assert ctl().returncode == 2


def test_leading_options_need_a_command():
    assert ctl("--session").returncode == 2
    assert ctl("--session", "--json").returncode == 2
    proc = ctl("--session", "--help")
    assert proc.returncode == 0 and "Commands:" in proc.stdout


def test_leading_session_goes_to_the_command(image):
    # handed on as if it followed the command name: analyze has no --session
    proc = ctl("--session", "analyze", image)
    assert proc.returncode == 2
    assert "qcow2-policyctl analyze: Unknown option --session" in proc.stderr
    # and --json before the command is analyze's own --json
    proc = ctl("--json", "analyze", image)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["virtual-size"] == GIB


def test_unknown_command():
    proc = ctl("analyse")
    assert proc.returncode == 2
    assert "analyse" in proc.stderr


@pytest.mark.parametrize("command,options", [
    ("analyze", ["--json", "--percent", "--max", "--chain", "--allocation", "--format"]),
    ("recommend", ["--size", "--cache", "--io-size", "--json"]),
])
def test_command_help(command, options):
    proc = ctl(command, "--help")
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert f"qcow2-policyctl {command}" in proc.stdout
    for option in options:
        assert option in proc.stdout


def test_analyze_ok(image):
    proc = ctl("analyze", image)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert str(image) in proc.stdout
    assert "1 GiB (1073741824 bytes)" in proc.stdout
    assert "L2 full size" in proc.stdout


@pytest.mark.parametrize("args", [
    [],                                 # no image
    ["--percent", "0"],
    ["--percent", "101"],
    ["--percent", "abc"],
    ["--percent", "50%"],
    ["--percent", "1e2"],
    ["--percent", "-5"],
    ["--percent", ""],
    ["--percent", "100", "--max", "12XB"],
    ["--percent", "100", "--max", "-1"],
    ["--percent", "100", "--max", "1.5G"],
    ["--percent", "100", "--max", "0"],
    ["--max", "1G"],                    # --max without --percent
    ["--bogus"],
    ["-x"],
])
def test_analyze_usage_errors(image, args):
    # The image is valid: the exit status must come from the options alone.
    proc = ctl("analyze", *args, *([image] if args else []))
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("qcow2-policyctl analyze: "), proc.stderr
    assert "--help" in proc.stderr


def test_analyze_usage_error_wins_over_bad_image(tmp_path):
    assert ctl("analyze", "--percent", "0", tmp_path / "missing").returncode == 2


def test_analyze_failure_is_1(tmp_path, image):
    proc = ctl("analyze", image, tmp_path / "missing", "--percent", "25")
    assert proc.returncode == 1
    assert str(image) in proc.stdout  # the good image is still reported
    assert len(proc.stderr.strip().splitlines()) == 1


def test_no_progress_without_terminal(image):
    # stderr is a pipe here: no progress, so nothing at all on a success.
    proc = ctl("analyze", "--allocation", image, image)
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_progress_on_terminal(image):
    """With stderr on a pseudo-terminal the progress line appears there, and is erased."""
    import os
    import pty
    import subprocess
    from conftest import ctl_path

    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([ctl_path(), "analyze", "--allocation", str(image), str(image)],
                              stdout=subprocess.PIPE, stderr=follower, timeout=10)
        os.close(follower)
        follower = None
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if follower is not None:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert b"[2/2]" in seen and str(image).encode() in seen
    assert seen.endswith(b"\r\x1b[K")
    assert b"Analyzing" not in proc.stdout


@pytest.mark.parametrize("args", [
    [],
    ["--size"],
    ["--size", "abc"],
    ["--size", "0"],
    ["--size", "1T", "--cache", "0"],
    ["--size", "1T", "--cache", "x"],
    ["--size", "1T", "--io-size", "4Q"],
    ["--size", "1T", "extra"],
    ["--size", "1T", "--percent", "5"],
])
def test_recommend_usage_errors(args):
    proc = ctl("recommend", *args)
    assert proc.returncode == 2, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("qcow2-policyctl recommend: "), proc.stderr


def test_version():
    proc = ctl("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("qcow2-policyctl ")


def test_analyze_json_valid_with_non_utf8_backing_name(tmp_path):
    # a backing file name is bytes from the header: the JSON must stay valid UTF-8
    backing = os.path.join(os.fsencode(tmp_path), b"b\xff.raw")
    with open(backing, "wb") as f:
        f.truncate(1 << 20)
    top = tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "raw",
                    str(top)], check=True)
    proc = ctl("analyze", "--json", top)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["backing-file"].endswith("b\ufffd.raw")
