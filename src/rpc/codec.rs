//! Decoding a call's arguments and encoding its reply, for every
//! procedure module.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::dispatch::Outcome;
use super::xdr::{Xdr, from_bytes, to_bytes};

/// The call's arguments, or libvirt's error for a payload that does not
/// decode.
pub fn args<T: Xdr>(payload: &[u8]) -> Result<T> {
    from_bytes(payload).map_err(|e| {
        Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!("Unable to decode message payload: {e}"),
        )
    })
}

/// A reply carrying `v`.
pub fn reply<T: Xdr>(v: &T) -> Result<Outcome> {
    Ok(Outcome::Reply(to_bytes(v)))
}

/// An empty reply.
pub fn void() -> Result<Outcome> {
    Ok(Outcome::Reply(Vec::new()))
}

/// The server's own check of a list's length (libvirt's generated
/// dispatcher), before the driver sees the call.
pub fn check_max_names(n: i32, limit: usize, what: &str) -> Result<()> {
    if n > 0 && n as usize > limit {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!("maxnames > {what}"),
        ));
    }
    Ok(())
}
