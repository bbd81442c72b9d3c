#!/bin/bash
# Virtual networks with the real clients: virsh net-* (and libvirt's
# errors for bad input), a guest on the `default` NAT network getting a
# DHCP lease from its dnsmasq and reaching an "outside" host through the
# masquerade, net-dhcp-leases and domifaddr --source lease, a daemon
# crash and a network restart with the guest staying attached, net-update,
# virt-install --network, and nothing left on the host afterwards.
#
# Everything runs in a network namespace of its own (bridges, dnsmasq and
# firewall tables live there), with a second namespace standing in for
# the outside world; no traffic leaves them. Expected texts are what
# libvirt 9.0 prints for the same commands.
#
# usage: compat-tests/network/run.sh     (OXVIRTD=path to override the daemon)
# needs: root, /dev/kvm, virsh, virt-install, dnsmasq, nft, ip, python3,
#        xmllint, libvirt's schemas, dbus-daemon, the test guest
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$top/target}
OXVIRTD=${OXVIRTD:-$target/debug/oxvirtd}
KERNEL=$top/compat-tests/guest/out/testos.elf
SCHEMAS=/usr/share/libvirt/schemas

if [ -z "${OX_NETWORK_NS:-}" ]; then
    exec env OX_NETWORK_NS=1 unshare --net --mount --propagation private "$0" "$@"
fi

. "$top/compat-tests/lib/private-run.sh"
skip_unless_present virsh virt-install /usr/sbin/dnsmasq nft ip python3 xmllint dbus-daemon \
    "$OXVIRTD" "$KERNEL" /dev/kvm "$SCHEMAS/network.rng"

tmp=$(mktemp -d /tmp/oxvirt-network-XXXXXX)
sock=$tmp/libvirt-sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
cleanup() {
    destroy_running_guests "$sock" "$U"
    for n in $(timeout 10 virsh -c "$U" net-list --name 2>/dev/null); do
        timeout 10 virsh -c "$U" net-destroy "$n" >/dev/null 2>&1
    done
    kill_pids_reverse
    kill_run_leftovers "$tmp"
    stop_pids_and_remove "$tmp"
}
trap cleanup EXIT

ip link set lo up
# The outside world: a namespace behind a veth pair, 10.99.0.2.
unshare --net sleep 100000 &
outside=$!
pids+=($outside)
sleep 0.2
ip link add vup type veth peer name vout
ip link set vout netns "$outside"
ip addr add 10.99.0.1/24 dev vup
ip link set vup up
nsenter -t "$outside" -n sh -c 'ip link set lo up; ip addr add 10.99.0.2/24 dev vout; ip link set vout up'

start_private_bus "$tmp"
start_oxvirtd

. "$top/compat-tests/rpc/lib.sh"
# wait_for FILE REGEX SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$2 not in $1 after $3 s; it ends with:"
    tail -5 "$1"
    return 1
}
# ping_ok ADDR: an ICMP echo answered (no ping binary needed).
ping_ok() {
    python3 - "$1" <<'PY'
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1.0)
for seq in range(5):
    body = b'oxvirt'
    h = struct.pack('!BBHHH', 8, 0, 0, os.getpid() & 0xffff, seq)
    s.sendto(struct.pack('!BBHHH', 8, 0, csum(h + body), os.getpid() & 0xffff, seq) + body, (sys.argv[1], 0))
    end = time.time() + 1
    while time.time() < end:
        try:
            d, a = s.recvfrom(2048)
        except socket.timeout:
            break
        if a[0] == sys.argv[1] and d[20] == 0:
            sys.exit(0)
sys.exit(1)
PY
}
# dnsmasq_of NAME: the pid of network NAME's dnsmasq (the brackets keep
# the pattern from matching a shell that carries it).
dnsmasq_of() { pgrep -f "[d]nsmasq --conf-file=$tmp/state/dnsmasq/$1.conf"; }
leftovers() { # nothing of the network on the host
    ! ip link show virbr0 >/dev/null 2>&1 &&
        ! nft list tables 2>/dev/null | grep -q oxvirt_ &&
        ! pgrep -f "conf-file=$tmp/" >/dev/null
}

