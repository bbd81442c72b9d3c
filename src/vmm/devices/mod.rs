//! Platform devices: COM1, i8042, CMOS RTC, ACPI registers, Generic Event
//! Device, PCI host bridge and its hotplug registers, firmware configuration (fw_cfg).

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
