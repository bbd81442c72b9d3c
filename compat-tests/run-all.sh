#!/usr/bin/env bash
# The project's whole test run: what the README's test command runs and what
# CI runs. With --install it first installs, through apt, what the tests use:
# the Debian packages they compare against (libvirt's schemas and clients,
# libvirt-dbus's interface files, xmllint, QEMU's image tools), what virtual
# networks run (dnsmasq, nftables, passt), the compiler
# for the freestanding test guest, the private D-Bus daemon, and the Debian
# packaging tools (debhelper, lintian, debootstrap), ACPICA's disassembler (the
# DSDT's check), and the oxvirt-qemu user the package would create.
#
# Every test that boots a guest boots it for real on /dev/kvm: the
# freestanding test guest (compat-tests/guest/testos) and a stock Debian
# kernel for its early boot (built into $OXVIRT_DEBIAN_GUEST).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--install" ]; then
    . compat-tests/lib/apt.sh
    apt-get update -qq || true
    apt_install \
        gcc make binutils libc6-dev python3 \
        libvirt0 libxml2-utils libvirt-clients python3-libvirt virtinst osinfo-db \
        libvirt-dbus dbus python3-dbus \
        qemu-utils lz4 socat tmux iproute2 e2fsprogs \
        dnsmasq-base nftables passt \
        debhelper lintian debootstrap systemd util-linux \
        seabios grub-common grub-pc-bin grub-efi-amd64-bin mtools dosfstools xorriso \
        fdisk gdisk acpica-tools >/dev/null
    # QEMU 7.2: the graphical-console tests compare oxvirt's VNC server
    # with its (tests/vnc_client_qemu.rs).
    . compat-tests/bench/anchors.sh
    install_qemu
    # The user guests' VMMs run as, which the package creates
    # (packaging/sysusers.d/oxvirt.conf).
    getent passwd oxvirt-qemu >/dev/null ||
        useradd --system --user-group --no-create-home --home-dir /var/lib/oxvirt \
            --shell /usr/sbin/nologin --comment "oxvirt guest VMMs" oxvirt-qemu
fi

export OXVIRT_DEBIAN_GUEST=${OXVIRT_DEBIAN_GUEST:-/var/lib/oxvirt/guest-debian}

echo "== test guests"
make -s -C compat-tests/guest/testos
[ -f "$OXVIRT_DEBIAN_GUEST/vmlinux" ] ||
    compat-tests/guest/build-debian-guest.sh "$OXVIRT_DEBIAN_GUEST"
echo "== UEFI firmware (edk2 CloudHv, cached)"
export OXVIRT_UEFI_FIRMWARE=${OXVIRT_UEFI_FIRMWARE:-$(packaging/firmware/build-cloudhv.sh | tail -1)}

echo "== domain XML corpus against libvirt's schema and ours"
compat-tests/xml/check-libvirt-schema.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --all-features --locked -- -D warnings
echo "== cargo test (with the VMM's test hooks: a forbidden syscall on demand)"
cargo test --locked --all-targets --features test-hooks

echo "== libvirt's own test domains, formatted by oxvirt-xml, against libvirt's schema"
compat-tests/xml/libvirt-test-corpus.sh "${CARGO_TARGET_DIR:-target}/debug/oxvirt-xml"
echo "== libvirt's own network tests: XML and dnsmasq configuration, byte for byte"
compat-tests/xml/libvirt-network-corpus.sh "${CARGO_TARGET_DIR:-target}/debug/oxvirt-xml"
echo "== virtual networks: virsh net-*, a guest's DHCP lease and NAT, in a network namespace"
compat-tests/network/run.sh
echo "== Cockpit's Machines page in headless Chromium"
compat-tests/cockpit/run.sh
echo "== Ansible's community.libvirt modules"
compat-tests/ansible/run.sh
echo "== virt-manager under Xvfb"
compat-tests/virt-manager/run.sh

echo "== Debian package: build, file list, lintian, systemd-analyze verify"
compat-tests/packaging/check-deb.sh
echo "== Debian package: install into a debootstrapped Debian 12 root and serve D-Bus there"
compat-tests/packaging/install-test.sh
