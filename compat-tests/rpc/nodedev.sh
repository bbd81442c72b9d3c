#!/bin/bash
# The node-device driver through the real virsh: nodedev-list (plain,
# --tree, --cap), nodedev-dumpxml, nodedev-info, the errors of a missing
# device, of destroying a host device and of the read-only socket.
#
# Starts a private dbus-daemon and oxvirtd with private state dirs and the
# RPC socket in a temp dir. Names and XML are checked against what sysfs
# says; where the host is the one libvirt 9.0 was recorded on (the same
# device names), virsh's output must be libvirt's byte for byte
# (nodedev-libvirt/, from /work/lvtrace section 5).
#
# usage: compat-tests/rpc/nodedev.sh   (OXVIRTD=path to override the daemon)
# needs: virsh, dbus-daemon
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
want=$here/nodedev-libvirt

. "$top/compat-tests/lib/private-run.sh"
skip_unless_present virsh dbus-daemon "$OXVIRTD"

tmp=$(mktemp -d /tmp/oxvirt-nodedev-XXXXXX)
sock=$tmp/libvirt-sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'stop_pids_and_remove "$tmp"' EXIT

start_private_bus "$tmp"
"$OXVIRTD" --bus-address "$(head -1 "$tmp/bus")" \
    --config-dir "$tmp/config" --run-dir "$tmp/run" --state-dir "$tmp/state" \
    --rpc-socket "$sock" --rpc-socket-ro "$sock-ro" 2>"$tmp/oxvirtd.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

. "$here/lib.sh"

# same NAME FILE -- virsh args...: rc 0, stdout exactly FILE's bytes.
same() {
    local name=$1 file=$2
    shift 3
    if timeout 30 virsh -c "$U" "$@" >"$tmp/out" 2>"$tmp/err" && cmp -s "$tmp/out" "$file"; then
        pass "$name"
    else
        fail "$name"
        diff "$file" "$tmp/out" | sed 's/^/       | /'
        sed 's/^/       | /' "$tmp/err"
    fi
}

