//! snapshot-create, snapshot-create-as, snapshot-list, snapshot-info,
//! snapshot-dumpxml, snapshot-current, snapshot-parent, snapshot-revert,
//! snapshot-delete: virsh's words around libvirt-dbus's snapshot methods
//! (a snapshot is an object path; its name is the path's last part).

use zbus::zvariant::OwnedObjectPath;

use crate::xml::snapshot::{DomainSnapshot, ParseMode};

use super::bus::{Bus, DOMAIN};
use super::domain::{Dom, lookup};
use super::domain_lifecycle::read_file;
use super::error::{CliError, Result};
use super::format::{local_time_zone, table};

const SNAPSHOT: &str = "org.libvirt.DomainSnapshot";

/// `VIR_DOMAIN_SNAPSHOT_CREATE_*`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CreateFlags {
    pub redefine: bool,
    pub current: bool,
    pub no_metadata: bool,
    pub halt: bool,
    pub disk_only: bool,
    pub reuse_external: bool,
    pub quiesce: bool,
    pub atomic: bool,
    pub live: bool,
    pub validate: bool,
}

/// The flag word of `(set, bit)` pairs.
fn bits(pairs: &[(bool, u32)]) -> u32 {
    pairs
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |a, (_, b)| a | b)
}

impl CreateFlags {
    fn bits(self) -> u32 {
        bits(&[
            (self.redefine, 1),
            (self.current, 2),
            (self.no_metadata, 4),
            (self.halt, 8),
            (self.disk_only, 16),
            (self.reuse_external, 32),
            (self.quiesce, 64),
            (self.atomic, 128),
            (self.live, 256),
            (self.validate, 512),
        ])
    }
}

/// The name a snapshot path ends in.
fn name_of(path: &str) -> String {
    let seg = path.rsplit('/').next().unwrap_or_default();
    crate::dbus::paths::snapshot_from_segment(seg)
        .map(|(_, n)| n)
        .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

fn created(
    bus: &Bus,
    d: &Dom,
    xml: &str,
    flags: CreateFlags,
    from: Option<&str>,
) -> Result<String> {
    let path: OwnedObjectPath =
        bus.call(&d.path, DOMAIN, "SnapshotCreateXML", &(xml, flags.bits()))?;
    let name = name_of(path.as_str());
    Ok(match (flags.redefine, from) {
        (true, _) => format!("Domain snapshot {name} created"),
        (false, Some(f)) => format!("Domain snapshot {name} created from '{f}'"),
        (false, None) => format!("Domain snapshot {name} created"),
    })
}

pub fn create(bus: &Bus, dom: &str, xmlfile: Option<&str>, flags: CreateFlags) -> Result<String> {
    let d = lookup(bus, dom)?;
    let xml = match xmlfile {
        Some(f) => read_file(f)?,
        None => "<domainsnapshot/>".to_string(),
    };
    created(bus, &d, &xml, flags, xmlfile)
}

/// What `snapshot-create-as` takes besides the flags.
#[derive(Clone, Debug, Default)]
pub struct CreateAs {
    pub name: Option<String>,
    pub description: Option<String>,
    pub print_xml: bool,
    pub memspec: Option<String>,
    pub diskspec: Vec<String>,
}

/// `[file=]PATH[,snapshot=TYPE]` as virsh reads a memspec.
fn memspec(spec: &str) -> Result<String> {
    let mut attrs = Vec::new();
    for (i, part) in spec.split(',').enumerate() {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) if k == "file" || k == "snapshot" => (k, v),
            None if i == 0 => ("file", part),
            _ => {
                return Err(CliError::ctx(format!("unable to parse memspec: {spec}")));
            }
        };
        attrs.push(format!(" {k}='{}'", xml_escape(v)));
    }
    attrs.sort_by_key(|a| !a.starts_with(" snapshot"));
    Ok(format!("  <memory{}/>\n", attrs.concat()))
}

/// `disk[,snapshot=TYPE][,driver=TYPE][,stype=TYPE][,file=NAME]`.
fn diskspec(spec: &str) -> Result<String> {
    let mut parts = spec.split(',');
    let name = parts.next().unwrap_or_default();
    let (mut snapshot, mut driver, mut stype, mut file) = (None, None, "file", None);
    for p in parts {
        match p.split_once('=') {
            Some(("snapshot", v)) => snapshot = Some(v),
            Some(("driver", v)) => driver = Some(v),
            Some(("stype", v)) => stype = v,
            Some(("file", v)) => file = Some(v),
            _ => return Err(CliError::ctx(format!("unable to parse diskspec: {spec}"))),
        }
    }
    if !matches!(stype, "file" | "block") {
        return Err(CliError::ctx(format!("Unknown storage type: '{stype}'")));
    }
    let mut out = format!("    <disk name='{}'", xml_escape(name));
    if let Some(s) = snapshot {
        out += &format!(" snapshot='{}'", xml_escape(s));
    }
    if stype == "block" {
        out += " type='block'";
    }
    if driver.is_none() && file.is_none() {
        return Ok(out + "/>\n");
    }
    out += ">\n";
    if let Some(t) = driver {
        out += &format!("      <driver type='{}'/>\n", xml_escape(t));
    }
    if let Some(f) = file {
        let attr = if stype == "block" { "dev" } else { "file" };
        out += &format!("      <source {attr}='{}'/>\n", xml_escape(f));
    }
    Ok(out + "    </disk>\n")
}

