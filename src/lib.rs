//! oxvirt: a libvirt-compatible hypervisor daemon with its own KVM VMM.
//!
//! The library holds every part the binaries share; `../DESIGN.md` of the
//! project maps the modules. Dependency direction: `xml` and `vmm` depend
//! on nothing of ours but [`error`]; `driver` on `xml` and the VMM's
//! config types; the front ends on `driver`.

pub mod cli;
pub mod daemon_config;
pub mod dbus;
pub mod docgen;
pub mod driver;
pub mod error;
pub mod rpc;
pub mod systemd;
pub mod vmm;
pub mod xml;
