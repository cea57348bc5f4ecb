"""Helpers for the end-to-end suite: a real libvirtd (qemu:///system), real QEMU (TCG),
images made with qemu-img, and the expected cache values computed here from the
spec's own arithmetic (sections 2 and 3), independently of the project's code."""

import grp
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET

URI = "qemu:///system"
QC_NS = "http://qcow2policyd.org/schemas/l2cache/1.0"
MIB = 1024 * 1024
# QEMU's default L2 cache cap on Linux (block/qcow2.c DEFAULT_L2_CACHE_MAX_SIZE).
QEMU_DEFAULT_L2_MAX = 32 * MIB
# Every external command gets a bound: a define that hangs (see testing.md on /dev/kvm)
# must fail the test, not stall CI. 60 s is far above the ~1 s a TCG start takes here.
CMD_TIMEOUT = 60
# libvirtd answers within a second once its QEMU capabilities are probed; the first
# probe on a fresh machine takes a few seconds.
LIBVIRTD_START_TIMEOUT = 60
# A unique prefix so the suite only ever touches its own domains and images.
NAME_PREFIX = "qp-e2e-"


class E2EUnavailable(Exception):
    """libvirtd with the QEMU driver cannot be used on this machine."""


def run(args, *, input=None, check=True, timeout=CMD_TIMEOUT, env=None):
    """Run a command, return CompletedProcess (text). On failure with check, raise with
    the command's stderr so the test log shows the reason."""
    p = subprocess.run(args, input=input, capture_output=True, text=True,
                       timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError("command failed (%d): %s\nstdout: %s\nstderr: %s"
                             % (p.returncode, " ".join(args), p.stdout, p.stderr))
    return p


def virsh(*args, check=True, input=None):
    return run(["virsh", "-q", "-c", URI] + list(args), check=check, input=input)


def unique_name(tag):
    return "%s%s-%s" % (NAME_PREFIX, tag, uuid.uuid4().hex[:8])


# --- libvirtd --------------------------------------------------------------------

def _pidfile_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _libvirtd_answers():
    try:
        p = run(["virsh", "-c", URI, "version"], check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and "QEMU" in p.stdout


def _fix_kvm_device():
    # Without udev /dev/kvm stays 0600 root; libvirtd then finds KVM usable when probing
    # but not for its QEMU user and re-probes forever, so every define hangs
    # (testing.md). Give it what udev gives it on any Debian host. No /dev/kvm at all is
    # fine: the suite's domains are TCG.
    if not os.path.exists("/dev/kvm"):
        return
    try:
        gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        raise E2EUnavailable("/dev/kvm exists but there is no group kvm to give it to "
                             "(libvirt's defines would hang)")
    st = os.stat("/dev/kvm")
    if st.st_gid != gid or stat.S_IMODE(st.st_mode) & 0o060 != 0o060:
        os.chown("/dev/kvm", -1, gid)
        os.chmod("/dev/kvm", 0o660)


class Libvirtd:
    """libvirtd (and virtlogd) for the suite: reused when running, else started, and
    then stopped again at the end (only the processes started here)."""

    def __init__(self):
        self.started = []  # (name, pid) of what this suite started

    def ensure(self):
        if os.geteuid() == 0:
            _fix_kvm_device()
        if _libvirtd_answers():
            return
        if os.geteuid() != 0:
            raise E2EUnavailable("qemu:///system does not answer, and starting libvirtd "
                                 "needs root")
        for tool in ("libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "qemu-img"):
            if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
                raise E2EUnavailable("%s is not installed" % tool)
        for name, pidfile in (("virtlogd", "/run/virtlogd.pid"),
                              ("libvirtd", "/run/libvirtd.pid")):
            if _alive(_pidfile_pid(pidfile)):
                continue
            p = run([name, "-d"], check=False)
            if p.returncode != 0:
                raise E2EUnavailable("%s -d failed: %s" % (name, p.stderr.strip()))
            pid = None
            for _ in range(50):
                pid = _pidfile_pid(pidfile)
                if _alive(pid):
                    break
                time.sleep(0.1)
            if not _alive(pid):
                raise E2EUnavailable("%s did not write %s" % (name, pidfile))
            self.started.append((name, pid))
        deadline = time.monotonic() + LIBVIRTD_START_TIMEOUT
        while not _libvirtd_answers():
            if time.monotonic() > deadline:
                raise E2EUnavailable("libvirtd started but %s does not answer" % URI)
            time.sleep(0.5)

    def stop_started(self):
        for name, pid in reversed(self.started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.1)
        self.started = []


# --- images ----------------------------------------------------------------------

def make_image_dir():
    """A directory QEMU's user (libvirt-qemu with the DAC driver) can traverse and read.
    libvirt's dynamic_ownership (default on) chowns writable images at start."""
    base = "/var/lib/libvirt/images"
    if not os.path.isdir(base) or not os.access(base, os.W_OK):
        base = None
    d = tempfile.mkdtemp(prefix=NAME_PREFIX, dir=base)
    os.chmod(d, 0o755)
    return d


def qemu_img_create(path, size, *, cluster_size=None, extended_l2=False, backing=None,
                    backing_fmt="qcow2", compat=None):
    opts = []
    if cluster_size:
        opts.append("cluster_size=%d" % cluster_size)
    if extended_l2:
        opts.append("extended_l2=on")
    if compat:
        opts.append("compat=%s" % compat)
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", ",".join(opts)]
    if backing:
        # Relative name, as operators usually make overlays: the chain must be resolved
        # relative to the image's directory.
        args += ["-b", backing, "-F", backing_fmt]
    args += [path, str(size)]
    run(args)
    os.chmod(path, 0o644)
    return path


def qemu_img_info(path):
    info = json.loads(run(["qemu-img", "info", "-U", "--output=json", path]).stdout)
    return info


# --- the spec's arithmetic, from first principles -------------------------------

def round_up(x, a):
    return (x + a - 1) // a * a


def ceil_div(a, b):
    return (a + b - 1) // b


def l2_full(virtual_size, cluster_size, extended_l2):
    entry = 16 if extended_l2 else 8
    return round_up(ceil_div(virtual_size, cluster_size) * entry, cluster_size)


def expected_max_size(path, percent, cap=None):
    """max_size the policy must write for image @path (spec section 3), from qemu-img's
    own view of the image."""
    info = qemu_img_info(path)
    assert info["format"] == "qcow2", info
    v = info["virtual-size"]
    c = info["cluster-size"]
    ext = bool(info.get("format-specific", {}).get("data", {}).get("extended-l2", False))
    full = l2_full(v, c, ext)
    if percent == 100:
        want = full
    else:
        want = min(full, round_up(ceil_div(full * percent, 100), 4096))
    l2 = max(want, min(full, QEMU_DEFAULT_L2_MAX))
    size = l2 + 4 * c
    if cap is not None:
        minimum = 4 * c + 2 * min(c, 4096)
        size = min(size, max(cap, minimum))
    return size


# --- domain XML --------------------------------------------------------------------

def disk_xml(dev, top, chain=None, explicit_chain=False, top_cache=None, layer_cache=None):
    """A <disk> element. @chain: backing image paths below @top, nearest first; written as
    an explicit terminated <backingStore> chain when @explicit_chain. @top_cache and
    @layer_cache ({path: bytes}) add <metadata_cache> values."""
    def mc(n):
        if n is None:
            return ""
        return ("<metadata_cache><max_size unit='bytes'>%d</max_size></metadata_cache>" % n)

    driver = "<driver name='qemu' type='qcow2'>%s</driver>" % mc(top_cache)
    if top_cache is None:
        driver = "<driver name='qemu' type='qcow2'/>"
    store = ""
    if explicit_chain:
        store = "<backingStore/>"
        for path in reversed(chain or []):
            cache = (layer_cache or {}).get(path)
            fmt = ("<format type='qcow2'>%s</format>" % mc(cache) if cache is not None
                   else "<format type='qcow2'/>")
            store = ("<backingStore type='file'>%s<source file='%s'/>%s</backingStore>"
                     % (fmt, path, store))
    return ("<disk type='file' device='disk'>%s<source file='%s'/>%s"
            "<target dev='%s' bus='virtio'/></disk>" % (driver, top, store, dev))


def domain_xml(name, disks, *, metadata="", extra_devices=""):
    """A TCG domain with no guest OS: QEMU starts and sits in the BIOS, which is all the
    command line checks need, and 64 MiB keeps it cheap."""
    return """<domain type='qemu'>
  <name>%s</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <metadata>%s</metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>%s</emulator>
    %s
    %s
  </devices>
</domain>
""" % (name, metadata, shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64",
       "\n    ".join(disks), extra_devices)


_UNITS = {"b": 1, "bytes": 1, "k": 1024, "kib": 1024, "m": MIB, "mib": MIB,
          "g": 1024 * MIB, "gib": 1024 * MIB, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3}


def _max_size(parent):
    """bytes of parent/metadata_cache/max_size, None when absent."""
    if parent is None:
        return None
    el = parent.find("metadata_cache/max_size")
    if el is None:
        return None
    unit = (el.get("unit") or "bytes").lower()
    return int(el.text.strip()) * _UNITS[unit]


def persistent_cache_values(xml_text):
    """{dev: [(path, max_size or None), ...top first]} from a domain XML: the top image's
    <driver> value and each explicit <backingStore> layer's <format> value."""
    root = ET.fromstring(xml_text)
    out = {}
    for disk in root.findall("devices/disk"):
        dev = disk.find("target").get("dev")
        src = disk.find("source")
        layers = [(src.get("file") if src is not None else None,
                   _max_size(disk.find("driver")))]
        store = disk.find("backingStore")
        while store is not None and store.find("source") is not None:
            layers.append((store.find("source").get("file"), _max_size(store.find("format"))))
            store = store.find("backingStore")
        out[dev] = layers
    return out


def metadata_element(xml_text, ns):
    """The first child of <metadata> in namespace @ns, serialized, or None."""
    root = ET.fromstring(xml_text)
    md = root.find("metadata")
    if md is None:
        return None
    for child in md:
        if child.tag.startswith("{%s}" % ns):
            return child
    return None


GIB = 1024 ** 3
TIB = 1024 ** 4


class PolicyImages:
    """Images for a domain with two qcow2 disks, one of them with a two-layer backing
    chain, plus a raw disk the policy must leave alone. Sizes are odd on purpose so that
    every rounding step of the arithmetic matters; the cluster sizes and extended L2 vary
    by layer; vdb is large enough that 25 % is more than QEMU's 32 MiB default."""

    def __init__(self, image_dir):
        d = image_dir
        self.base = qemu_img_create(os.path.join(d, "base.qcow2"), 100 * GIB + 3 * 512,
                                    extended_l2=True)
        self.mid = qemu_img_create(os.path.join(d, "mid.qcow2"), 200 * GIB + 65536,
                                   cluster_size=128 * 1024, backing="base.qcow2")
        self.top = qemu_img_create(os.path.join(d, "top.qcow2"), 300 * GIB + 7 * 512,
                                   backing="mid.qcow2")
        self.vdb = qemu_img_create(os.path.join(d, "data.qcow2"), 2 * TIB + 7 * MIB + 512,
                                   cluster_size=32 * 1024)
        self.raw = os.path.join(d, "scratch.raw")
        run(["qemu-img", "create", "-q", "-f", "raw", self.raw, "16M"])
        os.chmod(self.raw, 0o644)
        self.top, self.mid, self.base, self.vdb, self.raw = (
            os.path.realpath(p) for p in (self.top, self.mid, self.base, self.vdb, self.raw))

    def disks(self):
        raw = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
               "<source file='%s'/><target dev='vdc' bus='virtio'/></disk>" % self.raw)
        return [disk_xml("vda", self.top), disk_xml("vdb", self.vdb), raw]

    def expected(self, percent_vda, percent_vdb):
        return {
            "vda": [(self.top, expected_max_size(self.top, percent_vda)),
                    (self.mid, expected_max_size(self.mid, percent_vda)),
                    (self.base, expected_max_size(self.base, percent_vda))],
            "vdb": [(self.vdb, expected_max_size(self.vdb, percent_vdb))],
            "vdc": [(self.raw, None)],
        }


def vnc_password(xml_text):
    return ET.fromstring(xml_text).find("devices/graphics[@type='vnc']").get("passwd")


def canonical(el):
    return ET.canonicalize(ET.tostring(el, encoding="unicode"), strip_text=True)


def without_owned(xml_text, drop_ns=()):
    """The document minus what the policy owns: <metadata_cache> under a disk's <driver>
    or a layer's <format>, and the disks' <backingStore> chains; and minus the metadata
    elements of the namespaces in @drop_ns."""
    root = ET.fromstring(xml_text)
    md = root.find("metadata")
    for child in list(md if md is not None else []):
        if any(child.tag.startswith("{%s}" % ns) for ns in drop_ns):
            md.remove(child)
    for disk in root.findall("devices/disk"):
        for store in disk.findall("backingStore"):
            disk.remove(store)
        for drv in disk.findall("driver"):
            for mc in drv.findall("metadata_cache"):
                drv.remove(mc)
    return canonical(root)


def normalized(values):
    return {dev: [(os.path.realpath(p) if p else p, n) for p, n in layers]
            for dev, layers in values.items()}


# --- a running QEMU's command line -------------------------------------------------

def qemu_pid(name):
    with open("/run/libvirt/qemu/%s.pid" % name) as f:
        return int(f.read().strip())


def qemu_cmdline(name):
    with open("/proc/%d/cmdline" % qemu_pid(name), "rb") as f:
        return [a.decode() for a in f.read().split(b"\0") if a]


def blockdevs(argv):
    """The JSON objects of every -blockdev in @argv (libvirt passes JSON, not key=val)."""
    out = []
    for i, a in enumerate(argv):
        if a == "-blockdev" and i + 1 < len(argv):
            v = argv[i + 1]
            # domxml-to-native quotes arguments for a shell.
            if v.startswith("'") and v.endswith("'"):
                v = v[1:-1]
            out.append(json.loads(v))
    return out


def qcow2_format_nodes(argv):
    """{realpath of image: cache-size or None} for each qcow2 format node, with the
    file name taken from the protocol node its "file" names (or an inline object)."""
    nodes = blockdevs(argv)
    by_name = {n.get("node-name"): n for n in nodes}
    out = {}
    for n in nodes:
        if n.get("driver") != "qcow2":
            continue
        f = n.get("file")
        proto = by_name.get(f) if isinstance(f, str) else f
        assert proto is not None and "filename" in proto, n
        out[os.path.realpath(proto["filename"])] = n.get("cache-size")
    return out


def native_argv(name):
    """domxml-to-native qemu-argv for a defined domain, split like a shell would: the
    JSON arguments are single-quoted and contain no spaces."""
    text = virsh("domxml-to-native", "qemu-argv", "--domain", name).stdout
    return re.findall(r"'[^']*'|\S+", text)


# --- phase 2: the daemon on a private session bus ----------------------------------

BUS_NAME = "org.qcow2policyd.Policy1"
ROOT_PATH = "/org/qcow2policyd/Policy1"
DOMAIN_IFACE = "org.qcow2policyd.Policy1.Domain"
MANAGER_IFACE = "org.qcow2policyd.Policy1.Manager"
MANAGER_PATH = ROOT_PATH + "/Manager"
# The daemon connects, reconciles and takes its name in well under a second here; 20 s
# leaves room for a loaded CI machine without letting a broken start stall the suite.
DAEMON_START_TIMEOUT = 20


class SessionBus:
    """A private dbus-daemon, stopped again by its pid."""

    def __init__(self):
        p = run(["dbus-daemon", "--session", "--print-address=1", "--print-pid=1",
                 "--fork", "--nopidfile"])
        lines = p.stdout.split()
        self.address, self.pid = lines[0], int(lines[1])

    def stop(self):
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def bus_connection(address):
    from gi.repository import Gio
    return Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
        | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)


def dbus_call(conn, path, iface, method, args=None, signature=None, timeout_ms=30000):
    from gi.repository import GLib, Gio
    params = GLib.Variant(signature, args) if signature else None
    reply = conn.call_sync(BUS_NAME, path, iface, method, params, None,
                           Gio.DBusCallFlags.NONE, timeout_ms, None)
    return reply.unpack() if reply is not None else None


def managed_objects(conn):
    return dbus_call(conn, ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                     "GetManagedObjects")[0]


def domain_path(conn, name):
    for path, ifaces in managed_objects(conn).items():
        props = ifaces.get(DOMAIN_IFACE)
        if props is not None and props.get("Name") == name:
            return path
    return None


def domain_props(conn, path):
    return dbus_call(conn, path, "org.freedesktop.DBus.Properties", "GetAll",
                     (DOMAIN_IFACE,), "(s)")[0]


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Poll @predicate until it returns a true value; return it, or fail after @timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_domain_state(daemon, name, state, percent=None, timeout=10.0, interval=0.05,
                      cache_path=False):
    """Poll @daemon's Domain object @name until State is @state (and Percent is @percent);
    return its properties. @cache_path: look the object up once, then read only its
    properties, so that polling stays cheap for the daemon (latency figures are the
    daemon's, not the poller's)."""
    paths = []

    def check():
        path = paths[0] if paths else domain_path(daemon.conn, name)
        if path is None:
            return None
        if cache_path:
            paths[:] = [path]
        props = domain_props(daemon.conn, path)
        if props.get("State") != state:
            return None
        if percent is not None and props.get("Percent") != percent:
            return None
        return props
    try:
        return wait_for(check, timeout, interval,
                        "domain %s State %s (Percent %s)" % (name, state, percent))
    except AssertionError:
        path = domain_path(daemon.conn, name)
        props = domain_props(daemon.conn, path) if path else None
        raise AssertionError("%s never reached State %r/Percent %r; last properties: %r\n"
                             "daemon log:\n%s" % (name, state, percent, props,
                                                  daemon.log_text()))


def daemon_binary():
    """The built qcow2-policyd, or $QP_POLICYD."""
    build = os.environ.get("QP_BUILD_DIR")
    assert build, "QP_BUILD_DIR is not set (run through meson test)"
    path = os.environ.get("QP_POLICYD") or os.path.join(build, "daemon", "qcow2-policyd")
    assert os.access(path, os.X_OK), "%s is not built" % path
    return path


class Daemon:
    """qcow2-policyd --session --connect qemu:///system on @bus, log kept in @logdir."""

    def __init__(self, binary, bus, logdir):
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address,
                   G_MESSAGES_DEBUG="all")
        self.log_path = os.path.join(logdir, "qcow2-policyd.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "--session", "--connect", URI, "--verbose"],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = bus_connection(bus.address)

        def owned():
            if self.proc.poll() is not None:
                raise AssertionError("qcow2-policyd exited with %d:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            from gi.repository import GLib
            r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "NameHasOwner",
                                    GLib.Variant("(s)", (BUS_NAME,)), None, 0, 5000, None)
            return r.unpack()[0]
        wait_for(owned, DAEMON_START_TIMEOUT, 0.05, "qcow2-policyd to own " + BUS_NAME)

    def log_text(self, tail=20000):
        """The daemon's log; its last @tail characters (None: all of it)."""
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            text = f.read()
        return text if tail is None else text[-tail:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


class LifecycleEvents:
    """libvirt lifecycle events of one connection, collected on a thread running
    libvirt's default event loop."""

    _loop_started = False

    def __init__(self):
        import threading
        import libvirt
        self.libvirt = libvirt
        if not LifecycleEvents._loop_started:
            libvirt.virEventRegisterDefaultImpl()

            def loop():
                while True:
                    libvirt.virEventRunDefaultImpl()
            threading.Thread(target=loop, daemon=True).start()
            LifecycleEvents._loop_started = True
        self.lock = threading.Lock()
        self.events = []  # (monotonic time, domain name, event, detail)
        self.conn = libvirt.open(URI)
        self.cb = self.conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_event, None)

    def _on_event(self, conn, dom, event, detail, opaque):
        with self.lock:
            self.events.append((time.monotonic(), dom.name(), event, detail))

    def defined(self, name, since=0.0):
        with self.lock:
            return [e for e in self.events
                    if e[1] == name and e[2] == self.libvirt.VIR_DOMAIN_EVENT_DEFINED
                    and e[0] >= since]

    def close(self):
        try:
            self.conn.domainEventDeregisterAny(self.cb)
        finally:
            self.conn.close()
