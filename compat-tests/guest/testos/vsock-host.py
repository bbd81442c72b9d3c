#!/usr/bin/env python3
"""A minimal vhost-user virtio-vsock device backend, so that testos's vsock check can run
under QEMU's vhost-user-vsock-pci on a machine without /dev/vhost-vsock.

  vsock-host.py VHOST_USER_SOCKET GUEST_CID UDS_PREFIX

Listens on VHOST_USER_SOCKET for QEMU (started with -chardev socket,path=...,id=X
-device vhost-user-vsock-pci,chardev=X and shared guest memory). A stream the guest
opens to CID 2 port P is connected to the unix socket UDS_PREFIX_P (hybrid vsock, as
oxvirt-vmm exposes it); bytes flow both ways until either side closes. Handles the rx
(0) and tx (1) queues; the event queue stays in QEMU. Polls the rings every millisecond,
so it needs no guest interrupts and ignores kicks beyond waking up."""
import mmap
import os
import select
import socket
import struct
import sys
import time

F_VERSION_1 = 1 << 32
F_PROTOCOL_FEATURES = 1 << 30
PROTO_CONFIG = 1 << 9
HDR = struct.Struct("<QQIIIHHIII")   # src_cid dst_cid src_port dst_port len type op flags buf_alloc fwd_cnt
OP_REQUEST, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST = 1, 2, 3, 4, 5, 6, 7


def log(*a):
    print("vsock-host:", *a, flush=True)


