#!/bin/bash
# Build edk2's CloudHv UEFI firmware (OvmfPkg/CloudHv/CloudHvX64.dsc, RELEASE,
# GCC5) from Debian's own `edk2` source package, with Debian's patches applied.
#
# Why: CloudHv is the edk2 platform meant for minimal VMMs that enter firmware
# through PVH, hand it the machine's ACPI tables and offer virtio-pci devices,
# without fw_cfg, pflash or an emulated i440FX/Q35 chipset. That is the machine
# oxvirt-vmm provides; Debian's `ovmf` package ships only QEMU pflash builds.
#
# Output: $CACHE/CLOUDHV.fd (a PVH ELF image) and $CACHE/CLOUDHV.fd.version
# (the Debian edk2 version it was built from and this recipe's revision), where
# CACHE=${OXVIRT_FIRMWARE_CACHE:-/var/cache/oxvirt/firmware}. When the cached
# image matches the edk2 version apt currently offers, the script exits at once.
# The last line printed is the image's path. Needs root to install build deps.
set -euo pipefail

cache=${OXVIRT_FIRMWARE_CACHE:-/var/cache/oxvirt/firmware}
out=$cache/CLOUDHV.fd
stamp=$out.version
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

# Private apt state that lists Debian's source packages; the machine's own apt
# configuration is left alone. Lists are refreshed when older than a week.
aptdir=$cache/apt
mkdir -p "$aptdir/lists/partial" "$aptdir/parts"
for f in /etc/apt/sources.list.d/*.sources; do
  sed 's/^Types: deb$/Types: deb-src/' "$f" >"$aptdir/parts/${f##*/}"
done
o=(-oDir::Etc::SourceList=/dev/null "-oDir::Etc::SourceParts=$aptdir/parts"
   "-oDir::State::Lists=$aptdir/lists" -oAPT::Sandbox::User=root)
if [ -z "$(find "$aptdir/lists" -maxdepth 1 -name '*Sources*' -mtime -7 -print -quit)" ]; then
  apt-get "${o[@]}" update -qq
fi
version=$(apt-get "${o[@]}" source --print-uris edk2 |
          sed -n "s/.* edk2_\([^ ]*\)\.dsc .*/\1/p")
[ -n "$version" ] || { echo "no edk2 source package found" >&2; exit 1; }

# Bumped whenever the recipe changes what goes into the image.
recipe=2
if [ -s "$out" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version recipe $recipe" ]; then
  echo "$out"
  exit 0
fi

# Build dependencies (the subset of Debian's Build-Depends that OVMF needs).
missing=()
command -v gcc >/dev/null && command -v g++ >/dev/null && command -v make >/dev/null ||
  missing+=(build-essential)
command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
command -v nasm >/dev/null || missing+=(nasm)
command -v iasl >/dev/null || missing+=(acpica-tools)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import distutils' 2>/dev/null || missing+=(python3-distutils)
[ -e /usr/include/uuid/uuid.h ] || missing+=(uuid-dev)
command -v xz >/dev/null || missing+=(xz-utils)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Fetch and unpack the source package; dpkg-source applies Debian's patches
# (among them the one BaseTools needs to build from the trimmed orig tarball).
# The orig tarball already carries the submodules OVMF uses (openssl, brotli).
scratch=$cache/build
rm -rf "$scratch"
mkdir -p "$scratch"
cd "$scratch"
apt-get "${o[@]}" source --download-only -qq "edk2=$version"
dpkg-source --no-check -x edk2_*.dsc edk2 >/dev/null
cd edk2

# Debian's Disable-the-Shell-when-SecureBoot-is-enabled patch makes the Shell
# need Secure Boot libraries that CloudHvX64.dsc maps only when built with
# SECURE_BOOT_ENABLE (Debian builds OVMF only that way). CloudHv is built
# without Secure Boot, so that one patch is taken back out.
patch -R -s -p1 <debian/patches/Disable-the-Shell-when-SecureBoot-is-enabled.patch
dsc=OvmfPkg/CloudHv/CloudHvX64.dsc
fdf=OvmfPkg/CloudHv/CloudHvX64.fdf

# CloudHv has no display driver (Cloud Hypervisor has no display), so a guest's
# firmware menu and boot loader would draw nothing. oxvirt offers the standard
# VGA adapter (Bochs VBE) and virtio-gpu: add the two drivers OVMF uses for
# them, next to the graphics console that CloudHv already builds.
grep -q QemuVideoDxe "$dsc" || sed -i '\|^  MdeModulePkg/Universal/Console/TerminalDxe/TerminalDxe.inf|i\
  OvmfPkg/QemuVideoDxe/QemuVideoDxe.inf\
  OvmfPkg/VirtioGpuDxe/VirtioGpu.inf' "$dsc"
grep -q QemuVideoDxe "$fdf" || sed -i '\|^INF  MdeModulePkg/Universal/Console/TerminalDxe/TerminalDxe.inf|i\
INF  OvmfPkg/QemuVideoDxe/QemuVideoDxe.inf\
INF  OvmfPkg/VirtioGpuDxe/VirtioGpu.inf' "$fdf"
grep -q QemuVideoDxe "$dsc" && grep -q QemuVideoDxe "$fdf" ||
  { echo "could not add the display drivers to $dsc/$fdf" >&2; exit 1; }

# Same steps as Debian's debian/rules, for the CloudHv platform.
unset WORKSPACE EDK_TOOLS_PATH CONF_PATH
set +u
# shellcheck disable=SC1091
. ./edksetup.sh >/dev/null
set -u
make -C BaseTools -j"$(nproc)"
build -a X64 -t GCC5 -b RELEASE -n "$(nproc)" -p "$dsc"

install -m 0644 Build/CloudHvX64/RELEASE_GCC5/FV/CLOUDHV.fd "$out.tmp"
mv "$out.tmp" "$out"
echo "$version recipe $recipe" >"$stamp"
cd "$cache"
rm -rf "$scratch"
echo "$out"