# What sysfs says the names are (libvirt's udev driver naming): every PCI
# function, and every interface udev gives no DEVTYPE (or wlan).
pci_names=$(for d in /sys/bus/pci/devices/*; do
    [ -e "$d" ] && basename "$d" | tr -c '[:alnum:]\n' _ | sed 's/^/pci_/'
done | sort)
net_names=$(for d in /sys/class/net/*; do
    [ -e "$d/uevent" ] || continue
    t=$(sed -n 's/^DEVTYPE=//p' "$d/uevent")
    [ -z "$t" ] || [ "$t" = wlan ] || continue
    state=$(head -1 "$d/operstate" 2>/dev/null)
    [ -n "$state" ] || continue
    echo "net_$(basename "$d")_$(cat "$d/address")" | tr -c '[:alnum:]\n' _
done | sort)

expect list-rc 0 '^computer$' -- nodedev-list
all=$(virsh -c "$U" nodedev-list 2>/dev/null)
for n in $pci_names $net_names; do
    if ! grep -qx "$n" <<<"$all"; then
        fail "nodedev-list has $n"
    fi
done
[ "$(sort <<<"$all" | sed '/^$/d')" = "$(sed '/^$/d' <<<"$all")" ] && pass list-sorted ||
    fail list-sorted

got=$(virsh -c "$U" nodedev-list --cap pci 2>&1 | sed '/^$/d')
[ "$got" = "$pci_names" ] && pass "list --cap pci" || {
    fail "list --cap pci"
    diff <(echo "$pci_names") <(echo "$got") | sed 's/^/       | /'
}
got=$(virsh -c "$U" nodedev-list --cap net 2>&1 | sed '/^$/d')
[ "$got" = "$net_names" ] && pass "list --cap net" || {
    fail "list --cap net"
    diff <(echo "$net_names") <(echo "$got") | sed 's/^/       | /'
}
expect "list --cap system" 0 '^computer$' -- nodedev-list --cap system
expect "list --inactive" 0 '^$' -- nodedev-list --inactive
expect "list --cap bogus" 1 '^error: Invalid capability type$' -- nodedev-list --cap bogus

tree=$(virsh -c "$U" nodedev-list --tree 2>&1)
if [ "$(head -1 <<<"$tree")" = computer ] &&
    [ "$(grep -c -- '+- ' <<<"$tree")" = "$(($(sed '/^$/d' <<<"$all" | wc -l) - 1))" ]; then
    pass "list --tree"
else
    fail "list --tree"
    sed 's/^/       | /' <<<"$tree"
fi

expect dumpxml-computer 0 "^  <capability type='system'>$" -- nodedev-dumpxml computer
expect dumpxml-computer-uuid 0 '^      <uuid>[0-9a-f-]{36}</uuid>$' -- nodedev-dumpxml computer

pci=$(head -1 <<<"$pci_names")
if [ -n "$pci" ]; then
    addr=$(basename "$(ls -d /sys/bus/pci/devices/* | head -1)")
    vendor=$(cat "/sys/bus/pci/devices/$addr/vendor")
    expect "dumpxml $pci" 0 "^  <path>/sys/devices/.*/$addr</path>$" -- nodedev-dumpxml "$pci"
    expect "dumpxml $pci vendor" 0 "^    <vendor id='$vendor'" -- nodedev-dumpxml "$pci"
    expect "dumpxml $pci class" 0 "^    <class>0x[0-9a-f]{6}</class>$" -- nodedev-dumpxml "$pci"
    expect "info $pci" 0 '^Persistent: +no$' -- nodedev-info "$pci"
    expect "destroy $pci" 1 'error: unsupported configuration: Unsupported device type' \
        -- nodedev-destroy "$pci"
fi
net=$(head -1 <<<"$net_names")
if [ -n "$net" ]; then
    ifname=$(sed -E 's/^net_(.*)_([0-9a-f]{2}_){5}[0-9a-f]{2}$/\1/' <<<"$net")
    expect "dumpxml $net" 0 "^    <interface>$ifname</interface>$" -- nodedev-dumpxml "$net"
    expect "dumpxml $net address" 0 "^    <address>$(cat "/sys/class/net/$ifname/address")</address>$" \
        -- nodedev-dumpxml "$net"
    expect "dumpxml $net subtype" 0 "^    <capability type='802(03|11)'/>$" -- nodedev-dumpxml "$net"
fi
expect info-computer 0 '^Persistent: +yes$' -- nodedev-info computer

# A missing device: virsh's own line, then libvirt's error.
virsh -c "$U" nodedev-dumpxml nope >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ $rc = 1 ] && [ "$(cat "$tmp/err")" = "error: Could not find matching device 'nope'
error: Node device not found: no node device with matching name 'nope'" ]; then
    pass dumpxml-missing
else
    fail "dumpxml-missing (rc $rc)"
    sed 's/^/       | /' "$tmp/err"
fi

# The read-only socket lists but may not destroy.
U="qemu+unix:///system?socket=$sock-ro"
expect ro-list 0 '^computer$' -- nodedev-list
expect ro-destroy 1 'operation forbidden: read only access prevents virNodeDeviceDestroy' \
    -- nodedev-destroy computer
U="qemu+unix:///system?socket=$sock"

# The host libvirt was recorded on: its output, byte for byte.
if cmp -s <(virsh -c "$U" nodedev-list 2>/dev/null) "$want/list.out"; then
    pass "libvirt's nodedev-list"
    same "libvirt's nodedev-list --tree" "$want/tree.out" -- nodedev-list --tree
    same "libvirt's nodedev-list --cap storage" "$want/list-cap-storage.out" \
        -- nodedev-list --cap storage
    for f in "$want"/dumpxml-*.out; do
        n=$(basename "$f" .out)
        n=${n#dumpxml-}
        same "libvirt's nodedev-dumpxml $n" "$f" -- nodedev-dumpxml "$n"
    done
else
    echo "# not the host libvirt was recorded on: no byte comparison"
fi

if [ "$fails" -gt 0 ]; then
    echo "$fails check(s) failed"
    sed 's/^/   log| /' "$tmp/oxvirtd.log" | tail -20
    exit 1
fi
echo "all node device checks passed"
