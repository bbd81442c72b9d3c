//! `org.libvirt.NodeDevice` at `/org/libvirt/QEMU/nodedev/<name>` (the
//! device name by libvirt-dbus's byte rule). Each method converts its
//! arguments and calls the node-device sub-driver.

use crate::driver::nodedev::NodeDev;
use crate::error::{Error, Result};

use super::call::{Call, not_supported};
use super::paths::decode_str;
use super::spec_types::Method;

/// The device a NodeDevice path names (`virNodeDeviceLookupByName` of the
/// decoded segment).
pub fn resolve(nd: &NodeDev, segment: &str) -> Result<String> {
    nd.node_device_lookup_by_name(&decode_str(segment))
}

/// Handles a NodeDevice method whose name and signature were checked.
pub async fn handle(call: &Call, m: &Method, name: &str) -> Result<()> {
    let nd = call.driver.nodedev();
    match m.name {
        "GetXMLDesc" => {
            let flags = call.flags()?;
            call.ok(&(nd.node_device_get_xml_desc(name, flags)?,)).await
        }
        "ListCaps" => {
            let caps = nd.node_device_list_caps(name, i32::MAX)?;
            call.ok(&(caps,)).await
        }
        "Destroy" => {
            nd.node_device_destroy(name)?;
            call.ok(&()).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}

/// A NodeDevice property.
pub fn property(nd: &NodeDev, name: &str, prop: &str) -> Result<zbus::zvariant::Value<'static>> {
    use zbus::zvariant::{Str, Value};
    Ok(match prop {
        "Name" => Value::Str(Str::from(name.to_string())),
        "Parent" => Value::Str(Str::from(
            nd.node_device_get_parent(name)?.unwrap_or_default(),
        )),
        _ => return Err(Error::internal(format!("no property {prop}"))),
    })
}
