//! Host interfaces (read-only), secrets and network filters on the RPC
//! socket: the driver's listings and lookups (`driver::objects`).

use uuid::Uuid;

use crate::driver::interfaces::{self, InterfaceRef};
use crate::driver::objects;
use crate::error::Result;

use super::codec::{args, reply};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};

fn wire_iface(i: &InterfaceRef) -> g::NonnullInterface {
    g::NonnullInterface {
        name: i.name.clone(),
        mac: i.mac.clone(),
    }
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Runs one of these procedures; `None` when `proc_` is not one.
pub fn call(proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let r = match proc_ {
        procs::CONNECT_LIST_ALL_INTERFACES => (|| {
            let a: g::ConnectListAllInterfacesArgs = args(p)?;
            let list = interfaces::connect_list_all_interfaces(a.flags)?;
            let ret = list.len() as u32;
            let ifaces = list
                .iter()
                .filter(|_| a.need_results != 0)
                .map(wire_iface)
                .collect();
            reply(&g::ConnectListAllInterfacesRet { ifaces, ret })
        })(),
        procs::CONNECT_NUM_OF_INTERFACES | procs::CONNECT_NUM_OF_DEFINED_INTERFACES => {
            let active = proc_ == procs::CONNECT_NUM_OF_INTERFACES;
            interfaces::connect_list_interfaces(active).and_then(|l| {
                reply(&g::ConnectNumOfInterfacesRet {
                    num: count(l.len()),
                })
            })
        }
        procs::CONNECT_LIST_INTERFACES | procs::CONNECT_LIST_DEFINED_INTERFACES => (|| {
            let a: g::ConnectListInterfacesArgs = args(p)?;
            let active = proc_ == procs::CONNECT_LIST_INTERFACES;
            let names = interfaces::connect_list_interfaces(active)?
                .into_iter()
                .take(a.maxnames.max(0) as usize)
                .collect();
            reply(&g::ConnectListInterfacesRet { names })
        })(),
        procs::INTERFACE_LOOKUP_BY_NAME => (|| {
            let a: g::InterfaceLookupByNameArgs = args(p)?;
            let i = interfaces::interface_lookup_by_name(&a.name)?;
            reply(&g::InterfaceLookupByNameRet {
                iface: wire_iface(&i),
            })
        })(),
        procs::INTERFACE_LOOKUP_BY_MAC_STRING => (|| {
            let a: g::InterfaceLookupByMacStringArgs = args(p)?;
            let i = interfaces::interface_lookup_by_mac_string(&a.mac)?;
            reply(&g::InterfaceLookupByMacStringRet {
                iface: wire_iface(&i),
            })
        })(),
        procs::INTERFACE_GET_XML_DESC => (|| {
            let a: g::InterfaceGetXmlDescArgs = args(p)?;
            let xml = interfaces::interface_get_xml_desc(&a.iface.name, a.flags)?;
            reply(&g::InterfaceGetXmlDescRet { xml })
        })(),
        procs::INTERFACE_IS_ACTIVE => (|| {
            let a: g::InterfaceIsActiveArgs = args(p)?;
            let active = interfaces::interface_is_active(&a.iface.name)?;
            reply(&g::InterfaceIsActiveRet {
                active: i32::from(active),
            })
        })(),
        procs::CONNECT_LIST_ALL_SECRETS => (|| {
            let a: g::ConnectListAllSecretsArgs = args(p)?;
            let list = objects::connect_list_all_secrets(a.flags)?;
            let ret = list.len() as u32;
            let secrets = list
                .iter()
                .filter(|_| a.need_results != 0)
                .map(|s| g::NonnullSecret {
                    uuid: *s.uuid.as_bytes(),
                    usage_type: s.usage_type,
                    usage_id: s.usage_id.clone(),
                })
                .collect();
            reply(&g::ConnectListAllSecretsRet { secrets, ret })
        })(),
        procs::CONNECT_LIST_ALL_NWFILTERS => (|| {
            let a: g::ConnectListAllNwfiltersArgs = args(p)?;
            let list = objects::connect_list_all_nwfilters(a.flags)?;
            let ret = list.len() as u32;
            let filters = list
                .iter()
                .filter(|_| a.need_results != 0)
                .map(|f| g::NonnullNwfilter {
                    name: f.name.clone(),
                    uuid: *f.uuid.as_bytes(),
                })
                .collect();
            reply(&g::ConnectListAllNwfiltersRet { filters, ret })
        })(),
        // The older counting and naming calls, answered from the same lists.
        procs::CONNECT_NUM_OF_SECRETS => objects::connect_list_all_secrets(0).and_then(|l| {
            reply(&g::ConnectNumOfSecretsRet {
                num: count(l.len()),
            })
        }),
        procs::CONNECT_LIST_SECRETS => (|| {
            let a: g::ConnectListSecretsArgs = args(p)?;
            let uuids = objects::connect_list_all_secrets(0)?
                .into_iter()
                .take(a.maxuuids.max(0) as usize)
                .map(|s| s.uuid.to_string())
                .collect();
            reply(&g::ConnectListSecretsRet { uuids })
        })(),
        procs::CONNECT_NUM_OF_NWFILTERS => objects::connect_list_all_nwfilters(0).and_then(|l| {
            reply(&g::ConnectNumOfNwfiltersRet {
                num: count(l.len()),
            })
        }),
        procs::CONNECT_LIST_NWFILTERS => (|| {
            let a: g::ConnectListNwfiltersArgs = args(p)?;
            let names = objects::connect_list_all_nwfilters(0)?
                .into_iter()
                .take(a.maxnames.max(0) as usize)
                .map(|f| f.name)
                .collect();
            reply(&g::ConnectListNwfiltersRet { names })
        })(),
        procs::SECRET_LOOKUP_BY_UUID => (|| {
            let a: g::SecretLookupByUuidArgs = args(p)?;
            let s = objects::secret_lookup_by_uuid(&Uuid::from_bytes(a.uuid))?;
            reply(&g::SecretLookupByUuidRet {
                secret: g::NonnullSecret {
                    uuid: *s.uuid.as_bytes(),
                    usage_type: s.usage_type,
                    usage_id: s.usage_id,
                },
            })
        })(),
        procs::NWFILTER_LOOKUP_BY_NAME => (|| {
            let a: g::NwfilterLookupByNameArgs = args(p)?;
            let f = objects::nwfilter_lookup_by_name(&a.name)?;
            reply(&g::NwfilterLookupByNameRet {
                nwfilter: g::NonnullNwfilter {
                    name: f.name,
                    uuid: *f.uuid.as_bytes(),
                },
            })
        })(),
        _ => return None,
    };
    Some(r)
}
