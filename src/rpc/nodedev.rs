//! Node-device procedures: decode the arguments, call the node-device
//! sub-driver (off the async workers: each call reads sysfs), encode the
//! reply.

use crate::driver::nodedev::NodeDev;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, check_max_names, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};

fn dev(name: String) -> g::NonnullNodeDevice {
    g::NonnullNodeDevice { name }
}

fn call_blocking(nd: &NodeDev, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let r = match proc_ {
        procs::CONNECT_LIST_ALL_NODE_DEVICES => (|| {
            let a: g::ConnectListAllNodeDevicesArgs = args(p)?;
            let list = nd.connect_list_all_node_devices(a.flags)?;
            let ret = list.len() as u32;
            let devices = if a.need_results != 0 {
                list.into_iter().map(dev).collect()
            } else {
                Vec::new()
            };
            reply(&g::ConnectListAllNodeDevicesRet { devices, ret })
        })(),
        procs::NODE_NUM_OF_DEVICES => (|| {
            let a: g::NodeNumOfDevicesArgs = args(p)?;
            let num = nd.node_num_of_devices(a.cap.as_deref(), a.flags)?;
            reply(&g::NodeNumOfDevicesRet { num })
        })(),
        procs::NODE_LIST_DEVICES => (|| {
            let a: g::NodeListDevicesArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_NODE_DEVICE_LIST_MAX,
                "REMOTE_NODE_DEVICE_LIST_MAX",
            )?;
            let names = nd.node_list_devices(a.cap.as_deref(), a.maxnames, a.flags)?;
            reply(&g::NodeListDevicesRet { names })
        })(),
        procs::NODE_DEVICE_LOOKUP_BY_NAME => (|| {
            let a: g::NodeDeviceLookupByNameArgs = args(p)?;
            let name = nd.node_device_lookup_by_name(&a.name)?;
            reply(&g::NodeDeviceLookupByNameRet { dev: dev(name) })
        })(),
        procs::NODE_DEVICE_GET_XML_DESC => (|| {
            let a: g::NodeDeviceGetXmlDescArgs = args(p)?;
            let xml = nd.node_device_get_xml_desc(&a.name, a.flags)?;
            reply(&g::NodeDeviceGetXmlDescRet { xml })
        })(),
        procs::NODE_DEVICE_GET_PARENT => (|| {
            let a: g::NodeDeviceGetParentArgs = args(p)?;
            let parent_name = nd.node_device_get_parent(&a.name)?;
            reply(&g::NodeDeviceGetParentRet { parent_name })
        })(),
        procs::NODE_DEVICE_NUM_OF_CAPS => (|| {
            let a: g::NodeDeviceNumOfCapsArgs = args(p)?;
            let num = nd.node_device_num_of_caps(&a.name)?;
            reply(&g::NodeDeviceNumOfCapsRet { num })
        })(),
        procs::NODE_DEVICE_LIST_CAPS => (|| {
            let a: g::NodeDeviceListCapsArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_NODE_DEVICE_CAPS_LIST_MAX,
                "REMOTE_NODE_DEVICE_CAPS_LIST_MAX",
            )?;
            let names = nd.node_device_list_caps(&a.name, a.maxnames)?;
            reply(&g::NodeDeviceListCapsRet { names })
        })(),
        procs::NODE_DEVICE_IS_ACTIVE => (|| {
            let a: g::NodeDeviceIsActiveArgs = args(p)?;
            let v = nd.node_device_is_active(&a.name)?;
            reply(&g::NodeDeviceIsActiveRet {
                active: i32::from(v),
            })
        })(),
        procs::NODE_DEVICE_IS_PERSISTENT => (|| {
            let a: g::NodeDeviceIsPersistentArgs = args(p)?;
            let v = nd.node_device_is_persistent(&a.name)?;
            reply(&g::NodeDeviceIsPersistentRet {
                persistent: i32::from(v),
            })
        })(),
        procs::NODE_DEVICE_GET_AUTOSTART => (|| {
            let a: g::NodeDeviceGetAutostartArgs = args(p)?;
            let v = nd.node_device_get_autostart(&a.name)?;
            reply(&g::NodeDeviceGetAutostartRet {
                autostart: i32::from(v),
            })
        })(),
        procs::NODE_DEVICE_SET_AUTOSTART => (|| {
            let a: g::NodeDeviceSetAutostartArgs = args(p)?;
            nd.node_device_set_autostart(&a.name, a.autostart != 0)?;
            void()
        })(),
        procs::NODE_DEVICE_CREATE_XML => (|| {
            let a: g::NodeDeviceCreateXmlArgs = args(p)?;
            let name = nd.node_device_create_xml(&a.xml_desc, a.flags)?;
            reply(&g::NodeDeviceCreateXmlRet { dev: dev(name) })
        })(),
        procs::NODE_DEVICE_DEFINE_XML => (|| {
            let a: g::NodeDeviceDefineXmlArgs = args(p)?;
            let name = nd.node_device_define_xml(&a.xml_desc, a.flags)?;
            reply(&g::NodeDeviceDefineXmlRet { dev: dev(name) })
        })(),
        procs::NODE_DEVICE_DESTROY => (|| {
            let a: g::NodeDeviceDestroyArgs = args(p)?;
            nd.node_device_destroy(&a.name)?;
            void()
        })(),
        procs::NODE_DEVICE_UNDEFINE => (|| {
            let a: g::NodeDeviceUndefineArgs = args(p)?;
            nd.node_device_undefine(&a.name, a.flags)?;
            void()
        })(),
        procs::NODE_DEVICE_CREATE => (|| {
            let a: g::NodeDeviceCreateArgs = args(p)?;
            nd.node_device_create(&a.name, a.flags)?;
            void()
        })(),
        _ => return None,
    };
    Some(r)
}

/// Whether `proc_` is a node-device procedure served here.
fn served(proc_: i32) -> bool {
    use procs::*;
    matches!(
        proc_,
        CONNECT_LIST_ALL_NODE_DEVICES
            | NODE_NUM_OF_DEVICES
            | NODE_LIST_DEVICES
            | NODE_DEVICE_LOOKUP_BY_NAME
            | NODE_DEVICE_GET_XML_DESC
            | NODE_DEVICE_GET_PARENT
            | NODE_DEVICE_NUM_OF_CAPS
            | NODE_DEVICE_LIST_CAPS
            | NODE_DEVICE_IS_ACTIVE
            | NODE_DEVICE_IS_PERSISTENT
            | NODE_DEVICE_GET_AUTOSTART
            | NODE_DEVICE_SET_AUTOSTART
            | NODE_DEVICE_CREATE_XML
            | NODE_DEVICE_DEFINE_XML
            | NODE_DEVICE_DESTROY
            | NODE_DEVICE_UNDEFINE
            | NODE_DEVICE_CREATE
    )
}

/// Runs a node-device procedure; `None` when `proc_` is not one.
pub async fn call(nd: &NodeDev, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    if !served(proc_) {
        return None;
    }
    let nd = nd.clone();
    let payload = p.to_vec();
    let r = tokio::task::spawn_blocking(move || call_blocking(&nd, proc_, &payload)).await;
    match r {
        Ok(out) => out,
        Err(e) => Some(Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::NodeDev,
            format!("node device task failed: {e}"),
        ))),
    }
}
