//! `org.libvirt.Interface` at `/org/libvirt/QEMU/interface/<mac>` (the
//! MAC address by libvirt-dbus's byte rule): host interfaces, read-only.

use zbus::zvariant::{Str, Value};

use crate::driver::interfaces::{self, InterfaceRef};
use crate::error::{Error, Result};

use super::call::{Call, not_supported};
use super::paths::decode_str;
use super::spec_types::Method;

/// The interface an Interface path names (`virInterfaceLookupByMACString`
/// of the decoded segment).
pub fn resolve(segment: &str) -> Result<InterfaceRef> {
    interfaces::interface_lookup_by_mac_string(&decode_str(segment))
}

/// Handles an Interface method whose name and signature were checked.
pub async fn handle(call: &Call, m: &Method, i: &InterfaceRef) -> Result<()> {
    match m.name {
        "GetXMLDesc" => {
            let xml = interfaces::interface_get_xml_desc(&i.name, call.flags()?)?;
            call.ok(&(xml,)).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}

/// An Interface property.
pub fn property(i: &InterfaceRef, prop: &str) -> Result<Value<'static>> {
    Ok(match prop {
        "Active" => Value::Bool(interfaces::interface_is_active(&i.name)?),
        "MAC" => Value::Str(Str::from(i.mac.clone())),
        "Name" => Value::Str(Str::from(i.name.clone())),
        _ => return Err(Error::internal(format!("no property {prop}"))),
    })
}