/// The XML `snapshot-create-as` sends (what `--print-xml` prints).
pub fn create_as_xml(a: &CreateAs) -> Result<String> {
    let mut xml = String::from("<domainsnapshot>\n");
    if let Some(n) = &a.name {
        xml += &format!("  <name>{}</name>\n", xml_escape(n));
    }
    if let Some(d) = &a.description {
        xml += &format!("  <description>{}</description>\n", xml_escape(d));
    }
    if let Some(m) = &a.memspec {
        xml += &memspec(m)?;
    }
    if !a.diskspec.is_empty() {
        xml += "  <disks>\n";
        for s in &a.diskspec {
            xml += &diskspec(s)?;
        }
        xml += "  </disks>\n";
    }
    xml += "</domainsnapshot>\n";
    Ok(xml)
}

pub fn create_as(bus: &Bus, dom: &str, a: &CreateAs, flags: CreateFlags) -> Result<String> {
    let xml = create_as_xml(a)?;
    let d = lookup(bus, dom)?;
    created(bus, &d, &xml, flags, None)
}

/// The snapshot named, or the current one with `--current`; virsh's
/// errors otherwise.
fn pick(bus: &Bus, d: &Dom, name: Option<&str>, current: bool) -> Result<OwnedObjectPath> {
    match (name, current) {
        (Some(_), true) => Err(CliError::ctx(
            "--snapshotname and --current are mutually exclusive",
        )),
        (Some(n), false) => Ok(bus.call(&d.path, DOMAIN, "SnapshotLookupByName", &(n, 0u32))?),
        (None, true) => Ok(bus.call(&d.path, DOMAIN, "SnapshotCurrent", &(0u32,))?),
        (None, false) => Err(CliError::ctx("--snapshotname or --current is required")),
    }
}

fn snapshot_xml(bus: &Bus, path: &str, flags: u32) -> Result<String> {
    bus.call(path, SNAPSHOT, "GetXMLDesc", &(flags,))
}

fn parsed(bus: &Bus, path: &str) -> Result<DomainSnapshot> {
    let xml = snapshot_xml(bus, path, 0)?;
    DomainSnapshot::parse(&xml, ParseMode::Redefine, 0).map_err(|e| CliError::msg(e.message))
}

pub fn dumpxml(bus: &Bus, dom: &str, name: &str, security_info: bool) -> Result<String> {
    let d = lookup(bus, dom)?;
    let p = pick(bus, &d, Some(name), false)?;
    snapshot_xml(bus, p.as_str(), u32::from(security_info))
}

pub fn current(
    bus: &Bus,
    dom: &str,
    name_only: bool,
    security_info: bool,
    set: Option<&str>,
) -> Result<String> {
    let d = lookup(bus, dom)?;
    if let Some(n) = set {
        if name_only {
            return Err(CliError::ctx(
                "Options --name and snapshotname are mutually exclusive",
            ));
        }
        let p = pick(bus, &d, Some(n), false)?;
        let xml = snapshot_xml(bus, p.as_str(), 1)?;
        let mut f = CreateFlags {
            redefine: true,
            current: true,
            ..Default::default()
        };
        f.disk_only = xml.contains("<state>disk-snapshot</state>");
        let _: OwnedObjectPath =
            bus.call(&d.path, DOMAIN, "SnapshotCreateXML", &(xml, f.bits()))?;
        return Ok(format!("Snapshot {n} set as current"));
    }
    let p: OwnedObjectPath = bus
        .call(&d.path, DOMAIN, "SnapshotCurrent", &(0u32,))
        .map_err(|_| CliError::ctx(format!("domain '{}' has no current snapshot", d.name)))?;
    if name_only {
        return Ok(name_of(p.as_str()));
    }
    snapshot_xml(bus, p.as_str(), u32::from(security_info))
}

pub fn parent(bus: &Bus, dom: &str, name: Option<&str>, current: bool) -> Result<String> {
    let d = lookup(bus, dom)?;
    let p = pick(bus, &d, name, current)?;
    let s = parsed(bus, p.as_str())?;
    s.parent
        .ok_or_else(|| CliError::ctx(format!("snapshot '{}' has no parent", s.name)))
}

