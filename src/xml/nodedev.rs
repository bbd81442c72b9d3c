//! libvirt's node device XML (`nodedev.rng`): the devices the host driver
//! finds, formatted byte for byte as `virsh nodedev-dumpxml` prints them
//! (`virNodeDeviceDefFormat`). No I/O: the driver fills the model from
//! sysfs.
//!
//! The capability of a device (`virNodeDevCapType`) also gives its
//! `VIR_CONNECT_LIST_NODE_DEVICES_CAP_*` bit: bit N is the Nth type.

use super::storage::out::{Out, esc};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::tree::parse_document_as;

/// `virNodeDevCapType`, in libvirt's order (the list flag of a type is
/// `1 << its number`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CapType {
    System,
    PciDev,
    UsbDev,
    UsbInterface,
    Net,
    ScsiHost,
    ScsiTarget,
    Scsi,
    Storage,
    FcHost,
    Vports,
    ScsiGeneric,
    Drm,
    MdevTypes,
    Mdev,
    CcwDev,
    CssDev,
    Vdpa,
    ApCard,
    ApQueue,
    ApMatrix,
    Vpd,
}

const CAP_TYPES: [(CapType, &str); 22] = [
    (CapType::System, "system"),
    (CapType::PciDev, "pci"),
    (CapType::UsbDev, "usb_device"),
    (CapType::UsbInterface, "usb"),
    (CapType::Net, "net"),
    (CapType::ScsiHost, "scsi_host"),
    (CapType::ScsiTarget, "scsi_target"),
    (CapType::Scsi, "scsi"),
    (CapType::Storage, "storage"),
    (CapType::FcHost, "fc_host"),
    (CapType::Vports, "vports"),
    (CapType::ScsiGeneric, "scsi_generic"),
    (CapType::Drm, "drm"),
    (CapType::MdevTypes, "mdev_types"),
    (CapType::Mdev, "mdev"),
    (CapType::CcwDev, "ccw"),
    (CapType::CssDev, "css"),
    (CapType::Vdpa, "vdpa"),
    (CapType::ApCard, "ap_card"),
    (CapType::ApQueue, "ap_queue"),
    (CapType::ApMatrix, "ap_matrix"),
    (CapType::Vpd, "vpd"),
];

impl CapType {
    /// `virNodeDevCapTypeFromString`.
    pub fn parse(s: &str) -> Option<CapType> {
        CAP_TYPES.iter().find(|(_, n)| *n == s).map(|(t, _)| *t)
    }

    pub fn as_str(self) -> &'static str {
        CAP_TYPES[self as usize].1
    }

    /// Its `VIR_CONNECT_LIST_NODE_DEVICES_CAP_*` bit.
    pub fn list_flag(self) -> u32 {
        1 << (self as u32)
    }

    /// Every type, in order.
    pub fn all() -> impl Iterator<Item = CapType> {
        CAP_TYPES.iter().map(|(t, _)| *t)
    }
}

/// A PCI address as the capability lists others (`<address .../>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciAddr {
    pub domain: u32,
    pub bus: u32,
    pub slot: u32,
    pub function: u32,
}

impl PciAddr {
    /// `virPCIDeviceAddressParse`: `DDDD:BB:SS.F`, each part hex.
    pub fn parse(s: &str) -> Option<PciAddr> {
        let (domain, rest) = s.split_once(':')?;
        let (bus, rest) = rest.split_once(':')?;
        let (slot, function) = rest.split_once('.')?;
        let hex = |t: &str| u32::from_str_radix(t, 16).ok();
        Some(PciAddr {
            domain: hex(domain)?,
            bus: hex(bus)?,
            slot: hex(slot)?,
            function: hex(function)?,
        })
    }

    /// The element libvirt prints (with its `0x%d` function).
    fn element(&self) -> String {
        format!(
            "<address domain='0x{:04x}' bus='0x{:02x}' slot='0x{:02x}' function='0x{}'/>",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

/// `<product>` of `<capability type='system'>` and its hardware and
/// firmware (from DMI).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SystemCap {
    pub product_name: Option<String>,
    pub hw_vendor: Option<String>,
    pub hw_version: Option<String>,
    pub hw_serial: Option<String>,
    /// Formatted UUID (all zeros when libvirt could not read DMI).
    pub uuid: String,
    pub fw_vendor: Option<String>,
    pub fw_version: Option<String>,
    pub fw_release_date: Option<String>,
}

/// One `<link>` of `<pci-express>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcieLink {
    /// -1: not printed.
    pub port: i32,
    /// `virPCIELinkSpeed` (0: not printed).
    pub speed: u32,
    pub width: u32,
}

/// `<pci-express>`: empty when the device has no link (root complex
/// integrated endpoints, or no PCI Express capability found).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PciExpress {
    pub link_cap: Option<PcieLink>,
    pub link_sta: Option<PcieLink>,
}

