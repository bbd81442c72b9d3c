//! The one error type every front end reports: libvirt's error code, error
//! domain and message, worded as libvirt words it.
//!
//! libvirt composes a message from a fixed prefix chosen by the code
//! ("Domain not found: ", "unsupported configuration: ", ...) and a detail.
//! [`Error::new`] does the same, so `Display` prints exactly what `virsh`
//! would print after `error: `.

use std::fmt;

/// `virErrorNumber`: the codes oxvirt reports. Values are libvirt's ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    InternalError = 1,
    NoMemory = 2,
    NoSupport = 3,
    NoConnect = 5,
    InvalidConn = 6,
    InvalidDomain = 7,
    InvalidArg = 8,
    OperationFailed = 9,
    OsType = 16,
    NoKernel = 17,
    NoSource = 19,
    NoTarget = 20,
    NoName = 21,
    NoOs = 22,
    NoDevice = 23,
    XmlError = 27,
    DomExist = 28,
    OperationDenied = 29,
    OpenFailed = 30,
    ReadFailed = 31,
    ParseFailed = 32,
    ConfSyntax = 33,
    WriteFailed = 34,
    XmlDetail = 35,
    SystemError = 38,
    Rpc = 39,
    NoDomain = 42,
    NoNetwork = 43,
    InvalidMac = 44,
    AuthFailed = 45,
    InvalidStoragePool = 46,
    InvalidStorageVol = 47,
    NoStoragePool = 49,
    NoStorageVol = 50,
    NoNodeDevice = 53,
    NoInterface = 57,
    NoNwfilter = 62,
    NoSecret = 66,
    OperationInvalid = 55,
    ConfigUnsupported = 67,
    OperationTimeout = 68,
    NoDomainSnapshot = 72,
    InvalidStream = 73,
    ArgumentUnsupported = 74,
    StorageProbeFailed = 75,
    StoragePoolBuilt = 76,
    SnapshotRevertRisky = 77,
    OperationAborted = 78,
    NoDomainMetadata = 80,
    Overflow = 82,
    OperationUnsupported = 84,
    AgentUnresponsive = 86,
    ResourceBusy = 87,
    AccessDenied = 88,
    StorageVolExist = 90,
    XmlInvalidSchema = 92,
    DeviceMissing = 99,
    MultipleInterfaces = 79,
    MultipleDomains = 110,
}

impl ErrorCode {
    /// The fixed text libvirt puts before the detail of an error with this
    /// code (`virErrorMsg`), or uses alone when there is no detail.
    fn prefix(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InternalError => "internal error",
            NoMemory => "out of memory",
            NoSupport => "this function is not supported by the connection driver",
            NoConnect => "no connection driver available",
            InvalidConn => "invalid connection pointer in",
            InvalidDomain => "invalid domain pointer in",
            InvalidArg => "invalid argument",
            OperationFailed => "operation failed",
            OsType => "unknown OS type",
            NoKernel => "missing kernel information",
            NoSource => "missing source information",
            NoTarget => "missing target information",
            NoName => "missing name information",
            NoOs => "missing operating system information",
            NoDevice => "missing devices information",
            XmlError => "XML error",
            DomExist => "this domain exists already",
            OperationDenied => "operation forbidden",
            OpenFailed => "cannot open file",
            ReadFailed => "cannot read file",
            ParseFailed => "cannot parse file",
            ConfSyntax => "configuration file syntax error",
            WriteFailed => "cannot write file",
            XmlDetail => "parser error",
            SystemError => "system error",
            Rpc => "RPC error",
            NoDomain => "Domain not found",
            NoNetwork => "Network not found",
            InvalidMac => "invalid MAC address",
            AuthFailed => "authentication failed",
            InvalidStoragePool => "invalid storage pool pointer in",
            InvalidStorageVol => "invalid storage volume pointer in",
            NoStoragePool => "Storage pool not found",
            NoStorageVol => "Storage volume not found",
            NoNodeDevice => "Node device not found",
            NoInterface => "Interface not found",
            NoNwfilter => "Network filter not found",
            NoSecret => "Secret not found",
            OperationInvalid => "Requested operation is not valid",
            ConfigUnsupported => "unsupported configuration",
            OperationTimeout => "Timed out during operation",
            InvalidStream => "invalid stream pointer in",
            ArgumentUnsupported => "argument unsupported",
            NoDomainSnapshot => "Domain snapshot not found",
            SnapshotRevertRisky => "revert requires force",
            StorageProbeFailed => "Storage pool probe failed",
            StoragePoolBuilt => "Storage pool already built",
            StorageVolExist => "this storage volume exists already",
            OperationAborted => "operation aborted",
            NoDomainMetadata => "metadata not found",
            Overflow => "numerical overflow",
            OperationUnsupported => "Operation not supported",
            AgentUnresponsive => "Guest agent is not responding",
            ResourceBusy => "resource busy",
            AccessDenied => "access denied",
            XmlInvalidSchema => "XML document failed to validate against schema",
            DeviceMissing => "device not found",
            MultipleInterfaces => "multiple matching interfaces found",
            MultipleDomains => "multiple matching domains found",
        }
    }

    /// Codes whose detail stands alone in libvirt's message, without the
    /// prefix (`virErrorMsg` returns a bare "%s" for them).
    fn detail_stands_alone(self) -> bool {
        matches!(self, ErrorCode::SystemError | ErrorCode::XmlDetail)
    }
}

