#!/bin/bash
# Side-by-side start-up and footprint of oxvirt-vmm and qemu-system-x86_64:
#   (a) process start -> vCPUs about to run
#       oxvirt-vmm: until it logs "starting N vCPUs" (OXVIRT_VMM_LOG=info)
#       qemu -S:    until its QMP socket answers query-status
#   (b) process start -> first "PASS" line of the test guest on the serial
#       port: oxvirt-vmm vs qemu -M microvm and -M q35 (all -enable-kvm)
#   (c) RSS of the monitor beyond guest RAM, from /proc/PID/smaps, once the
#       test guest has run its checks and halted
# oxvirt-vmm runs unconfined and, as the daemon runs it, sandboxed (seccomp
# filters, uid nobody, its own empty mount namespace: --sandbox), both in the
# same run. Prints medians over RUNS runs (default 10) and oxvirt-vmm/other
# ratios (for the sandboxed rows: unconfined/sandboxed).
#
# usage: compat-tests/bench/vmm.sh [RUNS]
# env: OXVIRT_VMM (default $CARGO_TARGET_DIR|target /release|/debug oxvirt-vmm),
#      QEMU (qemu-system-x86_64), MEMORY (256)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-10}
# shellcheck source=anchors.sh
. "$here/compat-tests/bench/anchors.sh"
[ -n "${QEMU:-}" ] || install_qemu
make -s -C "$here/compat-tests/guest/testos"
elf="$here/compat-tests/guest/out/testos.elf"
find_vmm
export VMM="$vmm" ELF="$elf" RUNS="$runs" QEMU=${QEMU:-qemu-system-x86_64} MEMORY=${MEMORY:-256}

exec python3 - <<'PY'
import json, os, select, socket, statistics, subprocess, tempfile, time

VMM, ELF, QEMU = os.environ["VMM"], os.environ["ELF"], os.environ["QEMU"]
RUNS, MEM = int(os.environ["RUNS"]), int(os.environ["MEMORY"])
TMP = tempfile.mkdtemp(prefix="oxvirt-bench-")
CMDLINE = ("oxtest.checks=e820,acpi,smp,rtc oxtest.cpus=1 oxtest.mem=%d "
           "oxtest.epoch=%d oxtest.pci=1 oxtest.then=%%s" % (MEM, int(time.time())))
# QEMU 7.2 -cpu host aborts on MSR 0x10a on this kind of host.
QCPU = ["-cpu", "host,-arch-capabilities"]
QBASE = [QEMU, "-enable-kvm", "-m", str(MEM), "-smp", "1", "-nodefaults",
         "-display", "none", "-no-user-config"] + QCPU

def wait_line(proc, stream, needle, timeout=60.0):
    """Reads `stream` until a line containing `needle`; returns the time."""
    end = time.monotonic() + timeout
    buf = b""
    fd = stream.fileno()
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if not r:
            if proc.poll() is not None:
                return None
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        buf += chunk
        if needle.encode() in buf:
            return time.monotonic()
    return None

def stop(p):
    try:
        p.kill()
    except ProcessLookupError:
        pass
    p.wait()

JAIL = os.path.join(TMP, "jail")
os.makedirs(JAIL)
SANDBOX = ["--sandbox", "seccomp,user=65534:65534,jail=%s" % JAIL]

def vmm_to_vcpus(extra=()):
    t0 = time.monotonic()
    p = subprocess.Popen([VMM, "--kernel", ELF, "--cmdline", CMDLINE % "halt",
                          "--memory", str(MEM), "--serial", "null"] + list(extra),
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=dict(os.environ, OXVIRT_VMM_LOG="info"))
    t = wait_line(p, p.stderr, "starting 1 vCPUs")
    stop(p)
    return None if t is None else t - t0

