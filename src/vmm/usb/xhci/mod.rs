//! QEMU's `qemu-xhci` (PCI 1b36:000d, class 0x0c0330): an xHCI 1.0 host
//! controller with four USB 2 and four USB 3 root ports, 64 device slots
//! and one interrupter, BAR 0 a 64-bit 16 KiB MMIO region (registers,
//! doorbells, the MSI-X table and PBA), interrupts through MSI-X vector 0
//! or INTx pin A.
//!
//! Register accesses and doorbells run on the vCPU that makes them (the
//! work is bounded: 256 commands or 64 TDs per doorbell); input events
//! complete interrupt transfers on the caller's thread. Both take the
//! controller's lock.

mod context;
mod controller;
mod port;
mod regs;
mod rings;
mod transfer;

use std::sync::{Arc, Mutex, MutexGuard};

pub use regs::BAR_SIZE;

use controller::Controller;
use regs::{MSIX_PBA, MSIX_TABLE, USB2_PORTS};

pub use super::AttachedDevice;
use super::hid::HidDevice;
use crate::keymap::{self, Codeset};
use crate::vmm::devices::pci::PciFunction;
use crate::vmm::display::{Buttons, InputSink};
use crate::vmm::memory::GuestMemory;
use crate::vmm::virtio::Interrupt;
use crate::vmm::virtio::msix::MsixTable;

const VENDOR_REDHAT: u32 = 0x1b36;
const DEVICE_QEMU_XHCI: u32 = 0x000d;
/// Serial bus controller, USB, xHCI; revision 1.
const CLASS_REVISION: u32 = 0x0c03_3001;
/// Subsystem as QEMU's PCI devices report it.
const SUBSYSTEM: u32 = 0x1100_1af4;
const BAR0_REG: u16 = 0x10;
const BAR0_HIGH_REG: u16 = 0x14;
/// 64-bit memory BAR.
const BAR_TYPE_64: u32 = 0x4;
const CAPABILITIES_REG: u16 = 0x34;
/// Serial bus release number (USB 3.0) and frame length adjustment.
const SBRN_FLADJ_REG: u16 = 0x60;
const SBRN_FLADJ: u32 = 0x20 << 8 | 0x30;
/// The MSI-X capability, where QEMU puts it.
const MSIX_CAP: u16 = 0x90;
const PCI_CAP_ID_MSIX: u32 = 0x11;
const STATUS_CAP_LIST: u32 = 1 << 20;
const PCI_CMD_MEMORY: u32 = 1 << 1;
const PCI_CMD_MASK: u32 = 0x0407;

fn lock(c: &Mutex<Controller>) -> MutexGuard<'_, Controller> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// The PCI function's state, as a state image keeps it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XhciState {
    controller: controller::ControllerState,
    msix: Vec<[u32; 4]>,
    msix_control: u16,
    interrupt: crate::vmm::virtio::interrupt::InterruptState,
    bar: u64,
    command: u32,
    irq_line: u8,
}

/// The PCI function.
pub struct Xhci {
    controller: Arc<Mutex<Controller>>,
    irq: Arc<Interrupt>,
    msix: Option<MsixTable>,
    msix_control: u16,
    bar: u64,
    command: u32,
    irq_line: u8,
}

impl Xhci {
    /// A controller with `devices` on its ports. `irq` carries INTx (its
    /// line) and MSI-X (one vector fd); `msix` is the one-entry table
    /// (`None`: INTx only); `bar` is where the VMM placed BAR 0 (decoding
    /// is on from the start, as for the other functions).
    pub fn new(
        devices: &[AttachedDevice],
        mem: GuestMemory,
        irq: Arc<Interrupt>,
        msix: Option<MsixTable>,
        bar: u64,
        irq_line: u8,
    ) -> Result<Xhci, String> {
        let ports = super::place(devices, USB2_PORTS, HidDevice::new)?;
        Ok(Xhci {
            controller: Arc::new(Mutex::new(Controller::new(ports, mem, irq.clone()))),
            irq,
            msix,
            msix_control: 0,
            bar: bar & !(BAR_SIZE - 1),
            command: PCI_CMD_MEMORY | 1 << 2,
            irq_line,
        })
    }

    pub fn state(&self) -> XhciState {
        XhciState {
            controller: lock(&self.controller).state(),
            msix: self
                .msix
                .as_ref()
                .map(|t| t.entries().to_vec())
                .unwrap_or_default(),
            msix_control: self.msix_control,
            interrupt: self.irq.state(),
            bar: self.bar,
            command: self.command,
            irq_line: self.irq_line,
        }
    }

    /// Loads a saved state into a controller built from the same
    /// configuration.
    pub fn restore(&mut self, s: &XhciState) -> Result<(), String> {
        lock(&self.controller).restore(&s.controller)?;
        crate::vmm::virtio::msix::restore_function(
            &self.irq,
            self.msix.as_mut(),
            &s.interrupt,
            &s.msix,
            s.msix_control,
        )?;
        self.msix_control = s.msix_control;
        self.bar = s.bar;
        self.command = s.command;
        self.irq_line = s.irq_line;
        Ok(())
    }

