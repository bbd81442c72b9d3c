//! virtio-net on a tap: receive queue 0, transmit queue 1, the 12-byte
//! header passed through to the tap (or added/stripped if the tap has
//! no virtio-net header), MAC from the configuration.
//!
//! With N > 1 queue pairs (`VIRTIO_NET_F_MQ`, `VIRTIO_NET_F_CTRL_VQ`):
//! receive queue p is 2p, transmit queue p is 2p + 1, the control queue
//! is 2N, and pair p moves frames through queue p of a multi-queue tap
//! (one fd each). Pair 0 alone is used until the driver sets the number
//! of pairs through the control queue; the tap queues of unused pairs are
//! detached so that the kernel steers no frames to them. One worker
//! thread serves every pair and the control queue.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_ECN,
    VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_HOST_ECN,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::iov;
use super::net_ctrl::{self, Command};
use super::stats::NetStats;
use super::tap::{Tap, VNET_HDR_LEN};
use super::worker::{Handler, Home, Lent, Poll, WorkQueue, Worker, reclaim};
use super::{Activation, Interrupt, VirtioDevice, feature};
use crate::vmm::config::{NetConfig, NetModel};
use crate::vmm::error::{Error, Result};
use crate::vmm::memory::GuestMemory;

pub const F_CSUM: u64 = feature(VIRTIO_NET_F_CSUM);
pub const F_GUEST_CSUM: u64 = feature(VIRTIO_NET_F_GUEST_CSUM);
pub const F_MAC: u64 = feature(VIRTIO_NET_F_MAC);
pub const F_GUEST_TSO4: u64 = feature(VIRTIO_NET_F_GUEST_TSO4);
pub const F_GUEST_TSO6: u64 = feature(VIRTIO_NET_F_GUEST_TSO6);
pub const F_GUEST_ECN: u64 = feature(VIRTIO_NET_F_GUEST_ECN);
pub const F_HOST_TSO4: u64 = feature(VIRTIO_NET_F_HOST_TSO4);
pub const F_HOST_TSO6: u64 = feature(VIRTIO_NET_F_HOST_TSO6);
pub const F_HOST_ECN: u64 = feature(VIRTIO_NET_F_HOST_ECN);
pub const F_CTRL_VQ: u64 = feature(VIRTIO_NET_F_CTRL_VQ);
pub const F_MQ: u64 = feature(VIRTIO_NET_F_MQ);
pub const F_STATUS: u64 = feature(VIRTIO_NET_F_STATUS);

/// The NIC's link, as the host sets it (`virsh domif-setlink`): shared by
/// the device (its configuration's status), its worker (a link that is
/// down neither sends nor receives frames) and the control socket.
pub struct NetLink {
    up: std::sync::atomic::AtomicBool,
    irq: Mutex<Option<Arc<Interrupt>>>,
}

impl Default for NetLink {
    fn default() -> Self {
        NetLink {
            up: std::sync::atomic::AtomicBool::new(true),
            irq: Mutex::new(None),
        }
    }
}

impl NetLink {
    pub fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Sets the link; a driver that runs is told by a configuration
    /// change interrupt.
    pub fn set(&self, up: bool) {
        if self.up.swap(up, std::sync::atomic::Ordering::AcqRel) == up {
            return;
        }
        if let Ok(g) = self.irq.lock()
            && let Some(i) = g.as_ref()
        {
            i.signal_config();
        }
    }
}

/// Most queue pairs: 2N queues, the control queue and the configuration
/// vector must fit the 256-entry MSI-X table with a vector each.
pub const MAX_QUEUE_PAIRS: u16 = 127;
/// Offloads that need the header on the tap side.
const OFFLOADS: u64 = F_CSUM
    | F_GUEST_CSUM
    | F_GUEST_TSO4
    | F_GUEST_TSO6
    | F_GUEST_ECN
    | F_HOST_TSO4
    | F_HOST_TSO6
    | F_HOST_ECN;

