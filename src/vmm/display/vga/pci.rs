//! The adapter's PCI function: QEMU's stdvga identity, BAR 0 with video
//! memory (mapped into the guest, not trapped) and BAR 2 with the
//! registers as MMIO:
//!
//! ```text
//! 0x000-0x3FF  EDID (not provided: reads as zero)
//! 0x400-0x41F  VGA ports 0x3C0-0x3DF, byte-wide
//! 0x500-0x515  DISPI registers, index * 2, 16-bit little-endian
//! 0x600        QEMU extended registers: size (read-only, 8)
//! 0x604        framebuffer byte order (0x1e1e1e1e little, 0xbebebebe big)
//! ```

use std::sync::{Arc, Mutex};

use super::vram::Vram;
use super::{VgaBars, VgaState, lock};
use crate::vmm::devices::pci::PciFunction;

pub const PCI_VENDOR_ID: u16 = 0x1234;
pub const PCI_DEVICE_ID: u16 = 0x1111;
const REVISION: u32 = 2;
const CLASS_VGA: u32 = 0x03_00_00;
/// Subsystem: Red Hat / QEMU, as QEMU gives every device by default.
const SUBSYSTEM: u32 = 0x1100 << 16 | 0x1af4;

pub const FRAMEBUFFER_BAR: usize = 0;
pub const MMIO_BAR: usize = 2;
pub const MMIO_BAR_SIZE: u64 = 0x1000;
/// BAR 0 type bits: 32-bit prefetchable memory.
const BAR_PREFETCH: u32 = 0x8;

const CMD_IO: u32 = 1 << 0;
const CMD_MEMORY: u32 = 1 << 1;

const MMIO_PORTS: u64 = 0x400;
const MMIO_PORTS_END: u64 = 0x420;
const MMIO_PORTS_BASE: u16 = 0x3c0;
const MMIO_DISPI: u64 = 0x500;
const MMIO_DISPI_END: u64 = 0x516;
const MMIO_QEXT_SIZE: u64 = 0x600;
const MMIO_QEXT_BYTEORDER: u64 = 0x604;
const QEXT_SIZE: u32 = 8;
const LITTLE_ENDIAN: u32 = 0x1e1e_1e1e;
const BIG_ENDIAN: u32 = 0xbebe_bebe;

/// Maps the adapter's video memory into the guest's physical address
/// space; the VMM implements it with one KVM memory slot per adapter
/// (`KVM_SET_USER_MEMORY_REGION`).
///
/// Contract:
/// - `map` is called only while nothing is mapped, `unmap` only while
///   something is; moving the BAR is `unmap` then `map`.
/// - `host_addr..host_addr + len` stays valid until `unmap` returns: the
///   adapter unmaps before its video memory is freed (on drop).
/// - `gpa` is aligned to `len`, a power of two of at least 1 MiB. It is
///   wherever the guest put BAR 0; an `Err` (such as an overlap with
///   another slot) leaves BAR 0 trapped and served by the adapter.
/// - Calls come from a vCPU thread writing configuration space, with the
///   PCI function's lock held: they must not touch the PCI root.
pub trait GuestMapper: Send {
    fn map(&self, gpa: u64, host_addr: *mut u8, len: u64) -> Result<(), String>;
    fn unmap(&self) -> Result<(), String>;
}

/// The adapter's registers and PCI function, as a state image keeps them
/// (video memory goes into the image as memory runs).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgaPciState {
    regs: super::regs::VgaRegsState,
    dispi: super::dispi::Dispi,
    io_decode: bool,
    command: u32,
    bar0: u32,
    bar2: u32,
    interrupt_line: u8,
    big_endian_fb: bool,
}

pub struct VgaPci {
    state: Arc<Mutex<VgaState>>,
    vram: Arc<Vram>,
    mapper: Option<Box<dyn GuestMapper>>,
    /// Where video memory is currently mapped into the guest.
    mapped_at: Option<u64>,
    command: u32,
    bar0: u32,
    bar2: u32,
    interrupt_line: u8,
    big_endian_fb: bool,
}

