"""The D-Bus API of qcow2-policyd against libvirt's test driver on a private session bus."""
import os
import threading
import time

import pytest
from gi.repository import Gio, GLib

import qpdaemon as qd
from qpdaemon import DOMAIN_IFACE, MANAGER_IFACE, MANAGER_PATH

UUIDS = {
    "stopped": "0b0c0d0e-0000-4000-8000-000000000001",
    "running": "0b0c0d0e-0000-4000-8000-000000000002",
    "plain": "0b0c0d0e-0000-4000-8000-000000000003",
    "badpolicy": "0b0c0d0e-0000-4000-8000-000000000004",
    "missing": "0b0c0d0e-0000-4000-8000-000000000005",
    "chained": "0b0c0d0e-0000-4000-8000-000000000006",
    "capped": "0b0c0d0e-0000-4000-8000-000000000007",
}
FOREIGN = '<app:tag xmlns:app="http://example.org/app/1">keep me</app:tag>'


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("daemon"))
    img = {}
    img["big"] = os.path.join(tmp, "big.qcow2")  # 1 TiB: QEMU's default covers 1/4
    qd.qemu_img("create", "-f", "qcow2", img["big"], "1T")
    img["extl2"] = os.path.join(tmp, "extl2.qcow2")
    qd.qemu_img("create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=128k", img["extl2"], "600G")
    img["small"] = os.path.join(tmp, "small.qcow2")
    qd.qemu_img("create", "-f", "qcow2", img["small"], "20G")
    img["raw"] = os.path.join(tmp, "disk.raw")
    qd.qemu_img("create", "-f", "raw", img["raw"], "1M")
    img["base"] = os.path.join(tmp, "base.qcow2")
    qd.qemu_img("create", "-f", "qcow2", "-o", "cluster_size=2M", img["base"], "2T")
    img["top"] = os.path.join(tmp, "top.qcow2")
    qd.qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", img["top"], "2T")
    img["plain"] = os.path.join(tmp, "plain.qcow2")
    qd.qemu_img("create", "-f", "qcow2", img["plain"], "512G")
    node = os.path.join(tmp, "node.xml")
    with open(node, "w") as f:
        f.write("<node>\n")
        f.write(qd.domain_xml("stopped", UUIDS["stopped"],
                              [("vda", img["big"], "qcow2"), ("vdb", img["extl2"], "qcow2"),
                               ("vdc", img["raw"], "raw")],
                              policy='percent="100"', extra_metadata=FOREIGN))
        f.write(qd.domain_xml("running", UUIDS["running"], [("vda", img["small"], "qcow2")],
                              policy='percent="50"', running=True))
        f.write(qd.domain_xml("plain", UUIDS["plain"], [("vda", img["plain"], "qcow2")]))
        f.write(qd.domain_xml("badpolicy", UUIDS["badpolicy"], [("vda", img["small"], "qcow2")],
                              policy='percent="101"'))
        f.write(qd.domain_xml("missing", UUIDS["missing"],
                              [("vda", os.path.join(tmp, "nonexistent.qcow2"), "qcow2")],
                              policy='percent="100"'))
        f.write(qd.domain_xml("chained", UUIDS["chained"], [("vda", img["top"], "qcow2")],
                              policy='percent="100" chain="all"'))
        f.write(qd.domain_xml("capped", UUIDS["capped"], [("vda", img["big"], "qcow2")],
                              policy='percent="100" max="64MiB"'))
        f.write("</node>\n")
    bus = qd.Bus(tmp)
    daemon = qd.Daemon(bus, node)
    try:
        daemon.wait_settled(len(UUIDS))
        yield {"tmp": tmp, "img": img, "bus": bus, "daemon": daemon}
    finally:
        rc = daemon.stop()
        bus.stop()
    assert rc == 0, "qcow2-policyd did not exit cleanly on SIGTERM: %s" % rc


def dpath(name):
    return qd.domain_path(UUIDS[name])


def disks_by_dev(props):
    return {(d["dev"], d["depth"]): d for d in props["Disks"]}


def call_error(daemon, path, iface, method, args, reply="()"):
    with pytest.raises(GLib.Error) as exc:
        daemon.call(path, iface, method, args, reply)
    return qd.dbus_error_name(exc.value), exc.value.message


