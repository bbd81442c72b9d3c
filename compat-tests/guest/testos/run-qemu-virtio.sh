# PCI/virtio cases of run-qemu.sh (sourced by it: uses run, tmp, here, qextra, wrap).
# Devices sit at fixed slots of microvm's PCIe host (bus 0) with disable-legacy=on, so
# they show the modern device ids 0x1040 + type, as oxvirt-vmm's devices do.
pat="$here/../make-pattern-disk.py"
vd="disable-legacy=on"
sectors=16384          # 8 MiB disks
wsec=64                # oxtest.blkwrite: sectors 64..71 are written
zsec=128               # oxtest.blkzero: sectors 128..135 are zeroed
mid=$((sectors / 2))

# raw disk with the pattern; a read-only copy; a qcow2 whose backing file lacks some
# sectors (0xEE there) that the top layer supplies (512-byte clusters, so the guest's
# 8-sector reads at 0 and at the middle span both layers)
python3 "$pat" write "$tmp/disk.raw" $sectors
cp "$tmp/disk.raw" "$tmp/ro.raw"
python3 "$pat" write "$tmp/base.raw" $sectors --garbage 4:2 --garbage $((mid + 4)):4
qemu-img create -q -f qcow2 -o cluster_size=512 -b "$tmp/base.raw" -F raw "$tmp/top.qcow2"
python3 "$pat" sectors 4 2 >"$tmp/s1.bin"
python3 "$pat" sectors $((mid + 4)) 4 >"$tmp/s2.bin"
qemu-io -f qcow2 -c "write -s $tmp/s1.bin $((4 * 512)) 1024" \
	-c "write -s $tmp/s2.bin $(((mid + 4) * 512)) 2048" "$tmp/top.qcow2" >/dev/null
base_sum=$(sha256sum <"$tmp/base.raw")
python3 "$pat" write "$tmp/expect.raw" $sectors --written $wsec:8 --zero $zsec:8

blkdevs="-drive file=$tmp/disk.raw,format=raw,if=none,id=d3
	-device virtio-blk-pci,drive=d3,addr=0x3,serial=OXDISK3,$vd
	-drive file=$tmp/top.qcow2,format=qcow2,if=none,id=d4
	-device virtio-blk-pci,drive=d4,addr=0x4,serial=OXQCOW4,$vd
	-drive file=$tmp/ro.raw,format=raw,if=none,id=d5,readonly=on
	-device virtio-blk-pci,drive=d5,addr=0x5,serial=OXRO5,$vd
	-device virtio-rng-pci,addr=0x6,$vd"
# shellcheck disable=SC2206
qextra=($blkdevs)
blk_ok="$done_ok|^PASS pci-03-blk|^PASS pci-04-blk|^PASS pci-05-blk|^PASS pci-06-rng|^PASS blk-03-write|^PASS blk-03-zeroes|^PASS blk-04-read|^PASS blk-04-write|^PASS blk-04-zeroes|^PASS blk-05-ro|^PASS rng-06"
run microvm-virtio-blk microvm 2 \
	"oxtest.checks=pci,blk,rng oxtest.devs=03:blk,04:blk,05:blk:ro,06:rng oxtest.blkwrite=$wsec oxtest.blkzero=$zsec oxtest.then=poweroff" \
	"$blk_ok" "$guest_off"
# the host's view after the guest's writes
host_ok=1
python3 "$pat" verify "$tmp/disk.raw" --written $wsec:8 --zero $zsec:8 >/dev/null || host_ok=0
python3 "$pat" verify "$tmp/ro.raw" >/dev/null || host_ok=0
qemu-img check -q "$tmp/top.qcow2" || host_ok=0
qemu-img compare -q -f qcow2 -F raw "$tmp/top.qcow2" "$tmp/expect.raw" || host_ok=0
[ "$(sha256sum <"$tmp/base.raw")" = "$base_sum" ] || host_ok=0
if [ $host_ok = 1 ]; then
	pass=$((pass + 1)); echo "ok   microvm-virtio-blk-host           raw, read-only and qcow2 (qemu-img compare) files as expected"
else
	fail=$((fail + 1)); echo "FAIL microvm-virtio-blk-host: disk files differ from the expected pattern"
fi

# q35: SeaBIOS assigns the BARs, config space through MCFG
qextra=(-drive "file=$tmp/ro.raw,format=raw,if=none,id=d3,readonly=on"
	-device "virtio-blk-pci,drive=d3,addr=0x3,$vd" -device "virtio-rng-pci,addr=0x4,$vd")
run q35-virtio-blk q35 1 \
	"oxtest.checks=pci,blk,rng oxtest.devs=03:blk:ro,04:rng oxtest.then=poweroff" \
	"$done_ok|MCFG|^PASS pci-03-blk|^PASS blk-03-ro|^PASS rng-04" "$guest_off"

# MSI-X (table in QEMU's BAR 1) with EVENT_IDX and indirect descriptors, then the
# throughput mode briefly (ring 3), on a fresh pattern disk
python3 "$pat" write "$tmp/msix.raw" $sectors
qextra=(-drive "file=$tmp/msix.raw,format=raw,if=none,id=d3"
	-device "virtio-blk-pci,drive=d3,addr=0x3,$vd")
