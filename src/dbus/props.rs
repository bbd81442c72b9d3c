//! `org.freedesktop.DBus.Properties` for the Connect, Domain, StoragePool
//! and StorageVol objects, with libvirt-dbus's encoding: `Get` gives
//! `v(value)`, `GetAll` gives `a{s v(v(value))}` and leaves out
//! properties whose getter fails.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::zvariant::{OwnedValue, Str, Structure, Value};

use crate::driver::interfaces::InterfaceRef;
use crate::driver::network::NetworkRef;
use crate::driver::storage::{PoolRef, Storage, VolRef};
use crate::driver::{DomainObj, Driver, host};
use crate::error::{Error, Result};

use super::call::{Call, INVALID_ARGS};
use super::spec;
use super::spec_types::Interface;

fn connect_prop(name: &str) -> Result<Value<'static>> {
    Ok(match name {
        "Encrypted" => Value::Bool(false),
        "Secure" => Value::Bool(true),
        "Hostname" => Value::Str(Str::from(host::hostname())),
        "LibVersion" => Value::U64(host::LIB_VERSION),
        "Version" => Value::U64(host::HYPERVISOR_VERSION),
        _ => return Err(Error::internal(format!("no property {name}"))),
    })
}

fn domain_prop(obj: &DomainObj, name: &str) -> Result<Value<'static>> {
    let info = obj.info()?;
    Ok(match name {
        "Active" => Value::Bool(info.id.is_some()),
        "Autostart" => Value::Bool(info.autostart),
        "Id" => Value::U32(info.id.and_then(|i| u32::try_from(i).ok()).unwrap_or(0)),
        "Name" => Value::Str(Str::from(info.name)),
        "OSType" => Value::Str(Str::from(info.os_type)),
        "Persistent" => Value::Bool(info.persistent),
        "SchedulerType" => Value::Structure(Structure::from(
            crate::driver::tuning::get_scheduler_type(obj)?,
        )),
        "Updated" => Value::Bool(false),
        "UUID" => Value::Str(Str::from(info.uuid.to_string())),
        _ => return Err(Error::internal(format!("no property {name}"))),
    })
}

fn pool_prop(st: &Storage, p: &PoolRef, name: &str) -> Result<Value<'static>> {
    Ok(match name {
        "Active" => Value::Bool(st.storage_pool_is_active(p)?),
        "Autostart" => Value::Bool(st.storage_pool_get_autostart(p)?),
        "Name" => Value::Str(Str::from(p.name.clone())),
        "Persistent" => Value::Bool(st.storage_pool_is_persistent(p)?),
        "UUID" => Value::Str(Str::from(p.uuid.to_string())),
        _ => return Err(Error::internal(format!("no property {name}"))),
    })
}

fn vol_prop(st: &Storage, v: &VolRef, name: &str) -> Result<Value<'static>> {
    Ok(match name {
        "Name" => Value::Str(Str::from(v.name.clone())),
        "Key" => Value::Str(Str::from(v.key.clone())),
        "Path" => Value::Str(Str::from(st.storage_vol_get_path(v)?)),
        _ => return Err(Error::internal(format!("no property {name}"))),
    })
}

/// The object a Properties call is about. For an object path, the
/// lookup's outcome: the object, or the error to report (a path that
/// names no existing object).
pub enum Holder {
    Connect,
    Domain(std::result::Result<Arc<DomainObj>, Error>),
    StoragePool(std::result::Result<PoolRef, Error>),
    StorageVol(std::result::Result<VolRef, Error>),
    NodeDevice(std::result::Result<String, Error>),
    Network(std::result::Result<NetworkRef, Error>),
    Interface(std::result::Result<InterfaceRef, Error>),
    DomainSnapshot(std::result::Result<super::snapshot::SnapshotRef, Error>),
}

impl Holder {
    fn iface(&self) -> &'static Interface {
        match self {
            Holder::Connect => &spec::CONNECT,
            Holder::Domain(_) => &spec::DOMAIN,
            Holder::StoragePool(_) => &spec::STORAGE_POOL,
            Holder::StorageVol(_) => &spec::STORAGE_VOL,
            Holder::NodeDevice(_) => &spec::NODE_DEVICE,
            Holder::Network(_) => &spec::NETWORK,
            Holder::Interface(_) => &spec::INTERFACE,
            Holder::DomainSnapshot(_) => &spec::DOMAIN_SNAPSHOT,
        }
    }

    fn get(&self, driver: &Driver, name: &str) -> Result<Value<'static>> {
        match self {
            Holder::Connect => connect_prop(name),
            Holder::Domain(Ok(obj)) => domain_prop(obj, name),
            Holder::StoragePool(Ok(p)) => pool_prop(driver.storage(), p, name),
            Holder::StorageVol(Ok(v)) => vol_prop(driver.storage(), v, name),
            Holder::NodeDevice(Ok(d)) => super::nodedev::property(driver.nodedev(), d, name),
            Holder::Network(Ok(n)) => super::network::property(driver.networks(), n, name),
            Holder::Interface(Ok(i)) => super::interface::property(i, name),
            Holder::DomainSnapshot(Ok(_)) => Err(Error::internal("no such property")),
            Holder::DomainSnapshot(Err(e))
            | Holder::Interface(Err(e))
            | Holder::Network(Err(e))
            | Holder::Domain(Err(e))
            | Holder::StoragePool(Err(e))
            | Holder::StorageVol(Err(e))
            | Holder::NodeDevice(Err(e)) => Err(e.clone()),
        }
    }
}

