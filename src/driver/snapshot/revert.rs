//! `virDomainRevertToSnapshot` for external snapshots, as libvirt does
//! it since it reverts them: the domain is stopped, each disk the
//! snapshot froze gets a fresh overlay (the snapshot's own when no later
//! snapshot froze it, else a new one beside it), the definition becomes
//! the snapshot's, and the guest comes back from the memory the snapshot
//! kept, or boots, or stays off, as the snapshot and flags say.

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;
use crate::xml::Domain;
use crate::xml::snapshot::{DomainSnapshot, Location, SnapshotState};

use super::super::domain::DomainObj;
use super::super::state::{EventType, detail, paused, running, shutoff};
use super::super::supervise::{self, Launch};
use super::super::vmm::StartFrom;
use super::super::{Driver, check_flags, lifecycle, save, save_image};
use super::create::{internal_memory_path, internal_offline, set_disk_image};
use super::overlay;
use crate::vmm::storage::qcow2_snapshot::Op;

/// `virDomainSnapshotRevertFlags`.
pub const RUNNING: u32 = 1;
pub const PAUSED: u32 = 2;
pub const FORCE: u32 = 4;
pub const RESET_NVRAM: u32 = 8;

fn risky(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::SnapshotRevertRisky, ErrorDomain::Qemu, detail)
}

/// Whether some snapshot froze `path` (took an overlay on top of it), so
/// that it must stay as it is.
fn frozen(all: &[DomainSnapshot], path: &str) -> bool {
    all.iter().any(|s| {
        s.disks.iter().any(|d| {
            d.location == Some(Location::External)
                && s.domain.as_ref().is_some_and(|dom| {
                    dom.devices.disks.iter().any(|x| {
                        x.target.dev == d.name
                            && x.source.as_ref().and_then(|src| src.path.as_deref()) == Some(path)
                    })
                })
        })
    })
}

/// The overlay a reverted disk continues in: the snapshot's own, or the
/// first free `OVERLAY-N` when a later snapshot froze it.
fn overlay_for(all: &[DomainSnapshot], own: &str) -> PathBuf {
    if !frozen(all, own) {
        return PathBuf::from(own);
    }
    (1..)
        .map(|n| PathBuf::from(format!("{own}-{n}")))
        .find(|p| !p.exists() && !frozen(all, &p.to_string_lossy()))
        .unwrap_or_else(|| PathBuf::from(own))
}

/// The disks to give new overlays: (target, overlay, frozen image).
fn plan(
    all: &[DomainSnapshot],
    snap: &DomainSnapshot,
    def: &Domain,
) -> Result<Vec<(String, PathBuf, PathBuf, DiskFormat)>> {
    let mut out = Vec::new();
    for d in &snap.disks {
        if d.location != Some(Location::External) {
            continue;
        }
        let Some(own) = d.source.as_deref() else {
            continue;
        };
        let (image, format) = super::disk_image(def, &d.name).ok_or_else(|| {
            Error::internal(format!(
                "failed to find disk '{}' in snapshot VM XML",
                d.name
            ))
        })?;
        out.push((
            d.name.clone(),
            overlay_for(all, own),
            PathBuf::from(image),
            format,
        ));
    }
    Ok(out)
}

