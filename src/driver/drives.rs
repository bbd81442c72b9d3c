//! `<disk>` elements on storage controllers rather than virtio-blk: disks
//! and CD-ROMs on SATA (an AHCI controller; IDE drives go on one too, as
//! oxvirt's platform has no IDE controller) and CD-ROMs on SCSI
//! (virtio-scsi).
//! Each `<controller>` index of a kind becomes one controller in the VMM,
//! at the PCI slot its address names or the next free one.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::vmm::config::{
    CdromConfig, DeviceConfig, DiskFormat, SataConfig, SataDiskConfig, ScsiConfig,
};
use crate::xml::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::controller::ControllerType;
use crate::xml::model::disk::{Disk, DiskBus, DiskDevice, DiskType};

use super::devices::{SlotMap, not_supported};
use super::resolve::check_readable;

/// The controller kinds drives sit on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Sata,
    Ide,
    Scsi,
}

impl Kind {
    fn of(bus: DiskBus) -> Option<Kind> {
        match bus {
            DiskBus::Sata => Some(Kind::Sata),
            DiskBus::Ide => Some(Kind::Ide),
            DiskBus::Scsi => Some(Kind::Scsi),
            _ => None,
        }
    }

    fn controller_type(self) -> ControllerType {
        match self {
            Kind::Sata => ControllerType::Sata,
            Kind::Ide => ControllerType::Ide,
            Kind::Scsi => ControllerType::Scsi,
        }
    }
}

/// Whether `disk` goes on a storage controller (not virtio-blk).
pub fn on_controller(disk: &Disk) -> bool {
    Kind::of(disk.bus()).is_some()
}

/// The name the VMM knows the drive of `disk` by: its alias, else
/// libvirt's alias for its drive address (`sata0-0-2`, `ide0-1-0`,
/// `scsi0-0-0-0`).
pub fn drive_id(disk: &Disk) -> Option<String> {
    if let Some(a) = &disk.alias {
        return Some(a.clone());
    }
    let kind = Kind::of(disk.bus())?;
    let Some(Address::Drive {
        controller,
        bus,
        target,
        unit,
    }) = disk.address
    else {
        return None;
    };
    Some(match kind {
        Kind::Sata => format!("sata{controller}-0-{unit}"),
        Kind::Ide => format!("ide{controller}-{bus}-{unit}"),
        Kind::Scsi => format!("scsi{controller}-0-{target}-{unit}"),
    })
}

/// Puts the media `def` names into the CD-ROM drives of `config`: a
/// guest that reboots (into a new VMM) keeps what was inserted or ejected
/// while it ran, as the drive of a machine that reboots does.
pub fn apply_media(config: &mut crate::vmm::config::VmConfig, def: &Domain) {
    for d in &mut config.devices {
        let cdroms = match d {
            DeviceConfig::Sata(s) => &mut s.cdroms,
            DeviceConfig::Scsi(s) => &mut s.cdroms,
            _ => continue,
        };
        for cd in cdroms {
            let disk = def
                .devices
                .disks
                .iter()
                .find(|x| x.device == DiskDevice::Cdrom && drive_id(x) == cd.id);
            if let Some(disk) = disk {
                cd.path = disk
                    .source
                    .as_ref()
                    .and_then(|s| s.path.clone())
                    .map(PathBuf::from);
            }
        }
    }
}

/// Drives collected from the disks, by controller.
#[derive(Default)]
pub struct Drives {
    controllers: BTreeMap<(Kind, u32), Controller>,
}

/// The drives of one controller.
#[derive(Default)]
struct Controller {
    cdroms: Vec<CdromConfig>,
    disks: Vec<SataDiskConfig>,
}

