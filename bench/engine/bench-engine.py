#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The engine: header analysis of many images in one call, and the allocation scan
against qemu-img check and qemu-img map at a few sizes.

1. Header analysis: a few prototype images made with qemu-img (different cluster sizes,
   extended L2, a backing file, v2 and v3), copied to --images files (10,000 by default;
   copying is much faster than running qemu-img create 10,000 times), then
   `qcow2-policyctl analyze --json --percent 100 F1 … FN` in one process, timed (median
   of --runs, page cache warm), checked to return N objects; reported as images/s. For
   scale, `qemu-img info --output=json` on a sample of the same files, one process per
   image as a management tool would run it.
2. Allocation scan: bench/bench-allocation.py (the 1 TiB preallocation=metadata
   benchmark of issue 3) run for each of --alloc-sizes, which times analyze
   --allocation, qemu-img check and qemu-img map in turns on the same file; this script
   collects the ratios into one table.

Writes bench-engine.md and bench-engine.json into --out-dir.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import qpbench  # noqa: E402

GIB = 1 << 30

PROTOTYPES = [
    # (name, qemu-img create options, size)
    ('v3-64k', 'cluster_size=65536', '1T'),
    ('v3-64k-ext', 'cluster_size=65536,extended_l2=on', '256G'),
    # (not 2 MiB clusters: qemu-img writes 6 MiB files of them)
    ('v3-128k-ext', 'cluster_size=131072,extended_l2=on', '4T'),
    ('v2-64k', 'compat=0.10,cluster_size=65536', '100G'),
]
SIZES = {'64G': 64 * GIB, '256G': 256 * GIB, '1T': 1024 * GIB, '4T': 4096 * GIB}


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError('%s exited %d: %s' % (cmd[:3], p.returncode, p.stderr[-300:]))
    return dt, p.stdout


def make_images(tmp, n):
    protos = []
    base = os.path.join(tmp, 'base.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', base, '1T'], check=True)
    for name, opts, size in PROTOTYPES:
        p = os.path.join(tmp, 'proto-%s.qcow2' % name)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', opts, p, size],
                       check=True)
        protos.append(p)
    # one with a backing file (relative name, declared format), as overlays are
    ov = os.path.join(tmp, 'proto-overlay.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2',
                    ov], check=True)
    protos.append(ov)
    paths = []
    t0 = time.monotonic()
    for i in range(n):
        dst = os.path.join(tmp, 'img%05d.qcow2' % i)
        src = protos[i % len(protos)]
        # copyfile uses copy_file_range/sendfile: extents shared where the file system can
        shutil.copyfile(src, dst)
        paths.append(dst)
    return paths, protos, time.monotonic() - t0


def header_bench(ctl, tmp, n, runs, sample):
    paths, protos, t_copy = make_images(tmp, n)
    size = sum(os.path.getsize(p) for p in protos) / len(protos)
    cmd = [ctl, 'analyze', '--json', '--percent', '100'] + [os.path.basename(p) for p in paths]
    cwd = os.getcwd()
    os.chdir(tmp)  # short relative names keep the argument list well under ARG_MAX
    try:
        times = []
        dt, out = timed(cmd)  # warm-up (page cache), and the output must be complete
        got = json.loads(out)
        if len(got) != n or any('policy' not in o for o in got):
            raise RuntimeError('analyze returned %d objects for %d images' % (len(got), n))
        for _ in range(runs):
            times.append(timed(cmd)[0])
        info = []
        for p in paths[:sample]:
            info.append(timed(['qemu-img', 'info', '--output=json', os.path.basename(p)])[0])
    finally:
        os.chdir(cwd)
    med = statistics.median(times)
    qi = statistics.median(info)
    return {
        'images': n, 'prototypes': [os.path.basename(p) for p in protos],
        'image-bytes-avg': size, 'copy-seconds': t_copy, 'runs': times,
        'median-seconds': med, 'images-per-second': n / med,
        'qemu-img-info-sample': sample, 'qemu-img-info-median-seconds': qi,
        'qemu-img-info-images-per-second': 1 / qi,
        'ratio': (n * qi) / med,
    }


