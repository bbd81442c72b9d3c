//! Domain snapshots (`virDomainSnapshot*`): their metadata, kept as
//! libvirt keeps it (one file per snapshot under `snapshot/DOMAIN/`, the
//! current one marked `<active>1</active>`, re-read on every call so that
//! a restarted daemon sees what it wrote), the tree they form, and the
//! queries on it. Taking, reverting to and deleting snapshots are
//! `create.rs`, `revert.rs` and `delete.rs`; the images they make and
//! merge are `overlay.rs`.

mod create;
mod delete;
mod overlay;
mod revert;

use std::path::PathBuf;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;
use crate::xml::snapshot::{DomainSnapshot, ParseMode, SnapshotState};

use super::domain::DomainObj;
use super::fsutil::{Durability, ensure_dir_mode, system_error, write_atomic};
use super::{Driver, Inner, check_flags};

/// `virDomainSnapshotListFlags`.
pub mod list {
    pub const ROOTS: u32 = 1;
    pub const DESCENDANTS: u32 = 1;
    pub const METADATA: u32 = 2;
    pub const LEAVES: u32 = 4;
    pub const NO_LEAVES: u32 = 8;
    pub const NO_METADATA: u32 = 16;
    pub const INACTIVE: u32 = 32;
    pub const ACTIVE: u32 = 64;
    pub const DISK_ONLY: u32 = 128;
    pub const INTERNAL: u32 = 256;
    pub const EXTERNAL: u32 = 512;
    pub const TOPOLOGICAL: u32 = 1024;
    /// Every filter group.
    pub const FILTERS: u32 = LEAVES
        | NO_LEAVES
        | METADATA
        | NO_METADATA
        | INACTIVE
        | ACTIVE
        | DISK_ONLY
        | INTERNAL
        | EXTERNAL;
}

/// What metadata files start with, as libvirt's do.
const METADATA_HEADER: &str = "<!--\n\
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:\n  \
virsh snapshot-edit\n\
or other application using the libvirt API.\n\
-->\n\n";

/// Largest metadata file read.
const MAX_METADATA: u64 = 1 << 20;

/// Where a domain's snapshot metadata lives (libvirt's
/// `/var/lib/libvirt/qemu/snapshot/DOMAIN`).
pub(super) fn metadata_dir(inner: &Inner, domain: &str) -> PathBuf {
    inner.cfg.state_dir.join("snapshot").join(domain)
}

/// Every snapshot of `domain`, sorted by name. Unreadable files are
/// skipped with a warning, as libvirt does at start.
pub(super) fn load(inner: &Inner, domain: &str) -> Vec<DomainSnapshot> {
    let dir = metadata_dir(inner, domain);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "xml")
            || e.file_name().to_string_lossy().starts_with('.')
        {
            continue;
        }
        let text = match e.metadata() {
            Ok(m) if m.len() <= MAX_METADATA => std::fs::read_to_string(&path),
            Ok(_) => Err(std::io::Error::other("file too large")),
            Err(err) => Err(err),
        };
        match text.map_err(|err| err.to_string()).and_then(|t| {
            DomainSnapshot::parse(&t, ParseMode::Metadata, 0).map_err(|err| err.message)
        }) {
            Ok(s) => out.push(s),
            Err(err) => tracing::warn!(
                "Failed to parse snapshot XML from file '{}': {err}",
                path.display()
            ),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    // One current at most, as libvirt keeps it.
    let mut seen_current = false;
    for s in out.iter_mut().rev() {
        if s.current {
            if seen_current {
                tracing::warn!("Too many snapshots claiming to be current for domain {domain}");
                s.current = false;
            }
            seen_current = true;
        }
    }
    out
}

/// Writes one snapshot's metadata file.
pub(super) fn write(inner: &Inner, domain: &str, snap: &DomainSnapshot) -> Result<()> {
    let dir = metadata_dir(inner, domain);
    ensure_dir_mode(&dir, 0o700)?;
    let path = dir.join(format!("{}.xml", snap.name));
    let text = format!("{METADATA_HEADER}{}", snap.to_xml(true, true));
    write_atomic(&path, text.as_bytes(), Durability::Persistent).map_err(|e| {
        Error::new(
            ErrorCode::InternalError,
            ErrorDomain::Qemu,
            format!(
                "unable to save metadata for snapshot {}: {}",
                snap.name,
                super::fsutil::os_text(&e)
            ),
        )
    })
}

