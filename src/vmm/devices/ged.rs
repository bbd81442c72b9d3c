//! Generic Event Device (ACPI0013): one MMIO byte of pending events, read
//! and cleared by the DSDT's `_EVT` method, and an edge interrupt.
//! Bit 0 is the power button.

use super::IrqLine;
use crate::vmm::bus::BusDevice;

/// Event bit: power button pressed.
pub const EVENT_POWER_BUTTON: u8 = 1 << 0;
/// Event bit: a PCI slot gained a device or is asked to release one.
pub const EVENT_PCI_HOTPLUG: u8 = 1 << 1;
/// Event bit: a vCPU was plugged in or is asked to go.
pub const EVENT_CPU_HOTPLUG: u8 = 1 << 2;

/// The device.
pub struct Ged {
    pending: u8,
    irq: IrqLine,
}

impl Ged {
    pub fn new(irq: IrqLine) -> Self {
        Ged { pending: 0, irq }
    }

    /// Events latched and not yet read.
    pub fn pending(&self) -> u8 {
        self.pending
    }

    pub fn restore(&mut self, pending: u8) {
        self.pending = pending;
    }

    /// Latches `event` and interrupts the guest.
    pub fn notify(&mut self, event: u8) -> std::io::Result<()> {
        self.pending |= event;
        self.irq.0.write(1)
    }
}

impl BusDevice for Ged {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset == 0
            && let Some(b) = data.first_mut()
        {
            *b = self.pending;
            self.pending = 0;
        }
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}
