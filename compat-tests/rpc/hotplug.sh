#!/bin/bash
# Devices plugged into and released by a running guest with the real virsh
# and python-libvirt: attach-disk, detach-disk, attach-interface,
# detach-interface, attach-device and detach-device with --live, --config,
# --current and --persistent. The test guest (oxtest.then=hotplug) serves
# ACPI PCI hotplug: it finds each new device, checks it (the disk's pattern,
# UDP echo through the NIC from the bridge) and releases it when asked. The
# live XML gains and loses the device with libvirt's alias and a PCI
# address, the events device-added and device-removed arrive, a NIC's tap
# is on the bridge while it is plugged and gone after; libvirt's errors for
# a duplicate target, a missing file, a device that is not there, a slot in
# use, a kind that cannot be plugged, with nothing changed; twenty
# attach/detach cycles of a disk and twenty of a NIC leave no tap,
# descriptor or thread behind; a
# plugged-in disk outlives a save and restore and a daemon restart; the
# bus filled with rngs until libvirt's "No more available PCI slots"; a
# removal the guest refuses (through _OST) fails as libvirt's does, with
# device-removal-failed.
# setvcpus --live (virsh, oxvirsh, python-libvirt): vCPUs plugged in up to
# the maximum and started by the guest, given back and ejected by it, the
# live count kept across the save, the restore and the restart.
#
# oxvirtd runs inside a private network namespace holding the bridge br0
# (10.0.2.2/24). Called by run.sh (as root).
#
# usage: hotplug.sh OXVIRTD TMPDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
KERNEL=$top/compat-tests/guest/out/testos.elf
PY=/usr/bin/python3
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
ns=oxhp$$
fails=0
pids=()
. "$here/lib.sh"
trap stop_netns EXIT

serial=$tmp/serial.log
# lines PATTERN: how many whole lines of the guest's log match
lines() { grep -c -- "$1" "$serial" 2>/dev/null; }
# guest_says NAME PATTERN N: the guest printed a line matching PATTERN N times
guest_says() {
    local name=$1 pat=$2 n=$3
    for _ in $(seq 600); do
        [ "$(lines "$pat")" -ge "$n" ] && { pass "$name"; return 0; }
        sleep 0.1
    done
    fail "$name (no '$pat' x$n: $(grep -E 'hotplug|FAIL' "$serial" | tail -3 | tr '\n' '|'))"
    return 1
}
live() { virsh -c "$U" dumpxml h1 2>&1; }
# slot_of PATTERN: the PCI slot (two hex digits) of the live device whose
# element holds PATTERN
slot_of() {
    live | awk -v pat="$1" '/<(disk|interface|rng) /{dev=""} {dev=dev $0 "\n"}
        /<\/(disk|interface|rng)>/{ if (index(dev, pat)) { if (match(dev, /slot=.0x[0-9a-f]+/)) print substr(dev, RSTART+8, RLENGTH-8) } }' |
        head -1 | xargs printf '%02x'
}
inactive() { virsh -c "$U" dumpxml --inactive h1 2>&1; }

bridge_netns

"$PY" "$top/compat-tests/guest/make-pattern-disk.py" write "$tmp/disk.raw" 16384
cp "$tmp/disk.raw" "$tmp/other.raw"

start_private_bus "$tmp"
start_oxvirtd_in_netns

cat >"$tmp/h1.xml" <<XML
<domain type='kvm'>
  <name>h1</name>
  <memory unit='MiB'>128</memory>
  <vcpu current='1'>3</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>oxtest.pci=1 oxtest.then=hotplug oxtest.hprefuse=3 oxtest.ip=10.0.2.15 oxtest.netudp=1 oxtest.nettime=60000</cmdline></os>
  <devices>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></rng>
    <serial type='file'><source path='$serial'/></serial>
    <controller type='virtio-serial' index='0'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x1e' function='0x0'/></controller>
  </devices>
</domain>
XML
timeout 600 virsh -c "$U" event --all --loop --timeout 500 >"$tmp/events" 2>&1 &
pids+=($!)
BUS=$(head -1 "$tmp/bus")
timeout 600 dbus-monitor --address "$BUS" "type='signal',interface='org.libvirt.Domain'" >"$tmp/signals" 2>&1 &
pids+=($!)
sleep 0.5
expect define 0 "Domain 'h1' defined" -- define "$tmp/h1.xml"
expect start 0 "Domain 'h1' started" -- start h1
guest_says guest-ready '^INFO hotplug ready' 1
defined=$(inactive)