/// Removes one snapshot's metadata file.
pub(super) fn remove(inner: &Inner, domain: &str, name: &str) -> Result<()> {
    let path = metadata_dir(inner, domain).join(format!("{name}.xml"));
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(system_error(
            format!("Failed to unlink {}", path.display()),
            &e,
        )),
    }
}

/// Removes every snapshot's metadata (`undefine --snapshots-metadata`).
pub(crate) fn remove_all(inner: &Inner, domain: &str) {
    let _ = std::fs::remove_dir_all(metadata_dir(inner, domain));
}

/// Makes `name` (or none) the current snapshot, rewriting the files whose
/// mark changes.
pub(super) fn set_current(
    inner: &Inner,
    domain: &str,
    all: &mut [DomainSnapshot],
    name: Option<&str>,
) -> Result<()> {
    for s in all.iter_mut() {
        let now = Some(s.name.as_str()) == name;
        if s.current != now {
            s.current = now;
            write(inner, domain, s)?;
        }
    }
    Ok(())
}

/// A disk's image as the domain uses it: its path and format.
pub(super) fn image_of(d: &crate::xml::model::disk::Disk) -> Option<(&str, DiskFormat)> {
    let path = d.source.as_ref()?.path.as_deref()?;
    let format = match d.driver.as_ref().and_then(|x| x.format.as_deref()) {
        Some("qcow2") => DiskFormat::Qcow2,
        _ => DiskFormat::Raw,
    };
    Some((path, format))
}

/// The image of disk `dev` of `def`.
pub(super) fn disk_image(def: &crate::xml::Domain, dev: &str) -> Option<(String, DiskFormat)> {
    let d = def.devices.disks.iter().find(|d| d.target.dev == dev)?;
    image_of(d).map(|(p, f)| (p.to_string(), f))
}

pub(super) fn not_found(name: &str) -> Error {
    Error::new(
        ErrorCode::NoDomainSnapshot,
        ErrorDomain::Qemu,
        format!("no domain snapshot with matching name '{name}'"),
    )
}

/// The snapshot named `name` among `all`.
pub(super) fn find<'a>(all: &'a [DomainSnapshot], name: &str) -> Result<&'a DomainSnapshot> {
    all.iter()
        .find(|s| s.name == name)
        .ok_or_else(|| not_found(name))
}

/// The direct children of `name` (`None`: the roots).
fn children<'a>(all: &'a [DomainSnapshot], name: Option<&str>) -> Vec<&'a DomainSnapshot> {
    all.iter().filter(|s| s.parent.as_deref() == name).collect()
}

/// Every descendant of `name`, parents before their children.
pub(super) fn descendants<'a>(all: &'a [DomainSnapshot], name: &str) -> Vec<&'a DomainSnapshot> {
    let mut out = Vec::new();
    let mut next = vec![name.to_string()];
    while let Some(n) = next.pop() {
        for c in children(all, Some(&n)) {
            if out.iter().any(|o: &&DomainSnapshot| o.name == c.name) {
                continue; // a cycle in hand-edited metadata
            }
            next.push(c.name.clone());
            out.push(c);
        }
    }
    out
}

/// Orders `list` so that every parent comes before its children.
fn topological<'a>(
    all: &'a [DomainSnapshot],
    list: Vec<&'a DomainSnapshot>,
) -> Vec<&'a DomainSnapshot> {
    let mut order: Vec<&DomainSnapshot> = Vec::new();
    for r in children(all, None) {
        order.push(r);
        order.extend(descendants(all, &r.name));
    }
    order
        .into_iter()
        .filter(|s| list.iter().any(|l| l.name == s.name))
        .collect()
}

/// Whether `s` passes the filter groups of `flags` (a group with none or
/// all of its bits set does not filter).
fn passes(all: &[DomainSnapshot], s: &DomainSnapshot, flags: u32) -> bool {
    use list::*;
    let group = |bits: &[(u32, bool)]| {
        let set: Vec<_> = bits.iter().filter(|(b, _)| flags & b != 0).collect();
        set.is_empty() || set.len() == bits.len() || set.iter().any(|(_, ok)| *ok)
    };
    let leaf = children(all, Some(&s.name)).is_empty();
    let state = s.state;
    group(&[(LEAVES, leaf), (NO_LEAVES, !leaf)])
        && group(&[(METADATA, true), (NO_METADATA, false)])
        && group(&[
            (INACTIVE, state == Some(SnapshotState::Shutoff)),
            (DISK_ONLY, state == Some(SnapshotState::DiskSnapshot)),
            (
                ACTIVE,
                !matches!(
                    state,
                    Some(SnapshotState::Shutoff | SnapshotState::DiskSnapshot)
                ),
            ),
        ])
        && group(&[(INTERNAL, !s.is_external()), (EXTERNAL, s.is_external())])
}

