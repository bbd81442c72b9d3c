//! The node device commands: nodedev-list (`--tree`, `--cap`, `--all`,
//! `--inactive`) and nodedev-dumpxml, printed as virsh 9.0 prints them.

use zbus::zvariant::OwnedObjectPath;

use super::bus::Bus;
use super::error::{CliError, Result};

const NODE_DEVICE: &str = "org.libvirt.NodeDevice";

/// virsh's capability names in `virNodeDevCapType` order, and the
/// `VIR_CONNECT_LIST_NODE_DEVICES_CAP_*` bit of each.
const CAPS: &[(&str, u32)] = &[
    ("system", 1 << 0),
    ("pci", 1 << 1),
    ("usb_device", 1 << 2),
    ("usb", 1 << 3),
    ("net", 1 << 4),
    ("scsi_host", 1 << 5),
    ("scsi_target", 1 << 6),
    ("scsi", 1 << 7),
    ("storage", 1 << 8),
    ("fc_host", 1 << 9),
    ("vports", 1 << 10),
    ("scsi_generic", 1 << 11),
    ("drm", 1 << 12),
    ("mdev_types", 1 << 13),
    ("mdev", 1 << 14),
    ("ccw", 1 << 15),
    ("css", 1 << 16),
    ("vdpa", 1 << 17),
    ("ap_card", 1 << 18),
    ("ap_queue", 1 << 19),
    ("ap_matrix", 1 << 20),
    ("vpd", 1 << 21),
];
const LIST_INACTIVE: u32 = 1 << 30;
const LIST_ACTIVE: u32 = 1 << 31;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct NodedevListArgs {
    /// list devices in a tree
    #[arg(long)]
    pub tree: bool,
    /// capability names, separated by comma
    #[arg(long)]
    pub cap: Option<String>,
    /// list inactive & defined devices
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active devices
    #[arg(long)]
    pub all: bool,
}

/// The device names and parents, sorted by name as virsh sorts them.
fn devices(bus: &Bus, flags: u32) -> Result<Vec<(String, Option<String>)>> {
    let paths: Vec<OwnedObjectPath> = bus
        .connect("ListNodeDevices", &(flags,))
        .map_err(|e| e.with_ctx("Failed to list node devices"))?;
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        let name: String = bus.prop(p.as_str(), NODE_DEVICE, "Name")?;
        let parent: String = bus
            .prop(p.as_str(), NODE_DEVICE, "Parent")
            .unwrap_or_default();
        out.push((name, (!parent.is_empty()).then_some(parent)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

pub fn nodedev_list(bus: &Bus, a: &NodedevListArgs) -> Result<String> {
    if a.all && a.inactive {
        return Err(CliError::msg(
            "Option --all is incompatible with --inactive",
        ));
    }
    if a.tree && (a.cap.is_some() || a.inactive) {
        return Err(CliError::msg(
            "Option --tree is incompatible with --cap and --inactive",
        ));
    }
    let mut flags = 0;
    for cap in a
        .cap
        .iter()
        .flat_map(|c| c.split(','))
        .filter(|c| !c.is_empty())
    {
        match CAPS.iter().find(|(n, _)| *n == cap) {
            Some((_, bit)) => flags |= bit,
            None => return Err(CliError::msg("Invalid capability type")),
        }
    }
    if a.inactive || a.all {
        flags |= LIST_INACTIVE;
    }
    if !a.inactive {
        flags |= LIST_ACTIVE;
    }
    let devs = devices(bus, flags)?;
    let mut out = String::new();
    if a.tree {
        let names: Vec<&str> = devs.iter().map(|(n, _)| n.as_str()).collect();
        // A device whose parent is not listed is a root, as in virsh.
        let parents: Vec<Option<&str>> = devs
            .iter()
            .map(|(_, p)| p.as_deref().filter(|p| names.contains(p)))
            .collect();
        for i in 0..devs.len() {
            if parents[i].is_none() {
                let mut indent = String::new();
                tree(&mut out, &names, &parents, i, i, true, &mut indent);
            }
        }
    } else {
        for (name, _) in &devs {
            out.push_str(name);
            out.push('\n');
        }
    }
    Ok(out)
}

/// virsh's tree layout (`vshTreePrint`), trailing blanks included.
fn tree(
    out: &mut String,
    names: &[&str],
    parents: &[Option<&str>],
    dev: usize,
    last: usize,
    root: bool,
    indent: &mut String,
) {
    out.push_str(&format!(
        "{indent}{}{}\n",
        if root { "" } else { "+- " },
        names[dev]
    ));
    if !root {
        indent.push(if dev == last { ' ' } else { '|' });
        indent.push(' ');
    }
    let children: Vec<usize> = (0..names.len())
        .filter(|&i| parents[i] == Some(names[dev]))
        .collect();
    let next_last = children.last().copied();
    if next_last.is_some() {
        out.push_str(&format!("{indent}  |\n"));
    }
    indent.push_str("  ");
    for &c in &children {
        tree(
            out,
            names,
            parents,
            c,
            next_last.unwrap_or(c),
            false,
            indent,
        );
    }
    indent.truncate(indent.len() - 2);
    if next_last.is_none() && dev == last {
        out.push_str(&format!("{indent}\n"));
    }
    if !root {
        indent.truncate(indent.len() - 2);
    }
}

pub fn nodedev_dumpxml(bus: &Bus, device: &str) -> Result<String> {
    let path: OwnedObjectPath = bus
        .connect("NodeDeviceLookupByName", &(device,))
        .map_err(|e| e.with_ctx(format!("Could not find matching device '{device}'")))?;
    let xml: String = bus.call(path.as_str(), NODE_DEVICE, "GetXMLDesc", &(0u32,))?;
    Ok(xml)
}
