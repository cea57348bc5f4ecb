"""Issue 7's faults, against a real libvirtd (a private one, qpfaults.PrivateLibvirtd):
libvirtd stopped and restarted under the daemon, the daemon SIGKILLed and restarted,
images deleted, truncated or replaced under it, a domain undefined between its read and its
write, and the disk full when libvirt writes the definition. In each, nothing is lost or
half-written: a domain's persistent XML is the old one or the complete new one. Expected
values come from qemu-img and the spec's arithmetic (qpe2e), never from the project's code.

What this does not cover, and why:
- the disk full under qemu:///system's own /etc/libvirt/qemu: a tmpfs over the host's
  configuration would disturb every other user of the machine's libvirtd. The private
  libvirtd runs the same QEMU driver code that saves NAME.xml (virDomainDefSave), only
  under $XDG_CONFIG_HOME.
- libvirt's virDomainSetMetadata keeps its in-memory change when saving fails (seen here,
  libvirt 9.0): `dumpxml --inactive` then differs from the file until libvirtd restarts.
  That is libvirt's, so the disk-full test asserts the file, not dumpxml, after SetPolicy.
- an image changed in the middle of one read() is approximated by a thread that rewrites,
  renames and truncates the image continuously while Apply calls read it.
- an undefine in the window between the daemon's re-read and its write: QEMU's driver
  gets per-disk virDomainUpdateDeviceFlags(AFFECT_CONFIG), which fails on a missing
  domain instead of defining it again. The sweep below hits that window by chance;
  test_changes_held_in_the_write_window holds the daemon there with gdb. The whole-
  definition define that drivers without device update get (libvirt's test driver, which
  runs in the daemon's process, so nothing can race it) would re-create such a domain."""

import json
import os
import shutil
import subprocess
import threading
import time

import pytest
from gi.repository import Gio, GLib

import qpe2e
import qpfaults

GIB = qpe2e.GIB
POLICY = '<l2cache percent="%d"/>'
# The brief's bound for a change to be applied; a healthy daemon needs far less.
APPLY_TIMEOUT = 10.0
# The daemon notices a closed connection at once (close callback) or, with keepalive 5 s x 3,
# within 20 s; reconnect retries back off up to 5 s.
DISCONNECT_TIMEOUT = 25.0
RECONNECT_TIMEOUT = 30.0
ERR = "org.qcow2policyd.Policy1.Error."


def _set_policy(name, percent):
    qpe2e.virsh("metadata", name, "--uri", qpe2e.QC_NS, "--key", "qc",
                "--set", POLICY % percent, "--config")


def _persistent(name):
    return qpe2e.virsh("dumpxml", "--inactive", "--security-info", name).stdout


def _config_file(libvirtd, name):
    with open(os.path.join(libvirtd.qemu_config_dir, name + ".xml"), "rb") as f:
        return f.read()


def _manager(conn):
    return qpe2e.dbus_call(conn, qpe2e.MANAGER_PATH, "org.freedesktop.DBus.Properties",
                           "GetAll", (qpe2e.MANAGER_IFACE,), "(s)")[0]


def _remote_error(call):
    """Run @call, which must fail with a D-Bus error; return the error's name."""
    try:
        call()
    except GLib.Error as e:
        name = Gio.DBusError.get_remote_error(e)
        assert name, "not a remote D-Bus error: %s" % e
        return name, e.message
    raise AssertionError("the call succeeded; an error was expected")


def _apply(conn, path):
    qpe2e.dbus_call(conn, path, qpe2e.DOMAIN_IFACE, "Apply", ({},), "(a{sv})")


def _wait_state(daemon, name, state, percent=None, timeout=APPLY_TIMEOUT):
    return qpe2e.wait_domain_state(daemon, name, state, percent, timeout)


def _values(name):
    return qpe2e.normalized(qpe2e.persistent_cache_values(_persistent(name)))


