//! `<pool>`: a storage pool's definition.

use super::out::{Out, esc};
use super::perms::Perms;
use super::xml_error;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::tree::{Element, parse_document_as};
use crate::xml::uuid_text;

/// `virStoragePoolType`, in libvirt's order (the numbers are its ABI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolType {
    Dir,
    Fs,
    Netfs,
    Logical,
    Disk,
    Iscsi,
    IscsiDirect,
    Scsi,
    Mpath,
    Rbd,
    Sheepdog,
    Gluster,
    Zfs,
    Vstorage,
}

const POOL_TYPES: [(&str, PoolType); 14] = [
    ("dir", PoolType::Dir),
    ("fs", PoolType::Fs),
    ("netfs", PoolType::Netfs),
    ("logical", PoolType::Logical),
    ("disk", PoolType::Disk),
    ("iscsi", PoolType::Iscsi),
    ("iscsi-direct", PoolType::IscsiDirect),
    ("scsi", PoolType::Scsi),
    ("mpath", PoolType::Mpath),
    ("rbd", PoolType::Rbd),
    ("sheepdog", PoolType::Sheepdog),
    ("gluster", PoolType::Gluster),
    ("zfs", PoolType::Zfs),
    ("vstorage", PoolType::Vstorage),
];

impl PoolType {
    pub fn parse(s: &str) -> Option<PoolType> {
        POOL_TYPES.iter().find(|(n, _)| *n == s).map(|(_, t)| *t)
    }

    pub fn as_str(self) -> &'static str {
        POOL_TYPES[self as usize].0
    }
}

/// `virStoragePoolFormatFileSystem`: the filesystems of an fs pool.
const FS_FORMATS: [&str; 14] = [
    "auto", "ext2", "ext3", "ext4", "ufs", "iso9660", "udf", "gfs", "gfs2", "vfat", "hfs+", "xfs",
    "ocfs2", "vmfs",
];

