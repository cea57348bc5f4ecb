# SPDX-License-Identifier: LGPL-2.1-or-later
"""The cache figures of `analyze` against QEMU's own behaviour.

qemu-img bench reads with a stride that lands in a new L2 table (or a new 4 KiB slice of one)
on every request, and strace counts QEMU's host reads. The images have one zero cluster per
L2 table (qemu-io `write -z`: the L2 table is allocated, no data cluster is), so a guest read
never reads data from the host and every host read counted is a metadata read
(../shared/docs/testing.md, "Seeing QEMU's L2 cache work").

- policy.cache-size at --percent 100 must leave no steady-state L2 reads: the host reads are
  the open plus one read per L2 table, once; 4 KiB less must give several times as many.
- qemu-default.l2-coverage must be what QEMU's default cache really holds.
"""


import pytest

from conftest import GIB, KIB, MIB, TIB, analyze_json, need, run

# Host reads QEMU makes opening an image and setting up the bench (header, L1 table,
# refcount table and block, and so on): seen as 7 here; a margin for other QEMU versions.
OPEN_READS = 64


def make_image(path, size, cluster, extended_l2):
    """One zero cluster at the start of every L2 table."""
    run([need("qemu-img"), "create", "-q", "-f", "qcow2", "-o",
         f"cluster_size={cluster},extended_l2={'on' if extended_l2 else 'off'}",
         str(path), str(size)])
    reach = table_reach(cluster, extended_l2)
    args = [need("qemu-io"), "-t", "unsafe"]
    for offset in range(0, size, reach):
        args += ["-c", f"write -z {offset} 4k"]
    run(args + [str(path)], timeout=120)
    [info] = analyze_json("--allocation", "--percent", "100", path)
    assert info["allocation"]["l2-tables"] == -(-size // reach)
    assert info["allocation"]["data-clusters"] == 0
    return info


def table_reach(cluster, extended_l2):
    return cluster * (cluster // (16 if extended_l2 else 8))


def slice_reach(cluster, extended_l2):
    """Guest bytes one 4 KiB L2 cache entry maps (the whole table for clusters <= 4 KiB)."""
    return min(cluster, 4096) // (16 if extended_l2 else 8) * cluster


def host_reads(image_opts, count, stride):
    """Host pread64/preadv calls of one qemu-img bench run of @count 4 KiB reads."""
    proc = run([need("strace"), "-f", "-c", "-e", "trace=pread64,preadv",
                need("qemu-img"), "bench", "-c", str(count), "-d", "1", "-S", str(stride),
                "--image-opts", image_opts], timeout=300)
    calls = 0
    seen = False
    for line in proc.stderr.splitlines():
        fields = line.split()
        if fields and fields[-1] in ("pread64", "preadv"):
            calls += int(fields[3])
            seen = True
    assert seen, proc.stderr
    return calls


def opts(path, cache_size=None):
    text = f"driver=qcow2,file.filename={path}"
    if cache_size is not None:
        text += f",cache-size={cache_size}"
    return text


@pytest.mark.parametrize("name,size,cluster,ext,requests", [
    # The spec's case: 1 TiB, 64 KiB clusters, L2FULL 128 MiB, 2,048 L2 tables.
    ("64k-1t", TIB, 64 * KIB, False, 20000),
    # Extended L2: 16-byte entries, a table maps 256 MiB; 1,024 tables, L2FULL 64 MiB.
    ("64k-ext-256g", 256 * GIB, 64 * KIB, True, 10000),
    # 32 KiB clusters: a table maps 128 MiB; 512 tables, L2FULL 16 MiB. (qemu-img bench
    # takes strides below 2 GiB only, so a table of 128 KiB clusters is out of its reach.)
    ("32k-64g", 64 * GIB, 32 * KIB, False, 10000),
])
def test_full_policy_vs_4k_less(tmp_path, name, size, cluster, ext, requests):
    path = tmp_path / f"{name}.qcow2"
    info = make_image(path, size, cluster, ext)
    tables = info["allocation"]["l2-tables"]
    exact = info["policy"]["cache-size"]
    assert exact == info["l2-full-size"] + 4 * cluster
    stride = table_reach(cluster, ext) + cluster  # a new table and a new cluster each time

    full = host_reads(opts(path, exact), requests, stride)
    less = host_reads(opts(path, exact - 4096), requests, stride)
    # Each L2 table is read once, whole; nothing after the warm-up.
    assert tables <= full <= tables + OPEN_READS, (full, tables)
    assert less >= 3 * full, (less, full)


@pytest.mark.parametrize("name,size,cluster,ext", [
    ("64k", 64 * GIB, 64 * KIB, False),
    ("64k-ext", 32 * GIB, 64 * KIB, True),
    ("4k", 1 * GIB, 4 * KIB, False),
])
def test_steady_state(tmp_path, name, size, cluster, ext):
    """A walk over every 4 KiB slice of every L2 table, in a cycle: with the exact value
    the steady state has no host reads at all, with 4 KiB less every request misses.
    Steady state = reads(n2) - reads(n1), which cancels the open and the warm-up."""
    path = tmp_path / f"steady-{name}.qcow2"
    info = make_image(path, size, cluster, ext)
    exact = info["policy"]["cache-size"]
    stride = slice_reach(cluster, ext)
    cycle = size // stride
    n1 = 2 * cycle + 500
    n2 = n1 + 2000
    for cache, lo, hi in [(exact, 0, 5), (exact - 4096, 0.95 * (n2 - n1), 1.05 * (n2 - n1))]:
        steady = host_reads(opts(path, cache), n2, stride) - host_reads(opts(path, cache), n1,
                                                                         stride)
        assert lo <= steady <= hi, (cache, steady, n2 - n1)


def test_qemu_default_covers_what_analyze_says(tmp_path):
    """512 GiB, 64 KiB clusters: L2FULL 64 MiB, QEMU's default 32 MiB covers half. A slice
    walk over the first half (a raw view of the first 256 GiB) has no steady-state misses
    with no cache options; over the whole image every request misses."""
    size = 512 * GIB
    path = tmp_path / "default.qcow2"
    info = make_image(path, size, 64 * KIB, False)
    assert info["l2-full-size"] == 64 * MIB
    assert info["qemu-default"]["l2-cache-size"] == 32 * MIB
    assert info["qemu-default"]["l2-coverage"] == 0.5
    covered = int(size * info["qemu-default"]["l2-coverage"])
    stride = slice_reach(64 * KIB, False)

    def steady(image_opts, cycle):
        # Past one whole cycle, so that only steady-state reads differ.
        n1 = cycle + 500
        n2 = n1 + 2000
        return (host_reads(image_opts, n2, stride) - host_reads(image_opts, n1, stride)) / 2000

    half = f"driver=raw,size={covered},file.driver=qcow2,file.file.filename={path}"
    whole = f"driver=raw,file.driver=qcow2,file.file.filename={path}"
    assert steady(half, covered // stride) <= 0.005
    assert steady(whole, size // stride) >= 0.95