# A disk: plugged into the live guest only (the default for a running one).
expect attach-disk-live 0 "Disk attached successfully" -- attach-disk h1 "$tmp/disk.raw" vdb
s=$(slot_of "dev='vdb'")
guest_says attach-disk-guest-sees-it "^INFO hotplug $s added" 1
grep -q "^PASS blk-$s-read" "$serial" && pass attach-disk-guest-reads-pattern || fail attach-disk-guest-reads-pattern
out=$(live)
if grep -A6 "<target dev='vdb' bus='virtio'/>" <<<"$out" | grep -q "<alias name='virtio-disk1'/>" &&
    [ "$s" != 03 ] && [ "$s" != 00 ]; then
    pass "attach-disk-live-xml (slot $s)"
else
    fail "attach-disk-live-xml ($(grep -A6 'vdb' <<<"$out"))"
fi
[ "$(inactive)" = "$defined" ] && pass attach-disk-live-only || fail attach-disk-live-only
expect domblklist 0 " vdb +$tmp/disk.raw" -- domblklist h1
wait_for "device-added event" grep -q "event 'device-added' for domain 'h1': virtio-disk1" "$tmp/events" &&
    pass event-device-added
expect attach-disk-duplicate 1 "target vdb already exists" -- attach-disk h1 "$tmp/other.raw" vdb
expect attach-disk-missing-file 1 "Cannot access storage file '$tmp/nothere.raw'" -- attach-disk h1 "$tmp/nothere.raw" vdc
expect detach-disk-missing 1 "No disk found whose source path or target is vdz" -- detach-disk h1 vdz
echo "<disk type='file' device='disk'><source file='$tmp/other.raw'/><target dev='vdz' bus='virtio'/></disk>" >"$tmp/vdz.xml"
expect detach-device-missing 1 "no target device vdz" -- detach-device h1 "$tmp/vdz.xml"
cat >"$tmp/busy.xml" <<XML
<disk type='file' device='disk'><source file='$tmp/other.raw'/><target dev='vdc' bus='virtio'/>
  <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>
XML
expect attach-slot-in-use 1 "0000:00:03.0" -- attach-device h1 "$tmp/busy.xml"
cat >"$tmp/cdrom.xml" <<XML
<disk type='file' device='cdrom'><target dev='sdb' bus='sata'/></disk>
XML
expect attach-cdrom-live-refused 1 "Operation not supported: live attach of device 'disk' is not supported" -- \
    attach-device h1 "$tmp/cdrom.xml" --live
echo "<watchdog model='i6300esb'/>" >"$tmp/watchdog.xml"
expect attach-watchdog-live-refused 1 "Operation not supported: live attach of device 'watchdog' is not supported" -- \
    attach-device h1 "$tmp/watchdog.xml"
[ "$(lines '^INFO hotplug [0-9a-f]* added')" = 1 ] && pass bad-requests-reach-no-guest || fail bad-requests-reach-no-guest

expect detach-disk-live 0 "Disk detached successfully" -- detach-disk h1 vdb
guest_says detach-disk-guest-released "^INFO hotplug $s ejected" 1
wait_for "device-removed event" grep -q "event 'device-removed' for domain 'h1': virtio-disk1" "$tmp/events" &&
    pass event-device-removed
if live | grep -q "vdb"; then fail detach-disk-live-xml; else pass detach-disk-live-xml; fi

# --live --config: both definitions; then both lose it.
expect attach-disk-live-config 0 "Disk attached successfully" -- attach-disk h1 "$tmp/other.raw" vdc --live --config
s=$(slot_of "dev='vdc'")
guest_says attach-live-config-guest "^INFO hotplug $s added" 2
live | grep -q "<target dev='vdc' bus='virtio'/>" && pass attach-live-config-live || fail attach-live-config-live
inactive | grep -q "<target dev='vdc' bus='virtio'/>" && pass attach-live-config-inactive || fail attach-live-config-inactive
expect detach-disk-persistent 0 "Disk detached successfully" -- detach-disk h1 vdc --persistent
guest_says detach-persistent-guest "^INFO hotplug $s ejected" 2
if live | grep -q vdc || inactive | grep -q vdc; then fail detach-persistent-both; else pass detach-persistent-both; fi
[ "$(inactive)" = "$defined" ] && pass definition-back-as-defined || fail definition-back-as-defined