run microvm-virtio-msix microvm 1 \
	"oxtest.checks=pci,blk,blkbench oxtest.devs=03:blk oxtest.irq=msix oxtest.eventidx=1 oxtest.indirect=1 oxtest.blkspan=4 oxtest.blkbench=read:64k:32:100,write:4k:1:100 oxtest.then=poweroff" \
	"$done_ok|^PASS blk-03-msix|ring features: event-idx indirect|^PASS blkbench-03" "$guest_off"

# console echo through a unix socket + balloon statistics through QMP
python3 - "$tmp/con.sock" >"$tmp/echo.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
for _ in range(500):
    try:
        s.connect(sys.argv[1]); break
    except OSError:
        time.sleep(0.02)
while True:
    d = s.recv(4096)
    if not d: break
    print("echo", repr(d), flush=True)
    s.sendall(d)
PY
echo_pid=$!
qextra=(-chardev "socket,id=c0,path=$tmp/con.sock,server=on,wait=on"
	-device "virtio-serial-pci,addr=0x6,$vd" -device virtconsole,chardev=c0
	-device "virtio-balloon-pci,id=bal0,addr=0x7,$vd")
run microvm-virtio-console-balloon microvm 2 \
	"oxtest.checks=pci,console,balloon oxtest.devs=06:console,07:balloon oxtest.console=echo oxtest.balloonpages=16" \
	"$done_ok|^PASS console-06-echo|^PASS balloon-07-stats|^PASS balloon-07-inflate" \
	'"stat-total-memory": [1-9]|"actual": 268369920' \
	"wait:^INFO balloon-07 stats queued" \
	'qmp:{"execute":"qom-set","arguments":{"path":"/machine/peripheral/bal0","property":"guest-stats-polling-interval","value":1}}' \
	'qmp:{"execute":"balloon","arguments":{"value":268369920}}' \
	"wait:^(PASS|FAIL) balloon-07-stats" "sleep:0.3" \
	'qmp:{"execute":"qom-get","arguments":{"path":"/machine/peripheral/bal0","property":"guest-stats"}}' \
	"wait:^DONE" 'qmp:{"execute":"query-balloon"}' "cmd:quit"
kill "$echo_pid" 2>/dev/null || true
wait "$echo_pid" 2>/dev/null || true
grep -h '^RESP.*guest-stats\|stat-total' "$tmp/microvm-virtio-console-balloon.events" 2>/dev/null |
	sed 's/^/    balloon stats seen by QEMU: /' | cut -c1-200 || true

# tap_case NAME TAP-FLAGS HOST-ARGS CMDLINE EXPECT QEMU-ARGS...: a case whose NIC sits on a
# tap oxtap0 in a private network namespace (the host side 10.0.2.2/24, IPv6 off; nothing
# leaves it, it is deleted afterwards), QEMU run in it, and `net-host.py HOST-ARGS` there
# as the host side: test frames both ways, UDP flows, pings during the check and during
# net-serve; a NAME-host line says what came back
tap_case() {
	local name=$1 tapflags=$2 hostargs=$3 cmdline=$4 expect=$5
	shift 5
	if [ "$(id -u)" != 0 ] || ! ip netns add "oxtest$$" 2>/dev/null; then
		echo "skip $name (needs root and ip netns)"
		return
	fi
	netns="oxtest$$"
	ip -n "$netns" link set lo up
	ip netns exec "$netns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	# shellcheck disable=SC2086
	ip -n "$netns" tuntap add dev oxtap0 mode tap $tapflags
	ip -n "$netns" link set oxtap0 up
	ip -n "$netns" addr add 10.0.2.2/24 dev oxtap0
	local out="$tmp/$name-host.out"
	: >"$tmp/$name.log"
	# shellcheck disable=SC2086
	ip netns exec "$netns" python3 "$here/net-host.py" "$tmp/$name.log" oxtap0 10.0.2.15 $hostargs \
		>"$out" 2>&1 &
	local host_pid=$!
	wrap=(ip netns exec "$netns")
	qextra=("$@")
	run "$name" microvm 2 "$cmdline" "$expect" "$guest_off"
	wrap=()
	if wait "$host_pid"; then
		pass=$((pass + 1))
		printf 'ok   %-33s %s echo replies, %s, %s\n' "$name-host" "$(grep -c 'echo reply' "$out")" \
			"$(grep -o 'received [0-9]* test frames' "$out")" "$(grep -o 'udp echo [0-9]* of [0-9]*' "$out")"
	else
		fail=$((fail + 1)); echo "FAIL $name-host"; sed 's/^/    | /' "$out"
	fi
	ip netns del "$netns"
	netns=""
}
tap="-netdev tap,id=n0,ifname=oxtap0,script=no,downscript=no"
serve="oxtest.ip=10.0.2.15 oxtest.netsend=4 oxtest.netrecv=4 oxtest.netping=3 oxtest.nettime=15000 oxtest.then=net-serve oxtest.netserve=3"

