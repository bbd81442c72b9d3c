#!/bin/bash
# Firmware boot through the real virsh and virt-install: a domain without
# <kernel> boots SeaBIOS, which boots GRUB from a disk image and GRUB the
# test guest, whose checks pass on the console; <boot dev>, per-device
# <boot order>, <loader> and the machine names users write; a missing
# UEFI image refused with libvirt's error and nothing started; the domain
# capabilities' firmware list; virt-install --import of a disk image as
# people type it, and --boot uefi (the guest reaches GRUB and the test
# guest, and its screen is in the UEFI console's graphics mode). Called by
# run.sh (as root).
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
"$top/compat-tests/guest/build-boot-images.sh" "$images" >"$tmp/images.log" 2>&1 ||
    { fail "boot images"; sed 's/^/       | /' "$tmp/images.log"; exit 1; }
cp --sparse=always "$images/bios.raw" "$tmp/disk.raw"
cp "$images/bios.qcow2" "$tmp/disk.qcow2"
truncate -s 1M "$tmp/empty.raw"

# First a daemon with the UEFI image installed (oxvirtd.conf's
# uefi_firmware): `virt-install --boot uefi` starts a guest that takes
# minutes to reach GRUB here (all of UEFI is guest ring-0 code, which this
# host emulates), so it is started first and its console checked last.
uefi_fw=${OXVIRT_UEFI_FIRMWARE:-/var/cache/oxvirt/firmware/CLOUDHV.fd}
printf 'uefi_firmware = "%s"\n' "$uefi_fw" >"$tmp/uefi.conf"
start_private_bus "$tmp"
start_oxvirtd --config "$tmp/uefi.conf"
uefi_started=0
if [ ! -f "$uefi_fw" ]; then
    if [ "${CI:-}" = true ]; then fail "uefi image $uefi_fw (packaging/firmware/build-cloudhv.sh)"
    else echo "skip: no UEFI image at $uefi_fw: virt-install --boot uefi not checked"; fi
elif command -v virt-install >/dev/null; then
    echo "# virt-install --boot uefi (its console is checked at the end)"
    expect uefi-domcaps-efi 0 "<value>efi</value>" -- domcapabilities
    cp --sparse=always "$images/uefi.raw" "$tmp/vu.raw"
    out=$(timeout 120 virt-install --connect "$U" --name vu --memory 512 --vcpus 2 --import \
        --disk "path=$tmp/vu.raw" --boot uefi --osinfo debian11 --network none \
        --graphics vnc --serial "file,path=$tmp/vu.log" --noautoconsole 2>&1)
    if [ $? -eq 0 ] && grep -q 'Domain creation completed' <<<"$out"; then
        pass "virt-install --boot uefi"
        uefi_started=1
    else
        fail "virt-install --boot uefi"
        sed 's/^/       | /' <<<"$out"
    fi
    expect uefi-firmware-efi 0 "<os firmware=.efi.>" -- dumpxml --inactive vu
    expect uefi-running 0 "^running" -- domstate vu
fi

# Then the same daemon state under a daemon whose UEFI image is missing
# (the UEFI guest keeps running across the restart).
kill "$daemon"
wait "$daemon" 2>/dev/null
printf 'uefi_firmware = "%s"\n' "$tmp/no-such-CLOUDHV.fd" >"$tmp/oxvirtd.conf"
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

