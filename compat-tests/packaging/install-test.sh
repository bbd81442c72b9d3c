#!/bin/bash
# Installs the oxvirt .deb with dpkg -i into a fresh Debian 12 root and
# runs the daemon there from the installed files, on a private system bus
# (dbus-daemon --system inside the root, so the installed bus policy is
# the one enforced). Checks:
#   - package install: group libvirt (sysusers), conffile, units enabled
#   - oxvirtd starts, reports READY=1 through $NOTIFY_SOCKET
#   - busctl Get LibVersion answers for root and for a member of group
#     libvirt, and is denied for nobody
#   - libvirt-sock refuses nobody; libvirt-sock-ro accepts nobody
#     (python-libvirt openReadOnly) and refuses defineXML
#   - SIGHUP re-reads oxvirtd.conf; a broken file is reported by line
#   - socket activation: sockets bound by systemd-socket-activate are used
#   - D-Bus activation from the installed activation file
#
#   compat-tests/packaging/install-test.sh [path/to/oxvirt.deb]
#
# The Debian root is made once with debootstrap (89 s here, minbase plus
# dbus and the standalone sysusers/tmpfiles, from deb.debian.org) and
# cached in $OXVIRT_PKGTEST_CACHE (default /var/cache/oxvirt-pkgtest);
# every run copies it to a fresh directory (3-6 s). With the cache warm the
# whole test takes about 12 s, so it can run in CI next to check-deb.sh;
# a cold cache adds the debootstrap time once.
# Needs root, debootstrap, busctl (systemd), python3-libvirt, setpriv.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${OXVIRT_PKGTEST_CACHE:-/var/cache/oxvirt-pkgtest}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
deb=${1:-$(ls -t "${OXVIRT_DEB_DIR:-/var/tmp/oxvirt-deb}"/oxvirt_*.deb 2>/dev/null | head -1)}
[ -n "$deb" ] && [ -f "$deb" ] || { echo "no .deb; run check-deb.sh first or pass one"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 2; }

fail=0
pass() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
step() { echo "== $*"; }
t_start=$(date +%s)

# 1. The cached Debian 12 root.
if [ ! -x "$cache/base/usr/bin/dbus-daemon" ] || [ ! -x "$cache/base/usr/sbin/dnsmasq" ] ||
    [ ! -f "$cache/base/usr/share/seabios/bios-256k.bin" ]; then
    step "debootstrap bookworm into $cache/base"
    t0=$(date +%s)
    rm -rf "$cache/base.tmp" "$cache/base"; mkdir -p "$cache"
    debootstrap --variant=minbase \
        --include=dbus,systemd-standalone-sysusers,systemd-standalone-tmpfiles,dnsmasq-base,iproute2,nftables,seabios \
        bookworm "$cache/base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 \
        || { tail -20 "$cache/debootstrap.log"; exit 1; }
    mv "$cache/base.tmp" "$cache/base"
    echo "debootstrap took $(( $(date +%s) - t0 ))s"
fi

root=$(mktemp -d /var/tmp/oxvirt-root.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$root/run/dbus/pid" ] && kill "$(cat "$root/run/dbus/pid")" 2>/dev/null || true
    # Any oxvirtd D-Bus activation started inside this root.
    for p in $(pgrep -x oxvirtd || true); do
        [ "$(readlink "/proc/$p/root" 2>/dev/null)" = "$root" ] && kill "$p" 2>/dev/null || true
    done
    sleep 0.3
    for m in "$root/run" "$root/dev" "$root/proc"; do
        mountpoint -q "$m" && umount -l "$m"
    done
    rm -rf "$root"
}
trap cleanup EXIT
t0=$(date +%s)
cp -a "$cache/base/." "$root/"
chmod 755 "$root"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=755 tmpfs "$root/run"
echo "fresh root $root in $(( $(date +%s) - t0 ))s"
in_root() { chroot "$root" "$@"; }

