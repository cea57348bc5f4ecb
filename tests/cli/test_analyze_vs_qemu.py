# SPDX-License-Identifier: LGPL-2.1-or-later
"""`qcow2-policyctl analyze --json` against `qemu-img info` and `qemu-img check` on images
qemu-img and qemu-io make at test time, and the error paths (FIFO, directory, missing, raw)."""

import json
import os
import struct

import pytest

from conftest import (GIB, KIB, MIB, TIB, analyze_json, ctl, ctl_path, l2_full, need, qemu_check,
                      qemu_img, qemu_info, qemu_io, round_up, run)

SECRET = ["--object", "secret,id=s0,data=x"]


def table_reach(cluster_size, extended_l2):
    """Guest bytes one L2 table maps."""
    return cluster_size * (cluster_size // (16 if extended_l2 else 8))


def tables_touched(writes, cluster_size, extended_l2):
    reach = table_reach(cluster_size, extended_l2)
    tables = set()
    for offset, length in writes:
        first = offset // cluster_size * cluster_size
        for t in range(first // reach, (offset + length - 1) // reach + 1):
            tables.add(t)
    return len(tables)


def write_cmds(writes, flag=""):
    return [f"write {flag}{o} {n}" for o, n in writes]


class Case:
    def __init__(self, path, l2_tables, check_args=None):
        self.path = path
        self.l2_tables = l2_tables
        self.check_args = check_args if check_args is not None else [path]


def plain(tmp, name, size, opts, writes, cluster_size=64 * KIB, extended_l2=False):
    path = tmp / f"{name}.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []), path, size)
    if writes:
        qemu_io(path, write_cmds(writes))
    return Case(path, tables_touched(writes, cluster_size, extended_l2))


def make_geometry(cluster_size, extended_l2, compat="1.1"):
    def build(tmp):
        reach = table_reach(cluster_size, extended_l2)
        size = max(4 * reach, 64 * MIB)
        writes = [(0, 4 * KIB), (reach + cluster_size, 8 * KIB), (3 * reach + reach // 2, 512)]
        opts = f"cluster_size={cluster_size},compat={compat}"
        if extended_l2:
            opts += ",extended_l2=on"
        return plain(tmp, "geo", size, opts, writes, cluster_size, extended_l2)
    return build


def make_refcount(bits):
    def build(tmp):
        return plain(tmp, "rc", GIB, f"refcount_bits={bits}", [(0, 64 * KIB), (600 * MIB, 4096)])
    return build


def make_zstd(tmp):
    path = tmp / "zstd.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", path, GIB)
    # A compressed cluster and a normal one, in different L2 tables.
    qemu_io(path, ["write -c 0 64k", "write 700M 4k"])
    return Case(path, 2)


def make_luks(tmp):
    path = tmp / "luks.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", *SECRET, "-o",
             "encrypt.format=luks,encrypt.key-secret=s0", path, GIB)
    image_opts = f"driver=qcow2,file.filename={path},encrypt.key-secret=s0"
    qemu_io(image_opts, ["write 0 4k", "write 600M 4k"], extra=SECRET + ["--image-opts"])
    return Case(path, 2, check_args=SECRET + ["--image-opts", image_opts])


def make_data_file(tmp):
    path = tmp / "df.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={tmp / 'df.raw'}", path, GIB)
    qemu_io(path, ["write 0 128k", "write 900M 4k"])
    return Case(path, 2)


def make_data_file_raw(tmp):
    path = tmp / "dfr.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o",
             f"data_file={tmp / 'dfr.raw'},data_file_raw=on", path, GIB)
    qemu_io(path, ["write 0 4k"])
    # A raw data file is mapped 1:1, so qemu-img gives every cluster an L2 entry.
    return Case(path, 2)


def make_snapshots(tmp):
    path = tmp / "snap.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, 2 * GIB)
    qemu_io(path, ["write 0 64k"])
    qemu_img("snapshot", "-c", "s1", path)
    qemu_io(path, ["write 0 4k", "write 1100M 64k"])
    qemu_img("snapshot", "-c", "s2", path)
    qemu_img("snapshot", "-c", "s3", path)
    return Case(path, 2)


def make_grown(tmp):
    path = tmp / "grow.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, GIB)
    qemu_io(path, ["write 0 4k"])
    qemu_img("resize", "-q", path, "+9G")
    qemu_io(path, ["write 9G 4k", "write 9800M 4k"])
    return Case(path, 3)


def make_shrunk(tmp):
    path = tmp / "shrink.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, 10 * GIB)
    qemu_io(path, ["write 0 4k", "write 1600M 4k", "write 9G 4k"])
    qemu_img("resize", "-q", "--shrink", path, "2G")
    return Case(path, 2)


