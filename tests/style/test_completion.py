"""The bash completion of qcow2-policyctl, run in a real bash."""
import os
import shlex
import subprocess
import tempfile

import pytest

import qp_style


def completion_file():
    qp_style.require_dirs()
    return os.path.join(qp_style.SOURCE_DIR, "docs", "qcow2-policyctl.bash-completion")


def complete(words, cwd=None, env=None):
    """Complete the last of @words as bash would, return COMPREPLY sorted."""
    script = (
        f"source {shlex.quote(completion_file())} || exit 3\n"
        f"complete -p qcow2-policyctl >/dev/null || exit 4\n"
        f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        f"COMP_LINE={shlex.quote(' '.join(words))}\n"
        f"COMP_POINT=${{#COMP_LINE}}\n"
        "_qcow2_policyctl qcow2-policyctl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    res = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                         text=True, cwd=cwd, env=env)
    assert res.returncode == 0, f"bash failed ({res.returncode}): {res.stderr}"
    assert res.stderr == "", res.stderr
    return sorted(w for w in res.stdout.splitlines() if w)


ALL = sorted("analyze recommend plan apply-xml status list show set clear reconcile".split())


@pytest.mark.parametrize("words,expected", [
    (["qcow2-policyctl", ""], ALL),
    (["qcow2-policyctl", "an"], ["analyze"]),
    (["qcow2-policyctl", "re"], ["recommend", "reconcile"]),
    (["qcow2-policyctl", "s"], ["set", "show", "status"]),
    (["qcow2-policyctl", "--"], ["--help", "--json", "--session", "--version"]),
    (["qcow2-policyctl", "--s"], ["--session"]),
    (["qcow2-policyctl", "--session", "li"], ["list"]),
    (["qcow2-policyctl", "--session", "--json", "s"], ["set", "show", "status"]),
    (["qcow2-policyctl", "--session", "list", "--j"], ["--json"]),
    (["qcow2-policyctl", "--ver"], ["--version"]),
    (["qcow2-policyctl", "analyze", "--p"], ["--percent"]),
    (["qcow2-policyctl", "analyze", "--a"], ["--allocation"]),
    (["qcow2-policyctl", "recommend", "--"], ["--cache", "--help", "--io-size", "--json", "--size"]),
    (["qcow2-policyctl", "recommend", "--size", ""], []),
    (["qcow2-policyctl", "set", "vm1", "--chain", ""], ["all", "top"]),
    (["qcow2-policyctl", "set", "vm1", "--chain", "a"], ["all"]),
    (["qcow2-policyctl", "set", "--m"], ["--max"]),
    (["qcow2-policyctl", "list", "--s"], ["--session"]),
    (["qcow2-policyctl", "bogus", "--"], []),
    (["qcow2-policyctl", "plan", "--chain", ""], ["all", "top"]),
    (["qcow2-policyctl", "apply-xml", "--chain", "t"], ["top"]),
    (["qcow2-policyctl", "analyze", "--format", ""], ["qcow2"]),
    (["qcow2-policyctl", "analyze", "--percent", ""], []),
])
def test_prefix(words, expected):
    assert complete(words) == expected


@pytest.mark.parametrize("command", ["analyze", "plan", "apply-xml"])
def test_files(command):
    with tempfile.TemporaryDirectory() as d:
        for name in ("disk-a.qcow2", "disk-b.qcow2", "dom.xml"):
            open(os.path.join(d, name), "w").close()
        assert complete(["qcow2-policyctl", command, "disk-"], cwd=d) == ["disk-a.qcow2", "disk-b.qcow2"]
        assert complete(["qcow2-policyctl", command, "--json", "do"], cwd=d) == ["dom.xml"]
        # analyze --chain is a switch: a file follows it, not a mode.
        if command == "analyze":
            assert complete(["qcow2-policyctl", command, "--chain", "dom"], cwd=d) == ["dom.xml"]


def test_no_files_for_daemon_commands():
    with tempfile.TemporaryDirectory() as d:
        open(os.path.join(d, "vm1.xml"), "w").close()
        assert complete(["qcow2-policyctl", "clear", "vm"], cwd=d) == []


def test_commands_match_cli():
    assert sorted(qp_style.cli_commands()) == ALL


@pytest.mark.parametrize("command", ALL)
def test_options_match_cli(command):
    offered = set(complete(["qcow2-policyctl", command, "--"])) - {"--help"}
    assert offered == qp_style.cli_options(command)


@pytest.fixture(scope="module")
def daemon_bus():
    """A private session bus with the built qcow2-policyd on libvirt's test:///default."""
    import time
    qp_style.require_dirs()
    daemon = os.path.join(qp_style.BUILD_DIR, "daemon", "qcow2-policyd")
    assert os.access(daemon, os.X_OK), f"{daemon} is not built"
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address=1"],
                           stdout=subprocess.PIPE, text=True)
    try:
        address = bus.stdout.readline().strip()
        assert address, "dbus-daemon printed no address"
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=address)
        proc = subprocess.Popen([daemon, "--session", "--connect", "test:///default"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                res = subprocess.run([qp_style.cli_path(), "list", "--session"], env=env,
                                     capture_output=True, text=True)
                if res.returncode == 0 and "test" in res.stdout:
                    break
                time.sleep(0.1)
            else:
                raise AssertionError("qcow2-policyd did not list test:///default's domain in 10 s")
            yield env
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        bus.terminate()
        bus.wait(timeout=10)


@pytest.mark.parametrize("words,expected", [
    (["show", "--session", "te"], ["test"]),
    (["show", "--session", ""], ["test"]),
    (["clear", "--session", "t"], ["test"]),
    (["set", "--session", "--max", "1G", "t"], ["test"]),
    (["set", "--session", "test", ""], ["100", "25", "50"]),
    (["set", "--session", "test", "50", "--chain", ""], ["all", "top"]),
    (["set", "--session", "test", "50", ""], []),
    (["clear", "--session", "test", ""], []),
    (["show", "--session", "x"], []),
    (["--session", "show", "te"], ["test"]),
    (["--session", "set", "test", ""], ["100", "25", "50"]),
])
def test_domains_from_daemon(daemon_bus, words, expected):
    assert complete([qp_style.cli_path()] + words, env=daemon_bus) == expected


def test_domains_without_daemon():
    # No bus at all: nothing to offer, and no error on the terminal.
    env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS="unix:path=/nonexistent/bus")
    assert complete([qp_style.cli_path(), "show", "--session", "t"], env=env) == []
