#!/bin/bash
# Devices added to and removed from a domain's persistent definition with
# the real virsh: attach-disk, detach-disk, attach-interface,
# detach-interface, attach-device, detach-device with --config, --current
# and --persistent; addresses and MACs assigned as a define assigns them,
# the definition valid against libvirt's domain.rng and kept across a
# daemon restart; libvirt's errors for a duplicate target, a device that is
# not there, a kind that cannot be changed, an unknown element, a transient
# domain, a shut-off guest asked for --live. A running guest's device of a
# kind it cannot gain (a watchdog): --live (and --live --config) gets
# libvirt's "not supported" error and changes neither definition. blockresize
# of raw and qcow2 images (grown and shrunk, the guest told), refused for a
# qcow2 image with internal snapshots and for a read-only disk. python-libvirt's
# attachDeviceFlags and detachDeviceAlias, and libvirt-dbus's AttachDevice
# and DetachDevice. Called by run.sh.
#
# usage: attach.sh OXVIRTD TMPDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
KERNEL=$top/compat-tests/guest/out/testos.elf
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

start_private_bus "$tmp"
start_oxvirtd

for f in a b c; do truncate -s 4M "$tmp/$f.img"; done
domain_xml() { # NAME
    cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>oxtest.checks=e820 oxtest.then=ticker oxtest.tickdev=1</cmdline></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$tmp/a.img'/><target dev='vda' bus='virtio'/></disk>
    <rng model='virtio'><backend model='random'>/dev/random</backend></rng>
    <serial type='file'><source path='$tmp/$1.serial'/></serial>
  </devices>
</domain>
XML
}
domain_xml d1 >"$tmp/d1.xml"
virsh -c "$U" define "$tmp/d1.xml" >/dev/null
inactive() { virsh -c "$U" dumpxml --inactive "$1" 2>&1; }
unchanged() { # NAME DOMAIN BEFORE: the inactive definition is still BEFORE
    if [ "$(inactive "$2")" = "$3" ]; then pass "$1"; else
        fail "$1"
        diff <(echo "$3") <(inactive "$2") | sed 's/^/       | /'
    fi
}
valid() { # NAME DOMAIN: the inactive definition against libvirt's schema
    inactive "$2" >"$tmp/valid.xml"
    if xmllint --noout --relaxng /usr/share/libvirt/schemas/domain.rng "$tmp/valid.xml" 2>"$tmp/valid.err"; then
        pass "$1"
    else
        fail "$1 ($(tail -3 "$tmp/valid.err"))"
    fi
}

# Disks.
expect attach-disk-config 0 "Disk attached successfully" -- attach-disk d1 "$tmp/b.img" vdb --config
out=$(inactive d1)
if grep -q "<target dev='vdb' bus='virtio'/>" <<<"$out" &&
    grep -A4 "$tmp/b.img" <<<"$out" | grep -q "<address type='pci'"; then
    pass attach-disk-in-definition
else
    fail "attach-disk-in-definition ($out)"
fi
valid attach-disk-valid d1
before=$(inactive d1)
expect attach-disk-duplicate 1 "Requested operation is not valid: target vdb already exists" -- \
    attach-disk d1 "$tmp/c.img" vdb --config
unchanged attach-disk-duplicate-unchanged d1 "$before"
expect attach-disk-sata 0 "Disk attached successfully" -- attach-disk d1 "$tmp/c.img" sda --targetbus sata --config
expect attach-disk-sata-address 0 "<address type='drive' controller='0' bus='0' target='0' unit='0'/>" -- dumpxml --inactive d1
expect attach-disk-shutoff-live 1 "Requested operation is not valid: domain is not running" -- \
    attach-disk d1 "$tmp/c.img" vdc --live
expect attach-disk-shutoff-default 1 "Requested operation is not valid: domain is not running" -- \
    attach-disk d1 "$tmp/c.img" vdc
expect attach-disk-current 0 "Disk attached successfully" -- attach-disk d1 "$tmp/c.img" vdc --current
expect detach-disk-config 0 "Disk detached successfully" -- detach-disk d1 vdc --config
expect detach-disk-persistent-sata 0 "Disk detached successfully" -- detach-disk d1 sda --config
cat >"$tmp/nodisk.xml" <<XML
<disk type='file' device='disk'><source file='$tmp/c.img'/><target dev='vdz' bus='virtio'/></disk>
XML
before=$(inactive d1)
expect detach-device-missing-disk 1 "device not found: no target device vdz" -- detach-device d1 "$tmp/nodisk.xml" --config
unchanged detach-device-missing-unchanged d1 "$before"

