//! Procedure numbers of the remote program (from [`super::generated`]) and
//! the argument, return and message structures served here. Field order is
//! wire order.

use super::xdr::{
    CharArray, Opaque, Reader, XResult, Xdr, XdrError, encode_char_fixed, xdr_struct,
};

/// Procedure numbers (`REMOTE_PROC_*`), all of libvirt 9.0's.
pub use super::generated::procs;

/// The public C function behind a call procedure, for "not supported"
/// errors; None for event messages, authentication steps and numbers
/// past libvirt 9.0 (see [`super::procnames`]).
pub fn function_name(proc_: i32) -> Option<&'static str> {
    super::procnames::lookup(proc_).map(|(f, _)| f)
}

xdr_struct! {
    /// `remote_nonnull_domain`: id is -1 for an inactive domain.
    pub struct Dom {
        pub name: String,
        pub uuid: [u8; 16],
        pub id: i32,
    }
}

xdr_struct! {
    pub struct OpenArgs {
        pub name: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! { pub struct StringRet { pub value: String } }
xdr_struct! { pub struct OptStringArg { pub value: Option<String> } }
xdr_struct! { pub struct U64Ret { pub value: u64 } }
xdr_struct! { pub struct I32Val { pub value: i32 } }
xdr_struct! { pub struct U32Val { pub value: u32 } }
xdr_struct! { pub struct DomRet { pub dom: Dom } }
xdr_struct! { pub struct DomArgs { pub dom: Dom } }
xdr_struct! { pub struct DomFlagsArgs { pub dom: Dom, pub flags: u32 } }
xdr_struct! { pub struct DomI32Args { pub dom: Dom, pub value: i32 } }
xdr_struct! { pub struct DomStringArgs { pub dom: Dom, pub value: String } }
xdr_struct! { pub struct DomMemoryArgs { pub dom: Dom, pub memory: u64 } }
xdr_struct! { pub struct DomMemoryFlagsArgs { pub dom: Dom, pub memory: u64, pub flags: u32 } }
xdr_struct! { pub struct DomRenameArgs { pub dom: Dom, pub new_name: Option<String>, pub flags: u32 } }
xdr_struct! { pub struct DomVcpusArgs { pub dom: Dom, pub nvcpus: u32 } }
xdr_struct! { pub struct DomVcpusFlagsArgs { pub dom: Dom, pub nvcpus: u32, pub flags: u32 } }
xdr_struct! { pub struct XmlFlagsArgs { pub xml: String, pub flags: u32 } }
xdr_struct! { pub struct UuidArgs { pub uuid: [u8; 16] } }
xdr_struct! { pub struct AuthListRet { pub types: Vec<i32> } }
xdr_struct! { pub struct NamesRet { pub names: Vec<String> } }
xdr_struct! { pub struct IdsRet { pub ids: Vec<i32> } }

/// `remote_node_get_info_ret`; the model is a fixed `char[32]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfoRet {
    pub model: String,
    pub memory: u64,
    pub cpus: i32,
    pub mhz: i32,
    pub nodes: i32,
    pub sockets: i32,
    pub cores: i32,
    pub threads: i32,
}

impl Xdr for NodeInfoRet {
    fn encode(&self, w: &mut Vec<u8>) {
        encode_char_fixed(&self.model, 32, w);
        self.memory.encode(w);
        for v in [
            self.cpus,
            self.mhz,
            self.nodes,
            self.sockets,
            self.cores,
            self.threads,
        ] {
            v.encode(w);
        }
    }
    fn decode(_r: &mut Reader<'_>) -> XResult<Self> {
        Err(XdrError::Truncated)
    }
}

xdr_struct! {
    /// `state` is a uchar and `nr_virt_cpu` a ushort, each a full word.
    pub struct DomainInfoRet {
        pub state: u32,
        pub max_mem: u64,
        pub memory: u64,
        pub nr_virt_cpu: u32,
        pub cpu_time: u64,
    }
}

xdr_struct! { pub struct StateRet { pub state: i32, pub reason: i32 } }

xdr_struct! {
    pub struct ListAllArgs { pub need_results: i32, pub flags: u32 }
}

xdr_struct! {
    pub struct ListAllRet { pub domains: Vec<Dom>, pub ret: u32 }
}

xdr_struct! {
    pub struct SecurityModelRet { pub model: CharArray, pub doi: CharArray }
}

xdr_struct! {
    pub struct BlockStatsRet {
        pub rd_req: i64,
        pub rd_bytes: i64,
        pub wr_req: i64,
        pub wr_bytes: i64,
        pub errs: i64,
    }
}

xdr_struct! {
    pub struct BlockStatsFlagsArgs { pub dom: Dom, pub path: String, pub nparams: i32, pub flags: u32 }
}

/// `remote_typed_param_value`: a union on `virTypedParameterType`.
#[derive(Clone, Debug, PartialEq)]
pub enum TypedValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    String(String),
}