impl VgaPci {
    pub(super) fn new(
        state: Arc<Mutex<VgaState>>,
        vram: Arc<Vram>,
        mapper: Option<Box<dyn GuestMapper>>,
        bars: Option<VgaBars>,
    ) -> Result<Self, String> {
        let mut f = VgaPci {
            state,
            vram,
            mapper,
            mapped_at: None,
            command: 0,
            bar0: 0,
            bar2: 0,
            interrupt_line: 0,
            big_endian_fb: false,
        };
        if let Some(b) = bars {
            if u64::from(b.framebuffer) % f.vram.len() != 0
                || u64::from(b.mmio) % MMIO_BAR_SIZE != 0
            {
                return Err(format!(
                    "VGA BARs {:#x}/{:#x} are not aligned to their sizes",
                    b.framebuffer, b.mmio
                ));
            }
            f.bar0 = b.framebuffer;
            f.bar2 = b.mmio;
            f.set_command(CMD_IO | CMD_MEMORY);
        }
        Ok(f)
    }

    pub fn state(&self) -> VgaPciState {
        let st = lock(&self.state);
        VgaPciState {
            regs: st.regs.state(),
            dispi: st.dispi.clone(),
            io_decode: st.io_decode,
            command: self.command,
            bar0: self.bar0,
            bar2: self.bar2,
            interrupt_line: self.interrupt_line,
            big_endian_fb: self.big_endian_fb,
        }
    }

    /// Loads saved registers and maps video memory where BAR 0 was.
    pub fn restore(&mut self, s: &VgaPciState) -> Result<(), String> {
        if s.dispi != s.dispi.clone().with_vram_size(self.vram.len()) {
            return Err("the saved VGA adapter has a different video memory size".into());
        }
        {
            let mut st = lock(&self.state);
            st.regs = super::regs::VgaRegs::from_state(&s.regs)?;
            st.dispi = s.dispi.clone();
        }
        self.bar0 = s.bar0;
        self.bar2 = s.bar2;
        self.interrupt_line = s.interrupt_line;
        self.big_endian_fb = s.big_endian_fb;
        self.set_command(s.command);
        lock(&self.state).io_decode = s.io_decode;
        Ok(())
    }

    /// Video memory: where it is in the VMM and how long.
    pub fn vram_block(&self) -> (*mut u8, usize) {
        (self.vram.host_addr(), self.vram.len() as usize)
    }

    /// Where BAR 0 is mapped into the guest, if it is.
    pub fn framebuffer_mapped_at(&self) -> Option<u64> {
        self.mapped_at
    }

    /// Size of BAR 0 (the video memory).
    pub fn framebuffer_size(&self) -> u64 {
        self.vram.len()
    }

    fn memory_decode(&self) -> bool {
        self.command & CMD_MEMORY != 0
    }

    fn set_command(&mut self, v: u32) {
        self.command = v & (CMD_IO | CMD_MEMORY);
        lock(&self.state).io_decode = self.command & CMD_IO != 0;
        self.update_mapping();
    }

    /// Keeps the guest mapping of video memory where BAR 0 decodes.
    fn update_mapping(&mut self) {
        // A BAR that reaches the top of the 32-bit space holds the sizing
        // pattern firmware writes (all ones), not an address: it decodes
        // nothing, as on QEMU's bus.
        let end = u64::from(self.bar0) + self.vram.len() - 1;
        let want = (self.memory_decode() && self.bar0 != 0 && end < u64::from(u32::MAX))
            .then_some(u64::from(self.bar0));
        if want == self.mapped_at {
            return;
        }
        let Some(mapper) = &self.mapper else {
            return;
        };
        if self.mapped_at.take().is_some()
            && let Err(e) = mapper.unmap()
        {
            tracing::warn!("unmapping VGA video memory: {e}");
        }
        if let Some(gpa) = want {
            match mapper.map(gpa, self.vram.host_addr(), self.vram.len()) {
                Ok(()) => self.mapped_at = Some(gpa),
                Err(e) => {
                    tracing::warn!("mapping VGA video memory at {gpa:#x}: {e}; accesses will trap")
                }
            }
        }
    }