# A NIC on the bridge: UDP echo through it, its tap on br0, then gone.
expect attach-interface-live 0 "Interface attached successfully" -- \
    attach-interface h1 bridge br0 --model virtio --mac 52:54:00:6f:78:08 --live
s=$(slot_of "52:54:00:6f:78:08")
tap=$(taps)
if [ -n "$tap" ] && ip -n "$ns" link show "$tap" | grep -q 'master br0'; then
    pass "tap $tap made and on the bridge"
else
    fail "tap made and on the bridge ($tap)"
fi
udp_echo() {
    ip netns exec "$ns" "$PY" -c "import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(60):
    s.sendto(b'hotplug', ('10.0.2.15', 7))
    try:
        s.recvfrom(64)
        raise SystemExit(0)
    except socket.timeout:
        pass
raise SystemExit(1)"
}
guest_says attach-interface-guest-listens "^INFO net-$s ready, waiting" 1
udp_echo && pass attach-interface-udp-echo || fail attach-interface-udp-echo
guest_says attach-interface-guest "^INFO hotplug $s added" 3
out=$(live)
if grep -A8 "52:54:00:6f:78:08" <<<"$out" | grep -q "<alias name='net0'/>" &&
    grep -A8 "52:54:00:6f:78:08" <<<"$out" | grep -q "<target dev='$tap'/>"; then
    pass attach-interface-live-xml
else
    fail "attach-interface-live-xml ($(grep -A8 '52:54:00:6f:78:08' <<<"$out"))"
fi
expect domiflist 0 " $tap +bridge +br0 +virtio +52:54:00:6f:78:08" -- domiflist h1
expect detach-interface-live 0 "Interface detached successfully" -- detach-interface h1 bridge --mac 52:54:00:6f:78:08
guest_says detach-interface-guest "^INFO hotplug $s ejected" 3
wait_for "no tap after the NIC's release" test -z "$(taps)" && pass detach-interface-tap-gone

# libvirt-dbus's signals, and oxvirsh (over D-Bus) doing the same.
grep -A1 "member=DeviceAdded" "$tmp/signals" | grep -q 'string "virtio-disk1"' && pass dbus-signal-device-added ||
    fail dbus-signal-device-added
grep -A1 "member=DeviceRemoved" "$tmp/signals" | grep -q 'string "net0"' && pass dbus-signal-device-removed ||
    fail dbus-signal-device-removed
OXVIRSH=$(cd "$(dirname "$OXVIRTD")" && pwd)/oxvirsh
ox() { timeout 60 "$OXVIRSH" --bus-address "$BUS" "$@" 2>&1; }
out=$(ox attach-disk h1 "$tmp/disk.raw" vdd --live)
[ "$out" = "Disk attached successfully" ] && pass oxvirsh-attach-disk-live || fail "oxvirsh-attach-disk-live ($out)"
s=$(slot_of "dev='vdd'")
guest_says oxvirsh-attach-guest "^INFO hotplug $s added" 4
out=$(ox detach-disk h1 vdd --live)
[ "$out" = "Disk detached successfully" ] && pass oxvirsh-detach-disk-live || fail "oxvirsh-detach-disk-live ($out)"
guest_says oxvirsh-detach-guest "^INFO hotplug $s ejected" 4