def test_object_manager_lists_every_domain(env):
    objs = env["daemon"].objects()
    assert MANAGER_PATH in objs and MANAGER_IFACE in objs[MANAGER_PATH]
    for name, uuid in UUIDS.items():
        path = qd.domain_path(uuid)
        assert path in objs, f"{name} not exported"
        props = objs[path][DOMAIN_IFACE]
        assert props["Name"] == name
        assert props["UUID"] == uuid
        assert props["Persistent"] is True


def test_domain_interface_matches_its_description(env):
    """Every property of the introspection data, with its type, in GetAll, Get and
    GetManagedObjects alike; Set of a read-only property, a method with the wrong argument
    types, an unknown method and an unknown property are refused with D-Bus's errors."""
    d = env["daemon"]
    path = dpath("stopped")
    (xml,) = d.call(path, "org.freedesktop.DBus.Introspectable", "Introspect", None, "(s)")
    info = Gio.DBusNodeInfo.new_for_xml(xml).lookup_interface(DOMAIN_IFACE)
    assert info is not None
    assert sorted(m.name for m in info.methods) == ["Apply", "ClearPolicy", "SetPolicy"]
    described = {p.name: p.signature for p in info.properties}
    assert len(described) == 12
    conn = env["bus"].conn
    all_props = conn.call_sync(qd.BUS_NAME, path, "org.freedesktop.DBus.Properties", "GetAll",
                               GLib.Variant("(s)", (DOMAIN_IFACE,)), GLib.VariantType("(a{sv})"),
                               Gio.DBusCallFlags.NONE, 5000, None).get_child_value(0)
    managed = d.objects()[path][DOMAIN_IFACE]
    seen = {}
    for i in range(all_props.n_children()):
        entry = all_props.get_child_value(i)
        name = entry.get_child_value(0).get_string()
        value = entry.get_child_value(1).get_variant()
        seen[name] = value.get_type_string()
        (single,) = d.call(path, "org.freedesktop.DBus.Properties", "Get",
                           GLib.Variant("(ss)", (DOMAIN_IFACE, name)), "(v)")
        assert single == value.unpack() == managed[name], name
    assert seen == described
    assert managed["State"] == "applied" and managed["Error"] == ""

    name, msg = call_error(d, path, "org.freedesktop.DBus.Properties", "Set",
                           GLib.Variant("(ssv)", (DOMAIN_IFACE, "Percent", GLib.Variant("u", 5))))
    assert name == "org.freedesktop.DBus.Error.InvalidArgs" and "not writable" in msg, msg
    name, _ = call_error(d, path, DOMAIN_IFACE, "SetPolicy", GLib.Variant("(sa{sv})", ("50", {})))
    assert name == "org.freedesktop.DBus.Error.InvalidArgs"
    name, _ = call_error(d, path, DOMAIN_IFACE, "Reboot", GLib.Variant("(a{sv})", ({},)))
    assert name == "org.freedesktop.DBus.Error.UnknownMethod"
    name, _ = call_error(d, path, "org.freedesktop.DBus.Properties", "Get",
                         GLib.Variant("(ss)", (DOMAIN_IFACE, "Colour")), "(v)")
    assert name == "org.freedesktop.DBus.Error.InvalidArgs"
    assert d.props(path)["Percent"] == 100


def test_manager_properties(env):
    m = env["daemon"].manager()
    assert m["Connected"] is True
    assert m["Uri"].startswith("test:///")
    assert m["DomainCount"] == len(UUIDS)
    assert m["Version"]
    assert m["ReconcileInterval"] == 0
    assert m["DefaultPercent"] == 0
    assert m["Busy"] == 0


def test_states(env):
    d = env["daemon"]
    expected = {"stopped": "applied", "running": "pending-restart", "plain": "unmanaged",
                "badpolicy": "error", "missing": "error", "chained": "applied",
                "capped": "applied"}
    got = {name: d.props(dpath(name))["State"] for name in UUIDS}
    assert got == expected
    assert d.props(dpath("stopped"))["Error"] == ""


def test_invalid_policy_reported_with_value(env):
    props = env["daemon"].props(dpath("badpolicy"))
    assert props["State"] == "error"
    assert "101" in props["Error"] and "percent" in props["Error"]
    assert props["Disks"] == []
    assert props["WriteCount"] == 0


