//! Object paths: the connect object and per-domain paths, with
//! libvirt-dbus's UUID encoding (`_` + UUID with `-` as `_`).

use uuid::Uuid;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

pub const CONNECT_PATH: &str = "/org/libvirt/QEMU";
pub const DOMAIN_PREFIX: &str = "/org/libvirt/QEMU/domain";

/// The object path of a domain.
pub fn domain_path(uuid: &Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut buf);
    for b in buf.iter_mut().filter(|b| **b == b'-') {
        *b = b'_';
    }
    let mut path = String::with_capacity(DOMAIN_PREFIX.len() + 2 + buf.len());
    path.push_str(DOMAIN_PREFIX);
    path.push_str("/_");
    // Hex digits and '_' only.
    path.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    path
}

/// The object path of a domain, as a D-Bus value. Built without zvariant's
/// validation (a parser, costly once per domain in a long list): the path
/// is the fixed prefix, `/_`, and hex digits and `_`, always valid.
pub fn domain_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(domain_path(uuid)))
}

/// The UUID a domain path names; the error is libvirt-dbus's.
pub fn uuid_from_segment(segment: &str) -> Result<Uuid> {
    let text: String = segment
        .chars()
        .skip(1)
        .map(|c| if c == '_' { '-' } else { c })
        .collect();
    Uuid::parse_str(&text)
        .ok()
        .filter(|_| segment.starts_with('_') && text.len() == 36)
        .ok_or_else(|| {
            Error::with_message(ErrorCode::InvalidArg, ErrorDomain::Dbus, "Invalid UUID")
        })
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// `/`, `/org`, `/org/libvirt`: only introspectable.
    Parent(&'static [&'static str]),
    Connect,
    /// `/org/libvirt/QEMU/domain`: the collection node.
    Domains,
    /// A domain object (possibly of a domain that does not exist).
    Domain(String),
    Unknown,
}

pub fn classify(path: &str) -> Target {
    match path {
        "/" => Target::Parent(&["org"]),
        "/org" => Target::Parent(&["libvirt"]),
        "/org/libvirt" => Target::Parent(&["QEMU"]),
        CONNECT_PATH => Target::Connect,
        DOMAIN_PREFIX => Target::Domains,
        _ => match path
            .strip_prefix(DOMAIN_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
        {
            Some(seg) if !seg.is_empty() && !seg.contains('/') => Target::Domain(seg.to_string()),
            _ => Target::Unknown,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let u = Uuid::parse_str("6695eb01-f6a4-8304-79aa-97f2502e193f").unwrap();
        let p = domain_path(&u);
        assert_eq!(
            p,
            "/org/libvirt/QEMU/domain/_6695eb01_f6a4_8304_79aa_97f2502e193f"
        );
        match classify(&p) {
            Target::Domain(seg) => assert_eq!(uuid_from_segment(&seg).unwrap(), u),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            domain_object_path(&u).as_str(),
            ObjectPath::try_from(p.as_str()).unwrap().as_str()
        );
        assert!(uuid_from_segment("garbage").is_err());
        assert!(uuid_from_segment("_").is_err());
        assert_eq!(classify("/org/libvirt/Nope"), Target::Unknown);
    }
}
