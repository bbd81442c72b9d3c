//! Connection and host procedures: authentication, open and close, the
//! hypervisor's type, versions, URI and host name, node information,
//! statistics and CPU map, capabilities and sysinfo.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::driver::host;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, reply, void};
use super::conn::Conn;
use super::dispatch::Outcome;
use super::protocol::*;
use super::xdr::{CharArray, Opaque};

/// The URI this driver answers to.
const URI: &str = "qemu:///system";

/// Runs a connection or host procedure ([`Outcome::NotMine`] for others).
pub async fn call(conn: &Arc<Conn>, proc_: i32, p: &[u8]) -> Result<Outcome> {
    let drv = conn.driver();
    use procs::*;
    match proc_ {
        AUTH_LIST => reply(&AuthListRet { types: vec![0] }),
        // Only "none" is offered, so a SASL or polkit step is answered as
        // libvirtd answers a step of an authentication it did not offer.
        AUTH_SASL_INIT | AUTH_SASL_START | AUTH_SASL_STEP | AUTH_POLKIT => Err(Error::new(
            ErrorCode::AuthFailed,
            ErrorDomain::Rpc,
            "authentication failed",
        )),
        CONNECT_SUPPORTS_FEATURE => {
            let a: I32Val = args(p)?;
            // 8 fd passing, 9 typed-param strings, 10 keepalive, 14 event
            // callbacks, 15 close callback.
            let yes = matches!(a.value, 8 | 9 | 10 | 14 | 15);
            if a.value == 10 {
                // As libvirtd: asking is what starts the server's pings.
                super::keepalive::start(conn);
            }
            reply(&I32Val {
                value: i32::from(yes),
            })
        }
        CONNECT_OPEN => {
            let a: OpenArgs = args(p)?;
            if drv.connect_open(a.name.as_deref().unwrap_or_default(), a.flags)? {
                conn.set_readonly();
            }
            conn.opened.store(true, Ordering::SeqCst);
            void()
        }
        CONNECT_CLOSE => {
            conn.opened.store(false, Ordering::SeqCst);
            void()
        }
        CONNECT_REGISTER_CLOSE_CALLBACK | CONNECT_UNREGISTER_CLOSE_CALLBACK => void(),
        CONNECT_GET_TYPE => reply(&StringRet {
            value: "QEMU".into(),
        }),
        CONNECT_GET_VERSION => reply(&U64Ret {
            value: host::HYPERVISOR_VERSION,
        }),
        CONNECT_GET_LIB_VERSION => reply(&U64Ret {
            value: host::LIB_VERSION,
        }),
        CONNECT_GET_URI => reply(&StringRet { value: URI.into() }),
        CONNECT_GET_HOSTNAME => reply(&StringRet {
            value: host::hostname(),
        }),
        CONNECT_IS_SECURE => reply(&I32Val { value: 1 }),
        CONNECT_GET_MAX_VCPUS => {
            let _a: OptStringArg = args(p)?;
            reply(&I32Val { value: 255 })
        }
        NODE_GET_INFO => {
            let cpus = host::cpu_count() as i32;
            reply(&NodeInfoRet {
                model: "x86_64".into(),
                memory: host::total_memory_kib(),
                cpus,
                mhz: host::cpu_mhz() as i32,
                nodes: 1,
                sockets: 1,
                cores: cpus,
                threads: 1,
            })
        }
        NODE_GET_FREE_MEMORY => reply(&U64Ret {
            value: host::free_memory_bytes(),
        }),
        NODE_GET_SECURITY_MODEL => reply(&SecurityModelRet {
            model: CharArray::default(),
            doi: CharArray::default(),
        }),
        NODE_GET_CPU_STATS => {
            let a: NodeCpuStatsArgs = args(p)?;
            let s = host::node_get_cpu_stats(a.cpu_num, a.flags)?;
            node_stats(&s, &["kernel", "user", "idle", "iowait"], a.nparams)
        }
        NODE_GET_MEMORY_STATS => {
            let a: NodeMemoryStatsArgs = args(p)?;
            let s = host::node_get_memory_stats(a.cell_num, a.flags)?;
            node_stats(&s, &["total", "free", "buffers", "cached"], a.nparams)
        }
        NODE_GET_CPU_MAP => {
            let a: CpuMapArgs = args(p)?;
            let map = host::node_get_cpu_map(a.flags)?;
            let mut bits = vec![0u8; map.len().div_ceil(8)];
            for (i, on) in map.iter().enumerate() {
                if *on {
                    bits[i / 8] |= 1 << (i % 8);
                }
            }
            let online = map.iter().filter(|b| **b).count() as u32;
            reply(&CpuMapRet {
                cpumap: Opaque(if a.need_map != 0 { bits } else { Vec::new() }),
                online: if a.need_online != 0 { online } else { 0 },
                ret: map.len() as i32,
            })
        }
        CONNECT_GET_CAPABILITIES => reply(&StringRet {
            value: drv.capabilities_xml(),
        }),
        CONNECT_GET_DOMAIN_CAPABILITIES => {
            let a: DomainCapsArgs = args(p)?;
            let s = |o: &Option<String>| o.clone().unwrap_or_default();
            let xml = drv.domain_capabilities_xml(
                a.flags,
                &s(&a.emulatorbin),
                &s(&a.arch),
                &s(&a.machine),
                &s(&a.virttype),
            )?;
            reply(&StringRet { value: xml })
        }
        CONNECT_GET_SYSINFO => {
            let a: U32Val = args(p)?;
            reply(&StringRet {
                value: host::connect_get_sysinfo(a.value)?,
            })
        }
        _ => Ok(Outcome::NotMine),
    }
}

