//! Relays the driver's lifecycle events as `org.libvirt.Connect.DomainEvent`.

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use zbus::Connection;
use zbus::zvariant::ObjectPath;

use crate::driver::{Driver, LifecycleEvent};

use super::paths::{CONNECT_PATH, domain_path};

/// A subscription taken before any event is to be relayed.
pub fn subscribe(driver: &Driver) -> Receiver<LifecycleEvent> {
    driver.subscribe()
}

/// Emits a signal for every lifecycle event until the driver goes away.
pub async fn relay(conn: Connection, mut rx: Receiver<LifecycleEvent>) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("dropped {n} lifecycle events");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let path = domain_path(&ev.uuid);
        let Ok(opath) = ObjectPath::try_from(path.as_str()) else {
            continue;
        };
        let body = (opath, ev.event as i32, ev.detail);
        if let Err(e) = conn
            .emit_signal(
                None::<&str>,
                CONNECT_PATH,
                "org.libvirt.Connect",
                "DomainEvent",
                &body,
            )
            .await
        {
            tracing::warn!("cannot emit DomainEvent: {e}");
        }
    }
}
