# SPDX-License-Identifier: LGPL-2.1-or-later
"""Helpers of the xml suite: the built qcow2-policyctl, images made with qemu-img, and an
independent implementation of the spec's arithmetic (section 3) to check the values the
C code writes. Nothing here uses the project's own code to compute an expectation."""

import copy
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from qpbuild import GIB, KIB, MIB, TIB, ctl_path, need, run_qemu_img  # noqa: E402,F401

QC_NS = "http://qcow2policyd.org/schemas/l2cache/1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("QP_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
RNG = os.path.join(SOURCE_DIR, "schemas", "qcow2policyd-l2cache.rng")
TIMEOUT = 30


def run(args, input=None, timeout=TIMEOUT):
    """Run with bytes in and out (documents may be hostile, not UTF-8)."""
    return subprocess.run(args, input=input, capture_output=True, timeout=timeout)


def ctl(*args, input=None, timeout=TIMEOUT):
    return run([ctl_path(), *[str(a) for a in args]], input=input, timeout=timeout)


def qemu_img(*args):
    argv = [need("qemu-img"), *[str(a) for a in args]]
    p = run_qemu_img(lambda: run(argv, timeout=120))
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p.stdout


def info(path):
    return json.loads(qemu_img("info", "--output=json", path))


# -- the spec's arithmetic, written again from section 3 ----------------------------

def round_up(x, a):
    return (x + a - 1) // a * a


