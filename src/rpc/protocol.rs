//! Procedure numbers of the remote program and the argument, return and
//! message structures served here. Field order is wire order.

use super::xdr::{
    CharArray, Opaque, Reader, XResult, Xdr, XdrError, encode_char_fixed, xdr_struct,
};

/// Procedure numbers (`REMOTE_PROC_*`).
pub mod procs {
    pub const CONNECT_OPEN: i32 = 1;
    pub const CONNECT_CLOSE: i32 = 2;
    pub const CONNECT_GET_TYPE: i32 = 3;
    pub const CONNECT_GET_VERSION: i32 = 4;
    pub const CONNECT_GET_MAX_VCPUS: i32 = 5;
    pub const NODE_GET_INFO: i32 = 6;
    pub const CONNECT_GET_CAPABILITIES: i32 = 7;
    pub const DOMAIN_CREATE: i32 = 9;
    pub const DOMAIN_CREATE_XML: i32 = 10;
    pub const DOMAIN_DEFINE_XML: i32 = 11;
    pub const DOMAIN_DESTROY: i32 = 12;
    pub const DOMAIN_GET_XML_DESC: i32 = 14;
    pub const DOMAIN_GET_AUTOSTART: i32 = 15;
    pub const DOMAIN_GET_INFO: i32 = 16;
    pub const DOMAIN_GET_MAX_MEMORY: i32 = 17;
    pub const DOMAIN_GET_MAX_VCPUS: i32 = 18;
    pub const DOMAIN_GET_OS_TYPE: i32 = 19;
    pub const DOMAIN_GET_VCPUS: i32 = 20;
    pub const CONNECT_LIST_DEFINED_DOMAINS: i32 = 21;
    pub const DOMAIN_LOOKUP_BY_ID: i32 = 22;
    pub const DOMAIN_LOOKUP_BY_NAME: i32 = 23;
    pub const DOMAIN_LOOKUP_BY_UUID: i32 = 24;
    pub const CONNECT_NUM_OF_DEFINED_DOMAINS: i32 = 25;
    pub const DOMAIN_REBOOT: i32 = 27;
    pub const DOMAIN_RESUME: i32 = 28;
    pub const DOMAIN_SET_AUTOSTART: i32 = 29;
    pub const DOMAIN_SET_MAX_MEMORY: i32 = 30;
    pub const DOMAIN_SET_MEMORY: i32 = 31;
    pub const DOMAIN_SET_VCPUS: i32 = 32;
    pub const DOMAIN_SHUTDOWN: i32 = 33;
    pub const DOMAIN_SUSPEND: i32 = 34;
    pub const DOMAIN_UNDEFINE: i32 = 35;
    pub const CONNECT_LIST_DOMAINS: i32 = 37;
    pub const CONNECT_NUM_OF_DOMAINS: i32 = 51;
    pub const DOMAIN_GET_SCHEDULER_TYPE: i32 = 56;
    pub const CONNECT_GET_HOSTNAME: i32 = 59;
    pub const CONNECT_SUPPORTS_FEATURE: i32 = 60;
    pub const DOMAIN_BLOCK_STATS: i32 = 64;
    pub const DOMAIN_INTERFACE_STATS: i32 = 65;
    pub const AUTH_LIST: i32 = 66;
    pub const AUTH_SASL_INIT: i32 = 67;
    pub const AUTH_SASL_START: i32 = 68;
    pub const AUTH_SASL_STEP: i32 = 69;
    pub const AUTH_POLKIT: i32 = 70;
    pub const NODE_GET_FREE_MEMORY: i32 = 102;
    pub const CONNECT_GET_URI: i32 = 110;
    pub const DOMAIN_GET_SECURITY_LABEL: i32 = 121;
    pub const NODE_GET_SECURITY_MODEL: i32 = 122;
    pub const CONNECT_IS_SECURE: i32 = 149;
    pub const DOMAIN_IS_ACTIVE: i32 = 150;
    pub const DOMAIN_IS_PERSISTENT: i32 = 151;
    pub const CONNECT_GET_LIB_VERSION: i32 = 157;
    pub const DOMAIN_MEMORY_STATS: i32 = 159;
    pub const DOMAIN_GET_JOB_INFO: i32 = 163;
    pub const CONNECT_DOMAIN_EVENT_REGISTER_ANY: i32 = 167;
    pub const CONNECT_DOMAIN_EVENT_DEREGISTER_ANY: i32 = 168;
    pub const DOMAIN_HAS_MANAGED_SAVE_IMAGE: i32 = 183;
    pub const DOMAIN_SNAPSHOT_NUM: i32 = 187;
    pub const DOMAIN_CREATE_WITH_FLAGS: i32 = 196;
    pub const DOMAIN_SET_VCPUS_FLAGS: i32 = 199;
    pub const DOMAIN_GET_VCPUS_FLAGS: i32 = 200;
    pub const DOMAIN_OPEN_CONSOLE: i32 = 201;
    pub const DOMAIN_IS_UPDATED: i32 = 202;
    pub const CONNECT_GET_SYSINFO: i32 = 203;
    pub const DOMAIN_SET_MEMORY_FLAGS: i32 = 204;
    pub const DOMAIN_GET_STATE: i32 = 212;
    pub const NODE_GET_CPU_STATS: i32 = 227;
    pub const NODE_GET_MEMORY_STATS: i32 = 228;
    pub const DOMAIN_GET_VCPU_PIN_INFO: i32 = 230;
    pub const DOMAIN_UNDEFINE_FLAGS: i32 = 231;
    pub const DOMAIN_DESTROY_FLAGS: i32 = 234;
    pub const DOMAIN_RESET: i32 = 245;
    pub const DOMAIN_SHUTDOWN_FLAGS: i32 = 258;
    pub const DOMAIN_GET_METADATA: i32 = 265;
    pub const CONNECT_LIST_ALL_DOMAINS: i32 = 273;
    pub const DOMAIN_RENAME: i32 = 358;
    pub const NODE_GET_CPU_MAP: i32 = 293;
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: i32 = 316;
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: i32 = 317;
    pub const DOMAIN_EVENT_CALLBACK_LIFECYCLE: i32 = 318;
    pub const DOMAIN_EVENT_CALLBACK_REBOOT: i32 = 319;
    pub const DOMAIN_EVENT_CALLBACK_BALLOON_CHANGE: i32 = 331;
    pub const CONNECT_GET_ALL_DOMAIN_STATS: i32 = 344;
    pub const DOMAIN_INTERFACE_ADDRESSES: i32 = 353;
    pub const CONNECT_GET_DOMAIN_CAPABILITIES: i32 = 342;
    pub const DOMAIN_DEFINE_XML_FLAGS: i32 = 350;
    pub const CONNECT_REGISTER_CLOSE_CALLBACK: i32 = 360;
    pub const CONNECT_UNREGISTER_CLOSE_CALLBACK: i32 = 361;
    pub const DOMAIN_GET_MESSAGES: i32 = 426;
    /// Legacy (non-callback) event messages.
    pub const DOMAIN_EVENT_LIFECYCLE: i32 = 107;
    pub const DOMAIN_EVENT_REBOOT: i32 = 169;
    pub const DOMAIN_EVENT_BALLOON_CHANGE: i32 = 276;
    pub const DOMAIN_BLOCK_STATS_FLAGS: i32 = 243;
}

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
    pub struct VcpuPinInfoArgs { pub dom: Dom, pub ncpumaps: i32, pub maplen: i32, pub flags: u32 }
}

xdr_struct! {
    pub struct VcpuPinInfoRet { pub cpumaps: Opaque, pub num: i32 }
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
