//! The virtual network commands: net-list, net-info, net-dumpxml,
//! net-define, net-create, net-start, net-destroy, net-undefine,
//! net-autostart, net-uuid, net-name, net-update and net-dhcp-leases.
//! Messages and layouts are virsh 9.0's.

use zbus::zvariant::{OwnedObjectPath, Value};

use super::bus::{Bus, Params, param_bool, param_str};
use super::domain_lifecycle::{Simple, read_file};
use super::error::{CliError, Result};
use super::format::{local_time, table, yes_no};
use super::options::{ListFilter, exclusive};
use super::storage::info_line as line;
use crate::dbus::network::WireLease;
use crate::xml::network::update::{command, section_named};

pub const NETWORK: &str = "org.libvirt.Network";

/// `VIR_NETWORK_XML_INACTIVE`.
const XML_INACTIVE: u32 = 1;
/// `virNetworkUpdateFlags`.
const UPDATE_LIVE: u32 = 1;
const UPDATE_CONFIG: u32 = 2;

/// virsh's `virNetworkUpdateCommand` names.
const UPDATE_COMMANDS: &[(&str, u32)] = &[
    ("modify", command::MODIFY),
    ("delete", command::DELETE),
    ("add-last", command::ADD_LAST),
    ("add", command::ADD_LAST),
    ("add-first", command::ADD_FIRST),
];

#[derive(clap::Args, Debug, Clone, Default)]
pub struct NetListArgs {
    /// list inactive networks
    #[arg(long)]
    pub inactive: bool,
    /// list inactive & active networks
    #[arg(long)]
    pub all: bool,
    /// list persistent networks
    #[arg(long)]
    pub persistent: bool,
    /// list transient networks
    #[arg(long)]
    pub transient: bool,
    /// list networks with autostart enabled
    #[arg(long)]
    pub autostart: bool,
    /// list networks with autostart disabled
    #[arg(long = "no-autostart")]
    pub no_autostart: bool,
    /// list uuid's only
    #[arg(long)]
    pub uuid: bool,
    /// list network names only
    #[arg(long)]
    pub name: bool,
    /// list table (default)
    #[arg(long)]
    pub table: bool,
}

#[derive(clap::Args, Debug, Clone, Default)]
pub struct NetUpdateArgs {
    /// network name or uuid
    #[arg(value_name = "NETWORK")]
    pub network: String,
    /// type of update (add-first, add-last (add), delete, or modify)
    #[arg(value_name = "COMMAND")]
    pub command: String,
    /// which section of network configuration to update
    #[arg(value_name = "SECTION")]
    pub section: String,
    /// name of file containing xml (or, if it starts with '<', the complete xml element itself) to add/modify, or to be matched for search
    #[arg(value_name = "XML")]
    pub xml: String,
    /// which parent object to search through
    #[arg(long = "parent-index", value_name = "INDEX")]
    pub parent_index: Option<i32>,
    /// affect next network startup
    #[arg(long)]
    pub config: bool,
    /// affect running network
    #[arg(long)]
    pub live: bool,
    /// affect current state of network
    #[arg(long)]
    pub current: bool,
}

/// A network on the bus.
pub struct Net {
    pub path: String,
    pub name: String,
}

impl Net {
    fn act<B>(&self, bus: &Bus, method: &str, body: &B) -> Result<()>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        bus.call0(&self.path, NETWORK, method, body)
    }
}

/// `virshCommandOptNetworkBy`: by UUID when the argument is one, then by
/// name; the last lookup's error after `failed to get network 'x'`.
pub fn lookup(bus: &Bus, arg: &str) -> Result<Net> {
    let mut found: Option<OwnedObjectPath> = None;
    let mut last: Option<CliError> = None;
    if uuid::Uuid::parse_str(arg).is_ok() {
        match bus.connect("NetworkLookupByUUID", &(arg,)) {
            Ok(p) => found = Some(p),
            Err(e) => last = Some(e),
        }
    }
    if found.is_none() {
        match bus.connect("NetworkLookupByName", &(arg,)) {
            Ok(p) => found = Some(p),
            Err(e) => last = Some(e),
        }
    }
    let fail = |last: Option<CliError>| {
        let mut e = last.unwrap_or_default();
        e.context = Some(format!("failed to get network '{arg}'"));
        e
    };
    match found {
        Some(p) => {
            let name: String = bus
                .prop(p.as_str(), NETWORK, "Name")
                .map_err(|e| fail(Some(e)))?;
            Ok(Net {
                path: p.to_string(),
                name,
            })
        }
        None => Err(fail(last)),
    }
}

