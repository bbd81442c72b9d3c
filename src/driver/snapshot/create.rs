//! `virDomainSnapshotCreateXML`: external snapshots (each disk goes on in
//! a new qcow2 overlay, its image frozen; with `--memspec`, the guest's
//! state saved beside them at the same instant), of running guests
//! through their VMM and of shut off domains offline; and metadata given
//! again (`REDEFINE`). Internal snapshots (inside qcow2 images) are not
//! taken: libvirt's error for raw images, oxvirt's for qcow2 ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;
use crate::vmm::protocol::{Command, InternalSnapshot};
use crate::vmm::storage::qcow2_snapshot::{self, Op};
use crate::xml::Domain;
use crate::xml::model::disk::{DiskDevice, DiskType};
use crate::xml::snapshot::{DomainSnapshot, Location, ParseMode, SnapshotDisk, SnapshotState};

use super::super::domain::DomainObj;
use super::super::fsutil::system_error;
use super::super::resolve::DiskRes;
use super::super::state::{DomainState, EventType, detail, shutoff};
use super::super::{Driver, Inner, check_flags, save, supervise};
use super::overlay;

/// `virDomainSnapshotCreateFlags`.
pub const REDEFINE: u32 = 1;
pub const CURRENT: u32 = 2;
pub const NO_METADATA: u32 = 4;
pub const HALT: u32 = 8;
pub const DISK_ONLY: u32 = 16;
pub const REUSE_EXT: u32 = 32;
pub const QUIESCE: u32 = 64;
pub const ATOMIC: u32 = 128;
pub const LIVE: u32 = 256;
pub const VALIDATE: u32 = 512;

const FLAG_NAMES: &[(u32, &str)] = &[
    (REDEFINE, "VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE"),
    (CURRENT, "VIR_DOMAIN_SNAPSHOT_CREATE_CURRENT"),
    (NO_METADATA, "VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA"),
    (HALT, "VIR_DOMAIN_SNAPSHOT_CREATE_HALT"),
    (DISK_ONLY, "VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY"),
    (QUIESCE, "VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE"),
    (LIVE, "VIR_DOMAIN_SNAPSHOT_CREATE_LIVE"),
];

fn flag_name(f: u32) -> &'static str {
    FLAG_NAMES
        .iter()
        .find(|(b, _)| *b == f)
        .map_or("?", |(_, n)| n)
}

/// libvirt's rules for what a snapshot selects (after its disks are
/// aligned), checked in libvirt's order so that the same error comes first.
fn check_selection(
    snap: &DomainSnapshot,
    def: &Domain,
    internal: bool,
    external: bool,
) -> Result<()> {
    let memory = snap.memory.unwrap_or(Location::No);
    if !internal && !external && memory == Location::No {
        return Err(unsupported("nothing selected for snapshot"));
    }
    // A writable disk left out keeps an internal snapshot from being whole.
    let left_out =
        snap.disks.iter().any(|d| {
            d.location == Some(Location::No)
                && def.devices.disks.iter().any(|dd| {
                    dd.target.dev == d.name && !dd.readonly && super::image_of(dd).is_some()
                })
        });
    if (memory == Location::Internal && !internal) || (internal && left_out) {
        return Err(unsupported(
            "internal and full system snapshots require all disks to be selected for snapshot",
        ));
    }
    if snap.state == Some(SnapshotState::DiskSnapshot) && !external {
        return Err(unsupported(
            "disk-only snapshots require at least one disk to be selected for snapshot",
        ));
    }
    if ((internal || memory == Location::Internal) && external)
        || (memory == Location::External && internal)
    {
        return Err(unsupported(
            "mixing internal and external targets for a snapshot is not yet supported",
        ));
    }
    Ok(())
}