def _one_disk(domains, image_dir, tag, img, percent=None):
    md = POLICY % percent if percent else ""
    md = md.replace("<l2cache", '<qc:l2cache xmlns:qc="%s"' % qpe2e.QC_NS)
    return domains.define(qpe2e.domain_xml(qpe2e.unique_name(tag),
                                           [qpe2e.disk_xml("vda", img)], metadata=md),
                          image_dir)


def _image(image_dir, name, size, cluster_size=None):
    return os.path.realpath(qpe2e.qemu_img_create(os.path.join(image_dir, name), size,
                                                  cluster_size=cluster_size))


def _figure(key, value):
    """Record a figure of the run in BUILD/tests/faults/faults-figures.json (the output of
    pytest -v must stay one line per test for tests/summarize.py)."""
    build = os.environ.get("QP_BUILD_DIR")
    if not build:
        return
    path = os.path.join(build, "tests", "faults", "faults-figures.json")
    try:
        with open(path) as f:
            figures = json.load(f)
    except (OSError, ValueError):
        figures = {}
    figures[key] = value
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(figures, f, indent=1, sort_keys=True)


def _want(img, percent):
    return {"vda": [(img, qpe2e.expected_max_size(img, percent))]}


# --- (a) libvirtd stopped and restarted under the daemon ------------------------------

def test_libvirtd_restart_reconnects_and_keeps_applying(libvirtd, daemons, domains,
                                                       image_dir):
    daemon = daemons.start()
    img = _image(image_dir, "a.qcow2", 300 * GIB + 512)
    name = _one_disk(domains, image_dir, "restart", img, 100)
    _wait_state(daemon, name, "applied", 100)
    assert _values(name) == _want(img, 100)
    before = _persistent(name)
    path = qpe2e.domain_path(daemon.conn, name)
    assert _manager(daemon.conn)["Connected"] is True

    libvirtd.stop()
    qpe2e.wait_for(lambda: _manager(daemon.conn)["Connected"] is False, DISCONNECT_TIMEOUT,
                   0.1, "Manager.Connected to turn false")
    # calls are answered while libvirt is away, with the libvirt error
    name_err, msg = _remote_error(lambda: _apply(daemon.conn, path))
    assert name_err == ERR + "Libvirt", (name_err, msg)
    # the image grows while libvirtd is down: no libvirt event will tell the daemon
    qpe2e.run(["qemu-img", "resize", "-q", img, "+100G"])

    libvirtd.start()
    # a policy change right after the restart, possibly before the daemon reconnected
    _set_policy(name, 50)
    qpe2e.wait_for(lambda: _manager(daemon.conn)["Connected"] is True, RECONNECT_TIMEOUT,
                   0.1, "Manager.Connected to turn true again")
    _wait_state(daemon, name, "applied", 50)
    qpe2e.wait_for(lambda: _values(name) == _want(img, 50), APPLY_TIMEOUT, 0.1,
                   "the values for the grown image at 50 %")
    assert (qpe2e.without_owned(_persistent(name), drop_ns=(qpe2e.QC_NS,))
            == qpe2e.without_owned(before, drop_ns=(qpe2e.QC_NS,)))

    # and keeps following events on the new connection
    _set_policy(name, 100)
    _wait_state(daemon, name, "applied", 100)
    assert _values(name) == _want(img, 100)


# --- (b) the daemon killed with SIGKILL and restarted ----------------------------------