def make_prealloc(mode, size):
    def build(tmp):
        path = tmp / f"pre-{mode}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-o", f"preallocation={mode}", path, size)
        return Case(path, size // (512 * MIB))
    return build


def make_dirty(tmp):
    path = tmp / "dirty.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", path, GIB)
    # Killed while the image is open for writing: the dirty bit stays set.
    proc = run([need("qemu-io"), "-c", "write 0 4k", "-c", "sigraise 9", str(path)],
               check=False, timeout=30)
    assert proc.returncode == -9, proc
    return Case(path, 1)


def make_corrupt(tmp):
    path = tmp / "corrupt.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, GIB)
    qemu_io(path, ["write 0 4k"])
    with open(path, "r+b") as f:
        f.seek(72)
        (incompat,) = struct.unpack(">Q", f.read(8))
        f.seek(72)
        f.write(struct.pack(">Q", incompat | 2))
    return Case(path, 1)


def make_bitmaps(tmp):
    path = tmp / "bitmaps.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", path, GIB)
    qemu_img("bitmap", "--add", path, "b0")
    qemu_img("bitmap", "--add", path, "b1")
    qemu_io(path, ["write 0 4k"])
    return Case(path, 1)


CASES = {
    "c512": make_geometry(512, False),
    "c1k": make_geometry(1 * KIB, False),
    "c4k": make_geometry(4 * KIB, False),
    "c16k-ext": make_geometry(16 * KIB, True),
    "c64k": make_geometry(64 * KIB, False),
    "c64k-ext": make_geometry(64 * KIB, True),
    "c128k-ext": make_geometry(128 * KIB, True),
    "c256k": make_geometry(256 * KIB, False),
    "c1m-ext": make_geometry(1 * MIB, True),
    "c2m": make_geometry(2 * MIB, False),
    "c2m-ext": make_geometry(2 * MIB, True),
    "v2-c64k": make_geometry(64 * KIB, False, compat="0.10"),
    "v2-c512": make_geometry(512, False, compat="0.10"),
    "v2-c2m": make_geometry(2 * MIB, False, compat="0.10"),
    "refcount1": make_refcount(1),
    "refcount64": make_refcount(64),
    "zstd": make_zstd,
    "luks": make_luks,
    "data-file": make_data_file,
    "data-file-raw": make_data_file_raw,
    "snapshots": make_snapshots,
    "resized-grown": make_grown,
    "resized-shrunk": make_shrunk,
    "prealloc-metadata": make_prealloc("metadata", 4 * GIB),
    "prealloc-falloc": make_prealloc("falloc", 1 * GIB),
    "dirty": make_dirty,
    "corrupt": make_corrupt,
    "bitmaps": make_bitmaps,
}

COMPAT_VERSION = {"0.10": 2, "1.1": 3}


def compare_with_info(ours, info):
    """Every field both print, with qemu-img's defaults for what v2 images omit."""
    data = info["format-specific"]["data"]
    assert info["format"] == "qcow2"
    assert ours["format"] == "qcow2"
    assert ours["virtual-size"] == info["virtual-size"]
    assert ours["cluster-size"] == info["cluster-size"]
    assert ours["format-version"] == COMPAT_VERSION[data["compat"]]
    assert ours["compression-type"] == data["compression-type"]
    assert ours["refcount-bits"] == data["refcount-bits"]
    assert ours["extended-l2"] == data.get("extended-l2", False)
    assert ours["lazy-refcounts"] == data.get("lazy-refcounts", False)
    assert ours["corrupt"] == data.get("corrupt", False)
    assert ours["data-file"] == data.get("data-file")
    assert ours["dirty"] == info.get("dirty-flag", False)
    assert ours["snapshots"] == len(info.get("snapshots", []))
    assert ours["backing-file"] == info.get("backing-filename")
    assert ours["backing-format"] == info.get("backing-filename-format")