/// The client library's flag rules, repeated for callers that skip it.
fn check_combination(flags: u32) -> Result<()> {
    let exclusive = |a: u32, b: u32| {
        crate::driver::exclusive_flags(flags, (a, flag_name(a)), (b, flag_name(b)))
    };
    let requires = |needs: u32, by: u32| {
        if flags & by != 0 && flags & needs == 0 {
            return Err(Error::invalid_arg(format!(
                "Flag '{}' is required by flag '{}'",
                flag_name(needs),
                flag_name(by)
            )));
        }
        Ok(())
    };
    requires(REDEFINE, CURRENT)?;
    exclusive(REDEFINE, NO_METADATA)?;
    exclusive(REDEFINE, HALT)?;
    requires(DISK_ONLY, QUIESCE)?;
    exclusive(LIVE, REDEFINE)
}

fn unsupported(detail: impl AsRef<str>) -> Error {
    Error::new(
        ErrorCode::ConfigUnsupported,
        ErrorDomain::DomainSnapshot,
        detail,
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The snapshot's `<disks>`: one entry per domain disk, in the domain's
/// order, the client's requests matched to them (by target or source),
/// the rest given the default location.
fn align_disks(snap: &mut DomainSnapshot, def: &Domain, default: Location) -> Result<()> {
    let mut asked = std::mem::take(&mut snap.disks);
    let mut out = Vec::with_capacity(def.devices.disks.len());
    for d in &def.devices.disks {
        let dev = &d.target.dev;
        let src = super::image_of(d).map(|(p, _)| p);
        let mut mine = asked
            .iter()
            .enumerate()
            .filter(|(_, a)| a.name == *dev || Some(a.name.as_str()) == src)
            .map(|(i, _)| i)
            .collect::<Vec<_>>();
        if mine.len() > 1 {
            return Err(unsupported(format!("disk '{dev}' specified twice")));
        }
        let entry = match mine.pop() {
            Some(i) => {
                let mut e = asked.remove(i);
                e.name = dev.clone();
                e
            }
            None => SnapshotDisk {
                name: dev.clone(),
                ..Default::default()
            },
        };
        out.push(entry);
    }
    if let Some(extra) = asked.first() {
        return Err(unsupported(format!("no disk named '{}'", extra.name)));
    }
    for (e, d) in out.iter_mut().zip(&def.devices.disks) {
        let removable = matches!(d.device, DiskDevice::Cdrom | DiskDevice::Floppy);
        if e.location.is_none() {
            e.location = Some(if removable || d.readonly || super::image_of(d).is_none() {
                Location::No
            } else {
                default
            });
        }
        if e.source.is_some() && e.location != Some(Location::External) {
            return Err(unsupported(format!(
                "file '{}' for disk '{}' requires use of external snapshot mode",
                e.source.as_deref().unwrap_or_default(),
                e.name
            )));
        }
    }
    snap.disks = out;
    Ok(())
}

/// One disk to continue in an overlay.
pub(super) struct OverlayPlan {
    pub dev: String,
    pub overlay: PathBuf,
    pub image: PathBuf,
    pub format: DiskFormat,
    /// Made by this operation (removed if it fails).
    pub create: bool,
}

/// The qcow2 images that take an internal snapshot, as (target, image);
/// libvirt's errors for raw images and pflash firmware.
fn plan_internal(snap: &DomainSnapshot, def: &Domain) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for (e, d) in snap.disks.iter().zip(&def.devices.disks) {
        if e.location != Some(Location::Internal) {
            continue;
        }
        match super::image_of(d) {
            Some((image, DiskFormat::Qcow2)) => out.push((e.name.clone(), PathBuf::from(image))),
            _ => {
                return Err(Error::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Qemu,
                    format!(
                        "internal snapshot for disk {} unsupported for storage type raw",
                        e.name
                    ),
                ));
            }
        }
    }
    let pflash = def.os.loader.as_ref().and_then(|l| l.loader_type)
        == Some(crate::xml::model::os::LoaderType::Pflash);
    if pflash && (!out.is_empty() || snap.memory == Some(Location::Internal)) {
        return Err(Error::new(
            ErrorCode::OperationUnsupported,
            ErrorDomain::Qemu,
            "internal snapshots of a VM with pflash based firmware are not supported",
        ));
    }
    Ok(out)
}

