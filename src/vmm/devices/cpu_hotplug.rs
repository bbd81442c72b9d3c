//! ACPI CPU hotplug: which vCPUs the guest has, which it has not been told
//! about yet, and which the host wants back. A block of three 32-bit
//! registers the DSDT's methods use (`\_SB_.CPUS`, see `acpi/dsdt.rs`),
//! announced through the Generic Event Device.
//!
//! | offset | name | access |
//! | --- | --- | --- |
//! | 0x0 | CSEL | read/write: the vCPU (by index) CSTS is about |
//! | 0x4 | CSTS | read: bit 0 present, bit 1 plugged in and not yet announced, bit 2 removal asked for; write: bit 1 clears the announcement, bit 3 ejects the vCPU |
//! | 0x8 | CMAX | read: how many vCPUs the machine has, present or not |
//!
//! The machine is built with all its vCPUs; an absent one's thread waits
//! outside KVM_RUN (`vcpu.rs`), so it runs nothing until it is plugged in
//! and the guest starts it (INIT, SIPI), and stops running once ejected.

use serde::{Deserialize, Serialize};
use vmm_sys_util::eventfd::EventFd;

use crate::vmm::bus::BusDevice;

/// Size of the register block.
pub const SIZE: u64 = 0x10;
const CSEL: u64 = 0x0;
const CSTS: u64 = 0x4;
const CMAX: u64 = 0x8;

pub const STS_PRESENT: u32 = 1 << 0;
pub const STS_INSERT: u32 = 1 << 1;
pub const STS_REMOVE: u32 = 1 << 2;
pub const CTL_EJECT: u32 = 1 << 3;

/// What a state image keeps of the registers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuHotplugState {
    pub present: Vec<bool>,
    pub inserting: Vec<bool>,
    pub removing: Vec<bool>,
    pub selected: u32,
}

/// The registers, and the vCPUs the guest ejected for the main loop.
pub struct CpuHotplug {
    s: CpuHotplugState,
    ejected: Vec<usize>,
    /// Signalled when `ejected` gains an entry.
    ejected_fd: EventFd,
}