/// The domain's snapshots by `flags` (`virDomainListAllSnapshots`).
fn select_domain(all: &[DomainSnapshot], flags: u32) -> Vec<String> {
    let picked: Vec<&DomainSnapshot> = all
        .iter()
        .filter(|s| flags & list::ROOTS == 0 || s.parent.is_none())
        .filter(|s| passes(all, s, flags))
        .collect();
    let picked = if flags & list::TOPOLOGICAL != 0 {
        topological(all, picked)
    } else {
        picked
    };
    picked.into_iter().map(|s| s.name.clone()).collect()
}

/// The children (or descendants) of `name` by `flags`
/// (`virDomainSnapshotListAllChildren`).
fn select_children(all: &[DomainSnapshot], name: &str, flags: u32) -> Vec<String> {
    let base = if flags & list::DESCENDANTS != 0 {
        descendants(all, name)
    } else {
        children(all, Some(name))
    };
    let picked: Vec<&DomainSnapshot> = base.into_iter().filter(|s| passes(all, s, flags)).collect();
    let mut names: Vec<String> = if flags & list::TOPOLOGICAL != 0 {
        topological(all, picked)
            .into_iter()
            .map(|s| s.name.clone())
            .collect()
    } else {
        picked.into_iter().map(|s| s.name.clone()).collect()
    };
    if flags & list::TOPOLOGICAL == 0 {
        names.sort();
    }
    names
}

/// How a location is told in `snapshot-info`-like summaries.
pub fn location_of(s: &DomainSnapshot) -> &'static str {
    if s.is_external() {
        "external"
    } else {
        "internal"
    }
}

impl Driver {
    /// The domain's snapshots, after checking it still exists.
    fn snapshots_of(&self, obj: &DomainObj) -> Result<(String, Vec<DomainSnapshot>)> {
        let name = obj.info()?.name;
        let all = load(&self.inner, &name);
        Ok((name, all))
    }

