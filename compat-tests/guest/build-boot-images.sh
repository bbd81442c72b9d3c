#!/usr/bin/env bash
# build-boot-images.sh OUTDIR
#
# Bootable images for firmware boot (SeaBIOS, UEFI), made of Debian packages only and
# written as plain files (no loop devices, no mounts, no grub-install):
#   OUTDIR/bios.raw, bios.qcow2   MBR disk: one ext4 partition at 1 MiB (mkfs.ext4 -d),
#                                 GRUB i386-pc: boot.img in the MBR (partition table
#                                 kept), core.img (grub-mkimage: disk, partition table,
#                                 ext4) in sectors 1.. of the post-MBR gap, prefix
#                                 (,msdos1)/boot/grub with the modules in i386-pc/
#   OUTDIR/uefi.raw, uefi.qcow2   GPT disk: one EFI system partition (FAT32, mkfs.vfat +
#                                 mtools) holding \EFI\BOOT\BOOTX64.EFI (grub-mkstandalone
#                                 -O x86_64-efi, grub.cfg inside) and /boot/ (kernels)
#   OUTDIR/boot.iso               grub-mkrescue: El Torito for BIOS and EFI, MBR hybrid
# Every image has the same GRUB menu on the serial console (COM1, 115200):
#   testos   multiboot2 /boot/testos.elf $OXVIRT_TESTOS_ARGS
#   debian   linux /boot/vmlinuz <the Debian guest's cmdline file>; initrd /boot/initramfs
#            (only if the Debian guest exists: $OXVIRT_DEBIAN_GUEST, default
#            /var/lib/oxvirt/guest-debian, made by build-debian-guest.sh)
# Environment:
#   OXVIRT_TESTOS_ARGS   testos command line (default, what the tests and
#                        benchmarks share the cached images with: "oxtest.checks=e820,acpi,smp,rtc,pci,rng oxtest.pci=1 oxtest.devs=03:blk,04:rng oxtest.then=poweroff")
#   OXVIRT_TESTOS_ARGS_EFI  testos command line when GRUB runs on UEFI (uefi.* and the
#                        ISO's EFI boot; default: OXVIRT_TESTOS_ARGS). UEFI firmware keeps
#                        MiBs for itself (OVMF with -m 512: 6000 KiB less usable RAM, as
#                        runtime code and data, ACPI NVS, reserved), so the oxtest.mem
#                        window that SeaBIOS meets (525 KiB less) does not hold there.
#   OXVIRT_BOOT_ENTRY    default menu entry: testos (default) or debian. The images of
#                        one OUTDIR have one default; use a second OUTDIR for the other.
#   OXVIRT_BOOT_TIMEOUT  GRUB menu timeout in seconds (default 0: boot at once)
#   OXVIRT_DEBIAN_APPEND more arguments for the Debian kernel, after the cmdline file's
#                        (e.g. earlycon=uart8250,io,0x3f8,115200 to see its first lines
#                        before the console driver is up)
# Each entry echoes "oxboot: <entry>" before loading and "oxboot: <entry> loaded" after,
# so a log shows how long GRUB took to get there and to load the files.
# Outputs newer than their inputs (testos.elf, the Debian guest files, this script, the
# GRUB platform files) and built with the same settings are left alone. Missing tools
# are installed with apt-get (grub-common, grub-pc-bin, grub-efi-amd64-bin, mtools,
# dosfstools, xorriso, e2fsprogs, fdisk, gdisk, qemu-utils, binutils).
set -euo pipefail

out=${1:?usage: build-boot-images.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
self="$here/$(basename "$0")"
deb_dir=${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}
args=${OXVIRT_TESTOS_ARGS:-oxtest.checks=e820,acpi,smp,rtc,pci,rng oxtest.pci=1 oxtest.devs=03:blk,04:rng oxtest.then=poweroff}
efi_args=${OXVIRT_TESTOS_ARGS_EFI:-$args}
entry=${OXVIRT_BOOT_ENTRY:-testos}
timeout=${OXVIRT_BOOT_TIMEOUT:-0}
grub_pc=/usr/lib/grub/i386-pc
grub_efi=/usr/lib/grub/x86_64-efi

case $entry in testos|debian) ;; *) echo "OXVIRT_BOOT_ENTRY must be testos or debian" >&2; exit 2 ;; esac
case $timeout in ''|*[!0-9]*) echo "OXVIRT_BOOT_TIMEOUT must be a number" >&2; exit 2 ;; esac