# python-libvirt: attachDeviceFlags and detachDeviceFlags with
# VIR_DOMAIN_AFFECT_LIVE, and the device-removed callback.
if "$PY" -c 'import libvirt' 2>/dev/null; then
    out=$(timeout 120 "$PY" - "$U" "$tmp" <<'PY' 2>&1
import sys, threading, libvirt
libvirt.virEventRegisterDefaultImpl()
threading.Thread(target=lambda: [libvirt.virEventRunDefaultImpl() for _ in iter(int, 1)], daemon=True).start()
c = libvirt.open(sys.argv[1])
d = c.lookupByName("h1")
removed = threading.Event()
got = []
def on_removed(conn, dom, alias, opaque):
    got.append(alias)
    removed.set()
c.domainEventRegisterAny(d, libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, on_removed, None)
rng = "<rng model='virtio'><backend model='random'>/dev/random</backend></rng>"
d.attachDeviceFlags(rng, libvirt.VIR_DOMAIN_AFFECT_LIVE)
assert "<alias name='rng1'/>" in d.XMLDesc(0), d.XMLDesc(0)
d.detachDeviceFlags(rng, libvirt.VIR_DOMAIN_AFFECT_LIVE)
assert removed.wait(30), "no device-removed callback"
assert got == ["rng1"], got
assert "rng1" not in d.XMLDesc(0)
print("python ok")
PY
)
    grep -qx 'python ok' <<<"$out" && pass hotplug-python-libvirt || fail "hotplug-python-libvirt ($out)"
elif [ "${CI:-}" = true ]; then
    fail "hotplug-python-libvirt (python3-libvirt is missing)"
fi

# A virtio console: a port of the guest's virtio-serial controller (the
# virtio-console function on the controller's slot), its pty opened by the
# daemon. The guest's line comes out of the pty named in the live XML;
# detached, the console leaves the live XML. On a file and on a unix socket
# too (the socket file goes with it); libvirt's errors for a second one and
# for a guest without a controller.
echo "<console type='pty'><target type='virtio'/></console>" >"$tmp/con-pty.xml"
expect attach-console-live 0 "Device attached successfully" -- attach-device h1 "$tmp/con-pty.xml" --live
guest_says attach-console-guest-sees-it "^INFO hotplug 1e added" 1
grep -q "^PASS console-1e-tx" "$serial" && pass attach-console-guest-writes || fail attach-console-guest-writes
con=$(live | awk "/<console type='pty'/,/<\/console>/")
pty=$(grep -o "/dev/pts/[0-9]*" <<<"$con" | head -1)
if [ -n "$pty" ] && grep -q "<target type='virtio' port='0'/>" <<<"$con" &&
    grep -q "<alias name='console1'/>" <<<"$con"; then
    pass "attach-console-live-xml ($pty)"
else
    fail "attach-console-live-xml ($con)"
fi
got=$(timeout 3 head -c 18 "$pty" 2>/dev/null | tr -d '\r')
[ "$got" = "OXCONSOLE hello 1" ] && pass attach-console-pty-carries-the-line || fail "attach-console-pty-carries-the-line ($got)"
inactive | grep -q "<console type='pty'" && fail attach-console-live-only || pass attach-console-live-only
expect attach-console-second 1 "only one virtio console is supported" -- attach-device h1 "$tmp/con-pty.xml" --live
wait_for "device-added console1" grep -q "event 'device-added' for domain 'h1': console1" "$tmp/events" &&
    pass event-device-added-console
expect detach-console-live 0 "Device detached successfully" -- detach-device h1 "$tmp/con-pty.xml" --live
guest_says detach-console-guest "^INFO hotplug 1e ejected" 1
wait_for "console1 gone" sh -c "! virsh -c '$U' dumpxml h1 | grep -q \"alias name='console1'\"" && pass detach-console-xml
echo "<console type='file'><source path='$tmp/console.log'/><target type='virtio'/></console>" >"$tmp/con-file.xml"
expect attach-console-file 0 "Device attached successfully" -- attach-device h1 "$tmp/con-file.xml" --live
guest_says attach-console-file-guest "^INFO hotplug 1e added" 2
wait_for "the console's file" grep -q "^OXCONSOLE hello 1" "$tmp/console.log" && pass attach-console-file-carries-the-line
expect detach-console-file 0 "Device detached successfully" -- detach-device h1 "$tmp/con-file.xml" --live
guest_says detach-console-file-guest "^INFO hotplug 1e ejected" 2
echo "<console type='unix'><source mode='bind' path='$tmp/console.sock'/><target type='virtio'/></console>" >"$tmp/con-unix.xml"
expect attach-console-unix 0 "Device attached successfully" -- attach-device h1 "$tmp/con-unix.xml" --live
[ -S "$tmp/console.sock" ] && pass attach-console-unix-socket || fail attach-console-unix-socket
guest_says attach-console-unix-guest "^INFO hotplug 1e added" 3
expect detach-console-unix 0 "Device detached successfully" -- detach-device h1 "$tmp/con-unix.xml" --live
guest_says detach-console-unix-guest "^INFO hotplug 1e ejected" 3
wait_for "the console's socket gone" sh -c "[ ! -e '$tmp/console.sock' ]" && pass detach-console-unix-socket-gone

