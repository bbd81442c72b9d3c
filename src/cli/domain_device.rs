//! attach-device, detach-device: virsh's words around libvirt-dbus's
//! `AttachDevice` and `DetachDevice`.

use super::bus::Bus;
use super::domain::lookup;
use super::domain_lifecycle::{affect, read_file};
use super::error::Result;
use super::options::exclusive;

/// `VIR_DOMAIN_AFFECT_LIVE`.
const AFFECT_LIVE: u32 = 1;

/// Which definitions a command changes, as its options say.
#[derive(Clone, Copy, Debug, Default)]
pub struct Affect {
    pub config: bool,
    pub live: bool,
    pub current: bool,
    pub persistent: bool,
}

impl Affect {
    /// virsh's flags: none of the options means the running guest (what
    /// `virDomainAttachDevice` changes); `--persistent` means the
    /// definition, and the running guest too when there is one.
    fn flags(self, bus: &Bus, d: &super::domain::Dom) -> Result<u32> {
        exclusive(&[("persistent", "current", self.persistent && self.current)])?;
        let mut f = affect(self.config || self.persistent, self.live, self.current)?;
        if self.persistent && d.id(bus)?.is_some() {
            f |= AFFECT_LIVE;
        }
        Ok(f)
    }
}

fn change(
    bus: &Bus,
    name: &str,
    file: &str,
    a: Affect,
    method: &str,
    what: &str,
) -> Result<String> {
    let d = lookup(bus, name)?;
    let flags = a.flags(bus, &d)?;
    let xml = read_file(file)?;
    d.act(bus, method, &(xml, flags))
        .map_err(|e| e.with_ctx(format!("Failed to {what} device from {file}")))?;
    Ok(format!("Device {what}ed successfully\n"))
}

pub fn attach_device(bus: &Bus, name: &str, file: &str, a: Affect) -> Result<String> {
    change(bus, name, file, a, "AttachDevice", "attach")
}

pub fn detach_device(bus: &Bus, name: &str, file: &str, a: Affect) -> Result<String> {
    change(bus, name, file, a, "DetachDevice", "detach")
}
