//! The storage pool commands: pool-list, pool-info, pool-dumpxml,
//! pool-define(-as), pool-create(-as), pool-build, pool-start,
//! pool-destroy, pool-delete, pool-undefine, pool-refresh,
//! pool-autostart, pool-uuid, pool-name. Messages and layouts are virsh
//! 9.0's; where virsh prints the name the user gave, so do these.

use zbus::zvariant::{OwnedObjectPath, Value};

use super::bus::{Bus, Params, param_bool, param_str};
use super::domain_lifecycle::read_file;
use super::error::{CliError, Result};
use super::format::{table, yes_no};
use super::options::{ListFilter, exclusive};
use super::storage::{
    By, POOL, Pool, info_line as line, lookup_pool, lookup_pool_by, pool_state_name, pretty,
};

/// virsh's pool type names and their listing flags.
const POOL_TYPES: &[(&str, u32)] = &[
    ("dir", 1 << 6),
    ("fs", 1 << 7),
    ("netfs", 1 << 8),
    ("logical", 1 << 9),
    ("disk", 1 << 10),
    ("iscsi", 1 << 11),
    ("scsi", 1 << 12),
    ("mpath", 1 << 13),
    ("rbd", 1 << 14),
    ("sheepdog", 1 << 15),
    ("gluster", 1 << 16),
    ("zfs", 1 << 17),
    ("vstorage", 1 << 18),
    ("iscsi-direct", 1 << 19),
];

/// `virStoragePoolCreateFlags`.
const CREATE_WITH_BUILD: u32 = 1;
const CREATE_WITH_BUILD_OVERWRITE: u32 = 2;
const CREATE_WITH_BUILD_NO_OVERWRITE: u32 = 4;
/// `virStoragePoolBuildFlags`.
const BUILD_OVERWRITE: u32 = 4;
const BUILD_NO_OVERWRITE: u32 = 8;
/// `VIR_STORAGE_XML_INACTIVE`.
const XML_INACTIVE: u32 = 1;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct PoolListArgs {
    /// list inactive pools
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active pools
    #[arg(long)]
    pub all: bool,
    /// list transient pools
    #[arg(long)]
    pub transient: bool,
    /// list persistent pools
    #[arg(long)]
    pub persistent: bool,
    /// list pools with autostart enabled
    #[arg(long)]
    pub autostart: bool,
    /// list pools with autostart disabled
    #[arg(long = "no-autostart")]
    pub no_autostart: bool,
    /// only list pool of specified type(s) (if supported)
    #[arg(long = "type", value_name = "TYPES")]
    pub pool_type: Option<String>,
    /// display extended details for pools
    #[arg(long)]
    pub details: bool,
    /// list UUID of active pools only
    #[arg(long)]
    pub uuid: bool,
    /// list name of active pools only
    #[arg(long)]
    pub name: bool,
}

/// The options of pool-define-as and pool-create-as.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PoolAsArgs {
    /// name of the pool
    #[arg(value_name = "NAME")]
    pub name: String,
    /// type of the pool
    #[arg(value_name = "TYPE")]
    pub pool_type: String,
    /// print XML document, but don't define/create
    #[arg(long = "print-xml")]
    pub print_xml: bool,
    /// source-host for underlying storage
    #[arg(long = "source-host", value_name = "HOST")]
    pub source_host: Option<String>,
    /// source path for underlying storage
    #[arg(long = "source-path", value_name = "PATH")]
    pub source_path: Option<String>,
    /// source device for underlying storage
    #[arg(long = "source-dev", value_name = "DEV")]
    pub source_dev: Option<String>,
    /// source name for underlying storage
    #[arg(long = "source-name", value_name = "NAME")]
    pub source_name: Option<String>,
    /// target for underlying storage
    #[arg(long, value_name = "PATH")]
    pub target: Option<String>,
    /// format for underlying storage
    #[arg(long = "source-format", value_name = "FORMAT")]
    pub source_format: Option<String>,
}

/// `--build`, `--overwrite`, `--no-overwrite` of pool-create(-as) and
/// pool-start.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BuildArgs {
    /// build the pool as normal
    #[arg(long)]
    pub build: bool,
    /// do not overwrite any existing data
    #[arg(long = "no-overwrite")]
    pub no_overwrite: bool,
    /// overwrite any existing data
    #[arg(long)]
    pub overwrite: bool,
}

