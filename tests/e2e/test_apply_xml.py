"""Issue 4's offline path on a real libvirtd and QEMU:
  virsh dumpxml --inactive --security-info D | qcow2-policyctl apply-xml - > new.xml
  virsh define new.xml
The expected values come from qemu-img's view of each image and the spec's arithmetic
(section 3), computed in qpe2e, never from the project's own code."""

import os
import subprocess
import xml.etree.ElementTree as ET

import pytest

import qpe2e

FOREIGN_NS = "http://example.org/e2e-app/1.0"
VNC_PASSWORD = "Xy7-s3c!"  # VNC allows 8 characters at most


def _policy(percent=100, chain="all", disks=""):
    return ('<qc:l2cache xmlns:qc="%s" percent="%d" chain="%s">%s</qc:l2cache>'
            % (qpe2e.QC_NS, percent, chain, disks))


FOREIGN = ('<app:tag xmlns:app="%s" id="42" note="a &amp; b"><app:item k="v">keep me'
           '</app:item><app:empty/></app:tag>' % FOREIGN_NS)


def _apply_xml(policyctl, name, out_path):
    """The pipeline exactly as an operator types it."""
    cmd = ("set -o pipefail; virsh -q -c %s dumpxml --inactive --security-info %s | "
           "%s apply-xml - > %s" % (qpe2e.URI, name, policyctl, out_path))
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True,
                       timeout=qpe2e.CMD_TIMEOUT)
    assert p.returncode == 0, "apply-xml pipeline failed: %s" % p.stderr
    return open(out_path).read()


@pytest.fixture
def annotated(domains, image_dir):
    fx = qpe2e.PolicyImages(image_dir)
    metadata = _policy(100, "all", '<qc:disk dev="vdb" percent="25"/>') + FOREIGN
    graphics = "<graphics type='vnc' port='-1' autoport='yes' passwd='%s'/>" % VNC_PASSWORD
    name = domains.define(qpe2e.domain_xml(qpe2e.unique_name("apply"), fx.disks(),
                                           metadata=metadata, extra_devices=graphics),
                          image_dir)
    return name, fx, image_dir


def test_expected_values_are_not_trivial(image_dir):
    """Guards the fixture: the images must exercise percent, the 32 MiB floor, cluster
    sizes and extended L2, or the test below would prove little."""
    fx = qpe2e.PolicyImages(image_dir)
    e = fx.expected(100, 25)
    top, mid, base = (n for _, n in e["vda"])
    vdb = e["vdb"][0][1]
    assert top > 32 * qpe2e.MIB + 4 * 65536           # 100 % above QEMU's default
    assert base < 32 * qpe2e.MIB                      # small layer: L2FULL + 4C
    assert len({top, mid, base, vdb}) == 4
    assert vdb > 32 * qpe2e.MIB + 4 * 32768           # 25 % of a 2 TiB image
    assert vdb < qpe2e.expected_max_size(fx.vdb, 100)


def test_apply_xml_define_start(annotated, policyctl):
    name, fx, d = annotated
    before = qpe2e.virsh("dumpxml", "--inactive", "--security-info", name).stdout
    assert qpe2e.vnc_password(before) == VNC_PASSWORD
    new_xml = _apply_xml(policyctl, name, os.path.join(d, "new.xml"))

    qpe2e.run(["virt-xml-validate", os.path.join(d, "new.xml"), "domain"])
    assert qpe2e.normalized(qpe2e.persistent_cache_values(new_xml)) == fx.expected(100, 25)

    qpe2e.virsh("define", os.path.join(d, "new.xml"))
    after = qpe2e.virsh("dumpxml", "--inactive", "--security-info", name).stdout

    # Exact values on the top image, each backing layer and the second disk; the raw
    # disk untouched.
    assert qpe2e.normalized(qpe2e.persistent_cache_values(after)) == fx.expected(100, 25)
    # The chain libvirt keeps is terminated, so it uses it instead of probing.
    vda = [x for x in ET.fromstring(after).findall("devices/disk")
           if x.find("target").get("dev") == "vda"][0]
    store = vda
    for _ in range(3):
        store = store.find("backingStore")
        assert store is not None
    assert store.find("source") is None and len(store) == 0, "chain not terminated"

    # Nothing else changed: secret, foreign metadata, the policy itself, every other
    # element and attribute.
    assert qpe2e.vnc_password(after) == VNC_PASSWORD
    for ns in (FOREIGN_NS, qpe2e.QC_NS):
        assert (qpe2e.canonical(qpe2e.metadata_element(after, ns))
                == qpe2e.canonical(qpe2e.metadata_element(before, ns))), ns
    assert qpe2e.without_owned(after) == qpe2e.without_owned(before)

    # The started QEMU gets the values for every qcow2 node.
    qpe2e.virsh("start", name)
    nodes = qpe2e.qcow2_format_nodes(qpe2e.qemu_cmdline(name))
    want = {p: n for dev in ("vda", "vdb") for p, n in fx.expected(100, 25)[dev]}
    assert nodes == want


def test_apply_xml_is_idempotent(annotated, policyctl):
    name, fx, d = annotated
    first = _apply_xml(policyctl, name, os.path.join(d, "new.xml"))
    qpe2e.virsh("define", os.path.join(d, "new.xml"))
    second = _apply_xml(policyctl, name, os.path.join(d, "again.xml"))
    assert (qpe2e.normalized(qpe2e.persistent_cache_values(second))
            == qpe2e.normalized(qpe2e.persistent_cache_values(first)) == fx.expected(100, 25))
    qpe2e.run(["virt-xml-validate", os.path.join(d, "again.xml"), "domain"])