pub fn info(bus: &Bus, dom: &str, name: Option<&str>, current: bool) -> Result<String> {
    let d = lookup(bus, dom)?;
    let p = pick(bus, &d, name, current)?;
    let s = parsed(bus, p.as_str())?;
    let is_current: bool = bus.call(p.as_str(), SNAPSHOT, "IsCurrent", &(0u32,))?;
    let children: Vec<OwnedObjectPath> =
        bus.call(p.as_str(), SNAPSHOT, "ListChildren", &(0u32,))?;
    let descendants: Vec<OwnedObjectPath> =
        bus.call(p.as_str(), SNAPSHOT, "ListChildren", &(1u32,))?;
    let location = if s.is_external() || (s.memory.is_none() && s.state_is_disk_only()) {
        "external"
    } else {
        "internal"
    };
    let state = s.state.map(|x| x.to_string()).unwrap_or_default();
    let rows = [
        ("Name:", s.name.clone()),
        ("Domain:", d.name.clone()),
        ("Current:", super::format::yes_no(is_current).to_string()),
        ("State:", state),
        ("Location:", location.to_string()),
        ("Parent:", s.parent.clone().unwrap_or_else(|| "-".into())),
        ("Children:", children.len().to_string()),
        ("Descendants:", descendants.len().to_string()),
        ("Metadata:", "yes".to_string()),
    ];
    Ok(rows.iter().map(|(k, v)| format!("{k:<15} {v}\n")).collect())
}

/// `snapshot-list`'s options.
#[derive(Clone, Debug, Default)]
pub struct ListOpts {
    pub parent: bool,
    pub roots: bool,
    pub leaves: bool,
    pub no_leaves: bool,
    pub metadata: bool,
    pub no_metadata: bool,
    pub inactive: bool,
    pub active: bool,
    pub disk_only: bool,
    pub internal: bool,
    pub external: bool,
    pub tree: bool,
    pub from: Option<String>,
    pub current: bool,
    pub descendants: bool,
    pub name: bool,
    pub topological: bool,
}

fn exclusive(a: &str, b: &str) -> CliError {
    CliError::ctx(format!("Options --{a} and --{b} are mutually exclusive"))
}

impl ListOpts {
    fn check(&self) -> Result<()> {
        let pairs = [
            (self.tree, self.name, "tree", "name"),
            (self.parent, self.roots, "parent", "roots"),
            (self.parent, self.tree, "parent", "tree"),
            (self.roots, self.tree, "roots", "tree"),
            (self.roots, self.from.is_some(), "roots", "from"),
            (self.roots, self.current, "roots", "current"),
        ];
        if let Some((_, _, a, b)) = pairs.iter().find(|(x, y, _, _)| *x && *y) {
            return Err(exclusive(a, b));
        }
        if self.descendants && self.from.is_none() && !self.current {
            return Err(CliError::ctx(
                "--descendants requires either --from or --current",
            ));
        }
        Ok(())
    }

    fn flags(&self) -> u32 {
        bits(&[
            (
                self.roots
                    || (self.descendants || self.tree) && (self.from.is_some() || self.current),
                1,
            ),
            (self.metadata, 2),
            (self.leaves, 4),
            (self.no_leaves, 8),
            (self.no_metadata, 16),
            (self.inactive, 32),
            (self.active, 64),
            (self.disk_only, 128),
            (self.internal, 256),
            (self.external, 512),
            (self.topological, 1024),
        ])
    }
}

/// virsh's tree: each root, then its children indented under a `|`.
fn tree(
    out: &mut String,
    all: &[DomainSnapshot],
    at: usize,
    last: usize,
    root: bool,
    indent: &mut String,
) {
    let name = &all[at].name;
    out.push_str(&format!(
        "{indent}{}{name}\n",
        if root { "" } else { "+- " }
    ));
    if !root {
        indent.push(if at == last { ' ' } else { '|' });
        indent.push(' ');
    }
    let kids: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].parent.as_deref() == Some(name.as_str()))
        .collect();
    let next_last = kids.last().copied();
    if next_last.is_some() {
        out.push_str(&format!("{indent}  |\n"));
    }
    indent.push_str("  ");
    for &k in &kids {
        tree(out, all, k, next_last.unwrap_or(k), false, indent);
    }
    indent.truncate(indent.len() - 2);
    if next_last.is_none() && at == last {
        out.push_str(&format!("{indent}\n"));
    }
    if !root {
        indent.truncate(indent.len().saturating_sub(2));
    }
}

