//! The receive ring: a frame from the tap, padded to 60 bytes, checked
//! against the size limits and the address filters, its 802.1Q tag
//! stripped when CTRL.VME asks, its FCS appended unless RCTL.SECRC, is
//! written into the buffers of the descriptors from RDH on (RCTL's
//! buffer size each, EOP on the last), each written back with DD. Then
//! RXT0, and RXDMT0 when the free descriptors fall to RCTL.RDMTS's
//! share of the ring.
//!
//! A frame that does not fit in the free descriptors is not dropped:
//! the caller keeps it until RDT moves.

use std::sync::atomic::{Ordering, fence};

use vm_memory::{Bytes, GuestAddress};

use super::device::Device;
use super::filter::{self, Cast};
use super::regs::{
    BPRC, CTRL, CTRL_VME, GORCL, GPRC, ICR_RXDMT0, ICR_RXT0, MPRC, PRC64, RCTL, RCTL_BSEX,
    RCTL_BSIZE_SHIFT, RCTL_LPE, RCTL_RDMTS_SHIFT, RCTL_SBP, RCTL_SECRC, RDH, ROC, TORL, TPR,
};
use crate::vmm::memory::GuestMemory;

// Descriptor status and error bits.
const STA_DD: u8 = 1 << 0;
const STA_EOP: u8 = 1 << 1;
/// Ignore checksum indication: the guest checks checksums itself.
const STA_IXSM: u8 = 1 << 2;
const STA_VP: u8 = 1 << 3;
const ERR_RXE: u8 = 1 << 7;
/// Write-back part of a descriptor (length, checksum, status, errors,
/// special) and its status byte.
const WRITEBACK_OFFSET: u64 = 8;
const STATUS_OFFSET: u64 = 12;

/// Frames are padded to the Ethernet minimum (without FCS).
pub const MIN_FRAME: usize = 60;
/// Largest frame without RCTL.LPE (a VLAN-tagged 1518-byte frame), and
/// with it.
const MAX_FRAME: usize = 1522;
const MAX_LONG_FRAME: usize = 16384;

/// What became of a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Not for this guest (address or VLAN filters).
    Filtered,
    /// Too long, or guest memory could not take it.
    Dropped,
    /// Receiving is off or the free descriptors cannot hold it: keep it.
    NoRoom,
}

/// RCTL's receive buffer size.
pub fn buffer_size(rctl: u32) -> usize {
    let extended = rctl & RCTL_BSEX != 0;
    match ((rctl >> RCTL_BSIZE_SHIFT) & 3, extended) {
        (1, false) => 1024,
        (2, false) => 512,
        (3, false) => 256,
        (1, true) => 16384,
        (2, true) => 8192,
        (3, true) => 4096,
        _ => 2048,
    }
}

/// How a frame goes into the ring.
struct Prepared {
    cast: Cast,
    /// Descriptor status bits besides DD and EOP.
    status: u8,
    /// The 802.1Q tag control the frame carried.
    special: u16,
}

/// The frame as the guest gets it, in `out`; an error if it is dropped
/// (too long: counted in ROC) or filtered.
fn prepare(dev: &mut Device, frame: &[u8], out: &mut Vec<u8>) -> Result<Prepared, Delivery> {
    out.clear();
    out.extend_from_slice(frame);
    if out.len() < MIN_FRAME {
        out.resize(MIN_FRAME, 0);
    }
    let rctl = dev.regs.get(RCTL);
    let limit = if rctl & RCTL_LPE != 0 {
        MAX_LONG_FRAME
    } else {
        MAX_FRAME
    };
    if out.len() > MAX_LONG_FRAME || (out.len() > limit && rctl & RCTL_SBP == 0) {
        dev.regs.count(ROC, 1);
        dev.stats.rx_drops.inc();
        return Err(Delivery::Dropped);
    }
    let Some(cast) = filter::accept(&dev.regs, out) else {
        return Err(Delivery::Filtered);
    };
    let mut status = STA_IXSM;
    let mut special = 0;
    if dev.regs.get(CTRL) & CTRL_VME != 0 && filter::vlan_id(&dev.regs, out).is_some() {
        special = u16::from_be_bytes([out[14], out[15]]);
        out.drain(12..16);
        status |= STA_VP;
    }
    if rctl & RCTL_SECRC == 0 {
        let mut crc = flate2::Crc::new();
        crc.update(out);
        out.extend_from_slice(&crc.sum().to_le_bytes());
    }
    Ok(Prepared {
        cast,
        status,
        special,
    })
}