/// Where the guest state of an internal full system snapshot is kept (in
/// its metadata directory: oxvirt keeps no VM state in qcow2 images).
pub(super) fn internal_memory_path(inner: &Inner, domain: &str, snapshot: &str) -> PathBuf {
    super::metadata_dir(inner, domain).join(format!("{snapshot}.memory"))
}

/// Runs an internal snapshot operation on a shut off domain's image.
pub(super) async fn internal_offline(image: PathBuf, op: Op, name: String) -> Result<()> {
    let verb = match op {
        Op::Create => "create",
        Op::Apply => "apply",
        Op::Delete => "delete",
    };
    let what = format!(
        "cannot {verb} internal snapshot '{name}' of '{}'",
        image.display()
    );
    let run = overlay::blocking(move || {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&image)?;
        qcow2_snapshot::run(&f, op, &name)
    })
    .await?;
    run.map_err(|e| {
        Error::new(
            ErrorCode::OperationFailed,
            ErrorDomain::Qemu,
            format!("{what}: {e}"),
        )
    })
}

/// Runs an internal snapshot operation on a running domain's image, in
/// its VMM between two requests (the guest is paused by the caller).
pub(super) async fn internal_live(
    vmm: &super::super::vmm::Vmm,
    slot: u8,
    image: &Path,
    op: Op,
    name: &str,
) -> Result<()> {
    let chain = overlay::open_chain(image, DiskFormat::Qcow2)?;
    let internal = InternalSnapshot {
        op,
        name: name.to_string(),
    };
    vmm.disk_reopen(slot, &chain, Some(internal)).await
}

/// Names and checks the overlay of every external disk.
fn plan_overlays(snap: &mut DomainSnapshot, def: &Domain, flags: u32) -> Result<Vec<OverlayPlan>> {
    let mut plans: Vec<OverlayPlan> = Vec::new();
    for (e, d) in snap.disks.iter_mut().zip(&def.devices.disks) {
        if e.location != Some(Location::External) {
            continue;
        }
        let dev = e.name.clone();
        let Some((image, format)) = super::image_of(d) else {
            return Err(unsupported(format!(
                "cannot generate external snapshot name for disk '{dev}' without source"
            )));
        };
        let driver = e.driver.get_or_insert_with(|| "qcow2".into());
        if driver != "qcow2" {
            return Err(unsupported(format!(
                "external snapshot format for disk {dev} is unsupported: {driver}"
            )));
        }
        if e.source_type.as_deref().is_some_and(|t| t != "file") {
            return Err(unsupported(format!(
                "external snapshot of disk {dev} onto a '{}' target is not supported",
                e.source_type.as_deref().unwrap_or_default()
            )));
        }
        let overlay = match &e.source {
            Some(p) => p.clone(),
            None => {
                if d.disk_type != DiskType::File {
                    return Err(unsupported(format!(
                        "cannot generate external snapshot name for disk '{dev}' on a '{}' device",
                        d.disk_type
                    )));
                }
                let is_file = std::fs::metadata(image).is_ok_and(|m| m.is_file());
                if !is_file {
                    return Err(unsupported(format!(
                        "source for disk '{dev}' is not a regular file; refusing to generate \
                         external snapshot name"
                    )));
                }
                let name = overlay::default_name(image, &snap.name);
                if let Some(other) = plans.iter().find(|p| p.overlay == Path::new(&name)) {
                    return Err(unsupported(format!(
                        "cannot generate external snapshot name for disk '{dev}': collision \
                         with disk '{}'",
                        other.dev
                    )));
                }
                name
            }
        };
        e.source = Some(overlay.clone());
        e.source_type = Some("file".into());
        let existing = std::fs::metadata(&overlay);
        let create = match (&existing, flags & REUSE_EXT != 0) {
            (Ok(m), false) if m.is_file() && m.len() > 0 => {
                return Err(Error::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Qemu,
                    format!(
                        "external snapshot file for disk {dev} already exists and is not a \
                         block device: {overlay}"
                    ),
                ));
            }
            (Err(err), true) => {
                return Err(system_error(
                    format!("missing existing file for disk {dev}: {overlay}"),
                    err,
                ));
            }
            (_, reuse) => !reuse,
        };
        plans.push(OverlayPlan {
            dev,
            overlay: PathBuf::from(overlay),
            image: PathBuf::from(image),
            format,
            create,
        });
    }
    Ok(plans)
}