def test_missing_image_is_error_with_reason(env):
    props = env["daemon"].props(dpath("missing"))
    assert props["State"] == "error"
    assert "vda" in props["Error"]
    (item,) = props["Disks"]
    assert item["action"] == "skip" and item["reason"]


def test_disk_figures_equal_cli_analyze(env):
    props = env["daemon"].props(dpath("stopped"))
    assert props["Percent"] == 100 and props["Chain"] == "top" and props["PolicySource"] == "domain"
    disks = disks_by_dev(props)
    for dev, key in (("vda", "big"), ("vdb", "extl2")):
        (ref,) = qd.analyze_json(env["img"][key], percent=100)
        item = disks[(dev, 0)]
        assert item["path"] == env["img"][key]
        assert item["format"] == "qcow2"
        assert item["virtual-size"] == ref["virtual-size"]
        assert item["cluster-size"] == ref["cluster-size"]
        assert item["extended-l2"] == ref["extended-l2"]
        assert item["l2-full-size"] == ref["l2-full-size"]
        assert item["qemu-default-l2-cache-size"] == ref["qemu-default"]["l2-cache-size"]
        assert item["qemu-default-l2-coverage"] == pytest.approx(ref["qemu-default"]["l2-coverage"])
        assert item["max-size"] == ref["policy"]["cache-size"]
        assert item["l2-cache-size"] == ref["policy"]["l2-cache-size"]
        assert item["refcount-cache-size"] == ref["policy"]["refcount-cache-size"]
        assert item["l2-coverage"] == pytest.approx(ref["policy"]["l2-coverage"])
        # the definition holds it now: written once at start, then unchanged
        assert item["current-max-size"] == item["max-size"]
        assert item["action"] == "unchanged"
    # 1 TiB, 64 KiB clusters: L2FULL 128 MiB, written 128 MiB + 4 clusters
    assert disks[("vda", 0)]["max-size"] == 128 * 2**20 + 4 * 65536
    raw = disks[("vdc", 0)]
    assert raw["action"] == "skip" and "raw" in raw["reason"]
    assert "max-size" not in raw


def test_chain_all_covers_backing_layers(env):
    props = env["daemon"].props(dpath("chained"))
    disks = disks_by_dev(props)
    assert set(disks) == {("vda", 0), ("vda", 1)}
    base = disks[("vda", 1)]
    assert base["path"] == env["img"]["base"]
    (ref,) = qd.analyze_json(env["img"]["base"], percent=100)
    assert base["max-size"] == ref["policy"]["cache-size"]
    assert base["current-max-size"] == base["max-size"]


def test_cap_is_applied(env):
    item = disks_by_dev(env["daemon"].props(dpath("capped")))[("vda", 0)]
    assert item["max-size"] == 64 * 2**20
    assert item["l2-coverage"] < 1.0


def test_own_define_events_need_no_reconcile(tmp_path):
    """Each write of the test driver's path is a define that raises one DEFINED event; the
    run that wrote already read the result back, so the start costs one reconcile per
    domain, not two, and nothing is written again."""
    tmp = str(tmp_path)
    node = os.path.join(tmp, "node.xml")
    n = 4
    with open(node, "w") as f:
        f.write("<node>\n")
        for i in range(n):
            image = os.path.join(tmp, f"d{i}.qcow2")
            qd.qemu_img("create", "-f", "qcow2", image, "1T")
            f.write(qd.domain_xml(f"own{i}", "0b0c0d0e-0000-4000-8000-0000000001%02d" % i,
                                  [("vda", image, "qcow2")], policy='percent="100"'))
        f.write("</node>\n")
    bus = qd.Bus(tmp)
    daemon = qd.Daemon(bus, node)
    try:
        daemon.wait_settled(n)
        time.sleep(1.0)  # the DEFINED events of the writes have been dispatched by now
        m = daemon.manager()
        assert m["WriteCount"] == n
        assert m["ReconcileCount"] == n
        assert m["Busy"] == 0
    finally:
        rc = daemon.stop()
        bus.stop()
    assert rc == 0


