//! Storage pools and volumes as virsh finds and shows them: pool lookup
//! by UUID then name, volume lookup by name in a pool, then key, then
//! path, and virsh's sizes (scaled integers in, "10.00 MiB" out).
//!
//! The D-Bus API has no `virStoragePoolLookupByVolume`: a volume's pool
//! is the active pool that lists it.

use zbus::zvariant::OwnedObjectPath;

use super::bus::Bus;
use super::error::{CliError, Result};

pub const POOL: &str = "org.libvirt.StoragePool";
pub const VOL: &str = "org.libvirt.StorageVol";

/// A storage pool on the bus.
pub struct Pool {
    pub path: String,
    pub name: String,
}

/// A storage volume on the bus.
pub struct Vol {
    pub path: String,
    pub name: String,
}

impl Pool {
    pub fn from_path(bus: &Bus, path: &str) -> Result<Pool> {
        let name: String = bus.prop(path, POOL, "Name")?;
        Ok(Pool {
            path: path.to_string(),
            name,
        })
    }

    pub fn call<B, R>(&self, bus: &Bus, method: &str, body: &B) -> Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: serde::de::DeserializeOwned + zbus::zvariant::Type,
    {
        bus.call(&self.path, POOL, method, body)
    }

    pub fn act<B>(&self, bus: &Bus, method: &str, body: &B) -> Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        bus.call0(&self.path, POOL, method, body)
    }

    /// `virStoragePoolGetInfo`: state, capacity, allocation, available.
    pub fn info(&self, bus: &Bus) -> Result<(i32, u64, u64, u64)> {
        self.call(bus, "GetInfo", &())
    }

    /// The volume paths of the pool (`virStoragePoolListAllVolumes`).
    pub fn volumes(&self, bus: &Bus) -> Result<Vec<OwnedObjectPath>> {
        self.call(bus, "ListStorageVolumes", &(0u32,))
    }
}

impl Vol {
    pub fn from_path(bus: &Bus, path: &str) -> Result<Vol> {
        let name: String = bus.prop(path, VOL, "Name")?;
        Ok(Vol {
            path: path.to_string(),
            name,
        })
    }

    pub fn call<B, R>(&self, bus: &Bus, method: &str, body: &B) -> Result<R>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: serde::de::DeserializeOwned + zbus::zvariant::Type,
    {
        bus.call(&self.path, VOL, method, body)
    }

    pub fn act<B>(&self, bus: &Bus, method: &str, body: &B) -> Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        bus.call0(&self.path, VOL, method, body)
    }

    pub fn key(&self, bus: &Bus) -> Result<String> {
        bus.prop(&self.path, VOL, "Key")
    }

    /// `virStorageVolGetPath`.
    pub fn file(&self, bus: &Bus) -> Result<String> {
        bus.prop(&self.path, VOL, "Path")
    }

    /// `virStorageVolGetInfoFlags`: type, capacity, allocation.
    pub fn info(&self, bus: &Bus, flags: u32) -> Result<(i32, u64, u64)> {
        self.call(bus, "GetInfo", &(flags,))
    }

    /// `virStoragePoolLookupByVolume`: the active pool listing it.
    pub fn pool(&self, bus: &Bus) -> Result<Pool> {
        let pools: Vec<OwnedObjectPath> =
            bus.connect("ListStoragePools", &(super::options::ListFilter::ACTIVE,))?;
        for p in pools {
            let pool = Pool {
                path: p.to_string(),
                name: String::new(),
            };
            if let Ok(vols) = pool.volumes(bus)
                && vols.iter().any(|v| v.as_str() == self.path)
            {
                return Pool::from_path(bus, &pool.path);
            }
        }
        Err(CliError::msg(format!(
            "Storage pool not found: no storage pool with matching name for volume '{}'",
            self.name
        )))
    }
}

/// Which lookups a pool or volume argument may go through (virsh's
/// `VIRSH_BYUUID`, `VIRSH_BYNAME`).
#[derive(Clone, Copy)]
pub struct By {
    pub uuid: bool,
    pub name: bool,
}