# A guest that refuses to release a device (its _OST answers the Eject
# Request "busy", as Linux's does for a device in use): libvirt's error,
# device-removal-failed on RPC and D-Bus, the device still there; a second
# request is served.
echo "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>" >"$tmp/rng0.xml"
expect detach-refused-by-guest 1 "operation failed: unplug of device was rejected by the guest" -- \
    detach-device h1 "$tmp/rng0.xml" --live
guest_says detach-refused-guest "^INFO hotplug 03 refused" 1
wait_for "device-removal-failed event" grep -q "event 'device-removal-failed' for domain 'h1': rng0" "$tmp/events" &&
    pass event-device-removal-failed
wait_for "DeviceRemovalFailed signal" sh -c "grep -A1 'member=DeviceRemovalFailed' '$tmp/signals' | grep -q 'string \"rng0\"'" &&
    pass dbus-signal-device-removal-failed
live | grep -q "<alias name='rng0'/>" && pass detach-refused-device-stays || fail detach-refused-device-stays
expect detach-after-refusal 0 "Device detached successfully" -- detach-device h1 "$tmp/rng0.xml" --live
guest_says detach-after-refusal-guest "^INFO hotplug 03 ejected" 1
wait_for "rng0 gone" sh -c "! virsh -c '$U' dumpxml h1 | grep -q \"alias name='rng0'\"" && pass detach-after-refusal-xml

# vCPUs (ACPI CPU hotplug): plugged in up to the maximum, each started by
# the guest and running a task; given back, each ejected by the guest; the
# live definition follows, the persistent one only with --config.
vcpus_live() { virsh -c "$U" vcpucount h1 --live --active 2>&1; }
expect setvcpus-live-up 0 "" -- setvcpus h1 3 --live
guest_says setvcpus-guest-starts-vcpu1 "^INFO cpuhp 1 online" 1
guest_says setvcpus-guest-starts-vcpu2 "^INFO cpuhp 2 online" 1
[ "$(vcpus_live)" = 3 ] && pass setvcpus-live-count || fail "setvcpus-live-count ($(vcpus_live))"
live | grep -q "<vcpu placement='static'>3</vcpu>" && pass setvcpus-live-xml || fail "setvcpus-live-xml ($(live | grep '<vcpu'))"
inactive | grep -q "<vcpu placement='static' current='1'>3</vcpu>" && pass setvcpus-live-only ||
    fail "setvcpus-live-only ($(inactive | grep '<vcpu'))"
expect vcpuinfo-three 0 "^VCPU: +2$" -- vcpuinfo h1
expect domstats-vcpu 0 "vcpu.current=3" -- domstats --vcpu h1
expect setvcpus-beyond-max 1 "requested vcpus is greater than max allowable vcpus for the live domain: 4 > 3" -- \
    setvcpus h1 4 --live
expect setvcpus-maximum-live 1 "maximum vcpu count of a live domain can't be modified" -- setvcpus h1 2 --live --config --maximum
expect setvcpus-live-down 0 "" -- setvcpus h1 1 --live
guest_says setvcpus-guest-ejects-vcpu2 "^INFO cpuhp 2 ejected" 1
guest_says setvcpus-guest-ejects-vcpu1 "^INFO cpuhp 1 ejected" 1
[ "$(vcpus_live)" = 1 ] && pass setvcpus-live-down-count || fail "setvcpus-live-down-count ($(vcpus_live))"
live | grep -q "<vcpu placement='static' current='1'>3</vcpu>" && pass setvcpus-live-down-xml ||
    fail "setvcpus-live-down-xml ($(live | grep '<vcpu'))"
