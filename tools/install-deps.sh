#!/bin/bash
# Install what qcow2-policyd needs to build, run and test on Debian 12 (as root).
set -euo pipefail
PACKAGES=(
  # build
  meson ninja-build pkg-config gcc libglib2.0-dev libjson-glib-dev libxml2-dev
  libvirt-dev libvirt-glib-1.0-dev libpolkit-gobject-1-dev gettext
  # run and test
  qemu-utils libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-daemon-system
  qemu-system-x86 dbus polkitd python3-dbusmock python3-pytest python3-gi python3-libvirt
  valgrind clang libclang-rt-14-dev libxml2-utils strace gdb clang-format
  # style checks: man pages, catalogs in real locales
  groff-base man-db locales gettext-base
  # benchmarks (bench/): plots, and syscall tracepoints for bench-l2 and the daemon profile
  python3-matplotlib linux-perf
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (run as root): ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