fn props(bus: &Bus, path: &str) -> Params {
    bus.call(
        path,
        "org.freedesktop.DBus.Properties",
        "GetAll",
        &(NETWORK,),
    )
    .unwrap_or_default()
}

pub fn net_list(bus: &Bus, a: &NetListArgs) -> Result<String> {
    let flags = ListFilter {
        inactive: a.inactive,
        all: a.all,
        persistent: a.persistent,
        transient: a.transient,
        autostart: a.autostart,
        no_autostart: a.no_autostart,
    }
    .flags();
    exclusive(&[
        ("table", "name", a.table && a.name),
        ("table", "uuid", a.table && a.uuid),
    ])?;
    let paths: Vec<OwnedObjectPath> = bus
        .connect("ListNetworks", &(flags,))
        .map_err(|e| e.with_ctx("Failed to list networks"))?;
    let mut rows: Vec<(String, String, bool, bool, bool)> = paths
        .iter()
        .filter_map(|p| {
            let pr = props(bus, p.as_str());
            Some((
                param_str(&pr, "Name")?,
                param_str(&pr, "UUID").unwrap_or_default(),
                param_bool(&pr, "Active").unwrap_or(false),
                param_bool(&pr, "Autostart").unwrap_or(false),
                param_bool(&pr, "Persistent").unwrap_or(false),
            ))
        })
        .collect();
    rows.sort_by(|x, y| x.0.cmp(&y.0));
    if a.uuid || a.name {
        let mut out = String::new();
        for (name, uuid, ..) in &rows {
            match (a.uuid, a.name) {
                (true, true) => out.push_str(&format!("{uuid} {name}\n")),
                (true, false) => out.push_str(&format!("{uuid}\n")),
                _ => out.push_str(&format!("{name}\n")),
            }
        }
        return Ok(out);
    }
    let t: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, _, active, autostart, persistent)| {
            vec![
                name,
                if active { "active" } else { "inactive" }.into(),
                yes_no(autostart).into(),
                yes_no(persistent).into(),
            ]
        })
        .collect();
    Ok(table(&["Name", "State", "Autostart", "Persistent"], &t))
}

pub fn net_info(bus: &Bus, arg: &str) -> Result<String> {
    let net = lookup(bus, arg)?;
    let pr = props(bus, &net.path);
    let mut out = line("Name", &net.name);
    if let Some(u) = param_str(&pr, "UUID") {
        out.push_str(&line("UUID", u));
    }
    if let Some(a) = param_bool(&pr, "Active") {
        out.push_str(&line("Active", yes_no(a)));
    }
    if let Some(p) = param_bool(&pr, "Persistent") {
        out.push_str(&line("Persistent", yes_no(p)));
    }
    let autostart = match param_bool(&pr, "Autostart") {
        Some(a) => yes_no(a),
        None => "no autostart",
    };
    out.push_str(&line("Autostart", autostart));
    // The D-Bus API has no virNetworkGetBridgeName: the bridge is read
    // from the network's XML.
    let xml: String = bus.call(&net.path, NETWORK, "GetXMLDesc", &(0u32,))?;
    if let Some(b) = bridge_of(&xml) {
        out.push_str(&line("Bridge", b));
    }
    Ok(out)
}

/// `<bridge name='...'>` of a network's XML.
fn bridge_of(xml: &str) -> Option<String> {
    let rest = &xml[xml.find("<bridge ")?..];
    let rest = &rest[rest.find("name='")? + 6..];
    Some(rest[..rest.find('\'')?].to_string())
}

