//! virtio-net on a tap: receive queue 0, transmit queue 1, the 12-byte
//! header passed through to the tap (or added/stripped if the tap has
//! no virtio-net header), MAC from the configuration.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use virtio_queue::{QueueOwnedT, QueueT};

use super::iov;
use super::stats::NetStats;
use super::tap::{Tap, VNET_HDR_LEN};
use super::worker::{Handler, Home, Lent, Poll, WorkQueue, Worker, reclaim};
use super::{Activation, Interrupt, TYPE_NET, VirtioDevice};
use crate::vmm::config::NetConfig;
use crate::vmm::error::{Error, Result};
use crate::vmm::memory::GuestMemory;

pub const F_CSUM: u64 = 1 << 0;
pub const F_GUEST_CSUM: u64 = 1 << 1;
pub const F_MAC: u64 = 1 << 5;
pub const F_GUEST_TSO4: u64 = 1 << 7;
pub const F_GUEST_TSO6: u64 = 1 << 8;
pub const F_GUEST_ECN: u64 = 1 << 9;
pub const F_HOST_TSO4: u64 = 1 << 11;
pub const F_HOST_TSO6: u64 = 1 << 12;
pub const F_HOST_ECN: u64 = 1 << 13;
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
const RX: u64 = 0;
const TX: u64 = 1;
const TAP: u64 = 2;
/// Largest frame plus header accepted either way.
const MAX_FRAME: usize = 65562;

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

pub struct Net {
    tap: Option<Tap>,
    home: Home<Tap>,
    mac: [u8; 6],
    stats: Arc<NetStats>,
    worker: Option<Worker>,
}

impl Net {
    pub fn new(cfg: &NetConfig, stats: Arc<NetStats>) -> Result<Self> {
        let tap = match (&cfg.tap_name, cfg.tap_fd) {
            (Some(n), _) => Tap::open(n).map_err(Error::io(format!("opening tap {n}")))?,
            (None, Some(fd)) => Tap::from_fd(fd).map_err(Error::io(format!("tap fd {fd}")))?,
            (None, None) => return Err(Error::Config("net device without a tap".into())),
        };
        let mac = match &cfg.mac {
            Some(m) => parse_mac(m)?,
            None => {
                let mut m = [0x52, 0x54, 0, 0, 0, 0];
                super::rng::fill_random(&mut m[3..]);
                m
            }
        };
        Ok(Net {
            tap: Some(tap),
            home: Arc::new(Mutex::new(None)),
            mac,
            stats,
            worker: None,
        })
    }
}

struct NetWorker {
    tap: Lent<Tap>,
    mem: GuestMemory,
    rx: WorkQueue,
    tx: WorkQueue,
    irq: Arc<Interrupt>,
    stats: Arc<NetStats>,
    tap_paused: bool,
    buf: Vec<u8>,
}

impl NetWorker {
    fn transmit(&mut self) {
        let Some(tap) = self.tap.as_mut() else {
            return;
        };
        if !self.tx.queue.ready() {
            return;
        }
        let mem = &self.mem;
        let stats = &self.stats;
        self.tx.process(mem, &self.irq, |chain| {
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

    fn receive(&mut self, poll: &Poll) {
        let Some(tap) = self.tap.as_mut() else {
            return;
        };
        if !self.rx.queue.ready() {
            return;
        }
        let mut completed = false;
        loop {
            let Some(chain) = self.rx.pop(&self.mem) else {
                poll.remove(tap.file.as_raw_fd());
                self.tap_paused = true;
                break;
            };
            let head = chain.head_index();
            let skip = if tap.vnet_hdr { 0 } else { VNET_HDR_LEN };
            self.buf.resize(MAX_FRAME, 0);
            self.buf[..skip].fill(0);
            let n = match tap.file.read(&mut self.buf[skip..]) {
                Ok(n) => n + skip,
                Err(_) => {
                    self.rx.queue.go_to_previous_position();
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
            self.rx.complete(&self.mem, head, written);
            completed = true;
        }
        if completed {
            self.rx.notify(&self.mem, &self.irq);
        }
    }
}

impl Handler for NetWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.rx.event.as_raw_fd(), RX)?;
        poll.add(self.tx.event.as_raw_fd(), TX)?;
        if let Some(t) = self.tap.as_ref() {
            poll.add(t.file.as_raw_fd(), TAP)?;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, poll: &Poll) {
        match token {
            RX => {
                self.rx.ack();
                if self.tap_paused
                    && let Some(t) = self.tap.as_ref()
                {
                    self.tap_paused = false;
                    let _ = poll.add(t.file.as_raw_fd(), TAP);
                }
                self.receive(poll);
            }
            TX => {
                self.tx.ack();
                self.transmit();
            }
            _ => self.receive(poll),
        }
    }
}

impl VirtioDevice for Net {
    fn device_type(&self) -> u32 {
        TYPE_NET
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![256, 256]
    }
    fn features(&self) -> u64 {
        // Offloads only when the tap carries the header; the kernel then
        // does the checksums and segmentation the guest leaves undone.
        match &self.tap {
            Some(t) if t.vnet_hdr => F_MAC | OFFLOADS,
            _ => F_MAC,
        }
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; 12];
        c[..6].copy_from_slice(&self.mac);
        // status: link up; max_virtqueue_pairs: 1; mtu: 1500.
        c[6] = 1;
        c[8] = 1;
        c[10..12].copy_from_slice(&1500u16.to_le_bytes());
        super::read_config_bytes(&c, offset, data);
    }
    fn activate(&mut self, act: Activation) -> std::result::Result<(), String> {
        let tap = self.tap.take().ok_or("tap not available")?;
        if tap.vnet_hdr
            && let Err(e) = tap.set_offload(tap_offload_flags(act.features))
        {
            tracing::warn!("TUNSETOFFLOAD: {e}");
        }
        let mut qs = act.queues.into_iter();
        let (rq, re) = qs.next().ok_or("no receive queue")?;
        let (tq, te) = qs.next().ok_or("no transmit queue")?;
        let w = NetWorker {
            tap: Lent::new(tap, self.home.clone()),
            mem: act.mem,
            rx: WorkQueue::new(0, rq, re),
            tx: WorkQueue::new(1, tq, te),
            irq: act.interrupt,
            stats: self.stats.clone(),
            tap_paused: false,
            buf: Vec::new(),
        };
        self.worker = Some(Worker::spawn("virtio-net", w).map_err(|e| e.to_string())?);
        Ok(())
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        reclaim(&mut self.tap, &self.home);
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
