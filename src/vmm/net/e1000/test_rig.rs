//! A device in 1 MiB of guest memory for the unit tests, with rings set
//! up the way Linux's e1000 driver sets them up.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::device::{Device, PCI_CMD_BUS_MASTER};
use super::regs::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};
use crate::vmm::virtio::stats::NetStats;

pub const MEM: u64 = 0x10_0000;
pub const GSI: u32 = 20;
pub const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Where the rings and their buffers go.
pub const TX_RING: u64 = 0x1_0000;
pub const RX_RING: u64 = 0x2_0000;
pub const TX_BUFS: u64 = 0x4_0000;
pub const RX_BUFS: u64 = 0x8_0000;
/// Receive buffers are this far apart.
pub const RX_BUF_STRIDE: u64 = 0x4000;

pub struct Rig {
    pub dev: Device,
    pub mem: GuestMemory,
    pub lines: Arc<IntxLines>,
}

/// Fresh guest memory and an INTx pin on [`GSI`] for the function at
/// `slot`, with the lines it is one of.
pub fn memory_and_pin(slot: u8) -> (GuestMemory, Arc<IntxLines>, IntxLine) {
    let mem: GuestMemory =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
    let lines = Arc::new(IntxLines::new(None));
    let irq = IntxLine {
        lines: lines.clone(),
        gsi: GSI,
        slot,
    };
    (mem, lines, irq)
}

/// A device after reset, bus mastering on, in fresh guest memory.
pub fn rig() -> Rig {
    let (mem, lines, irq) = memory_and_pin(3);
    let mut dev = Device::new(MAC, Some(irq), Arc::new(NetStats::default()));
    dev.set_command(PCI_CMD_BUS_MASTER);
    Rig { dev, mem, lines }
}

impl Rig {
    /// The INTx level.
    pub fn irq(&self) -> bool {
        self.lines.level(GSI)
    }

    /// A transmit ring of `count` descriptors, enabled, empty.
    pub fn tx_ring(&mut self, count: u32) {
        let d = &mut self.dev;
        d.write(TDBAL, TX_RING as u32);
        d.write(TDBAH, 0);
        d.write(TDLEN, count * 16);
        d.write(TDH, 0);
        d.write(TDT, 0);
        d.write(TCTL, TCTL_EN);
    }

    /// Writes transmit descriptor `i`.
    pub fn tx_desc(&self, i: u32, d: [u8; 16]) {
        let at = GuestAddress(TX_RING + 16 * u64::from(i));
        self.mem.write_slice(&d, at).unwrap();
    }

    /// The status byte of transmit descriptor `i`.
    pub fn tx_status(&self, i: u32) -> u8 {
        let at = GuestAddress(TX_RING + 16 * u64::from(i) + 12);
        self.mem.read_obj(at).unwrap()
    }

    /// A receive ring of `count` descriptors, each with a buffer, every
    /// one but the last given to the device; RCTL as `rctl` plus EN.
    pub fn rx_ring(&mut self, count: u32, rctl: u32) {
        for i in 0..count {
            let mut d = [0u8; 16];
            let buf = RX_BUFS + RX_BUF_STRIDE * u64::from(i);
            d[..8].copy_from_slice(&buf.to_le_bytes());
            let at = GuestAddress(RX_RING + 16 * u64::from(i));
            self.mem.write_slice(&d, at).unwrap();
        }
        let d = &mut self.dev;
        d.write(RDBAL, RX_RING as u32);
        d.write(RDBAH, 0);
        d.write(RDLEN, count * 16);
        d.write(RDH, 0);
        d.write(RDT, count - 1);
        d.write(RCTL, rctl | RCTL_EN);
    }

    /// Receive descriptor `i`'s write-back: length, status, errors,
    /// special.
    pub fn rx_desc(&self, i: u32) -> (u16, u8, u8, u16) {
        let mut d = [0u8; 16];
        let at = GuestAddress(RX_RING + 16 * u64::from(i));
        self.mem.read_slice(&mut d, at).unwrap();
        (
            u16::from_le_bytes([d[8], d[9]]),
            d[12],
            d[13],
            u16::from_le_bytes([d[14], d[15]]),
        )
    }

    /// `len` bytes of receive buffer `i`.
    pub fn rx_buf(&self, i: u32, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        let at = GuestAddress(RX_BUFS + RX_BUF_STRIDE * u64::from(i));
        self.mem.read_slice(&mut b, at).unwrap();
        b
    }
}

/// A legacy transmit descriptor.
pub fn legacy(addr: u64, len: u16, cmd: u8) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..10].copy_from_slice(&len.to_le_bytes());
    d[11] = cmd;
    d
}

// Descriptor command bits (the byte at offset 11).
pub const EOP: u8 = 0x01;
pub const RS: u8 = 0x08;
pub const DEXT: u8 = 0x20;
pub const VLE: u8 = 0x40;
pub const TSE: u8 = 0x04;

/// A frame from the guest's MAC to `dst`: ether type 0x88b5, `len`
/// bytes in all, the payload counting up.
pub fn frame(dst: [u8; 6], len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x88, 0xb5]);
    f.extend((0..len.saturating_sub(14)).map(|i| i as u8));
    f
}
