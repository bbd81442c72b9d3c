#!/bin/bash
# A stock Debian kernel with the busybox initramfs under oxvirt-vmm and
# under QEMU 7.2 (-M microvm, -enable-kvm), same kernel, initramfs and
# command line, one after the other: how long each takes to the init
# marker, or where it stops (last serial line, the monitor's error), and
# how many instructions oxvirt-vmm finished for the host's KVM. On a host
# whose KVM emulates guest ring 0 a run takes about ten minutes, so this
# is a long check, not part of the test suite.
#
# usage: compat-tests/bench/linux-boot.sh [GUEST_DIR]
# env: KERNEL (vmlinux), LIMIT (seconds per monitor, default 1500),
#      OXVIRT_VMM, QEMU (qemu-system-x86_64)
set -uo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}}
limit=${LIMIT:-1500}
kernel="$dir/${KERNEL:-vmlinux}"
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
[ -n "${QEMU:-}" ] || install_qemu
QEMU=${QEMU:-qemu-system-x86_64}
[ -f "$kernel" ] || { echo "linux-boot: no kernel at $kernel (compat-tests/guest/build-debian-guest.sh)" >&2; exit 1; }

echo "== oxvirt-vmm"
out=$(mktemp /tmp/linux-boot.XXXXXX)
timeout "$limit" bash "$here/compat-tests/guest/boot-to-init.sh" "$dir" 2>&1 | tee "$out" | grep -v '^\['
ox_log=$(awk '/serial log/ {print $(NF-3)}' "$out" | tr -d ',')

echo "== qemu -M microvm (same kernel, initramfs, command line)"
cmdline="console=ttyS0 panic=-1"
[ -f "$dir/cmdline" ] && cmdline=$(cat "$dir/cmdline")
grep -qw -e vmx -e svm /proc/cpuinfo || cmdline="$cmdline noxsave clearcpuid=ssse3"
qlog=$(mktemp /tmp/linux-boot-qemu.XXXXXX.log)
qerr=$(mktemp /tmp/linux-boot-qemu.XXXXXX.err)
start=$(date +%s.%N)
timeout "$limit" "$QEMU" -M microvm,rtc=on -enable-kvm -cpu host,-arch-capabilities -m 512 -smp 1 \
    -kernel "$kernel" -initrd "$dir/initramfs.cpio.gz" -append "$cmdline earlyprintk=ttyS0" \
    -nodefaults -no-user-config -display none -serial "file:$qlog" -no-reboot 2>"$qerr" &
qpid=$!
while kill -0 "$qpid" 2>/dev/null; do
    grep -q OXVIRT-INIT-OK "$qlog" 2>/dev/null && break
    sleep 0.5
done
end=$(date +%s.%N)
kill "$qpid" 2>/dev/null
wait "$qpid" 2>/dev/null
if grep -q OXVIRT-INIT-OK "$qlog"; then
    echo "qemu: marker after $(awk "BEGIN{print $end - $start}") s"
else
    echo "qemu: stopped after $(awk "BEGIN{print $end - $start}") s without the marker; last serial line:"
    grep -a '^\[' "$qlog" | tail -n 1
    grep -a -m1 -i "error\|emulation" "$qerr" | cut -c1-200
fi
echo "oxvirt-vmm: last serial line:"
grep -a '^\[' "$ox_log" | tail -n 1