def qmp(path, timeout=30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            f = s.makefile("rw")
            f.readline()
            for cmd in ("qmp_capabilities", "query-status"):
                f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
                while True:
                    v = json.loads(f.readline())
                    if "return" in v or "error" in v:
                        break
            s.close()
            return True
        except (OSError, ValueError):
            time.sleep(0.002)
    return False

def qemu_to_vcpus():
    sock = os.path.join(TMP, "qmp.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    t0 = time.monotonic()
    p = subprocess.Popen(QBASE + ["-M", "microvm", "-S", "-kernel", ELF,
                                  "-append", CMDLINE % "halt",
                                  "-qmp", "unix:%s,server=on,wait=off" % sock],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    ok = qmp(sock)
    t = time.monotonic()
    stop(p)
    return t - t0 if ok else None

def to_first_pass(argv):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    t = wait_line(p, p.stdout, "PASS")
    stop(p)
    return None if t is None else t - t0

VMM_GUEST = [VMM, "--kernel", ELF, "--cmdline", CMDLINE % "halt", "--memory", str(MEM),
             "--serial", "stdio"]
def qemu_guest(machine, then="halt"):
    return QBASE + ["-M", machine, "-kernel", ELF, "-append", CMDLINE % then,
                    "-serial", "stdio", "-monitor", "none"]

def rss_beyond_ram(argv):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        if wait_line(p, p.stdout, "DONE", 120) is None:
            return None
        total = ram = 0
        size = None
        with open("/proc/%d/smaps" % p.pid) as f:
            for line in f:
                parts = line.split()
                if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    size = hi - lo
                elif parts[0] == "Rss:":
                    kb = int(parts[1])
                    total += kb
                    if size is not None and size >= MEM << 20:
                        ram += kb
        return (total - ram) / 1024.0
    finally:
        stop(p)

def median(f, n=RUNS):
    vals = [v for v in (f() for _ in range(n)) if v is not None]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)

def fmt(v, unit):
    return "n/a" if v is None else ("%.1f ms" % (v * 1000) if unit == "ms" else "%.1f MiB" % v)

def ratio(a, b):
    return "n/a" if a is None or b is None or b == 0 else "%.2f" % (a / b)

rows = []
a_vmm = median(vmm_to_vcpus); a_q = median(qemu_to_vcpus)
a_sb = median(lambda: vmm_to_vcpus(SANDBOX))
rows.append(("(a) start -> vCPUs ready", "oxvirt-vmm", a_vmm, "ms", None))
rows.append(("", "oxvirt-vmm --sandbox", a_sb, "ms", a_vmm[0]))
rows.append(("", "qemu microvm -S + QMP query-status", a_q, "ms", a_vmm[0]))
b_vmm = median(lambda: to_first_pass(VMM_GUEST))
b_mv = median(lambda: to_first_pass(qemu_guest("microvm")))
b_q35 = median(lambda: to_first_pass(qemu_guest("q35")))
b_sb = median(lambda: to_first_pass(VMM_GUEST + SANDBOX))
rows.append(("(b) start -> first PASS", "oxvirt-vmm", b_vmm, "ms", None))
rows.append(("", "oxvirt-vmm --sandbox", b_sb, "ms", b_vmm[0]))
rows.append(("", "qemu -M microvm", b_mv, "ms", b_vmm[0]))
rows.append(("", "qemu -M q35", b_q35, "ms", b_vmm[0]))
n = max(3, RUNS // 3)
c_vmm = median(lambda: rss_beyond_ram(VMM_GUEST), n)
c_mv = median(lambda: rss_beyond_ram(qemu_guest("microvm")), n)
c_q35 = median(lambda: rss_beyond_ram(qemu_guest("q35")), n)
c_sb = median(lambda: rss_beyond_ram(VMM_GUEST + SANDBOX), n)
rows.append(("(c) RSS beyond guest RAM", "oxvirt-vmm", c_vmm, "MiB", None))
rows.append(("", "oxvirt-vmm --sandbox", c_sb, "MiB", c_vmm[0]))
rows.append(("", "qemu -M microvm", c_mv, "MiB", c_vmm[0]))
rows.append(("", "qemu -M q35", c_q35, "MiB", c_vmm[0]))

print("oxvirt-vmm bench: %d runs, %d MiB guest, test guest %s" % (RUNS, MEM, ELF))
print("%-26s %-36s %12s %6s %s" % ("measure", "monitor", "median", "runs", "oxvirt-vmm/this"))
for what, who, (v, k), unit, ours in rows:
    print("%-26s %-36s %12s %6d %s" % (what, who, fmt(v, unit), k,
                                       "" if ours is None else ratio(ours, v)))
PY