impl BuildArgs {
    /// `virStoragePoolCreateFlags`, after virsh's exclusion check.
    fn create_flags(&self) -> Result<u32> {
        exclusive(&[(
            "overwrite",
            "no-overwrite",
            self.overwrite && self.no_overwrite,
        )])?;
        let mut f = 0;
        if self.build {
            f |= CREATE_WITH_BUILD;
        }
        if self.overwrite {
            f |= CREATE_WITH_BUILD_OVERWRITE;
        }
        if self.no_overwrite {
            f |= CREATE_WITH_BUILD_NO_OVERWRITE;
        }
        Ok(f)
    }
}

/// A `GetAll` of a pool, values unwrapped.
fn pool_props(bus: &Bus, path: &str) -> Params {
    bus.call(path, "org.freedesktop.DBus.Properties", "GetAll", &(POOL,))
        .unwrap_or_default()
}

struct Row {
    name: String,
    uuid: String,
    state: String,
    autostart: String,
    persistent: String,
    capacity: String,
    allocation: String,
    available: String,
}

pub fn pool_list(bus: &Bus, a: &PoolListArgs) -> Result<String> {
    let mut flags = ListFilter {
        inactive: a.inactive,
        all: a.all,
        persistent: a.persistent,
        transient: a.transient,
        autostart: a.autostart,
        no_autostart: a.no_autostart,
    }
    .flags();
    exclusive(&[
        ("details", "uuid", a.details && a.uuid),
        ("details", "name", a.details && a.name),
    ])?;
    if let Some(types) = &a.pool_type {
        for t in types.split(',').filter(|t| !t.is_empty()) {
            match POOL_TYPES.iter().find(|(n, _)| *n == t) {
                Some((_, bit)) => flags |= bit,
                None => return Err(CliError::ctx(format!("Invalid pool type '{t}'"))),
            }
        }
    }
    let paths: Vec<OwnedObjectPath> = bus
        .connect("ListStoragePools", &(flags,))
        .map_err(|e| e.with_ctx("Failed to list pools"))?;
    let mut rows = Vec::new();
    let mut errors = String::new();
    for p in paths {
        let props = pool_props(bus, p.as_str());
        // A pool that vanished since the listing is left out.
        let Some(name) = param_str(&props, "Name") else {
            continue;
        };
        let autostart = match param_bool(&props, "Autostart") {
            Some(b) => yes_no(b).to_string(),
            None => "no autostart".to_string(),
        };
        let persistent = match param_bool(&props, "Persistent") {
            Some(b) => yes_no(b).to_string(),
            None => "unknown".to_string(),
        };
        let mut row = Row {
            uuid: param_str(&props, "UUID").unwrap_or_default(),
            name,
            state: "unknown".into(),
            autostart,
            persistent,
            capacity: "unknown".into(),
            allocation: "unknown".into(),
            available: "unknown".into(),
        };
        let pool = Pool {
            path: p.to_string(),
            name: row.name.clone(),
        };
        match pool.info(bus) {
            Err(_) => errors.push_str("error: Could not retrieve pool information\n"),
            Ok((state, capacity, allocation, available)) if a.details => {
                row.state = pool_state_name(state).to_string();
                if state == 2 || state == 3 {
                    row.capacity = pretty(capacity);
                    row.allocation = pretty(allocation);
                    row.available = pretty(available);
                } else {
                    row.capacity = "-".into();
                    row.allocation = "-".into();
                    row.available = "-".into();
                }
            }
            Ok(_) => {
                let active = param_bool(&props, "Active").unwrap_or(false);
                row.state = if active { "active" } else { "inactive" }.into();
            }
        }
        rows.push(row);
    }
    esay!("{errors}");
    rows.sort_by_key(|r| r.name.to_lowercase());
    if !a.details {
        if a.uuid || a.name {
            let mut out = String::new();
            for r in &rows {
                if a.uuid {
                    out.push_str(&format!(
                        "{:<36}{}",
                        r.uuid,
                        if a.name { ' ' } else { '\n' }
                    ));
                }
                if a.name {
                    out.push_str(&format!("{:<20}\n", r.name));
                }
            }
            return Ok(out);
        }
        let t: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| vec![r.name, r.state, r.autostart])
            .collect();
        return Ok(table(&["Name", "State", "Autostart"], &t));
    }
    let t: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.name,
                r.state,
                r.autostart,
                r.persistent,
                r.capacity,
                r.allocation,
                r.available,
            ]
        })
        .collect();
    Ok(table(
        &[
            "Name",
            "State",
            "Autostart",
            "Persistent",
            "Capacity",
            "Allocation",
            "Available",
        ],
        &t,
    ))
}

fn sized_line(label: &str, bytes: u64, as_bytes: bool) -> String {
    if as_bytes {
        line(label, bytes)
    } else {
        line(label, pretty(bytes))
    }
}

