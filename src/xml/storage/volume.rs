//! `<volume>`: a storage volume's definition (for creation) and its
//! description (for `vol-dumpxml`).

use super::out::{Out, esc};
use super::perms::Perms;
use super::{parse_size, xml_error};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::tree::{Element, parse_document_as};

/// `virStorageFileFormat` names that a file-based pool knows.
pub const VOL_FORMATS: [&str; 17] = [
    "none", "raw", "dir", "bochs", "cloop", "dmg", "iso", "vpc", "vdi", "fat", "vhd", "ploop",
    "cow", "qcow", "qcow2", "qed", "vmdk",
];

/// A volume's file format, by its libvirt name (one of [`VOL_FORMATS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolFormat(&'static str);

impl VolFormat {
    pub const RAW: VolFormat = VolFormat("raw");
    pub const QCOW2: VolFormat = VolFormat("qcow2");
    pub const ISO: VolFormat = VolFormat("iso");
    pub const DIR: VolFormat = VolFormat("dir");

    pub fn parse(s: &str) -> Option<VolFormat> {
        VOL_FORMATS.iter().find(|f| **f == s).map(|f| VolFormat(f))
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// `virStorageVolType` names; "file" for anything in a directory pool.
pub const VOL_TYPES: [&str; 6] = ["file", "block", "dir", "network", "netdir", "ploop"];

/// Access, modification, status-change times (seconds, nanoseconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timestamps {
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

/// The backing image of a volume.
#[derive(Clone, Debug, PartialEq)]
pub struct Backing {
    pub path: String,
    pub format: VolFormat,
    pub perms: Perms,
    pub timestamps: Option<Timestamps>,
}

/// A volume. For creation only name, capacity, allocation, format,
/// permissions, compat, features and backing store matter; the rest is
/// what the driver found on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct VolDef {
    pub name: String,
    pub key: Option<String>,
    pub vol_type: &'static str,
    pub capacity: u64,
    /// Whether `<capacity>` was given (a backed qcow2 may take its backing size).
    pub has_capacity: bool,
    pub allocation: u64,
    /// Whether `<allocation>` was given; without it, it equals the capacity.
    pub has_allocation: bool,
    pub physical: u64,
    pub path: Option<String>,
    pub format: VolFormat,
    pub perms: Perms,
    pub timestamps: Option<Timestamps>,
    pub compat: Option<String>,
    pub nocow: bool,
    pub cluster_size: u64,
    /// `<features>`: None when absent; `lazy_refcounts`, `extended_l2`.
    pub features: Option<Vec<&'static str>>,
    pub backing: Option<Backing>,
    /// `<encryption>` was given (not served: refused by the driver).
    pub encryption: bool,
}

/// Reads volume XML as `virStorageVolDefParse` does for a directory pool.
pub fn parse_volume(xml: &str) -> Result<VolDef> {
    let root = parse_document_as(xml, "(storage_volume_definition)", "volume")?;
    VolDef::from_element(&root)
}

fn unknown_format(f: &str) -> Error {
    Error::new(
        ErrorCode::ConfigUnsupported,
        ErrorDomain::Storage,
        format!("unknown volume format type {f}"),
    )
}

fn format_of(elem: Option<&Element>) -> Result<VolFormat> {
    match elem
        .and_then(|t| t.child("format"))
        .and_then(|f| f.attr("type"))
    {
        None => Ok(VolFormat::RAW),
        Some(f) => VolFormat::parse(f).ok_or_else(|| unknown_format(f)),
    }
}

fn size_of(root: &Element, name: &str) -> Result<Option<u64>> {
    match root.child(name) {
        None => Ok(None),
        Some(e) => parse_size(&e.text, e.attr("unit"), name).map(Some),
    }
}

impl VolDef {
    fn from_element(root: &Element) -> Result<VolDef> {
        let name = root
            .child("name")
            .map(|n| n.text.clone())
            .ok_or_else(|| xml_error("missing volume name element"))?;
        let vol_type = match root.attr("type") {
            None => "file",
            Some(t) => VOL_TYPES
                .iter()
                .find(|v| **v == t)
                .copied()
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::ConfigUnsupported,
                        ErrorDomain::Storage,
                        format!("unknown volume type '{t}'"),
                    )
                })?,
        };
        let backing = match root.child("backingStore") {
            Some(b) if b.child("path").is_some() => Some(Backing {
                path: b.child_text("path").unwrap_or_default().to_string(),
                format: format_of(Some(b))?,
                perms: Perms::parse(b.child("permissions"))?,
                timestamps: None,
            }),
            _ => None,
        };
        let capacity = size_of(root, "capacity")?;
        if capacity.is_none() && backing.is_none() {
            return Err(xml_error("missing capacity element"));
        }
        let allocation = size_of(root, "allocation")?;
        let target = root.child("target");
        let compat = target
            .and_then(|t| t.child_text("compat"))
            .map(str::to_string);
        if let Some(c) = &compat {
            let ok = c
                .split_once('.')
                .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
            if !ok {
                return Err(xml_error("forbidden characters in 'compat' attribute"));
            }
        }
        let cluster_size = match target.and_then(|t| t.child("clusterSize")) {
            None => 0,
            Some(c) => parse_size(&c.text, c.attr("unit"), "clusterSize")?,
        };
        let features = match target.and_then(|t| t.child("features")) {
            None => None,
            Some(f) => {
                let mut v = Vec::new();
                for c in &f.children {
                    let known = ["lazy_refcounts", "extended_l2"]
                        .into_iter()
                        .find(|k| *k == c.name)
                        .ok_or_else(|| {
                            Error::new(
                                ErrorCode::ConfigUnsupported,
                                ErrorDomain::Storage,
                                format!("unsupported feature {}", c.name),
                            )
                        })?;
                    if !v.contains(&known) {
                        v.push(known);
                    }
                }
                Some(v)
            }
        };
        let compat = match (&features, compat) {
            (Some(_), None) => Some("1.1".to_string()),
            (_, c) => c,
        };
        Ok(VolDef {
            name,
            key: root.child_text("key").map(str::to_string),
            vol_type,
            capacity: capacity.unwrap_or(0),
            has_capacity: capacity.is_some(),
            allocation: allocation.unwrap_or(capacity.unwrap_or(0)),
            has_allocation: allocation.is_some(),
            physical: 0,
            path: target
                .and_then(|t| t.child_text("path"))
                .map(str::to_string),
            format: format_of(target)?,
            perms: Perms::parse(target.and_then(|t| t.child("permissions")))?,
            timestamps: None,
            compat,
            nocow: target.and_then(|t| t.child("nocow")).is_some(),
            cluster_size,
            features,
            backing,
            encryption: target.and_then(|t| t.child("encryption")).is_some(),
        })
    }

    /// The XML as `virStorageVolDefFormat` writes it for a directory pool.
    pub fn to_xml(&self) -> String {
        let mut o = Out::default();
        o.open(&format!("<volume type='{}'>", self.vol_type));
        o.text_elem("name", &self.name);
        if let Some(k) = &self.key {
            o.text_elem("key", k);
        }
        o.line(&format!(
            "<capacity unit='bytes'>{}</capacity>",
            self.capacity
        ));
        o.line(&format!(
            "<allocation unit='bytes'>{}</allocation>",
            self.allocation
        ));
        if self.physical != 0 {
            o.line(&format!(
                "<physical unit='bytes'>{}</physical>",
                self.physical
            ));
        }
        o.open("<target>");
        if let Some(p) = &self.path {
            o.line(&format!("<path>{}</path>", esc(p)));
        }
        o.line(&format!("<format type='{}'/>", self.format.as_str()));
        self.perms.write(&mut o);
        write_timestamps(&mut o, self.timestamps.as_ref());
        if let Some(c) = &self.compat {
            o.text_elem("compat", c);
        }
        if self.cluster_size > 0 {
            o.line(&format!(
                "<clusterSize unit='B'>{}</clusterSize>",
                self.cluster_size
            ));
        }
        match &self.features {
            None => {}
            Some(f) if f.is_empty() => o.line("<features/>"),
            Some(f) => {
                o.open("<features>");
                for name in f {
                    o.line(&format!("<{name}/>"));
                }
                o.close("</features>");
            }
        }
        o.close("</target>");
        if let Some(b) = &self.backing {
            o.open("<backingStore>");
            o.line(&format!("<path>{}</path>", esc(&b.path)));
            o.line(&format!("<format type='{}'/>", b.format.as_str()));
            b.perms.write(&mut o);
            write_timestamps(&mut o, b.timestamps.as_ref());
            o.close("</backingStore>");
        }
        o.close("</volume>");
        o.finish()
    }
}