impl Drives {
    /// Adds `disk` (on SATA, IDE or SCSI) at boot position `boot_index`.
    pub fn add(&mut self, disk: &Disk, boot_index: Option<u16>) -> Result<()> {
        let bus = disk.bus();
        let kind = Kind::of(bus).ok_or_else(|| not_supported("disk bus", bus))?;
        let hard_disk = match disk.device {
            DiskDevice::Cdrom => false,
            DiskDevice::Disk if kind != Kind::Scsi => true,
            other => {
                return Err(Error::unsupported(format!(
                    "disk '{}': a {other} on bus '{bus}' is not supported",
                    disk.target.dev
                )));
            }
        };
        if !matches!(disk.disk_type, DiskType::File | DiskType::Block) {
            return Err(not_supported("disk type", disk.disk_type));
        }
        let format = disk.driver.as_ref().and_then(|d| d.format.as_deref());
        let format = match format {
            None | Some("raw") => DiskFormat::Raw,
            Some("qcow2") if hard_disk => DiskFormat::Qcow2,
            Some(other) => return Err(not_supported("disk format", other)),
        };
        let path = disk.source.as_ref().and_then(|s| s.path.clone());
        if let Some(p) = &path {
            check_readable(p, true)?;
            if hard_disk {
                super::image::check_backing_chain(std::path::Path::new(p), format)?;
            }
        }
        let Some(Address::Drive {
            controller,
            bus: drive_bus,
            target,
            unit,
        }) = disk.address
        else {
            return Err(Error::internal(format!(
                "disk '{}' has no drive address",
                disk.target.dev
            )));
        };
        let unit = match kind {
            Kind::Sata => unit,
            // Two channels of two devices each, on ports 0-3.
            Kind::Ide => drive_bus * 2 + unit,
            Kind::Scsi => target.max(unit),
        };
        let ctrl = self.controllers.entry((kind, controller)).or_default();
        let unit =
            u16::try_from(unit).map_err(|_| Error::unsupported("drive unit out of range"))?;
        let taken = ctrl.cdroms.iter().map(|d| d.unit);
        if taken
            .chain(ctrl.disks.iter().map(|d| d.unit))
            .any(|u| u == unit)
        {
            return Err(Error::unsupported(format!(
                "disk '{}': its drive address is taken by another disk",
                disk.target.dev
            )));
        }
        if hard_disk {
            let path = path.ok_or_else(|| {
                Error::new(
                    crate::error::ErrorCode::NoSource,
                    crate::error::ErrorDomain::Domain,
                    format!("missing source information for device {}", disk.target.dev),
                )
            })?;
            ctrl.disks.push(SataDiskConfig {
                unit,
                path: PathBuf::from(path),
                format,
                readonly: disk.readonly,
                serial: disk.serial.clone(),
                boot_index,
                id: drive_id(disk),
            });
        } else {
            ctrl.cdroms.push(CdromConfig {
                unit,
                path: path.map(PathBuf::from),
                boot_index,
                id: drive_id(disk),
            });
        }
        Ok(())
    }

    /// One VMM controller per `<controller>` that holds drives.
    pub fn into_devices(self, def: &Domain, slots: &mut SlotMap) -> Result<Vec<DeviceConfig>> {
        let mut out = Vec::new();
        for ((kind, index), Controller { cdroms, disks }) in self.controllers {
            let ctrl = def
                .devices
                .controllers
                .iter()
                .find(|c| c.ctrl_type == kind.controller_type() && c.index == Some(index));
            if kind == Kind::Scsi {
                debug_assert!(disks.is_empty(), "SCSI hard disks are refused in add()");
                let model = ctrl.and_then(|c| c.model.as_deref());
                if !matches!(model, None | Some("virtio-scsi")) {
                    return Err(not_supported(
                        "SCSI controller model",
                        model.unwrap_or_default(),
                    ));
                }
            }
            let what = format!("{} controller {index}", kind.controller_type());
            let pci_slot =
                Some(slots.controller_slot(ctrl.and_then(|c| c.address.as_ref()), &what)?);
            out.push(match kind {
                Kind::Scsi => DeviceConfig::Scsi(ScsiConfig { pci_slot, cdroms }),
                Kind::Sata | Kind::Ide => DeviceConfig::Sata(SataConfig {
                    pci_slot,
                    cdroms,
                    disks,
                }),
            });
        }
        Ok(out)
    }
}
