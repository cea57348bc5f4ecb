"""qcow2-policyd's configuration file: host-wide default policy, periodic reconcile, and
refusal of invalid settings."""
import os
import subprocess
import time

import pytest

import qpdaemon as qd

OWN = "c0f1c0f1-0000-4000-8000-000000000001"
BARE = "c0f1c0f1-0000-4000-8000-000000000002"


def write_node(tmp):
    img = os.path.join(tmp, "disk.qcow2")
    qd.qemu_img("create", "-f", "qcow2", img, "1T")
    node = os.path.join(tmp, "node.xml")
    with open(node, "w") as f:
        f.write("<node>\n")
        f.write(qd.domain_xml("own", OWN, [("vda", img, "qcow2")], policy='percent="100"'))
        f.write(qd.domain_xml("bare", BARE, [("vda", img, "qcow2")]))
        f.write("</node>\n")
    return img, node


def start(tmp, conf_text):
    img, node = write_node(tmp)
    conf = os.path.join(tmp, "qcow2-policyd.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    bus = qd.Bus(tmp)
    return img, bus, qd.Daemon(bus, node)


def test_default_policy_and_interval(tmp_path):
    img, bus, d = start(str(tmp_path), "[daemon]\nreconcile-interval=1\nlog-level=info\n"
                                       "[default-policy]\npercent=25\nmax=1GiB\n")
    try:
        d.wait_settled(2)
        m = d.manager()
        assert m["DefaultPercent"] == 25 and m["ReconcileInterval"] == 1
        bare = d.props(qd.domain_path(BARE))
        assert bare["PolicySource"] == "default" and bare["Percent"] == 25
        assert bare["State"] == "applied" and bare["Max"] == 1 << 30
        (ref,) = qd.analyze_json(img, percent=25)
        assert bare["Disks"][0]["max-size"] == ref["policy"]["cache-size"]
        own = d.props(qd.domain_path(OWN))
        assert own["PolicySource"] == "domain" and own["Percent"] == 100
        # the periodic reconcile runs by itself, and writes nothing more
        before = d.manager()
        time.sleep(2.5)
        after = d.manager()
        assert after["ReconcileCount"] >= before["ReconcileCount"] + 2
        assert after["WriteCount"] == before["WriteCount"]
        # log-level=info: every write is logged with the image it is for
        assert "bare: vda layer 0: max_size" in d.logtext()
    finally:
        d.stop()
        bus.stop()


def test_no_default_policy_leaves_domains_alone(tmp_path):
    _, bus, d = start(str(tmp_path), "[daemon]\nreconcile-interval=0\nlog-level=warning\n")
    try:
        d.wait_settled(2)
        bare = d.props(qd.domain_path(BARE))
        assert bare["State"] == "unmanaged" and bare["WriteCount"] == 0
        assert d.manager()["DefaultPercent"] == 0
        # log-level=warning: not even the connection message
        assert "Connected" not in d.logtext()
        assert "max_size" not in d.logtext()
    finally:
        d.stop()
        bus.stop()


@pytest.mark.parametrize("text,needle", [
    ("[default-policy]\npercent=0\n", "percent"),
    ("[default-policy]\npercent=50%\n", "50%"),
    ("[default-policy]\npercent=50\nmax=lots\n", "lots"),
    ("[default-policy]\npercent=50\nchain=some\n", "some"),
    ("[daemon]\nreconcile-interval=-5\n", "reconcile-interval"),
    ("[daemon]\nlog-level=loud\n", "loud"),
    ("this is not a key file\n", "qcow2-policyd.conf"),
])
def test_invalid_config_refused(tmp_path, text, needle):
    conf = tmp_path / "qcow2-policyd.conf"
    conf.write_text(text)
    res = subprocess.run([qd.DAEMON, "--session", "--connect", "test:///default", "--config", str(conf)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert needle in res.stderr


def test_missing_explicit_config_refused(tmp_path):
    res = subprocess.run([qd.DAEMON, "--session", "--config", str(tmp_path / "none.conf")],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1 and "none.conf" in res.stderr


def test_usage_errors(tmp_path):
    res = subprocess.run([qd.DAEMON, "--system", "--session"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    res = subprocess.run([qd.DAEMON, "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 2
    res = subprocess.run([qd.DAEMON, "--version"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stdout.startswith("qcow2-policyd ")
