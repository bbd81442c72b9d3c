//! `org.freedesktop.DBus.Properties` for the Connect and Domain objects,
//! with libvirt-dbus's encoding: `Get` gives `v(value)`, `GetAll` gives
//! `a{s v(v(value))}` and leaves out properties whose getter fails.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::zvariant::{OwnedValue, Str, Structure, Value};

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
        "SchedulerType" => {
            Value::Structure(Structure::from(crate::driver::tuning::get_scheduler_type(obj)?))
        }
        "Updated" => Value::Bool(false),
        "UUID" => Value::Str(Str::from(info.uuid.to_string())),
        _ => return Err(Error::internal(format!("no property {name}"))),
    })
}

/// The object a Properties call is about.
pub enum Holder {
    Connect,
    /// A domain path; `None` if it names no existing domain (with the
    /// lookup error to report).
    Domain(std::result::Result<Arc<DomainObj>, Error>),
}

impl Holder {
    fn iface(&self) -> &'static Interface {
        match self {
            Holder::Connect => &spec::CONNECT,
            Holder::Domain(_) => &spec::DOMAIN,
        }
    }

    fn get(&self, name: &str) -> Result<Value<'static>> {
        match self {
            Holder::Connect => connect_prop(name),
            Holder::Domain(Ok(obj)) => domain_prop(obj, name),
            Holder::Domain(Err(e)) => Err(e.clone()),
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
            match holder.get(&pname) {
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
                if let Ok(v) = holder.get(p.name) {
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
                Holder::Domain(Err(e)) => Err(e.clone()),
                Holder::Connect => Err(Error::internal("no writable property")),
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
