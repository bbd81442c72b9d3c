#!/bin/bash
# virtio I/O throughput of oxvirt-vmm against qemu-system-x86_64 -enable-kvm, in one run,
# with the same test guest (compat-tests/guest/testos, throughput modes `blkbench` and
# `netbench`) on the same files and the same kind of tap:
#   blk: sequential read and write, 64 KiB and 4 KiB requests, queue depth 1 and 32, on a
#        raw file and on a fully allocated qcow2 copy of it (virtio-blk-pci on QEMU);
#        MiB/s as the guest measures it (TSC from first submission to last completion)
#   net: 60-byte frames transmitted to a tap in a network namespace made here (deleted
#        on exit); frames/s as the guest measures it, and the tap's rx counter as a check
# oxvirt-vmm runs unconfined and, as the daemon runs it, sandboxed (--sandbox: seccomp
# filters, uid nobody, its own empty mount namespace). Runs rotate between the three;
# prints medians, oxvirt-vmm/QEMU ratios (above 1.0: oxvirt-vmm is faster) and
# sandboxed/unconfined ratios.
#
# QEMU: -M microvm,pcie=on with modern-only virtio-pci (disable-legacy=on), default
# drive options (cache=writeback, aio=threads), no vhost (this host has no
# /dev/vhost-net). oxvirt-vmm: the release build.
#
# usage: compat-tests/bench/io.sh [RUNS]          (default 3; needs root for the tap)
# env: OXVIRT_VMM, QEMU (qemu-system-x86_64), MS (milliseconds per measurement, 1000),
#      DISK_MIB (64), SKIP_NET=1, SKIP_BLK=1
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
[ -n "${QEMU:-}" ] || install_qemu
make -s -C "$here/compat-tests/guest/testos"
elf="$here/compat-tests/guest/out/testos.elf"
vmm=${OXVIRT_VMM:-${CARGO_TARGET_DIR:-$here/target}/release/oxvirt-vmm}
[ -x "$vmm" ] || { echo "io.sh: build oxvirt-vmm first: cargo build --release --bin oxvirt-vmm" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "io.sh: qemu-img missing" >&2; exit 1; }
export VMM="$vmm" ELF="$elf" RUNS="$runs" QEMU=${QEMU:-qemu-system-x86_64} MS=${MS:-1000}
export DISK_MIB=${DISK_MIB:-64} SKIP_NET=${SKIP_NET:-} SKIP_BLK=${SKIP_BLK:-}

exec python3 - <<'PY'
import os, re, shutil, statistics, subprocess, sys, tempfile

VMM, ELF, QEMU = os.environ["VMM"], os.environ["ELF"], os.environ["QEMU"]
RUNS, MS, DISK_MIB = int(os.environ["RUNS"]), int(os.environ["MS"]), int(os.environ["DISK_MIB"])
TMP = tempfile.mkdtemp(prefix="oxvirt-io-bench-")
NS = "oxbench%d" % os.getpid()
TAP, MAC = "oxtap0", "52:54:00:6f:78:08"
QBASE = [QEMU, "-enable-kvm", "-M", "microvm,acpi=on,pcie=on,rtc=on,isa-serial=on",
         "-cpu", "host,-arch-capabilities", "-smp", "1", "-m", "256", "-nodefaults",
         "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
         "-kernel", ELF]
BLK_ITEMS = ["%s:%s:%d:%d" % (m, s, q, MS) for m in ("read", "write")
             for s in ("64k", "4k") for q in (1, 32)]
BENCH = re.compile(r"BENCH \S+ (read|write) (\S+) qd(\d+) MiB/s=([\d.]+)")
NETB = re.compile(r"BENCH \S+ tx (\d+)B pps=(\d+) frames=(\d+)")

def run(argv, timeout, netns=False):
    if netns:
        argv = ["ip", "netns", "exec", NS] + argv
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.stdout.decode(errors="replace")

JAIL = os.path.join(TMP, "jail")
os.makedirs(JAIL)
SANDBOX = ["--sandbox", "seccomp,user=65534:65534,jail=%s" % JAIL]
WHO = ("oxvirt", "oxvirt-sb", "qemu")

def rotation(r):
    return WHO[r % 3:] + WHO[:r % 3]

def guest_cmdline(checks, extra):
    return "oxtest.checks=%s oxtest.then=poweroff %s" % (checks, extra)

