//! The host's devices as libvirt 9.0's udev node-device driver finds and
//! names them (`node_device_udev.c`), read straight from sysfs: every
//! device under `bus/*/devices` and `class/*`, its properties from its
//! `uevent` file and the udev database (`/run/udev/data`, when udev keeps
//! one), classified and described as libvirt does. Devices libvirt would
//! drop (a bridge, a loop disk, a USB device udev has not described) are
//! dropped here too.
//!
//! Every path is relative to [`HostPaths`], so tests run on a fixture
//! tree; the XML shows the paths as the host would (`/sys/devices/...`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::xml::nodedev::{
    Cap, IF_STATES, MdevType, NetCap, NodeDeviceDef, PciAddr, PciCap, PciExpress, PcieLink,
    ScsiCap, ScsiHostCap, StorageCap, SystemCap, UsbDevCap, UsbIfCap,
};

use super::ethtool;

/// Where the host's facts are, and what the daemon may ask.
#[derive(Clone, Debug)]
pub struct HostPaths {
    /// Mounted sysfs (`/sys`).
    pub sysfs: PathBuf,
    /// udev's database (`/run/udev/data`); absent without udev.
    pub udev_data: PathBuf,
    /// The PCI ID database (`/usr/share/misc/pci.ids`).
    pub pci_ids: PathBuf,
    /// Read PCI configuration space (header type, PCI Express links), as
    /// a privileged libvirtd does.
    pub privileged: bool,
    /// Ask the kernel for interfaces' offload features (ethtool).
    pub ethtool: bool,
    /// The host UUID when DMI has none (libvirt would make one up).
    pub host_uuid: String,
}

impl HostPaths {
    /// The running host's paths.
    pub fn system() -> HostPaths {
        HostPaths {
            sysfs: PathBuf::from("/sys"),
            udev_data: PathBuf::from("/run/udev/data"),
            pci_ids: PathBuf::from("/usr/share/misc/pci.ids"),
            // SAFETY: geteuid has no preconditions.
            privileged: unsafe { libc::geteuid() } == 0,
            ethtool: true,
            host_uuid: crate::driver::host::host_uuid(),
        }
    }
}

/// Subsystems libvirt does not enumerate (`subsystem_ignored`).
const IGNORED: [&str; 4] = ["acpi", "tty", "vc", "i2c"];

/// `nodeDeviceGenerateName`: `subsystem_sysname[_extra]`, every byte
/// that is not an ASCII letter or digit made `_`.
pub fn device_name(subsystem: &str, sysname: &str, extra: Option<&str>) -> String {
    let mut s = format!("{subsystem}_{sysname}");
    if let Some(e) = extra {
        s.push('_');
        s.push_str(e);
    }
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

/// One sysfs device as libudev sees it.
struct Raw {
    /// The directory in this tree.
    real: PathBuf,
    /// As the host names it (`/sys/devices/...`).
    path: String,
    sysname: String,
    subsystem: String,
    props: HashMap<String, String>,
    devlinks: Vec<String>,
}

impl Raw {
    fn prop(&self, k: &str) -> Option<&str> {
        self.props.get(k).map(String::as_str)
    }

    /// `udev_device_get_sysattr_value`: the file's text without its
    /// trailing newlines; `None` when it cannot be read.
    fn attr(&self, name: &str) -> Option<String> {
        read_attr(&self.real.join(name))
    }

    /// `udevGetStringSysfsAttr`: control characters removed, empty is none.
    fn attr_string(&self, name: &str) -> Option<String> {
        clean(self.attr(name))
    }

    /// `udevGetUintSysfsAttr`: 0 when missing, an error when malformed.
    fn attr_uint(&self, name: &str, base: u32) -> Result<u32, ()> {
        match self.attr(name) {
            None => Ok(0),
            Some(s) => str_to_uint(&s, base).ok_or(()),
        }
    }

    fn attr_u64(&self, name: &str) -> Result<u64, ()> {
        match self.attr(name) {
            None => Ok(0),
            Some(s) => str_to_u64(&s).ok_or(()),
        }
    }

    /// `udevGetUintProperty`: required.
    fn prop_uint(&self, k: &str, base: u32) -> Result<u32, ()> {
        self.prop(k).and_then(|s| str_to_uint(s, base)).ok_or(())
    }

    fn devnode(&self) -> Option<String> {
        self.prop("DEVNAME").map(|n| {
            if n.starts_with('/') {
                n.to_string()
            } else {
                format!("/dev/{n}")
            }
        })
    }

    fn name(&self, extra: Option<&str>) -> String {
        device_name(&self.subsystem, &self.sysname, extra)
    }
}

fn read_attr(p: &Path) -> Option<String> {
    let s = std::fs::read_to_string(p).ok()?;
    Some(s.trim_end_matches('\n').to_string())
}

fn clean(s: Option<String>) -> Option<String> {
    let s: String = s?.chars().filter(|c| !c.is_control()).collect();
    (!s.is_empty()).then_some(s)
}

/// `strtoul` with libvirt's checks (`virStrToLong_ui`): base 0 takes `0x`
/// and leading-zero octal, base 16 an optional `0x`; "-1" is the largest.
fn str_to_uint(s: &str, base: u32) -> Option<u32> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = parse_radix(digits, base)?;
    if neg {
        if v > u64::from(u32::MAX) {
            return None;
        }
        return Some((v as u32).wrapping_neg());
    }
    u32::try_from(v).ok()
}

