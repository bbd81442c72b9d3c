//! Each device element of a definition → its VMM device, with the
//! checks that say what the VMM cannot do (`VIR_ERR_CONFIG_UNSUPPORTED`)
//! and the PCI slot it gets on the VMM's root bus.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::{
    BalloonConfig, BlockConfig, ConsoleConfig, DeviceConfig, DiskFormat, NetConfig, NetModel,
    RngConfig, VsockConfig,
};
use crate::vmm::virtio::net::MAX_QUEUE_PAIRS;
use crate::xml::Domain;
use crate::xml::defaults::pci::every_address;
use crate::xml::mac::MacAddr;
use crate::xml::model::address::Address;
use crate::xml::model::chardev::Chardev;
use crate::xml::model::controller::ControllerType;
use crate::xml::model::devices::Devices;
use crate::xml::model::disk::{Disk, DiskBus, DiskDevice, DiskType};
use crate::xml::model::interface::{Interface, InterfaceType, is_virtio_model};
use crate::xml::model::virtio_misc::{BalloonModel, Memballoon, Rng, RngBackendModel, Vsock};

use super::hostnet::NetPlan;
use super::image;
use super::network::PortTarget;
use super::resolve::{DiskRes, char_backend, check_readable};

/// First slot given to a device that names none (as the VMM does).
const FIRST_AUTO_SLOT: u8 = 3;

pub(super) fn not_supported(what: &str, value: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("{what} '{value}' is not supported"))
}

/// PCI slots of the VMM's root bus: those the definition names are
/// taken; devices without an address get the first free one.
pub struct SlotMap {
    used: [bool; 32],
}

impl SlotMap {
    pub fn new(def: &Domain) -> SlotMap {
        let mut used = [false; 32];
        used[0] = true;
        for a in every_address(def) {
            if let Some(p) = a.pci().filter(|p| p.domain == 0 && p.bus == 0) {
                used[usize::from(p.slot & 31)] = true;
            }
        }
        SlotMap { used }
    }

    /// The slot of a storage controller at `address`. libvirt puts q35's
    /// built-in SATA controller at function 2 of slot 0x1f; the VMM puts
    /// each controller at function 0 of the slot its address names.
    pub fn controller_slot(&mut self, address: Option<&Address>, what: &str) -> Result<u8> {
        match address {
            Some(Address::Pci { addr, .. })
                if addr.domain == 0 && addr.bus == 0 && addr.slot != 0 && addr.slot < 32 =>
            {
                self.used[usize::from(addr.slot)] = true;
                Ok(addr.slot)
            }
            other => self.slot(other, what),
        }
    }

    /// The slot of a device at `address` (`what` names it in errors).
    pub fn slot(&mut self, address: Option<&Address>, what: &str) -> Result<u8> {
        match address {
            Some(Address::Pci { addr, .. }) => {
                if addr.domain != 0 || addr.bus != 0 || addr.function != 0 || addr.slot == 0 {
                    return Err(Error::unsupported(format!(
                        "{what}: only PCI addresses on bus 0, function 0 are supported"
                    )));
                }
                Ok(addr.slot)
            }
            Some(_) => Err(Error::unsupported(format!(
                "{what}: only PCI addresses are supported"
            ))),
            None => {
                let free = (FIRST_AUTO_SLOT..32)
                    .chain(1..FIRST_AUTO_SLOT)
                    .find(|&s| !self.used[usize::from(s)])
                    .ok_or_else(|| Error::internal("No more available PCI slots"))?;
                self.used[usize::from(free)] = true;
                Ok(free)
            }
        }
    }
}

/// `<disk>` → virtio-blk.
pub fn disk(d: &Disk, slots: &mut SlotMap) -> Result<(BlockConfig, DiskRes)> {
    if d.device != DiskDevice::Disk {
        return Err(not_supported("disk device", d.device));
    }
    if !matches!(d.disk_type, DiskType::File | DiskType::Block) {
        return Err(not_supported("disk type", d.disk_type));
    }
    if d.bus() != DiskBus::Virtio {
        return Err(not_supported("disk bus", d.bus()));
    }
    if d.transient {
        return Err(Error::unsupported(format!(
            "transient disk '{}' is not supported",
            d.target.dev
        )));
    }
    let path = d
        .source
        .as_ref()
        .and_then(|s| s.path.clone())
        .ok_or_else(|| {
            Error::new(
                ErrorCode::NoSource,
                ErrorDomain::Domain,
                format!("missing source information for device {}", d.target.dev),
            )
        })?;
    let format = match d.driver.as_ref().and_then(|x| x.format.as_deref()) {
        None | Some("raw") => DiskFormat::Raw,
        Some("qcow2") => DiskFormat::Qcow2,
        Some(other) => return Err(not_supported("disk format", other)),
    };
    check_readable(&path, true)?;
    image::check_backing_chain(Path::new(&path), format)?;
    let slot = slots.slot(d.address.as_ref(), &format!("disk '{}'", d.target.dev))?;
    Ok((
        BlockConfig {
            path: PathBuf::from(&path),
            readonly: d.readonly,
            serial: d.serial.clone(),
            format,
            pci_slot: Some(slot),
            boot_index: None,
        },
        DiskRes {
            target: d.target.dev.clone(),
            path: PathBuf::from(path),
            format,
            slot,
        },
    ))
}