# Interfaces.
expect attach-interface-config 0 "Interface attached successfully" -- \
    attach-interface d1 bridge br0 --model virtio --mac 52:54:00:aa:bb:01 --config
expect attach-interface-generated-mac 0 "Interface attached successfully" -- \
    attach-interface d1 bridge br0 --model virtio --config
n=$(inactive d1 | grep -c "<mac address='52:54:00:")
[ "$n" = 2 ] && pass attach-interface-two-macs || fail "attach-interface-two-macs ($n)"
valid attach-interface-valid d1
cat >"$tmp/nic99.xml" <<XML
<interface type='bridge'><mac address='52:54:00:00:00:99'/><source bridge='br0'/></interface>
XML
expect detach-interface-missing 1 "device not found: no device found at address '\(<null>\)' matching MAC address '52:54:00:00:00:99' and alias '\(<null>\)'" -- \
    detach-device d1 "$tmp/nic99.xml" --config
cat >"$tmp/nicany.xml" <<XML
<interface type='bridge'><source bridge='br0'/></interface>
XML
expect detach-interface-ambiguous 1 "multiple matching devices found" -- detach-device d1 "$tmp/nicany.xml" --config
expect detach-interface-config 0 "Interface detached successfully" -- \
    detach-interface d1 bridge --mac 52:54:00:aa:bb:01 --config
n=$(inactive d1 | grep -c "<interface ")
[ "$n" = 1 ] && pass detach-interface-one-left || fail "detach-interface-one-left ($n)"
# domif-setlink --config: update-device with the NIC's XML, link state changed.
mac=$(inactive d1 | sed -n "s/.*<mac address='\([^']*\)'.*/\1/p" | head -1)
expect domif-setlink-config 0 "Device updated successfully" -- domif-setlink d1 "$mac" down --config
expect domif-setlink-in-definition 0 "<link state='down'/>" -- dumpxml --inactive d1
expect domif-getlink-config 0 "$mac down" -- domif-getlink d1 "$mac" --config
expect domif-setlink-up 0 "Device updated successfully" -- domif-setlink d1 "$mac" up --config
n=$(inactive d1 | grep -c "<link state='down'/>")
[ "$n" = 0 ] && pass domif-setlink-up-in-definition || fail "domif-setlink-up-in-definition ($n)"
expect detach-interface-last 0 "Interface detached successfully" -- detach-interface d1 bridge --config

# Other devices through attach-device / detach-device.
cat >"$tmp/rng.xml" <<XML
<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
XML
expect attach-device-rng 0 "Device attached successfully" -- attach-device d1 "$tmp/rng.xml" --persistent
expect attach-device-rng-address 0 "<rng model='virtio'>" -- dumpxml --inactive d1
expect detach-device-rng 0 "Device detached successfully" -- detach-device d1 "$tmp/rng.xml" --config
expect detach-device-rng-again 1 "device not found: no matching RNG device was found" -- detach-device d1 "$tmp/rng.xml" --config
cat >"$tmp/vsock.xml" <<XML
<vsock model='virtio'><cid auto='yes'/></vsock>
XML
expect attach-device-vsock 0 "Device attached successfully" -- attach-device d1 "$tmp/vsock.xml" --config
expect attach-device-vsock-twice 1 "domain already has a vsock device" -- attach-device d1 "$tmp/vsock.xml" --config
expect detach-device-vsock 0 "Device detached successfully" -- detach-device d1 "$tmp/vsock.xml" --config
echo "<video><model type='vga'/></video>" >"$tmp/video.xml"
expect attach-device-video 1 "Operation not supported: persistent attach of device 'video' is not supported" -- \
    attach-device d1 "$tmp/video.xml" --config
echo "<frobnicator/>" >"$tmp/frob.xml"
expect attach-device-unknown 1 "unknown device type 'frobnicator'" -- attach-device d1 "$tmp/frob.xml" --config
echo "<disk type='file'" >"$tmp/broken.xml"
before=$(inactive d1)
expect attach-device-malformed 1 "error" -- attach-device d1 "$tmp/broken.xml" --config
unchanged attach-device-bad-unchanged d1 "$before"

