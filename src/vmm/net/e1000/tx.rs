//! The transmit ring: descriptors from TDH up to TDT are taken in order
//! (legacy descriptors, context descriptors, data descriptors), their
//! buffers gathered into packets, and at EOP a packet becomes one frame
//! (checksums inserted as asked) or, with TSE, a frame per MSS
//! (`offload.rs`). Descriptors with RS get DD written back (TXDW), and
//! an emptied ring raises TXQE.
//!
//! Every guest address is checked through guest memory: an unreadable
//! descriptor or buffer drops the packet and is counted, the ring moves
//! on.

use vm_memory::{Bytes, GuestAddress};

use super::device::Device;
use super::offload::{self, Context};
use super::register_file::RegisterFile;
use super::regs::{
    BPTC, CTRL, CTRL_VME, GOTCL, GPTC, ICR_TXDW, ICR_TXQE, MPTC, PTC64, TDH, TOTL, TPT, TSCTC, VET,
};
use crate::vmm::memory::GuestMemory;

// Command bits in a descriptor's second dword.
const CMD_EOP: u32 = 1 << 24;
/// Legacy descriptors: insert a checksum at CSO, computed from CSS.
const CMD_IC: u32 = 1 << 26;
/// Context and data descriptors: TCP segmentation.
const CMD_TSE: u32 = 1 << 26;
const CMD_RS: u32 = 1 << 27;
const CMD_RPS: u32 = 1 << 28;
const CMD_DEXT: u32 = 1 << 29;
const CMD_VLE: u32 = 1 << 30;
const DTYP_SHIFT: u32 = 20;
const DTYP_CONTEXT: u32 = 0;
const DTYP_DATA: u32 = 1;
/// Status byte (offset 12): descriptor done.
const STA_DD: u8 = 1;
const STATUS_OFFSET: u64 = 12;

/// The largest packet gathered from descriptors: a TSO packet's header
/// and payload (drivers send at most 64 KiB).
pub const MAX_PACKET: usize = 256 * 1024;

/// What the transmit side keeps between descriptors: the two offload
/// contexts (a driver may keep one for checksums and one for TSO, as
/// QEMU does) and the packet being gathered.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxState {
    csum_ctx: Context,
    tso_ctx: Context,
    packet: Vec<u8>,
    /// A descriptor of the packet has been taken.
    started: bool,
    /// POPTS of the packet's first data descriptor.
    popts: u8,
    tse: bool,
    /// A legacy descriptor's CSS and CSO.
    legacy_sum: Option<(u8, u8)>,
    /// The 802.1Q tag control to insert.
    vlan: Option<u16>,
    /// The packet lost a buffer or grew too large: dropped at EOP.
    broken: bool,
    /// Scratch space for segmentation.
    segment: Vec<u8>,
}

/// Frames ready for the tap, in one buffer.
#[derive(Default)]
pub struct Outbox {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Outbox {
    /// Adds a frame, with `tag` (an 802.1Q tag) after its addresses.
    fn push(&mut self, frame: &[u8], tag: Option<[u8; 4]>) {
        match tag {
            Some(t) if frame.len() >= 12 => {
                self.bytes.extend_from_slice(&frame[..12]);
                self.bytes.extend_from_slice(&t);
                self.bytes.extend_from_slice(&frame[12..]);
            }
            _ => self.bytes.extend_from_slice(frame),
        }
        self.ends.push(self.bytes.len());
    }

    pub fn frames(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, e)| &self.bytes[s..*e])
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }
}

