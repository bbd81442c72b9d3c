//! `virDomainUpdateDeviceFlags` for what it is used for on removable
//! drives: a CD-ROM's medium ejected or changed (`virsh change-media`),
//! in the running guest (through its VMM, the image handed over as a
//! descriptor), in the persistent definition, or both. Graphics and
//! interfaces are handed on (`graphics.rs`, `device_config.rs`).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::xml::model::disk::{Disk, DiskDevice, DiskSource};
use crate::xml::tree;

use super::domain::DomainObj;
use super::{Driver, drives};

use super::vcpus::{AFFECT_CONFIG, AFFECT_LIVE};

const DEVICE_MODIFY_FORCE: u32 = 4;

impl Driver {
    /// `virDomainUpdateDeviceFlags`.
    pub async fn update_device_flags(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        super::check_flags(
            flags,
            AFFECT_LIVE | AFFECT_CONFIG | DEVICE_MODIFY_FORCE,
            "virDomainUpdateDeviceFlags",
        )?;
        let elem = tree::parse_document(xml)?;
        if elem.name == "graphics" {
            let _job = obj.begin_job().await?;
            return self.update_graphics(obj, &elem, flags).await;
        }
        if elem.name == "interface" {
            return self.update_interface(obj, xml, flags).await;
        }
        if elem.name != "disk" {
            return Err(Error::unsupported(format!(
                "live update of device '{}' is not supported",
                elem.name
            )));
        }
        let new = Disk::parse(&elem)?;
        let source = new.source.as_ref().and_then(|s| s.path.clone());
        let mut _job = obj.begin_job().await?;
        let (name, live, config_def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live, config) = super::metadata::targets(&d, flags)?;
            let config_def = if config {
                let mut def = d
                    .persistent
                    .clone()
                    .ok_or_else(|| Error::internal("no persistent definition"))?;
                let disk = def
                    .devices
                    .disks
                    .iter_mut()
                    .find(|x| x.target.dev == new.target.dev)
                    .ok_or_else(|| {
                        Error::invalid_arg(format!("target {} doesn't exist.", new.target.dev))
                    })?;
                set_source(disk, &new)?;
                Some(def)
            } else {
                None
            };
            let live = match d.live.as_ref().filter(|_| live) {
                None => None,
                Some(l) => {
                    let disk = l
                        .def
                        .devices
                        .disks
                        .iter()
                        .find(|x| x.target.dev == new.target.dev)
                        .ok_or_else(|| {
                            Error::internal(format!("disk '{}' not found", new.target.dev))
                        })?;
                    check_removable(disk)?;
                    let id = drives::drive_id(disk).ok_or_else(|| {
                        Error::unsupported(format!(
                            "disk '{}' is not on a drive oxvirt can change",
                            new.target.dev
                        ))
                    })?;
                    Some((l.vmm.clone(), id))
                }
            };
            (d.name.clone(), live, config_def)
        };
        if let Some((mut vmm, id)) = live {
            let image = match &source {
                Some(p) => {
                    super::resolve::check_readable(p, true)?;
                    Some(
                        std::fs::File::open(p)
                            .map_err(|e| Error::internal(format!("cannot open '{p}': {e}")))?,
                    )
                }
                None => None,
            };
            // The live definition first: a guest rebooting meanwhile (into
            // a new VMM, which takes its media from it) gets the new
            // medium either way; the VMM that answers is the current one.
            let old = swap_live_source(obj, &new.target.dev, new.source.clone());
            // A VMM that went away while the guest reboots has a
            // successor within a few seconds; it is asked in its turn.
            let mut vmms_tried = 0;
            loop {
                let Err(e) = vmm.change_media(&id, image.as_ref()).await else {
                    break;
                };
                vmms_tried += 1;
                let next = if vmms_tried < 3 {
                    // The supervisor starts the successor under the job
                    // lock: let go of it meanwhile.
                    drop(_job);
                    let next = next_vmm(obj, &vmm).await;
                    _job = obj.begin_job().await?;
                    next
                } else {
                    None
                };
                match next {
                    Some(n) => vmm = n,
                    None => {
                        swap_live_source(obj, &new.target.dev, old);
                        return Err(e);
                    }
                }
            }
            super::supervise::write_status(&self.inner, obj);
            tracing::info!(domain = name, drive = id, source = ?source, "medium changed");
        }
        if let Some(def) = config_def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
        }
        Ok(())
    }
}

/// The VMM that replaces `gone` when the guest reboots, if one comes
/// within 15 s and the domain still runs.
async fn next_vmm(obj: &DomainObj, gone: &Arc<super::vmm::Vmm>) -> Option<Arc<super::vmm::Vmm>> {
    for _ in 0..75 {
        let current = obj.data().live.as_ref().map(|l| l.vmm.clone())?;
        if !Arc::ptr_eq(&current, gone) {
            return Some(current);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    None
}

/// Puts `source` in the live definition's disk `dev`; returns the old one.
fn swap_live_source(obj: &DomainObj, dev: &str, source: Option<DiskSource>) -> Option<DiskSource> {
    let mut d = obj.data();
    let disk = d
        .live
        .as_mut()?
        .def
        .devices
        .disks
        .iter_mut()
        .find(|x| x.target.dev == dev)?;
    std::mem::replace(&mut disk.source, source.filter(|s| s.path.is_some()))
}

fn check_removable(disk: &Disk) -> Result<()> {
    if !matches!(disk.device, DiskDevice::Cdrom | DiskDevice::Floppy) {
        return Err(Error::unsupported(
            "disk source can be changed only in removable drives",
        ));
    }
    Ok(())
}

/// Gives `disk` the medium of `new`, keeping the rest of its definition.
fn set_source(disk: &mut Disk, new: &Disk) -> Result<()> {
    check_removable(disk)?;
    disk.source = new.source.clone().filter(|s: &DiskSource| s.path.is_some());
    Ok(())
}
