//! The standard VGA adapter (QEMU's `-device VGA`, libvirt's `vga` model):
//! legacy VGA registers, the Bochs VBE (DISPI) interface and a linear
//! framebuffer in PCI BAR 0.
//!
//! What the VMM wires up, from one [`Vga`]:
//! - `pci`: the PCI function (1234:1111), plugged into a slot of bus 0.
//!   BAR 0 is video memory, BAR 2 a 4 KiB MMIO block with the same
//!   registers as the ports.
//! - `ports`: the legacy registers, on the port bus at [`LEGACY_PORTS`].
//! - `dispi_ports`: the DISPI index/data pair, at [`DISPI_PORTS`].
//! - `display`: what the VNC server renders from.
//!
//! Registering, roughly:
//!
//! ```text
//! let vga = Vga::new(vram_bytes_from_kib(kib), mem.clone(), Some(mapper), bars)?;
//! pci_root.plug(slot, vga.pci.clone())?;
//! io_bus.insert(vga.ports.clone(), LEGACY_PORTS.0, LEGACY_PORTS.1)?;
//! io_bus.insert(vga.dispi_ports.clone(), DISPI_PORTS.0, DISPI_PORTS.1)?;
//! fw_cfg.add_file(ROM_FILE, std::fs::read(VGABIOS_PATH)?);   // firmware boot
//! vnc.set_source(vga.display.clone());
//! ```
//!
//! Locks: the PCI function's lock is taken before the shared register
//! lock; the port devices and the renderer take only the latter.
//!
//! Video memory is an anonymous mapping the VMM maps into the guest at
//! BAR 0 through a [`GuestMapper`], so framebuffer access never exits.
//! The legacy window 0xA0000-0xBFFFF is plain guest RAM: text mode, fonts
//! and mode 13h are read from there; planar (16-colour) graphics modes
//! and banked VBE access cannot work on RAM and show black.
//!
//! Firmware: SeaBIOS looks up a PCI device's option ROM in fw_cfg under
//! `pciVVVV,DDDD.rom` before trying the ROM BAR, so the VGA BIOS is handed
//! in as the fw_cfg file [`ROM_FILE`] (contents: [`VGABIOS_PATH`]) and the
//! function has no ROM BAR.

mod dispi;
mod pci;
mod ports;
mod regs;
mod render;
mod text;
mod vram;

pub use pci::VgaPciState;

use std::sync::{Arc, Mutex, MutexGuard};

pub use pci::{
    FRAMEBUFFER_BAR, GuestMapper, MMIO_BAR, MMIO_BAR_SIZE, PCI_DEVICE_ID, PCI_VENDOR_ID, VgaPci,
};
pub use ports::{DispiPorts, VgaPorts};
pub use render::VgaDisplay;
pub use vram::{VRAM_DEFAULT_KIB, VRAM_MAX, VRAM_MIN, vram_bytes_from_kib};

use crate::vmm::memory::GuestMemory;
use dispi::Dispi;
use regs::VgaRegs;
use vram::Vram;

/// Legacy VGA registers: `(first port, count)`, 0x3B0-0x3DF.
pub const LEGACY_PORTS: (u64, u64) = (0x3b0, 0x30);
/// Bochs VBE index (0x1CE) and data (0x1CF) ports, 16 bits wide.
pub const DISPI_PORTS: (u64, u64) = (0x1ce, 2);
/// The fw_cfg file name SeaBIOS looks up for this function's ROM.
pub const ROM_FILE: &str = "pci1234,1111.rom";
/// The VGA BIOS for this adapter as Debian ships it.
pub const VGABIOS_PATH: &str = "/usr/share/seabios/vgabios-stdvga.bin";

/// Register state shared by the port devices, the PCI function's MMIO
/// BAR and the renderer.
struct VgaState {
    regs: VgaRegs,
    dispi: Dispi,
    /// PCI command I/O decode: the legacy and DISPI ports answer only
    /// while it is on.
    io_decode: bool,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// BAR addresses the VMM assigns itself (boot without firmware). Both
/// must be naturally aligned: `framebuffer` to the video memory size,
/// `mmio` to [`MMIO_BAR_SIZE`].
#[derive(Clone, Copy, Debug)]
pub struct VgaBars {
    pub framebuffer: u32,
    pub mmio: u32,
}

/// One VGA adapter: the parts to register with the VMM.
pub struct Vga {
    pub pci: Arc<Mutex<VgaPci>>,
    pub ports: Arc<Mutex<VgaPorts>>,
    pub dispi_ports: Arc<Mutex<DispiPorts>>,
    pub display: Arc<VgaDisplay>,
}

impl Vga {
    /// An adapter with `vram_bytes` of video memory (a power of two in
    /// [`VRAM_MIN`]..=[`VRAM_MAX`]; see [`vram_bytes_from_kib`]).
    ///
    /// With `bars` the BARs start at those addresses with I/O and memory
    /// decoding on (and the framebuffer mapped), as after firmware; with
    /// `None` they start unassigned and decoding off, for firmware to set
    /// up. `mapper` maps video memory into the guest; without one (or
    /// when it fails) BAR 0 accesses trap and are served here.
    pub fn new(
        vram_bytes: u64,
        mem: GuestMemory,
        mapper: Option<Box<dyn GuestMapper>>,
        bars: Option<VgaBars>,
    ) -> Result<Self, String> {
        if !vram_bytes.is_power_of_two() || !(VRAM_MIN..=VRAM_MAX).contains(&vram_bytes) {
            return Err(format!(
                "VGA video memory of {vram_bytes} bytes: must be a power of two from 1 to 512 MiB"
            ));
        }
        let vram = Arc::new(Vram::new(vram_bytes)?);
        let state = Arc::new(Mutex::new(VgaState {
            regs: VgaRegs::default(),
            dispi: Dispi::new(vram_bytes),
            io_decode: false,
        }));
        let pci = VgaPci::new(state.clone(), vram.clone(), mapper, bars)?;
        Ok(Vga {
            pci: Arc::new(Mutex::new(pci)),
            ports: Arc::new(Mutex::new(VgaPorts::new(state.clone()))),
            dispi_ports: Arc::new(Mutex::new(DispiPorts::new(state.clone(), vram.clone()))),
            display: Arc::new(VgaDisplay::new(state, vram, mem)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::bus::BusDevice;
    use crate::vmm::devices::pci::PciFunction;
    use vm_memory::GuestAddress;

    fn mem() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(Vga::new(3 << 20, mem(), None, None).is_err());
        assert!(Vga::new(1 << 19, mem(), None, None).is_err());
        assert!(Vga::new(1 << 20, mem(), None, None).is_ok());
    }

    #[test]
    fn ports_follow_io_decode() {
        let vga = Vga::new(1 << 20, mem(), None, None).unwrap();
        let mut ports = lock(&vga.ports);
        let mut dispi = lock(&vga.dispi_ports);
        let mut b = [0u8; 2];
        dispi.read(0, &mut b);
        assert_eq!(b, [0xff; 2]);
        lock(&vga.pci).write_config(0x04, 0x3);
        dispi.read(1, &mut b);
        assert_eq!(u16::from_le_bytes(b), dispi::ID5);
        // A 16-bit out to 0x3C4 writes index then data.
        ports.write(0x3c4 - LEGACY_PORTS.0, &[0x02, 0x0f]);
        let mut one = [0u8];
        ports.read(0x3c5 - LEGACY_PORTS.0, &mut one);
        assert_eq!(one, [0x0f]);
    }
}
