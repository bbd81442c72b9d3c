//! The libvirt-dbus compatible front end: `org.libvirt` with
//! `org.libvirt.Connect` at `/org/libvirt/QEMU`, `org.libvirt.Domain` per
//! domain, `org.libvirt.StoragePool` per storage pool and
//! `org.libvirt.StorageVol` per volume, as libvirt-dbus 1.4.1 serves them.

pub mod call;
pub mod connect;
pub mod console;
pub mod domain;
pub mod interface;
pub mod introspect;
pub mod network;
pub mod nodedev;
pub mod paths;
pub mod props;
pub mod server;
pub mod signals;
pub mod snapshot;
pub mod spec;
pub mod spec_types;
pub mod stats;
pub mod storage;

use zbus::connection::Builder;

use crate::driver::Driver;
use crate::error::{Error, Result};

/// The well-known name.
pub const BUS_NAME: &str = "org.libvirt";

/// Which bus to serve on.
#[derive(Clone, Debug)]
pub enum Bus {
    System,
    Session,
    Address(String),
}

fn bus_error(e: zbus::Error) -> Error {
    Error::internal(format!("D-Bus: {e}"))
}

/// Connects, takes the name, and serves until the connection ends.
pub async fn serve(bus: Bus, driver: Driver) -> Result<()> {
    let builder = match &bus {
        Bus::System => Builder::system().map_err(bus_error)?,
        Bus::Session => Builder::session().map_err(bus_error)?,
        Bus::Address(a) => Builder::address(a.as_str()).map_err(bus_error)?,
    };
    let conn = builder.build().await.map_err(bus_error)?;
    // Listen before the name is visible, so no early call is missed.
    let stream = zbus::MessageStream::from(&conn);
    let serve = tokio::spawn(server::run(stream, conn.clone(), driver.clone()));
    // Subscribed before autostart, so its STARTED events are relayed.
    tokio::spawn(signals::relay(conn.clone(), signals::subscribe(&driver)));
    tokio::spawn(signals::relay_storage(
        conn.clone(),
        signals::subscribe_storage(&driver),
    ));
    tokio::spawn(signals::relay_networks(
        conn.clone(),
        driver.networks().subscribe(),
    ));
    conn.request_name(BUS_NAME).await.map_err(bus_error)?;
    driver.autostart();
    tracing::info!(?bus, "serving {BUS_NAME}");
    let _ = serve.await;
    Err(Error::internal("Disconnected from D-Bus."))
}

/// The interfaces served whose XML `interface_xml` gives, by short name.
pub const SERVED: &[&str] = &[
    "Connect",
    "Domain",
    "DomainSnapshot",
    "Interface",
    "Network",
    "NodeDevice",
    "StoragePool",
    "StorageVol",
];

/// The introspection XML of a served `org.libvirt.*` interface.
pub fn interface_xml(which: &str) -> Option<String> {
    let iface = match which {
        "Connect" => &spec::CONNECT,
        "Domain" => &spec::DOMAIN,
        "DomainSnapshot" => &spec::DOMAIN_SNAPSHOT,
        "StoragePool" => &spec::STORAGE_POOL,
        "StorageVol" => &spec::STORAGE_VOL,
        "NodeDevice" => &spec::NODE_DEVICE,
        "Network" => &spec::NETWORK,
        "Interface" => &spec::INTERFACE,
        _ => return None,
    };
    let mut xml = String::from(introspect::DOCTYPE);
    xml.push_str("<node>\n");
    xml.push_str(&introspect::interface_xml(iface));
    xml.push_str("</node>\n");
    Some(xml)
}
