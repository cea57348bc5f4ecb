"""Fixtures of the end-to-end suite. As root (CI) a libvirtd that cannot be used is a
test error; as an unprivileged user the suite skips visibly with the reason, unless
QP_E2E_REQUIRED=1 asks for a failure there too."""

import os
import shutil
import subprocess

import pytest

import qpe2e


def _required():
    return os.geteuid() == 0 or os.environ.get("QP_E2E_REQUIRED") == "1"


@pytest.fixture(scope="session")
def libvirtd():
    daemon = qpe2e.Libvirtd()
    try:
        daemon.ensure()
    except qpe2e.E2EUnavailable as e:
        daemon.stop_started()
        if _required():
            pytest.fail("end-to-end suite cannot run: %s" % e, pytrace=False)
        pytest.skip("end-to-end suite needs a usable libvirtd: %s" % e)
    yield daemon
    daemon.stop_started()


@pytest.fixture
def image_dir(libvirtd):
    d = qpe2e.make_image_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Domains:
    """Defines domains and removes every one of them at the end, whatever happened."""

    def __init__(self):
        self.names = []

    def define(self, xml_text, image_dir):
        path = os.path.join(image_dir, "define-%d.xml" % len(self.names))
        with open(path, "w") as f:
            f.write(xml_text)
        name = qpe2e.ET.fromstring(xml_text).find("name").text
        assert name.startswith(qpe2e.NAME_PREFIX), name
        self.names.append(name)
        qpe2e.virsh("define", path)
        return name

    def cleanup(self):
        for name in self.names:
            try:
                qpe2e.virsh("destroy", name, check=False)
                qpe2e.virsh("undefine", name, check=False)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def domains(libvirtd, image_dir):
    # Depends on image_dir so that domains go before their images: a domain left
    # defined over deleted images would make a running daemon report errors.
    d = Domains()
    yield d
    d.cleanup()


@pytest.fixture(scope="session")
def policyctl():
    # QP_POLICYCTL: run the suite against an installed or other build of the CLI.
    if os.environ.get("QP_POLICYCTL"):
        return os.environ["QP_POLICYCTL"]
    build = os.environ.get("QP_BUILD_DIR")
    assert build, "QP_BUILD_DIR is not set (run through meson test)"
    path = os.path.join(build, "cli", "qcow2-policyctl")
    assert os.access(path, os.X_OK), "%s is not built" % path
    return path
