#!/bin/bash
# Latency of the libvirt RPC front end against a real libvirtd, in one run:
# python-libvirt per-call medians (listAllDomains, info, define+undefine)
# and `virsh list --all` whole-process time, for oxvirtd and for the
# private libvirtd 9.0 this script installs and starts (anchors.sh), or the
# one whose socket LIBVIRT_SOCK=PATH names.
# One client (rpc_bench.py) drives both daemons with the same calls, call by
# call in turn, after a warm-up; see there.  A whole connection (open,
# listAllDomains, close) is timed in-process too: that is the part of
# `virsh list --all` that depends on the daemon, the rest being virsh's own
# start-up and exit.
#
# usage: compat-tests/bench/rpc.sh [ROUNDS [VIRSH_ROUNDS]]   (defaults 1000, 100)
#        OXVIRTD=path (default: $CARGO_TARGET_DIR or target, release build)
set -u
rounds=${1:-1000}
virsh_rounds=${2:-100}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OXVIRTD=${OXVIRTD:-${CARGO_TARGET_DIR:-$top/target}/release/oxvirtd}
[ -x "$OXVIRTD" ] || { echo "rpc.sh: $OXVIRTD missing: cargo build --release --bins" >&2; exit 1; }
# shellcheck source=anchors.sh
. "$here/anchors.sh"
. "$top/compat-tests/lib/private-run.sh"

tmp=$(mktemp -d /tmp/oxvirt-rpc-bench-XXXXXX)
pids=()
trap 'stop_libvirtd; stop_pids_and_remove "$tmp"' EXIT
if [ -z "${LIBVIRT_SOCK:-}" ]; then
    start_libvirtd "$tmp/libvirtd" || { echo "rpc.sh: libvirtd did not start" >&2; exit 1; }
    LIBVIRT_SOCK=${LIBVIRTD_URI#*socket=}
fi
start_private_bus "$tmp"
RUST_LOG=warn "$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
    --config-dir "$tmp/config" --run-dir "$tmp/run" --state-dir "$tmp/state" \
    --rpc-socket "$tmp/sock" 2>"$tmp/oxvirtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$tmp/sock" ] && break; sleep 0.1; done

targets=("oxvirtd=qemu+unix:///system?socket=$tmp/sock")
if [ -n "${LIBVIRT_SOCK:-}" ] && [ -S "$LIBVIRT_SOCK" ]; then
    targets+=("libvirtd=qemu+unix:///system?socket=$LIBVIRT_SOCK")
else
    echo "(no libvirtd socket; comparing nothing)"
fi

declare -A res
while read -r label name v; do res[$label,$name]=$v; done \
    < <(/usr/bin/python3 "$here/rpc_bench.py" "$rounds" "$virsh_rounds" "${targets[@]}")

printf '%-34s %12s %12s %8s\n' "median (rounds=$rounds)" oxvirtd libvirtd ratio
for m in listAllDomains info define+undefine connection virsh; do
    o=${res[oxvirtd,$m]:-}
    l=${res[libvirtd,$m]:-}
    r=-
    [ -n "$l" ] && [ -n "$o" ] && r=$(awk -v o="$o" -v l="$l" 'BEGIN {printf "%.2f", o / l}')
    case $m in
    virsh)
        label="virsh list --all x$virsh_rounds (ms)"
        o=$(awk -v v="$o" 'BEGIN {if (v != "") printf "%.2f", v / 1000}')
        [ -n "$l" ] && l=$(awk -v v="$l" 'BEGIN {printf "%.2f", v / 1000}')
        ;;
    connection) label="open+listAllDomains+close (us)" ;;
    *) label="$m (us)" ;;
    esac
    printf '%-34s %12s %12s %8s\n' "$label" "${o:--}" "${l:--}" "$r"
done
echo "target: per-call ratio <= 0.5"