/// Interface children that ask for host plumbing the VMM has no part in
/// and oxvirt does not do.
const IFACE_OK_CHILDREN: &[&str] = &["rom"];

/// `<interface>` → virtio-net or an e1000, with the tap still to be made.
/// `network` is where the virtual network of a `type='network'`
/// interface attaches it.
pub fn interface(
    i: &Interface,
    index: usize,
    network: Option<&PortTarget>,
    slots: &mut SlotMap,
) -> Result<(NetConfig, NetPlan)> {
    let (bridge, managed) = match i.iface_type {
        InterfaceType::Bridge => (i.source.as_ref().and_then(|s| s.bridge.clone()), true),
        InterfaceType::Ethernet => (None, i.target_managed.as_deref() != Some("no")),
        InterfaceType::Network => match network {
            Some(t) => (Some(t.bridge.clone()), true),
            None => return Err(Error::internal("interface's network was not resolved")),
        },
        // User-mode networking: passt, whatever the backend asked for
        // (oxvirt has no slirp).
        InterfaceType::User => (None, false),
        other => return Err(not_supported("interface type", other)),
    };
    let model = match i.model.as_deref() {
        None => NetModel::Virtio,
        Some(m) if is_virtio_model(m) => NetModel::Virtio,
        Some("e1000") => NetModel::E1000,
        Some(m) => return Err(not_supported("interface model", m)),
    };
    if let Some(d) = i.driver_name.as_deref().filter(|d| *d != "qemu") {
        return Err(not_supported("interface driver", d));
    }
    // Queue pairs: each is a queue of a multi-queue tap; 2N queues, the
    // control queue and the configuration vector need an MSI-X vector each.
    let queues = match i.driver_queues {
        None | Some(0) => 1,
        Some(q) => u16::try_from(q)
            .ok()
            .filter(|q| *q <= MAX_QUEUE_PAIRS)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "interface queues '{q}' is not supported (at most {MAX_QUEUE_PAIRS})"
                ))
            })?,
    };
    if let Some(l) = i.link_state.as_deref().filter(|l| *l != "up") {
        return Err(not_supported("interface link state", l));
    }
    if i.mtu.is_some() {
        return Err(Error::unsupported("interface <mtu> is not supported"));
    }
    let user = i.iface_type == InterfaceType::User;
    // `<backend>` picks the user-mode stack, which is always passt here.
    if let Some(e) = i
        .extra
        .iter()
        .find(|e| !(IFACE_OK_CHILDREN.contains(&e.name.as_str()) || (user && e.name == "backend")))
    {
        return Err(Error::unsupported(format!(
            "interface <{}> is not supported",
            e.name
        )));
    }
    if user && i.driver_queues.is_some_and(|q| q > 1) {
        return Err(Error::unsupported(
            "multiple queues are not supported with interface type 'user'",
        ));
    }
    if !managed && !user && i.target_dev.is_none() {
        return Err(Error::internal(
            "target dev must be supplied when managed='no'",
        ));
    }
    let mac = i.mac.unwrap_or_else(MacAddr::generate);
    let slot = slots.slot(i.address.as_ref(), &format!("interface 'net{index}'"))?;
    Ok((
        NetConfig {
            model,
            tap_fd: None,
            tap_fds: Vec::new(),
            tap_name: None,
            mac: Some(mac.to_string()),
            pci_slot: Some(slot),
            queues: (queues > 1).then_some(queues),
            stream_fd: None,
            link_down: i.link_state.as_deref() == Some("down"),
        },
        NetPlan {
            index,
            device: 0,
            ifname: i.target_dev.clone(),
            mac,
            bridge,
            network: network.and(i.source.as_ref().and_then(|s| s.network.clone())),
            passt: user,
            managed,
            slot,
            queues,
        },
    ))
}

