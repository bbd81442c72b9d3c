#!/bin/bash
# Storage operations of oxvirtd against libvirtd 9.0 (which runs qemu-img
# for qcow2) in one run, through python3-libvirt: creating a 10 GiB qcow2
# volume, cloning a 1 GiB raw volume full of data, 256 MiB uploads and
# downloads, and refreshing a pool of 1000 volumes. Both daemons work on
# the same filesystem; the page cache is dropped before each clone and
# download. Prints medians and oxvirtd/libvirtd ratios.
#
# usage: compat-tests/bench/storage.sh [ROUNDS]     (default 5)
#        OXVIRTD=path (default: the release build)
set -u
rounds=${1:-5}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OXVIRTD=${OXVIRTD:-${CARGO_TARGET_DIR:-$top/target}/release/oxvirtd}
[ -x "$OXVIRTD" ] || { echo "storage.sh: $OXVIRTD missing: cargo build --release --bins" >&2; exit 1; }
. "$here/anchors.sh"
. "$top/compat-tests/lib/private-run.sh"

work=$(mktemp -d /var/tmp/oxvirt-storage-bench-XXXXXX)
pids=()
trap 'stop_libvirtd; stop_pids_and_remove "$work"' EXIT

start_libvirtd "$work/libvirtd" || { echo "storage.sh: libvirtd did not start" >&2; exit 1; }
start_private_bus "$work"
RUST_LOG=warn "$OXVIRTD" --bus-address "$(head -1 "$work/bus")" \
    --config-dir "$work/ox/config/qemu" --run-dir "$work/ox/run/qemu" --state-dir "$work/ox/state" \
    --rpc-socket "$work/ox.sock" 2>"$work/oxvirtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/ox.sock" ] && break; sleep 0.1; done

declare -A res
while read -r label name v; do res[$label,$name]=$v; done < <(
    /usr/bin/python3 "$here/storage_bench.py" "$rounds" "$work/data" \
        "oxvirtd=qemu+unix:///system?socket=$work/ox.sock" "libvirtd=$LIBVIRTD_URI")

printf '%-30s %12s %12s %8s %s\n' "median of $rounds" oxvirtd libvirtd ratio target
for m in create-qcow2-10G clone-raw-1G refresh-1000 upload-256M download-256M; do
    o=${res[oxvirtd,$m]:-}
    l=${res[libvirtd,$m]:-}
    case $m in
    upload* | download*) unit="MiB/s"; target=">= 1.0" ;;
    *) unit="s"; target="<= 0.5" ;;
    esac
    r=$(awk -v o="$o" -v l="$l" 'BEGIN {if (o != "" && l > 0) printf "%.2f", o / l; else print "-"}')
    printf '%-30s %12s %12s %8s %s\n' "$m ($unit)" "${o:--}" "${l:--}" "$r" "$target"
done
