#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qcow2-policyd under load (issue 7): 100 concurrent D-Bus clients while 1,000 domains of a
real libvirtd are defined, changed and undefined in bursts, then a soak with RSS sampling.

The libvirtd is the fault suite's private one (tests/faults/qpfaults.py: the real libvirtd
and QEMU driver in session mode as uid nobody, all state under a temporary directory), so
the bursts touch nobody's qemu:///system. Needs root. The daemon runs on a private session
bus (tests/e2e/qpe2e.py helpers).

  clients    CLIENTS threads, each on its own bus connection, calling in a loop: Manager and
             Domain property GetAll, GetDomainByName, GetManagedObjects (1 call in 20: its
             reply holds every domain), Apply, AnalyzeImage, and SetPolicy on the client's
             own domain (so its final percent is known: the last one that succeeded).
  bursts     one thread: define BURST domains, change the policy of BURST, undefine BURST/2,
             repeated over the NDOMAINS names; the model of what each domain should hold
             follows every call that succeeded.
  checks     every call answered (replies and D-Bus errors counted by name; a timeout or a
             lost connection is "unanswered"), then, once the daemon is idle, the final state
             of every domain: libvirt's persistent max_size equals the spec's arithmetic for
             its percent, its object's State/Percent agree, undefined ones have no object.
  soak       clients and bursts at the same rate for --soak seconds, VmRSS sampled every
             RSS_INTERVAL_S; the least-squares slope of the second half is reported.

Figures are recorded, not asserted: bench-load.json and bench-load.md in --out-dir, and
with --docs FILE a "Load" section appended to it.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import traceback
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
sys.path.insert(0, os.path.join(SRC, "tests", "faults"))

import qpe2e  # noqa: E402
import qpfaults  # noqa: E402

from gi.repository import Gio, GLib  # noqa: E402

CLIENTS = 100
NDOMAINS = 1000
BURST = 200
# A call not answered within this is "unanswered": far above any latency seen, so only a
# lost or stuck call counts.
CALL_TIMEOUT_MS = 60000
RSS_INTERVAL_S = 5.0
# Idle wait after the load: 1,000 queued reconciles on a loaded 2-core machine.
SETTLE_TIMEOUT_S = 300
PERCENTS = (10, 25, 50, 75, 100)
ERR = "org.qcow2policyd.Policy1.Error."
IMAGES = [(300 * qpe2e.GIB + 512, None), (2 * qpe2e.TIB, 32768), (64 * qpe2e.GIB, None),
          (5 * qpe2e.TIB, 2 * 1024 * 1024), (40 * qpe2e.GIB + 512, 4096)]
NAME_PREFIX = "qp-load-"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def slope_per_hour(samples):
    """Least-squares slope (KiB per hour) of [(t_s, kib)]."""
    n = len(samples)
    if n < 2:
        return None
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    if var == 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in samples) / var * 3600


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.calls = {}      # method -> count
        self.answers = {}    # "ok" or error name -> count
        self.unanswered = []  # (method, message)
        self.latency = {}    # method -> [seconds]

    def record(self, method, outcome, seconds, message=None):
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            if outcome is None:
                self.unanswered.append((method, message))
            else:
                self.answers[outcome] = self.answers.get(outcome, 0) + 1
            self.latency.setdefault(method, []).append(seconds)


def percentile(values, p):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p))]


class Model:
    """What each domain should hold: name -> (uuid, image index, percent) while defined."""

    def __init__(self):
        self.lock = threading.Lock()
        self.defined = {}
        self.gone = set()


def domain_xml(name, img, percent):
    md = ('<qc:l2cache xmlns:qc="%s" percent="%d"/>' % (qpe2e.QC_NS, percent)
          if percent else "")
    text = qpe2e.domain_xml(name, [qpe2e.disk_xml("vda", img)], metadata=md)
    # one UUID per name: a redefinition of a name libvirt still holds must carry its UUID
    uid = uuidlib.uuid5(uuidlib.NAMESPACE_URL, "qp-load:" + name)
    return text.replace("</name>", "</name>\n  <uuid>%s</uuid>" % uid, 1)


def burst_loop(uri, images, model, stop, stats, burst_log, rng, errors):
    try:
        _burst_loop(uri, images, model, stop, stats, burst_log, rng)
    except Exception:
        errors.append(traceback.format_exc())
        stop.set()