def l2_full(virtual_size, cluster_size, extended_l2):
    entry = 16 if extended_l2 else 8
    return round_up(-(-virtual_size // cluster_size) * entry, cluster_size)


def expected_max_size(path, percent, cap=0):
    i = info(path)
    c = i["cluster-size"]
    ext = bool(i.get("format-specific", {}).get("data", {}).get("extended-l2", False))
    full = l2_full(i["virtual-size"], c, ext)
    if percent == 100:
        want = full
    else:
        want = min(full, round_up(-(-full * percent // 100), 4096))
    l2 = max(want, min(full, 32 * MIB))
    size = l2 + 4 * c
    if cap and cap < size:
        minimum = 4 * c + 2 * min(c, 4096)
        size = min(size, minimum) if cap < minimum else cap
    return size


# -- images -------------------------------------------------------------------------

def make_images(d):
    """The image set the corpus's @DIR@ placeholders name."""
    def create(name, size, *opts, backing=None, backing_fmt=None):
        args = ["create", "-q", "-f", "qcow2"]
        if backing:
            args += ["-b", backing, "-F", backing_fmt]
        for o in opts:
            args += ["-o", o]
        qemu_img(*args, os.path.join(d, name), size)

    create("big.qcow2", "1T")                                      # L2FULL 128 MiB
    create("base.qcow2", "20G")
    create("mid.qcow2", "100G", "cluster_size=131072", backing="base.qcow2",
           backing_fmt="qcow2")                                    # relative name
    create("top.qcow2", "1T", backing="mid.qcow2", backing_fmt="qcow2")
    create("extl2.qcow2", "512G", "extended_l2=on")                 # L2FULL 128 MiB
    create("small.qcow2", "1G", "cluster_size=512")
    create("data2m.qcow2", "2T", "cluster_size=2097152")
    qemu_img("create", "-q", "-f", "raw", os.path.join(d, "raw.img"), "16M")
    create("onraw.qcow2", "16M", backing="raw.img", backing_fmt="raw")
    qemu_img("create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=123456",
             "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
             os.path.join(d, "luks.qcow2"), "64G")


# Own temporary directories, not pytest's tmp_path: pytest prunes old basetemp
# directories of the same user, and other suites' runs at the same time could remove
# ours while it is in use.
@pytest.fixture(scope="session")
def image_dir():
    with tempfile.TemporaryDirectory(prefix="qp-xml-images-") as d:
        make_images(d)
        yield d


@pytest.fixture
def work_dir():
    with tempfile.TemporaryDirectory(prefix="qp-xml-") as d:
        yield pathlib.Path(d)


def corpus_files():
    c = os.path.join(HERE, "corpus")
    return sorted(os.path.join(c, f) for f in os.listdir(c) if f.endswith(".xml"))


def load_corpus(path, image_dir):
    with open(path, "rb") as f:
        return f.read().replace(b"@DIR@", image_dir.encode())


# -- trees --------------------------------------------------------------------------

def parse(data):
    """ElementTree with comments and processing instructions kept."""
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True, insert_pis=True))
    parser.feed(data)
    return parser.close()


def explicit_depths(root):
    """{dev: how deep the document's own <backingStore> elements go} (a terminator
    counts as a level)."""
    out = {}
    for disk in root.iterfind("devices/disk"):
        depth, cur = 0, disk
        while cur.find("backingStore") is not None:
            cur = cur.find("backingStore")
            depth += 1
        out[disk.find("target").get("dev")] = depth
    return out


def strip_owned(root, keep_depths=None):
    """Remove what the policy owns: every <metadata_cache> of a disk's <driver> and of a
    backing layer's <format>; with @keep_depths (explicit_depths of the input), the
    <backingStore> levels the rewrite added below what the input had."""
    root = copy.deepcopy(root)
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev") if target is not None else None
        if keep_depths is not None and dev in keep_depths:
            cur = disk
            for _ in range(keep_depths[dev]):
                cur = cur.find("backingStore")
            for bs in cur.findall("backingStore"):
                cur.remove(bs)
        for parent in [disk.find("driver")] + list(disk.iter("format")):
            if parent is None:
                continue
            for mc in parent.findall("metadata_cache"):
                parent.remove(mc)
            if len(parent) == 0:
                parent.text = None
    return root


def canonical(el):
    """A comparable form: tag, sorted attributes, text without surrounding blanks."""
    def walk(e):
        tag = e.tag if isinstance(e.tag, str) else repr(e.tag)
        return (tag, sorted(e.attrib.items()), (e.text or "").strip(),
                [walk(c) for c in e], (e.tail or "").strip())
    return walk(el)


def chain_of(disk):
    out = []
    cur = disk
    while True:
        bs = cur.find("backingStore")
        if bs is None or (bs.get("type") is None and len(bs) == 0):
            return out
        out.append(bs)
        cur = bs


def max_size_of(parent):
    """Bytes of <metadata_cache><max_size> under @parent, or None."""
    if parent is None:
        return None
    ms = parent.find("metadata_cache/max_size")
    if ms is None:
        return None
    unit = (ms.get("unit") or "bytes").lower()
    scale = {"b": 1, "bytes": 1, "k": KIB, "kib": KIB, "m": MIB, "mib": MIB, "g": GIB,
             "gib": GIB, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3}[unit]
    return int(ms.text.strip()) * scale


def parse_size(s):
    units = {"": 1, "b": 1, "k": KIB, "kib": KIB, "m": MIB, "mib": MIB, "g": GIB,
             "gib": GIB, "t": TIB, "tib": TIB, "kb": 1000, "mb": 1000 ** 2,
             "gb": 1000 ** 3, "tb": 1000 ** 4}
    digits = s.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return int(digits) * units[s[len(digits):].lower()]


def policy_for(root):
    """{dev: (percent, cap, chain) or None for skip} and the domain default."""
    el = root.find("metadata/{%s}l2cache" % QC_NS)
    if el is None:
        return None
    default = (int(el.get("percent")), parse_size(el.get("max", "0")), el.get("chain", "top"))
    disks = {}
    for d in el.findall("{%s}disk" % QC_NS):
        if d.get("skip") == "yes":
            disks[d.get("dev")] = None
            continue
        disks[d.get("dev")] = (int(d.get("percent", default[0])),
                               parse_size(d.get("max")) if d.get("max") else default[1],
                               d.get("chain", default[2]))
    return default, disks
