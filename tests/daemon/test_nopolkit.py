"""Without polkitd on the bus (not installed, or not running) only uid 0 may change
anything; reading stays open. The bus runs the system bus's default policy plus the
shipped daemon/data/org.qcow2policyd.Policy1.conf."""
import os
import shutil
import subprocess
import tempfile

import pytest
from gi.repository import GLib

import qpdaemon as qd
from qpdaemon import DOMAIN_IFACE

UUID = "0e0e0e0e-0000-4000-8000-000000000001"
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to call as another uid")


@pytest.fixture(scope="module")
def env():
    tmp = tempfile.mkdtemp(prefix="qp-nopolkit-")
    os.chmod(tmp, 0o755)
    img = os.path.join(tmp, "disk.qcow2")
    qd.qemu_img("create", "-f", "qcow2", img, "100G")
    node = os.path.join(tmp, "node.xml")
    with open(node, "w") as f:
        f.write("<node>\n" + qd.domain_xml("rootonly", UUID, [("vda", img, "qcow2")]) + "</node>\n")
    bus = qd.Bus(tmp, include=os.path.abspath(qd.BUS_POLICY))
    daemon = None
    try:
        daemon = qd.Daemon(bus, node, session=False)
        daemon.wait_settled(1)
        yield {"bus": bus, "daemon": daemon}
    finally:
        if daemon is not None:
            daemon.stop()
        bus.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def as_nobody(env, *args):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "gdbus", "call", "--address", env["bus"].address, "--dest", qd.BUS_NAME]
                          + list(args), capture_output=True, text=True, timeout=60)


def test_unprivileged_caller_denied_but_may_read(env):
    path = qd.domain_path(UUID)
    res = as_nobody(env, "--object-path", path, "--method", DOMAIN_IFACE + ".SetPolicy", "50", "{}")
    assert res.returncode != 0
    assert qd.ERROR_PREFIX + "NotAuthorized" in res.stderr
    res = as_nobody(env, "--object-path", path, "--method", "org.freedesktop.DBus.Properties.Get",
                    DOMAIN_IFACE, "State")
    assert res.returncode == 0 and "unmanaged" in res.stdout


def test_root_allowed(env):
    d = env["daemon"]
    d.call(qd.domain_path(UUID), DOMAIN_IFACE, "SetPolicy", GLib.Variant("(ua{sv})", (50, {})))
    props = d.props(qd.domain_path(UUID))
    assert props["State"] == "applied" and props["Percent"] == 50


def test_bus_policy_lets_only_root_own_the_name(env):
    script = ("import sys\nfrom gi.repository import Gio, GLib\n"
              "c = Gio.DBusConnection.new_for_address_sync(sys.argv[1], "
              "Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | "
              "Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)\n"
              "print(c.call_sync('org.freedesktop.DBus', '/org/freedesktop/DBus', "
              "'org.freedesktop.DBus', 'RequestName', GLib.Variant('(su)', (sys.argv[2], 4)), "
              "None, 0, 5000, None).unpack())\n")
    res = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", script, env["bus"].address, qd.BUS_NAME],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0
    assert "AccessDenied" in res.stderr
    # and other names are not ours to hand out either
    res = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "/usr/bin/python3", "-c", script, env["bus"].address, "org.example.Other"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0


def test_bus_policy_allows_introspection_and_object_manager(env):
    res = as_nobody(env, "--object-path", "/org/qcow2policyd/Policy1", "--method",
                    "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
    assert res.returncode == 0 and "rootonly" in res.stdout
    res = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "gdbus", "introspect", "--address", env["bus"].address, "--dest", qd.BUS_NAME,
                          "--object-path", qd.MANAGER_PATH], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "AnalyzeImage" in res.stdout
