//! define, undefine, create, start, shutdown, destroy, reboot, reset,
//! suspend, resume, autostart, setmem, setvcpus.

use zbus::zvariant::{OwnedObjectPath, Value};

use super::bus::{Bus, DOMAIN};
use super::domain::{Dom, lookup};
use super::error::{CliError, Result};
use super::options::{exclusive, flag_bits};

/// `VIR_DOMAIN_AFFECT_*`.
pub const AFFECT_LIVE: u32 = 1;
pub const AFFECT_CONFIG: u32 = 2;

pub fn read_file(file: &str) -> Result<String> {
    std::fs::read_to_string(file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "No such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "Permission denied".to_string(),
            _ => e.to_string(),
        };
        CliError::msg(format!("Failed to open file '{file}': {why}"))
    })
}

pub fn define(bus: &Bus, file: &str) -> Result<String> {
    let xml = read_file(file)?;
    let path: OwnedObjectPath = bus
        .connect("DomainDefineXML", &(xml.as_str(),))
        .map_err(|e| e.with_ctx(format!("Failed to define domain from {file}")))?;
    let d = Dom::from_path(bus, path.as_str())?;
    Ok(format!("Domain '{}' defined from {file}\n", d.name))
}

pub fn create(bus: &Bus, file: &str, paused: bool) -> Result<(String, Dom)> {
    let xml = read_file(file)?;
    let flags: u32 = if paused { 1 } else { 0 };
    let path: OwnedObjectPath = bus
        .connect("DomainCreateXML", &(xml.as_str(), flags))
        .map_err(|e| e.with_ctx(format!("Failed to create domain from {file}")))?;
    let d = Dom::from_path(bus, path.as_str())?;
    Ok((format!("Domain '{}' created from {file}\n", d.name), d))
}

