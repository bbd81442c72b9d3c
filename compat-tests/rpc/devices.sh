#!/bin/bash
# A guest with a raw disk, a qcow2 disk and a NIC on a bridge, driven by
# the real virsh: domblkstat, domifstat, domiflist, domstats, setmem with the
# balloon, domifaddr, the reboot and balloon-change events, and that no
# tap outlives the guest or a failed start. Then a guest whose NIC has
# <driver queues='2'/>: a multi-queue tap, the guest using both queue
# pairs (frames both ways on each, also after a reboot), the live XML; and
# type='ethernet' with queues. Then a guest with an e1000 NIC, its link set
# down and up.
#
# oxvirtd runs inside a private network namespace holding the bridge
# br0 (10.0.2.2/24), so its taps stay there; virsh reaches it through
# the RPC socket's path. Called by run.sh (as root).
#
# usage: devices.sh OXVIRTD TMPDIR
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
ns=oxrpc$$
fails=0
pids=()

. "$here/lib.sh"
trap stop_netns EXIT

bridge_netns

"$PY" "$top/compat-tests/guest/make-pattern-disk.py" write "$tmp/disk.raw" 16384
"$PY" "$top/compat-tests/guest/make-pattern-disk.py" write "$tmp/base.raw" 16384
qemu-img convert -O qcow2 "$tmp/base.raw" "$tmp/disk.qcow2"

start_private_bus "$tmp"
start_oxvirtd_in_netns

# domxml NAME UUID VCPUS CMDLINE DEVICES: a test-guest domain, its serial
# port in $tmp/serial-NAME.log
domxml() {
    cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <uuid>$2</uuid>
  <memory unit='KiB'>131072</memory>
  <vcpu>$3</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
    <cmdline>$4</cmdline></os>
  <devices>
    $5
    <serial type='file'><source path='$tmp/serial-$1.log'/></serial>
  </devices>
</domain>
XML
}
# devxml NAME UUID [EXTRA-DEVICES]
devxml() {
    domxml "$1" "$2" 1 "oxtest.checks=pci,blk,net,balloon oxtest.devs=03:blk,04:blk,05:net,06:balloon oxtest.ip=10.0.2.15 oxtest.netsend=4 oxtest.balloonpages=16 oxtest.balloonwait=60000 oxtest.then=net-serve oxtest.netserve=120" \
        "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='$tmp/disk.raw'/><target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$tmp/disk.qcow2'/><target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>
    <interface type='bridge'><mac address='52:54:00:6f:78:05'/><source bridge='br0'/><model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>
    <memballoon model='virtio'><stats period='1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/></memballoon>
    ${3:-}"
}
devxml dev1 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b01 >"$tmp/dev1.xml"
devxml dev2 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b02 \
    "<interface type='bridge'><source bridge='nobr0'/><model type='virtio'/></interface>" >"$tmp/dev2.xml"
serial=$tmp/serial-dev1.log

timeout 120 virsh -c "$U" event --all --loop --timeout 90 >"$tmp/events" 2>&1 &
evpid=$!
sleep 0.5

expect dev-define 0 "Domain 'dev1' defined" -- define "$tmp/dev1.xml"
expect dev-start 0 "Domain 'dev1' started" -- start dev1
expect dev-domiflist 0 ' vnet0 +bridge +br0 +virtio +52:54:00:6f:78:05' -- domiflist dev1
expect dev-domblklist 0 " vdb +$tmp/disk.qcow2" -- domblklist dev1
if [ "$(taps)" = vnet0 ] && ip -n "$ns" link show vnet0 | grep -q 'master br0'; then
    pass "tap vnet0 made and on the bridge"
else
    fail "tap vnet0 made and on the bridge"
