#!/usr/bin/env bash
# run-boot-images.sh [CASE...]
#
# Boots the images of build-boot-images.sh under QEMU on this machine through firmware
# (SeaBIOS under KVM; OVMF under TCG, as OVMF does not run on this host's KVM) and
# prints one line per case with the times, in ms after QEMU was started, of the lines
# GRUB's menu entry prints before and after loading the files (`oxboot: ...`, `oxboot:
# ... loaded`), the first PASS, DONE and QEMU's exit (Debian: "Linux version").
# No CASE: all of them; `list` lists them.
# Images: ${OXVIRT_BOOT_IMAGES:-compat-tests/guest/out/boot-images}/{testos,virtio,debian},
# built (or found up to date) first. Logs (one timestamp per line): .../logs/CASE.log.
# OXVIRT_SKIP_TCG=1 leaves out the TCG cases (OVMF ~3-5 s, the Debian kernel ~8-12 s
# each); OXVIRT_SKIP_SLOW=1 leaves out q35-debian (GRUB and the kernel's decompressor
# need 2-3 minutes under this host's KVM).
set -euo pipefail
{ # (read whole before it runs: editing the file during a run does not disturb it)
here=$(cd "$(dirname "$0")" && pwd)
root=${OXVIRT_BOOT_IMAGES:-$here/out/boot-images}
deb_dir=${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}
seabios=/usr/share/seabios/bios-256k.bin
seabios_microvm=/usr/share/seabios/bios-microvm.bin
ovmf=/usr/share/ovmf/OVMF.fd
QEMU=${QEMU:-qemu-system-x86_64}
pat="$here/make-pattern-disk.py"

all_cases="q35-bios-raw-virtio q35-bios-qcow2-virtio q35-bios-qcow2-sata q35-iso-sata
q35-iso-virtio-scsi microvm-bios-virtio-mmio q35-virtio-pci q35-debian tcg-ovmf-uefi-raw
tcg-ovmf-uefi-qcow2 tcg-ovmf-iso-sata tcg-ovmf-virtio-pci tcg-ovmf-debian tcg-seabios-debian"
if [ "${1:-}" = list ]; then echo $all_cases; exit 0; fi
cases=${*:-$all_cases}

have_debian=0
[ -f "$deb_dir/vmlinuz" ] && [ -f "$deb_dir/cmdline" ] && have_debian=1

# ---- images: three sets, each with its own default entry / testos arguments ----
# (-m 512 -smp 2; oxtest.mem only for SeaBIOS: OVMF keeps ~6 MiB, see build-boot-images.sh)
a="oxtest.checks=e820,acpi,smp,rtc oxtest.cpus=2 oxtest.then=poweroff"
OXVIRT_BOOT_ENTRY=testos OXVIRT_TESTOS_ARGS="$a oxtest.mem=512" OXVIRT_TESTOS_ARGS_EFI="$a" \
	"$here/build-boot-images.sh" "$root/testos" | sed 's/^/[testos] /'
# the firmware has set the virtio devices up (BARs, and SeaBIOS drives every virtio-blk
# disk it finds): 04 writable pattern disk, 05 read-only pattern disk, 06 rng
a="oxtest.checks=e820,smp,rtc,pci,blk,rng oxtest.cpus=2 oxtest.pci=1 oxtest.devs=04:blk,05:blk:ro,06:rng oxtest.blkwrite=64 oxtest.then=poweroff"
OXVIRT_BOOT_ENTRY=testos OXVIRT_TESTOS_ARGS="$a oxtest.mem=512" OXVIRT_TESTOS_ARGS_EFI="$a" \
	"$here/build-boot-images.sh" "$root/virtio" | sed 's/^/[virtio] /'
if [ $have_debian = 1 ]; then
	# earlycon: the kernel's first lines appear before its serial driver is up (under
	# this host's KVM it stops in the slab allocator's cmpxchg16b before that)
	OXVIRT_BOOT_ENTRY=debian OXVIRT_DEBIAN_APPEND=earlycon=uart8250,io,0x3f8,115200 \
		"$here/build-boot-images.sh" "$root/debian" | sed 's/^/[debian] /'
fi

logs="$root/logs"
mkdir -p "$logs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# runner: TIMEOUT LOG EXPECT(|-separated, all must match) FAIL_OK(regex or '') STOP(regex
# or '': kill QEMU once it and EXPECT matched) -- command...
runner_py='
import os, re, select, subprocess, sys, time
timeout, log, expect, fail_ok, stop = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
cmd = sys.argv[7:]
exp = [re.compile(e) for e in expect.split("|") if e]
t0 = time.monotonic()
p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
os.set_blocking(p.stdout.fileno(), False)
lines, buf, killed = [], b"", ""
def ms(): return int((time.monotonic() - t0) * 1000)
def add(raw):
    l = re.sub(r"\x1b\[[0-9;?=]*[A-Za-z]|\x1b[c()][0-9A-Z]?", "", raw.decode("utf-8", "replace")).replace("\r", "")
    if l.strip(): lines.append((ms(), l))
try:
    while True:
        if time.monotonic() - t0 > timeout:
            killed = "timeout"; break
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            d = p.stdout.read()
            if not d: break
            buf += d
            while b"\n" in buf:
                l, buf = buf.split(b"\n", 1); add(l)
        if stop and any(re.search(stop, l) for _, l in lines[-50:]) and all(any(e.search(l) for _, l in lines) for e in exp):
            killed = "stopped"; break
finally:
    if p.poll() is None: p.kill()
if buf: add(buf)
rc = p.wait()
end = ms()
with open(log, "w") as f:
    for t, l in lines: f.write("%7d %s\n" % (t, l))
    f.write("%7d qemu exit %s%s\n" % (end, rc, " (" + killed + ")" if killed else ""))
def first(rx):
    for t, l in lines:
        if re.search(rx, l): return t
    return None
why = [e.pattern for e in exp if not any(e.search(l) for _, l in lines)]
fails = [l for _, l in lines if l.startswith("FAIL") and not (fail_ok and re.search(fail_ok, l))]
ok = not why and not fails and killed != "timeout" and (rc == 0 or killed == "stopped")
def f(t): return "%6s" % (t if t is not None else "-")
done = next((l for _, l in lines if l.startswith("DONE")), "")
linux = first(r"Linux version")
print("%s oxboot %s  loaded %s  PASS %s  DONE %s  %s %s  %s" % ("ok  " if ok else "FAIL", f(first(r"oxboot: ")), f(first(r"oxboot: .* loaded")),
      f(first(r"^PASS ")), f(first(r"^DONE ")), "exit" if not killed else killed[:4], f(end),
      done or ("Linux version at %d ms" % linux if linux is not None else "")))
if not ok:
    for w in why: print("     missing: %s" % w)
    for l in fails[:5]: print("     unexpected: %s" % l)
    if killed == "timeout": print("     timed out after %d s" % timeout)
    for t, l in lines[-15:]: print("     | %7d %s" % (t, l[:160]))
sys.exit(0 if ok else 1)
'
pass=0 fail=0 skip=0
q35() {  # q35 FIRMWARE-ACCEL... : the base command
	echo "$QEMU" "$@" -M q35 -m 512 -smp 2 -nographic -nodefaults -no-user-config -serial stdio -no-reboot
}
kvm=(-enable-kvm -cpu host,-arch-capabilities)
tcg=(-accel tcg -cpu max)
testos_ok='^INFO boot multiboot2|^PASS e820|^PASS smp|^PASS rtc|^DONE '
run() {  # run NAME TIMEOUT EXPECT FAIL_OK STOP -- command...
	local name=$1 to=$2 expect=$3 fail_ok=$4 stop=$5
	shift 5
	[ "${1:-}" != -- ] || shift
	printf '%-26s ' "$name"
	if python3 -c "$runner_py" "$to" "$logs/$name.log" "$expect" "$fail_ok" "$stop" -- "$@"; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
	fi
}
host_check() {  # after a virtio-pci case: the host's view of the two pattern disks
	if python3 "$pat" verify "$tmp/rw.raw" --written 64:8 >/dev/null &&
		python3 "$pat" verify "$tmp/ro.raw" >/dev/null; then
		printf '%-26s ok   disk files as expected (sectors 64-71 written, read-only disk unchanged)\n' "$1-host"
		pass=$((pass + 1))
	else
		printf '%-26s FAIL disk files differ from the expected pattern\n' "$1-host"
		fail=$((fail + 1))
	fi
}
skip() { printf '%-26s skip (%s)\n' "$1" "$2"; skip=$((skip + 1)); }
disk() { echo "file=$1,format=$2,if=none,id=$3${4:+,$4}"; }

for c in $cases; do
	t="$root/testos"
	case $c in
	q35-bios-raw-virtio)
		run $c 120 "$testos_ok|^FAIL acpi" '^FAIL acpi' '' -- $(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$t/bios.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
	q35-bios-qcow2-virtio)
		run $c 120 "$testos_ok|^FAIL acpi" '^FAIL acpi' '' -- $(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$t/bios.qcow2" qcow2 d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
	q35-bios-qcow2-sata)
		run $c 120 "$testos_ok|^FAIL acpi" '^FAIL acpi' '' -- $(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$t/bios.qcow2" qcow2 d0 snapshot=on)" -device ide-hd,drive=d0,bus=ide.0 ;;
	q35-iso-sata)
		run $c 120 "$testos_ok|^FAIL acpi" '^FAIL acpi' '' -- $(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$t/boot.iso" raw c0 media=cdrom,readonly=on)" -device ide-cd,drive=c0,bus=ide.0,bootindex=1 ;;
	q35-iso-virtio-scsi)
		run $c 120 "$testos_ok|^FAIL acpi" '^FAIL acpi' '' -- $(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$t/boot.iso" raw c0 media=cdrom,readonly=on)" \
			-device virtio-scsi-pci,id=scsi0,disable-legacy=on -device scsi-cd,drive=c0,bus=scsi0.0,bootindex=1 ;;
	microvm-bios-virtio-mmio)
		# SeaBIOS for microvm finds virtio-mmio disks (not PCIe ones); HW-reduced ACPI
		run $c 120 "$testos_ok|^PASS acpi|^DONE passed=4 failed=0" '' '' -- \
			"$QEMU" "${kvm[@]}" -M microvm,acpi=on,rtc=on,isa-serial=on -m 512 -smp 2 \
			-nographic -nodefaults -no-user-config -serial stdio -no-reboot -bios $seabios_microvm \
			-drive "$(disk "$t/bios.raw" raw d0 snapshot=on)" -device virtio-blk-device,drive=d0 ;;
	q35-virtio-pci)
		python3 "$pat" write "$tmp/rw.raw" 16384
		python3 "$pat" write "$tmp/ro.raw" 16384
		run $c 120 "$testos_ok|MCFG|^PASS pci-04-blk|^PASS pci-05-blk|^PASS pci-06-rng|^PASS blk-04-read|^PASS blk-04-write|^PASS blk-05-ro|^PASS rng-06|^DONE passed=[0-9]+ failed=0" '' '' -- \
			$(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$root/virtio/bios.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,addr=0x3,disable-legacy=on,bootindex=1 \
			-drive "$(disk "$tmp/rw.raw" raw d4)" -device virtio-blk-pci,drive=d4,addr=0x4,serial=OXRW4,disable-legacy=on \
			-drive "$(disk "$tmp/ro.raw" raw d5 readonly=on)" -device virtio-blk-pci,drive=d5,addr=0x5,serial=OXRO5,disable-legacy=on \
			-device virtio-rng-pci,addr=0x6,disable-legacy=on
		host_check $c ;;
	q35-debian)
		# GRUB loads the 15 MB of kernel and initramfs in ~75 s here, the kernel's
		# decompressor takes ~90 s more; then (earlycon) banner, e820, ACPI; under QEMU on
		# this host's KVM the kernel stops soon after (KVM internal error on cmpxchg16b)
		[ $have_debian = 1 ] || { skip $c "no Debian guest"; continue; }
		[ -z "${OXVIRT_SKIP_SLOW:-}" ] || { skip $c "OXVIRT_SKIP_SLOW"; continue; }
		run $c ${OXVIRT_DEBIAN_TIMEOUT:-900} 'oxboot: debian|Linux version|BIOS-e820: \[mem 0x0000000000000000-|ACPI: RSDP' '' 'ACPI: RSDP' -- \
			$(q35 "${kvm[@]}" -bios $seabios) \
			-drive "$(disk "$root/debian/bios.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
	tcg-ovmf-uefi-raw|tcg-ovmf-uefi-qcow2|tcg-ovmf-iso-sata|tcg-ovmf-virtio-pci|tcg-ovmf-debian|tcg-seabios-debian)
		[ -z "${OXVIRT_SKIP_TCG:-}" ] || { skip $c "OXVIRT_SKIP_TCG"; continue; }
		case $c in *ovmf*) [ -f $ovmf ] || { skip $c "no $ovmf (package ovmf)"; continue; } ;; esac
		case $c in *debian) [ $have_debian = 1 ] || { skip $c "no Debian guest"; continue; } ;; esac
		case $c in
		tcg-ovmf-uefi-raw)
			run $c 300 "$testos_ok|EFI system table|original, found through the EFI system table|^FAIL acpi" '^FAIL acpi' '' -- \
				$(q35 "${tcg[@]}" -bios $ovmf) \
				-drive "$(disk "$t/uefi.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
		tcg-ovmf-uefi-qcow2)
			run $c 300 "$testos_ok|EFI system table|^FAIL acpi" '^FAIL acpi' '' -- \
				$(q35 "${tcg[@]}" -bios $ovmf) \
				-drive "$(disk "$t/uefi.qcow2" qcow2 d0 snapshot=on)" -device ide-hd,drive=d0,bus=ide.0 ;;
		tcg-ovmf-iso-sata)
			run $c 300 "$testos_ok|EFI system table|^FAIL acpi" '^FAIL acpi' '' -- \
				$(q35 "${tcg[@]}" -bios $ovmf) \
				-drive "$(disk "$t/boot.iso" raw c0 media=cdrom,readonly=on)" -device ide-cd,drive=c0,bus=ide.0,bootindex=1 ;;
		tcg-ovmf-virtio-pci)
			# OVMF places 64-bit BARs above 4 GiB: the guest moves them below
			python3 "$pat" write "$tmp/rw.raw" 16384
			python3 "$pat" write "$tmp/ro.raw" 16384
			run $c 300 "$testos_ok|MCFG|^PASS pci-04-blk|^PASS pci-05-blk|^PASS pci-06-rng|^PASS blk-04-read|^PASS blk-04-write|^PASS blk-05-ro|^PASS rng-06|^DONE passed=[0-9]+ failed=0" '' '' -- \
				$(q35 "${tcg[@]}" -bios $ovmf) \
				-drive "$(disk "$root/virtio/uefi.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,addr=0x3,disable-legacy=on,bootindex=1 \
				-drive "$(disk "$tmp/rw.raw" raw d4)" -device virtio-blk-pci,drive=d4,addr=0x4,serial=OXRW4,disable-legacy=on \
				-drive "$(disk "$tmp/ro.raw" raw d5 readonly=on)" -device virtio-blk-pci,drive=d5,addr=0x5,serial=OXRO5,disable-legacy=on \
				-device virtio-rng-pci,addr=0x6,disable-legacy=on
			host_check $c ;;
		tcg-ovmf-debian)
			run $c 300 'oxboot: debian|Linux version|efi: EFI v|ACPI: RSDP|OXVIRT-INIT-OK' '' '' -- \
				$(q35 "${tcg[@]}" -bios $ovmf) \
				-drive "$(disk "$root/debian/uefi.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
		tcg-seabios-debian)
			run $c 300 'oxboot: debian|Linux version|BIOS-e820: \[mem 0x0000000000000000-|ACPI: RSDP|OXVIRT-INIT-OK' '' '' -- \
				$(q35 "${tcg[@]}" -bios $seabios) \
				-drive "$(disk "$root/debian/bios.raw" raw d0 snapshot=on)" -device virtio-blk-pci,drive=d0,disable-legacy=on ;;
		esac ;;
	*) echo "unknown case $c (run-boot-images.sh list)" >&2; exit 2 ;;
	esac
done
echo "boot images: $pass passed, $fail failed, $skip skipped (logs in $logs)"
[ $fail = 0 ]
exit
}
