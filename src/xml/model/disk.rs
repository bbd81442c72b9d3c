//! `<disk>`: block devices, their sources, backing chains and targets.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::props::{XmlEnum, enum_attr, opt_string, positive_attr, req_attr, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    DiskType { File = "file", Block = "block", Dir = "dir", Network = "network", Volume = "volume", Nvme = "nvme", VhostUser = "vhostuser" }
}

xml_enum! {
    DiskDevice { Disk = "disk", Cdrom = "cdrom", Floppy = "floppy", Lun = "lun" }
}

xml_enum! {
    DiskBus { Ide = "ide", Fdc = "fdc", Scsi = "scsi", Virtio = "virtio", Xen = "xen", Usb = "usb", Uml = "uml", Sata = "sata", Sd = "sd" }
}

xml_enum! {
    DiskCache { Default = "default", None = "none", Writethrough = "writethrough", Writeback = "writeback", Directsync = "directsync", Unsafe = "unsafe" }
}

xml_enum! {
    DiskIo { Threads = "threads", Native = "native", IoUring = "io_uring" }
}

xml_enum! {
    DiskDiscard { Unmap = "unmap", Ignore = "ignore" }
}

xml_enum! {
    DetectZeroes { Off = "off", On = "on", Unmap = "unmap" }
}

xml_enum! {
    StartupPolicy { Mandatory = "mandatory", Requisite = "requisite", Optional = "optional" }
}

/// Longest backing chain read; deeper chains are refused.
pub const MAX_BACKING_CHAIN: usize = 16;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskDriver {
    pub name: Option<String>,
    pub format: Option<String>,
    pub cache: Option<DiskCache>,
    pub io: Option<DiskIo>,
    pub discard: Option<DiskDiscard>,
    pub detect_zeroes: Option<DetectZeroes>,
    pub iothread: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkHost {
    pub name: Option<String>,
    pub port: Option<String>,
    pub transport: Option<String>,
    pub socket: Option<String>,
}

/// Where a disk's data lives; which fields apply depends on the disk type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskSource {
    /// `file=`, `dev=` or `dir=` according to the disk type.
    pub path: Option<String>,
    pub protocol: Option<String>,
    pub name: Option<String>,
    pub hosts: Vec<NetworkHost>,
    pub pool: Option<String>,
    pub volume: Option<String>,
    pub startup_policy: Option<StartupPolicy>,
    /// Children not modelled (auth, encryption, ...), kept as written.
    pub extra: Vec<Element>,
    /// Attributes not modelled (an NVMe source's type, managed and
    /// namespace, a vhost-user socket's type, ...), kept as written.
    pub other_attrs: Vec<(String, String)>,
}

