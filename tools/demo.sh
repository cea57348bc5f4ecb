#!/bin/bash
# The README's first command: install what is needed, build, and show qcow2-policyd at work on
# the embedded default — demo images in a temporary directory, the daemon on a private session
# bus against libvirt's test driver, a policy set over D-Bus, before and after. Needs no
# hypervisor, finishes by itself and removes everything it created.
set -euo pipefail
cd "$(dirname "$0")/.."

builddir=${BUILDDIR:-build}
bus_name=org.qcow2policyd.Policy1

step()
{
    if [ -t 1 ]; then
        printf '\n\033[1m== %s\033[0m\n' "$*"
    else
        printf '\n== %s\n' "$*"
    fi
}

# Print a command, then run it.
show()
{
    # On stderr, so that it stays out of output that is redirected to a file.
    printf '$ %s\n' "$*" | sed "s|$tmp|\$DEMO|g; s|$ctl|qcow2-policyctl|g; s|$daemon|qcow2-policyd|g" >&2
    "$@"
}

# A domain of the demo on stdout: domain_xml TYPE NAME N METADATA RUNSTATE DEV=IMAGE...
# (UUID ...00N, images in $tmp; METADATA and the test driver's RUNSTATE may be empty).
domain_xml()
{
    local type=$1 name=$2 n=$3 metadata=$4 runstate=$5 disk
    shift 5
    echo "<domain type='$type'>"
    echo "  <name>$name</name>"
    echo "  <uuid>7f6c1a2e-5b1d-4c3e-9a0b-00000000000$n</uuid>"
    if [ -n "$metadata" ]; then
        printf '  <metadata>\n    %s\n  </metadata>\n' "$metadata"
    fi
    echo "  <memory unit='MiB'>64</memory>"
    echo "  <os><type arch='x86_64'>hvm</type></os>"
    echo "  <devices>"
    for disk in "$@"; do
        echo "    <disk type='file' device='disk'>"
        echo "      <driver name='qemu' type='qcow2'/>"
        echo "      <source file='$tmp/${disk#*=}'/>"
        echo "      <target dev='${disk%%=*}' bus='virtio'/>"
        echo "    </disk>"
    done
    echo "  </devices>"
    if [ -n "$runstate" ]; then
        echo "  <test:runstate>$runstate</test:runstate>"
    fi
    echo "</domain>"
}

# QP_DEMO_NO_BUILD=1 (the test suite's run of this script) uses $BUILDDIR as it is.
if [ "${QP_DEMO_NO_BUILD:-0}" != 1 ]; then
    step "Installing dependencies and building"
    bash tools/install-deps.sh
    if [ ! -f "$builddir/build.ninja" ]; then
        meson setup "$builddir"
    fi
    meson compile -C "$builddir"
fi

