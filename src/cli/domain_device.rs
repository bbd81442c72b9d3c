//! attach-device, detach-device, attach-disk, detach-disk,
//! attach-interface, detach-interface, blockresize: virsh's words (and, for the disk and
//! interface commands, the XML virsh writes or picks out) around
//! libvirt-dbus's `AttachDevice`, `DetachDevice` and `BlockResize`.

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
/// `VIR_DOMAIN_BLOCK_RESIZE_BYTES`.
const BLOCK_RESIZE_BYTES: u32 = 1;

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

/// What `attach-interface` puts in the interface's XML.
#[derive(Clone, Debug, Default)]
pub struct InterfaceSpec {
    pub kind: String,
    pub source: String,
    pub target: Option<String>,
    pub mac: Option<String>,
    pub script: Option<String>,
    pub model: Option<String>,
    pub alias: Option<String>,
    pub inbound: Option<String>,
    pub outbound: Option<String>,
    pub managed: bool,
    pub source_mode: Option<String>,
}

/// `average,peak,burst,floor` (any but the first may be empty or left
/// out), as virsh reads `--inbound` and `--outbound`.
fn rate(s: &str) -> Result<[u64; 4]> {
    let fields: Vec<&str> = s.split(',').collect();
    if fields.len() > 4 {
        return Err(CliError::msg(format!(
            "Rate string '{s}' has too many fields"
        )));
    }
    let mut r = [0u64; 4];
    for (i, (f, name)) in fields
        .iter()
        .zip(["average", "peak", "burst", "floor"])
        .enumerate()
    {
        if !f.is_empty() {
            r[i] = f
                .parse()
                .map_err(|_| CliError::msg(format!("field '{name}' is malformed")))?;
        }
    }
    Ok(r)
}

fn rate_element(name: &str, r: [u64; 4]) -> Element {
    let mut e = Element::new(name);
    for (v, attr) in r.iter().zip(["average", "peak", "burst", "floor"]) {
        if *v > 0 {
            e = e.with_attr(attr, v.to_string());
        }
    }
    e
}

/// The `<interface>` element virsh's attach-interface writes for `s`.
pub fn interface_xml(s: &InterfaceSpec) -> Result<String> {
    let no_support = || {
        CliError::msg(format!(
            "No support for {} in command 'attach-interface'",
            s.kind
        ))
    };
    let mode = match s.source_mode.as_deref() {
        None => None,
        Some(m @ ("server" | "client")) => Some(m),
        Some(m) => return Err(CliError::msg(format!("Invalid source mode: {m}"))),
    };
    let inbound = s.inbound.as_deref().map(rate).transpose()?;
    if let Some(r) = inbound
        && r[0] == 0
        && r[3] == 0
    {
        return Err(CliError::msg(
            "either inbound average or floor is mandatory",
        ));
    }
    let outbound = s.outbound.as_deref().map(rate).transpose()?;
    if let Some(r) = outbound {
        if r[0] == 0 {
            return Err(CliError::msg("outbound average is mandatory"));
        }
        if r[3] != 0 {
            return Err(CliError::msg("outbound floor is unsupported yet"));
        }
    }
    let source = match s.kind.as_str() {
        "network" => Element::new("source").with_attr("network", s.source.clone()),
        "bridge" => Element::new("source").with_attr("bridge", s.source.clone()),
        "direct" => Element::new("source").with_attr("dev", s.source.clone()),
        "vhostuser" => Element::new("source")
            .with_attr("type", "unix")
            .with_attr("path", s.source.clone())
            .with_attr(
                "mode",
                mode.ok_or_else(|| CliError::msg("source-mode is mandatory"))?,
            ),
        _ => return Err(no_support()),
    };
    let mut iface = Element::new("interface").with_attr("type", s.kind.clone());
    if s.managed {
        iface = iface.with_attr("managed", "yes");
    }
    iface = iface.with_child(source);
    let child = |name: &str, attr: &str, v: &Option<String>| {
        v.as_ref()
            .map(|v| Element::new(name).with_attr(attr, v.clone()))
    };
    iface = iface
        .with_opt_child(child("target", "dev", &s.target))
        .with_opt_child(child("mac", "address", &s.mac))
        .with_opt_child(child("script", "path", &s.script))
        .with_opt_child(child("model", "type", &s.model))
        .with_opt_child(child("alias", "name", &s.alias));
    if inbound.is_some() || outbound.is_some() {
        iface = iface.with_child(
            Element::new("bandwidth")
                .with_opt_child(inbound.map(|r| rate_element("inbound", r)))
                .with_opt_child(outbound.map(|r| rate_element("outbound", r))),
        );
    }
    let mut out = String::new();
    write_element(&mut out, &iface, 0, Style::Libvirt);
    Ok(out)
}