fn str_to_u64(s: &str) -> Option<u64> {
    if s.starts_with('-') {
        return None;
    }
    parse_radix(s, 0)
}

fn parse_radix(s: &str, base: u32) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (base, digits) = match base {
        0 if lower.starts_with("0x") => (16, &s[2..]),
        0 if s.len() > 1 && s.starts_with('0') => (8, &s[1..]),
        0 => (10, s),
        16 => (16, if lower.starts_with("0x") { &s[2..] } else { s }),
        b => (b, s),
    };
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, base).ok()
}

fn str_to_int(s: &str, base: u32) -> Option<i32> {
    match s.strip_prefix('-') {
        Some(d) => {
            let v = parse_radix(d, base)?;
            i32::try_from(-(i64::try_from(v).ok()?)).ok()
        }
        None => i32::try_from(parse_radix(s, base)?).ok(),
    }
}

/// Where the symlink `link` (or the directory) leads. sysfs links are
/// relative and lead to real directories, so they are followed by
/// joining, which costs one system call where `realpath` costs one per
/// component; an absolute link is resolved in full.
fn resolve(link: &Path) -> Option<PathBuf> {
    let target = match std::fs::read_link(link) {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Some(link.to_path_buf()),
        Err(_) => return None,
    };
    if target.is_absolute() {
        return std::fs::canonicalize(link).ok();
    }
    let mut out = link.parent()?.to_path_buf();
    for c in target.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Some(out)
}

/// The tree being read: its sysfs root, canonical, to map real paths to
/// the host's names for them.
struct Tree<'a> {
    paths: &'a HostPaths,
    root: PathBuf,
    /// Whether udev keeps a database to read properties from.
    udev: bool,
}