pub const BY_ANY: By = By {
    uuid: true,
    name: true,
};

/// `virshCommandOptPoolBy`: by UUID when the argument has a UUID's
/// length, then by name; the last lookup's error after
/// `failed to get pool 'x'`.
pub fn lookup_pool_by(bus: &Bus, arg: &str, by: By) -> Result<Pool> {
    let mut found: Option<OwnedObjectPath> = None;
    let mut last: Option<CliError> = None;
    if by.uuid && arg.len() == 36 {
        match bus.connect("StoragePoolLookupByUUID", &(arg,)) {
            Ok(p) => found = Some(p),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() && by.name {
        match bus.connect("StoragePoolLookupByName", &(arg,)) {
            Ok(p) => found = Some(p),
            Err(e) => last = Some(e),
        }
    }
    let fail = |last: Option<CliError>| {
        let mut e = last.unwrap_or_default();
        e.context = Some(format!("failed to get pool '{arg}'"));
        e
    };
    match found {
        Some(p) => Pool::from_path(bus, p.as_str()).map_err(|e| fail(Some(e))),
        None => Err(fail(last)),
    }
}

pub fn lookup_pool(bus: &Bus, arg: &str) -> Result<Pool> {
    lookup_pool_by(bus, arg, BY_ANY)
}

/// `virshCommandOptVolBy`: with `--pool`, the pool (which must be
/// active) and the name in it; then the argument as a key, then as a
/// path. `pool_opt` is whether the command has a `--pool` option at all.
pub fn lookup_vol_by(
    bus: &Bus,
    arg: &str,
    pool: Option<&str>,
    pool_opt: bool,
    by: By,
) -> Result<Vol> {
    let pool = match pool {
        Some(p) => {
            let found = lookup_pool_by(bus, p, by)?;
            let active: bool = bus.prop(&found.path, POOL, "Active").unwrap_or(false);
            if !active {
                return Err(CliError::ctx(format!("pool '{p}' is not active")));
            }
            Some(found)
        }
        None => None,
    };
    let mut found: Option<OwnedObjectPath> = None;
    let mut last: Option<CliError> = None;
    let mut in_pool = false;
    if let Some(p) = &pool
        && by.name
    {
        match p.call(bus, "StorageVolLookupByName", &(arg,)) {
            Ok(v) => {
                found = Some(v);
                in_pool = true;
            }
            Err(e) => last = Some(e),
        }
    }
    for method in ["StorageVolLookupByKey", "StorageVolLookupByPath"] {
        if found.is_none() && by.uuid {
            match bus.connect(method, &(arg,)) {
                Ok(v) => found = Some(v),
                Err(e) => last = Some(e),
            }
        }
    }
    let Some(path) = found else {
        let mut e = last.unwrap_or_default();
        e.context = Some(if pool.is_some() || !pool_opt {
            format!("failed to get vol '{arg}'")
        } else {
            format!("failed to get vol '{arg}', specifying --pool might help")
        });
        return Err(e);
    };
    let vol = Vol::from_path(bus, path.as_str())?;
    // With --pool, the volume found by key or path must be in that pool.
    if let Some(p) = &pool
        && !in_pool
        && let Ok(vols) = p.volumes(bus)
        && !vols.iter().any(|v| v.as_str() == vol.path)
    {
        return Err(CliError::ctx(format!(
            "Requested volume '{arg}' is not in pool '{}'",
            p.name
        )));
    }
    Ok(vol)
}

/// The usual volume lookup of a command with an optional `--pool`.
pub fn lookup_vol(bus: &Bus, arg: &str, pool: Option<&str>) -> Result<Vol> {
    lookup_vol_by(bus, arg, pool, true, BY_ANY)
}

/// `vshPrettyCapacity`: a byte count in the largest binary unit below it.
pub fn pretty_capacity(val: u64) -> (f64, &'static str) {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut limit: f64 = 1024.0;
    let v = val as f64;
    for (i, unit) in UNITS.iter().enumerate() {
        if v < limit || i == UNITS.len() - 1 {
            return (v / (limit / 1024.0), unit);
        }
        limit *= 1024.0;
    }
    (v, "B")
}

/// `"%-15s %s\n"`: the label padded to 15 columns, a space, the value,
/// as `pool-info` and `vol-info` print their lines.
pub fn info_line(label: &str, value: impl std::fmt::Display) -> String {
    super::format::kv(label, format!(" {value}"), 15)
}

/// `"%.2lf %s"` of [`pretty_capacity`].
pub fn pretty(val: u64) -> String {
    let (v, unit) = pretty_capacity(val);
    format!("{v:.2} {unit}")
}

/// virsh's word for a `virStoragePoolState`.
pub fn pool_state_name(state: i32) -> &'static str {
    match state {
        0 => "inactive",
        1 => "building",
        2 => "running",
        3 => "degraded",
        4 => "inaccessible",
        _ => "unknown",
    }
}

/// virsh's word for a `virStorageVolType`.
pub fn vol_type_name(t: i32) -> &'static str {
    match t {
        0 => "file",
        1 => "block",
        2 => "dir",
        3 => "network",
        4 => "netdir",
        5 => "ploop",
        _ => "unknown",
    }
}