pub fn list(bus: &Bus, dom: &str, o: &ListOpts) -> Result<String> {
    o.check()?;
    let d = lookup(bus, dom)?;
    let flags = o.flags();
    let from = match (&o.from, o.current) {
        (Some(n), _) => Some(pick(bus, &d, Some(n), false)?),
        (None, true) => Some(pick(bus, &d, None, true)?),
        _ => None,
    };
    let paths: Vec<OwnedObjectPath> = match &from {
        Some(p) => bus.call(p.as_str(), SNAPSHOT, "ListChildren", &(flags,))?,
        None => bus.call(&d.path, DOMAIN, "ListDomainSnapshots", &(flags,))?,
    };
    let mut all = Vec::with_capacity(paths.len());
    for p in &paths {
        all.push(parsed(bus, p.as_str())?);
    }
    if flags & 1024 == 0 {
        all.sort_by_key(|s| s.name.to_lowercase());
    }
    if o.name {
        return Ok(all.iter().map(|s| format!("{}\n", s.name)).collect());
    }
    if o.tree {
        let mut out = String::new();
        let mut indent = String::new();
        for i in 0..all.len() {
            let parent_listed = all[i]
                .parent
                .as_deref()
                .is_some_and(|p| all.iter().any(|s| s.name == p));
            if !parent_listed {
                tree(&mut out, &all, i, i, true, &mut indent);
            }
        }
        return Ok(out);
    }
    let mut headers = vec!["Name", "Creation Time", "State"];
    if o.parent {
        headers.push("Parent");
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|s| {
            let mut r = vec![
                s.name.clone(),
                local_time_zone(s.creation_time),
                s.state.map(|x| x.to_string()).unwrap_or_default(),
            ];
            if o.parent {
                r.push(s.parent.clone().unwrap_or_default());
            }
            r
        })
        .collect();
    Ok(table(&headers, &rows))
}

/// `snapshot-revert`'s flags: running 1, paused 2, force 4, reset-nvram 8.
pub fn revert(
    bus: &Bus,
    dom: &str,
    name: Option<&str>,
    current: bool,
    flags: u32,
) -> Result<String> {
    let d = lookup(bus, dom)?;
    let p = pick(bus, &d, name, current)?;
    let n = name_of(p.as_str());
    let ctx = format!("Failed to revert snapshot {n}");
    // As virsh: FORCE only on a second try, when the revert is risky.
    let first = bus.call0(p.as_str(), SNAPSHOT, "Revert", &(flags & !4,));
    match first {
        Err(e)
            if flags & 4 != 0
                && e.message
                    .as_deref()
                    .is_some_and(|m| m.starts_with("revert requires force")) =>
        {
            bus.call0(p.as_str(), SNAPSHOT, "Revert", &(flags,))
                .map_err(|e| e.with_ctx(ctx))?
        }
        other => other.map_err(|e| e.with_ctx(ctx))?,
    }
    Ok(format!("Domain snapshot {n} reverted\n"))
}

/// `snapshot-delete`'s flags: children 1, metadata 2, children-only 4.
pub fn delete(
    bus: &Bus,
    dom: &str,
    name: Option<&str>,
    current: bool,
    flags: u32,
) -> Result<String> {
    let d = lookup(bus, dom)?;
    let p = pick(bus, &d, name, current)?;
    let n = name_of(p.as_str());
    bus.call0(p.as_str(), SNAPSHOT, "Delete", &(flags,))
        .map_err(|e| e.with_ctx(format!("Failed to delete snapshot {n}")))?;
    Ok(if flags & 4 != 0 {
        format!("Domain snapshot {n} children deleted\n")
    } else {
        format!("Domain snapshot {n} deleted\n")
    })
}

impl DomainSnapshot {
    /// `<state>disk-snapshot</state>`.
    fn state_is_disk_only(&self) -> bool {
        self.state == Some(crate::xml::snapshot::SnapshotState::DiskSnapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_virshs_xml() {
        assert_eq!(
            memspec("/m,snapshot=external").unwrap(),
            "  <memory snapshot='external' file='/m'/>\n"
        );
        assert_eq!(
            diskspec("vda,snapshot=external,file=/o").unwrap(),
            "    <disk name='vda' snapshot='external'>\n      <source file='/o'/>\n    </disk>\n"
        );
        assert_eq!(
            diskspec("vdb,snapshot=no").unwrap(),
            "    <disk name='vdb' snapshot='no'/>\n"
        );
        assert!(diskspec("vda,bogus=1").is_err());
    }

    #[test]
    fn the_tree_is_drawn_as_virsh_draws_it() {
        let s = |n: &str, p: Option<&str>| DomainSnapshot {
            name: n.into(),
            parent: p.map(str::to_string),
            ..Default::default()
        };
        let all = vec![
            s("a", None),
            s("b", Some("a")),
            s("c", Some("b")),
            s("d", Some("a")),
        ];
        let mut out = String::new();
        tree(&mut out, &all, 0, 0, true, &mut String::new());
        assert_eq!(
            out,
            "a\n  |\n  +- b\n  |   |\n  |   +- c\n  |     \n  +- d\n    \n"
        );
    }
}
