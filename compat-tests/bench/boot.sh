#!/bin/bash
# Firmware boot, oxvirt-vmm against QEMU 7.2 on the same images and the
# same firmware files, in one run: process start -> the test guest's first
# "PASS" line on the serial port, the guest booted by GRUB from a disk
# (compat-tests/guest/build-boot-images.sh), through
#   SeaBIOS: Debian's bios-microvm.bin (QEMU -M microvm, virtio-blk-pci on
#            its PCIe bus) and bios-256k.bin (QEMU -M q35), MBR disk
#   UEFI:    edk2 (oxvirt-vmm: the CloudHv build, packaging/firmware/
#            build-cloudhv.sh; QEMU -M q35: Debian's OVMF_CODE_4M.fd), GPT disk
# Prints medians over RUNS runs (default 5; UEFI runs once, it takes minutes
# on a host whose KVM emulates guest ring 0) and oxvirt/QEMU ratios. A
# monitor that never reaches the line is reported with its last words.
#
# usage: compat-tests/bench/boot.sh [RUNS]
# env: OXVIRT_VMM, QEMU, UEFI_FIRMWARE, LIMIT (seconds per UEFI run, 1200),
#      SKIP_UEFI=1 (the SeaBIOS rows only)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-5}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
[ -n "${QEMU:-}" ] || install_qemu
command -v apt-get >/dev/null && [ ! -f /usr/share/OVMF/OVMF_CODE_4M.fd ] &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ovmf >/dev/null
images="$here/compat-tests/guest/out/boot-images"
"$here/compat-tests/guest/build-boot-images.sh" "$images" >/dev/null
uefi=${UEFI_FIRMWARE:-$("$here/packaging/firmware/build-cloudhv.sh" | tail -1)}
find_vmm
export VMM="$vmm" RUNS="$runs" QEMU=${QEMU:-qemu-system-x86_64} IMAGES="$images" \
    UEFI="$uefi" LIMIT=${LIMIT:-1200}

exec python3 - <<'PY'
import os, select, statistics, subprocess, tempfile, time

VMM, QEMU, IMAGES, UEFI = (os.environ[k] for k in ("VMM", "QEMU", "IMAGES", "UEFI"))
RUNS, LIMIT = int(os.environ["RUNS"]), float(os.environ["LIMIT"])
TMP = tempfile.mkdtemp(prefix="oxvirt-boot-bench-")
SEABIOS = "/usr/share/seabios/"
OVMF = "/usr/share/OVMF/OVMF_CODE_4M.fd"
QBASE = [QEMU, "-enable-kvm", "-cpu", "host,-arch-capabilities", "-m", "256", "-smp", "1",
         "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot"]

def first_pass(cmd, limit):
    """Seconds from spawn to the first 'PASS' line, or (None, last words)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    buf = b""
    try:
        while time.monotonic() - t0 < limit:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if not r:
                if p.poll() is not None:
                    break
                continue
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            buf += chunk
            if b"\nPASS " in buf:
                return time.monotonic() - t0, ""
        text = buf.decode(errors="replace").replace("\x1b", "")
        lines = [l for l in text.splitlines() if l.strip()]
        return None, " | ".join(lines[-2:])[-200:]
    finally:
        p.kill()
        p.wait()

def ox(kind, fw, disk, fmt="raw"):
    return [VMM, "--" + kind, fw, "--memory", "256", "--cpus", "1", "--serial", "stdio",
            "--sandbox", "none",
            "--disk", "path=%s,format=%s,slot=3,boot=1" % (disk, fmt), "--rng", "slot=4"]

def q(machine, fw_args, disk, fmt="raw"):
    # microvm's PCIe bus has no port-I/O configuration access, which
    # SeaBIOS needs; its disks are virtio-mmio there.
    dev = ("virtio-blk-device,drive=d0" if machine.startswith("microvm")
           else "virtio-blk-pci,drive=d0,disable-legacy=on")
    return QBASE + ["-M", machine] + fw_args + [
        "-drive", "if=none,id=d0,format=%s,file=%s,snapshot=on" % (fmt, disk),
        "-device", dev + ",bootindex=1"]

raw = os.path.join(IMAGES, "bios.raw")
gpt = os.path.join(IMAGES, "uefi.raw")
cases = [
    ("SeaBIOS microvm", RUNS, 120,
     ox("bios", SEABIOS + "bios-microvm.bin", raw),
     q("microvm,rtc=on", ["-bios", SEABIOS + "bios-microvm.bin"], raw)),
    ("SeaBIOS pc (256k)", RUNS, 120,
     ox("bios", SEABIOS + "bios-256k.bin", raw),
     q("q35", ["-bios", SEABIOS + "bios-256k.bin"], raw)),
] + ([] if os.environ.get("SKIP_UEFI") else [
    ("UEFI (edk2)", 1, LIMIT,
     ox("uefi", UEFI, gpt),
     q("q35", ["-drive", "if=pflash,format=raw,readonly=on,file=" + OVMF], gpt)),
])

print("%-20s %14s %14s %8s" % ("firmware", "oxvirt-vmm s", "qemu s", "ratio"))
for name, n, limit, oxcmd, qcmd in cases:
    res = {}
    for who, cmd in (("ox", oxcmd), ("qemu", qcmd)):
        times, why = [], ""
        for _ in range(n):
            t, w = first_pass(cmd, limit)
            if t is None:
                why = w
                break
            times.append(t)
        res[who] = (statistics.median(times) if times and not why else None, why)
    o, qq = res["ox"][0], res["qemu"][0]
    fmt = lambda v: "%.3f" % v if v is not None else "-"
    ratio = "%.2f" % (o / qq) if o and qq else "-"
    print("%-20s %14s %14s %8s" % (name, fmt(o), fmt(qq), ratio))
    for who in ("ox", "qemu"):
        if res[who][0] is None:
            print("  %s never printed PASS: %s" % (who, res[who][1] or "timeout"))
PY
