#!/usr/bin/env python3
"""Host side of testos's net check, run inside the network namespace that holds the tap.

  net-host.py SERIAL_LOG IFNAME GUEST_IP NSEND NRECV [NUDP [BOOT]]

Waits for the guest's "INFO net-.. ready" line (or "INFO e1000-.. ready"), sends NSEND broadcast frames of
ethertype 0x88b5 ("OXNET host <n>"), collects NRECV such frames from the guest, sends
NUDP UDP datagrams to GUEST_IP port 7 from as many source ports (separate flows, which
a multi-queue tap spreads over its queues by their hash) and waits for each echo, sends
3 ICMP echo requests to GUEST_IP, and 2 more once the guest prints "INFO net-serve for".
BOOT (default 1) says which boot's lines to wait for when the log is appended to
across reboots. Exit 0 when every frame, datagram and echo reply arrived."""
import os
import re
import socket
import struct
import sys
import time


def csum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xFFFF) + (t >> 16)
    return ~t & 0xFFFF


def ping(addr, count):
    """ICMP echo through a raw socket; returns the number of matching replies."""
    p = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    p.settimeout(2)
    ident, ok = os.getpid() & 0xFFFF, 0
    for seq in range(1, count + 1):
        body = b"oxvirt ping %d" % seq
        h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        h = struct.pack("!BBHHH", 8, 0, csum(h + body), ident, seq)
        t0 = time.time()
        p.sendto(h + body, (addr, 0))
        while time.time() - t0 < 2:
            try:
                r = p.recv(2048)
            except socket.timeout:
                break
            ihl = (r[0] & 15) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", r[ihl:ihl + 8])
            if typ == 0 and rid == ident and rseq == seq and r[ihl + 8:] == body:
                ok += 1
                print("echo reply seq %d from %s in %.1f ms" % (seq, addr, (time.time() - t0) * 1000))
                break
    return ok


def udp_flows(addr, count):
    """One datagram per source port to addr:7; returns how many came back."""
    ok = 0
    for i in range(count):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        u.bind(("", 0))
        body = b"OXNET udp %d" % (i + 1)
        u.sendto(body, (addr, 7))
        try:
            r, src = u.recvfrom(2048)
            if r == body and src == (addr, 7):
                ok += 1
        except socket.timeout:
            pass
        u.close()
    print("udp echo %d of %d" % (ok, count))
    return ok


def wait(log, rx, t=60, count=1):
    end = time.time() + t
    while time.time() < end:
        if len(re.findall(rx, open(log, errors="replace").read(), re.M)) >= count:
            return True
        time.sleep(0.02)
    return False


def main():
    log, ifname, ip, nsend, nrecv = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    nudp = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    boot = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
    s.bind((ifname, 0x88B5))
    s.settimeout(0.2)
    mymac = s.getsockname()[4]
    # The guest sends its frames as soon as it boots: whoever starts the guest
    # waits for this line so that none is sent before the socket is bound.
    print("listening", flush=True)
    if not wait(log, r"^INFO (?:net|e1000)-\S+ ready", count=boot):
        print("guest not ready")
        return 1
    for i in range(nsend):
        s.send(b"\xff" * 6 + mymac + b"\x88\xb5" + (b"OXNET host %d" % (i + 1)).ljust(46, b"\0"))
    got = []
    end = time.time() + 10
    while len(got) < nrecv and time.time() < end:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        if f[6:12] != mymac:
            got.append(f[14:40].split(b"\0")[0].decode(errors="replace"))
    print("received %d test frames: %s" % (len(got), got))
    u = udp_flows(ip, nudp)
    r1 = ping(ip, 3)
    r2 = ping(ip, 2) if wait(log, r"^INFO net-serve for", 30, boot) else 0
    return 0 if len(got) >= nrecv and u == nudp and r1 == 3 and r2 == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
