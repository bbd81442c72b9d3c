//! `<domainsnapshot>`: a snapshot's definition as clients write it
//! (`virDomainSnapshotCreateXML`) and as libvirt formats it, both for
//! clients and, with `<active>`, in the metadata files it keeps.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::model::domain::Domain;
use crate::xml::props::{XmlEnum, enum_attr, opt_string, xml_enum};
use crate::xml::tree::{self, Element};
use crate::xml::writer::Style;
use crate::xml::{FormatFlags, defaults};

xml_enum! {
    /// Where a snapshot keeps a disk's or the memory's state.
    Location { No = "no", Internal = "internal", External = "external", Manual = "manual" }
}

xml_enum! {
    /// `<state>`: the domain's state when the snapshot was taken.
    SnapshotState {
        Running = "running", Blocked = "blocked", Paused = "paused", Shutdown = "shutdown",
        Shutoff = "shutoff", Crashed = "crashed", PmSuspended = "pmsuspended",
        DiskSnapshot = "disk-snapshot"
    }
}

/// One `<disks><disk>`: what the snapshot does with a domain disk.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotDisk {
    /// The target (`vda`), or a source path the driver maps to one.
    pub name: String,
    pub location: Option<Location>,
    /// `file` or `block` for an external image.
    pub source_type: Option<String>,
    /// The external image's format (`qcow2`).
    pub driver: Option<String>,
    /// The external image.
    pub source: Option<String>,
}

/// A snapshot's definition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DomainSnapshot {
    pub name: String,
    pub description: Option<String>,
    pub state: Option<SnapshotState>,
    pub parent: Option<String>,
    /// Seconds since the epoch.
    pub creation_time: i64,
    pub memory: Option<Location>,
    pub memory_file: Option<String>,
    pub disks: Vec<SnapshotDisk>,
    /// The domain as the snapshot took it (its live definition).
    pub domain: Option<Domain>,
    /// The persistent definition of a running persistent domain.
    pub inactive_domain: Option<Domain>,
    /// Metadata files only: whether this is the domain's current snapshot.
    pub current: bool,
}

/// How the text is read: a client's new snapshot, a definition given
/// again (`REDEFINE`), or the daemon's own metadata file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseMode {
    Create,
    Redefine,
    Metadata,
}

fn snapshot_xml_error(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::XmlError, ErrorDomain::DomainSnapshot, detail)
}

fn parse_domain_child(elem: &Element) -> Result<Option<Domain>> {
    if elem.attr("type").is_none() {
        return Ok(None);
    }
    let mut d = Domain::parse(elem)?;
    defaults::fill(&mut d)?;
    Ok(Some(d))
}

impl SnapshotDisk {
    fn parse(e: &Element) -> Result<SnapshotDisk> {
        let name = opt_string(e, "name").ok_or_else(|| {
            Error::new(
                ErrorCode::InternalError,
                ErrorDomain::DomainSnapshot,
                "missing name from disk snapshot element",
            )
        })?;
        let mut location = enum_attr::<Location>(e, "snapshot")?;
        let source_type = opt_string(e, "type");
        if let Some(t) = source_type.as_deref()
            && !matches!(t, "file" | "block" | "network")
        {
            return Err(Error::new(
                ErrorCode::ConfigUnsupported,
                ErrorDomain::DomainSnapshot,
                format!("unsupported disk snapshot type '{t}'"),
            ));
        }
        let driver = e.child("driver").and_then(|d| opt_string(d, "type"));
        let source = e
            .child("source")
            .and_then(|s| opt_string(s, "file").or_else(|| opt_string(s, "dev")));
        if let Some(p) = &source
            && !p.starts_with('/')
        {
            return Err(snapshot_xml_error(format!(
                "disk snapshot image path '{p}' must be absolute"
            )));
        }
        if location.is_none() && (source.is_some() || driver.is_some()) {
            location = Some(Location::External);
        }
        Ok(SnapshotDisk {
            name,
            location,
            source_type,
            driver,
            source,
        })
    }

    fn to_element(&self) -> Element {
        let mut e = Element::new("disk")
            .with_attr("name", &self.name)
            .with_opt_attr("snapshot", self.location.map(|l| l.as_str()));
        if self.source.is_some() || self.driver.is_some() {
            let kind = self.source_type.clone().unwrap_or_else(|| "file".into());
            let attr = if kind == "block" { "dev" } else { "file" };
            e = e
                .with_attr("type", &kind)
                .with_opt_child(
                    self.driver
                        .as_ref()
                        .map(|d| Element::new("driver").with_attr("type", d)),
                )
                .with_opt_child(
                    self.source
                        .as_ref()
                        .map(|s| Element::new("source").with_attr(attr, s)),
                );
        }
        e
    }
}