expect setvcpus-live-config 0 "" -- setvcpus h1 2 --live --config
guest_says setvcpus-live-config-guest "^INFO cpuhp 1 online" 2
inactive | grep -q "<vcpu placement='static' current='2'>3</vcpu>" && pass setvcpus-live-config-inactive ||
    fail "setvcpus-live-config-inactive ($(inactive | grep '<vcpu'))"
virsh -c "$U" setvcpus h1 1 --config >/dev/null 2>&1
out=$(ox setvcpus h1 3 --live)
[ -z "$out" ] && pass oxvirsh-setvcpus-live || fail "oxvirsh-setvcpus-live ($out)"
guest_says oxvirsh-setvcpus-guest "^INFO cpuhp 2 online" 2
if "$PY" -c 'import libvirt' 2>/dev/null; then
    out=$(timeout 120 "$PY" - "$U" <<'PY' 2>&1
import sys, libvirt
d = libvirt.open(sys.argv[1]).lookupByName("h1")
d.setVcpusFlags(2, libvirt.VIR_DOMAIN_AFFECT_LIVE)
assert d.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE) == 2, d.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
assert len(d.vcpus()[0]) == 2, d.vcpus()
print("python ok")
PY
)
    grep -qx 'python ok' <<<"$out" && pass setvcpus-python-libvirt || fail "setvcpus-python-libvirt ($out)"
    guest_says setvcpus-python-guest "^INFO cpuhp 2 ejected" 2
elif [ "${CI:-}" = true ]; then
    fail "setvcpus-python-libvirt (python3-libvirt is missing)"
fi

# The bus filled: rngs plugged in (each checked by the guest) until no slot
# is left, then libvirt's error with nothing changed; all released by alias.
added=$(lines '^INFO hotplug .. added')
plugged=0
while virsh -c "$U" attach-device h1 "$tmp/rng0.xml" --live >"$tmp/fill.out" 2>&1; do
    plugged=$((plugged + 1))
    [ "$plugged" -gt 40 ] && break
done
guest_says "bus-filled-guest-checks-$plugged" '^INFO hotplug .. added' $((added + plugged))
before_full=$(live)
if grep -q "internal error: No more available PCI slots" "$tmp/fill.out" && [ "$plugged" -ge 20 ]; then
    pass "attach-beyond-slots ($plugged plugged first)"
else
    fail "attach-beyond-slots ($plugged plugged: $(cat "$tmp/fill.out"))"
fi
[ "$(live)" = "$before_full" ] && pass attach-beyond-slots-unchanged || fail attach-beyond-slots-unchanged
ejected=$(lines '^INFO hotplug .. ejected')
for a in $(live | grep -o "<alias name='rng[0-9]*'/>" | grep -o "rng[0-9]*"); do
    virsh -c "$U" detach-device-alias h1 "$a" --live >/dev/null 2>&1 || fail "detach-device-alias $a"
done
guest_says bus-emptied-guest "^INFO hotplug .. ejected" $((ejected + plugged))
wait_for "every rng gone" sh -c "! virsh -c '$U' dumpxml h1 | grep -q '<rng '" && pass bus-emptied-xml

# Twenty more cycles of a disk leave nothing behind in the daemon or VMM.
vmm=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$tmp/run/h1.json")
count() { echo "$(ls /proc/"$1"/fd | wc -l)/$(ls /proc/"$1"/task | wc -l)"; }
# The daemon's runtime keeps idle blocking threads for 10 s: counted once
# they are gone.
sleep 11
before="$(count "$daemon") $(count "$vmm")"
added=$(lines '^INFO hotplug .. added')
for i in $(seq 20); do
    virsh -c "$U" attach-disk h1 "$tmp/disk.raw" vdb >/dev/null 2>&1 || { fail "cycle $i attach"; break; }
    for _ in $(seq 300); do [ "$(lines '^INFO hotplug .. added')" -ge $((added + i)) ] && break; sleep 0.1; done
    virsh -c "$U" detach-disk h1 vdb >/dev/null 2>&1 || { fail "cycle $i detach"; break; }
