//! `virNetworkUpdate` on a definition (`virNetworkDefUpdateSection`):
//! adding, changing and removing DHCP hosts, DHCP ranges and DNS host
//! records. The other sections are refused as libvirt refuses them.

use super::parse::{parse_dns_host, parse_host, parse_range};
use super::{IpDef, NetworkDef};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::tree::Element;

/// `virNetworkUpdateCommand`.
pub mod command {
    pub const MODIFY: u32 = 1;
    pub const DELETE: u32 = 2;
    pub const ADD_LAST: u32 = 3;
    pub const ADD_FIRST: u32 = 4;
}

/// `virNetworkUpdateSection`.
pub mod section {
    pub const BRIDGE: u32 = 1;
    pub const DOMAIN: u32 = 2;
    pub const IP: u32 = 3;
    pub const IP_DHCP_HOST: u32 = 4;
    pub const IP_DHCP_RANGE: u32 = 5;
    pub const FORWARD: u32 = 6;
    pub const FORWARD_INTERFACE: u32 = 7;
    pub const FORWARD_PF: u32 = 8;
    pub const PORTGROUP: u32 = 9;
    pub const DNS_HOST: u32 = 10;
    pub const DNS_TXT: u32 = 11;
    pub const DNS_SRV: u32 = 12;
}

const SECTION_NAMES: [&str; 13] = [
    "",
    "bridge",
    "domain",
    "ip",
    "ip-dhcp-host",
    "ip-dhcp-range",
    "forward",
    "forward-interface",
    "forward-pf",
    "portgroup",
    "dns-host",
    "dns-txt",
    "dns-srv",
];

/// The section virsh calls `name` (`net-update`'s section argument).
pub fn section_named(name: &str) -> Option<u32> {
    SECTION_NAMES
        .iter()
        .position(|s| !s.is_empty() && *s == name)
        .map(|i| i as u32)
}

fn unsupported(detail: impl AsRef<str>) -> Error {
    Error::new(
        ErrorCode::OperationUnsupported,
        ErrorDomain::Network,
        detail,
    )
}

fn invalid(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::OperationInvalid, ErrorDomain::Network, detail)
}

fn unknown_command(command: u32) -> Error {
    unsupported(format!(
        "unrecognized network update command code {command}"
    ))
}

fn check_element(def: &NetworkDef, e: &Element, want: &str) -> Result<()> {
    if e.name != want {
        return Err(Error::new(
            ErrorCode::XmlError,
            ErrorDomain::Network,
            format!(
                "unexpected element <{}>, expecting <{want}>, while updating network '{}'",
                e.name, def.name
            ),
        ));
    }
    Ok(())
}

/// Applies one update to `def`.
pub fn update_section(
    def: &mut NetworkDef,
    command: u32,
    section: u32,
    parent_index: i32,
    xml: &str,
) -> Result<()> {
    let elem = parse_document_as_any(xml)?;
    match section {
        section::IP_DHCP_HOST => dhcp_host(def, command, parent_index, &elem),
        section::IP_DHCP_RANGE => dhcp_range(def, command, parent_index, &elem),
        section::DNS_HOST => dns_host(def, command, &elem),
        s if (1..=12).contains(&s) => Err(unsupported(format!(
            "can't update '{}' section of network '{}'",
            SECTION_NAMES[s as usize], def.name
        ))),
        _ => Err(unsupported("can't update unrecognized section of network")),
    }
}

/// The update's XML: one element of any name.
fn parse_document_as_any(xml: &str) -> Result<Element> {
    let root = crate::xml::tree::parse_document(xml).map_err(|e| {
        match e.message.strip_prefix("(domain_definition):1: ") {
            Some(d) => Error::new(
                ErrorCode::XmlDetail,
                ErrorDomain::Xml,
                format!("network_update_xml:1: {d}"),
            ),
            None => e,
        }
    })?;
    Ok(root)
}

/// `virNetworkIPDefByIndex`: the `<ip>` an update works on.
fn ip_index(def: &NetworkDef, parent_index: i32) -> Result<usize> {
    if parent_index >= 0 {
        return if (parent_index as usize) < def.ips.len() {
            Ok(parent_index as usize)
        } else {
            Err(invalid(format!(
                "couldn't update dhcp host entry - no <ip> element found at index {parent_index} in network '{}'",
                def.name
            )))
        };
    }
    def.ips
        .iter()
        .position(IpDef::has_dhcp)
        .or_else(|| def.ips.iter().position(|i| i.address.is_ipv4()))
        .or_else(|| def.ips.iter().position(|i| i.address.is_ipv6()))
        .ok_or_else(|| {
            invalid(format!(
                "couldn't update dhcp host entry - no <ip> element found in network '{}'",
                def.name
            ))
        })
}

fn check_multi_dhcp(def: &NetworkDef, idx: usize) -> Result<()> {
    let v4 = def.ips[idx].address.is_ipv4();
    let other = def
        .ips
        .iter()
        .enumerate()
        .any(|(i, ip)| i != idx && ip.address.is_ipv4() == v4 && ip.has_dhcp());
    if other {
        return Err(invalid(format!(
            "dhcp is supported only for a single {} address on each network",
            if v4 { "IPv4" } else { "IPv6" }
        )));
    }
    Ok(())
}

