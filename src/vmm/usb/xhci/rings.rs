//! Transfer Request Blocks and the rings that carry them (xHCI 1.2
//! section 4.9 and 6.4): reading the command and transfer rings the
//! driver produces, and producing into interrupter 0's event ring.

use std::sync::atomic::{Ordering, fence};

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::memory::GuestMemory;

/// Bytes per TRB.
pub const TRB_SIZE: u64 = 16;
/// Link TRBs followed in a row before the ring counts as looping.
const LINK_LIMIT: usize = 32;

/// TRB types (control dword bits 15:10).
pub mod trb_type {
    pub const NORMAL: u8 = 1;
    pub const SETUP: u8 = 2;
    pub const DATA: u8 = 3;
    pub const STATUS: u8 = 4;
    pub const ISOCH: u8 = 5;
    pub const LINK: u8 = 6;
    pub const EVENT_DATA: u8 = 7;
    pub const NOOP: u8 = 8;
    pub const ENABLE_SLOT: u8 = 9;
    pub const DISABLE_SLOT: u8 = 10;
    pub const ADDRESS_DEVICE: u8 = 11;
    pub const CONFIGURE_ENDPOINT: u8 = 12;
    pub const EVALUATE_CONTEXT: u8 = 13;
    pub const RESET_ENDPOINT: u8 = 14;
    pub const STOP_ENDPOINT: u8 = 15;
    pub const SET_TR_DEQUEUE: u8 = 16;
    pub const RESET_DEVICE: u8 = 17;
    pub const NOOP_COMMAND: u8 = 23;
    pub const TRANSFER_EVENT: u8 = 32;
    pub const COMMAND_COMPLETION: u8 = 33;
    pub const PORT_STATUS_CHANGE: u8 = 34;
    pub const HOST_CONTROLLER: u8 = 37;
}

/// Completion codes (event status bits 31:24).
pub mod completion {
    pub const SUCCESS: u8 = 1;
    pub const USB_TRANSACTION_ERROR: u8 = 4;
    pub const TRB_ERROR: u8 = 5;
    pub const STALL: u8 = 6;
    pub const NO_SLOTS: u8 = 9;
    pub const SLOT_NOT_ENABLED: u8 = 11;
    pub const ENDPOINT_NOT_ENABLED: u8 = 12;
    pub const SHORT_PACKET: u8 = 13;
    pub const PARAMETER_ERROR: u8 = 17;
    pub const CONTEXT_STATE_ERROR: u8 = 19;
    pub const EVENT_RING_FULL: u8 = 21;
    pub const COMMAND_RING_STOPPED: u8 = 24;
    pub const STOPPED_LENGTH_INVALID: u8 = 27;
}

/// Control dword flags.
pub const CYCLE: u32 = 1 << 0;
/// Link TRB: toggle cycle.
pub const LINK_TOGGLE: u32 = 1 << 1;
/// Transfer TRBs: interrupt on short packet, chain, interrupt on
/// completion, immediate data, block event interrupt.
pub const ISP: u32 = 1 << 2;
pub const CHAIN: u32 = 1 << 4;
pub const IOC: u32 = 1 << 5;
pub const IDT: u32 = 1 << 6;
pub const BEI: u32 = 1 << 9;
/// Transfer event: the pointer is Event Data, not a TRB address.
pub const EVENT_DATA_FLAG: u32 = 1 << 2;

/// One TRB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trb {
    pub parameter: u64,
    pub status: u32,
    pub control: u32,
}

impl Trb {
    pub fn kind(&self) -> u8 {
        ((self.control >> 10) & 0x3f) as u8
    }

    pub fn cycle(&self) -> bool {
        self.control & CYCLE != 0
    }

    pub fn has(&self, flag: u32) -> bool {
        self.control & flag != 0
    }

    /// Slot ID of a command TRB (bits 31:24).
    pub fn slot_id(&self) -> u8 {
        (self.control >> 24) as u8
    }

    /// Endpoint ID (DCI) of an endpoint command (bits 20:16).
    pub fn endpoint_id(&self) -> u8 {
        ((self.control >> 16) & 0x1f) as u8
    }

    /// Transfer length of a transfer TRB (bits 16:0).
    pub fn transfer_length(&self) -> u32 {
        self.status & 0x1_ffff
    }

    pub fn read(mem: &GuestMemory, addr: u64) -> Option<Trb> {
        let mut b = [0u8; 16];
        mem.read_slice(&mut b, GuestAddress(addr)).ok()?;
        let dword = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Some(Trb {
            parameter: u64::from(dword(0)) | u64::from(dword(4)) << 32,
            status: dword(8),
            control: dword(12),
        })
    }