fi
wait_for "guest checks its devices" grep -q 'stats requested by the device' "$serial"
expect dev-domblkstat 0 '^vda wr_bytes 4096$' -- domblkstat dev1 vda
expect dev-domblkstat-flush 0 '^vda flush_operations 1$' -- domblkstat dev1 vda
expect dev-domblkstat-qcow2 0 '^vdb rd_req [1-9]' -- domblkstat dev1 vdb
expect dev-domblkstat-all 0 '^ wr_bytes 8192$' -- domblkstat dev1
expect dev-domblkstat-human 0 'number of bytes written: +4096' -- domblkstat dev1 vda --human
expect dev-domblkstat-unknown 1 'invalid path: vdx' -- domblkstat dev1 vdx
expect dev-domifstat 0 '^vnet0 tx_packets [4-9]' -- domifstat dev1 vnet0
expect dev-domifstat-mac 0 '^52:54:00:6f:78:05 tx_bytes [1-9]' -- domifstat dev1 52:54:00:6f:78:05
expect dev-domstats-net 0 'net\.0\.name=vnet0' -- domstats dev1 --interface
expect dev-domstats-block 0 'block\.1\.path='"$tmp/disk.qcow2" -- domstats dev1 --block
expect dev-domstats-all 0 'block\.0\.wr\.bytes=4096' -- domstats
expect dev-setmem 0 '' -- setmem dev1 131008 --live
used() { virsh -c "$U" dominfo dev1 | grep -Eq 'Used memory: +131008 KiB'; }
wait_for "dominfo shows the ballooned memory" used && pass "dominfo Used memory follows the balloon"
expect dev-dommemstat 0 '^actual 131008$' -- dommemstat dev1
expect dev-setmem-too-big 1 'cannot set memory higher than max memory' -- setmem dev1 262144 --live
wait_for "guest serves the network" grep -q 'net-serve for' "$serial"
arp() {
    ip netns exec "$ns" "$PY" -c "import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.sendto(b'x',('10.0.2.15',9)); time.sleep(0.2)"
    grep -q '^10.0.2.15 .*52:54:00:6f:78:05' <(ip netns exec "$ns" cat /proc/net/arp)
}
wait_for "guest answers ARP" arp
expect dev-domifaddr-arp 0 ' vnet0 +52:54:00:6f:78:05 +ipv4 +10.0.2.15/0' -- domifaddr dev1 --source arp
# The lease source (the default) knows guests on virtual networks only.
expect dev-domifaddr-lease 0 '^ Name +MAC address +Protocol +Address$' -- domifaddr dev1
if virsh -c "$U" domifaddr dev1 2>&1 | grep -q vnet0; then fail dev-domifaddr-lease-empty; else pass dev-domifaddr-lease-empty; fi
# The NIC's link (domif-setlink): down, the guest gets and sends nothing;
# up again, it answers again. The definition keeps its link.
udp_echo() {
    ip netns exec "$ns" "$PY" -c "import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(6):
    s.sendto(b'link', ('10.0.2.15', 7))
    try:
        s.recvfrom(64)
        raise SystemExit(0)
    except socket.timeout:
        pass
raise SystemExit(1)"
}
udp_echo && pass dev-udp-echo || fail dev-udp-echo
expect dev-setlink-down 0 "Device updated successfully" -- domif-setlink dev1 vnet0 down
expect dev-getlink-down 0 "vnet0 down" -- domif-getlink dev1 vnet0
expect dev-link-live-xml 0 "<link state='down'/>" -- dumpxml dev1
if virsh -c "$U" dumpxml --inactive dev1 | grep -q "<link state="; then fail dev-link-config-untouched; else pass dev-link-config-untouched; fi
udp_echo && fail dev-link-down-no-echo || pass dev-link-down-no-echo
expect dev-setlink-up 0 "Device updated successfully" -- domif-setlink dev1 52:54:00:6f:78:05 up
expect dev-getlink-up 0 "vnet0 up" -- domif-getlink dev1 vnet0
udp_echo && pass dev-link-up-echo || fail dev-link-up-echo
sed "s|<model type='virtio'/>|<model type='e1000'/>|" <(virsh -c "$U" dumpxml dev1 | sed -n '/<interface/,/<\/interface>/p') >"$tmp/nic-e1000.xml"
expect dev-update-nic-model-refused 1 "Operation not supported: live update of device 'net' is not supported" -- \
    update-device dev1 "$tmp/nic-e1000.xml"
expect dev-reboot 0 "Domain 'dev1' is being rebooted" -- reboot dev1
wait_for "reboot event" grep -q "event 'reboot' for domain 'dev1'" "$tmp/events" && pass "event: reboot"
[ "$(taps)" = vnet0 ] && pass "the tap stays across the reboot" || fail "the tap stays across the reboot"
expect dev-destroy 0 "Domain 'dev1' destroyed" -- destroy dev1
[ -z "$(taps)" ] && pass "no tap after destroy" || fail "no tap after destroy: $(taps)"
expect dev-failed-start 1 "Cannot get interface MTU on 'nobr0': No such device" -- create "$tmp/dev2.xml"
[ -z "$(taps)" ] && pass "no tap after a failed start" || fail "no tap after a failed start: $(taps)"