# Every network event of the run, as `virsh net-event` prints them and
# as libvirt-dbus signals them.
# (virsh's loop ends with its connection: it is started again after
# each daemon restart.)
watch_net_events() {
    timeout 900 virsh -c "$U" net-event --event lifecycle --loop >>"$tmp/net-events" 2>&1 &
    pids+=($!)
}
watch_net_events
dbus-monitor --address "$(head -1 "$tmp/bus")" \
    "type='signal',interface='org.libvirt.Connect',member='NetworkEvent'" >"$tmp/dbus-events" 2>&1 &
pids+=($!)
sleep 0.3

echo "# bad input: libvirt's errors"
printf '<network><uuid>11111111-2222-3333-4444-555555555501</uuid></network>' >"$tmp/noname.xml"
printf '<network><name>a/b</name></network>' >"$tmp/slash.xml"
printf "<network><name>b1</name><forward mode='bogus'/></network>" >"$tmp/bogus.xml"
printf "<network><name>errip</name><ip address='192.168.300.1' netmask='255.255.255.0'/></network>" >"$tmp/badip.xml"
printf "<network><name>errmask</name><ip address='192.168.170.1' netmask='255.255.255.0' prefix='24'/></network>" >"$tmp/maskprefix.xml"
printf "<network><name>errv6</name><ip family='ipv6' address='fd00:190::1' netmask='255.255.255.0'/></network>" >"$tmp/v6mask.xml"
printf "<network><name>errr</name><ip address='192.168.170.1' netmask='255.255.255.0'><dhcp><range start='192.168.171.10' end='192.168.171.20'/></dhcp></ip></network>" >"$tmp/outside.xml"
printf "<network><name>errr</name><ip address='192.168.170.1' netmask='255.255.255.0'><dhcp><range start='192.168.170.100' end='192.168.170.10'/></dhcp></ip></network>" >"$tmp/reversed.xml"
printf '<network' >"$tmp/malformed.xml"
expect err-no-name 1 'error: missing name information' -- net-define "$tmp/noname.xml"
expect err-slash 1 'error: invalid char in name: /' -- net-define "$tmp/slash.xml"
expect err-bogus 1 "error: unsupported configuration: unknown forwarding type 'bogus'" -- net-define "$tmp/bogus.xml"
expect err-bad-ip 1 "error: XML error: Invalid address '192.168.300.1' in network 'errip'" -- net-define "$tmp/badip.xml"
expect err-mask-prefix 1 "error: unsupported configuration: Network 'errmask' IP address cannot have both a prefix and a netmask" -- net-define "$tmp/maskprefix.xml"
expect err-v6-mask 1 "error: unsupported configuration: netmask not allowed for IPv6 address 'fd00:190::1' in network 'errv6'" -- net-define "$tmp/v6mask.xml"
expect err-range-outside 1 'error: internal error: range 192.168.171.10 - 192.168.171.20 is not entirely within network 192.168.170.1/24' -- net-define "$tmp/outside.xml"
expect err-range-reversed 1 'error: internal error: range 192.168.170.100 - 192.168.170.10 is reversed ' -- net-define "$tmp/reversed.xml"
expect err-malformed 1 'error: \(network_definition\):' -- net-define "$tmp/malformed.xml"
expect err-start-missing 1 "error: Network not found: no network with matching name 'nosuchnet'" -- net-start nosuchnet
echo -e " Name   State   Autostart   Persistent\n----------------------------------------" >"$tmp/want"
exact net-list-empty 0 -- net-list --all

echo "# the default network"
expect define-default 0 '^Network default defined from /usr/share/libvirt/networks/default.xml$' -- \
    net-define /usr/share/libvirt/networks/default.xml
