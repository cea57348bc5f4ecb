"""Helpers for the daemon suites: a private dbus-daemon, qemu-img images, a libvirt
test-driver node file, and the built qcow2-policyd driven over GDBus (python3-gi)."""
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

from gi.repository import Gio, GLib

SOURCE_DIR = os.environ.get("QP_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUS_POLICY = os.path.join(SOURCE_DIR, "daemon", "data", "org.qcow2policyd.Policy1.conf")
BUILD_DIR = os.environ.get("QP_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
DAEMON = os.path.join(BUILD_DIR, "daemon", "qcow2-policyd")
CLI = os.path.join(BUILD_DIR, "cli", "qcow2-policyctl")

BUS_NAME = "org.qcow2policyd.Policy1"
ROOT_PATH = "/org/qcow2policyd/Policy1"
MANAGER_PATH = ROOT_PATH + "/Manager"
MANAGER_IFACE = "org.qcow2policyd.Policy1.Manager"
DOMAIN_IFACE = "org.qcow2policyd.Policy1.Domain"
ERROR_PREFIX = "org.qcow2policyd.Policy1.Error."
NS_URI = "http://qcow2policyd.org/schemas/l2cache/1.0"

# Generous bounds for a loaded 2-core CI machine; the daemon settles in milliseconds.
SETTLE_TIMEOUT = 20.0
CALL_TIMEOUT_MS = 30000


def domain_path(uuid):
    return ROOT_PATH + "/domain/" + uuid.replace("-", "_")


def qemu_img(*args):
    subprocess.run(["qemu-img"] + list(args), check=True, capture_output=True)


# A system-style bus (dbus's own system.conf layout): the daemon on it needs --system.
# @policy: the rules of the default context.
SYSTEM_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
{policy}
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
{include}
</busconfig>
"""

# Debian's /usr/share/dbus-1/system.conf default context: no names owned, no method calls
# but to the bus itself, unless an included file allows them.
SYSTEM_DEFAULT_POLICY = """    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>"""

# Everything open: the daemon may own its name and every caller reach it.
SYSTEM_OPEN_POLICY = """    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="org.freedesktop.DBus"/>"""


class Bus:
    """A private dbus-daemon: session-style by default; @system for a system-style bus where
    everything is allowed; @include a bus policy file (the shipped system.d file) applied on
    top of the system bus's default policy, which denies owning names and method calls."""

    def __init__(self, tmpdir, system=False, include=None):
        self.tmpdir = tmpdir
        args = ["dbus-daemon", "--fork", "--print-address=1", "--print-pid=1", "--nosyslog"]
        if include or system:
            conf = os.path.join(tmpdir, "system-bus.conf")
            with open(conf, "w") as f:
                f.write(SYSTEM_BUS_CONF.format(
                    sock=os.path.join(tmpdir, "system_bus_socket"),
                    policy=SYSTEM_DEFAULT_POLICY if include else SYSTEM_OPEN_POLICY,
                    include=f"  <include>{include}</include>" if include else ""))
            args.append("--config-file=" + conf)
        else:
            args.append("--session")
        out = subprocess.run(args, check=True, capture_output=True, text=True).stdout.split()
        self.address, self.pid = out[0], int(out[1])
        self.conn = Gio.DBusConnection.new_for_address_sync(
            self.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)

    def stop(self):
        try:
            self.conn.close_sync(None)
        except GLib.Error:
            pass
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def runstate_xml(running):
    # libvirt's test driver starts every domain of a node file unless told otherwise
    return "" if running else "<test:runstate>5</test:runstate>"


def domain_xml(name, uuid, disks, policy=None, running=False, extra_metadata="", graphics=True):
    meta = extra_metadata
    if policy is not None:
        meta += f'<qc:l2cache xmlns:qc="{NS_URI}" {policy}/>'
    disk_xml = ""
    for dev, path, fmt in disks:
        disk_xml += (f"<disk type='file' device='disk'><driver name='qemu' type='{fmt}'/>"
                     f"<source file='{path}'/><target dev='{dev}' bus='virtio'/></disk>\n")
    gfx = "<graphics type='vnc' port='-1' passwd='s3cret-pw'/>" if graphics else ""
    return f"""<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <memory>65536</memory>
  <metadata>{meta}</metadata>
  <os><type>hvm</type></os>
  <devices>
{disk_xml}    {gfx}
  </devices>
  {runstate_xml(running)}
</domain>
"""


class Daemon:
    """qcow2-policyd on @bus against test:///@node (or @uri, e.g. test+unix:///@node to reach
    the test driver inside a running libvirtd)."""

    def __init__(self, bus, node, session=True, extra_args=(), env=None, uri=None):
        self.bus = bus
        self.log = tempfile.NamedTemporaryFile(prefix="qcow2-policyd-", suffix=".log", delete=False)
        e = dict(os.environ)
        if session:
            e["DBUS_SESSION_BUS_ADDRESS"] = bus.address
        else:
            e["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        e.update(env or {})
        args = [DAEMON, "--session" if session else "--system", "--connect", uri or "test://" + node,
                "--config", os.path.join(os.path.dirname(node), "qcow2-policyd.conf")]
        args += list(extra_args)
        conf = args[args.index("--config") + 1]
        # e.g. QP_DAEMON_WRAPPER="valgrind --error-exitcode=99 --leak-check=full"
        wrapper = shlex.split(os.environ.get("QP_DAEMON_WRAPPER", ""))
        if not os.path.exists(conf):
            with open(conf, "w") as f:
                f.write("[daemon]\nreconcile-interval=0\n")
        self.proc = subprocess.Popen(wrapper + args, stdout=self.log, stderr=subprocess.STDOUT, env=e)

    def logtext(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        os.unlink(self.log.name)
        return rc

    # -- D-Bus helpers --

    def call(self, path, iface, method, args=None, reply="()", timeout=CALL_TIMEOUT_MS, conn=None):
        conn = conn or self.bus.conn
        res = conn.call_sync(BUS_NAME, path, iface, method, args,
                             GLib.VariantType(reply) if reply else None,
                             Gio.DBusCallFlags.NONE, timeout, None)
        return res.unpack() if res is not None else None

    def props(self, path, iface=DOMAIN_IFACE):
        return self.call(path, "org.freedesktop.DBus.Properties", "GetAll",
                         GLib.Variant("(s)", (iface,)), "(a{sv})")[0]

    def manager(self):
        return self.props(MANAGER_PATH, MANAGER_IFACE)

    def objects(self):
        return self.call(ROOT_PATH, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects",
                         None, "(a{oa{sa{sv}}})")[0]

    def wait_settled(self, ndomains, timeout=SETTLE_TIMEOUT):
        """Until the daemon owns its name, is connected and has reconciled @ndomains with
        nothing queued."""
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("qcow2-policyd exited with %s:\n%s" % (self.proc.returncode, self.logtext()))
            try:
                m = self.manager()
                last = m
                if m["Connected"] and m["DomainCount"] == ndomains and m["Busy"] == 0 \
                        and m["ReconcileCount"] >= ndomains:
                    return m
            except GLib.Error:
                pass
            time.sleep(0.05)
        raise AssertionError("daemon did not settle: %r\n%s" % (last, self.logtext()))


NOBODY = 65534


def as_nobody(*args):
    """@args as uid/gid nobody with no supplementary groups (needs root)."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
                          + list(args), capture_output=True, text=True, timeout=60)


def gdbus_as_nobody(bus, *args):
    """gdbus call on @bus as nobody; @args from --dest on."""
    return as_nobody("gdbus", "call", "--address", bus.address, *args)


@contextlib.contextmanager
def system_daemon(prefix, name, uuid, size="1T", policy=BUS_POLICY, before_daemon=None):
    """qcow2-policyd as root (--system) on a private system-style bus with @policy on top of
    the default one (None: everything allowed), one domain @name with a qcow2 image of
    @size. Files are not under pytest's 0700 tmp: an unprivileged caller must reach the
    socket and the image. @before_daemon(env) runs once the bus is up (a mock polkitd).
    Yields {"tmp", "img", "bus", "daemon"}."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    os.chmod(tmp, 0o755)
    img = os.path.join(tmp, "disk.qcow2")
    qemu_img("create", "-f", "qcow2", img, size)
    os.chmod(img, 0o644)
    node = os.path.join(tmp, "node.xml")
    with open(node, "w") as f:
        f.write("<node>\n" + domain_xml(name, uuid, [("vda", img, "qcow2")]) + "</node>\n")
    env = {"tmp": tmp, "img": img, "daemon": None}
    env["bus"] = Bus(tmp, system=True, include=os.path.abspath(policy) if policy else None)
    try:
        if before_daemon is not None:
            before_daemon(env)
        env["daemon"] = Daemon(env["bus"], node, session=False)
        env["daemon"].wait_settled(1)
        yield env
    finally:
        if env["daemon"] is not None:
            env["daemon"].stop()
        env["bus"].stop()
        shutil.rmtree(tmp, ignore_errors=True)


def dbus_error_name(exc):
    return Gio.DBusError.get_remote_error(exc)


def cli(*args, bus=None, check=False, env=None):
    """The built qcow2-policyctl; @bus the session bus, @env more variables."""
    env = dict(os.environ, LC_ALL="C.UTF-8", LANGUAGE="", **(env or {}))
    if bus is not None:
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.address
    res = subprocess.run([CLI] + list(args), capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert res.returncode == 0, (args, res.returncode, res.stdout, res.stderr)
    return res


def analyze_json(*paths, percent=None):
    args = ["analyze", "--json"] + list(paths)
    if percent is not None:
        args += ["--percent", str(percent)]
    res = cli(*args, check=True)
    return json.loads(res.stdout)
