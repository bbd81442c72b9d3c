//! `org.libvirt.Network` at `/org/libvirt/QEMU/network/_<uuid>`. Each
//! method converts its D-Bus arguments and calls the network sub-driver's
//! entry point for the libvirt function it maps to; flag checks, state
//! guards and errors are the sub-driver's.

use zbus::zvariant::{OwnedObjectPath, Str, Value};

use crate::driver::network::{NetworkRef, Networks};
use crate::error::{Error, Result};

use super::call::{Call, not_supported};
use super::paths::{network_object_path, uuid_text_from_segment};
use super::spec_types::Method;

/// The network a Network path names, found as libvirt-dbus finds it
/// (`virNetworkLookupByUUIDString` of the decoded segment).
pub fn resolve(nets: &Networks, segment: &str) -> Result<NetworkRef> {
    nets.network_lookup_by_uuid_string(&uuid_text_from_segment(segment))
}

pub fn paths(list: &[NetworkRef]) -> Vec<OwnedObjectPath> {
    list.iter().map(|n| network_object_path(&n.uuid)).collect()
}

/// A lease as libvirt-dbus sends it: interface, expiry, type, MAC, IAID,
/// address, prefix, hostname, client id (`a(sxisssuss)`).
pub type WireLease = (
    String,
    i64,
    i32,
    String,
    String,
    String,
    u32,
    String,
    String,
);

/// An absent string of a lease, as libvirt-dbus sends it.
fn text(s: Option<String>) -> String {
    s.unwrap_or_default()
}

/// Handles a Network method whose name and signature were checked.
pub async fn handle(call: &Call, m: &Method, n: &NetworkRef) -> Result<()> {
    let nets = call.driver.networks();
    match m.name {
        "Create" => {
            nets.network_create(n).await?;
            call.ok(&()).await
        }
        "Destroy" => {
            nets.network_destroy(n).await?;
            call.ok(&()).await
        }
        "GetDHCPLeases" => {
            let (mac, flags): (String, u32) = call.args()?;
            let mac = (!mac.is_empty()).then_some(mac);
            let leases: Vec<WireLease> = nets
                .network_get_dhcp_leases(n, mac.as_deref(), flags)?
                .into_iter()
                .map(|l| {
                    (
                        l.iface,
                        l.expiry_time,
                        l.ip_type,
                        text(l.mac),
                        text(l.iaid),
                        l.ipaddr,
                        l.prefix,
                        text(l.hostname),
                        text(l.clientid),
                    )
                })
                .collect();
            call.ok(&(leases,)).await
        }
        "GetXMLDesc" => {
            let xml = nets.network_get_xml_desc(n, call.flags()?)?;
            call.ok(&(xml,)).await
        }
        "Undefine" => {
            nets.network_undefine(n)?;
            call.ok(&()).await
        }
        "Update" => {
            let (command, section, parent, xml, flags): (u32, u32, i32, String, u32) =
                call.args()?;
            nets.network_update(n, command, section, parent, &xml, flags)
                .await?;
            call.ok(&()).await
        }
        _ => Err(not_supported(m.libvirt)),
    }
}

/// A Network property.
pub fn property(nets: &Networks, n: &NetworkRef, prop: &str) -> Result<Value<'static>> {
    Ok(match prop {
        "Active" => Value::Bool(nets.network_is_active(n)?),
        "Autostart" => Value::Bool(nets.network_get_autostart(n)?),
        "Name" => Value::Str(Str::from(n.name.clone())),
        "Persistent" => Value::Bool(nets.network_is_persistent(n)?),
        "UUID" => Value::Str(Str::from(n.uuid.to_string())),
        _ => return Err(Error::internal(format!("no property {prop}"))),
    })
}
