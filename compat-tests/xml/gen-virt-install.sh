#!/usr/bin/env bash
# Regenerates the vi-*.xml files of valid/ and virt-install-defaults/ from
# virt-install's --print-xml against a running libvirt QEMU driver, so the
# corpus holds what that tool really produces for KVM.
#
# Needs: virt-install, qemu-img, LIBVIRT_DEFAULT_URI pointing at a libvirtd
# whose /var/lib/libvirt/images/ holds the images created below (IMGDIR is
# that directory as seen from here). --print-xml defines no domain, but
# virt-install creates a storage pool for the image directory: it is removed
# at the end. UUIDs and MACs are random each run and then pinned, so that
# re-generating only changes what virt-install changed.
set -euo pipefail
cd "$(dirname "$0")"
: "${LIBVIRT_DEFAULT_URI:?set LIBVIRT_DEFAULT_URI}"
IMGDIR=${IMGDIR:-/var/lib/libvirt/images}
IMG=/var/lib/libvirt/images
mkdir -p "$IMGDIR"
[ -e "$IMGDIR/base.qcow2" ] || qemu-img create -q -f qcow2 "$IMGDIR/base.qcow2" 1G
[ -e "$IMGDIR/debian.qcow2" ] || qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$IMGDIR/debian.qcow2"
[ -e "$IMGDIR/disk.raw" ] || qemu-img create -q -f raw "$IMGDIR/disk.raw" 64M
[ -e "$IMGDIR/data.qcow2" ] || qemu-img create -q -f qcow2 "$IMGDIR/data.qcow2" 64M
for f in install.iso vmlinuz initrd.img; do [ -e "$IMGDIR/$f" ] || : > "$IMGDIR/$f"; done

n=0
gen() { # [STEP=n] gen DIR NAME virt-install-args...  (STEP: install phase to print)
    local dir=$1 name=$2; shift 2
    n=$((n + 1))
    local uuid
    uuid=$(printf 'c0ffee00-0000-4000-8000-%012d' "$n")
    virt-install --connect "$LIBVIRT_DEFAULT_URI" --print-xml ${STEP:-1} --noautoconsole \
        --name "$name" --uuid "$uuid" "$@" \
        | pin_macs "$n" "$*" > "$dir/$name.xml"
}
# Replaces the MACs virt-install made up by 52:54:00:00:NN:01, :02, ...
# (NN the file's number), keeping the ones given on its command line.
pin_macs() {
    python3 -c '
import re, sys
n, args = int(sys.argv[1]), sys.argv[2].lower()
count = 0
def pin(m):
    global count
    if m.group(2).lower() in args:
        return m.group(0)
    count += 1
    return "%s52:54:00:00:%02x:%02x%s" % (m.group(1), n, count, m.group(3))
sys.stdout.write(re.sub(r"(<mac address=\")([0-9a-fA-F:]{17})(\")", pin, sys.stdin.read()))
' "$1" "$2"
}

V=valid
D=virt-install-defaults
OS=(--osinfo debian11)
NOGFX=(--graphics none)

gen $V vi-kernel-boot --memory 512 --vcpus 1 --osinfo linux2022 "${NOGFX[@]}" --disk none --network none \
    --boot kernel=$IMG/vmlinuz,initrd=$IMG/initrd.img,kernel_args="console=ttyS0 root=/dev/vda rw"
gen $V vi-kernel-boot-pc --machine pc --memory 256 --vcpus 1 --osinfo linux2022 "${NOGFX[@]}" --network none \
    --disk path=$IMG/disk.raw,format=raw,bus=virtio \
    --boot kernel=$IMG/vmlinuz,initrd=$IMG/initrd.img,kernel_args="console=ttyS0 quiet"
gen $V vi-import-qcow2-backing --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/debian.qcow2,bus=virtio --network bridge=br0
gen $V vi-import-raw-network-default --memory 2048 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/disk.raw,format=raw --network network=default
gen $V vi-cdrom-install --memory 2048 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --cdrom $IMG/install.iso \
    --disk path=$IMG/data.qcow2,bus=virtio --network network=default
STEP=2 gen $V vi-cdrom-installed --memory 2048 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --cdrom $IMG/install.iso \
    --disk path=$IMG/data.qcow2,bus=virtio --network network=default
gen $V vi-vcpus-topology --memory 4096 --vcpus 8,sockets=2,cores=2,threads=2 "${OS[@]}" "${NOGFX[@]}" \
    --import --disk path=$IMG/debian.qcow2 --network none
gen $V vi-vcpus-maxvcpus --memory 1024 --vcpus 2,maxvcpus=4 "${OS[@]}" "${NOGFX[@]}" \
    --import --disk path=$IMG/debian.qcow2 --network none
gen $V vi-uefi --memory 2048 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network network=default \
    --boot loader=/usr/share/OVMF/OVMF_CODE_4M.fd,loader.readonly=yes,loader.type=pflash,nvram.template=/usr/share/OVMF/OVMF_VARS_4M.fd \
    --tpm none
