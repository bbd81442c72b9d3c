//! `org.libvirt.DomainSnapshot` at
//! `/org/libvirt/QEMU/domainsnapshot/<domain UUID>_<encoded name>`: every
//! call looks the domain and the snapshot up again, as libvirt-dbus does,
//! and runs the driver's snapshot call.

use std::sync::Arc;

use crate::driver::{DomainObj, Driver};
use crate::error::Result;

use super::call::{Call, not_supported};
use super::paths::{snapshot_from_segment, snapshot_object_path};
use super::spec_types::Method;

/// A snapshot: its domain and its name.
pub type SnapshotRef = (Arc<DomainObj>, String);

/// The snapshot a DomainSnapshot path names (libvirt-dbus's lookup: the
/// domain by UUID, then the snapshot by name).
pub fn resolve(driver: &Driver, segment: &str) -> Result<SnapshotRef> {
    let (uuid, name) = snapshot_from_segment(segment)?;
    let obj = driver.lookup_by_uuid(&uuid)?;
    let name = driver.snapshot_lookup(&obj, &name, 0)?;
    Ok((obj, name))
}

/// Handles a DomainSnapshot method whose name and signature were checked.
pub async fn handle(call: &Call, m: &Method, s: &SnapshotRef) -> Result<()> {
    let drv = &call.driver;
    let (obj, name) = s;
    let flags = call.flags()?;
    match m.name {
        "Delete" => {
            drv.snapshot_delete(obj, name, flags).await?;
            call.ok(&()).await
        }
        "GetParent" => {
            let parent = drv.snapshot_parent(obj, name, flags)?;
            call.ok(&(snapshot_object_path(&obj.uuid, &parent),)).await
        }
        "GetXMLDesc" => call.ok(&(drv.snapshot_xml(obj, name, flags)?,)).await,
        "IsCurrent" => {
            call.ok(&(drv.snapshot_is_current(obj, name, flags)?,))
                .await
        }
        "ListChildren" => {
            let paths: Vec<_> = drv
                .snapshot_children(obj, name, flags)?
                .iter()
                .map(|c| snapshot_object_path(&obj.uuid, c))
                .collect();
            call.ok(&(paths,)).await
        }
        "Revert" => {
            drv.snapshot_revert(obj, name, flags).await?;
            call.ok(&()).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}
