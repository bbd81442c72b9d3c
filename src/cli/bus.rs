//! The D-Bus side: one connection to `org.libvirt`, the connect object
//! chosen from the URI as libvirt-dbus maps them, and synchronous calls.

use std::collections::HashMap;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use zbus::Connection;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Type, Value};

use super::error::{CliError, Result};

pub const DEST: &str = "org.libvirt";
pub const CONNECT: &str = "org.libvirt.Connect";
pub const DOMAIN: &str = "org.libvirt.Domain";
pub const CONSOLE: &str = "org.oxvirt.Console";
const PROPS: &str = "org.freedesktop.DBus.Properties";

/// Which bus to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusChoice {
    System,
    Session,
    Address(String),
}

/// The connect object path for a libvirt URI, and whether the URI names
/// a per-user (session) driver. Query parameters (`?socket=...`) are
/// ignored.
pub fn uri_to_path(uri: &str) -> Option<(&'static str, bool)> {
    let base = uri.split('?').next().unwrap_or(uri).trim_end_matches('/');
    let (scheme, rest) = base.split_once(':')?;
    let scheme = scheme.split('+').next().unwrap_or(scheme);
    let path = rest.trim_start_matches('/');
    let session = path == "session";
    let obj = match scheme {
        "qemu" | "kvm" => "/org/libvirt/QEMU",
        "test" => "/org/libvirt/Test",
        "uml" => "/org/libvirt/UML",
        "vbox" => "/org/libvirt/VBox",
        "bhyve" => "/org/libvirt/BHyve",
        "lxc" => "/org/libvirt/LXC",
        "openvz" => "/org/libvirt/OpenVZ",
        "vz" => "/org/libvirt/VZ",
        "xen" => "/org/libvirt/Xen",
        "vmwarefusion" => "/org/libvirt/VMwareFusion",
        "vmwareplayer" => "/org/libvirt/VMwarePlayer",
        "vmwarews" => "/org/libvirt/VMwareWS",
        _ => return None,
    };
    Some((obj, session))
}

/// An open connection to the daemon.
pub struct Bus {
    rt: tokio::runtime::Runtime,
    conn: Connection,
    /// The connect object, e.g. `/org/libvirt/QEMU`.
    pub root: String,
    /// The URI the client was asked for (as `virsh uri` prints it).
    pub uri: String,
}

/// Strips the extra variant level that libvirt-dbus puts around values
/// of `GetAll` and typed-parameter dictionaries.
pub fn unwrap_value<'a>(v: &'a Value<'a>) -> &'a Value<'a> {
    match v {
        Value::Value(inner) => unwrap_value(inner),
        other => other,
    }
}

/// A typed-parameter record with its values unwrapped.
pub type Params = HashMap<String, OwnedValue>;

pub fn param_u64(p: &Params, key: &str) -> Option<u64> {
    let v = p.get(key)?;
    match unwrap_value(v) {
        Value::U64(x) => Some(*x),
        Value::U32(x) => Some(u64::from(*x)),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

pub fn param_i64(p: &Params, key: &str) -> Option<i64> {
    let v = p.get(key)?;
    match unwrap_value(v) {
        Value::U64(x) => i64::try_from(*x).ok(),
        Value::U32(x) => Some(i64::from(*x)),
        Value::I32(x) => Some(i64::from(*x)),
        Value::I64(x) => Some(*x),
        _ => None,
    }
}

pub fn param_bool(p: &Params, key: &str) -> Option<bool> {
    match unwrap_value(p.get(key)?) {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

pub fn param_str(p: &Params, key: &str) -> Option<String> {
    match unwrap_value(p.get(key)?) {
        Value::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

impl Bus {
    /// Connects to the chosen bus. `uri` selects the connect object.
    pub fn open(choice: Option<BusChoice>, uri: &str) -> Result<Bus> {
        let Some((root, session_uri)) = uri_to_path(uri) else {
            return Err(CliError::ctx("failed to connect to the hypervisor")
                .with_msg(format!("no connection driver available for {uri}")));
        };
        let choice = choice.unwrap_or(if session_uri {
            BusChoice::Session
        } else {
            BusChoice::System
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::msg(format!("cannot start the runtime: {e}")))?;
        let conn = rt
            .block_on(async {
                match &choice {
                    BusChoice::System => Connection::system().await,
                    BusChoice::Session => Connection::session().await,
                    BusChoice::Address(a) => {
                        zbus::connection::Builder::address(a.as_str())?
                            .build()
                            .await
                    }
                }
            })
            .map_err(|e| {
                CliError::ctx("failed to connect to the hypervisor")
                    .with_msg(format!("Failed to connect to the D-Bus bus: {e}"))
            })?;
        Ok(Bus {
            rt,
            conn,
            root: root.to_string(),
            uri: uri.to_string(),
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Calls `iface.method` on `path` and decodes the reply.
    pub fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<R>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + Type,
    {
        let msg =
            self.rt.block_on(
                self.conn
                    .call_method(Some(DEST), path, Some(iface), method, body),
            )?;
        Ok(msg.body().deserialize::<R>()?)
    }

    /// Calls a method returning nothing.
    pub fn call0<B>(&self, path: &str, iface: &str, method: &str, body: &B) -> Result<()>
    where
        B: Serialize + DynamicType,
    {
        self.rt.block_on(
            self.conn
                .call_method(Some(DEST), path, Some(iface), method, body),
        )?;
        Ok(())
    }

    /// A method of `org.libvirt.Connect`.
    pub fn connect<B, R>(&self, method: &str, body: &B) -> Result<R>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + Type,
    {
        let root = self.root.clone();
        self.call(&root, CONNECT, method, body)
    }

    /// `Properties.Get` of one property.
    pub fn prop<R>(&self, path: &str, iface: &str, name: &str) -> Result<R>
    where
        R: TryFrom<OwnedValue>,
    {
        let v: OwnedValue = self.call(path, PROPS, "Get", &(iface, name))?;
        R::try_from(v).map_err(|_| CliError::msg(format!("unexpected type of property {name}")))
    }

    /// `Properties.Set` of one property.
    pub fn set_prop<'a>(&self, path: &str, iface: &str, name: &str, v: Value<'a>) -> Result<()> {
        self.call0(path, PROPS, "Set", &(iface, name, v))
    }

    /// Every domain path, filtered by `virConnectListAllDomainsFlags`.
    pub fn list_domains(&self, flags: u32) -> Result<Vec<OwnedObjectPath>> {
        self.connect("ListDomains", &(flags,))
    }
}

impl CliError {
    pub fn with_msg(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            uri_to_path("qemu:///system"),
            Some(("/org/libvirt/QEMU", false))
        );
        assert_eq!(
            uri_to_path("qemu:///session"),
            Some(("/org/libvirt/QEMU", true))
        );
        assert_eq!(
            uri_to_path("qemu:///system?socket=/x/y"),
            Some(("/org/libvirt/QEMU", false))
        );
        assert_eq!(
            uri_to_path("test:///default"),
            Some(("/org/libvirt/Test", false))
        );
        assert_eq!(uri_to_path("nope:///"), None);
    }
}
