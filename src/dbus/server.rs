//! The message loop: every method call addressed to us is routed by path
//! and interface, argument signatures are checked against [`super::spec`],
//! and each call runs in its own task.

use std::sync::Arc;

use futures_util::StreamExt;
use zbus::message::Type as MsgType;
use zbus::{Connection, MessageStream};

use crate::driver::storage::flags;
use crate::driver::{DomainObj, Driver};
use crate::error::Error;

use super::call::{Call, INVALID_ARGS, UNKNOWN_METHOD};
use super::introspect::node_xml;
use super::paths::{
    CONNECT_CHILDREN, Target, classify, domain_path, interface_object_path, network_object_path,
    node_device_object_path, pool_path, snapshot_object_path, uuid_from_segment, vol_path,
};
use super::props::{self, Holder};
use super::spec;
use super::spec_types::Interface;
use super::{connect, console, domain, interface, network, nodedev, snapshot, storage};

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
    if iface.as_deref() == Some(console::CONSOLE.name)
        && let Target::Domain(seg) = &target
    {
        let result = match resolve_domain(&call.driver, seg) {
            Ok(obj) => console::handle(&call, &member, &obj).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            call.libvirt_error(&e).await;
        }
        return;
    }
    let st = call.driver.storage();
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
        // The collection nodes: libvirt-dbus reads an empty segment.
        Target::StoragePool(seg) => (
            &spec::STORAGE_POOL,
            Holder::StoragePool(storage::resolve_pool(st, seg)),
        ),
        Target::StoragePools => (
            &spec::STORAGE_POOL,
            Holder::StoragePool(storage::resolve_pool(st, "")),
        ),
        Target::StorageVol(seg) => (
            &spec::STORAGE_VOL,
            Holder::StorageVol(storage::resolve_vol(st, seg)),
        ),
        Target::StorageVols => (
            &spec::STORAGE_VOL,
            Holder::StorageVol(storage::resolve_vol(st, "")),
        ),
        Target::NodeDevice(seg) => (
            &spec::NODE_DEVICE,
            Holder::NodeDevice(nodedev::resolve(call.driver.nodedev(), seg)),
        ),
        Target::Network(seg) => (
            &spec::NETWORK,
            Holder::Network(network::resolve(call.driver.networks(), seg)),
        ),
        Target::Interface(seg) => (&spec::INTERFACE, Holder::Interface(interface::resolve(seg))),
        Target::Interfaces => (&spec::INTERFACE, Holder::Interface(interface::resolve(""))),
        Target::Networks => (
            &spec::NETWORK,
            Holder::Network(network::resolve(call.driver.networks(), "")),
        ),
        Target::NodeDevices => (
            &spec::NODE_DEVICE,
            Holder::NodeDevice(nodedev::resolve(call.driver.nodedev(), "")),
        ),
        Target::DomainSnapshot(seg) => (
            &spec::DOMAIN_SNAPSHOT,
            Holder::DomainSnapshot(snapshot::resolve(&call.driver, seg)),
        ),
        Target::DomainSnapshots => (
            &spec::DOMAIN_SNAPSHOT,
            Holder::DomainSnapshot(snapshot::resolve(&call.driver, "")),
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
        Holder::StoragePool(Ok(p)) => storage::handle_pool(&call, method, &p).await,
        Holder::StorageVol(Ok(v)) => storage::handle_vol(&call, method, &v).await,
        Holder::NodeDevice(Ok(d)) => nodedev::handle(&call, method, &d).await,
        Holder::Network(Ok(n)) => network::handle(&call, method, &n).await,
        Holder::Interface(Ok(i)) => interface::handle(&call, method, &i).await,
        Holder::DomainSnapshot(Ok(s)) => snapshot::handle(&call, method, &s).await,
        Holder::DomainSnapshot(Err(e))
        | Holder::Interface(Err(e))
        | Holder::Network(Err(e))
        | Holder::Domain(Err(e))
        | Holder::StoragePool(Err(e))
        | Holder::StorageVol(Err(e))
        | Holder::NodeDevice(Err(e)) => Err(e),
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
        Target::Connect => {
            let c: Vec<String> = CONNECT_CHILDREN.iter().map(|s| s.to_string()).collect();
            node_xml(&[&spec::CONNECT], &c)
        }
        Target::Domains => {
            let children: Vec<String> = call
                .driver
                .list(0)
                .unwrap_or_default()
                .iter()
                .map(|d| last_segment(&domain_path(&d.uuid)))
                .collect();
            node_xml(&[&spec::DOMAIN], &children)
        }
        Target::Domain(_) => node_xml(&[&spec::DOMAIN, &console::CONSOLE], &[]),
        Target::StoragePools => {
            let st = call.driver.storage();
            let children: Vec<String> = st
                .connect_list_all_storage_pools(0)
                .unwrap_or_default()
                .iter()
                .map(|p| last_segment(&pool_path(&p.uuid)))
                .collect();
            node_xml(&[&spec::STORAGE_POOL], &children)
        }
        Target::StoragePool(_) => node_xml(&[&spec::STORAGE_POOL], &[]),
        Target::StorageVols => {
            // As libvirt-dbus enumerates them: the volumes of every
            // active pool.
            let st = call.driver.storage();
            let pools = st
                .connect_list_all_storage_pools(flags::list::ACTIVE)
                .unwrap_or_default();
            let children: Vec<String> = pools
                .iter()
                .flat_map(|p| st.storage_pool_list_all_volumes(p, 0).unwrap_or_default())
                .filter_map(|v| vol_path(&v.key))
                .map(|p| last_segment(&p))
                .collect();
            node_xml(&[&spec::STORAGE_VOL], &children)
        }
        Target::StorageVol(_) => node_xml(&[&spec::STORAGE_VOL], &[]),
        Target::Networks => {
            let children: Vec<String> = call
                .driver
                .networks()
                .connect_list_all_networks(0)
                .unwrap_or_default()
                .iter()
                .map(|n| last_segment(network_object_path(&n.uuid).as_str()))
                .collect();
            node_xml(&[&spec::NETWORK], &children)
        }
        Target::Network(_) => node_xml(&[&spec::NETWORK], &[]),
        Target::Interfaces => {
            let children: Vec<String> = crate::driver::interfaces::connect_list_all_interfaces(0)
                .unwrap_or_default()
                .iter()
                .filter_map(|i| interface_object_path(&i.mac).ok())
                .map(|p| last_segment(p.as_str()))
                .collect();
            node_xml(&[&spec::INTERFACE], &children)
        }
        Target::Interface(_) => node_xml(&[&spec::INTERFACE], &[]),
        Target::NodeDevices => {
            let children: Vec<String> = call
                .driver
                .nodedev()
                .connect_list_all_node_devices(0)
                .unwrap_or_default()
                .iter()
                .filter_map(|n| node_device_object_path(n).ok())
                .map(|p| last_segment(p.as_str()))
                .collect();
            node_xml(&[&spec::NODE_DEVICE], &children)
        }
        Target::NodeDevice(_) => node_xml(&[&spec::NODE_DEVICE], &[]),
        Target::DomainSnapshots => {
            // As libvirt-dbus enumerates them: every snapshot of every
            // domain.
            let drv = &call.driver;
            let children: Vec<String> = drv
                .list(0)
                .unwrap_or_default()
                .iter()
                .flat_map(|d| {
                    drv.snapshot_list(d, 0)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|n| last_segment(snapshot_object_path(&d.uuid, &n).as_str()))
                        .collect::<Vec<_>>()
                })
                .collect();
            node_xml(&[&spec::DOMAIN_SNAPSHOT], &children)
        }
        Target::DomainSnapshot(_) => node_xml(&[&spec::DOMAIN_SNAPSHOT], &[]),
        Target::Unknown => node_xml(&[], &[]),
    };
    let _ = call.ok(&(xml,)).await;
}

/// The last segment of an object path, as a child node's name.
fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_string()
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