printf " Name      State      Autostart   Persistent\n----------------------------------------------\n default   inactive   no          yes" >"$tmp/want"
exact net-list-inactive 0 -- net-list --all
virsh -c "$U" net-dumpxml default >"$tmp/default.xml"
check dumpxml-schema xmllint --noout --relaxng "$SCHEMAS/network.rng" "$tmp/default.xml"
check dumpxml-filled grep -Eq "<bridge name='virbr0' stp='on' delay='0'/>" "$tmp/default.xml"
check dumpxml-mac grep -Eq "<mac address='52:54:00:" "$tmp/default.xml"
uuid=$(sed -n 's:.*<uuid>\(.*\)</uuid>.*:\1:p' "$tmp/default.xml")
printf "Name:           default\nUUID:           %s\nActive:         no\nPersistent:     yes\nAutostart:      no\nBridge:         virbr0" "$uuid" >"$tmp/want"
exact net-info-inactive 0 -- net-info default
printf "<network><name>dup</name><uuid>%s</uuid></network>" "$uuid" >"$tmp/dupuuid.xml"
expect err-dup-uuid 1 "error: operation failed: network 'default' is already defined with uuid $uuid" -- net-define "$tmp/dupuuid.xml"
printf "<network><name>default</name><uuid>11111111-2222-3333-4444-555555555509</uuid></network>" >"$tmp/dupname.xml"
expect err-dup-name 1 "error: operation failed: network 'default' already exists with uuid $uuid" -- net-define "$tmp/dupname.xml"
printf "<network><name>other</name><bridge name='virbr0'/></network>" >"$tmp/samebr.xml"
expect err-bridge-in-use 1 "error: internal error: bridge name 'virbr0' already in use." -- net-define "$tmp/samebr.xml"
expect err-destroy-inactive 1 "error: Requested operation is not valid: network 'default' is not active" -- net-destroy default
expect net-start 0 '^Network default started$' -- net-start default
expect err-start-active 1 'error: Requested operation is not valid: network is already active' -- net-start default
expect dumpxml-active-nat-ports 0 "<port start='1024' end='65535'/>" -- net-dumpxml default
check dumpxml-inactive-no-ports bash -c "! virsh -c '$U' net-dumpxml default --inactive | grep -q '<port'"
check bridge-up ip -4 addr show dev virbr0
check bridge-address bash -c "ip -4 -o addr show dev virbr0 | grep -q '192.168.122.1/24'"
check bridge-mac bash -c "ip link show virbr0 | grep -q \"\$(sed -n \"s/.*<mac address='\\(.*\\)'.*/\\1/p\" '$tmp/default.xml')\""
check dnsmasq-running pgrep -f "conf-file=$tmp/state/dnsmasq/default.conf"
check dnsmasq-conf-like-libvirt grep -qx 'dhcp-range=192.168.122.2,192.168.122.254,255.255.255.0' "$tmp/state/dnsmasq/default.conf"
check nft-table bash -c "nft list tables | grep -q 'oxvirt_.*$(echo "$uuid" | tr -d -)'"
check nft-masquerade bash -c "nft list ruleset | grep -q 'ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade'"
check ip-forward grep -qx 1 /proc/sys/net/ipv4/ip_forward
printf "<network><name>samesub</name><bridge name='virbr9'/><ip address='192.168.122.1' netmask='255.255.255.0'/></network>" >"$tmp/samesub.xml"
expect define-samesub 0 'Network samesub defined' -- net-define "$tmp/samesub.xml"
expect err-subnet-in-use 1 'error: internal error: Network is already in use by interface virbr0' -- net-start samesub
check samesub-nothing-left bash -c '! ip link show virbr9 2>/dev/null'
expect undefine-samesub 0 'Network samesub has been undefined' -- net-undefine samesub

