//! Domain procedures: lists and lookups, definitions, lifecycle,
//! inspection and statistics, event registration and the console.

use std::sync::Arc;

use crate::driver::DomainObj;
use crate::driver::stats::{self, StatValue};
use crate::driver::vcpus::AFFECT_LIVE;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, reply, void};
use super::conn::Conn;
use super::dispatch::Outcome;
use super::events;
use super::protocol::*;
use super::xdr::Opaque;

fn dom_of(obj: &DomainObj) -> Result<Dom> {
    let i = obj.info()?;
    Ok(Dom {
        name: i.name,
        uuid: *i.uuid.as_bytes(),
        id: i.id.unwrap_or(-1),
    })
}

/// A driver's typed-parameter value on the wire.
fn typed_value(v: StatValue) -> TypedValue {
    match v {
        StatValue::Int(x) => TypedValue::Int(x),
        StatValue::UInt(x) => TypedValue::UInt(x),
        StatValue::LLong(x) => TypedValue::LLong(x),
        StatValue::ULLong(x) => TypedValue::ULLong(x),
        StatValue::Double(x) => TypedValue::Double(x),
        StatValue::Boolean(x) => TypedValue::Boolean(x),
        StatValue::Str(x) => TypedValue::String(x),
    }
}

/// Runs a domain procedure ([`Outcome::NotMine`] for others).
pub async fn call(conn: &Arc<Conn>, proc_: i32, p: &[u8]) -> Result<Outcome> {
    let drv = conn.driver();
    let lookup = |d: &Dom| drv.lookup_by_uuid(&uuid::Uuid::from_bytes(d.uuid));
    use procs::*;
    match proc_ {
        // ---- domain lists and lookups ---------------------------------
        CONNECT_LIST_ALL_DOMAINS => {
            let a: ListAllArgs = args(p)?;
            let list = drv.list(a.flags)?;
            let mut domains = Vec::with_capacity(list.len());
            for obj in &list {
                if let Ok(d) = dom_of(obj) {
                    domains.push(d);
                }
            }
            let ret = domains.len() as u32;
            if a.need_results == 0 {
                domains.clear();
            }
            reply(&ListAllRet { domains, ret })
        }
        CONNECT_NUM_OF_DOMAINS => reply(&I32Val {
            value: drv.list(1)?.len() as i32,
        }),
        CONNECT_NUM_OF_DEFINED_DOMAINS => reply(&I32Val {
            value: drv.list(2)?.len() as i32,
        }),
        CONNECT_LIST_DOMAINS => {
            let a: I32Val = args(p)?;
            let max = max_list(a.value)?;
            let ids = drv
                .list(1)?
                .iter()
                .filter_map(|o| o.info().ok().and_then(|i| i.id))
                .take(max)
                .collect();
            reply(&IdsRet { ids })
        }
        CONNECT_LIST_DEFINED_DOMAINS => {
            let a: I32Val = args(p)?;
            let max = max_list(a.value)?;
            let names = drv.list(2)?.iter().map(|o| o.name()).take(max).collect();
            reply(&NamesRet { names })
        }
        DOMAIN_LOOKUP_BY_NAME => {
            let a: StringRet = args(p)?;
            reply(&DomRet {
                dom: dom_of(&*drv.lookup_by_name(&a.value)?)?,
            })
        }
        DOMAIN_LOOKUP_BY_UUID => {
            let a: UuidArgs = args(p)?;
            reply(&DomRet {
                dom: dom_of(&*drv.lookup_by_uuid(&uuid::Uuid::from_bytes(a.uuid))?)?,
            })
        }
        DOMAIN_LOOKUP_BY_ID => {
            let a: I32Val = args(p)?;
            reply(&DomRet {
                dom: dom_of(&*drv.lookup_by_id(a.value)?)?,
            })
        }

        // ---- definitions ---------------------------------------------
        DOMAIN_DEFINE_XML => {
            let a: StringRet = args(p)?;
            let obj = drv.define_xml(&a.value).await?;
            reply(&DomRet { dom: dom_of(&obj)? })
        }
        DOMAIN_DEFINE_XML_FLAGS => {
            let a: XmlFlagsArgs = args(p)?;
            let obj = drv.define_xml_flags(&a.xml, a.flags).await?;
            reply(&DomRet { dom: dom_of(&obj)? })
        }
        DOMAIN_CREATE_XML => {
            let a: XmlFlagsArgs = args(p)?;
            let obj = drv.create_xml(&a.xml, a.flags).await?;
            reply(&DomRet { dom: dom_of(&obj)? })
        }
        DOMAIN_UNDEFINE => {
            let a: DomArgs = args(p)?;
            drv.undefine(&lookup(&a.dom)?, 0).await?;
            void()
        }
        DOMAIN_UNDEFINE_FLAGS => {
            let a: DomFlagsArgs = args(p)?;
            drv.undefine(&lookup(&a.dom)?, a.flags).await?;
            void()
        }
        DOMAIN_GET_XML_DESC => {
            let a: DomFlagsArgs = args(p)?;
            reply(&StringRet {
                value: drv.xml_desc(&*lookup(&a.dom)?, a.flags)?,
            })
        }
        DOMAIN_GET_AUTOSTART => {
            let a: DomArgs = args(p)?;
            let i = lookup(&a.dom)?.info()?;
            reply(&I32Val {
                value: i32::from(i.autostart),
            })
        }
        DOMAIN_SET_AUTOSTART => {
            let a: DomI32Args = args(p)?;
            drv.set_autostart(&lookup(&a.dom)?, a.value != 0).await?;
            void()
        }

        // ---- lifecycle -----------------------------------------------
        DOMAIN_CREATE => {
            let a: DomArgs = args(p)?;
            drv.start(&lookup(&a.dom)?, 0).await?;
            void()
        }
        DOMAIN_CREATE_WITH_FLAGS => {
            let a: DomFlagsArgs = args(p)?;
            let obj = lookup(&a.dom)?;
            drv.start(&obj, a.flags).await?;
            reply(&DomRet { dom: dom_of(&obj)? })
        }
        DOMAIN_SHUTDOWN => {
            let a: DomArgs = args(p)?;
            drv.shutdown(&lookup(&a.dom)?, 0).await?;
            void()
        }
        DOMAIN_SHUTDOWN_FLAGS => {
            let a: DomFlagsArgs = args(p)?;
            drv.shutdown(&lookup(&a.dom)?, a.flags).await?;
            void()
        }
        DOMAIN_DESTROY => {
            let a: DomArgs = args(p)?;
            drv.destroy(&lookup(&a.dom)?, 0).await?;
            void()
        }
        DOMAIN_DESTROY_FLAGS => {
            let a: DomFlagsArgs = args(p)?;
            drv.destroy(&lookup(&a.dom)?, a.flags).await?;
            void()
        }
        DOMAIN_REBOOT => {
            let a: DomFlagsArgs = args(p)?;
            drv.reboot(&lookup(&a.dom)?, a.flags).await?;
            void()
        }
        DOMAIN_RESET => {
            let a: DomFlagsArgs = args(p)?;
            drv.reset(&lookup(&a.dom)?, a.flags).await?;
            void()
        }
        DOMAIN_SUSPEND => {
            let a: DomArgs = args(p)?;
            drv.suspend(&lookup(&a.dom)?).await?;
            void()
        }
        DOMAIN_RESUME => {
            let a: DomArgs = args(p)?;
            drv.resume(&lookup(&a.dom)?).await?;
            void()
        }

        // ---- inspection ----------------------------------------------
        DOMAIN_GET_INFO => {
            let a: DomArgs = args(p)?;
            let s = drv.stats(&lookup(&a.dom)?).await?;
            reply(&DomainInfoRet {
                state: s.info.state as u32,
                max_mem: s.info.max_memory_kib,
                memory: s.info.memory_kib,
                nr_virt_cpu: s.info.vcpus,
                cpu_time: s.cpu_times_ns().0,
            })
        }
        DOMAIN_GET_STATE => {
            let a: DomFlagsArgs = args(p)?;
            let (state, reason) = drv.get_state(&*lookup(&a.dom)?, a.flags)?;
            reply(&StateRet {
                state: state as i32,
                reason,
            })
        }
        DOMAIN_GET_OS_TYPE => {
            let a: DomArgs = args(p)?;
            reply(&StringRet {
                value: lookup(&a.dom)?.info()?.os_type,
            })
        }
        DOMAIN_GET_MAX_MEMORY => {
            let a: DomArgs = args(p)?;
            reply(&U64Ret {
                value: lookup(&a.dom)?.info()?.max_memory_kib,
            })
        }
        DOMAIN_GET_MAX_VCPUS => {
            let a: DomArgs = args(p)?;
            let i = lookup(&a.dom)?.info()?;
            if i.id.is_none() {
                return Err(Error::operation_invalid("domain is not running"));
            }
            reply(&I32Val {
                value: i.max_vcpus as i32,
            })
        }
        DOMAIN_GET_VCPUS_FLAGS => {
            let a: DomFlagsArgs = args(p)?;
            let n = drv.vcpu_count(&*lookup(&a.dom)?, a.flags)?;
            reply(&I32Val { value: n as i32 })
        }
        DOMAIN_SET_MEMORY_FLAGS => {
            let a: DomMemoryFlagsArgs = args(p)?;
            drv.set_memory(&lookup(&a.dom)?, a.memory, a.flags).await?;
            void()
        }
        DOMAIN_SET_MEMORY => {
            // virDomainSetMemory is SetMemoryFlags on the live domain.
            let a: DomMemoryArgs = args(p)?;
            drv.set_memory(&lookup(&a.dom)?, a.memory, 1).await?;
            void()
        }
        DOMAIN_SET_MAX_MEMORY => {
            // virDomainSetMaxMemory is SetMemoryFlags with MEM_MAXIMUM.
            let a: DomMemoryArgs = args(p)?;
            drv.set_memory(&lookup(&a.dom)?, a.memory, 4).await?;
            void()
        }
        DOMAIN_RENAME => {
            let a: DomRenameArgs = args(p)?;
            let Some(name) = a.new_name else {
                return Err(Error::invalid_arg(
                    "new_name in virDomainRename must not be NULL",
                ));
            };
            drv.rename(&lookup(&a.dom)?, &name, a.flags).await?;
            reply(&I32Val { value: 0 })
        }
        DOMAIN_SET_VCPUS_FLAGS => {
            let a: DomVcpusFlagsArgs = args(p)?;
            drv.set_vcpus(&lookup(&a.dom)?, a.nvcpus, a.flags).await?;
            void()
        }
        DOMAIN_SET_VCPUS => {
            // virDomainSetVcpus is SetVcpusFlags on the live domain.
            let a: DomVcpusArgs = args(p)?;
            drv.set_vcpus(&lookup(&a.dom)?, a.nvcpus, AFFECT_LIVE)
                .await?;
            void()
        }
        DOMAIN_IS_ACTIVE => {
            let a: DomArgs = args(p)?;
            reply(&I32Val {
                value: i32::from(lookup(&a.dom)?.info()?.id.is_some()),
            })
        }
        DOMAIN_IS_PERSISTENT => {
            let a: DomArgs = args(p)?;
            reply(&I32Val {
                value: i32::from(lookup(&a.dom)?.info()?.persistent),
            })
        }
        DOMAIN_IS_UPDATED => {
            let a: DomArgs = args(p)?;
            lookup(&a.dom)?.info()?;
            reply(&I32Val { value: 0 })
        }
        DOMAIN_HAS_MANAGED_SAVE_IMAGE => {
            let a: DomFlagsArgs = args(p)?;
            let has = drv.has_managed_save_image(&*lookup(&a.dom)?, a.flags)?;
            reply(&I32Val {
                value: i32::from(has),
            })
        }
        DOMAIN_GET_MESSAGES => {
            let a: DomFlagsArgs = args(p)?;
            lookup(&a.dom)?.info()?;
            reply(&NamesRet { names: Vec::new() })
        }
        DOMAIN_MEMORY_STATS => {
            let a: MemoryStatsArgs = args(p)?;
            // REMOTE_DOMAIN_MEMORY_STATS_MAX
            let stats = drv
                .memory_stats(&lookup(&a.dom)?, a.max_stats.min(1024), a.flags)
                .await?
                .into_iter()
                .map(|(tag, val)| MemoryStat { tag, val })
                .collect();
            reply(&MemoryStatsRet { stats })
        }
        DOMAIN_GET_VCPUS => {
            let a: GetVcpusArgs = args(p)?;
            let maxinfo = a.maxinfo.clamp(0, 16384) as usize;
            let maplen = a.maplen.clamp(0, 8192) as usize;
            if maxinfo.saturating_mul(maplen) > super::xdr::OPAQUE_MAX {
                return Err(Error::invalid_arg("maxinfo * maplen is too large"));
            }
            let vcpus = drv.get_vcpus(&lookup(&a.dom)?).await?;
            let shown = &vcpus[..vcpus.len().min(maxinfo)];
            let info = shown
                .iter()
                .map(|v| VcpuInfo {
                    number: v.number,
                    state: 1,
                    cpu_time: v.cpu_time_ns,
                    cpu: v.cpu,
                })
                .collect();
            let mut cpumaps = vec![0u8; maxinfo * maplen];
            for (i, v) in shown.iter().enumerate() {
                for (c, on) in v.affinity.iter().enumerate() {
                    if *on && c / 8 < maplen {
                        cpumaps[i * maplen + c / 8] |= 1 << (c % 8);
                    }
                }
            }
            reply(&GetVcpusRet {
                info,
                cpumaps: Opaque(cpumaps),
            })
        }
        DOMAIN_BLOCK_STATS => {
            let a: DomStringArgs = args(p)?;
            let io = drv.block_stats(&lookup(&a.dom)?, &a.value, 0).await?;
            let v = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
            reply(&BlockStatsRet {
                rd_req: v(io.rd_reqs),
                rd_bytes: v(io.rd_bytes),
                wr_req: v(io.wr_reqs),
                wr_bytes: v(io.wr_bytes),
                // libvirt's QEMU driver has no error count to give (-1,
                // which virsh leaves out); the VMM's count stays in its
                // query-stats.
                errs: -1,
            })
        }
        DOMAIN_BLOCK_STATS_FLAGS => {
            let a: BlockStatsFlagsArgs = args(p)?;
            if !(0..=BLOCK_STATS_PARAMETERS_MAX).contains(&a.nparams) {
                return Err(Error::new(
                    ErrorCode::Rpc,
                    ErrorDomain::Rpc,
                    "nparams too large",
                ));
            }
            let io = drv.block_stats(&lookup(&a.dom)?, &a.path, a.flags).await?;
            let all = block_params(&io);
            if a.nparams == 0 {
                return reply(&TypedParamsRet {
                    params: Vec::new(),
                    nparams: all.len() as i32,
                });
            }
            let params: Vec<TypedParam> = all.into_iter().take(a.nparams as usize).collect();
            reply(&TypedParamsRet {
                nparams: params.len() as i32,
                params,
            })
        }
        CONNECT_GET_ALL_DOMAIN_STATS => {
            let a: GetAllDomainStatsArgs = args(p)?;
            let doms = if a.doms.is_empty() {
                None
            } else {
                Some(a.doms.iter().map(&lookup).collect::<Result<Vec<_>>>()?)
            };
            let mut ret_stats = Vec::new();
            for (obj, record) in drv.get_all_domain_stats(doms, a.stats, a.flags).await? {
                ret_stats.push(DomainStatsRecord {
                    dom: dom_of(&obj)?,
                    params: record
                        .into_iter()
                        .map(|(field, v)| TypedParam {
                            field,
                            value: typed_value(v),
                        })
                        .collect(),
                });
            }
            reply(&GetAllDomainStatsRet { ret_stats })
        }
        DOMAIN_INTERFACE_STATS => {
            let a: DomStringArgs = args(p)?;
            let c = drv.interface_stats(&*lookup(&a.dom)?, &a.value)?;
            let v = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
            reply(&InterfaceStatsRet {
                rx_bytes: v(c.rx_bytes),
                rx_packets: v(c.rx_packets),
                rx_errs: v(c.rx_errs),
                rx_drop: v(c.rx_drop),
                tx_bytes: v(c.tx_bytes),
                tx_packets: v(c.tx_packets),
                tx_errs: v(c.tx_errs),
                tx_drop: v(c.tx_drop),
            })
        }
        DOMAIN_INTERFACE_ADDRESSES => {
            let a: InterfaceAddressesArgs = args(p)?;
            let list = drv.interface_addresses(&*lookup(&a.dom)?, a.source, a.flags)?;
            reply(&InterfaceAddressesRet {
                ifaces: list
                    .into_iter()
                    .map(|i| DomainInterface {
                        name: i.name,
                        hwaddr: Some(i.hwaddr),
                        addrs: i
                            .addrs
                            .into_iter()
                            .map(|(t, addr, prefix)| IpAddr {
                                addr_type: t,
                                addr,
                                prefix,
                            })
                            .collect(),
                    })
                    .collect(),
            })
        }

        // ---- events --------------------------------------------------
        CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => {
            let a: CallbackRegisterArgs = args(p)?;
            let filter = match &a.dom {
                Some(d) => Some(lookup(d)?.uuid),
                None => None,
            };
            let id = events::register(conn, a.event_id, filter)?;
            reply(&I32Val { value: id })
        }
        CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY => {
            let a: I32Val = args(p)?;
            events::deregister(conn, a.value)?;
            void()
        }
        CONNECT_DOMAIN_EVENT_REGISTER_ANY => {
            let a: I32Val = args(p)?;
            events::register_legacy(conn, a.value)?;
            void()
        }
        CONNECT_DOMAIN_EVENT_DEREGISTER_ANY => {
            let a: I32Val = args(p)?;
            events::deregister_legacy(conn, a.value)?;
            void()
        }

        // ---- console -------------------------------------------------
        DOMAIN_OPEN_CONSOLE => {
            let a: OpenConsoleArgs = args(p)?;
            let path = drv.console_pty(&*lookup(&a.dom)?, a.dev_name.as_deref(), a.flags)?;
            Ok(Outcome::Console(super::stream::open_pty(&path)?))
        }
        _ => Ok(Outcome::NotMine),
    }
}

/// `REMOTE_DOMAIN_BLOCK_STATS_PARAMETERS_MAX`.
const BLOCK_STATS_PARAMETERS_MAX: i32 = 16;

/// `virDomainBlockStatsFlags` parameters (`VIR_DOMAIN_BLOCK_STATS_*`).
fn block_params(io: &stats::BlockIo) -> Vec<TypedParam> {
    [
        ("rd_operations", io.rd_reqs),
        ("rd_bytes", io.rd_bytes),
        ("wr_operations", io.wr_reqs),
        ("wr_bytes", io.wr_bytes),
        ("flush_operations", io.fl_reqs),
        ("rd_total_times", io.rd_times),
        ("wr_total_times", io.wr_times),
        ("flush_total_times", io.fl_times),
    ]
    .into_iter()
    .map(|(field, v)| TypedParam {
        field: field.into(),
        value: TypedValue::LLong(i64::try_from(v).unwrap_or(i64::MAX)),
    })
    .collect()
}

fn max_list(n: i32) -> Result<usize> {
    if !(0..=16384).contains(&n) {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!("maxids > REMOTE_DOMAIN_LIST_MAX ({n})"),
        ));
    }
    Ok(n as usize)
}
