#!/usr/bin/env bash
# demo.sh: set oxvirt up on a Debian 12 machine and show it doing its job.
#
#  1. installs the Debian packages it needs (gcc/make for the test guest,
#     libxml2-utils and libvirt0 for schema validation);
#  2. builds oxvirt (release) and the freestanding test guest;
#  3. checks and canonicalises an example libvirt domain with oxvirt-xml, as
#     `virsh define` + `virsh dumpxml` would;
#  4. boots the test guest under oxvirt-vmm on /dev/kvm with 2 vCPUs, its
#     serial console on this terminal: the guest checks the e820 map, the ACPI
#     tables, brings up its second CPU, reads the RTC, then powers off.
# Needs root (apt, /dev/kvm) and a Rust toolchain >= 1.85 (rustup).
set -euo pipefail
cd "$(dirname "$0")"

command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
[ -c /dev/kvm ] || { echo "demo.sh: /dev/kvm is missing: KVM is needed to run guests" >&2; exit 1; }

missing=""
for p in gcc make xmllint:libxml2-utils; do
    cmd=${p%%:*}; pkg=${p#*:}
    command -v "$cmd" >/dev/null || missing="$missing $pkg"
done
[ -r /usr/share/libvirt/schemas/domain.rng ] || missing="$missing libvirt0"
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "== building oxvirt"
cargo build --release --locked --bins 2>&1 | tail -1
bin=target/release
make -s -C compat-tests/guest/testos
guest=compat-tests/guest/out/testos.elf

domain=compat-tests/examples/testos-domain.xml
echo "== oxvirt-xml check $domain"
"$bin/oxvirt-xml" check "$domain"
echo "== oxvirt-xml format $domain (what virsh dumpxml would print after define)"
"$bin/oxvirt-xml" format "$domain"

echo "== booting the test guest under oxvirt-vmm (2 vCPUs, 128 MiB); its console:"
"$bin/oxvirt-vmm" --kernel "$guest" --cpus 2 --memory 128 --serial stdio \
    --cmdline "console=ttyS0 oxtest.checks=e820,acpi,smp,rtc oxtest.cpus=2 oxtest.mem=128 oxtest.pci=1 oxtest.epoch=$(date +%s) oxtest.then=poweroff"
echo "== guest powered off; oxvirt-vmm exited with status $?"