    /// `virDomainSnapshotLookupByName`: the snapshot's name back once it
    /// is known to exist.
    pub fn snapshot_lookup(&self, obj: &DomainObj, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 0, "qemuDomainSnapshotLookupByName")?;
        let (_, all) = self.snapshots_of(obj)?;
        find(&all, name).map(|s| s.name.clone())
    }

    /// `virDomainHasCurrentSnapshot`.
    pub fn snapshot_has_current(&self, obj: &DomainObj, flags: u32) -> Result<bool> {
        check_flags(flags, 0, "qemuDomainHasCurrentSnapshot")?;
        let (_, all) = self.snapshots_of(obj)?;
        Ok(all.iter().any(|s| s.current))
    }

    /// `virDomainSnapshotCurrent`.
    pub fn snapshot_current(&self, obj: &DomainObj, flags: u32) -> Result<String> {
        check_flags(flags, 0, "qemuDomainSnapshotCurrent")?;
        let (_, all) = self.snapshots_of(obj)?;
        all.iter()
            .find(|s| s.current)
            .map(|s| s.name.clone())
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::NoDomainSnapshot,
                    ErrorDomain::Qemu,
                    "the domain does not have a current snapshot",
                )
            })
    }

    /// `virDomainListAllSnapshots` (and `virDomainSnapshotNum`,
    /// `virDomainSnapshotListNames`).
    pub fn snapshot_list(&self, obj: &DomainObj, flags: u32) -> Result<Vec<String>> {
        check_flags(
            flags,
            list::ROOTS | list::TOPOLOGICAL | list::FILTERS,
            "qemuDomainListAllSnapshots",
        )?;
        let (_, all) = self.snapshots_of(obj)?;
        Ok(select_domain(&all, flags))
    }

    /// `virDomainSnapshotListAllChildren` (and `NumChildren`,
    /// `ListChildrenNames`).
    pub fn snapshot_children(
        &self,
        obj: &DomainObj,
        name: &str,
        flags: u32,
    ) -> Result<Vec<String>> {
        check_flags(
            flags,
            list::DESCENDANTS | list::TOPOLOGICAL | list::FILTERS,
            "qemuDomainSnapshotListAllChildren",
        )?;
        let (_, all) = self.snapshots_of(obj)?;
        find(&all, name)?;
        Ok(select_children(&all, name, flags))
    }

    /// `virDomainSnapshotGetParent`.
    pub fn snapshot_parent(&self, obj: &DomainObj, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 0, "qemuDomainSnapshotGetParent")?;
        let (_, all) = self.snapshots_of(obj)?;
        find(&all, name)?.parent.clone().ok_or_else(|| {
            Error::new(
                ErrorCode::NoDomainSnapshot,
                ErrorDomain::Qemu,
                format!("snapshot '{name}' does not have a parent"),
            )
        })
    }

    /// `virDomainSnapshotIsCurrent`.
    pub fn snapshot_is_current(&self, obj: &DomainObj, name: &str, flags: u32) -> Result<bool> {
        check_flags(flags, 0, "qemuDomainSnapshotIsCurrent")?;
        let (_, all) = self.snapshots_of(obj)?;
        Ok(find(&all, name)?.current)
    }

    /// `virDomainSnapshotHasMetadata`: every snapshot oxvirt knows has.
    pub fn snapshot_has_metadata(&self, obj: &DomainObj, name: &str, flags: u32) -> Result<bool> {
        check_flags(flags, 0, "qemuDomainSnapshotHasMetadata")?;
        let (_, all) = self.snapshots_of(obj)?;
        find(&all, name).map(|_| true)
    }

    /// `virDomainSnapshotGetXMLDesc` (`VIR_DOMAIN_SNAPSHOT_XML_SECURE`: 1).
    pub fn snapshot_xml(&self, obj: &DomainObj, name: &str, flags: u32) -> Result<String> {
        check_flags(flags, 1, "qemuDomainSnapshotGetXMLDesc")?;
        let (_, all) = self.snapshots_of(obj)?;
        Ok(find(&all, name)?.to_xml(flags & 1 != 0, false))
    }

    /// How many snapshots the domain has (the `undefine` check and the
    /// `HAS_SNAPSHOT` list filter).
    pub fn snapshot_count(&self, domain: &str) -> usize {
        load(&self.inner, domain).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, parent: Option<&str>, state: SnapshotState) -> DomainSnapshot {
        DomainSnapshot {
            name: name.into(),
            parent: parent.map(str::to_string),
            state: Some(state),
            creation_time: 1,
            ..Default::default()
        }
    }

    fn tree() -> Vec<DomainSnapshot> {
        use SnapshotState::*;
        vec![
            snap("a", None, Shutoff),
            snap("b", Some("a"), Running),
            snap("c", Some("b"), DiskSnapshot),
            snap("d", Some("a"), Running),
            snap("e", None, Running),
        ]
    }

    #[test]
    fn lists_filter_by_libvirts_groups() {
        let all = tree();
        assert_eq!(select_domain(&all, 0), ["a", "b", "c", "d", "e"]);
        assert_eq!(select_domain(&all, list::ROOTS), ["a", "e"]);
        assert_eq!(select_domain(&all, list::LEAVES), ["c", "d", "e"]);
        assert_eq!(select_domain(&all, list::NO_LEAVES), ["a", "b"]);
        assert_eq!(select_domain(&all, list::INACTIVE), ["a"]);
        assert_eq!(select_domain(&all, list::DISK_ONLY), ["c"]);
        assert_eq!(select_domain(&all, list::ACTIVE), ["b", "d", "e"]);
        assert_eq!(select_domain(&all, list::LEAVES | list::NO_LEAVES).len(), 5);
        assert!(select_domain(&all, list::NO_METADATA).is_empty());
        assert_eq!(select_children(&all, "a", 0), ["b", "d"]);
        let d = select_children(&all, "a", list::DESCENDANTS | list::TOPOLOGICAL);
        assert_eq!(d.len(), 3);
        let at = |n: &str| d.iter().position(|x| x == n).unwrap();
        assert!(at("b") < at("c"));
        let topo: Vec<String> = topological(&all, all.iter().collect())
            .iter()
            .map(|s| s.name.clone())
            .collect();
        let pos = |n: &str| topo.iter().position(|x| x == n).unwrap();
        assert!(pos("a") < pos("b") && pos("b") < pos("c") && pos("a") < pos("d"));
    }
}