pub fn pool_info(bus: &Bus, arg: &str, bytes: bool) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let mut out = line("Name", &pool.name);
    if let Ok(uuid) = bus.prop::<String>(&pool.path, POOL, "UUID") {
        out.push_str(&line("UUID", uuid));
    }
    let (state, capacity, allocation, available) = match pool.info(bus) {
        Ok(i) => i,
        Err(e) => {
            say!("{out}");
            return Err(e);
        }
    };
    out.push_str(&line("State", pool_state_name(state)));
    let persistent = match bus.prop::<bool>(&pool.path, POOL, "Persistent") {
        Ok(b) => yes_no(b),
        Err(_) => "unknown",
    };
    out.push_str(&line("Persistent", persistent));
    let autostart = match bus.prop::<bool>(&pool.path, POOL, "Autostart") {
        Ok(b) => yes_no(b),
        Err(_) => "no autostart",
    };
    out.push_str(&line("Autostart", autostart));
    if state == 2 || state == 3 {
        out.push_str(&sized_line("Capacity", capacity, bytes));
        out.push_str(&sized_line("Allocation", allocation, bytes));
        out.push_str(&sized_line("Available", available, bytes));
    }
    Ok(out)
}

pub fn pool_dumpxml(bus: &Bus, arg: &str, inactive: bool) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let flags = if inactive { XML_INACTIVE } else { 0 };
    pool.call(bus, "GetXMLDesc", &(flags,))
}

/// virsh's `virshBuildPoolXML`.
fn build_pool_xml(a: &PoolAsArgs) -> String {
    let mut x = format!("<pool type='{}'>\n  <name>{}</name>\n", a.pool_type, a.name);
    let src = [
        &a.source_host,
        &a.source_path,
        &a.source_dev,
        &a.source_format,
        &a.source_name,
    ];
    if src.iter().any(|s| s.is_some()) {
        x.push_str("  <source>\n");
        if let Some(h) = &a.source_host {
            x.push_str(&format!("    <host name='{h}'/>\n"));
        }
        if let Some(p) = &a.source_path {
            x.push_str(&format!("    <dir path='{p}'/>\n"));
        }
        if let Some(d) = &a.source_dev {
            x.push_str(&format!("    <device path='{d}'/>\n"));
        }
        if let Some(f) = &a.source_format {
            x.push_str(&format!("    <format type='{f}'/>\n"));
        }
        if let Some(n) = &a.source_name {
            x.push_str(&format!("    <name>{n}</name>\n"));
        }
        x.push_str("  </source>\n");
    }
    if let Some(t) = &a.target {
        x.push_str(&format!("  <target>\n    <path>{t}</path>\n  </target>\n"));
    }
    x.push_str("</pool>\n");
    x
}

pub fn pool_define(bus: &Bus, file: &str) -> Result<String> {
    let xml = read_file(file)?;
    let path: OwnedObjectPath = bus
        .connect("StoragePoolDefineXML", &(xml.as_str(), 0u32))
        .map_err(|e| e.with_ctx(format!("Failed to define pool from {file}")))?;
    let pool = Pool::from_path(bus, path.as_str())?;
    Ok(format!("Pool {} defined from {file}\n", pool.name))
}

pub fn pool_define_as(bus: &Bus, a: &PoolAsArgs) -> Result<String> {
    let xml = build_pool_xml(a);
    if a.print_xml {
        return Ok(xml);
    }
    let _: OwnedObjectPath = bus
        .connect("StoragePoolDefineXML", &(xml.as_str(), 0u32))
        .map_err(|e| e.with_ctx(format!("Failed to define pool {}", a.name)))?;
    Ok(format!("Pool {} defined\n", a.name))
}

pub fn pool_create(bus: &Bus, file: &str, b: &BuildArgs) -> Result<String> {
    let flags = b.create_flags()?;
    let xml = read_file(file)?;
    let path: OwnedObjectPath = bus
        .connect("StoragePoolCreateXML", &(xml.as_str(), flags))
        .map_err(|e| e.with_ctx(format!("Failed to create pool from {file}")))?;
    let pool = Pool::from_path(bus, path.as_str())?;
    Ok(format!("Pool {} created from {file}\n", pool.name))
}

pub fn pool_create_as(bus: &Bus, a: &PoolAsArgs, b: &BuildArgs) -> Result<String> {
    let flags = b.create_flags()?;
    let xml = build_pool_xml(a);
    if a.print_xml {
        return Ok(xml);
    }
    let _: OwnedObjectPath = bus
        .connect("StoragePoolCreateXML", &(xml.as_str(), flags))
        .map_err(|e| e.with_ctx(format!("Failed to create pool {}", a.name)))?;
    Ok(format!("Pool {} created\n", a.name))
}