impl DomainSnapshot {
    /// Reads a `<domainsnapshot>` document. `now` is the creation time a
    /// new snapshot gets (and its name when it has none).
    pub fn parse(xml: &str, mode: ParseMode, now: i64) -> Result<DomainSnapshot> {
        let root = tree::parse_document_as(xml, "domainsnapshot", "domainsnapshot")?;
        let text = |n: &str| root.child_text(n).map(|t| t.trim().to_string());
        let mut s = DomainSnapshot {
            name: text("name").unwrap_or_default(),
            description: root.child("description").map(|d| d.text.clone()),
            ..Default::default()
        };
        if mode == ParseMode::Create {
            s.creation_time = now;
            if s.name.is_empty() {
                s.name = now.to_string();
            }
        } else {
            if s.name.is_empty() {
                return Err(snapshot_xml_error("a redefined snapshot must have a name"));
            }
            s.creation_time = text("creationTime")
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorCode::InternalError,
                        ErrorDomain::DomainSnapshot,
                        "missing creationTime from existing snapshot",
                    )
                })?;
            s.parent = root
                .child("parent")
                .and_then(|p| p.child_text("name"))
                .map(|n| n.trim().to_string());
            let state = text("state")
                .ok_or_else(|| snapshot_xml_error("missing state from existing snapshot"))?;
            s.state = Some(SnapshotState::from_xml(&state).ok_or_else(|| {
                Error::new(
                    ErrorCode::ConfigUnsupported,
                    ErrorDomain::DomainSnapshot,
                    format!("Invalid state '{state}' in domain snapshot XML"),
                )
            })?);
            if let Some(d) = root.child("domain") {
                s.domain = parse_domain_child(d)?;
            }
            if let Some(d) = root.child("inactiveDomain") {
                let mut d = d.clone();
                d.name = "domain".into();
                s.inactive_domain = parse_domain_child(&d)?;
            }
        }
        if mode == ParseMode::Metadata {
            s.current = text("active").as_deref() == Some("1");
        }
        if let Some(m) = root.child("memory") {
            s.memory = enum_attr::<Location>(m, "snapshot")?;
            s.memory_file = opt_string(m, "file");
            if s.memory == Some(Location::Manual) {
                return Err(snapshot_xml_error(
                    "'manual' memory snapshot mode not supported",
                ));
            }
            match (s.memory, s.memory_file.as_deref()) {
                (None, Some(_)) => s.memory = Some(Location::External),
                (Some(Location::External), None) => {
                    return Err(snapshot_xml_error(
                        "external memory snapshots require a filename",
                    ));
                }
                (Some(l), Some(f)) if l != Location::External => {
                    return Err(snapshot_xml_error(format!(
                        "memory filename '{f}' requires external snapshot"
                    )));
                }
                _ => {}
            }
            if let Some(f) = &s.memory_file
                && !f.starts_with('/')
            {
                return Err(snapshot_xml_error(format!(
                    "memory snapshot file path ({f}) must be absolute"
                )));
            }
        }
        if let Some(disks) = root.child("disks") {
            for d in disks.children_named("disk") {
                s.disks.push(SnapshotDisk::parse(d)?);
            }
        }
        if mode != ParseMode::Metadata {
            check_name(&s.name)?;
        }
        Ok(s)
    }

    /// Whether the snapshot keeps any state outside the images it names.
    pub fn is_external(&self) -> bool {
        self.memory == Some(Location::External)
            || self
                .disks
                .iter()
                .any(|d| d.location == Some(Location::External))
    }

    /// Whether the snapshot holds the guest's memory.
    pub fn has_memory(&self) -> bool {
        matches!(
            self.state,
            Some(SnapshotState::Running | SnapshotState::Paused)
        ) && matches!(self.memory, Some(Location::External | Location::Internal))
    }

    /// `virDomainSnapshotGetXMLDesc`'s text; `metadata` adds `<active>`
    /// for the daemon's own file.
    pub fn to_xml(&self, secure: bool, metadata: bool) -> String {
        let mut out = String::from("<domainsnapshot>\n");
        let line = |out: &mut String, e: Element| {
            crate::xml::writer::write_element(out, &e, 1, Style::Libvirt)
        };
        line(&mut out, Element::new("name").with_text(&self.name));
        if let Some(d) = &self.description {
            line(&mut out, Element::new("description").with_text(d));
        }
        if let Some(st) = self.state {
            line(&mut out, Element::new("state").with_text(st.as_str()));
        }
        if let Some(p) = &self.parent {
            line(
                &mut out,
                Element::new("parent").with_child(Element::new("name").with_text(p)),
            );
        }
        if self.creation_time != 0 {
            line(
                &mut out,
                Element::new("creationTime").with_text(self.creation_time.to_string()),
            );
        }
        if let Some(m) = self.memory {
            line(
                &mut out,
                Element::new("memory")
                    .with_attr("snapshot", m.as_str())
                    .with_opt_attr("file", self.memory_file.as_ref()),
            );
        }
        if !self.disks.is_empty() {
            let mut disks = Element::new("disks");
            for d in &self.disks {
                disks = disks.with_child(d.to_element());
            }
            line(&mut out, disks);
        }
        let flags = FormatFlags {
            secure,
            inactive: true,
            migratable: false,
            update_cpu: false,
        };
        if let Some(d) = &self.domain {
            push_indented(&mut out, &d.to_xml(flags), None);
        }
        if let Some(d) = &self.inactive_domain {
            push_indented(&mut out, &d.to_xml(flags), Some("inactiveDomain"));
        }
        if metadata {
            line(
                &mut out,
                Element::new("active").with_text(if self.current { "1" } else { "0" }),
            );
        }
        out.push_str("</domainsnapshot>\n");
        out
    }
}