# mqxml NAME UUID TYPE-AND-SOURCE QUEUES
mqxml() {
    domxml "$1" "$2" 2 "oxtest.checks=pci,net oxtest.devs=05:net oxtest.ip=10.0.2.15 oxtest.netsend=4 oxtest.netrecv=4 oxtest.netping=3 oxtest.netudp=32 oxtest.nettime=30000 oxtest.then=net-serve oxtest.netserve=120" \
        "<interface $3><mac address='52:54:00:6f:78:07'/><model type='virtio'/><driver queues='$4'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>"
}
mqxml dev3 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b03 "type='bridge'><source bridge='br0'/" 2 >"$tmp/dev3.xml"
mqxml dev4 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b04 "type='ethernet'" 3 >"$tmp/dev4.xml"
mqxml dev5 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b05 "type='bridge'><source bridge='br0'/" 200 >"$tmp/dev5.xml"
serial3=$tmp/serial-dev3.log
# net-host.py on the bridge: sends 4 test frames, collects the guest's 8
# (4 per pair), sends 32 UDP flows to be echoed and pings; exit 0 when
# all came back.
nethost() {
    : >"$tmp/nethost-$1.out"
    ip netns exec "$ns" "$PY" "$top/compat-tests/guest/testos/net-host.py" "$2" br0 10.0.2.15 4 8 32 "$1" \
        >"$tmp/nethost-$1.out" 2>&1 &
    nhpid=$!
    wait_for "net-host.py listens" grep -q listening "$tmp/nethost-$1.out"
}
mq_passes() {
    local n=$1 what=$2
    for c in mq tx rx udp ping pair1; do
        if [ "$(grep -c "^PASS net-05-$c" "$serial3")" -ge "$n" ]; then
            pass "$what: guest PASS net-05-$c"
        else
            fail "$what: guest PASS net-05-$c"
            grep -E '^(FAIL|INFO net)' "$serial3" | sed 's/^/       | /'
        fi
    done
}
: >"$serial3"
nethost 1 "$serial3"
expect dev-mq-define 0 "Domain 'dev3' defined" -- define "$tmp/dev3.xml"
expect dev-mq-start 0 "Domain 'dev3' started" -- start dev3
expect dev-mq-live-xml 0 "<driver queues='2'/>" -- dumpxml dev3
t3=$(taps)
expect dev-mq-domiflist 0 " $t3 +bridge +br0 +virtio +52:54:00:6f:78:07" -- domiflist dev3
l3=$(ip -n "$ns" -d link show "$t3" 2>&1)
if [ -n "$t3" ] && grep -q 'master br0' <<<"$l3" && grep -q 'tun type tap.*multi_queue' <<<"$l3"; then
    pass "tap $t3 is a multi-queue tap on the bridge"
else
    fail "tap $t3 is a multi-queue tap on the bridge: $l3"
fi
wait_for "guest serves the network (queues=2)" grep -q 'net-serve for' "$serial3"
if wait "$nhpid"; then pass "net-host.py: frames, UDP flows and pings both ways"; else
    fail "net-host.py: frames, UDP flows and pings both ways"
    sed 's/^/       | /' "$tmp/nethost-1.out"
fi
grep -q 'OXNET q1 tx 4' "$tmp/nethost-1.out" && pass "host got pair 1's frames" || fail "host got pair 1's frames"
mq_passes 1 "queues=2"
nethost 2 "$serial3"
expect dev-mq-reboot 0 "Domain 'dev3' is being rebooted" -- reboot dev3
wait_for "guest uses both pairs after the reboot" \
    bash -c "[ \$(grep -c '^PASS net-05-pair1' '$serial3') -ge 2 ]"
wait "$nhpid" && pass "net-host.py after the reboot" || fail "net-host.py after the reboot"
mq_passes 2 "queues=2 after a reboot"
expect dev-mq-destroy 0 "Domain 'dev3' destroyed" -- destroy dev3
[ -z "$(taps)" ] && pass "no tap after destroy (queues=2)" || fail "no tap after destroy (queues=2): $(taps)"
expect dev-mq-ethernet 0 "Domain 'dev4' created" -- create "$tmp/dev4.xml"
if ip -n "$ns" -d link show | grep -q 'tun type tap.*multi_queue'; then
    pass "type='ethernet' queues=3: a multi-queue tap"
else
    fail "type='ethernet' queues=3: a multi-queue tap"
fi
expect dev-mq-ethernet-xml 0 "<driver queues='3'/>" -- dumpxml dev4
expect dev-mq-ethernet-destroy 0 "Domain 'dev4' destroyed" -- destroy dev4
[ -z "$(taps)" ] && pass "no tap after destroy (ethernet)" || fail "no tap after destroy (ethernet): $(taps)"
expect dev-mq-too-many 1 "interface queues '200' is not supported" -- create "$tmp/dev5.xml"
[ -z "$(taps)" ] && pass "no tap after a refused start" || fail "no tap after a refused start: $(taps)"