# ---- tools ----
need=()
want() {  # want COMMAND-OR-PATH PACKAGE
	if [ "${1#/}" != "$1" ]; then [ -e "$1" ] || need+=("$2")
	else command -v "$1" >/dev/null 2>&1 || need+=("$2"); fi
}
want grub-mkimage grub-common
want grub-mkstandalone grub-common
want grub-mkrescue grub-common
want "$grub_pc/boot.img" grub-pc-bin
want "$grub_efi/modinfo.sh" grub-efi-amd64-bin
want mcopy mtools
want mkfs.vfat dosfstools
want xorriso xorriso
want mkfs.ext4 e2fsprogs
want objcopy binutils
want sfdisk fdisk
want sgdisk gdisk
want qemu-img qemu-utils
if [ ${#need[@]} -gt 0 ]; then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	echo "installing: ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

# ---- inputs ----
make -s -C "$here/testos"
elf="$here/out/testos.elf"
kernel="$deb_dir/vmlinuz"
initrd=""
for f in "$deb_dir/initramfs" "$deb_dir/initramfs.cpio.gz"; do
	[ -f "$f" ] && { initrd=$f; break; }
done
have_debian=0
if [ -f "$kernel" ] && [ -n "$initrd" ] && [ -f "$deb_dir/cmdline" ]; then
	have_debian=1
	kcmdline=$(tr '\n' ' ' <"$deb_dir/cmdline" | sed 's/  *$//')
	[ -z "${OXVIRT_DEBIAN_APPEND:-}" ] || kcmdline="$kcmdline $OXVIRT_DEBIAN_APPEND"
else
	echo "no Debian guest in $deb_dir (vmlinuz, initramfs[.cpio.gz], cmdline): testos entry only"
	[ "$entry" = testos ] || { echo "OXVIRT_BOOT_ENTRY=debian needs the Debian guest" >&2; exit 1; }
fi

# GRUB takes quotes, $, ; and \ specially: every word goes in single quotes.
grub_words() {
	local - w s=""
	set -f
	for w in $1; do
		case $w in *\'*) echo "a single quote cannot be passed: $w" >&2; exit 2 ;; esac
		s="$s '$w'"
	done
	echo "${s# }"
}
testos_words=$(grub_words "$args")
efi_words=$(grub_words "$efi_args")
debian_words=""
[ $have_debian = 0 ] || debian_words=$(grub_words "$kcmdline")

mkdir -p "$out"
out=$(cd "$out" && pwd)
settings="args=$args efi_args=$efi_args entry=$entry timeout=$timeout debian=$have_debian"
[ $have_debian = 0 ] || settings="$settings kernel=$kernel initrd=$initrd cmdline=$kcmdline"
stamp="$out/.boot-images.settings"
same_settings=0
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$settings" ] && same_settings=1
inputs=("$elf" "$self" "$grub_pc/modinfo.sh" "$grub_efi/modinfo.sh")
[ $have_debian = 0 ] || inputs+=("$kernel" "$initrd" "$deb_dir/cmdline")

stale() {  # stale OUTPUT...: true if one is missing or older than an input
	local o i
	[ $same_settings = 1 ] || return 0
	for o in "$@"; do
		[ -f "$o" ] || return 0
		for i in "${inputs[@]}"; do
			[ "$i" -nt "$o" ] && return 0
		done
	done
	return 1
}

todo_bios=0 todo_uefi=0 todo_iso=0
stale "$out/bios.raw" "$out/bios.qcow2" && todo_bios=1
stale "$out/uefi.raw" "$out/uefi.qcow2" && todo_uefi=1
stale "$out/boot.iso" && todo_iso=1
if [ $((todo_bios + todo_uefi + todo_iso)) = 0 ]; then
	echo "up to date: $out/{bios.raw,bios.qcow2,uefi.raw,uefi.qcow2,boot.iso} (default entry $entry)"
	exit 0
fi

work=$(mktemp -d "$out/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -f "$stamp"

# ---- the boot tree and the menu ----
tree="$work/tree"
mkdir -p "$tree/boot/grub"
# Without its debug sections: GRUB loads every section of the file (the multiboot2 ELF
# sections tag), which costs seconds where firmware code runs slowly; the loaded bytes
# are the same.
objcopy --strip-debug "$elf" "$tree/boot/testos.elf"
if [ $have_debian = 1 ]; then
	cp "$kernel" "$tree/boot/vmlinuz"
	cp "$initrd" "$tree/boot/initramfs"
fi
cfg="$tree/boot/grub/grub.cfg"
{
	cat <<EOF
# oxvirt boot images (build-boot-images.sh): serial console only
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=$timeout
set default=$entry
# the BIOS disk and the ISO start with root set; the UEFI image's GRUB runs from memory
if [ ! -e /boot/testos.elf ]; then
	search --no-floppy --file --set=root /boot/testos.elf
fi

menuentry 'testos (multiboot2)' --id testos {
	echo 'oxboot: testos'
EOF
	if [ "$efi_words" = "$testos_words" ]; then
		echo "	multiboot2 /boot/testos.elf $testos_words"
	else
		cat <<EOF
	if [ "\$grub_platform" = efi ]; then
		multiboot2 /boot/testos.elf $efi_words
	else
		multiboot2 /boot/testos.elf $testos_words
	fi
EOF
	fi
	cat <<EOF
	echo 'oxboot: testos loaded'
	boot
}
EOF
	if [ $have_debian = 1 ]; then
		cat <<EOF

menuentry 'Debian stock kernel (busybox initramfs)' --id debian {
	echo 'oxboot: debian'
	linux /boot/vmlinuz $debian_words
	initrd /boot/initramfs
	echo 'oxboot: debian loaded'
	boot
}
EOF
	fi
} >"$cfg"
tree_mib=$(( $(du -sk "$tree" | cut -f1) / 1024 ))
mods="normal configfile echo test search search_fs_file serial terminal multiboot2 linux boot"

mib() { echo "$(( $(stat -c %s "$1") / 1048576 )) MiB"; }
to_qcow2() { qemu-img convert -q -f raw -O qcow2 "$1" "$2.tmp" && mv "$2.tmp" "$2"; }

# ---- bios.raw: MBR, ext4 at 1 MiB, GRUB i386-pc in the MBR and the post-MBR gap ----
if [ $todo_bios = 1 ]; then
	part_mib=$(( (tree_mib + 20 + 7) / 8 * 8 ))
	img="$work/bios.raw"
	truncate -s "${part_mib}M" "$work/bios-part.ext4"
	mkdir -p "$work/bios-tree/boot/grub/i386-pc"
	cp -r "$tree/." "$work/bios-tree/"
	cp "$grub_pc"/*.mod "$grub_pc"/*.lst "$work/bios-tree/boot/grub/i386-pc/"
	# 4 KiB blocks: GRUB's ext2 reader is several times slower on 1 KiB blocks
	# (what mkfs.ext4 picks for a small file system)
	mkfs.ext4 -q -F -b 4096 -L oxboot -U 6f787669-7274-4000-8000-00000000b105 \
		-E root_owner=0:0 -d "$work/bios-tree" "$work/bios-part.ext4"
	truncate -s $(( (part_mib + 1) * 1048576 )) "$img"
	printf 'label: dos\nlabel-id: 0x6f787674\nstart=2048, type=83, bootable\n' |
		sfdisk -q "$img"
	dd if="$work/bios-part.ext4" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
	# core.img: its first sector (diskboot) loads the rest from the sectors after it;
	# the prefix names partition 1 of the boot drive (the drive BIOS passed in %dl).
	# Only what reads the partition is inside: everything else is loaded from
	# /boot/grub/i386-pc, as grub-install does it. (Embedding normal, multiboot2 and
	# linux, ~400 KiB, costs more: the LZMA decompression runs as slowly as the rest.)
	# The early config puts GRUB on the serial line before normal.mod reads grub.cfg.
	printf '%s\n' 'insmod serial' 'serial --unit=0 --speed=115200' 'insmod terminal' \
		'terminal_input serial' 'terminal_output serial' >"$work/early.cfg"
	grub-mkimage -O i386-pc -d "$grub_pc" -o "$work/core.img" -c "$work/early.cfg" \
		-p '(,msdos1)/boot/grub' biosdisk part_msdos ext2
	python3 - "$img" "$grub_pc/boot.img" "$work/core.img" <<'PY'
import struct, sys
img, boot_img, core_img = sys.argv[1:]
boot = bytearray(open(boot_img, 'rb').read())
core = bytearray(open(core_img, 'rb').read())
assert len(boot) == 512 and len(core) >= 1024
core += b'\0' * (-len(core) % 512)
sectors = len(core) // 512
with open(img, 'r+b') as f:
    mbr = bytearray(f.read(512))
    first = struct.unpack_from('<I', mbr, 446 + 8)[0]   # partition 1 start LBA
    if 1 + sectors > first:
        sys.exit(f'core.img ({sectors} sectors) does not fit before sector {first}')
    # boot.img: the code up to the disk signature (0x1b8); keep the signature, the
    # partition table (0x1be-0x1fd) and 0x55aa from sfdisk.
    # 0x5c: LBA of core.img's first sector; 0x64: boot drive 0xff = use %dl from the
    # BIOS; 0x66: the 2-byte jump over the check that forces %dl to 0x80 when its
    # top bit is clear becomes two NOPs, as for any hard disk install.
    struct.pack_into('<Q', boot, 0x5c, 1)
    boot[0x64] = 0xff
    boot[0x66:0x68] = b'\x90\x90'
    mbr[0:0x1b8] = boot[0:0x1b8]
    assert mbr[510:512] == b'\x55\xaa'
    # diskboot's block list (the last 12 bytes of core.img's first sector): u64 start
    # LBA of the rest, u16 sector count, u16 load segment (0x820).
    start, count, seg = struct.unpack_from('<QHH', core, 500)
    if count != sectors - 1 or seg != 0x820:
        sys.exit(f'unexpected diskboot block list: count {count} of {sectors - 1}, segment {seg:#x}')
    struct.pack_into('<Q', core, 500, 2)
    f.seek(0)
    f.write(mbr)
    f.seek(512)
    f.write(core)
print(f'core.img {sectors} sectors at LBA 1-{sectors}, partition 1 at LBA {first}')
PY
	mv "$img" "$out/bios.raw"
	to_qcow2 "$out/bios.raw" "$out/bios.qcow2"
	echo "built $out/bios.raw ($(mib "$out/bios.raw")) and bios.qcow2: MBR, ext4 ${part_mib} MiB, GRUB i386-pc"
fi

# ---- uefi.raw: GPT, one EFI system partition with GRUB and the boot tree ----
if [ $todo_uefi = 1 ]; then
	esp_mib=$(( (tree_mib + 24 + 7) / 8 * 8 ))
	[ $esp_mib -ge 40 ] || esp_mib=40        # FAT32 wants >= 65525 clusters
	img="$work/uefi.raw"
	esp="$work/esp.fat"
	grub-mkstandalone -O x86_64-efi -d "$grub_efi" -o "$work/BOOTX64.EFI" \
		--modules="part_gpt part_msdos fat iso9660 ext2 $mods" \
		--install-modules="part_gpt part_msdos fat iso9660 ext2 $mods" \
		--fonts= --locales= --themes= "boot/grub/grub.cfg=$cfg"
	truncate -s "${esp_mib}M" "$esp"
	mkfs.vfat -F 32 -s 1 -n OXESP -i 6f787674 "$esp" >/dev/null
	export MTOOLS_SKIP_CHECK=1
	mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/boot
	mcopy -i "$esp" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
	mcopy -i "$esp" "$tree/boot/testos.elf" ::/boot/
	if [ $have_debian = 1 ]; then
		mcopy -i "$esp" "$tree/boot/vmlinuz" "$tree/boot/initramfs" ::/boot/
	fi
	truncate -s $(( (esp_mib + 2) * 1048576 )) "$img"
	# (not -q: sgdisk 1.0.9 then leaves a blank disk without a table)
	sgdisk -U 6F787669-7274-4000-8000-00000000EF10 \
		-n "1:2048:+${esp_mib}M" -t 1:ef00 -c 1:'EFI system partition' \
		-u 1:6F787669-7274-4000-8000-00000000EF11 "$img" >/dev/null
	dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
	sgdisk -v "$img" | grep -q 'No problems found' &&
		sgdisk -i 1 "$img" | grep -q 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B' ||
		{ echo "uefi.raw: no valid GPT with an EFI system partition" >&2; sgdisk -p "$img" >&2; exit 1; }
	mv "$img" "$out/uefi.raw"
	to_qcow2 "$out/uefi.raw" "$out/uefi.qcow2"
	echo "built $out/uefi.raw ($(mib "$out/uefi.raw")) and uefi.qcow2: GPT, ESP FAT32 ${esp_mib} MiB, GRUB x86_64-efi standalone"
fi

# ---- boot.iso: grub-mkrescue (BIOS El Torito, EFI El Torito image, MBR hybrid) ----
if [ $todo_iso = 1 ]; then
	grub-mkrescue -o "$work/boot.iso" --fonts= --locales= --themes= \
		"$tree" -- -volid OXBOOT >"$work/mkrescue.log" 2>&1 ||
		{ cat "$work/mkrescue.log" >&2; exit 1; }
	mv "$work/boot.iso" "$out/boot.iso"
	echo "built $out/boot.iso ($(mib "$out/boot.iso")): grub-mkrescue, BIOS + EFI El Torito, MBR hybrid"
fi

echo "$settings" >"$stamp"
if [ $have_debian = 1 ]; then
	echo "menu: testos, debian; default $entry; testos args: $args"
else
	echo "menu: testos only (no Debian guest); testos args: $args"
fi
[ "$efi_args" = "$args" ] || echo "testos args on UEFI: $efi_args"