# The definition outlives the daemon.
kill "$daemon"
wait "$daemon" 2>/dev/null
start_oxvirtd
expect attach-after-restart 0 "<target dev='vdb' bus='virtio'/>" -- dumpxml --inactive d1

# A running guest: --config changes the next boot's definition only; a
# kind that cannot be plugged into it is refused with --live, and with
# --live --config changes neither definition (hotplug.sh plugs the rest).
expect start-d1 0 "Domain 'd1' started" -- start d1
live_before=$(virsh -c "$U" dumpxml d1 2>&1)
before=$(inactive d1)
echo "<watchdog model='i6300esb' action='reset'/>" >"$tmp/wd.xml"
expect attach-live-refused 1 "Operation not supported: live attach of device 'watchdog' is not supported" -- \
    attach-device d1 "$tmp/wd.xml"
expect attach-live-config-refused 1 "Operation not supported: live attach of device 'watchdog' is not supported" -- \
    attach-device d1 "$tmp/wd.xml" --live --config
unchanged attach-live-refused-unchanged d1 "$before"
# A virtio console needs a virtio-serial controller the guest has.
echo "<console type='pty'><target type='virtio'/></console>" >"$tmp/vcon.xml"
expect attach-console-no-controller 1 "internal error: no virtio-serial controllers are available" -- \
    attach-device d1 "$tmp/vcon.xml" --live
if [ "$(virsh -c "$U" dumpxml d1 2>&1)" = "$live_before" ]; then pass attach-console-no-controller-unchanged; else
    fail attach-console-no-controller-unchanged
fi
expect attach-running-config 0 "Disk attached successfully" -- attach-disk d1 "$tmp/c.img" vdc --config
expect attach-running-config-inactive 0 "<target dev='vdc' bus='virtio'/>" -- dumpxml --inactive d1
if [ "$(virsh -c "$U" dumpxml d1 2>&1)" = "$live_before" ]; then pass attach-running-live-unchanged; else fail attach-running-live-unchanged; fi
# blockresize: the raw image grows, the guest sees the new capacity.
for _ in $(seq 300); do grep -q '^PASS tickdev' "$tmp/d1.serial" && break; sleep 0.1; done
expect blockresize 0 "Block device 'vda' is resized" -- blockresize d1 vda 8M
[ "$(stat -c %s "$tmp/a.img")" = 8388608 ] && pass blockresize-image-size || fail "blockresize-image-size ($(stat -c %s "$tmp/a.img"))"
for _ in $(seq 100); do grep -q 'INFO blk capacity 16384 sectors' "$tmp/d1.serial" && break; sleep 0.1; done
grep -q 'INFO blk capacity 16384 sectors' "$tmp/d1.serial" && pass blockresize-guest-sees-it ||
    fail "blockresize-guest-sees-it ($(grep -E 'blk|FAIL' "$tmp/d1.serial" | tail -3))"
expect blockresize-by-path 0 "Block device '$tmp/a.img' is resized" -- blockresize d1 "$tmp/a.img" 12M
expect blockresize-missing 1 "invalid argument: disk 'vdz' was not found in the domain config" -- blockresize d1 vdz 8M
expect blockresize-bad-size 1 "malformed" -- blockresize d1 vda 8Q
if grep -q '^FAIL' "$tmp/d1.serial"; then fail "blockresize-guest-ok ($(grep '^FAIL' "$tmp/d1.serial" | head -2))"; else pass blockresize-guest-ok; fi
expect detach-live-refused 1 "Operation not supported: live detach of device 'watchdog' is not supported" -- \
    detach-device d1 "$tmp/wd.xml" --live
expect detach-running-config 0 "Disk detached successfully" -- detach-disk d1 vdc --config
virsh -c "$U" destroy d1 >/dev/null 2>&1

# blockresize of qcow2 images, which the VMM resizes as it holds them open:
# grown (the guest sees it), shrunk to a size rounded up to whole sectors;
# refused for an image with internal snapshots and for a read-only disk.
qemu-img create -q -f qcow2 "$tmp/q.qcow2" 4M
qemu-img create -q -f qcow2 "$tmp/qs.qcow2" 4M
qemu-img snapshot -c s1 "$tmp/qs.qcow2"
domain_xml q1 | sed -e "s|type='raw'/><source file='$tmp/a.img'/>|type='qcow2'/><source file='$tmp/q.qcow2'/>|" \
    -e "s|<rng |<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$tmp/qs.qcow2'/><target dev='vdb' bus='virtio'/></disk>\n    <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$tmp/b.img'/><target dev='vdc' bus='virtio'/><readonly/></disk>\n    <rng |" \
    >"$tmp/q1.xml"
