#!/usr/bin/env bash
# Boot testos under QEMU on this machine's /dev/kvm.
#
#   run-qemu.sh boot [--q35] [--smp N] [--mem MIB] -- 'extra kernel command line'
#       one boot, serial console on stdout (QEMU exits on poweroff/reset: -no-reboot);
#       QEMU_EXTRA='-device virtio-rng-pci,addr=0x3,disable-legacy=on' adds devices
#   run-qemu.sh suite
#       the whole matrix: checks on 1, 2 and 4 CPUs, every final action, pause/resume
#       under the ticker, the power button through QMP, then the virtio cases; prints
#       one line per case.
#   run-qemu.sh virtio
#       only the PCI/virtio cases (blk raw/qcow2/read-only, rng, console echo, balloon
#       stats through QMP, net on a tap in a network namespace, vsock through a
#       vhost-user backend, q35, wrong expectations)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../out"
elf="$out/testos.elf"
QEMU=${QEMU:-qemu-system-x86_64}

make -s -C "$here"

qemu_cmd() {  # machine smp mem append [extra qemu args...]
	local machine=$1 smp=$2 mem=$3 append=$4
	shift 4
	local m
	if [ "$machine" = q35 ]; then
		m=(-M q35)
	else
		m=(-M microvm,acpi=on,pcie=on,rtc=on,isa-serial=on)
	fi
	echo "$QEMU" -enable-kvm "${m[@]}" -cpu host,-arch-capabilities -smp "$smp" -m "$mem" \
		-nodefaults -no-user-config -display none -serial stdio -no-reboot \
		-kernel "$elf" -append "$append" "$@"
}

# base kernel command line for a machine: what QEMU's platform is expected to satisfy
base_append() {  # machine smp mem
	local a="oxtest.cpus=$2 oxtest.mem=$3 oxtest.epoch=$(date +%s)"
	if [ "$1" = q35 ]; then
		# q35 is full ACPI (no HW_REDUCED, no GED): only the generic checks apply.
		a="$a oxtest.checks=e820,smp,rtc oxtest.pci=1"
	else
		# microvm's PVH start info carries an unsorted memory map with one empty entry.
		a="$a oxtest.checks=e820,acpi,smp,rtc oxtest.e820=lax"
	fi
	echo "$a"
}

if [ "${1:-}" = boot ]; then
	shift
	machine=microvm smp=2 mem=256
	while [ $# -gt 0 ]; do
		case $1 in
		--q35) machine=q35 ;;
		--smp) smp=$2; shift ;;
		--mem) mem=$2; shift ;;
		--) shift; break ;;
		*) break ;;
		esac
		shift
	done
	# shellcheck disable=SC2046
	# QEMU_EXTRA: more QEMU arguments (devices), split on white space
	# shellcheck disable=SC2086
	exec $(qemu_cmd $machine "$smp" "$mem" "" | sed 's/-append  *$//') \
		-append "$(base_append $machine "$smp" "$mem") $*" ${QEMU_EXTRA:-}
fi

mode=${1:-}
[ "$mode" = suite ] || [ "$mode" = virtio ] || { sed -n '2,14p' "$0"; exit 2; }

# QMP driver: connects, then runs steps: wait:REGEX (serial log), cmd:NAME, sleep:S;
# afterwards prints every QMP event until QEMU closes the socket.
qmp_py='
import json, re, socket, sys, time
sock, log, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX)
for _ in range(200):
    try:
        s.connect(sock); break
    except OSError:
        time.sleep(0.02)