    /// Where the console's key and pointer events go.
    pub fn input(&self) -> XhciInput {
        XhciInput {
            controller: self.controller.clone(),
        }
    }

    fn read_register(&self, offset: u64, data: &mut [u8]) {
        let aligned = offset & !3;
        let c = lock(&self.controller);
        let mut bytes = c.read(aligned).to_le_bytes().to_vec();
        if (offset & 3) as usize + data.len() > 4 {
            bytes.extend_from_slice(&c.read(aligned + 4).to_le_bytes());
        }
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get((offset & 3) as usize + i).copied().unwrap_or(0);
        }
    }
}

impl PciFunction for Xhci {
    fn read_config(&self, reg: u16) -> u32 {
        match reg {
            0x00 => DEVICE_QEMU_XHCI << 16 | VENDOR_REDHAT,
            0x04 if self.msix.is_some() => self.command | STATUS_CAP_LIST,
            0x04 => self.command,
            0x08 => CLASS_REVISION,
            BAR0_REG => self.bar as u32 | BAR_TYPE_64,
            BAR0_HIGH_REG => (self.bar >> 32) as u32,
            0x2c => SUBSYSTEM,
            CAPABILITIES_REG if self.msix.is_some() => u32::from(MSIX_CAP),
            0x3c => 1 << 8 | u32::from(self.irq_line),
            SBRN_FLADJ_REG => SBRN_FLADJ,
            MSIX_CAP => match &self.msix {
                Some(t) => {
                    let size = (t.len() as u32).saturating_sub(1);
                    PCI_CAP_ID_MSIX | (u32::from(self.msix_control) | size) << 16
                }
                None => 0,
            },
            // Table and PBA in BAR 0.
            0x94 if self.msix.is_some() => MSIX_TABLE as u32,
            0x98 if self.msix.is_some() => MSIX_PBA as u32,
            _ => 0,
        }
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        match reg {
            0x04 => self.command = value & PCI_CMD_MASK,
            // Sizing reads back the mask in the low half; the high half
            // takes any value.
            BAR0_REG => {
                let low = u64::from(value) & !(BAR_SIZE - 1) & 0xffff_ffff;
                self.bar = (self.bar & !0xffff_ffff) | low;
            }
            BAR0_HIGH_REG => self.bar = (self.bar & 0xffff_ffff) | u64::from(value) << 32,
            0x3c => self.irq_line = value as u8,
            MSIX_CAP if self.msix.is_some() => {
                self.msix_control = (value >> 16) as u16 & 0xc000;
                self.irq.set_msix_control_word(self.msix_control);
            }
            _ => {}
        }
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        let off = addr.checked_sub(self.bar)?;
        let decoding = self.command & PCI_CMD_MEMORY != 0;
        (decoding && self.bar != 0 && off < BAR_SIZE).then_some((0, off))
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        match (&self.msix, offset) {
            (Some(t), MSIX_TABLE..MSIX_PBA) => t.read(offset - MSIX_TABLE, data),
            (Some(_), MSIX_PBA..) => {
                let bits = self.irq.pending_bits().to_le_bytes();
                let start = (offset - MSIX_PBA) as usize;
                for (i, b) in data.iter_mut().enumerate() {
                    *b = bits.get(start + i).copied().unwrap_or(0);
                }
            }
            _ => self.read_register(offset, data),
        }
    }

    fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
        if let (Some(t), MSIX_TABLE..MSIX_PBA) = (&mut self.msix, offset) {
            t.write(offset - MSIX_TABLE, data, &self.irq);
            return;
        }
        // Registers take aligned dwords (a qword is two, low first).
        if offset & 3 != 0 || !data.len().is_multiple_of(4) {
            return;
        }
        let mut c = lock(&self.controller);
        for (i, chunk) in data.chunks_exact(4).enumerate() {
            let v = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            c.write(offset + 4 * i as u64, v);
        }
    }
}

/// Feeds console input to the HID devices behind the controller.
#[derive(Clone)]
pub struct XhciInput {
    controller: Arc<Mutex<Controller>>,
}

impl XhciInput {
    /// A key as a HID keyboard usage: what [`InputSink::key`] does after
    /// translating the Linux key code.
    pub fn key_usage(&self, usage: u8, down: bool) {
        let mut c = lock(&self.controller);
        for p in &mut c.ports {
            if let Some(d) = &mut p.device {
                d.key_usage(usage, down);
            }
        }
        c.deliver_input();
    }
}

impl InputSink for XhciInput {
    fn key(&self, code: u16, down: bool) {
        let usage = keymap::from_linux(Codeset::Usb, code).and_then(|u| u8::try_from(u).ok());
        if let Some(u) = usage {
            self.key_usage(u, down);
        }
    }

    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        let mut c = lock(&self.controller);
        for p in &mut c.ports {
            if let Some(d) = &mut p.device {
                d.pointer(x, y, width, height, buttons);
            }
        }
        c.deliver_input();
    }
}

#[cfg(test)]
mod tests;