expect create-q1 0 "Domain 'q1' created" -- create "$tmp/q1.xml"
virtual_size() { qemu-img info -U --output=json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }
for _ in $(seq 300); do grep -q '^PASS tickdev' "$tmp/q1.serial" && break; sleep 0.1; done
expect blockresize-qcow2 0 "Block device 'vda' is resized" -- blockresize q1 vda 8M
[ "$(virtual_size "$tmp/q.qcow2")" = 8388608 ] && pass blockresize-qcow2-size || fail "blockresize-qcow2-size ($(virtual_size "$tmp/q.qcow2"))"
for _ in $(seq 100); do grep -q 'INFO blk capacity 16384 sectors' "$tmp/q1.serial" && break; sleep 0.1; done
grep -q 'INFO blk capacity 16384 sectors' "$tmp/q1.serial" && pass blockresize-qcow2-guest-sees-it ||
    fail "blockresize-qcow2-guest-sees-it ($(grep -E 'blk|FAIL' "$tmp/q1.serial" | tail -3))"
# 2 GiB: past one L1 entry (512 MiB), so the L1 table grows.
expect blockresize-qcow2-l1 0 "is resized" -- blockresize q1 vda 2G
[ "$(virtual_size "$tmp/q.qcow2")" = 2147483648 ] && pass blockresize-qcow2-l1-size || fail "blockresize-qcow2-l1-size ($(virtual_size "$tmp/q.qcow2"))"
for _ in $(seq 100); do grep -q 'INFO blk capacity 4194304 sectors' "$tmp/q1.serial" && break; sleep 0.1; done
grep -q 'INFO blk capacity 4194304 sectors' "$tmp/q1.serial" && pass blockresize-qcow2-l1-guest || fail blockresize-qcow2-l1-guest
expect blockresize-qcow2-shrink 0 "is resized" -- blockresize q1 vda 6000001B
[ "$(virtual_size "$tmp/q.qcow2")" = 6000128 ] && pass blockresize-qcow2-rounded || fail "blockresize-qcow2-rounded ($(virtual_size "$tmp/q.qcow2"))"
for _ in $(seq 100); do grep -q 'INFO blk capacity 11719 sectors' "$tmp/q1.serial" && break; sleep 0.1; done
grep -q 'INFO blk capacity 11719 sectors' "$tmp/q1.serial" && pass blockresize-qcow2-guest-sees-shrink ||
    fail "blockresize-qcow2-guest-sees-shrink ($(grep -E 'blk|FAIL' "$tmp/q1.serial" | tail -3))"
expect blockresize-qcow2-snapshots 1 "Can't resize an image which has snapshots" -- blockresize q1 vdb 8M
[ "$(virtual_size "$tmp/qs.qcow2")" = 4194304 ] && pass blockresize-qcow2-snapshots-unchanged || fail blockresize-qcow2-snapshots-unchanged
expect blockresize-readonly 1 "Operation not supported: can't resize empty or readonly disk 'vdc'" -- blockresize q1 vdc 8M
[ "$(stat -c %s "$tmp/b.img")" = 4194304 ] && pass blockresize-readonly-unchanged || fail blockresize-readonly-unchanged
sleep 1
if grep -q '^FAIL' "$tmp/q1.serial"; then fail "blockresize-qcow2-guest-ok ($(grep '^FAIL' "$tmp/q1.serial" | head -2))"; else pass blockresize-qcow2-guest-ok; fi
virsh -c "$U" destroy q1 >/dev/null 2>&1
check blockresize-qcow2-image-ok qemu-img check -q "$tmp/q.qcow2"

# A transient domain has no persistent definition.
domain_xml t1 >"$tmp/t1.xml"
expect create-t1 0 "Domain 't1' created" -- create "$tmp/t1.xml"
expect attach-transient-config 1 "transient domains do not have any persistent config" -- \
    attach-disk t1 "$tmp/c.img" vdc --config
virsh -c "$U" destroy t1 >/dev/null 2>&1

