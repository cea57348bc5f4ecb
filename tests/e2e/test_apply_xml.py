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
GiB = 1024 ** 3
TiB = 1024 ** 4


def _policy(percent=100, chain="all", disks=""):
    return ('<qc:l2cache xmlns:qc="%s" percent="%d" chain="%s">%s</qc:l2cache>'
            % (qpe2e.QC_NS, percent, chain, disks))


FOREIGN = ('<app:tag xmlns:app="%s" id="42" note="a &amp; b"><app:item k="v">keep me'
           '</app:item><app:empty/></app:tag>' % FOREIGN_NS)


class Fixture:
    """Images for a domain with two qcow2 disks, one of them with a two-layer backing
    chain, plus a raw disk the policy must leave alone. Sizes are odd on purpose so that
    every rounding step of the arithmetic matters; the cluster sizes and extended L2 vary
    by layer; vdb is large enough that 25 % is more than QEMU's 32 MiB default."""

    def __init__(self, image_dir):
        d = image_dir
        self.base = qpe2e.qemu_img_create(os.path.join(d, "base.qcow2"),
                                          100 * GiB + 3 * 512, extended_l2=True)
        self.mid = qpe2e.qemu_img_create(os.path.join(d, "mid.qcow2"), 200 * GiB + 65536,
                                         cluster_size=128 * 1024, backing="base.qcow2")
        self.top = qpe2e.qemu_img_create(os.path.join(d, "top.qcow2"),
                                         300 * GiB + 7 * 512, backing="mid.qcow2")
        self.vdb = qpe2e.qemu_img_create(os.path.join(d, "data.qcow2"),
                                         2 * TiB + 7 * 1024 * 1024 + 512,
                                         cluster_size=32 * 1024)
        self.raw = os.path.join(d, "scratch.raw")
        qpe2e.run(["qemu-img", "create", "-q", "-f", "raw", self.raw, "16M"])
        os.chmod(self.raw, 0o644)
        self.top, self.mid, self.base, self.vdb, self.raw = (
            os.path.realpath(p) for p in (self.top, self.mid, self.base, self.vdb, self.raw))

    def disks(self):
        raw = ("<disk type='file' device='disk'><driver name='qemu' type='raw'/>"
               "<source file='%s'/><target dev='vdc' bus='virtio'/></disk>" % self.raw)
        return [qpe2e.disk_xml("vda", self.top), qpe2e.disk_xml("vdb", self.vdb), raw]

    def expected(self, percent_vda, percent_vdb):
        return {
            "vda": [(self.top, qpe2e.expected_max_size(self.top, percent_vda)),
                    (self.mid, qpe2e.expected_max_size(self.mid, percent_vda)),
                    (self.base, qpe2e.expected_max_size(self.base, percent_vda))],
            "vdb": [(self.vdb, qpe2e.expected_max_size(self.vdb, percent_vdb))],
            "vdc": [(self.raw, None)],
        }


def _vnc_password(xml_text):
    return ET.fromstring(xml_text).find("devices/graphics[@type='vnc']").get("passwd")


def _canonical(el):
    return ET.canonicalize(ET.tostring(el, encoding="unicode"), strip_text=True)


def _without_owned(xml_text):
    """The document minus what the policy owns: <metadata_cache> under a disk's <driver>
    or a layer's <format>, and the disks' <backingStore> chains."""
    root = ET.fromstring(xml_text)
    for disk in root.findall("devices/disk"):
        for store in disk.findall("backingStore"):
            disk.remove(store)
        for drv in disk.findall("driver"):
            for mc in drv.findall("metadata_cache"):
                drv.remove(mc)
    return _canonical(root)


def _normalized(values):
    return {dev: [(os.path.realpath(p) if p else p, n) for p, n in layers]
            for dev, layers in values.items()}


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
    fx = Fixture(image_dir)
    metadata = _policy(100, "all", '<qc:disk dev="vdb" percent="25"/>') + FOREIGN
    graphics = "<graphics type='vnc' port='-1' autoport='yes' passwd='%s'/>" % VNC_PASSWORD
    name = domains.define(qpe2e.domain_xml(qpe2e.unique_name("apply"), fx.disks(),
                                           metadata=metadata, extra_devices=graphics),
                          image_dir)
    return name, fx, image_dir


def test_expected_values_are_not_trivial(image_dir):
    """Guards the fixture: the images must exercise percent, the 32 MiB floor, cluster
    sizes and extended L2, or the test below would prove little."""
    fx = Fixture(image_dir)
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
    assert _vnc_password(before) == VNC_PASSWORD
    new_xml = _apply_xml(policyctl, name, os.path.join(d, "new.xml"))

    qpe2e.run(["virt-xml-validate", os.path.join(d, "new.xml"), "domain"])
    assert _normalized(qpe2e.persistent_cache_values(new_xml)) == fx.expected(100, 25)

    qpe2e.virsh("define", os.path.join(d, "new.xml"))
    after = qpe2e.virsh("dumpxml", "--inactive", "--security-info", name).stdout

    # Exact values on the top image, each backing layer and the second disk; the raw
    # disk untouched.
    assert _normalized(qpe2e.persistent_cache_values(after)) == fx.expected(100, 25)
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
    assert _vnc_password(after) == VNC_PASSWORD
    for ns in (FOREIGN_NS, qpe2e.QC_NS):
        assert (_canonical(qpe2e.metadata_element(after, ns))
                == _canonical(qpe2e.metadata_element(before, ns))), ns
    assert _without_owned(after) == _without_owned(before)

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
    assert (_normalized(qpe2e.persistent_cache_values(second))
            == _normalized(qpe2e.persistent_cache_values(first)) == fx.expected(100, 25))
    qpe2e.run(["virt-xml-validate", os.path.join(d, "again.xml"), "domain"])
