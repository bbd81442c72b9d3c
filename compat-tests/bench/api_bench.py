#!/usr/bin/python3
"""Per-call latency of the libvirt-dbus API on one D-Bus bus.

usage: api_bench.py BUS_ADDRESS ROUNDS CREATES GUEST_ELF [NAME_PREFIX]

Against whatever owns org.libvirt on BUS_ADDRESS (oxvirtd, or libvirt-dbus
in front of libvirtd), measures the median wall time of:
  ListDomains(0), Domain.GetState(0), DomainDefineXML + Domain.Undefine(0)
with 1 and with 100 domains of ours defined, then DomainCreateXML of a
transient domain booting GUEST_ELF (returning with the guest running),
each followed by an unmeasured Domain.Destroy().
Prints one line per measurement: NAME MEDIAN_US.  Every domain it defines
or creates is removed before it exits.
"""
import statistics
import sys
import time
import uuid

import dbus

bus_address, rounds, creates, guest = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
prefix = sys.argv[5] if len(sys.argv) > 5 else "apibench"

bus = dbus.bus.BusConnection(bus_address)
connect = dbus.Interface(bus.get_object("org.libvirt", "/org/libvirt/QEMU", introspect=False), "org.libvirt.Connect")


def domain(path):
    return dbus.Interface(bus.get_object("org.libvirt", path, introspect=False), "org.libvirt.Domain")


def define_xml(name):
    return f"""<domain type='kvm'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os></domain>"""


def create_xml(name):
    return f"""<domain type='kvm'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{guest}</kernel>
<cmdline>oxtest.checks=e820 oxtest.then=halt</cmdline></os>
<on_poweroff>destroy</on_poweroff>
<devices><serial type='null'/></devices></domain>"""


def median_us(samples):
    return statistics.median(samples) * 1e6


def measure(fn, n=rounds):
    samples = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return median_us(samples)


defined = []  # object paths of the persistent domains we defined
counter = [0]


def define_undefine():
    counter[0] += 1
    path = connect.DomainDefineXML(define_xml(f"{prefix}-du-{counter[0]}"))
    domain(path).Undefine(dbus.UInt32(0))


def per_call(suffix, keep):
    d = domain(keep)
    return {
        f"ListDomains/{suffix}": measure(lambda: connect.ListDomains(dbus.UInt32(0))),
        f"GetState/{suffix}": measure(lambda: d.GetState(dbus.UInt32(0))),
        f"Define+Undefine/{suffix}": measure(define_undefine),
    }


results = {}
created = []
try:
    defined.append(connect.DomainDefineXML(define_xml(f"{prefix}-keep")))
    results.update(per_call("1", defined[0]))
    for i in range(1, 100):
        defined.append(connect.DomainDefineXML(define_xml(f"{prefix}-many-{i}")))
    results.update(per_call("100", defined[0]))

    samples = []
    for i in range(creates):
        t = time.perf_counter()
        path = connect.DomainCreateXML(create_xml(f"{prefix}-create-{i}"), dbus.UInt32(0))
        samples.append(time.perf_counter() - t)
        created.append(path)
        state = domain(path).GetState(dbus.UInt32(0))
        if int(state[0]) != 1:  # VIR_DOMAIN_RUNNING
            raise SystemExit(f"created domain not running: state {tuple(int(x) for x in state)}")
        domain(path).Destroy(dbus.UInt32(0))
        created.remove(path)
    results["DomainCreateXML"] = median_us(samples)
finally:
    for path in created:
        try:
            domain(path).Destroy(dbus.UInt32(0))
        except dbus.DBusException:
            pass
    for path in defined:
        try:
            domain(path).Undefine(dbus.UInt32(0))
        except dbus.DBusException:
            pass

for k, v in results.items():
    print(k, f"{v:.1f}")
