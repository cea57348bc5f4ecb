#!/usr/bin/python3
"""Scale benchmark (not a test; results are recorded, not asserted): N annotated domains
with 2 qcow2 disks each in libvirt's test driver. Prints the time from the daemon's start
until every domain is reconciled, the writes made, and the daemon's resident memory.

  QP_BUILD_DIR=BUILD /usr/bin/python3 tests/daemon/bench_scale.py [--via-libvirtd] [N]

--via-libvirtd connects to test+unix:///NODE: the same test driver, but inside a running
libvirtd (as root: `virtlogd -d; libvirtd -d`), so that the domains' definitions live in
libvirtd's memory and not in the daemon's, as they do with qemu:///system.
"""
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qpdaemon as qd  # noqa: E402


def rss_kib(pid, field="VmRSS"):
    """@field of /proc/PID/status in KiB: VmRSS, RssAnon (heap, stacks) or RssFile (mapped
    libraries and files)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def cpu_seconds(pid):
    """(user, system) CPU seconds of @pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tck, int(fields[12]) / tck


def main():
    args = sys.argv[1:]
    via_libvirtd = "--via-libvirtd" in args
    args = [a for a in args if a != "--via-libvirtd"]
    n = int(args[0]) if args else 1000
    tmp = tempfile.mkdtemp(prefix="qp-bench-")
    try:
        proto = os.path.join(tmp, "proto.qcow2")
        qd.qemu_img("create", "-f", "qcow2", proto, "1T")
        with open(proto, "rb") as f:
            data = f.read()
        node = os.path.join(tmp, "node.xml")
        with open(node, "w") as out:
            out.write("<node>\n")
            for i in range(n):
                disks = []
                for dev in ("vda", "vdb"):
                    p = os.path.join(tmp, f"d{i}-{dev}.qcow2")
                    with open(p, "wb") as f:
                        f.write(data)
                    disks.append((dev, p, "qcow2"))
                out.write(qd.domain_xml(f"dom{i:05d}", "7e570000-0000-4000-8000-%012d" % i, disks,
                                        policy='percent="100"'))
            out.write("</node>\n")
        # the images just written (about 200 KiB each) would otherwise be written back to
        # disk while the daemon runs
        os.sync()
        bus = qd.Bus(tmp)
        start = time.monotonic()
        daemon = qd.Daemon(bus, node, uri=("test+unix://" + node) if via_libvirtd else None)
        try:
            m = daemon.wait_settled(n, timeout=600)
            elapsed = time.monotonic() - start
            cpu = cpu_seconds(daemon.proc.pid)
            # the daemon trims its heap once a burst is over (QP_DAEMON_TRIM_DELAY_MS)
            time.sleep(0.5)
            rss = {f: rss_kib(daemon.proc.pid, f) / 1024 for f in ("VmRSS", "RssAnon", "RssFile")}
            objs = daemon.objects()
            states = {}
            for ifaces in objs.values():
                props = ifaces.get(qd.DOMAIN_IFACE)
                if props:
                    states[props["State"]] = states.get(props["State"], 0) + 1
            print(f"domains: {n}, disks: {2 * n}, libvirt: "
                  f"{'test driver in libvirtd (test+unix://)' if via_libvirtd else 'test driver in the daemon (test://)'}")
            print(f"start to all reconciled: {elapsed:.3f} s (includes process start, libvirt "
                  f"test-driver load and bus name)")
            print(f"states: {states}")
            print(f"writes: {m['WriteCount']}, reconciles: {m['ReconcileCount']}")
            print(f"daemon CPU time until all reconciled: {cpu[0] + cpu[1]:.2f} s (user {cpu[0]:.2f} s, "
                  f"system {cpu[1]:.2f} s); the bus daemon's: {sum(cpu_seconds(bus.pid)):.2f} s")
            print(f"resident memory: {rss['VmRSS']:.1f} MiB (anonymous {rss['RssAnon']:.1f} MiB, "
                  f"file-backed {rss['RssFile']:.1f} MiB)")
            print(f"load average during the run: {os.getloadavg()[0]:.2f}")
        finally:
            daemon.stop()
            bus.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