/// TUNSETOFFLOAD flags for the guest-side features the driver accepted.
pub fn tap_offload_flags(features: u64) -> u32 {
    use super::tap::{TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6};
    let mut f = 0;
    if features & F_GUEST_CSUM != 0 {
        f |= TUN_F_CSUM;
        if features & F_GUEST_TSO4 != 0 {
            f |= TUN_F_TSO4;
        }
        if features & F_GUEST_TSO6 != 0 {
            f |= TUN_F_TSO6;
        }
        if features & F_GUEST_ECN != 0 && f & (TUN_F_TSO4 | TUN_F_TSO6) != 0 {
            f |= TUN_F_TSO_ECN;
        }
    }
    f
}
/// Worker tokens: pair p uses 3p (receive queue), 3p + 1 (transmit
/// queue) and 3p + 2 (its tap fd).
const RX: u64 = 0;
const TX: u64 = 1;
const TAP: u64 = 2;
const CTRL_TOKEN: u64 = u64::MAX - 1;
/// Largest frame plus header accepted either way.
const MAX_FRAME: usize = 65562;
/// Size of the control queue.
const CTRL_QUEUE_SIZE: u16 = 64;

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    let bad = || Error::Config(format!("bad MAC address '{s}'"));
    if parts.len() != 6 {
        return Err(bad());
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *m = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// The configured MAC, or a random one in 52:54:00 (QEMU's prefix).
pub fn mac_of(cfg: &NetConfig) -> Result<[u8; 6]> {
    match &cfg.mac {
        Some(m) => parse_mac(m),
        None => {
            let mut m = [0x52, 0x54, 0, 0, 0, 0];
            super::rng::fill_random(&mut m[3..]);
            Ok(m)
        }
    }
}

/// The number of queue pairs a configuration asks for (1 when unsaid).
pub fn queue_pairs(cfg: &NetConfig) -> u16 {
    match (cfg.queues, cfg.tap_fds.len()) {
        (Some(q), _) => q,
        (None, 0) => 1,
        (None, n) => u16::try_from(n).unwrap_or(u16::MAX),
    }
}

/// Checks the tap and queue settings of a net device.
pub fn validate(cfg: &NetConfig) -> Result<()> {
    let sources = usize::from(cfg.tap_fd.is_some())
        + usize::from(cfg.tap_name.is_some())
        + usize::from(!cfg.tap_fds.is_empty())
        + usize::from(cfg.stream_fd.is_some());
    if sources != 1 {
        return Err(Error::Config(
            "a net device needs exactly one of tap_fd, tap_fds, tap_name and stream_fd".into(),
        ));
    }
    if cfg.stream_fd.is_some() && queue_pairs(cfg) != 1 {
        return Err(Error::Config(
            "a net device on a stream socket has one queue pair".into(),
        ));
    }
    let q = queue_pairs(cfg);
    if cfg.model == NetModel::E1000 && q != 1 {
        return Err(Error::Config(format!(
            "an e1000 NIC has one queue, not {q}"
        )));
    }
    if q == 0 || q > MAX_QUEUE_PAIRS {
        return Err(Error::Config(format!(
            "virtio-net queues {q} is out of range 1..={MAX_QUEUE_PAIRS}"
        )));
    }
    if cfg.tap_fd.is_some() && q != 1 {
        return Err(Error::Config(
            "a net device with one tap_fd has one queue pair; pass tap_fds".into(),
        ));
    }
    if !cfg.tap_fds.is_empty() && usize::from(q) != cfg.tap_fds.len() {
        return Err(Error::Config(format!(
            "virtio-net queues {q} but {} tap fds",
            cfg.tap_fds.len()
        )));
    }
    if let Some(m) = &cfg.mac {
        parse_mac(m)?;
    }
    Ok(())
}

pub struct Net {
    /// One tap queue per queue pair (all on one tap).
    taps: Vec<Option<Tap>>,
    homes: Vec<Home<Tap>>,
    vnet_hdr: bool,
    mac: [u8; 6],
    stats: Arc<NetStats>,
    worker: Option<Worker>,
    /// Queue pairs the driver has in use (VIRTIO_NET_CTRL_MQ), kept
    /// across a state image: the worker sets it, activation starts with it.
    active_pairs: Arc<std::sync::atomic::AtomicUsize>,
    link: Arc<NetLink>,
}

/// What a state image keeps of virtio-net beyond the transport.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetSaved {
    /// Queue pairs the driver has in use.
    pairs: usize,
    /// The link as the host set it (up in images that predate it).
    #[serde(default = "link_up")]
    link_up: bool,
}