def check_derived(ours):
    """The figures qemu-img does not print, from the spec's formulas (section 2, 5)."""
    c = ours["cluster-size"]
    ext = ours["extended-l2"]
    assert ours["l2-entry-size"] == (16 if ext else 8)
    assert ours["subcluster-size"] == (c // 32 if ext else c)
    full = l2_full(ours["virtual-size"], c, ext)
    assert ours["l2-full-size"] == full
    # L1 entries: one per L2 table's reach, at least enough for the virtual size.
    assert ours["l1-size"] >= -(-ours["virtual-size"] // table_reach(c, ext))
    qd = ours["qemu-default"]
    assert qd["l2-cache-size"] == min(full, 32 * MIB)
    assert qd["refcount-cache-size"] == 4 * c
    assert 0 <= qd["l2-coverage"] <= 1
    if full <= 32 * MIB:
        assert qd["l2-coverage"] == 1
    pol = ours["policy"]
    assert pol["percent"] == 100
    assert pol["cache-size"] == full + 4 * c
    assert pol["l2-cache-size"] == full
    assert pol["refcount-cache-size"] == 4 * c
    assert pol["l2-coverage"] == 1


@pytest.mark.parametrize("name", list(CASES))
def test_matrix(tmp_path, name):
    case = CASES[name](tmp_path)
    [ours] = analyze_json("--allocation", "--percent", "100", case.path)
    assert ours["filename"] == str(case.path)
    info = qemu_info(case.path)
    compare_with_info(ours, info)
    check_derived(ours)
    check = qemu_check(*case.check_args)
    assert ours["allocation"]["data-clusters"] == check["allocated-clusters"], check
    assert ours["allocation"]["l2-tables"] == case.l2_tables


def test_matrix_flags_seen(tmp_path):
    """The special cases really are special: a test of the harness itself."""
    dirty = make_dirty(tmp_path)
    corrupt = make_corrupt(tmp_path)
    [d, c] = analyze_json(dirty.path, corrupt.path)
    assert d["dirty"] and not d["corrupt"]
    assert c["corrupt"] and not c["dirty"]


def test_backing_chain(tmp_path):
    base = tmp_path / "base.qcow2"
    mid = tmp_path / "mid.qcow2"
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-o", "cluster_size=128k", base, 4 * GIB)
    qemu_io(base, ["write 0 1M"])
    qemu_img("create", "-q", "-f", "qcow2", "-o", "extended_l2=on", "-b", "base.qcow2", "-F",
             "qcow2", mid)
    qemu_io(mid, ["write 600M 4k"])
    qemu_img("create", "-q", "-f", "qcow2", "-b", str(mid), "-F", "qcow2", top, 6 * GIB)
    qemu_io(top, ["write 5G 4k", "write 5700M 4k"])

    [ours] = analyze_json("--chain", "--allocation", "--percent", "100", top)
    infos = json.loads(qemu_img("info", "--output=json", "--backing-chain", top).stdout)
    layers = [ours] + ours["backing-chain"]
    assert len(layers) == len(infos) == 3
    for layer, info in zip(layers, infos):
        compare_with_info(layer, info)
        check_derived(layer)
        assert "backing-chain" not in layer or layer is ours
    assert os.path.samefile(layers[1]["filename"], mid)
    assert os.path.samefile(layers[2]["filename"], base)
    for layer, tables in zip(layers, [2, 1, 1]):
        check = qemu_check(layer["filename"])
        assert layer["allocation"]["data-clusters"] == check["allocated-clusters"]
        assert layer["allocation"]["l2-tables"] == tables

    # Without --chain the backing layers are named but not reported.
    [alone] = analyze_json(top)
    assert "backing-chain" not in alone and "allocation" not in alone and "policy" not in alone


def test_chain_with_raw_base(tmp_path):
    base = tmp_path / "base.raw"
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "raw", base, GIB)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", top)
    [ours] = analyze_json("--chain", top)
    assert ours["backing-format"] == "raw"
    [raw] = ours["backing-chain"]
    assert raw["format"] == "raw"
    assert "cluster-size" not in raw


def test_chain_loop_fails(tmp_path):
    a = tmp_path / "a.qcow2"
    b = tmp_path / "b.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", a, GIB)
    qemu_img("create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
    # Point a at b: a loop qemu-img itself refuses to open.
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a)
    proc = ctl("analyze", "--chain", b)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(b) in lines[0], proc.stderr
    # Without --chain the header alone is fine.
    assert ctl("analyze", b).returncode == 0


