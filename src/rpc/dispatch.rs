//! Procedure dispatch: decode the arguments, call the driver, encode the
//! result. No domain logic here: every decision about domains is the
//! driver's.

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::conn::Conn;
use super::procnames::{self, Access};
use super::protocol::*;
use super::xdr::from_bytes;

/// What a call produced.
pub enum Outcome {
    /// The reply payload.
    Reply(Vec<u8>),
    /// Reply void, then start a console stream on this pty.
    Console(std::fs::File),
    /// Reply void, then send the volume's bytes.
    VolDownload(crate::driver::storage::VolStream),
    /// Reply void, then write the client's bytes to the volume.
    VolUpload(
        crate::driver::storage::VolStream,
        crate::driver::storage::VolRef,
    ),
    /// Reply this payload, then send the image file on the stream.
    Screenshot(Vec<u8>, std::fs::File),
    /// A reply carrying descriptors (`REPLY_WITH_FDS`).
    ReplyWithFds(Vec<u8>, Vec<std::os::fd::OwnedFd>),
    /// The procedure belongs to another part of the remote program.
    NotMine,
}

/// Procedures libvirt refuses on a read-only connection whatever their
/// flags (from the procedure table).
pub fn is_write(p: i32) -> bool {
    matches!(procnames::lookup(p), Some((_, Access::Write)))
}

/// libvirt's refusal of `function` on a read-only connection, raised by
/// the part of libvirt the function belongs to.
fn read_only_error(function: &str, detail: String) -> Error {
    let domain = [
        ("virStorage", ErrorDomain::Storage),
        ("virConnectFindStoragePoolSources", ErrorDomain::Storage),
        ("virNetwork", ErrorDomain::Network),
        ("virNodeDevice", ErrorDomain::NodeDev),
        ("virInterface", ErrorDomain::Interface),
        ("virSecret", ErrorDomain::Secret),
        ("virNWFilter", ErrorDomain::NwFilter),
        ("virDomainSnapshot", ErrorDomain::DomainSnapshot),
        ("virDomainRevertToSnapshot", ErrorDomain::DomainSnapshot),
        ("virDomainCheckpoint", ErrorDomain::DomainCheckpoint),
    ]
    .iter()
    .find(|(prefix, _)| function.starts_with(prefix))
    .map_or(ErrorDomain::Domain, |(_, d)| *d);
    Error::new(ErrorCode::OperationDenied, domain, detail)
}

/// Why a call may not run on a read-only connection, if it may not: a
/// write procedure, or a read procedure with a flag that libvirt only
/// allows on a read-write connection. Undecodable arguments are left to
/// the call to report.
pub fn read_only_refusal(p: i32, payload: &[u8]) -> Option<Error> {
    const XML_SECURE: u32 = 1;
    const VCPU_GUEST: u32 = 8;
    const ADDRESSES_SRC_AGENT: u32 = 1;
    let (function, _) = procnames::lookup(p)?;
    let denied = match p {
        _ if is_write(p) => true,
        procs::DOMAIN_GET_XML_DESC => {
            let a: DomFlagsArgs = from_bytes(payload).ok()?;
            if a.flags & XML_SECURE != 0 {
                return Some(read_only_error(
                    function,
                    format!("{function} with secure flag"),
                ));
            }
            false
        }
        procs::DOMAIN_GET_VCPUS_FLAGS => {
            let a: DomFlagsArgs = from_bytes(payload).ok()?;
            a.flags & VCPU_GUEST != 0
        }
        procs::DOMAIN_INTERFACE_ADDRESSES => {
            let a: InterfaceAddressesArgs = from_bytes(payload).ok()?;
            a.source == ADDRESSES_SRC_AGENT
        }
        _ => false,
    };
    denied.then(|| read_only_error(function, format!("read only access prevents {function}")))
}

/// Procedures allowed before CONNECT_OPEN.
fn allowed_before_open(p: i32) -> bool {
    use procs::*;
    matches!(
        p,
        AUTH_LIST
            | AUTH_SASL_INIT
            | AUTH_SASL_START
            | AUTH_SASL_STEP
            | AUTH_POLKIT
            | CONNECT_SUPPORTS_FEATURE
            | CONNECT_OPEN
    )
}

/// The error for a call this driver does not serve.
pub fn unsupported(proc_: i32) -> Error {
    match function_name(proc_) {
        Some(f) => Error::no_support(f),
        // libvirtd's wording exactly: the client library turns an RPC
        // error starting with "unknown procedure" into NO_SUPPORT.
        None => Error::with_message(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!("unknown procedure: {proc_}"),
        ),
    }
}

