//! The NIC's worker thread (seccomp kind `Net`, like virtio-net's): it
//! alone touches the tap. A vCPU's write to TDT, RDT, TCTL, RCTL or CTRL
//! kicks it through an eventfd; it then sends what the transmit ring
//! holds and receives while the guest has free receive descriptors.
//!
//! The tap is read only while a frame can go somewhere: when the ring is
//! full, the frame read last waits here (RXO raised, counted in RNBC)
//! and the tap is left alone until RDT moves, so frames wait in the
//! tap's queue instead of being dropped.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::device::Device;
use super::lock;
use super::regs::{ICR_RXO, RNBC};
use super::rx::{self, Delivery};
use super::tx::{self, Outbox};
use crate::vmm::memory::GuestMemory;
use crate::vmm::virtio::stats::NetStats;
use crate::vmm::virtio::tap::{Tap, VNET_HDR_LEN};
use crate::vmm::virtio::worker::{Handler, Lent, Poll};

const KICK: u64 = 0;
const TAP: u64 = 1;
/// Descriptors taken per hold of the device's lock, so that vCPUs
/// reading registers wait little.
const TX_BATCH: usize = 64;
/// Frames received per event before the other events get a turn.
const RX_BATCH: usize = 64;
/// Largest frame read from the tap (with its virtio-net header).
const MAX_READ: usize = 65562;

/// A frame read from the tap that found no room in the receive ring.
struct Waiting {
    /// The device's reset count when it was read: a reset drops it.
    generation: u64,
    len: usize,
}

pub struct NicWorker {
    dev: Arc<Mutex<Device>>,
    mem: GuestMemory,
    tap: Lent<Tap>,
    kick: EventFd,
    outbox: Outbox,
    /// The frame read last (its virtio-net header, if any, in front).
    frame: Vec<u8>,
    waiting: Option<Waiting>,
    /// The frame as the guest gets it.
    scratch: Vec<u8>,
    /// The tap is in the epoll set.
    watching: bool,
    /// A stream peer went away: nothing more to read.
    closed: bool,
    stats: Arc<NetStats>,
}

impl NicWorker {
    pub fn new(dev: Arc<Mutex<Device>>, mem: GuestMemory, tap: Lent<Tap>, kick: EventFd) -> Self {
        let stats = lock(&dev).stats.clone();
        NicWorker {
            dev,
            mem,
            tap,
            kick,
            outbox: Outbox::default(),
            frame: vec![0; MAX_READ],
            waiting: None,
            scratch: Vec::new(),
            watching: false,
            closed: false,
            stats,
        }
    }

    fn header_len(&self) -> usize {
        match self.tap.as_ref() {
            Some(t) if t.vnet_hdr => VNET_HDR_LEN,
            _ => 0,
        }
    }

    /// Sends everything the transmit ring holds.
    fn transmit(&mut self) {
        loop {
            self.outbox.clear();
            let (more, link) = {
                let mut dev = lock(&self.dev);
                let more = tx::process(&mut dev, &self.mem, &mut self.outbox, TX_BATCH);
                (more, dev.link_up())
            };
            for f in self.outbox.frames() {
                // Without a link the frames go nowhere.
                match self.tap.as_ref().filter(|_| link).map(|t| t.write_frame(f)) {
                    Some(Ok(_)) => {
                        self.stats.tx_packets.inc();
                        self.stats.tx_bytes.add(f.len() as u64);
                    }
                    _ => self.stats.tx_drops.inc(),
                }
            }
            if !more {
                return;
            }
        }
    }

    /// Delivers the waiting frame; false if it still has no room.
    fn deliver_waiting(&mut self) -> bool {
        let Some(w) = &self.waiting else {
            return true;
        };
        let skip = self.header_len().min(w.len);
        let mut dev = lock(&self.dev);
        if w.generation != dev.generation {
            self.waiting = None;
            return true;
        }
        let frame = &self.frame[skip..w.len];
        match rx::deliver(&mut dev, &self.mem, frame, &mut self.scratch) {
            Delivery::NoRoom => {
                // Once per stall: the ring ran out (RXO), a frame waits.
                if !dev.rx_starved && dev.rx_enabled() {
                    dev.rx_starved = true;
                    dev.regs.count(RNBC, 1);
                    dev.raise(ICR_RXO);
                }
                false
            }
            Delivery::Delivered => {
                self.stats.rx_packets.inc();
                self.stats.rx_bytes.add(frame.len() as u64);
                self.waiting = None;
                true
            }
            Delivery::Filtered | Delivery::Dropped => {
                self.waiting = None;
                true
            }
        }
    }

    /// Moves frames from the tap into the receive ring while they fit.
    fn receive(&mut self) {
        for _ in 0..RX_BATCH {
            if !self.deliver_waiting() || self.closed {
                return;
            }
            let generation = {
                let dev = lock(&self.dev);
                if !dev.rx_enabled() {
                    return;
                }
                dev.generation
            };
            let Some(tap) = self.tap.as_mut() else {
                return;
            };
            let len = match tap.read_frame(&mut self.frame) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    tracing::warn!("e1000: {e}");
                    self.closed = true;
                    return;
                }
                Err(_) => return,
            };
            self.waiting = Some(Waiting { generation, len });
        }
        // The frame read last goes in now, not at the next event.
        self.deliver_waiting();
    }

    /// Watches the tap exactly while a frame read from it could go into
    /// the ring.
    fn update_watch(&mut self, poll: &Poll) {
        let want = !self.closed && self.waiting.is_none() && lock(&self.dev).rx_enabled();
        if want == self.watching {
            return;
        }
        let Some(fd) = self.tap.as_ref().map(|t| t.file.as_raw_fd()) else {
            return;
        };
        if want {
            self.watching = poll.add(fd, TAP).is_ok();
        } else {
            poll.remove(fd);
            self.watching = false;
        }
    }
}

impl Handler for NicWorker {
    fn register(&mut self, poll: &Poll) -> io::Result<()> {
        poll.add(self.kick.as_raw_fd(), KICK)?;
        self.update_watch(poll);
        Ok(())
    }

    fn event(&mut self, token: u64, poll: &Poll) {
        if token == KICK {
            let _ = self.kick.read();
            self.transmit();
        }
        self.receive();
        self.update_watch(poll);
    }
}