echo "# a guest on the network: DHCP lease, NAT to the outside"
cat >"$tmp/guest.xml" <<XML
<domain type='kvm'><name>netguest</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
<cmdline>oxtest.checks=pci,net oxtest.ip=dhcp oxtest.hostname=oxguest oxtest.netsend=1 oxtest.netreach=10.99.0.2 oxtest.nettime=30000 oxtest.then=net-serve oxtest.netserve=600</cmdline></os>
<devices><serial type='file'><source path='$tmp/guest.log'/></serial>
<interface type='network'><source network='default'/><model type='virtio'/></interface></devices></domain>
XML
expect guest-define 0 'Domain .netguest. defined' -- define "$tmp/guest.xml"
expect guest-start 0 'Domain .netguest. started' -- start netguest
check guest-dhcp-lease wait_for "$tmp/guest.log" '^PASS net-[0-9a-f]+-dhcp' 60
check guest-reaches-outside-through-nat wait_for "$tmp/guest.log" '^PASS net-[0-9a-f]+-reach' 60
mac=$(virsh -c "$U" domiflist netguest | awk '/network/ {print $5}')
gip=$(sed -n 's/^INFO .* dhcp lease \([0-9.]*\)\/.*/\1/p' "$tmp/guest.log" | head -1)
check guest-has-mac test -n "$mac"
check guest-tap-on-bridge bash -c "ip -o link show master virbr0 | grep -q vnet"
expect dhcp-leases 0 "$mac +ipv4 +$gip/24 +oxguest +01:$mac" -- net-dhcp-leases default
expect dhcp-leases-mac 0 "$gip/24" -- net-dhcp-leases default --mac "$mac"
expect err-dhcp-leases-bad-mac 1 'error: invalid MAC address: zz:zz' -- net-dhcp-leases default --mac zz:zz
expect domifaddr-lease 0 "vnet[0-9]+ +$mac +ipv4 +$gip/24" -- domifaddr netguest --source lease
check guest-answers-ping ping_ok "$gip"
expect net-info-connections 0 "connections='1'" -- net-dumpxml default

echo "# host interfaces, read-only"
expect iface-list 0 "^ vup +active +$(cat /sys/class/net/vup/address 2>/dev/null || ip -o link show vup | sed 's/.*link.ether \([^ ]*\).*/\1/')" -- iface-list --all
check iface-list-no-taps bash -c "! virsh -c '$U' iface-list --all | grep -q vnet"
virsh -c "$U" iface-dumpxml virbr0 >"$tmp/virbr0-iface.xml" 2>&1
check iface-bridge-schema xmllint --noout --relaxng "$SCHEMAS/interface.rng" "$tmp/virbr0-iface.xml"
check iface-bridge-port grep -Eq "<interface type='ethernet' name='vnet[0-9]+'>" "$tmp/virbr0-iface.xml"
expect iface-dumpxml-veth 0 "<interface type='ethernet' name='vup'>" -- iface-dumpxml vup
expect err-iface-missing 1 "error: Interface not found: couldn't find interface named 'nosuch'" -- iface-dumpxml nosuch
printf "<interface type='ethernet' name='eth9'><start mode='none'/></interface>" >"$tmp/iface.xml"
expect err-iface-define 1 'error: this function is not supported by the connection driver: virInterfaceDefineXML' -- iface-define "$tmp/iface.xml"

echo "# the daemon dies; the network and the guest stay"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
start_oxvirtd
watch_net_events
expect after-crash-active 0 '^ default +active' -- net-list --all
expect after-crash-guest 0 '^running$' -- domstate netguest
check after-crash-ping ping_ok "$gip"
echo "# a network restart: the guest joins the new bridge"
expect destroy-in-use 0 'Network default destroyed' -- net-destroy default
check destroyed-bridge-gone bash -c '! ip link show virbr0 2>/dev/null'
expect restart 0 'Network default started' -- net-start default
check restarted-tap-back bash -c "ip -o link show master virbr0 | grep -q vnet"
check restarted-ping ping_ok "$gip"
echo "# dnsmasq killed: put back when the daemon starts"
pkill -f "conf-file=$tmp/state/dnsmasq/default.conf"
sleep 0.3
kill "$daemon"
wait "$daemon" 2>/dev/null
start_oxvirtd
watch_net_events
sleep 0.3
check dnsmasq-restarted pgrep -f "conf-file=$tmp/state/dnsmasq/default.conf"

echo "# net-update"
expect update-add-host 0 'Updated network default live state' -- net-update default add ip-dhcp-host \
    "<host mac='52:54:00:00:00:42' name='fixed' ip='192.168.122.42'/>" --live