step "dpkg -i $(basename "$deb")"
cp "$deb" "$root/tmp/oxvirt.deb"
in_root dpkg -i /tmp/oxvirt.deb
in_root getent group libvirt >/dev/null && pass "group libvirt created" || bad "no group libvirt"
for u in oxvirtd.service oxvirtd.socket oxvirtd-ro.socket; do
    ls "$root"/etc/systemd/system/*.wants/"$u" >/dev/null 2>&1 && pass "$u enabled" || bad "$u not enabled"
done
in_root dpkg-query -W -f='${Conffiles}\n' oxvirt | grep -q /etc/oxvirt/oxvirtd.conf \
    && pass "oxvirtd.conf is a conffile" || bad "oxvirtd.conf is not a conffile"
[ -d "$root/run/oxvirt" ] && pass "tmpfiles created /run/oxvirt" || bad "no /run/oxvirt"
cmp -s "$root/usr/share/oxvirt/networks/default.xml" "$root/etc/oxvirt/qemu/networks/default.xml" \
    && pass "the default network is defined" || bad "no /etc/oxvirt/qemu/networks/default.xml"
[ -L "$root/etc/oxvirt/qemu/networks/autostart/default.xml" ] \
    && pass "the default network autostarts" || bad "the default network does not autostart"
# Not started here: the daemon runs in this host's network namespace.
rm -f "$root/etc/oxvirt/qemu/networks/autostart/default.xml"
in_root useradd --system --no-create-home -G libvirt oxtester
tester_uid=$(in_root id -u oxtester)
tester_gid=$(in_root id -g oxtester)
libvirt_gid=$(in_root getent group libvirt | cut -d: -f3)

step "system bus with the installed policy"
mkdir -p "$root/run/dbus"
in_root dbus-daemon --system --fork
bus="unix:path=$root/run/dbus/system_bus_socket"
for _ in $(seq 50); do [ -S "$root/run/dbus/system_bus_socket" ] && break; sleep 0.1; done

# Readiness arrives on a datagram socket, as systemd's would.
notify="$root/run/notify.sock"
/usr/bin/python3 - "$notify" >"$root/run/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True:
    print(s.recv(4096).decode().replace("\n", " "), flush=True)
PY
pids+=($!)
for _ in $(seq 50); do [ -S "$notify" ] && break; sleep 0.1; done

step "start oxvirtd from the installed files"
t0=$(date +%s%N)
chroot "$root" env NOTIFY_SOCKET=/run/notify.sock /usr/sbin/oxvirtd --system \
    >"$root/run/oxvirtd.log" 2>&1 &
daemon=$!
pids+=($daemon)
for _ in $(seq 100); do grep -q READY=1 "$root/run/notify.log" && break; sleep 0.1; done
if grep -q READY=1 "$root/run/notify.log"; then
    pass "READY=1 after $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(head -1 "$root/run/notify.log")"
else
    bad "no READY=1"; cat "$root/run/oxvirtd.log"
fi
grep -q '<uuid>' "$root/etc/oxvirt/qemu/networks/default.xml" \
    && grep -q "<mac address='52:54:00:" "$root/etc/oxvirt/qemu/networks/default.xml" \
    && pass "oxvirtd gave the default network a UUID and a MAC" \
    || bad "the default network's definition was not completed"

lib_version() { busctl --address="$bus" call org.libvirt /org/libvirt/QEMU \
    org.freedesktop.DBus.Properties Get ss org.libvirt.Connect LibVersion 2>&1; }
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
# dbus-daemon takes the caller's groups from the socket (SO_PEERGROUPS),
# so the member runs with group libvirt as a logged-in member would.
as_tester() { setpriv --reuid="$tester_uid" --regid="$tester_gid" --groups="$libvirt_gid" "$@"; }

step "D-Bus policy"
r=$(lib_version) && pass "root: LibVersion = $r" || bad "root call: $r"
r=$(as_tester bash -c "$(declare -f lib_version); bus='$bus'; lib_version") \
    && pass "group libvirt member: LibVersion = $r" || bad "libvirt member call: $r"
if r=$(as_nobody bash -c "$(declare -f lib_version); bus='$bus'; lib_version"); then
    bad "nobody's call succeeded: $r"
else
    echo "$r" | grep -qi 'access\|denied\|reject' && pass "nobody denied: $r" || bad "nobody failed oddly: $r"
fi
r=$(as_nobody busctl --address="$bus" call org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus RequestName su org.libvirt 4 2>&1) \
    && bad "nobody may own org.libvirt: $r" || pass "nobody cannot own org.libvirt"

step "libvirt RPC sockets"
py=/usr/bin/python3   # Debian's, with python3-libvirt
sock="$root/run/libvirt/libvirt-sock"
ls -l "$sock" "$sock-ro"
cat >"$root/run/rpc_check.py" <<'PY'
import sys, libvirt
libvirt.registerErrorHandler(lambda *a: None, None) if hasattr(libvirt, "registerErrorHandler") else None
mode, sock = sys.argv[1], sys.argv[2]
uri = "qemu+unix:///system?socket=" + sock
xml = "<domain type='kvm'><name>pkgtest</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>"
try:
    c = libvirt.openReadOnly(uri) if mode == "ro" else libvirt.open(uri)
except libvirt.libvirtError as e:
    print("open refused:", e.get_error_message()); sys.exit(3)
print("open ok, libvirt version", c.getLibVersion())
try:
    c.defineXML(xml)
except libvirt.libvirtError as e:
    print("defineXML refused:", e.get_error_message()); sys.exit(4)
print("defineXML accepted"); c.lookupByName("pkgtest").undefine(); sys.exit(0)
PY
set +e
$py "$root/run/rpc_check.py" rw "$sock"; rc=$?
[ $rc = 0 ] && pass "root: read-write socket, defineXML" || bad "root on the read-write socket (rc $rc)"
as_nobody $py "$root/run/rpc_check.py" rw "$sock"; rc=$?
[ $rc = 3 ] && pass "nobody: read-write socket refused" || bad "nobody on the read-write socket (rc $rc)"
as_nobody $py "$root/run/rpc_check.py" ro "$sock-ro"; rc=$?
[ $rc = 4 ] && pass "nobody: read-only socket opens, defineXML refused" || bad "nobody on the read-only socket (rc $rc)"
set -e

step "reload (SIGHUP)"
echo 'log_level = "debug"' >>"$root/etc/oxvirt/oxvirtd.conf"
kill -HUP "$(pgrep -P "$daemon" -x oxvirtd || echo "$daemon")" 2>/dev/null || kill -HUP "$daemon"
sleep 0.5
grep -q 'log level debug' "$root/run/oxvirtd.log" && pass "reload applied log_level" || bad "reload: $(tail -3 "$root/run/oxvirtd.log")"
grep -q RELOADING=1 "$root/run/notify.log" && pass "RELOADING=1/READY=1 sent" || bad "no RELOADING=1"
echo 'log_level = broken' >>"$root/etc/oxvirt/oxvirtd.conf"
r=$(in_root /usr/sbin/oxvirtd --check-config 2>&1) && bad "broken config accepted" \
    || { echo "$r" | grep -q 'oxvirtd.conf:[0-9]*:' && pass "broken config named: $r" || bad "error without line: $r"; }
kill -HUP "$daemon"; sleep 0.5
lib_version >/dev/null && pass "daemon keeps serving after a broken reload" || bad "daemon died on broken reload"
sed -i '/^log_level/d' "$root/etc/oxvirt/oxvirtd.conf"

step "stop (SIGTERM)"
kill -TERM "$daemon"
for _ in $(seq 50); do kill -0 "$daemon" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon" 2>/dev/null && bad "oxvirtd still running after SIGTERM" || pass "oxvirtd stopped"
grep -q STOPPING=1 "$root/run/notify.log" && pass "STOPPING=1 sent" || bad "no STOPPING=1"

step "socket activation (systemd-socket-activate)"
rm -f "$sock" "$sock-ro"
systemd-socket-activate -l "$sock" --fdname=libvirt-sock -l "$sock-ro" --fdname=libvirt-sock-ro \
    chroot "$root" /usr/sbin/oxvirtd --system >"$root/run/oxvirtd-sa.log" 2>&1 &
pids+=($!)
sleep 0.5
set +e
$py "$root/run/rpc_check.py" ro "$sock-ro" >/dev/null; rc=$?   # first connection starts the daemon
set -e
[ $rc = 4 ] && pass "daemon started on the first connection to a passed socket" || { bad "socket activation (rc $rc)"; cat "$root/run/oxvirtd-sa.log"; }
grep -q 'listening on .*libvirt-sock' "$root/run/oxvirtd-sa.log" && pass "passed sockets adopted (binding them would have failed: they are served)" || true
kill -TERM "${pids[-1]}" 2>/dev/null || true
for p in $(pgrep -x oxvirtd || true); do
    [ "$(readlink "/proc/$p/root")" = "$root" ] && kill -TERM "$p"
done
sleep 1

step "D-Bus activation"
rm -f "$sock" "$sock-ro"
r=$(lib_version) && pass "activated by the call: LibVersion = $r" || bad "D-Bus activation: $r"

echo "total $(( $(date +%s) - t_start ))s"
if [ $fail = 0 ]; then echo PASS; else echo FAILED; exit 1; fi
