//! Storage pool and network event callbacks
//! (`virConnectStoragePoolEventRegisterAny`,
//! `virConnectNetworkEventRegisterAny`): the sub-drivers' lifecycle and
//! refresh events, as MESSAGEs to the connections that registered for
//! them. Node device callbacks are registered too; no node device
//! changes, so they never fire.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use crate::driver::network::NetworkEvent;
use crate::driver::storage::{PoolEvent, PoolEventKind};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, reply, void};
use super::conn::{Conn, ObjectKind};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};
use super::xdr::to_bytes;

/// `VIR_STORAGE_POOL_EVENT_ID_LIFECYCLE`, `_REFRESH`, `_LAST`.
const EVENT_ID_LIFECYCLE: i32 = 0;
const EVENT_ID_REFRESH: i32 = 1;
const EVENT_ID_LAST: i32 = 2;

/// Runs a storage pool event procedure; `None` when `proc_` is not one.
pub fn call(conn: &Arc<Conn>, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let r = match proc_ {
        procs::CONNECT_STORAGE_POOL_EVENT_REGISTER_ANY => (|| {
            let a: g::ConnectStoragePoolEventRegisterAnyArgs = args(p)?;
            if !(0..EVENT_ID_LAST).contains(&a.event_id) {
                return Err(Error::invalid_arg(format!(
                    "unsupported storage pool event ID {}",
                    a.event_id
                )));
            }
            let id = conn.shared.next_callback.fetch_add(1, Ordering::SeqCst);
            conn.add_object_callback(
                ObjectKind::StoragePool,
                id,
                a.event_id,
                a.pool.map(|p| Uuid::from_bytes(p.uuid)),
            );
            conn.set_object_event_task_if_none(ObjectKind::StoragePool, || {
                let rx = conn.driver().storage().subscribe();
                tokio::spawn(forward(Arc::downgrade(conn), rx)).abort_handle()
            });
            Ok(Outcome::Reply(to_bytes(
                &g::ConnectStoragePoolEventRegisterAnyRet { callback_id: id },
            )))
        })(),
        procs::CONNECT_NETWORK_EVENT_REGISTER_ANY => (|| {
            let a: g::ConnectNetworkEventRegisterAnyArgs = args(p)?;
            // VIR_NETWORK_EVENT_ID_LAST of libvirt 9.0.
            check_id(a.event_id, 1, "network")?;
            let id = conn.shared.next_callback.fetch_add(1, Ordering::SeqCst);
            conn.add_object_callback(
                ObjectKind::Network,
                id,
                a.event_id,
                a.net.map(|n| Uuid::from_bytes(n.uuid)),
            );
            conn.set_object_event_task_if_none(ObjectKind::Network, || {
                let rx = conn.driver().networks().subscribe();
                tokio::spawn(forward_network(Arc::downgrade(conn), rx)).abort_handle()
            });
            reply(&g::ConnectNetworkEventRegisterAnyRet { callback_id: id })
        })(),
        procs::CONNECT_NODE_DEVICE_EVENT_REGISTER_ANY => (|| {
            let a: g::ConnectNodeDeviceEventRegisterAnyArgs = args(p)?;
            // VIR_NODE_DEVICE_EVENT_ID_LAST of libvirt 9.0.
            check_id(a.event_id, 2, "node device")?;
            let id = quiet(conn, procs::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY);
            reply(&g::ConnectNodeDeviceEventRegisterAnyRet { callback_id: id })
        })(),
        procs::CONNECT_NETWORK_EVENT_DEREGISTER_ANY => (|| {
            let a: g::ConnectNetworkEventDeregisterAnyArgs = args(p)?;
            if !conn.remove_object_callback(ObjectKind::Network, a.callback_id) {
                return Err(Error::new(
                    ErrorCode::InvalidArg,
                    ErrorDomain::Remote,
                    format!("network event callback {} not registered", a.callback_id),
                ));
            }
            void()
        })(),
        procs::CONNECT_NODE_DEVICE_EVENT_DEREGISTER_ANY => (|| {
            let a: g::ConnectNodeDeviceEventDeregisterAnyArgs = args(p)?;
            if !conn.remove_quiet_callback(a.callback_id, proc_) {
                return Err(Error::new(
                    ErrorCode::InvalidArg,
                    ErrorDomain::Remote,
                    format!("event callback {} not registered", a.callback_id),
                ));
            }
            void()
        })(),
        procs::CONNECT_STORAGE_POOL_EVENT_DEREGISTER_ANY => (|| {
            let a: g::ConnectStoragePoolEventDeregisterAnyArgs = args(p)?;
            if !conn.remove_object_callback(ObjectKind::StoragePool, a.callback_id) {
                return Err(Error::new(
                    ErrorCode::InvalidArg,
                    ErrorDomain::Remote,
                    format!(
                        "storage pool event callback {} not registered",
                        a.callback_id
                    ),
                ));
            }
            Ok(Outcome::Reply(Vec::new()))
        })(),
        _ => return None,
    };
    Some(r)
}