/// `virErrorDomain`: which part of libvirt raised an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorDomain {
    None = 0,
    Xml = 5,
    Dom = 6,
    Rpc = 7,
    Conf = 9,
    Qemu = 10,
    Remote = 13,
    Storage = 18,
    Network = 19,
    Domain = 20,
    NodeDev = 22,
    Security = 24,
    Interface = 26,
    Secret = 30,
    Cpu = 31,
    NwFilter = 33,
    DomainSnapshot = 35,
    Capabilities = 44,
    Uri = 45,
    Dbus = 47,
    Device = 49,
    Identity = 53,
    Access = 55,
    Logging = 63,
    DomainCheckpoint = 69,
}

/// An error as libvirt reports it: code, domain, and the composed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub domain: ErrorDomain,
    pub message: String,
}

impl Error {
    /// An error whose message is libvirt's prefix for `code`, then `detail`.
    pub fn new(code: ErrorCode, domain: ErrorDomain, detail: impl AsRef<str>) -> Self {
        let detail = detail.as_ref();
        let message = if detail.is_empty() {
            code.prefix().to_string()
        } else if code.detail_stands_alone() {
            detail.to_string()
        } else {
            format!("{}: {}", code.prefix(), detail)
        };
        Error {
            code,
            domain,
            message,
        }
    }

    /// An error whose message is exactly `message`, as libvirt reports some
    /// errors with a fully custom text (e.g. "domain 'x' already exists with uuid ...").
    pub fn with_message(code: ErrorCode, domain: ErrorDomain, message: impl Into<String>) -> Self {
        Error {
            code,
            domain,
            message: message.into(),
        }
    }

    /// `VIR_ERR_XML_ERROR` from the domain-config parser.
    pub fn xml(detail: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::XmlError, ErrorDomain::Domain, detail)
    }

    /// `VIR_ERR_CONFIG_UNSUPPORTED`: valid XML that this driver cannot run.
    pub fn unsupported(detail: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::ConfigUnsupported, ErrorDomain::Domain, detail)
    }

    /// `VIR_ERR_INTERNAL_ERROR`, which libvirt also uses for many bad values.
    pub fn internal(detail: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InternalError, ErrorDomain::Domain, detail)
    }

    /// `VIR_ERR_INVALID_ARG`.
    pub fn invalid_arg(detail: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::InvalidArg, ErrorDomain::Domain, detail)
    }

    /// `VIR_ERR_OPERATION_INVALID`.
    pub fn operation_invalid(detail: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::OperationInvalid, ErrorDomain::Domain, detail)
    }

    /// `VIR_ERR_NO_SUPPORT`: the call exists in libvirt but not in this driver.
    pub fn no_support(function: impl AsRef<str>) -> Self {
        Self::new(ErrorCode::NoSupport, ErrorDomain::Qemu, function)
    }

    /// `VIR_ERR_NO_DOMAIN` for a lookup by name, worded as libvirt's QEMU driver does.
    pub fn no_domain_name(name: &str) -> Self {
        Self::new(
            ErrorCode::NoDomain,
            ErrorDomain::Qemu,
            format!("no domain with matching name '{name}'"),
        )
    }

    /// `VIR_ERR_NO_DOMAIN` for a lookup by UUID.
    pub fn no_domain_uuid(uuid: &str) -> Self {
        Self::new(
            ErrorCode::NoDomain,
            ErrorDomain::Qemu,
            format!("no domain with matching uuid '{uuid}'"),
        )
    }

    /// `VIR_ERR_NO_DOMAIN` for a lookup by id.
    pub fn no_domain_id(id: i32) -> Self {
        Self::new(
            ErrorCode::NoDomain,
            ErrorDomain::Qemu,
            format!("no domain with matching id {id}"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_compose_as_libvirt_does() {
        assert_eq!(
            Error::no_domain_name("x").to_string(),
            "Domain not found: no domain with matching name 'x'"
        );
        assert_eq!(
            Error::unsupported("graphics type 'spice' is not supported").to_string(),
            "unsupported configuration: graphics type 'spice' is not supported"
        );
        assert_eq!(
            Error::new(ErrorCode::NoName, ErrorDomain::Domain, "").to_string(),
            "missing name information"
        );
        assert_eq!(
            Error::new(ErrorCode::SystemError, ErrorDomain::None, "No such file").to_string(),
            "No such file"
        );
    }

    #[test]
    fn codes_are_libvirt_abi() {
        assert_eq!(ErrorCode::NoDomain as i32, 42);
        assert_eq!(ErrorCode::ConfigUnsupported as i32, 67);
        assert_eq!(ErrorCode::OperationInvalid as i32, 55);
        assert_eq!(ErrorCode::XmlError as i32, 27);
        assert_eq!(ErrorCode::XmlDetail as i32, 35);
        assert_eq!(ErrorDomain::Domain as i32, 20);
        assert_eq!(ErrorDomain::Qemu as i32, 10);
    }
}
