#!/bin/bash
# Firmware boot through the real virsh and virt-install: a domain without
# <kernel> boots SeaBIOS, which boots GRUB from a disk image and GRUB the
# test guest, whose checks pass on the console; <boot dev>, per-device
# <boot order>, <loader> and the machine names users write; a missing
# UEFI image refused with libvirt's error and nothing started; the domain
# capabilities' firmware list; virt-install --import of a disk image as
# people type it. Called by run.sh (as root).
#
# usage: firmware.sh OXVIRTD TMPDIR
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
. "$top/compat-tests/lib/private-run.sh"
OXVIRTD=$1
tmp=$2
mkdir -p "$tmp"
sock=$tmp/sock
U="qemu+unix:///system?socket=$sock"
fails=0
pids=()
trap 'kill_pids_reverse; stop_pids_and_remove "$tmp"' EXIT
. "$here/lib.sh"

# The images the VMM tests use (same test-guest arguments, so one build).
images=$top/compat-tests/guest/out/boot-images
OXVIRT_TESTOS_ARGS="oxtest.checks=e820,acpi,smp,rtc,pci,rng oxtest.pci=1 oxtest.devs=03:blk,04:rng oxtest.then=poweroff" \
    "$top/compat-tests/guest/build-boot-images.sh" "$images" >"$tmp/images.log" 2>&1 ||
    { fail "boot images"; sed 's/^/       | /' "$tmp/images.log"; exit 1; }
cp --sparse=always "$images/bios.raw" "$tmp/disk.raw"
cp "$images/bios.qcow2" "$tmp/disk.qcow2"
truncate -s 1M "$tmp/empty.raw"

printf 'uefi_firmware = "%s"\n' "$tmp/no-such-CLOUDHV.fd" >"$tmp/oxvirtd.conf"
start_private_bus "$tmp"
start_oxvirtd --config "$tmp/oxvirtd.conf"

# wait_console NAME FILE PATTERN: up to 120 s for PATTERN in the log.
wait_console() {
    for _ in $(seq 600); do
        grep -q -- "$3" "$2" 2>/dev/null && { pass "$1"; return; }
        sleep 0.2
    done
    fail "$1"
    tr -d '\033' <"$2" | sed 's/^/       | /' | tail -20
}

bios_domain() { # NAME OS-EXTRA DISK-FILE DISK-EXTRA [MORE-DEVICES]
    cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>$2</os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='${5:-raw}'/>
      <source file='$3'/><target dev='vda' bus='virtio'/>$4
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </disk>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></rng>
    <serial type='file'><source path='$tmp/$1.log'/></serial>
    ${6:-}
  </devices>
</domain>
XML
}

echo "# BIOS: SeaBIOS, GRUB and the test guest's checks"
bios_domain fw1 "" "$tmp/disk.raw" "" >"$tmp/fw1.xml"
expect fw-define 0 "Domain 'fw1' defined" -- define "$tmp/fw1.xml"
expect fw-machine-kept 0 "machine='pc-q35-7.2'" -- dumpxml fw1
expect fw-boot-dev-default 0 "<boot dev='hd'/>" -- dumpxml fw1
expect fw-start 0 "Domain 'fw1' started" -- start fw1
wait_console fw-seabios-banner "$tmp/fw1.log" "SeaBIOS"
wait_console fw-grub "$tmp/fw1.log" "oxboot: testos"
wait_console fw-checks-pass "$tmp/fw1.log" "DONE passed=8 failed=0"
for _ in $(seq 100); do
    [ "$(virsh -c "$U" domstate fw1 2>/dev/null | head -1)" = "shut off" ] && break
    sleep 0.2
done
expect fw-guest-powered-off 0 "shut off" -- domstate fw1

