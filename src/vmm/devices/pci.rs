//! PCI configuration space: mechanism #1 (0xCF8/0xCFC) and ECAM, with a
//! host bridge at 00:00.0 and nothing else yet. Empty slots read as all
//! ones.

use std::sync::{Arc, Mutex};

use crate::vmm::bus::BusDevice;

const VENDOR_REDHAT: u16 = 0x1b36;
const DEVICE_PCIE_HOST: u16 = 0x0008;
const CLASS_HOST_BRIDGE: u32 = 0x0600_0000;

/// The root complex's configuration space.
pub struct PciRoot {
    host_bridge: [u32; 16],
}

impl Default for PciRoot {
    fn default() -> Self {
        let mut h = [0u32; 16];
        h[0] = u32::from(DEVICE_PCIE_HOST) << 16 | u32::from(VENDOR_REDHAT);
        // Command: memory + I/O decode; status: 0.
        h[1] = 0x0000_0003;
        h[2] = CLASS_HOST_BRIDGE;
        PciRoot { host_bridge: h }
    }
}

impl PciRoot {
    /// Reads a dword of configuration space.
    pub fn read_dword(&self, bus: u8, dev: u8, func: u8, reg: u16) -> u32 {
        if bus == 0 && dev == 0 && func == 0 {
            let i = usize::from(reg / 4);
            self.host_bridge.get(i).copied().unwrap_or(0)
        } else {
            0xffff_ffff
        }
    }

    /// Writes to configuration space; the host bridge ignores writes.
    pub fn write_dword(&mut self, _bus: u8, _dev: u8, _func: u8, _reg: u16, _v: u32) {}
}

fn extract(dword: u32, byte_off: u64, data: &mut [u8]) {
    let bytes = dword.to_le_bytes();
    for (i, b) in data.iter_mut().enumerate() {
        *b = bytes.get(byte_off as usize + i).copied().unwrap_or(0xff);
    }
}

/// Port 0xCF8..0xCFF: address register and data window.
pub struct PciConfigIo {
    root: Arc<Mutex<PciRoot>>,
    address: u32,
}

impl PciConfigIo {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciConfigIo { root, address: 0 }
    }

    fn target(&self) -> Option<(u8, u8, u8, u16)> {
        let a = self.address;
        (a & 0x8000_0000 != 0).then_some({
            (
                (a >> 16) as u8,
                ((a >> 11) & 0x1f) as u8,
                ((a >> 8) & 0x7) as u8,
                (a & 0xfc) as u16,
            )
        })
    }
}

impl BusDevice for PciConfigIo {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            0..=3 => extract(self.address, offset, data),
            4..=7 => {
                let v = match (self.target(), self.root.lock()) {
                    (Some((b, d, f, r)), Ok(root)) => root.read_dword(b, d, f, r),
                    _ => 0xffff_ffff,
                };
                extract(v, offset - 4, data);
            }
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == 0 && data.len() == 4 {
            self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        } else if (4..=7).contains(&offset)
            && let (Some((b, d, f, r)), Ok(mut root)) = (self.target(), self.root.lock())
        {
            let mut v = root.read_dword(b, d, f, r).to_le_bytes();
            for (i, x) in data.iter().enumerate() {
                if let Some(slot) = v.get_mut((offset - 4) as usize + i) {
                    *slot = *x;
                }
            }
            root.write_dword(b, d, f, r, u32::from_le_bytes(v));
        }
    }
}

/// ECAM window: bus << 20 | device << 15 | function << 12 | register.
pub struct PciEcam {
    root: Arc<Mutex<PciRoot>>,
}

impl PciEcam {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciEcam { root }
    }
}

fn ecam_decode(offset: u64) -> (u8, u8, u8, u16) {
    (
        ((offset >> 20) & 0xff) as u8,
        ((offset >> 15) & 0x1f) as u8,
        ((offset >> 12) & 0x7) as u8,
        (offset & 0xffc) as u16,
    )
}

impl BusDevice for PciEcam {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let (b, d, f, r) = ecam_decode(offset);
        let v = match self.root.lock() {
            Ok(root) => root.read_dword(b, d, f, r),
            Err(_) => 0xffff_ffff,
        };
        extract(v, offset & 3, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (b, d, f, r) = ecam_decode(offset);
        if let Ok(mut root) = self.root.lock() {
            let mut v = root.read_dword(b, d, f, r).to_le_bytes();
            for (i, x) in data.iter().enumerate() {
                if let Some(slot) = v.get_mut((offset & 3) as usize + i) {
                    *slot = *x;
                }
            }
            root.write_dword(b, d, f, r, u32::from_le_bytes(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bridge_and_empty_slots() {
        let root = Arc::new(Mutex::new(PciRoot::default()));
        let mut io = PciConfigIo::new(root.clone());
        io.write(0, &0x8000_0000u32.to_le_bytes());
        let mut w = [0u8; 2];
        io.read(4, &mut w);
        assert_eq!(u16::from_le_bytes(w), VENDOR_REDHAT);
        io.write(0, &(0x8000_0000u32 | 1 << 11).to_le_bytes());
        io.read(4, &mut w);
        assert_eq!(w, [0xff, 0xff]);
        let mut ecam = PciEcam::new(root);
        let mut d = [0u8; 4];
        ecam.read(8, &mut d);
        assert_eq!(u32::from_le_bytes(d) >> 8, CLASS_HOST_BRIDGE >> 8);
        ecam.read(1 << 15, &mut d);
        assert_eq!(d, [0xff; 4]);
    }
}