wait_shut_off() { # NAME: up to 60 s
    for _ in $(seq 300); do
        [ "$(virsh -c "$U" domstate "$1" 2>/dev/null | head -1)" = "shut off" ] && return
        sleep 0.2
    done
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
wait_shut_off fw1
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

echo "# CD-ROMs: the ISO on SATA and on virtio-scsi, booted with <boot dev='cdrom'/>"
cp "$images/boot.iso" "$tmp/boot.iso"
cdrom_domain() { # NAME BUS [CONTROLLER]
    cat <<XML
<domain type='kvm'>
  <name>$1</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='cdrom'/></os>
  <features><acpi/><apic/></features>
  <devices>
    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/>
      <source file='$tmp/boot.iso'/><target dev='sda' bus='$2'/><readonly/></disk>
    ${3:-}
    <serial type='file'><source path='$tmp/$1.log'/></serial>
  </devices>
</domain>
XML
}
cdrom_domain cd1 sata >"$tmp/cd1.xml"
expect cd-sata-define 0 "Domain 'cd1' defined" -- define "$tmp/cd1.xml"
expect cd-sata-controller 0 "<controller type='sata' index='0'" -- dumpxml cd1
expect cd-sata-start 0 "Domain 'cd1' started" -- start cd1
wait_console cd-sata-boots "$tmp/cd1.log" "Booting from DVD/CD"
wait_console cd-sata-grub "$tmp/cd1.log" "oxboot: testos"
wait_console cd-sata-guest "$tmp/cd1.log" "PASS e820"
wait_shut_off cd1
expect cd-sata-powered-off 0 "shut off" -- domstate cd1
cdrom_domain cd2 scsi "<controller type='scsi' index='0' model='virtio-scsi'/>" >"$tmp/cd2.xml"
expect cd-scsi-define 0 "Domain 'cd2' defined" -- define "$tmp/cd2.xml"
expect cd-scsi-start 0 "Domain 'cd2' started" -- start cd2
wait_console cd-scsi-boots "$tmp/cd2.log" "Booting from DVD/CD"
wait_console cd-scsi-guest "$tmp/cd2.log" "PASS e820"
wait_shut_off cd2
expect cd-scsi-powered-off 0 "shut off" -- domstate cd2
cdrom_domain cd3 scsi "<controller type='scsi' index='0' model='lsilogic'/>" >"$tmp/cd3.xml"
expect cd-lsilogic-define 0 "Domain 'cd3' defined" -- define "$tmp/cd3.xml"
expect cd-lsilogic-refused 1 "SCSI controller model 'lsilogic' is not supported" -- start cd3
expect cd-lsilogic-shut-off 0 "shut off" -- domstate cd3

echo "# virsh change-media: an empty drive, the firmware retrying; insert, then eject"
cat >"$tmp/cd4.xml" <<XML
<domain type='kvm'>
  <name>cd4</name>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='cdrom'/><bios rebootTimeout='1000'/></os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
    <serial type='file'><source path='$tmp/cd4.log'/></serial>
  </devices>
</domain>
XML
expect cm-define 0 "Domain 'cd4' defined" -- define "$tmp/cd4.xml"
expect cm-start 0 "Domain 'cd4' started" -- start cd4
wait_console cm-empty-drive-retries "$tmp/cd4.log" "Retrying in 1 seconds"
expect cm-insert 0 "Successfully inserted media" -- change-media cd4 sda "$tmp/boot.iso" --insert
expect cm-live-source 0 "<source file='$tmp/boot.iso'" -- dumpxml cd4
expect cm-config-unchanged 0 "<target dev='sda' bus='sata'/>" -- dumpxml cd4 --inactive
if virsh -c "$U" dumpxml cd4 --inactive | grep -q "boot.iso"; then
    fail "cm-config-has-no-source"
else
    pass "cm-config-has-no-source"
fi
wait_console cm-boots-the-inserted-cd "$tmp/cd4.log" "oxboot: testos"
wait_console cm-guest-runs "$tmp/cd4.log" "PASS e820"
wait_shut_off cd4
expect cm-start-again 0 "Domain 'cd4' started" -- start cd4
expect cm-insert-again 0 "Successfully inserted media" -- change-media cd4 sda "$tmp/boot.iso" --insert --live
expect cm-eject 0 "Successfully ejected media" -- change-media cd4 sda --eject
if virsh -c "$U" dumpxml cd4 | grep -q "boot.iso"; then fail "cm-ejected-live"; else pass "cm-ejected-live"; fi
expect cm-config-insert 0 "Successfully inserted media" -- change-media cd4 sda "$tmp/boot.iso" --insert --config
expect cm-config-source 0 "boot.iso" -- dumpxml cd4 --inactive
# virsh itself finds the drive in the domain's XML, as with libvirt.
expect cm-not-removable 1 "No disk found whose source path or target is vda" -- change-media fw1 vda "$tmp/boot.iso" --insert --config
expect cm-no-such-target 1 "No disk found whose source path or target is sdz" -- change-media cd4 sdz "$tmp/boot.iso" --insert --config
expect cm-destroy 0 "destroyed" -- destroy cd4

echo "# virt-install --import of a disk image"
if command -v virt-install >/dev/null; then
    cp --sparse=always "$images/bios.raw" "$tmp/vi.raw"
    out=$(timeout 120 virt-install --connect "$U" --name vi1 --memory 256 --import \
        --disk "path=$tmp/vi.raw" --osinfo detect=on,require=off --boot hd \
        --network none --graphics none --serial "file,path=$tmp/vi1.log" --noautoconsole 2>&1)
    if [ $? -eq 0 ] && grep -q 'Domain creation completed' <<<"$out"; then
        pass "virt-install --import --disk path"
    else
        fail "virt-install --import --disk path"
        sed 's/^/       | /' <<<"$out"
    fi
    wait_console virt-install-grub "$tmp/vi1.log" "oxboot: testos"
    wait_console virt-install-guest "$tmp/vi1.log" "PASS e820"
    echo "# virt-install --cdrom"
    out=$(timeout 120 virt-install --connect "$U" --name vi2 --memory 256 --cdrom "$tmp/boot.iso" \
        --disk none --osinfo detect=on,require=off --network none --graphics none \
        --serial "file,path=$tmp/vi2.log" --noautoconsole 2>&1)
    if [ $? -eq 0 ] && grep -q 'Domain is still running' <<<"$out$(virsh -c "$U" domstate vi2)" ||
        [ "$(virsh -c "$U" domstate vi2 2>/dev/null | head -1)" = running ]; then
        pass "virt-install --cdrom"
    else
        fail "virt-install --cdrom"
        sed 's/^/       | /' <<<"$out"
    fi
    wait_console virt-install-cdrom-boots "$tmp/vi2.log" "Booting from DVD/CD"
    wait_console virt-install-cdrom-guest "$tmp/vi2.log" "PASS e820"
else
    fail "virt-install is not installed"
fi

if [ "$uefi_started" = 1 ]; then
    echo "# the UEFI guest virt-install started: GRUB, then the test guest"
    expect uefi-still-running 0 "^running" -- domstate vu
    for _ in $(seq 3000); do
        grep -q "oxboot: testos" "$tmp/vu.log" 2>/dev/null && break
        sleep 0.2
    done
    wait_console uefi-grub "$tmp/vu.log" "oxboot: testos"
    # At once: the test guest powers off after its checks.
    expect uefi-screenshot 0 "" -- screenshot vu "$tmp/vu.ppm"
    check uefi-screenshot-graphics-mode grep -qa "^800 600" "$tmp/vu.ppm"
    wait_console uefi-guest "$tmp/vu.log" "PASS e820"
fi

[ "$fails" = 0 ]
