//! Network procedures: decode the arguments, call the network sub-driver,
//! encode the reply.

use uuid::Uuid;

use crate::driver::network::{NetworkRef, Networks};
use crate::error::Result;

use super::codec::{args, check_max_names, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};

fn net_of(n: &g::NonnullNetwork) -> NetworkRef {
    NetworkRef {
        name: n.name.clone(),
        uuid: Uuid::from_bytes(n.uuid),
    }
}

fn wire(n: &NetworkRef) -> g::NonnullNetwork {
    g::NonnullNetwork {
        name: n.name.clone(),
        uuid: *n.uuid.as_bytes(),
    }
}

/// Runs a network procedure; `None` when `proc_` is not one.
pub async fn call(nets: &Networks, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let r = match proc_ {
        procs::CONNECT_LIST_ALL_NETWORKS => (|| {
            let a: g::ConnectListAllNetworksArgs = args(p)?;
            let list = nets.connect_list_all_networks(a.flags)?;
            let ret = list.len() as u32;
            let nets = if a.need_results != 0 {
                list.iter().map(wire).collect()
            } else {
                Vec::new()
            };
            reply(&g::ConnectListAllNetworksRet { nets, ret })
        })(),
        procs::CONNECT_NUM_OF_NETWORKS => reply(&g::ConnectNumOfNetworksRet {
            num: nets.connect_num_of_networks(true),
        }),
        procs::CONNECT_NUM_OF_DEFINED_NETWORKS => reply(&g::ConnectNumOfDefinedNetworksRet {
            num: nets.connect_num_of_networks(false),
        }),
        procs::CONNECT_LIST_NETWORKS | procs::CONNECT_LIST_DEFINED_NETWORKS => (|| {
            let a: g::ConnectListNetworksArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_NETWORK_LIST_MAX,
                "REMOTE_NETWORK_LIST_MAX",
            )?;
            let active = proc_ == procs::CONNECT_LIST_NETWORKS;
            reply(&g::ConnectListNetworksRet {
                names: nets.connect_list_networks(active, a.maxnames),
            })
        })(),
        procs::NETWORK_LOOKUP_BY_NAME => (|| {
            let a: g::NetworkLookupByNameArgs = args(p)?;
            let n = nets.network_lookup_by_name(&a.name)?;
            reply(&g::NetworkLookupByNameRet { net: wire(&n) })
        })(),
        procs::NETWORK_LOOKUP_BY_UUID => (|| {
            let a: g::NetworkLookupByUuidArgs = args(p)?;
            let n = nets.network_lookup_by_uuid(&Uuid::from_bytes(a.uuid))?;
            reply(&g::NetworkLookupByUuidRet { net: wire(&n) })
        })(),
        procs::NETWORK_DEFINE_XML => (|| {
            let a: g::NetworkDefineXmlArgs = args(p)?;
            let n = nets.network_define_xml(&a.xml, 0)?;
            reply(&g::NetworkDefineXmlRet { net: wire(&n) })
        })(),
        procs::NETWORK_DEFINE_XML_FLAGS => (|| {
            let a: g::NetworkDefineXmlFlagsArgs = args(p)?;
            let n = nets.network_define_xml(&a.xml, a.flags)?;
            reply(&g::NetworkDefineXmlFlagsRet { net: wire(&n) })
        })(),
        procs::NETWORK_CREATE_XML => match args::<g::NetworkCreateXmlArgs>(p) {
            Ok(a) => match nets.network_create_xml(&a.xml, 0).await {
                Ok(n) => reply(&g::NetworkCreateXmlRet { net: wire(&n) }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        procs::NETWORK_CREATE_XML_FLAGS => match args::<g::NetworkCreateXmlFlagsArgs>(p) {
            Ok(a) => match nets.network_create_xml(&a.xml, a.flags).await {
                Ok(n) => reply(&g::NetworkCreateXmlFlagsRet { net: wire(&n) }),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        procs::NETWORK_UNDEFINE => (|| {
            let a: g::NetworkUndefineArgs = args(p)?;
            nets.network_undefine(&net_of(&a.net))?;
            void()
        })(),
        procs::NETWORK_CREATE => match args::<g::NetworkCreateArgs>(p) {
            Ok(a) => nets
                .network_create(&net_of(&a.net))
                .await
                .and_then(|()| void()),
            Err(e) => Err(e),
        },
        procs::NETWORK_DESTROY => match args::<g::NetworkDestroyArgs>(p) {
            Ok(a) => nets
                .network_destroy(&net_of(&a.net))
                .await
                .and_then(|()| void()),
            Err(e) => Err(e),
        },
        // The client library sends the section in `command` and the
        // command in `section`: virNetworkUpdate hands them to its driver
        // in that order, and the remote driver's structure names them the
        // other way round.
        procs::NETWORK_UPDATE => match args::<g::NetworkUpdateArgs>(p) {
            Ok(a) => nets
                .network_update(
                    &net_of(&a.net),
                    a.section,
                    a.command,
                    a.parent_index,
                    &a.xml,
                    a.flags,
                )
                .await
                .and_then(|()| void()),
            Err(e) => Err(e),
        },
        procs::NETWORK_GET_XML_DESC => (|| {
            let a: g::NetworkGetXmlDescArgs = args(p)?;
            let xml = nets.network_get_xml_desc(&net_of(&a.net), a.flags)?;
            reply(&g::NetworkGetXmlDescRet { xml })
        })(),
        procs::NETWORK_GET_BRIDGE_NAME => (|| {
            let a: g::NetworkGetBridgeNameArgs = args(p)?;
            let name = nets.network_get_bridge_name(&net_of(&a.net))?;
            reply(&g::NetworkGetBridgeNameRet { name })
        })(),
        procs::NETWORK_GET_AUTOSTART => (|| {
            let a: g::NetworkGetAutostartArgs = args(p)?;
            let on = nets.network_get_autostart(&net_of(&a.net))?;
            reply(&g::NetworkGetAutostartRet {
                autostart: i32::from(on),
            })
        })(),
        procs::NETWORK_SET_AUTOSTART => (|| {
            let a: g::NetworkSetAutostartArgs = args(p)?;
            nets.network_set_autostart(&net_of(&a.net), a.autostart != 0)?;
            void()
        })(),
        procs::NETWORK_IS_ACTIVE => (|| {
            let a: g::NetworkIsActiveArgs = args(p)?;
            let active = nets.network_is_active(&net_of(&a.net))?;
            reply(&g::NetworkIsActiveRet {
                active: i32::from(active),
            })
        })(),
        procs::NETWORK_IS_PERSISTENT => (|| {
            let a: g::NetworkIsPersistentArgs = args(p)?;
            let persistent = nets.network_is_persistent(&net_of(&a.net))?;
            reply(&g::NetworkIsPersistentRet {
                persistent: i32::from(persistent),
            })
        })(),
        procs::NETWORK_GET_DHCP_LEASES => (|| {
            let a: g::NetworkGetDhcpLeasesArgs = args(p)?;
            let list = nets.network_get_dhcp_leases(&net_of(&a.net), a.mac.as_deref(), a.flags)?;
            let ret = list.len() as u32;
            let leases = if a.need_results != 0 {
                list.into_iter()
                    .map(|l| g::NetworkDhcpLease {
                        iface: l.iface,
                        expirytime: l.expiry_time,
                        r#type: l.ip_type,
                        mac: l.mac,
                        iaid: l.iaid,
                        ipaddr: l.ipaddr,
                        prefix: l.prefix,
                        hostname: l.hostname,
                        clientid: l.clientid,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            reply(&g::NetworkGetDhcpLeasesRet { leases, ret })
        })(),
        _ => return None,
    };
    Some(r)
}
