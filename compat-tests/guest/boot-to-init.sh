#!/bin/bash
# Boots the Debian test guest under oxvirt-vmm all the way to its
# initramfs and waits, without a time limit, for the init marker on the
# serial console. Meant for hosts with hardware virtualization; on a
# paravirtualised /dev/kvm (PVM) the guest kernel stops early on an
# instruction the host's emulator lacks (see src/vmm/README.md).
#
# usage: boot-to-init.sh [GUEST_DIR] [MARKER]
#   GUEST_DIR  directory with vmlinuz, initramfs.cpio.gz, cmdline
#              (default $OXVIRT_DEBIAN_GUEST or /var/lib/oxvirt/guest-debian)
#   MARKER     serial line that means init ran (default OXVIRT-BOOT-OK,
#              which the recipe's /init prints before `poweroff -f`)
# env: OXVIRT_VMM (binary, default target/{release,debug}/oxvirt-vmm),
#      CPUS (2), MEMORY (512), KERNEL (vmlinuz; vmlinux boots through PVH)
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}}
marker=${2:-OXVIRT-BOOT-OK}

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
initrd=()
[ -f "$dir/initramfs.cpio.gz" ] && initrd=(--initrd "$dir/initramfs.cpio.gz")

log=$(mktemp /tmp/boot-to-init.XXXXXX.log)
sock="@boot-to-init-$$"
echo "boot-to-init: $kernel, serial log $log, waiting for '$marker'"
start=$(date +%s.%N)
"$vmm" --kernel "$kernel" "${initrd[@]}" --cmdline "$cmdline earlyprintk=ttyS0" \
    --cpus "${CPUS:-2}" --memory "${MEMORY:-512}" --serial "file:$log" \
    --control-socket "$sock" </dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT

while ! grep -qF -- "$marker" "$log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" && rc=0 || rc=$?
        echo "boot-to-init: oxvirt-vmm exited with status $rc before the marker; last lines:" >&2
        tail -n 20 "$log" >&2
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
