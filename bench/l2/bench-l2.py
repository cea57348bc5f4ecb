#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The L2 effect: what QEMU's L2 cache size does to host metadata reads and to
request rates, for QEMU's default and for the values qcow2-policyd writes.

For each (layout, virtual size) point this creates a qcow2 image with
qemu-img, gives every L2 table one zero cluster (qemu-io `write -z`, which
allocates the L2 entry but no data cluster, so a read never reaches the host
for data and every host pread64 counted is a metadata read), and measures
three read patterns with cache-size from qcow2-policyctl, each in one qemu-io
process (4 KiB reads, queue depth 1):

  strided    the walk of qemu-img bench -S, stride = one L2 table's coverage
             plus one cluster (walks every L2 table, as in the spec); one
             cycle warms up. Cross-checked with qemu-img bench itself.
  slicewalk  stride = the guest range one 4 KiB L2 slice maps: the cycle
             touches every 4 KiB slice of every L2 table, so it shows the
             minimum: the exact 100% value has no steady-state misses and
             4 KiB less misses on every request. Measured at 100% and
             100% - 4 KiB only (below that every request misses by design).
  random     uniformly random 4 KiB-aligned reads (seeded offset list fed on
             stdin) after a warm-up that fills the cache with the fewest
             misses: one read per L2 table where the cache holds them all,
             else (cache entries + 64) distinct 4 KiB slices.

The warm-up comes first, then measured segments separated by a 4 KiB data
write to a marker cluster. With perf (Debian linux-perf; syscall tracepoints,
root) one run records pread64 and pwrite64 in the kernel without stopping the
process: preads between the first and last marker / requests = steady-state
host metadata reads per request, the time between markers = requests per
second (the fastest of the segments). Without perf, strace counts in one run
and times the markers in a second.

QEMU's qcow2 cache walks all its entries on every miss, so large partial
caches are slow to fill: each run's time is estimated beforehand and runs over
the limits are left out and listed.

