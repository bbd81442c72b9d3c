//! virtio-vsock bridged to unix sockets (the "hybrid" scheme):
//!
//! - a guest stream to host CID 2 port P connects to the unix socket
//!   `<uds_path>_P`;
//! - a host program connects to `<uds_path>`, writes `CONNECT <port>\n`
//!   and, once the guest accepts, reads `OK <hostport>\n`; then the
//!   socket carries the stream.
//!
//! Flow control is credit based: every packet to the guest carries the
//! device's buffer size and the bytes it has passed on; data from the
//! host is only sent within the guest's advertised credit.

use std::collections::{HashMap, VecDeque};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_VSOCK;
use virtio_queue::QueueT;

use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice};
use crate::vmm::config::VsockConfig;
use crate::vmm::error::{Error, Result};
use crate::vmm::memory::GuestMemory;

pub const HOST_CID: u64 = 2;
const HDR_LEN: usize = 44;
// The socket type and operations stay here: `virtio_bindings` has no
// `virtio_vsock` module (Linux's `VIRTIO_VSOCK_TYPE_STREAM`, `VIRTIO_VSOCK_OP_*`).
const TYPE_STREAM: u16 = 1;
pub const OP_REQUEST: u16 = 1;
pub const OP_RESPONSE: u16 = 2;
pub const OP_RST: u16 = 3;
pub const OP_SHUTDOWN: u16 = 4;
pub const OP_RW: u16 = 5;
pub const OP_CREDIT_UPDATE: u16 = 6;
pub const OP_CREDIT_REQUEST: u16 = 7;
/// Bytes the device buffers per connection (its buf_alloc).
const BUF_ALLOC: u32 = 256 << 10;
/// Largest payload accepted from the guest in one packet.
const MAX_PAYLOAD: usize = 64 << 10;
/// Packets waiting for receive buffers before host reads pause.
const MAX_PENDING: usize = 256;
/// Connections at most.
const MAX_CONNS: usize = 1024;

const TOK_RX: u64 = 0;
const TOK_TX: u64 = 1;
const TOK_EV: u64 = 2;
const TOK_LISTENER: u64 = 3;
/// Tags of the fds registered per connection / per unannounced host
/// socket; the low 32 bits are a counter.
const TOK_CONN: u64 = 1 << 40;
const TOK_PENDING: u64 = 1 << 41;

/// A packet header (little endian on the wire).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hdr {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub ty: u16,
    pub op: u16,
    pub flags: u32,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Hdr {
    pub fn parse(b: &[u8; HDR_LEN]) -> Hdr {
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap_or([0; 4]));
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        Hdr {
            src_cid: u64_at(0),
            dst_cid: u64_at(8),
            src_port: u32_at(16),
            dst_port: u32_at(20),
            len: u32_at(24),
            ty: u16_at(28),
            op: u16_at(30),
            flags: u32_at(32),
            buf_alloc: u32_at(36),
            fwd_cnt: u32_at(40),
        }
    }

    pub fn bytes(&self) -> [u8; HDR_LEN] {
        let mut b = [0u8; HDR_LEN];
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.ty.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].copy_from_slice(&self.flags.to_le_bytes());
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        b
    }
}

/// `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET`: the guest drops every
/// connection and reads the CID again.
const EVENT_TRANSPORT_RESET: u32 = 0;

pub struct Vsock {
    cid: u64,
    uds: PathBuf,
    listener: Option<UnixListener>,
    home: Arc<Mutex<Option<UnixListener>>>,
    worker: Option<Worker>,
    /// The host ends of the guest's connections went away (a state image
    /// was taken, or the guest was restored from one): the next worker
    /// tells the guest, as a migrated guest is told.
    announce_reset: bool,
}

impl Vsock {
    pub fn new(cfg: &VsockConfig) -> Result<Self> {
        let _ = std::fs::remove_file(&cfg.uds_path);
        let l = UnixListener::bind(&cfg.uds_path)
            .map_err(Error::io(format!("binding {}", cfg.uds_path.display())))?;
        l.set_nonblocking(true)
            .map_err(Error::io("vsock listener"))?;
        Ok(Vsock {
            cid: cfg.cid,
            uds: cfg.uds_path.clone(),
            listener: Some(l),
            home: Arc::new(Mutex::new(None)),
            worker: None,
            announce_reset: false,
        })
    }

    pub fn listener_path(&self) -> PathBuf {
        self.uds.clone()
    }
}

