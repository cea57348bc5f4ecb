"""Without polkitd on the bus (not installed, or not running) only uid 0 may change
anything; reading stays open."""
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
    bus = qd.Bus(tmp, system=True)
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