def test_sigkill_and_restart_reconciles_what_changed(libvirtd, daemons, domains, image_dir):
    daemon = daemons.start()
    img_a = _image(image_dir, "a.qcow2", 300 * GIB + 512)
    img_c = _image(image_dir, "c.qcow2", 10 * GIB)
    a = _one_disk(domains, image_dir, "kill-a", img_a, 100)
    c = _one_disk(domains, image_dir, "kill-c", img_c, 100)
    _wait_state(daemon, a, "applied", 100)
    _wait_state(daemon, c, "applied", 100)
    before_a = _persistent(a)
    daemons.kill(daemon)

    # while it is down: a policy change, a grown image, a removed and a new domain
    _set_policy(a, 25)
    qpe2e.run(["qemu-img", "resize", "-q", img_a, "+1T"])
    qpe2e.virsh("undefine", c)
    img_b = _image(image_dir, "b.qcow2", 2 * qpe2e.TIB, cluster_size=32768)
    b = _one_disk(domains, image_dir, "kill-b", img_b, 100)

    daemon = daemons.start()
    _wait_state(daemon, a, "applied", 25)
    _wait_state(daemon, b, "applied", 100)
    assert _values(a) == _want(img_a, 25)
    assert _values(b) == _want(img_b, 100)
    assert (qpe2e.without_owned(_persistent(a), drop_ns=(qpe2e.QC_NS,))
            == qpe2e.without_owned(before_a, drop_ns=(qpe2e.QC_NS,)))
    assert qpe2e.domain_path(daemon.conn, c) is None
    err, _ = _remote_error(lambda: qpe2e.dbus_call(
        daemon.conn, qpe2e.MANAGER_PATH, qpe2e.MANAGER_IFACE, "GetDomainByName", (c, {}),
        "(sa{sv})"))
    assert err == ERR + "NotFound"
    assert qpe2e.virsh("domuuid", c, check=False).returncode != 0, "undefined domain is back"


# A burst of startup writes, killed in the middle: each definition is the old or the whole
# new one, and the next daemon finishes the job.
KILL_BURST_DOMAINS = 40


def test_sigkill_during_startup_writes(libvirtd, daemons, domains, image_dir):
    img = _image(image_dir, "burst.qcow2", 500 * GIB + 7 * 512)
    want = qpe2e.expected_max_size(img, 100)
    names = [_one_disk(domains, image_dir, "burst", img, 100)
             for _ in range(KILL_BURST_DOMAINS)]
    before = {n: _persistent(n) for n in names}
    assert all(_values(n) == {"vda": [(img, None)]} for n in names)

    daemon = daemons.start()
    # kill once the first writes have landed, before the last
    # watch the files libvirt writes: far quicker than a virsh per domain
    qpe2e.wait_for(lambda: any(b"metadata_cache" in _config_file(libvirtd, n) for n in names),
                   20, 0.002, "a first write")
    daemons.kill(daemon)
    written = 0
    for n in names:
        v = _values(n)["vda"][0][1]
        assert v in (None, want), (n, v)
        written += v is not None
        assert (qpe2e.without_owned(_persistent(n)) == qpe2e.without_owned(before[n]))
    _figure("sigkill-during-startup-writes", {"written-before-kill": written,
                                              "domains": len(names)})

    daemon = daemons.start()
    for n in names:
        _wait_state(daemon, n, "applied", 100)
        assert _values(n) == {"vda": [(img, want)]}


# --- (c) an image deleted, truncated or replaced --------------------------------------

