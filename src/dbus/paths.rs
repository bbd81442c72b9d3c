//! Object paths: the connect object, per-domain and per-storage-pool
//! paths with libvirt-dbus's UUID encoding (`_` + UUID with `-` as `_`),
//! and per-volume paths with its byte encoding of the volume key
//! (`[A-Za-z0-9]` kept, any other byte as `_` + two lowercase hex digits).

use uuid::Uuid;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

pub const CONNECT_PATH: &str = "/org/libvirt/QEMU";
pub const DOMAIN_PREFIX: &str = "/org/libvirt/QEMU/domain";
pub const STORAGE_POOL_PREFIX: &str = "/org/libvirt/QEMU/storagepool";
pub const STORAGE_VOL_PREFIX: &str = "/org/libvirt/QEMU/storagevol";
pub const NETWORK_PREFIX: &str = "/org/libvirt/QEMU/network";
pub const INTERFACE_PREFIX: &str = "/org/libvirt/QEMU/interface";
pub const SECRET_PREFIX: &str = "/org/libvirt/QEMU/secret";
pub const NWFILTER_PREFIX: &str = "/org/libvirt/QEMU/nwfilter";
pub const NODE_DEVICE_PREFIX: &str = "/org/libvirt/QEMU/nodedev";
pub const DOMAIN_SNAPSHOT_PREFIX: &str = "/org/libvirt/QEMU/domainsnapshot";

/// The child nodes of the connect object, as `Introspect` lists them.
pub const CONNECT_CHILDREN: &[&str] = &[
    "domain",
    "domainsnapshot",
    "interface",
    "network",
    "nodedev",
    "storagepool",
    "storagevol",
];

/// `prefix` + `/_` + the UUID with `-` as `_` (libvirt-dbus's UUID rule).
fn uuid_path(prefix: &str, uuid: &Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut buf);
    for b in buf.iter_mut().filter(|b| **b == b'-') {
        *b = b'_';
    }
    let mut path = String::with_capacity(prefix.len() + 2 + buf.len());
    path.push_str(prefix);
    path.push_str("/_");
    // Hex digits and '_' only.
    path.push_str(std::str::from_utf8(&buf).unwrap_or_default());
    path
}

/// The object path of a domain.
pub fn domain_path(uuid: &Uuid) -> String {
    uuid_path(DOMAIN_PREFIX, uuid)
}

/// The object path of a storage pool.
pub fn pool_path(uuid: &Uuid) -> String {
    uuid_path(STORAGE_POOL_PREFIX, uuid)
}

/// The object path of a storage pool, as a D-Bus value (always valid, see
/// [`domain_object_path`]).
pub fn pool_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(pool_path(uuid)))
}

/// libvirt-dbus's byte rule (`virtDBusUtilEncodeStr`).
pub fn encode_str(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(char::from(b));
        } else {
            out.push('_');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// libvirt-dbus's decoder (`virtDBusUtilDecodeStr`), quirks included: a
/// `_` with two characters after it always takes them as (lowercase) hex
/// digits, a `_` nearer the end is kept, and the result ends at a NUL
/// byte as the C string does.
pub fn decode_str(s: &str) -> String {
    let hex = |c: u8| -> u8 {
        if c >= b'a' {
            (10u8).wrapping_add(c.wrapping_sub(b'a'))
        } else {
            c.wrapping_sub(b'0')
        }
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' || i + 2 >= b.len() {
            out.push(b[i]);
            i += 1;
        } else {
            out.push((hex(b[i + 1]) << 4).wrapping_add(hex(b[i + 2])));
            i += 3;
        }
    }
    if let Some(nul) = out.iter().position(|c| *c == 0) {
        out.truncate(nul);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The object path of a storage volume, from its key; `None` for an empty
/// key, which has no valid path.
pub fn vol_path(key: &str) -> Option<String> {
    (!key.is_empty()).then(|| format!("{STORAGE_VOL_PREFIX}/{}", encode_str(key)))
}

/// The object path of a storage volume, as a D-Bus value.
pub fn vol_object_path(key: &str) -> Result<OwnedObjectPath> {
    let path = vol_path(key).ok_or_else(|| {
        Error::with_message(
            ErrorCode::InternalError,
            ErrorDomain::Dbus,
            "storage volume has an empty key",
        )
    })?;
    // `[A-Za-z0-9_]` after a fixed prefix: always valid.
    Ok(OwnedObjectPath::from(ObjectPath::from_string_unchecked(
        path,
    )))
}

/// The object path of a virtual network (UUID rule).
pub fn network_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(uuid_path(
        NETWORK_PREFIX,
        uuid,
    )))
}

