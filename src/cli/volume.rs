//! The storage volume commands: vol-list, vol-info, vol-dumpxml,
//! vol-create, vol-create-as, vol-clone, vol-delete, vol-wipe,
//! vol-resize, vol-path, vol-key, vol-name, vol-pool. Messages and
//! layouts are virsh 9.0's.

use zbus::zvariant::OwnedObjectPath;

use super::bus::Bus;
use super::domain_lifecycle::read_file;
use super::error::{CliError, Result};
use super::format::table;
use super::storage::{
    By, Vol, info_line as line, lookup_pool, lookup_vol, lookup_vol_by, parse_size, pretty,
    vol_type_name,
};

/// `VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA`, `_REFLINK`.
const CREATE_PREALLOC_METADATA: u32 = 1;
const CREATE_REFLINK: u32 = 2;
/// `VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS`.
const DELETE_WITH_SNAPSHOTS: u32 = 2;
/// `virStorageVolResizeFlags`.
const RESIZE_ALLOCATE: u32 = 1;
const RESIZE_DELTA: u32 = 2;
const RESIZE_SHRINK: u32 = 4;
/// `VIR_STORAGE_VOL_GET_PHYSICAL`.
const GET_PHYSICAL: u32 = 1;

/// `virStorageVolWipeAlgorithm`, by virsh's names.
const WIPE_ALGORITHMS: &[&str] = &[
    "zero",
    "nnsa",
    "dod",
    "bsi",
    "gutmann",
    "schneier",
    "pfitzner7",
    "pfitzner33",
    "random",
    "trim",
];

#[derive(clap::Args, Debug, Clone, Default)]
pub struct VolCreateAsArgs {
    /// pool name
    #[arg(value_name = "POOL")]
    pub pool: String,
    /// name of the volume
    #[arg(value_name = "NAME")]
    pub name: String,
    /// size of the vol, as scaled integer (default bytes)
    #[arg(value_name = "CAPACITY", allow_hyphen_values = true)]
    pub capacity: String,
    /// initial allocation size, as scaled integer (default bytes)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub allocation: Option<String>,
    /// file format type raw,bochs,qcow,qcow2,qed,vmdk
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// the backing volume if taking a snapshot
    #[arg(long = "backing-vol", value_name = "VOL")]
    pub backing_vol: Option<String>,
    /// format of backing volume if taking a snapshot
    #[arg(long = "backing-vol-format", value_name = "FORMAT")]
    pub backing_vol_format: Option<String>,
    /// preallocate metadata (for qcow2 instead of full allocation)
    #[arg(long = "prealloc-metadata")]
    pub prealloc_metadata: bool,
    /// print XML document, but don't define/create
    #[arg(long = "print-xml")]
    pub print_xml: bool,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct VolResizeArgs {
    /// vol name, key or path
    #[arg(value_name = "VOL")]
    pub vol: String,
    /// new capacity for the vol, as scaled integer (default bytes)
    #[arg(value_name = "CAPACITY", allow_hyphen_values = true)]
    pub capacity: String,
    /// pool name or uuid
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,
    /// allocate the new capacity, rather than leaving it sparse
    #[arg(long)]
    pub allocate: bool,
    /// use capacity as a delta to current size, rather than the new size
    #[arg(long)]
    pub delta: bool,
    /// allow the resize to shrink the volume
    #[arg(long)]
    pub shrink: bool,
}

struct Row {
    name: String,
    path: String,
    kind: String,
    capacity: String,
    allocation: String,
}

pub fn vol_list(bus: &Bus, pool_arg: &str, details: bool) -> Result<String> {
    let pool = lookup_pool(bus, pool_arg)?;
    let paths = pool
        .volumes(bus)
        .map_err(|e| e.with_ctx("Failed to list volumes"))?;
    let mut rows = Vec::new();
    for p in paths {
        let Ok(vol) = Vol::from_path(bus, p.as_str()) else {
            continue;
        };
        let path = vol.file(bus).unwrap_or_else(|_| "unknown".to_string());
        let mut row = Row {
            name: vol.name.clone(),
            path,
            kind: String::new(),
            capacity: String::new(),
            allocation: String::new(),
        };
        if details {
            match vol.info(bus, 0) {
                Ok((t, capacity, allocation)) => {
                    row.kind = vol_type_name(t).to_string();
                    row.capacity = pretty(capacity);
                    row.allocation = pretty(allocation);
                }
                Err(_) => {
                    row.kind = "unknown".into();
                    row.capacity = "unknown".into();
                    row.allocation = "unknown".into();
                }
            }
        }
        rows.push(row);
    }
    rows.sort_by_key(|r| r.name.to_lowercase());
    if !details {
        let t: Vec<Vec<String>> = rows.into_iter().map(|r| vec![r.name, r.path]).collect();
        return Ok(table(&["Name", "Path"], &t));
    }
    let t: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| vec![r.name, r.path, r.kind, r.capacity, r.allocation])
        .collect();
    Ok(table(
        &["Name", "Path", "Type", "Capacity", "Allocation"],
        &t,
    ))
}

