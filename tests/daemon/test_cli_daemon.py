"""qcow2-policyctl status|list|show|set|clear|reconcile against qcow2-policyd on a private
session bus (libvirt's test driver)."""
import json
import os

import pytest

import qpdaemon as qd

UUIDS = {
    "web": "1a2b3c4d-0000-4000-8000-0000000000a1",
    "db": "1a2b3c4d-0000-4000-8000-0000000000a2",
    "broken": "1a2b3c4d-0000-4000-8000-0000000000a3",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("cli"))
    web = os.path.join(tmp, "web.qcow2")
    qd.qemu_img("create", "-f", "qcow2", web, "1T")
    db = os.path.join(tmp, "db.qcow2")
    qd.qemu_img("create", "-f", "qcow2", "-o", "extended_l2=on", db, "300G")
    node = os.path.join(tmp, "node.xml")
    with open(node, "w") as f:
        f.write("<node>\n")
        f.write(qd.domain_xml("web", UUIDS["web"], [("vda", web, "qcow2")], policy='percent="100"'))
        f.write(qd.domain_xml("db", UUIDS["db"], [("vda", db, "qcow2")]))
        f.write(qd.domain_xml("broken", UUIDS["broken"], [("vda", web, "qcow2")],
                              policy='percent="50%"'))
        f.write("</node>\n")
    bus = qd.Bus(tmp)
    daemon = qd.Daemon(bus, node)
    try:
        daemon.wait_settled(len(UUIDS))
        yield {"tmp": tmp, "web": web, "db": db, "bus": bus, "daemon": daemon}
    finally:
        daemon.stop()
        bus.stop()


def ctl(env, *args):
    return qd.cli(*args, "--session", bus=env["bus"])


def test_status_json(env):
    res = ctl(env, "status", "--json")
    # exit 1: a domain is in error, named on stderr
    assert res.returncode == 1, res.stderr
    assert "broken" in res.stderr
    st = json.loads(res.stdout)
    assert st["connected"] is True
    assert st["domains"] == 3
    assert (st["applied"], st["unmanaged"], st["error"]) == (1, 1, 1)
    assert st["uri"].startswith("test:///")


def test_status_table(env):
    res = ctl(env, "status")
    assert res.returncode == 1
    assert "connected" in res.stdout and "3: 1 applied" in res.stdout


def test_list_json_and_table(env):
    res = ctl(env, "list", "--json")
    assert res.returncode == 1, res.stderr
    assert res.stderr.count("qcow2-policyctl: ") == 1 and "broken: " in res.stderr
    doms = {d["name"]: d for d in json.loads(res.stdout)}
    assert set(doms) == set(UUIDS)
    assert doms["web"]["state"] == "applied" and doms["web"]["percent"] == 100
    assert doms["broken"]["state"] == "error" and "50%" in doms["broken"]["error"]
    res = ctl(env, "list")
    assert res.returncode == 1
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["DOMAIN", "STATE", "POLICY"]
    assert any(l.split()[:2] == ["web", "applied"] for l in lines)


def test_show_figures_match_analyze(env):
    res = ctl(env, "show", "--json", "web")
    assert res.returncode == 0, res.stderr
    dom = json.loads(res.stdout)
    (item,) = dom["disks"]
    (ref,) = qd.analyze_json(env["web"], percent=100)
    assert item["max-size"] == ref["policy"]["cache-size"]
    assert item["l2-full-size"] == ref["l2-full-size"]
    assert item["virtual-size"] == ref["virtual-size"]
    # by UUID too
    res = ctl(env, "show", "--json", UUIDS["web"])
    assert res.returncode == 0 and json.loads(res.stdout)["name"] == "web"
    res = ctl(env, "show", "web")
    assert res.returncode == 0 and "128 MiB" in res.stdout and env["web"] in res.stdout


def test_show_error_domain_exits_1(env):
    res = ctl(env, "show", "broken")
    assert res.returncode == 1
    assert "broken" in res.stderr and "50%" in res.stderr


def test_show_unknown_domain(env):
    res = ctl(env, "show", "no-such")
    assert res.returncode == 1 and "no-such" in res.stderr