/// One `<type>` of `<capability type='mdev_types'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MdevType {
    pub id: String,
    pub name: Option<String>,
    pub device_api: String,
    pub available_instances: u32,
}

/// `<capability type='pci'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciCap {
    /// -1: not printed.
    pub class: i32,
    pub addr: PciAddr,
    pub vendor: u32,
    pub product: u32,
    pub vendor_name: Option<String>,
    pub product_name: Option<String>,
    pub phys_function: Option<PciAddr>,
    /// `sriov_totalvfs` and the `virtfnN` functions; printed when either
    /// is non-zero.
    pub max_virtual_functions: u32,
    pub virtual_functions: Vec<PciAddr>,
    /// `virPCIHeaderType` (0, an endpoint, is not printed).
    pub hdr_type: u8,
    pub mdev_types: Vec<MdevType>,
    /// The group and its members; printed when it has members.
    pub iommu_group: Option<(u32, Vec<PciAddr>)>,
    /// -1: not printed.
    pub numa_node: i32,
    pub pci_express: Option<PciExpress>,
}

/// `<capability type='usb_device'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbDevCap {
    pub bus: u32,
    pub device: u32,
    pub vendor: u32,
    pub product: u32,
    pub vendor_name: Option<String>,
    pub product_name: Option<String>,
}

/// `<capability type='usb'>` (an interface).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsbIfCap {
    pub number: u32,
    pub class: u32,
    pub subclass: u32,
    pub protocol: u32,
}

/// `virNetDevIfState` names, by number.
pub const IF_STATES: [&str; 8] = [
    "",
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// `virNetDevFeature` names, by bit.
pub const NET_FEATURES: [&str; 14] = [
    "rx",
    "tx",
    "sg",
    "tso",
    "gso",
    "gro",
    "lro",
    "rxvlan",
    "txvlan",
    "ntuple",
    "rxhash",
    "rdma",
    "txudptnl",
    "switchdev",
];

/// `<capability type='net'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetCap {
    pub ifname: String,
    pub address: Option<String>,
    /// Index into [`IF_STATES`] (0: none).
    pub link_state: usize,
    /// Mb/s (0: not printed).
    pub link_speed: u32,
    /// Bits over [`NET_FEATURES`].
    pub features: u32,
    /// 802.11 (`wlan`) rather than 802.3.
    pub wireless: bool,
}

/// `<capability type='scsi_host'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiHostCap {
    pub host: u32,
    /// -1: not printed.
    pub unique_id: i32,
}

/// `<capability type='scsi'>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScsiCap {
    pub host: u32,
    pub bus: u32,
    pub target: u32,
    pub lun: u32,
    pub scsi_type: Option<String>,
}

/// `<capability type='storage'>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StorageCap {
    pub block: String,
    pub bus: Option<String>,
    pub drive_type: Option<String>,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub removable: bool,
    pub media_available: bool,
    pub removable_media_size: u64,
    pub media_label: Option<String>,
    pub size: u64,
    pub logical_block_size: u64,
    pub num_blocks: u64,
}

/// `virNodeDevDRMType` names, by number.
pub const DRM_TYPES: [&str; 3] = ["primary", "control", "render"];

/// One capability of a device, with its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cap {
    System(SystemCap),
    Pci(PciCap),
    UsbDev(UsbDevCap),
    UsbInterface(UsbIfCap),
    Net(NetCap),
    ScsiHost(ScsiHostCap),
    ScsiTarget {
        name: String,
    },
    Scsi(ScsiCap),
    Storage(StorageCap),
    ScsiGeneric {
        path: String,
    },
    /// Index into [`DRM_TYPES`].
    Drm {
        kind: usize,
    },
}