pub fn start(bus: &Bus, name: &str, paused: bool) -> Result<(String, Dom)> {
    let d = lookup(bus, name)?;
    if d.id(bus)?.is_some() {
        return Err(CliError::ctx("Domain is already active"));
    }
    let flags: u32 = if paused { 1 } else { 0 };
    d.act(bus, "Create", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to start domain '{}'", d.name)))?;
    Ok((format!("Domain '{}' started\n", d.name), d))
}

/// A command that calls one Domain method and prints one line.
pub struct Simple {
    pub method: &'static str,
    pub done: &'static str,
    pub verb: &'static str,
}

pub const SHUTDOWN: Simple = Simple {
    method: "Shutdown",
    done: "is being shutdown",
    verb: "shutdown",
};
pub const DESTROY: Simple = Simple {
    method: "Destroy",
    done: "destroyed",
    verb: "destroy",
};
pub const REBOOT: Simple = Simple {
    method: "Reboot",
    done: "is being rebooted",
    verb: "reboot",
};
pub const RESET: Simple = Simple {
    method: "Reset",
    done: "was reset",
    verb: "reset",
};
pub const SUSPEND: Simple = Simple {
    method: "Suspend",
    done: "suspended",
    verb: "suspend",
};
pub const RESUME: Simple = Simple {
    method: "Resume",
    done: "resumed",
    verb: "resume",
};

pub fn simple(bus: &Bus, name: &str, s: &Simple) -> Result<String> {
    let d = lookup(bus, name)?;
    let r = match s.method {
        "Suspend" | "Resume" => d.act(bus, s.method, &()),
        _ => d.act(bus, s.method, &(0u32,)),
    };
    r.map_err(|e| e.with_ctx(format!("Failed to {} domain '{}'", s.verb, d.name)))?;
    Ok(format!("Domain '{}' {}\n", d.name, s.done))
}

/// `undefine`; with `remove_storage`, the domain's disk images are
/// reported as virsh reports volumes that no storage pool manages (oxvirt
/// has no pools, so it never deletes a file itself).
pub fn undefine(bus: &Bus, name: &str, remove_storage: bool, managed_save: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    // virsh looks before it asks: an image left behind is its own error.
    if !managed_save
        && bus
            .call::<_, bool>(&d.path, DOMAIN, "HasManagedSaveImage", &(0u32,))
            .unwrap_or(false)
    {
        return Err(CliError::msg(
            "Refusing to undefine while domain managed save image exists",
        ));
    }
    let disks = if remove_storage {
        let xml = d.xml(bus, super::domain_info::XML_INACTIVE)?;
        disk_sources(&xml)
    } else {
        Vec::new()
    };
    // VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    let flags = u32::from(managed_save);
    d.act(bus, "Undefine", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to undefine domain '{}'", d.name)))?;
    let mut out = format!("Domain '{}' has been undefined\n", d.name);
    for (target, source) in disks {
        out.push_str(&format!(
            "Storage volume '{target}'({source}) is not managed by libvirt. Remove it manually.\n"
        ));
    }
    Ok(out)
}

/// (target, source) of every disk with a source.
fn disk_sources(xml: &str) -> Vec<(String, String)> {
    let Ok(doc) = super::xpath::Doc::parse(xml) else {
        return Vec::new();
    };
    let Some(devs) = doc.child(0, "domain").and_then(|d| doc.child(d, "devices")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in doc.nodes[devs].children.iter().copied() {
        if doc.nodes[n].name != "disk" {
            continue;
        }
        let target = doc.child(n, "target").and_then(|t| doc.attr(t, "dev"));
        let source = doc.child(n, "source").and_then(|s| {
            ["file", "dev", "volume"]
                .iter()
                .find_map(|a| doc.attr(s, a))
        });
        if let (Some(t), Some(s)) = (target, source) {
            out.push((t.to_string(), s.to_string()));
        }
    }
    out
}

pub fn autostart(bus: &Bus, name: &str, disable: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    let r = bus.set_prop(&d.path, DOMAIN, "Autostart", Value::Bool(!disable));
    if disable {
        r.map_err(|e| {
            e.with_ctx(format!(
                "Failed to unmark domain '{}' as autostarted",
                d.name
            ))
        })?;
        Ok(format!("Domain '{}' unmarked as autostarted\n", d.name))
    } else {
        r.map_err(|e| e.with_ctx(format!("Failed to mark domain '{}' as autostarted", d.name)))?;
        Ok(format!("Domain '{}' marked as autostarted\n", d.name))
    }
}

/// `--config`, `--live`, `--current` as `VIR_DOMAIN_AFFECT_*` flags;
/// none of them means the live domain, as `virDomainSetMemory` does.
pub fn affect(config: bool, live: bool, current: bool) -> Result<u32> {
    exclusive(&[
        ("current", "live", current && live),
        ("current", "config", current && config),
    ])?;
    let mut f = 0;
    if config {
        f |= AFFECT_CONFIG;
    }
    if live {
        f |= AFFECT_LIVE;
    }
    if !config && !live && !current {
        f = AFFECT_LIVE;
    }
    Ok(f)
}

/// A size with an optional unit suffix, in KiB (`default` is the unit of
/// a bare number, in bytes).
pub fn parse_scaled_kib(s: &str, default: u64) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit {
        "" => default,
        "b" | "B" | "byte" | "bytes" => 1,
        "KB" => 1000,
        "k" | "K" | "KiB" | "kib" => 1024,
        "MB" => 1_000_000,
        "m" | "M" | "MiB" | "mib" => 1 << 20,
        "GB" => 1_000_000_000,
        "g" | "G" | "GiB" | "gib" => 1 << 30,
        "TB" => 1_000_000_000_000,
        "t" | "T" | "TiB" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult).map(|b| b.div_ceil(1024))
}

pub fn setmem(bus: &Bus, name: &str, size: &str, flags: u32) -> Result<String> {
    let d = lookup(bus, name)?;
    let Some(kib) = parse_scaled_kib(size, 1024) else {
        return Err(CliError::ctx("Invalid value of 0 for memory size"));
    };
    if kib == 0 {
        return Err(CliError::ctx("Invalid value of 0 for memory size"));
    }
    d.act(bus, "SetMemory", &(kib, flags))?;
    Ok(String::new())
}

/// The options of `setvcpus`.
pub struct VcpuOpts {
    pub maximum: bool,
    pub config: bool,
    pub live: bool,
    pub current: bool,
    pub guest: bool,
    pub hotpluggable: bool,
}

impl VcpuOpts {
    /// `virDomainVcpuFlags`, or `None` when no option was given, where
    /// virsh calls the flagless `virDomainSetVcpus` (the running domain).
    fn flags(&self) -> Result<Option<u32>> {
        exclusive(&[
            ("current", "live", self.current && self.live),
            ("current", "config", self.current && self.config),
            ("guest", "config", self.guest && self.config),
        ])?;
        if self.maximum && !self.config {
            return Err(CliError::ctx(
                "Option --config is required by option --maximum",
            ));
        }
        let f = flag_bits(&[
            (self.live, AFFECT_LIVE),
            (self.config, AFFECT_CONFIG),
            (self.maximum, 4),
            (self.guest, 8),
            (self.hotpluggable, 16),
        ]);
        Ok((f != 0 || self.current).then_some(f))
    }
}

pub fn setvcpus(bus: &Bus, name: &str, count: &str, opts: &VcpuOpts) -> Result<String> {
    let flags = opts.flags()?;
    let d = lookup(bus, name)?;
    let n: i32 = count.parse().map_err(|_| {
        CliError::ctx(format!(
            "Numeric value '{count}' for <count> option is malformed or out of range"
        ))
    })?;
    let n = u32::try_from(n).map_err(|_| CliError::ctx("Invalid number of virtual CPUs"))?;
    if n == 0 {
        return Err(CliError::ctx("Can't set 0 processors for a VM"));
    }
    // The D-Bus API has only the flags call; virDomainSetVcpus is its
    // live form.
    d.act(bus, "SetVcpus", &(n, flags.unwrap_or(AFFECT_LIVE)))?;
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_scaled_kib("1024", 1024), Some(1024));
        assert_eq!(parse_scaled_kib("512M", 1024), Some(524288));
        assert_eq!(parse_scaled_kib("1G", 1024), Some(1048576));
        assert_eq!(parse_scaled_kib("x", 1024), None);
    }
}