/// The errors of a quiesced snapshot: oxvirt talks to no guest agent.
fn quiesce_error(def: &Domain) -> Error {
    let has_agent = def
        .devices
        .channels
        .iter()
        .any(|c| c.target.name.as_deref() == Some("org.qemu.guest_agent.0"));
    if has_agent {
        Error::new(
            ErrorCode::AgentUnresponsive,
            ErrorDomain::Qemu,
            "QEMU guest agent is not connected",
        )
    } else {
        Error::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            "QEMU guest agent is not configured",
        )
    }
}

/// Points disk `dev` of `def` at `path` (a qcow2 overlay or, after a
/// commit, the image below it).
pub(super) fn set_disk_image(def: &mut Domain, dev: &str, path: &Path, format: DiskFormat) {
    if let Some(d) = def.devices.disks.iter_mut().find(|d| d.target.dev == dev) {
        if let Some(s) = d.source.as_mut() {
            s.path = Some(path.to_string_lossy().into_owned());
        }
        let fmt = match format {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        };
        d.driver.get_or_insert_with(Default::default).format = Some(fmt.into());
        d.backing_store = None;
    }
}

/// Points the running domain's disk `dev` (definition and status record)
/// and its persistent definition at `path`.
pub(super) fn record_disk_image(
    inner: &Inner,
    obj: &DomainObj,
    dev: &str,
    path: &Path,
    format: DiskFormat,
) -> Result<()> {
    let persistent = {
        let mut d = obj.data();
        if let Some(l) = d.live.as_mut() {
            set_disk_image(&mut l.def, dev, path, format);
            if let Some(r) = l.host.disks.iter_mut().find(|r| r.target == dev) {
                r.path = path.to_path_buf();
                r.format = format;
            }
        }
        d.persistent.as_mut().map(|p| {
            set_disk_image(p, dev, path, format);
            p.clone()
        })
    };
    supervise::write_status(inner, obj);
    if let Some(p) = persistent {
        inner.store.save(&p)?;
    }
    Ok(())
}

/// The VMM slot of a running domain's virtio disk `dev`.
pub(super) fn slot_of(disks: &[DiskRes], dev: &str) -> Result<u8> {
    disks
        .iter()
        .find(|r| r.target == dev)
        .map(|r| r.slot)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                format!(
                    "disk '{dev}' of a running domain can change images only on the virtio bus"
                ),
            )
        })
}

impl Driver {
    /// `virDomainSnapshotCreateXML`: the new snapshot's name.
    pub async fn snapshot_create(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
    ) -> Result<String> {
        check_flags(
            flags,
            REDEFINE
                | CURRENT
                | NO_METADATA
                | HALT
                | DISK_ONLY
                | REUSE_EXT
                | QUIESCE
                | ATOMIC
                | LIVE
                | VALIDATE,
            "qemuDomainSnapshotCreateXML",
        )?;
        // VALIDATE changes nothing: every definition is checked.
        check_combination(flags)?;
        let _job = obj.begin_job().await?;
        if flags & REDEFINE != 0 {
            return self.snapshot_redefine(obj, xml, flags);
        }
        self.snapshot_take(obj, xml, flags).await
    }