/// Runs one call of the remote program.
pub async fn call(conn: &Arc<Conn>, proc_: i32, p: &[u8]) -> Result<Outcome> {
    if conn.is_readonly()
        && let Some(e) = read_only_refusal(proc_, p)
    {
        return Err(e);
    }
    if !conn.is_open() && !allowed_before_open(proc_) {
        return Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::Remote,
            "connection not open",
        ));
    }
    let drv = conn.driver();
    let _lookup = |d: &Dom| drv.lookup_by_uuid(&uuid::Uuid::from_bytes(d.uuid));

    // Each part of the remote program in turn; the first that knows the
    // procedure answers it.
    match super::connect::call(conn, proc_, p).await? {
        Outcome::NotMine => {}
        o => return Ok(o),
    }
    match super::domain::call(conn, proc_, p).await? {
        Outcome::NotMine => {}
        o => return Ok(o),
    }
    if let Some(r) = super::storage::call(drv.storage(), proc_, p).await {
        return r;
    }
    if let Some(r) = super::network::call(drv.networks(), proc_, p).await {
        return r;
    }
    if let Some(r) = super::nodedev::call(drv.nodedev(), proc_, p).await {
        return r;
    }
    if let Some(r) = super::display::call(drv, proc_, p).await {
        return r;
    }
    if let Some(r) = super::domain_queries::call(drv, proc_, p).await {
        return r;
    }
    if let Some(r) = super::domain_save::call(drv, proc_, p).await {
        return r;
    }
    if let Some(r) = super::domain_snapshot::call(drv, proc_, p).await {
        return r;
    }
    if let Some(r) = super::objects::call(proc_, p) {
        return r;
    }
    if let Some(r) = super::object_events::call(conn, proc_, p) {
        return r;
    }
    Err(unsupported(proc_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::xdr::to_bytes;

    #[test]
    fn read_only_classification() {
        // Everything served here that changes something.
        for p in [
            procs::DOMAIN_DEFINE_XML,
            procs::DOMAIN_DEFINE_XML_FLAGS,
            procs::DOMAIN_CREATE,
            procs::DOMAIN_CREATE_XML,
            procs::DOMAIN_CREATE_WITH_FLAGS,
            procs::DOMAIN_DESTROY,
            procs::DOMAIN_DESTROY_FLAGS,
            procs::DOMAIN_REBOOT,
            procs::DOMAIN_RESET,
            procs::DOMAIN_RESUME,
            procs::DOMAIN_SUSPEND,
            procs::DOMAIN_SHUTDOWN,
            procs::DOMAIN_SHUTDOWN_FLAGS,
            procs::DOMAIN_UNDEFINE,
            procs::DOMAIN_UNDEFINE_FLAGS,
            procs::DOMAIN_SET_AUTOSTART,
            procs::DOMAIN_OPEN_CONSOLE,
            procs::DOMAIN_SET_MEMORY,
            procs::DOMAIN_SET_MAX_MEMORY,
            procs::DOMAIN_SET_MEMORY_FLAGS,
            procs::DOMAIN_SET_VCPUS,
            procs::DOMAIN_SET_VCPUS_FLAGS,
            // Getters libvirt refuses read-only: they ask the guest agent
            // or the hypervisor for something privileged.
            procs::CONNECT_GET_DOMAIN_CAPABILITIES,
            337, // virDomainGetTime
            349, // virDomainGetFSInfo
            371, // virDomainGetGuestVcpus
            418, // virDomainGetGuestInfo
            277, // virDomainGetHostname
            235, // virDomainSaveImageGetXMLDesc
            procs::DOMAIN_ATTACH_DEVICE,
            // Not served, still refused first.
            55,  // virDomainSave
            182, // virDomainManagedSave
            226, // virDomainSendKey
            211, // virDomainScreenshot
        ] {
            assert!(is_write(p), "{p}");
        }
        // Reads, including ones whose names look like writes.
        for p in [
            procs::AUTH_LIST,
            procs::CONNECT_OPEN,
            procs::CONNECT_CLOSE,
            procs::CONNECT_LIST_ALL_DOMAINS,
            procs::CONNECT_GET_ALL_DOMAIN_STATS,
            procs::DOMAIN_GET_STATE,
            procs::DOMAIN_GET_INFO,
            procs::DOMAIN_GET_XML_DESC,
            procs::DOMAIN_GET_VCPUS_FLAGS,
            procs::DOMAIN_GET_SECURITY_LABEL,
            procs::DOMAIN_HAS_MANAGED_SAVE_IMAGE,
            procs::DOMAIN_SNAPSHOT_NUM,
            procs::DOMAIN_BLOCK_STATS_FLAGS,
            procs::DOMAIN_MEMORY_STATS,
            procs::DOMAIN_INTERFACE_ADDRESSES,
            procs::DOMAIN_GET_METADATA,
            procs::NODE_GET_SECURITY_MODEL,
            procs::NODE_GET_CPU_STATS,
            procs::NODE_GET_MEMORY_STATS,
            procs::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
            procs::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
            procs::CONNECT_REGISTER_CLOSE_CALLBACK,
            procs::CONNECT_UNREGISTER_CLOSE_CALLBACK,
            procs::DOMAIN_GET_MESSAGES,
            283, // virConnectListAllNetworks
            191, // virDomainSnapshotCurrent
            // Not calls at all.
            procs::AUTH_SASL_INIT,
            procs::DOMAIN_EVENT_CALLBACK_LIFECYCLE,
            4242,
        ] {
            assert!(!is_write(p), "{p}");
        }
    }

    #[test]
    fn read_only_refusals_quote_the_function_and_flag() {
        let dom = Dom {
            name: "d".into(),
            uuid: [0; 16],
            id: -1,
        };
        let e = read_only_refusal(
            337,
            &to_bytes(&DomFlagsArgs {
                dom: dom.clone(),
                flags: 0,
            }),
        )
        .unwrap();
        assert_eq!((e.code as i32, e.domain as i32), (29, 20));
        assert_eq!(
            e.message,
            "operation forbidden: read only access prevents virDomainGetTime"
        );
        // virNetworkCreateXMLFlags: refused by the network part of libvirt.
        let e = read_only_refusal(437, &[]).unwrap();
        assert_eq!(e.domain as i32, 19);
        // GetXMLDesc: a read, unless the secure flag asks for secrets.
        let xml = |flags| {
            to_bytes(&DomFlagsArgs {
                dom: dom.clone(),
                flags,
            })
        };
        assert!(read_only_refusal(procs::DOMAIN_GET_XML_DESC, &xml(2)).is_none());
        let e = read_only_refusal(procs::DOMAIN_GET_XML_DESC, &xml(1)).unwrap();
        assert_eq!(
            e.message,
            "operation forbidden: virDomainGetXMLDesc with secure flag"
        );
        assert!(read_only_refusal(procs::DOMAIN_GET_VCPUS_FLAGS, &xml(4)).is_none());
        assert!(read_only_refusal(procs::DOMAIN_GET_VCPUS_FLAGS, &xml(8)).is_some());
        let addrs = |source| {
            to_bytes(&InterfaceAddressesArgs {
                dom: dom.clone(),
                source,
                flags: 0,
            })
        };
        assert!(read_only_refusal(procs::DOMAIN_INTERFACE_ADDRESSES, &addrs(0)).is_none());
        assert!(read_only_refusal(procs::DOMAIN_INTERFACE_ADDRESSES, &addrs(1)).is_some());
        // Bad arguments are the call's to report.
        assert!(read_only_refusal(procs::DOMAIN_GET_XML_DESC, &[1, 2]).is_none());
        assert!(read_only_refusal(procs::DOMAIN_EVENT_LIFECYCLE, &[]).is_none());
    }

    #[test]
    fn unsupported_calls_map_to_what_clients_fall_back_on() {
        let e = unsupported(281);
        assert_eq!((e.code as i32, e.domain as i32), (3, 10));
        assert_eq!(
            e.message,
            "this function is not supported by the connection driver: virConnectListAllStoragePools"
        );
        // The calls virsh makes for commands this driver has no part for.
        for (p, f) in [
            (52, "virConnectNumOfNetworks"),
            (71, "virConnectNumOfStoragePools"),
            (285, "virConnectListAllNodeDevices"),
            (287, "virConnectListAllSecrets"),
            (284, "virConnectListAllInterfaces"),
            (286, "virConnectListAllNWFilters"),
            (337, "virDomainGetTime"),
            (263, "virDomainGetDiskErrors"),
            (229, "virDomainGetControlInfo"),
            (280, "virDomainGetEmulatorPinInfo"),
            (255, "virDomainGetNumaParameters"),
            (198, "virDomainGetMemoryParameters"),
            (206, "virDomainGetBlkioParameters"),
            (349, "virDomainGetFSInfo"),
            (351, "virDomainGetIOThreadInfo"),
            (312, "virConnectGetCPUModelNames"),
            (413, "virDomainListAllCheckpoints"),
            (418, "virDomainGetGuestInfo"),
            (182, "virDomainManagedSave"),
        ] {
            let e = unsupported(p);
            assert_eq!(e.code as i32, 3);
            assert_eq!(
                e.message,
                format!("this function is not supported by the connection driver: {f}")
            );
        }
        let e = unsupported(4242);
        assert_eq!((e.code as i32, e.domain as i32), (39, 7));
        assert_eq!(e.message, "unknown procedure: 4242");
    }
}
