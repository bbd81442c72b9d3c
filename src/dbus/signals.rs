//! Relays the driver's domain events: lifecycle events as
//! `org.libvirt.Connect.DomainEvent`, the others as the per-domain
//! signals of `org.libvirt.Domain` (`Reboot`, `BalloonChange`,
//! `DeviceAdded`, `DeviceRemoved`, `DeviceRemovalFailed`), as
//! libvirt-dbus does; and the storage sub-driver's pool events: lifecycle
//! events as `org.libvirt.Connect.StoragePoolEvent`, refreshes as the
//! pool's own `org.libvirt.StoragePool.Refresh` signal.

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use zbus::Connection;
use zbus::zvariant::ObjectPath;

use crate::driver::network::NetworkEvent;
use crate::driver::storage::{PoolEvent, PoolEventKind};
use crate::driver::{DomainEvent, Driver, EventKind};

use super::paths::{CONNECT_PATH, domain_path, network_object_path, pool_object_path};

/// A subscription taken before any event is to be relayed.
pub fn subscribe(driver: &Driver) -> Receiver<DomainEvent> {
    driver.subscribe()
}

/// Emits a signal for every domain event until the driver goes away.
pub async fn relay(conn: Connection, mut rx: Receiver<DomainEvent>) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("dropped {n} domain events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = domain_path(&ev.uuid);
        let Ok(opath) = ObjectPath::try_from(path.as_str()) else {
            continue;
        };
        let sent = match ev.kind {
            EventKind::DeviceAdded { alias } => {
                device_signal(&conn, &opath, "DeviceAdded", alias).await
            }
            EventKind::DeviceRemoved { alias } => {
                device_signal(&conn, &opath, "DeviceRemoved", alias).await
            }
            EventKind::DeviceRemovalFailed { alias } => {
                device_signal(&conn, &opath, "DeviceRemovalFailed", alias).await
            }
            EventKind::Lifecycle { event, detail } => {
                conn.emit_signal(
                    None::<&str>,
                    CONNECT_PATH,
                    "org.libvirt.Connect",
                    "DomainEvent",
                    &(opath, event as i32, detail),
                )
                .await
            }
            EventKind::Reboot => {
                conn.emit_signal(None::<&str>, &opath, "org.libvirt.Domain", "Reboot", &())
                    .await
            }
            EventKind::BalloonChange { actual_kib } => {
                conn.emit_signal(
                    None::<&str>,
                    &opath,
                    "org.libvirt.Domain",
                    "BalloonChange",
                    &(actual_kib,),
                )
                .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!("cannot emit a domain signal: {e}");
        }
    }
}

/// A domain's `DeviceAdded` or `DeviceRemoved` signal, naming the alias.
async fn device_signal(
    conn: &Connection,
    domain: &ObjectPath<'_>,
    member: &str,
    alias: String,
) -> zbus::Result<()> {
    conn.emit_signal(
        None::<&str>,
        domain,
        "org.libvirt.Domain",
        member,
        &(alias,),
    )
    .await
}

/// A subscription to the storage sub-driver's pool events.
pub fn subscribe_storage(driver: &Driver) -> Receiver<PoolEvent> {
    driver.storage().subscribe()
}

/// Emits a signal for every storage pool event until the sub-driver goes
/// away.
pub async fn relay_storage(conn: Connection, mut rx: Receiver<PoolEvent>) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("dropped {n} storage pool events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = pool_object_path(&ev.pool.uuid);
        let sent = match ev.kind {
            PoolEventKind::Lifecycle { event, detail } => {
                conn.emit_signal(
                    None::<&str>,
                    CONNECT_PATH,
                    "org.libvirt.Connect",
                    "StoragePoolEvent",
                    &(path, event, detail),
                )
                .await
            }
            PoolEventKind::Refresh => {
                conn.emit_signal(
                    None::<&str>,
                    &path,
                    "org.libvirt.StoragePool",
                    "Refresh",
                    &(),
                )
                .await
            }
        };
        if let Err(e) = sent {
            tracing::warn!("cannot emit a storage pool signal: {e}");
        }
    }
}

/// Emits `org.libvirt.Connect.NetworkEvent` for every network lifecycle
/// event until the sub-driver goes away (libvirt-dbus sends the event
/// without its detail).
pub async fn relay_networks(conn: Connection, mut rx: Receiver<NetworkEvent>) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("dropped {n} network events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = network_object_path(&ev.net.uuid);
        let sent = conn
            .emit_signal(
                None::<&str>,
                CONNECT_PATH,
                "org.libvirt.Connect",
                "NetworkEvent",
                &(path, ev.event),
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!("cannot emit a network signal: {e}");
        }
    }
}