Needs qemu-img, qemu-io, strace (or perf) and the project's build; matplotlib
(Debian python3-matplotlib) for the plots. Writes bench-l2.md, bench-l2.json
and bench-l2-*.png into --out-dir.
"""

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
TIB = 1024 * GIB

QEMU_DEFAULT_L2_MAX = 32 * MIB  # DEFAULT_L2_CACHE_MAX_SIZE on Linux
SLICE = 4096  # L2 cache entry size when the cache does not cover L2FULL

# (name, cluster size, extended_l2)
LAYOUTS = {
    '64k': (64 * KIB, False),
    '64k-ext': (64 * KIB, True),
    '128k-ext': (128 * KIB, True),
    '2m-ext': (2 * MIB, True),
}
SIZES = {'64G': 64 * GIB, '256G': 256 * GIB, '1T': TIB, '4T': 4 * TIB, '16T': 16 * TIB}

# Request-count caps: a pattern period above these is cut down (and said so), since
# QEMU's cache lookup cost grows with the number of entries and a run must stay short.
MAX_STRIDED_PERIOD = 32768
MAX_SLICEWALK_PERIOD = 524288  # slicewalk cycle (--max-slices)
RANDOM_REQUESTS = 5120
STEADY_REQUESTS = 3072  # requests measured after the warm-up cycle
REPS = 5  # the measured requests in this many segments; the fastest gives req/s
# per cache entry walked on a miss: seen 1.9 to 3.5 ns (75 us per miss at 32767 entries,
# 0.97 ms at 524287), 4.3 ns when the machine was loaded 5 to 10 on 2 cores
SCAN_NS = 2.5
LOAD_FACTOR = 1.3  # shared 2-core machine, load 2 to 5: large runs took 0.9-1.2x the estimate
RUN_S = 0.3  # two process starts and opens (a 2 GiB cache is allocated at open)
CREATE_S = 1.6e-3  # qemu-io write -z allocating one L2 table (seen: 50 s for 32768)
REQUEST_S = 15e-6  # a qemu-io read that hits (fitted to whole runs on this machine)
BENCH_MAX_STEP = 2**31 - 1  # qemu-img bench: "Must be between 0 and 2147483647"
# qemu-io writes its default 0xcd pattern: the marker is the one data write of that pattern.
MARKER_WRITE = '"\\315\\315\\315'

CACHES = ['default', '25%', '50%', '100%', '100%-4K']
STYLE = {  # fixed per cache so that plots compare; dashes tell overlapping lines apart
    'default': {'color': 'tab:gray', 'marker': 's', 'linestyle': '-'},
    '25%': {'color': 'tab:orange', 'marker': 'v', 'linestyle': '--'},
    '50%': {'color': 'tab:blue', 'marker': '^', 'linestyle': '-.'},
    '100%': {'color': 'tab:green', 'marker': 'o', 'linestyle': '-'},
    '100%-4K': {'color': 'tab:red', 'marker': 'x', 'linestyle': ':'},
}


def human(n):
    for unit, div in (('TiB', TIB), ('GiB', GIB), ('MiB', MIB), ('KiB', KIB)):
        if n >= div and n % div == 0:
            return '%d %s' % (n // div, unit)
    for unit, div in (('TiB', TIB), ('GiB', GIB), ('MiB', MIB), ('KiB', KIB)):
        if n >= div:
            return '%.2f %s' % (n / div, unit)
    return '%d B' % n


class Geometry:
    def __init__(self, vsize, csize, ext):
        self.vsize = vsize
        self.csize = csize
        self.ext = ext
        self.esize = 16 if ext else 8
        self.entries = csize // self.esize  # L2 entries per table
        self.table_cov = self.entries * csize  # guest bytes one L2 table maps
        self.tables = -(-vsize // self.table_cov)
        clusters = -(-vsize // csize)
        self.l2full = -(-(clusters * self.esize) // csize) * csize
        self.slice_cov = (SLICE // self.esize) * csize  # guest bytes one 4 KiB slice maps
        self.slices = -(-vsize // self.slice_cov)
        # the last cluster holds the one data cluster, written between measured segments
        self.marker = (vsize // csize - 1) * csize

    def policy_formula(self, percent):
        """Spec section 3; used only when the project's CLI cannot answer."""
        if percent == 100:
            want = self.l2full
        else:
            want = min(self.l2full, -(-(-(-self.l2full * percent // 100)) // 4096) * 4096)
        l2 = max(want, min(self.l2full, QEMU_DEFAULT_L2_MAX))
        return l2 + 4 * self.csize

    def coverage(self, cache):
        """Share of L2FULL QEMU's L2 cache holds (spec section 2), None = default."""
        if self.l2full == 0:
            return 1.0
        if cache is None:
            l2 = min(self.l2full, QEMU_DEFAULT_L2_MAX)
        elif cache >= self.l2full + 4 * self.csize:
            l2 = self.l2full
        else:
            l2 = cache - min(cache, 4 * self.csize)
        entry = self.csize if l2 >= self.l2full else min(self.csize, SLICE)
        n = max(l2 // entry, 2)
        return min(1.0, n * entry / self.l2full)


def run(cmd, stdin=None, check=True):
    p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check and p.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(cmd[:4]), p.returncode,
                                                   p.stderr.strip()[-400:]))
    return p


def count_preads(cmd, stdin, tmpdir):
    """Host pread64 calls of all threads of cmd (strace -f, seccomp filtered)."""
    out = os.path.join(tmpdir, 'strace.txt')
    run(['strace', '-f', '--seccomp-bpf', '-qq', '-e', 'trace=pread64', '-o', out] + cmd,
        stdin=stdin)
    with open(out) as f:
        n = sum(1 for line in f if 'pread64(' in line)
    os.unlink(out)
    return n


def image_opts(img, cache):
    o = 'driver=qcow2,file.filename=%s' % img
    if cache is not None:
        o += ',cache-size=%d' % cache
    return o


def bench_cmd(img, cache, count, stride):
    return ['qemu-img', 'bench', '-c', str(count), '-d', '1', '-s', '4096', '-S', str(stride),
            '--image-opts', image_opts(img, cache)]


def qemu_io_cmd(img, cache):
    return ['qemu-io', '--image-opts', image_opts(img, cache)]


def steady(a1, a2, n):
    return max(0.0, (a2 - a1) / n)


def split(seq, k):
    n = len(seq) // k
    return [seq[i * n:(i + 1) * n] for i in range(k)]


def summarize(res):
    """Misses per request over all repetitions; the rate of the fastest repetition, the
    one the other load on a shared machine disturbed least."""
    n = sum(r[2] for r in res)
    return {'n': n, 'repetitions': len(res), 'misses-per-request': sum(r[0] for r in res) / n,
            'requests-per-second': max(r[2] / max(r[1], 1e-6) for r in res)}


def ran(p):
    return p is not None and 'misses-per-request' in p


def perf_works(tmpdir):
    """perf (Debian linux-perf) with the syscall tracepoints (root or perf_event_paranoid
    allowing it, tracefs present)."""
    if shutil.which('perf') is None:
        return False
    out = os.path.join(tmpdir, 'probe.data')
    p = run(['perf', 'record', '-q', '-B', '--no-bpf-event', '-o', out, '-e',
             'syscalls:sys_enter_pread64', '--', 'true'], check=False)
    ok = p.returncode == 0 and os.path.exists(out)
    if os.path.exists(out):
        os.unlink(out)
    return ok


class Bench:
    def __init__(self, args):
        self.args = args
        self.ctl = args.qcow2_policyctl
        self.ctl_ok = None
        self.tmpdir = tempfile.mkdtemp(prefix='bench-l2-', dir=args.work_dir)
        self.rows = []
        self.skipped = []
        self.cache_source = set()
        self.minimum_sizes = ()
        self.coverage = []
        self.est_total = 0.0  # estimated seconds of the runs made (or, with --dry-run, planned)
        self.perf_ok = args.tracer != 'strace' and perf_works(self.tmpdir)
        if args.tracer == 'perf' and not self.perf_ok:
            sys.exit('bench-l2: perf cannot record syscall tracepoints here')
        self.tracer = 'perf' if self.perf_ok else 'strace'
        self.strace_fallbacks = 0  # measurements perf failed twice on, counted by strace

    def policy_sizes(self, img, geo):
        """cache-size per percent, from `qcow2-policyctl analyze --json --percent P`."""
        sizes = {}
        for pct in (25, 50, 100):
            val = None
            if self.ctl and self.ctl_ok is not False:
                p = run([self.ctl, 'analyze', '--json', '--percent', str(pct), img], check=False)
                try:
                    val = int(json.loads(p.stdout)[0]['policy']['cache-size'])
                    self.ctl_ok = True
                except (ValueError, KeyError, IndexError, TypeError):
                    if self.ctl_ok is None:
                        print('bench-l2: %s analyze gave no policy.cache-size (%s); using the '
                              'spec formula' % (self.ctl, p.stderr.strip()[:200]),
                              file=sys.stderr)
                    self.ctl_ok = False
            if val is None:
                val = geo.policy_formula(pct)
                self.cache_source.add('formula')
            else:
                self.cache_source.add('qcow2-policyctl')
                if val != geo.policy_formula(pct):
                    print('bench-l2: WARNING qcow2-policyctl says %d for %d%%, the spec formula '
                          '%d' % (val, pct, geo.policy_formula(pct)), file=sys.stderr)
            sizes['%d%%' % pct] = val
        sizes['100%-4K'] = sizes['100%'] - 4096
        sizes['default'] = None
        return sizes

    def make_image(self, path, geo):
        run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
             'cluster_size=%d,extended_l2=%s' % (geo.csize, 'on' if geo.ext else 'off'),
             path, str(geo.vsize)])
        # One zero cluster per L2 table: the table is allocated, no data cluster is.
        script = ''.join('write -z -q %d %d\n' % (t * geo.table_cov, geo.csize)
                         for t in range(geo.tables))
        script += 'write -q %d 4096\n' % geo.marker
        run(['qemu-io', '-t', 'unsafe', '-f', 'qcow2', path], stdin=script)
        # where the marker cluster is in the file: its pwrite64 is found by this offset
        geo.marker_host = None
        for ext in json.loads(run(['qemu-img', 'map', '--output=json', path]).stdout):
            if ext.get('data') and 'offset' in ext and \
                    ext['start'] <= geo.marker < ext['start'] + ext['length']:
                geo.marker_host = ext['offset'] + geo.marker - ext['start']
        if geo.marker_host is None:
            raise RuntimeError('qemu-img map shows no data cluster at the marker')

    def point(self, lname, sname):
        csize, ext = LAYOUTS[lname]
        geo = Geometry(SIZES[sname], csize, ext)
        free = shutil.disk_usage(self.tmpdir).free
        need = geo.l2full + 64 * MIB
        if need > free - self.args.keep_free * GIB:
            self.skipped.append((lname, sname, 'needs %s of disk, %s free' %
                                 (human(need), human(free))))
            return
        if geo.tables > self.args.max_tables:
            self.skipped.append((lname, sname, '%d L2 tables to allocate (limit %d, '
                                 '--max-tables)' % (geo.tables, self.args.max_tables)))
            return
        img = os.path.join(self.tmpdir, '%s-%s.qcow2' % (lname, sname))
        t0 = time.monotonic()
        print('bench-l2: %s %s: %d L2 tables, L2FULL %s' %
              (lname, sname, geo.tables, human(geo.l2full)), flush=True)
        try:
            if self.args.dry_run:
                self.est_total += LOAD_FACTOR * geo.tables * CREATE_S
                t_make = 0
                sizes = {'%d%%' % p: geo.policy_formula(p) for p in (25, 50, 100)}
                sizes['100%-4K'] = sizes['100%'] - 4096
                sizes['default'] = None
                self.minimum_sizes = (sizes['100%'], sizes['100%-4K'])
            else:
                self.make_image(img, geo)
                t_make = time.monotonic() - t0
                sizes = self.policy_sizes(img, geo)
            self.minimum_sizes = (sizes['100%'], sizes['100%-4K'])
            for cname in CACHES:
                if cname not in self.args.caches:
                    continue
                cache = sizes[cname]
                row = {
                    'layout': lname, 'size': sname, 'virtual-size': geo.vsize,
                    'cluster-size': geo.csize, 'extended-l2': geo.ext, 'l2-tables': geo.tables,
                    'l2-full-size': geo.l2full, 'cache': cname, 'cache-size': cache,
                    'coverage': geo.coverage(cache),
                }
                self.measure(img, geo, cache, row)
                self.rows.append(row)
            print('bench-l2: %s %s done in %.1f s (image %.1f s)' %
                  (lname, sname, time.monotonic() - t0, t_make), flush=True)
        finally:
            if os.path.exists(img):
                os.unlink(img)

    def cache_entries(self, geo, cache):
        if cache is None:
            l2 = min(geo.l2full, QEMU_DEFAULT_L2_MAX)
        elif cache >= geo.l2full + 4 * geo.csize:
            l2 = geo.l2full
        else:
            l2 = cache - min(cache, 4 * geo.csize)
        entry = geo.csize if l2 >= geo.l2full else min(geo.csize, SLICE)
        return max(2, l2 // entry)

    def estimate(self, geo, cache, requests, misses, runs=None):
        """QEMU's qcow2 cache looks a missed table up by walking every entry, so a run
        costs about misses x entries x SCAN_NS."""
        runs = runs or (1 if self.perf_ok else 2)
        return runs * LOAD_FACTOR * (RUN_S + requests * REQUEST_S + misses *
                                     self.cache_entries(geo, cache) * SCAN_NS * 1e-9)

    def too_slow(self, geo, cache, requests, misses):
        """The estimate when it is over the limit (the run is then left out, and said so),
        else None (and the estimate is counted)."""
        est = self.estimate(geo, cache, requests, misses)
        limit = self.args.max_run_seconds
        if cache is not None and cache in self.minimum_sizes:
            limit = max(limit, self.args.max_minimum_seconds)  # the minimum must be shown
        if est > limit:
            return est
        self.est_total += est
        return None

    def measure(self, img, geo, cache, row):
        q = self.args.quick
        want = self.args.patterns
        full = row['coverage'] >= 1.0 and self.cache_entries(geo, cache) * geo.csize >= \
            geo.l2full  # whole-table entries, all of them cached
        # strided: the table walk qemu-img bench -S makes. Its access cycle is at most
        # max(tables, entries per table) requests long (less when it wraps around the
        # disk first): one cycle warms up, then STEADY_REQUESTS are measured.
        if full:
            # N requests touch every table once; no cap: T misses cost T^2 x SCAN_NS only
            period = geo.tables + 1
            truncated = False
        else:
            period = min(max(geo.tables, geo.entries), geo.vsize // geo.csize)
            cap = self.args.max_strided_period // q
            truncated = period > cap
            period = min(period, cap)
        period = max(64, period)
        extra = max(256, STEADY_REQUESTS // q)
        stride = geo.table_cov + geo.csize
        if 'strided' not in want:
            row['strided'] = {'left-out': 'not in --patterns'}
        else:
            est = self.too_slow(geo, cache, period + extra, period + extra)
            if est:
                row['strided'] = {'left-out': 'estimated %.0f s' % est}
            elif self.args.dry_run:
                row['strided'] = {'planned': True}
            else:
                offs = [(r * stride) % geo.vsize for r in range(period + extra)]
                segs = [offs[:period]] + split(offs[period:], REPS)
                row['strided'] = summarize(self.qemu_io_segments(img, geo, cache, segs))
                row['strided'].update({'stride': stride, 'warm-up': period,
                                       'warm-up-truncated': truncated})
            # The same walk through qemu-img bench, as the spec's example runs it: the
            # steady state from two request counts (two processes, counted under strace).
            # Only where it is cheap: it repeats the strided warm-up twice.
            if (ran(row['strided']) or row['strided'].get('planned')) and \
                    row['cache'] in ('100%', '100%-4K') and stride <= BENCH_MAX_STEP:
                xest = self.estimate(geo, cache, 2 * (period + extra), 2 * (period + extra), 1)
                if xest > self.args.max_xcheck_seconds:
                    row['strided']['qemu-img-bench-left-out'] = 'estimated %.0f s' % xest
                elif not self.args.dry_run:
                    self.est_total += xest
                    r1 = count_preads(bench_cmd(img, cache, period, stride), None, self.tmpdir)
                    r2 = count_preads(bench_cmd(img, cache, period + extra, stride), None,
                                      self.tmpdir)
                    row['strided']['qemu-img-bench'] = {
                        'n1': period, 'n2': period + extra, 'preads1': r1, 'preads2': r2,
                        'misses-per-request': steady(r1, r2, extra)}
                else:
                    self.est_total += xest

        # slicewalk then random, in one qemu-io process. The warm-up fills the cache with
        # as few misses as possible (each miss walks every cache entry):
        #  - a cache of whole tables that holds them all: one read per L2 table;
        #  - the slicewalk at 100% - 4 KiB: one full cycle (its steady state is cyclic);
        #  - a partial cache for random reads only: the first (cache entries + 64)
        #    slices of the walk, each a miss, which leaves the cache full: uniform random
        #    reads then hit with probability entries / slices whatever slices it holds.
        # Then STEADY_REQUESTS slicewalk requests (only at 100% and 100% - 4 KiB, where
        # they show the minimum: below that every request of it misses by construction),
        # then RANDOM_REQUESTS random ones.
        slices = geo.slices
        nslice = max(256, STEADY_REQUESTS // q)
        nrand = max(256, RANDOM_REQUESTS // q)
        if 'random' not in want and 'slicewalk' not in want:
            row['slicewalk'] = row['random'] = {'left-out': 'not in --patterns'}
            return
        cov = row['coverage']
        ents = self.cache_entries(geo, cache)
        nr = nrand if 'random' in want else 0

        def plan(walk_measured):
            if full:
                warm = [t * geo.table_cov for t in range(geo.tables)]
                warm_misses = geo.tables
            elif walk_measured or ents + 64 >= slices:
                warm = [s * geo.slice_cov for s in range(slices)]
                warm_misses = slices
            else:
                warm = [s * geo.slice_cov for s in range(ents + 64)]
                warm_misses = ents + 64
            nwalk = nslice if walk_measured else 0
            misses = warm_misses + (0 if cov >= 1 else nwalk) + nr * (1 - cov)
            return warm, nwalk, self.estimate(geo, cache, len(warm) + nwalk + nr, misses)

        walk_measured = row['cache'] in ('100%', '100%-4K') and 'slicewalk' in want
        walk_why = None
        if walk_measured and not full and slices > self.args.max_slices // q:
            walk_why = 'the cycle has %d slices (limit %d, --max-slices)' % (
                slices, self.args.max_slices // q)
            walk_measured = False
        warm, nwalk, est = plan(walk_measured)
        if walk_measured and est > self.args.max_minimum_seconds and nr:
            walk_why = 'estimated %.0f s' % est  # the random reads alone may still fit
            walk_measured = False
            warm, nwalk, est = plan(False)
        if not walk_measured and not nr:
            row['slicewalk'] = {'left-out': walk_why or 'not in --patterns'}
            row['random'] = {'left-out': 'not in --patterns'}
            return
        limit = self.args.max_run_seconds
        if cache is not None and cache in self.minimum_sizes:
            limit = max(limit, self.args.max_minimum_seconds)
        if est > limit:
            row['random'] = {'left-out': 'estimated %.0f s' % est}
            row['slicewalk'] = dict(row['random']) if walk_measured else {
                'left-out': walk_why or 'not measured below 100%: every request misses'}
            return
        self.est_total += est
        if self.args.dry_run:
            row['slicewalk'] = ({'planned': True} if walk_measured else
                                {'left-out': walk_why or 'not measured below 100%'})
            row['random'] = {'planned': True} if nr else {'left-out': 'not in --patterns'}
            return
        walk = [(s % slices) * geo.slice_cov for s in range(nwalk)]
        rng = random.Random(0x9c0f2)
        rnd = [rng.randrange(geo.vsize // 4096) * 4096 for _ in range(nr)]
        wsegs = split(walk, REPS) if walk_measured else []
        rsegs = split(rnd, REPS) if nr else []
        res = self.qemu_io_segments(img, geo, cache, [warm] + wsegs + rsegs)
        if walk_measured:
            row['slicewalk'] = summarize(res[:REPS])
            row['slicewalk'].update({'stride': geo.slice_cov, 'warm-up': len(warm)})
        elif row['cache'] in ('100%', '100%-4K'):
            row['slicewalk'] = {'left-out': walk_why or 'not in --patterns'}
        else:
            row['slicewalk'] = {'left-out': 'not measured below 100%: every request misses'}
        if nr:
            row['random'] = summarize(res[-REPS:])
            row['random'].update({'expected': 1.0 - row['coverage'], 'warm-up': len(warm)})
        else:
            row['random'] = {'left-out': 'not in --patterns'}

    def qemu_io_segments(self, img, geo, cache, segs):
        """Run reads of segs[0] (warm-up), then each further segment, in one qemu-io
        process, a 4 KiB data write to the marker cluster between segments. Returns (host
        preads, seconds, requests) for each segment after the first."""
        marker = 'write -q %d 4096\n' % geo.marker
        script = marker.join(''.join('read -q %d 4096\n' % o for o in seg) for seg in segs)
        script += marker
        if self.perf_ok:
            for attempt in (1, 2):
                try:
                    return self.segments_perf(img, geo, cache, segs, script)
                except RuntimeError as e:
                    print('bench-l2: perf run %d failed: %s' % (attempt, e), file=sys.stderr)
            self.strace_fallbacks += 1  # said in the table
        return self.segments_strace(img, geo, cache, segs, script)

    def segments_perf(self, img, geo, cache, segs, script):
        """One run under `perf record` of the syscall tracepoints pread64 and pwrite64
        (enter and exit): the kernel records each call in a buffer, the process never
        stops, so the same run gives the counts (preads between markers) and the times
        (from the end of one marker write to the start of the next)."""
        out = os.path.join(self.tmpdir, 'perf.data')
        run(['perf', 'record', '-q', '-B', '--no-bpf-event', '-m', '8M', '-o', out,
             '-e', 'syscalls:sys_enter_pread64', '-e', 'syscalls:sys_enter_pwrite64',
             '-e', 'syscalls:sys_exit_pwrite64', '--'] + qemu_io_cmd(img, cache), stdin=script)
        p = subprocess.Popen(['perf', 'script', '--show-lost-events', '-i', out, '-F',
                              'tid,time,event,trace'], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        pos = 'pos: 0x%08x' % geo.marker_host
        counts, marks, n, lost = [], [], None, 0
        open_marker = {}  # tid -> enter time of a marker write
        for line in p.stdout:
            if 'sys_enter_pread64' in line:
                if n is not None:
                    n += 1
            elif 'sys_enter_pwrite64' in line:
                if 'count: 0x00001000' in line and line.rstrip().endswith(pos):
                    f = line.split()
                    open_marker[f[0]] = float(f[1].rstrip(':'))
                    if n is not None:
                        counts.append(n)
                    n = 0
            elif 'sys_exit_pwrite64' in line:
                f = line.split()
                if f[0] in open_marker:
                    marks.append((open_marker.pop(f[0]), float(f[1].rstrip(':'))))
            elif 'LOST' in line:
                lost += 1
        err = p.stderr.read()
        p.wait()
        # the kernel drops samples it cannot write (LOST_SAMPLES records); perf script
        # then warns "Processed N samples and lost X%!": such a run's counts are refused
        if re.search(r'\blost\b', err, re.I):
            lost += 1
        size = os.path.getsize(out)
        if lost or len(counts) != len(segs) - 1 or len(marks) != len(segs):
            keep = os.path.join(self.args.out_dir, 'perf-failed-%d.data' % self.strace_fallbacks)
            shutil.move(out, keep)  # for a look with perf script -i
        else:
            os.unlink(out)
        if lost:
            raise RuntimeError('perf lost records: %s' % ' '.join(
                l for l in err.splitlines() if 'not valid for' not in l)[:300])
        if len(counts) != len(segs) - 1 or len(marks) != len(segs):
            raise RuntimeError('qemu-io markers not seen (%d counts, %d marks for %d segments; '
                               'marker at host offset %d; perf.data %d bytes; perf script: %s)'
                               % (len(counts), len(marks), len(segs), geo.marker_host, size,
                                  ' '.join(l for l in err.splitlines()
                                           if 'not valid for' not in l)[:300]))
        times = [marks[i + 1][0] - marks[i][1] for i in range(len(segs) - 1)]
        return [(c, t, len(s)) for c, t, s in zip(counts, times, segs[1:])]

    def segments_strace(self, img, geo, cache, segs, script):
        """Without perf: the preads from a run traced for pread64 and pwrite64, the
        seconds from a second run traced only for pwrite64 (the markers: one stop per
        segment), between the end of one marker write and the start of the next."""
        out = os.path.join(self.tmpdir, 'strace.txt')
        run(['strace', '-f', '--seccomp-bpf', '-qq', '-e', 'trace=pread64,pwrite64', '-o', out]
            + qemu_io_cmd(img, cache), stdin=script)
        counts = []
        n = None
        with open(out) as f:
            for line in f:
                if 'pwrite64(' in line and MARKER_WRITE in line:
                    if n is not None:
                        counts.append(n)
                    n = 0
                elif 'pread64(' in line and n is not None:
                    n += 1
        os.unlink(out)
        if len(counts) != len(segs) - 1:
            raise RuntimeError('qemu-io markers not seen (%d counts for %d segments)' %
                               (len(counts), len(segs) - 1))
        # the timing run: traced for the markers only, so the reads run at full speed
        run(['strace', '-f', '--seccomp-bpf', '-qq', '-ttt', '-T', '-e', 'trace=pwrite64',
             '-o', out] + qemu_io_cmd(img, cache), stdin=script)
        marks = []
        with open(out) as f:
            for line in f:
                if 'pwrite64(' in line and MARKER_WRITE in line:
                    m = re.match(r'\s*\d+\s+([0-9.]+) .*<([0-9.]+)>\s*$', line)
                    if m:
                        marks.append((float(m.group(1)), float(m.group(2))))
        os.unlink(out)
        if len(marks) != len(segs):
            raise RuntimeError('qemu-io markers not seen (%d for %d segments)' %
                               (len(marks), len(segs)))
        times = [marks[i + 1][0] - (marks[i][0] + marks[i][1]) for i in range(len(segs) - 1)]
        return [(c, t, len(s)) for c, t, s in zip(counts, times, segs[1:])]

    def cleanup(self):
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def fmt_pat(p, key):
    if not ran(p):
        return '—'
    if key == 'misses-per-request':
        return '%.3f%s' % (p[key], '*' if p.get('warm-up-truncated') else '')
    return '{:,.0f}'.format(p[key])


def machine_info():
    cpu = '?'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    qemu = run(['qemu-img', '--version']).stdout.splitlines()[0]
    return cpu, os.cpu_count(), qemu


COVERAGE_SIZE = 64 * TIB  # larger than any reach of a 32 MiB cache (8 TiB at 2 MiB clusters)


def coverage_table(ctl, tmpdir):
    """What QEMU's default 32 MiB L2 cache maps, three ways: the arithmetic here
    (32 MiB / entry size x cluster size), qcow2-policyctl recommend's budget-reach, and
    qcow2-policyctl analyze's qemu-default.l2-coverage on a qemu-img-made 64 TiB image."""
    rows = []
    rec = {}
    if ctl:
        p = run([ctl, 'recommend', '--size', str(COVERAGE_SIZE), '--json'], check=False)
        try:
            for lay in json.loads(p.stdout)['layouts']:
                rec[(lay['cluster-size'], lay['extended-l2'])] = lay['budget-reach']
        except (ValueError, KeyError, TypeError):
            pass
    for csize in (64 * KIB, 128 * KIB, 2 * MIB):
        for ext in (False, True):
            reach = QEMU_DEFAULT_L2_MAX // (16 if ext else 8) * csize
            an = None
            if ctl:
                img = os.path.join(tmpdir, 'coverage.qcow2')
                run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o',
                     'cluster_size=%d,extended_l2=%s' % (csize, 'on' if ext else 'off'), img,
                     str(COVERAGE_SIZE)])
                p = run([ctl, 'analyze', '--json', img], check=False)
                try:
                    an = round(json.loads(p.stdout)[0]['qemu-default']['l2-coverage'] *
                               COVERAGE_SIZE)
                except (ValueError, KeyError, IndexError, TypeError):
                    pass
                os.unlink(img)
            rows.append((csize, ext, reach, rec.get((csize, ext)), an))
    return rows


def write_markdown(b, path, elapsed):
    cpu, ncpu, qemu = machine_info()
    L = []
    L.append('# bench-l2: the L2 cache effect\n')
    runs = getattr(b, 'runs', [])
    if runs:
        elapsed = sum(r_.get('seconds', 0) for r_ in runs)
        for r_ in runs:
            b.cache_source.update(r_.get('cache-source', ['qcow2-policyctl']))
    L.append('Machine: %s, %d CPUs; %s. %s %.0f s. cache-size values from: %s.\n' %
             (cpu, ncpu, qemu, 'Runs took' if len(runs) > 1 else 'Run took', elapsed,
              ', '.join(sorted(b.cache_source)) or '—'))
    for run_ in getattr(b, 'runs', []):
        fb = run_.get('strace-fallbacks')
        L.append('- run %s, %d s, counted with %s%s: %s' % (
            run_.get('start', '?'), run_.get('seconds', 0), run_.get('tracer', 'strace'),
            ' (%d measurement%s by strace after perf failed twice)' %
            (fb, 's' if fb > 1 else '') if fb else '',
            ', '.join(run_.get('points', []))))
    L.append('')
    L.append('misses = steady-state host metadata reads (pread64) per 4 KiB read request, '
             'counted after a warm-up in the same qemu-io process; req/s = steady-state '
             'requests per second of that phase (the fastest of 5 segments, timed between '
             'marker writes). '
             'coverage = share of L2FULL the cache holds; `expected` random misses = '
             '1 − coverage. — = left out (see the notes below the table). * = the strided '
             'warm-up was cut (--max-strided-period, the row\'s `warm-up` in the JSON) before '
             'a full cycle of the walk, so the count may include first touches of slices '
             'met later.\n')
    L.append('| layout | size | L2 tables | L2FULL | cache | cache-size | coverage | '
             'strided misses | strided req/s | slicewalk misses | slicewalk req/s | '
             'random misses | random expected | random req/s |')
    L.append('|' + '---|' * 14)
    notes = []
    lorder = list(LAYOUTS)
    sorder = list(SIZES)
    b.rows.sort(key=lambda r: (lorder.index(r['layout']), sorder.index(r['size']),
                               CACHES.index(r['cache'])))
    for r in b.rows:
        rnd = r.get('random')
        L.append('| %s | %s | %d | %s | %s | %s | %.3f | %s | %s | %s | %s | %s | %s | %s |' % (
            r['layout'], r['size'], r['l2-tables'], human(r['l2-full-size']), r['cache'],
            'QEMU default' if r['cache-size'] is None else str(r['cache-size']),
            r['coverage'],
            fmt_pat(r['strided'], 'misses-per-request'),
            fmt_pat(r['strided'], 'requests-per-second'),
            fmt_pat(r.get('slicewalk'), 'misses-per-request'),
            fmt_pat(r.get('slicewalk'), 'requests-per-second'),
            fmt_pat(rnd, 'misses-per-request'),
            '%.3f' % rnd['expected'] if ran(rnd) else '—',
            fmt_pat(rnd, 'requests-per-second')))
        sw, rd = r.get('slicewalk') or {}, r.get('random') or {}
        for pat in ('strided', 'slicewalk', 'random'):
            p = r.get(pat)
            if not p or 'left-out' not in p or p['left-out'].startswith('not measured below'):
                continue
            if pat == 'random' and sw.get('left-out') == p['left-out']:
                continue  # said with the slicewalk
            both = pat == 'slicewalk' and rd.get('left-out') == p['left-out']
            notes.append('%s %s %s %s%s: %s' % (
                r['layout'], r['size'], r['cache'], pat,
                ' and random' if both else '', p['left-out']))
    if notes:
        L.append('\nLeft out (a run estimated longer than --max-run-seconds or '
                 '--max-minimum-seconds, or a cycle too long; slicewalk below 100% is not '
                 'measured by design: every request of it misses):\n')
        L.extend('- ' + n for n in notes)
    if b.skipped:
        L.append('\nPoints left out:\n')
        for lname, sname, why in b.skipped:
            L.append('- %s %s: %s' % (lname, sname, why))
    by = {(r['layout'], r['size'], r['cache']): r for r in b.rows}
    L.append('\n## The minimum: the written 100% value against 4 KiB less\n')
    L.append('Slicewalk (every 4 KiB L2 slice in turn) where it ran, else the strided walk.\n')
    L.append('| layout | size | 100%: cache-size | misses/request | 100% − 4 KiB | '
             'misses/request | pattern |')
    L.append('|---|---|---|---|---|---|---|')
    for r in b.rows:
        m = by.get((r['layout'], r['size'], '100%-4K'))
        if r['cache'] != '100%' or m is None:
            continue
        pat = 'slicewalk' if ran(r.get('slicewalk')) and ran(m.get('slicewalk')) else 'strided'
        if not (ran(r[pat]) and ran(m[pat])):
            continue
        L.append('| %s | %s | %d | %.3f | %d | %.3f | %s |' % (
            r['layout'], r['size'], r['cache-size'], r[pat]['misses-per-request'],
            m['cache-size'], m[pat]['misses-per-request'], pat))
    L.append('\n## Cross-check with qemu-img bench (strided walk)\n')
    L.append('`qemu-img bench -c N -d 1 -s 4096 -S STRIDE`, host preads for two counts N1 and '
             'N2 (one process each); steady = (preads(N2) − preads(N1)) / (N2 − N1). Only where '
             'the stride fits qemu-img bench (≤ 2^31 − 1) and the two runs are estimated at '
             'no more than --max-xcheck-seconds. Counted under strace.\n')
    L.append('| layout | size | cache | stride | N1 | preads | N2 | preads | steady |')
    L.append('|---|---|---|---|---|---|---|---|---|')
    xnotes = []
    for r in b.rows:
        x = r['strided'].get('qemu-img-bench') if ran(r['strided']) else None
        if x:
            L.append('| %s | %s | %s | %d | %d | %d | %d | %d | %.3f |' % (
                r['layout'], r['size'], r['cache'], r['strided']['stride'], x['n1'],
                x['preads1'], x['n2'], x['preads2'], x['misses-per-request']))
        elif r['strided'].get('qemu-img-bench-left-out'):
            xnotes.append('- %s %s %s: %s (--max-xcheck-seconds)' % (
                r['layout'], r['size'], r['cache'], r['strided']['qemu-img-bench-left-out']))
    if xnotes:
        L.append('\nCross-check left out:\n')
        L.extend(xnotes)
    if b.coverage:
        L.append('\n## Coverage of QEMU\'s default 32 MiB L2 cache (spec section 2)\n')
        L.append('Computed here as 32 MiB / L2 entry size × cluster size; by `qcow2-policyctl '
                 'recommend --json` (budget-reach); and by `qcow2-policyctl analyze --json` on '
                 'a qemu-img-made %s image (qemu-default.l2-coverage × virtual size).\n' %
                 human(COVERAGE_SIZE))
        L.append('| cluster size | extended_l2 | 32 MiB maps | recommend | analyze |')
        L.append('|---|---|---|---|---|')
        for csize, ext, reach, rec, an in b.coverage:
            L.append('| %s | %s | %s | %s | %s |' % (
                human(csize), 'on' if ext else 'off', human(reach),
                '—' if rec is None else human(rec), '—' if an is None else human(an)))
    with open(path, 'w') as f:
        f.write('\n'.join(L) + '\n')


def write_plots(b, outdir):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('bench-l2: matplotlib missing (Debian: python3-matplotlib), no plots',
              file=sys.stderr)
        return []
    made = []
    for pat in ('strided', 'slicewalk', 'random'):
        for key, ylabel, fname in (
                ('misses-per-request', 'host metadata reads per request', 'misses'),
                ('requests-per-second', 'requests per second (steady state)', 'rate')):
            layouts = [l for l in LAYOUTS if any(r['layout'] == l and ran(r.get(pat))
                                                 for r in b.rows)]
            if not layouts:
                continue
            fig, axes = plt.subplots(1, len(layouts), figsize=(4.2 * len(layouts), 3.8),
                                     squeeze=False, sharey=(key == 'misses-per-request'))
            for ax, lname in zip(axes[0], layouts):
                for cname in CACHES:
                    pts = [(r['virtual-size'] / GIB, r[pat][key]) for r in b.rows
                           if r['layout'] == lname and r['cache'] == cname
                           and ran(r.get(pat))]
                    if pts:
                        xs, ys = zip(*pts)
                        ax.plot(xs, ys, label=cname, **STYLE[cname])
                ax.set_xscale('log', base=2)
                ax.set_xticks([v / GIB for v in SIZES.values()])
                ax.set_xticklabels(list(SIZES))
                ax.minorticks_off()
                if key == 'requests-per-second':
                    ax.set_yscale('log')
                ax.set_title('%s, %s' % (lname, pat))
                ax.set_xlabel('virtual size')
                ax.set_ylabel(ylabel)
                ax.grid(True, alpha=0.3)
            for ax in axes[0]:
                ax.legend(fontsize='small')
            fig.tight_layout()
            out = os.path.join(outdir, 'bench-l2-%s-%s.png' % (pat, fname))
            fig.savefig(out, dpi=90)
            plt.close(fig)
            made.append(out)
    # the minimum: misses per request at the written 100% value and 4 KiB less
    by = {(r['layout'], r['size'], r['cache']): r for r in b.rows}
    pts = []
    for r in b.rows:
        m = by.get((r['layout'], r['size'], '100%-4K'))
        if r['cache'] == '100%' and m and ran(r.get('slicewalk')) and ran(m.get('slicewalk')):
            pts.append(('%s\n%s' % (r['layout'], r['size']), r['slicewalk']['misses-per-request'],
                        m['slicewalk']['misses-per-request']))
    if pts:
        fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(pts) + 2), 3.8))
        xs = range(len(pts))
        ax.bar([x - 0.2 for x in xs], [p[1] for p in pts], 0.4, label='written 100% value')
        ax.bar([x + 0.2 for x in xs], [p[2] for p in pts], 0.4, label='4 KiB less')
        ax.set_xticks(list(xs))
        ax.set_xticklabels([p[0] for p in pts], fontsize='small')
        ax.set_ylabel('host metadata reads per request')
        ax.set_title('slicewalk: written 100% value vs 4 KiB less')
        ax.set_ylim(0, 1.1)
        ax.legend(fontsize='small')
        fig.tight_layout()
        out = os.path.join(outdir, 'bench-l2-minimum.png')
        fig.savefig(out, dpi=90)
        plt.close(fig)
        made.append(out)
    return made


def merge(b, path):
    """Keep an earlier run's measurements where this run made none (left out, or a point
    or cache it did not run)."""
    with open(path) as f:
        old = json.load(f)
    new = {(r['layout'], r['size'], r['cache']): r for r in b.rows}
    for r in old['rows']:
        k = (r['layout'], r['size'], r['cache'])
        if k not in new:
            b.rows.append(r)
            new[k] = r
            continue
        for pat in ('strided', 'slicewalk', 'random'):
            mine = new[k].get(pat) or {}
            if not ran(mine) and (ran(r.get(pat)) or
                                  mine.get('left-out') == 'not in --patterns'):
                new[k][pat] = r[pat]  # the earlier measurement, or its reason
        for key in ('qemu-img-bench',):
            o = r.get('strided', {})
            if key in o and ran(new[k].get('strided')) and key not in new[k]['strided']:
                new[k]['strided'][key] = o[key]
                new[k]['strided'].pop('qemu-img-bench-left-out', None)
    have = {(r['layout'], r['size']) for r in b.rows}
    b.skipped = [s for s in b.skipped + [tuple(x) for x in old.get('skipped', [])]
                 if (s[0], s[1]) not in have]
    b.runs = old.get('runs', []) + b.runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out-dir', default='.')
    ap.add_argument('--work-dir', default=None, help='where images are made (default out-dir)')
    ap.add_argument('--qcow2-policyctl', default=None, help='the built CLI (for cache sizes)')
    ap.add_argument('--layouts', default=','.join(LAYOUTS))
    ap.add_argument('--sizes', default=','.join(SIZES))
    ap.add_argument('--max-tables', type=int, default=32768,
                    help='leave out points with more L2 tables (creation costs ~1.5 ms each)')
    ap.add_argument('--keep-free', type=int, default=8, help='GiB of disk to leave free')
    ap.add_argument('--budget-seconds', type=float, default=660,
                    help='start no new point after this many seconds')
    ap.add_argument('--max-minimum-seconds', type=float, default=30,
                    help='the same limit for the 100%% and 100%%-4K runs')
    ap.add_argument('--max-run-seconds', type=float, default=12,
                    help='leave out a (point, cache, pattern) whose two runs would take longer')
    ap.add_argument('--max-strided-period', type=int, default=MAX_STRIDED_PERIOD,
                    help='cap on the strided warm-up cycle with a partial cache (requests)')
    ap.add_argument('--max-slices', type=int, default=MAX_SLICEWALK_PERIOD,
                    help='measure no slicewalk with a longer cycle (it fills 4 KiB entries)')
    ap.add_argument('--max-xcheck-seconds', type=float, default=20,
                    help='leave out the qemu-img bench cross-check where it would take longer')
    ap.add_argument('--caches', default=','.join(CACHES), help='which caches to measure')
    ap.add_argument('--patterns', default='strided,slicewalk,random')
    ap.add_argument('--tracer', choices=('auto', 'perf', 'strace'), default='auto',
                    help='perf: one run per measurement, syscall tracepoints (no stops); '
                    'strace: a counted run and a timed run (default: perf if it works)')
    ap.add_argument('--merge', default=None, metavar='JSON',
                    help='an earlier bench-l2.json: its measurements are kept where this run '
                    'made none, and the table, JSON and plots show both')
    ap.add_argument('--dry-run', action='store_true',
                    help='print what would run and the estimated time, run nothing')
    ap.add_argument('--quick', type=int, default=1, help='divide request counts by this')
    args = ap.parse_args()
    args.work_dir = args.work_dir or args.out_dir
    args.caches = args.caches.split(',')
    args.patterns = args.patterns.split(',')
    os.makedirs(args.out_dir, exist_ok=True)
    for tool in ('qemu-img', 'qemu-io', 'strace'):
        if shutil.which(tool) is None:
            sys.exit('bench-l2: %s is needed' % tool)
    b = Bench(args)
    t0 = time.monotonic()
    start = time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())
    try:
        b.coverage = coverage_table(args.qcow2_policyctl, b.tmpdir) if not args.dry_run else []
        # sizes outermost: when the time budget runs out, the largest sizes go first
        for sname in [x for x in args.sizes.split(',') if x]:
            for lname in [x for x in args.layouts.split(',') if x]:
                if time.monotonic() - t0 > args.budget_seconds:
                    b.skipped.append((lname, sname, 'the run had used its time budget '
                                      '(--budget-seconds %d)' % args.budget_seconds))
                    continue
                b.point(lname, sname)
    finally:
        b.cleanup()
    elapsed = time.monotonic() - t0
    if args.dry_run:
        for lname, sname, why in b.skipped:
            print('left out: %s %s: %s' % (lname, sname, why))
        for r in b.rows:
            for pat in ('strided', 'slicewalk', 'random'):
                if 'left-out' in r.get(pat, {}):
                    print('left out: %s %s %s %s: %s' % (r['layout'], r['size'], r['cache'],
                                                        pat, r[pat]['left-out']))
        print('bench-l2: estimated %.0f s' % b.est_total)
        return
    print('bench-l2: estimated %.0f s, took %.0f s' % (b.est_total, elapsed))
    b.runs = [{'tracer': b.tracer, 'strace-fallbacks': b.strace_fallbacks,
               'seconds': round(elapsed), 'start': start,
               'cache-source': sorted(b.cache_source),
               'points': sorted({'%s %s' % (r['layout'], r['size']) for r in b.rows})}]
    if not b.rows:
        b.runs = []  # nothing measured: only the merged runs' tables and plots
    if args.merge:
        merge(b, args.merge)
    with open(os.path.join(args.out_dir, 'bench-l2.json'), 'w') as f:
        json.dump({'rows': b.rows, 'skipped': b.skipped, 'runs': b.runs}, f, indent=1)
    md = os.path.join(args.out_dir, 'bench-l2.md')
    write_markdown(b, md, elapsed)
    plots = write_plots(b, args.out_dir)
    print('bench-l2: wrote %s and %d plots in %.0f s' % (md, len(plots), elapsed))


if __name__ == '__main__':
    main()
