#!/usr/bin/python3
"""Per-call latency of python-libvirt calls against libvirt RPC sockets,
and the whole-process time of `virsh list --all`.

usage: rpc_bench.py ROUNDS VIRSH_ROUNDS LABEL=URI...

One client process drives every server with the same calls; each
measurement is preceded by a warm-up, and the servers take turns call by
call (the order alternating every round), so that a change in the
machine's load hits all of them alike.  A whole connection (open,
listAllDomains, close: the handshake and close procedures that
`virsh list --all` issues too) is timed the same way in-process, then
`virsh list --all` itself, whose time is mostly virsh's own start-up.

Prints one line per measurement: LABEL NAME MEDIAN_US.
"""
import statistics
import subprocess
import sys
import time
import uuid

import libvirt

rounds, virsh_rounds = int(sys.argv[1]), int(sys.argv[2])
WARMUP = 20


def xml(name):
    return f"""<domain type='kvm'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""


class Target:
    def __init__(self, label, uri):
        self.label, self.uri = label, uri
        self.conn = libvirt.open(uri)
        self.keep = None
        self.n = 0

    def list_all(self):
        self.conn.listAllDomains()

    def info(self):
        self.keep.info()

    def define_undefine(self):
        self.n += 1
        self.conn.defineXML(xml(f"rpcbench-{self.n}")).undefine()

    def connection(self):
        c = libvirt.open(self.uri)
        c.listAllDomains()
        c.close()

    def virsh(self):
        subprocess.run(
            ["virsh", "-c", self.uri, "list", "--all"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )


def interleaved(targets, name, fn, n, warmup=WARMUP):
    if n == 0:
        return
    for _ in range(warmup):
        for t in targets:
            fn(t)
    samples = {t.label: [] for t in targets}
    for i in range(n):
        for t in targets if i % 2 == 0 else targets[::-1]:
            start = time.perf_counter()
            fn(t)
            samples[t.label].append(time.perf_counter() - start)
    for t in targets:
        print(t.label, name, f"{statistics.median(samples[t.label]) * 1e6:.1f}")


targets = [Target(*arg.split("=", 1)) for arg in sys.argv[3:]]
try:
    for t in targets:
        t.keep = t.conn.defineXML(xml("rpcbench-keep"))
    interleaved(targets, "listAllDomains", Target.list_all, rounds)
    interleaved(targets, "info", Target.info, rounds)
    interleaved(targets, "define+undefine", Target.define_undefine, rounds, warmup=5)
finally:
    for t in targets:
        if t.keep is not None:
            t.keep.undefine()
interleaved(targets, "connection", Target.connection, max(rounds // 5, 1), warmup=5)
interleaved(targets, "virsh", Target.virsh, virsh_rounds, warmup=2)
