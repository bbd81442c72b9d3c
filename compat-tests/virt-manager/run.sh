#!/bin/bash
# virt-manager, for real, against a private oxvirtd: Debian's virt-manager 4.1
# under Xvfb, talking libvirt's RPC protocol to oxvirtd's socket; the
# freestanding test guest on /dev/kvm.
#
# What it starts, all in a temp dir ($TESTDIR) and all ended on exit:
#   - a private dbus-daemon (session type): oxvirtd serves on it, and it is
#     virt-manager's session (and system) bus, so nothing reaches the host's;
#   - oxvirtd in its own network namespace (the guest's tap is made there),
#     its RPC sockets at $TESTDIR/libvirt-sock(-ro), its config/run/state dirs
#     in $TESTDIR; a dir storage pool `vmgr-pool` with a volume `disk0.img`;
#     a virtual network `vmgr-net`, defined (not started);
#     three domains from compat-tests/examples/testos-domain.xml:
#     testos-running (started; a pty serial port and so a pty console, the
#     pool's volume as its disk, an ethernet NIC), testos-off (shut off) and
#     testos-vnc (started; VNC, a vga adapter, a USB tablet; the guest draws
#     its test pattern and echoes keys to its serial log); $TESTDIR on
#     /run/libvirt, so qemu:///system is this daemon;
#   - Xvfb on the first free display from :91 (1280x800x24, -nolisten tcp);
#   - virt-manager, one run per check, through vmgr_probe.py: virt-manager
#     unchanged, plus a dump of the text of its windows once a second (what
#     the checks read) and one debug-log line per libvirt error the client
#     library reports (OXPROBE libvirt-error call=... msg=...), including
#     the ones virt-manager catches and drops.
#
# Each check prints "PASS name" or "FAIL name: why" and leaves NN-name.png
# (the whole screen, `import -window root`) and NN-name.windows.txt (the
# window dump) in the artifacts dir; each virt-manager run leaves its
# --debug log there (vm-RUN.log). At the end: the libvirt calls that failed,
# from those logs (libvirt-errors.txt), and "N passed, M failed".
#
# usage: compat-tests/virt-manager/run.sh [--serve]
#   --serve [ARGS]  set everything up, start virt-manager (with ARGS, e.g.
#               --show-host-summary) on the display and wait (Ctrl-C ends it);
#               look with `import -display :N -window root x.png`
# environment:
#   OXVIRTD             the daemon (default target/debug/oxvirtd; oxvirt-vmm
#                       is taken from beside it)
#   OXVIRT_ARTIFACTS    where screenshots and logs go (default
#                       $TESTDIR/artifacts, kept when a check fails)
#   CI=true             a missing prerequisite fails the test instead of
#                       skipping it (exit 77)
#   VMGR_NO_INSTALL=1   do not apt-get install missing packages
# needs: root, /dev/kvm, unshare, and the Debian packages virt-manager xvfb
#   imagemagick dbus-x11 xdotool (installed with apt when missing), gcc and
#   make for the test guest.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
EXAMPLE=$top/compat-tests/examples/testos-domain.xml
PY=/usr/bin/python3
# virt-manager makes libvirt's `default` pool at /var/lib/libvirt/images when
# there is none: run in a private mount namespace where that is a dir of this
# run, so the host is left as it was.
if [ "$(id -u)" = 0 ] && [ -z "${OX_VMGR_NS:-}" ]; then
    exec env OX_VMGR_NS=1 unshare -m --propagation private "$0" "$@"
fi

serve=0
if [ "${1:-}" = "--serve" ]; then
    serve=1
    shift
fi

missing() { # a prerequisite is not there: skip, or fail under CI
    if [ "${CI:-}" = true ]; then
        echo "FAIL prerequisites: $1"
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP: $1"
    exit 77
}

[ "$(id -u)" = 0 ] || missing "needs root (mount and network namespaces, apt)"

# --- packages
need_pkgs=()
for p in virt-manager:/usr/bin/virt-manager xvfb:/usr/bin/Xvfb imagemagick:/usr/bin/import \
    dbus-x11:/usr/bin/dbus-launch xdotool:/usr/bin/xdotool dbus-daemon:/usr/bin/dbus-daemon \
    libvirt-clients:/usr/bin/virsh; do
    [ -e "${p#*:}" ] || need_pkgs+=("${p%%:*}")