    /// Writes the TRB with its control dword (and so its cycle bit)
    /// last, so that a driver polling the ring never sees half an event.
    pub fn write(&self, mem: &GuestMemory, addr: u64) -> Option<()> {
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&self.parameter.to_le_bytes());
        head[8..].copy_from_slice(&self.status.to_le_bytes());
        mem.write_slice(&head, GuestAddress(addr)).ok()?;
        fence(Ordering::Release);
        mem.write_obj(self.control, GuestAddress(addr.checked_add(12)?))
            .ok()
    }
}

/// What the consumer finds at its dequeue pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fetch {
    /// A TRB the driver owns no longer (its address and contents).
    Trb(u64, Trb),
    /// The driver has not produced further.
    Empty,
    /// Unreadable memory or Link TRBs chasing each other.
    Broken,
}

/// A ring the controller consumes: the command ring or a transfer ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ring {
    pub dequeue: u64,
    /// Consumer cycle state.
    pub cycle: bool,
}

impl Ring {
    pub fn new(dequeue: u64, cycle: bool) -> Ring {
        Ring {
            dequeue: dequeue & !0xf,
            cycle,
        }
    }

    /// The TRB at the dequeue pointer, following Link TRBs.
    pub fn peek(&mut self, mem: &GuestMemory) -> Fetch {
        for _ in 0..LINK_LIMIT {
            let Some(trb) = Trb::read(mem, self.dequeue) else {
                return Fetch::Broken;
            };
            if trb.cycle() != self.cycle {
                return Fetch::Empty;
            }
            if trb.kind() != trb_type::LINK {
                return Fetch::Trb(self.dequeue, trb);
            }
            self.dequeue = trb.parameter & !0xf;
            if trb.has(LINK_TOGGLE) {
                self.cycle = !self.cycle;
            }
        }
        Fetch::Broken
    }

    /// Moves past the TRB `peek` returned.
    pub fn advance(&mut self) {
        self.dequeue = self.dequeue.wrapping_add(TRB_SIZE);
    }
}

/// Event Ring Segment Table entries the controller accepts (ERST Max in
/// HCSPARAMS2 is log2 of it).
pub const ERST_MAX_LOG2: u32 = 3;
const ERST_MAX: u32 = 1 << ERST_MAX_LOG2;
/// TRBs per event ring segment (xHCI: 16..=4096).
const SEGMENT_MIN: u32 = 16;
const SEGMENT_MAX: u32 = 4096;

/// Outcome of producing an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Produce {
    Written,
    /// The ring is full: dropped (an Event Ring Full event went into the
    /// last free entry).
    Dropped,
    /// No usable event ring: a host system error.
    Failed,
}

/// Interrupter 0: its registers and the event ring it produces into.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interrupter {
    pub iman: u32,
    pub imod: u32,
    pub erstsz: u32,
    pub erstba: u64,
    /// ERDP as the driver wrote it, with the EHB bit (3) ours.
    pub erdp: u64,
    segments: Vec<(u64, u32)>,
    segment: usize,
    index: u32,
    producer_cycle: bool,
    full: bool,
}

/// IMAN bits.
pub const IMAN_IP: u32 = 1 << 0;
pub const IMAN_IE: u32 = 1 << 1;
/// ERDP: event handler busy.
pub const ERDP_EHB: u64 = 1 << 3;

impl Interrupter {
    pub fn new() -> Interrupter {
        Interrupter {
            producer_cycle: true,
            ..Default::default()
        }
    }

    /// Reads the segment table the driver pointed ERSTBA at and starts
    /// producing at the beginning of the first segment.
    pub fn load_segments(&mut self, mem: &GuestMemory) {
        self.segments.clear();
        self.segment = 0;
        self.index = 0;
        self.producer_cycle = true;
        self.full = false;
        let count = (self.erstsz & 0xffff).min(ERST_MAX);
        for i in 0..u64::from(count) {
            let Some(entry) = self
                .erstba
                .checked_add(i * 16)
                .and_then(|a| Trb::read(mem, a))
            else {
                self.segments.clear();
                return;
            };
            let size = entry.status & 0xffff;
            let base = entry.parameter & !0x3f;
            if !(SEGMENT_MIN..=SEGMENT_MAX).contains(&size) || base == 0 {
                self.segments.clear();
                return;
            }
            self.segments.push((base, size));
        }
    }

    fn position(&self, segment: usize, index: u32) -> Option<u64> {
        let (base, _) = *self.segments.get(segment)?;
        base.checked_add(u64::from(index) * TRB_SIZE)
    }

    /// The entry after (`segment`, `index`), and whether the cycle flips.
    fn next(&self, segment: usize, index: u32) -> (usize, u32, bool) {
        let size = self.segments.get(segment).map_or(0, |s| s.1);
        if index + 1 < size {
            (segment, index + 1, false)
        } else if segment + 1 < self.segments.len() {
            (segment + 1, 0, false)
        } else {
            (0, 0, true)
        }
    }

    /// Where the next event goes.
    pub fn enqueue_pointer(&self) -> Option<u64> {
        self.position(self.segment, self.index)
    }