    /// `REDEFINE`: metadata given again (`snapshot-edit`, `snapshot-current
    /// NAME`, a snapshot moved between hosts); nothing else changes.
    fn snapshot_redefine(&self, obj: &Arc<DomainObj>, xml: &str, flags: u32) -> Result<String> {
        let (dom_name, uuid) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            (d.name.clone(), obj.uuid)
        };
        let mut snap = DomainSnapshot::parse(xml, ParseMode::Redefine, now())?;
        let invalid = |m: String| {
            Err(Error::new(
                ErrorCode::InvalidArg,
                ErrorDomain::DomainSnapshot,
                m,
            ))
        };
        if let Some(d) = &snap.domain
            && d.uuid != uuid
        {
            return invalid(format!(
                "definition for snapshot {} must use uuid {uuid}",
                snap.name
            ));
        }
        if flags & DISK_ONLY != 0 && snap.state != Some(SnapshotState::DiskSnapshot) {
            return invalid(format!(
                "disk-only flag for snapshot {} requires disk-snapshot state",
                snap.name
            ));
        }
        let mut all = super::load(&self.inner, &dom_name);
        if let Some(old) = all.iter().find(|s| s.name == snap.name) {
            let offline = |s: &DomainSnapshot| s.state == Some(SnapshotState::Shutoff);
            let disk_only = |s: &DomainSnapshot| s.state == Some(SnapshotState::DiskSnapshot);
            if offline(old) != offline(&snap) {
                return invalid(format!(
                    "cannot change between online and offline snapshot state in snapshot {}",
                    snap.name
                ));
            }
            if disk_only(old) != disk_only(&snap) {
                return invalid(format!(
                    "cannot change between disk only and full system in snapshot {}",
                    snap.name
                ));
            }
        }
        if let Some(p) = snap.parent.clone() {
            if p == snap.name {
                return invalid(format!("cannot set moment {p} as its own parent"));
            }
            if !all.iter().any(|s| s.name == p) {
                return invalid(format!("parent {p} for moment {} not found", snap.name));
            }
            if super::descendants(&all, &snap.name)
                .iter()
                .any(|d| d.name == p)
            {
                return invalid(format!("parent {p} would create cycle to {}", snap.name));
            }
        }
        let was_current = all.iter().any(|s| s.name == snap.name && s.current);
        snap.current = was_current && flags & CURRENT == 0;
        super::write(&self.inner, &dom_name, &snap)?;
        all.retain(|s| s.name != snap.name);
        all.push(snap.clone());
        if flags & CURRENT != 0 {
            super::set_current(&self.inner, &dom_name, &mut all, Some(&snap.name))?;
        }
        Ok(snap.name)
    }

    async fn snapshot_take(&self, obj: &Arc<DomainObj>, xml: &str, flags: u32) -> Result<String> {
        let inner = &self.inner;
        let (dom_name, state, def, persistent, transient, live) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let live = d
                .live
                .as_ref()
                .map(|l| (l.vmm.clone(), l.host.disks.clone()));
            let def = d
                .current_def()
                .cloned()
                .ok_or_else(|| Error::internal("domain without a definition"))?;
            (
                d.name.clone(),
                d.state,
                def,
                d.persistent.clone(),
                d.persistent.is_none(),
                live,
            )
        };
        let active = live.is_some();
        if transient && flags & HALT != 0 {
            return Err(Error::operation_invalid(
                "cannot halt after transient domain snapshot",
            ));
        }
        let mut snap = DomainSnapshot::parse(xml, ParseMode::Create, now())?;
        let disk_only = flags & DISK_ONLY != 0;
        if (!active || disk_only) && !matches!(snap.memory, None | Some(Location::No)) {
            return Err(Error::new(
                ErrorCode::XmlError,
                ErrorDomain::DomainSnapshot,
                "memory state cannot be saved with offline or disk-only snapshot",
            ));
        }
        if flags & LIVE != 0 && (!active || snap.memory != Some(Location::External)) {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Qemu,
                "live snapshot creation is supported only during full system snapshots",
            ));
        }
        let running_state = if state == DomainState::Paused {
            SnapshotState::Paused
        } else {
            SnapshotState::Running
        };
        let default = if disk_only {
            snap.state = Some(if active {
                SnapshotState::DiskSnapshot
            } else {
                SnapshotState::Shutoff
            });
            snap.memory = Some(Location::No);
            Location::External
        } else if snap.memory == Some(Location::External) {
            snap.state = Some(running_state);
            Location::External
        } else {
            if active && snap.memory == Some(Location::No) {
                return Err(Error::new(
                    ErrorCode::OperationUnsupported,
                    ErrorDomain::Qemu,
                    "internal snapshot of a running VM must include the memory state",
                ));
            }
            snap.state = Some(if active {
                running_state
            } else {
                SnapshotState::Shutoff
            });
            snap.memory = Some(if active {
                Location::Internal
            } else {
                Location::No
            });
            Location::Internal
        };
        align_disks(&mut snap, &def, default)?;
        let external = snap
            .disks
            .iter()
            .any(|d| d.location == Some(Location::External));
        let internal = snap
            .disks
            .iter()
            .any(|d| d.location == Some(Location::Internal));
        check_selection(&snap, &def, internal, external)?;
        let internals = plan_internal(&snap, &def)?;
        let plans = plan_overlays(&mut snap, &def, flags)?;
        if let Some((_, disks)) = &live {
            for dev in plans
                .iter()
                .map(|p| &p.dev)
                .chain(internals.iter().map(|(d, _)| d))
            {
                slot_of(disks, dev)?;
            }
        }
        if flags & QUIESCE != 0 {
            return Err(quiesce_error(&def));
        }
        let mut all = super::load(inner, &dom_name);
        if flags & NO_METADATA == 0 && all.iter().any(|s| s.name == snap.name) {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Domain,
                format!("domain moment {} already exists", snap.name),
            ));
        }
        snap.parent = all.iter().find(|s| s.current).map(|s| s.name.clone());
        snap.domain = Some(def.clone());
        snap.inactive_domain = persistent.filter(|_| active);

        if snap.memory == Some(Location::Internal) {
            snap.memory_file = None;
        }
        let memory = match snap.memory {
            Some(Location::External) => snap.memory_file.clone().map(PathBuf::from),
            Some(Location::Internal) => {
                super::super::fsutil::ensure_dir_mode(
                    &super::metadata_dir(inner, &dom_name),
                    0o700,
                )?;
                Some(internal_memory_path(inner, &dom_name, &snap.name))
            }
            _ => None,
        };
        match &live {
            Some((vmm, disks)) => {
                let running = state == DomainState::Running;
                take_running(
                    vmm,
                    disks,
                    &plans,
                    &internals,
                    memory.as_deref(),
                    &snap,
                    running,
                )
                .await?
            }
            None => take_offline(&plans, &internals, &snap.name).await?,
        }
        for p in &plans {
            record_disk_image(inner, obj, &p.dev, &p.overlay, DiskFormat::Qcow2)?;
        }
        if flags & HALT != 0
            && let Some((vmm, _)) = &live
        {
            supervise::stop_as(inner, obj, vmm, shutoff::FROM_SNAPSHOT).await?;
            inner.emit(
                obj.uuid,
                &dom_name,
                EventType::Stopped,
                detail::STOPPED_FROM_SNAPSHOT,
            );
        }
        if flags & NO_METADATA == 0 {
            super::write(inner, &dom_name, &snap)?;
            let name = snap.name.clone();
            all.push(snap);
            super::set_current(inner, &dom_name, &mut all, Some(&name))?;
            return Ok(name);
        }
        Ok(snap.name)
    }
}

