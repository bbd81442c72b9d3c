//! `oxvirt-vmm`: the per-guest KVM virtual machine monitor.
//!
//! One process runs one guest. The daemon hands it a [`config::VmConfig`]
//! and talks to it over the JSON-lines control socket described in
//! [`control`]. The module map and the platform it presents to the guest
//! are documented in `README.md` beside this file.

pub mod acpi;
pub mod boot;
pub mod bus;
pub mod cli;
pub mod config;
pub mod control;
pub mod cpu;
pub mod devices;
pub mod display;
pub mod error;
pub mod exit;
pub mod firmware;
pub mod ifreq;
pub mod layout;
pub mod memory;
pub mod net;
pub mod output_pump;
pub mod probe;
pub mod protocol;
pub mod sandbox;
pub mod serial_backend;
pub mod snapshot;
pub mod storage;
pub mod usb;
pub mod vcpu;
pub mod virtio;
pub mod vm;

pub use config::VmConfig;
pub use error::{Error, Result};
pub use exit::ExitReason;
