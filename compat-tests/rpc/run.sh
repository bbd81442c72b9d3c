#!/bin/bash
# End-to-end test of oxvirtd's libvirt RPC socket with the real Debian
# clients: virsh, python3-libvirt, and `virsh console` on a pty.
#
# Starts a private dbus-daemon and oxvirtd with private state dirs and the
# RPC socket in a temp dir, boots the freestanding test guest, and checks
# output and exit codes against what virsh prints on libvirt.
#
# usage: compat-tests/rpc/run.sh        (OXVIRTD=path to override the daemon)
# needs: /dev/kvm, virsh, python3-libvirt, dbus-daemon,
#        compat-tests/guest/out/testos.elf (make -C compat-tests/guest/testos);
#        as root also ip and qemu-img for devices.sh
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
PY=/usr/bin/python3

. "$top/compat-tests/lib/private-run.sh"
skip_unless_present virsh dbus-daemon "$OXVIRTD" "$KERNEL" /dev/kvm

tmp=$(mktemp -d /tmp/oxvirt-rpc-XXXXXX)
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

wait_state() {
    local dom=$1 want=$2
    for _ in $(seq 100); do
        [ "$(virsh -c "$U" domstate "$dom" 2>/dev/null | head -1)" = "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

domxml() { # name uuid
    cat <<EOF
<domain type='kvm'>
  <name>$1</name>
  <uuid>$2</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
      <cmdline>oxtest.then=powerbutton</cmdline></os>
  <devices><serial type='pty'/><console type='pty'/></devices>
</domain>
EOF
}
domxml t1 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1a01 >"$tmp/t1.xml"
domxml py1 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1a02 >"$tmp/py1.xml"

# Event listener for the whole virsh sequence.
timeout 120 virsh -c "$U" event --all --loop --timeout 90 >"$tmp/events" 2>&1 &
evpid=$!
sleep 0.5

echo "# host"
expect version 0 'Running hypervisor: QEMU [0-9]+\.[0-9]+\.[0-9]+' -- version
expect uri 0 "^qemu\+unix:///system\?socket=$sock\$" -- uri
expect hostname 0 "^$(cat /proc/sys/kernel/hostname)\$" -- hostname
expect nodeinfo 0 'CPU model: +x86_64' -- nodeinfo
expect nodeinfo-mem 0 'Memory size: +[0-9]+ KiB' -- nodeinfo
expect capabilities 0 '<capabilities>' -- capabilities
expect sysinfo 0 '<sysinfo' -- sysinfo
expect domcapabilities 0 '<domainCapabilities>' -- domcapabilities
# Host counters as virsh prints them on libvirt (nanoseconds, KiB).
for f in user system idle iowait; do
    expect "nodecpustats-$f" 0 "^$f: +[0-9]+\$" -- nodecpustats
done
expect nodecpustats-cpu0 0 '^idle: +[0-9]+$' -- nodecpustats 0
expect nodecpustats-percent 0 '^usage: +[0-9]+\.[0-9]%$' -- nodecpustats --percent
expect nodecpustats-bad-cpu 1 'Invalid cpuNum in virNodeGetCPUStats: 9999' -- nodecpustats 9999
for f in 'total  ' 'free   ' 'buffers' 'cached '; do
    expect "nodememstats-${f%% *}" 0 "^$f: +[0-9]+ KiB\$" -- nodememstats
done

echo "# definitions"
expect define 0 "Domain 't1' defined from $tmp/t1.xml" -- define "$tmp/t1.xml"
expect list-all 0 ' -    t1     shut off' -- list --all
expect list-active-empty 0 '^ Id   Name   State' -- list
expect dominfo-off 0 'State: +shut off' -- dominfo t1
expect dominfo-persistent 0 'Persistent: +yes' -- dominfo t1
expect domstate-reason-off 0 '^shut off \(unknown\)' -- domstate t1 --reason
expect dumpxml 0 '<name>t1</name>' -- dumpxml t1
expect dumpxml-inactive 0 '<uuid>6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1a01</uuid>' -- dumpxml --inactive t1
expect domuuid 0 '^6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1a01$' -- domuuid t1
expect domname-by-uuid 0 '^t1$' -- domname 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1a01
expect autostart 0 "Domain 't1' marked as autostarted" -- autostart t1
expect list-autostart 0 ' -    t1     shut off' -- list --all --autostart
expect dominfo-autostart 0 'Autostart: +enable' -- dominfo t1
expect autostart-disable 0 "Domain 't1' unmarked as autostarted" -- autostart --disable t1
expect list-no-autostart 0 ' -    t1     shut off' -- list --all --no-autostart
expect setmem-config 0 '' -- setmem t1 32M --config
expect setmem-shows 0 'Used memory: +32768 KiB' -- dominfo t1
expect setmaxmem-config 0 '' -- setmaxmem t1 128M --config
expect setmaxmem-shows 0 'Max memory: +131072 KiB' -- dominfo t1
expect setmem-back 0 '' -- setmem t1 64M --config
expect setmaxmem-back 0 '' -- setmaxmem t1 64M --config
expect vcpucount 0 'current +config +1' -- vcpucount t1
expect setvcpus-max 0 '' -- setvcpus t1 2 --maximum --config
expect vcpucount-max 0 'maximum +config +2' -- vcpucount t1
expect setvcpus-config 0 '' -- setvcpus t1 2 --config
expect setvcpus-shows 0 "<vcpu placement='static'>2</vcpu>" -- dumpxml t1
expect setvcpus-over-max 1 'requested vcpus is greater than max allowable vcpus for the persistent domain: 3 > 2' -- setvcpus t1 3 --config
expect setvcpus-off-live 1 'domain is not running' -- setvcpus t1 1
expect setvcpus-back 0 '' -- setvcpus t1 1 --maximum --config
expect vcpucount-back 0 'maximum +config +1' -- vcpucount t1
expect domrename 0 'Domain successfully renamed' -- domrename t1 t1-renamed
expect domrename-shows 0 't1-renamed +shut off' -- list --all
expect domrename-back 0 'Domain successfully renamed' -- domrename t1-renamed t1
expect vcpuinfo-off 0 'CPU Affinity: +y' -- vcpuinfo t1
# What this driver has no part for: libvirt's "not supported" error
# naming the call, after virsh's own fallbacks.
nosup='^error: this function is not supported by the connection driver'
# Kinds of objects none of which is defined here list empty, as libvirt
# does; lookups give their driver's "not found". (Host interfaces are
# the host's.)
expect net-list-empty 0 '^ Name   State   Autostart   Persistent$' -- net-list --all
expect net-info-missing 1 "Network not found: no network with matching name 'default'" -- net-info default
expect iface-list 0 '^ Name +State +MAC Address$' -- iface-list --all
expect secret-list-empty 0 '^ UUID   Usage$' -- secret-list
expect nwfilter-list-empty 0 '^ UUID   Name$' -- nwfilter-list
expect pool-list-empty 0 '^ Name   State   Autostart$' -- pool-list --all
expect nodedev-list 0 '^computer$' -- nodedev-list
expect freecell 0 '^Total: +[0-9]+ KiB$' -- freecell
expect cpu-models 0 '^qemu64$' -- cpu-models x86_64
expect domtime-unsupported 1 "$nosup: virDomainGetTime\$" -- domtime t1
expect memtune-config 0 "hard_limit +: unlimited" -- memtune t1 --config

echo "# errors"
expect dominfo-missing 1 "error: failed to get domain 'nosuch'" -- dominfo nosuch
expect shutdown-off 1 'Requested operation is not valid: domain is not running' -- shutdown t1
expect define-bad 1 'error: Failed to define domain' -- define /dev/null

echo "# lifecycle"
expect start 0 "Domain 't1' started" -- start t1
expect start-again 1 'Domain is already active' -- start t1
expect list-running 0 ' [0-9]+    t1     running' -- list
expect domstate-booted 0 '^running \(booted\)' -- domstate t1 --reason
expect domid 0 '^[0-9]+$' -- domid t1
expect dominfo-running 0 'State: +running' -- dominfo t1
expect suspend 0 "Domain 't1' suspended" -- suspend t1
expect domstate-paused 0 '^paused \(user\)' -- domstate t1 --reason
expect resume 0 "Domain 't1' resumed" -- resume t1
expect domstate-unpaused 0 '^running' -- domstate t1 --reason
expect dommemstat 0 '^actual 65536' -- dommemstat t1
expect vcpuinfo 0 'State: +running' -- vcpuinfo t1
expect domblkstat-none 1 'error' -- domblkstat t1 vda
expect domifstat-none 1 "'eth9' is not a known interface" -- domifstat t1 eth9

echo "# console"
if timeout 60 "$PY" "$here/console.py" "$U" t1 'waiting for power button' >"$tmp/console.out" 2>&1; then
    pass "console: guest output arrives, Ctrl-] exits 0"
else
    fail "console"
    sed 's/^/       | /' "$tmp/console.out"
fi

expect shutdown 0 "Domain 't1' is being shutdown" -- shutdown t1
if wait_state t1 "shut off"; then pass "guest powered off on the power button"; else fail "guest did not power off"; fi
expect start-console-eof 0 "Domain 't1' started" -- start t1
if timeout 60 "$PY" "$here/console.py" "$U" t1 'waiting for power button' --shutdown >"$tmp/console2.out" 2>&1; then
    pass "console: virsh ends by itself when the guest powers off"
else
    fail "console at guest power-off"
    sed 's/^/       | /' "$tmp/console2.out"
fi
wait_state t1 "shut off" || fail "guest did not power off under the console"
expect domstate-shutdown 0 '^shut off \(shutdown\)' -- domstate t1 --reason
expect start-2 0 "Domain 't1' started" -- start t1
expect reboot 0 "Domain 't1' is being rebooted" -- reboot t1
sleep 1
expect domstate-after-reboot 0 '^running' -- domstate t1
expect destroy 0 "Domain 't1' destroyed" -- destroy t1
expect domstate-destroyed 0 '^shut off \(destroyed\)' -- domstate t1 --reason
expect undefine 0 "Domain 't1' has been undefined" -- undefine t1
expect list-all-empty 0 '^ Id   Name   State' -- list --all
expect create 0 "Domain 't1' created from $tmp/t1.xml" -- create "$tmp/t1.xml"
expect destroy-transient 0 "Domain 't1' destroyed" -- destroy t1
expect gone 1 "failed to get domain 't1'" -- dominfo t1

echo "# read-only socket"
out=$(virsh -r -c "qemu+unix:///system?socket=$sock-ro" list --all 2>&1) && pass "virsh -r list" || {
    fail "virsh -r list"
    echo "$out"
}
out=$(virsh -r -c "qemu+unix:///system?socket=$sock-ro" define "$tmp/t1.xml" 2>&1)
if [ $? -ne 0 ] && grep -q 'read only' <<<"$out"; then pass "virsh -r define refused"; else
    fail "virsh -r define refused"
    echo "$out"
fi
# Host counters are reads: served on the read-only socket too.
rw=$U
U="qemu+unix:///system?socket=$sock-ro"
expect ro-nodecpustats 0 '^idle: +[0-9]+$' -- -r nodecpustats
expect ro-nodememstats 0 '^total  : +[0-9]+ KiB$' -- -r nodememstats
U=$rw

echo "# events"
sleep 1
kill -INT $evpid 2>/dev/null
wait $evpid 2>/dev/null
for ev in 'Defined Added' 'Started Booted' 'Suspended Paused' 'Resumed Unpaused' \
    'Stopped Shutdown' 'Stopped Destroyed' 'Undefined Removed'; do
    if grep -q "event 'lifecycle' for domain 't1': $ev" "$tmp/events"; then
        pass "event: $ev"
    else
        fail "event: $ev"
    fi
done
# virsh exits 1 when the loop times out with no event.
expect event-timeout 1 'events received: 0' -- event --event lifecycle --timeout 1

echo "# python-libvirt"
if timeout 60 "$PY" "$here/client.py" "$U" "$tmp/py1.xml" >"$tmp/py.out" 2>&1; then
    pass "python-libvirt: lifecycle and event callbacks"
else
    fail "python-libvirt"
    sed 's/^/       | /' "$tmp/py.out"
fi

echo "# virt-install"
if command -v virt-install >/dev/null; then
    out=$(timeout 120 virt-install --connect "$U" --name vi1 --memory 64 --vcpus 1 --import \
        --boot "kernel=$KERNEL,kernel_args=oxtest.then=powerbutton" --disk none --network none \
        --graphics none --noautoconsole --osinfo linux2022 2>&1)
    if [ $? -eq 0 ] && grep -q 'Domain creation completed' <<<"$out"; then
        pass "virt-install --import"
    else
        fail "virt-install --import"
        sed 's/^/       | /' <<<"$out"
    fi
    expect virt-install-running 0 ' [0-9]+    vi1    running' -- list
    expect virt-install-persistent 0 'Persistent: +yes' -- dominfo vi1
    expect virt-install-destroy 0 "Domain 'vi1' destroyed" -- destroy vi1
    expect virt-install-undefine 0 "Domain 'vi1' has been undefined" -- undefine vi1
else
    echo "skip - virt-install not installed"
fi

echo "# devices: disks and a NIC on a bridge (private network namespace)"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null && command -v qemu-img >/dev/null; then
    "$here/devices.sh" "$OXVIRTD" "$tmp/devices" || fails=$((fails + 1))
else
    echo "skip - needs root, ip and qemu-img"
fi

echo "# firmware boot: SeaBIOS, GRUB, boot order, <loader>, virt-install --import"
if [ "$(id -u)" = 0 ] && [ -f /usr/share/seabios/bios-256k.bin ]; then
    "$here/firmware.sh" "$OXVIRTD" "$tmp/firmware" || fails=$((fails + 1))
elif [ "${CI:-}" = true ]; then
    echo "FAIL - firmware boot needs root and Debian's seabios"
    fails=$((fails + 1))
else
    echo "skip - needs root and Debian's seabios"
fi

echo "# graphical console: VNC ports, domdisplay, screenshot, send-key"
"$here/display.sh" "$OXVIRTD" "$tmp/display" || fails=$((fails + 1))

echo "# guest state: save, restore, managedsave, save images"
"$here/save.sh" "$OXVIRTD" "$tmp/save" || fails=$((fails + 1))

echo "# snapshots: disk-only and with memory, the tree, revert, delete with commit"
"$here/snapshot.sh" "$OXVIRTD" "$tmp/snapshot" || fails=$((fails + 1))

echo "# devices added to and removed from definitions: attach-disk, attach-interface, attach-device"
"$here/attach.sh" "$OXVIRTD" "$tmp/attach" || fails=$((fails + 1))

echo "# hotplug: disks, NICs and rngs plugged into and released by a running guest"
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null; then
    "$here/hotplug.sh" "$OXVIRTD" "$tmp/hotplug" || fails=$((fails + 1))
elif [ "${CI:-}" = true ]; then
    echo "FAIL - hotplug.sh needs root and ip"
    fails=$((fails + 1))
else
    echo "skip - hotplug.sh needs root and ip"
fi

echo "# cgroups and tuning: schedinfo, memtune, blkiotune, a memory limit"
if [ "$(id -u)" = 0 ] && grep -q cgroup /proc/self/mountinfo; then
    "$here/tuning.sh" "$OXVIRTD" "$tmp/tuning" || fails=$((fails + 1))
elif [ "${CI:-}" = true ]; then
    echo "FAIL - tuning needs root and mounted cgroups"
    fails=$((fails + 1))
else
    echo "skip - needs root and mounted cgroups"
fi

echo "# default socket paths (private mount namespace)"
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    mkdir -p "$tmp/defpaths"
    out=$(timeout 60 "$here/default-paths.sh" "$OXVIRTD" "$(head -1 "$tmp/bus")" "$tmp/defpaths" 2>&1)
    rc=$?
    echo "$out"
    [ $rc -eq 0 ] || fail "default socket paths"
else
    echo "skip - needs root and unshare"
fi

if ! kill -0 "${pids[1]}" 2>/dev/null; then
    fail "oxvirtd is no longer running"
fi
echo
if [ $fails -eq 0 ]; then
    echo "all RPC client checks passed"
else
    echo "$fails RPC client check(s) failed; events seen:"
    cat "$tmp/events"
    echo "--- oxvirtd log (tail)"
    tail -20 "$tmp/oxvirtd.log"
fi
[ $fails -eq 0 ]