/// One layer below a disk image. An explicit empty `<backingStore/>`
/// marks the chain as known to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackingStore {
    End,
    Layer(Box<BackingLayer>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackingLayer {
    pub disk_type: DiskType,
    pub format: Option<String>,
    pub source: DiskSource,
    pub next: Option<BackingStore>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskTarget {
    pub dev: String,
    pub bus: Option<DiskBus>,
    pub tray: Option<String>,
    pub removable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub disk_type: DiskType,
    pub device: DiskDevice,
    pub driver: Option<DiskDriver>,
    pub source: Option<DiskSource>,
    pub backing_store: Option<BackingStore>,
    pub target: DiskTarget,
    pub readonly: bool,
    pub shareable: bool,
    pub transient: bool,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub boot_order: Option<u32>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

fn source_path_attr(disk_type: DiskType) -> Option<&'static str> {
    match disk_type {
        DiskType::File => Some("file"),
        DiskType::Block => Some("dev"),
        DiskType::Dir => Some("dir"),
        _ => None,
    }
}

impl DiskSource {
    fn parse(src: &Element, disk_type: DiskType) -> Result<DiskSource> {
        let mut hosts = Vec::new();
        for h in src.children_named("host") {
            hosts.push(NetworkHost {
                name: opt_string(h, "name"),
                port: opt_string(h, "port"),
                transport: opt_string(h, "transport"),
                socket: opt_string(h, "socket"),
            });
        }
        Ok(DiskSource {
            path: source_path_attr(disk_type)
                .and_then(|a| opt_string(src, a))
                .filter(|p| !p.is_empty()),
            protocol: opt_string(src, "protocol"),
            name: opt_string(src, "name"),
            hosts,
            pool: opt_string(src, "pool"),
            volume: opt_string(src, "volume"),
            startup_policy: enum_attr(src, "startupPolicy")?,
            extra: src
                .children
                .iter()
                .filter(|c| c.name != "host")
                .cloned()
                .collect(),
            other_attrs: src
                .attrs
                .iter()
                .filter(|(k, _)| {
                    let modelled = ["protocol", "name", "pool", "volume", "startupPolicy"];
                    !modelled.contains(&k.as_str())
                        && Some(k.as_str()) != source_path_attr(disk_type)
                })
                .cloned()
                .collect(),
        })
    }

    fn to_element(&self, disk_type: DiskType) -> Element {
        let mut e = Element::new("source");
        if let Some(a) = source_path_attr(disk_type) {
            e = e.with_opt_attr(a, self.path.as_ref());
        }
        e = e
            .with_opt_attr("protocol", self.protocol.as_ref())
            .with_opt_attr("name", self.name.as_ref())
            .with_opt_attr("pool", self.pool.as_ref())
            .with_opt_attr("volume", self.volume.as_ref())
            .with_opt_attr("startupPolicy", self.startup_policy);
        e.attrs.extend(self.other_attrs.iter().cloned());
        for h in &self.hosts {
            e.children.push(
                Element::new("host")
                    .with_opt_attr("transport", h.transport.as_ref())
                    .with_opt_attr("name", h.name.as_ref())
                    .with_opt_attr("port", h.port.as_ref())
                    .with_opt_attr("socket", h.socket.as_ref()),
            );
        }
        e.children.extend(self.extra.iter().cloned());
        e
    }

    /// What libvirt names the source in messages: path, or protocol name.
    pub fn describe(&self) -> String {
        self.path
            .clone()
            .or_else(|| self.name.clone())
            .or_else(|| self.volume.clone())
            .unwrap_or_default()
    }
}

impl BackingStore {
    /// Read a chain iteratively; refuses chains deeper than
    /// [`MAX_BACKING_CHAIN`].
    fn parse(first: &Element) -> Result<BackingStore> {
        let mut layers = Vec::new();
        let mut cur = Some(first);
        let mut ended = false;
        while let Some(e) = cur {
            if layers.len() >= MAX_BACKING_CHAIN {
                return Err(Error::xml("backing store chain is too deep"));
            }
            let Some(t) = e.attr("type") else {
                ended = true;
                break;
            };
            let disk_type = DiskType::from_xml(t)
                .ok_or_else(|| Error::xml(format!("unknown disk backing store type '{t}'")))?;
            let source = match e.child("source") {
                Some(s) => DiskSource::parse(s, disk_type)?,
                None => return Err(Error::xml("missing disk backing store source")),
            };
            let format = e.child("format").and_then(|f| opt_string(f, "type"));
            if let Some(f) = format.as_deref().filter(|f| !KNOWN_FORMATS.contains(f)) {
                return Err(Error::xml(format!("unknown storage source format '{f}'")));
            }
            layers.push((disk_type, format, source));
            cur = e.child("backingStore");
        }
        let mut chain: Option<BackingStore> = ended.then_some(BackingStore::End);
        while let Some((disk_type, format, source)) = layers.pop() {
            chain = Some(BackingStore::Layer(Box::new(BackingLayer {
                disk_type,
                format,
                source,
                next: chain,
            })));
        }
        Ok(chain.unwrap_or(BackingStore::End))
    }

    fn to_element(&self) -> Element {
        // Build inner-most first so the chain is formatted without recursion.
        let mut layers = Vec::new();
        let mut cur = Some(self);
        let mut ends = false;
        while let Some(b) = cur {
            match b {
                BackingStore::End => {
                    ends = true;
                    cur = None;
                }
                BackingStore::Layer(layer) => {
                    layers.push((&layer.disk_type, &layer.format, &layer.source));
                    cur = layer.next.as_ref();
                }
            }
        }
        let mut inner = ends.then(|| Element::new("backingStore"));
        while let Some((disk_type, format, source)) = layers.pop() {
            let e = Element::new("backingStore")
                .with_attr("type", disk_type.as_str())
                .with_opt_child(
                    format
                        .as_ref()
                        .map(|f| Element::new("format").with_attr("type", f.clone())),
                )
                .with_child(source.to_element(*disk_type))
                .with_opt_child(inner.take());
            inner = Some(e);
        }
        inner.unwrap_or_else(|| Element::new("backingStore"))
    }
}

/// Image formats libvirt knows (`virStorageFileFormat`).
const KNOWN_FORMATS: &[&str] = &[
    "none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk", "luks", "aio",
];

/// libvirt's rules tying the device kind to its target name and bus.
fn check_target(device: DiskDevice, target: &DiskTarget) -> Result<()> {
    let bus = target
        .bus
        .unwrap_or_else(|| bus_from_dev_name(&target.dev, device));
    match device {
        DiskDevice::Floppy if bus != DiskBus::Fdc => Err(Error::internal(format!(
            "Invalid bus type '{bus}' for floppy disk"
        ))),

        DiskDevice::Cdrom if bus == DiskBus::Virtio => Err(Error::unsupported(format!(
            "disk type of '{}' does not support ejectable media",
            target.dev
        ))),
        _ => Ok(()),
    }
}

/// libvirt's final check of target names, made after addresses are
/// assigned: floppies are `fd*`, everything else one of the disk prefixes.
pub fn check_dev_name(disk: &Disk) -> Result<()> {
    let dev = &disk.target.dev;
    if disk.device == DiskDevice::Floppy {
        if !dev.starts_with("fd") {
            return Err(Error::internal(format!(
                "Invalid floppy device name: {dev}"
            )));
        }
    } else if !["hd", "sd", "vd", "xvd", "ubd"]
        .iter()
        .any(|p| dev.starts_with(p))
    {
        return Err(Error::internal(format!(
            "Invalid harddisk device name: {dev}"
        )));
    }
    Ok(())
}

/// Bus implied by a target name when `bus` is absent.
pub fn bus_from_dev_name(dev: &str, device: DiskDevice) -> DiskBus {
    if device == DiskDevice::Floppy || dev.starts_with("fd") {
        DiskBus::Fdc
    } else if dev.starts_with("hd") {
        DiskBus::Ide
    } else if dev.starts_with("sd") {
        DiskBus::Scsi
    } else if dev.starts_with("vd") {
        DiskBus::Virtio
    } else if dev.starts_with("xvd") {
        DiskBus::Xen
    } else if dev.starts_with("ub") {
        DiskBus::Usb
    } else {
        DiskBus::Ide
    }
}

/// The index a target name encodes: `sda` 0, `sdz` 25, `sdaa` 26, ...
pub fn dev_name_index(dev: &str) -> Option<u32> {
    let suffix = ["fd", "hd", "sd", "vd", "xvd", "ubd"]
        .iter()
        .find_map(|p| dev.strip_prefix(p))?;
    if suffix.is_empty() || suffix.len() > 6 {
        return None;
    }
    let mut idx: u32 = 0;
    for (i, ch) in suffix.chars().enumerate() {
        if !ch.is_ascii_lowercase() {
            return None;
        }
        let digit = u32::from(ch as u8 - b'a');
        idx = if i == 0 {
            digit
        } else {
            (idx + 1) * 26 + digit
        };
    }
    Some(idx)
}

impl Disk {
    pub fn parse(e: &Element) -> Result<Disk> {
        let disk_type = enum_attr(e, "type")?.unwrap_or(DiskType::File);
        let device = enum_attr(e, "device")?.unwrap_or(DiskDevice::Disk);
        let driver = match e.child("driver") {
            None => None,
            Some(d) => Some(DiskDriver {
                name: opt_string(d, "name"),
                format: opt_string(d, "type"),
                cache: enum_attr(d, "cache")?,
                io: enum_attr(d, "io")?,
                discard: enum_attr(d, "discard")?,
                detect_zeroes: enum_attr(d, "detect_zeroes")?,
                iothread: positive_attr(d, "iothread")?,
            }),
        };
        let source = e
            .child("source")
            .map(|s| DiskSource::parse(s, disk_type))
            .transpose()?;
        let backing_store = e
            .child("backingStore")
            .map(BackingStore::parse)
            .transpose()?;
        let Some(t) = e.child("target").filter(|t| t.attr("dev").is_some()) else {
            let what = source
                .as_ref()
                .map(DiskSource::describe)
                .unwrap_or_default();
            return Err(Error::with_message(
                ErrorCode::NoTarget,
                ErrorDomain::Domain,
                format!("missing target information for device {what}"),
            ));
        };
        let target = DiskTarget {
            dev: req_attr(t, "dev")?.to_string(),
            bus: enum_attr(t, "bus")?,
            tray: opt_string(t, "tray"),
            removable: opt_string(t, "removable"),
        };
        check_target(device, &target)?;
        if let Some(name) = driver.as_ref().and_then(|d| d.name.as_deref())
            && name != "qemu"
        {
            return Err(Error::unsupported(format!(
                "unsupported driver name '{name}' for disk '{}'",
                target.dev
            )));
        }
        // Disks need something to show; removable media may be empty.
        let removable = matches!(device, DiskDevice::Cdrom | DiskDevice::Floppy);
        let has_source = source.as_ref().is_some_and(|s| {
            s.path.is_some() || s.name.is_some() || s.volume.is_some() || s.protocol.is_some()
        });
        if !has_source
            && !removable
            && matches!(
                disk_type,
                DiskType::File
                    | DiskType::Block
                    | DiskType::Network
                    | DiskType::Volume
                    | DiskType::Dir
            )
        {
            return Err(Error::with_message(
                ErrorCode::NoSource,
                ErrorDomain::Domain,
                format!("missing source information for device {}", target.dev),
            ));
        }
        if let Some(f) = driver.as_ref().and_then(|d| d.format.as_deref())
            && !KNOWN_FORMATS.contains(&f)
        {
            return Err(Error::unsupported(format!(
                "unknown driver format value '{f}'"
            )));
        }
        let boot_order = parse_boot_order(e)?;
        Ok(Disk {
            disk_type,
            device,
            driver,
            source,
            backing_store,
            target,
            // A CD-ROM is read-only whether or not the XML says so.
            readonly: e.child("readonly").is_some() || device == DiskDevice::Cdrom,
            shareable: e.child("shareable").is_some(),
            transient: e.child("transient").is_some(),
            serial: e.child_text("serial").map(str::to_string),
            wwn: e.child_text("wwn").map(str::to_string),
            boot_order,
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    /// The bus, explicit or implied by the target name.
    pub fn bus(&self) -> DiskBus {
        self.target
            .bus
            .unwrap_or_else(|| bus_from_dev_name(&self.target.dev, self.device))
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let mut e = Element::new("disk")
            .with_attr("type", self.disk_type.as_str())
            .with_attr("device", self.device.as_str());
        if let Some(d) = &self.driver {
            e.children.push(
                Element::new("driver")
                    .with_opt_attr("name", d.name.as_ref())
                    .with_opt_attr("type", d.format.as_ref())
                    .with_opt_attr("cache", d.cache)
                    .with_opt_attr("io", d.io)
                    .with_opt_attr("discard", d.discard)
                    .with_opt_attr("detect_zeroes", d.detect_zeroes)
                    .with_opt_attr("iothread", d.iothread),
            );
        }
        if let Some(s) = &self.source {
            e.children.push(s.to_element(self.disk_type));
        }
        if let Some(b) = &self.backing_store {
            e.children.push(b.to_element());
        }
        e.children.push(
            Element::new("target")
                .with_attr("dev", self.target.dev.clone())
                .with_opt_attr("bus", self.target.bus)
                .with_opt_attr("tray", self.target.tray.as_ref())
                .with_opt_attr("removable", self.target.removable.as_ref()),
        );
        for (flag, name) in [
            (self.readonly, "readonly"),
            (self.shareable, "shareable"),
            (self.transient, "transient"),
        ] {
            if flag {
                e.children.push(Element::new(name));
            }
        }
        if let Some(s) = &self.serial {
            e.children.push(Element::new("serial").with_text(s.clone()));
        }
        if let Some(w) = &self.wwn {
            e.children.push(Element::new("wwn").with_text(w.clone()));
        }
        if let Some(order) = self.boot_order {
            e.children
                .push(Element::new("boot").with_attr("order", order.to_string()));
        }
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

/// Boot order of a device as `<boot order=.../>`, if present.
pub fn parse_boot_order(dev: &Element) -> Result<Option<u32>> {
    match dev.child("boot") {
        None => Ok(None),
        Some(b) => {
            Ok(Some(positive_attr(b, "order")?.ok_or_else(|| {
                crate::xml::props::missing_attr(b, "order")
            })?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn names_map_to_indexes() {
        assert_eq!(dev_name_index("sda"), Some(0));
        assert_eq!(dev_name_index("vdz"), Some(25));
        assert_eq!(dev_name_index("sdaa"), Some(26));
        assert_eq!(dev_name_index("xyz"), None);
        assert_eq!(bus_from_dev_name("sdb", DiskDevice::Disk), DiskBus::Scsi);
    }

    #[test]
    fn round_trips_backing_chain() {
        let e = parse_document(
            "<disk type='file' device='disk'><source file='/a'/><backingStore type='file'><format type='qcow2'/><source file='/b'/><backingStore/></backingStore><target dev='vda' bus='virtio'/></disk>",
        )
        .unwrap();
        let d = Disk::parse(&e).unwrap();
        assert!(matches!(d.backing_store, Some(BackingStore::Layer(_))));
        assert_eq!(Disk::parse(&d.to_element(true)).unwrap(), d);
    }

    #[test]
    fn refuses_deep_backing_chain_and_missing_target() {
        let mut xml = String::from("<disk><source file='/a'/>");
        for _ in 0..20 {
            xml.push_str("<backingStore type='file'><source file='/b'/>");
        }
        xml.push_str(&"</backingStore>".repeat(20));
        xml.push_str("<target dev='vda'/></disk>");
        assert!(Disk::parse(&parse_document(&xml).unwrap()).is_err());
        let e = parse_document("<disk type='file'><source file='/a'/></disk>").unwrap();
        let err = Disk::parse(&e).unwrap_err();
        assert_eq!(err.code as i32, 20);
        assert_eq!(err.message, "missing target information for device /a");
    }
}
