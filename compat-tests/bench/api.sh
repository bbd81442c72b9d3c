#!/bin/bash
# Latency of the libvirt-dbus API, oxvirtd against libvirt-dbus + libvirtd
# (QEMU/KVM), in one run.  Per-call medians over D-Bus of
#   Connect.ListDomains(0), Domain.GetState(0), DomainDefineXML + Undefine(0)
# with 1 and with 100 domains defined, and of Connect.DomainCreateXML of a
# transient domain booting the freestanding test guest (returns with the
# guest running; each one is destroyed afterwards).  One client
# (api_bench.py) drives both servers with the same calls, call by call in
# turn, after a warm-up; see there.
#
# oxvirtd runs on a private dbus-daemon with its state in a temporary
# directory.  libvirt-dbus 1.4 (`--system`) runs on a second private bus, in
# the mount namespace of the libvirtd from /var/lib/oxvirt-bench/libvirt/env
# (LV_STATE=DIR to override) so that qemu:///system reaches it; without such
# a libvirtd only oxvirtd is measured.  Everything started here is stopped on
# exit.
#
# usage: compat-tests/bench/api.sh [ROUNDS [CREATES]]      (defaults 1000, 10)
#        OXVIRTD=path (default: $CARGO_TARGET_DIR or target, release build)
set -u
rounds=${1:-1000}
creates=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bindir=${CARGO_TARGET_DIR:-$top/target}/release
OXVIRTD=${OXVIRTD:-$bindir/oxvirtd}
VMM=${VMM:-$(dirname "$OXVIRTD")/oxvirt-vmm}
guest=$top/compat-tests/guest/out/testos.elf
LV_STATE=${LV_STATE:-/var/lib/oxvirt-bench/libvirt}

die() { echo "api.sh: $*" >&2; exit 1; }
[ -x "$OXVIRTD" ] || die "$OXVIRTD missing: cargo build --release --bins"
[ -f "$guest" ] || make -s -C "$top/compat-tests/guest/testos" || die "cannot build $guest"
/usr/bin/python3 -c 'import dbus' 2>/dev/null || die "python3-dbus is needed"

# shellcheck source=anchors.sh
. "$here/anchors.sh"

