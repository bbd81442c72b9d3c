//! Domain event callbacks: registration bookkeeping and forwarding the
//! driver's domain events (lifecycle, reboot, balloon change, devices
//! added and removed) as
//! MESSAGEs to the connections that asked.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::broadcast::error::RecvError;

use crate::driver::{DomainEvent, EventKind, EventType};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::conn::{Callback, Conn};
use super::protocol::{
    BalloonChangeMsg, CallbackBalloonChangeMsg, CallbackDeviceAliasMsg, CallbackDeviceRemovedMsg,
    CallbackDomMsg, CallbackLifecycleMsg, DeviceRemovedMsg, Dom, LifecycleMsg, procs,
};
use super::xdr::to_bytes;

/// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`.
const EVENT_ID_LIFECYCLE: i32 = 0;
/// `VIR_DOMAIN_EVENT_ID_REBOOT`.
const EVENT_ID_REBOOT: i32 = 1;
/// `VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE`.
const EVENT_ID_BALLOON_CHANGE: i32 = 13;
/// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`.
const EVENT_ID_DEVICE_REMOVED: i32 = 15;
/// `VIR_DOMAIN_EVENT_ID_DEVICE_ADDED` (no legacy form).
const EVENT_ID_DEVICE_ADDED: i32 = 19;
/// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED` (no legacy form).
const EVENT_ID_DEVICE_REMOVAL_FAILED: i32 = 22;
/// Number of event ids libvirt 9.0 knows (0..=26).
const EVENT_ID_LAST: i32 = 27;

fn check_event_id(event_id: i32) -> Result<()> {
    if !(0..EVENT_ID_LAST).contains(&event_id) {
        return Err(Error::invalid_arg(format!(
            "unsupported event ID {event_id}"
        )));
    }
    Ok(())
}

/// CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: returns the callback id.
pub fn register(conn: &Arc<Conn>, event_id: i32, filter: Option<uuid::Uuid>) -> Result<i32> {
    check_event_id(event_id)?;
    let id = conn.shared.next_callback.fetch_add(1, Ordering::SeqCst);
    conn.add_callback(
        id,
        Callback {
            event_id,
            filter,
            legacy: false,
        },
    );
    ensure_forwarder(conn);
    Ok(id)
}

/// CONNECT_DOMAIN_EVENT_REGISTER_ANY (the form without callback ids).
pub fn register_legacy(conn: &Arc<Conn>, event_id: i32) -> Result<()> {
    check_event_id(event_id)?;
    let id = conn.shared.next_callback.fetch_add(1, Ordering::SeqCst);
    conn.add_callback(
        id,
        Callback {
            event_id,
            filter: None,
            legacy: true,
        },
    );
    ensure_forwarder(conn);
    Ok(())
}

pub fn deregister(conn: &Conn, callback_id: i32) -> Result<()> {
    if conn.remove_callback(callback_id) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InvalidArg,
            ErrorDomain::Remote,
            format!("callback ID {callback_id} not registered"),
        ))
    }
}

pub fn deregister_legacy(conn: &Conn, event_id: i32) -> Result<()> {
    if conn.remove_legacy(event_id) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::Remote,
            format!("domain event {event_id} not registered"),
        ))
    }
}

fn ensure_forwarder(conn: &Arc<Conn>) {
    conn.set_event_task_if_none(|| {
        let rx = conn.driver().subscribe();
        // The task holds only a weak reference so that it never keeps a
        // finished connection alive.
        let weak = Arc::downgrade(conn);
        tokio::spawn(forward(weak, rx)).abort_handle()
    });
}

async fn forward(
    conn: std::sync::Weak<Conn>,
    mut rx: tokio::sync::broadcast::Receiver<DomainEvent>,
) {
    loop {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("event listener lagged, {n} events lost");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(conn) = conn.upgrade() else { return };
        deliver(&conn, &ev).await;
    }
}

/// The domain as an event shows it: the id it has now, -1 once stopped.
fn event_dom(conn: &Conn, ev: &DomainEvent) -> Dom {
    let stopped = matches!(
        ev.kind,
        EventKind::Lifecycle {
            event: EventType::Stopped | EventType::Undefined,
            ..
        }
    );
    let id = if stopped {
        -1
    } else {
        conn.driver()
            .lookup_by_uuid(&ev.uuid)
            .ok()
            .and_then(|o| o.info().ok())
            .and_then(|i| i.id)
            .unwrap_or(-1)
    };
    Dom {
        name: ev.name.clone(),
        uuid: *ev.uuid.as_bytes(),
        id,
    }
}