def test_set_and_clear(env):
    res = ctl(env, "set", "db", "50", "--max", "16MiB")
    assert res.returncode == 0, res.stderr
    assert "db: applied" in res.stdout
    dom = json.loads(ctl(env, "show", "--json", "db").stdout)
    assert dom["percent"] == 50 and dom["max"] == 16 * 2**20
    assert dom["disks"][0]["max-size"] == 16 * 2**20
    res = ctl(env, "clear", "db")
    assert res.returncode == 0, res.stderr
    assert json.loads(ctl(env, "show", "--json", "db").stdout)["state"] == "unmanaged"


@pytest.mark.parametrize("args", [["set", "db", "0"], ["set", "db", "101"], ["set", "db", "50%"],
                                  ["set", "db", "50", "--chain", "some"], ["set", "db"],
                                  ["show"], ["list", "extra"]])
def test_usage_errors_exit_2(env, args):
    res = ctl(env, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr


def test_reconcile(env):
    res = ctl(env, "reconcile", "--json")
    # the broken domain makes it exit 1, after reconciling everything
    assert res.returncode == 1
    assert "broken" in res.stderr
    assert len(json.loads(res.stdout)) == 3
    res = ctl(env, "reconcile")
    assert res.returncode == 1
    assert "broken" in res.stderr and "Reconciled 3 domains" in res.stdout


def test_session_before_the_command(env):
    # --session and --json may stand before the command name as well as after it
    for args in (["--session", "list", "--json"], ["--session", "--json", "list"],
                 ["--json", "list", "--session"]):
        res = qd.cli(*args, bus=env["bus"])
        assert res.returncode == 1, (args, res.stderr)
        assert {d["name"] for d in json.loads(res.stdout)} == set(UUIDS), args
    res = qd.cli("--session", "show", "web", bus=env["bus"])
    assert res.returncode == 0 and "128 MiB" in res.stdout
    # a command that does not take --json says so, wherever it stands
    res = qd.cli("--json", "clear", "db", "--session", bus=env["bus"])
    assert res.returncode == 2 and "--json" in res.stderr


SYSTEM_HINT = "; is the service running? use --session for a session-bus daemon"
SESSION_HINT = ("; is “qcow2-policyd --session” running in this session? leave out --session "
                "for the system-bus daemon")


@pytest.mark.parametrize("command", [["status"], ["list"], ["show", "web"], ["clear", "web"],
                                     ["reconcile"]])
def test_no_daemon_on_the_bus(tmp_path, command):
    bus = qd.Bus(str(tmp_path))
    try:
        res = qd.cli(*command, "--session", bus=bus)
        assert res.returncode == 1, res.stderr
        assert res.stdout == ""
        assert res.stderr == ("qcow2-policyctl: cannot reach qcow2-policyd on the session bus: The name "
                              "org.qcow2policyd.Policy1 was not provided by any .service files"
                              + SESSION_HINT + "\n"), res.stderr
        if command[0] != "clear":
            # scripts get the D-Bus error name
            res = qd.cli(*command, "--session", "--json", bus=bus)
            assert res.returncode == 1
            assert json.loads(res.stdout) == {"error": {
                "bus": "session", "dbus-error": "org.freedesktop.DBus.Error.ServiceUnknown",
                "reachable": False,
                "message": "The name org.qcow2policyd.Policy1 was not provided by any .service files"}}
            assert res.stderr.startswith("qcow2-policyctl: cannot reach qcow2-policyd on the session bus")
    finally:
        bus.stop()


def test_no_system_bus(tmp_path):
    nowhere = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=" + str(tmp_path / "no-socket")}
    res = qd.cli("status", env=nowhere)
    assert res.returncode == 1
    assert res.stderr == ("qcow2-policyctl: cannot reach qcow2-policyd on the system bus: Could not "
                          "connect: No such file or directory" + SYSTEM_HINT + "\n"), res.stderr
    res = qd.cli("--json", "list", env=nowhere)
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"error": {
        "bus": "system", "dbus-error": None, "reachable": False,
        "message": "Could not connect: No such file or directory"}}


def test_other_errors_keep_their_name_in_json(env):
    res = ctl(env, "show", "--json", "no-such")
    assert res.returncode == 1
    err = json.loads(res.stdout)["error"]
    assert err["bus"] == "session" and err["reachable"] is True
    assert err["dbus-error"].startswith(qd.ERROR_PREFIX)
    assert res.stderr.startswith("qcow2-policyctl: no-such: ")
