//! `virDomainSnapshotDelete`: the metadata (children move up to the
//! parent, the current mark goes to the parent) and, for an external
//! snapshot whose overlays the domain runs on, a block commit of each
//! overlay into the image below it, which the domain then uses again
//! (through its VMM when it runs). The memory file stays, as in libvirt.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;
use crate::vmm::protocol::Command;
use crate::xml::snapshot::{DomainSnapshot, Location};

use super::super::domain::DomainObj;
use super::super::state::DomainState;
use super::super::{Driver, Inner, check_flags, image};
use super::create::{
    internal_live, internal_memory_path, internal_offline, record_disk_image, slot_of,
};
use super::{disk_image, overlay};
use crate::vmm::storage::qcow2_snapshot::Op;

/// `virDomainSnapshotDeleteFlags`.
pub const CHILDREN: u32 = 1;
pub const METADATA_ONLY: u32 = 2;
pub const CHILDREN_ONLY: u32 = 4;

fn unsupported(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::ConfigUnsupported, ErrorDomain::Qemu, detail)
}

/// One overlay to merge down into the image below it.
struct Merge {
    dev: String,
    overlay: PathBuf,
    base: PathBuf,
    base_format: DiskFormat,
    /// The image the domain uses for the disk: the overlay itself, or an
    /// image above it (a later snapshot's overlay).
    top: PathBuf,
    top_format: DiskFormat,
    /// Images whose backing file is the overlay: they go onto the base.
    rebase: Vec<PathBuf>,
}

/// The backing file of a qcow2 image, as its chain resolves it.
fn backing_of(p: &Path) -> Option<PathBuf> {
    image::backing_chain(p, DiskFormat::Qcow2)
        .ok()?
        .into_iter()
        .nth(1)
        .map(|(b, _)| b)
}

/// The overlays of `snap` to merge, checked as libvirt checks them: each
/// must be the image the domain uses now, and no other snapshot may have
/// frozen it.
fn plan(
    all: &[DomainSnapshot],
    snap: &DomainSnapshot,
    current: &crate::xml::Domain,
) -> Result<Vec<Merge>> {
    let mut out = Vec::new();
    let def = snap
        .domain
        .as_ref()
        .ok_or_else(|| Error::internal(format!("snapshot '{}' has no domain", snap.name)))?;
    for d in &snap.disks {
        if d.location != Some(Location::External) {
            continue;
        }
        let Some(overlay) = d.source.clone() else {
            continue;
        };
        let (base, base_format) = disk_image(def, &d.name).ok_or_else(|| {
            Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!("failed to find disk '{}' in snapshot VM XML", d.name),
            )
        })?;
        // The overlay must be in the chain the domain uses now.
        let (top, top_format) = disk_image(current, &d.name).ok_or_else(|| {
            Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "VM disk source and snapshot disk source are not the same",
            )
        })?;
        let overlay_path = PathBuf::from(&overlay);
        let chain = image::backing_chain(Path::new(&top), top_format).unwrap_or_default();
        if !chain.iter().any(|(p, _)| *p == overlay_path) {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "VM disk source and snapshot disk source are not the same",
            ));
        }
        // Every image known to stand on the overlay: in the domain's chain,
        // and the overlays of the other snapshots.
        let mut rebase: Vec<PathBuf> = chain.iter().map(|(p, _)| p.clone()).collect();
        rebase.extend(
            all.iter()
                .filter(|s| s.name != snap.name)
                .flat_map(|s| s.disks.iter().filter_map(|x| x.source.clone()))
                .map(PathBuf::from),
        );
        rebase.sort();
        rebase.dedup();
        rebase.retain(|p| *p != overlay_path && backing_of(p).as_ref() == Some(&overlay_path));
        if let Some(other) = all
            .iter()
            .find(|s| s.name != snap.name && refers_to(s, Path::new(&base), &overlay_path))
        {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                format!(
                    "cannot delete external snapshot '{}': snapshot '{}' depends on the image \
                     '{base}' of disk '{}'",
                    snap.name, other.name, d.name
                ),
            ));
        }
        out.push(Merge {
            dev: d.name.clone(),
            overlay: overlay_path,
            base: PathBuf::from(base),
            base_format,
            top: PathBuf::from(top),
            top_format,
            rebase,
        });
    }
    Ok(out)
}