pub fn vol_info(
    bus: &Bus,
    arg: &str,
    pool: Option<&str>,
    bytes: bool,
    physical: bool,
) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    let mut out = line("Name", &vol.name);
    let flags = if physical { GET_PHYSICAL } else { 0 };
    let (t, capacity, allocation) = match vol.info(bus, flags) {
        Ok(i) => i,
        Err(e) => {
            say!("{out}");
            return Err(e);
        }
    };
    out.push_str(&line("Type", vol_type_name(t)));
    let alloc_label = if physical { "Physical" } else { "Allocation" };
    for (label, v) in [("Capacity", capacity), (alloc_label, allocation)] {
        if bytes {
            out.push_str(&line(label, format!("{v} bytes")));
        } else {
            out.push_str(&line(label, pretty(v)));
        }
    }
    Ok(out)
}

pub fn vol_dumpxml(bus: &Bus, arg: &str, pool: Option<&str>) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    vol.call(bus, "GetXMLDesc", &(0u32,))
}

pub fn vol_create(bus: &Bus, pool_arg: &str, file: &str, prealloc: bool) -> Result<String> {
    let flags = if prealloc {
        CREATE_PREALLOC_METADATA
    } else {
        0
    };
    let pool = lookup_pool(bus, pool_arg)?;
    let xml = read_file(file)?;
    let path: OwnedObjectPath = pool
        .call(bus, "StorageVolCreateXML", &(xml.as_str(), flags))
        .map_err(|e| e.with_ctx(format!("Failed to create vol from {file}")))?;
    let vol = Vol::from_path(bus, path.as_str())?;
    Ok(format!("Vol {} created from {file}\n", vol.name))
}

pub fn vol_create_as(bus: &Bus, a: &VolCreateAsArgs) -> Result<String> {
    let flags = if a.prealloc_metadata {
        CREATE_PREALLOC_METADATA
    } else {
        0
    };
    let pool = lookup_pool(bus, &a.pool)?;
    let capacity = parse_size(&a.capacity)?;
    let allocation = match &a.allocation {
        Some(s) => Some(parse_size(s)?),
        None => None,
    };
    let mut xml = format!(
        "<volume>\n  <name>{}</name>\n  <capacity>{capacity}</capacity>\n",
        a.name
    );
    if let Some(al) = allocation {
        xml.push_str(&format!("  <allocation>{al}</allocation>\n"));
    }
    if let Some(f) = &a.format {
        xml.push_str(&format!(
            "  <target>\n    <format type='{f}'/>\n  </target>\n"
        ));
    }
    if let Some(b) = &a.backing_vol {
        // The backing volume: a name in the pool, a key, or a path.
        let mut found: Option<OwnedObjectPath> = None;
        let mut last = None;
        match pool.call(bus, "StorageVolLookupByName", &(b.as_str(),)) {
            Ok(p) => found = Some(p),
            Err(e) => last = Some(e),
        }
        for method in ["StorageVolLookupByKey", "StorageVolLookupByPath"] {
            if found.is_none() {
                match bus.connect(method, &(b.as_str(),)) {
                    Ok(p) => found = Some(p),
                    Err(e) => last = Some(e),
                }
            }
        }
        let Some(bp) = found else {
            let mut e: CliError = last.unwrap_or_default();
            e.context = Some(format!("failed to get vol '{b}'"));
            return Err(e);
        };
        let backing = Vol::from_path(bus, bp.as_str())?.file(bus)?;
        xml.push_str(&format!("  <backingStore>\n    <path>{backing}</path>\n"));
        if let Some(f) = &a.backing_vol_format {
            xml.push_str(&format!("    <format type='{f}'/>\n"));
        }
        xml.push_str("  </backingStore>\n");
    }
    xml.push_str("</volume>\n");
    if a.print_xml {
        return Ok(xml);
    }
    let _: OwnedObjectPath = pool
        .call(bus, "StorageVolCreateXML", &(xml.as_str(), flags))
        .map_err(|e| e.with_ctx(format!("Failed to create vol {}", a.name)))?;
    Ok(format!("Vol {} created\n", a.name))
}

/// `virshMakeCloneXML`: the volume's XML with another `<name>`.
fn clone_xml(xml: &str, new_name: &str) -> Option<String> {
    let start = xml.find("<name>")? + "<name>".len();
    let end = start + xml[start..].find("</name>")?;
    let escaped = new_name
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Some(format!("{}{escaped}{}", &xml[..start], &xml[end..]))
}