/// The event id of an event, and its MESSAGE (procedure and payload)
/// for a callback, or for the legacy registration without one.
fn message(ev: &DomainEvent, dom: Dom, callback: Option<i32>) -> (i32, i32, Vec<u8>) {
    match (&ev.kind, callback) {
        (EventKind::Lifecycle { event, detail }, cb) => {
            let msg = LifecycleMsg {
                dom,
                event: *event as i32,
                detail: *detail,
            };
            match cb {
                Some(callback_id) => (
                    EVENT_ID_LIFECYCLE,
                    procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
                    to_bytes(&CallbackLifecycleMsg { callback_id, msg }),
                ),
                None => (
                    EVENT_ID_LIFECYCLE,
                    procs::DOMAIN_EVENT_LIFECYCLE,
                    to_bytes(&msg),
                ),
            }
        }
        (EventKind::Reboot, Some(callback_id)) => (
            EVENT_ID_REBOOT,
            procs::DOMAIN_EVENT_CALLBACK_REBOOT,
            to_bytes(&CallbackDomMsg { callback_id, dom }),
        ),
        (EventKind::Reboot, None) => (EVENT_ID_REBOOT, procs::DOMAIN_EVENT_REBOOT, to_bytes(&dom)),
        (EventKind::BalloonChange { actual_kib }, cb) => {
            let msg = BalloonChangeMsg {
                dom,
                actual: *actual_kib,
            };
            match cb {
                Some(callback_id) => (
                    EVENT_ID_BALLOON_CHANGE,
                    procs::DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE,
                    to_bytes(&CallbackBalloonChangeMsg { callback_id, msg }),
                ),
                None => (
                    EVENT_ID_BALLOON_CHANGE,
                    procs::DOMAIN_EVENT_BALLOON_CHANGE,
                    to_bytes(&msg),
                ),
            }
        }
        (EventKind::DeviceRemoved { alias }, cb) => {
            let msg = DeviceRemovedMsg {
                dom,
                dev_alias: alias.clone(),
            };
            match cb {
                Some(callback_id) => (
                    EVENT_ID_DEVICE_REMOVED,
                    procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED,
                    to_bytes(&CallbackDeviceRemovedMsg { callback_id, msg }),
                ),
                None => (
                    EVENT_ID_DEVICE_REMOVED,
                    procs::DOMAIN_EVENT_DEVICE_REMOVED,
                    to_bytes(&msg),
                ),
            }
        }
        // libvirt has no legacy message for these: a legacy registration
        // gets nothing (the id never matches).
        (EventKind::DeviceAdded { alias }, cb) => (
            if cb.is_some() {
                EVENT_ID_DEVICE_ADDED
            } else {
                -1
            },
            procs::DOMAIN_EVENT_CALLBACK_DEVICE_ADDED,
            to_bytes(&CallbackDeviceAliasMsg {
                callback_id: cb.unwrap_or(-1),
                dom,
                dev_alias: alias.clone(),
            }),
        ),
        (EventKind::DeviceRemovalFailed { alias }, cb) => (
            if cb.is_some() {
                EVENT_ID_DEVICE_REMOVAL_FAILED
            } else {
                -1
            },
            procs::DOMAIN_EVENT_CALLBACK_DEVICE_REMOVAL_FAILED,
            to_bytes(&CallbackDeviceAliasMsg {
                callback_id: cb.unwrap_or(-1),
                dom,
                dev_alias: alias.clone(),
            }),
        ),
    }
}

async fn deliver(conn: &Conn, ev: &DomainEvent) {
    let dom = event_dom(conn, ev);
    for (id, cb) in conn.callbacks() {
        if cb.filter.is_some_and(|u| u != ev.uuid) {
            continue;
        }
        let (event_id, proc_, payload) = message(ev, dom.clone(), (!cb.legacy).then_some(id));
        if cb.event_id == event_id {
            conn.send_event(proc_, &payload).await;
        }
    }
}