impl Tree<'_> {
    /// `/sys/...` for a path inside the tree.
    fn host_path(&self, real: &Path) -> Option<String> {
        let rel = real.strip_prefix(&self.root).ok()?;
        Some(Path::new("/sys").join(rel).to_string_lossy().into_owned())
    }

    /// Every device directory under `bus/*/devices` and `class/*` (and
    /// `block` without `class/block`), canonical, without duplicates,
    /// sorted.
    fn device_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let mut scan = |parent: PathBuf| {
            let Ok(rd) = std::fs::read_dir(parent) else {
                return;
            };
            for e in rd.flatten() {
                if let Some(p) = resolve(&e.path())
                    && p.starts_with(&self.root)
                {
                    dirs.push(p);
                }
            }
        };
        for (top, sub) in [("bus", Some("devices")), ("class", None)] {
            let Ok(rd) = std::fs::read_dir(self.root.join(top)) else {
                continue;
            };
            let mut subsystems: Vec<_> = rd.flatten().map(|e| e.file_name()).collect();
            subsystems.sort();
            for s in subsystems {
                if IGNORED.iter().any(|i| s == *i) {
                    continue;
                }
                let mut d = self.root.join(top).join(&s);
                if let Some(sub) = sub {
                    d.push(sub);
                }
                scan(d);
            }
        }
        if !self.root.join("class/block").exists() {
            scan(self.root.join("block"));
        }
        dirs.sort();
        dirs.dedup();
        dirs
    }

    fn raw(&self, real: PathBuf) -> Option<Raw> {
        let path = self.host_path(&real)?;
        let sysname = real.file_name()?.to_string_lossy().into_owned();
        let subsystem = std::fs::read_link(real.join("subsystem"))
            .ok()?
            .file_name()?
            .to_string_lossy()
            .into_owned();
        let mut props = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(real.join("uevent")) {
            for l in text.lines() {
                if let Some((k, v)) = l.split_once('=') {
                    props.insert(k.to_string(), v.to_string());
                }
            }
        }
        props.insert("SUBSYSTEM".into(), subsystem.clone());
        if let Some(n) = props.get("DEVNAME").cloned() {
            // libudev shows the device node's full path.
            if !n.starts_with('/') {
                props.insert("DEVNAME".into(), format!("/dev/{n}"));
            }
        }
        let mut devlinks = Vec::new();
        let db_id = match (props.get("MAJOR"), props.get("MINOR"), props.get("IFINDEX")) {
            (Some(ma), Some(mi), _) => {
                let t = if subsystem == "block" { 'b' } else { 'c' };
                format!("{t}{ma}:{mi}")
            }
            (_, _, Some(i)) if subsystem == "net" => format!("n{i}"),
            _ => format!("+{subsystem}:{sysname}"),
        };
        let db = if self.udev {
            std::fs::read_to_string(self.paths.udev_data.join(db_id)).ok()
        } else {
            None
        };
        if let Some(text) = db {
            for l in text.lines() {
                if let Some(kv) = l.strip_prefix("E:") {
                    if let Some((k, v)) = kv.split_once('=') {
                        props.insert(k.to_string(), v.to_string());
                    }
                } else if let Some(link) = l.strip_prefix("S:") {
                    devlinks.push(format!("/dev/{link}"));
                }
            }
        }
        Some(Raw {
            real,
            path,
            sysname,
            subsystem,
            props,
            devlinks,
        })
    }
}

/// What `udevGetDeviceType` makes of a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pci,
    UsbDev,
    UsbInterface,
    Net,
    ScsiHost,
    ScsiTarget,
    Scsi,
    Storage,
    ScsiGeneric,
    Drm,
    /// A type libvirt knows but oxvirt does not describe (mdev, ccw,
    /// css, vdpa, AP, mdev parents).
    Other,
}

fn kind(raw: &Raw) -> Option<Kind> {
    if let Some(devtype) = raw.prop("DEVTYPE") {
        return match devtype {
            "usb_device" => Some(Kind::UsbDev),
            "usb_interface" => Some(Kind::UsbInterface),
            "scsi_host" => Some(Kind::ScsiHost),
            "scsi_target" => Some(Kind::ScsiTarget),
            "scsi_device" => Some(Kind::Scsi),
            "disk" => Some(Kind::Storage),
            "wlan" => Some(Kind::Net),
            "drm_minor" => Some(Kind::Drm),
            "ap_card" | "ap_queue" => Some(Kind::Other),
            _ => None,
        };
    }
    let mut k = None;
    if raw.props.contains_key("PCI_CLASS") {
        k = Some(Kind::Pci);
    }
    if raw.props.contains_key("INTERFACE") {
        k = Some(Kind::Net);
    }
    match raw.subsystem.as_str() {
        "scsi_generic" => Some(Kind::ScsiGeneric),
        "mdev" | "ccw" | "css" | "vdpa" | "matrix" | "mtty" => Some(Kind::Other),
        _ => k,
    }
}

/// The PCI configuration space, read a few bytes at a time as libvirt
/// reads it (every access may trap to a hypervisor): past the end of the
/// file (an unprivileged read, a short config) reads as zeros.
struct Config {
    file: std::fs::File,
    len: u64,
}

impl Config {
    fn open(p: &Path) -> Option<Config> {
        let file = std::fs::File::open(p).ok()?;
        let len = file.metadata().ok()?.len();
        Some(Config { file, len })
    }

    fn read<const N: usize>(&self, pos: usize) -> [u8; N] {
        use std::os::unix::fs::FileExt;
        let mut b = [0u8; N];
        if self.file.read_exact_at(&mut b, pos as u64).is_err() {
            return [0u8; N];
        }
        b
    }

