#!/bin/bash
# virsh save and restore, oxvirtd + oxvirt-vmm against libvirtd 9.0 + QEMU
# 7.2 in one run, on the same test guest with half its RAM touched
# (oxtest.then=memfill oxtest.fillmib=RAM/2): guests of 256 MiB, 1 GiB and
# 4 GiB. For each size and side, RUNS times: start, wait for "PASS
# memfill", `virsh save` (timed), `virsh restore` (timed, until virsh
# returns with the guest running), destroy. Prints the medians, the image
# size (bytes allocated on disk) and the oxvirt/libvirt ratios.
#
# usage: compat-tests/bench/save.sh [RUNS]     (default 3; as root)
# env: OXVIRT_VMM, SIZES (MiB list, default "256 1024 4096")
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3}
sizes=${SIZES:-256 1024 4096}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
# shellcheck source=../lib/private-run.sh
. "$here/compat-tests/lib/private-run.sh"
find_vmm
make -s -C "$here/compat-tests/guest/testos" >/dev/null
KERNEL=$here/compat-tests/guest/out/testos.elf
(cd "$here" && cargo build -q --bin oxvirtd)
OXVIRTD=${CARGO_TARGET_DIR:-$here/target}/debug/oxvirtd

tmp=$(mktemp -d /tmp/oxvirt-save-bench.XXXXXX)
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

xml() { # NAME MIB SERIAL
    cat <<XML
<domain type='kvm'><name>$1</name><memory unit='MiB'>$2</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>$KERNEL</kernel>
<cmdline>oxtest.checks=e820 oxtest.then=memfill oxtest.fillmib=$(($2 / 2))</cmdline></os>
<on_poweroff>destroy</on_poweroff>
<devices><serial type='file'><source path='$3'/></serial></devices></domain>
XML
}

now() { date +%s.%N; }

# one URI NAME MIB -> "save_s restore_s image_bytes"
one() {
    local uri=$1 name=$2 mib=$3 serial=$tmp/$2.serial img=$tmp/$2.save t0 t1 t2 size
    rm -f "$serial" "$img"
    xml "$name" "$mib" "$serial" >"$tmp/$name.xml"
    virsh -c "$uri" create "$tmp/$name.xml" >/dev/null
    for _ in $(seq 1200); do grep -q 'PASS memfill' "$serial" 2>/dev/null && break; sleep 0.1; done
    grep -q 'PASS memfill' "$serial" || { echo "no memfill on $uri" >&2; return 1; }
    # Both sides write into free memory: no dirty pages, no page cache to
    # reclaim first.
    sync
    echo 3 >/proc/sys/vm/drop_caches
    t0=$(now)
    virsh -c "$uri" save "$name" "$img" >/dev/null
    t1=$(now)
    size=$(( $(stat -c %b "$img") * $(stat -c %B "$img") ))
    [ -z "${DEBUG_SAVE:-}" ] || grep -h "written" "$tmp/state/log/$name.log" >&2 || true
    sync
    echo 3 >/proc/sys/vm/drop_caches
    t2=$(now)
    virsh -c "$uri" restore "$img" >/dev/null
    local t3
    t3=$(now)
    virsh -c "$uri" destroy "$name" >/dev/null
    rm -f "$img"
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v n="$size" 'BEGIN {print b - a, d - c, n}'
}

printf '%-8s %-8s %10s %10s %7s\n' size what oxvirt libvirt ratio
for mib in $sizes; do
    : >"$tmp/ox.$mib"
    : >"$tmp/lv.$mib"
    for r in $(seq "$runs"); do
        one "$U" "ox$mib" "$mib" >>"$tmp/ox.$mib"
        one "$LV" "lv$mib" "$mib" >>"$tmp/lv.$mib"
    done
    for col in 1 2 3; do
        o=$(cut -d' ' -f$col "$tmp/ox.$mib" | median)
        l=$(cut -d' ' -f$col "$tmp/lv.$mib" | median)
        case $col in
        1) what="save s" ;;
        2) what="restore s" ;;
        3) what="image MiB"; o=$(awk -v x="$o" 'BEGIN {print x / 1048576}'); l=$(awk -v x="$l" 'BEGIN {print x / 1048576}') ;;
        esac
        printf '%-8s %-9s %9.3f %10.3f %7.2f\n' "${mib}M" "$what" "$o" "$l" "$(awk -v a="$o" -v b="$l" 'BEGIN {print a / b}')"
    done
done