gen $V vi-serial-pty-file --memory 512 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/disk.raw,format=raw \
    --network none --serial pty --serial file,path=/var/log/oxvirt/vi-serial.log
gen $V vi-console-pty --memory 512 --vcpus 1 "${OS[@]}" --graphics none --console pty,target.type=virtio \
    --import --disk path=$IMG/disk.raw,format=raw --network none
gen $V vi-rng --memory 512 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/disk.raw,format=raw \
    --network none --rng /dev/random
gen $V vi-vsock --memory 512 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/disk.raw,format=raw \
    --network none --vsock cid.auto=yes
gen $V vi-vsock-fixed-cid --memory 512 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/disk.raw,format=raw \
    --network none --vsock cid.address=42
gen $V vi-memballoon-none --memory 512 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/disk.raw,format=raw \
    --network none --memballoon none --rng none
gen $V vi-cpu-host-model --memory 1024 --vcpus 2 --cpu host-model "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/debian.qcow2 --network network=default
gen $V vi-cpu-custom --memory 1024 --vcpus 2 --cpu EPYC,+x2apic,-svm,match=exact "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/debian.qcow2 --network network=default
gen $V vi-nic-options --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network bridge=br0,model=virtio,mac=52:54:00:12:34:56,mtu.size=9000,target.dev=vnet-vi0 \
    --network network=default,model=e1000e
gen $V vi-disk-options --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/debian.qcow2,bus=virtio,cache=none,io=native,discard=unmap,detect_zeroes=unmap,serial=OXVIRT0001,boot.order=1 \
    --disk path=$IMG/disk.raw,format=raw,bus=virtio,readonly=on \
    --network none
gen $V vi-scsi-disk --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --controller scsi,model=virtio-scsi \
    --disk path=$IMG/debian.qcow2,bus=scsi --network none
gen $V vi-sata-disk-pc --machine pc --memory 1024 --vcpus 1 "${OS[@]}" "${NOGFX[@]}" --import \
    --disk path=$IMG/debian.qcow2,bus=sata --network none
gen $V vi-events-boot-menu --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --cdrom $IMG/install.iso \
    --disk path=$IMG/data.qcow2 --network none --boot hd,cdrom,menu=on \
    --events on_poweroff=destroy,on_reboot=restart,on_crash=coredump-restart
gen $V vi-watchdog-panic --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network none --watchdog i6300esb,action=reset --panic default
gen $V vi-ethernet-user --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network type=ethernet,target.dev=tap-vi0 --network user
gen $V vi-clock-features --memory 1024 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network none --clock offset=localtime --features pmu.state=off,vmport.state=off --pm suspend_to_mem.enabled=off

# What virt-install adds when not told otherwise (graphics, video, sound,
# tablet): their acceptance is the model's decision (xml-schemas/README.md).
gen $D vi-default-q35 --memory 2048 --vcpus 2 "${OS[@]}" --import --disk path=$IMG/debian.qcow2 --network network=default
gen $D vi-default-pc --machine pc --memory 2048 --vcpus 2 "${OS[@]}" --import --disk path=$IMG/debian.qcow2 --network network=default
gen $D vi-graphics-vnc --memory 1024 --vcpus 1 "${OS[@]}" --graphics vnc,listen=127.0.0.1 --video model.type=none --import \
    --disk path=$IMG/debian.qcow2 --network none
gen $D vi-graphics-spice --memory 1024 --vcpus 1 "${OS[@]}" --graphics spice --import --disk path=$IMG/debian.qcow2 --network none
gen $D vi-video-virtio --memory 1024 --vcpus 1 "${OS[@]}" --graphics none --video virtio --import --disk path=$IMG/debian.qcow2 --network none
gen $D vi-sound --memory 1024 --vcpus 1 "${OS[@]}" --graphics none --sound ich9 --import --disk path=$IMG/debian.qcow2 --network none
gen $D vi-tablet-keyboard --memory 1024 --vcpus 1 "${OS[@]}" --graphics none --input tablet,bus=usb --input keyboard,bus=virtio \
    --import --disk path=$IMG/debian.qcow2 --network none
# UEFI with the TPM virt-install adds for it by default.
gen $D vi-uefi-tpm --memory 2048 --vcpus 2 "${OS[@]}" "${NOGFX[@]}" --import --disk path=$IMG/debian.qcow2 \
    --network network=default \
    --boot loader=/usr/share/OVMF/OVMF_CODE_4M.fd,loader.readonly=yes,loader.type=pflash,nvram.template=/usr/share/OVMF/OVMF_VARS_4M.fd
gen $D vi-win-defaults --memory 4096 --vcpus 2 --osinfo win10 --import --disk path=$IMG/debian.qcow2 --network network=default

if virsh pool-info images >/dev/null 2>&1; then
    virsh -q pool-destroy images >/dev/null || true
    virsh -q pool-undefine images >/dev/null || true
fi
echo "generated $n files"