# An e1000 NIC, as virt-install --osinfo generic writes it: the guest's e1000
# check exchanges frames and pings with net-host.py over the bridge, then
# serves the network; virtio-only <driver> settings are dropped as libvirt
# drops them for other models, iommu is refused with libvirt's message.
# e1kxml NAME UUID MODEL DRIVER-ELEMENT
e1kxml() {
    domxml "$1" "$2" 1 "oxtest.checks=pci,e1000 oxtest.ip=10.0.2.15 oxtest.netsend=4 oxtest.netrecv=4 oxtest.netping=3 oxtest.nettime=30000 oxtest.then=net-serve oxtest.netserve=120" \
        "<interface type='bridge'><mac address='52:54:00:6f:78:09'/><source bridge='br0'/><model type='$3'/>$4
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>"
}
e1kxml dev6 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b06 e1000 "<driver name='vhost' queues='4'/>" >"$tmp/dev6.xml"
e1kxml dev7 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b07 e1000 "<driver iommu='on'/>" >"$tmp/dev7.xml"
e1kxml dev8 6f1c0b52-7a4e-4c1b-9d55-0d2f4b7c1b08 e1000e "" >"$tmp/dev8.xml"
serial6=$tmp/serial-dev6.log
: >"$serial6"
: >"$tmp/nethost-e1000.out"
ip netns exec "$ns" "$PY" "$top/compat-tests/guest/testos/net-host.py" "$serial6" br0 10.0.2.15 4 4 \
    >"$tmp/nethost-e1000.out" 2>&1 &
nhpid=$!
wait_for "net-host.py listens" grep -q listening "$tmp/nethost-e1000.out"
expect dev-e1000-define 0 "Domain 'dev6' defined" -- define "$tmp/dev6.xml"
if virsh -c "$U" dumpxml dev6 | grep -q '<driver'; then
    fail "e1000: virtio-net's <driver> settings dropped"
else
    pass "e1000: virtio-net's <driver> settings dropped"
fi
expect dev-e1000-start 0 "Domain 'dev6' started" -- start dev6
t6=$(taps)
expect dev-e1000-domiflist 0 " $t6 +bridge +br0 +e1000 +52:54:00:6f:78:09" -- domiflist dev6
wait_for "e1000 guest serves the network" grep -q 'net-serve for' "$serial6"
if wait "$nhpid"; then pass "e1000: frames and pings both ways"; else
    fail "e1000: frames and pings both ways"
    sed 's/^/       | /' "$tmp/nethost-e1000.out"
fi
for c in pci reset eeprom link io intx tx rx ping irq; do
    if grep -q "^PASS e1000-05-$c\$" "$serial6"; then pass "e1000: guest PASS e1000-05-$c"; else
        fail "e1000: guest PASS e1000-05-$c"
        grep -E '^(FAIL|INFO e1000)' "$serial6" | sed 's/^/       | /'
    fi
done
expect dev-e1000-domifstat 0 "^$t6 rx_packets [1-9]" -- domifstat dev6 "$t6"
# The e1000's link: its cable pulled, nothing gets through; plugged in again,
# the guest answers again.
udp_echo && pass dev-e1000-udp-echo || fail dev-e1000-udp-echo
expect dev-e1000-setlink-down 0 "Device updated successfully" -- domif-setlink dev6 "$t6" down
expect dev-e1000-getlink-down 0 "$t6 down" -- domif-getlink dev6 "$t6"
udp_echo && fail dev-e1000-link-down-no-echo || pass dev-e1000-link-down-no-echo
expect dev-e1000-setlink-up 0 "Device updated successfully" -- domif-setlink dev6 "$t6" up
udp_echo && pass dev-e1000-link-up-echo || fail dev-e1000-link-up-echo
expect dev-e1000-destroy 0 "Domain 'dev6' destroyed" -- destroy dev6
[ -z "$(taps)" ] && pass "no tap after destroy (e1000)" || fail "no tap after destroy (e1000): $(taps)"
expect dev-e1000-iommu 1 "unsupported configuration: iommu driver option is only supported for virtio devices" \
    -- define "$tmp/dev7.xml"
expect dev-e1000e 1 "unsupported configuration: interface model 'e1000e' is not supported" -- create "$tmp/dev8.xml"
[ -z "$(taps)" ] && pass "no tap after a refused start (e1000e)" || fail "no tap after a refused start (e1000e): $(taps)"

kill -INT $evpid 2>/dev/null
wait $evpid 2>/dev/null
if grep -q "event 'balloon-change' for domain 'dev1': 131008KiB" "$tmp/events"; then
    pass "event: balloon-change"
else
    fail "event: balloon-change"
    sed 's/^/       | /' "$tmp/events"
fi
if [ $fails -ne 0 ]; then
    echo "--- oxvirtd log (tail)"
    tail -20 "$tmp/oxvirtd.log"
fi
[ $fails -eq 0 ]