impl Cap {
    pub fn cap_type(&self) -> CapType {
        match self {
            Cap::System(_) => CapType::System,
            Cap::Pci(_) => CapType::PciDev,
            Cap::UsbDev(_) => CapType::UsbDev,
            Cap::UsbInterface(_) => CapType::UsbInterface,
            Cap::Net(_) => CapType::Net,
            Cap::ScsiHost(_) => CapType::ScsiHost,
            Cap::ScsiTarget { .. } => CapType::ScsiTarget,
            Cap::Scsi(_) => CapType::Scsi,
            Cap::Storage(_) => CapType::Storage,
            Cap::ScsiGeneric { .. } => CapType::ScsiGeneric,
            Cap::Drm { .. } => CapType::Drm,
        }
    }
}

/// A node device (`virNodeDeviceDef`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeDeviceDef {
    pub name: String,
    /// `/sys/devices/...` (none for `computer`).
    pub sysfs_path: Option<String>,
    pub devnode: Option<String>,
    pub devlinks: Vec<String>,
    pub parent: Option<String>,
    pub driver: Option<String>,
    pub caps: Vec<Cap>,
}

impl NodeDeviceDef {
    /// `virNodeDeviceCapsListExport`: each capability, then the ones it
    /// nests (a PCI device offering mediated device types has
    /// `mdev_types` too).
    pub fn cap_types(&self) -> Vec<CapType> {
        let mut out = Vec::new();
        for c in &self.caps {
            out.push(c.cap_type());
            if let Cap::Pci(p) = c
                && !p.mdev_types.is_empty()
            {
                out.push(CapType::MdevTypes);
            }
        }
        out
    }

    /// `virNodeDeviceObjHasCap`.
    pub fn has_cap(&self, t: CapType) -> bool {
        self.cap_types().contains(&t)
    }

    /// `virNodeDeviceDefFormat`.
    pub fn to_xml(&self) -> String {
        let mut o = Out::default();
        o.open("<device>");
        o.text_elem("name", &self.name);
        if let Some(p) = &self.sysfs_path {
            o.text_elem("path", p);
        }
        if let Some(d) = &self.devnode {
            o.line(&format!("<devnode type='dev'>{}</devnode>", esc(d)));
        }
        for l in &self.devlinks {
            o.line(&format!("<devnode type='link'>{}</devnode>", esc(l)));
        }
        if let Some(p) = &self.parent {
            o.text_elem("parent", p);
        }
        if let Some(d) = &self.driver {
            o.open("<driver>");
            o.text_elem("name", d);
            o.close("</driver>");
        }
        for c in &self.caps {
            o.open(&format!("<capability type='{}'>", c.cap_type().as_str()));
            format_cap(&mut o, c);
            o.close("</capability>");
        }
        o.close("</device>");
        o.finish()
    }
}

fn opt_elem(o: &mut Out, name: &str, v: &Option<String>) {
    if let Some(v) = v {
        o.text_elem(name, v);
    }
}

/// `<product id='0x..'>name</product>`; `empty` is how the element ends
/// without a name (`/>` for PCI, ` />` for USB).
fn id_elem(o: &mut Out, tag: &str, id: u32, name: &Option<String>, empty: &str) {
    match name {
        Some(n) => o.line(&format!("<{tag} id='0x{id:04x}'>{}</{tag}>", esc(n))),
        None => o.line(&format!("<{tag} id='0x{id:04x}'{empty}")),
    }
}

