#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Allocation scan: `qcow2-policyctl analyze --allocation` against `qemu-img check` (and
`qemu-img map --output=json` for reference) on a 1 TiB qcow2 image made with
`qemu-img create -f qcow2 -o preallocation=metadata` (2,048 L2 tables, 16 Mi clusters).

Every tool runs once to warm the page cache, then the tools take turns (A B C A B C …) so
that both see the same cache and the same load. The image is kept in --out-dir and reused
when it is already there with the same size. Prints a Markdown table and writes it to
--out-dir/bench-allocation.md (and the raw times to bench-allocation.json).

Issue 3 asks for a scan at least 10 times faster than qemu-img check: the script exits 1
when the ratio of the medians is below --min-ratio (10).
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qpbench  # noqa: E402

TIB = 1 << 40


def fail(message):
    print(f"bench-allocation: {message}", file=sys.stderr)
    sys.exit(1)


def tool(name):
    path = shutil.which(name)
    if path is None:
        fail(f"{name} not found (tools/install-deps.sh installs it)")
    return path


def output(args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def make_image(qemu_img, path, size):
    if os.path.exists(path):
        try:
            info = json.loads(output([qemu_img, "info", "--output=json", path]))
            if info.get("virtual-size") == size:
                return False
        except subprocess.CalledProcessError:
            pass
        os.unlink(path)
    subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata",
                    path, str(size)], check=True)
    return True


def cpu_children():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args):
    """Wall-clock seconds, CPU seconds (user + system, which load on the machine barely
    changes) and stdout of one run."""
    cpu = cpu_children()
    start = time.perf_counter()
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    cpu = cpu_children() - cpu
    # qemu-img check exits 0 on a clean image; anything else would make the times meaningless.
    if proc.returncode != 0:
        fail(f"{args!r} exited {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed, cpu, proc.stdout


def machine():
    model = qpbench.cpu_model("unknown CPU")
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctl", required=True, help="the built qcow2-policyctl")
    parser.add_argument("--out-dir", required=True, help="where the image and results go")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (5)")
    parser.add_argument("--size", type=int, default=TIB, help="virtual size in bytes (1 TiB)")
    parser.add_argument("--min-ratio", type=float, default=10.0)
    parser.add_argument("--no-map", action="store_true", help="skip qemu-img map")
    args = parser.parse_args()

    qemu_img = tool("qemu-img")
    os.makedirs(args.out_dir, exist_ok=True)
    image = os.path.join(args.out_dir, "bench-allocation.qcow2")
    print(f"image: {image}", file=sys.stderr)
    created = make_image(qemu_img, image, args.size)

    tools = {
        "qcow2-policyctl analyze --allocation": [args.ctl, "analyze", "--json", "--allocation",
                                                  image],
        "qemu-img check": [qemu_img, "check", "--output=json", image],
    }
    if not args.no_map:
        tools["qemu-img map --output=json"] = [qemu_img, "map", "--output=json", image]

    # Warm-up, and the two counts must agree or the comparison means nothing.
    outputs = {name: timed(cmd)[2] for name, cmd in tools.items()}
    ours = json.loads(outputs["qcow2-policyctl analyze --allocation"])[0]["allocation"]
    check = json.loads(outputs["qemu-img check"])
    if ours["data-clusters"] != check["allocated-clusters"]:
        fail(f"data clusters differ: analyze {ours['data-clusters']}, "
             f"qemu-img check {check['allocated-clusters']}")

    times = {name: [] for name in tools}
    cpus = {name: [] for name in tools}
    for _ in range(args.runs):
        for name, cmd in tools.items():
            wall, cpu, _out = timed(cmd)
            times[name].append(wall)
            cpus[name].append(cpu)

    ours_name = "qcow2-policyctl analyze --allocation"
    base = statistics.median(times[ours_name])
    base_cpu = statistics.median(cpus[ours_name])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        cpu = statistics.median(cpus[name])
        rows.append((name, min(values), median, max(values), median / base, cpu,
                     cpu / base_cpu if base_cpu > 0 else float("inf")))
    ratio = statistics.median(times["qemu-img check"]) / base
    cpu_ratio = (statistics.median(cpus["qemu-img check"]) / base_cpu if base_cpu > 0
                 else float("inf"))

    m = machine()
    qemu_version = output([qemu_img, "--version"]).splitlines()[0]
    lines = [
        "# Allocation scan benchmark",
        "",
        f"Image: {args.size} bytes virtual, `qemu-img create -f qcow2 -o preallocation=metadata`"
        f", {ours['l2-tables']} L2 tables, {ours['data-clusters']} data clusters"
        f" ({'created' if created else 'reused'} in the build directory).",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}; {qemu_version};"
        f" load average at the end {m['load']}.",
        f"Page cache warm for every tool (one untimed run each), {args.runs} timed runs each,"
        " taken in turns.",
        "",
        "| tool | wall min (s) | wall median (s) | wall max (s) | wall vs analyze |"
        " CPU median (s) | CPU vs analyze |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, lo, med, hi, rel, cpu, cpu_rel in rows:
        lines.append(f"| `{name}` | {lo:.3f} | {med:.3f} | {hi:.3f} | {rel:.1f}x |"
                     f" {cpu:.3f} | {cpu_rel:.1f}x |")
    lines += ["", f"qemu-img check / analyze --allocation, wall-clock medians: **{ratio:.1f}x**"
              f" (required: at least {args.min_ratio:g}x); CPU time medians: {cpu_ratio:.1f}x."]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(args.out_dir, "bench-allocation.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out_dir, "bench-allocation.json"), "w") as f:
        json.dump({"machine": m, "qemu": qemu_version, "size": args.size, "times": times,
                   "cpu": cpus, "ratio": ratio, "cpu-ratio": cpu_ratio, "allocation": ours}, f, indent=2)
    if ratio < args.min_ratio:
        fail(f"ratio {ratio:.1f}x is below {args.min_ratio:g}x")


if __name__ == "__main__":
    main()
