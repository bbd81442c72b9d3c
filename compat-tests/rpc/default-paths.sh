#!/bin/bash
# Default socket paths, in a private mount namespace with a tmpfs on
# /run/libvirt (so the host's /run/libvirt is never touched): a stale
# virtqemud-sock is removed, the sockets get libvirt's modes, plain `virsh`
# (no URI) and `virsh -r` find oxvirtd, and a second daemon refuses to
# start. Root only.
#
# usage: default-paths.sh OXVIRTD BUS_ADDRESS STATE_DIR
set -u
oxvirtd=$1 bus=$2 state=$3
exec unshare -m bash -s "$oxvirtd" "$bus" "$state" <<'INNER'
set -u
oxvirtd=$1 bus=$2 state=$3
mount --make-rprivate /
mkdir -p /run/libvirt
mount -t tmpfs none /run/libvirt
touch /run/libvirt/virtqemud-sock
"$oxvirtd" --bus-address "$bus" --config-dir "$state/c" --run-dir "$state/r" \
    --state-dir "$state/s" 2>"$state/daemon.log" &
pid=$!
for _ in $(seq 100); do [ -S /run/libvirt/libvirt-sock ] && break; sleep 0.1; done
rc=0
check() {
    if eval "$2"; then echo "ok   - $1"; else echo "FAIL - $1"; rc=1; fi
}
unset LIBVIRT_DEFAULT_URI
check "stale virtqemud-sock removed" '[ ! -e /run/libvirt/virtqemud-sock ]'
check "rw socket mode" '[ "$(stat -c %a /run/libvirt/libvirt-sock)" = 660 ] || [ "$(stat -c %a /run/libvirt/libvirt-sock)" = 600 ]'
check "ro socket mode 666" '[ "$(stat -c %a /run/libvirt/libvirt-sock-ro)" = 666 ]'
check "virsh (no URI) uri" '[ "$(virsh uri 2>&1 | head -1)" = "qemu:///system" ]'
check "virsh (no URI) list --all" 'virsh list --all >/dev/null 2>&1'
check "virsh -c qemu:///system hostname" '[ "$(virsh -c qemu:///system hostname | head -1)" = "$(cat /proc/sys/kernel/hostname)" ]'
check "virsh -r list" 'virsh -r -c qemu:///system list >/dev/null 2>&1'
out=$("$oxvirtd" --bus-address "$bus" --config-dir "$state/c2" --run-dir "$state/r2" \
    --state-dir "$state/s2" 2>&1)
check "second daemon refuses to start" '[ $? -ne 0 ] && grep -q "another daemon is already serving /run/libvirt/libvirt-sock" <<<"$out"'
kill $pid
wait $pid 2>/dev/null
exit $rc
INNER
