#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""qcow2-policyd with a real libvirtd: event-to-applied latency.

Starts qcow2-policyd on a private session bus against qemu:///system, then --runs times:
defines a new domain (TCG, two qcow2 disks, <qc:l2cache percent="100"/>) through
libvirt's API from this process and measures the time from virDomainDefineXML's return
until the daemon's object for it says State `applied` with a write made; then changes
the policy with virDomainSetMetadata (percent 50) and measures until the object shows
Percent 50, `applied` and a second write; then undefines it. The daemon's D-Bus
properties are polled every POLL_S.

Needs root and libvirtd with the QEMU driver (started here when it does not answer, and
then stopped again; /dev/kvm given to group kvm as udev would, see docs/testing.md).
Refuses to run while another qcow2-policyd watches qemu:///system (both would write the
same domains and the figures would be the other daemon's). Only domains named
qpbench-lat-PID-N are touched, and all are undefined at the end, also on failure.
Writes bench-latency.md and bench-latency.json into --out-dir.
"""

import argparse
import grp
import json
import os
import shutil
import signal
import statistics
import stat
import subprocess
import sys
import tempfile
import time

import libvirt
from gi.repository import Gio, GLib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import qpbench  # noqa: E402
from qpbench import BUS_NAME, ROOT_PATH, MANAGER_PATH, MANAGER_IFACE, DOMAIN_IFACE, NS_URI  # noqa: E402

URI = 'qemu:///system'
POLL_S = 0.002
WAIT_S = 30  # one define on a loaded machine; libvirtd answers in well under a second
LIBVIRTD_START_S = 60  # the first start probes QEMU's capabilities


def answers():
    try:
        p = subprocess.run(['virsh', '-c', URI, 'version'], capture_output=True, text=True,
                           timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return p.returncode == 0 and 'QEMU' in p.stdout


def pid_alive(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def ensure_libvirtd():
    """Returns the pids this started."""
    if os.path.exists('/dev/kvm'):
        gid = grp.getgrnam('kvm').gr_gid
        st = os.stat('/dev/kvm')
        if st.st_gid != gid or stat.S_IMODE(st.st_mode) & 0o060 != 0o060:
            os.chown('/dev/kvm', -1, gid)
            os.chmod('/dev/kvm', 0o660)
    if answers():
        return []
    started = []
    for name, pidfile in (('virtlogd', '/run/virtlogd.pid'), ('libvirtd', '/run/libvirtd.pid')):
        if pid_alive(pidfile):
            continue
        subprocess.run([name, '-d'], check=True)
        for _ in range(50):
            pid = pid_alive(pidfile)
            if pid:
                started.append(pid)
                break
            time.sleep(0.1)
    end = time.monotonic() + LIBVIRTD_START_S
    while not answers():
        if time.monotonic() > end:
            raise RuntimeError('libvirtd does not answer on %s' % URI)
        time.sleep(0.5)
    return started


def other_daemons():
    out = []
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                argv = f.read().split(b'\0')
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b'qcow2-policyd' and \
                not any(a.startswith(b'test:') for a in argv):
            out.append(int(pid))
    return out


def domain_xml(name, uuid, images, percent):
    disks = ''.join(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        "<source file='%s'/><target dev='%s' bus='virtio'/></disk>" % (p, d)
        for p, d in zip(images, ('vda', 'vdb')))
    return ("<domain type='qemu'><name>%s</name><uuid>%s</uuid><memory unit='MiB'>64</memory>"
            "<metadata><qc:l2cache xmlns:qc='%s' percent='%d'/></metadata>"
            "<os><type arch='x86_64'>hvm</type></os><devices>%s</devices></domain>" %
            (name, uuid, NS_URI, percent, disks))


class Daemon:
    def __init__(self, exe, tmp):
        self.bus = qpbench.SessionBus()
        self.address, self.conn = self.bus.address, self.bus.conn
        conf = os.path.join(tmp, 'qcow2-policyd.conf')
        with open(conf, 'w') as f:
            f.write('[daemon]\nreconcile-interval=0\n')
        self.log = open(os.path.join(tmp, 'daemon.log'), 'w')
        self.proc = subprocess.Popen([exe, '--session', '--connect', URI, '--config', conf],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env=dict(os.environ, DBUS_SESSION_BUS_ADDRESS=self.address))

    def props(self, path, iface):
        res = self.conn.call_sync(BUS_NAME, path, 'org.freedesktop.DBus.Properties', 'GetAll',
                                  GLib.Variant('(s)', (iface,)), GLib.VariantType('(a{sv})'),
                                  Gio.DBusCallFlags.NONE, 10000, None)
        return res.unpack()[0]

    def wait(self, path, iface, pred, timeout=WAIT_S):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError('qcow2-policyd exited with %d' % self.proc.returncode)
            try:
                p = self.props(path, iface)
                if pred(p):
                    return time.monotonic(), p
            except GLib.Error:
                pass
            time.sleep(POLL_S)
        raise RuntimeError('timed out waiting on %s' % path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.bus.stop()
        self.log.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--daemon', required=True)
    ap.add_argument('--out-dir', default='.')
    ap.add_argument('--runs', type=int, default=10)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    md = os.path.join(args.out_dir, 'bench-latency.md')
    if os.geteuid() != 0:
        sys.exit('bench-latency: needs root (libvirtd with the QEMU driver)')
    others = other_daemons()
    if others:
        with open(md, 'w') as f:
            f.write('# bench-latency\n\nNot measured: another qcow2-policyd (pid %s) watches '
                    '%s.\n' % (', '.join(map(str, others)), URI))
        sys.exit('bench-latency: another qcow2-policyd runs against %s (pid %s)' %
                 (URI, others))
    base = '/var/lib/libvirt/images'
    tmp = tempfile.mkdtemp(prefix='qpbench-lat-', dir=base if os.path.isdir(base) else None)
    os.chmod(tmp, 0o755)
    started = []
    daemon = None
    conn = None
    names = []
    define_lat, meta_lat = [], []
    ver = '?'
    try:
        started = ensure_libvirtd()
        images = []
        for i, (size, opts) in enumerate((('1T', 'cluster_size=65536'),
                                          ('256G', 'cluster_size=65536,extended_l2=on'))):
            p = os.path.join(tmp, 'disk%d.qcow2' % i)
            subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', opts, p, size],
                           check=True)
            images.append(p)
        conn = libvirt.open(URI)
        lv = conn.getLibVersion()
        hv = conn.getVersion()
        ver = 'libvirt %d.%d.%d, QEMU %d.%d.%d' % (lv // 1000000, lv // 1000 % 1000, lv % 1000,
                                                  hv // 1000000, hv // 1000 % 1000, hv % 1000)
        daemon = Daemon(args.daemon, tmp)
        daemon.wait(MANAGER_PATH, MANAGER_IFACE, lambda p: p['Connected'] and p['Busy'] == 0)
        for i in range(args.runs):
            name = 'qpbench-lat-%d-%d' % (os.getpid(), i)
            uuid = '1a7e0000-0000-4000-8000-%06d%06d' % (os.getpid() % 1000000, i)
            path = ROOT_PATH + '/domain/' + uuid.replace('-', '_')
            names.append(name)
            dom = conn.defineXML(domain_xml(name, uuid, images, 100))
            t0 = time.monotonic()
            t1, p = daemon.wait(path, DOMAIN_IFACE,
                                lambda p: p['State'] == 'applied' and p['WriteCount'] >= 1)
            define_lat.append(t1 - t0)
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<l2cache percent="50"/>',
                            'qc', NS_URI, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            t0 = time.monotonic()
            t1, p = daemon.wait(path, DOMAIN_IFACE,
                                lambda p: p['Percent'] == 50 and p['State'] == 'applied' and
                                p['WriteCount'] >= 2)
            meta_lat.append(t1 - t0)
            dom.undefine()
            names.pop()
            print('bench-latency: run %d: define→applied %.1f ms, metadata→applied %.1f ms' %
                  (i, define_lat[-1] * 1000, meta_lat[-1] * 1000), flush=True)
    finally:
        if conn is not None:
            for name in names:
                try:
                    conn.lookupByName(name).undefine()
                except libvirt.libvirtError:
                    pass
            conn.close()
        if daemon is not None:
            daemon.stop()
        for pid in reversed(started):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


    def row(title, v):
        return '| %s | %d | %.1f | %.1f | %.1f |' % (
            title, len(v), statistics.median(v) * 1000, min(v) * 1000, max(v) * 1000)
    L = ['# bench-latency: event to applied with a real libvirtd\n',
         '%s. Daemon on a private session bus against %s; D-Bus properties polled '
         'every %d ms. libvirtd started for this run: %s.\n' % (
             ver, URI, POLL_S * 1000, 'yes' if started else 'no'),
         '| event | runs | median (ms) | min (ms) | max (ms) |', '|---|---|---|---|---|',
         row('virDomainDefineXML returns → State applied (1 write)', define_lat),
         row('virDomainSetMetadata (percent 50) returns → applied (2nd write)', meta_lat)]
    with open(md, 'w') as f:
        f.write('\n'.join(L) + '\n')
    with open(os.path.join(args.out_dir, 'bench-latency.json'), 'w') as f:
        json.dump({'define-to-applied': define_lat, 'metadata-to-applied': meta_lat}, f)
    print('bench-latency: wrote %s' % md)


if __name__ == '__main__':
    main()