fn format_cap(o: &mut Out, c: &Cap) {
    match c {
        Cap::System(s) => {
            opt_elem(o, "product", &s.product_name);
            o.open("<hardware>");
            opt_elem(o, "vendor", &s.hw_vendor);
            opt_elem(o, "version", &s.hw_version);
            opt_elem(o, "serial", &s.hw_serial);
            o.text_elem("uuid", &s.uuid);
            o.close("</hardware>");
            o.open("<firmware>");
            opt_elem(o, "vendor", &s.fw_vendor);
            opt_elem(o, "version", &s.fw_version);
            opt_elem(o, "release_date", &s.fw_release_date);
            o.close("</firmware>");
        }
        Cap::Pci(p) => format_pci(o, p),
        Cap::UsbDev(u) => {
            o.line(&format!("<bus>{}</bus>", u.bus as i32));
            o.line(&format!("<device>{}</device>", u.device as i32));
            id_elem(o, "product", u.product, &u.product_name, " />");
            id_elem(o, "vendor", u.vendor, &u.vendor_name, " />");
        }
        Cap::UsbInterface(u) => {
            o.line(&format!("<number>{}</number>", u.number as i32));
            o.line(&format!("<class>{}</class>", u.class as i32));
            o.line(&format!("<subclass>{}</subclass>", u.subclass as i32));
            o.line(&format!("<protocol>{}</protocol>", u.protocol as i32));
        }
        Cap::Net(n) => {
            o.text_elem("interface", &n.ifname);
            opt_elem(o, "address", &n.address);
            if n.link_speed != 0 || n.link_state != 0 {
                let mut l = String::from("<link");
                if n.link_speed != 0 {
                    l.push_str(&format!(" speed='{}'", n.link_speed));
                }
                if n.link_state != 0 {
                    let s = IF_STATES.get(n.link_state).copied().unwrap_or("");
                    l.push_str(&format!(" state='{s}'"));
                }
                l.push_str("/>");
                o.line(&l);
            }
            for (i, f) in NET_FEATURES.iter().enumerate() {
                if n.features & (1 << i) != 0 {
                    o.line(&format!("<feature name='{f}'/>"));
                }
            }
            let sub = if n.wireless { "80211" } else { "80203" };
            o.line(&format!("<capability type='{sub}'/>"));
        }
        Cap::ScsiHost(h) => {
            o.line(&format!("<host>{}</host>", h.host as i32));
            if h.unique_id != -1 {
                o.line(&format!("<unique_id>{}</unique_id>", h.unique_id));
            }
        }
        Cap::ScsiTarget { name } => o.text_elem("target", name),
        Cap::Scsi(s) => {
            o.line(&format!("<host>{}</host>", s.host as i32));
            o.line(&format!("<bus>{}</bus>", s.bus as i32));
            o.line(&format!("<target>{}</target>", s.target as i32));
            o.line(&format!("<lun>{}</lun>", s.lun as i32));
            opt_elem(o, "type", &s.scsi_type);
        }
        Cap::Storage(s) => format_storage(o, s),
        Cap::ScsiGeneric { path } => o.text_elem("char", path),
        Cap::Drm { kind } => o.text_elem("type", DRM_TYPES.get(*kind).copied().unwrap_or("")),
    }
}

/// `virPCIELinkSpeed` names, by number; libvirt prints "(null)" past them.
fn pcie_speed(s: u32) -> &'static str {
    ["", "2.5", "5", "8", "16", "32", "64"]
        .get(s as usize)
        .copied()
        .unwrap_or("(null)")
}

fn pcie_link(o: &mut Out, l: &Option<PcieLink>, validity: &str) {
    let Some(l) = l else { return };
    let mut s = format!("<link validity='{validity}'");
    if l.port >= 0 {
        s.push_str(&format!(" port='{}'", l.port));
    }
    if l.speed != 0 {
        s.push_str(&format!(" speed='{}'", pcie_speed(l.speed)));
    }
    s.push_str(&format!(" width='{}'/>", l.width as i32));
    o.line(&s);
}

fn format_pci(o: &mut Out, p: &PciCap) {
    if p.class >= 0 {
        o.line(&format!("<class>0x{:06x}</class>", p.class));
    }
    o.line(&format!("<domain>{}</domain>", p.addr.domain as i32));
    o.line(&format!("<bus>{}</bus>", p.addr.bus));
    o.line(&format!("<slot>{}</slot>", p.addr.slot));
    o.line(&format!("<function>{}</function>", p.addr.function));
    id_elem(o, "product", p.product, &p.product_name, "/>");
    id_elem(o, "vendor", p.vendor, &p.vendor_name, "/>");
    if let Some(pf) = &p.phys_function {
        o.open("<capability type='phys_function'>");
        o.line(&pf.element());
        o.close("</capability>");
    }
    if p.max_virtual_functions > 0 || !p.virtual_functions.is_empty() {
        let mut head = String::from("<capability type='virt_functions'");
        if p.max_virtual_functions > 0 {
            head.push_str(&format!(" maxCount='{}'", p.max_virtual_functions));
        }
        if p.virtual_functions.is_empty() {
            head.push_str("/>");
            o.line(&head);
        } else {
            head.push('>');
            o.open(&head);
            for vf in &p.virtual_functions {
                o.line(&vf.element());
            }
            o.close("</capability>");
        }
    }
    if p.hdr_type != 0 {
        let t = ["endpoint", "pci-bridge", "cardbus-bridge"]
            .get(p.hdr_type as usize)
            .copied()
            .unwrap_or("");
        o.line(&format!("<capability type='{t}'/>"));
    }
    if !p.mdev_types.is_empty() {
        o.open("<capability type='mdev_types'>");
        for t in &p.mdev_types {
            o.open(&format!("<type id='{}'>", esc(&t.id)));
            opt_elem(o, "name", &t.name);
            o.text_elem("deviceAPI", &t.device_api);
            o.line(&format!(
                "<availableInstances>{}</availableInstances>",
                t.available_instances
            ));
            o.close("</type>");
        }
        o.close("</capability>");
    }
    if let Some((group, members)) = &p.iommu_group
        && !members.is_empty()
    {
        o.open(&format!("<iommuGroup number='{}'>", *group as i32));
        for m in members {
            o.line(&m.element());
        }
        o.close("</iommuGroup>");
    }
    if p.numa_node >= 0 {
        o.line(&format!("<numa node='{}'/>", p.numa_node));
    }
    if let Some(e) = &p.pci_express {
        if e.link_cap.is_none() && e.link_sta.is_none() {
            o.line("<pci-express/>");
        } else {
            o.open("<pci-express>");
            pcie_link(o, &e.link_cap, "cap");
            pcie_link(o, &e.link_sta, "sta");
            o.close("</pci-express>");
        }
    }
}