/// The object path of a secret (UUID rule).
pub fn secret_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(uuid_path(
        SECRET_PREFIX,
        uuid,
    )))
}

/// The object path of a network filter (UUID rule).
pub fn nwfilter_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(uuid_path(
        NWFILTER_PREFIX,
        uuid,
    )))
}

fn str_object_path(prefix: &str, key: &str) -> Result<OwnedObjectPath> {
    ObjectPath::try_from(format!("{prefix}/{}", encode_str(key)))
        .map(OwnedObjectPath::from)
        .map_err(|e| Error::internal(format!("invalid object path: {e}")))
}

/// The object path of a host interface (byte rule on its MAC address).
pub fn interface_object_path(mac: &str) -> Result<OwnedObjectPath> {
    str_object_path(INTERFACE_PREFIX, mac)
}

/// The object path of a node device (byte rule on its name).
pub fn node_device_object_path(name: &str) -> Result<OwnedObjectPath> {
    str_object_path(NODE_DEVICE_PREFIX, name)
}

/// libvirt-dbus's reading of a UUID-rule segment (`virtDBusUtilDecodeUUID`):
/// the first character dropped, every `_` read as `-`; the lookup that
/// follows judges the result.
pub fn uuid_text_from_segment(segment: &str) -> String {
    segment
        .chars()
        .skip(1)
        .map(|c| if c == '_' { '-' } else { c })
        .collect()
}

/// The object path of a domain, as a D-Bus value. Built without zvariant's
/// validation (a parser, costly once per domain in a long list): the path
/// is the fixed prefix, `/_`, and hex digits and `_`, always valid.
pub fn domain_object_path(uuid: &Uuid) -> OwnedObjectPath {
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(domain_path(uuid)))
}

/// The object path of a domain snapshot: its domain's UUID segment, `_`,
/// and the snapshot's name in libvirt-dbus's byte encoding.
pub fn snapshot_object_path(uuid: &Uuid, name: &str) -> OwnedObjectPath {
    let dom = uuid_path(DOMAIN_SNAPSHOT_PREFIX, uuid);
    // The prefix, `_`, hex digits, and `[A-Za-z0-9_]`: always valid.
    OwnedObjectPath::from(ObjectPath::from_string_unchecked(format!(
        "{dom}_{}",
        encode_str(name)
    )))
}

/// The domain UUID and snapshot name a snapshot path names, read as
/// libvirt-dbus reads them (37 characters of UUID, one separator, the
/// encoded name).
pub fn snapshot_from_segment(segment: &str) -> Result<(Uuid, String)> {
    let (uuid, rest) = match (segment.get(..37), segment.get(38..)) {
        (Some(u), Some(r)) => (u, r),
        _ => (segment, ""),
    };
    Ok((uuid_from_segment(uuid)?, decode_str(rest)))
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
    /// `/org/libvirt/QEMU/storagepool`: the collection node.
    StoragePools,
    /// A storage pool object (the segment after the collection).
    StoragePool(String),
    /// `/org/libvirt/QEMU/storagevol`: the collection node.
    StorageVols,
    /// A storage volume object (the segment after the collection).
    StorageVol(String),
    /// `/org/libvirt/QEMU/interface`: the collection node.
    Interfaces,
    /// A host interface object (the segment after the collection).
    Interface(String),
    /// `/org/libvirt/QEMU/network`: the collection node.
    Networks,
    /// A network object (the segment after the collection).
    Network(String),
    /// `/org/libvirt/QEMU/domainsnapshot`: the collection node.
    DomainSnapshots,
    /// A domain snapshot object (the segment after the collection).
    DomainSnapshot(String),
    /// `/org/libvirt/QEMU/nodedev`: the collection node.
    NodeDevices,
    /// A node device object (the segment after the collection).
    NodeDevice(String),
    Unknown,
}

/// The segment of `path` right below `prefix`, if that is all there is.
fn child_of(path: &str, prefix: &str) -> Option<String> {
    path.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('/'))
        .filter(|seg| !seg.is_empty() && !seg.contains('/'))
        .map(str::to_string)
}

