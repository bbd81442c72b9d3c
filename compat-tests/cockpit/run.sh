#!/bin/bash
# Cockpit's Machines page, for real, against a private oxvirtd: cockpit-ws and
# cockpit-bridge from Debian, the page in headless Chromium driven by
# selenium (machines.py), the freestanding test guest on /dev/kvm.
#
# What it starts, all in a temp dir ($TESTDIR) and all ended on exit:
#   - a private dbus-daemon configured as a *system* bus (allow-all policy);
#     `dbus-monitor` on it records every call Cockpit makes and each error
#     it gets (artifacts/dbus-monitor.log);
#   - oxvirtd on that bus, its RPC sockets at $TESTDIR/libvirt-sock(-ro),
#     its config/run/state dirs in $TESTDIR; domains defined from
#     compat-tests/examples/testos-domain.xml, as a user writes it (no
#     machine=): testos-running (started), testos-off (shut off) and
#     testos-snap (started, on a qcow2 volume, for the Snapshots card); and
#     testos-vnc (started; VNC, a vga adapter, a USB tablet; the guest draws
#     its test pattern and echoes keys to its serial log);
#   - cockpit-ws --no-tls --local-session=cockpit-bridge on 127.0.0.1, in its
#     own mount namespace where $TESTDIR is bind-mounted on /run/libvirt, so
#     the `virsh -c qemu:///system` and `virt-install` that Cockpit spawns
#     reach this oxvirtd (and nothing else);
#   - machines.py: Chromium (headless) through chromedriver, one named check
#     per step ("PASS name" / "FAIL name: why"), a screenshot per step.
#
# usage: compat-tests/cockpit/run.sh [--serve]
#   --serve        start everything, print the URL and wait (Ctrl-C ends it),
#                  for looking at the page by hand instead of running checks
# environment:
#   OXVIRTD            the daemon (default target/debug/oxvirtd; oxvirt-vmm
#                      is taken from beside it)
#   OXVIRT_ARTIFACTS   where screenshots and logs go (default $TESTDIR/artifacts,
#                      which is kept when a check fails)
#   CI=true            a missing prerequisite fails the test instead of
#                      skipping it (exit 77)
#   COCKPIT_NO_INSTALL=1  do not apt-get install missing packages
# needs: root, /dev/kvm, unshare, and the Debian packages cockpit-ws
#   cockpit-bridge cockpit-system cockpit-machines chromium chromium-driver
#   python3-selenium dbus-daemon libvirt-clients virtinst (installed with apt
#   when missing), gcc and make for the test guest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
if [ -n "${OX_COCKPIT_NS:-}" ]; then
    ip link set lo up
    # sysfs as this namespace's: /sys/class/net must list the interfaces
    # `ip link` shows here (the default network's bridge: Cockpit's NIC
    # list looks each bridge `ip` shows up in /sys/class/net and throws
    # when it is missing). The cgroup mounts under it (the daemon puts
    # guests in cgroups) are moved onto the new one.
    cg=$(mktemp -d /tmp/oxvirt-cockpit-cg-XXXXXX)
    mount --rbind /sys/fs/cgroup "$cg" &&
        mount -t sysfs sysfs /sys &&
        mount --move "$cg" /sys/fs/cgroup
    rmdir "$cg" 2>/dev/null
fi
. "$top/compat-tests/lib/private-run.sh"
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
EXAMPLE=$top/compat-tests/examples/testos-domain.xml
serve=0
[ "${1:-}" = "--serve" ] && serve=1

missing() { # a prerequisite is not there: skip, or fail under CI
    if [ "${CI:-}" = true ]; then
        echo "FAIL prerequisites: $1"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}

[ "$(id -u)" = 0 ] || missing "needs root (mount namespace, /run/libvirt bind mount)"