def test_many_results_while_the_main_loop_is_kept_busy(tmp_path):
    """300 domains: the workers hand over results faster than the main loop takes them, so
    they wait for it (at most two results are queued). Every domain still ends applied and
    written once, reads are answered meanwhile, and the daemon stops cleanly."""
    tmp = str(tmp_path)
    node = os.path.join(tmp, "node.xml")
    image = os.path.join(tmp, "shared.qcow2")
    qd.qemu_img("create", "-f", "qcow2", image, "1T")
    n = 300
    with open(node, "w") as f:
        f.write("<node>\n")
        for i in range(n):
            f.write(qd.domain_xml(f"many{i}", "0b0c0d0e-0000-4000-8000-%012d" % (1000 + i),
                                  [("vda", image, "qcow2"), ("vdb", image, "qcow2")],
                                  policy='percent="100"'))
        f.write("</node>\n")
    bus = qd.Bus(tmp)
    daemon = qd.Daemon(bus, node)
    try:
        calls = 0
        end = time.monotonic() + qd.SETTLE_TIMEOUT
        while time.monotonic() < end:
            try:
                m = daemon.manager()  # keeps the main loop answering while results arrive
            except GLib.Error:  # the bus name is not owned yet
                time.sleep(0.01)
                continue
            calls += 1
            if m["Connected"] and m["DomainCount"] == n and m["Busy"] == 0 and m["ReconcileCount"] >= n:
                break
        m = daemon.wait_settled(n)
        assert m["WriteCount"] == n
        states = [ifaces[DOMAIN_IFACE]["State"] for path, ifaces in daemon.objects().items()
                  if DOMAIN_IFACE in ifaces]
        assert states == ["applied"] * n
        assert calls > 1
    finally:
        rc = daemon.stop()
        bus.stop()
    assert rc == 0


def test_no_write_loop(env):
    d = env["daemon"]
    before = d.manager()
    # stopped, running, chained, capped: one write each at start; none since
    per = {name: d.props(dpath(name))["WriteCount"] for name in UUIDS}
    assert per == {"stopped": 1, "running": 1, "plain": 0, "badpolicy": 0, "missing": 0,
                   "chained": 1, "capped": 1}
    d.call(MANAGER_PATH, MANAGER_IFACE, "Reconcile", GLib.Variant("(a{sv})", ({},)))
    time.sleep(0.5)  # any DEFINED event our own writes raised has been handled by now
    d.wait_settled(len(UUIDS))
    after = d.manager()
    assert after["ReconcileCount"] >= before["ReconcileCount"] + len(UUIDS)
    assert after["WriteCount"] == before["WriteCount"]


def test_get_domain_by_name(env):
    d = env["daemon"]
    (path,) = d.call(MANAGER_PATH, MANAGER_IFACE, "GetDomainByName",
                     GLib.Variant("(sa{sv})", ("plain", {})), "(o)")
    assert path == dpath("plain")
    name, msg = call_error(d, MANAGER_PATH, MANAGER_IFACE, "GetDomainByName",
                           GLib.Variant("(sa{sv})", ("no-such-domain", {})), "(o)")
    assert name == qd.ERROR_PREFIX + "NotFound" and "no-such-domain" in msg


@pytest.mark.parametrize("percent", [0, 101, 1000])
def test_set_policy_invalid_percent(env, percent):
    name, msg = call_error(env["daemon"], dpath("plain"), DOMAIN_IFACE, "SetPolicy",
                           GLib.Variant("(ua{sv})", (percent, {})))
    assert name == qd.ERROR_PREFIX + "InvalidPolicy"
    assert str(percent) in msg


def test_set_policy_invalid_chain(env):
    name, msg = call_error(env["daemon"], dpath("plain"), DOMAIN_IFACE, "SetPolicy",
                           GLib.Variant("(ua{sv})", (50, {"chain": GLib.Variant("s", "some")})))
    assert name == qd.ERROR_PREFIX + "InvalidPolicy" and "some" in msg


@pytest.mark.parametrize("method,args", [
    ("SetPolicy", ("(ua{sv})", (50, {"bogus-key": GLib.Variant("b", True)}))),
    ("ClearPolicy", ("(a{sv})", ({"bogus-key": GLib.Variant("b", True)},))),
    ("Apply", ("(a{sv})", ({"bogus-key": GLib.Variant("b", True)},))),
])
def test_unknown_option_rejected(env, method, args):
    name, msg = call_error(env["daemon"], dpath("plain"), DOMAIN_IFACE, method, GLib.Variant(*args))
    assert name == qd.ERROR_PREFIX + "InvalidArgs"
    assert "bogus-key" in msg


