//! The VMM's own error type. Every variant reads as a complete sentence
//! after `oxvirt-vmm: error: `.

use std::path::PathBuf;

/// Result alias used across the VMM.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can stop the VMM from building or running a guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("cannot read configuration {what}: {source}")]
    ConfigRead {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse configuration: {0}")]
    ConfigParse(#[from] serde_json::Error),
    #[error("cannot open kernel {path}: {source}")]
    KernelOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open firmware {path}: {source}")]
    FirmwareOpen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load kernel {path}: {reason}")]
    KernelLoad { path: PathBuf, reason: String },
    #[error("cannot load initrd {path}: {reason}")]
    Initrd { path: PathBuf, reason: String },
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("KVM: {op} failed: {source}")]
    Kvm {
        op: &'static str,
        #[source]
        source: kvm_ioctls::Error,
    },
    #[error("KVM does not support {0}, which this VMM requires")]
    KvmMissing(&'static str),
    #[error("boot setup: {0}")]
    Boot(String),
    #[error("cannot restore the guest state: {0}")]
    Restore(String),
    #[error("ACPI tables: {0}")]
    Acpi(String),
    #[error("serial backend: {0}")]
    Serial(String),
    #[error("control socket {path}: {source}")]
    Control {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an error from a KVM ioctl with the name of the operation.
    pub fn kvm(op: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> Error {
        move |source| Error::Kvm { op, source }
    }

    /// Wraps an I/O error with a description of what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