fn same_mac(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn dhcp_host(def: &mut NetworkDef, command: u32, parent: i32, e: &Element) -> Result<()> {
    let idx = ip_index(def, parent)?;
    check_element(def, e, "host")?;
    let partial = command == command::DELETE;
    let host = parse_host(e, &def.ips[idx], &def.name, partial)?;
    if !partial
        && host
            .ip
            .is_some_and(|ip| ip.is_ipv4() != def.ips[idx].address.is_ipv4())
    {
        return Err(invalid(
            "the address family of a host entry IP must match the address family of the dhcp element's parent",
        ));
    }
    let name = def.name.clone();
    let describe = |h: &super::DhcpHost| {
        (
            h.mac.clone().unwrap_or_else(|| "unknown".into()),
            h.name.clone().unwrap_or_else(|| "(null)".into()),
            h.ip.map(|i| i.to_string())
                .unwrap_or_else(|| "unknown".into()),
        )
    };
    match command {
        command::MODIFY => {
            let hosts = &mut def.ips[idx].hosts;
            let found = hosts.iter().position(|h| {
                matches!((&host.mac, &h.mac), (Some(a), Some(b)) if same_mac(a, b))
                    || (host.ip.is_some() && host.ip == h.ip)
                    || (host.name.is_some() && host.name == h.name)
            });
            let Some(i) = found else {
                let (m, n, ip) = describe(&host);
                return Err(invalid(format!(
                    "couldn't locate an existing dhcp host entry with \"mac='{m}'\" \"name='{n}'\" \"ip='{ip}'\" in network '{name}'"
                )));
            };
            hosts[i] = host;
        }
        command::ADD_FIRST | command::ADD_LAST => {
            check_multi_dhcp(def, idx)?;
            let hosts = &mut def.ips[idx].hosts;
            let clash = hosts.iter().any(|h| {
                matches!((&host.mac, &h.mac), (Some(a), Some(b)) if same_mac(a, b))
                    || (host.name.is_some() && host.name == h.name)
                    || (host.ip.is_some() && host.ip == h.ip)
            });
            if clash {
                let (m, n, ip) = describe(&host);
                return Err(invalid(format!(
                    "there is an existing dhcp host entry in network '{name}' that matches \"<host mac='{m}' name='{n}' ip='{ip}'/>\""
                )));
            }
            let at = if command == command::ADD_FIRST {
                0
            } else {
                hosts.len()
            };
            hosts.insert(at, host);
        }
        command::DELETE => {
            let hosts = &mut def.ips[idx].hosts;
            let found = hosts.iter().position(|h| {
                (host.mac.is_none()
                    || h.mac.is_none()
                    || same_mac(
                        host.mac.as_deref().unwrap_or(""),
                        h.mac.as_deref().unwrap_or(""),
                    ))
                    && (host.name.is_none() || host.name == h.name)
                    && (host.ip.is_none() || host.ip == h.ip)
            });
            let Some(i) = found else {
                return Err(invalid(format!(
                    "couldn't locate a matching dhcp host entry in network '{name}'"
                )));
            };
            hosts.remove(i);
        }
        c => return Err(unknown_command(c)),
    }
    Ok(())
}

fn dhcp_range(def: &mut NetworkDef, command: u32, parent: i32, e: &Element) -> Result<()> {
    let idx = ip_index(def, parent)?;
    check_element(def, e, "range")?;
    if command == command::MODIFY {
        return Err(unsupported(
            "dhcp ranges cannot be modified, only added or deleted",
        ));
    }
    let range = parse_range(e, &def.ips[idx], &def.name)?;
    if range.start.is_ipv4() != def.ips[idx].address.is_ipv4() {
        return Err(invalid(
            "the address family of a dhcp range must match the address family of the dhcp element's parent",
        ));
    }
    let found = def.ips[idx]
        .ranges
        .iter()
        .position(|r| r.start == range.start && r.end == range.end);
    let name = def.name.clone();
    match command {
        command::ADD_FIRST | command::ADD_LAST => {
            check_multi_dhcp(def, idx)?;
            if found.is_some() {
                return Err(invalid(format!(
                    "there is an existing dhcp range entry in network '{name}' that matches \"<range start='{}' end='{}'/>\"",
                    range.start, range.end
                )));
            }
            let ranges = &mut def.ips[idx].ranges;
            let at = if command == command::ADD_FIRST {
                0
            } else {
                ranges.len()
            };
            ranges.insert(at, range);
        }
        command::DELETE => {
            let Some(i) = found else {
                return Err(invalid(format!(
                    "couldn't locate a matching dhcp range entry in network '{name}'"
                )));
            };
            def.ips[idx].ranges.remove(i);
        }
        c => return Err(unknown_command(c)),
    }
    Ok(())
}

fn dns_host(def: &mut NetworkDef, command: u32, e: &Element) -> Result<()> {
    if command == command::MODIFY {
        return Err(unsupported(
            "DNS HOST records cannot be modified, only added or deleted",
        ));
    }
    check_element(def, e, "host")?;
    let is_add = matches!(command, command::ADD_FIRST | command::ADD_LAST);
    let host = parse_dns_host(e, &def.name, !is_add)?;
    let matches: Vec<usize> = def
        .dns
        .hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| {
            h.ip == host.ip || (!is_add && host.hostnames.iter().any(|n| h.hostnames.contains(n)))
        })
        .map(|(i, _)| i)
        .collect();
    let name = &def.name;
    match command {
        command::ADD_FIRST | command::ADD_LAST => {
            if !matches.is_empty() {
                return Err(invalid(format!(
                    "there is already at least one DNS HOST record with a matching field in network {name}"
                )));
            }
            let at = if command == command::ADD_FIRST {
                0
            } else {
                def.dns.hosts.len()
            };
            def.dns.hosts.insert(at, host);
        }
        command::DELETE => match matches.as_slice() {
            [] => {
                return Err(invalid(format!(
                    "couldn't locate a matching DNS HOST record in network {name}"
                )));
            }
            [i] => {
                def.dns.hosts.remove(*i);
            }
            _ => {
                return Err(invalid(format!(
                    "multiple matching DNS HOST records were found in network {name}"
                )));
            }
        },
        c => return Err(unknown_command(c)),
    }
    Ok(())
}
