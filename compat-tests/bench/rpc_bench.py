#!/usr/bin/python3
"""Per-call latency of python-libvirt calls against one libvirt RPC socket.

usage: rpc_bench.py URI ROUNDS
Prints one line per measurement: NAME MEDIAN_US.
"""
import statistics
import sys
import time
import uuid

import libvirt

uri, rounds = sys.argv[1], int(sys.argv[2])
conn = libvirt.open(uri)


def xml(name):
    return f"""<domain type='kvm'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""


def measure(fn):
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


keep = conn.defineXML(xml("bench-keep"))
try:
    results = {
        "listAllDomains": measure(lambda: conn.listAllDomains()),
        "info": measure(lambda: keep.info()),
    }
    n = [0]

    def define_undefine():
        n[0] += 1
        conn.defineXML(xml(f"bench-{n[0]}")).undefine()

    results["define+undefine"] = measure(define_undefine)
finally:
    keep.undefine()
for k, v in results.items():
    print(k, f"{v:.1f}")