struct Conn {
    stream: UnixStream,
    /// Port on the host side (CID 2) and on the guest side.
    host_port: u32,
    guest_port: u32,
    established: bool,
    peer_buf_alloc: u32,
    peer_fwd_cnt: u32,
    /// Bytes sent to the guest.
    rx_cnt: u32,
    /// Bytes from the guest written to the stream.
    fwd_cnt: u32,
    fwd_announced: u32,
    to_host: Vec<u8>,
    polled: bool,
    token: u64,
}

impl Conn {
    fn credit(&self) -> u32 {
        self.peer_buf_alloc
            .saturating_sub(self.rx_cnt.wrapping_sub(self.peer_fwd_cnt))
    }
}

struct VsockWorker {
    cid: u64,
    uds: PathBuf,
    listener: Option<UnixListener>,
    home: Arc<Mutex<Option<UnixListener>>>,
    mem: GuestMemory,
    rx: WorkQueue,
    tx: WorkQueue,
    ev: WorkQueue,
    irq: Arc<Interrupt>,
    /// Keyed by (host port, guest port).
    conns: HashMap<(u32, u32), Conn>,
    /// Host sockets that have not yet sent their CONNECT line.
    pending: HashMap<u64, (UnixStream, Vec<u8>)>,
    next_pending: u64,
    next_host_port: u32,
    next_token: u32,
    out: VecDeque<(Hdr, Vec<u8>)>,
    /// A transport reset event waits for an event buffer.
    announce_reset: bool,
}

fn mkhdr(cid: u64, c: &Conn, op: u16, len: u32, flags: u32) -> Hdr {
    Hdr {
        src_cid: HOST_CID,
        dst_cid: cid,
        src_port: c.host_port,
        dst_port: c.guest_port,
        len,
        ty: TYPE_STREAM,
        op,
        flags,
        buf_alloc: BUF_ALLOC,
        fwd_cnt: c.fwd_cnt,
    }
}

impl VsockWorker {
    fn alloc_token(&mut self) -> u64 {
        self.next_token = self.next_token.wrapping_add(1);
        TOK_CONN | u64::from(self.next_token)
    }

    fn rst_for(&mut self, h: &Hdr) {
        if h.op == OP_RST {
            return;
        }
        self.out.push_back((
            Hdr {
                src_cid: HOST_CID,
                dst_cid: self.cid,
                src_port: h.dst_port,
                dst_port: h.src_port,
                ty: TYPE_STREAM,
                op: OP_RST,
                ..Default::default()
            },
            Vec::new(),
        ));
    }

    fn close(&mut self, key: (u32, u32), poll: &Poll, send_rst: bool) {
        if let Some(c) = self.conns.remove(&key) {
            poll.remove(c.stream.as_raw_fd());
            if send_rst {
                let h = mkhdr(self.cid, &c, OP_RST, 0, 0);
                self.out.push_back((h, Vec::new()));
            }
        }
    }

    /// Handles every packet the guest transmitted.
    fn transmit(&mut self, poll: &Poll) {
        if !self.tx.queue.ready() {
            return;
        }
        let mut pkts = Vec::new();
        let mem = &self.mem;
        self.tx.process(mem, &self.irq, |chain| {
            if let Ok(mut r) = chain.reader(mem) {
                let mut hb = [0u8; HDR_LEN];
                if r.read_exact(&mut hb).is_ok() {
                    let h = Hdr::parse(&hb);
                    let n = (h.len as usize).min(MAX_PAYLOAD).min(r.available_bytes());
                    let mut data = vec![0u8; n];
                    if r.read_exact(&mut data).is_ok() {
                        pkts.push((h, data));
                    }
                }
            }
            0
        });
        for (h, data) in pkts {
            self.guest_packet(h, data, poll);
        }
    }