def _burst_loop(uri, images, model, stop, stats, burst_log, rng):
    import libvirt
    conn = libvirt.open(uri)
    names = ["%sb%04d" % (NAME_PREFIX, i) for i in range(NDOMAINS)]
    cursor = 0
    try:
        while not stop.is_set():
            chunk = [names[(cursor + i) % NDOMAINS] for i in range(BURST)]
            cursor = (cursor + BURST) % NDOMAINS
            t0 = time.monotonic()
            for n in chunk:  # define (new or redefine with a new percent)
                if stop.is_set():
                    return
                idx = rng.randrange(len(images))
                pct = rng.choice(PERCENTS)
                dom = conn.defineXML(domain_xml(n, images[idx], pct))
                with model.lock:
                    model.defined[n] = (dom.UUIDString(), idx, pct)
                    model.gone.discard(n)
            t1 = time.monotonic()
            for n in chunk:  # change the policy of each
                if stop.is_set():
                    return
                pct = rng.choice(PERCENTS)
                conn.lookupByName(n).setMetadata(
                    libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<l2cache percent="%d"/>' % pct, "qc",
                    qpe2e.QC_NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                with model.lock:
                    uuid, idx, _ = model.defined[n]
                    model.defined[n] = (uuid, idx, pct)
            t2 = time.monotonic()
            for n in chunk[: BURST // 2]:  # undefine half of them
                if stop.is_set():
                    return
                conn.lookupByName(n).undefine()
                with model.lock:
                    del model.defined[n]
                    model.gone.add(n)
            t3 = time.monotonic()
            burst_log.append({"define-s": t1 - t0, "metadata-s": t2 - t1,
                              "undefine-s": t3 - t2, "n": BURST})
    finally:
        conn.close()


def client_loop(i, bus_address, images, own, own_percent, stop, stats, model, rng):
    conn = qpe2e.bus_connection(bus_address)

    def call(method, path, iface, name, args, sig):
        t0 = time.monotonic()
        try:
            params = GLib.Variant(sig, args) if sig else None
            conn.call_sync(qpe2e.BUS_NAME, path, iface, name, params, None,
                           Gio.DBusCallFlags.NONE, CALL_TIMEOUT_MS, None)
            stats.record(method, "ok", time.monotonic() - t0)
            return True
        except GLib.Error as e:
            remote = Gio.DBusError.get_remote_error(e)
            dt = time.monotonic() - t0
            if remote and remote != "org.freedesktop.DBus.Error.NoReply":
                stats.record(method, remote, dt)
            else:
                stats.record(method, None, dt, e.message)
            return False

    def some_domain_path():
        with model.lock:
            if not model.defined:
                return None
            uuid = rng.choice(list(model.defined.values()))[0]
        return qpe2e.ROOT_PATH + "/domain/" + uuid.replace("-", "_")

    props = "org.freedesktop.DBus.Properties"
    while not stop.is_set():
        r = rng.random()
        if r < 0.25:
            call("GetAll(Manager)", qpe2e.MANAGER_PATH, props, "GetAll",
                 (qpe2e.MANAGER_IFACE,), "(s)")
        elif r < 0.50:
            p = some_domain_path()
            if p:
                call("GetAll(Domain)", p, props, "GetAll", (qpe2e.DOMAIN_IFACE,), "(s)")
        elif r < 0.55:
            call("GetManagedObjects", qpe2e.ROOT_PATH, "org.freedesktop.DBus.ObjectManager",
                 "GetManagedObjects", None, None)
        elif r < 0.65:
            call("GetDomainByName", qpe2e.MANAGER_PATH, qpe2e.MANAGER_IFACE, "GetDomainByName",
                 (own[0], {}), "(sa{sv})")
        elif r < 0.80:
            p = some_domain_path()
            if p:
                call("Apply", p, qpe2e.DOMAIN_IFACE, "Apply", ({},), "(a{sv})")
        elif r < 0.90:
            call("AnalyzeImage", qpe2e.MANAGER_PATH, qpe2e.MANAGER_IFACE, "AnalyzeImage",
                 (rng.choice(images), {"percent": GLib.Variant("u", 50)}), "(sa{sv})")
        else:
            pct = rng.choice(PERCENTS)
            if call("SetPolicy", own[1], qpe2e.DOMAIN_IFACE, "SetPolicy", (pct, {}),
                    "(ua{sv})"):
                own_percent[i] = pct
        time.sleep(rng.uniform(0.0, 0.02))


def verify(bus_conn, images, model, client_domains, own_percent):
    """Final state of every domain: libvirt's persistent values and the daemon's objects."""
    import libvirt
    want_cache = {}

    def want(idx, pct):
        if (idx, pct) not in want_cache:
            want_cache[(idx, pct)] = qpe2e.expected_max_size(images[idx], pct)
        return want_cache[(idx, pct)]

    objects = qpe2e.managed_objects(bus_conn)
    by_name = {}
    for path, ifaces in objects.items():
        p = ifaces.get(qpe2e.DOMAIN_IFACE)
        if p is not None:
            by_name[p["Name"]] = p
    lv = libvirt.open(qpe2e.URI)
    wrong = []
    expected = dict((n, (idx, pct)) for n, (_, idx, pct) in model.defined.items())
    for i, (name, _path, idx) in enumerate(client_domains):
        expected[name] = (idx, own_percent[i])
    for name, (idx, pct) in expected.items():
        xml = lv.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        vals = qpe2e.normalized(qpe2e.persistent_cache_values(xml))
        if vals != {"vda": [(images[idx], want(idx, pct))]}:
            wrong.append((name, "libvirt", vals, want(idx, pct)))
        # the policy libvirt holds: another value is a client's edit lost to a daemon write
        # that raced it (libvirt has no compare-and-swap define)
        held = int(qpe2e.metadata_element(xml, qpe2e.QC_NS).get("percent"))
        if held != pct:
            wrong.append((name, "policy lost", held, pct))
        p = by_name.get(name)
        if p is None or p["State"] != "applied" or p["Percent"] != held:
            wrong.append((name, "object", p and (p["State"], p["Percent"], p["Error"]), held))
    stale = [n for n in model.gone if n in by_name and n not in expected]
    # an undefined domain libvirt holds again: re-created by a daemon write (the fault
    # suite's undefine race), else only the daemon's object outlived the domain
    recreated = []
    for n in stale:
        try:
            lv.lookupByName(n)
            recreated.append(n)
        except libvirt.libvirtError:
            pass
    lv.close()
    return {"domains-checked": len(expected), "wrong": wrong[:20], "wrong-count": len(wrong),
            "policy-lost-count": sum(1 for w in wrong if w[1] == "policy lost"),
            "stale-objects": stale[:20], "stale-count": len(stale),
            "recreated": recreated[:20], "recreated-count": len(recreated),
            "objects": len(by_name)}


class QuietDaemon:
    """qcow2-policyd on @bus at its default log level: qpe2e.Daemon runs it with --verbose
    and every debug domain, whose millions of lines under this load would be measured too."""

    def __init__(self, binary, bus, logdir):
        self.log = open(os.path.join(logdir, "qcow2-policyd.log"), "w")
        env = dict(os.environ, DBUS_SESSION_BUS_ADDRESS=bus.address)
        env.pop("G_MESSAGES_DEBUG", None)
        self.proc = subprocess.Popen([binary, "--session", "--connect", qpe2e.URI], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = qpe2e.bus_connection(bus.address)

        def owned():
            assert self.proc.poll() is None, "qcow2-policyd exited"
            r = self.conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                    "org.freedesktop.DBus", "NameHasOwner",
                                    GLib.Variant("(s)", (qpe2e.BUS_NAME,)), None, 0, 5000,
                                    None)
            return r.unpack()[0]
        qpe2e.wait_for(owned, qpe2e.DAEMON_START_TIMEOUT, 0.05, "qcow2-policyd's bus name")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self.log.close()


def run(args):
    lv = qpfaults.PrivateLibvirtd(config_tmpfs=False)
    bus = None
    daemon = None
    image_dir = None
    result = {"clients": CLIENTS, "domains": NDOMAINS, "burst": BURST,
              "soak-s": args.soak, "load-s": args.load}
    try:
        lv.start()
        qpe2e.URI = lv.uri
        image_dir = qpe2e.make_image_dir()
        images = []
        for k, (size, cs) in enumerate(IMAGES):
            images.append(os.path.realpath(qpe2e.qemu_img_create(
                os.path.join(image_dir, "img%d.qcow2" % k), size, cluster_size=cs)))
        # the clients' own domains (one each), defined with a policy before the daemon
        import libvirt
        conn = libvirt.open(lv.uri)
        t0 = time.monotonic()
        client_domains = []
        for i in range(CLIENTS):
            name = "%sc%03d" % (NAME_PREFIX, i)
            idx = i % len(images)
            dom = conn.defineXML(domain_xml(name, images[idx], 100))
            client_domains.append((name, qpe2e.ROOT_PATH + "/domain/"
                                   + dom.UUIDString().replace("-", "_"), idx))
        result["define-ms-each"] = (time.monotonic() - t0) / CLIENTS * 1000
        conn.close()

        bus = qpe2e.SessionBus()
        logdir = os.path.join(args.out_dir, "bench-load-daemon")
        os.makedirs(logdir, exist_ok=True)
        daemon = QuietDaemon(args.daemon, bus, logdir)
        pid = daemon.proc.pid
        qpe2e.wait_for(lambda: all(
            qpe2e.domain_path(daemon.conn, n) for n, _, _ in client_domains[:1]), 30)

        stats, model, stop = Stats(), Model(), threading.Event()
        own_percent = [100] * CLIENTS
        burst_log = []
        burst_errors = []
        rng = random.Random(7)
        threads = [threading.Thread(target=burst_loop, daemon=True,
                                    args=(lv.uri, images, model, stop, stats, burst_log,
                                          random.Random(1), burst_errors))]
        for i in range(CLIENTS):
            threads.append(threading.Thread(
                target=client_loop, daemon=True,
                args=(i, bus.address, images, client_domains[i], own_percent, stop, stats,
                      model, random.Random(rng.random()))))
        rss = []
        t_start = time.monotonic()
        for t in threads:
            t.start()
        total = args.load + args.soak
        while time.monotonic() - t_start < total and not stop.is_set():
            rss.append((time.monotonic() - t_start, rss_kib(pid)))
            if daemon.proc.poll() is not None:
                break
            time.sleep(RSS_INTERVAL_S)
        stop.set()
        for t in threads:
            t.join(CALL_TIMEOUT_MS / 1000 + 10)
        elapsed = time.monotonic() - t_start
        result["daemon-alive"] = daemon.proc.poll() is None

        # settle, then check every domain
        t_settle = time.monotonic()
        qpe2e.wait_for(lambda: qpe2e.dbus_call(
            daemon.conn, qpe2e.MANAGER_PATH, "org.freedesktop.DBus.Properties", "Get",
            (qpe2e.MANAGER_IFACE, "Busy"), "(ss)")[0] == 0, SETTLE_TIMEOUT_S, 0.2, "idle")
        result["settle-s"] = time.monotonic() - t_settle
        result["final"] = verify(daemon.conn, images, model, client_domains, own_percent)
        result["rss-after-settle-kib"] = rss_kib(pid)
        calls = sum(stats.calls.values())
        result["elapsed-s"] = elapsed
        result["calls"] = calls
        result["calls-per-s"] = calls / elapsed
        result["by-method"] = {
            m: {"calls": stats.calls[m],
                "p50-ms": percentile(stats.latency[m], 0.5) * 1000,
                "p99-ms": percentile(stats.latency[m], 0.99) * 1000,
                "max-ms": max(stats.latency[m]) * 1000}
            for m in sorted(stats.calls)}
        result["answers"] = stats.answers
        result["unanswered"] = len(stats.unanswered)
        result["unanswered-sample"] = stats.unanswered[:10]
        result["bursts"] = len(burst_log)
        result["burst-errors"] = burst_errors
        if burst_log:
            result["burst-define-ms-each"] = (sum(b["define-s"] for b in burst_log)
                                              / (BURST * len(burst_log)) * 1000)
            result["burst-undefine-ms-each"] = (sum(b["undefine-s"] for b in burst_log)
                                                / (BURST // 2 * len(burst_log)) * 1000)
        result["rss-samples-kib"] = rss
        vals = [v for _, v in rss if v]
        if vals:
            result["rss-first-kib"], result["rss-max-kib"] = vals[0], max(vals)
            result["rss-last-kib"] = vals[-1]
        half = [s for s in rss if s[0] >= args.load + args.soak / 2 and s[1]]
        result["rss-slope-kib-per-h-second-half"] = slope_per_hour(half)
        soak = [s for s in rss if s[0] >= args.load and s[1]]
        result["rss-slope-kib-per-h-soak"] = slope_per_hour(soak)
        with open(os.path.join(SRC, ".git", "HEAD")) as f:
            head = f.read().strip()
        result["git"] = subprocess.run(["git", "-C", SRC, "rev-parse", "--short", "HEAD"],
                                       capture_output=True, text=True).stdout.strip() or head
        result["loadavg-at-end"] = os.getloadavg()
    finally:
        if daemon is not None:
            daemon.stop()
        if bus is not None:
            bus.stop()
        lv.cleanup()
        if image_dir is not None:
            shutil.rmtree(image_dir, ignore_errors=True)
    return result


def markdown(r):
    mib = lambda k: "%.1f MiB" % (k / 1024) if k else "n/a"  # noqa: E731
    f = r["final"]
    lines = [
        "Run at %s (commit %s), load average %.1f at the end on 2 cores; private libvirtd "
        "(session mode, real QEMU driver)." % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                                r["git"], r["loadavg-at-end"][0]),
        "",
        "| figure | value |", "|---|---|",
        "| clients / domain names / burst | %d / %d / %d |" % (r["clients"], r["domains"],
                                                           r["burst"]),
        "| load + soak | %d s + %d s (%.0f s run) |" % (r["load-s"], r["soak-s"],
                                                       r["elapsed-s"]),
        "| bursts (define %d, re-policy %d, undefine %d each) | %d |" % (
            r["burst"], r["burst"], r["burst"] // 2, r["bursts"]),
        "| libvirt define / undefine under load | %.1f / %.1f ms each |" % (
            r.get("burst-define-ms-each", 0), r.get("burst-undefine-ms-each", 0)),
        "| D-Bus calls | %d (%.0f/s) |" % (r["calls"], r["calls-per-s"]),
        "| unanswered (timeout %d s, lost) | %d |" % (CALL_TIMEOUT_MS // 1000, r["unanswered"]),
        "| answers | %s |" % ", ".join("%s %d" % (k.replace(ERR, ""), v)
                                        for k, v in sorted(r["answers"].items())),
        "| daemon alive at the end | %s |" % r["daemon-alive"],
        "| burst driver errors (libvirt calls) | %d |" % len(r["burst-errors"]),
        "| idle after the load | %.1f s |" % r["settle-s"],
        "| final state: domains checked / wrong / objects of undefined domains (of them "
        "re-created in libvirt) | %d / %d / %d (%d) |" % (
            f["domains-checked"], f["wrong-count"], f["stale-count"], f["recreated-count"]),
        "| of the wrong: a policy edit lost to a racing daemon write | %s |"
        % f.get("policy-lost-count", "n/a"),
        "| VmRSS first / max / last sample / after settling | %s / %s / %s / %s |" % (
            mib(r.get("rss-first-kib")), mib(r.get("rss-max-kib")), mib(r.get("rss-last-kib")),
            mib(r.get("rss-after-settle-kib"))),
        "| VmRSS slope over the soak / its second half | %s / %s per hour |" % tuple(
            "%+.1f MiB" % (s / 1024) if s is not None else "n/a"
            for s in (r["rss-slope-kib-per-h-soak"], r["rss-slope-kib-per-h-second-half"])),
        "",
        "| method | calls | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
    ]
    for m, v in r["by-method"].items():
        lines.append("| %s | %d | %.1f | %.1f | %.1f |" % (m, v["calls"], v["p50-ms"],
                                                          v["p99-ms"], v["max-ms"]))
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--load", type=int, default=120, help="seconds of load before the soak")
    ap.add_argument("--soak", type=int, default=600, help="seconds of soak (issue 7: 600)")
    ap.add_argument("--docs", help="append a Load section to this Markdown file")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench-load needs root (a private libvirtd as uid nobody)", file=sys.stderr)
        return 2
    r = run(args)
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "bench-load.json"), "w") as f:
        json.dump(r, f, indent=1, default=str)
    md = markdown(r)
    with open(os.path.join(args.out_dir, "bench-load.md"), "w") as f:
        f.write(md)
    print(md)
    if args.docs:
        with open(args.docs, "a") as f:
            f.write("\n## Load (issue 7, bench/load/bench-load.py)\n\n" + md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