    fn mmio_read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match offset {
            MMIO_PORTS..MMIO_PORTS_END => {
                let mut s = lock(&self.state);
                for (i, b) in data.iter_mut().enumerate() {
                    let off = offset - MMIO_PORTS + i as u64;
                    if off < MMIO_PORTS_END - MMIO_PORTS {
                        *b = s.regs.read(MMIO_PORTS_BASE + off as u16);
                    }
                }
            }
            MMIO_DISPI..MMIO_DISPI_END => {
                let mut s = lock(&self.state);
                for (i, b) in data.iter_mut().enumerate() {
                    let off = offset - MMIO_DISPI + i as u64;
                    if off < MMIO_DISPI_END - MMIO_DISPI {
                        s.dispi.write_index((off / 2) as u16);
                        *b = s.dispi.read_data().to_le_bytes()[(off % 2) as usize];
                    }
                }
            }
            MMIO_QEXT_SIZE | MMIO_QEXT_BYTEORDER => {
                let v = if offset == MMIO_QEXT_SIZE {
                    QEXT_SIZE
                } else if self.big_endian_fb {
                    BIG_ENDIAN
                } else {
                    LITTLE_ENDIAN
                };
                for (b, x) in data.iter_mut().zip(v.to_le_bytes()) {
                    *b = x;
                }
            }
            _ => {}
        }
    }

    fn mmio_write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            MMIO_PORTS..MMIO_PORTS_END => {
                let mut s = lock(&self.state);
                for (i, &b) in data.iter().enumerate() {
                    let off = offset - MMIO_PORTS + i as u64;
                    if off < MMIO_PORTS_END - MMIO_PORTS {
                        s.regs.write(MMIO_PORTS_BASE + off as u16, b);
                    }
                }
            }
            MMIO_DISPI..MMIO_DISPI_END => {
                let mut s = lock(&self.state);
                let first = (offset - MMIO_DISPI) / 2;
                for (k, pair) in data.chunks(2).enumerate() {
                    let index = first + k as u64;
                    if index < (MMIO_DISPI_END - MMIO_DISPI) / 2 {
                        let v = u16::from_le_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
                        s.dispi.write_index(index as u16);
                        s.dispi.write_data(v, &self.vram);
                    }
                }
            }
            MMIO_QEXT_BYTEORDER if data.len() == 4 => {
                match u32::from_le_bytes([data[0], data[1], data[2], data[3]]) {
                    LITTLE_ENDIAN => self.big_endian_fb = false,
                    BIG_ENDIAN => self.big_endian_fb = true,
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl PciFunction for VgaPci {
    fn read_config(&self, reg: u16) -> u32 {
        match reg {
            0x00 => u32::from(PCI_DEVICE_ID) << 16 | u32::from(PCI_VENDOR_ID),
            0x04 => self.command,
            0x08 => CLASS_VGA << 8 | REVISION,
            0x10 => self.bar0 | BAR_PREFETCH,
            0x18 => self.bar2,
            0x2c => SUBSYSTEM,
            0x3c => u32::from(self.interrupt_line),
            _ => 0,
        }
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        match reg {
            0x04 => self.set_command(value),
            0x10 => {
                let size = u32::try_from(self.vram.len()).unwrap_or(0x8000_0000);
                self.bar0 = value & !(size - 1) & !0xf;
                self.update_mapping();
            }
            0x18 => self.bar2 = value & !(MMIO_BAR_SIZE as u32 - 1),
            0x3c => self.interrupt_line = value as u8,
            _ => {}
        }
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        if !self.memory_decode() {
            return None;
        }
        let hit = |base: u32, size: u64| {
            let off = addr.checked_sub(u64::from(base))?;
            (base != 0 && off < size).then_some(off)
        };
        if let Some(off) = hit(self.bar0, self.vram.len()) {
            return Some((FRAMEBUFFER_BAR, off));
        }
        hit(self.bar2, MMIO_BAR_SIZE).map(|off| (MMIO_BAR, off))
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        match bar {
            FRAMEBUFFER_BAR => self.vram.read(offset, data),
            MMIO_BAR => self.mmio_read(offset, data),
            _ => data.fill(0xff),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        match bar {
            FRAMEBUFFER_BAR => self.vram.write(offset, data),
            MMIO_BAR => self.mmio_write(offset, data),
            _ => {}
        }
    }
}

impl Drop for VgaPci {
    fn drop(&mut self) {
        if self.mapped_at.take().is_some()
            && let Some(m) = &self.mapper
            && let Err(e) = m.unmap()
        {
            tracing::warn!("unmapping VGA video memory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispi;
    use super::*;
    use crate::vmm::display::vga::Vga;
    use crate::vmm::memory::GuestMemory;
    use vm_memory::GuestAddress;

    /// Records the calls it gets; fails to map at `refuse`.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<String>>>,
        refuse: u64,
    }

    impl GuestMapper for Recorder {
        fn map(&self, gpa: u64, host_addr: *mut u8, len: u64) -> Result<(), String> {
            assert!(!host_addr.is_null());
            lock(&self.calls).push(format!("map {gpa:#x} {len:#x}"));
            if gpa == self.refuse {
                Err("overlap".into())
            } else {
                Ok(())
            }
        }
        fn unmap(&self) -> Result<(), String> {
            lock(&self.calls).push("unmap".into());
            Ok(())
        }
    }

    fn mem() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    fn calls(r: &Recorder) -> Vec<String> {
        std::mem::take(&mut *lock(&r.calls))
    }

    #[test]
    fn identity() {
        let vga = Vga::new(16 << 20, mem(), None, None).unwrap();
        let f = lock(&vga.pci);
        assert_eq!(f.read_config(0), 0x1111_1234);
        assert_eq!(f.read_config(8), 0x0300_0002);
        assert_eq!(f.read_config(0x2c), 0x1100_1af4);
        assert_eq!(f.read_config(0x10), 0x8);
        assert_eq!(f.read_config(0x30), 0, "no ROM BAR");
    }

    #[test]
    fn bar_sizing_relocation_and_mapping() {
        let rec = Recorder {
            refuse: 0xfe00_0000,
            ..Default::default()
        };
        let vga = Vga::new(16 << 20, mem(), Some(Box::new(rec.clone())), None).unwrap();
        let mut f = lock(&vga.pci);
        // Sizing: all ones reads back the size mask and the type bits.
        f.write_config(0x10, 0xffff_ffff);
        assert_eq!(f.read_config(0x10), 0xff00_0008);
        f.write_config(0x18, 0xffff_ffff);
        assert_eq!(f.read_config(0x18), 0xffff_f000);
        assert!(calls(&rec).is_empty(), "nothing mapped without decode");
        f.write_config(0x10, 0xfd00_0000);
        f.write_config(0x18, 0xfebf_0000);
        f.write_config(0x04, 0x3);
        assert_eq!(calls(&rec), ["map 0xfd000000 0x1000000"]);
        assert_eq!(f.framebuffer_mapped_at(), Some(0xfd00_0000));
        assert_eq!(f.bar_at(0xfd00_0010), Some((0, 0x10)));
        assert_eq!(f.bar_at(0xfebf_0400), Some((2, 0x400)));
        assert_eq!(f.bar_at(0xfebf_1000), None);
        // Relocating moves the mapping; a failed map leaves BAR 0 trapped.
        f.write_config(0x10, 0xc100_0000);
        assert_eq!(calls(&rec), ["unmap", "map 0xc1000000 0x1000000"]);
        f.write_config(0x10, 0xfe00_0000);
        assert_eq!(calls(&rec), ["unmap", "map 0xfe000000 0x1000000"]);
        assert_eq!(f.framebuffer_mapped_at(), None);
        f.bar_write(0, 0x20, &[1, 2]);
        let mut b = [0u8; 2];
        f.bar_read(0, 0x20, &mut b);
        assert_eq!(b, [1, 2]);
        // A BAR reaching 4 GiB (firmware sizing with decoding on) maps nothing.
        f.write_config(0x10, 0xffff_ffff);
        assert!(calls(&rec).is_empty());
        assert_eq!(f.framebuffer_mapped_at(), None);
        // Memory decode off unmaps and stops decoding.
        f.write_config(0x10, 0xc000_0000);
        f.write_config(0x04, 0x1);
        assert_eq!(calls(&rec), ["map 0xc0000000 0x1000000", "unmap"]);
        assert_eq!(f.bar_at(0xc000_0000), None);
        f.write_config(0x04, 0x3);
        drop(f);
        calls(&rec);
        drop(vga);
        assert_eq!(calls(&rec), ["unmap"]);
    }

    #[test]
    fn preassigned_bars() {
        let rec = Recorder::default();
        let bars = VgaBars {
            framebuffer: 0xc000_0000,
            mmio: 0xc100_0000,
        };
        let vga = Vga::new(16 << 20, mem(), Some(Box::new(rec.clone())), Some(bars)).unwrap();
        assert_eq!(calls(&rec), ["map 0xc0000000 0x1000000"]);
        let f = lock(&vga.pci);
        assert_eq!(f.read_config(4) & 3, 3);
        assert_eq!(f.read_config(0x18), 0xc100_0000);
        let bad = VgaBars {
            framebuffer: 0xc010_0000,
            mmio: 0xc100_0000,
        };
        assert!(Vga::new(16 << 20, mem(), None, Some(bad)).is_err());
    }

    #[test]
    fn mmio_registers() {
        let vga = Vga::new(4 << 20, mem(), None, None).unwrap();
        let mut f = lock(&vga.pci);
        let mut w = [0u8; 2];
        f.bar_read(2, 0x500, &mut w);
        assert_eq!(u16::from_le_bytes(w), dispi::ID5);
        f.bar_read(2, 0x500 + 2 * 0xa, &mut w);
        assert_eq!(u16::from_le_bytes(w), 64);
        f.bar_write(2, 0x502, &800u16.to_le_bytes());
        f.bar_write(2, 0x504, &600u16.to_le_bytes());
        f.bar_write(2, 0x506, &32u16.to_le_bytes());
        f.bar_write(
            2,
            0x508,
            &(dispi::ENABLED | dispi::LFB_ENABLED).to_le_bytes(),
        );
        let m = lock(&vga.display.state).dispi.mode().unwrap();
        assert_eq!((m.width, m.height, m.bpp), (800, 600, 32));
        // Port 0x3C2 through 0x402, then 0x3CC reads it back.
        f.bar_write(2, 0x402, &[0x67]);
        let mut b = [0u8];
        f.bar_read(2, 0x40c, &mut b);
        assert_eq!(b, [0x67]);
        let mut d = [0u8; 4];
        f.bar_read(2, 0x600, &mut d);
        assert_eq!(u32::from_le_bytes(d), 8);
        f.bar_read(2, 0x604, &mut d);
        assert_eq!(u32::from_le_bytes(d), LITTLE_ENDIAN);
        f.bar_write(2, 0x604, &BIG_ENDIAN.to_le_bytes());
        f.bar_read(2, 0x604, &mut d);
        assert_eq!(u32::from_le_bytes(d), BIG_ENDIAN);
        f.bar_read(2, 0x10, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