fn write_timestamps(o: &mut Out, t: Option<&Timestamps>) {
    let Some(t) = t else { return };
    o.open("<timestamps>");
    for (name, (s, ns)) in [("atime", t.atime), ("mtime", t.mtime), ("ctime", t.ctime)] {
        if ns == 0 {
            o.line(&format!("<{name}>{s}</{name}>"));
        } else {
            o.line(&format!("<{name}>{s}.{ns:09}</{name}>"));
        }
    }
    // Birth time: libvirt's stat() gives none and it writes 0.
    o.line("<btime>0</btime>");
    o.close("</timestamps>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_xml_is_read_with_defaults() {
        let v = parse_volume(
            "<volume><name>a.qcow2</name><capacity unit='G'>1</capacity>\
             <target><format type='qcow2'/></target></volume>",
        )
        .unwrap();
        assert_eq!(v.capacity, 1 << 30);
        assert_eq!(v.allocation, 1 << 30);
        assert!(!v.has_allocation);
        assert_eq!(v.format, VolFormat::QCOW2);
        let raw = parse_volume(
            "<volume><name>b</name><capacity>512</capacity><allocation>0</allocation></volume>",
        )
        .unwrap();
        assert_eq!(
            (raw.format, raw.capacity, raw.allocation),
            (VolFormat::RAW, 512, 0)
        );
    }

    #[test]
    fn bad_volumes_get_libvirts_errors() {
        let err = |x: &str| parse_volume(x).unwrap_err().to_string();
        assert_eq!(err("<volume/>"), "XML error: missing volume name element");
        assert_eq!(
            err("<volume><name>a</name></volume>"),
            "XML error: missing capacity element"
        );
        assert_eq!(
            err("<volume><name>a</name><capacity>x</capacity></volume>"),
            "XML error: malformed capacity element"
        );
        assert_eq!(
            err(
                "<volume><name>a</name><capacity>1</capacity><target><format type='zz'/></target></volume>"
            ),
            "unsupported configuration: unknown volume format type zz"
        );
        assert_eq!(
            err("<volume><name>a</name><capacity unit='Q'>1</capacity></volume>"),
            "invalid argument: unknown suffix 'Q'"
        );
    }

    #[test]
    fn description_is_formatted_as_libvirt() {
        let mut v = parse_volume("<volume><name>d.qcow2</name><capacity>1048576</capacity><target><format type='qcow2'/><features/></target></volume>").unwrap();
        v.key = Some("/p/d.qcow2".into());
        v.path = v.key.clone();
        v.allocation = 200704;
        v.physical = 196616;
        v.cluster_size = 65536;
        v.perms = Perms {
            mode: Some(0o600),
            owner: Some(0),
            group: Some(0),
            label: None,
        };
        v.timestamps = Some(Timestamps {
            atime: (1, 5),
            mtime: (2, 0),
            ctime: (3, 0),
        });
        let x = v.to_xml();
        assert!(x.contains("  <key>/p/d.qcow2</key>\n"));
        assert!(x.contains("    <permissions>\n      <mode>0600</mode>\n"));
        assert!(x.contains("      <atime>1.000000005</atime>\n      <mtime>2</mtime>\n"));
        assert!(x.contains("    <compat>1.1</compat>\n    <clusterSize unit='B'>65536</clusterSize>\n    <features/>\n"));
    }
}