def test_image_deleted_truncated_replaced(libvirtd, daemons, domains, image_dir):
    daemon = daemons.start()
    img = _image(image_dir, "vda.qcow2", 300 * GIB + 512)
    orig = img + ".orig"
    shutil.copyfile(img, orig)
    name = _one_disk(domains, image_dir, "image", img, 100)
    _wait_state(daemon, name, "applied", 100)
    path = qpe2e.domain_path(daemon.conn, name)
    good = _persistent(name)
    good_file = _config_file(libvirtd, name)

    def assert_untouched(what):
        err, msg = _remote_error(lambda: _apply(daemon.conn, path))
        assert err == ERR + "Image", (what, err, msg)
        props = qpe2e.domain_props(daemon.conn, path)
        assert props["State"] == "error" and "vda" in props["Error"], (what, props)
        assert _persistent(name) == good, what
        assert _config_file(libvirtd, name) == good_file, what

    os.unlink(img)
    assert_untouched("deleted")
    shutil.copyfile(orig, img)
    os.truncate(img, 0)
    assert_untouched("truncated to 0")
    shutil.copyfile(orig, img)
    os.truncate(img, 100)  # inside the 104-byte version-2 header
    assert_untouched("truncated inside the header")

    # replaced by another image (another cluster size and size): new figures, and
    # everything but the values stays
    other = _image(image_dir, "other.qcow2", 3 * qpe2e.TIB + 65536, cluster_size=131072)
    want_other = qpe2e.expected_max_size(other, 100)
    os.replace(other, img)
    _apply(daemon.conn, path)
    assert _values(name) == {"vda": [(img, want_other)]}
    assert qpe2e.without_owned(_persistent(name)) == qpe2e.without_owned(good)
    props = qpe2e.domain_props(daemon.conn, path)
    assert props["State"] == "applied"
    assert [x["cluster-size"] for x in props["Disks"]] == [131072]


# Images rewritten in place (truncated and refilled), swapped by rename and truncated
# while Apply calls read them: every outcome is one of the images' values or an error,
# and every definition complete.
SWAP_ROUNDS = 40


def test_image_changing_while_read(libvirtd, daemons, domains, image_dir):
    daemon = daemons.start()
    img = _image(image_dir, "vda.qcow2", 300 * GIB + 512)
    versions = [_image(image_dir, "v0.qcow2", 300 * GIB + 512),
                _image(image_dir, "v1.qcow2", 5 * qpe2e.TIB, cluster_size=2 * 1024 * 1024),
                _image(image_dir, "v2.qcow2", 40 * GIB + 512, cluster_size=4096)]
    allowed = {qpe2e.expected_max_size(v, 100) for v in versions}
    name = _one_disk(domains, image_dir, "swap", img, 100)
    _wait_state(daemon, name, "applied", 100)
    path = qpe2e.domain_path(daemon.conn, name)
    good = _persistent(name)
    stop = threading.Event()
    swaps = [0]

    def churn():
        i = 0
        while not stop.is_set():
            src = versions[i % len(versions)]
            how = i % 3
            if how == 0:  # rewrite in place: O_TRUNC, then the bytes
                shutil.copyfile(src, img)
            elif how == 1:  # atomic replace by a new inode
                tmp = img + ".tmp"
                shutil.copyfile(src, tmp)
                os.replace(tmp, img)
            else:  # cut short in place
                os.truncate(img, 512)
            swaps[0] += 1
            i += 1
            time.sleep(0.001)

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    outcomes = {"ok": 0, "image-error": 0}
    try:
        for _ in range(SWAP_ROUNDS):
            try:
                _apply(daemon.conn, path)
                outcomes["ok"] += 1
            except GLib.Error as e:
                err = Gio.DBusError.get_remote_error(e)
                if err == ERR + "Libvirt" and "not writing them again" in e.message:
                    # the daemon's loop guard refusing a value it wrote moments ago (the
                    # image flipped back): a misleading message, reported as a daemon
                    # bug, but nothing is written, which is what this test is about
                    outcomes["loop-guard"] = outcomes.get("loop-guard", 0) + 1
                else:
                    assert err == ERR + "Image", e.message
                    outcomes["image-error"] += 1
            text = _persistent(name)
            (layer,) = qpe2e.normalized(qpe2e.persistent_cache_values(text))["vda"]
            assert layer[1] in allowed, layer
            assert qpe2e.without_owned(text) == qpe2e.without_owned(good)
    finally:
        stop.set()
        t.join(10)
    _figure("image-changing-while-read", dict(outcomes, **{"image-changes": swaps[0]}))
    shutil.copyfile(versions[1], img)
    _apply(daemon.conn, path)
    assert _values(name) == {"vda": [(img, qpe2e.expected_max_size(versions[1], 100))]}


# --- (d) a domain undefined between the daemon's read and its write ---------------------