done
if [ ${#need_pkgs[@]} -gt 0 ] && [ "${VMGR_NO_INSTALL:-}" != 1 ]; then
    echo "# installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # virt-manager recommends libvirt-daemon-system; --no-install-recommends
    # leaves it out, and should anything pull a service in, its maintainer
    # scripts must not start it: policy-rc.d forbids that for the length of
    # this install (only when there is none already, and only ours is removed).
    policy_made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_made=1
    fi
    . "$top/compat-tests/lib/apt.sh"
    apt_install "${need_pkgs[@]}" >/tmp/oxvirt-virt-manager-apt.log 2>&1
    rc=$?
    [ $policy_made = 1 ] && rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || { tail -20 /tmp/oxvirt-virt-manager-apt.log; missing "apt-get install ${need_pkgs[*]} failed"; }
fi
for need in virt-manager Xvfb import xdotool dbus-daemon virsh unshare "$PY" "$OXVIRTD" /dev/kvm; do
    command -v "$need" >/dev/null 2>&1 || [ -e "$need" ] || missing "$need is missing"
done
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
TESTDIR=$(mktemp -d /tmp/oxvirt-vmgr-XXXXXX)
ART=${OXVIRT_ARTIFACTS:-$TESTDIR/artifacts}
mkdir -p "$ART"
sock=$TESTDIR/libvirt-sock
U="qemu+unix:///system?socket=$sock"
pids=()     # bus, oxvirtd, Xvfb: killed in reverse order
vm_pid=     # the virt-manager of the moment
made_run_libvirt=0
result=1

cleanup() {
    trap - EXIT INT TERM
    declare -F stop_vmgr >/dev/null && stop_vmgr
    destroy_running_guests "$sock" "$U"
    kill_pids_reverse
    sleep 0.5
    kill_run_leftovers "$TESTDIR"
    wait 2>/dev/null
    cp -r "$TESTDIR/state/log" "$ART/vmm-logs" 2>/dev/null
    if [ $made_run_libvirt = 1 ]; then umount /run/libvirt 2>/dev/null; rmdir /run/libvirt 2>/dev/null; fi
    # The artifacts stay; the temp dir too when they are in it and a check
    # failed.
    if [ -n "${OXVIRT_ARTIFACTS:-}" ] || [ "$result" = 0 ]; then
        rm -rf "$TESTDIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p /var/lib/libvirt/images "$TESTDIR/images"
mount --bind "$TESTDIR/images" /var/lib/libvirt/images
# qemu:///system reaches this run's oxvirtd: its RPC sockets are
# $TESTDIR/libvirt-sock(-ro), and $TESTDIR is /run/libvirt here.
[ -d /run/libvirt ] || { mkdir -p /run/libvirt && made_run_libvirt=1; }
mount --bind "$TESTDIR" /run/libvirt

# --- private bus
start_private_bus "$TESTDIR" "$TESTDIR/dbus-daemon.log"
BUS=$(head -1 "$TESTDIR/bus")
[ -n "$BUS" ] || setup_fail "dbus-daemon did not start: $(cat "$TESTDIR/dbus-daemon.log")"

# --- oxvirtd, in a network namespace of its own (unshare execs it: $! is oxvirtd)
unshare -n "$OXVIRTD" --bus-address "$BUS" \
    --config-dir "$TESTDIR/config" --run-dir "$TESTDIR/run" --state-dir "$TESTDIR/state" \
    --rpc-socket "$sock" --rpc-socket-ro "$sock-ro" >"$ART/oxvirtd.log" 2>&1 &
daemon_pid=$!
pids+=($daemon_pid)
for _ in $(seq 100); do
    [ -S "$sock" ] && timeout 5 virsh -c "$U" uri >/dev/null 2>&1 && break
    sleep 0.1
done
[ -S "$sock" ] || setup_fail "oxvirtd did not start: $(tail -3 "$ART/oxvirtd.log")"
# Its loopback up, as on any host: the guests' VNC servers listen on
# 127.0.0.1 there.
nsenter --net="/proc/$daemon_pid/ns/net" ip link set lo up || setup_fail "lo in oxvirtd's network namespace"
vsh() { timeout 30 virsh -c "$U" "$@"; }

# --- a dir pool with a volume, two domains
POOL=$TESTDIR/pool
out=$(vsh pool-define-as vmgr-pool dir --target "$POOL" 2>&1 && vsh pool-build vmgr-pool 2>&1 &&
    vsh pool-start vmgr-pool 2>&1 && vsh pool-autostart vmgr-pool 2>&1 &&
    vsh vol-create-as vmgr-pool disk0.img 16M 2>&1) || setup_fail "storage pool: $out"
# A virtual network, defined only: started, it would make a bridge on
# this host's network.
printf "<network><name>vmgr-net</name><bridge name='vmgrbr0'/><ip address='192.168.219.1' netmask='255.255.255.0'/></network>" >"$TESTDIR/vmgr-net.xml"
out=$(vsh net-define "$TESTDIR/vmgr-net.xml" 2>&1) || setup_fail "network: $out"

domxml() { # NAME running|off
    sed -e "s|<name>testos</name>|<name>$1</name>|" \
        -e "s|<title>.*</title>|<title>$1: oxvirt's test guest</title>|" \
        -e "s|/usr/share/oxvirt/testos.elf|$KERNEL|" \
        -e "s|CONSOLE_LOG|$TESTDIR/$1.console.log|" "$EXAMPLE" |
        if [ "$2" = running ]; then
            sed -e "/<serial type='file'>/,/<\/serial>/c\\
    <serial type='pty'/>\\
    <disk type='file' device='disk'>\\
      <driver name='qemu' type='raw'/>\\
      <source file='$POOL/disk0.img'/>\\
      <target dev='vda' bus='virtio'/>\\
    </disk>\\
    <interface type='ethernet'>\\
      <mac address='52:54:00:0c:0d:01'/>\\
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
        -e "s|<title>.*</title>|<title>testos-vnc: oxvirt's test guest</title>|" \
        -e "s|/usr/share/oxvirt/testos.elf|$KERNEL|" \
        -e "s|<cmdline>.*</cmdline>|<cmdline>oxtest.checks=display oxtest.then=input</cmdline>|" \
        -e "s|CONSOLE_LOG|$TESTDIR/testos-vnc.console.log|" \
        -e "s|<devices>|<devices>\\
    <graphics type='vnc'/>\\
    <video><model type='vga'/></video>\\
    <controller type='usb' model='qemu-xhci'/>\\
    <input type='tablet' bus='usb'/>|" "$EXAMPLE"
}
domxml testos-running running >"$TESTDIR/testos-running.xml"
domxml testos-off off >"$TESTDIR/testos-off.xml"
vncxml >"$TESTDIR/testos-vnc.xml"
cp "$TESTDIR"/testos-*.xml "$ART/"
for d in testos-running testos-off testos-vnc; do
    out=$(vsh define "$TESTDIR/$d.xml" 2>&1) || setup_fail "virsh define $d: $out"
done
for d in testos-running testos-vnc; do
    out=$(vsh start $d 2>&1) || setup_fail "virsh start $d: $out"
done
vsh list --all | sed '/^$/d; s/^/# /'
vsh pool-list --all | sed '/^$/d; s/^/# /'

# --- Xvfb on a free display
XVFB_PID=
for n in $(seq 91 160); do
    [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] && continue
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$ART/xvfb.log" 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 50); do
        [ -e "/tmp/.X11-unix/X$n" ] && break
        kill -0 "$XVFB_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$XVFB_PID" 2>/dev/null && [ -e "/tmp/.X11-unix/X$n" ]; then
        pids+=($XVFB_PID)
        export DISPLAY=:$n
        break
    fi
    XVFB_PID=
done
[ -n "$XVFB_PID" ] || setup_fail "no free X display for Xvfb: $(tail -3 "$ART/xvfb.log")"
echo "# Xvfb on $DISPLAY, oxvirtd at $sock, artifacts in $ART"

# --- virt-manager: private home and XDG dirs, settings in memory, no a11y bus
mkdir -p "$TESTDIR"/{home,xdg-config,xdg-data,xdg-cache,xdg-run}
chmod 700 "$TESTDIR/xdg-run"
vm_env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DISPLAY="$DISPLAY"
    HOME="$TESTDIR/home" XDG_CONFIG_HOME="$TESTDIR/xdg-config" XDG_DATA_HOME="$TESTDIR/xdg-data"
    XDG_CACHE_HOME="$TESTDIR/xdg-cache" XDG_RUNTIME_DIR="$TESTDIR/xdg-run"
    GSETTINGS_BACKEND=memory NO_AT_BRIDGE=1
    DBUS_SESSION_BUS_ADDRESS="$BUS" DBUS_SYSTEM_BUS_ADDRESS="$BUS")
DUMP=$TESTDIR/windows.txt
vm_run=
vm_extra_env=()
vm_netns=()  # a command to run virt-manager in another network namespace
vm_uri=$U

start_vmgr() { # RUN-NAME virt-manager-args...: start it, wait for a window
    vm_run=$1
    shift
    rm -f "$DUMP"
    "${vm_netns[@]}" "${vm_env[@]}" "${vm_extra_env[@]}" "$PY" "$here/vmgr_probe.py" "$DUMP" \
        --connect "$vm_uri" --no-fork --debug "$@" >"$ART/vm-$vm_run.log" 2>&1 &
    vm_pid=$!
}

stop_vmgr() {
    [ -n "$vm_pid" ] || return 0
    kill "$vm_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$vm_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$vm_pid" 2>/dev/null
    wait "$vm_pid" 2>/dev/null
    vm_pid=
}

if [ $serve = 1 ]; then
    start_vmgr serve "$@"
    echo "# virt-manager running on $DISPLAY (pid $vm_pid); Ctrl-C ends it"
    echo "# virsh -c '$U'"
    echo "# window dump: $DUMP; debug log: $ART/vm-serve.log"
    result=0
    wait "$vm_pid"
    exit 0
fi

# --- checks: one per step, "PASS name[: detail]" or "FAIL name: why", and
# NN-name.png + NN-name.windows.txt in the artifacts dir for each.
passes=0
fails=0
n=0
failed=" "
ROOT_W=1280 ROOT_H=800

dump_now() { # ask for a fresh window dump and wait for it
    [ -n "$vm_pid" ] && kill -0 "$vm_pid" 2>/dev/null || return 0
    local before
    before=$(stat -c %Y.%s "$DUMP" 2>/dev/null)
    kill -USR1 "$vm_pid" 2>/dev/null
    for _ in $(seq 20); do
        sleep 0.1
        [ "$(stat -c %Y.%s "$DUMP" 2>/dev/null)" != "$before" ] && break
    done
    sleep 0.2
}
shot() { # NAME: the whole screen and the window dump
    n=$((n + 1))
    local base
    base=$ART/$(printf %02d $n)-$1
    xdotool mousemove $((ROOT_W - 1)) $((ROOT_H - 1)) 2>/dev/null # no tooltip in the picture
    sleep 0.4
    dump_now
    import -window root "$base.png" 2>/dev/null
    [ -f "$DUMP" ] && cp "$DUMP" "$base.windows.txt"
}
pass() {
    passes=$((passes + 1))
    echo "PASS $1${2:+: $2}"
    shot "$1"
}
fail() {
    fails=$((fails + 1))
    failed="$failed$1 "
    echo "FAIL $1: $2"
    shot "$1"
}
needs() { # NAME REQUIRED...: true when all ran; else the check fails, not run
    local name=$1 r
    shift
    for r in "$@"; do
        if [[ $failed == *" $r "* ]]; then
            fails=$((fails + 1))
            failed="$failed$name "
            echo "FAIL $name: not run, it needs $r, which failed"
            return 1
        fi
    done
}

in_dump() { grep -Eq -- "$1" "$DUMP" 2>/dev/null; }
re_escape() { sed 's/[][\.*^$+?(){}|]/\\&/g' <<<"$1"; }
# An error message dialog on screen: its text.
error_dialog() {
    grep -E '^WINDOW .*mapped=1 .*(type=_errorDialog|dialog=error)' "$DUMP" 2>/dev/null |
        sed -n 's/.* text=\(.*\) secondary=.*/\1/p' | sed 's/\\n/ /g' | head -3
}
# wait_for REGEX SECONDS: 0 when the dump matches, 2 when an error dialog
# shows or virt-manager is gone first, 1 on timeout.
wait_for() {
    local i
    for ((i = 0; i < $2 * 5; i++)); do
        in_dump "$1" && return 0
        [ -n "$(error_dialog)" ] && return 2
        kill -0 "$vm_pid" 2>/dev/null || return 2
        sleep 0.2
    done
    return 1
}
why_not() { # what is on screen instead, for a FAIL line
    local e
    e=$(error_dialog)
    if [ -n "$e" ]; then echo "error dialog: $e"
    elif ! kill -0 "$vm_pid" 2>/dev/null; then echo "virt-manager exited: $(tail -1 "$ART/vm-$vm_run.log")"
    else echo "windows: $(grep -E '^WINDOW .*mapped=1' "$DUMP" 2>/dev/null | sed 's/.* title=//' | paste -sd, -)"
    fi
}
rect_of() { # REGEX: the x,y,w,h of the first dump line (LABEL/ROW) that matches
    grep -E -- "$1" "$DUMP" 2>/dev/null | head -1 | grep -oE '[-0-9]+,[-0-9]+,[0-9]+,[0-9]+' | head -1
}
click() { # REGEX [BUTTON]: click the label or row that matches, as a user would
    local r x y w h
    r=$(rect_of "$1")
    [ -n "$r" ] || return 1
    IFS=, read -r x y w h <<<"$r"
    [ "$x" -ge 0 ] || return 1
    [ "$w" -gt 120 ] && w=120 # a row: near its start, on the text
    xdotool mousemove $((x + w / 2)) $((y + h / 2)) click "${2:-1}"
}

# no_error RUN: no error dialog on screen or in the debug log, no traceback,
# no ERROR line, no window named "...Error...". Each problem is named once.
no_error() {
    local run=$1 log=$ART/vm-$1.log problems=() e d x
    dump_now
    e=$(error_dialog)
    [ -n "$e" ] && problems+=("error dialog on screen: $e")
    local id name
    for id in $(xdotool search --onlyvisible --name 'rror' 2>/dev/null); do
        name=$(xdotool getwindowname "$id" 2>/dev/null)
        problems+=("window named '$name'")
    done
    while IFS= read -r d; do
        [ -n "$d" ] && [ "$d" != "$e" ] && problems+=("error dialog in the log: $d")
    done < <(grep -A1 'error dialog message:' "$log" | sed -n 's/^summary=//p' | sort -u)
    if grep -q '^Traceback' "$log"; then
        x=$(grep -E '^[A-Za-z_.]+(Error|Exception): ' "$log" | tail -1)
        [ -n "$e" ] && [[ $x == *"$e"* ]] && x="the dialog's"
        problems+=("$(grep -c '^Traceback' "$log") traceback(s) in the log, the last: $x")
    fi
    while IFS= read -r d; do
        [ -n "$d" ] && problems+=("log ERROR $d")
    done < <(grep -E '\] ERROR \(' "$log" | sed 's/.*\] ERROR //' | sort -u | head -3)
    if [ ${#problems[@]} = 0 ]; then
        pass "$run-no-error-dialog"
    else
        fail "$run-no-error-dialog" "$(printf '%s; ' "${problems[@]}" | sed 's/; $//')"
    fi
}

ROW_OFF='ROW@[-0-9,]+ testos-off: '
ROW_RUN='ROW@[-0-9,]+ testos-running: '

echo "# the manager window"
start_vmgr manager
if wait_for '^WINDOW .*mapped=1 .*title=Virtual Machine Manager$' 40 &&
    xdotool search --onlyvisible --name '^Virtual Machine Manager$' >/dev/null; then
    pass manager-window
else
    fail manager-window "no 'Virtual Machine Manager' window; $(why_not)"
fi
if needs manager-lists-domains manager-window; then
    if wait_for "$ROW_RUN.* / Running \\|" 20 && wait_for "$ROW_OFF.* / Shutoff \\|" 5 &&
        grep -q 'domain=testos-running status=Running added' "$ART/vm-manager.log" &&
        grep -q 'domain=testos-off status=Shutoff added' "$ART/vm-manager.log"; then
        pass manager-lists-domains "testos-running Running, testos-off Shutoff"
    else
        fail manager-lists-domains "rows: $(grep -E '^ +ROW' "$DUMP" | sed 's/ROW@[^ ]* //' | paste -sd';' -)"
    fi
fi
# Run, Pause, Resume of testos-off from the row's context menu.
gui_action() { # MENU-ITEM STATE
    click "$ROW_OFF" 3 || return 1
    wait_for "^POPUP" 5 || return 1
    dump_now
    click "^LABEL [-0-9,]+ $1\$" || { xdotool key Escape; return 1; }
    wait_for "$ROW_OFF.* / $2 \\|" 20
}
if needs manager-run-pause-resume manager-lists-domains; then
    if gui_action Run Running && gui_action Pause Paused && gui_action Resume Running; then
        pass manager-run-pause-resume "testos-off: Run -> Running, Pause -> Paused, Resume -> Running"
    else
        fail manager-run-pause-resume "testos-off: $(grep -E "$ROW_OFF" "$DUMP" | sed 's/ROW@[^ ]* //'); $(why_not)"
    fi
    vsh destroy testos-off >/dev/null 2>&1
    wait_for "$ROW_OFF.* / Shutoff \\|" 10
fi
no_error manager
stop_vmgr

# vm_window RUN CHECK DOMAIN STATE-REGEX args...: a domain's window opens with
# its details (or console) and no error dialog.
vm_window() {
    local run=$1 check=$2 dom=$3 state=$4
    shift 4
    start_vmgr "$run" "$@"
    local title="^WINDOW .*mapped=1 .*title=$dom: oxvirt's test guest on QEMU/KVM\$"
    if wait_for "$title" 40 && [ -z "$(error_dialog)" ] && wait_for "$state" 10; then
        return 0
    fi
    return 1
}

echo "# the console window (--show-domain-console): the serial console"
if vm_window console console-window testos-running '^NOTEBOOK .* tab=Serial 1$' --show-domain-console testos-running &&
    in_dump '^NOTEBOOK .* tab=Console$'; then
    pass console-window "Console page, serial console 'Serial 1'"
else
    fail console-window "$(why_not)"
fi
# The guest printed its checks at boot and waits for the power button: no
# virt-manager has opened its console yet, so that output is still in the
# pty and must show. Then a reboot: on libvirt the console stays open across
# it (QEMU resets the guest in place) and the guest's new boot output shows
# in the same terminal.
count() { grep '^TERMINAL' "$DUMP" | grep -o 'waiting for power button' | wc -l; }
# The boot the terminal shows, told apart by the guest's clock reading
# (the dump holds only the visible screen, so counting lines cannot tell
# a second boot from the first).
boot_mark() { grep '^TERMINAL' "$DUMP" | grep -o 'rtc unix [0-9]*' | tail -1; }
save_terminal() { sed -n 's/^TERMINAL //p' "$DUMP" | sed 's/\\n/\n/g' | sed '/^ *$/d' >"$ART/serial-console$1.txt"; }
terminal_end() { grep '^TERMINAL' "$DUMP" | sed 's/\\n/ /g; s/  */ /g; s/^TERMINAL //' | tail -c 160; }
if needs serial-console console-window; then
    for _ in $(seq 20); do
        dump_now
        [ "$(count)" -gt 0 ] && break
        sleep 0.5
    done
    save_terminal ""
    if [ "$(count)" -gt 0 ]; then
        pass serial-console "the guest's boot output is in the terminal, ending: $(terminal_end)"
    else
        fail serial-console "no 'waiting for power button' in the terminal; it shows: '$(terminal_end)'"
    fi
fi
if needs serial-console-after-reboot console-window; then
    dump_now
    before=$(boot_mark)
    # The guest's clock reads whole seconds: let one pass.
    sleep 1.1
    t0=$(date +%s)
    out=$(vsh reboot testos-running 2>&1 | sed "/^$/d" | head -1)
    took=$(($(date +%s) - t0))
    rebooted() {
        local now
        now=$(boot_mark)
        [ -n "$now" ] && [ "$now" != "$before" ] && [ "$(count)" -gt 0 ]
    }
    for _ in $(seq 40); do
        dump_now
        rebooted && break
        sleep 0.5
    done
    save_terminal -after-reboot
    if rebooted; then
        pass serial-console-after-reboot "the new boot output arrives in the open console (virsh reboot took ${took}s)"
    else
        eof=$(grep -c 'Received EOF from stream' "$ART/vm-console.log")
        fail serial-console-after-reboot "no new boot output within 20s after 'virsh reboot' (which took ${took}s: $out); console stream EOFs in the log: $eof"
    fi
fi
no_error console
stop_vmgr

# The graphical console (--show-domain-console testos-vnc): gtk-vnc shows
# the guest's screen. virt-manager draws a VNC console only on a connection
# whose URI names no transport (with qemu+unix://... it refuses a console
# that listens on 127.0.0.1 as "on a remote host"): these runs connect to
# qemu:///system, whose socket is this daemon's ($TESTDIR on /run/libvirt in
# this mount namespace). Console scaling "never" (Preferences > Console;
# the default, "only in full screen", does not scale a window either): the
# guest's 640x480 screen is drawn 1:1 and compared pixel for pixel.
vnc_line() { grep -E '^VNC ' "$DUMP" 2>/dev/null | head -1; }
# The console page's message when it has no viewer (e.g. "Error connecting
# to graphical console: ...").
console_message() {
    grep -E '^LABEL [-0-9,]+ .*(rror|not|nable)' "$DUMP" 2>/dev/null | sed 's/^LABEL [^ ]* //' | head -2 | paste -sd' ' -
}
# vnc_checks RUN PREFIX HOW: the console window with an open gtk-vnc
# display of 640x480 (PREFIX-window), the guest's pattern in a screenshot
# of the screen (PREFIX-pattern; find_pattern.py), a key typed into it
# reaching the guest (PREFIX-key), no error (RUN-no-error-dialog).
vnc_checks() {
    local run=$1 pre=$2 how=$3 vx vy matched found got
    vm_uri=qemu:///system
    vm_extra_env+=(VMGR_CONSOLE_SCALING=0 VMGR_VNC_DEBUG=1)
    if vm_window "$run" "$pre-window" testos-vnc '^VNC .* open=1 desktop=640x480' --show-domain-console testos-vnc; then
        pass "$pre-window" "$how; gtk-vnc connected: $(vnc_line | sed 's/^VNC //')"
    else
        fail "$pre-window" "$how: no open gtk-vnc display of 640x480; $(why_not); gtk-vnc: '$(vnc_line)'; the console says: '$(console_message)'"
    fi
    # The screen as a user sees it: the guest's pattern in the window,
    # searched for anywhere on the screen and compared where it is.
    if needs "$pre-pattern" "$pre-window"; then
        IFS=, read -r vx vy _ <<<"$(vnc_line | awk '{print $2}')"
        matched=0
        for _ in $(seq 10); do
            xdotool mousemove $((ROOT_W - 1)) $((ROOT_H - 1))
            sleep 1
            import -window root "$ART/$run-console.png" 2>/dev/null
            found=$("$PY" "$here/find_pattern.py" "$ART/$run-console.png" "${vx:-0}" "${vy:-0}" 2>&1) &&
                matched=1 && break
        done
        if [ $matched = 1 ]; then
            pass "$pre-pattern" "$run-console.png: the guest's screen $found (gtk-vnc widget at ${vx:-?},${vy:-?})"
        else
            fail "$pre-pattern" "$run-console.png: $found"
        fi
    fi
    # A key typed into the console reaches the guest's PS/2 keyboard: the
    # guest prints the make code (0x1e is 'a') on its serial port.
    if needs "$pre-key" "$pre-pattern"; then
        local log=$TESTDIR/testos-vnc.console.log before
        before=$(grep -c 'INFO key make 0x1e' "$log" 2>/dev/null)
        xdotool mousemove $((vx + 320)) $((vy + 240)) click 1
        sleep 0.5
        xdotool key a
        got=
        for _ in $(seq 50); do
            [ "$(grep -c 'INFO key make 0x1e' "$log" 2>/dev/null)" -gt "${before:-0}" ] && got=1 && break
            sleep 0.2
        done
        if [ -n "$got" ]; then
            pass "$pre-key" "'a' typed into the console: the guest printed 'INFO key make 0x1e'"
        else
            fail "$pre-key" "no new 'INFO key make 0x1e' in the guest's serial log within 10 s; it ends: $(grep -a . "$log" | tail -2 | paste -sd'|' -)"
        fi
    fi
    no_error "$run"
    stop_vmgr
    vm_uri=$U
    vm_extra_env=()
}
echo "# the graphical console (--show-domain-console testos-vnc): gtk-vnc, as virt-manager opens it"
# On a local connection virt-manager asks libvirt for a connected socket
# (virDomainOpenGraphicsFD) and gives it to gtk-vnc.
vnc_checks vnc vnc-console "through virDomainOpenGraphicsFD"
echo "# the graphical console, gtk-vnc connecting to the port itself"
# What virt-manager does when libvirt has no virDomainOpenGraphicsFD
# (before 1.2.8): gtk-vnc connects to the address and port of the live XML
# (VMGR_NO_GRAPHICS_FD=1 makes its support check say so). oxvirtd listens
# in its own network namespace: virt-manager runs in that one.
vm_extra_env=(VMGR_NO_GRAPHICS_FD=1)
vm_netns=(nsenter --net=/proc/$daemon_pid/ns/net)
vnc_checks vnc-direct vnc-direct-console "gtk-vnc connecting to the live XML's 127.0.0.1:PORT"
vm_netns=()

echo "# the domain details window (--show-domain-editor)"
if vm_window editor editor-window testos-running '^LABEL [-0-9,]+ Running' --show-domain-editor testos-running &&
    in_dump '^NOTEBOOK .* tab=Details' && in_dump '^ENTRY testos-running$'; then
    pass editor-window "testos-running: Overview, Running"
else
    fail editor-window "$(why_not)"
fi
# Every page of the hardware list, as a user clicks through them.
if needs editor-pages editor-window; then
    pages=$(grep -E '^  ROW@' "$DUMP" | sed 's/^  ROW@[^ ]* //; s/ |.*//')
    bad=()
    while IFS= read -r page; do
        [ -n "$page" ] || continue
        click "^  ROW@[-0-9,]+ $(re_escape "$page") \\|" || { bad+=("$page: no row"); continue; }
        sleep 1.5
        e=$(error_dialog)
        [ -n "$e" ] && bad+=("$page: $e")
        n=$((n + 1))
        xdotool mousemove $((ROOT_W - 1)) $((ROOT_H - 1))
        sleep 0.3
        import -window root "$ART/$(printf %02d $n)-editor-page-$(tr -c 'A-Za-z0-9\n' - <<<"$page").png"
    done <<<"$pages"
    if [ ${#bad[@]} = 0 ] && [ -n "$pages" ]; then
        pass editor-pages "$(paste -sd, - <<<"$pages")"
    else
        fail editor-pages "${bad[*]:-no pages}"
    fi
fi
no_error editor
stop_vmgr

if vm_window editor-off editor-off-window testos-off '^LABEL [-0-9,]+ Shutoff' --show-domain-editor testos-off; then
    pass editor-off-window "testos-off: Overview, Shutoff"
else
    fail editor-off-window "$(why_not)"
fi
no_error editor-off
stop_vmgr

echo "# connection details (--show-host-summary): overview, storage, networks"
start_vmgr host --show-host-summary
if wait_for '^WINDOW .*mapped=1 .*title=QEMU/KVM - Connection Details$' 40 &&
    wait_for "^LABEL [-0-9,]+ $(re_escape "$U")\$" 10; then
    pass host-summary-window "Overview with the connection's URI"
else
    fail host-summary-window "$(why_not)"
fi
if needs host-storage-tab host-summary-window; then
    if click '^LABEL [-0-9,]+ Storage$' && wait_for '^NOTEBOOK .* tab=Storage$' 10 &&
        wait_for '^  ROW@[-0-9,]+ vmgr-pool / Filesystem Directory' 10; then
        # the pool that is selected is the first one; pick ours
        click '^  ROW@[-0-9,]+ vmgr-pool / '
        sleep 1
        if wait_for '^ENTRY vmgr-pool$' 10 && wait_for "^LABEL [-0-9,]+ $(re_escape "$POOL")\$" 5 &&
            wait_for '^LABEL [-0-9,]+ Active$' 5 &&
            wait_for '^  ROW.* disk0\.img \| [0-9]+ \| 16\.00 MiB \| raw \| testos-running' 10; then
            pass host-storage-tab "vmgr-pool, Active, at $POOL; volume disk0.img 16.00 MiB raw, used by testos-running"
        else
            fail host-storage-tab "pool details: $(grep -E '^(ENTRY|  ROW|LABEL [-0-9,]+ (Active|Inactive|/))' "$DUMP" | sed 's/ROW@[^ ]* //' | paste -sd';' -)"
        fi
    else
        fail host-storage-tab "no Storage page with vmgr-pool; $(why_not)"
    fi
fi
if needs host-networks-tab host-summary-window; then
    if click '^LABEL [-0-9,]+ Virtual Networks$' && wait_for '^NOTEBOOK .* tab=Virtual Networks$' 10; then
        sleep 1
        if [ -n "$(error_dialog)" ]; then
            fail host-networks-tab "$(why_not)"
        elif wait_for '^  ROW@[-0-9,]+ vmgr-net' 10; then
            pass host-networks-tab "$(grep -cE '^  ROW' "$DUMP") networks listed: $(grep -E '^  ROW' "$DUMP" | sed 's/^  ROW@[^ ]* //' | paste -sd';' -)"
        else
            fail host-networks-tab "vmgr-net is not listed; $(why_not)"
        fi
    else
        fail host-networks-tab "no Virtual Networks page; $(why_not)"
    fi
fi
no_error host
stop_vmgr

echo "# performance graphs with every statistic polled (Preferences > Polling)"
vm_extra_env=(VMGR_ALL_STATS=1)
if vm_window perf performance-window testos-running '^LABEL [-0-9,]+ Memory usage$' --show-domain-performance testos-running; then
    sleep 4
    if in_dump '^LABEL [-0-9,]+ Disabled$'; then
        fail performance-window "a graph says Disabled"
    else
        pass performance-window "$(grep -E '^LABEL [-0-9,]+ .*(%|MiB of|KiB/s)' "$DUMP" | sed 's/^LABEL [^ ]* *//' | paste -sd';' -)"
    fi
else
    fail performance-window "$(why_not)"
fi
vm_extra_env=()
no_error perf
stop_vmgr

echo "# the snapshots page of the details window (View > Snapshots)"
# A snapshot of the running testos-running (its memory and device state in a
# file of its own, its disk moved onto a qcow2 overlay), made with virsh,
# then listed and shown by virt-manager. Last, as it changes the guest's disk.
out=$(vsh snapshot-create-as testos-running vmgr-snap "made for virt-manager" \
    --memspec "file=$TESTDIR/vmgr-snap.mem,snapshot=external" 2>&1)
if [ $? != 0 ]; then
    fail snapshots-page "virsh snapshot-create-as: $out"
elif vm_window snapshots snapshots-window testos-running '^NOTEBOOK ' --show-domain-editor testos-running &&
    click '^LABEL [-0-9,]+ View$' && wait_for '^POPUP ' 5 &&
    click '^LABEL [-0-9,]+ Snapshots$' &&
    wait_for '^  ROW@[-0-9,]+ vmgr-snap \| .*Running \(External\) \| made for virt-manager' 15 &&
    click '^  ROW@[-0-9,]+ vmgr-snap \|' &&
    wait_for '^(LABEL [-0-9,]+ |TEXT )made for virt-manager$' 10; then
    sleep 1
    if [ -n "$(error_dialog)" ]; then
        fail snapshots-page "$(why_not)"
    else
        pass snapshots-page "vmgr-snap listed (Running, External) and shown with its description"
    fi
else
    fail snapshots-page "$(why_not)"
fi
no_error snapshots
stop_vmgr

if kill -0 "$daemon_pid" 2>/dev/null; then
    pass oxvirtd-still-running
else
    fail oxvirtd-still-running "oxvirtd is gone; its log ends: $(tail -1 "$ART/oxvirtd.log")"
fi

# --- what failed against oxvirtd, from the debug logs
"$PY" "$here/libvirt_errors.py" "$ART"/vm-*.log >"$ART/libvirt-errors.txt"
echo "# libvirt calls that failed against oxvirtd (count, call, error; $ART/libvirt-errors.txt):"
sed 's/^/#   /' "$ART/libvirt-errors.txt"
echo "$passes passed, $fails failed"
[ $fails = 0 ] && result=0
exit $result