impl Default for TypedValue {
    fn default() -> Self {
        TypedValue::Int(0)
    }
}

impl Xdr for TypedValue {
    fn encode(&self, w: &mut Vec<u8>) {
        match self {
            TypedValue::Int(v) => {
                1i32.encode(w);
                v.encode(w);
            }
            TypedValue::UInt(v) => {
                2i32.encode(w);
                v.encode(w);
            }
            TypedValue::LLong(v) => {
                3i32.encode(w);
                v.encode(w);
            }
            TypedValue::ULLong(v) => {
                4i32.encode(w);
                v.encode(w);
            }
            TypedValue::Double(v) => {
                5i32.encode(w);
                v.encode(w);
            }
            TypedValue::Boolean(v) => {
                6i32.encode(w);
                i32::from(*v).encode(w);
            }
            TypedValue::String(v) => {
                7i32.encode(w);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(match i32::decode(r)? {
            1 => TypedValue::Int(i32::decode(r)?),
            2 => TypedValue::UInt(u32::decode(r)?),
            3 => TypedValue::LLong(i64::decode(r)?),
            4 => TypedValue::ULLong(u64::decode(r)?),
            5 => TypedValue::Double(f64::decode(r)?),
            6 => TypedValue::Boolean(i32::decode(r)? != 0),
            7 => TypedValue::String(String::decode(r)?),
            d => return Err(XdrError::BadDiscriminant(d)),
        })
    }
}

xdr_struct! {
    /// `remote_typed_param`.
    pub struct TypedParam { pub field: String, pub value: TypedValue }
}

xdr_struct! {
    pub struct TypedParamsRet { pub params: Vec<TypedParam>, pub nparams: i32 }
}

xdr_struct! {
    pub struct GetAllDomainStatsArgs { pub doms: Vec<Dom>, pub stats: u32, pub flags: u32 }
}

xdr_struct! {
    /// `remote_domain_stats_record`.
    pub struct DomainStatsRecord { pub dom: Dom, pub params: Vec<TypedParam> }
}

xdr_struct! {
    pub struct GetAllDomainStatsRet { pub ret_stats: Vec<DomainStatsRecord> }
}

xdr_struct! {
    pub struct InterfaceStatsRet {
        pub rx_bytes: i64,
        pub rx_packets: i64,
        pub rx_errs: i64,
        pub rx_drop: i64,
        pub tx_bytes: i64,
        pub tx_packets: i64,
        pub tx_errs: i64,
        pub tx_drop: i64,
    }
}

xdr_struct! {
    pub struct InterfaceAddressesArgs { pub dom: Dom, pub source: u32, pub flags: u32 }
}

xdr_struct! {
    /// `remote_domain_ip_addr`.
    pub struct IpAddr { pub addr_type: i32, pub addr: String, pub prefix: u32 }
}

xdr_struct! {
    /// `remote_domain_interface`.
    pub struct DomainInterface { pub name: String, pub hwaddr: Option<String>, pub addrs: Vec<IpAddr> }
}

xdr_struct! {
    pub struct InterfaceAddressesRet { pub ifaces: Vec<DomainInterface> }
}

xdr_struct! {
    pub struct MemoryStat { pub tag: i32, pub val: u64 }
}

xdr_struct! {
    pub struct MemoryStatsArgs { pub dom: Dom, pub max_stats: u32, pub flags: u32 }
}

xdr_struct! { pub struct MemoryStatsRet { pub stats: Vec<MemoryStat> } }

xdr_struct! {
    pub struct JobInfoRet {
        pub job_type: i32,
        pub time_elapsed: u64,
        pub time_remaining: u64,
        pub data_total: u64,
        pub data_processed: u64,
        pub data_remaining: u64,
        pub mem_total: u64,
        pub mem_processed: u64,
        pub mem_remaining: u64,
        pub file_total: u64,
        pub file_processed: u64,
        pub file_remaining: u64,
    }
}

xdr_struct! {
    pub struct VcpuInfo { pub number: u32, pub state: i32, pub cpu_time: u64, pub cpu: i32 }
}

xdr_struct! {
    pub struct GetVcpusArgs { pub dom: Dom, pub maxinfo: i32, pub maplen: i32 }
}

xdr_struct! {
    pub struct GetVcpusRet { pub info: Vec<VcpuInfo>, pub cpumaps: Opaque }
}

xdr_struct! {
    pub struct CpuMapArgs { pub need_map: i32, pub need_online: i32, pub flags: u32 }
}

xdr_struct! {
    pub struct CpuMapRet { pub cpumap: Opaque, pub online: u32, pub ret: i32 }
}

xdr_struct! {
    pub struct SchedulerTypeRet { pub sched_type: String, pub nparams: i32 }
}

xdr_struct! {
    pub struct MetadataArgs { pub dom: Dom, pub kind: i32, pub uri: Option<String>, pub flags: u32 }
}

xdr_struct! {
    pub struct DomainCapsArgs {
        pub emulatorbin: Option<String>,
        pub arch: Option<String>,
        pub machine: Option<String>,
        pub virttype: Option<String>,
        pub flags: u32,
    }
}

xdr_struct! {
    pub struct OpenConsoleArgs { pub dom: Dom, pub dev_name: Option<String>, pub flags: u32 }
}

xdr_struct! {
    pub struct CallbackRegisterArgs { pub event_id: i32, pub dom: Option<Dom> }
}

xdr_struct! {
    pub struct LifecycleMsg { pub dom: Dom, pub event: i32, pub detail: i32 }
}

xdr_struct! {
    pub struct CallbackLifecycleMsg { pub callback_id: i32, pub msg: LifecycleMsg }
}

xdr_struct! {
    /// `remote_domain_event_callback_reboot_msg` and other events that
    /// carry only the domain.
    pub struct CallbackDomMsg { pub callback_id: i32, pub dom: Dom }
}

xdr_struct! {
    pub struct BalloonChangeMsg { pub dom: Dom, pub actual: u64 }
}

xdr_struct! {
    pub struct CallbackBalloonChangeMsg { pub callback_id: i32, pub msg: BalloonChangeMsg }
}

xdr_struct! {
    /// `remote_domain_event_device_removed_msg`.
    pub struct DeviceRemovedMsg { pub dom: Dom, pub dev_alias: String }
}

xdr_struct! {
    pub struct CallbackDeviceRemovedMsg { pub callback_id: i32, pub msg: DeviceRemovedMsg }
}

xdr_struct! {
    /// `remote_domain_event_callback_device_added_msg` (and the
    /// removal-failed one, of the same shape).
    pub struct CallbackDeviceAliasMsg { pub callback_id: i32, pub dom: Dom, pub dev_alias: String }
}

xdr_struct! {
    pub struct NetworkRef { pub name: String, pub uuid: [u8; 16] }
}

xdr_struct! {
    /// `remote_error`.
    pub struct RemoteError {
        pub code: i32,
        pub domain: i32,
        pub message: Option<String>,
        pub level: i32,
        pub dom: Option<Dom>,
        pub str1: Option<String>,
        pub str2: Option<String>,
        pub str3: Option<String>,
        pub int1: i32,
        pub int2: i32,
        pub net: Option<NetworkRef>,
    }
}

xdr_struct! {
    pub struct NodeCpuStatsArgs { pub cpu_num: i32, pub nparams: i32, pub flags: u32 }
}

xdr_struct! {
    pub struct NodeMemoryStatsArgs { pub nparams: i32, pub cell_num: i32, pub flags: u32 }
}

xdr_struct! {
    /// `remote_node_get_cpu_stats` / `remote_node_get_memory_stats`.
    pub struct NodeStat { pub field: String, pub value: u64 }
}

xdr_struct! {
    /// The reply of NODE_GET_CPU_STATS and NODE_GET_MEMORY_STATS: the
    /// fields (none when the call asked for nparams 0) and their count.
    pub struct NodeStatsRet { pub params: Vec<NodeStat>, pub nparams: i32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::xdr::{from_bytes, to_bytes};

    #[test]
    fn lookup_reply_from_the_reference() {
        let ret = DomRet {
            dom: Dom {
                name: "t1".into(),
                uuid: [
                    0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55,
                    0x55, 0x55, 0x55,
                ],
                id: 2,
            },
        };
        let b = to_bytes(&ret);
        assert_eq!(b.len(), 56 - 28);
        assert_eq!(&b[..8], &[0, 0, 0, 2, b't', b'1', 0, 0]);
        assert_eq!(&b[24..], &[0, 0, 0, 2]);
        assert_eq!(from_bytes::<DomRet>(&b).unwrap(), ret);
    }

    #[test]
    fn open_args_from_the_reference() {
        let b: Vec<u8> = [
            1u32,
            14,
            0x7165_6d75,
            0x3a2f_2f2f,
            0x7379_7374,
            0x656d_0000,
            0,
        ]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
        let a: OpenArgs = from_bytes(&b).unwrap();
        assert_eq!(a.name.as_deref(), Some("qemu:///system"));
        assert_eq!(a.flags, 0);
    }

    #[test]
    fn node_info_is_fixed_size() {
        let n = NodeInfoRet {
            model: "x86_64".into(),
            ..Default::default()
        };
        assert_eq!(to_bytes(&n).len(), 128 + 8 + 6 * 4);
    }

    #[test]
    fn typed_params_round_trip() {
        let ret = TypedParamsRet {
            params: vec![
                TypedParam {
                    field: "rd_bytes".into(),
                    value: TypedValue::LLong(-1),
                },
                TypedParam {
                    field: "s".into(),
                    value: TypedValue::String("x".into()),
                },
            ],
            nparams: 2,
        };
        let b = to_bytes(&ret);
        // count, "rd_bytes" (4 + 8), type 3, hyper, "s" (4 + 4), type 7, "x" (4 + 4), nparams
        assert_eq!(b.len(), 4 + 12 + 4 + 8 + 8 + 4 + 8 + 4);
        assert_eq!(&b[16..20], &[0, 0, 0, 3]);
        assert_eq!(from_bytes::<TypedParamsRet>(&b).unwrap(), ret);
        let mut bad = b.clone();
        bad[19] = 9;
        assert!(from_bytes::<TypedParamsRet>(&bad).is_err());
    }

    #[test]
    fn error_layout() {
        let e = RemoteError {
            code: 42,
            domain: 10,
            message: Some("m".into()),
            level: 2,
            int1: -1,
            int2: -1,
            ..Default::default()
        };
        let b = to_bytes(&e);
        assert_eq!(b.len(), 4 + 4 + 12 + 4 + 4 + 4 * 3 + 4 + 4 + 4);
        assert_eq!(from_bytes::<RemoteError>(&b).unwrap(), e);
    }
}