    fn guest_packet(&mut self, h: Hdr, data: Vec<u8>, poll: &Poll) {
        if h.src_cid != self.cid || h.dst_cid != HOST_CID || h.ty != TYPE_STREAM {
            self.rst_for(&h);
            return;
        }
        let key = (h.dst_port, h.src_port);
        if h.op == OP_REQUEST {
            if self.conns.contains_key(&key) || self.conns.len() >= MAX_CONNS {
                self.rst_for(&h);
                return;
            }
            let path = format!("{}_{}", self.uds.display(), h.dst_port);
            let Ok(stream) = UnixStream::connect(&path) else {
                self.rst_for(&h);
                return;
            };
            let _ = stream.set_nonblocking(true);
            let c = Conn {
                stream,
                host_port: h.dst_port,
                guest_port: h.src_port,
                established: true,
                peer_buf_alloc: h.buf_alloc,
                peer_fwd_cnt: h.fwd_cnt,
                rx_cnt: 0,
                fwd_cnt: 0,
                fwd_announced: 0,
                to_host: Vec::new(),
                polled: false,
                token: self.alloc_token(),
            };
            let resp = mkhdr(self.cid, &c, OP_RESPONSE, 0, 0);
            self.conns.insert(key, c);
            self.out.push_back((resp, Vec::new()));
            return;
        }
        let Some(c) = self.conns.get_mut(&key) else {
            self.rst_for(&h);
            return;
        };
        c.peer_buf_alloc = h.buf_alloc;
        c.peer_fwd_cnt = h.fwd_cnt;
        match h.op {
            OP_RESPONSE if !c.established => {
                c.established = true;
                let line = format!("OK {}\n", c.host_port);
                c.to_host.extend_from_slice(line.as_bytes());
                self.flush_to_host(key, poll);
            }
            OP_RW if c.established => {
                if c.to_host.len() + data.len() > BUF_ALLOC as usize {
                    // The guest ignored our credit.
                    self.close(key, poll, true);
                    return;
                }
                c.to_host.extend_from_slice(&data);
                self.flush_to_host(key, poll);
            }
            OP_CREDIT_REQUEST => {
                let h = mkhdr(self.cid, c, OP_CREDIT_UPDATE, 0, 0);
                c.fwd_announced = c.fwd_cnt;
                self.out.push_back((h, Vec::new()));
            }
            OP_CREDIT_UPDATE => {}
            OP_SHUTDOWN | OP_RST => {
                let rst = h.op == OP_SHUTDOWN;
                self.close(key, poll, rst);
            }
            _ => self.close(key, poll, true),
        }
    }

    /// Writes what the guest sent to the host socket, as far as it takes.
    fn flush_to_host(&mut self, key: (u32, u32), poll: &Poll) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        while !c.to_host.is_empty() {
            match c.stream.write(&c.to_host) {
                Ok(0) => break,
                Ok(n) => {
                    c.to_host.drain(..n);
                    if c.established {
                        c.fwd_cnt = c.fwd_cnt.wrapping_add(n as u32);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.close(key, poll, true);
                    return;
                }
            }
        }
        if c.fwd_cnt.wrapping_sub(c.fwd_announced) >= BUF_ALLOC / 4 {
            c.fwd_announced = c.fwd_cnt;
            let h = mkhdr(self.cid, c, OP_CREDIT_UPDATE, 0, 0);
            self.out.push_back((h, Vec::new()));
        }
        self.update_polling(poll);
    }

    /// Watches the host sockets that may be read now (credit left, room
    /// in the pending list) and stops watching the others.
    fn update_polling(&mut self, poll: &Poll) {
        let room = self.out.len() < MAX_PENDING;
        for c in self.conns.values_mut() {
            let want = c.established && room && c.credit() > 0;
            if want && !c.polled {
                c.polled = poll.add(c.stream.as_raw_fd(), c.token).is_ok();
            } else if !want && c.polled {
                poll.remove(c.stream.as_raw_fd());
                c.polled = false;
            }
        }
    }

