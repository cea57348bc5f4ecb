"""Fixtures of the fault suite. It reuses the end-to-end suite's helpers (tests/e2e/qpe2e.py
and its Domains fixture class) against a private libvirtd (qpfaults.PrivateLibvirtd): as
root (CI) a libvirtd that cannot be started is a test failure; unprivileged the suite
skips visibly with the reason, unless QP_E2E_REQUIRED=1 asks for a failure there too."""

import importlib.util
import os
import re
import sys

import pytest

_E2E = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e")
sys.path.insert(0, _E2E)

import qpe2e  # noqa: E402
import qpfaults  # noqa: E402

_spec = importlib.util.spec_from_file_location("qp_e2e_conftest", os.path.join(_E2E, "conftest.py"))
_e2e_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_e2e_conftest)


_required = _e2e_conftest._required


@pytest.fixture(scope="session")
def libvirtd():
    try:
        lv = qpfaults.PrivateLibvirtd()
    except qpe2e.E2EUnavailable as e:
        if _required():
            pytest.fail("fault suite cannot run: %s" % e, pytrace=False)
        pytest.skip("fault suite needs root for a private libvirtd: %s" % e)
    try:
        lv.start()
    except qpe2e.E2EUnavailable as e:
        lv.cleanup()
        if _required():
            pytest.fail("fault suite cannot run: %s" % e, pytrace=False)
        pytest.skip("fault suite needs a usable libvirtd: %s" % e)
    # Every qpe2e helper (virsh, Daemon, LifecycleEvents) talks to the private libvirtd.
    qpe2e.URI = lv.uri
    yield lv
    lv.cleanup()


# the end-to-end suite's, on this suite's libvirtd
image_dir = _e2e_conftest.image_dir


@pytest.fixture
def domains(libvirtd, image_dir):
    d = _e2e_conftest.Domains()
    yield d
    # a test may leave libvirtd stopped: cleaning up needs it
    if libvirtd.proc is None or libvirtd.proc.poll() is not None:
        libvirtd.start()
    d.cleanup()


@pytest.fixture(scope="session")
def daemon_binary():
    return qpe2e.daemon_binary()


@pytest.fixture(scope="session")
def bus(libvirtd):
    b = qpe2e.SessionBus()
    yield b
    b.stop()


class Daemons:
    """Starts qcow2-policyd instances on the private bus; at the end stops them and checks
    that none logged a critical or a GLib warning. Killed instances are expected dead."""

    def __init__(self, binary, bus, logdir):
        self.binary, self.bus, self.logdir = binary, bus, logdir
        self.started = []

    def start(self):
        d = os.path.join(self.logdir, "daemon-%d" % len(self.started))
        os.mkdir(d)
        daemon = qpe2e.Daemon(self.binary, self.bus, d)
        daemon.killed = False
        self.started.append(daemon)
        return daemon

    def kill(self, daemon):
        daemon.killed = True
        daemon.proc.kill()
        daemon.proc.wait(10)

    def finish(self):
        problems = []
        for daemon in self.started:
            alive = daemon.proc.poll() is None
            daemon.stop()
            log = daemon.log_text(tail=None)
            if not alive and not daemon.killed:
                problems.append("qcow2-policyd died (%s):\n%s"
                                % (daemon.proc.returncode, log[-20000:]))
            bad = [line for line in log.splitlines()
                   if re.search(r"-CRITICAL \*\*|GLib[-A-Za-z]*-WARNING \*\*", line)]
            if bad:
                problems.append("qcow2-policyd logged:\n" + "\n".join(bad))
        return problems


@pytest.fixture
def daemons(libvirtd, daemon_binary, bus, tmp_path, domains):
    # after domains in teardown order: the daemons go first, the domains after
    ds = Daemons(daemon_binary, bus, str(tmp_path))
    yield ds
    problems = ds.finish()
    assert not problems, "\n".join(problems)
