#!/bin/bash
# Virtual networks of oxvirtd against libvirtd 9.0 (network driver with
# dnsmasq and iptables-nft, guests in QEMU 7.2) in one run, through
# python3-libvirt (network_bench.py; the API calls themselves, without
# virsh's process start-up):
#   net-start, net-destroy   of a NAT network like libvirt's default
#                            (bridge stp='on' delay='0', 192.168.122.1/24,
#                            DHCP range)
#   guest start -> lease     from virDomainCreate until the network's DHCP
#                            lease for the guest's MAC shows in
#                            virNetworkGetDHCPLeases (polled every 10 ms),
#                            and until the guest's own "dhcp lease" line
#                            in its serial log; a fresh MAC every round.
#                            Measured on a second NAT network without the
#                            two fixed waits that are neither the daemon's
#                            nor the VMM's: its bridge has stp='off' (with
#                            STP the kernel keeps a new port listening and
#                            learning for 2 x 2 s, its minimum forward
#                            delay) and its dnsmasq `no-ping` (through
#                            <dnsmasq:options>, for both daemons; dnsmasq
#                            otherwise pings a new address for ~3 s before
#                            offering it). The same on the default-like
#                            network, both waits included, is reported too
#   UDP through the NAT      guest -> a receiver in an "outside" namespace
#                            (MB/s counted by the receiver), on the second
#                            network. UDP, not TCP: the test guest has no
#                            TCP stack; its `oxtest.netbench=udp:...` mode
#                            sends 1472-byte datagrams through the router
#                            for 3 s.
# The guest is compat-tests/guest/testos booted as a kernel (<os><kernel>;
# libvirt gives QEMU its default pc machine, SeaBIOS and `-cpu qemu64`),
# 64 MiB, one vCPU, one virtio-net (virtio-non-transitional) on the network.
#
# Isolation: each daemon runs in a network namespace made here (`ip netns
# add`, with its own /sys as `ip netns exec` mounts it), with a second
# namespace behind a veth pair standing in for the outside world
# (10.99.0.1 <-> 10.99.0.2). Every bridge, tap, dnsmasq, nftables table
# and iptables rule lives in those namespaces and goes with them; no
# traffic leaves them. libvirtd also has its private /etc/libvirt,
# /run/libvirt, /var/lib/libvirt ... (anchors.sh), oxvirtd a private D-Bus
# bus and its state in the work directory.
#
# Prints medians and oxvirtd/libvirtd ratios; per-round UDP details go to
# stderr.
#
# usage: compat-tests/bench/network.sh [ROUNDS]     (default 5)
#        OXVIRTD=path (default: the release build)
# needs: root, /dev/kvm; installs libvirtd 9.0 + QEMU 7.2 (anchors.sh),
#        dnsmasq-base, nftables, iptables, python3-libvirt if missing
set -u
rounds=${1:-5}
case $rounds in [1-9] | [1-9][0-9] | 1[0-9][0-9] | 200) ;; *) echo "network.sh: ROUNDS is 1..200" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
OXVIRTD=${OXVIRTD:-${CARGO_TARGET_DIR:-$top/target}/release/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
die() { echo "network.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
[ -x "$OXVIRTD" ] || die "$OXVIRTD missing: cargo build --release --bins"
[ -f "$KERNEL" ] || make -s -C "$top/compat-tests/guest/testos" || die "cannot build $KERNEL"
. "$here/anchors.sh"
. "$top/compat-tests/lib/private-run.sh"

# What is compared against, and what the networks need.
install_libvirtd || die "cannot install libvirtd"
missing=()
[ -x /usr/sbin/dnsmasq ] || missing+=(dnsmasq-base)
command -v nft >/dev/null || missing+=(nftables)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
/usr/bin/python3 -c 'import libvirt' 2>/dev/null || missing+=(python3-libvirt)
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "cannot install ${missing[*]}"
fi

work=$(mktemp -d /var/tmp/oxvirt-network-bench-XXXXXX)
tag=oxnb$$
namespaces=("$tag-ox" "$tag-oxout" "$tag-lv" "$tag-lvout")
oxsock=$work/ox.sock
oxuri="qemu+unix:///system?socket=$oxsock"
pids=()
cleanup() {
    local ns p u n
    trap - EXIT INT TERM
    # An interrupted helper tears down its guests and networks itself.
    if [ -n "${bench:-}" ] && kill -TERM "$bench" 2>/dev/null; then
        for _ in $(seq 300); do kill -0 "$bench" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$bench" 2>/dev/null
    fi
    # Guests and networks first, while the daemons run.
    for u in "$oxsock|$oxuri" "$work/libvirtd/run/libvirt-sock|${LIBVIRTD_URI:-}"; do
        [ -S "${u%%|*}" ] || continue
        destroy_running_guests "${u%%|*}" "${u#*|}"
        for n in $(timeout 10 virsh -c "${u#*|}" net-list --name 2>/dev/null); do
            timeout 10 virsh -c "${u#*|}" net-destroy "$n" >/dev/null 2>&1
        done
    done
    stop_libvirtd
    kill_pids_reverse
    # Whatever is left in the namespaces (dnsmasq, VMMs, QEMU, receivers,
    # libvirtd's subreaper) was started here.
    for ns in "${namespaces[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
    done
    sleep 0.3
    for ns in "${namespaces[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
    kill_run_leftovers "$work"
    stop_pids_and_remove "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A copy of the daemon and its VMM: a rebuild during the run changes
# nothing.
mkdir "$work/bin"
cp "$OXVIRTD" "$work/bin/oxvirtd"
[ -x "$(dirname "$OXVIRTD")/oxvirt-vmm" ] && cp "$(dirname "$OXVIRTD")/oxvirt-vmm" "$work/bin/"

# The namespaces: daemon side 10.99.0.1, outside 10.99.0.2.
for d in ox lv; do
    ns=$tag-$d
    out=$tag-${d}out
    ip netns add "$ns" && ip netns add "$out" || die "cannot make network namespaces"
    ip -n "$ns" link set lo up
    ip -n "$out" link set lo up
    ip -n "$ns" link add vup type veth peer name vout netns "$out"
    ip -n "$ns" addr add 10.99.0.1/24 dev vup
    ip -n "$ns" link set vup up
    ip -n "$out" addr add 10.99.0.2/24 dev vout
    ip -n "$out" link set vout up
done

# libvirtd (its own mount namespace, see anchors.sh) inside its network
# namespace.
LIBVIRTD_PID=$(ip netns exec "$tag-lv" bash -c '. "$1"; start_libvirtd "$2" >/dev/null && echo "$LIBVIRTD_PID"' \
    _ "$here/anchors.sh" "$work/libvirtd")
LIBVIRTD_URI="qemu:///system?socket=$work/libvirtd/run/libvirt-sock"
[ -n "$LIBVIRTD_PID" ] || die "libvirtd did not start (log: $work/libvirtd/log)"

# oxvirtd on a private bus, inside its network namespace.
start_private_bus "$work"
RUST_LOG=warn ip netns exec "$tag-ox" "$work/bin/oxvirtd" --bus-address "$(head -1 "$work/bus")" \
    --config-dir "$work/ox/config/qemu" --run-dir "$work/ox/run/qemu" --state-dir "$work/ox/state" \
    --rpc-socket "$oxsock" 2>"$work/oxvirtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$oxsock" ] && break; sleep 0.1; done
[ -S "$oxsock" ] || die "oxvirtd did not start: $(cat "$work/oxvirtd.log")"

load0=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 "$here/network_bench.py" "$rounds" "$KERNEL" "$work" \
    "oxvirtd,$tag-oxout,$oxuri" "libvirtd,$tag-lvout,$LIBVIRTD_URI" >"$work/results" &
bench=$!
wait "$bench" || die "network_bench.py failed (status $?)"
bench=
declare -A res count
while read -r label name v n; do
    res[$label,$name]=$v
    count[$label,$name]=$n
done <"$work/results"

printf '%-44s %10s %10s %7s %s\n' "median of $rounds" oxvirtd libvirtd ratio target
notes=()
row() { # NAME LABEL UNIT SCALE TARGET
    local o=${res[oxvirtd,$1]:-} l=${res[libvirtd,$1]:-} r d fo fl
    r=$(awk -v o="$o" -v l="$l" 'BEGIN {if (o != "" && l > 0) printf "%.2f", o / l; else print "-"}')
    fo=$(awk -v v="$o" -v s="$4" 'BEGIN {if (v != "") printf "%.1f", v * s; else print "-"}')
    fl=$(awk -v v="$l" -v s="$4" 'BEGIN {if (v != "") printf "%.1f", v * s; else print "-"}')
    printf '%-44s %10s %10s %7s %s\n' "$2 ($3)" "$fo" "$fl" "$r" "$5"
    for d in oxvirtd libvirtd; do
        [ "${count[$d,$1]:-0}" = "$rounds" ] || notes+=("$d $1: ${count[$d,$1]:-0} of $rounds rounds succeeded")
    done
}
row net-start "net-start" ms 1000 "<= 0.5"
row net-destroy "net-destroy" ms 1000 "<= 0.5"
row lease-api "guest start -> lease (DHCPLeases)" ms 1000 "<= 1.0"
row lease-serial "guest start -> lease (guest serial)" ms 1000 "<= 1.0"
row lease-dflt-api "  with STP + dnsmasq ping (DHCPLeases)" ms 1000 "-"
row lease-dflt-serial "  with STP + dnsmasq ping (guest serial)" ms 1000 "-"
row udp-nat "UDP guest -> outside via NAT (receiver)" MB/s 1 ">= 1.0"
row udp-guest "  sent, as the guest counts it" MB/s 1 "-"
for n in "${notes[@]}"; do echo "note: $n"; done
echo "load average (1/5/15 min) before: $load0, after: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