    fn r8(&self, pos: usize) -> u8 {
        self.read::<1>(pos)[0]
    }

    fn r16(&self, pos: usize) -> u16 {
        u16::from_le_bytes(self.read::<2>(pos))
    }

    fn r32(&self, pos: usize) -> u32 {
        u32::from_le_bytes(self.read::<4>(pos))
    }

    /// `virPCIDeviceFindCapabilityOffset`: the capability's offset, or
    /// `None` when the list lacks it or cannot be walked.
    fn find_cap(&self, cap: u8) -> Option<usize> {
        const STATUS: usize = 0x06;
        const CAP_LIST: u16 = 0x10;
        if self.r16(STATUS) & CAP_LIST == 0 {
            return None;
        }
        let mut pos = self.r8(0x34);
        // The capability list cannot hold more entries than this.
        let mut ttl = 48;
        while pos >= 0x40 && pos != 0xff && ttl > 0 {
            if self.r8(pos as usize) == cap {
                return Some(pos as usize);
            }
            pos = self.r8(pos as usize + 1);
            ttl -= 1;
        }
        None
    }
}

/// `<pci-express>` as `udevProcessPCI` finds it, `None` for a
/// conventional PCI device.
fn pci_express(cfg: &Config) -> Option<PciExpress> {
    const CAP_ID_EXP: u8 = 0x10;
    let pos = match cfg.find_cap(CAP_ID_EXP) {
        Some(p) => p,
        // libvirt's guess when the list says nothing: a config space
        // other than 256 bytes is taken for PCI Express.
        None if cfg.len != 256 => return Some(PciExpress::default()),
        None => return None,
    };
    let flags = cfg.r16(pos + 2);
    let port_type = (flags & 0x00f0) >> 4;
    // Root complex integrated endpoints and event collectors have no link.
    if port_type == 0x9 || port_type == 0xa {
        return Some(PciExpress::default());
    }
    let cap = cfg.r32(pos + 0x0c);
    let sta = u32::from(cfg.r16(pos + 0x12));
    Some(PciExpress {
        link_cap: Some(PcieLink {
            port: (cap >> 24) as i32,
            speed: cap & 0xf,
            width: (cap & 0x3f0) >> 4,
        }),
        link_sta: Some(PcieLink {
            port: -1,
            speed: sta & 0xf,
            width: (sta & 0x3f0) >> 4,
        }),
    })
}

fn pci_addr_of_link(link: &Path) -> Option<PciAddr> {
    let target = std::fs::canonicalize(link).ok()?;
    PciAddr::parse(&target.file_name()?.to_string_lossy())
}

fn process_pci(tree: &Tree<'_>, raw: &Raw) -> Option<NodeDeviceDef> {
    let class = str_to_int(raw.prop("PCI_CLASS")?, 16)?;
    let addr = PciAddr::parse(&raw.sysname)?;
    let vendor = raw.attr_uint("vendor", 16).ok()?;
    let product = raw.attr_uint("device", 16).ok()?;
    let numa_node = match raw.attr("numa_node") {
        None => -1,
        Some(s) => str_to_int(&s, 10)?,
    };
    // SR-IOV: this function's physical function, or its virtual ones.
    let phys_function = pci_addr_of_link(&raw.real.join("physfn"));
    let max_virtual_functions = match raw.attr("sriov_totalvfs") {
        None => 0,
        Some(s) => u32::try_from(str_to_u64(&s)?).ok()?,
    };
    let mut virtual_functions = Vec::new();
    loop {
        let l = raw.real.join(format!("virtfn{}", virtual_functions.len()));
        if !l.exists() {
            break;
        }
        virtual_functions.push(pci_addr_of_link(&l)?);
    }
    let iommu_group = iommu_group(raw)?;
    let mdev_types = mdev_types(&raw.real)?;
    let mut hdr_type = 0;
    let mut pcie = None;
    if tree.paths.privileged {
        let cfg = Config::open(&raw.real.join("config"))?;
        hdr_type = cfg.r8(0x0e) & 0x7f;
        if hdr_type > 2 {
            return None;
        }
        pcie = pci_express(&cfg);
    }
    Some(NodeDeviceDef {
        name: raw.name(None),
        sysfs_path: Some(raw.path.clone()),
        devnode: raw.devnode(),
        devlinks: raw.devlinks.clone(),
        parent: None,
        driver: None,
        caps: vec![Cap::Pci(PciCap {
            class,
            addr,
            vendor,
            product,
            vendor_name: None,
            product_name: None,
            phys_function,
            max_virtual_functions,
            virtual_functions,
            hdr_type,
            mdev_types,
            iommu_group,
            numa_node,
            pci_express: pcie,
        })],
    })
}