    fn host_readable(&mut self, token: u64, poll: &Poll) {
        let Some(key) = self
            .conns
            .iter()
            .find(|(_, c)| c.token == token)
            .map(|(k, _)| *k)
        else {
            return;
        };
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let n = (c.credit() as usize).min(4096);
        let mut buf = vec![0u8; n];
        match c.stream.read(&mut buf) {
            Ok(0) => {
                // The host closed: tell the guest nothing more comes.
                let h = mkhdr(self.cid, c, OP_SHUTDOWN, 0, 3);
                poll.remove(c.stream.as_raw_fd());
                c.polled = false;
                c.established = false;
                self.out.push_back((h, Vec::new()));
            }
            Ok(n) => {
                buf.truncate(n);
                c.rx_cnt = c.rx_cnt.wrapping_add(n as u32);
                let h = mkhdr(self.cid, c, OP_RW, n as u32, 0);
                self.out.push_back((h, buf));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => self.close(key, poll, true),
        }
    }

    /// Moves queued packets into the guest's receive buffers, splitting
    /// payloads to fit.
    fn deliver(&mut self, poll: &Poll) {
        if !self.rx.queue.ready() {
            return;
        }
        let mut done = false;
        while let Some((mut h, mut data)) = self.out.pop_front() {
            let Some(chain) = self.rx.pop(&self.mem) else {
                self.out.push_front((h, data));
                break;
            };
            let head = chain.head_index();
            let mut len = 0;
            if let Ok(mut w) = chain.writer(&self.mem) {
                let room = w.available_bytes().saturating_sub(HDR_LEN);
                if w.available_bytes() >= HDR_LEN && (room > 0 || data.is_empty()) {
                    let rest = if data.len() > room {
                        data.split_off(room)
                    } else {
                        Vec::new()
                    };
                    h.len = data.len() as u32;
                    if w.write_all(&h.bytes()).is_ok() && w.write_all(&data).is_ok() {
                        len = (HDR_LEN + data.len()) as u32;
                    }
                    if !rest.is_empty() {
                        self.out.push_front((h, rest));
                    }
                }
            }
            self.rx.complete(&self.mem, head, len);
            done = true;
        }
        if done {
            self.rx.notify(&self.mem, &self.irq);
        }
        self.update_polling(poll);
    }

    fn accept(&mut self, poll: &Poll) {
        let Some(l) = &self.listener else {
            return;
        };
        while let Ok((s, _)) = l.accept() {
            if self.pending.len() >= 64 || s.set_nonblocking(true).is_err() {
                continue;
            }
            let id = self.next_pending & 0xffff_ffff;
            self.next_pending = self.next_pending.wrapping_add(1);
            if poll
                .add(s.as_raw_fd(), TOK_PENDING | (id & 0xffff_ffff))
                .is_ok()
            {
                self.pending.insert(id, (s, Vec::new()));
            }
        }
    }

    fn pending_readable(&mut self, id: u64, poll: &Poll) {
        let Some((s, line)) = self.pending.get_mut(&id) else {
            return;
        };
        let mut b = [0u8; 64];
        let n = match s.read(&mut b) {
            Ok(0) | Err(_) => {
                if let Some((s, _)) = self.pending.remove(&id) {
                    poll.remove(s.as_raw_fd());
                }
                return;
            }
            Ok(n) => n,
        };
        line.extend_from_slice(&b[..n]);
        let Some(end) = line.iter().position(|&c| c == b'\n') else {
            if line.len() > 64
                && let Some((s, _)) = self.pending.remove(&id)
            {
                poll.remove(s.as_raw_fd());
            }
            return;
        };
        let Some((stream, line)) = self.pending.remove(&id) else {
            return;
        };
        poll.remove(stream.as_raw_fd());
        let text = String::from_utf8_lossy(&line[..end]).to_string();
        let port = text
            .strip_prefix("CONNECT ")
            .and_then(|p| p.trim().parse::<u32>().ok());
        let Some(guest_port) = port else {
            return;
        };
        if self.conns.len() >= MAX_CONNS {
            return;
        }
        let host_port = self.next_host_port;
        self.next_host_port = self.next_host_port.wrapping_add(1).max(1 << 30);
        let c = Conn {
            stream,
            host_port,
            guest_port,
            established: false,
            peer_buf_alloc: 0,
            peer_fwd_cnt: 0,
            rx_cnt: 0,
            fwd_cnt: 0,
            fwd_announced: 0,
            to_host: line[end + 1..].to_vec(),
            polled: false,
            token: self.alloc_token(),
        };
        let req = mkhdr(self.cid, &c, OP_REQUEST, 0, 0);
        self.conns.insert((host_port, guest_port), c);
        self.out.push_back((req, Vec::new()));
    }
}

impl Handler for VsockWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.rx.event.as_raw_fd(), TOK_RX)?;
        poll.add(self.tx.event.as_raw_fd(), TOK_TX)?;
        poll.add(self.ev.event.as_raw_fd(), TOK_EV)?;
        if let Some(l) = &self.listener {
            poll.add(l.as_raw_fd(), TOK_LISTENER)?;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, poll: &Poll) {
        match token {
            TOK_RX => self.rx.ack(),
            TOK_TX => {
                self.tx.ack();
                self.transmit(poll);
            }
            TOK_EV => {
                self.ev.ack();
                self.announce();
            }
            TOK_LISTENER => self.accept(poll),
            t if t & TOK_PENDING != 0 => self.pending_readable(t & 0xffff_ffff, poll),
            t => self.host_readable(t, poll),
        }
        self.deliver(poll);
    }
}

impl VsockWorker {
    /// Sends the transport reset event, if one waits and the guest has
    /// an event buffer out.
    fn announce(&mut self) {
        if !self.announce_reset || !self.ev.queue.ready() {
            return;
        }
        let Some(chain) = self.ev.pop(&self.mem) else {
            return;
        };
        let head = chain.head_index();
        let mut len = 0;
        if let Ok(mut w) = chain.writer(&self.mem)
            && w.write_all(&EVENT_TRANSPORT_RESET.to_le_bytes()).is_ok()
        {
            len = 4;
        }
        self.ev.complete(&self.mem, head, len);
        self.ev.notify(&self.mem, &self.irq);
        self.announce_reset = false;
    }
}