/// A pool definition. Sizes are what the last refresh found (zero in a
/// definition read from a file).
#[derive(Clone, Debug, PartialEq)]
pub struct PoolDef {
    pub pool_type: PoolType,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub target_path: String,
    pub target_perms: Perms,
    /// `<source><device path=.../>`: a filesystem pool's block device.
    pub source_devices: Vec<String>,
    /// `<source><format type=.../>`: a filesystem pool's filesystem type.
    pub source_format: Option<String>,
    /// `<features><cow state=.../></features>`.
    pub cow: Option<bool>,
    /// `<refresh><volume allocation='default|capacity'/></refresh>`.
    pub refresh_allocation: Option<String>,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// Reads pool XML as `virStoragePoolDefParse` does.
pub fn parse_pool(xml: &str) -> Result<PoolDef> {
    let root = parse_document_as(xml, "(storage_pool_definition)", "pool")?;
    PoolDef::from_element(&root)
}

/// Removes repeated and trailing slashes, as `virFileSanitizePath`.
pub fn sanitize_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

impl PoolDef {
    fn from_element(root: &Element) -> Result<PoolDef> {
        let type_text = root.attr("type").ok_or_else(|| {
            Error::new(
                ErrorCode::XmlError,
                ErrorDomain::Xml,
                "Missing required attribute 'type' in element 'pool'",
            )
        })?;
        let pool_type = PoolType::parse(type_text).ok_or_else(|| {
            Error::new(
                ErrorCode::XmlError,
                ErrorDomain::Xml,
                format!("Invalid value for attribute 'type' in element 'pool': '{type_text}'."),
            )
        })?;
        // Pools whose source names them (logical, zfs...) are not served,
        // so the name always comes from <name>.
        let name = root
            .child("name")
            .map(|n| n.text.clone())
            .ok_or_else(|| xml_error("missing pool source name element"))?;
        if name.contains('/') {
            return Err(xml_error(format!("name {name} cannot contain '/'")));
        }
        let uuid = match root.child("uuid") {
            None => uuid_text::generate(),
            Some(u) => {
                uuid_text::parse_uuid(&u.text).ok_or_else(|| xml_error("malformed uuid element"))?
            }
        };
        let cow = match root.child("features").and_then(|f| f.child("cow")) {
            None => None,
            Some(c) => {
                let v = match c.attr("state") {
                    None => None,
                    Some("yes") => Some(true),
                    Some("no") => Some(false),
                    Some(other) => {
                        return Err(Error::new(
                            ErrorCode::XmlError,
                            ErrorDomain::Xml,
                            format!(
                                "Invalid value for attribute 'state' in element 'cow': '{other}'."
                            ),
                        ));
                    }
                };
                if v.is_some() && !matches!(pool_type, PoolType::Dir | PoolType::Fs) {
                    return Err(Error::new(
                        ErrorCode::NoSupport,
                        ErrorDomain::Storage,
                        "cow feature may only be used for 'fs' and 'dir' pools",
                    ));
                }
                v
            }
        };
        let source = root.child("source");
        let source_devices: Vec<String> = source
            .map(|s| {
                s.children_named("device")
                    .filter_map(|d| d.attr("path"))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let source_format = match source
            .and_then(|s| s.child("format"))
            .and_then(|f| f.attr("type"))
        {
            _ if pool_type != PoolType::Fs => None,
            None => Some("auto".to_string()),
            Some(f) if FS_FORMATS.contains(&f) => Some(f.to_string()),
            Some(f) => return Err(xml_error(format!("unknown pool format type {f}"))),
        };
        if pool_type == PoolType::Fs && source_devices.is_empty() {
            return Err(xml_error("missing storage pool source device name"));
        }
        let target = root.child("target");
        let target_path = target
            .and_then(|t| t.child("path"))
            .map(|p| p.text.clone())
            .ok_or_else(|| xml_error("missing storage pool target path"))?;
        let target_perms = Perms::parse(target.and_then(|t| t.child("permissions")))?;
        let refresh_allocation = match root
            .child("refresh")
            .and_then(|r| r.child("volume"))
            .and_then(|v| v.attr("allocation"))
        {
            None => None,
            Some(a @ ("default" | "capacity")) => Some(a.to_string()),
            Some(other) => {
                return Err(Error::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::Storage,
                    format!("unknown storage pool volume refresh allocation type {other}"),
                ));
            }
        };
        Ok(PoolDef {
            pool_type,
            name,
            uuid,
            target_path: sanitize_path(&target_path),
            target_perms,
            source_devices,
            source_format,
            cow,
            refresh_allocation,
            capacity: 0,
            allocation: 0,
            available: 0,
        })
    }

    /// The XML as `virStoragePoolDefFormat` writes it.
    pub fn to_xml(&self) -> String {
        let mut o = Out::default();
        o.open(&format!("<pool type='{}'>", self.pool_type.as_str()));
        o.text_elem("name", &self.name);
        o.line(&format!("<uuid>{}</uuid>", self.uuid));
        o.line(&format!(
            "<capacity unit='bytes'>{}</capacity>",
            self.capacity
        ));
        o.line(&format!(
            "<allocation unit='bytes'>{}</allocation>",
            self.allocation
        ));
        o.line(&format!(
            "<available unit='bytes'>{}</available>",
            self.available
        ));
        if let Some(cow) = self.cow {
            o.open("<features>");
            o.line(&format!(
                "<cow state='{}'/>",
                if cow { "yes" } else { "no" }
            ));
            o.close("</features>");
        }
        // A dir pool has no source, yet libvirt writes the element.
        o.open("<source>");
        for d in &self.source_devices {
            o.line(&format!("<device path='{}'/>", esc(d)));
        }
        if let Some(f) = &self.source_format {
            o.line(&format!("<format type='{f}'/>"));
        }
        o.close("</source>");
        o.open("<target>");
        o.line(&format!("<path>{}</path>", esc(&self.target_path)));
        self.target_perms.write(&mut o);
        o.close("</target>");
        if let Some(a) = &self.refresh_allocation {
            o.open("<refresh>");
            o.line(&format!("<volume allocation='{a}'/>"));
            o.close("</refresh>");
        }
        o.close("</pool>");
        o.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_pool_round_trips_in_libvirt_form() {
        let p = parse_pool(
            "<pool type='dir'><name>default</name>\
             <uuid>0d3c2f4e-8a51-4f4d-9a43-0d6b1a1e6f01</uuid>\
             <target><path>/var/lib//libvirt/images/</path></target></pool>",
        )
        .unwrap();
        assert_eq!(p.target_path, "/var/lib/libvirt/images");
        assert_eq!(
            p.to_xml(),
            "<pool type='dir'>\n  <name>default</name>\n  \
             <uuid>0d3c2f4e-8a51-4f4d-9a43-0d6b1a1e6f01</uuid>\n  \
             <capacity unit='bytes'>0</capacity>\n  \
             <allocation unit='bytes'>0</allocation>\n  \
             <available unit='bytes'>0</available>\n  <source>\n  </source>\n  \
             <target>\n    <path>/var/lib/libvirt/images</path>\n  </target>\n</pool>\n"
        );
        assert_eq!(parse_pool(&p.to_xml()).unwrap(), p);
    }

    #[test]
    fn bad_pools_get_libvirts_errors() {
        let err = |x: &str| parse_pool(x).unwrap_err().to_string();
        assert_eq!(
            err("<pool><name>a</name></pool>"),
            "XML error: Missing required attribute 'type' in element 'pool'"
        );
        assert_eq!(
            err("<pool type='dir'><target><path>/x</path></target></pool>"),
            "XML error: missing pool source name element"
        );
        assert_eq!(
            err("<pool type='dir'><name>a/b</name></pool>"),
            "XML error: name a/b cannot contain '/'"
        );
        assert_eq!(
            err("<pool type='dir'><name>a</name></pool>"),
            "XML error: missing storage pool target path"
        );
        assert_eq!(
            err("<domain/>"),
            "XML error: expecting root element of 'pool', not 'domain'"
        );
        assert_eq!(
            err(
                "<pool type='dir'><name>a</name><target><path>/x</path><permissions><mode>999</mode></permissions></target></pool>"
            ),
            "XML error: malformed octal mode"
        );
        assert!(err("<pool type='dir'>").starts_with("(storage_pool_definition):1: "));
    }
}