# Delays after the trigger swept from 0 to past a whole reconcile (a few tens of ms here),
# so that some undefines land in every phase: lookup, read, image read, re-read, define.
UNDEFINE_DELAYS_MS = list(range(0, 60, 3))


def test_undefine_between_read_and_write(libvirtd, daemons, domains, image_dir):
    import libvirt
    daemon = daemons.start()
    img = _image(image_dir, "vda.qcow2", 300 * GIB + 512)
    conn = libvirt.open(libvirtd.uri)
    recreated = []
    stale = []
    replies = {"ok": 0}
    try:
        for delay in UNDEFINE_DELAYS_MS:
            name = _one_disk(domains, image_dir, "undef", img)
            _wait_state(daemon, name, "unmanaged")
            path = qpe2e.domain_path(daemon.conn, name)
            dom = conn.lookupByName(name)
            uuid = dom.UUIDString()
            result = {}

            def call():
                try:
                    _apply(daemon.conn, path)
                    result["r"] = "ok"
                except GLib.Error as e:
                    result["r"] = Gio.DBusError.get_remote_error(e) or e.message
            # the metadata event and an Apply both start a reconcile that has to write
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, POLICY % 100, "qc",
                            qpe2e.QC_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            th = threading.Thread(target=call)
            th.start()
            time.sleep(delay / 1000.0)
            dom.undefine()
            th.join(30)
            assert not th.is_alive(), "Apply not answered"
            replies[result["r"]] = replies.get(result["r"], 0) + 1
            # NotFound: undefined while queued; UnknownMethod/UnknownObject: the object was
            # already removed when the call arrived
            assert result["r"] in ("ok", ERR + "NotFound", ERR + "Libvirt",
                                   "org.freedesktop.DBus.Error.UnknownMethod",
                                   "org.freedesktop.DBus.Error.UnknownObject"), result
            # settled: the domain stays undefined, and its object goes away
            qpe2e.wait_for(lambda: _manager(daemon.conn)["Busy"] == 0, APPLY_TIMEOUT, 0.02,
                           "the daemon to be idle")
            # a late write would re-create it just after Busy fell to 0
            def gone():
                try:
                    conn.lookupByUUIDString(uuid)
                    return False
                except libvirt.libvirtError:
                    return True
            try:
                qpe2e.wait_for(gone, APPLY_TIMEOUT, 0.02, "undefined %s to stay gone" % name)
            except AssertionError:
                recreated.append((delay, name))
                continue
            try:
                qpe2e.wait_for(lambda: qpe2e.domain_path(daemon.conn, name) is None,
                               APPLY_TIMEOUT, 0.05, "the object of undefined %s to go" % name)
            except AssertionError:
                stale.append((delay, name))
            assert daemon.proc.poll() is None, daemon.log_text()
    finally:
        conn.close()
    _figure("undefine-between-read-and-write", {"apply-replies": replies,
                                                "recreated": recreated})
    _UNDEFINE_RACE["recreated"] = recreated
    assert not stale, "objects of undefined domains stayed: %r" % stale
    qpe2e.wait_for(lambda: _manager(daemon.conn)["Busy"] == 0, APPLY_TIMEOUT, 0.05, "idle")
    assert daemon.proc.poll() is None


_UNDEFINE_RACE = {}


# Before the daemon wrote per disk (9c0b3fb) its whole-definition define re-created about
# 1 in 60 of the sweep's undefined domains; now every undefined domain must stay gone.
def test_undefined_domain_not_recreated(libvirtd):
    assert "recreated" in _UNDEFINE_RACE, "test_undefine_between_read_and_write did not run"
    recreated = _UNDEFINE_RACE["recreated"]
    assert not recreated, "the daemon left undefined domains re-created: %r" % recreated