echo "# qcow2, per-device boot order, boot menu, an explicit <loader>"
bios_domain fw2 "<loader readonly='yes' type='rom'>/usr/share/seabios/bios-microvm.bin</loader><bootmenu enable='yes' timeout='0'/>" \
    "$tmp/disk.qcow2" "<boot order='1'/>" qcow2 \
    "<disk type='file' device='disk'><source file='$tmp/empty.raw'/><target dev='vdb' bus='virtio'/><boot order='2'/></disk>" >"$tmp/fw2.xml"
expect fw2-define 0 "Domain 'fw2' defined" -- define "$tmp/fw2.xml"
expect fw2-loader-kept 0 "<loader readonly='yes' type='rom'>/usr/share/seabios/bios-microvm.bin</loader>" -- dumpxml fw2
expect fw2-start 0 "Domain 'fw2' started" -- start fw2
wait_console fw2-checks-pass "$tmp/fw2.log" "DONE passed=8 failed=0"

echo "# the empty disk first: the firmware's message, the guest keeps running"
bios_domain fw3 "<boot dev='hd'/>" "$tmp/empty.raw" "" >"$tmp/fw3.xml"
expect fw3-define 0 "Domain 'fw3' defined" -- define "$tmp/fw3.xml"
expect fw3-start 0 "Domain 'fw3' started" -- start fw3
wait_console fw3-no-bootable-device "$tmp/fw3.log" "No bootable device"
expect fw3-still-running 0 "running" -- domstate fw3
expect fw3-destroy 0 "Domain 'fw3' destroyed" -- destroy fw3

echo "# mixing <os><boot> with per-device <boot order> is refused"
bios_domain fw4 "<boot dev='hd'/>" "$tmp/disk.raw" "<boot order='1'/>" >"$tmp/fw4.xml"
expect fw4-refused 1 "per-device boot elements cannot be used together with os/boot elements" -- define "$tmp/fw4.xml"

echo "# UEFI with no image installed: libvirt's error, nothing running"
bios_domain fw5 "" "$tmp/disk.raw" "" | sed "s|<os>|<os firmware='efi'>|" >"$tmp/fw5.xml"
expect fw5-define 0 "Domain 'fw5' defined" -- define "$tmp/fw5.xml"
expect fw5-start-refused 1 "Unable to find any firmware to satisfy 'efi'" -- start fw5
expect fw5-shut-off 0 "shut off" -- domstate fw5
expect fw5-domcaps-no-efi 0 "<value>bios</value>" -- domcapabilities
if virsh -c "$U" domcapabilities | grep -q "<value>efi</value>"; then
    fail "fw5-domcaps-efi-absent"
else
    pass "fw5-domcaps-efi-absent"
fi

echo "# an i686 guest boots through the firmware too"
bios_domain fw6 "" "$tmp/disk.raw" "" | sed "s/arch='x86_64'/arch='i686'/; s/<name>fw6/<name>fw6/" >"$tmp/fw6.xml"
expect fw6-define 0 "Domain 'fw6' defined" -- define "$tmp/fw6.xml"
expect fw6-start 0 "Domain 'fw6' started" -- start fw6
wait_console fw6-checks-pass "$tmp/fw6.log" "DONE passed=8 failed=0"

echo "# virt-install --import of a disk image"
if command -v virt-install >/dev/null; then
    cp --sparse=always "$images/bios.raw" "$tmp/vi.raw"
    out=$(timeout 120 virt-install --connect "$U" --name vi1 --memory 256 --import \
        --disk "path=$tmp/vi.raw,bus=virtio" --osinfo detect=on,require=off --boot hd \
        --network none --graphics none --serial "file,path=$tmp/vi1.log" --noautoconsole 2>&1)
    if [ $? -eq 0 ] && grep -q 'Domain creation completed' <<<"$out"; then
        pass "virt-install --import --disk path"
    else
        fail "virt-install --import --disk path"
        sed 's/^/       | /' <<<"$out"
    fi
    wait_console virt-install-grub "$tmp/vi1.log" "oxboot: testos"
    wait_console virt-install-guest "$tmp/vi1.log" "PASS e820"
else
    fail "virt-install is not installed"
fi

[ "$fails" = 0 ]