/// The device's IOMMU group and its members in directory order;
/// `Some(None)` without a group, `None` when the group is unreadable.
fn iommu_group(raw: &Raw) -> Option<Option<(u32, Vec<PciAddr>)>> {
    let link = raw.real.join("iommu_group");
    let Ok(meta) = std::fs::symlink_metadata(&link) else {
        return Some(None);
    };
    if !meta.file_type().is_symlink() {
        return Some(None);
    }
    let target = std::fs::canonicalize(&link).ok()?;
    let group: u32 = target.file_name()?.to_str()?.parse().ok()?;
    let mut members = Vec::new();
    match std::fs::read_dir(link.join("devices")) {
        Ok(rd) => {
            for e in rd.flatten() {
                members.push(PciAddr::parse(&e.file_name().to_string_lossy())?);
            }
        }
        Err(_) => members.push(PciAddr::parse(&raw.sysname)?),
    }
    Some(Some((group, members)))
}

/// `virMediatedDeviceGetMdevTypes`: `mdev_supported_types/*`.
fn mdev_types(dev: &Path) -> Option<Vec<MdevType>> {
    let Ok(rd) = std::fs::read_dir(dev.join("mdev_supported_types")) else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        out.push(MdevType {
            id: e.file_name().to_string_lossy().into_owned(),
            name: read_attr(&p.join("name")),
            device_api: read_attr(&p.join("device_api"))?,
            available_instances: read_attr(&p.join("available_instances"))?
                .trim()
                .parse()
                .ok()?,
        });
    }
    Some(out)
}

/// `virNetDevGetLinkInfo`: the state (index into `IF_STATES`) and, when
/// up, the speed; `None` when libvirt would fail (and drop the device).
fn link_info(dev: &Path) -> Option<(usize, u32)> {
    let text = std::fs::read_to_string(dev.join("operstate")).ok()?;
    let (state, _) = text.split_once('\n')?;
    let idx = IF_STATES
        .iter()
        .position(|s| *s == state)
        .filter(|i| *i > 0)?;
    if IF_STATES[idx] != "up" {
        return Some((idx, 0));
    }
    match std::fs::read_to_string(dev.join("speed")) {
        Ok(s) => {
            let (num, _) = s.split_once('\n')?;
            Some((idx, str_to_uint(num, 10)?))
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some((idx, 0)),
        Err(_) => None,
    }
}

/// `virNetDevRDMAFeature`: an InfiniBand device on the same PCI
/// resources as the interface.
fn rdma(tree: &Tree<'_>, dev: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(tree.root.join("class/infiniband")) else {
        return false;
    };
    let Ok(mine) = std::fs::read(dev.join("device/resource")) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read(e.path().join("device/resource"))
            .ok()
            .as_ref()
            == Some(&mine)
    })
}

fn process_net(tree: &Tree<'_>, raw: &Raw) -> Option<NodeDeviceDef> {
    let ifname = raw.prop("INTERFACE")?.to_string();
    let address = raw.attr_string("address");
    raw.attr_uint("addr_len", 0).ok()?;
    let (link_state, link_speed) = link_info(&raw.real)?;
    let mut features = 0;
    if tree.paths.ethtool {
        features = ethtool::features(&ifname);
    }
    if rdma(tree, &raw.real) {
        features |= ethtool::bit::RDMA;
    }
    Some(NodeDeviceDef {
        name: raw.name(address.as_deref()),
        sysfs_path: Some(raw.path.clone()),
        devnode: raw.devnode(),
        devlinks: raw.devlinks.clone(),
        parent: None,
        driver: None,
        caps: vec![Cap::Net(NetCap {
            ifname,
            address,
            link_state,
            link_speed,
            features,
            wireless: raw.prop("DEVTYPE") == Some("wlan"),
        })],
    })
}