def test_policy_arithmetic(tmp_path):
    """Spec section 3 for a few percents and caps, on a 1 TiB 64 KiB image (L2FULL 128 MiB)."""
    path = tmp_path / "big.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, TIB)
    full = 128 * MIB
    c = 64 * KIB
    for percent in (1, 10, 25, 33, 50, 99, 100):
        [ours] = analyze_json("--percent", percent, path)
        want = full if percent == 100 else min(full, round_up(-(-full * percent // 100), 4096))
        l2 = max(want, min(full, 32 * MIB))
        pol = ours["policy"]
        assert pol["cache-size"] == l2 + 4 * c, percent
        assert pol["l2-cache-size"] == l2
        assert pol["refcount-cache-size"] == 4 * c
        if percent == 100:
            assert pol["l2-coverage"] == 1
        else:
            # Entries of 4 KiB once the cache does not hold L2FULL.
            assert pol["l2-coverage"] == pytest.approx((l2 // 4096 * 4096) / full)
    [capped] = analyze_json("--percent", 100, "--max", "64MiB", path)
    assert capped["policy"]["cache-size"] == 64 * MIB
    assert capped["policy"]["l2-cache-size"] == 64 * MIB - 4 * c
    assert capped["policy"]["l2-coverage"] == pytest.approx((64 * MIB - 4 * c) / full)
    # A cap below QEMU's minimum (4C + 2 entries of 4 KiB) is raised, with a warning.
    proc = ctl("analyze", "--json", "--percent", 100, "--max", "4K", path)
    assert proc.returncode == 0
    assert "warning" in proc.stderr and str(path) in proc.stderr
    assert json.loads(proc.stdout)[0]["policy"]["cache-size"] == 4 * c + 2 * 4096


def test_json_keys_exact(tmp_path):
    path = tmp_path / "k.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, GIB)
    [ours] = analyze_json("--percent", 50, "--allocation", "--chain", path)
    spec = {"filename", "format", "format-version", "virtual-size", "cluster-size",
            "extended-l2", "subcluster-size", "l2-entry-size", "l1-size", "refcount-bits",
            "compression-type", "dirty", "corrupt", "snapshots", "backing-file",
            "backing-format", "l2-full-size", "qemu-default", "policy", "allocation",
            "backing-chain"}
    # Two more, spelled as qemu-img spells them: an operator asks about both.
    assert set(ours) == spec | {"lazy-refcounts", "data-file"}
    assert set(ours["qemu-default"]) == {"l2-cache-size", "refcount-cache-size", "l2-coverage"}
    assert set(ours["policy"]) == {"percent", "l2-cache-size", "refcount-cache-size",
                                   "cache-size", "l2-coverage"}
    assert set(ours["allocation"]) == {"l2-tables", "data-clusters"}
    assert ours["backing-chain"] == []
    for key in ("virtual-size", "cluster-size", "l2-full-size"):
        assert isinstance(ours[key], int)


def test_several_images_one_failure(tmp_path):
    good = tmp_path / "good.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", good, GIB)
    missing = tmp_path / "missing.qcow2"
    proc = ctl("analyze", "--json", good, missing, good)
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert [d["filename"] for d in data] == [str(good), str(good)]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0]


def fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def directory(tmp_path):
    path = tmp_path / "dir"
    path.mkdir()
    return path


def missing(tmp_path):
    return tmp_path / "nothing-here.qcow2"


def raw(tmp_path):
    path = tmp_path / "disk.raw"
    qemu_img("create", "-q", "-f", "raw", path, 16 * MIB)
    return path


def symlink_loop(tmp_path):
    path = tmp_path / "loop"
    os.symlink("loop", path)
    return path


def empty(tmp_path):
    path = tmp_path / "empty.qcow2"
    path.write_bytes(b"")
    return path


@pytest.mark.parametrize("make,words", [
    (fifo, ["fifo"]),
    (directory, ["directory"]),
    (missing, ["no such file"]),
    (raw, ["not a qcow2"]),
    (symlink_loop, ["symbolic links"]),
    (empty, []),
])
@pytest.mark.parametrize("mode", [[], ["--json"], ["--allocation", "--chain"]])
def test_bad_files(tmp_path, make, words, mode):
    path = make(tmp_path)
    proc = ctl("analyze", *mode, path)  # a hang fails through the 10 s timeout
    assert proc.returncode == 1, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("qcow2-policyctl: ") and str(path) in lines[0]
    for w in words:
        assert w in lines[0].lower(), lines[0]
    if "--json" in mode:
        assert json.loads(proc.stdout) == []
    else:
        assert proc.stdout == ""


def test_declared_format_not_qcow2(tmp_path):
    path = tmp_path / "real.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", path, GIB)
    proc = ctl("analyze", "--format", "raw", path)
    assert proc.returncode == 1
    assert "not a qcow2" in proc.stderr and str(path) in proc.stderr
    assert ctl("analyze", "--format", "qcow2", path).returncode == 0


def test_non_utf8_file_name(tmp_path):
    path = os.path.join(os.fsencode(tmp_path), b"disk-\xff.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", os.fsdecode(path), GIB)
    proc = run([os.fsencode(ctl_path()), b"analyze", b"--json", path], check=False)
    assert proc.returncode == 0, proc.stderr
    [ours] = json.loads(proc.stdout)  # still valid JSON
    assert ours["filename"].endswith("disk-\ufffd.qcow2")
    assert ours["virtual-size"] == GIB
