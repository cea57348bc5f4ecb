# SPDX-License-Identifier: LGPL-2.1-or-later
"""`qcow2-policyctl recommend`: the real figures (spec section 2's coverage table, extended L2
halving what a 32 MiB cache maps), the rule, and the qemu-img line it prints."""

import json
import re
import shlex

import pytest

from conftest import GIB, KIB, MIB, TIB, ctl, l2_full, qemu_img, qemu_info


def recommend_json(*args):
    proc = ctl("recommend", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def layout(data, cluster, ext):
    [found] = [l for l in data["layouts"]
               if l["cluster-size"] == cluster and l["extended-l2"] == ext]
    return found


# Spec section 2: coverage of a 32 MiB L2 cache.
SPEC_TABLE = [
    (64 * KIB, False, 256 * GIB),
    (64 * KIB, True, 128 * GIB),
    (128 * KIB, False, 512 * GIB),
    (128 * KIB, True, 256 * GIB),
    (2 * MIB, False, 8 * TIB),
    (2 * MIB, True, 4 * TIB),
]


@pytest.mark.parametrize("size", ["100G", "1T", "16T"])
def test_spec_coverage_table(size):
    data = recommend_json("--size", size)
    assert data["cache-budget"] == 32 * MIB
    for cluster, ext, reach in SPEC_TABLE:
        assert layout(data, cluster, ext)["budget-reach"] == reach


def test_extended_l2_halves_coverage_not_4tib():
    data = recommend_json("--size", "4T")
    plain = layout(data, 64 * KIB, False)
    ext = layout(data, 64 * KIB, True)
    assert plain["budget-reach"] == 256 * GIB
    assert ext["budget-reach"] == 128 * GIB  # not 4 TiB, as an article claims
    assert ext["l2-coverage"] == pytest.approx(plain["l2-coverage"] / 2)
    assert ext["l2-coverage"] == pytest.approx(128 / 4096)
    assert ext["subcluster-size"] == 2 * KIB
    proc = ctl("recommend", "--size", "4T")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "maps 256 GiB without extended L2 and 128 GiB with it" in text
    assert "4 TiB with it" not in text


def test_layout_figures():
    disk = 3 * TIB + 5 * GIB
    data = recommend_json("--size", str(disk), "--cache", "48MiB")
    assert data["disk-size"] == disk
    assert len(data["layouts"]) == 12
    assert {l["cluster-size"] for l in data["layouts"]} == {
        64 * KIB, 128 * KIB, 256 * KIB, 512 * KIB, 1 * MIB, 2 * MIB}
    for l in data["layouts"]:
        c, ext = l["cluster-size"], l["extended-l2"]
        full = l2_full(disk, c, ext)
        assert l["l2-full-size"] == full
        assert l["full-cache-size"] == full + 4 * c
        assert l["l2-entry-size"] == (16 if ext else 8)
        assert l["subcluster-size"] == (c // 32 if ext else c)
        assert l["budget-reach"] == 48 * MIB // l["l2-entry-size"] * c
        if full <= 48 * MIB:
            assert l["l2-coverage"] == 1
        else:
            assert l["l2-coverage"] == pytest.approx(48 * MIB / full)


@pytest.mark.parametrize("size,io,cluster,ext", [
    # 1 TiB, 4 KiB writes: 512 KiB clusters with extended L2 (16 KiB granularity) are the
    # finest layout whose 32 MiB L2 full size fits the default budget.
    ("1T", None, 512 * KIB, True),
    # 100 GiB: 128 KiB + extended L2 gives 4 KiB granularity in 12.5 MiB.
    ("100G", None, 128 * KIB, True),
    # 64 KiB writes on 100 GiB: 64 KiB plain clusters fit; ties go to the smaller cluster.
    ("100G", "64K", 64 * KIB, False),
    # 64 TiB: nothing fits 32 MiB; the layout that maps the most (2 MiB, no extended L2).
    ("64T", None, 2 * MIB, False),
    # An I/O size no layout reaches asks for the coarsest granularity: 2 MiB clusters.
    ("1T", "4M", 2 * MIB, False),
])
def test_rule(size, io, cluster, ext):
    args = ["--size", size] + (["--io-size", io] if io else [])
    data = recommend_json(*args)
    rec = data["recommended"]
    assert (rec["cluster-size"], rec["extended-l2"]) == (cluster, ext)
    assert "smallest granularity" in data["rule"]


def test_bigger_budget_allows_finer_granularity():
    small = recommend_json("--size", "1T")["recommended"]
    big = recommend_json("--size", "1T", "--cache", "256M")["recommended"]
    assert big["subcluster-size"] < small["subcluster-size"]
    assert big["l2-full-size"] <= 256 * MIB


def test_qemu_img_line_creates_that_layout(tmp_path):
    data = recommend_json("--size", "1T")
    command = data["qemu-img-command"]
    assert command.startswith("qemu-img create -f qcow2 -o cluster_size=")
    assert "extended_l2=on" in command
    argv = shlex.split(command)
    assert argv[-2] == "IMG" and argv[-1] == "1T"
    image = tmp_path / "rec.qcow2"
    argv[-2] = str(image)
    qemu_img(*argv[1:])
    info = qemu_info(image)
    assert info["virtual-size"] == TIB
    assert info["cluster-size"] == data["recommended"]["cluster-size"]
    assert info["format-specific"]["data"]["extended-l2"] is True
    # The text output prints the same line.
    proc = ctl("recommend", "--size", "1T")
    assert command in proc.stdout


def test_text_table():
    proc = ctl("recommend", "--size", "1T")
    assert proc.returncode == 0
    rows = [l for l in proc.stdout.splitlines() if re.match(r"^[* ] +\d", l)]
    assert len(rows) == 12
    assert sum(1 for r in rows if r.startswith("*")) == 1
    assert "Rule" in proc.stdout or "smallest granularity" in proc.stdout
    assert "cache-size 34 MiB" in proc.stdout


def test_disk_too_large_for_small_clusters():
    # 64 KiB clusters hold at most 2 PiB (QEMU's 32 MiB L1 limit), extended L2 1 PiB.
    data = recommend_json("--size", "3P")
    assert layout(data, 64 * KIB, False)["possible"] is False
    assert layout(data, 2 * MIB, False)["possible"] is True
    assert data["recommended"]["possible"] is True
    assert layout(recommend_json("--size", "2P"), 64 * KIB, False)["possible"] is True
    assert layout(recommend_json("--size", "2P"), 64 * KIB, True)["possible"] is False
