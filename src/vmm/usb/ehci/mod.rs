//! An EHCI 1.0 host controller with six high-speed root ports, as ICH9's
//! EHCI1 (QEMU's `ich9-usb-ehci1`): the operational registers and root
//! ports (`controller.rs`, `port.rs`, `regs.rs`), the periodic and
//! asynchronous schedules of queue heads and qTDs (`schedule.rs`,
//! `queue.rs`), and the PCI configuration space (`pci.rs`). Ports it
//! does not own (PORT_OWNER, or CONFIGFLAG clear) belong to its UHCI
//! companions; `usb/ich9.rs` moves the devices between them.
//!
//! Interrupt, control transfers and everything the HID devices need are
//! supported; isochronous transfers (iTD, siTD) are not.

mod controller;
pub mod pci;
mod port;
mod queue;
pub mod regs;
mod schedule;

pub use controller::{Ehci, EhciState};
pub use regs::BAR_SIZE;

#[cfg(test)]
mod tests;