pub fn net_dumpxml(bus: &Bus, arg: &str, inactive: bool) -> Result<String> {
    let net = lookup(bus, arg)?;
    let flags = if inactive { XML_INACTIVE } else { 0 };
    bus.call(&net.path, NETWORK, "GetXMLDesc", &(flags,))
}

pub fn net_define(bus: &Bus, file: &str) -> Result<String> {
    let xml = read_file(file)?;
    let path: OwnedObjectPath = bus
        .connect("NetworkDefineXML", &(xml.as_str(),))
        .map_err(|e| e.with_ctx(format!("Failed to define network from {file}")))?;
    let name: String = bus.prop(path.as_str(), NETWORK, "Name")?;
    Ok(format!("Network {name} defined from {file}\n"))
}

pub fn net_create(bus: &Bus, file: &str) -> Result<String> {
    let xml = read_file(file)?;
    let path: OwnedObjectPath = bus
        .connect("NetworkCreateXML", &(xml.as_str(),))
        .map_err(|e| e.with_ctx(format!("Failed to create network from {file}")))?;
    let name: String = bus.prop(path.as_str(), NETWORK, "Name")?;
    Ok(format!("Network {name} created from {file}\n"))
}

// Commands that call one network method and print one line.
pub const START: Simple = Simple {
    method: "Create",
    done: "started",
    verb: "start",
};
pub const DESTROY: Simple = Simple {
    method: "Destroy",
    done: "destroyed",
    verb: "destroy",
};
pub const UNDEFINE: Simple = Simple {
    method: "Undefine",
    done: "has been undefined",
    verb: "undefine",
};

pub fn simple(bus: &Bus, arg: &str, s: &Simple) -> Result<String> {
    let net = lookup(bus, arg)?;
    net.act(bus, s.method, &())
        .map_err(|e| e.with_ctx(format!("Failed to {} network {arg}", s.verb)))?;
    Ok(format!("Network {arg} {}\n", s.done))
}

pub fn net_autostart(bus: &Bus, arg: &str, disable: bool) -> Result<String> {
    let net = lookup(bus, arg)?;
    let on = !disable;
    bus.set_prop(&net.path, NETWORK, "Autostart", Value::from(on))
        .map_err(|e| {
            e.with_ctx(if on {
                format!("failed to mark network {arg} as autostarted")
            } else {
                format!("failed to unmark network {arg} as autostarted")
            })
        })?;
    Ok(if on {
        format!("Network {arg} marked as autostarted\n")
    } else {
        format!("Network {arg} unmarked as autostarted\n")
    })
}

pub fn net_uuid(bus: &Bus, arg: &str) -> Result<String> {
    let net = lookup(bus, arg)?;
    let uuid: String = bus.prop(&net.path, NETWORK, "UUID")?;
    Ok(format!("{uuid}\n"))
}

pub fn net_name(bus: &Bus, arg: &str) -> Result<String> {
    Ok(format!("{}\n", lookup(bus, arg)?.name))
}

pub fn net_update(bus: &Bus, a: &NetUpdateArgs) -> Result<String> {
    exclusive(&[
        ("current", "live", a.current && a.live),
        ("current", "config", a.current && a.config),
    ])?;
    let net = lookup(bus, &a.network)?;
    let command = UPDATE_COMMANDS
        .iter()
        .find(|(n, _)| *n == a.command)
        .map(|(_, c)| *c)
        .ok_or_else(|| CliError::ctx(format!("unrecognized command name '{}'", a.command)))?;
    let section = section_named(&a.section)
        .ok_or_else(|| CliError::ctx(format!("unrecognized section name '{}'", a.section)))?;
    let xml = if a.xml.starts_with('<') {
        a.xml.clone()
    } else {
        read_file(&a.xml)?
    };
    let mut flags = 0;
    if a.config {
        flags |= UPDATE_CONFIG;
    }
    if a.live {
        flags |= UPDATE_LIVE;
    }
    net.act(
        bus,
        "Update",
        &(
            command,
            section,
            a.parent_index.unwrap_or(-1),
            xml.as_str(),
            flags,
        ),
    )
    .map_err(|e| e.with_ctx(format!("Failed to update network {}", a.network)))?;
    let what = match (a.config, a.live) {
        (true, true) => "persistent config and live state",
        (true, false) => "persistent config",
        (false, true) => "live state",
        _ if bus
            .prop::<bool>(&net.path, NETWORK, "Active")
            .unwrap_or(false) =>
        {
            "live state"
        }
        _ => "persistent config",
    };
    Ok(format!("Updated network {} {what}\n", a.network))
}