pub fn pool_build(bus: &Bus, arg: &str, overwrite: bool, no_overwrite: bool) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let mut flags = 0;
    if no_overwrite {
        flags |= BUILD_NO_OVERWRITE;
    }
    if overwrite {
        flags |= BUILD_OVERWRITE;
    }
    pool.act(bus, "Build", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to build pool {arg}")))?;
    Ok(format!("Pool {arg} built\n"))
}

pub fn pool_start(bus: &Bus, arg: &str, b: &BuildArgs) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let flags = b.create_flags()?;
    pool.act(bus, "Create", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to start pool {arg}")))?;
    Ok(format!("Pool {arg} started\n"))
}

/// A command that calls one pool method and prints one line.
pub struct Simple {
    pub method: &'static str,
    /// Whether the method takes a flags argument.
    pub flags: bool,
    pub done: &'static str,
    pub verb: &'static str,
}

pub const DESTROY: Simple = Simple {
    method: "Destroy",
    flags: false,
    done: "destroyed",
    verb: "destroy",
};
pub const DELETE: Simple = Simple {
    method: "Delete",
    flags: true,
    done: "deleted",
    verb: "delete",
};
pub const UNDEFINE: Simple = Simple {
    method: "Undefine",
    flags: false,
    done: "has been undefined",
    verb: "undefine",
};
pub const REFRESH: Simple = Simple {
    method: "Refresh",
    flags: true,
    done: "refreshed",
    verb: "refresh",
};

pub fn simple(bus: &Bus, arg: &str, s: &Simple) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let r = if s.flags {
        pool.act(bus, s.method, &(0u32,))
    } else {
        pool.act(bus, s.method, &())
    };
    r.map_err(|e| e.with_ctx(format!("Failed to {} pool {arg}", s.verb)))?;
    Ok(format!("Pool {arg} {}\n", s.done))
}

pub fn pool_autostart(bus: &Bus, arg: &str, disable: bool) -> Result<String> {
    let pool = lookup_pool(bus, arg)?;
    let on = !disable;
    bus.set_prop(&pool.path, POOL, "Autostart", Value::from(on))
        .map_err(|e| {
            e.with_ctx(if on {
                format!("failed to mark pool {arg} as autostarted")
            } else {
                format!("failed to unmark pool {arg} as autostarted")
            })
        })?;
    Ok(if on {
        format!("Pool {arg} marked as autostarted\n")
    } else {
        format!("Pool {arg} unmarked as autostarted\n")
    })
}

pub fn pool_uuid(bus: &Bus, arg: &str) -> Result<String> {
    let pool = lookup_pool_by(
        bus,
        arg,
        By {
            uuid: false,
            name: true,
        },
    )?;
    let uuid: String = bus.prop(&pool.path, POOL, "UUID")?;
    Ok(format!("{uuid}\n"))
}

pub fn pool_name(bus: &Bus, arg: &str) -> Result<String> {
    let pool = lookup_pool_by(
        bus,
        arg,
        By {
            uuid: true,
            name: false,
        },
    )?;
    Ok(format!("{}\n", pool.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_xml_as_virsh_builds_it() {
        let a = PoolAsArgs {
            name: "p1".into(),
            pool_type: "dir".into(),
            target: Some("/tmp/lvt-p1".into()),
            ..Default::default()
        };
        assert_eq!(
            build_pool_xml(&a),
            "<pool type='dir'>\n  <name>p1</name>\n  <target>\n    <path>/tmp/lvt-p1</path>\n  </target>\n</pool>\n"
        );
        let a = PoolAsArgs {
            name: "n".into(),
            pool_type: "netfs".into(),
            source_host: Some("h".into()),
            source_path: Some("/e".into()),
            source_format: Some("nfs".into()),
            ..Default::default()
        };
        assert_eq!(
            build_pool_xml(&a),
            "<pool type='netfs'>\n  <name>n</name>\n  <source>\n    <host name='h'/>\n    <dir path='/e'/>\n    <format type='nfs'/>\n  </source>\n</pool>\n"
        );
    }

    #[test]
    fn info_lines() {
        assert_eq!(line("Name", "p1"), "Name:           p1\n");
        assert_eq!(
            sized_line("Capacity", 270553174016, false),
            "Capacity:       251.97 GiB\n"
        );
        assert_eq!(
            sized_line("Capacity", 524288, true),
            "Capacity:       524288\n"
        );
    }
}
