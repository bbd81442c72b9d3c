//! attach-device, detach-device, attach-disk, detach-disk: virsh's words
//! (and, for the disk commands, the XML virsh writes or picks out) around
//! libvirt-dbus's `AttachDevice` and `DetachDevice`.

use crate::xml::tree::{self, Element};
use crate::xml::writer::{Style, write_element};

use super::bus::Bus;
use super::domain::lookup;
use super::domain_lifecycle::{affect, read_file};
use super::error::{CliError, Result};
use super::options::exclusive;

/// `VIR_DOMAIN_AFFECT_LIVE`, `VIR_DOMAIN_AFFECT_CONFIG`.
const AFFECT_LIVE: u32 = 1;
const AFFECT_CONFIG: u32 = 2;
/// `VIR_DOMAIN_XML_INACTIVE`.
const XML_INACTIVE: u32 = 2;

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
        let mut f = self.flags_before_lookup()?;
        if self.persistent && d.id(bus)?.is_some() {
            f |= AFFECT_LIVE;
        }
        Ok(f)
    }

    /// The flags the options alone give (`--persistent` as `--config`).
    fn flags_before_lookup(self) -> Result<u32> {
        exclusive(&[("persistent", "current", self.persistent && self.current)])?;
        affect(self.config || self.persistent, self.live, self.current)
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

/// What `attach-disk` puts in the disk's XML.
#[derive(Clone, Debug, Default)]
pub struct DiskSpec {
    pub source: String,
    pub target: String,
    pub targetbus: Option<String>,
    pub driver: Option<String>,
    pub subdriver: Option<String>,
    pub iothread: Option<String>,
    pub cache: Option<String>,
    pub io: Option<String>,
    pub device: Option<String>,
    pub mode: Option<String>,
    pub sourcetype: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub alias: Option<String>,
    pub rawio: bool,
}

/// The `<disk>` element virsh's attach-disk writes for `s`.
pub fn disk_xml(s: &DiskSpec) -> Result<String> {
    let kind = match s.sourcetype.as_deref() {
        Some(t @ ("file" | "block")) => t,
        Some("network") => {
            return Err(CliError::msg(
                "--source-protocol option requires --sourcetype network",
            ));
        }
        Some(t) => return Err(CliError::msg(format!("Unknown source type: '{t}'"))),
        None => {
            let block = !matches!(s.driver.as_deref(), Some("file" | "tap"))
                && std::fs::metadata(&s.source)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
            if block { "block" } else { "file" }
        }
    };
    if let Some(m) = s.mode.as_deref()
        && m != "readonly"
        && m != "shareable"
    {
        return Err(CliError::msg(format!(
            "No support for {m} in command 'attach-disk'"
        )));
    }
    if let Some(w) = s.wwn.as_deref()
        && (w.len() != 16 || !w.chars().all(|c| c.is_ascii_hexdigit()))
    {
        return Err(CliError::msg(format!("internal error: Malformed wwn: {w}")));
    }
    let mut disk = Element::new("disk")
        .with_attr("type", kind)
        .with_opt_attr("device", s.device.as_ref());
    if s.rawio {
        disk = disk.with_attr("rawio", "yes");
    }
    let driver = Element::new("driver")
        .with_opt_attr("name", s.driver.as_ref())
        .with_opt_attr("type", s.subdriver.as_ref())
        .with_opt_attr("iothread", s.iothread.as_ref())
        .with_opt_attr("cache", s.cache.as_ref())
        .with_opt_attr("io", s.io.as_ref());
    if !driver.attrs.is_empty() {
        disk = disk.with_child(driver);
    }
    let source_attr = if kind == "block" { "dev" } else { "file" };
    disk = disk
        .with_child(Element::new("source").with_attr(source_attr, s.source.clone()))
        .with_child(
            Element::new("target")
                .with_attr("dev", s.target.clone())
                .with_opt_attr("bus", s.targetbus.as_ref()),
        );
    if let Some(m) = &s.mode {
        disk = disk.with_child(Element::new(m.clone()));
    }
    if let Some(serial) = &s.serial {
        disk = disk.with_child(Element::new("serial").with_text(serial.clone()));
    }
    if let Some(alias) = &s.alias {
        disk = disk.with_child(Element::new("alias").with_attr("name", alias.clone()));
    }
    if let Some(wwn) = &s.wwn {
        disk = disk.with_child(Element::new("wwn").with_text(wwn.clone()));
    }
    let mut out = String::new();
    write_element(&mut out, &disk, 0, Style::Libvirt);
    Ok(out)
}

pub fn attach_disk(
    bus: &Bus,
    name: &str,
    s: &DiskSpec,
    a: Affect,
    print_xml: bool,
) -> Result<String> {
    let xml = disk_xml(s)?;
    if print_xml {
        return Ok(xml);
    }
    let d = lookup(bus, name)?;
    let flags = a.flags(bus, &d)?;
    d.act(bus, "AttachDevice", &(xml, flags))
        .map_err(|e| e.with_ctx("Failed to attach disk"))?;
    Ok("Disk attached successfully\n".into())
}

/// The domain's `<disk>` whose target, or source file, device, directory
/// or name, is `path` (its backing chain left out), as virsh finds it.
fn find_disk(doc: &str, path: &str) -> Result<Element> {
    let info = || CliError::msg("Failed to get disk information");
    let root = tree::parse_document(doc).map_err(|_| info())?;
    let devices = root.child("devices").ok_or_else(info)?;
    let mut disks = devices.children_named("disk").peekable();
    if disks.peek().is_none() {
        return Err(info());
    }
    let found = disks.find(|d| {
        let source = d.child("source");
        let src = |attr: &str| source.and_then(|s| s.attr(attr)) == Some(path);
        d.child("target").and_then(|t| t.attr("dev")) == Some(path)
            || src("file")
            || src("dev")
            || src("dir")
            || src("name")
    });
    let mut disk = found
        .ok_or_else(|| {
            CliError::msg(format!(
                "No disk found whose source path or target is {path}"
            ))
        })?
        .clone();
    disk.children.retain(|c| c.name != "backingStore");
    Ok(disk)
}

pub fn detach_disk(
    bus: &Bus,
    name: &str,
    target: &str,
    a: Affect,
    print_xml: bool,
) -> Result<String> {
    let d = lookup(bus, name)?;
    let flags = a.flags_before_lookup()?;
    let doc = d.xml(
        bus,
        if flags == AFFECT_CONFIG {
            XML_INACTIVE
        } else {
            0
        },
    )?;
    let flags = a.flags(bus, &d)?;
    let disk = find_disk(&doc, target)?;
    if print_xml {
        // As libxml2 dumps a node in place: double quotes, the document's
        // indentation inside, none before the first line.
        let mut out = String::new();
        write_element(&mut out, &disk, 2, Style::Libxml);
        return Ok(out.trim_start().to_string());
    }
    let mut xml = String::new();
    write_element(&mut xml, &disk, 0, Style::Libvirt);
    d.act(bus, "DetachDevice", &(xml, flags))
        .map_err(|e| e.with_ctx("Failed to detach disk"))?;
    Ok("Disk detached successfully\n".into())
}