/// Makes the overlays and internal snapshots of a shut off domain; undoes
/// what it made when a step fails.
async fn take_offline(
    plans: &[OverlayPlan],
    internals: &[(String, PathBuf)],
    name: &str,
) -> Result<()> {
    let mut made: Vec<&Path> = Vec::new();
    let mut taken: Vec<&Path> = Vec::new();
    let mut result = Ok(());
    for p in plans.iter().filter(|p| p.create) {
        result = overlay::create(p.overlay.clone(), p.image.clone(), p.format).await;
        if result.is_err() {
            break;
        }
        made.push(&p.overlay);
    }
    if result.is_ok() {
        for (_, image) in internals {
            result = internal_offline(image.clone(), Op::Create, name.to_string()).await;
            if result.is_err() {
                break;
            }
            taken.push(image);
        }
    }
    if result.is_err() {
        for m in made {
            let _ = std::fs::remove_file(m);
        }
        for t in taken {
            let _ = internal_offline(t.to_path_buf(), Op::Delete, name.to_string()).await;
        }
    }
    result
}

/// Takes the snapshot of a running guest: paused, each disk moved onto
/// its overlay, the state saved when asked, then running on as it was.
/// On failure the disks go back to their images and the overlays made
/// and the memory file are removed.
async fn take_running(
    vmm: &Arc<super::super::vmm::Vmm>,
    disks: &[DiskRes],
    plans: &[OverlayPlan],
    internals: &[(String, PathBuf)],
    memory: Option<&Path>,
    snap: &DomainSnapshot,
    was_running: bool,
) -> Result<()> {
    if was_running {
        vmm.control.run(&Command::Pause).await?;
    }
    let mut moved: Vec<&OverlayPlan> = Vec::new();
    let mut made: Vec<&Path> = Vec::new();
    let mut result = Ok(());
    for p in plans {
        if p.create {
            if let Err(e) = overlay::create(p.overlay.clone(), p.image.clone(), p.format).await {
                result = Err(e);
                break;
            }
            made.push(&p.overlay);
        }
        let reopened = match overlay::open_chain(&p.overlay, DiskFormat::Qcow2) {
            Ok(chain) => vmm.disk_reopen(slot_of(disks, &p.dev)?, &chain, None).await,
            Err(e) => Err(e),
        };
        if let Err(e) = reopened {
            result = Err(e);
            break;
        }
        moved.push(p);
    }
    let mut taken: Vec<&(String, PathBuf)> = Vec::new();
    if result.is_ok() {
        for t in internals {
            let (dev, image) = t;
            result = internal_live(vmm, slot_of(disks, dev)?, image, Op::Create, &snap.name).await;
            if result.is_err() {
                break;
            }
            taken.push(t);
        }
    }
    if let Some(path) = memory.filter(|_| result.is_ok()) {
        result = save_memory(vmm, path, snap, was_running).await;
    }
    if result.is_err() {
        for (dev, image) in taken {
            let undo =
                internal_live(vmm, slot_of(disks, dev)?, image, Op::Delete, &snap.name).await;
            if let Err(e) = undo {
                tracing::error!(disk = dev, "cannot drop the internal snapshot again: {e}");
            }
        }
        for p in moved {
            let back = match overlay::open_chain(&p.image, p.format) {
                Ok(chain) => vmm.disk_reopen(slot_of(disks, &p.dev)?, &chain, None).await,
                Err(e) => Err(e),
            };
            if let Err(e) = back {
                tracing::error!(disk = p.dev, "cannot go back to {}: {e}", p.image.display());
            }
        }
        for m in made {
            let _ = std::fs::remove_file(m);
        }
    }
    if was_running && let Err(e) = vmm.control.run(&Command::Resume).await {
        return result.and(Err(Error::new(
            ErrorCode::OperationFailed,
            ErrorDomain::Qemu,
            format!("resuming after snapshot failed: {}", e.message),
        )));
    }
    result
}

/// The guest's state (and the definition it ran with) into `path`, in
/// the save image format.
async fn save_memory(
    vmm: &super::super::vmm::Vmm,
    path: &Path,
    snap: &DomainSnapshot,
    was_running: bool,
) -> Result<()> {
    let def = snap
        .domain
        .as_ref()
        .ok_or_else(|| Error::internal("snapshot without a domain"))?;
    save::write_image(vmm, path, def, was_running, false, None).await
}