check update-hostsfile grep -qx '52:54:00:00:00:42,192.168.122.42,fixed' "$tmp/state/dnsmasq/default.hostsfile"
expect update-live-xml 0 "<host mac='52:54:00:00:00:42' name='fixed' ip='192.168.122.42'/>" -- net-dumpxml default
check update-not-config bash -c "! virsh -c '$U' net-dumpxml default --inactive | grep -q fixed"
expect err-update-dup 1 "error: Requested operation is not valid: there is an existing dhcp host entry in network 'default' that matches \"<host mac='52:54:00:00:00:42' name='fixed' ip='192.168.122.42'/>\"" -- \
    net-update default add ip-dhcp-host "<host mac='52:54:00:00:00:42' name='fixed' ip='192.168.122.42'/>" --live
expect update-delete-host 0 'Updated network default live state' -- net-update default delete ip-dhcp-host "<host mac='52:54:00:00:00:42'/>" --live
expect err-update-delete-missing 1 "error: Requested operation is not valid: couldn't locate a matching dhcp host entry in network 'default'" -- \
    net-update default delete ip-dhcp-host "<host mac='52:54:00:00:00:43'/>" --live

echo "# virt-install puts guests on the default network"
if timeout 120 virt-install --connect "$U" --memory 64 --noautoconsole --name vi1 --import --disk none \
    --osinfo linux2022 --graphics none --boot "kernel=$KERNEL" --print-xml >"$tmp/vi.xml" 2>"$tmp/vi.err"; then
    check vi-default-network grep -q '<source network="default"/>' "$tmp/vi.xml"
else fail vi-default-network; sed 's/^/       | /' "$tmp/vi.err"; fi
check vi-network-default timeout 120 virt-install --connect "$U" --memory 64 --noautoconsole --name vi2 --import \
    --disk none --osinfo linux2022 --graphics none --network network=default --boot "kernel=$KERNEL"
expect vi-running 0 '^running$' -- domstate vi2
expect vi-iflist 0 'network +default +virtio' -- domiflist vi2
expect vi-destroy 0 'destroyed' -- destroy vi2

echo "# user-mode networking through passt"
# passt takes the host's default route and address for the guest, and
# answers pings through ping sockets.
ip route add default via 10.99.0.2
echo "0 2147483647" >/proc/sys/net/ipv4/ping_group_range
cat >"$tmp/user.xml" <<XML
<domain type='kvm'><name>userguest</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type><kernel>$KERNEL</kernel>
<cmdline>oxtest.checks=pci,net oxtest.ip=dhcp oxtest.netsend=0 oxtest.netreach=10.99.0.2 oxtest.nettime=60000 oxtest.then=net-serve oxtest.netserve=600</cmdline></os>
<devices><serial type='file'><source path='$tmp/user.log'/></serial>
<interface type='user'><backend type='passt'/><model type='virtio'/></interface></devices></domain>
XML
expect user-define 0 'Domain .userguest. defined' -- define "$tmp/user.xml"
expect user-start 0 'Domain .userguest. started' -- start userguest
check user-passt-running pgrep passt
check user-dhcp-from-passt wait_for "$tmp/user.log" '^PASS net-[0-9a-f]+-dhcp' 60
check user-reaches-host-side wait_for "$tmp/user.log" '^PASS net-[0-9a-f]+-reach' 60
expect user-iflist 0 ' +user +- +virtio ' -- domiflist userguest
expect user-destroy 0 'destroyed' -- destroy userguest
check user-passt-gone bash -c 'for i in $(seq 50); do pgrep passt >/dev/null || exit 0; sleep 0.1; done; exit 1'
expect user-undefine 0 'undefined' -- undefine userguest

