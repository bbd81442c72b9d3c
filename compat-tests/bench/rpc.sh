#!/bin/bash
# Latency of the libvirt RPC front end against a real libvirtd, in one run:
# python-libvirt per-call medians (listAllDomains, info, define+undefine)
# and `virsh list --all` whole-process time, for oxvirtd and for the
# libvirtd started by /work/shared/reference/anchor-recipes/start-libvirt.sh
# (its socket from /var/lib/oxvirt-bench/libvirt/env, or LIBVIRT_SOCK=PATH).
#
# usage: compat-tests/bench/rpc.sh [ROUNDS]      (OXVIRTD=path to override)
set -u
rounds=${1:-200}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OXVIRTD=${OXVIRTD:-${CARGO_TARGET_DIR:-$top/target}/debug/oxvirtd}
if [ -z "${LIBVIRT_SOCK:-}" ] && [ -r /var/lib/oxvirt-bench/libvirt/env ]; then
    # shellcheck disable=SC1091
    . /var/lib/oxvirt-bench/libvirt/env
    LIBVIRT_SOCK=${LIBVIRT_DEFAULT_URI#*socket=}
fi

tmp=$(mktemp -d /tmp/oxvirt-rpc-bench-XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"' EXIT
dbus-daemon --session --print-address=3 --nofork 3>"$tmp/bus" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$tmp/bus" ] && break; sleep 0.1; done
RUST_LOG=warn "$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
    --config-dir "$tmp/config" --run-dir "$tmp/run" --state-dir "$tmp/state" \
    --rpc-socket "$tmp/sock" 2>"$tmp/oxvirtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$tmp/sock" ] && break; sleep 0.1; done

virsh_median() { # uri -> median ms of `virsh list --all`
    local uri=$1 i
    for i in $(seq 30); do
        local t0 t1
        t0=$(date +%s%N)
        virsh -c "$uri" list --all >/dev/null 2>&1
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000))
    done | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

declare -A res
run() { # label uri
    local label=$1 uri=$2 name v
    while read -r name v; do res[$label,$name]=$v; done \
        < <(/usr/bin/python3 "$here/rpc_bench.py" "$uri" "$rounds")
    res[$label,virsh]=$(virsh_median "$uri")
}
run oxvirtd "qemu+unix:///system?socket=$tmp/sock"
labels=(oxvirtd)
if [ -n "${LIBVIRT_SOCK:-}" ] && [ -S "$LIBVIRT_SOCK" ]; then
    run libvirtd "qemu+unix:///system?socket=$LIBVIRT_SOCK"
    labels+=(libvirtd)
else
    echo "(no libvirtd socket; comparing nothing)"
fi

printf '%-26s %12s %12s %8s\n' "median (rounds=$rounds)" oxvirtd libvirtd ratio
for m in listAllDomains info define+undefine virsh; do
    unit=us
    [ $m = virsh ] && unit=ms
    o=${res[oxvirtd,$m]:-}
    l=${res[libvirtd,$m]:-}
    r=-
    [ -n "$l" ] && [ -n "$o" ] && r=$(awk -v o="$o" -v l="$l" 'BEGIN {printf "%.2f", o / l}')
    label="$m ($unit)"
    [ $m = virsh ] && label="virsh list --all (ms)"
    printf '%-26s %12s %12s %8s\n' "$label" "$o" "${l:--}" "$r"
done
