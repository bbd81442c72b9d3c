#!/usr/bin/python3
"""Virtual networks timed through python3-libvirt against several daemons,
each in a network namespace of its own with an "outside" namespace behind
a veth pair (10.99.0.1 on the daemon's side, 10.99.0.2 outside):

  net-start          virNetworkCreate of a defined NAT network as libvirt's
                     default is (bridge with stp='on' delay='0',
                     192.168.122.1/24, DHCP range .2-.254)
  net-destroy        virNetworkDestroy of it
  lease-api          guest start -> the network's DHCP lease for the guest's
                     MAC: the clock starts at virDomainCreate and stops when
                     virNetworkGetDHCPLeases(mac) returns it (polled every
                     10 ms); a fresh MAC, hence a fresh lease, every round.
                     On a second NAT network (192.168.123.0/24) without the
                     two fixed waits that are neither the daemon's nor the
                     VMM's: its bridge has stp='off' (with STP the kernel
                     holds a new port in listening and learning for 2 x 2 s,
                     its minimum forward delay) and its dnsmasq has no-ping
                     (<dnsmasq:options>; dnsmasq otherwise pings a new
                     address for ~3 s before offering it)
  lease-serial       the same start -> the guest's "dhcp lease" line in its
                     serial log file (polled every 10 ms)
  lease-dflt-api     lease-api and lease-serial on the default-like network
  lease-dflt-serial  (STP and dnsmasq's ping included)
  udp-nat            UDP from the guest (on the second network) through the
                     NAT to a receiver in the outside namespace: MB/s
                     (10^6 bytes of UDP payload) counted by that receiver,
                     from its first datagram to its last
  udp-guest          what the guest says it sent (its BENCH line), MB/s

The guest is compat-tests/guest/testos booted as a kernel (it has a DHCP
client and a UDP sender, no TCP stack). The daemons are measured in turn,
round by round, the order alternating, after one untimed network start and
one untimed guest each; every value printed is a median.
Prints "LABEL NAME MEDIAN ROUNDS-THAT-SUCCEEDED" lines; per-round UDP
details and failures go to stderr.

usage: network_bench.py ROUNDS KERNEL WORKDIR LABEL,OUTSIDE-NETNS,URI ...
       network_bench.py recv ADDR PORT IDLE-SECONDS TOTAL-SECONDS
           (the receiver; run inside the outside namespace)
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import time

MS = 3000           # how long each guest sends
LEN = 1472          # UDP payload per datagram (a 1500-byte IP packet)
DEST = ("10.99.0.2", 5001)
NET = "oxbench"     # NAT network as libvirt's default
NETF = "oxbenchf"   # NAT network, STP off, dnsmasq no-ping


def receiver(addr, port, idle, total):
    """Counts UDP payload bytes; prints "bytes datagrams first last"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((addr, port))
    print("ready", flush=True)
    buf = bytearray(65536)
    recv_into, now = s.recv_into, time.monotonic
    got = n = 0
    first = last = 0.0
    s.settimeout(total)
    try:
        k = recv_into(buf)
        first = last = now()
        got, n = k, 1
        s.settimeout(idle)
        while True:
            got += recv_into(buf)
            last = now()
            n += 1
    except (socket.timeout, OSError):
        pass
    print(got, n, "%.6f" % first, "%.6f" % last, flush=True)


