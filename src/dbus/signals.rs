//! Relays the driver's lifecycle events as `org.libvirt.Connect.DomainEvent`.

use tokio::sync::broadcast::error::RecvError;
use zbus::Connection;
use zbus::zvariant::ObjectPath;

use crate::driver::Driver;

use super::paths::{CONNECT_PATH, domain_path};

/// Emits a signal for every lifecycle event until the driver goes away.
pub async fn relay(conn: Connection, driver: Driver) {
    let mut rx = driver.subscribe();
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