fn format_storage(o: &mut Out, s: &StorageCap) {
    o.text_elem("block", &s.block);
    opt_elem(o, "bus", &s.bus);
    opt_elem(o, "drive_type", &s.drive_type);
    opt_elem(o, "model", &s.model);
    opt_elem(o, "vendor", &s.vendor);
    opt_elem(o, "serial", &s.serial);
    if s.removable {
        o.open("<capability type='removable'>");
        o.line(&format!(
            "<media_available>{}</media_available>",
            u8::from(s.media_available)
        ));
        o.line(&format!(
            "<media_size>{}</media_size>",
            s.removable_media_size
        ));
        opt_elem(o, "media_label", &s.media_label);
    } else {
        o.line(&format!("<size>{}</size>", s.size));
    }
    if s.logical_block_size > 0 {
        o.line(&format!(
            "<logical_block_size>{}</logical_block_size>",
            s.logical_block_size
        ));
    }
    if s.num_blocks > 0 {
        o.line(&format!("<num_blocks>{}</num_blocks>", s.num_blocks));
    }
    if s.removable {
        o.close("</capability>");
    }
}

/// The capability types a device definition given to
/// `virNodeDeviceCreateXML` / `virNodeDeviceDefineXML` asks for, checked
/// as far as libvirt's parser checks them before the driver looks at
/// the type: the root element, and each `<capability>`'s type. The
/// contents of each capability are not read.
pub fn parse_definition_caps(xml: &str) -> Result<Vec<CapType>> {
    let root = parse_document_as(xml, "(node_device_definition)", "device")?;
    let xml_err = |m: String| Error::new(ErrorCode::XmlError, ErrorDomain::NodeDev, m);
    let mut caps = Vec::new();
    for c in root.children.iter().filter(|c| c.name == "capability") {
        let t = c.attr("type").ok_or_else(|| {
            xml_err("Missing required attribute 'type' in element 'capability'".into())
        })?;
        let t = CapType::parse(t).ok_or_else(|| {
            xml_err(format!(
                "Invalid value for attribute 'type' in element 'capability': '{t}'."
            ))
        })?;
        caps.push(t);
    }
    if caps.is_empty() {
        return Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::NodeDev,
            "no device capabilities for 'new device'",
        ));
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_types_follow_libvirt_numbers() {
        assert_eq!(CapType::System.list_flag(), 1);
        assert_eq!(CapType::PciDev.list_flag(), 2);
        assert_eq!(CapType::Net.list_flag(), 1 << 4);
        assert_eq!(CapType::Storage.list_flag(), 1 << 8);
        assert_eq!(CapType::Vpd.list_flag(), 1 << 21);
        assert_eq!(CapType::parse("usb"), Some(CapType::UsbInterface));
        assert_eq!(CapType::parse("usb_device"), Some(CapType::UsbDev));
        assert_eq!(CapType::parse("bogus"), None);
        for t in CapType::all() {
            assert_eq!(CapType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn pci_addresses_parse_as_libvirt_reads_them() {
        assert_eq!(
            PciAddr::parse("0000:3a:00.7"),
            Some(PciAddr {
                domain: 0,
                bus: 0x3a,
                slot: 0,
                function: 7
            })
        );
        assert_eq!(PciAddr::parse("0000:00"), None);
        // libvirt's "0x%d" for the function.
        let a = PciAddr::parse("0000:81:10.3").unwrap();
        assert_eq!(
            a.element(),
            "<address domain='0x0000' bus='0x81' slot='0x10' function='0x3'/>"
        );
    }

    #[test]
    fn computer_formats_as_libvirt_without_dmi() {
        let d = NodeDeviceDef {
            name: "computer".into(),
            sysfs_path: None,
            devnode: None,
            devlinks: vec![],
            parent: None,
            driver: None,
            caps: vec![Cap::System(SystemCap {
                uuid: "00000000-0000-0000-0000-000000000000".into(),
                ..Default::default()
            })],
        };
        assert_eq!(
            d.to_xml(),
            "<device>\n  <name>computer</name>\n  <capability type='system'>\n    <hardware>\n      \
             <uuid>00000000-0000-0000-0000-000000000000</uuid>\n    </hardware>\n    <firmware>\n    \
             </firmware>\n  </capability>\n</device>\n"
        );
    }

    #[test]
    fn pcie_links_and_escaped_names() {
        let mut p = PciCap {
            class: 0x020000,
            addr: PciAddr::parse("0000:01:00.0").unwrap(),
            vendor: 0x8086,
            product: 0x1572,
            vendor_name: Some("Intel Corporation".into()),
            product_name: Some("Ethernet <X710> & 'co'".into()),
            phys_function: None,
            max_virtual_functions: 64,
            virtual_functions: vec![],
            hdr_type: 0,
            mdev_types: vec![],
            iommu_group: Some((14, vec![PciAddr::parse("0000:01:00.0").unwrap()])),
            numa_node: 0,
            pci_express: Some(PciExpress {
                link_cap: Some(PcieLink {
                    port: 0,
                    speed: 3,
                    width: 8,
                }),
                link_sta: Some(PcieLink {
                    port: -1,
                    speed: 3,
                    width: 8,
                }),
            }),
        };
        let mut o = Out::default();
        format_pci(&mut o, &p);
        assert_eq!(
            o.finish(),
            "<class>0x020000</class>\n<domain>0</domain>\n<bus>1</bus>\n<slot>0</slot>\n\
             <function>0</function>\n\
             <product id='0x1572'>Ethernet &lt;X710&gt; &amp; &apos;co&apos;</product>\n\
             <vendor id='0x8086'>Intel Corporation</vendor>\n\
             <capability type='virt_functions' maxCount='64'/>\n\
             <iommuGroup number='14'>\n  \
             <address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>\n</iommuGroup>\n\
             <numa node='0'/>\n<pci-express>\n  \
             <link validity='cap' port='0' speed='8' width='8'/>\n  \
             <link validity='sta' speed='8' width='8'/>\n</pci-express>\n"
        );
        p.hdr_type = 1;
        p.pci_express = Some(PciExpress::default());
        p.iommu_group = None;
        p.numa_node = -1;
        p.max_virtual_functions = 0;
        p.product_name = None;
        let mut o = Out::default();
        format_pci(&mut o, &p);
        let s = o.finish();
        assert!(s.contains("<product id='0x1572'/>\n"), "{s}");
        assert!(
            s.ends_with("<capability type='pci-bridge'/>\n<pci-express/>\n"),
            "{s}"
        );
    }

    #[test]
    fn definitions_name_their_capabilities() {
        let caps = parse_definition_caps(
            "<device><parent>pci_0000_00_02_0</parent><capability type='mdev'>\
             <type id='nvidia-11'/></capability></device>",
        )
        .unwrap();
        assert_eq!(caps, vec![CapType::Mdev]);
        let e = parse_definition_caps("<domain/>").unwrap_err();
        assert_eq!(
            e.message,
            "XML error: expecting root element of 'device', not 'domain'"
        );
        let e = parse_definition_caps("<device><capability type='x'/></device>").unwrap_err();
        assert_eq!(
            e.message,
            "XML error: Invalid value for attribute 'type' in element 'capability': 'x'."
        );
        let e = parse_definition_caps("<device><name>a</name></device>").unwrap_err();
        assert_eq!(
            e.message,
            "internal error: no device capabilities for 'new device'"
        );
    }
}
