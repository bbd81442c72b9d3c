#!/usr/bin/python3
"""Per-call latency of the libvirt-dbus API on one or more D-Bus buses.

usage: api_bench.py ROUNDS CREATES GUEST_ELF NAME_PREFIX LABEL=BUS_ADDRESS...

Against whatever owns org.libvirt on each BUS_ADDRESS (oxvirtd, or
libvirt-dbus in front of libvirtd), measures the median wall time of:
  ListDomains(0), Domain.GetState(0), DomainDefineXML + Domain.Undefine(0)
with 1 and with 100 domains of ours defined, then DomainCreateXML of a
transient domain booting GUEST_ELF (returning with the guest running),
each followed by an unmeasured Domain.Destroy().

Fairness: one client process drives every server with the same calls
(python-dbus's `call_blocking`, without proxy objects, so that the client's
own cost is small beside the servers'), each measurement is preceded by a
warm-up, and the servers take turns call by call (the order alternating
every round), so that a change in the machine's load hits all of them
alike.  Two floors are measured the same way: the round trip to the bus
daemon itself (org.freedesktop.DBus.GetId), and Peer.Ping to the server,
which its D-Bus library answers without any libvirt work (GDBus in
libvirt-dbus, zbus in oxvirtd): the cost of any answered call through the
bus.

Prints one line per measurement: LABEL NAME MEDIAN_US.  Every domain it
defines or creates is removed before it exits.
"""
import statistics
import sys
import time
import uuid

import dbus

rounds, creates, guest, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
WARMUP = 20
CONNECT = ("/org/libvirt/QEMU", "org.libvirt.Connect")
DOMAIN = "org.libvirt.Domain"


class Target:
    def __init__(self, label, address):
        self.label = label
        self.bus = dbus.bus.BusConnection(address)
        self.defined = []  # object paths of the persistent domains we defined
        self.created = []
        self.counter = 0

    def call(self, path, iface, method, sig="", args=()):
        return self.bus.call_blocking("org.libvirt", path, iface, method, sig, args)

    def connect(self, method, sig="", args=()):
        return self.call(CONNECT[0], CONNECT[1], method, sig, args)

    def floor(self):
        self.bus.call_blocking(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId", "", ()
        )

    def ping(self):
        self.call(CONNECT[0], "org.freedesktop.DBus.Peer", "Ping")

    def list_domains(self):
        self.connect("ListDomains", "u", (0,))

    def get_state(self):
        self.call(self.defined[0], DOMAIN, "GetState", "u", (0,))

    def define_undefine(self):
        self.counter += 1
        path = self.connect("DomainDefineXML", "s", (define_xml(f"{prefix}-du-{self.counter}"),))
        self.call(path, DOMAIN, "Undefine", "u", (0,))

    def define(self, name):
        self.defined.append(self.connect("DomainDefineXML", "s", (define_xml(name),)))

    def create(self, i):
        t = time.perf_counter()
        path = self.connect("DomainCreateXML", "su", (create_xml(f"{prefix}-create-{i}"), 0))
        elapsed = time.perf_counter() - t
        self.created.append(path)
        state = self.call(path, DOMAIN, "GetState", "u", (0,))
        if int(state[0]) != 1:  # VIR_DOMAIN_RUNNING
            raise SystemExit(f"{self.label}: created domain not running: state {tuple(int(x) for x in state)}")
        self.call(path, DOMAIN, "Destroy", "u", (0,))
        self.created.remove(path)
        return elapsed

    def cleanup(self):
        for path in self.created:
            try:
                self.call(path, DOMAIN, "Destroy", "u", (0,))
            except dbus.DBusException:
                pass
        for path in self.defined:
            try:
                self.call(path, DOMAIN, "Undefine", "u", (0,))
            except dbus.DBusException:
                pass


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


def interleaved(targets, name, fn, n, warmup=WARMUP):
    """fn(target) -> seconds, or None to time the call itself."""
    if n == 0:
        return
    def once(t):
        start = time.perf_counter()
        r = fn(t)
        return r if r is not None else time.perf_counter() - start

    for _ in range(warmup):
        for t in targets:
            once(t)
    samples = {t.label: [] for t in targets}
    for i in range(n):
        order = targets if i % 2 == 0 else targets[::-1]
        for t in order:
            samples[t.label].append(once(t))
    for t in targets:
        results.append((t.label, name, statistics.median(samples[t.label]) * 1e6))


targets = [Target(*arg.split("=", 1)) for arg in sys.argv[5:]]
results = []
try:
    interleaved(targets, "floor", Target.floor, rounds)
    interleaved(targets, "ping", Target.ping, rounds)
    for t in targets:
        t.define(f"{prefix}-keep")
    for suffix in ("1", "100"):
        if suffix == "100":
            for t in targets:
                for i in range(1, 100):
                    t.define(f"{prefix}-many-{i}")
        interleaved(targets, f"ListDomains/{suffix}", Target.list_domains, rounds)
        interleaved(targets, f"GetState/{suffix}", Target.get_state, rounds)
        interleaved(targets, f"Define+Undefine/{suffix}", Target.define_undefine, rounds, warmup=5)
    counter = iter(range(10**6))
    interleaved(targets, "DomainCreateXML", lambda t: t.create(next(counter)), creates, warmup=1)
finally:
    for t in targets:
        t.cleanup()

for label, name, v in results:
    print(label, name, f"{v:.1f}")