f = s.makefile("rw")
def send(cmd):
    f.write((cmd if cmd.startswith("{") else json.dumps({"execute": cmd})) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "event" in m: print("EVENT", m["event"], json.dumps(m.get("data", {}))); continue
        return m
f.readline(); send("qmp_capabilities")
for st in steps:
    k, v = st.split(":", 1)
    if k == "sleep": time.sleep(float(v))
    elif k == "cmd": send(v)
    elif k == "qmp": print("RESP", json.dumps(send(v)))
    elif k == "wait":
        end = time.time() + 30
        while not re.search(v, open(log).read(), re.M):
            if time.time() > end: print("TIMEOUT waiting for", v); send("quit"); break
            time.sleep(0.02)
try:
    for line in f:
        m = json.loads(line)
        if "event" in m: print("EVENT", m["event"], json.dumps(m.get("data", {})))
except ConnectionError:
    pass
'

tmp=$(mktemp -d)
netns=""
cleanup() {
	[ -z "$netns" ] || ip netns del "$netns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0
qextra=()   # extra QEMU arguments of the next run
wrap=()     # command prefix of the next run (ip netns exec NS)

# run NAME MACHINE SMP APPEND-EXTRA EXPECT-REGEX(serial, all must match) EXPECT-EVENT(QMP
# events and replies, all must match) [QMP steps: wait:RE, cmd:NAME, qmp:JSON, sleep:S]
run() {
	local name=$1 machine=$2 smp=$3 extra=$4 expect=$5 event=$6
	shift 6
	local log="$tmp/$name.log" ev="$tmp/$name.events" sock="$tmp/$name.qmp"
	local append
	append="$(base_append "$machine" "$smp" 256) $extra"
	local t0 t1 rc=0
	: >"$log"
	t0=$(date +%s%N)
	# shellcheck disable=SC2046
	"${wrap[@]}" timeout 120 $(qemu_cmd "$machine" "$smp" 256 "" | sed 's/-append  *$//') \
		-append "$append" -qmp "unix:$sock,server=on,wait=on" "${qextra[@]}" \
		>"$log" 2>"$tmp/$name.err" &
	local pid=$!
	python3 -c "$qmp_py" "$sock" "$log" "$@" >"$ev" 2>&1 || true
	wait $pid || rc=$?
	t1=$(date +%s%N)
	local ms=$(((t1 - t0) / 1000000)) ok=1 why=""
	[ $rc -eq 0 ] || { ok=0; why="qemu exit $rc"; }
	local re
	IFS='|' read -ra res <<<"$expect"
	for re in "${res[@]}"; do
		grep -Eq "$re" "$log" || { ok=0; why="$why; no '$re' on serial"; }
	done
	if [ -z "${ALLOW_FAIL:-}" ] && grep -q '^FAIL' "$log"; then ok=0; why="$why; $(grep -m1 '^FAIL' "$log")"; fi
	if [ -n "$event" ]; then
		IFS='|' read -ra res <<<"$event"
		for re in "${res[@]}"; do
			grep -Eq "$re" "$ev" || { ok=0; why="$why; no '$re' from QMP"; }
		done
	fi
	if [ $ok = 1 ]; then
		pass=$((pass + 1))
		printf 'ok   %-22s %6d ms  %s\n' "$name" "$ms" "$(grep -m1 '^DONE' "$log" || true)"
	else
		fail=$((fail + 1))
		printf 'FAIL %-22s %6d ms  %s\n' "$name" "$ms" "${why#; }"
		sed 's/^/    | /' "$log" "$ev" "$tmp/$name.err" | tail -40
	fi
	[ -z "${KEEP_LOGS:-}" ] || cp "$log" "$ev" "$KEEP_LOGS/" 2>/dev/null || true
}

guest_off='"reason": "guest-shutdown"'
guest_reset='"reason": "guest-reset"'
done_ok='^DONE passed=[1-9][0-9]* failed=0'
if [ "$mode" = suite ]; then
for n in 1 2 4; do
	run "microvm-smp$n" microvm $n "oxtest.then=poweroff" "$done_ok|^PASS smp" "$guest_off"
done
run microvm-reset microvm 2 "oxtest.then=reset" "$done_ok" "$guest_reset"
run microvm-triple-fault microvm 1 "oxtest.checks=rtc oxtest.then=triple-fault" "$done_ok" "$guest_reset"
run microvm-powerbutton microvm 2 "oxtest.then=powerbutton" "$done_ok|^PASS powerbutton" \
	"$guest_off" "wait:^INFO waiting for power button" "cmd:system_powerdown"
run microvm-x2apic-button microvm 4 "oxtest.x2apic=1 oxtest.then=powerbutton" \
	"$done_ok|^PASS powerbutton|x2apic mode" "$guest_off" \
	"wait:^INFO waiting for power button" "cmd:system_powerdown"
run microvm-ticker microvm 1 "oxtest.checks=rtc oxtest.then=ticker" "$done_ok|^TICK 20$" "" \
	"wait:^TICK 5$" "cmd:stop" "sleep:1.5" "cmd:cont" "wait:^TICK 20$" "cmd:quit"
# ticks must be consecutive across the pause
log="$tmp/microvm-ticker.log"
if [ -f "$log" ] && ! grep '^TICK' "$log" | awk '{ if ($2 != NR) bad=1 } END { exit bad }'; then
	echo "FAIL microvm-ticker: TICK numbers not consecutive"; fail=$((fail + 1))
fi
# wrong expectations must be caught, each naming its sub-check
ALLOW_FAIL=1 run microvm-negative microvm 2 \
	"oxtest.cpus=3 oxtest.mem=512 oxtest.epoch=1000000000 oxtest.pci=1 oxtest.then=poweroff" \
	"^DONE passed=0 failed=4|^FAIL e820: usable RAM|^FAIL acpi: madt: 2 enabled CPUs, want 3; mcfg: missing|^FAIL smp: 1 APs up, want 2|^FAIL rtc: [0-9]+ s away" \
	"$guest_off"
if [ -z "${SKIP_Q35:-}" ]; then
	run q35-smp2 q35 2 "oxtest.then=poweroff" "$done_ok|^PASS smp" "$guest_off"
	run q35-i8042-reset q35 1 "oxtest.checks=rtc oxtest.then=i8042-reset" "$done_ok" "$guest_reset"
fi
fi

# PCI and virtio cases (also `run-qemu.sh virtio` alone)
# shellcheck source=run-qemu-virtio.sh
. "$here/run-qemu-virtio.sh"

echo "suite: $pass passed, $fail failed"
[ $fail -eq 0 ]