fn link_up() -> bool {
    true
}

/// Opens the taps (or the stream socket) of a NIC: one per queue pair.
pub fn open_taps(cfg: &NetConfig) -> Result<Vec<Tap>> {
    if let Some(fd) = cfg.stream_fd {
        return Ok(vec![
            Tap::from_stream_fd(fd).map_err(Error::io(format!("stream fd {fd}")))?,
        ]);
    }
    let pairs = queue_pairs(cfg);
    if let Some(n) = &cfg.tap_name {
        return (0..pairs)
            .map(|_| Tap::open(n, pairs > 1).map_err(Error::io(format!("opening tap {n}"))))
            .collect();
    }
    let fds: Vec<i32> = cfg.tap_fd.into_iter().chain(cfg.tap_fds.clone()).collect();
    if fds.is_empty() {
        return Err(Error::Config("net device without a tap".into()));
    }
    fds.into_iter()
        .map(|fd| Tap::from_fd(fd).map_err(Error::io(format!("tap fd {fd}"))))
        .collect()
}

impl Net {
    pub fn new(cfg: &NetConfig, stats: Arc<NetStats>, link: Arc<NetLink>) -> Result<Self> {
        validate(cfg)?;
        let taps = open_taps(cfg)?;
        let vnet_hdr = taps[0].vnet_hdr;
        if taps.iter().any(|t| t.vnet_hdr != vnet_hdr) {
            return Err(Error::Config(
                "the tap fds of a net device disagree on IFF_VNET_HDR".into(),
            ));
        }
        let mac = mac_of(cfg)?;
        let n = taps.len();
        let mut net = Net {
            taps: taps.into_iter().map(Some).collect(),
            homes: (0..n).map(|_| Arc::new(Mutex::new(None))).collect(),
            vnet_hdr,
            mac,
            stats,
            worker: None,
            active_pairs: Arc::new(std::sync::atomic::AtomicUsize::new(1)),
            link,
        };
        net.detach_unused(1).map_err(Error::io("TUNSETQUEUE"))?;
        Ok(net)
    }

    fn pairs(&self) -> usize {
        self.taps.len()
    }

    /// Attaches the tap queues of the first `used` pairs, detaches the rest
    /// (multi-queue only).
    fn detach_unused(&mut self, used: usize) -> std::io::Result<()> {
        if self.pairs() < 2 {
            return Ok(());
        }
        for (i, t) in self.taps.iter().enumerate() {
            if let Some(t) = t {
                t.set_queue_attached(i < used)?;
            }
        }
        Ok(())
    }
}

/// One receive/transmit queue pair and its tap queue.
struct Pair {
    tap: Lent<Tap>,
    rx: WorkQueue,
    tx: WorkQueue,
    /// The kernel steers frames to this tap queue.
    attached: bool,
    /// The receive queue ran out of buffers.
    rx_full: bool,
    /// The tap fd is in the epoll set.
    watching: bool,
}

impl Pair {
    fn tap_fd(&self) -> Option<i32> {
        self.tap.as_ref().map(|t| t.file.as_raw_fd())
    }

    /// Watches the tap exactly while it is attached and the guest has
    /// receive buffers (a detached tap queue polls as an error).
    fn update_watch(&mut self, poll: &Poll, token: u64) {
        let want = self.attached && !self.rx_full && self.rx.queue.ready();
        if want == self.watching {
            return;
        }
        let Some(fd) = self.tap_fd() else { return };
        if want {
            if poll.add(fd, token).is_ok() {
                self.watching = true;
            }
        } else {
            poll.remove(fd);
            self.watching = false;
        }
    }
}

struct NetWorker {
    pairs: Vec<Pair>,
    ctrl: Option<WorkQueue>,
    /// The driver accepted VIRTIO_NET_F_MQ.
    mq: bool,
    mem: GuestMemory,
    irq: Arc<Interrupt>,
    stats: Arc<NetStats>,
    buf: Vec<u8>,
    /// The device's count of pairs in use, updated on VIRTIO_NET_CTRL_MQ.
    active: Arc<std::sync::atomic::AtomicUsize>,
    link: Arc<NetLink>,
}