def udp_rcvbuf_errors(ns):
    """UDP RcvbufErrors of the namespace (datagrams the receiver dropped)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"],
                         capture_output=True, text=True).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("Udp:")]
    if len(rows) < 2:
        return 0
    return int(dict(zip(rows[0][1:], rows[1][1:])).get("RcvbufErrors", 0))


if len(sys.argv) > 1 and sys.argv[1] == "recv":
    receiver(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    sys.exit(0)

import libvirt  # noqa: E402  (the receiver does not need it)
import signal  # noqa: E402


def interrupted(*_):
    raise SystemExit(130)


# network.sh stops an interrupted run with SIGTERM (SIGINT is ignored in
# background jobs); either tears down the guests and networks (finally).
signal.signal(signal.SIGTERM, interrupted)
signal.signal(signal.SIGINT, interrupted)

libvirt.registerErrorHandler(lambda *_: None, None)
rounds = int(sys.argv[1])
kernel = sys.argv[2]
work = sys.argv[3]


class Target:
    def __init__(self, spec):
        self.label, self.outns, uri = spec.split(",", 2)
        self.conn = libvirt.open(uri)
        self.res = {}

    def add(self, name, value):
        self.res.setdefault(name, []).append(value)


def net_xml(name, bridge, subnet, fast):
    opts = "" if not fast else (
        "<dnsmasq:options><dnsmasq:option value='no-ping'/></dnsmasq:options>")
    stp = "off" if fast else "on"
    return f"""<network xmlns:dnsmasq='http://libvirt.org/schemas/network/dnsmasq/1.0'>
  <name>{name}</name>
  <forward mode='nat'/>
  <bridge name='{bridge}' stp='{stp}' delay='0'/>
  <ip address='192.168.{subnet}.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.{subnet}.2' end='192.168.{subnet}.254'/></dhcp>
  </ip>
  {opts}
</network>"""


def dom_xml(name, net, mac, log, cmdline):
    # virtio-non-transitional: the test guest drives modern virtio-pci only
    # (QEMU's plain virtio-net-pci shows the transitional device id).
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><kernel>{kernel}</kernel>
    <cmdline>{cmdline}</cmdline></os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <serial type='file'><source path='{log}'/></serial>
    <interface type='network'><source network='{net}'/><mac address='{mac}'/>
      <model type='virtio-non-transitional'/></interface>
    <memballoon model='none'/>
  </devices>
</domain>"""


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError:
        return ""


def drop_domain(dom):
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError:
        pass
    try:
        dom.undefine()
    except libvirt.libvirtError:
        pass


def fresh_network(conn, xml, name):
    try:
        n = conn.networkLookupByName(name)
        if n.isActive():
            n.destroy()
        n.undefine()
    except libvirt.libvirtError:
        pass
    return conn.networkDefineXML(xml)


def lease_round(t, net, kind, r, label):
    """One guest start -> lease; returns (api seconds, serial seconds)."""
    mac = "52:54:00:b0:%02x:%02x" % (kind, r)
    log = os.path.join(work, "%s-%s-%d.log" % (t.label, label, r))
    cmd = ("oxtest.checks=pci,net oxtest.ip=dhcp oxtest.netsend=0 "
           "oxtest.then=net-serve oxtest.netserve=60")
    dom = t.conn.defineXML(dom_xml("nb-%s-%d" % (label, r), net.name(), mac, log, cmd))
    api = serial = None
    try:
        t0 = time.perf_counter()
        dom.create()
        end = t0 + 60
        while (api is None or serial is None) and time.perf_counter() < end:
            if api is None and net.DHCPLeases(mac, 0):
                api = time.perf_counter() - t0
            if serial is None and " dhcp lease " in read(log):
                serial = time.perf_counter() - t0
            if api is None or serial is None:
                time.sleep(0.01)
    finally:
        drop_domain(dom)
    if api is None or serial is None:
        print("%s: %s round %d: no lease within 60 s (api %s, serial %s); guest log %s:\n%s"
              % (t.label, label, r, api, serial, log, read(log)[-2000:]), file=sys.stderr)
    return api, serial


BENCH = re.compile(r"BENCH \S+ udp \d+B .* MB/s=([0-9.]+)")