ctl=$PWD/$builddir/cli/qcow2-policyctl
daemon=$PWD/$builddir/daemon/qcow2-policyd
case $builddir in /*) ctl=$builddir/cli/qcow2-policyctl daemon=$builddir/daemon/qcow2-policyd ;; esac

tmp=$(mktemp -d /tmp/qcow2-policyd-demo.XXXXXX)
daemon_pid=""
bus_pid=""
cleanup()
{
    local rc=$?
    if [ -n "$daemon_pid" ]; then
        kill "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [ -n "$bus_pid" ]; then
        kill "$bus_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "Creating demo images in $tmp (qcow2 is sparse: they take almost no space)"
# big: 1 TiB, 64 KiB clusters. Its L2 tables (L2FULL) are 128 MiB; QEMU's default 32 MiB
# cache covers only a quarter of the disk.
show qemu-img create -q -f qcow2 -o cluster_size=64k "$tmp/big.qcow2" 1T
# ext: 1 TiB with extended L2: 16-byte entries, so L2FULL is 256 MiB and 32 MiB covers only
# 128 GiB of it.
show qemu-img create -q -f qcow2 -o cluster_size=64k,extended_l2=on "$tmp/ext.qcow2" 1T
# small: 20 GiB, fully covered by QEMU's default, on a backing file to show a chain.
show qemu-img create -q -f qcow2 "$tmp/base.qcow2" 20G
show qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$tmp/small.qcow2" 20G

step "One image in detail: QEMU's default cache covers a quarter of it (no daemon needed)"
show "$ctl" analyze --percent 100 "$tmp/big.qcow2"

step "All demo images: QEMU's default against the max_size a 100% policy writes"
show "$ctl" analyze --json --percent 100 --chain "$tmp/big.qcow2" "$tmp/ext.qcow2" "$tmp/small.qcow2" \
    >"$tmp/analyze.json"
/usr/bin/python3 - "$tmp/analyze.json" <<'EOF'
import json, os, sys

def size(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:g} {unit}"
        n /= 1024

def rows(img, depth=0):
    pol = img["policy"]
    yield ("  " * depth + os.path.basename(img["filename"]), size(img["virtual-size"]),
           size(img["cluster-size"]), "on" if img["extended-l2"] else "off",
           size(img["l2-full-size"]), f"{img['qemu-default']['l2-coverage']:.0%}",
           str(pol["cache-size"]), f"{pol['l2-coverage']:.0%}")
    for layer in img.get("backing-chain", []):
        yield from rows(layer, depth + 1)

head = ("image", "virtual", "cluster", "ext. L2", "L2FULL", "default covers",
        "max_size at 100%", "covers")
table = [head] + [r for img in json.load(open(sys.argv[1])) for r in rows(img)]
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for r in table:
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
EOF

step "Which layout for a 1 TiB disk?"
show "$ctl" recommend --size 1T

step "What the daemon will write, computed offline from a domain XML file (no daemon needed)"
domain_xml kvm db 2 '<qc:l2cache xmlns:qc="http://qcow2policyd.org/schemas/l2cache/1.0" percent="100" chain="all"/>' \
    "" vda=small.qcow2 vdb=big.qcow2 >"$tmp/db.xml"
show "$ctl" plan "$tmp/db.xml"
echo
show "$ctl" apply-xml "$tmp/db.xml" >"$tmp/db-new.xml"
# Only the owned elements change (and, with chain="all", the explicit backing chain appears).
show diff -u "$tmp/db.xml" "$tmp/db-new.xml" | sed "s|$tmp|\$DEMO|g" || true

if [ ! -x "$daemon" ]; then
    step "The daemon is not built yet ($daemon): the daemon part of the demo is left out"
    exit 0
fi

step "Starting a private session bus and qcow2-policyd against libvirt's test driver"
# The test driver reads its whole "host" from this file: two domains using the demo images,
# "web" running (state 1) and "db" shut off (state 5), neither with a policy yet.
{
    echo "<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
    domain_xml test web 1 "" 1 vda=big.qcow2 vdb=ext.qcow2 | sed 's/^/  /'
    domain_xml test db 2 "" 5 vda=small.qcow2 vdb=big.qcow2 | sed 's/^/  /'
    echo "</node>"
} >"$tmp/node.xml"
dbus-daemon --session --print-address=3 --print-pid=4 --fork 3>"$tmp/bus.addr" 4>"$tmp/bus.pid"
bus_pid=$(cat "$tmp/bus.pid")
DBUS_SESSION_BUS_ADDRESS=$(head -n1 "$tmp/bus.addr")
export DBUS_SESSION_BUS_ADDRESS
printf '$ qcow2-policyd --session --connect test://$DEMO/node.xml &\n'
"$daemon" --session --connect "test://$tmp/node.xml" &
daemon_pid=$!

has_owner()
{
    gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.NameHasOwner "$bus_name" 2>/dev/null | grep -q true
}
for _ in $(seq 100); do
    has_owner && break
    kill -0 "$daemon_pid" 2>/dev/null || { echo "demo: qcow2-policyd exited early" >&2; exit 1; }
    sleep 0.1
done
has_owner || { echo "demo: qcow2-policyd did not take $bus_name within 10 s" >&2; exit 1; }

# The domain's object path, from the manager's GetDomainByName.
domain_path()
{
    gdbus call --session --dest "$bus_name" --object-path /org/qcow2policyd/Policy1/Manager \
        --method org.qcow2policyd.Policy1.Manager.GetDomainByName "$1" '{}' |
        sed -n "s/^(objectpath '\(.*\)',)$/\1/p"
}

domain_state()
{
    gdbus call --session --dest "$bus_name" --object-path "$(domain_path "$1")" \
        --method org.freedesktop.DBus.Properties.Get org.qcow2policyd.Policy1.Domain State |
        sed -n "s/^(<'\(.*\)'>,)$/\1/p"
}

# set DOMAIN PERCENT [OPTIONS]: the D-Bus call returns once the domain is reconciled.
set_policy()
{
    show "$ctl" set --session "$@"
    case $(domain_state "$1") in
        applied | pending-restart) ;;
        *)
            echo "demo: domain $1 is in state $(domain_state "$1") after set" >&2
            exit 1
            ;;
    esac
}

step "Before: no domain has a policy, so QEMU would use its default cache"
show "$ctl" status --session
echo
show "$ctl" list --session

step "Setting policies over D-Bus: 100% for web, 50% with the whole backing chain for db"
set_policy web 100
set_policy db 50 --chain all

step "After: the exact max_size values are in the persistent definitions"
show "$ctl" list --session
echo
show "$ctl" show --session web
echo
show "$ctl" show --session db

step "The same through the D-Bus API (what a management UI reads)"
web_path=$(domain_path web)
show gdbus call --session --dest "$bus_name" --object-path "$web_path" \
    --method org.freedesktop.DBus.Properties.Get org.qcow2policyd.Policy1.Domain State
cat <<'EOF'

web is running: its new cache takes effect when it is next started (state pending-restart).
db is shut off: the values are applied and will be used at its next start; with chain="all"
its backing file base.qcow2 got its own value, in an explicit <backingStore> chain.
EOF

step "Stopping the daemon and the bus, removing the demo directory"