/// Most fields a NODE_GET_*_STATS reply may carry.
const NODE_STATS_MAX: i32 = 16;

/// A node stats reply in libvirt's field order: with `nparams` 0 only the
/// number of fields, else up to `nparams` fields.
fn node_stats(
    s: &std::collections::BTreeMap<String, u64>,
    order: &[&str],
    nparams: i32,
) -> Result<Outcome> {
    if !(0..=NODE_STATS_MAX).contains(&nparams) {
        return Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::Rpc,
            "nparams too large",
        ));
    }
    let all: Vec<NodeStat> = order
        .iter()
        .filter_map(|f| {
            s.get(*f).map(|v| NodeStat {
                field: (*f).to_string(),
                value: *v,
            })
        })
        .collect();
    if nparams == 0 {
        return reply(&NodeStatsRet {
            params: Vec::new(),
            nparams: all.len() as i32,
        });
    }
    let params: Vec<NodeStat> = all.into_iter().take(nparams as usize).collect();
    let n = params.len() as i32;
    reply(&NodeStatsRet { params, nparams: n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::xdr::from_bytes;

    #[test]
    fn node_stats_count_then_fields_in_libvirt_order() {
        let s: std::collections::BTreeMap<String, u64> =
            [("idle", 3), ("iowait", 4), ("kernel", 1), ("user", 2)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let order = ["kernel", "user", "idle", "iowait"];
        let decode = |o: Outcome| match o {
            Outcome::Reply(b) => from_bytes::<NodeStatsRet>(&b).unwrap(),
            _ => panic!("a reply, not a stream"),
        };
        let r = decode(node_stats(&s, &order, 0).unwrap());
        assert_eq!((r.params.len(), r.nparams), (0, 4));
        let r = decode(node_stats(&s, &order, 4).unwrap());
        let got: Vec<(&str, u64)> = r
            .params
            .iter()
            .map(|p| (p.field.as_str(), p.value))
            .collect();
        assert_eq!(
            got,
            [("kernel", 1), ("user", 2), ("idle", 3), ("iowait", 4)]
        );
        assert_eq!(r.nparams, 4);
        let r = decode(node_stats(&s, &order, 2).unwrap());
        assert_eq!((r.params.len(), r.nparams), (2, 2));
        assert!(node_stats(&s, &order, 17).is_err());
        assert!(node_stats(&s, &order, -1).is_err());
    }
}