def alloc_bench(script, ctl, out_dir, sizes, runs):
    rows = []
    for sname in sizes:
        d = os.path.join(out_dir, 'alloc-%s' % sname)
        os.makedirs(d, exist_ok=True)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, script, '--ctl', ctl, '--out-dir', d,
                            '--runs', str(runs), '--size', str(SIZES[sname]),
                            '--min-ratio', '0'], capture_output=True, text=True)
        img = os.path.join(d, 'bench-allocation.qcow2')
        if os.path.exists(img):
            os.unlink(img)  # up to 512 MiB of L2 tables each: do not keep them
        if p.returncode != 0:
            rows.append({'size': sname, 'error': (p.stderr or p.stdout).strip()[-300:]})
            continue
        with open(os.path.join(d, 'bench-allocation.json')) as f:
            j = json.load(f)
        med = {k: statistics.median(v) for k, v in j['times'].items()}
        ours = med.pop('qcow2-policyctl analyze --allocation')
        row = {'size': sname, 'l2-tables': j['allocation']['l2-tables'],
               'data-clusters': j['allocation']['data-clusters'],
               'analyze-seconds': ours, 'seconds': time.monotonic() - t0}
        for k, v in med.items():
            row[k] = v
            row[k + ' ratio'] = v / ours
        rows.append(row)
        print('bench-engine: allocation %s: analyze %.3f s, %s' % (
            sname, ours, ', '.join('%s %.3f s (%.1fx)' % (k, v, v / ours)
                                   for k, v in med.items())), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--ctl', required=True, help='the built qcow2-policyctl')
    ap.add_argument('--allocation-script', required=True, help='bench/bench-allocation.py')
    ap.add_argument('--out-dir', default='.')
    ap.add_argument('--images', type=int, default=10000)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--info-sample', type=int, default=200)
    ap.add_argument('--alloc-sizes', default='64G,256G,1T,4T')
    args = ap.parse_args()
    for tool in ('qemu-img',):
        if shutil.which(tool) is None:
            sys.exit('bench-engine: %s is needed' % tool)
    os.makedirs(args.out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='bench-engine-', dir=args.out_dir)
    try:
        hdr = header_bench(args.ctl, tmp, args.images, args.runs, args.info_sample)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print('bench-engine: analyze of %d images: %.3f s (%.0f images/s)' % (
        hdr['images'], hdr['median-seconds'], hdr['images-per-second']), flush=True)
    alloc = alloc_bench(args.allocation_script, args.ctl, args.out_dir,
                        [s for s in args.alloc_sizes.split(',') if s], args.runs)

    cpu = qpbench.cpu_model()
    qemu = subprocess.run(['qemu-img', '--version'], capture_output=True,
                          text=True).stdout.splitlines()[0]
    L = ['# bench-engine: header analysis and allocation scan\n',
         'Machine: %s, %d CPUs; %s. Page cache warm (one untimed run first).\n' %
         (cpu, os.cpu_count(), qemu),
         '## Header analysis in one call\n',
         '`qcow2-policyctl analyze --json --percent 100` on %s images (copies of %d prototypes: '
         '%s; %.0f KiB each on average), median of %d runs.\n' % (
             '{:,}'.format(hdr['images']), len(hdr['prototypes']),
             ', '.join(hdr['prototypes']), hdr['image-bytes-avg'] / 1024, len(hdr['runs'])),
         '| images | analyze, one call (s) | images/s | runs (s) | qemu-img info, one process '
         'per image (s/image, median of %d) | qemu-img info images/s | ratio |' %
         hdr['qemu-img-info-sample'],
         '|---|---|---|---|---|---|---|',
         '| {:,} | {:.3f} | {:,.0f} | {} | {:.4f} | {:,.0f} | {:.0f}x |'.format(
             hdr['images'], hdr['median-seconds'], hdr['images-per-second'],
             ', '.join('%.3f' % t for t in hdr['runs']), hdr['qemu-img-info-median-seconds'],
             hdr['qemu-img-info-images-per-second'], hdr['ratio']),
         '\n## Allocation scan against qemu-img check and map\n',
         'Each size: `qemu-img create -f qcow2 -o preallocation=metadata` (every L2 table and '
         'data cluster allocated), the three tools timed in turns on the same file by '
         'bench/bench-allocation.py, medians of %d runs; ratio = tool / analyze.\n' % args.runs,
         '| size | L2 tables | data clusters | analyze --allocation (s) | qemu-img check (s) | '
         'check / analyze | qemu-img map (s) | map / analyze |',
         '|---|---|---|---|---|---|---|---|']
    for r in alloc:
        if 'error' in r:
            L.append('| %s | failed: %s |||||||' % (r['size'], r['error'].replace('\n', ' ')))
            continue
        L.append('| {} | {:,} | {:,} | {:.3f} | {:.3f} | {:.1f}x | {} | {} |'.format(
            r['size'], r['l2-tables'], r['data-clusters'], r['analyze-seconds'],
            r['qemu-img check'], r['qemu-img check ratio'],
            '%.3f' % r['qemu-img map --output=json'] if 'qemu-img map --output=json' in r
            else '—',
            '%.1fx' % r['qemu-img map --output=json ratio']
            if 'qemu-img map --output=json' in r else '—'))
    with open(os.path.join(args.out_dir, 'bench-engine.md'), 'w') as f:
        f.write('\n'.join(L) + '\n')
    with open(os.path.join(args.out_dir, 'bench-engine.json'), 'w') as f:
        json.dump({'header': hdr, 'allocation': alloc}, f, indent=1)
    print('bench-engine: wrote %s' % os.path.join(args.out_dir, 'bench-engine.md'))


if __name__ == '__main__':
    main()