done
wait_for "last cycle released" sh -c "! virsh -c '$U' dumpxml h1 | grep -q vdb"
# And twenty of a NIC on the bridge, each with its tap (the guest's check of
# each waits for a UDP echo through it).
added=$(lines '^INFO hotplug .. added')
ready=$(lines '^INFO net-.. ready, waiting')
for i in $(seq 20); do
    virsh -c "$U" attach-interface h1 bridge br0 --model virtio --mac 52:54:00:6f:78:09 --live >/dev/null 2>&1 ||
        { fail "NIC cycle $i attach"; break; }
    for _ in $(seq 300); do [ "$(lines '^INFO net-.. ready, waiting')" -ge $((ready + i)) ] && break; sleep 0.1; done
    udp_echo || fail "NIC cycle $i: no UDP echo"
    for _ in $(seq 300); do [ "$(lines '^INFO hotplug .. added')" -ge $((added + i)) ] && break; sleep 0.1; done
    [ -n "$(taps)" ] || fail "NIC cycle $i: no tap"
    virsh -c "$U" detach-interface h1 bridge --mac 52:54:00:6f:78:09 --live >/dev/null 2>&1 ||
        { fail "NIC cycle $i detach"; break; }
done
wait_for "last NIC cycle released" sh -c "! virsh -c '$U' dumpxml h1 | grep -q 52:54:00:6f:78:09"
sleep 11
after="$(count "$daemon") $(count "$vmm")"
[ "$before" = "$after" ] && pass "20 disk and 20 NIC cycles: daemon and VMM fds/threads $before" ||
    fail "20 disk and 20 NIC cycles: fds/threads before $before, after $after"
[ -z "$(taps)" ] && pass no-tap-left || fail "no-tap-left: $(taps)"

# A plugged-in disk and console stay across a save and restore of the
# guest and a daemon restart, and are released when asked after both.
expect attach-before-save 0 "Disk attached successfully" -- attach-disk h1 "$tmp/disk.raw" vdb
s=$(slot_of "dev='vdb'")
expect attach-console-before-save 0 "Device attached successfully" -- attach-device h1 "$tmp/con-file.xml" --live
expect managedsave 0 "Domain 'h1' state saved" -- managedsave h1
expect restore 0 "Domain 'h1' started" -- start h1
live | grep -q "<target dev='vdb' bus='virtio'/>" && pass restored-keeps-disk || fail restored-keeps-disk
live | grep -q "<alias name='console1'/>" && pass restored-keeps-console || fail restored-keeps-console
[ "$(vcpus_live)" = 2 ] && pass restored-keeps-vcpus || fail "restored-keeps-vcpus ($(vcpus_live))"
kill "$daemon"
wait "$daemon" 2>/dev/null
start_oxvirtd_in_netns
live | grep -q "<target dev='vdb' bus='virtio'/>" && pass restarted-daemon-keeps-disk || fail restarted-daemon-keeps-disk
live | grep -q "<alias name='console1'/>" && pass restarted-daemon-keeps-console || fail restarted-daemon-keeps-console
[ "$(vcpus_live)" = 2 ] && pass restarted-daemon-keeps-vcpus || fail "restarted-daemon-keeps-vcpus ($(vcpus_live))"
m=$(lines "^INFO cpuhp 1 ejected")
expect setvcpus-after-restart 0 "" -- setvcpus h1 1 --live
guest_says setvcpus-after-restart-guest "^INFO cpuhp 1 ejected" $((m + 1))
m=$(lines "^INFO hotplug $s ejected")
expect detach-after-restart 0 "Disk detached successfully" -- detach-disk h1 vdb
guest_says detach-after-restart-guest "^INFO hotplug $s ejected" $((m + 1))
wait_for "disk gone after restart" sh -c "! virsh -c '$U' dumpxml h1 | grep -q vdb" && pass detach-after-restart-xml
m=$(lines "^INFO hotplug 1e ejected")
expect detach-console-after-restart 0 "Device detached successfully" -- detach-device h1 "$tmp/con-file.xml" --live
guest_says detach-console-after-restart-guest "^INFO hotplug 1e ejected" $((m + 1))
if grep -q '^FAIL' "$serial"; then fail "guest-checks ($(grep '^FAIL' "$serial" | head -3))"; else pass guest-checks; fi
expect destroy 0 "Domain 'h1' destroyed" -- destroy h1

echo "# hotplug: $passes passed, $fails failed"
[ "$fails" = 0 ]