fn process_usb_dev(raw: &Raw) -> Option<NodeDeviceDef> {
    let bus = raw.prop_uint("BUSNUM", 10).ok()?;
    let device = raw.prop_uint("DEVNUM", 10).ok()?;
    let vendor = raw.prop_uint("ID_VENDOR_ID", 16).ok()?;
    let vendor_name = raw
        .prop("ID_VENDOR_FROM_DATABASE")
        .map(str::to_string)
        .or_else(|| raw.attr_string("manufacturer"));
    let product = raw.prop_uint("ID_MODEL_ID", 16).ok()?;
    let product_name = raw
        .prop("ID_MODEL_FROM_DATABASE")
        .map(str::to_string)
        .or_else(|| raw.attr_string("product"));
    Some(simple(
        raw,
        None,
        Cap::UsbDev(UsbDevCap {
            bus,
            device,
            vendor,
            product,
            vendor_name,
            product_name,
        }),
    ))
}

fn process_usb_if(raw: &Raw) -> Option<NodeDeviceDef> {
    Some(simple(
        raw,
        None,
        Cap::UsbInterface(UsbIfCap {
            number: raw.attr_uint("bInterfaceNumber", 16).ok()?,
            class: raw.attr_uint("bInterfaceClass", 16).ok()?,
            subclass: raw.attr_uint("bInterfaceSubClass", 16).ok()?,
            protocol: raw.attr_uint("bInterfaceProtocol", 16).ok()?,
        }),
    ))
}

fn process_scsi_host(tree: &Tree<'_>, raw: &Raw) -> Option<NodeDeviceDef> {
    let host = str_to_uint(raw.sysname.strip_prefix("host")?, 0)?;
    let unique_id = read_attr(
        &tree
            .root
            .join(format!("class/scsi_host/host{host}/unique_id")),
    )
    .and_then(|s| str_to_int(s.trim(), 10))
    .filter(|v| *v >= 0)
    .unwrap_or(-1);
    Some(simple(
        raw,
        None,
        Cap::ScsiHost(ScsiHostCap { host, unique_id }),
    ))
}

/// `udevGetSCSIType`.
fn scsi_type(t: u32) -> Option<&'static str> {
    Some(match t {
        0x00 => "disk",
        0x01 => "tape",
        0x03 => "processor",
        0x04 => "worm",
        0x05 => "cdrom",
        0x06 => "scanner",
        0x07 => "mod",
        0x08 => "changer",
        0x0d => "enclosure",
        0x0c => "raid",
        _ => return None,
    })
}

fn process_scsi(raw: &Raw) -> Option<NodeDeviceDef> {
    let mut parts = raw.sysname.split(':');
    let mut next = || str_to_uint(parts.next()?, 10);
    let (host, bus, target, lun) = (next()?, next()?, next()?, next()?);
    let scsi_type = match raw.attr("type") {
        None => None,
        Some(t) => scsi_type(str_to_uint(&t, 0)?).map(str::to_string),
    };
    Some(simple(
        raw,
        None,
        Cap::Scsi(ScsiCap {
            host,
            bus,
            target,
            lun,
            scsi_type,
        }),
    ))
}