# --- packages
need_pkgs=()
for p in cockpit-ws:/usr/lib/cockpit/cockpit-ws cockpit-bridge:/usr/bin/cockpit-bridge \
    cockpit-system:/usr/share/cockpit/shell/manifest.json \
    cockpit-machines:/usr/share/cockpit/machines/manifest.json \
    chromium:/usr/bin/chromium chromium-driver:/usr/bin/chromedriver \
    python3-selenium:/usr/lib/python3/dist-packages/selenium/__init__.py \
    dbus-daemon:/usr/bin/dbus-daemon dbus-bin:/usr/bin/dbus-monitor \
    libvirt-clients:/usr/bin/virsh virtinst:/usr/bin/virt-install; do
    [ -e "${p#*:}" ] || need_pkgs+=("${p%%:*}")
done
if [ ${#need_pkgs[@]} -gt 0 ] && [ "${COCKPIT_NO_INSTALL:-}" != 1 ]; then
    echo "# installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # cockpit-machines depends on libvirt-daemon-system and libvirt-dbus: if
    # apt pulls them in, their maintainer scripts must not start a daemon.
    # Without systemd as PID 1 invoke-rc.d starts nothing; policy-rc.d makes
    # that so with systemd too, for the length of this install.
    policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_made=1
    fi
    . "$top/compat-tests/lib/apt.sh"
    apt_install "${need_pkgs[@]}" >/tmp/oxvirt-cockpit-apt.log 2>&1
    rc=$?
    [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || { tail -20 /tmp/oxvirt-cockpit-apt.log; missing "apt-get install ${need_pkgs[*]} failed"; }
fi
# The daemon runs libvirt's `default` network for the page (bridge,
# dnsmasq, firewall table): everything, browser included, stays in a
# network namespace of this run, entered once the packages are in (apt
# needs the host's network).
if [ -z "${OX_COCKPIT_NS:-}" ] && [ "$(id -u)" = 0 ]; then
    exec env OX_COCKPIT_NS=1 unshare --net --mount --propagation private "$0" "$@"
fi
for need in /usr/lib/cockpit/cockpit-ws cockpit-bridge chromium chromedriver dbus-daemon \
    dbus-monitor virsh virt-install unshare /usr/bin/python3 "$OXVIRTD" /dev/kvm; do
    command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] || missing "$need is missing"
done
/usr/bin/python3 -c 'import selenium' 2>/dev/null || missing "python3-selenium is missing"
[ -x "$(dirname "$OXVIRTD")/oxvirt-vmm" ] || missing "oxvirt-vmm is not beside $OXVIRTD"
if [ ! -f "$KERNEL" ]; then
    make -s -C "$top/compat-tests/guest/testos" >/dev/null 2>&1 || missing "cannot build $KERNEL"
fi

setup_fail() {
    echo "FAIL setup: $1"
    echo "0 passed, 1 failed"
    exit 1
}

# --- temp dir, cleanup
TESTDIR=$(mktemp -d /tmp/oxvirt-cockpit-XXXXXX)
ART=${OXVIRT_ARTIFACTS:-$TESTDIR/artifacts}
mkdir -p "$ART"
pids=() # started here, killed in reverse order
made_run_libvirt=0
cockpit_pid=
result=1

# Every process in the tree under PID (children first).
descendants() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        descendants "$c"
        echo "$c"
    done
}

cleanup() {
    trap - EXIT INT TERM
    destroy_running_guests "$TESTDIR/libvirt-sock" "$U"
    # cockpit-ws and what it spawned (bridge, virsh console, virt-install);
    # the mount namespace goes with the last of them.
    if [ -n "$cockpit_pid" ]; then
        local tree
        tree=$(descendants "$cockpit_pid")
        kill "$cockpit_pid" $tree 2>/dev/null
    fi
    kill_pids_reverse
    sleep 0.5
    # Left over: VMMs, chromium with its profile here, chromedriver, the
    # session bus that cockpit-bridge launches outside the tree.
    kill_run_leftovers "$TESTDIR"
    wait 2>/dev/null
    if [ $made_run_libvirt = 1 ]; then rmdir /run/libvirt 2>/dev/null; fi
    # The artifacts stay; the temp dir too when they are in it and a check
    # failed.
    if [ -n "${OXVIRT_ARTIFACTS:-}" ] || [ "$result" = 0 ]; then
        rm -rf "$TESTDIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- private system bus
BUS_SOCK=$TESTDIR/system_bus_socket
BUS="unix:path=$BUS_SOCK"
cat >"$TESTDIR/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$BUS</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file="$TESTDIR/bus.conf" --nofork --nopidfile >"$TESTDIR/dbus-daemon.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -S "$BUS_SOCK" ] && break; sleep 0.1; done
[ -S "$BUS_SOCK" ] || setup_fail "dbus-daemon did not start: $(cat "$TESTDIR/dbus-daemon.log")"
dbus-monitor --address "$BUS" >"$ART/dbus-monitor.log" 2>&1 &
pids+=($!)

# --- oxvirtd
sock=$TESTDIR/libvirt-sock
U="qemu+unix:///system?socket=$sock"
# In the run's network namespace (the guest's tap, the default network's
# bridge and dnsmasq are made there), the one cockpit-bridge is in: the
# VNC console's stream channel connects to the guest's VNC port on
# 127.0.0.1. Run without that namespace (not root), it gets one of its own.
# (unshare execs the daemon: $! is oxvirtd's pid.)
netns=(unshare -n)
[ -n "${OX_COCKPIT_NS:-}" ] && netns=()
"${netns[@]}" "$OXVIRTD" --bus-address "$BUS" \
    --config-dir "$TESTDIR/config" --run-dir "$TESTDIR/run" --state-dir "$TESTDIR/state" \
    --rpc-socket "$sock" --rpc-socket-ro "$sock-ro" >"$ART/oxvirtd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || setup_fail "oxvirtd did not start: $(tail -3 "$ART/oxvirtd.log")"

# The domains: testos-domain.xml as a user would write it (no machine=, no
# <cpu>, no <emulator>), with the guest's path, a name and a console log of
# its own. testos-off is just that. testos-running has a pty serial port
# instead of the file (and so a pty console, as libvirt derives it), which is
# what Cockpit's "Serial console" needs, and a disk and a NIC for the
# details page to list.
domxml() { # NAME running|off
    sed -e "s|<name>testos</name>|<name>$1</name>|" \
        -e "s|/usr/share/oxvirt/testos.elf|$KERNEL|" \
        -e "s|CONSOLE_LOG|$TESTDIR/$1.console.log|" "$EXAMPLE" |
        if [ "$2" = running ]; then
            sed -e "/<serial type='file'>/,/<\/serial>/c\\
    <serial type='pty'/>\\
    <disk type='file' device='disk'>\\
      <driver name='qemu' type='raw'/>\\
      <source file='$TESTDIR/$1.img'/>\\
      <target dev='vda' bus='virtio'/>\\
    </disk>\\
    <interface type='ethernet'>\\
      <mac address='52:54:00:0c:0c:01'/>\\
      <model type='virtio'/>\\
    </interface>"
        else
            cat
        fi
}
# testos-vnc: the graphical console. VNC, a VGA adapter and a USB tablet
# (what virt-install gives a new guest); the guest draws its pattern
# (compat-tests/guest/testos, "Display and input") and prints the keys it
# gets to its serial log.
vncxml() {
    sed -e "s|<name>testos</name>|<name>testos-vnc</name>|" \
        -e "s|/usr/share/oxvirt/testos.elf|$KERNEL|" \
        -e "s|<cmdline>.*</cmdline>|<cmdline>oxtest.checks=display oxtest.then=input</cmdline>|" \
        -e "s|CONSOLE_LOG|$TESTDIR/testos-vnc.console.log|" \
        -e "s|<devices>|<devices>\\
    <graphics type='vnc'/>\\
    <video><model type='vga'/></video>\\
    <controller type='usb' model='qemu-xhci'/>\\
    <input type='tablet' bus='usb'/>|" "$EXAMPLE"
}
truncate -s 16M "$TESTDIR/testos-running.img"
domxml testos-running running >"$TESTDIR/testos-running.xml"
domxml testos-off off >"$TESTDIR/testos-off.xml"
# testos-snap: testos-off on a qcow2 volume, for the Snapshots card. The
# volume comes from oxvirt's storage driver, through a transient pool that
# is gone again before Cockpit looks.
for a in "pool-create-as snaptmp dir --target $TESTDIR" \
    "vol-create-as snaptmp testos-snap.qcow2 16M --format qcow2" "pool-destroy snaptmp"; do
    # shellcheck disable=SC2086
    out=$(timeout 30 virsh -c "$U" $a 2>&1) || setup_fail "virsh $a: $out"
done
domxml testos-snap off | sed "s|<devices>|<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$TESTDIR/testos-snap.qcow2'/><target dev='vda' bus='virtio'/></disk>|" \
    >"$TESTDIR/testos-snap.xml"
vncxml >"$TESTDIR/testos-vnc.xml"
cp "$TESTDIR"/testos-*.xml "$ART/"
for d in testos-running testos-off testos-vnc testos-snap; do
    out=$(timeout 30 virsh -c "$U" define "$TESTDIR/$d.xml" 2>&1) ||
        setup_fail "virsh define $d: $out"
done
for d in testos-running testos-vnc testos-snap; do
    out=$(timeout 30 virsh -c "$U" start $d 2>&1) || setup_fail "virsh start $d: $out"
done
# libvirt's default network, as the package defines it, running.
for a in "net-define /usr/share/libvirt/networks/default.xml" "net-start default"; do
    out=$(timeout 30 virsh -c "$U" $a 2>&1) || setup_fail "virsh $a: $out"
done
timeout 10 virsh -c "$U" list --all | sed '/^$/d; s/^/# /'

# --- cockpit-ws in a mount namespace where /run/libvirt is $TESTDIR
if [ ! -d /run/libvirt ]; then
    mkdir -p /run/libvirt && made_run_libvirt=1
fi
mkdir -p "$TESTDIR/home" "$TESTDIR/xdg-run"
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i HOME="$TESTDIR/home" PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
    DBUS_SYSTEM_BUS_ADDRESS="$BUS" XDG_RUNTIME_DIR="$TESTDIR/xdg-run" \
    unshare -m /bin/bash -c '
        set -e
        mount --make-rprivate /
        mount --bind "$1" /run/libvirt
        shift
        exec "$@"' cockpit-ns "$TESTDIR" \
    /usr/lib/cockpit/cockpit-ws --no-tls --local-session=cockpit-bridge \
    --port "$PORT" --address 127.0.0.1 >"$ART/cockpit-ws.log" 2>&1 &
cockpit_pid=$!
for _ in $(seq 100); do
    /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
    sleep 0.1
done
URL="http://127.0.0.1:$PORT/machines"
echo "# cockpit-ws at $URL (bus $BUS, RPC $sock)"
echo "# artifacts: $ART"

if [ $serve = 1 ]; then
    echo "# serving; Ctrl-C ends it. virsh -c '$U'"
    echo "# DBUS_SYSTEM_BUS_ADDRESS=$BUS"
    result=0
    wait "$cockpit_pid"
    exit 0
fi

# machines.py ends with the tally line, after a summary of the D-Bus calls
# that failed (from dbus-monitor.log; every call: dbus-calls.txt).
timeout 900 /usr/bin/python3 "$here/machines.py" --url "$URL" --artifacts "$ART" \
    --uri "$U" --testdir "$TESTDIR" --daemon-pid "${pids[2]}" --daemon-log "$ART/oxvirtd.log" \
    --dbus-log "$ART/dbus-monitor.log"
result=$?
[ $result = 124 ] && echo "FAIL machines.py: timed out after 900 s" && echo "0 passed, 1 failed"
exit $result
