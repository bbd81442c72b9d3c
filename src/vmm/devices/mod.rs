//! Platform devices: COM1, i8042, CMOS RTC, ACPI registers, Generic Event
//! Device, PCI host bridge, the PCI and CPU hotplug registers, firmware
//! configuration (fw_cfg).

pub mod acpi_pm;
pub mod cmos;
pub mod cpu_hotplug;
pub mod debugcon;
pub mod fw_cfg;
pub mod ged;
pub mod i8042;
pub mod pci;
pub mod pci_hotplug;
pub mod serial;

use vmm_sys_util::eventfd::EventFd;

/// Interrupt line backed by an eventfd registered as a KVM irqfd.
pub struct IrqLine(pub EventFd);

impl vm_superio::Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

impl IrqLine {
    /// Creates the line's eventfd.
    pub fn new() -> std::io::Result<Self> {
        Ok(IrqLine(EventFd::new(libc::EFD_NONBLOCK)?))
    }
}

/// A 32-bit register's value as an access of `data.len()` bytes reads it
/// (little-endian; bytes past the register read as zero).
pub(crate) fn fill_u32_read(data: &mut [u8], v: u32) {
    let bytes = v.to_le_bytes();
    for (d, b) in data
        .iter_mut()
        .zip(bytes.iter().chain(std::iter::repeat(&0)))
    {
        *d = *b;
    }
}

/// The value an access of `data.len()` bytes writes to a 32-bit register
/// (little-endian; bytes it does not cover are zero).
pub(crate) fn written_u32(data: &[u8]) -> u32 {
    let mut v = [0u8; 4];
    for (d, s) in v.iter_mut().zip(data) {
        *d = *s;
    }
    u32::from_le_bytes(v)
}
