//! Finding a domain as virsh does (by ID, then UUID, then name) and the
//! per-domain queries that several commands share.

use zbus::zvariant::OwnedObjectPath;

use super::bus::{Bus, DOMAIN, Params};
use super::error::{CliError, Result};

/// `virDomainStatsTypes` groups.
pub const STATS_STATE: u32 = 1;
pub const STATS_CPU: u32 = 2;
pub const STATS_BALLOON: u32 = 4;
pub const STATS_VCPU: u32 = 8;
pub const STATS_INTERFACE: u32 = 16;
pub const STATS_BLOCK: u32 = 32;

/// A domain object on the bus.
pub struct Dom {
    pub path: String,
    pub name: String,
}

fn looks_like_uuid(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// Looks `arg` up as an ID, a UUID, then a name; fails with virsh's
/// `failed to get domain 'x'`.
pub fn lookup(bus: &Bus, arg: &str) -> Result<Dom> {
    let mut found: Option<OwnedObjectPath> = None;
    if let Ok(id) = arg.parse::<i32>()
        && id >= 0
    {
        found = bus.connect("DomainLookupByID", &(id,)).ok();
    }
    if found.is_none() && looks_like_uuid(arg) {
        found = bus.connect("DomainLookupByUUID", &(arg,)).ok();
    }
    if found.is_none() {
        found = bus.connect("DomainLookupByName", &(arg,)).ok();
    }
    let Some(path) = found else {
        return Err(CliError::ctx(format!("failed to get domain '{arg}'")));
    };
    let path = path.to_string();
    let name: String = bus
        .prop(&path, DOMAIN, "Name")
        .map_err(|_| CliError::ctx(format!("failed to get domain '{arg}'")))?;
    Ok(Dom { path, name })
}

impl Dom {
    /// A domain known by its path (from a listing or a define).
    pub fn from_path(bus: &Bus, path: &str) -> Result<Dom> {
        let name: String = bus.prop(path, DOMAIN, "Name")?;
        Ok(Dom {
            path: path.to_string(),
            name,
        })
    }

    pub fn state(&self, bus: &Bus) -> Result<(i32, i32)> {
        bus.call(&self.path, DOMAIN, "GetState", &(0u32,))
    }

    /// The ID of a running domain, `None` when inactive.
    pub fn id(&self, bus: &Bus) -> Result<Option<u32>> {
        let active: bool = bus.prop(&self.path, DOMAIN, "Active")?;
        if !active {
            return Ok(None);
        }
        Ok(Some(bus.prop(&self.path, DOMAIN, "Id")?))
    }

    pub fn uuid(&self, bus: &Bus) -> Result<String> {
        bus.prop(&self.path, DOMAIN, "UUID")
    }

    pub fn xml(&self, bus: &Bus, flags: u32) -> Result<String> {
        bus.call(&self.path, DOMAIN, "GetXMLDesc", &(flags,))
    }

    /// `GetStats` for `groups`.
    pub fn stats(&self, bus: &Bus, groups: u32) -> Result<Params> {
        bus.call(&self.path, DOMAIN, "GetStats", &(groups, 0u32))
    }

    /// Calls a Domain method that returns nothing.
    pub fn act<B>(&self, bus: &Bus, method: &str, body: &B) -> Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        bus.call0(&self.path, DOMAIN, method, body)
    }
}