/// Appends a formatted document one level in, its root renamed if asked.
fn push_indented(out: &mut String, xml: &str, rename: Option<&str>) {
    let mut text = xml.to_string();
    if let Some(n) = rename {
        if let Some(rest) = text.strip_prefix("<domain") {
            text = format!("<{n}{rest}");
        }
        if let Some(head) = text.trim_end().strip_suffix("</domain>") {
            text = format!("{head}</{n}>\n");
        }
    }
    for l in text.lines() {
        out.push_str("  ");
        out.push_str(l);
        out.push('\n');
    }
}

/// The qemu driver's limits on snapshot names (they name files).
fn check_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::new(
            ErrorCode::XmlDetail,
            ErrorDomain::DomainSnapshot,
            format!("invalid snapshot name '{name}': {why}"),
        ))
    };
    if name.contains('/') {
        return bad("name can't contain '/'");
    }
    if name.starts_with('.') {
        return bad("name can't start with '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_snapshot_is_named_after_its_creation_time() {
        let s = DomainSnapshot::parse("<domainsnapshot/>", ParseMode::Create, 1700000000).unwrap();
        assert_eq!(s.name, "1700000000");
        assert_eq!(s.creation_time, 1700000000);
        let s = DomainSnapshot::parse(
            "<domainsnapshot><name>s1</name><state>paused</state>\
             <creationTime>5</creationTime></domainsnapshot>",
            ParseMode::Create,
            9,
        )
        .unwrap();
        // A client cannot set what only the daemon knows.
        assert_eq!((s.name.as_str(), s.state, s.creation_time), ("s1", None, 9));
    }

    #[test]
    fn memory_and_disk_specs_follow_libvirts_rules() {
        let s = DomainSnapshot::parse(
            "<domainsnapshot><memory file='/m'/><disks><disk name='vda'>\
             <source file='/o'/></disk><disk name='vdb' snapshot='no'/></disks>\
             </domainsnapshot>",
            ParseMode::Create,
            1,
        )
        .unwrap();
        assert_eq!(s.memory, Some(Location::External));
        assert_eq!(s.disks[0].location, Some(Location::External));
        assert_eq!(s.disks[1].location, Some(Location::No));
        assert!(s.is_external());
        for (xml, msg) in [
            (
                "<memory snapshot='external'/>",
                "XML error: external memory snapshots require a filename",
            ),
            (
                "<memory snapshot='internal' file='/m'/>",
                "XML error: memory filename '/m' requires external snapshot",
            ),
            (
                "<memory file='m'/>",
                "XML error: memory snapshot file path (m) must be absolute",
            ),
            (
                "<name>a/b</name>",
                "invalid snapshot name 'a/b': name can't contain '/'",
            ),
        ] {
            let e = DomainSnapshot::parse(
                &format!("<domainsnapshot>{xml}</domainsnapshot>"),
                ParseMode::Create,
                1,
            )
            .unwrap_err();
            assert_eq!(e.message, msg);
        }
    }

    #[test]
    fn metadata_round_trips_with_the_current_mark() {
        let xml = "<domainsnapshot><name>s2</name><description>a &amp; b</description>\
                   <state>disk-snapshot</state><parent><name>s1</name></parent>\
                   <creationTime>77</creationTime><memory snapshot='no'/>\
                   <disks><disk name='vda' snapshot='external' type='file'>\
                   <driver type='qcow2'/><source file='/i/d.s2'/></disk></disks>\
                   <domain type='kvm'><name>d</name>\
                   <uuid>11111111-2222-3333-4444-555555555555</uuid>\
                   <memory>65536</memory><os><type>hvm</type></os></domain>\
                   <active>1</active></domainsnapshot>";
        let s = DomainSnapshot::parse(xml, ParseMode::Metadata, 0).unwrap();
        assert!(s.current);
        assert_eq!(s.parent.as_deref(), Some("s1"));
        let out = s.to_xml(false, true);
        let again = DomainSnapshot::parse(&out, ParseMode::Metadata, 0).unwrap();
        assert_eq!(again, s);
        let public = s.to_xml(false, false);
        assert!(!public.contains("<active>"));
        assert!(public.starts_with(
            "<domainsnapshot>\n  <name>s2</name>\n  <description>a &amp; b</description>\n  \
             <state>disk-snapshot</state>\n  <parent>\n    <name>s1</name>\n  </parent>\n"
        ));
        assert!(public.contains(
            "  <disks>\n    <disk name='vda' snapshot='external' type='file'>\n      \
             <driver type='qcow2'/>\n      <source file='/i/d.s2'/>\n    </disk>\n  </disks>\n  \
             <domain type='kvm'>\n    <name>d</name>\n"
        ));
    }
}
