//! oxvirt: a libvirt-compatible hypervisor daemon with its own KVM VMM.
//!
//! The library holds every part the binaries share. The project's
//! `README.md` maps the top-level modules (its "Layout" table); the
//! modules with more than one part have a `README.md` beside their code:
//! `src/driver/README.md`, `src/vmm/README.md` (its devices in
//! `src/vmm/virtio/README.md`), `src/dbus/README.md`, `src/rpc/README.md`
//! and `src/cli/README.md`; `xml` is described in its module documentation
//! and `xml-schemas/README.md`. Dependency direction: `xml` and `vmm`
//! depend on nothing of ours but [`error`]; `driver` on `xml` and the
//! VMM's config types; the front ends on `driver`.

pub mod cli;
pub mod daemon_config;
pub mod dbus;
pub mod docgen;
pub mod driver;
pub mod error;
pub mod keymap;
pub mod rpc;
pub mod systemd;
pub mod vmm;
pub mod xml;