fn u32_at(d: &[u8; 16], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Counts a sent frame in the statistics registers.
fn count_sent(regs: &mut RegisterFile, frame: &[u8]) {
    let len = frame.len() + 4;
    regs.count(TPT, 1);
    regs.count(GPTC, 1);
    regs.count64(TOTL, len as u64);
    regs.count64(GOTCL, len as u64);
    if frame.iter().take(6).all(|b| *b == 0xff) {
        regs.count(BPTC, 1);
    } else if frame.first().is_some_and(|b| b & 1 == 1) {
        regs.count(MPTC, 1);
    }
    regs.count_size(PTC64, len);
}

/// Sends the gathered packet (at EOP) and starts the next.
fn finish(dev: &mut Device, out: &mut Outbox) {
    let tx = &mut dev.tx;
    let tag = tx.vlan.map(|tci| {
        let mut t = [0u8; 4];
        t[..2].copy_from_slice(&(dev.regs.get(VET) as u16).to_be_bytes());
        t[2..].copy_from_slice(&tci.to_be_bytes());
        t
    });
    let result = if tx.broken {
        Err(())
    } else if tx.tse {
        let regs = &mut dev.regs;
        let mut frames = 0u32;
        let r = offload::segment(
            &tx.packet,
            &tx.tso_ctx,
            tx.popts,
            &mut tx.segment,
            &mut |f| {
                count_sent(regs, f);
                out.push(f, tag);
                frames += 1;
            },
        );
        if frames > 1 {
            regs.count(TSCTC, 1);
        }
        r.map_err(|_| ())
    } else {
        let r = match tx.legacy_sum {
            Some((css, cso)) => offload::insert_checksum(&mut tx.packet, css.into(), cso.into(), 0),
            None => offload::checksum(&mut tx.packet, &tx.csum_ctx, tx.popts),
        };
        // A checksum whose offsets do not fit is left undone; the frame
        // goes as the driver wrote it.
        if let Err(e) = r {
            tracing::debug!("e1000: checksum offload not done: {e:?}");
        }
        count_sent(&mut dev.regs, &tx.packet);
        out.push(&tx.packet, tag);
        Ok(())
    };
    if result.is_err() {
        dev.stats.tx_drops.inc();
    }
    let tx = &mut dev.tx;
    tx.packet.clear();
    tx.started = false;
    tx.popts = 0;
    tx.tse = false;
    tx.legacy_sum = None;
    tx.vlan = None;
    tx.broken = false;
}

/// Appends `len` bytes of guest memory at `addr` to the packet.
fn gather(dev: &mut Device, mem: &GuestMemory, addr: u64, len: usize) {
    let tx = &mut dev.tx;
    if tx.broken {
        return;
    }
    let old = tx.packet.len();
    if old + len > MAX_PACKET {
        tx.broken = true;
        return;
    }
    tx.packet.resize(old + len, 0);
    if mem
        .read_slice(&mut tx.packet[old..], GuestAddress(addr))
        .is_err()
    {
        tx.broken = true;
    }
}

/// Takes one descriptor.
fn take(dev: &mut Device, mem: &GuestMemory, d: &[u8; 16], out: &mut Outbox) {
    let cmd = u32_at(d, 8);
    let upper = u32_at(d, 12);
    let addr = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let extended = cmd & CMD_DEXT != 0;
    let dtyp = (cmd >> DTYP_SHIFT) & 0xf;
    let len = if !extended {
        let tx = &mut dev.tx;
        tx.tse = false;
        if cmd & CMD_IC != 0 {
            tx.legacy_sum = Some(((upper >> 8) as u8, (cmd >> 16) as u8));
        }
        (cmd & 0xffff) as usize
    } else if dtyp == DTYP_CONTEXT {
        let ctx = Context::parse(d);
        if cmd & CMD_TSE != 0 {
            dev.tx.tso_ctx = ctx;
        } else {
            dev.tx.csum_ctx = ctx;
        }
        return;
    } else if dtyp == DTYP_DATA {
        let tx = &mut dev.tx;
        if !tx.started {
            tx.popts = (upper >> 8) as u8;
        }
        tx.tse = cmd & CMD_TSE != 0;
        (cmd & 0xf_ffff) as usize
    } else {
        // No such descriptor type: skipped.
        dev.stats.tx_drops.inc();
        return;
    };
    dev.tx.started = true;
    if cmd & CMD_VLE != 0 && dev.regs.get(CTRL) & CTRL_VME != 0 {
        dev.tx.vlan = Some((upper >> 16) as u16);
    }
    gather(dev, mem, addr, len);
    if cmd & CMD_EOP != 0 {
        finish(dev, out);
    }
}

/// Takes at most `budget` descriptors from the ring, putting the frames
/// they make into `out`; returns whether more are waiting.
pub fn process(dev: &mut Device, mem: &GuestMemory, out: &mut Outbox, budget: usize) -> bool {
    if !dev.tx_enabled() {
        return false;
    }
    let Some(ring) = dev.tx_ring() else {
        return false;
    };
    let mut head = ring.head;
    let mut causes = 0;
    let mut taken = 0;
    while head != ring.tail && taken < budget {
        taken += 1;
        let at = ring.descriptor(head);
        let mut d = [0u8; 16];
        match at.filter(|a| mem.read_slice(&mut d, GuestAddress(*a)).is_ok()) {
            Some(a) => {
                take(dev, mem, &d, out);
                if u32_at(&d, 8) & (CMD_RS | CMD_RPS) != 0 {
                    let status = GuestAddress(a + STATUS_OFFSET);
                    match mem.write_obj(d[12] | STA_DD, status) {
                        Ok(()) => causes |= ICR_TXDW,
                        Err(_) => dev.stats.tx_drops.inc(),
                    }
                }
            }
            None => {
                // The packet in progress lost this descriptor's buffer.
                dev.stats.tx_drops.inc();
                dev.tx.broken = dev.tx.started;
            }
        }
        head = ring.next(head);
    }
    dev.regs.set(TDH, head);
    if taken > 0 {
        if head == ring.tail {
            causes |= ICR_TXQE;
        }
        dev.raise(causes);
    }
    head != ring.tail
}

#[cfg(test)]
#[path = "tx_tests.rs"]
mod tests;