/// `udevProcessStorage`: a disk, optical drive, floppy, SD card or DASD;
/// `None` for a block device libvirt cannot type (loop, zram, md...).
fn process_storage(raw: &Raw) -> Option<NodeDeviceDef> {
    let block = raw.devnode()?;
    let mut s = StorageCap {
        block: block.clone(),
        bus: raw.prop("ID_BUS").map(str::to_string),
        serial: raw.prop("ID_SERIAL").map(str::to_string),
        vendor: raw
            .attr_string("device/vendor")
            .map(|v| v.trim().to_string()),
        model: raw
            .attr_string("device/model")
            .map(|v| v.trim().to_string()),
        drive_type: raw.prop("ID_TYPE").map(str::to_string),
        ..Default::default()
    };
    if s.drive_type.as_deref().is_none_or(|t| t == "generic") {
        let guess = if raw.props.contains_key("ID_DRIVE_FLOPPY") {
            "floppy"
        } else if raw.props.contains_key("ID_CDROM") {
            "cd"
        } else if raw.props.contains_key("ID_DRIVE_FLASH_SD") {
            "sd"
        } else if block.starts_with("/dev/vd") || block.starts_with("/dev/nvme") {
            "disk"
        } else if block.starts_with("/dev/dasd") {
            "dasd"
        } else {
            return None;
        };
        s.drive_type = Some(guess.to_string());
    }
    let sized = |s: &mut StorageCap| -> Option<()> {
        s.num_blocks = raw.attr_u64("size").ok()?;
        s.logical_block_size = raw.attr_u64("queue/logical_block_size").ok()?;
        Some(())
    };
    let removable = |s: &mut StorageCap, has_media: bool| -> Option<()> {
        let r = match raw.attr("removable") {
            None => 0,
            Some(v) => str_to_int(&v, 0)?,
        };
        s.removable = r == 1;
        if has_media {
            s.media_available = true;
            s.media_label = raw.prop("ID_FS_LABEL").map(str::to_string);
            sized(s)?;
            s.removable_media_size = s.num_blocks.wrapping_mul(s.logical_block_size);
        }
        Some(())
    };
    match s.drive_type.as_deref() {
        Some("cd" | "cd/dvd") => {
            s.drive_type = Some("cdrom".into());
            let media = match raw.prop("ID_CDROM_MEDIA") {
                None => 0,
                Some(v) => str_to_int(v, 0)?,
            };
            removable(&mut s, media != 0)?;
        }
        Some("disk" | "sd") => {
            sized(&mut s)?;
            s.size = s.num_blocks.wrapping_mul(s.logical_block_size);
        }
        Some("floppy") => {
            let media = raw.props.contains_key("ID_FS_LABEL");
            removable(&mut s, media)?;
        }
        Some("dasd") => {
            s.serial = raw.attr_string("device/uid");
            sized(&mut s)?;
            s.size = s.num_blocks.wrapping_mul(s.logical_block_size);
        }
        _ => return None,
    }
    let serial = s.serial.clone();
    Some(simple(raw, serial.as_deref(), Cap::Storage(s)))
}

fn simple(raw: &Raw, extra: Option<&str>, cap: Cap) -> NodeDeviceDef {
    NodeDeviceDef {
        name: raw.name(extra),
        sysfs_path: Some(raw.path.clone()),
        devnode: raw.devnode(),
        devlinks: raw.devlinks.clone(),
        parent: None,
        driver: None,
        caps: vec![cap],
    }
}

fn describe(tree: &Tree<'_>, raw: &Raw) -> Option<NodeDeviceDef> {
    let mut d = match kind(raw)? {
        Kind::Pci => process_pci(tree, raw)?,
        Kind::Net => process_net(tree, raw)?,
        Kind::UsbDev => process_usb_dev(raw)?,
        Kind::UsbInterface => process_usb_if(raw)?,
        Kind::ScsiHost => process_scsi_host(tree, raw)?,
        Kind::ScsiTarget => simple(
            raw,
            None,
            Cap::ScsiTarget {
                name: raw.sysname.clone(),
            },
        ),
        Kind::Scsi => process_scsi(raw)?,
        Kind::Storage => process_storage(raw)?,
        Kind::ScsiGeneric => {
            let path = raw.devnode()?;
            simple(raw, None, Cap::ScsiGeneric { path })
        }
        Kind::Drm => {
            let minor = str_to_int(raw.prop("MINOR")?, 10)?;
            let kind = usize::try_from(minor >> 6).ok().filter(|k| *k < 3)?;
            simple(raw, None, Cap::Drm { kind })
        }
        Kind::Other => return None,
    };
    // `nodeDeviceUpdateDriverName`: the driver bound now.
    d.driver = std::fs::read_link(raw.real.join("driver"))
        .ok()
        .and_then(|t| Some(t.file_name()?.to_string_lossy().into_owned()));
    Some(d)
}