/// Whether `s` keeps an image on top of `image` other than through
/// `overlay` (which is merged into `image`, and whose dependents move onto
/// it): a disk image it froze that is `image` or lies above it, or an
/// overlay it made above it. (An overlay that is `image` itself is merely
/// where `s`'s changes went.)
fn refers_to(s: &DomainSnapshot, image: &Path, overlay: &Path) -> bool {
    let above = |p: &str, f: DiskFormat, from: usize| {
        image::backing_chain(Path::new(p), f).is_ok_and(|chain| {
            chain.iter().skip(from).any(|(c, _)| c == image)
                && !chain.iter().any(|(c, _)| c == overlay)
        })
    };
    let froze = s.domain.iter().any(|d| {
        d.devices
            .disks
            .iter()
            .filter_map(|x| disk_image(d, &x.target.dev))
            .any(|(p, f)| above(&p, f, 0))
    });
    let made = s
        .disks
        .iter()
        .filter_map(|d| d.source.as_deref())
        .any(|p| above(p, DiskFormat::Qcow2, 1));
    froze || made
}

/// Takes `name` out of the tree: its children move up to its parent and
/// so does the current mark.
fn discard_metadata(
    inner: &Inner,
    domain: &str,
    all: &mut Vec<DomainSnapshot>,
    name: &str,
) -> Result<()> {
    let Some(pos) = all.iter().position(|s| s.name == name) else {
        return Ok(());
    };
    let gone = all.remove(pos);
    for s in all.iter_mut().filter(|s| s.parent.as_deref() == Some(name)) {
        s.parent = gone.parent.clone();
        super::write(inner, domain, s)?;
    }
    if gone.current {
        let parent = gone.parent.clone();
        super::set_current(inner, domain, all, parent.as_deref())?;
    }
    super::remove(inner, domain, name)
}

