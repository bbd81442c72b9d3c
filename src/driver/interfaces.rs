//! Host interfaces, read-only, as libvirt 9.0's udev interface backend
//! shows them: every network device of the daemon's namespace except
//! bridge ports and tun/tap devices, active when its operational state is
//! "up", described by its type (ethernet, bridge with its ports, vlan,
//! bond), MTU, link and MAC. The kernel is asked through `ip -j -d link`,
//! which answers for the daemon's own network namespace.

use std::process::Command;

use serde_json::Value;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// A host interface as clients name it (`virInterfacePtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRef {
    pub name: String,
    pub mac: String,
}

/// `virConnectListAllInterfacesFlags`: INACTIVE, ACTIVE.
pub const LIST_INACTIVE: u32 = 1;
pub const LIST_ACTIVE: u32 = 2;
/// `VIR_INTERFACE_XML_INACTIVE`.
pub const XML_INACTIVE: u32 = 1;

/// One device as `ip -j -d link` describes it.
#[derive(Clone, Debug, PartialEq)]
struct Link {
    name: String,
    mac: String,
    mtu: u64,
    operstate: String,
    kind: Option<String>,
    /// The bridge it is a port of.
    master: Option<String>,
}

impl Link {
    fn from_json(v: &Value) -> Option<Link> {
        let info = v.get("linkinfo");
        Some(Link {
            name: v.get("ifname")?.as_str()?.to_string(),
            mac: v
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            mtu: v.get("mtu").and_then(Value::as_u64).unwrap_or(0),
            operstate: v
                .get("operstate")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN")
                .to_ascii_lowercase(),
            kind: info
                .and_then(|i| i.get("info_kind"))
                .and_then(Value::as_str)
                .map(str::to_string),
            master: info
                .and_then(|i| i.get("info_slave_kind"))
                .filter(|k| k.as_str() == Some("bridge"))
                .and_then(|_| v.get("master"))
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn active(&self) -> bool {
        self.operstate == "up"
    }

    fn iref(&self) -> InterfaceRef {
        InterfaceRef {
            name: self.name.clone(),
            mac: self.mac.clone(),
        }
    }
}

fn err(code: ErrorCode, detail: impl AsRef<str>) -> Error {
    Error::new(code, ErrorDomain::Interface, detail)
}

/// Every network device of the namespace.
fn links() -> Result<Vec<Link>> {
    let out = Command::new("ip")
        .args(["-j", "-d", "link", "show"])
        .output()
        .map_err(|e| {
            err(
                ErrorCode::InternalError,
                format!("failed to get list of interfaces on host: {e}"),
            )
        })?;
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        err(
            ErrorCode::InternalError,
            format!("failed to get list of interfaces on host: {e}"),
        )
    })?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(Link::from_json).collect())
        .unwrap_or_default())
}

/// The devices the udev backend lists: not bridge ports, not taps.
fn listed(all: Vec<Link>) -> Vec<Link> {
    all.into_iter()
        .filter(|l| l.master.is_none() && l.kind.as_deref() != Some("tun"))
        .collect()
}

fn check_flags(flags: u32, allowed: u32, function: &str) -> Result<()> {
    super::check_flags_in(ErrorDomain::Interface, flags, allowed, function)
}

/// `virConnectListAllInterfaces`.
pub fn connect_list_all_interfaces(flags: u32) -> Result<Vec<InterfaceRef>> {
    check_flags(
        flags,
        LIST_ACTIVE | LIST_INACTIVE,
        "udevConnectListAllInterfaces",
    )?;
    let filter = flags & (LIST_ACTIVE | LIST_INACTIVE);
    Ok(listed(links()?)
        .into_iter()
        .filter(|l| {
            filter == 0
                || (filter & LIST_ACTIVE != 0 && l.active())
                || (filter & LIST_INACTIVE != 0 && !l.active())
        })
        .map(|l| l.iref())
        .collect())
}

/// `virConnectNumOfInterfaces` / `virConnectNumOfDefinedInterfaces` and
/// their listings: devices whose state is "up", or "down" (a device in
/// another state, such as the loopback's "unknown", is in neither).
pub fn connect_list_interfaces(active: bool) -> Result<Vec<String>> {
    let want = if active { "up" } else { "down" };
    Ok(listed(links()?)
        .into_iter()
        .filter(|l| l.operstate == want)
        .map(|l| l.name)
        .collect())
}

fn find(name: &str) -> Result<(Link, Vec<Link>)> {
    let all = links()?;
    let link = all
        .iter()
        .find(|l| l.name == name)
        .cloned()
        .ok_or_else(|| {
            err(
                ErrorCode::NoInterface,
                format!("couldn't find interface named '{name}'"),
            )
        })?;
    Ok((link, all))
}

/// `virInterfaceLookupByName`.
pub fn interface_lookup_by_name(name: &str) -> Result<InterfaceRef> {
    find(name).map(|(l, _)| l.iref())
}

