//! A UHCI 1.1 host controller with two full-speed root ports, as ICH9's
//! UHCI1-3 (QEMU's `ich9-usb-uhci1..3`), the companions of its EHCI:
//! registers and ports (`controller.rs`, `regs.rs`), the frame list of
//! queue heads and TDs with control and interrupt transfers
//! (`schedule.rs`), and the PCI configuration space (`pci.rs`). A
//! device the EHCI hands over (PORT_OWNER, CONFIGFLAG clear) appears on
//! the matching port and is driven here at full speed; isochronous TDs
//! are run as ordinary ones (nothing here streams).

mod controller;
pub mod pci;
pub mod regs;
mod schedule;

pub use controller::{Uhci, UhciState};
pub use regs::IO_SIZE;

#[cfg(test)]
mod tests;