    /// Whether events are waiting that the driver has not consumed.
    pub fn has_pending(&self) -> bool {
        self.enqueue_pointer()
            .is_some_and(|e| e != self.erdp & !0xf)
    }

    /// The driver moved its dequeue pointer: room again.
    pub fn dequeue_moved(&mut self) {
        self.full = false;
    }

    /// Writes `event` with the producer cycle bit.
    pub fn produce(&mut self, mem: &GuestMemory, mut event: Trb) -> Produce {
        if self.full {
            return Produce::Dropped;
        }
        let Some(here) = self.enqueue_pointer() else {
            return Produce::Failed;
        };
        let (seg, idx, wrap) = self.next(self.segment, self.index);
        let Some(after) = self.position(seg, idx) else {
            return Produce::Failed;
        };
        let full = after == self.erdp & !0xf;
        if full {
            // The last free entry says that the ring is full.
            event = Trb {
                parameter: 0,
                status: u32::from(completion::EVENT_RING_FULL) << 24,
                control: u32::from(trb_type::HOST_CONTROLLER) << 10,
            };
        }
        event.control = (event.control & !CYCLE) | u32::from(self.producer_cycle);
        if event.write(mem, here).is_none() {
            return Produce::Failed;
        }
        self.segment = seg;
        self.index = idx;
        if wrap {
            self.producer_cycle = !self.producer_cycle;
        }
        if full {
            self.full = true;
            Produce::Dropped
        } else {
            Produce::Written
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn mem() -> GuestMemory {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn put(mem: &GuestMemory, addr: u64, kind: u8, parameter: u64, flags: u32) {
        Trb {
            parameter,
            status: 0,
            control: u32::from(kind) << 10 | flags,
        }
        .write(mem, addr)
        .unwrap();
    }

    #[test]
    fn ring_follows_links_and_toggles_cycle() {
        let m = mem();
        put(&m, 0x1000, trb_type::NOOP, 0, CYCLE);
        put(&m, 0x1010, trb_type::LINK, 0x1000, CYCLE | LINK_TOGGLE);
        let mut r = Ring::new(0x1000, true);
        assert!(matches!(r.peek(&m), Fetch::Trb(0x1000, _)));
        r.advance();
        // The link toggles the cycle: the old NOOP is not new again.
        assert_eq!(r.peek(&m), Fetch::Empty);
        assert_eq!((r.dequeue, r.cycle), (0x1000, false));
    }

    #[test]
    fn link_loops_and_bad_memory_are_broken() {
        let m = mem();
        put(&m, 0x2000, trb_type::LINK, 0x2000, CYCLE);
        assert_eq!(Ring::new(0x2000, true).peek(&m), Fetch::Broken);
        assert_eq!(Ring::new(0xffff_0000, true).peek(&m), Fetch::Broken);
    }

    #[test]
    fn event_ring_wraps_and_reports_full() {
        let m = mem();
        // One segment of 16 TRBs at 0x3000.
        Trb {
            parameter: 0x3000,
            status: 16,
            control: 0,
        }
        .write(&m, 0x100)
        .unwrap();
        let mut i = Interrupter::new();
        i.erstsz = 1;
        i.erstba = 0x100;
        i.erdp = 0x3000;
        i.load_segments(&m);
        let ev = Trb {
            control: u32::from(trb_type::PORT_STATUS_CHANGE) << 10,
            ..Default::default()
        };
        for _ in 0..15 {
            assert_eq!(i.produce(&m, ev), Produce::Written);
        }
        // Entry 15 is the last free one: it says "full".
        assert_eq!(i.produce(&m, ev), Produce::Dropped);
        let last = Trb::read(&m, 0x3000 + 15 * 16).unwrap();
        assert_eq!(last.kind(), trb_type::HOST_CONTROLLER);
        assert_eq!(last.status >> 24, u32::from(completion::EVENT_RING_FULL));
        assert_eq!(i.produce(&m, ev), Produce::Dropped);
        // The driver consumed everything: production wraps, cycle flips.
        i.erdp = 0x3000;
        i.dequeue_moved();
        assert!(!i.has_pending());
        assert_eq!(i.produce(&m, ev), Produce::Written);
        assert!(i.has_pending());
        let wrapped = Trb::read(&m, 0x3000).unwrap();
        assert!(!wrapped.cycle());
    }

    #[test]
    fn bad_segment_tables_are_refused() {
        let m = mem();
        let mut i = Interrupter::new();
        i.erstsz = 0xffff;
        i.erstba = 0xffff_f000;
        i.load_segments(&m);
        assert_eq!(i.produce(&m, Trb::default()), Produce::Failed);
        Trb {
            parameter: 0x3000,
            status: 0,
            control: 0,
        }
        .write(&m, 0x100)
        .unwrap();
        i.erstba = 0x100;
        i.erstsz = 1;
        i.load_segments(&m);
        assert_eq!(i.produce(&m, Trb::default()), Produce::Failed);
    }
}