pub fn classify(path: &str) -> Target {
    match path {
        "/" => Target::Parent(&["org"]),
        "/org" => Target::Parent(&["libvirt"]),
        "/org/libvirt" => Target::Parent(&["QEMU"]),
        CONNECT_PATH => Target::Connect,
        DOMAIN_PREFIX => Target::Domains,
        STORAGE_POOL_PREFIX => Target::StoragePools,
        STORAGE_VOL_PREFIX => Target::StorageVols,
        NODE_DEVICE_PREFIX => Target::NodeDevices,
        NETWORK_PREFIX => Target::Networks,
        INTERFACE_PREFIX => Target::Interfaces,
        DOMAIN_SNAPSHOT_PREFIX => Target::DomainSnapshots,
        _ => {
            if let Some(seg) = child_of(path, DOMAIN_SNAPSHOT_PREFIX) {
                Target::DomainSnapshot(seg)
            } else if let Some(seg) = child_of(path, DOMAIN_PREFIX) {
                Target::Domain(seg)
            } else if let Some(seg) = child_of(path, STORAGE_POOL_PREFIX) {
                Target::StoragePool(seg)
            } else if let Some(seg) = child_of(path, STORAGE_VOL_PREFIX) {
                Target::StorageVol(seg)
            } else if let Some(seg) = child_of(path, INTERFACE_PREFIX) {
                Target::Interface(seg)
            } else if let Some(seg) = child_of(path, NETWORK_PREFIX) {
                Target::Network(seg)
            } else if let Some(seg) = child_of(path, NODE_DEVICE_PREFIX) {
                Target::NodeDevice(seg)
            } else {
                Target::Unknown
            }
        }
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
        let pool = pool_path(&u);
        assert_eq!(
            pool,
            "/org/libvirt/QEMU/storagepool/_6695eb01_f6a4_8304_79aa_97f2502e193f"
        );
        match classify(&pool) {
            Target::StoragePool(seg) => assert_eq!(
                uuid_text_from_segment(&seg),
                "6695eb01-f6a4-8304-79aa-97f2502e193f"
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(classify(STORAGE_POOL_PREFIX), Target::StoragePools);
        assert_eq!(classify(STORAGE_VOL_PREFIX), Target::StorageVols);
        assert_eq!(
            classify("/org/libvirt/QEMU/storagevol/a/b"),
            Target::Unknown
        );
        assert!(uuid_from_segment("_").is_err());
        assert_eq!(classify("/org/libvirt/Nope"), Target::Unknown);
    }

    #[test]
    fn byte_rule() {
        // The examples recorded from libvirt-dbus 1.4.1.
        assert_eq!(encode_str("scsi_host1"), "scsi_5fhost1");
        assert_eq!(
            encode_str("aa:bb:cc:dd:ee:ff"),
            "aa_3abb_3acc_3add_3aee_3aff"
        );
        assert_eq!(
            encode_str("/default-pool/disk-a.img"),
            "_2fdefault_2dpool_2fdisk_2da_2eimg"
        );
        assert_eq!(encode_str("snap 1/\u{e4}"), "snap_201_2f_c3_a4");
        for s in ["/var/lib/oxvirt/images/a b.qcow2", "x_y", "\u{e4}\u{1f600}"] {
            assert_eq!(decode_str(&encode_str(s)), s);
        }
        // A '_' near the end is literal; uppercase hex is misread.
        assert_eq!(decode_str("a_"), "a_");
        assert_eq!(decode_str("a_2"), "a_2");
        assert_eq!(decode_str("_2F"), "6");
        // A decoded NUL ends the key, as in C.
        assert_eq!(decode_str("ab_00cd"), "ab");
        let p = vol_path("/p/v1").unwrap();
        assert_eq!(p, "/org/libvirt/QEMU/storagevol/_2fp_2fv1");
        assert_eq!(classify(&p), Target::StorageVol("_2fp_2fv1".into()));
        assert_eq!(vol_object_path("/p/v1").unwrap().as_str(), p);
        assert!(vol_path("").is_none());
        assert_eq!(
            interface_object_path("aa:bb").unwrap().as_str(),
            "/org/libvirt/QEMU/interface/aa_3abb"
        );
    }
}
