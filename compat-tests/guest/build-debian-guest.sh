#!/usr/bin/env bash
# build-debian-guest.sh OUTDIR
#
# The test guest made of stock Debian packages, fetched with `apt-get download` only:
#   OUTDIR/vmlinuz            the kernel linux-image-cloud-amd64 depends on
#   OUTDIR/initramfs.cpio.gz  busybox-static and an /init that prints OXVIRT-INIT-OK on
#                             ttyS0 and powers off (kernel argument oxvirt.hold: stay up)
#   OUTDIR/cmdline            the kernel command line to boot it with
# .debs are cached in ${DEB_CACHE:-/var/cache/oxvirt/debs}; a warm build takes seconds.
set -euo pipefail

out=${1:?usage: build-debian-guest.sh OUTDIR}
cache=${DEB_CACHE:-/var/cache/oxvirt/debs}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel_pkg() {
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg=${KERNEL_PKG:-$(kernel_pkg)}
if [ -z "$kpkg" ]; then
	apt-get update -qq
	kpkg=$(kernel_pkg)
fi
[ -n "$kpkg" ] || { echo "cannot resolve the kernel package" >&2; exit 1; }

deb() {  # deb PACKAGE -> path of the cached .deb, downloading it if needed
	local f
	f=$(ls -1t "$cache/$1"_*.deb 2>/dev/null | head -1 || true)
	if [ -z "$f" ]; then
		chmod 0777 "$cache" 2>/dev/null || true   # apt downloads as _apt
		(cd "$cache" && apt-get download -q "$1" >&2)
		f=$(ls -1t "$cache/$1"_*.deb | head -1)
	fi
	echo "$f"
}
kdeb=$(deb "$kpkg")
bdeb=$(deb busybox-static)

dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*'
dpkg-deb -x "$bdeb" "$work/bb"
bb="$work/bb/bin/busybox"

root="$work/root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp}
cp "$bb" "$root/bin/busybox"
for applet in sh mount echo cat sleep poweroff reboot; do
	ln -s busybox "$root/bin/$applet"
done
cat >"$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo OXVIRT-INIT-OK >/dev/ttyS0
case " $(cat /proc/cmdline) " in
*" oxvirt.hold "*) while :; do sleep 3600; done ;;
esac
poweroff -f
while :; do sleep 3600; done
INIT
chmod 755 "$root/init"

find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null) |
	gzip -9n >"$out/initramfs.cpio.gz"
cp "$work"/boot/vmlinuz-* "$out/vmlinuz"
echo "console=ttyS0 panic=-1 reboot=t quiet" >"$out/cmdline"
echo "built $out from $(basename "$kdeb") and $(basename "$bdeb")" >&2