impl Driver {
    /// `virDomainRevertToSnapshot`.
    pub async fn snapshot_revert(
        &self,
        obj: &Arc<DomainObj>,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            RUNNING | PAUSED | FORCE | RESET_NVRAM,
            "qemuDomainRevertToSnapshot",
        )?;
        crate::driver::exclusive_flags(
            flags,
            (RUNNING, "VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING"),
            (PAUSED, "VIR_DOMAIN_SNAPSHOT_REVERT_PAUSED"),
        )?;
        let inner = &self.inner;
        let _job = obj.begin_job().await?;
        let (dom_name, transient, live_vmm) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            (
                d.name.clone(),
                d.persistent.is_none(),
                d.live.as_ref().map(|l| l.vmm.clone()),
            )
        };
        let mut all = super::load(inner, &dom_name);
        let snap = super::find(&all, name)?.clone();
        let with_memory = snap.has_memory();
        if transient {
            if !with_memory && flags & (RUNNING | PAUSED) == 0 {
                return Err(Error::operation_invalid(
                    "transient domain needs to request run or pause to revert to inactive snapshot",
                ));
            }
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                "reverting a transient domain to a snapshot is not supported",
            ));
        }
        let Some(mut def) = snap.domain.clone() else {
            return Err(risky(format!(
                "snapshot '{name}' lacks domain '{dom_name}' rollback info"
            )));
        };
        if flags & FORCE == 0 && !with_memory && save::has_managed_image(inner, &dom_name) {
            return Err(risky(
                "snapshot without memory state, removal of existing managed saved state \
                 strongly recommended to avoid corruption",
            ));
        }
        if snap.state == Some(SnapshotState::PmSuspended) {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                "qemu doesn't support reversion of snapshot taken in PMSUSPENDED state",
            ));
        }
        let memory_path = match snap.memory {
            _ if !with_memory => None,
            Some(Location::Internal) => Some(internal_memory_path(inner, &dom_name, name)),
            _ => snap.memory_file.as_ref().map(PathBuf::from),
        };
        let memory = match &memory_path {
            Some(p) => Some(save_image::open(p)?),
            None => None,
        };
        let disks = plan(&all, &snap, &def)?;
        let internals: Vec<PathBuf> = snap
            .disks
            .iter()
            .filter(|d| d.location == Some(Location::Internal))
            .filter_map(|d| super::disk_image(&def, &d.name).map(|(p, _)| p))
            .map(PathBuf::from)
            .collect();

        if let Some(vmm) = live_vmm {
            supervise::stop_as(inner, obj, &vmm, shutoff::FROM_SNAPSHOT).await?;
            inner.emit(
                obj.uuid,
                &dom_name,
                EventType::Stopped,
                detail::STOPPED_FROM_SNAPSHOT,
            );
        }
        let mut persistent = snap.inactive_domain.clone().unwrap_or_else(|| def.clone());
        def.name = dom_name.clone();
        persistent.name = dom_name.clone();
        for image in &internals {
            internal_offline(image.clone(), Op::Apply, name.to_string()).await?;
        }
        let mut reverted = snap.clone();
        for (dev, overlay_path, image, format) in &disks {
            overlay::create(overlay_path.clone(), image.clone(), *format).await?;
            set_disk_image(&mut def, dev, overlay_path, DiskFormat::Qcow2);
            set_disk_image(&mut persistent, dev, overlay_path, DiskFormat::Qcow2);
            // The snapshot's overlay is the one the domain goes on in now
            // (its first one stays, as a later snapshot's image).
            if let Some(d) = reverted.disks.iter_mut().find(|d| &d.name == dev) {
                d.source = Some(overlay_path.to_string_lossy().into_owned());
            }
        }
        if reverted != snap {
            super::write(inner, &dom_name, &reverted)?;
            if let Some(s) = all.iter_mut().find(|s| s.name == reverted.name) {
                *s = reverted;
            }
        }
        inner.store.save(&persistent)?;
        obj.data().persistent = Some(persistent);
        inner.emit(
            obj.uuid,
            &dom_name,
            EventType::Defined,
            detail::DEFINED_FROM_SNAPSHOT,
        );

        let runs = if flags & RUNNING != 0 {
            true
        } else if flags & PAUSED != 0 {
            false
        } else {
            snap.state == Some(SnapshotState::Running)
        };
        let start = |restore_fd: Option<i32>, paused_start: bool| Launch {
            from: StartFrom {
                restore_fd,
                paused: paused_start,
            },
            running_reason: running::FROM_SNAPSHOT,
            paused_reason: paused::FROM_SNAPSHOT,
        };
        if let Some((file, _head)) = memory {
            let launch = start(Some(file.as_raw_fd()), !runs);
            Box::pin(lifecycle::start_locked(inner, obj, Some(def), launch)).await?;
            drop(file);
        } else if flags & (RUNNING | PAUSED) != 0 {
            let launch = start(None, flags & PAUSED != 0);
            Box::pin(lifecycle::start_locked(inner, obj, Some(def), launch)).await?;
        }
        super::set_current(inner, &dom_name, &mut all, Some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::snapshot::SnapshotDisk;

    fn snap_on(name: &str, image: &str, overlay: &str) -> DomainSnapshot {
        let dom = crate::xml::parse_domain(&format!(
            "<domain type='kvm'><name>d</name><memory>65536</memory><os><type>hvm</type></os>\
             <devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/>\
             <source file='{image}'/><target dev='vda' bus='virtio'/></disk></devices></domain>"
        ))
        .unwrap();
        DomainSnapshot {
            name: name.into(),
            disks: vec![SnapshotDisk {
                name: "vda".into(),
                location: Some(Location::External),
                source: Some(overlay.into()),
                ..Default::default()
            }],
            domain: Some(dom),
            ..Default::default()
        }
    }

    #[test]
    fn a_frozen_overlay_is_kept_and_a_new_one_named() {
        let s1 = snap_on("s1", "/i/d.qcow2", "/i/d.s1");
        assert_eq!(
            overlay_for(std::slice::from_ref(&s1), "/i/d.s1"),
            PathBuf::from("/i/d.s1")
        );
        let s2 = snap_on("s2", "/i/d.s1", "/i/d.s2");
        let all = [s1, s2];
        assert!(frozen(&all, "/i/d.s1") && !frozen(&all, "/i/d.s2"));
        assert_eq!(overlay_for(&all, "/i/d.s1"), PathBuf::from("/i/d.s1-1"));
    }
}
