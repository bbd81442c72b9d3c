//! Port I/O and MMIO dispatch from vCPU exits to devices.
//!
//! A bus is built once before the vCPUs start and never changes after,
//! so lookups need no lock; each device carries its own mutex.

use std::sync::{Arc, Mutex};

/// A device reachable through a bus. `offset` is relative to the start of
/// the range the device was registered at.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Shared handle to a device on a bus.
pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

struct Range {
    start: u64,
    len: u64,
    dev: SharedDevice,
}

/// An address space (port I/O or MMIO) made of non-overlapping ranges.
#[derive(Default)]
pub struct Bus {
    ranges: Vec<Range>,
}

impl Bus {
    /// Adds a device at `[start, start + len)`. Fails on overlap.
    pub fn insert(&mut self, dev: SharedDevice, start: u64, len: u64) -> Result<(), String> {
        let end = start
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or_else(|| format!("bad bus range {start:#x}+{len:#x}"))?;
        if self
            .ranges
            .iter()
            .any(|r| start < r.start + r.len && r.start < end)
        {
            return Err(format!(
                "bus range {start:#x}..{end:#x} overlaps another device"
            ));
        }
        let pos = self.ranges.partition_point(|r| r.start < start);
        self.ranges.insert(pos, Range { start, len, dev });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(&Range, u64)> {
        let idx = self.ranges.partition_point(|r| r.start <= addr);
        let r = self.ranges.get(idx.checked_sub(1)?)?;
        (addr - r.start < r.len).then(|| (r, addr - r.start))
    }

    /// Reads from `addr`; returns false (and fills with 0xff) if no device.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((r, off)) => {
                match r.dev.lock() {
                    Ok(mut d) => d.read(off, data),
                    Err(p) => p.into_inner().read(off, data),
                }
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// Writes to `addr`; returns false if no device claimed it.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((r, off)) => {
                match r.dev.lock() {
                    Ok(mut d) => d.write(off, data),
                    Err(p) => p.into_inner().write(off, data),
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0 + offset as u8);
        }
        fn write(&mut self, _offset: u64, data: &[u8]) {
            self.0 = data[0];
        }
    }

    #[test]
    fn dispatch_and_overlap() {
        let mut bus = Bus::default();
        bus.insert(Arc::new(Mutex::new(Echo(1))), 0x10, 4).unwrap();
        bus.insert(Arc::new(Mutex::new(Echo(10))), 0x20, 1).unwrap();
        assert!(bus.insert(Arc::new(Mutex::new(Echo(0))), 0x12, 8).is_err());
        assert!(bus.insert(Arc::new(Mutex::new(Echo(0))), 0x0, 0).is_err());
        let mut b = [0u8; 1];
        assert!(bus.read(0x13, &mut b));
        assert_eq!(b[0], 4);
        assert!(!bus.read(0x14, &mut b));
        assert_eq!(b[0], 0xff);
        assert!(bus.write(0x20, &[7]));
        bus.read(0x20, &mut b);
        assert_eq!(b[0], 7);
    }
}
