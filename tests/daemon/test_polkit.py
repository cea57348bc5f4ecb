"""Authorization: qcow2-policyd on a private system-style bus (not --session) with
python3-dbusmock's polkitd template deciding each action."""
import os
import subprocess
import threading
import time

import pytest
from gi.repository import Gio, GLib

import qpdaemon as qd
from qpdaemon import DOMAIN_IFACE, MANAGER_IFACE, MANAGER_PATH

UUID = "5e5e5e5e-0000-4000-8000-000000000001"
PK_NAME = "org.freedesktop.PolicyKit1"
PK_PATH = "/org/freedesktop/PolicyKit1/Authority"
MOCK_IFACE = "org.freedesktop.DBus.Mock"
SET_POLICY = "org.qcow2policyd.Policy1.set-policy"
APPLY = "org.qcow2policyd.Policy1.apply"
ANALYZE = "org.qcow2policyd.Policy1.analyze"


def wait_for_name(conn, name, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        (has,) = conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                "NameHasOwner", GLib.Variant("(s)", (name,)), GLib.VariantType("(b)"),
                                Gio.DBusCallFlags.NONE, 5000, None).unpack()
        if has:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name} never appeared on the bus")


@pytest.fixture(scope="module")
def env():
    mock = []

    def start_polkitd(e):
        mock.append(subprocess.Popen(["/usr/bin/python3", "-m", "dbusmock", "--template", "polkitd", "--system"],
                                     env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=e["bus"].address),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for_name(e["bus"].conn, PK_NAME)

    try:
        with qd.system_daemon("qp-polkit-", "guarded", UUID, policy=None, before_daemon=start_polkitd) as e:
            e["secret"] = os.path.join(e["tmp"], "secret.qcow2")
            qd.qemu_img("create", "-f", "qcow2", e["secret"], "1G")
            os.chmod(e["secret"], 0o600)
            yield e
    finally:
        for m in mock:
            m.terminate()
            m.wait(10)


def pk(env, method, sig, args):
    env["bus"].conn.call_sync(PK_NAME, PK_PATH, MOCK_IFACE, method, GLib.Variant(sig, args), None,
                              Gio.DBusCallFlags.NONE, 5000, None)


def allow(env, *actions):
    pk(env, "SetAllowed", "(as)", (list(actions),))


def error_of(fn):
    with pytest.raises(GLib.Error) as exc:
        fn()
    return qd.dbus_error_name(exc.value), exc.value.message


def set_policy(env, percent=50):
    return env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "SetPolicy",
                              GLib.Variant("(ua{sv})", (percent, {})))


def apply(env):
    return env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "Apply", GLib.Variant("(a{sv})", ({},)))


def reconcile(env):
    return env["daemon"].call(MANAGER_PATH, MANAGER_IFACE, "Reconcile", GLib.Variant("(a{sv})", ({},)))


def analyze(env, path):
    return env["daemon"].call(MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                              GLib.Variant("(sa{sv})", (path, {})), "(aa{sv})")


def test_reading_is_open(env):
    allow(env)
    objs = env["daemon"].objects()
    assert objs[qd.domain_path(UUID)][DOMAIN_IFACE]["Name"] == "guarded"
    assert env["daemon"].manager()["Connected"] is True


@pytest.mark.parametrize("fn", [set_policy, apply, reconcile, lambda env: analyze(env, env["img"])],
                         ids=["SetPolicy", "Apply", "Reconcile", "AnalyzeImage"])
def test_denied(env, fn):
    allow(env)
    name, _ = error_of(lambda: fn(env))
    assert name == qd.ERROR_PREFIX + "NotAuthorized"
    assert env["daemon"].props(qd.domain_path(UUID))["State"] == "unmanaged"


def test_set_policy_allowed_only_for_its_action(env):
    allow(env, SET_POLICY)
    set_policy(env, 40)
    assert env["daemon"].props(qd.domain_path(UUID))["Percent"] == 40
    name, _ = error_of(lambda: apply(env))
    assert name == qd.ERROR_PREFIX + "NotAuthorized"
    allow(env, APPLY)
    apply(env)
    reconcile(env)
    name, _ = error_of(lambda: env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "ClearPolicy",
                                                  GLib.Variant("(a{sv})", ({},))))
    assert name == qd.ERROR_PREFIX + "NotAuthorized"
    assert env["daemon"].props(qd.domain_path(UUID))["Percent"] == 40


def test_analyze_allowed(env):
    allow(env, ANALYZE)
    (layers,) = analyze(env, env["img"])
    assert layers[0]["virtual-size"] == 2**40


def test_reads_answered_while_polkit_hangs(env):
    allow(env, SET_POLICY)
    pk(env, "SimulateHangActions", "(as)", ([SET_POLICY],))
    result = []
    conn = Gio.DBusConnection.new_for_address_sync(
        env["bus"].address,
        Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)

    def hanging_call():
        try:
            env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "SetPolicy",
                               GLib.Variant("(ua{sv})", (60, {})), conn=conn)
            result.append("ok")
        except GLib.Error as e:
            result.append(e.message)

    t = threading.Thread(target=hanging_call)
    t.start()
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end:
            (hanging,) = env["bus"].conn.call_sync(PK_NAME, PK_PATH, MOCK_IFACE, "HaveHangingCalls", None,
                                                   GLib.VariantType("(b)"), Gio.DBusCallFlags.NONE, 5000,
                                                   None).unpack()
            if hanging:
                break
            time.sleep(0.05)
        assert hanging, "the SetPolicy call never reached polkit"
        start = time.monotonic()
        assert env["daemon"].props(qd.domain_path(UUID))["Name"] == "guarded"
        assert time.monotonic() - start < 3.0  # a loaded CI machine; blocking would be 30 s
        assert result == []
    finally:
        pk(env, "SimulateHangActions", "(as)", ([],))
        pk(env, "ReleaseHangingCalls", "()", ())
        t.join(30)
    assert result == ["ok"]
    assert env["daemon"].props(qd.domain_path(UUID))["Percent"] == 60


def _as_nobody(env, path):
    return qd.gdbus_as_nobody(env["bus"], "--dest", qd.BUS_NAME, "--object-path", MANAGER_PATH,
                              "--method", MANAGER_IFACE + ".AnalyzeImage", path, "{}")


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged uid needs root")
def test_analyze_uses_the_callers_permissions(env):
    allow(env, ANALYZE)
    res = _as_nobody(env, env["img"])
    assert res.returncode == 0, res.stderr
    assert "uint64 1099511627776" in res.stdout
    # root (the daemon) can read the 0600 file; the caller cannot, so neither may the daemon for it
    res = _as_nobody(env, env["secret"])
    assert res.returncode != 0
    assert "Permission denied" in res.stderr or "ermission" in res.stderr, res.stderr
    assert qd.ERROR_PREFIX in res.stderr
    # and root still can
    (layers,) = analyze(env, env["secret"])
    assert layers[0]["virtual-size"] == 2**30