tmp=$(mktemp -d /tmp/oxvirt-api-bench-XXXXXX)
pids=()
cleanup() {
    local p
    stop_libvirtd
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private bus with an allow-all policy; prints its address.
start_bus() { # dir
    local d=$1
    mkdir -p "$d"
    cat >"$d/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$d/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
CONF
    dbus-daemon --config-file="$d/bus.conf" --nofork --nopidfile >/dev/null 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$d/bus.sock" ] && break; sleep 0.05; done
    [ -S "$d/bus.sock" ] || die "dbus-daemon did not start"
}

wait_name() { # address -> waits until org.libvirt is owned
    local i
    for i in $(seq 200); do
        busctl --address="$1" status org.libvirt >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

# ---- oxvirtd
start_bus "$tmp/oxbus"
oxbus=unix:path=$tmp/oxbus/bus.sock
RUST_LOG=warn "$OXVIRTD" --bus-address "$oxbus" --no-rpc --vmm "$VMM" \
    --config-dir "$tmp/ox/etc" --run-dir "$tmp/ox/run" --state-dir "$tmp/ox/lib" \
    2>"$tmp/oxvirtd.log" &
pids+=($!)
wait_name "$oxbus" || { cat "$tmp/oxvirtd.log" >&2; die "oxvirtd did not take org.libvirt"; }
targets=("oxvirtd=$oxbus")

# ---- libvirt-dbus + libvirtd
lv_pid=
if [ -r "$LV_STATE/env" ]; then
    # shellcheck disable=SC1091
    lv_pid=$(. "$LV_STATE/env" && echo "${LV_PID:-}")
fi
if [ -z "$lv_pid" ] || ! kill -0 "$lv_pid" 2>/dev/null; then
    # No running anchor: install and start a private libvirtd here.
    start_libvirtd "$tmp/libvirtd" || die "libvirtd did not start"
    lv_pid=$LIBVIRTD_PID
fi
command -v libvirt-dbus >/dev/null || [ -x /usr/sbin/libvirt-dbus ] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libvirt-dbus >/dev/null
LVDBUS=$(command -v libvirt-dbus || echo /usr/sbin/libvirt-dbus)
if [ -n "$lv_pid" ] && kill -0 "$lv_pid" 2>/dev/null && [ -x "$LVDBUS" ]; then
    start_bus "$tmp/lvbus"
    lvbus=unix:path=$tmp/lvbus/bus.sock
    # libvirt-dbus has no URI option; --system connects to qemu:///system,
    # whose socket is libvirtd's only inside libvirtd's mount namespace.
    DBUS_SYSTEM_BUS_ADDRESS="$lvbus" nsenter -t "$lv_pid" -m "$LVDBUS" --system \
        >"$tmp/libvirt-dbus.log" 2>&1 </dev/null &
    pids+=($!)
    wait_name "$lvbus" || { cat "$tmp/libvirt-dbus.log" >&2; die "libvirt-dbus did not take org.libvirt"; }
    targets+=("libvirt=$lvbus")
else
    echo "(no libvirtd at $LV_STATE or no libvirt-dbus: measuring oxvirtd only)"
fi

declare -A res
/usr/bin/python3 "$here/api_bench.py" "$rounds" "$creates" "$guest" "apibench-$$" "${targets[@]}" \
    >"$tmp/bench.out" || die "api_bench.py failed"
while read -r label name v; do res[$label,$name]=$v; done <"$tmp/bench.out"

# "beyond Ping": each side's time less its own Peer.Ping (twice for the
# define+undefine pair), which any D-Bus server pays for an answered call
# through the bus; the ratio of what is left is what the libvirt work costs
# each side.
op=${res[oxvirtd,ping]:-}
lp=${res[libvirt,ping]:-}
printf '%-34s %12s %12s %8s %12s\n' "median (rounds=$rounds)" oxvirtd libvirt-dbus ratio "beyond Ping"
for m in floor ping ListDomains/1 GetState/1 Define+Undefine/1 ListDomains/100 GetState/100 \
    Define+Undefine/100 DomainCreateXML; do
    o=${res[oxvirtd,$m]:-}
    l=${res[libvirt,$m]:-}
    r=-
    b=-
    [ -n "$l" ] && [ -n "$o" ] && r=$(awk -v o="$o" -v l="$l" 'BEGIN {printf "%.3f", o / l}')
    calls=1
    case $m in Define+Undefine/*) calls=2 ;; esac
    [ -n "$l" ] && [ -n "$o" ] && [ -n "$op" ] && [ -n "$lp" ] &&
        b=$(awk -v o="$o" -v l="$l" -v op="$op" -v lp="$lp" -v k="$calls" \
            'BEGIN {o -= k * op; l -= k * lp; if (l > 0) printf "%.3f", (o > 0 ? o : 0) / l; else print "-"}')
    case $m in
    DomainCreateXML)
        label="DomainCreateXML x$creates (ms)"
        o=$(awk -v v="$o" 'BEGIN {if (v != "") printf "%.1f", v / 1000}')
        [ -n "$l" ] && l=$(awk -v v="$l" 'BEGIN {printf "%.1f", v / 1000}')
        b=-
        ;;
    floor) label="bus daemon round trip (us)" r=- b=- ;;
    ping) label="Peer.Ping, no libvirt work (us)" b=- ;;
    *) label="${m%/*}, ${m#*/} defined (us)" ;;
    esac
    printf '%-34s %12s %12s %8s %12s\n' "$label" "${o:--}" "${l:--}" "$r" "$b"
done
echo "targets: per-call ratio <= 0.25, DomainCreateXML ratio <= 0.05"