def test_manager_unknown_option_rejected(env):
    d = env["daemon"]
    name, msg = call_error(d, MANAGER_PATH, MANAGER_IFACE, "Reconcile",
                           GLib.Variant("(a{sv})", ({"force": GLib.Variant("b", True)},)))
    assert name == qd.ERROR_PREFIX + "InvalidArgs" and "force" in msg
    name, msg = call_error(d, MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                           GLib.Variant("(sa{sv})", (env["img"]["big"], {"depth": GLib.Variant("u", 1)})),
                           "(aa{sv})")
    assert name == qd.ERROR_PREFIX + "InvalidArgs" and "depth" in msg


def test_option_of_wrong_type_rejected(env):
    name, msg = call_error(env["daemon"], dpath("plain"), DOMAIN_IFACE, "SetPolicy",
                           GLib.Variant("(ua{sv})", (50, {"max": GLib.Variant("s", "1G")})))
    assert name == qd.ERROR_PREFIX + "InvalidArgs" and "max" in msg


def test_apply_fails_with_domain_error(env):
    name, msg = call_error(env["daemon"], dpath("badpolicy"), DOMAIN_IFACE, "Apply",
                           GLib.Variant("(a{sv})", ({},)))
    assert name == qd.ERROR_PREFIX + "InvalidPolicy" and "101" in msg


def test_apply_ok(env):
    d = env["daemon"]
    before = d.props(dpath("stopped"))["WriteCount"]
    d.call(dpath("stopped"), DOMAIN_IFACE, "Apply", GLib.Variant("(a{sv})", ({},)))
    assert d.props(dpath("stopped"))["WriteCount"] == before