/// The `computer` device: DMI's description of the machine (x86), or
/// nothing but a zero UUID where the kernel has no DMI tables.
fn computer(tree: &Tree<'_>) -> NodeDeviceDef {
    let dmi = tree.root.join("devices/virtual/dmi/id");
    let mut sys = SystemCap {
        uuid: "00000000-0000-0000-0000-000000000000".into(),
        ..Default::default()
    };
    if dmi.is_dir() {
        let a = |n: &str| clean(read_attr(&dmi.join(n)));
        sys.product_name = a("product_name");
        sys.hw_vendor = a("sys_vendor");
        sys.hw_version = a("product_version");
        sys.hw_serial = a("product_serial");
        sys.fw_vendor = a("bios_vendor");
        sys.fw_version = a("bios_version");
        sys.fw_release_date = a("bios_date");
        sys.uuid = std::fs::read_to_string(dmi.join("product_uuid"))
            .ok()
            .and_then(|s| uuid::Uuid::parse_str(s.trim()).ok())
            .filter(|u| {
                let b = u.as_bytes();
                b.iter().any(|x| *x != b[0])
            })
            .map(|u| u.to_string())
            .unwrap_or_else(|| tree.paths.host_uuid.clone());
    }
    NodeDeviceDef {
        name: "computer".into(),
        sysfs_path: None,
        devnode: None,
        devlinks: Vec::new(),
        parent: None,
        driver: None,
        caps: vec![Cap::System(sys)],
    }
}

/// Every device of the host, `computer` first and the rest by name, each
/// with its parent: the nearest device above it in sysfs, else `computer`.
/// PCI vendor and product names are left out (see [`fill_pci_names`]).
pub fn scan(paths: &HostPaths) -> Vec<NodeDeviceDef> {
    let Ok(root) = std::fs::canonicalize(&paths.sysfs) else {
        let tree = Tree {
            paths,
            root: paths.sysfs.clone(),
            udev: false,
        };
        return vec![computer(&tree)];
    };
    let tree = Tree {
        paths,
        root,
        udev: paths.udev_data.is_dir(),
    };
    let mut found: Vec<NodeDeviceDef> = tree
        .device_dirs()
        .into_iter()
        .filter_map(|d| tree.raw(d))
        .filter_map(|raw| describe(&tree, &raw))
        .collect();
    // A later device of the same name replaces an earlier one, as in
    // libvirt's device list.
    let mut seen = std::collections::HashSet::new();
    found.reverse();
    found.retain(|d| seen.insert(d.name.clone()));
    let by_path: HashMap<String, String> = found
        .iter()
        .filter_map(|d| Some((d.sysfs_path.clone()?, d.name.clone())))
        .collect();
    for d in &mut found {
        let path = d.sysfs_path.clone().unwrap_or_default();
        let parent = Path::new(&path)
            .ancestors()
            .skip(1)
            .find_map(|a| by_path.get(a.to_str()?))
            .cloned();
        d.parent = Some(parent.unwrap_or_else(|| "computer".into()));
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut all = vec![computer(&tree)];
    all.extend(found.into_iter().filter(|d| d.name != "computer"));
    all
}

/// Names a PCI device's vendor and product from the PCI ID database.
pub fn fill_pci_names(paths: &HostPaths, def: &mut NodeDeviceDef) {
    for c in &mut def.caps {
        if let Cap::Pci(p) = c {
            let (v, d) = super::pciids::lookup(&paths.pci_ids, p.vendor, p.product);
            p.vendor_name = v;
            p.product_name = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_libvirt_parses_them() {
        assert_eq!(str_to_uint("-1", 10), Some(u32::MAX));
        assert_eq!(str_to_uint("1000", 10), Some(1000));
        assert_eq!(str_to_uint("0x8086", 16), Some(0x8086));
        assert_eq!(str_to_uint("8086", 16), Some(0x8086));
        assert_eq!(str_to_uint("010", 0), Some(8));
        assert_eq!(str_to_uint("", 10), None);
        assert_eq!(str_to_uint("4294967296", 10), None);
        assert_eq!(str_to_int("FFFF00", 16), Some(0xffff00));
        assert_eq!(str_to_int("-1", 10), Some(-1));
    }

    #[test]
    fn names_replace_every_other_byte() {
        assert_eq!(device_name("pci", "0000:00:1f.2", None), "pci_0000_00_1f_2");
        assert_eq!(
            device_name("net", "eth0", Some("02:fc:00:00:00:01")),
            "net_eth0_02_fc_00_00_00_01"
        );
        assert_eq!(device_name("usb", "1-1:1.0", None), "usb_1_1_1_0");
        assert_eq!(device_name("net", "wlé", None), "net_wl__");
        assert_eq!(
            device_name("block", "sda", Some("QEMU_HARDDISK_drive-scsi0-0-0-0")),
            "block_sda_QEMU_HARDDISK_drive_scsi0_0_0_0"
        );
    }
}
