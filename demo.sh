#!/usr/bin/env bash
# demo.sh: set oxvirt up on a Debian 12 machine and show it doing its job.
#
#  1. installs the Debian packages it needs (gcc/make for the test guest,
#     dbus for a private bus, busctl to show the raw D-Bus API);
#  2. builds oxvirt (release) and the freestanding test guest;
#  3. starts oxvirtd on a private D-Bus bus with all its state in a
#     temporary directory;
#  4. defines a guest from compat-tests/examples/testos-domain.xml and starts
#     it with oxvirsh (the virsh-compatible client over D-Bus); the guest, on
#     /dev/kvm with 2 vCPUs, checks its e820 map, ACPI tables, second CPU and
#     RTC, then waits for the ACPI power button;
#  5. prints its console output, `oxvirsh dominfo` and the libvirt-dbus
#     Domain.GetStats reply, then shuts it down through the power button and
#     stops the daemon.
# Needs root (apt, /dev/kvm) and a Rust toolchain >= 1.85 (rustup).
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD

command -v cargo >/dev/null || { echo "demo.sh: cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
[ -c /dev/kvm ] || { echo "demo.sh: /dev/kvm is missing: KVM is needed to run guests" >&2; exit 1; }

missing=""
for p in gcc:gcc make:make dbus-daemon:dbus busctl:systemd; do
    command -v "${p%%:*}" >/dev/null || missing="$missing ${p#*:}"
done
if [ -n "$missing" ]; then
    echo "== installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

echo "== building oxvirt and the test guest"
cargo build --release --locked --bins 2>&1 | tail -1
bin=${CARGO_TARGET_DIR:-$root/target}/release
make -s -C compat-tests/guest/testos
guest=$root/compat-tests/guest/out/testos.elf

tmp=$(mktemp -d /tmp/oxvirt-demo.XXXXXX)
cleanup() {
    [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    [ -n "${bus_pid:-}" ] && kill "$bus_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== private D-Bus bus and oxvirtd (state in $tmp)"
bus=unix:path=$tmp/bus
dbus-daemon --session --address="$bus" --nofork --nopidfile --print-pid >"$tmp/bus.pid" &
bus_pid=$!
for _ in $(seq 100); do [ -S "$tmp/bus" ] && break; sleep 0.05; done
"$bin/oxvirtd" --bus-address "$bus" --no-rpc --vmm "$bin/oxvirt-vmm" \
    --config-dir "$tmp/etc" --run-dir "$tmp/run" --state-dir "$tmp/lib" 2>"$tmp/oxvirtd.log" &
daemon=$!
virsh() { "$bin/oxvirsh" --bus-address "$bus" "$@"; }
for _ in $(seq 100); do virsh uri >/dev/null 2>&1 && break; sleep 0.05; done

# The example domain, with the test guest's path and this moment's time.
sed -e "s|/usr/share/oxvirt/testos.elf|$guest|" \
    -e "s|CONSOLE_LOG|$tmp/console.log|" \
    -e "s|oxtest.epoch=0|oxtest.epoch=$(date +%s)|" \
    compat-tests/examples/testos-domain.xml >"$tmp/testos.xml"

echo "== oxvirsh define / start"
virsh define "$tmp/testos.xml"
virsh start testos
for _ in $(seq 100); do grep -q '^DONE' "$tmp/console.log" 2>/dev/null && break; sleep 0.05; done
echo "== the guest's console"
cat "$tmp/console.log"
# The guest may be in the middle of a line.
[ -z "$(tail -c 1 "$tmp/console.log")" ] || echo
echo "== oxvirsh dominfo testos"
virsh dominfo testos
uuid=$(virsh domuuid testos | head -1)
echo "== org.libvirt.Domain.GetStats (busctl)"
busctl --address="$bus" call org.libvirt "/org/libvirt/QEMU/domain/_${uuid//-/_}" \
    org.libvirt.Domain GetStats uu 0 0
echo "== oxvirsh shutdown (ACPI power button)"
virsh shutdown testos
for _ in $(seq 100); do [ "$(virsh domstate testos | head -1)" = "shut off" ] && break; sleep 0.05; done
virsh domstate --reason testos
tail -n 2 "$tmp/console.log"
virsh undefine testos