class Signals:
    """Collects PropertiesChanged of one object on the test's own connection."""

    def __init__(self, bus, path):
        self.seen = []
        self.ctx = GLib.MainContext.new()
        self.ctx.push_thread_default()
        self.conn = Gio.DBusConnection.new_for_address_sync(
            bus.address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
            None, None)
        self.sub = self.conn.signal_subscribe(qd.BUS_NAME, "org.freedesktop.DBus.Properties",
                                              "PropertiesChanged", path, None,
                                              Gio.DBusSignalFlags.NONE, self._cb)
        self.ctx.pop_thread_default()
        # make sure the match rule is in place before the test acts
        self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                            "GetId", None, None, Gio.DBusCallFlags.NONE, 5000, None)

    def _cb(self, conn, sender, path, iface, signal, params):
        self.seen.append(params.unpack())

    def wait_for(self, pred, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            while self.ctx.iteration(False):
                pass
            for iface, changed, _ in self.seen:
                if iface == DOMAIN_IFACE and pred(changed):
                    return changed
            time.sleep(0.02)
        raise AssertionError("no matching PropertiesChanged; seen %r" % self.seen)

    def close(self):
        self.conn.signal_unsubscribe(self.sub)
        self.conn.close_sync(None)


def test_set_policy_then_clear(env):
    d = env["daemon"]
    sig = Signals(env["bus"], dpath("plain"))
    try:
        d.call(dpath("plain"), DOMAIN_IFACE, "SetPolicy",
               GLib.Variant("(ua{sv})", (25, {"chain": GLib.Variant("s", "top")})))
        # SetPolicy returns after the reconcile: the properties hold the result already
        props = d.props(dpath("plain"))
        assert props["State"] == "applied"
        assert props["Percent"] == 25 and props["PolicySource"] == "domain"
        (ref,) = qd.analyze_json(env["img"]["plain"], percent=25)
        item = disks_by_dev(props)[("vda", 0)]
        assert item["max-size"] == ref["policy"]["cache-size"]
        assert item["current-max-size"] == item["max-size"]
        changed = sig.wait_for(lambda c: c.get("Percent") == 25)
        # one PropertiesChanged carries everything the reconcile changed, Disks included
        assert changed["State"] == "applied" and changed["PolicySource"] == "domain"
        assert changed["WriteCount"] >= 1
        assert disks_by_dev(changed)[("vda", 0)]["max-size"] == item["max-size"]
        assert "Name" not in changed and "UUID" not in changed

        d.call(dpath("plain"), DOMAIN_IFACE, "ClearPolicy", GLib.Variant("(a{sv})", ({},)))
        props = d.props(dpath("plain"))
        assert props["State"] == "unmanaged" and props["Percent"] == 0 and props["Disks"] == []
        sig.wait_for(lambda c: c.get("State") == "unmanaged")
    finally:
        sig.close()
    d.wait_settled(len(UUIDS))
    # the metadata-change and DEFINED events of those calls caused no further write
    w = d.manager()["WriteCount"]
    time.sleep(0.5)
    d.wait_settled(len(UUIDS))
    assert d.manager()["WriteCount"] == w


def test_set_policy_keeps_disk_overrides_and_max(env):
    d = env["daemon"]
    d.call(dpath("stopped"), DOMAIN_IFACE, "SetPolicy",
           GLib.Variant("(ua{sv})", (50, {"max": GLib.Variant("t", 1 << 30)})))
    props = d.props(dpath("stopped"))
    assert props["Percent"] == 50 and props["Max"] == 1 << 30
    (ref,) = qd.analyze_json(env["img"]["big"], percent=50)
    assert disks_by_dev(props)[("vda", 0)]["max-size"] == ref["policy"]["cache-size"]
    d.call(dpath("stopped"), DOMAIN_IFACE, "SetPolicy", GLib.Variant("(ua{sv})", (100, {})))
    assert d.props(dpath("stopped"))["Percent"] == 100


def test_error_domain_recovers_after_set_policy(env):
    d = env["daemon"]
    d.call(dpath("badpolicy"), DOMAIN_IFACE, "SetPolicy", GLib.Variant("(ua{sv})", (100, {})))
    props = d.props(dpath("badpolicy"))
    assert props["State"] == "applied" and props["Error"] == ""
    assert props["WriteCount"] == 1


def test_analyze_image(env):
    d = env["daemon"]
    (layers,) = d.call(MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                       GLib.Variant("(sa{sv})", (env["img"]["top"], {"chain": GLib.Variant("b", True),
                                                                     "percent": GLib.Variant("u", 100)})),
                       "(aa{sv})")
    assert [l["path"] for l in layers] == [env["img"]["top"], env["img"]["base"]]
    (ref,) = qd.analyze_json(env["img"]["base"], percent=100)
    assert layers[1]["l2-full-size"] == ref["l2-full-size"]
    assert layers[1]["max-size"] == ref["policy"]["cache-size"]


def test_analyze_relative_path_refused(env):
    name, _ = call_error(env["daemon"], MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                         GLib.Variant("(sa{sv})", ("big.qcow2", {})), "(aa{sv})")
    assert name == qd.ERROR_PREFIX + "InvalidArgs"


def test_analyze_fifo_fails_fast(env):
    fifo = os.path.join(env["tmp"], "a.fifo")
    os.mkfifo(fifo)
    start = time.monotonic()
    name, msg = call_error(env["daemon"], MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                           GLib.Variant("(sa{sv})", (fifo, {})), "(aa{sv})")
    assert time.monotonic() - start < 5.0  # a hang would last the 30 s call timeout
    assert name == qd.ERROR_PREFIX + "Image"
    # the daemon still answers
    assert env["daemon"].manager()["Connected"] is True


def test_analyze_missing_and_invalid(env):
    d = env["daemon"]
    name, _ = call_error(d, MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                         GLib.Variant("(sa{sv})", (os.path.join(env["tmp"], "nope.qcow2"), {})), "(aa{sv})")
    assert name == qd.ERROR_PREFIX + "Image"
    name, _ = call_error(d, MANAGER_PATH, MANAGER_IFACE, "AnalyzeImage",
                         GLib.Variant("(sa{sv})", (env["img"]["raw"], {})), "(aa{sv})")
    assert name == qd.ERROR_PREFIX + "Image"


def test_replies_while_reconciling(env):
    """Reads are answered while reconciles run (they never wait on the workers)."""
    d = env["daemon"]
    done = []
    t = threading.Thread(target=lambda: done.append(
        d.call(MANAGER_PATH, MANAGER_IFACE, "Reconcile", GLib.Variant("(a{sv})", ({},)),
               conn=Gio.DBusConnection.new_for_address_sync(
                   env["bus"].address,
                   Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
                   None, None))))
    t.start()
    for _ in range(20):
        start = time.monotonic()
        assert d.manager()["Connected"] is True
        assert time.monotonic() - start < 3.0  # a loaded CI machine; blocking would be 30 s
    t.join(30)
    assert done == [()]
