"""The man pages render without groff or man warnings and document what is built."""
import os
import re
import subprocess

import pytest

import qp_style

PAGES = ["qcow2-policyd.8", "qcow2-policyctl.1", "qcow2-policyd.conf.5", "qcow2-policyd-l2cache.5"]


def built(page):
    qp_style.require_dirs()
    path = os.path.join(qp_style.BUILD_DIR, "docs", page)
    assert os.path.isfile(path), f"{path} was not generated"
    return path


@pytest.mark.parametrize("page", PAGES)
def test_groff_no_warnings(page):
    res = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", built(page)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and res.stderr == "", res.stderr


@pytest.mark.parametrize("page", PAGES)
def test_man_no_warnings(page):
    # man-db runs its own preprocessors and a fixed width: line-breaking problems show here.
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0", LC_ALL="C.UTF-8")
    res = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", built(page)],
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    text = re.sub(r".\x08", "", res.stdout)  # overstrike bold and underline
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"):
        assert re.search(rf"^{section}$", text, re.M), f"{page} has no {section} section"


@pytest.mark.parametrize("page", PAGES)
def test_substituted_and_cross_references(page):
    with open(built(page), encoding="utf-8") as f:
        src = f.read()
    assert not re.search(r"@[A-Z_]+@", src), f"{page}: unsubstituted variable"
    # Every reference to one of our own pages names a page that exists, in the right section.
    for name, sec in re.findall(r"(qcow2\\-policy[a-z\\.\-]*)\s*\((\d)\)", src):
        ref = name.replace("\\-", "-") + "." + sec
        assert ref in PAGES, f"{page} refers to {ref}, which is not shipped"


def test_every_command_documented():
    with open(built("qcow2-policyctl.1"), encoding="utf-8") as f:
        src = f.read().replace("\\-", "-")
    for cmd in qp_style.cli_commands():
        assert re.search(rf'^\.TP\n\.B[IR]? "?{re.escape(cmd)}[ "\n]', src, re.M), \
            f"command {cmd} has no entry in qcow2-policyctl(1)"


def test_every_option_documented():
    with open(built("qcow2-policyctl.1"), encoding="utf-8") as f:
        src = f.read().replace("\\-", "-")
    missing = []
    for cmd in qp_style.cli_commands():
        for opt in sorted(qp_style.cli_options(cmd)):
            if not re.search(rf"{re.escape(opt)}\b", src):
                missing.append(f"{cmd} {opt}")
    assert not missing, "options not in qcow2-policyctl(1): " + ", ".join(missing)


def test_daemon_options_documented():
    qp_style.require_dirs()
    daemon = os.path.join(qp_style.BUILD_DIR, "daemon", "qcow2-policyd")
    assert os.access(daemon, os.X_OK), f"{daemon} is not built"
    res = subprocess.run([daemon, "--help"], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C.UTF-8", LANGUAGE=""), timeout=30)
    assert res.returncode == 0, res.stderr
    opts = {o for o in re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", res.stdout, re.M)
            if not o.startswith("--help")}
    assert opts, f"no options in:\n{res.stdout}"
    with open(built("qcow2-policyd.8"), encoding="utf-8") as f:
        src = f.read().replace("\\-", "-")
    missing = [o for o in sorted(opts) if not re.search(rf"{re.escape(o)}\b", src)]
    assert not missing, "options not in qcow2-policyd(8): " + ", ".join(missing)