/// Whether `c` is a console on virtio-serial (not the serial port's).
pub fn is_virtio_console(c: &Chardev) -> bool {
    c.target.target_type.as_deref() == Some("virtio")
}

/// The address of the virtio-serial controller a virtio console is on
/// (the VMM's console function takes its slot).
pub fn console_controller_address<'a>(devs: &'a Devices, con: &Chardev) -> Option<&'a Address> {
    let controller = match &con.address {
        Some(Address::VirtioSerial { controller, .. }) => *controller,
        _ => 0,
    };
    devs.controllers
        .iter()
        .find(|c| c.ctrl_type == ControllerType::VirtioSerial && c.index.unwrap_or(0) == controller)
        .and_then(|c| c.address.as_ref())
}

/// `<console><target type='virtio'/>` → virtio-console on the slot of
/// its virtio-serial controller. One such console at most.
pub fn console(def: &Domain, slots: &mut SlotMap) -> Result<Option<DeviceConfig>> {
    let mut virtio = def.devices.consoles.iter().filter(|c| is_virtio_console(c));
    let Some(con) = virtio.next() else {
        return Ok(None);
    };
    if virtio.next().is_some() {
        return Err(Error::unsupported("only one virtio console is supported"));
    }
    let address = console_controller_address(&def.devices, con);
    let slot = slots.slot(address, "virtio-serial controller")?;
    Ok(Some(DeviceConfig::Console(ConsoleConfig {
        backend: char_backend(con)?,
        pci_slot: Some(slot),
    })))
}

/// Whether a `<memballoon>` is one the VMM provides.
pub fn balloon_is_virtio(b: &Memballoon) -> bool {
    matches!(
        b.model,
        BalloonModel::Virtio
            | BalloonModel::VirtioTransitional
            | BalloonModel::VirtioNonTransitional
    )
}

/// `<memballoon>` → virtio-balloon (none for model 'none').
pub fn balloon(b: &Memballoon, slots: &mut SlotMap) -> Result<Option<DeviceConfig>> {
    if b.model == BalloonModel::None {
        return Ok(None);
    }
    if !balloon_is_virtio(b) {
        return Err(not_supported("memballoon model", b.model));
    }
    if b.autodeflate == Some(true) {
        return Err(Error::unsupported(
            "memballoon autodeflate is not supported",
        ));
    }
    if b.free_page_reporting == Some(true) {
        return Err(Error::unsupported(
            "memballoon free page reporting is not supported",
        ));
    }
    let slot = slots.slot(b.address.as_ref(), "memballoon")?;
    Ok(Some(DeviceConfig::Balloon(BalloonConfig {
        pci_slot: Some(slot),
        stats_period: b.stats_period,
    })))
}

/// `<rng>` → virtio-rng (fed by getrandom(2) whatever the random source).
pub fn rng(r: &Rng, slots: &mut SlotMap) -> Result<DeviceConfig> {
    match r.backend {
        RngBackendModel::Random => {
            if let Some(p) = r.backend_path.as_deref() {
                check_readable(p, false)?;
            }
        }
        RngBackendModel::Builtin => {}
        other => return Err(not_supported("rng backend", other)),
    }
    if r.rate_bytes.is_some() || r.rate_period.is_some() {
        return Err(Error::unsupported("rng rate limiting is not supported"));
    }
    let slot = slots.slot(r.address.as_ref(), "rng")?;
    Ok(DeviceConfig::Rng(RngConfig {
        pci_slot: Some(slot),
    }))
}

/// The first CID ≥ 3 nobody uses.
fn free_cid(in_use: &[u32]) -> u32 {
    (3..u32::MAX).find(|c| !in_use.contains(c)).unwrap_or(3)
}

/// `<vsock>` → virtio-vsock bridged to unix sockets at `uds`.
pub fn vsock(
    v: &Vsock,
    uds: PathBuf,
    in_use: &[u32],
    slots: &mut SlotMap,
) -> Result<(DeviceConfig, u32)> {
    let cid = match (v.cid_auto, v.cid) {
        (Some(true), _) | (None, None) => free_cid(in_use),
        (_, Some(c)) => {
            if in_use.contains(&c) {
                return Err(Error::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Qemu,
                    format!("guest CID {c} is already in use"),
                ));
            }
            c
        }
        (Some(false), None) => {
            return Err(Error::xml("guest CID is required when auto='no'"));
        }
    };
    let slot = slots.slot(v.address.as_ref(), "vsock")?;
    Ok((
        DeviceConfig::Vsock(VsockConfig {
            cid: u64::from(cid),
            uds_path: uds,
            pci_slot: Some(slot),
        }),
        cid,
    ))
}
