#!/bin/bash
# Hotplug latency, oxvirtd + oxvirt-vmm against libvirtd 9.0 + QEMU 7.2 in
# one run, with the same test guest (oxtest.then=hotplug, which serves
# oxvirt's ACPI hotplug registers and QEMU's PIIX4 ones alike; machine
# 'pc' for QEMU; virtio-non-transitional devices, which both make modern
# virtio-pci functions). For each side, RUNS times: a virtio disk and a virtio NIC
# (type='user': passt for oxvirt, slirp for QEMU), each
#   attach: `virsh attach-device --live` until the guest reports the
#           device working (its driver check done: the disk's pattern
#           read, the NIC up and a frame sent): "INFO hotplug SS added";
#   detach: `virsh detach-device --live` until the device-removed event
#           (virsh event --timestamp).
# Prints the medians and the oxvirt/libvirt ratios.
#
# usage: compat-tests/bench/hotplug.sh [RUNS]     (default 5; as root)
# env: OXVIRT_VMM
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-5}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
# shellcheck source=../lib/private-run.sh
. "$here/compat-tests/lib/private-run.sh"
find_vmm
make -s -C "$here/compat-tests/guest/testos" >/dev/null
KERNEL=$here/compat-tests/guest/out/testos.elf
(cd "$here" && cargo build -q --bin oxvirtd)
OXVIRTD=${CARGO_TARGET_DIR:-$here/target}/debug/oxvirtd
command -v passt >/dev/null || {
    . "$here/compat-tests/lib/apt.sh"
    apt_install passt >/dev/null
}

tmp=$(mktemp -d /tmp/oxvirt-hotplug-bench.XXXXXX)
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
pids=()
cleanup() {
    stop_libvirtd || true
    kill_pids_reverse
    stop_pids_and_remove "$tmp"
}
trap cleanup EXIT
start_private_bus "$tmp"
start_oxvirtd --vmm "$vmm"
start_libvirtd "$tmp/libvirtd" >/dev/null
LV=$LIBVIRTD_URI
/usr/bin/python3 "$here/compat-tests/guest/make-pattern-disk.py" write "$tmp/disk.raw" 16384

xml() { # NAME SERIAL
    cat <<XML
<domain type='kvm'><name>$1</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>$KERNEL</kernel>
<cmdline>oxtest.checks=e820 oxtest.pci=1 oxtest.then=hotplug oxtest.ip=10.0.2.15 oxtest.netsend=1 oxtest.nettime=0</cmdline></os>
<features><acpi/><apic/></features><on_poweroff>destroy</on_poweroff>
<devices><serial type='file'><source path='$2'/></serial></devices></domain>
XML
}
cat >"$tmp/nic.xml" <<XML
<interface type='user'><mac address='52:54:00:6f:78:08'/><model type='virtio-non-transitional'/></interface>
XML

now() { date +%s.%N; }
added() { grep -c '^INFO hotplug .. added' "$1" 2>/dev/null || true; }
removals() { grep -c "event 'device-removed'" "$1" 2>/dev/null || true; }
# The time of the last device-removed event in an event log.
removed_at() {
    grep "event 'device-removed'" "$1" | tail -1 | cut -d: -f1-3 | sed 's/+0000$//' |
        xargs -I{} date -u -d "{}" +%s.%N
}

# one URI NAME KIND(disk|nic) -> "attach_s detach_s"
one() {
    local uri=$1 name=$2 kind=$3 serial=$tmp/$2.serial ev=$tmp/$2.events dev t0 t1 t2 n
    rm -f "$serial" "$ev"
    cp "$tmp/disk.raw" "$tmp/$name.raw"
    if [ "$kind" = disk ]; then
        dev=$tmp/$name.disk.xml
        echo "<disk type='file' device='disk' model='virtio-non-transitional'><driver name='qemu' type='raw'/><source file='$tmp/$name.raw'/><target dev='vdb' bus='virtio'/></disk>" >"$dev"
    else
        dev=$tmp/nic.xml
    fi
    xml "$name" "$serial" >"$tmp/$name.xml"
    virsh -c "$uri" create "$tmp/$name.xml" >/dev/null
    timeout 120 virsh -c "$uri" event "$name" --event device-removed --loop --timestamp >"$ev" 2>&1 &
    local evpid=$!
    for _ in $(seq 600); do grep -q '^INFO hotplug ready' "$serial" 2>/dev/null && break; sleep 0.05; done
    grep -q '^INFO hotplug ready' "$serial" || { echo "guest not ready on $uri" >&2; return 1; }
    sleep 0.5
    n=$(added "$serial")
    t0=$(now)
    virsh -c "$uri" attach-device "$name" "$dev" --live >/dev/null
    for _ in $(seq 6000); do [ "$(added "$serial")" -gt "$n" ] && break; sleep 0.01; done
    t1=$(now)
    [ "$(added "$serial")" -gt "$n" ] || { echo "no hotplug on $uri: $(tail -3 "$serial")" >&2; return 1; }
    if grep -q '^FAIL' "$serial"; then echo "guest check failed on $uri: $(grep '^FAIL' "$serial")" >&2; return 1; fi
    sleep 0.5
    t2=$(now)
    virsh -c "$uri" detach-device "$name" "$dev" --live >/dev/null
    for _ in $(seq 3000); do [ "$(removals "$ev")" -gt 0 ] && break; sleep 0.01; done
    [ "$(removals "$ev")" -gt 0 ] || { echo "no device-removed on $uri" >&2; return 1; }
    local t3
    t3=$(removed_at "$ev")
    kill "$evpid" 2>/dev/null || true
    wait "$evpid" 2>/dev/null || true
    virsh -c "$uri" destroy "$name" >/dev/null
    rm -f "$tmp/$name.raw"
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {print b - a, d - c}'
}

printf '%-6s %-9s %10s %10s %7s\n' device what oxvirt libvirt ratio
for kind in disk nic; do
    : >"$tmp/ox.$kind"
    : >"$tmp/lv.$kind"
    for r in $(seq "$runs"); do
        one "$U" "ox$kind$r" "$kind" >>"$tmp/ox.$kind"
        one "$LV" "lv$kind$r" "$kind" >>"$tmp/lv.$kind"
    done
    for col in 1 2; do
        o=$(cut -d' ' -f$col "$tmp/ox.$kind" | median)
        l=$(cut -d' ' -f$col "$tmp/lv.$kind" | median)
        case $col in
        1) what="attach s" ;;
        2) what="detach s" ;;
        esac
        printf '%-6s %-9s %10.3f %10.3f %7.2f\n' "$kind" "$what" "$o" "$l" "$(awk -v a="$o" -v b="$l" 'BEGIN {print a / b}')"
    done
done