/// Puts `frame` into the receive ring (`scratch` holds the frame as the
/// guest sees it).
pub fn deliver(
    dev: &mut Device,
    mem: &GuestMemory,
    frame: &[u8],
    scratch: &mut Vec<u8>,
) -> Delivery {
    let ring = match dev.rx_ring() {
        Some(r) if dev.rx_enabled() => r,
        _ => return Delivery::NoRoom,
    };
    let p = match prepare(dev, frame, scratch) {
        Ok(p) => p,
        Err(d) => return d,
    };
    let size = buffer_size(dev.regs.get(RCTL));
    if (ring.pending() as usize) < scratch.len().div_ceil(size) {
        return Delivery::NoRoom;
    }
    let mut head = ring.head;
    let mut offset = 0;
    let mut failed = false;
    while offset < scratch.len() {
        if head == ring.tail {
            // Descriptors without a buffer took the room.
            failed = true;
            break;
        }
        let mut d = [0u8; 16];
        let at = ring.descriptor(head);
        let Some(at) = at.filter(|a| mem.read_slice(&mut d, GuestAddress(*a)).is_ok()) else {
            // An unreadable descriptor ends the frame; it is consumed.
            failed = true;
            head = ring.next(head);
            break;
        };
        let buf = u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let mut wb = [0u8; 8];
        let mut sta = STA_DD;
        // A descriptor without a buffer is handed back unused.
        if buf != 0 {
            let chunk = size.min(scratch.len() - offset);
            let data = &scratch[offset..offset + chunk];
            if mem.write_slice(data, GuestAddress(buf)).is_err() {
                wb[5] = ERR_RXE;
                failed = true;
            }
            offset += chunk;
            wb[..2].copy_from_slice(&(chunk as u16).to_le_bytes());
            sta |= p.status | if offset == scratch.len() { STA_EOP } else { 0 };
        }
        wb[6..].copy_from_slice(&p.special.to_le_bytes());
        // The status byte goes last, after the data and the rest of the
        // write-back: DD tells the driver everything else is there.
        let written = mem.write_slice(&wb, GuestAddress(at + WRITEBACK_OFFSET));
        fence(Ordering::Release);
        if written
            .and_then(|_| mem.write_obj(sta, GuestAddress(at + STATUS_OFFSET)))
            .is_err()
        {
            failed = true;
        }
        head = ring.next(head);
    }
    dev.regs.set(RDH, head);
    let after = super::device::Ring { head, ..ring };
    let mut causes = ICR_RXT0;
    let shift = ((dev.regs.get(RCTL) >> RCTL_RDMTS_SHIFT) & 3) + 1;
    if u64::from(after.pending()) * 16 <= (u64::from(ring.count) * 16) >> shift {
        causes |= ICR_RXDMT0;
    }
    dev.raise(causes);
    if failed {
        dev.stats.rx_drops.inc();
        return Delivery::Dropped;
    }
    let with_fcs = if dev.regs.get(RCTL) & RCTL_SECRC == 0 {
        scratch.len()
    } else {
        scratch.len() + 4
    };
    let r = &mut dev.regs;
    r.count(TPR, 1);
    r.count(GPRC, 1);
    r.count64(TORL, with_fcs as u64);
    r.count64(GORCL, with_fcs as u64);
    r.count_size(PRC64, with_fcs);
    match p.cast {
        Cast::Broadcast => r.count(BPRC, 1),
        Cast::Multicast => r.count(MPRC, 1),
        Cast::Unicast => {}
    }
    Delivery::Delivered
}

#[cfg(test)]
#[path = "rx_tests.rs"]
mod tests;