impl CpuHotplug {
    /// `max` vCPUs, the first `present` of them there at boot.
    pub fn new(max: usize, present: usize) -> std::io::Result<Self> {
        Ok(CpuHotplug {
            s: CpuHotplugState {
                present: (0..max).map(|i| i < present).collect(),
                inserting: vec![false; max],
                removing: vec![false; max],
                selected: 0,
            },
            ejected: Vec::new(),
            ejected_fd: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    pub fn ejected_fd(&self) -> &EventFd {
        &self.ejected_fd
    }

    pub fn present(&self, index: usize) -> bool {
        self.s.present.get(index).copied().unwrap_or(false)
    }

    /// How many vCPUs are present.
    pub fn online(&self) -> usize {
        self.s.present.iter().filter(|p| **p).count()
    }

    /// Makes the guest's vCPU count `count`: absent vCPUs plugged in from
    /// the lowest index up, or removal asked of present ones from the
    /// highest down (a removal asked for earlier and now unwanted is
    /// withdrawn). Returns the vCPUs plugged in, for their threads to be
    /// let go; the caller interrupts the guest when anything changed.
    pub fn set_count(&mut self, count: usize) -> Result<Vec<usize>, String> {
        let max = self.s.present.len();
        if count == 0 || count > max {
            return Err(format!("vCPU count {count} is out of range 1..={max}"));
        }
        let mut plugged = Vec::new();
        let mut have = self.online();
        for i in 0..max {
            if have >= count {
                break;
            }
            if !self.s.present[i] {
                self.s.present[i] = true;
                self.s.inserting[i] = true;
                plugged.push(i);
                have += 1;
            }
        }
        // The `count` lowest present vCPUs stay; the rest are asked to go.
        let mut kept = 0;
        for i in 0..max {
            if self.s.present[i] {
                kept += 1;
                self.s.removing[i] = kept > count;
            }
        }
        Ok(plugged)
    }

    /// Whether the guest has removals still to do.
    pub fn removals_pending(&self) -> bool {
        self.s.removing.iter().any(|r| *r)
    }

    /// The vCPUs the guest ejected since the last call.
    pub fn take_ejected(&mut self) -> Vec<usize> {
        let _ = self.ejected_fd.read();
        std::mem::take(&mut self.ejected)
    }

    pub fn state(&self) -> CpuHotplugState {
        self.s.clone()
    }

    pub fn restore(&mut self, s: &CpuHotplugState) -> Result<(), String> {
        let n = self.s.present.len();
        if [s.present.len(), s.inserting.len(), s.removing.len()] != [n; 3] {
            return Err(format!(
                "the state's CPU hotplug registers are not for {n} vCPUs"
            ));
        }
        self.s = s.clone();
        Ok(())
    }

    fn status(&self) -> u32 {
        let i = self.s.selected as usize;
        let flag = |v: &Vec<bool>, bit| if v.get(i) == Some(&true) { bit } else { 0 };
        flag(&self.s.present, STS_PRESENT)
            | flag(&self.s.inserting, STS_INSERT)
            | flag(&self.s.removing, STS_REMOVE)
    }

    fn control(&mut self, v: u32) {
        let i = self.s.selected as usize;
        if i >= self.s.present.len() {
            return;
        }
        if v & STS_INSERT != 0 {
            self.s.inserting[i] = false;
        }
        if v & CTL_EJECT != 0 {
            // Only a vCPU the host asked for may go (never the last).
            if !self.s.removing[i] || !self.s.present[i] {
                tracing::info!("guest ejected vCPU {i}, which was not asked to go");
                return;
            }
            self.s.present[i] = false;
            self.s.removing[i] = false;
            self.s.inserting[i] = false;
            self.ejected.push(i);
            let _ = self.ejected_fd.write(1);
        }
    }
}

impl BusDevice for CpuHotplug {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let v = match offset {
            CSEL => self.s.selected,
            CSTS => self.status(),
            CMAX => self.s.present.len() as u32,
            _ => 0,
        };
        super::fill_u32_read(data, v);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let v = super::written_u32(data);
        match offset {
            CSEL => self.s.selected = v,
            CSTS => self.control(v),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sts(d: &mut CpuHotplug, i: u32) -> u32 {
        d.write(CSEL, &i.to_le_bytes());
        let mut b = [0u8; 4];
        d.read(CSTS, &mut b);
        u32::from_le_bytes(b)
    }

    #[test]
    fn plug_announce_remove_eject() {
        let mut d = CpuHotplug::new(4, 1).unwrap();
        let mut b = [0u8; 4];
        d.read(CMAX, &mut b);
        assert_eq!(u32::from_le_bytes(b), 4);
        assert_eq!(sts(&mut d, 0), STS_PRESENT);
        assert_eq!(sts(&mut d, 1), 0);
        assert_eq!(d.set_count(3).unwrap(), vec![1, 2]);
        assert_eq!(sts(&mut d, 2), STS_PRESENT | STS_INSERT);
        d.write(CSTS, &STS_INSERT.to_le_bytes());
        assert_eq!(sts(&mut d, 2), STS_PRESENT);
        assert_eq!(d.online(), 3);

        // Down to one: the two highest are asked to go.
        assert!(d.set_count(1).unwrap().is_empty());
        assert_eq!(sts(&mut d, 0), STS_PRESENT);
        assert_eq!(sts(&mut d, 2), STS_PRESENT | STS_REMOVE);
        // An eject of a vCPU not asked for is ignored.
        sts(&mut d, 0);
        d.write(CSTS, &CTL_EJECT.to_le_bytes());
        assert!(d.present(0));
        sts(&mut d, 2);
        d.write(CSTS, &CTL_EJECT.to_le_bytes());
        assert_eq!(d.take_ejected(), vec![2]);
        assert_eq!(sts(&mut d, 2), 0);
        assert!(d.removals_pending());
        // Back up to two: vCPU 1's removal is withdrawn, nothing plugged.
        assert!(d.set_count(2).unwrap().is_empty());
        assert!(!d.removals_pending());
        assert_eq!(d.online(), 2);
        assert!(d.set_count(5).is_err() && d.set_count(0).is_err());
    }

    #[test]
    fn state_round_trip_checks_the_size() {
        let mut d = CpuHotplug::new(2, 1).unwrap();
        d.set_count(2).unwrap();
        let s = d.state();
        let mut e = CpuHotplug::new(2, 1).unwrap();
        e.restore(&s).unwrap();
        assert_eq!(e.online(), 2);
        assert!(CpuHotplug::new(3, 1).unwrap().restore(&s).is_err());
    }
}