fn transmit(pair: &mut Pair, mem: &GuestMemory, irq: &Interrupt, stats: &NetStats, up: bool) {
    let Some(tap) = pair.tap.as_ref() else {
        return;
    };
    if !pair.tx.queue.ready() {
        return;
    }
    pair.tx.process(mem, irq, |chain| {
        // A link that is down loses what the guest sends.
        if !up {
            return 0;
        }
        // Straight from guest memory to the tap: one writev per frame.
        let Some(b) = iov::chain_buffers(mem, chain) else {
            stats.tx_drops.inc();
            return 0;
        };
        let len = iov::total(&b.readable);
        if !(VNET_HDR_LEN..=MAX_FRAME).contains(&len) {
            stats.tx_drops.inc();
            return 0;
        }
        let skip = if tap.vnet_hdr { 0 } else { VNET_HDR_LEN };
        let Some(out) = iov::range(&b.readable, skip, len - skip) else {
            stats.tx_drops.inc();
            return 0;
        };
        match tap.write_vectored(&out) {
            Ok(_) => {
                stats.tx_packets.inc();
                stats.tx_bytes.add((len - VNET_HDR_LEN) as u64);
            }
            Err(_) => stats.tx_drops.inc(),
        }
        0
    });
}

impl NetWorker {
    fn receive(&mut self, p: usize, poll: &Poll) {
        let Some(pair) = self.pairs.get_mut(p) else {
            return;
        };
        let token = 3 * p as u64 + TAP;
        if !pair.rx.queue.ready() || !pair.attached {
            pair.update_watch(poll, token);
            return;
        }
        let Some(tap) = pair.tap.as_mut() else {
            return;
        };
        if !self.link.is_up() {
            // A link that is down loses what arrives.
            self.buf.resize(MAX_FRAME, 0);
            while tap.read_frame(&mut self.buf).is_ok_and(|n| n > 0) {}
            return;
        }
        let mut completed = false;
        loop {
            let Some(chain) = pair.rx.pop(&self.mem) else {
                pair.rx_full = true;
                break;
            };
            let head = chain.head_index();
            let skip = if tap.vnet_hdr { 0 } else { VNET_HDR_LEN };
            self.buf.resize(MAX_FRAME, 0);
            self.buf[..skip].fill(0);
            let n = match tap.read_frame(&mut self.buf[skip..]) {
                Ok(n) => n + skip,
                Err(e) => {
                    pair.rx.queue.go_to_previous_position();
                    if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        // The stream's peer is gone: stop polling a
                        // socket that stays readable for good.
                        tracing::warn!("virtio-net: {e}");
                        pair.attached = false;
                    }
                    break;
                }
            };
            // num_buffers = 1.
            if n >= VNET_HDR_LEN {
                self.buf[10] = 1;
                self.buf[11] = 0;
            }
            let ok = match chain.writer(&self.mem) {
                Ok(mut w) => w.available_bytes() >= n && w.write_all(&self.buf[..n]).is_ok(),
                Err(_) => false,
            };
            let written = if ok {
                self.stats.rx_packets.inc();
                self.stats
                    .rx_bytes
                    .add(n.saturating_sub(VNET_HDR_LEN) as u64);
                n as u32
            } else {
                self.stats.rx_drops.inc();
                0
            };
            pair.rx.complete(&self.mem, head, written);
            completed = true;
        }
        if completed {
            pair.rx.notify(&self.mem, &self.irq);
        }
        pair.update_watch(poll, token);
    }

    /// Uses the first `n` pairs: their tap queues attached, the others
    /// detached. Refused (false) when one of them has a queue the driver
    /// did not set up, or the tap refuses.
    fn set_pairs(pairs: &mut [Pair], n: usize, poll: &Poll) -> bool {
        if n > pairs.len()
            || pairs[..n]
                .iter()
                .any(|p| !p.rx.queue.ready() || !p.tx.queue.ready())
        {
            return false;
        }
        for (i, p) in pairs.iter_mut().enumerate() {
            let want = i < n;
            if want != p.attached {
                let Some(t) = p.tap.as_ref() else {
                    return false;
                };
                if let Err(e) = t.set_queue_attached(want) {
                    tracing::warn!("virtio-net: TUNSETQUEUE on queue pair {i}: {e}");
                    return false;
                }
                p.attached = want;
            }
            p.update_watch(poll, 3 * i as u64 + TAP);
        }
        true
    }

    /// Answers every request on the control queue.
    fn control(&mut self, poll: &Poll) {
        let Some(ctrl) = self.ctrl.as_mut() else {
            return;
        };
        if !ctrl.queue.ready() {
            return;
        }
        let mem = &self.mem;
        let pairs = &mut self.pairs;
        let active = &self.active;
        let mq = self.mq;
        let max = u16::try_from(pairs.len()).unwrap_or(u16::MAX);
        ctrl.process(mem, &self.irq, |chain| {
            let Some(b) = iov::chain_buffers(mem, chain) else {
                return 0;
            };
            // No room for the status byte: nothing to answer with.
            if iov::total(&b.writable) == 0 {
                return 0;
            }
            let len = iov::total(&b.readable);
            let cmd = if len > net_ctrl::MAX_REQUEST {
                Command::Refused
            } else {
                let mut req = [0u8; net_ctrl::MAX_REQUEST];
                let n = iov::read_into(&b.readable, &mut req[..len]);
                net_ctrl::parse(&req[..n], mq, max)
            };
            let status = match cmd {
                Command::SetPairs(n) if Self::set_pairs(pairs, usize::from(n), poll) => {
                    active.store(usize::from(n), std::sync::atomic::Ordering::Release);
                    net_ctrl::OK
                }
                _ => net_ctrl::ERR,
            };
            iov::write_from(&b.writable, &[status]) as u32
        });
    }
}

