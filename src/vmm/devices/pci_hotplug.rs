//! ACPI PCI hotplug for the slots of bus 0: a block of 32-bit registers
//! the DSDT's methods use (`\_SB_.PHPR`, see `acpi/dsdt.rs`), announced
//! through the Generic Event Device.
//!
//! | offset | name | access |
//! | --- | --- | --- |
//! | 0x0 | PCIU | read: slots given a device since the last read (then cleared) |
//! | 0x4 | PCID | read: slots whose device the host asks the guest to release (then cleared) |
//! | 0x8 | B0EJ | write: the guest ejects the slots whose bits are set |
//! | 0xC | PSEG | PCI segment of the above; only segment 0 exists |
//! | 0x10 | POST | write: a slot's `_OST`, slot in bits 0-7, the event it answers in bits 8-15, the status in bits 16-31 |
//!
//! A guest that cannot release a device answers the Eject Request with a
//! failure status through `_OST` (Linux does when the device is in use):
//! the removal is no longer pending and the main loop reports it.
//! An eject takes the slot's functions off the bus at once (the guest's
//! next configuration read finds it empty) and hands them to the main
//! loop, which stops their workers and frees what they held.

use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::pci::{PciRoot, SharedFunction};
use crate::vmm::bus::BusDevice;

/// Size of the register block.
pub const SIZE: u64 = 0x20;
const PCIU: u64 = 0x0;
const PCID: u64 = 0x4;
const B0EJ: u64 = 0x8;
const POST: u64 = 0x10;

const _: () =
    assert!(crate::vmm::layout::PCI_HOTPLUG_START + SIZE <= crate::vmm::layout::CPU_HOTPLUG_START);

/// `_OST` source event: Eject Request.
pub const OST_EVENT_EJECT: u32 = 3;

/// Whether an `_OST` status answering an Eject Request is a refusal: a
/// non-specific failure, or the device in use, busy, its dependencies
/// busy, or its eject still under way (ACPI 6.4, 6.3.5.1; the same codes
/// libvirt takes as a guest's refusal of a DIMM's removal).
fn eject_refused(status: u32) -> bool {
    status == 1 || (0x80..=0x83).contains(&status)
}

/// The registers and the slots in flight.
pub struct PciHotplug {
    root: Arc<Mutex<PciRoot>>,
    /// Slots with a new device, not yet read by the guest.
    up: u32,
    /// Slots whose removal was requested, not yet read by the guest.
    down: u32,
    /// Slots the guest may eject (those holding a removable device).
    removable: u32,
    /// Functions the guest ejected, for the main loop.
    ejected: Vec<(u8, Vec<SharedFunction>)>,
    /// Slots whose removal the guest refused, for the main loop.
    refused: Vec<u8>,
    /// Signalled when `ejected` gains an entry.
    ejected_fd: EventFd,
}

fn bit(slot: u8) -> u32 {
    1u32.checked_shl(u32::from(slot)).unwrap_or(0)
}