# python-libvirt.
if /usr/bin/python3 -c 'import libvirt' 2>/dev/null; then
    out=$(timeout 60 /usr/bin/python3 - "$U" "$tmp" <<'PY' 2>&1
import sys, libvirt
c = libvirt.open(sys.argv[1])
d = c.lookupByName("d1")
cfg = libvirt.VIR_DOMAIN_AFFECT_CONFIG
d.attachDeviceFlags("<disk type='file' device='disk'><source file='%s/c.img'/>"
                    "<target dev='vdd' bus='virtio'/><alias name='ua-extra'/></disk>" % sys.argv[2], cfg)
assert "<alias name='ua-extra'/>" in d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
d.detachDeviceAlias("ua-extra", cfg)
assert "vdd" not in d.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
try:
    d.detachDeviceAlias("ua-extra", cfg)
    print("FAIL detached twice")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_DEVICE_MISSING, e
try:
    d.attachDevice("<disk type='file'><source file='/x'/><target dev='vde'/></disk>")
    print("FAIL attached to a shut-off guest's live state")
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID, e
print("python ok")
PY
)
    grep -qx 'python ok' <<<"$out" && pass attach-python-libvirt || fail "attach-python-libvirt ($out)"
elif [ "${CI:-}" = true ]; then
    fail "attach-python-libvirt (python3-libvirt is missing)"
fi

# libvirt-dbus's Domain.AttachDevice and DetachDevice.
BUS=$(head -1 "$tmp/bus")
uuid=$(virsh -c "$U" domuuid d1 | tr -d '\n' | tr - _)
obj=/org/libvirt/QEMU/domain/_$uuid
dbus() { busctl --address="$BUS" call org.libvirt "$obj" org.libvirt.Domain "$@" 2>&1; }
disk="<disk type='file' device='disk'><source file='$tmp/c.img'/><target dev='vdf' bus='virtio'/></disk>"
out=$(dbus AttachDevice su "$disk" 2)
[ -z "$out" ] && pass dbus-attach-device || fail "dbus-attach-device ($out)"
expect dbus-attach-device-defined 0 "<target dev='vdf' bus='virtio'/>" -- dumpxml --inactive d1
out=$(dbus AttachDevice su "$disk" 2)
grep -q "target vdf already exists" <<<"$out" && pass dbus-attach-device-duplicate || fail "dbus-attach-device-duplicate ($out)"
out=$(dbus DetachDevice su "$disk" 2)
[ -z "$out" ] && pass dbus-detach-device || fail "dbus-detach-device ($out)"