# The same window made certain: gdb stops the daemon at its write (QEMU's driver:
# virDomainUpdateDeviceFlags, after the re-read that guards against concurrent edits), a
# shell command run from the breakpoint changes the domain, and the write goes on.
def _hold_write(libvirtd, daemon, name, gdb_shell):
    """Set a policy on @name and hold the daemon's write until @gdb_shell (a shell command
    that gdb runs while the daemon is stopped there) has run; return gdb's output."""
    script = "\n".join([
        "set pagination off",
        "set confirm off",
        "break virDomainUpdateDeviceFlags",
        "break virDomainDefineXMLFlags",
        "commands 1 2",
        "  shell " + gdb_shell,
        "  delete",
        "  detach",
        "  quit",
        "end",
        "echo qp-gdb-ready\\n",
        "continue",
    ]) + "\n"
    script_path = os.path.join(libvirtd.dirs["home"], name + ".gdb")
    with open(script_path, "w") as f:
        f.write(script)
    gdb = subprocess.Popen(["gdb", "-q", "-nx", "-batch", "-p", str(daemon.proc.pid), "-x",
                            script_path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    out = []
    for line in gdb.stdout:
        out.append(line)
        if "qp-gdb-ready" in line:
            break
    assert gdb.poll() is None, "gdb did not attach to the daemon: %s" % "".join(out)
    _set_policy(name, 100)
    try:
        rest, _ = gdb.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        gdb.kill()
        rest, _ = gdb.communicate()
        raise AssertionError("the daemon never wrote %s: %s\n%s"
                             % (name, "".join(out) + rest, daemon.log_text()))
    out = "".join(out) + rest
    assert "Breakpoint 1, " in out, "not held at virDomainUpdateDeviceFlags: %s" % out
    return out


def test_changes_held_in_the_write_window(libvirtd, daemons, domains, image_dir):
    import libvirt
    if shutil.which("gdb") is None:
        pytest.fail("gdb is needed to hold the daemon's write (tools/install-deps.sh)")
    daemon = daemons.start()
    img = _image(image_dir, "vda.qcow2", 300 * GIB + 512)
    conn = libvirt.open(libvirtd.uri)
    virsh = "virsh -q -c '%s'" % libvirtd.uri
    try:
        # undefined in the window: the per-disk write fails on the missing domain instead
        # of defining it again, and the daemon drops the domain
        name = _one_disk(domains, image_dir, "undef-held", img)
        _wait_state(daemon, name, "unmanaged")
        uuid = conn.lookupByName(name).UUIDString()
        _hold_write(libvirtd, daemon, name, "%s undefine %s >/dev/null" % (virsh, name))
        qpe2e.wait_for(lambda: qpe2e.domain_path(daemon.conn, name) is None, APPLY_TIMEOUT,
                       0.05, "the object of undefined %s to go" % name)
        time.sleep(1.0)  # any late write would have re-created it by now
        qpe2e.wait_for(lambda: _manager(daemon.conn)["Busy"] == 0, APPLY_TIMEOUT, 0.05, "idle")
        with pytest.raises(libvirt.libvirtError):
            conn.lookupByUUIDString(uuid)

        # redefined with a user's edit in the window: the write replaces only the disk, so
        # the user's edit and the written values are both in the definition
        name = _one_disk(domains, image_dir, "edit-held", img)
        _wait_state(daemon, name, "unmanaged")
        assert "<description>" not in _persistent(name)
        # the user's edit starts from the definition as it is then (with the policy)
        edited_path = os.path.join(libvirtd.dirs["home"], name + "-edited.xml")
        _hold_write(libvirtd, daemon, name,
                    "%s dumpxml --inactive --security-info %s | sed 's|</name>|</name>"
                    "<description>edited in the window</description>|' > %s && %s define %s "
                    ">/dev/null" % (virsh, name, edited_path, virsh, edited_path))
        _wait_state(daemon, name, "applied", 100)
        after = _persistent(name)
        assert "<description>edited in the window</description>" in after, after
        assert _values(name) == qpe2e.normalized(
            {"vda": [(img, qpe2e.expected_max_size(img, 100))]}), after

        # the policy changed by a user's define in the window: the values written for 100 %
        # land on a definition that asks for 50 %, and the daemon writes again for 50 %
        name = _one_disk(domains, image_dir, "policy-held", img)
        _wait_state(daemon, name, "unmanaged")
        edited_path = os.path.join(libvirtd.dirs["home"], name + "-edited.xml")
        _hold_write(libvirtd, daemon, name,
                    "%s dumpxml --inactive --security-info %s | sed 's|percent=\"100\"|"
                    "percent=\"50\"|' > %s && grep -q 'percent=\"50\"' %s && %s define %s "
                    ">/dev/null" % (virsh, name, edited_path, edited_path, virsh, edited_path))
        _wait_state(daemon, name, "applied", 50)
        assert _values(name) == qpe2e.normalized(
            {"vda": [(img, qpe2e.expected_max_size(img, 50))]}), _persistent(name)
        assert daemon.proc.poll() is None, daemon.log_text()
    finally:
        conn.close()


# --- (e) the disk full when libvirt writes the definition -----------------------------

def test_disk_full_when_writing(libvirtd, daemons, domains, image_dir):
    if not libvirtd.mounted:
        pytest.skip("no tmpfs for libvirt's configuration directory: %s"
                    % libvirtd.mount_error)
    daemon = daemons.start()
    img = _image(image_dir, "vda.qcow2", 300 * GIB + 512)
    name = _one_disk(domains, image_dir, "full", img, 100)
    _wait_state(daemon, name, "applied", 100)
    path = qpe2e.domain_path(daemon.conn, name)
    good = _persistent(name)
    good_file = _config_file(libvirtd, name)

    filler = qpfaults.fill_filesystem(libvirtd.dirs["config"])
    try:
        st = os.statvfs(libvirtd.dirs["config"])
        assert st.f_bavail == 0, "the tmpfs is not full"
        # the image grew: the daemon has to write, and libvirt cannot save the file
        qpe2e.run(["qemu-img", "resize", "-q", img, "+1T"])
        err, msg = _remote_error(lambda: _apply(daemon.conn, path))
        assert err == ERR + "Libvirt", (err, msg)
        props = qpe2e.domain_props(daemon.conn, path)
        assert props["State"] == "error" and props["Error"], props
        # nothing lost: the file and libvirt's definition are the old ones
        assert _config_file(libvirtd, name) == good_file
        assert _persistent(name) == good
        # SetPolicy cannot save the policy either, and says so; the file stays the old
        # one. (libvirt's virDomainSetMetadata keeps its in-memory change when saving
        # fails, so `virsh dumpxml --inactive` shows the new policy until libvirtd restarts:
        # libvirt's behaviour, not the daemon's, hence not asserted here.)
        err, msg = _remote_error(lambda: qpe2e.dbus_call(
            daemon.conn, path, qpe2e.DOMAIN_IFACE, "SetPolicy", (50, {}), "(ua{sv})"))
        assert err == ERR + "Libvirt", (err, msg)
        assert _config_file(libvirtd, name) == good_file
    finally:
        os.unlink(filler)
    # space again: the next Apply writes the grown image's values for the policy libvirt
    # holds, into a file that is whole
    _apply(daemon.conn, path)
    text = _persistent(name)
    percent = int(qpe2e.metadata_element(text, qpe2e.QC_NS).get("percent"))
    assert percent in (100, 50)
    assert _values(name) == _want(img, percent)
    _wait_state(daemon, name, "applied", percent)
    assert (qpe2e.without_owned(text, drop_ns=(qpe2e.QC_NS,))
            == qpe2e.without_owned(good, drop_ns=(qpe2e.QC_NS,)))
    on_disk = _config_file(libvirtd, name).decode()
    assert (qpe2e.normalized(qpe2e.persistent_cache_values(on_disk)) == _want(img, percent))