impl Handler for NetWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        for (i, p) in self.pairs.iter_mut().enumerate() {
            let base = 3 * i as u64;
            poll.add(p.rx.event.as_raw_fd(), base + RX)?;
            poll.add(p.tx.event.as_raw_fd(), base + TX)?;
            p.update_watch(poll, base + TAP);
        }
        if let Some(c) = &self.ctrl {
            poll.add(c.event.as_raw_fd(), CTRL_TOKEN)?;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, poll: &Poll) {
        if token == CTRL_TOKEN {
            if let Some(c) = &self.ctrl {
                c.ack();
            }
            self.control(poll);
            return;
        }
        let p = usize::try_from(token / 3).unwrap_or(usize::MAX);
        let Some(pair) = self.pairs.get_mut(p) else {
            return;
        };
        match token % 3 {
            RX => {
                pair.rx.ack();
                pair.rx_full = false;
                self.receive(p, poll);
            }
            TX => {
                pair.tx.ack();
                transmit(pair, &self.mem, &self.irq, &self.stats, self.link.is_up());
            }
            _ => self.receive(p, poll),
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        let mut q = vec![256; 2 * self.pairs()];
        if self.pairs() > 1 {
            q.push(CTRL_QUEUE_SIZE);
        }
        q
    }
    fn features(&self) -> u64 {
        // Offloads only when the tap carries the header; the kernel then
        // does the checksums and segmentation the guest leaves undone.
        let mut f = if self.vnet_hdr {
            F_MAC | F_STATUS | OFFLOADS
        } else {
            F_MAC | F_STATUS
        };
        if self.pairs() > 1 {
            f |= F_CTRL_VQ | F_MQ;
        }
        f
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; 12];
        c[..6].copy_from_slice(&self.mac);
        // status: the link; max_virtqueue_pairs; mtu: 1500.
        c[6] = if self.link.is_up() {
            VIRTIO_NET_S_LINK_UP as u8
        } else {
            0
        };
        c[8..10].copy_from_slice(&(self.pairs() as u16).to_le_bytes());
        c[10..12].copy_from_slice(&1500u16.to_le_bytes());
        super::read_config_bytes(&c, offset, data);
    }
    fn activate(&mut self, act: Activation) -> std::result::Result<(), String> {
        let mq = self.pairs() > 1 && act.features & F_MQ != 0;
        let used = if mq { self.pairs() } else { 1 };
        if self.taps[..used].iter().any(Option::is_none) {
            return Err("tap not available".into());
        }
        let mut qs: Vec<Option<(Queue, EventFd)>> = act.queues.into_iter().map(Some).collect();
        let mut take = |i: usize| qs.get_mut(i).and_then(Option::take);
        let mut pairs = Vec::with_capacity(used);
        for p in 0..used {
            let (rq, re) = take(2 * p).ok_or("no receive queue")?;
            let (tq, te) = take(2 * p + 1).ok_or("no transmit queue")?;
            let tap = self.taps[p].take().ok_or("tap not available")?;
            if tap.vnet_hdr
                && let Err(e) = tap.set_offload(tap_offload_flags(act.features))
            {
                tracing::warn!("TUNSETOFFLOAD: {e}");
            }
            pairs.push(Pair {
                tap: Lent::new(tap, self.homes[p].clone()),
                rx: WorkQueue::new(2 * p, rq, re),
                tx: WorkQueue::new(2 * p + 1, tq, te),
                attached: p == 0,
                rx_full: false,
                watching: false,
            });
        }
        let ctrl = if act.features & F_CTRL_VQ != 0 {
            let (cq, ce) = take(2 * used).ok_or("no control queue")?;
            Some(WorkQueue::new(2 * used, cq, ce))
        } else {
            None
        };
        // A device that ran before a state image was taken carries on
        // with the pairs its driver had in use; a fresh one with one.
        let in_use = self
            .active_pairs
            .load(std::sync::atomic::Ordering::Acquire)
            .clamp(1, pairs.len());
        for (i, p) in pairs.iter_mut().enumerate().skip(1) {
            if i < in_use
                && let Some(t) = p.tap.as_ref()
            {
                t.set_queue_attached(true)
                    .map_err(|e| format!("TUNSETQUEUE on queue pair {i}: {e}"))?;
                p.attached = true;
            }
        }
        if let Ok(mut g) = self.link.irq.lock() {
            *g = Some(act.interrupt.clone());
        }
        let w = NetWorker {
            pairs,
            ctrl,
            mq,
            mem: act.mem,
            irq: act.interrupt,
            stats: self.stats.clone(),
            buf: Vec::new(),
            active: self.active_pairs.clone(),
            link: self.link.clone(),
        };
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::Net, "virtio-net", w)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }
    fn quiesce(&mut self) {
        let in_use = self.active_pairs.load(std::sync::atomic::Ordering::Acquire);
        self.reset();
        self.active_pairs
            .store(in_use, std::sync::atomic::Ordering::Release);
    }
    fn save_state(&self) -> serde_json::Value {
        let saved = NetSaved {
            pairs: self.active_pairs.load(std::sync::atomic::Ordering::Acquire),
            link_up: self.link.is_up(),
        };
        serde_json::to_value(saved).unwrap_or_default()
    }
    fn restore_state(
        &mut self,
        state: &serde_json::Value,
        _mem: &GuestMemory,
    ) -> std::result::Result<(), String> {
        let saved: NetSaved =
            serde_json::from_value(state.clone()).map_err(|e| format!("virtio-net state: {e}"))?;
        if !(1..=self.pairs()).contains(&saved.pairs) {
            return Err(format!(
                "virtio-net state: {} queue pairs in use, the device has {}",
                saved.pairs,
                self.pairs()
            ));
        }
        self.active_pairs
            .store(saved.pairs, std::sync::atomic::Ordering::Release);
        self.link.set(saved.link_up);
        Ok(())
    }
    fn reset(&mut self) {
        self.active_pairs
            .store(1, std::sync::atomic::Ordering::Release);
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        for (slot, home) in self.taps.iter_mut().zip(&self.homes) {
            reclaim(slot, home);
        }
        // Back to one pair, as a fresh device starts.
        if let Err(e) = self.detach_unused(1) {
            tracing::warn!("virtio-net: TUNSETQUEUE: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_and_offload_flags() {
        assert_eq!(parse_mac("52:54:00:6f:78:08").unwrap()[5], 8);
        assert!(parse_mac("52:54:00:6f:78").is_err());
        assert!(parse_mac("52:54:00:6f:78:zz").is_err());
        assert_eq!(tap_offload_flags(F_MAC), 0);
        assert_eq!(
            tap_offload_flags(F_GUEST_TSO4),
            0,
            "TSO needs checksum offload"
        );
        assert_eq!(
            tap_offload_flags(F_GUEST_CSUM | F_GUEST_TSO4 | F_GUEST_TSO6 | F_GUEST_ECN),
            0x0f
        );
    }
}
