//! The listing and lookup entry points of the libvirt object kinds oxvirt
//! has no objects of yet: secrets and network filters. Each checks its
//! flags as the libvirt 9.0 driver behind it does (`virCheckFlags` in the
//! secret and nwfilter drivers)
//! and lists nothing, and every lookup answers that driver's "not found"
//! error, so that every front end answers the same.

use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// A secret as clients name it (`virSecretPtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    pub uuid: Uuid,
    pub usage_type: i32,
    pub usage_id: String,
}

/// A network filter as clients name it (`virNWFilterPtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NwFilterRef {
    pub name: String,
    pub uuid: Uuid,
}

/// `virConnectListAllSecretsFlags`: EPHEMERAL, NO_EPHEMERAL, PRIVATE,
/// NO_PRIVATE.
pub const LIST_SECRETS_ALL: u32 = (1 << 4) - 1;
/// `virCheckFlags` as the driver named `function` words it.
fn check_flags(flags: u32, allowed: u32, function: &str, domain: ErrorDomain) -> Result<()> {
    super::check_flags_in(domain, flags, allowed, function)
}

/// `virConnectListAllSecrets`: no secrets yet.
pub fn connect_list_all_secrets(flags: u32) -> Result<Vec<SecretRef>> {
    check_flags(
        flags,
        LIST_SECRETS_ALL,
        "secretConnectListAllSecrets",
        ErrorDomain::Secret,
    )?;
    Ok(Vec::new())
}

/// `virConnectListAllNWFilters`: no network filters yet.
pub fn connect_list_all_nwfilters(flags: u32) -> Result<Vec<NwFilterRef>> {
    check_flags(
        flags,
        0,
        "nwfilterConnectListAllNWFilters",
        ErrorDomain::NwFilter,
    )?;
    Ok(Vec::new())
}

/// `virSecretLookupByUUID`.
pub fn secret_lookup_by_uuid(uuid: &Uuid) -> Result<SecretRef> {
    Err(Error::new(
        ErrorCode::NoSecret,
        ErrorDomain::Secret,
        format!("no secret with matching uuid '{uuid}'"),
    ))
}

/// `virNWFilterLookupByName`.
pub fn nwfilter_lookup_by_name(name: &str) -> Result<NwFilterRef> {
    Err(Error::new(
        ErrorCode::NoNwfilter,
        ErrorDomain::NwFilter,
        format!("no nwfilter with matching name '{name}'"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_lists_and_libvirts_flag_errors() {
        assert!(connect_list_all_secrets(0xf).unwrap().is_empty());
        assert_eq!(
            connect_list_all_secrets(0x30).unwrap_err().message,
            "invalid argument: unsupported flags (0x30) in function secretConnectListAllSecrets"
        );
        assert!(connect_list_all_nwfilters(0).unwrap().is_empty());
        assert_eq!(
            connect_list_all_nwfilters(1).unwrap_err().message,
            "invalid argument: unsupported flags (0x1) in function nwfilterConnectListAllNWFilters"
        );
    }
}