pub fn vol_clone(
    bus: &Bus,
    arg: &str,
    new_name: &str,
    pool: Option<&str>,
    prealloc: bool,
    reflink: bool,
) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    let mut flags = 0;
    if prealloc {
        flags |= CREATE_PREALLOC_METADATA;
    }
    if reflink {
        flags |= CREATE_REFLINK;
    }
    let parent = vol
        .pool(bus)
        .map_err(|_| CliError::ctx("failed to get parent pool"))?;
    let xml: String = vol.call(bus, "GetXMLDesc", &(0u32,))?;
    let new_xml =
        clone_xml(&xml, new_name).ok_or_else(|| CliError::ctx("Failed to allocate XML buffer"))?;
    let key = vol.key(bus)?;
    let path: OwnedObjectPath = parent
        .call(
            bus,
            "StorageVolCreateXMLFrom",
            &(new_xml.as_str(), key.as_str(), flags),
        )
        .map_err(|e| e.with_ctx(format!("Failed to clone vol from {}", vol.name)))?;
    let made = Vol::from_path(bus, path.as_str())?;
    Ok(format!("Vol {} cloned from {}\n", made.name, vol.name))
}

pub fn vol_delete(
    bus: &Bus,
    arg: &str,
    pool: Option<&str>,
    delete_snapshots: bool,
) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    let flags = if delete_snapshots {
        DELETE_WITH_SNAPSHOTS
    } else {
        0
    };
    vol.act(bus, "Delete", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to delete vol {arg}")))?;
    Ok(format!("Vol {arg} deleted\n"))
}

pub fn vol_wipe(
    bus: &Bus,
    arg: &str,
    pool: Option<&str>,
    algorithm: Option<&str>,
) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    let alg = match algorithm {
        None => 0u32,
        Some(a) => WIPE_ALGORITHMS
            .iter()
            .position(|x| *x == a)
            .map(|i| i as u32)
            .ok_or_else(|| CliError::ctx(format!("Unsupported algorithm '{a}'")))?,
    };
    vol.act(bus, "Wipe", &(alg, 0u32))
        .map_err(|e| e.with_ctx(format!("Failed to wipe vol {arg}")))?;
    Ok(format!("Vol {arg} wiped\n"))
}

pub fn vol_resize(bus: &Bus, a: &VolResizeArgs) -> Result<String> {
    let mut flags = 0;
    if a.allocate {
        flags |= RESIZE_ALLOCATE;
    }
    if a.shrink {
        flags |= RESIZE_SHRINK;
    }
    let mut delta = a.delta;
    let vol = lookup_vol(bus, &a.vol, a.pool.as_deref())?;
    let mut cap = a
        .capacity
        .trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if let Some(rest) = cap.strip_prefix('-') {
        if !a.shrink {
            return Err(CliError::ctx("negative size requires --shrink"));
        }
        cap = rest;
        delta = true;
    }
    if delta {
        flags |= RESIZE_DELTA;
    }
    let bytes = parse_size(cap).map_err(|mut e| {
        e.context = Some(format!("Malformed size {cap}"));
        e
    })?;
    let how = if delta { "by" } else { "to" };
    vol.act(bus, "Resize", &(bytes, flags)).map_err(|e| {
        e.with_ctx(format!(
            "Failed to change size of volume '{}' {how} {cap}",
            vol.name
        ))
    })?;
    Ok(format!(
        "Size of volume '{}' successfully changed {how} {cap}\n",
        vol.name
    ))
}

pub fn vol_path(bus: &Bus, arg: &str, pool: Option<&str>) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    Ok(format!("{}\n", vol.file(bus)?))
}

pub fn vol_key(bus: &Bus, arg: &str, pool: Option<&str>) -> Result<String> {
    let vol = lookup_vol(bus, arg, pool)?;
    Ok(format!("{}\n", vol.key(bus)?))
}

/// By key or path only, as `vol-name` and `vol-pool` look volumes up.
const BY_KEY_OR_PATH: By = By {
    uuid: true,
    name: false,
};

pub fn vol_name(bus: &Bus, arg: &str) -> Result<String> {
    let vol = lookup_vol_by(bus, arg, None, false, BY_KEY_OR_PATH)?;
    Ok(format!("{}\n", vol.name))
}

pub fn vol_pool(bus: &Bus, arg: &str, uuid: bool) -> Result<String> {
    let vol = lookup_vol_by(bus, arg, None, false, BY_KEY_OR_PATH)?;
    let pool = vol
        .pool(bus)
        .map_err(|_| CliError::ctx("failed to get parent pool"))?;
    if uuid {
        let u: String = bus.prop(&pool.path, super::storage::POOL, "UUID")?;
        return Ok(format!("{u}\n"));
    }
    Ok(format!("{}\n", pool.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_renames() {
        let x = "<volume type='file'>\n  <name>v1</name>\n  <key>/p/v1</key>\n</volume>\n";
        assert_eq!(
            clone_xml(x, "v1c").unwrap(),
            "<volume type='file'>\n  <name>v1c</name>\n  <key>/p/v1</key>\n</volume>\n"
        );
        assert!(clone_xml("<volume/>", "x").is_none());
    }
}
