//! `org.libvirt.StoragePool` at `/org/libvirt/QEMU/storagepool/_<uuid>`
//! and `org.libvirt.StorageVol` at `/org/libvirt/QEMU/storagevol/<key>`.
//! Each method converts its D-Bus arguments and calls the storage
//! sub-driver's entry point for the libvirt function it maps to; flag
//! checks, state guards and errors are the sub-driver's.

use zbus::zvariant::OwnedObjectPath;

use crate::driver::storage::{PoolRef, Storage, VolRef};
use crate::error::Result;

use super::call::{Call, not_supported};
use super::paths::{decode_str, pool_object_path, uuid_text_from_segment, vol_object_path};
use super::spec_types::Method;

/// The pool a StoragePool path names, found as libvirt-dbus finds it
/// (`virStoragePoolLookupByUUIDString` of the decoded segment).
pub fn resolve_pool(st: &Storage, segment: &str) -> Result<PoolRef> {
    st.storage_pool_lookup_by_uuid_string(&uuid_text_from_segment(segment))
}

/// The volume a StorageVol path names (`virStorageVolLookupByKey` of the
/// decoded segment).
pub fn resolve_vol(st: &Storage, segment: &str) -> Result<VolRef> {
    st.storage_vol_lookup_by_key(&decode_str(segment))
}

pub fn pool_paths(pools: &[PoolRef]) -> Vec<OwnedObjectPath> {
    pools.iter().map(|p| pool_object_path(&p.uuid)).collect()
}

pub fn vol_paths(vols: &[VolRef]) -> Result<Vec<OwnedObjectPath>> {
    vols.iter().map(|v| vol_object_path(&v.key)).collect()
}

/// Handles a StoragePool method whose name and signature were checked,
/// on an existing pool.
pub async fn handle_pool(call: &Call, m: &Method, p: &PoolRef) -> Result<()> {
    let st = call.driver.storage();
    match m.name {
        "Build" => {
            st.storage_pool_build(p, call.flags()?).await?;
            call.ok(&()).await
        }
        "Create" => {
            st.storage_pool_create(p, call.flags()?).await?;
            call.ok(&()).await
        }
        "Delete" => {
            st.storage_pool_delete(p, call.flags()?).await?;
            call.ok(&()).await
        }
        "Destroy" => {
            st.storage_pool_destroy(p)?;
            call.ok(&()).await
        }
        "GetInfo" => {
            let i = st.storage_pool_get_info(p)?;
            call.ok(&((i.state, i.capacity, i.allocation, i.available),))
                .await
        }
        "GetXMLDesc" => {
            let xml = st.storage_pool_get_xml_desc(p, call.flags()?)?;
            call.ok(&(xml,)).await
        }
        "ListStorageVolumes" => {
            let vols = st.storage_pool_list_all_volumes(p, call.flags()?)?;
            call.ok(&(vol_paths(&vols)?,)).await
        }
        "Refresh" => {
            st.storage_pool_refresh(p, call.flags()?).await?;
            call.ok(&()).await
        }
        "StorageVolCreateXML" => {
            let (xml, flags): (String, u32) = call.args()?;
            let v = st.storage_vol_create_xml(p, &xml, flags).await?;
            call.ok(&(vol_object_path(&v.key)?,)).await
        }
        "StorageVolCreateXMLFrom" => {
            let (xml, key, flags): (String, String, u32) = call.args()?;
            let src = st.storage_vol_lookup_by_key(&key)?;
            let v = st.storage_vol_create_xml_from(p, &xml, &src, flags).await?;
            call.ok(&(vol_object_path(&v.key)?,)).await
        }
        "StorageVolLookupByName" => {
            let (name,): (String,) = call.args()?;
            let v = st.storage_vol_lookup_by_name(p, &name)?;
            call.ok(&(vol_object_path(&v.key)?,)).await
        }
        "Undefine" => {
            st.storage_pool_undefine(p)?;
            call.ok(&()).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}

/// Handles a StorageVol method whose name and signature were checked, on
/// an existing volume.
pub async fn handle_vol(call: &Call, m: &Method, v: &VolRef) -> Result<()> {
    let st = call.driver.storage();
    match m.name {
        "Delete" => {
            st.storage_vol_delete(v, call.flags()?).await?;
            call.ok(&()).await
        }
        "GetInfo" => {
            let i = st.storage_vol_get_info_flags(v, call.flags()?)?;
            call.ok(&((i.vol_type, i.capacity, i.allocation),)).await
        }
        "GetXMLDesc" => {
            let xml = st.storage_vol_get_xml_desc(v, call.flags()?)?;
            call.ok(&(xml,)).await
        }
        "Resize" => {
            let (capacity, flags): (u64, u32) = call.args()?;
            st.storage_vol_resize(v, capacity, flags).await?;
            call.ok(&()).await
        }
        "Wipe" => {
            let (pattern, flags): (u32, u32) = call.args()?;
            st.storage_vol_wipe_pattern(v, pattern, flags).await?;
            call.ok(&()).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}