impl Drop for VsockWorker {
    fn drop(&mut self) {
        if let (Some(l), Ok(mut h)) = (self.listener.take(), self.home.lock()) {
            *h = Some(l);
        }
    }
}

impl VirtioDevice for Vsock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_VSOCK
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![128, 128, 16]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.cid.to_le_bytes(), offset, data);
    }
    fn activate(&mut self, act: Activation) -> std::result::Result<(), String> {
        let mut qs = act.queues.into_iter();
        let (rq, re) = qs.next().ok_or("no receive queue")?;
        let (tq, te) = qs.next().ok_or("no transmit queue")?;
        let (eq, ee) = qs.next().ok_or("no event queue")?;
        let w = VsockWorker {
            cid: self.cid,
            uds: self.uds.clone(),
            listener: self.listener.take(),
            home: self.home.clone(),
            mem: act.mem,
            rx: WorkQueue::new(0, rq, re),
            tx: WorkQueue::new(1, tq, te),
            ev: WorkQueue::new(2, eq, ee),
            irq: act.interrupt,
            conns: HashMap::new(),
            pending: HashMap::new(),
            next_pending: 0,
            next_host_port: 1 << 30,
            next_token: 0,
            out: VecDeque::new(),
            announce_reset: std::mem::take(&mut self.announce_reset),
        };
        let mut w = w;
        w.announce();
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::Vsock, "virtio-vsock", w)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }
    fn quiesce(&mut self) {
        self.reset();
        self.announce_reset = true;
    }
    fn restore_state(
        &mut self,
        _state: &serde_json::Value,
        _mem: &GuestMemory,
    ) -> std::result::Result<(), String> {
        // Connections live on host sockets, which a restored VMM has not.
        self.announce_reset = true;
        Ok(())
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        if self.listener.is_none()
            && let Ok(mut h) = self.home.lock()
        {
            self.listener = h.take();
        }
    }
}

#[cfg(test)]
mod announce_tests {
    use vm_memory::{Bytes, GuestAddress};

    use super::super::fuzz::{self, USED};
    use super::super::interrupt::{IntxLine, IntxLines};
    use super::super::test_ring::{WRITE, desc, publish};
    use super::*;

    fn worker(mem: &GuestMemory, announce_reset: bool) -> VsockWorker {
        let irq = Arc::new(Interrupt::new(
            IntxLine {
                lines: Arc::new(IntxLines::new(None)),
                gsi: 20,
                slot: 3,
            },
            vec![],
        ));
        let q = |i| {
            WorkQueue::new(
                i,
                fuzz::blk_queue(mem),
                vmm_sys_util::eventfd::EventFd::new(0).unwrap(),
            )
        };
        VsockWorker {
            cid: 3,
            uds: PathBuf::from("/nonexistent"),
            listener: None,
            home: Arc::new(Mutex::new(None)),
            mem: mem.clone(),
            rx: q(0),
            tx: q(1),
            ev: q(2),
            irq,
            conns: HashMap::new(),
            pending: HashMap::new(),
            next_pending: 0,
            next_host_port: 1 << 30,
            next_token: 0,
            out: VecDeque::new(),
            announce_reset,
        }
    }

    /// After a state image the guest is told its connections are gone,
    /// in the first event buffer it offers, and only once.
    #[test]
    fn a_transport_reset_goes_into_the_first_event_buffer() {
        let mem = fuzz::guest();
        let mut w = worker(&mem, true);
        // No buffer yet: the event waits.
        w.announce();
        assert!(w.announce_reset);
        mem.write_obj(0xffff_ffffu32, GuestAddress(0x5000)).unwrap();
        desc(&mem, 0, 0x5000, 8, WRITE, 0);
        publish(&mem, &[0]);
        w.announce();
        assert!(!w.announce_reset);
        let used_idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
        let used_len: u32 = mem.read_obj(GuestAddress(USED + 8)).unwrap();
        let event: u32 = mem.read_obj(GuestAddress(0x5000)).unwrap();
        assert_eq!((used_idx, used_len, event), (1, 4, EVENT_TRANSPORT_RESET));
        w.announce();
        let used_idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
        assert_eq!(used_idx, 1);

        // A worker with nothing to announce leaves the buffer alone.
        let mem = fuzz::guest();
        let mut quiet = worker(&mem, false);
        desc(&mem, 0, 0x5000, 8, WRITE, 0);
        publish(&mem, &[0]);
        quiet.announce();
        let used_idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
        assert_eq!(used_idx, 0);
    }
}
