//! libvirt's storage pool and volume XML (`storagepool.rng`,
//! `storagevol.rng`): parsed as libvirt's storage driver reads them and
//! formatted byte for byte as `virsh pool-dumpxml` / `vol-dumpxml` print
//! them. No I/O: what the host says (sizes, permissions, timestamps) is
//! filled in by the driver.

pub(crate) mod out;
pub mod perms;
pub mod pool;
pub mod volume;

pub use perms::Perms;
pub use pool::{PoolDef, PoolType, parse_pool};
pub use volume::{Timestamps, VolDef, VolFormat, parse_volume};

use crate::error::{Error, ErrorCode, ErrorDomain};

/// `VIR_ERR_XML_ERROR` raised by the storage configuration parser.
fn xml_error(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::XmlError, ErrorDomain::Storage, detail)
}

/// A size element (`<capacity unit='G'>10</capacity>`) in bytes, as
/// libvirt's `virStorageSize` reads it: a decimal number, an optional unit
/// (bytes by default), at most `i64::MAX` bytes.
fn parse_size(text: &str, unit: Option<&str>, what: &str) -> crate::error::Result<u64> {
    let value: u64 = text
        .trim()
        .parse()
        .map_err(|_| xml_error(format!("malformed {what} element")))?;
    let unit = unit.filter(|u| !u.is_empty()).unwrap_or("bytes");
    let scale = crate::xml::units::unit_scale(unit).ok_or_else(|| {
        Error::new(
            ErrorCode::InvalidArg,
            ErrorDomain::None,
            format!("unknown suffix '{unit}'"),
        )
    })?;
    value
        .checked_mul(scale)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| {
            Error::new(
                ErrorCode::Overflow,
                ErrorDomain::None,
                format!("value too large: {value}{unit}"),
            )
        })
}