fn check_id(event_id: i32, last: i32, kind: &str) -> Result<()> {
    if !(0..last).contains(&event_id) {
        return Err(Error::invalid_arg(format!(
            "unsupported {kind} event ID {event_id}"
        )));
    }
    Ok(())
}

/// Registers a callback of a kind without events; returns its id.
fn quiet(conn: &Arc<Conn>, deregister_proc: i32) -> i32 {
    let id = conn.shared.next_callback.fetch_add(1, Ordering::SeqCst);
    conn.add_quiet_callback(id, deregister_proc);
    id
}

async fn forward(conn: std::sync::Weak<Conn>, mut rx: tokio::sync::broadcast::Receiver<PoolEvent>) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("storage event listener lagged, {n} events lost");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(conn) = conn.upgrade() else { return };
        let pool = g::NonnullStoragePool {
            name: ev.pool.name.clone(),
            uuid: *ev.pool.uuid.as_bytes(),
        };
        for (callback_id, event_id, filter) in conn.object_callbacks(ObjectKind::StoragePool) {
            if filter.is_some_and(|u| u != ev.pool.uuid) {
                continue;
            }
            let msg = match (&ev.kind, event_id) {
                (PoolEventKind::Lifecycle { event, detail }, EVENT_ID_LIFECYCLE) => (
                    procs::STORAGE_POOL_EVENT_LIFECYCLE,
                    to_bytes(&g::StoragePoolEventLifecycleMsg {
                        callback_id,
                        pool: pool.clone(),
                        event: *event,
                        detail: *detail,
                    }),
                ),
                (PoolEventKind::Refresh, EVENT_ID_REFRESH) => (
                    procs::STORAGE_POOL_EVENT_REFRESH,
                    to_bytes(&g::StoragePoolEventRefreshMsg {
                        callback_id,
                        pool: pool.clone(),
                    }),
                ),
                _ => continue,
            };
            conn.send_event(msg.0, &msg.1).await;
        }
    }
}

async fn forward_network(
    conn: std::sync::Weak<Conn>,
    mut rx: tokio::sync::broadcast::Receiver<NetworkEvent>,
) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("network event listener lagged, {n} events lost");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(conn) = conn.upgrade() else { return };
        for (callback_id, _, filter) in conn.object_callbacks(ObjectKind::Network) {
            if filter.is_some_and(|u| u != ev.net.uuid) {
                continue;
            }
            let msg = to_bytes(&g::NetworkEventLifecycleMsg {
                callback_id,
                net: g::NonnullNetwork {
                    name: ev.net.name.clone(),
                    uuid: *ev.net.uuid.as_bytes(),
                },
                event: ev.event,
                detail: ev.detail,
            });
            conn.send_event(procs::NETWORK_EVENT_LIFECYCLE, &msg).await;
        }
    }
}
