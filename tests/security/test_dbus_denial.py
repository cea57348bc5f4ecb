"""Security: what an unprivileged local user can and cannot do to qcow2-policyd.

The daemon runs as root on a private system-style bus whose policy is the system bus's
default (deny owning names and method calls unless a rule allows them) plus the
project's shipped daemon/data/org.qcow2policyd.Policy1.conf, with no polkit on the
bus. Callers run as uid nobody through setpriv. Spec section 5: reading is open to
every local user; changing policy, applying and analyzing need authorization, and
without polkit only uid 0 has it."""
import os
import sys

import pytest
from gi.repository import GLib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "daemon"))
import qpdaemon as qd  # noqa: E402
from qpdaemon import DOMAIN_IFACE, MANAGER_IFACE, MANAGER_PATH  # noqa: E402

SOURCE_DIR = os.environ.get("QP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SHIPPED_POLICY = os.path.join(SOURCE_DIR, "daemon", "data", "org.qcow2policyd.Policy1.conf")
UUID = "5ec5ec00-0000-4000-8000-000000000001"
NOT_AUTHORIZED = qd.ERROR_PREFIX + "NotAuthorized"

pytestmark = pytest.mark.skipif(os.geteuid() != 0,
                                reason="running callers as another uid needs root (CI runs as root)")

@pytest.fixture(scope="module")
def env():
    assert os.path.exists(SHIPPED_POLICY), SHIPPED_POLICY
    with qd.system_daemon("qp-security-", "sec-guarded", UUID, policy=SHIPPED_POLICY) as e:
        yield e


def as_nobody(env, *gdbus_args):
    """gdbus as uid/gid nobody with no supplementary groups."""
    return qd.gdbus_as_nobody(env["bus"], *gdbus_args)


def call_as_nobody(env, path, method, *args):
    return as_nobody(env, "--dest", qd.BUS_NAME, "--object-path", path, "--method", method, *args)


def domain_state(env):
    props = env["daemon"].props(qd.domain_path(UUID))
    return props["State"], props["Percent"]


def test_nobody_reads(env):
    res = call_as_nobody(env, qd.ROOT_PATH, "org.freedesktop.DBus.ObjectManager.GetManagedObjects")
    assert res.returncode == 0, res.stderr
    assert "sec-guarded" in res.stdout
    res = call_as_nobody(env, MANAGER_PATH, "org.freedesktop.DBus.Properties.GetAll", MANAGER_IFACE)
    assert res.returncode == 0, res.stderr
    assert "'Connected': <true>" in res.stdout
    res = call_as_nobody(env, qd.domain_path(UUID), "org.freedesktop.DBus.Introspectable.Introspect")
    assert res.returncode == 0, res.stderr
    assert DOMAIN_IFACE in res.stdout


MUTATIONS = {
    "SetPolicy": (qd.domain_path(UUID), DOMAIN_IFACE + ".SetPolicy", "uint32 50", "{}"),
    "ClearPolicy": (qd.domain_path(UUID), DOMAIN_IFACE + ".ClearPolicy", "{}"),
    "Apply": (qd.domain_path(UUID), DOMAIN_IFACE + ".Apply", "{}"),
    "Reconcile": (MANAGER_PATH, MANAGER_IFACE + ".Reconcile", "{}"),
    "AnalyzeImage": (MANAGER_PATH, MANAGER_IFACE + ".AnalyzeImage", "@IMG@", "{}"),
    # the interactive option asks polkit to prompt: there is no polkit, so still no
    "SetPolicy-interactive": (qd.domain_path(UUID), DOMAIN_IFACE + ".SetPolicy", "uint32 50",
                              "{'interactive': <true>}"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_nobody_denied(env, name):
    before = domain_state(env)
    path, method, *args = MUTATIONS[name]
    args = [env["img"] if a == "@IMG@" else a for a in args]
    res = call_as_nobody(env, path, method, *args)
    assert res.returncode != 0, res.stdout
    assert NOT_AUTHORIZED in res.stderr, res.stderr
    assert domain_state(env) == before
    assert before == ("unmanaged", 0)


def test_nobody_cannot_own_the_name(env):
    # the shipped policy: only root owns org.qcow2policyd.Policy1, so nobody cannot
    # impersonate the daemon (here while it runs, and the rule does not depend on that)
    res = as_nobody(env, "--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus",
                    "--method", "org.freedesktop.DBus.RequestName", qd.BUS_NAME, "uint32 4")
    assert res.returncode != 0, res.stdout
    assert "AccessDenied" in res.stderr, res.stderr


def test_nobody_cannot_reach_other_interfaces(env):
    # the default context denies method calls; the shipped file opens only the daemon's
    # own interfaces and the standard ones
    res = call_as_nobody(env, MANAGER_PATH, "org.example.Undeclared.Method")
    assert res.returncode != 0
    assert "AccessDenied" in res.stderr, res.stderr


def test_root_allowed_without_polkit(env):
    # spec section 5: without polkit, uid 0 may change policy
    env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "SetPolicy", GLib.Variant("(ua{sv})", (40, {})))
    assert env["daemon"].props(qd.domain_path(UUID))["Percent"] == 40
    env["daemon"].call(qd.domain_path(UUID), DOMAIN_IFACE, "ClearPolicy", GLib.Variant("(a{sv})", ({},)))
    assert env["daemon"].props(qd.domain_path(UUID))["Percent"] == 0