def blk_once(who, fmt, path):
    cl = guest_cmdline("pci,blkbench", "oxtest.devs=03:blk oxtest.blkbench=%s"
                       % ",".join(BLK_ITEMS))
    if who.startswith("oxvirt"):
        argv = [VMM, "--kernel", ELF, "--memory", "256", "--serial", "stdio",
                "--disk", "path=%s,format=%s,slot=3" % (path, fmt), "--cmdline", cl]
        argv += SANDBOX if who == "oxvirt-sb" else []
    else:
        argv = QBASE + ["-drive", "file=%s,format=%s,if=none,id=d0" % (path, fmt),
                        "-device", "virtio-blk-pci,drive=d0,addr=0x3,disable-legacy=on",
                        "-append", cl]
    out = run(argv, 60 + len(BLK_ITEMS) * MS // 1000 * 3)
    got = {}
    for m in BENCH.finditer(out):
        got[(m.group(1), m.group(2), int(m.group(3)))] = float(m.group(4))
    if len(got) != len(BLK_ITEMS) or "PASS blkbench" not in out:
        sys.stderr.write("io.sh: %s %s run incomplete:\n%s\n" % (who, fmt, out[-2000:]))
    return got

def tap_rx():
    out = run(["cat", "/sys/class/net/%s/statistics/rx_packets" % TAP], 10, netns=True)
    return int(out.strip() or 0)

def net_once(who):
    cl = guest_cmdline("pci,netbench", "oxtest.devs=08:net oxtest.netbench=tx:%d" % MS)
    if who.startswith("oxvirt"):
        argv = [VMM, "--kernel", ELF, "--memory", "256", "--serial", "stdio",
                "--net", "tap=%s,mac=%s,slot=8" % (TAP, MAC), "--cmdline", cl]
        argv += SANDBOX if who == "oxvirt-sb" else []
    else:
        argv = QBASE + ["-netdev", "tap,id=n0,ifname=%s,script=no,downscript=no" % TAP,
                        "-device", "virtio-net-pci,netdev=n0,addr=0x8,disable-legacy=on,mac=%s"
                        % MAC, "-append", cl]
    before = tap_rx()
    out = run(argv, 60 + 3 * MS // 1000, netns=True)
    host = tap_rx() - before
    m = NETB.search(out)
    if not m or "PASS netbench" not in out:
        sys.stderr.write("io.sh: %s net run incomplete:\n%s\n" % (who, out[-2000:]))
        return None, host
    return (int(m.group(2)), int(m.group(3))), host

def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None

def spread(vals):
    vals = [v for v in vals if v is not None]
    return "%.0f-%.0f" % (min(vals), max(vals)) if vals else "n/a"

def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)

try:
    qv = run([QEMU, "--version"], 10).splitlines()[0]
    print("io bench: %d runs, %d ms per measurement, guest %s" % (RUNS, MS, ELF))
    print("oxvirt-vmm: %s" % VMM)
    print("qemu: %s, -M microvm,pcie=on, virtio-*-pci disable-legacy=on" % qv)
    if not os.environ.get("SKIP_BLK"):
        raw = os.path.join(TMP, "disk.raw")
        qcow = os.path.join(TMP, "disk.qcow2")
        with open(raw, "wb") as f:
            f.write(os.urandom(DISK_MIB << 20))
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow],
                       check=True)
        res = {}
        for r in range(RUNS):
            for fmt, path in (("raw", raw), ("qcow2", qcow)):
                for who in rotation(r):
                    for k, v in blk_once(who, fmt, path).items():
                        res.setdefault((fmt,) + k + (who,), []).append(v)
        print()
        print("blk (MiB/s, median of %d; %d MiB %s files, page cache warm)"
              % (RUNS, DISK_MIB, "raw and qcow2"))
        print("%-6s %-5s %-4s %-4s %12s %12s %12s %8s %8s   %-13s %-13s" % (
            "format", "op", "size", "qd", "oxvirt-vmm", "sandboxed", "qemu", "ox/qemu",
            "sb/ox", "oxvirt range", "qemu range"))
        for fmt in ("raw", "qcow2"):
            for item in BLK_ITEMS:
                op, size, qd, _ = item.split(":")
                k = (fmt, op, size, int(qd))
                va, vb = res.get(k + ("oxvirt",), []), res.get(k + ("qemu",), [])
                a, b = med(va), med(vb)
                c = med(res.get(k + ("oxvirt-sb",), []))
                num = lambda v: "n/a" if v is None else "%.1f" % v
                print("%-6s %-5s %-4s %-4s %12s %12s %12s %8s %8s   %-13s %-13s" % (
                    fmt, op, size, "qd" + qd, num(a), num(c), num(b), ratio(a, b),
                    ratio(c, a), spread(va), spread(vb)))
    if not os.environ.get("SKIP_NET"):
        if os.geteuid() != 0:
            print("\nnet: skipped (needs root for the tap)")
        else:
            subprocess.run(["ip", "netns", "add", NS], check=True)
            subprocess.run(["ip", "-n", NS, "tuntap", "add", "dev", TAP, "mode", "tap"],
                           check=True)
            subprocess.run(["ip", "-n", NS, "link", "set", TAP, "up"], check=True)
            pps = {w: [] for w in WHO}
            host = {w: [] for w in WHO}
            for r in range(RUNS):
                for who in rotation(r):
                    g, h = net_once(who)
                    pps[who].append(g[0] if g else None)
                    if g:
                        host[who].append("%d/%d" % (h, g[1]))
            a, b = med(pps["oxvirt"]), med(pps["qemu"])
            c = med(pps["oxvirt-sb"])
            num = lambda v: "n/a" if v is None else "%d" % v
            print()
            print("net (frames/s to a tap, 60-byte frames, median of %d)" % RUNS)
            print("%-14s %12s %12s %12s %8s %8s   %-13s %-13s" % (
                "", "oxvirt-vmm", "sandboxed", "qemu", "ox/qemu", "sb/ox", "oxvirt range",
                "qemu range"))
            print("%-14s %12s %12s %12s %8s %8s   %-13s %-13s" % (
                "tx frames/s", num(a), num(c), num(b), ratio(a, b), ratio(c, a),
                spread(pps["oxvirt"]), spread(pps["qemu"])))
            print("tap rx counter / guest-sent frames: oxvirt-vmm %s; qemu %s"
                  % (" ".join(host["oxvirt"]), " ".join(host["qemu"])))
finally:
    subprocess.run(["ip", "netns", "del", NS], stderr=subprocess.DEVNULL)
    shutil.rmtree(TMP, ignore_errors=True)
PY
