"""Without polkitd on the bus (not installed, or not running) only uid 0 may change
anything; reading stays open. The bus runs the system bus's default policy plus the
shipped daemon/data/org.qcow2policyd.Policy1.conf."""
import os

import pytest
from gi.repository import GLib

import qpdaemon as qd
from qpdaemon import DOMAIN_IFACE

UUID = "0e0e0e0e-0000-4000-8000-000000000001"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to call as another uid")


@pytest.fixture(scope="module")
def env():
    with qd.system_daemon("qp-nopolkit-", "rootonly", UUID, size="100G") as e:
        yield e


def as_nobody(env, *args):
    return qd.gdbus_as_nobody(env["bus"], "--dest", qd.BUS_NAME, *args)


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
    res = qd.as_nobody("/usr/bin/python3", "-c", script, env["bus"].address, qd.BUS_NAME)
    assert res.returncode != 0
    assert "AccessDenied" in res.stderr
    # and other names are not ours to hand out either
    res = qd.as_nobody("/usr/bin/python3", "-c", script, env["bus"].address, "org.example.Other")
    assert res.returncode != 0


def test_bus_policy_allows_introspection_and_object_manager(env):
    res = as_nobody(env, "--object-path", "/org/qcow2policyd/Policy1", "--method",
                    "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
    assert res.returncode == 0 and "rootonly" in res.stdout
    res = qd.as_nobody("gdbus", "introspect", "--address", env["bus"].address, "--dest", qd.BUS_NAME,
                       "--object-path", qd.MANAGER_PATH)
    assert res.returncode == 0 and "AnalyzeImage" in res.stdout