# oxvirsh prints what virsh prints.
OXVIRSH=$(cd "$(dirname "$OXVIRTD")" && pwd)/oxvirsh
ox() { timeout 60 "$OXVIRSH" --bus-address "$BUS" "$@" 2>&1; }
same() { # NAME ARGS...: both clients, the same output (a command that changes nothing)
    local name=$1 v o
    shift
    v=$(timeout 30 virsh -c "$U" "$@" 2>&1)
    o=$(ox "$@")
    if [ "$v" = "$o" ]; then pass "oxvirsh-$name"; else
        fail "oxvirsh-$name"
        diff <(echo "$v") <(echo "$o") | sed 's/^/       | /'
    fi
}
pair() { # NAME DO-ARGS -- UNDO-ARGS: virsh does and undoes, then oxvirsh; the same words
    local name=$1 v1 v2 o1 o2 i
    shift
    for ((i = 1; i <= $#; i++)); do [ "${!i}" = -- ] && break; done
    local fwd=("${@:1:i-1}") back=("${@:i+1}")
    v1=$(timeout 30 virsh -c "$U" "${fwd[@]}" 2>&1)
    v2=$(timeout 30 virsh -c "$U" "${back[@]}" 2>&1)
    o1=$(ox "${fwd[@]}")
    o2=$(ox "${back[@]}")
    if [ "$v1" = "$o1" ] && [ "$v2" = "$o2" ] && [ -n "$v1" ]; then pass "oxvirsh-$name"; else
        fail "oxvirsh-$name"
        diff <(printf '%s\n%s\n' "$v1" "$v2") <(printf '%s\n%s\n' "$o1" "$o2") | sed 's/^/       | /'
    fi
}
pair attach-detach-config attach-device d1 "$tmp/rng.xml" --config -- detach-device d1 "$tmp/rng.xml" --config
pair attach-detach-persistent attach-device d1 "$tmp/vsock.xml" --persistent -- detach-device d1 "$tmp/vsock.xml" --persistent
same attach-shutoff-live attach-device d1 "$tmp/rng.xml"
same detach-missing detach-device d1 "$tmp/nodisk.xml" --config
same attach-unknown attach-device d1 "$tmp/frob.xml" --config
same attach-no-file attach-device d1 "$tmp/none.xml" --config
same attach-current-live attach-device d1 "$tmp/rng.xml" --current --live
same attach-persistent-current attach-device d1 "$tmp/rng.xml" --persistent --current
pair attach-disk-detach-disk attach-disk d1 "$tmp/c.img" vdg --config -- detach-disk d1 vdg --config
pair attach-disk-options attach-disk d1 "$tmp/c.img" sdc --targetbus sata --driver qemu --subdriver raw \
    --cache none --mode readonly --serial S123 --config -- detach-disk d1 "$tmp/c.img" --persistent
same attach-disk-print-xml attach-disk d1 "$tmp/c.img" vdh --driver qemu --subdriver raw --cache none \
    --io native --type disk --mode shareable --serial S-1 --alias ua-x --wwn 0123456789abcdef --print-xml
same attach-disk-bad-mode attach-disk d1 "$tmp/c.img" vdh --mode wronly --config
same attach-disk-bad-wwn attach-disk d1 "$tmp/c.img" vdh --wwn 12 --config
same attach-disk-bad-sourcetype attach-disk d1 "$tmp/c.img" vdh --sourcetype floppy --config
same attach-disk-duplicate attach-disk d1 "$tmp/c.img" vdb --config
same attach-disk-shutoff attach-disk d1 "$tmp/c.img" vdh
same detach-disk-missing detach-disk d1 vdz --config
same detach-disk-print-xml detach-disk d1 vdb --config --print-xml
pair attach-interface attach-interface d1 bridge br0 --model virtio --mac 52:54:00:aa:bb:07 --config -- \
    detach-interface d1 bridge --mac 52:54:00:AA:BB:07 --config
same attach-interface-print-xml attach-interface d1 network default --target vnet7 --mac 52:54:00:aa:bb:08 \
    --script /bin/true --model virtio --alias ua-n --inbound 100,200,,50 --outbound 300 --managed --print-xml
same attach-interface-vhostuser-xml attach-interface d1 vhostuser /run/vu.sock --source-mode client --print-xml
same attach-interface-vhostuser-no-mode attach-interface d1 vhostuser /run/vu.sock --print-xml
same attach-interface-user attach-interface d1 user x --config
same attach-interface-bad-rate attach-interface d1 bridge br0 --inbound 1,2,3,4,5 --config
same attach-interface-bad-field attach-interface d1 bridge br0 --inbound x --config
same attach-interface-no-average attach-interface d1 bridge br0 --outbound ,5 --config
same detach-interface-none detach-interface d1 bridge --config
same detach-interface-shutoff detach-interface d1 bridge
virsh -c "$U" attach-interface d1 bridge br0 --mac 52:54:00:aa:bb:09 --config >/dev/null
virsh -c "$U" attach-interface d1 bridge br0 --mac 52:54:00:aa:bb:0a --config >/dev/null
same detach-interface-ambiguous detach-interface d1 bridge --config
same detach-interface-no-mac detach-interface d1 bridge --mac 52:54:00:aa:bb:0b --config
same detach-interface-print-xml detach-interface d1 bridge --mac 52:54:00:aa:bb:09 --config --print-xml
virsh -c "$U" detach-interface d1 bridge --mac 52:54:00:aa:bb:09 --config >/dev/null
virsh -c "$U" detach-interface d1 bridge --mac 52:54:00:aa:bb:0a --config >/dev/null
virsh -c "$U" start d1 >/dev/null 2>&1
v=$(virsh -c "$U" blockresize d1 vda 16M 2>&1)
o=$(ox blockresize d1 vda 20M)
[ "$v" = "$o" ] && [ "$(stat -c %s "$tmp/a.img")" = 20971520 ] && pass oxvirsh-blockresize || fail "oxvirsh-blockresize ($v / $o)"
same blockresize-missing blockresize d1 vdz 8M
same blockresize-bad-size blockresize d1 vda 8Q
virsh -c "$U" destroy d1 >/dev/null 2>&1
same blockresize-shutoff blockresize d1 vda 8M
expect oxvirsh-left-nothing 1 "no matching RNG device was found" -- detach-device d1 "$tmp/rng.xml" --config

echo "attach: $passes passed, $fails failed"
[ "$fails" = 0 ]