class Mem:
    def __init__(self):
        self.regions = []   # (gpa, size, uva, map, offset)

    def set(self, payload, fds):
        for _, _, _, m, _ in self.regions:
            m.close()
        self.regions = []
        n = struct.unpack_from("<I", payload)[0]
        for i in range(n):
            gpa, size, uva, off = struct.unpack_from("<QQQQ", payload, 8 + 32 * i)
            m = mmap.mmap(fds[i], size + off, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            os.close(fds[i])
            self.regions.append((gpa, size, uva, m, off))

    def _find(self, addr, uva):
        for gpa, size, base_uva, m, off in self.regions:
            base = base_uva if uva else gpa
            if base <= addr < base + size:
                return m, off + addr - base
        raise ValueError("address 0x%x not in guest memory" % addr)

    def read(self, addr, n, uva=False):
        m, o = self._find(addr, uva)
        return m[o:o + n]

    def write(self, addr, data, uva=False):
        m, o = self._find(addr, uva)
        m[o:o + len(data)] = data


class Ring:
    def __init__(self):
        self.num = 0
        self.desc = self.avail = self.used = 0
        self.last_avail = 0
        self.call = None
        self.ready = False


class Device:
    def __init__(self, cid, prefix):
        self.cid, self.prefix = cid, prefix
        self.mem = Mem()
        self.rings = [Ring(), Ring()]
        self.conns = {}      # (guest port, host port) -> [socket, fwd_cnt, peer_buf_alloc]
        self.pending = []    # packets for the guest

    # --- rings -------------------------------------------------------------------
    def chain(self, r, head):
        out, n = [], 0
        i = head
        while True:
            addr, ln, flags, nxt = struct.unpack("<QIHH", self.mem.read(r.desc + 16 * i, 16))
            out.append((addr, ln, flags))
            n += 1
            if not flags & 1 or n > r.num:
                return out
            i = nxt

    def pop(self, r):
        idx = struct.unpack("<H", self.mem.read(r.avail + 2, 2))[0]
        if r.last_avail == idx:
            return None
        head = struct.unpack("<H", self.mem.read(r.avail + 4 + 2 * (r.last_avail % r.num), 2))[0]
        r.last_avail = (r.last_avail + 1) & 0xFFFF
        return head

    def push(self, r, head, length):
        uidx = struct.unpack("<H", self.mem.read(r.used + 2, 2))[0]
        self.mem.write(r.used + 4 + 8 * (uidx % r.num), struct.pack("<II", head, length))
        self.mem.write(r.used + 2, struct.pack("<H", (uidx + 1) & 0xFFFF))
        if r.call is not None:
            os.write(r.call, struct.pack("<Q", 1))

    # --- vsock -------------------------------------------------------------------
    def reply(self, h, op, data=b"", flags=0, fwd=0):
        self.pending.append(HDR.pack(2, h[0], h[3], h[2], len(data), 1, op, flags, 65536, fwd) + data)

    def packet(self, pkt):
        h = HDR.unpack_from(pkt)
        src_cid, dst_cid, sport, dport, ln, typ, op = h[:7]
        data = pkt[HDR.size:HDR.size + ln]
        key = (sport, dport)
        log("guest op %d %d:%d -> %d:%d len %d" % (op, src_cid, sport, dst_cid, dport, ln))
        if op == OP_REQUEST:
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect("%s_%d" % (self.prefix, dport))
            except OSError as e:
                log("connect failed:", e)
                self.reply(h, OP_RST)
                return
            s.setblocking(False)
            self.conns[key] = [s, 0, h[8], h]
            self.reply(h, OP_RESPONSE)
        elif op == OP_RW and key in self.conns:
            c = self.conns[key]
            c[0].setblocking(True)
            c[0].sendall(data)
            c[0].setblocking(False)
            c[1] += len(data)
        elif op == OP_CREDIT_REQUEST and key in self.conns:
            self.reply(h, OP_CREDIT_UPDATE, fwd=self.conns[key][1])
        elif op in (OP_SHUTDOWN, OP_RST):
            c = self.conns.pop(key, None)
            if c:
                c[0].close()
            if op == OP_SHUTDOWN:
                self.reply(h, OP_RST)

    def poll(self):
        tx, rx = self.rings[1], self.rings[0]
        if tx.ready:
            while (head := self.pop(tx)) is not None:
                pkt = b"".join(self.mem.read(a, n) for a, n, f in self.chain(tx, head) if not f & 2)
                self.push(tx, head, 0)
                if len(pkt) >= HDR.size:
                    self.packet(pkt)
        for key, c in list(self.conns.items()):
            try:
                d = c[0].recv(4096)
            except BlockingIOError:
                continue
            if d:
                self.reply(c[3], OP_RW, d, fwd=c[1])
            else:
                self.reply(c[3], OP_SHUTDOWN, flags=3, fwd=c[1])
                c[0].close()
                del self.conns[key]
        while rx.ready and self.pending:
            head = self.pop(rx)
            if head is None:
                break
            pkt = self.pending.pop(0)
            off = 0
            for a, n, f in self.chain(rx, head):
                if f & 2 and off < len(pkt):
                    self.mem.write(a, pkt[off:off + n])
                    off += min(n, len(pkt) - off)
            self.push(rx, head, off)

    # --- vhost-user messages -----------------------------------------------------
    def message(self, req, payload, fds):
        if req == 1:                                   # GET_FEATURES
            return struct.pack("<Q", F_VERSION_1 | F_PROTOCOL_FEATURES)
        if req == 15:                                  # GET_PROTOCOL_FEATURES
            return struct.pack("<Q", PROTO_CONFIG)
        if req == 17:                                  # GET_QUEUE_NUM
            return struct.pack("<Q", 2)
        if req == 5:                                   # SET_MEM_TABLE
            self.mem.set(payload, fds)
        elif req == 8:                                 # SET_VRING_NUM
            i, n = struct.unpack_from("<II", payload)
            self.rings[i].num = n
        elif req == 9:                                 # SET_VRING_ADDR (user addresses)
            i, _, d, u, a, _ = struct.unpack_from("<IIQQQQ", payload)
            r = self.rings[i]
            r.desc = self.uva(d)
            r.used = self.uva(u)
            r.avail = self.uva(a)
        elif req == 10:                                # SET_VRING_BASE
            i, n = struct.unpack_from("<II", payload)
            self.rings[i].last_avail = n
        elif req == 11:                                # GET_VRING_BASE: stop the ring
            i, _ = struct.unpack_from("<II", payload)
            self.rings[i].ready = False
            return struct.pack("<II", i, self.rings[i].last_avail)
        elif req == 12:                                # SET_VRING_KICK
            i = struct.unpack_from("<Q", payload)[0] & 0xFF
            for fd in fds:
                os.set_blocking(fd, False)
                self.kicks.append(fd)
            self.rings[i].ready = True
        elif req == 13:                                # SET_VRING_CALL
            i = struct.unpack_from("<Q", payload)[0] & 0xFF
            self.rings[i].call = fds[0] if fds else None
        elif req == 24:                                # GET_CONFIG
            off, size, flags = struct.unpack_from("<III", payload)
            cfg = struct.pack("<Q", self.cid).ljust(256, b"\0")
            return struct.pack("<III", off, size, flags) + cfg[off:off + size]
        else:
            for fd in fds:
                os.close(fd)
        return None

    def uva(self, addr):
        # vring addresses arrive as QEMU virtual addresses: translate to guest-physical
        for gpa, size, base_uva, _, _ in self.mem.regions:
            if base_uva <= addr < base_uva + size:
                return gpa + addr - base_uva
        raise ValueError("vring address 0x%x not in guest memory" % addr)


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        d = s.recv(n - len(b))
        if not d:
            raise EOFError
        b += d
    return b


def main():
    path, cid, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    dev = Device(cid, prefix)
    dev.kicks = []
    srv = socket.socket(socket.AF_UNIX)
    if os.path.exists(path):
        os.unlink(path)
    srv.bind(path)
    srv.listen(1)
    conn, _ = srv.accept()
    log("QEMU connected")
    while True:
        rl, _, _ = select.select([conn] + dev.kicks, [], [], 0.001)
        for fd in dev.kicks:
            if fd in rl:
                try:
                    os.read(fd, 8)
                except BlockingIOError:
                    pass
        if conn in rl:
            try:
                hdr, fds, _, _ = socket.recv_fds(conn, 12, 8)
                if not hdr:
                    break
                hdr += recv_exact(conn, 12 - len(hdr))
                req, flags, size = struct.unpack("<III", hdr)
                payload = recv_exact(conn, size) if size else b""
            except (EOFError, ConnectionError):
                break
            r = dev.message(req, payload, list(fds))
            if r is not None:
                conn.sendall(struct.pack("<III", req, 0x1 | 0x4, len(r)) + r)
            elif flags & 0x8:                          # NEED_REPLY: ack 0
                conn.sendall(struct.pack("<IIIQ", req, 0x1 | 0x4, 8, 0))
        try:
            dev.poll()
        except ValueError as e:
            log(e)
    log("QEMU disconnected")


if __name__ == "__main__":
    main()
