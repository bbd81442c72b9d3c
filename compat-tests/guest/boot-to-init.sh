#!/bin/bash
# Boots the Debian test guest under oxvirt-vmm all the way to its
# initramfs and waits, without a time limit, for the init marker on the
# serial console. On a host whose KVM emulates guest ring 0 (no VMX/SVM,
# PVM), the VMM finishes the instructions the host's emulator lacks, and
# the guest kernel is told not to use what cannot be finished there
# (`noxsave clearcpuid=ssse3`, added here; the guest reads that host's
# CPUID directly, so the VMM cannot hide it); see src/vmm/README.md for
# how far a stock kernel gets there. Prints the time to the marker and
# the VMM's count of finished instructions.
#
# usage: boot-to-init.sh [GUEST_DIR] [MARKER]
#   GUEST_DIR  directory with vmlinuz, initramfs.cpio.gz, cmdline
#              (default $OXVIRT_DEBIAN_GUEST or /var/lib/oxvirt/guest-debian)
#   MARKER     serial line that means init ran (default OXVIRT-INIT-OK,
#              which the recipe's /init prints before `poweroff -f`)
# env: OXVIRT_VMM (binary, default target/{release,debug}/oxvirt-vmm),
#      CPUS (2), MEMORY (512), KERNEL (vmlinuz; vmlinux boots through PVH)
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}}
marker=${2:-OXVIRT-INIT-OK}

vmm=${OXVIRT_VMM:-}
if [ -z "$vmm" ]; then
    for c in "${CARGO_TARGET_DIR:-$here/target}/release/oxvirt-vmm" \
             "${CARGO_TARGET_DIR:-$here/target}/debug/oxvirt-vmm"; do
        [ -x "$c" ] && vmm=$c && break
    done
fi
[ -n "$vmm" ] && [ -x "$vmm" ] || { echo "boot-to-init: build oxvirt-vmm first (cargo build)" >&2; exit 1; }
kernel="$dir/${KERNEL:-vmlinuz}"
[ -f "$kernel" ] || { echo "boot-to-init: no kernel at $kernel" >&2; exit 1; }

cmdline="console=ttyS0 panic=-1"
[ -f "$dir/cmdline" ] && cmdline=$(cat "$dir/cmdline")
if ! grep -qw -e vmx -e svm /proc/cpuinfo; then
    # XSAVE/XRSTOR and the kernel's SSSE3 code are beyond what the VMM
    # finishes for the host's emulator.
    cmdline="$cmdline noxsave clearcpuid=ssse3"
    echo "boot-to-init: no VMX/SVM here: guest ring 0 is emulated; adding 'noxsave clearcpuid=ssse3'"
fi
initrd=()
[ -f "$dir/initramfs.cpio.gz" ] && initrd=(--initrd "$dir/initramfs.cpio.gz")

log=$(mktemp /tmp/boot-to-init.XXXXXX.log)
sock="@boot-to-init-$$"
echo "boot-to-init: $kernel, serial log $log, waiting for '$marker'"
start=$(date +%s.%N)
vmm_err=$(mktemp /tmp/boot-to-init.XXXXXX.err)
OXVIRT_VMM_LOG=${OXVIRT_VMM_LOG:-info} "$vmm" --kernel "$kernel" "${initrd[@]}" --cmdline "$cmdline earlyprintk=ttyS0" \
    --cpus "${CPUS:-2}" --memory "${MEMORY:-512}" --serial "file:$log" \
    --control-socket "$sock" </dev/null 2>"$vmm_err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT

while ! grep -qF -- "$marker" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && rc=0 || rc=$?
        echo "boot-to-init: oxvirt-vmm exited with status $rc before the marker after $(awk "BEGIN{print $(date +%s.%N) - $start}") s; last lines:" >&2
        tail -n 20 "$log" >&2
        grep -v DEBUG "$vmm_err" | tail -n 3 >&2
        exit 1
    fi
    sleep 0.2
done
end=$(date +%s.%N)
echo "boot-to-init: marker seen after $(awk "BEGIN{print $end - $start}") s"
# The recipe's /init powers off next: expect exit status 0 (poweroff).
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill "$pid" 2>/dev/null || true
wait "$pid" && rc=0 || rc=$?
trap - EXIT
echo "boot-to-init: oxvirt-vmm exit status $rc (0 = guest powered off)"
grep -h "finished here" "$vmm_err" | sed 's/.*finished here: /boot-to-init: finished by the VMM: /' || true