impl PciHotplug {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> std::io::Result<Self> {
        Ok(PciHotplug {
            root,
            up: 0,
            down: 0,
            removable: 0,
            ejected: Vec::new(),
            refused: Vec::new(),
            ejected_fd: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    /// The eventfd the main loop polls for ejected slots (and refused
    /// removals).
    pub fn ejected_fd(&self) -> &EventFd {
        &self.ejected_fd
    }

    /// A device was plugged into `slot`: the guest learns it at its next
    /// read of PCIU; it may eject it when `removable`.
    pub fn plugged(&mut self, slot: u8, removable: bool) {
        self.up |= bit(slot);
        self.down &= !bit(slot);
        if removable {
            self.removable |= bit(slot);
        }
    }

    /// Marks the devices present at start that the guest may eject.
    pub fn set_removable(&mut self, slot: u8) {
        self.removable |= bit(slot);
    }

    /// Asks the guest to release `slot`'s device.
    pub fn request_removal(&mut self, slot: u8) {
        self.down |= bit(slot);
    }

    /// Whether a removal of `slot` is waiting for the guest.
    pub fn removal_pending(&self, slot: u8) -> bool {
        self.down & bit(slot) != 0
    }

    /// The slots the guest ejected since the last call, with their
    /// functions (already off the bus).
    pub fn take_ejected(&mut self) -> Vec<(u8, Vec<SharedFunction>)> {
        let _ = self.ejected_fd.read();
        std::mem::take(&mut self.ejected)
    }

    /// The slots whose removal the guest refused since the last call.
    pub fn take_refused(&mut self) -> Vec<u8> {
        let _ = self.ejected_fd.read();
        std::mem::take(&mut self.refused)
    }

    /// A slot's `_OST`: a refused Eject Request ends the pending removal.
    fn ost(&mut self, v: u32) {
        let (slot, event, status) = ((v & 0xff) as u8, (v >> 8) & 0xff, v >> 16);
        tracing::debug!("_OST of PCI slot {slot}: event {event:#x}, status {status:#x}");
        if event != OST_EVENT_EJECT || !eject_refused(status) || !self.removal_pending(slot) {
            return;
        }
        self.down &= !bit(slot);
        self.refused.push(slot);
        let _ = self.ejected_fd.write(1);
    }

    fn eject(&mut self, mask: u32) {
        for slot in 1..32u8 {
            if mask & bit(slot) == 0 {
                continue;
            }
            if self.removable & bit(slot) == 0 {
                tracing::info!("guest ejected PCI slot {slot}, which has no removable device");
                continue;
            }
            self.removable &= !bit(slot);
            self.down &= !bit(slot);
            let functions = self
                .root
                .lock()
                .map(|mut r| r.unplug(slot))
                .unwrap_or_default();
            self.ejected.push((slot, functions));
            let _ = self.ejected_fd.write(1);
        }
    }
}

impl BusDevice for PciHotplug {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = match offset {
            PCIU => std::mem::take(&mut self.up),
            // Unlike PCIU, a pending removal stays pending until the
            // eject: the guest may read PCID again after a failed one.
            PCID => self.down,
            _ => 0,
        };
        super::fill_u32_read(data, v);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let v = super::written_u32(data);
        match offset {
            B0EJ => self.eject(v),
            POST => self.ost(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(h: &mut PciHotplug, off: u64) -> u32 {
        let mut d = [0u8; 4];
        h.read(off, &mut d);
        u32::from_le_bytes(d)
    }

    #[test]
    fn plug_announce_and_eject() {
        let root = Arc::new(Mutex::new(PciRoot::default()));
        let mut h = PciHotplug::new(root).unwrap();
        h.plugged(5, true);
        assert_eq!(read32(&mut h, PCIU), 1 << 5);
        assert_eq!(read32(&mut h, PCIU), 0, "PCIU clears on read");
        h.request_removal(5);
        assert_eq!(read32(&mut h, PCID), 1 << 5);
        assert!(h.removal_pending(5));
        // Ejecting a slot without a removable device does nothing.
        h.write(B0EJ, &(1u32 << 7).to_le_bytes());
        assert!(h.take_ejected().is_empty());
        h.write(B0EJ, &(1u32 << 5).to_le_bytes());
        let e = h.take_ejected();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, 5);
        assert_eq!(read32(&mut h, PCID), 0);
        assert!(!h.removal_pending(5));
        // A second eject of the same slot finds nothing to remove.
        h.write(B0EJ, &(1u32 << 5).to_le_bytes());
        assert!(h.take_ejected().is_empty());
    }

    #[test]
    fn a_refused_eject_ends_the_removal() {
        let root = Arc::new(Mutex::new(PciRoot::default()));
        let mut h = PciHotplug::new(root).unwrap();
        h.plugged(6, true);
        let ost = |slot: u32, event: u32, status: u32| slot | event << 8 | status << 16;
        // Not asked to go: nothing to refuse.
        h.write(POST, &ost(6, 3, 0x81).to_le_bytes());
        assert!(h.take_refused().is_empty());
        h.request_removal(6);
        // Success, or another event's status: still pending.
        h.write(POST, &ost(6, 3, 0).to_le_bytes());
        h.write(POST, &ost(6, 1, 1).to_le_bytes());
        assert!(h.removal_pending(6));
        h.write(POST, &ost(6, 3, 0x81).to_le_bytes());
        assert_eq!(h.take_refused(), vec![6]);
        assert!(!h.removal_pending(6));
        assert_eq!(read32(&mut h, PCID), 0);
    }
}