echo "# a routed network with IPv4 and IPv6 ranges"
cat >"$tmp/r6.xml" <<'XML'
<network><name>r6</name><forward mode='route'/><bridge name='oxr6'/><mtu size='9000'/>
<ip address='192.168.160.1' prefix='24'><dhcp><range start='192.168.160.10' end='192.168.160.20'/><host mac='52:54:00:00:00:66' name='six' ip='192.168.160.66'/></dhcp></ip>
<ip family='ipv6' address='fd00:160::1' prefix='64'><dhcp><range start='fd00:160::100' end='fd00:160::1ff'/></dhcp></ip>
</network>
XML
expect r6-define 0 'Network r6 defined' -- net-define "$tmp/r6.xml"
expect r6-start 0 'Network r6 started' -- net-start r6
check r6-ipv6-address bash -c "ip -6 -o addr show dev oxr6 | grep -q 'fd00:160::1/64'"
check r6-mtu bash -c "ip link show oxr6 | grep -q 'mtu 9000'"
check r6-dnsmasq-ra grep -qx 'enable-ra' "$tmp/state/dnsmasq/r6.conf"
check r6-dnsmasq-v6-range grep -qx 'dhcp-range=fd00:160::100,fd00:160::1ff,64' "$tmp/state/dnsmasq/r6.conf"
check r6-static-host grep -qx '52:54:00:00:00:66,192.168.160.66,six' "$tmp/state/dnsmasq/r6.hostsfile"
check r6-no-masquerade bash -c "! nft list ruleset | grep -q '192.168.160.0/24 masquerade'"
check r6-routes-in bash -c "nft list ruleset | grep -q 'oifname \"oxr6\" ip daddr 192.168.160.0/24 accept'"
check r6-v6-forwarding grep -qx 1 /proc/sys/net/ipv6/conf/all/forwarding
old=$(dnsmasq_of r6)
expect r6-update-range 0 'Updated network r6 live state' -- net-update r6 add ip-dhcp-range \
    "<range start='192.168.160.100' end='192.168.160.120'/>" --live
check r6-range-served grep -qx 'dhcp-range=192.168.160.100,192.168.160.120,255.255.255.0' "$tmp/state/dnsmasq/r6.conf"
new=$(dnsmasq_of r6)
check r6-dnsmasq-restarted test -n "$new" -a "$new" != "$old"
expect r6-update-range-delete 0 'Updated network r6 live state' -- net-update r6 delete ip-dhcp-range \
    "<range start='192.168.160.100' end='192.168.160.120'/>" --live
expect err-r6-update-range-missing 1 "couldn't locate a matching dhcp range entry in network 'r6'" -- \
    net-update r6 delete ip-dhcp-range "<range start='192.168.160.100' end='192.168.160.120'/>" --live
expect r6-destroy 0 'Network r6 destroyed' -- net-destroy r6
check r6-gone bash -c '! ip link show oxr6 2>/dev/null'
expect r6-undefine 0 'Network r6 has been undefined' -- net-undefine r6

echo "# an open network: no firewall rules at all"
printf "<network><name>op</name><forward mode='open'/><bridge name='oxop0'/><ip address='192.168.161.1' netmask='255.255.255.0'/></network>" >"$tmp/open.xml"
expect open-create 0 'Network op created' -- net-create "$tmp/open.xml"
check open-no-table bash -c "! nft list tables | grep -q \"\$(virsh -c '$U' net-uuid op | tr -d '-' | head -c 32)\""
check open-dns-only bash -c "grep -q 'addn-hosts' '$tmp/state/dnsmasq/op.conf' && ! grep -q dhcp-range '$tmp/state/dnsmasq/op.conf'"
expect open-destroy 0 'Network op destroyed' -- net-destroy op

echo "# a crash, then the bridge is gone: the daemon undoes the rest"
printf "<network><name>gone</name><bridge name='oxgone0'/><forward/><ip address='192.168.162.1' netmask='255.255.255.0'><dhcp><range start='192.168.162.2' end='192.168.162.9'/></dhcp></ip></network>" >"$tmp/gone.xml"
expect gone-create 0 'Network gone created' -- net-create "$tmp/gone.xml"
kill -9 "$daemon"
wait "$daemon" 2>/dev/null
ip link del oxgone0
start_oxvirtd
watch_net_events
expect gone-forgotten 1 "Network not found: no network with matching name 'gone'" -- net-info gone
check gone-dnsmasq-stopped test -z "$(dnsmasq_of gone)"
check gone-no-table bash -c "! nft list ruleset | grep -q oxgone0"
check gone-no-state test ! -e "$tmp/run/network/gone.json"