pub fn attach_interface(
    bus: &Bus,
    name: &str,
    s: &InterfaceSpec,
    a: Affect,
    print_xml: bool,
) -> Result<String> {
    let xml = interface_xml(s)?;
    if print_xml {
        return Ok(xml);
    }
    let d = lookup(bus, name)?;
    let flags = a.flags(bus, &d)?;
    d.act(bus, "AttachDevice", &(xml, flags))
        .map_err(|e| e.with_ctx("Failed to attach interface"))?;
    Ok("Interface attached successfully\n".into())
}

/// The interface of type `kind` (and MAC `mac`) in `doc`, as virsh picks
/// it out; its own error otherwise.
fn find_interface(doc: &str, kind: &str, mac: Option<&str>) -> Result<Element> {
    let root = tree::parse_document(doc)
        .map_err(|_| CliError::msg("Failed to get interface information"))?;
    let nics: Vec<&Element> = root
        .child("devices")
        .into_iter()
        .flat_map(|d| d.children_named("interface"))
        .filter(|i| i.attr("type") == Some(kind))
        .collect();
    if nics.is_empty() {
        return Err(CliError::msg(format!(
            "No interface found whose type is {kind}"
        )));
    }
    let Some(mac) = mac else {
        if nics.len() > 1 {
            return Err(CliError::msg(format!(
                "Domain has {} interfaces. Please specify which one to detach using --mac",
                nics.len()
            )));
        }
        return Ok(nics[0].clone());
    };
    let same = |i: &&&Element| {
        i.child("mac")
            .and_then(|m| m.attr("address"))
            .is_some_and(|a| a.eq_ignore_ascii_case(mac))
    };
    let mut matching = nics.iter().filter(same);
    let found = matching
        .next()
        .ok_or_else(|| CliError::msg(format!("No interface with MAC address {mac} was found")))?;
    if matching.next().is_some() {
        return Err(CliError::msg(format!(
            "Domain has multiple interfaces matching MAC address {mac}. You must use \
             detach-device and specify the device pci address to remove it."
        )));
    }
    Ok((*found).clone())
}

pub fn detach_interface(
    bus: &Bus,
    name: &str,
    kind: &str,
    mac: Option<&str>,
    a: Affect,
    print_xml: bool,
) -> Result<String> {
    // Only the options' checks: each definition below gets its own flags.
    a.flags_before_lookup()?;
    let d = lookup(bus, name)?;
    let failed = |e: CliError| CliError {
        context: e.message.clone().filter(|_| e.context.is_none()),
        message: Some("Failed to detach interface".into()),
    };
    let mut printed = String::new();
    let mut one = |doc: &str, flags: u32| -> Result<()> {
        let nic = find_interface(doc, kind, mac).map_err(failed)?;
        if print_xml {
            let mut out = String::new();
            write_element(&mut out, &nic, 2, Style::Libxml);
            printed.push_str(out.trim_start());
            return Ok(());
        }
        let mut xml = String::new();
        write_element(&mut xml, &nic, 0, Style::Libvirt);
        d.act(bus, "DetachDevice", &(xml, flags))
            .map_err(|e| e.with_ctx("Failed to detach interface"))
    };
    let config = a.config || a.persistent;
    if config {
        one(&d.xml(bus, XML_INACTIVE)?, AFFECT_CONFIG)?;
    }
    let live = a.live || (a.persistent && d.id(bus)?.is_some());
    if live || !config {
        // Neither: the running guest, as virDomainDetachDevice.
        one(&d.xml(bus, 0)?, AFFECT_LIVE)?;
    }
    if print_xml {
        return Ok(printed);
    }
    Ok("Interface detached successfully\n".into())
}

/// `blockresize`: `size` a scaled integer (KiB without a unit), handed on
/// in bytes as virsh does.
pub fn blockresize(bus: &Bus, name: &str, path: &str, size: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let bytes = super::storage::parse_scaled(size, 1024, || {
        CliError::ctx(format!(
            "Scaled numeric value '{size}' for <size> option is malformed or out of range"
        ))
    })?;
    d.act(bus, "BlockResize", &(path, bytes, BLOCK_RESIZE_BYTES))
        .map_err(|e| e.with_ctx(format!("Failed to resize block device '{path}'")))?;
    Ok(format!("Block device '{path}' is resized\n"))
}