# net: 4 test frames each way, pings during the check and again during net-serve
# shellcheck disable=SC2086
tap_case microvm-virtio-net "" "4 4" "oxtest.checks=pci,net oxtest.devs=08:net $serve" \
	"$done_ok|^PASS net-08-tx|^PASS net-08-rx|^PASS net-08-ping|^INFO net-serve done" \
	$tap -device "virtio-net-pci,netdev=n0,addr=0x8,mac=52:54:00:6f:78:08,$vd"

# net with two queue pairs (mq=on, a multi-queue tap): the guest enables both through
# the control queue; 32 UDP flows spread over the tap's queues and are echoed on the
# pair they came in on; the guest's test frames leave on both pairs
# shellcheck disable=SC2086
tap_case microvm-virtio-net-mq multi_queue "4 8 32" \
	"oxtest.checks=pci,net oxtest.devs=08:net oxtest.netudp=32 $serve" \
	"$done_ok|^PASS net-08-mq|^PASS net-08-tx|^PASS net-08-rx|^PASS net-08-udp|^PASS net-08-pair1|^PASS net-08-ping|^INFO net-serve done" \
	$tap,queues=2 -device "virtio-net-pci,netdev=n0,addr=0x8,mac=52:54:00:6f:78:08,mq=on,vectors=6,$vd"

# e1000: QEMU's 82540EM, the guest's e1000 check instead of the virtio-net one (microvm
# routes slot 8's INTA to GSI 16; nobody assigns BAR 1 there, so the I/O window is not
# checked)
# shellcheck disable=SC2086
tap_case microvm-e1000 "" "4 4" "oxtest.checks=pci,e1000 oxtest.intxgsi=16 $serve" \
	"$done_ok|^PASS e1000-08-eeprom|^PASS e1000-08-link|^PASS e1000-08-intx|^PASS e1000-08-tx|^PASS e1000-08-rx|^PASS e1000-08-ping|^PASS e1000-08-irq|^INFO net-serve done" \
	$tap -device "e1000,netdev=n0,addr=0x8,mac=52:54:00:6f:78:08,romfile="

# vsock: no /dev/vhost-vsock here, so QEMU's vhost-user-vsock-pci talks to vsock-host.py,
# a small vhost-user backend that bridges guest streams to CID 2 port P onto the unix
# socket <prefix>_P, where an echo server listens (guest memory must be shared: memfd)
if "$QEMU" -device help 2>/dev/null | grep -q '"vhost-user-vsock-pci"'; then
	python3 - "$tmp/vsock.sock_1234" >"$tmp/uecho.out" 2>&1 <<'PY' &
import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(4)
def serve(c):
    while d := c.recv(4096):
        print("echo", repr(d), flush=True)
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
	uecho_pid=$!
	python3 "$here/vsock-host.py" "$tmp/vhost-vsock.sock" 3 "$tmp/vsock.sock" >"$tmp/vsock-host.out" 2>&1 &
	vhost_pid=$!
	for _ in $(seq 100); do [ -S "$tmp/vhost-vsock.sock" ] && [ -S "$tmp/vsock.sock_1234" ] && break; sleep 0.05; done
	qextra=(-machine memory-backend=mem -object memory-backend-memfd,id=mem,size=256M,share=on
		-chardev "socket,id=vs,path=$tmp/vhost-vsock.sock"
		-device "vhost-user-vsock-pci,chardev=vs,addr=0x9,$vd")
	run microvm-virtio-vsock microvm 2 \
		"oxtest.checks=pci,vsock oxtest.devs=09:vsock oxtest.vsockport=1234 oxtest.then=poweroff" \
		"$done_ok|^PASS pci-09-vsock|guest cid 3|^PASS vsock-09-echo" "$guest_off"
	kill "$uecho_pid" "$vhost_pid" 2>/dev/null || true
	wait "$uecho_pid" "$vhost_pid" 2>/dev/null || true
	grep -q "echo b'OXVSOCK ping" "$tmp/uecho.out" || { fail=$((fail + 1)); echo "FAIL microvm-virtio-vsock: nothing reached the host's unix socket"; }
else
	echo "skip microvm-virtio-vsock (QEMU lacks vhost-user-vsock-pci)"
fi

# wrong expectations must be caught
qextra=(-drive "file=$tmp/disk.raw,format=raw,if=none,id=d3"
	-device "virtio-blk-pci,drive=d3,addr=0x3,$vd")
ALLOW_FAIL=1 run microvm-virtio-negative microvm 1 \
	"oxtest.checks=pci,blk,rng oxtest.devs=03:blk:ro,04:net,05:zz oxtest.blkwrite=100000 oxtest.then=poweroff" \
	"^FAIL pci-04-net: no device at 00:04.0|^FAIL pci-05-virtio: bad oxtest.devs item|^FAIL blk-03-id: VIRTIO_BLK_F_RO not offered|^FAIL blk-03-write: oxtest.blkwrite=100000 beyond|^FAIL rng: no virtio-rng" \
	"$guest_off"
qextra=()