/// `virInterfaceLookupByMACString`: the one device with that address.
pub fn interface_lookup_by_mac_string(mac: &str) -> Result<InterfaceRef> {
    let matching: Vec<Link> = listed(links()?)
        .into_iter()
        .filter(|l| l.mac.eq_ignore_ascii_case(mac))
        .collect();
    match matching.as_slice() {
        [l] => Ok(l.iref()),
        [] => Err(err(
            ErrorCode::NoInterface,
            format!("couldn't find interface with MAC address '{mac}'"),
        )),
        _ => Err(err(
            ErrorCode::MultipleInterfaces,
            format!("the MAC address '{mac}' matches multiple interfaces"),
        )),
    }
}

/// `virInterfaceIsActive`.
pub fn interface_is_active(name: &str) -> Result<bool> {
    find(name).map(|(l, _)| l.active())
}

/// A device's speed in Mb/s when its link is up (0: unknown).
fn speed(name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/speed"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(0, |s| s as u64)
}

fn sys(name: &str, attr: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_string())
}

fn link_line(l: &Link) -> String {
    let sp = if l.active() { speed(&l.name) } else { 0 };
    match (sp, l.operstate.as_str()) {
        (0, "") => String::new(),
        (0, st) => format!("<link state='{st}'/>"),
        (sp, st) => format!("<link speed='{sp}' state='{st}'/>"),
    }
}

fn device_xml(out: &mut String, l: &Link, all: &[Link], level: usize, top: bool) {
    let pad = "  ".repeat(level);
    let kind = match l.kind.as_deref() {
        Some("bridge") => "bridge",
        Some("vlan") => "vlan",
        Some("bond") => "bond",
        _ => "ethernet",
    };
    out.push_str(&format!(
        "{pad}<interface type='{kind}' name='{}'>\n",
        crate::xml::storage::out::esc(&l.name)
    ));
    if top && l.mtu > 0 {
        out.push_str(&format!("{pad}  <mtu size='{}'/>\n", l.mtu));
    }
    if kind != "bridge" {
        let link = link_line(l);
        if !link.is_empty() {
            out.push_str(&format!("{pad}  {link}\n"));
        }
    }
    match kind {
        "ethernet" => out.push_str(&format!("{pad}  <mac address='{}'/>\n", l.mac)),
        "bridge" => {
            let mut head = format!("{pad}  <bridge");
            match sys(&l.name, "bridge/stp_state").as_deref() {
                Some("1") => head.push_str(" stp='on'"),
                Some("0") => head.push_str(" stp='off'"),
                _ => {}
            }
            if let Some(d) = sys(&l.name, "bridge/forward_delay") {
                head.push_str(&format!(" delay='{d}'"));
            }
            out.push_str(&head);
            out.push_str(">\n");
            for port in all.iter().filter(|p| p.master.as_deref() == Some(&l.name)) {
                device_xml(out, port, all, level + 2, false);
            }
            out.push_str(&format!("{pad}  </bridge>\n"));
        }
        _ => {}
    }
    out.push_str(&format!("{pad}</interface>\n"));
}

/// `virInterfaceGetXMLDesc`.
pub fn interface_get_xml_desc(name: &str, flags: u32) -> Result<String> {
    check_flags(flags, XML_INACTIVE, "udevInterfaceGetXMLDesc")?;
    let (link, all) = find(name)?;
    let mut out = String::new();
    device_xml(&mut out, &link, &all, 0, true);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_json_as_udev_lists() {
        let v: Value = serde_json::from_str(
            r#"[{"ifname":"lo","mtu":65536,"operstate":"UNKNOWN","address":"00:00:00:00:00:00"},
                {"ifname":"br0","mtu":1500,"operstate":"UP","address":"52:54:00:01:02:03",
                 "linkinfo":{"info_kind":"bridge"}},
                {"ifname":"vnet0","mtu":1500,"operstate":"UP","address":"fe:54:00:01:02:04","master":"br0",
                 "linkinfo":{"info_kind":"tun","info_slave_kind":"bridge"}},
                {"ifname":"tap9","mtu":1500,"operstate":"DOWN","address":"fe:54:00:01:02:05",
                 "linkinfo":{"info_kind":"tun"}}]"#,
        )
        .unwrap();
        let links: Vec<Link> = v
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Link::from_json)
            .collect();
        let names: Vec<String> = listed(links.clone()).into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "br0"]);
        assert!(links[1].active() && !links[0].active());
        assert_eq!(links[2].master.as_deref(), Some("br0"));
        let mut x = String::new();
        device_xml(&mut x, &links[0], &links, 0, true);
        assert_eq!(
            x,
            "<interface type='ethernet' name='lo'>\n  <mtu size='65536'/>\n  <link state='unknown'/>\n  <mac address='00:00:00:00:00:00'/>\n</interface>\n"
        );
    }
}
