//! `org.libvirt.Connect` at `/org/libvirt/QEMU`.

use std::collections::HashMap;

use zbus::zvariant::OwnedObjectPath;

use crate::driver::{host, objects};
use crate::error::{Error, Result};

use super::call::{Call, not_supported};
use super::paths::{
    domain_object_path, interface_object_path, network_object_path, node_device_object_path,
    nwfilter_object_path, pool_object_path, secret_object_path, vol_object_path,
};
use super::spec_types::Method;
use super::stats::stats_record;
use super::storage::pool_paths;

fn opath(uuid: &uuid::Uuid) -> Result<OwnedObjectPath> {
    Ok(domain_object_path(uuid))
}

/// Handles a Connect method whose name and signature were checked.
pub async fn handle(call: &Call, m: &Method) -> Result<()> {
    let drv = &call.driver;
    match m.name {
        "ListDomains" => {
            let flags = call.flags()?;
            let paths = drv
                .list(flags)?
                .iter()
                .map(|d| opath(&d.uuid))
                .collect::<Result<Vec<_>>>()?;
            call.ok(&(paths,)).await
        }
        "DomainDefineXML" => {
            let (xml,): (String,) = call.args()?;
            let obj = drv.define_xml(&xml).await?;
            call.ok(&(opath(&obj.uuid)?,)).await
        }
        "DomainCreateXML" => {
            let (xml, flags): (String, u32) = call.args()?;
            let obj = drv.create_xml(&xml, flags).await?;
            call.ok(&(opath(&obj.uuid)?,)).await
        }
        "DomainRestore" => {
            let (from, xml, flags): (String, String, u32) = call.args()?;
            let xml = (!xml.is_empty()).then_some(xml);
            drv.restore(&from, xml.as_deref(), flags).await?;
            call.ok(&()).await
        }
        "DomainSaveImageGetXMLDesc" => {
            let (file, flags): (String, u32) = call.args()?;
            call.ok(&(drv.save_image_xml(&file, flags)?,)).await
        }
        "DomainSaveImageDefineXML" => {
            let (file, xml, flags): (String, String, u32) = call.args()?;
            drv.save_image_define(&file, &xml, flags)?;
            call.ok(&()).await
        }
        "DomainLookupByName" => {
            let (name,): (String,) = call.args()?;
            let obj = drv.lookup_by_name(&name)?;
            call.ok(&(opath(&obj.uuid)?,)).await
        }
        "DomainLookupByUUID" => {
            let (uuid,): (String,) = call.args()?;
            let obj = drv.lookup_by_uuid_str(&uuid)?;
            call.ok(&(opath(&obj.uuid)?,)).await
        }
        "DomainLookupByID" => {
            let (id,): (i32,) = call.args()?;
            let obj = drv.lookup_by_id(id)?;
            call.ok(&(opath(&obj.uuid)?,)).await
        }
        "GetCapabilities" => call.ok(&(drv.capabilities_xml(),)).await,
        "GetDomainCapabilities" => {
            let (emu, arch, machine, virt, flags): (String, String, String, String, u32) =
                call.args()?;
            let xml = drv.domain_capabilities_xml(flags, &emu, &arch, &machine, &virt)?;
            call.ok(&(xml,)).await
        }
        "GetSysinfo" => {
            let flags = call.flags()?;
            call.ok(&(host::connect_get_sysinfo(flags)?,)).await
        }
        "NodeGetCPUMap" => {
            let flags = call.flags()?;
            call.ok(&(host::node_get_cpu_map(flags)?,)).await
        }
        "NodeGetCPUStats" => {
            let (cpu, flags): (i32, u32) = call.args()?;
            let s: HashMap<String, u64> =
                host::node_get_cpu_stats(cpu, flags)?.into_iter().collect();
            call.ok(&(s,)).await
        }
        "NodeGetFreeMemory" => call.ok(&(host::free_memory_bytes(),)).await,
        "GetCPUModelNames" => {
            let (arch, flags): (String, u32) = call.args()?;
            call.ok(&(host::cpu_model_names(&arch, flags)?,)).await
        }
        "NodeGetMemoryStats" => {
            let (cell, flags): (i32, u32) = call.args()?;
            let s: HashMap<String, u64> = host::node_get_memory_stats(cell, flags)?
                .into_iter()
                .collect();
            call.ok(&(s,)).await
        }
        "NodeGetSecurityModel" => call.ok(&((String::new(), String::new()),)).await,
        "GetAllDomainStats" => {
            let (stats, flags): (u32, u32) = call.args()?;
            let list_flags = flags & 0xffff;
            let mut out = Vec::new();
            for obj in drv.list(list_flags & (1 | 2 | 4 | 8 | 16 | 32 | 64 | 128))? {
                if let Ok(s) = drv.stats(&obj).await {
                    out.push((s.info.name.clone(), stats_record(&s, stats)));
                }
            }
            call.ok(&(out,)).await
        }
        "ListStoragePools" => {
            let flags = call.flags()?;
            let pools = drv.storage().connect_list_all_storage_pools(flags)?;
            call.ok(&(pool_paths(&pools),)).await
        }
        "StoragePoolCreateXML" => {
            let (xml, flags): (String, u32) = call.args()?;
            let p = drv.storage().storage_pool_create_xml(&xml, flags).await?;
            call.ok(&(pool_object_path(&p.uuid),)).await
        }
        "StoragePoolDefineXML" => {
            let (xml, flags): (String, u32) = call.args()?;
            let p = drv.storage().storage_pool_define_xml(&xml, flags)?;
            call.ok(&(pool_object_path(&p.uuid),)).await
        }
        "StoragePoolLookupByName" => {
            let (name,): (String,) = call.args()?;
            let p = drv.storage().storage_pool_lookup_by_name(&name)?;
            call.ok(&(pool_object_path(&p.uuid),)).await
        }
        "StoragePoolLookupByUUID" => {
            let (uuid,): (String,) = call.args()?;
            let p = drv.storage().storage_pool_lookup_by_uuid_string(&uuid)?;
            call.ok(&(pool_object_path(&p.uuid),)).await
        }
        "StorageVolLookupByKey" => {
            let (key,): (String,) = call.args()?;
            let v = drv.storage().storage_vol_lookup_by_key(&key)?;
            call.ok(&(vol_object_path(&v.key)?,)).await
        }
        "StorageVolLookupByPath" => {
            let (path,): (String,) = call.args()?;
            let v = drv.storage().storage_vol_lookup_by_path(&path)?;
            call.ok(&(vol_object_path(&v.key)?,)).await
        }
        "ListNetworks" => {
            let flags = call.flags()?;
            let nets = drv.networks().connect_list_all_networks(flags)?;
            call.ok(&(super::network::paths(&nets),)).await
        }
        "NetworkCreateXML" => {
            let (xml,): (String,) = call.args()?;
            let n = drv.networks().network_create_xml(&xml, 0).await?;
            call.ok(&(network_object_path(&n.uuid),)).await
        }
        "NetworkDefineXML" => {
            let (xml,): (String,) = call.args()?;
            let n = drv.networks().network_define_xml(&xml, 0)?;
            call.ok(&(network_object_path(&n.uuid),)).await
        }
        "ListInterfaces" => {
            let flags = call.flags()?;
            let paths = crate::driver::interfaces::connect_list_all_interfaces(flags)?
                .iter()
                .map(|i| interface_object_path(&i.mac))
                .collect::<Result<Vec<_>>>()?;
            call.ok(&(paths,)).await
        }
        "ListSecrets" => {
            let flags = call.flags()?;
            let paths: Vec<OwnedObjectPath> = objects::connect_list_all_secrets(flags)?
                .iter()
                .map(|s| secret_object_path(&s.uuid))
                .collect();
            call.ok(&(paths,)).await
        }
        "ListNWFilters" => {
            let flags = call.flags()?;
            let paths: Vec<OwnedObjectPath> = objects::connect_list_all_nwfilters(flags)?
                .iter()
                .map(|f| nwfilter_object_path(&f.uuid))
                .collect();
            call.ok(&(paths,)).await
        }
        "NetworkLookupByName" => {
            let (name,): (String,) = call.args()?;
            let n = drv.networks().network_lookup_by_name(&name)?;
            call.ok(&(network_object_path(&n.uuid),)).await
        }
        "NetworkLookupByUUID" => {
            let (uuid,): (String,) = call.args()?;
            let n = drv.networks().network_lookup_by_uuid_string(&uuid)?;
            call.ok(&(network_object_path(&n.uuid),)).await
        }
        "InterfaceLookupByName" => {
            let (name,): (String,) = call.args()?;
            let i = crate::driver::interfaces::interface_lookup_by_name(&name)?;
            call.ok(&(interface_object_path(&i.mac)?,)).await
        }
        "InterfaceLookupByMAC" => {
            let (mac,): (String,) = call.args()?;
            let i = crate::driver::interfaces::interface_lookup_by_mac_string(&mac)?;
            call.ok(&(interface_object_path(&i.mac)?,)).await
        }
        "SecretLookupByUUID" => {
            let (uuid,): (String,) = call.args()?;
            let uuid = crate::xml::uuid_text::parse_uuid(&uuid).ok_or_else(|| {
                Error::invalid_arg("uuidstr in virSecretLookupByUUIDString must be a valid UUID")
            })?;
            let s = objects::secret_lookup_by_uuid(&uuid)?;
            call.ok(&(secret_object_path(&s.uuid),)).await
        }
        "NWFilterLookupByName" => {
            let (name,): (String,) = call.args()?;
            let f = objects::nwfilter_lookup_by_name(&name)?;
            call.ok(&(nwfilter_object_path(&f.uuid),)).await
        }
        "NodeDeviceLookupByName" => {
            let (name,): (String,) = call.args()?;
            let found = drv.nodedev().node_device_lookup_by_name(&name)?;
            call.ok(&(node_device_object_path(&found)?,)).await
        }
        "ListNodeDevices" => {
            let flags = call.flags()?;
            let paths = drv
                .nodedev()
                .connect_list_all_node_devices(flags)?
                .iter()
                .map(|name| node_device_object_path(name))
                .collect::<Result<Vec<_>>>()?;
            call.ok(&(paths,)).await
        }
        // Everything else: no objects of those kinds (networks, secrets,
        // filters, node devices, host interfaces, save images) yet.
        _ => Err(not_supported(m.libvirt)),
    }
}
