//! The message loop: every method call addressed to us is routed by path
//! and interface, argument signatures are checked against [`super::spec`],
//! and each call runs in its own task.

use std::sync::Arc;

use futures_util::StreamExt;
use zbus::message::Type as MsgType;
use zbus::{Connection, MessageStream};

use crate::driver::{DomainObj, Driver};
use crate::error::Error;

use super::call::{Call, INVALID_ARGS, UNKNOWN_METHOD};
use super::introspect::node_xml;
use super::paths::{Target, classify, domain_path, uuid_from_segment};
use super::props::{self, Holder};
use super::spec;
use super::spec_types::Interface;
use super::{connect, domain};

/// Serves calls until the connection closes.
pub async fn run(mut stream: MessageStream, conn: Connection, driver: Driver) {
    while let Some(item) = stream.next().await {
        let Ok(msg) = item else { continue };
        if msg.message_type() != MsgType::MethodCall {
            continue;
        }
        let call = Call {
            conn: conn.clone(),
            msg,
            driver: driver.clone(),
        };
        tokio::spawn(async move { dispatch(call).await });
    }
    tracing::warn!("D-Bus connection closed");
}

fn resolve_domain(driver: &Driver, seg: &str) -> Result<Arc<DomainObj>, Error> {
    let uuid = uuid_from_segment(seg)?;
    driver.lookup_by_uuid(&uuid)
}

async fn dispatch(call: Call) {
    let hdr = call.msg.header();
    let path = hdr.path().map(|p| p.to_string()).unwrap_or_default();
    let iface = hdr.interface().map(|i| i.to_string());
    let member = hdr.member().map(|m| m.to_string()).unwrap_or_default();
    drop(hdr);
    let target = classify(&path);
    tracing::debug!(path, ?iface, member, "call");

    match iface.as_deref() {
        Some("org.freedesktop.DBus.Introspectable") if member == "Introspect" => {
            return introspect(&call, &target).await;
        }
        Some("org.freedesktop.DBus.Peer") => return peer(&call, &member).await,
        _ => {}
    }
    let (own, holder): (&'static Interface, Holder) = match &target {
        Target::Connect => (&spec::CONNECT, Holder::Connect),
        Target::Domain(seg) => (
            &spec::DOMAIN,
            Holder::Domain(resolve_domain(&call.driver, seg)),
        ),
        Target::Domains => (
            &spec::DOMAIN,
            Holder::Domain(Err(Error::invalid_arg("Invalid UUID"))),
        ),
        _ => {
            return call
                .dbus_error(
                    UNKNOWN_METHOD,
                    &format!("Object does not exist at path “{path}”"),
                )
                .await;
        }
    };
    if iface.as_deref() == Some("org.freedesktop.DBus.Properties") {
        return props::handle(&call, holder, &member).await;
    }
    if let Some(i) = iface.as_deref()
        && i != own.name
    {
        return call
            .dbus_error(
                UNKNOWN_METHOD,
                &format!(
                    "Method “{member}” on interface “{i}” with signature “{}” does not exist",
                    call.signature()
                ),
            )
            .await;
    }
    let Some(method) = own.method(&member) else {
        return call
            .dbus_error(UNKNOWN_METHOD, &format!("No such method “{member}”"))
            .await;
    };
    let sig = call.signature();
    let want = method.in_signature();
    if sig != want {
        return call
            .dbus_error(
                INVALID_ARGS,
                &format!("Type of message, “({sig})”, does not match expected type “({want})”"),
            )
            .await;
    }
    let result = match holder {
        Holder::Connect => connect::handle(&call, method).await,
        Holder::Domain(Ok(obj)) => domain::handle(&call, method, &obj).await,
        Holder::Domain(Err(e)) => Err(e),
    };
    if let Err(e) = result {
        call.libvirt_error(&e).await;
    }
}

async fn introspect(call: &Call, target: &Target) {
    let xml = match target {
        Target::Parent(children) => {
            let c: Vec<String> = children.iter().map(|s| s.to_string()).collect();
            node_xml(&[], &c)
        }
        Target::Connect => node_xml(&[&spec::CONNECT], &["domain".to_string()]),
        Target::Domains => {
            let children: Vec<String> = call
                .driver
                .list(0)
                .unwrap_or_default()
                .iter()
                .map(|d| {
                    domain_path(&d.uuid)
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            node_xml(&[&spec::DOMAIN], &children)
        }
        Target::Domain(_) => node_xml(&[&spec::DOMAIN], &[]),
        Target::Unknown => node_xml(&[], &[]),
    };
    let _ = call.ok(&(xml,)).await;
}

async fn peer(call: &Call, member: &str) {
    match member {
        "Ping" => {
            let _ = call.ok(&()).await;
        }
        "GetMachineId" => {
            let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
            let _ = call.ok(&(id.trim().to_string(),)).await;
        }
        _ => {
            call.dbus_error(UNKNOWN_METHOD, &format!("No such method “{member}”"))
                .await
        }
    }
}