pub fn net_dhcp_leases(bus: &Bus, arg: &str, mac: Option<&str>) -> Result<String> {
    let net = lookup(bus, arg)?;
    let mut leases: Vec<WireLease> = bus
        .call(
            &net.path,
            NETWORK,
            "GetDHCPLeases",
            &(mac.unwrap_or_default(), 0u32),
        )
        .map_err(|e| e.with_ctx(format!("Failed to get leases info for {arg}")))?;
    // virsh sorts by MAC address.
    leases.sort_by(|x, y| x.3.cmp(&y.3));
    let dash = |s: String| if s.is_empty() { "-".to_string() } else { s };
    let rows: Vec<Vec<String>> = leases
        .into_iter()
        .map(
            |(_, expiry, ip_type, mac, _iaid, ip, prefix, host, client)| {
                vec![
                    local_time(expiry),
                    dash(mac),
                    if ip_type == 0 { "ipv4" } else { "ipv6" }.into(),
                    format!("{ip}/{prefix}"),
                    dash(host),
                    dash(client),
                ]
            },
        )
        .collect();
    Ok(table(
        &[
            "Expiry Time",
            "MAC address",
            "Protocol",
            "IP address",
            "Hostname",
            "Client ID or DUID",
        ],
        &rows,
    ))
}

/// `iface-list`: host interfaces, active ones unless asked otherwise.
pub fn iface_list(bus: &Bus, inactive: bool, all: bool) -> Result<String> {
    const IFACE: &str = "org.libvirt.Interface";
    let flags: u32 = if all {
        1 | 2
    } else if inactive {
        1
    } else {
        2
    };
    let paths: Vec<OwnedObjectPath> = bus
        .connect("ListInterfaces", &(flags,))
        .map_err(|e| e.with_ctx("Failed to list interfaces"))?;
    let mut rows: Vec<Vec<String>> = paths
        .iter()
        .filter_map(|p| {
            let pr: Params = bus
                .call(
                    p.as_str(),
                    "org.freedesktop.DBus.Properties",
                    "GetAll",
                    &(IFACE,),
                )
                .ok()?;
            let active = param_bool(&pr, "Active").unwrap_or(false);
            Some(vec![
                param_str(&pr, "Name")?,
                if active { "active" } else { "inactive" }.into(),
                param_str(&pr, "MAC").unwrap_or_default(),
            ])
        })
        .collect();
    rows.sort();
    Ok(table(&["Name", "State", "MAC Address"], &rows))
}

/// `iface-dumpxml`: by name, then by MAC address.
pub fn iface_dumpxml(bus: &Bus, arg: &str, inactive: bool) -> Result<String> {
    // virsh looks up by MAC only what reads as one.
    let looks_like_mac = arg.split(':').count() == 6
        && arg
            .split(':')
            .all(|p| !p.is_empty() && p.len() <= 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
    let path: OwnedObjectPath = bus
        .connect("InterfaceLookupByName", &(arg,))
        .or_else(|e| {
            if looks_like_mac {
                bus.connect("InterfaceLookupByMAC", &(arg,))
            } else {
                Err(e)
            }
        })
        .map_err(|e| e.with_ctx(format!("failed to get interface '{arg}'")))?;
    let flags: u32 = if inactive { 1 } else { 0 };
    bus.call(
        path.as_str(),
        "org.libvirt.Interface",
        "GetXMLDesc",
        &(flags,),
    )
}
