"""Shared helpers of the style suite: where the tree is and which files belong to it."""
import os
import subprocess

SOURCE_DIR = os.environ.get("QP_SOURCE_DIR", "")
BUILD_DIR = os.environ.get("QP_BUILD_DIR", "")

# Directories that are never part of the source tree (build trees, VCS data, caches).
_SKIP_DIRS = {".git", "__pycache__", "subprojects"}


def require_dirs():
    assert SOURCE_DIR and os.path.isdir(SOURCE_DIR), "QP_SOURCE_DIR is not set: run through meson test"
    assert BUILD_DIR and os.path.isdir(BUILD_DIR), "QP_BUILD_DIR is not set: run through meson test"


def _is_build_dir(path):
    return os.path.exists(os.path.join(path, "meson-private")) or os.path.basename(path).startswith("build")


def source_files():
    """Every file of the tree, relative to the source root, sorted.

    In a git checkout: tracked files plus untracked ones that are not ignored (work in
    progress is checked too). Outside git (a release tarball): a walk that leaves build
    trees out."""
    require_dirs()
    if os.path.isdir(os.path.join(SOURCE_DIR, ".git")):
        out = subprocess.run(
            ["git", "-C", SOURCE_DIR, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True).stdout.decode()
        files = [f for f in out.split("\0") if f and os.path.isfile(os.path.join(SOURCE_DIR, f))]
        return sorted(set(files))
    files = []
    for root, dirs, names in os.walk(SOURCE_DIR):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not _is_build_dir(os.path.join(root, d))]
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), SOURCE_DIR))
    return sorted(files)


def read_bytes(rel):
    with open(os.path.join(SOURCE_DIR, rel), "rb") as f:
        return f.read()


def is_text(data):
    return b"\0" not in data[:8192]


def cli_path():
    require_dirs()
    path = os.path.join(BUILD_DIR, "cli", "qcow2-policyctl")
    assert os.access(path, os.X_OK), f"{path} is not built"
    return path


def cli_commands():
    """The commands `qcow2-policyctl --help` lists, in its order."""
    res = subprocess.run([cli_path(), "--help"], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C.UTF-8", LANGUAGE=""))
    assert res.returncode == 0, f"qcow2-policyctl --help failed: {res.stderr}"
    lines = res.stdout.splitlines()
    assert "Commands:" in lines, f"no command list in:\n{res.stdout}"
    cmds = []
    for line in lines[lines.index("Commands:") + 1:]:
        if not line.startswith("  "):
            break
        cmds.append(line.split()[0])
    assert cmds, f"empty command list in:\n{res.stdout}"
    return cmds


def cli_options(command):
    """The long options `qcow2-policyctl COMMAND --help` lists, without GOption's --help*."""
    import re
    res = subprocess.run([cli_path(), command, "--help"], capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C.UTF-8", LANGUAGE=""))
    assert res.returncode == 0, f"qcow2-policyctl {command} --help failed ({res.returncode}): {res.stderr}"
    opts = set(re.findall(r"^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", res.stdout, re.M))
    return {o for o in opts if not o.startswith("--help")}