impl Driver {
    /// `virDomainSnapshotDelete`.
    pub async fn snapshot_delete(
        &self,
        obj: &Arc<DomainObj>,
        name: &str,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            CHILDREN | METADATA_ONLY | CHILDREN_ONLY,
            "qemuDomainSnapshotDelete",
        )?;
        crate::driver::exclusive_flags(
            flags,
            (CHILDREN, "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN"),
            (CHILDREN_ONLY, "VIR_DOMAIN_SNAPSHOT_DELETE_CHILDREN_ONLY"),
        )?;
        let inner = &self.inner;
        let _job = obj.begin_job().await?;
        let (dom_name, current_def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let def = d
                .current_def()
                .cloned()
                .ok_or_else(|| Error::internal("domain without a definition"))?;
            (d.name.clone(), def)
        };
        let mut all = super::load(inner, &dom_name);
        let snap = super::find(&all, name)?.clone();
        let descendants: Vec<String> = super::descendants(&all, name)
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let with_children = flags & (CHILDREN | CHILDREN_ONLY) != 0;
        let metadata_only = flags & METADATA_ONLY != 0;
        if !metadata_only && with_children {
            let kinds: Vec<bool> = descendants
                .iter()
                .filter_map(|n| all.iter().find(|s| &s.name == n))
                .map(DomainSnapshot::is_external)
                .collect();
            match (kinds.iter().any(|e| *e), kinds.iter().any(|e| !*e)) {
                (true, true) => {
                    return Err(unsupported(
                        "deletion of external and internal children disk snapshots not supported",
                    ));
                }
                (true, false) => {
                    return Err(unsupported(
                        "deletion of external children disk snapshots not supported",
                    ));
                }
                _ => {}
            }
            if flags & CHILDREN != 0 && snap.is_external() && !descendants.is_empty() {
                return Err(unsupported(
                    "deletion of external disk snapshots with children not supported",
                ));
            }
        }
        if !metadata_only && flags & CHILDREN_ONLY == 0 && snap.is_external() {
            let merges = plan(&all, &snap, &current_def)?;
            self.merge_overlays(obj, &merges).await?;
            // The merge pointed other snapshots at the merged image.
            all = super::load(inner, &dom_name);
        }
        // Deepest first, so that each goes with its children moved up.
        let mut doomed: Vec<String> = if with_children {
            descendants.into_iter().rev().collect()
        } else {
            Vec::new()
        };
        if flags & CHILDREN_ONLY == 0 {
            doomed.push(name.to_string());
        }
        for n in doomed {
            if !metadata_only && let Some(s) = all.iter().find(|s| s.name == n && !s.is_external())
            {
                let s = s.clone();
                self.drop_internal(obj, &dom_name, &s).await?;
            }
            discard_metadata(inner, &dom_name, &mut all, &n)?;
        }
        Ok(())
    }

    /// Drops an internal snapshot from each image that holds it (through
    /// the VMM for an image a running guest writes to) and its memory.
    async fn drop_internal(
        &self,
        obj: &Arc<DomainObj>,
        domain: &str,
        snap: &DomainSnapshot,
    ) -> Result<()> {
        let Some(def) = snap.domain.as_ref() else {
            return Ok(());
        };
        let live = {
            let d = obj.data();
            d.live
                .as_ref()
                .map(|l| (l.vmm.clone(), l.host.disks.clone()))
        };
        for d in snap
            .disks
            .iter()
            .filter(|d| d.location == Some(Location::Internal))
        {
            let Some((image, _)) = disk_image(def, &d.name) else {
                continue;
            };
            let image = PathBuf::from(image);
            let in_use = live.as_ref().and_then(|(vmm, disks)| {
                disks
                    .iter()
                    .find(|r| r.target == d.name && r.path == image)
                    .map(|r| (vmm.clone(), r.slot))
            });
            match in_use {
                Some((vmm, slot)) => {
                    internal_live(&vmm, slot, &image, Op::Delete, &snap.name).await?
                }
                None if image.exists() => {
                    internal_offline(image, Op::Delete, snap.name.clone()).await?
                }
                None => {}
            }
        }
        let memory = internal_memory_path(&self.inner, domain, &snap.name);
        if let Err(e) = std::fs::remove_file(&memory)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", memory.display());
        }
        Ok(())
    }

    /// Points every snapshot that froze `from` (for disk `dev`) at `to`,
    /// which now holds its data.
    fn repoint_snapshots(
        &self,
        obj: &DomainObj,
        dev: &str,
        from: &Path,
        to: &Path,
        format: DiskFormat,
    ) -> Result<()> {
        let domain = obj.name();
        for mut s in super::load(&self.inner, &domain) {
            let uses = |d: &Option<crate::xml::Domain>| {
                d.as_ref()
                    .and_then(|d| disk_image(d, dev))
                    .is_some_and(|(p, _)| Path::new(&p) == from)
            };
            if !uses(&s.domain) && !uses(&s.inactive_domain) {
                continue;
            }
            for d in [s.domain.as_mut(), s.inactive_domain.as_mut()]
                .into_iter()
                .flatten()
            {
                if disk_image(d, dev).is_some_and(|(p, _)| Path::new(&p) == from) {
                    super::create::set_disk_image(d, dev, to, format);
                }
            }
            super::write(&self.inner, &domain, &s)?;
        }
        Ok(())
    }

    /// Commits each overlay into the image below it and points the domain
    /// back at that image; a running guest is paused meanwhile and its VMM
    /// lets go of the overlay before the commit and opens the merged image
    /// after it.
    async fn merge_overlays(&self, obj: &Arc<DomainObj>, merges: &[Merge]) -> Result<()> {
        if merges.is_empty() {
            return Ok(());
        }
        let inner = &self.inner;
        let live = {
            let d = obj.data();
            d.live.as_ref().map(|l| {
                (
                    l.vmm.clone(),
                    l.host.disks.clone(),
                    d.state == DomainState::Running,
                )
            })
        };
        if let Some((vmm, _, running)) = &live
            && *running
        {
            vmm.control.run(&Command::Pause).await?;
        }
        let mut result = Ok(());
        for m in merges {
            let step = async {
                let on_top = m.top == m.overlay;
                // The domain goes on with the base when the overlay was its
                // image, else with the same image over a shorter chain.
                let (next, next_format) = if on_top {
                    (&m.base, m.base_format)
                } else {
                    (&m.top, m.top_format)
                };
                let vmm_slot = match &live {
                    Some((vmm, disks, _)) => Some((vmm, slot_of(disks, &m.dev)?)),
                    None => None,
                };
                if let Some((vmm, slot)) = vmm_slot {
                    // Reopened on itself: the VMM's cached metadata is
                    // written out and nothing of the images below stays
                    // cached across the commit.
                    vmm.disk_reopen(slot, &overlay::open_chain(&m.top, m.top_format)?, None)
                        .await?;
                }
                overlay::commit(m.overlay.clone(), m.base.clone(), m.base_format).await?;
                for r in &m.rebase {
                    let (r, base) = (r.clone(), m.base.clone());
                    let format = m.base_format;
                    overlay::blocking(move || overlay::set_backing(&r, &base, format))
                        .await?
                        .map_err(|e| Error::internal(format!("cannot rebase: {e}")))?;
                }
                if let Some((vmm, slot)) = vmm_slot {
                    vmm.disk_reopen(slot, &overlay::open_chain(next, next_format)?, None)
                        .await?;
                }
                if on_top {
                    record_disk_image(inner, obj, &m.dev, &m.base, m.base_format)?;
                }
                self.repoint_snapshots(obj, &m.dev, &m.overlay, &m.base, m.base_format)?;
                if let Err(e) = std::fs::remove_file(&m.overlay) {
                    tracing::warn!("cannot remove {}: {e}", m.overlay.display());
                }
                Ok::<(), Error>(())
            };
            if let Err(e) = step.await {
                result = Err(Error::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Qemu,
                    format!(
                        "block commit failed while deleting disk '{}' snapshot: '{}'",
                        m.dev, e.message
                    ),
                ));
                break;
            }
        }
        if let Some((vmm, _, running)) = &live
            && *running
        {
            vmm.control.run(&Command::Resume).await?;
        }
        result
    }
}
