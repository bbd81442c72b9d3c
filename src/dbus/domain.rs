//! `org.libvirt.Domain` at `/org/libvirt/QEMU/domain/_<uuid>`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::driver::DomainObj;
use crate::error::Result;

use super::call::{Call, not_supported};
use super::paths::snapshot_object_path;
use super::spec_types::Method;
use super::stats::typed_params;

/// One `InterfaceAddresses` entry: name, MAC, (type, address, prefix)s.
type IfaceAddrs = (String, String, Vec<(i32, String, u32)>);

/// Handles a Domain method whose name and signature were checked, on an
/// existing domain.
pub async fn handle(call: &Call, m: &Method, obj: &Arc<DomainObj>) -> Result<()> {
    let drv = &call.driver;
    match m.name {
        "GetXMLDesc" => {
            let flags = call.flags()?;
            call.ok(&(drv.xml_desc(obj, flags)?,)).await
        }
        "GetState" => {
            let (state, reason) = drv.get_state(obj, call.flags()?)?;
            call.ok(&((state as i32, reason),)).await
        }
        "GetVcpus" => {
            let flags = call.flags()?;
            call.ok(&(drv.vcpu_count(obj, flags)?,)).await
        }
        "MemoryStats" => {
            let out: HashMap<i32, u64> = drv
                .memory_stats(obj, u32::MAX, call.flags()?)
                .await?
                .into_iter()
                .collect();
            call.ok(&(out,)).await
        }
        "GetJobInfo" => {
            let j = drv.job_info(obj)?;
            let (t, p, r) = (j.data_total, j.data_processed, j.data_remaining);
            let info = (
                j.job_type,
                j.elapsed_ms,
                0u64,
                t,
                p,
                r,
                t,
                p,
                r,
                0u64,
                0u64,
                0u64,
            );
            call.ok(&(info,)).await
        }
        "GetJobStats" => {
            let (job_type, params) = drv.job_stats(obj, call.flags()?)?;
            call.ok(&((job_type, typed_params(params)),)).await
        }
        "ManagedSave" => {
            drv.managed_save(obj, call.flags()?).await?;
            call.ok(&()).await
        }
        "Save" => {
            let (to, xml, flags): (String, String, u32) = call.args()?;
            let xml = (!xml.is_empty()).then_some(xml);
            drv.save(obj, &to, xml.as_deref(), flags).await?;
            call.ok(&()).await
        }
        "GetStats" => {
            let (stats, flags): (u32, u32) = call.args()?;
            let record = drv
                .get_all_domain_stats(Some(vec![obj.clone()]), stats, flags)
                .await?
                .pop()
                .map(|(_, r)| r)
                .unwrap_or_default();
            call.ok(&(typed_params(record),)).await
        }
        "Create" => {
            let flags = call.flags()?;
            drv.start(obj, flags).await?;
            call.ok(&()).await
        }
        "Shutdown" => {
            drv.shutdown(obj, call.flags()?).await?;
            call.ok(&()).await
        }
        "Destroy" => {
            drv.destroy(obj, call.flags()?).await?;
            call.ok(&()).await
        }
        "Reboot" => {
            drv.reboot(obj, call.flags()?).await?;
            call.ok(&()).await
        }
        "Reset" => {
            drv.reset(obj, call.flags()?).await?;
            call.ok(&()).await
        }
        "Suspend" => {
            drv.suspend(obj).await?;
            call.ok(&()).await
        }
        "Resume" => {
            drv.resume(obj).await?;
            call.ok(&()).await
        }
        "Undefine" => {
            let flags = call.flags()?;
            drv.undefine(obj, flags).await?;
            call.ok(&()).await
        }
        "OpenGraphicsFD" => {
            let (idx, flags): (u32, u32) = call.args()?;
            let fd = drv.open_graphics_fd(obj, idx, flags).await?;
            call.ok(&(zbus::zvariant::OwnedFd::from(fd),)).await
        }
        "SendKey" => {
            let (codeset, holdtime, keycodes, flags): (u32, u32, Vec<u32>, u32) = call.args()?;
            drv.send_key(obj, codeset, holdtime, &keycodes, flags)
                .await?;
            call.ok(&()).await
        }
        "GetControlInfo" => call.ok(&(drv.get_control_info(obj, call.flags()?)?,)).await,
        "InterfaceAddresses" => {
            let (source, flags): (u32, u32) = call.args()?;
            let list: Vec<IfaceAddrs> = drv
                .interface_addresses(obj, source, flags)?
                .into_iter()
                .map(|i| (i.name, i.hwaddr, i.addrs))
                .collect();
            call.ok(&(list,)).await
        }
        "HasManagedSaveImage" => {
            call.ok(&(drv.has_managed_save_image(obj, call.flags()?)?,))
                .await
        }
        "ManagedSaveRemove" => {
            drv.managed_save_remove(obj, call.flags()?)?;
            call.ok(&()).await
        }
        "AbortJob" => {
            drv.abort_job(obj)?;
            call.ok(&()).await
        }
        "SetMemory" => {
            let (kib, flags): (u64, u32) = call.args()?;
            drv.set_memory(obj, kib, flags).await?;
            call.ok(&()).await
        }
        "SetVcpus" => {
            let (n, flags): (u32, u32) = call.args()?;
            drv.set_vcpus(obj, n, flags).await?;
            call.ok(&()).await
        }
        "Rename" => {
            let (name, flags): (String, u32) = call.args()?;
            drv.rename(obj, &name, flags).await?;
            call.ok(&()).await
        }
        "ListDomainSnapshots" => {
            let flags = call.flags()?;
            let paths: Vec<_> = drv
                .snapshot_list(obj, flags)?
                .iter()
                .map(|n| snapshot_object_path(&obj.uuid, n))
                .collect();
            call.ok(&(paths,)).await
        }
        "SnapshotCreateXML" => {
            let (xml, flags): (String, u32) = call.args()?;
            let name = drv.snapshot_create(obj, &xml, flags).await?;
            call.ok(&(snapshot_object_path(&obj.uuid, &name),)).await
        }
        "SnapshotCurrent" => {
            let name = drv.snapshot_current(obj, call.flags()?)?;
            call.ok(&(snapshot_object_path(&obj.uuid, &name),)).await
        }
        "SnapshotLookupByName" => {
            let (name, flags): (String, u32) = call.args()?;
            let name = drv.snapshot_lookup(obj, &name, flags)?;
            call.ok(&(snapshot_object_path(&obj.uuid, &name),)).await
        }
        "GetMetadata" => {
            let (kind, uri, flags): (i32, String, u32) = call.args()?;
            let uri = (!uri.is_empty()).then_some(uri.as_str());
            call.ok(&(drv.get_metadata(obj, kind, uri, flags)?,)).await
        }
        "BlockResize" => {
            let (disk, size, flags): (String, u64, u32) = call.args()?;
            drv.block_resize(obj, &disk, size, flags).await?;
            call.ok(&()).await
        }
        "AttachDevice" => {
            let (xml, flags): (String, u32) = call.args()?;
            drv.attach_device_flags(obj, &xml, flags).await?;
            call.ok(&()).await
        }
        "DetachDevice" => {
            let (xml, flags): (String, u32) = call.args()?;
            drv.detach_device_flags(obj, &xml, flags).await?;
            call.ok(&()).await
        }
        "UpdateDevice" => {
            let (xml, flags): (String, u32) = call.args()?;
            drv.update_device_flags(obj, &xml, flags).await?;
            call.ok(&()).await
        }
        "SetMetadata" => {
            let (kind, metadata, key, uri, flags): (i32, String, String, String, u32) =
                call.args()?;
            let opt = |s: &str| (!s.is_empty()).then_some(s.to_string());
            drv.set_metadata(
                obj,
                kind,
                opt(&metadata).as_deref(),
                opt(&key).as_deref(),
                opt(&uri).as_deref(),
                flags,
            )
            .await?;
            call.ok(&()).await
        }
        "GetSchedulerParameters" => {
            let flags = call.flags()?;
            let params = drv.get_scheduler_parameters(obj, i32::MAX, flags)?;
            call.ok(&(super::stats::typed_params(params),)).await
        }
        "SetSchedulerParameters" => {
            let (params, flags): (HashMap<String, zbus::zvariant::OwnedValue>, u32) =
                call.args()?;
            drv.set_scheduler_parameters(obj, &super::stats::from_dbus(params)?, flags)
                .await?;
            call.ok(&()).await
        }
        "GetMemoryParameters" => {
            let flags = call.flags()?;
            let (_, params) = drv.get_memory_parameters(obj, usize::MAX, flags)?;
            call.ok(&(super::stats::typed_params(params),)).await
        }
        "SetMemoryParameters" => {
            let (params, flags): (HashMap<String, zbus::zvariant::OwnedValue>, u32) =
                call.args()?;
            drv.set_memory_parameters(obj, &super::stats::from_dbus(params)?, flags)
                .await?;
            call.ok(&()).await
        }
        "PinVcpu" => {
            let (vcpu, map, flags): (u32, Vec<bool>, u32) = call.args()?;
            drv.pin_vcpu(obj, vcpu, &map, flags).await?;
            call.ok(&()).await
        }
        "GetVcpuPinInfo" => {
            let flags = call.flags()?;
            let maps = drv.get_vcpu_pin_info(obj, usize::MAX, flags)?;
            call.ok(&(maps,)).await
        }
        "PinEmulator" => {
            let (map, flags): (Vec<bool>, u32) = call.args()?;
            drv.pin_emulator(obj, &map, flags).await?;
            call.ok(&()).await
        }
        "GetEmulatorPinInfo" => {
            let flags = call.flags()?;
            let map = drv.get_emulator_pin_info(obj, flags)?;
            call.ok(&(map,)).await
        }
        "GetBlockIOParameters" => {
            let flags = call.flags()?;
            let (_, params) = drv.get_blkio_parameters(obj, usize::MAX, flags)?;
            call.ok(&(super::stats::typed_params(params),)).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}
