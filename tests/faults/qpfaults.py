"""Helpers of the fault suite: a private libvirtd that the tests may stop, kill and starve
of disk space without disturbing anybody else's qemu:///system.

It is the real libvirtd binary with the real QEMU driver, run in session mode as an
unprivileged uid, so that every path it uses (sockets, configuration, cache) lies under
one temporary directory: its configuration directory, where the QEMU driver writes
NAME.xml on every define, is a small tmpfs the disk-full test fills. Root reaches its
socket through qemu+unix:///session?socket=PATH, as the daemon under test does."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import qpe2e

# The uid the private libvirtd runs as. nobody owns nothing else on a Debian host, so the
# daemon's files cannot collide with anyone's.
LIBVIRTD_UID = 65534
LIBVIRTD_GID = 65534
# Room for the definitions of the suite's few domains (a few KiB each) and libvirt's own
# files, small enough to fill in a moment.
CONFIG_TMPFS_SIZE = "4m"
# The first start probes QEMU's capabilities (about 8 s on a loaded 2-core machine); later
# starts read them from the cache directory.
LIBVIRTD_START_TIMEOUT = 90
LIBVIRTD_STOP_TIMEOUT = 30


class PrivateLibvirtd:
    """libvirtd --session as uid nobody, rooted at a fresh temporary directory."""

    def __init__(self, config_tmpfs=True):
        if os.geteuid() != 0:
            raise qpe2e.E2EUnavailable("the private libvirtd runs as another uid: needs root")
        for tool in ("libvirtd", "virsh", "setpriv", "qemu-img", "qemu-system-x86_64"):
            if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
                raise qpe2e.E2EUnavailable("%s is not installed" % tool)
        self.root = tempfile.mkdtemp(prefix="qp-faults-libvirtd-")
        os.chmod(self.root, 0o755)
        self.dirs = {k: os.path.join(self.root, k) for k in ("run", "config", "cache", "home")}
        for d in self.dirs.values():
            os.mkdir(d, 0o700)
            os.chown(d, LIBVIRTD_UID, LIBVIRTD_GID)
        self.mounted = False
        self.mount_error = None
        if config_tmpfs:
            p = qpe2e.run(["mount", "-t", "tmpfs", "-o", "size=%s,uid=%d,gid=%d,mode=0700"
                           % (CONFIG_TMPFS_SIZE, LIBVIRTD_UID, LIBVIRTD_GID),
                           "qp-faults", self.dirs["config"]], check=False)
            # Without it (a container without CAP_SYS_ADMIN) only the disk-full test
            # cannot run; it says so.
            if p.returncode != 0:
                self.mount_error = p.stderr.strip() or "mount failed"
            else:
                self.mounted = True
        self.socket = os.path.join(self.dirs["run"], "libvirt", "libvirt-sock")
        self.uri = "qemu+unix:///session?socket=" + self.socket
        self.qemu_config_dir = os.path.join(self.dirs["config"], "libvirt", "qemu")
        self.log_path = os.path.join(self.root, "libvirtd.log")
        self.proc = None

    def env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.dirs["home"],
                "XDG_RUNTIME_DIR": self.dirs["run"], "XDG_CONFIG_HOME": self.dirs["config"],
                "XDG_CACHE_HOME": self.dirs["cache"], "LC_ALL": "C.UTF-8"}

    def answers(self):
        try:
            p = qpe2e.run(["virsh", "-c", self.uri, "version"], check=False, timeout=10)
        except subprocess.TimeoutExpired:
            return False
        return p.returncode == 0 and "QEMU" in p.stdout

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.log_path, "a")
        # setpriv execs, so the pid is libvirtd's own and signals reach it directly.
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=%d" % LIBVIRTD_UID, "--regid=%d" % LIBVIRTD_GID,
             "--clear-groups", "libvirtd"],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dirs["home"])
        log.close()
        deadline = time.monotonic() + LIBVIRTD_START_TIMEOUT
        while not self.answers():
            if self.proc.poll() is not None:
                raise qpe2e.E2EUnavailable("private libvirtd exited with %d:\n%s"
                                           % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise qpe2e.E2EUnavailable("private libvirtd does not answer on %s:\n%s"
                                           % (self.uri, self.log_tail()))
            time.sleep(0.2)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(LIBVIRTD_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(LIBVIRTD_STOP_TIMEOUT)

    def log_tail(self, n=4000):
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        if self.mounted:
            qpe2e.run(["umount", self.dirs["config"]], check=False)
            self.mounted = False
        shutil.rmtree(self.root, ignore_errors=True)


def fill_filesystem(directory):
    """Fill the file system holding @directory until a write fails with ENOSPC; returns
    the filler's path (remove it to free the space again)."""
    path = os.path.join(directory, "qp-faults-filler")
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            try:
                n = os.write(fd, chunk)
            except OSError as e:
                if e.errno == 28:  # ENOSPC
                    break
                raise
            if n < len(chunk):
                chunk = chunk[:max(1, len(chunk) - n)]
        # the last partial pages too
        while True:
            try:
                if os.write(fd, b"\0") == 0:
                    break
            except OSError:
                break
    finally:
        os.close(fd)
    return path