/// `virshVolSize`: `virStrToLong_ullp` then `virScaleInteger` (bytes by
/// default). The error is `Malformed size X`, with libvirt's own message
/// when the suffix or the value was refused.
pub fn parse_size(text: &str) -> Result<u64> {
    parse_scaled(text, 1, || CliError::ctx(format!("Malformed size {text}")))
}

/// `virStrToLong_ullp` then `virScaleInteger`, a bare number counting
/// `default_scale` bytes; `malformed` is virsh's line when it fails, with
/// libvirt's own message when the suffix or the value was refused.
pub fn parse_scaled(
    text: &str,
    default_scale: u64,
    malformed: impl Fn() -> CliError,
) -> Result<u64> {
    // strtoull: leading blanks, an optional sign, then digits.
    let s = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits_at) = match s.as_bytes().first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let rest = &s[digits_at..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if end == 0 || neg {
        return Err(malformed());
    }
    let value: u64 = rest[..end].parse().map_err(|_| malformed())?;
    let suffix = &rest[end..];
    let scale = scale_of(suffix, default_scale).map_err(|m| {
        let mut e = malformed();
        e.message = Some(m);
        e
    })?;
    if value != 0 && value > u64::MAX / scale {
        let mut e = malformed();
        e.message = Some(format!(
            "numerical overflow: value too large: {value}{suffix}"
        ));
        return Err(e);
    }
    Ok(value * scale)
}

/// `virScaleInteger`'s multiplier for a suffix, or libvirt's message.
fn scale_of(suffix: &str, default_scale: u64) -> std::result::Result<u64, String> {
    if suffix.is_empty() {
        return Ok(default_scale);
    }
    crate::xml::units::unit_scale(suffix)
        .ok_or_else(|| format!("invalid argument: unknown suffix '{suffix}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_as_virsh_prints_them() {
        assert_eq!(pretty(0), "0.00 B");
        assert_eq!(pretty(1023), "1023.00 B");
        assert_eq!(pretty(200704), "196.00 KiB");
        assert_eq!(pretty(10 << 20), "10.00 MiB");
        assert_eq!(pretty(270553174016), "251.97 GiB");
        assert_eq!(pretty(u64::MAX), "16.00 EiB");
    }

    #[test]
    fn sizes_as_virsh_reads_them() {
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("1kb").unwrap(), 1000);
        assert_eq!(parse_size("100T").unwrap(), 100 << 40);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("7bytes").unwrap(), 7);
        let e = parse_size("10X").unwrap_err();
        assert_eq!(e.context.as_deref(), Some("Malformed size 10X"));
        assert_eq!(
            e.message.as_deref(),
            Some("invalid argument: unknown suffix 'X'")
        );
        assert!(parse_size("abc").unwrap_err().message.is_none());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("20E").is_err());
    }
}