echo "# a network on an existing host bridge"
printf "<network><name>hostbr</name><forward mode='bridge'/><bridge name='br-host'/></network>" >"$tmp/hostbr.xml"
expect hostbr-define 0 'Network hostbr defined' -- net-define "$tmp/hostbr.xml"
expect err-hostbr-missing 1 "error: Cannot get interface MTU on 'br-host': No such device" -- net-start hostbr
ip link add br-host type bridge && ip link set br-host up
expect hostbr-start 0 'Network hostbr started' -- net-start hostbr
expect hostbr-info 0 '^Bridge: +br-host$' -- net-info hostbr
expect hostbr-dumpxml 0 "^  <forward mode='bridge'/>\$" -- net-dumpxml hostbr
sed -e 's/netguest/brguest/' -e "s/network='default'/network='hostbr'/" -e "s|$tmp/guest.log|$tmp/brguest.log|" \
    -e 's/oxtest.ip=dhcp/oxtest.ip=10.77.0.5/' "$tmp/guest.xml" >"$tmp/brguest.xml"
expect hostbr-guest-define 0 'defined' -- define "$tmp/brguest.xml"
expect hostbr-guest-start 0 'started' -- start brguest
check hostbr-guest-tap bash -c "ip -o link show master br-host | grep -q vnet"
expect hostbr-guest-destroy 0 'destroyed' -- destroy brguest
expect hostbr-guest-undefine 0 'undefined' -- undefine brguest
expect hostbr-destroy 0 'Network hostbr destroyed' -- net-destroy hostbr
check hostbr-bridge-kept ip link show br-host
expect hostbr-undefine 0 'Network hostbr has been undefined' -- net-undefine hostbr

echo "# a transient isolated network"
printf "<network><name>iso</name><bridge name='oxiso0'/><ip address='192.168.150.1' netmask='255.255.255.0'><dhcp><range start='192.168.150.10' end='192.168.150.20'/></dhcp></ip></network>" >"$tmp/iso.xml"
expect create-transient 0 "^Network iso created from $tmp/iso.xml\$" -- net-create "$tmp/iso.xml"
expect transient-listed 0 '^ iso +active +no +no$' -- net-list --all
check isolated-no-route grep -qx 'dhcp-option=3' "$tmp/state/dnsmasq/iso.conf"
check isolated-rejects bash -c "nft list ruleset | grep -q 'iifname \"oxiso0\" reject'"
expect err-undefine-transient 1 "error: Requested operation is not valid: can't undefine transient network" -- net-undefine iso
expect err-autostart-transient 1 'error: Requested operation is not valid: cannot set autostart for transient network' -- net-autostart iso
expect destroy-transient 0 'Network iso destroyed' -- net-destroy iso
expect transient-gone 1 "Network not found: no network with matching name 'iso'" -- net-info iso
check transient-bridge-gone bash -c '! ip link show oxiso0 2>/dev/null'

echo "# tear down: nothing left"
expect guest-destroy 0 'destroyed' -- destroy netguest
expect net-destroy 0 'Network default destroyed' -- net-destroy default
check nothing-left leftovers
check no-state-file test ! -e "$tmp/run/network/default.json"
expect net-undefine 0 'Network default has been undefined' -- net-undefine default
check daemon-alive kill -0 "$daemon"

echo "# events: virsh net-event and the D-Bus NetworkEvent signal"
sleep 0.5
for ev in "default: Defined" "default: Started" "default: Stopped" "default: Undefined" "iso: Started" "iso: Stopped"; do
    check "net-event: $ev" grep -qF "event 'lifecycle' for network $ev" "$tmp/net-events"
done
check net-event-no-iso-defined bash -c "! grep -q 'network iso: Defined' '$tmp/net-events'"
for n in 0 1 2 3; do
    check "dbus-NetworkEvent-$n" bash -c "grep -A3 'member=NetworkEvent' '$tmp/dbus-events' | grep -q 'int32 $n'"
done

echo "network: $passes passed, $fails failed"
[ "$fails" = 0 ]