/// Handles one `org.freedesktop.DBus.Properties` call.
pub async fn handle(call: &Call, holder: Holder, member: &str) {
    let iface = holder.iface();
    let sig = call.signature();
    let bad_iface = |name: &str| format!("No such interface “{name}”");
    match (member, sig.as_str()) {
        ("Get", "ss") => {
            let Ok((iname, pname)) = call.args::<(String, String)>() else { return };
            if iname != iface.name {
                return call.dbus_error(INVALID_ARGS, &bad_iface(&iname)).await;
            }
            if iface.property(&pname).is_none() {
                return call
                    .dbus_error(INVALID_ARGS, &format!("No such property “{pname}”"))
                    .await;
            }
            match holder.get(&call.driver, &pname) {
                Ok(v) => {
                    let _ = call.ok(&(v,)).await;
                }
                Err(e) => call.libvirt_error(&e).await,
            }
        }
        ("GetAll", "s") => {
            let Ok((iname,)) = call.args::<(String,)>() else { return };
            if iname != iface.name {
                return call.dbus_error(INVALID_ARGS, &bad_iface(&iname)).await;
            }
            let mut out: HashMap<String, OwnedValue> = HashMap::new();
            for p in iface.properties {
                if let Ok(v) = holder.get(&call.driver, p.name) {
                    let wrapped = Value::Value(Box::new(v));
                    if let Ok(ov) = OwnedValue::try_from(wrapped) {
                        out.insert(p.name.to_string(), ov);
                    }
                }
            }
            let _ = call.ok(&(out,)).await;
        }
        ("Set", "ssv") => {
            let Ok((iname, pname, value)) = call.args::<(String, String, OwnedValue)>() else {
                return;
            };
            if iname != iface.name {
                return call.dbus_error(INVALID_ARGS, &bad_iface(&iname)).await;
            }
            let Some(p) = iface.property(&pname) else {
                return call
                    .dbus_error(INVALID_ARGS, &format!("No such property “{pname}”"))
                    .await;
            };
            if !p.writable {
                return call
                    .dbus_error(INVALID_ARGS, &format!("Property “{pname}” is not writable"))
                    .await;
            }
            let on = match &*value {
                Value::Bool(b) => *b,
                other => {
                    return call
                        .dbus_error(
                            INVALID_ARGS,
                            &format!(
                                "Error setting property “{pname}”: Expected type “b” but got “{}”",
                                other.value_signature()
                            ),
                        )
                        .await;
                }
            };
            let r = match &holder {
                Holder::Domain(Ok(obj)) => set_autostart(&call.driver, obj, on).await,
                Holder::StoragePool(Ok(p)) => call.driver.storage().storage_pool_set_autostart(p, on),
                Holder::Network(Ok(n)) => call.driver.networks().network_set_autostart(n, on),
                Holder::Interface(Err(e))
                | Holder::DomainSnapshot(Err(e))
                | Holder::Network(Err(e))
                | Holder::Domain(Err(e))
                | Holder::StoragePool(Err(e))
                | Holder::StorageVol(Err(e))
                | Holder::NodeDevice(Err(e)) => Err(e.clone()),
                Holder::Connect
                | Holder::DomainSnapshot(Ok(_))
                | Holder::StorageVol(Ok(_))
                | Holder::NodeDevice(Ok(_))
                | Holder::Interface(Ok(_)) => {
                    Err(Error::internal("no writable property"))
                }
            };
            match r {
                Ok(()) => {
                    let _ = call.ok(&()).await;
                }
                Err(e) => call.libvirt_error(&e).await,
            }
        }
        _ => {
            call.dbus_error(
                super::call::UNKNOWN_METHOD,
                &format!(
                    "Method “{member}” on interface “org.freedesktop.DBus.Properties” with signature “{sig}” does not exist"
                ),
            )
            .await
        }
    }
}

async fn set_autostart(driver: &Driver, obj: &Arc<DomainObj>, on: bool) -> Result<()> {
    driver.set_autostart(obj, on).await
}