def udp_round(t, r):
    """A guest sends UDP through the NAT for MS ms; returns (receiver MB/s,
    guest's MB/s)."""
    mac = "52:54:00:b0:03:%02x" % r
    log = os.path.join(work, "%s-udp-%d.log" % (t.label, r))
    cmd = ("oxtest.checks=pci,net,netbench oxtest.ip=dhcp oxtest.netsend=0 "
           "oxtest.netbench=udp:%d:%d:%s:%d oxtest.then=poweroff" % ((MS, LEN) + DEST))
    drops0 = udp_rcvbuf_errors(t.outns)
    rx = subprocess.Popen(["ip", "netns", "exec", t.outns, "/usr/bin/python3", __file__, "recv",
                           DEST[0], str(DEST[1]), "1.0", "60"],
                          stdout=subprocess.PIPE, text=True)
    try:
        if rx.stdout.readline().strip() != "ready":
            raise SystemExit("%s: the UDP receiver did not start" % t.label)
        dom = t.conn.defineXML(dom_xml("nb-udp-%d" % r, NETF, mac, log, cmd))
        try:
            dom.create()
            out = rx.stdout.readline().split()
            end = time.monotonic() + 15
            while "DONE" not in read(log) and time.monotonic() < end:
                time.sleep(0.05)
        finally:
            drop_domain(dom)
    finally:
        if rx.poll() is None:
            rx.kill()
        rx.wait()
    drops = udp_rcvbuf_errors(t.outns) - drops0
    m = BENCH.search(read(log))
    guest = float(m.group(1)) if m else None
    got = int(out[0]) if out else 0
    if got == 0 or m is None:
        print("%s: udp round %d: receiver got %d bytes; guest log %s:\n%s"
              % (t.label, r, got, log, read(log)[-2000:]), file=sys.stderr)
        return None, guest
    span = float(out[3]) - float(out[2])
    mbs = got / 1e6 / span if span > 0 else None
    print("%s: udp round %d: received %d datagrams, %.1f MB in %.3f s = %.1f MB/s; "
          "guest says %s MB/s; receiver socket drops %d"
          % (t.label, r, int(out[1]), got / 1e6, span, mbs or 0, guest, drops), file=sys.stderr)
    return mbs, guest


targets = [Target(a) for a in sys.argv[4:]]


def each_round(n):
    """(round, target) in turn, the order alternating from round to round."""
    for r in range(n):
        for t in (targets if r % 2 == 0 else targets[::-1]):
            yield r, t


try:
    for t in targets:
        t.net = fresh_network(t.conn, net_xml(NET, "virbr1", 122, False), NET)
        t.netf = fresh_network(t.conn, net_xml(NETF, "virbr2", 123, True), NETF)
        # Warm-up: libvirt sets up its global iptables chains at the first
        # start in a namespace; neither daemon is timed on that.
        t.net.create()
        t.net.destroy()

    # 1. net-start / net-destroy
    for r, t in each_round(rounds):
        t.add("net-start", timed(t.net.create))
        t.add("net-destroy", timed(t.net.destroy))

    for t in targets:
        t.net.create()
        t.netf.create()
    # Warm-up: one guest each (loads the VMM, the firmware, ...), not counted.
    for t in targets:
        lease_round(t, t.netf, 0xf, 0, "warmup")

    # 2. guest start -> DHCP lease, without and with STP and dnsmasq's ping
    for r, t in each_round(rounds):
        api, serial = lease_round(t, t.netf, 1, r, "lease")
        if api is not None:
            t.add("lease-api", api)
        if serial is not None:
            t.add("lease-serial", serial)
    for r, t in each_round(rounds):
        api, serial = lease_round(t, t.net, 2, r, "leasedflt")
        if api is not None:
            t.add("lease-dflt-api", api)
        if serial is not None:
            t.add("lease-dflt-serial", serial)

    # 3. UDP guest -> outside through the NAT
    for r, t in each_round(rounds):
        mbs, guest = udp_round(t, r)
        if mbs is not None:
            t.add("udp-nat", mbs)
        if guest is not None:
            t.add("udp-guest", guest)
finally:
    for t in targets:
        for dom in t.conn.listAllDomains(0):
            if dom.name().startswith("nb-"):
                drop_domain(dom)
        for name in (NET, NETF):
            try:
                n = t.conn.networkLookupByName(name)
                if n.isActive():
                    n.destroy()
                n.undefine()
            except libvirt.libvirtError:
                pass

for t in targets:
    for name, vals in t.res.items():
        print(t.label, name, "%.6f" % statistics.median(vals), len(vals))
