//! Reading `<network>` as `virNetworkDefParse` does, with its checks and
//! messages.

use std::net::{IpAddr, Ipv4Addr};

use super::addr::{in_subnet, parse_ip, range_size};
use super::{
    BridgeDef, DhcpHost, DhcpRange, Dns, DnsForwarder, DnsHost, DnsSrv, Forward, ForwardMode,
    IpDef, LeaseTime, NetworkDef,
};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::mac::MacAddr;
use crate::xml::props::opt_string;
use crate::xml::tree::{Element, parse_document_as};
use crate::xml::uuid_text;

fn xml_err(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::XmlError, ErrorDomain::Network, detail)
}

fn unsupported(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::ConfigUnsupported, ErrorDomain::Network, detail)
}

/// A tristate boolean attribute (`yes`/`no`), as `virXMLPropTristateBool`.
fn yes_no(e: &Element, attr: &str) -> Result<Option<bool>> {
    match e.attr(attr) {
        None => Ok(None),
        Some("yes") => Ok(Some(true)),
        Some("no") => Ok(Some(false)),
        Some(v) => Err(Error::new(
            ErrorCode::XmlError,
            ErrorDomain::Xml,
            format!(
                "Invalid value for attribute '{attr}' in element '{}': '{v}'.",
                e.name
            ),
        )),
    }
}

/// Reads network XML as `virNetworkDefParse` does.
pub fn parse_network(xml: &str) -> Result<NetworkDef> {
    let root = parse_document_as(xml, "(network_definition)", "network")?;
    from_element(&root)
}

pub(super) fn from_element(root: &Element) -> Result<NetworkDef> {
    let name = root
        .child("name")
        .map(|n| n.text.clone())
        .ok_or_else(|| Error::new(ErrorCode::NoName, ErrorDomain::Network, ""))?;
    if name.contains('/') {
        return Err(Error::new(
            ErrorCode::XmlDetail,
            ErrorDomain::Network,
            "invalid char in name: /",
        ));
    }
    let uuid = match root.child("uuid") {
        None => uuid_text::generate(),
        Some(u) => uuid_text::parse_uuid(&u.text).ok_or_else(|| {
            Error::new(
                ErrorCode::InternalError,
                ErrorDomain::Network,
                "malformed uuid element",
            )
        })?,
    };
    let ipv6_nogw = match root.attr("ipv6") {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(v) => {
            return Err(xml_err(format!(
                "Invalid ipv6 setting '{v}' in network '{name}'"
            )));
        }
    };
    let trust_guest_rx_filters = yes_no(root, "trustGuestRxFilters")?;
    let domain = match root.child("domain") {
        Some(d) => d
            .attr("name")
            .map(|n| Ok::<_, Error>((n.to_string(), yes_no(d, "localOnly")?)))
            .transpose()?,
        None => None,
    };
    let bridge = parse_bridge(root.child("bridge"), &name)?;
    let mac = match root.child("mac").and_then(|m| m.attr("address")) {
        None => None,
        Some(text) => {
            let m = parse_mac(text).ok_or_else(|| {
                xml_err(format!(
                    "Invalid bridge mac address '{text}' in network '{name}'"
                ))
            })?;
            if m.0[0] & 1 == 1 {
                return Err(xml_err(format!(
                    "Invalid multicast bridge mac address '{text}' in network '{name}'"
                )));
            }
            Some(m)
        }
    };
    let mtu = match root.child("mtu").and_then(|m| m.attr("size")) {
        None => 0,
        Some(s) => s
            .parse::<u32>()
            .map_err(|_| xml_err(format!("Invalid mtu size '{s}' in network '{name}'")))?,
    };
    let dns = match root.child("dns") {
        Some(d) => parse_dns(d, &name)?,
        None => Dns::default(),
    };
    let ips = root
        .children_named("ip")
        .map(|i| parse_ip_def(i, &name))
        .collect::<Result<Vec<_>>>()?;
    let routes: Vec<Element> = root.children_named("route").cloned().collect();
    check_routes(&routes, &ips, &name)?;
    let forward = match root.child("forward") {
        Some(f) => parse_forward(f, &name)?,
        None => Forward {
            mode: ForwardMode::None,
            devs: Vec::new(),
            nat_addr: None,
            nat_ports: None,
            nat_ipv6: None,
            managed: false,
            other: Vec::new(),
        },
    };
    let def = NetworkDef {
        name,
        uuid,
        ipv6_nogw,
        trust_guest_rx_filters,
        metadata: root.child("metadata").cloned(),
        forward,
        bridge,
        mtu,
        mac,
        domain,
        dns,
        vlan: root.child("vlan").cloned(),
        bandwidth: root.child("bandwidth").cloned(),
        port: root.child("port").cloned(),
        ips,
        routes,
        virtualport: root.child("virtualport").cloned(),
        portgroups: root.children_named("portgroup").cloned().collect(),
        dnsmasq_options: dnsmasq_options(root),
    };
    check_forward_fit(&def, root.child("bridge"))?;
    Ok(def)
}

/// The values of `<options>` in libvirt's dnsmasq namespace, whatever
/// prefix the document binds it to.
fn dnsmasq_options(root: &Element) -> Vec<String> {
    let Some(prefix) = root
        .attrs
        .iter()
        .find_map(|(k, v)| k.strip_prefix("xmlns:").filter(|_| v == super::DNSMASQ_NS))
    else {
        return Vec::new();
    };
    let options = format!("{prefix}:options");
    let option = format!("{prefix}:option");
    root.children_named(&options)
        .flat_map(|o| o.children_named(&option))
        .filter_map(|o| o.attr("value").map(str::to_string))
        .collect()
}

/// A MAC address as `virMacAddrParse` reads it (multicast allowed; the
/// caller decides).
fn parse_mac(text: &str) -> Option<MacAddr> {
    let mut octets = [0u8; 6];
    let mut parts = text.split(':');
    for o in octets.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(MacAddr(octets))
}

fn parse_bridge(b: Option<&Element>, name: &str) -> Result<BridgeDef> {
    let Some(b) = b else {
        return Ok(BridgeDef {
            stp: true,
            ..BridgeDef::default()
        });
    };
    let delay = match b.attr("delay") {
        None => 0,
        Some(d) => d
            .parse::<u64>()
            .map_err(|_| xml_err(format!("Invalid delay value in network '{name}'")))?,
    };
    let mac_table_manager = match b.attr("macTableManager") {
        None => None,
        Some(m @ ("kernel" | "libvirt")) => Some(m.to_string()),
        Some(m) => {
            return Err(xml_err(format!(
                "Invalid macTableManager setting '{m}' in network '{name}'"
            )));
        }
    };
    Ok(BridgeDef {
        name: opt_string(b, "name"),
        zone: opt_string(b, "zone"),
        stp: b.attr("stp") != Some("off"),
        stp_given: b.attr("stp").is_some(),
        delay,
        mac_table_manager,
    })
}

fn parse_lease(e: Option<&Element>) -> Result<Option<LeaseTime>> {
    let Some(l) = e else { return Ok(None) };
    let expiry = match l.attr("expiry") {
        None => 0,
        Some(v) => v.parse::<u64>().map_err(|_| {
            Error::new(
                ErrorCode::XmlError,
                ErrorDomain::Xml,
                format!("Invalid value for attribute 'expiry' in element 'lease': '{v}'. Expected non-negative integer value"),
            )
        })?,
    };
    let unit = match l.attr("unit") {
        None | Some("minutes") => "minutes",
        Some("seconds") => "seconds",
        Some("hours") => "hours",
        Some(v) => {
            return Err(Error::new(
                ErrorCode::XmlError,
                ErrorDomain::Xml,
                format!("Invalid value for attribute 'unit' in element 'lease': '{v}'."),
            ));
        }
    };
    if expiry > 0 && ((unit == "seconds" && expiry < 120) || (unit == "minutes" && expiry < 2)) {
        return Err(unsupported(
            "The minimum lease time should be greater than 2 minutes",
        ));
    }
    Ok(Some(LeaseTime { expiry, unit }))
}

fn socket_addr(text: &str) -> Result<IpAddr> {
    parse_ip(text).ok_or_else(|| {
        Error::new(
            ErrorCode::SystemError,
            ErrorDomain::None,
            format!("Cannot parse socket address '{text}': Name or service not known"),
        )
    })
}

pub(super) fn parse_range(e: &Element, ip: &IpDef, name: &str) -> Result<DhcpRange> {
    let start = e.attr("start").ok_or_else(|| {
        xml_err(format!(
            "Missing 'start' attribute in dhcp range for network '{name}'"
        ))
    })?;
    let start = socket_addr(start)?;
    let end = e.attr("end").ok_or_else(|| {
        xml_err(format!(
            "Missing 'end' attribute in dhcp range for network '{name}'"
        ))
    })?;
    let end = socket_addr(end)?;
    range_size(start, end, ip.address, ip.effective_prefix())?;
    Ok(DhcpRange {
        start,
        end,
        lease: parse_lease(e.child("lease"))?,
    })
}

/// `virNetworkDHCPHostDefParseXML`; `partial` accepts an entry that only
/// identifies a host (for `net-update ... delete`).
pub(super) fn parse_host(e: &Element, ip: &IpDef, name: &str, partial: bool) -> Result<DhcpHost> {
    let v6 = ip.address.is_ipv6();
    let mac = opt_string(e, "mac");
    if let Some(m) = &mac {
        if v6 {
            return Err(xml_err(format!(
                "Invalid to specify MAC address '{m}' in network '{name}' IPv6 static host definition"
            )));
        }
        let parsed = parse_mac(m).ok_or_else(|| {
            xml_err(format!(
                "Cannot parse MAC address '{m}' in network '{name}'"
            ))
        })?;
        if parsed.0[0] & 1 == 1 {
            return Err(xml_err(format!(
                "expected unicast mac address, found multicast '{m}' in network '{name}'"
            )));
        }
    }
    let id = opt_string(e, "id");
    if let Some(id) = &id
        && let Some(c) = id.chars().find(|c| !(c.is_ascii_hexdigit() || *c == ':'))
    {
        return Err(xml_err(format!(
            "Invalid character '{c}' in id '{id}' of network '{name}'"
        )));
    }
    let host_name = opt_string(e, "name");
    if let Some(n) = &host_name
        && !n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return Err(xml_err(format!(
            "Cannot use host name '{n}' in network '{name}'"
        )));
    }
    let addr = match e.attr("ip") {
        None => None,
        Some(t) => Some(parse_ip(t).ok_or_else(|| {
            xml_err(format!(
                "Invalid IP address in static host definition for network '{name}'"
            ))
        })?),
    };
    if partial {
        if mac.is_none() && host_name.is_none() && addr.is_none() {
            return Err(xml_err(format!(
                "At least one of name, mac, or ip attribute must be specified for static host definition in network '{name}' "
            )));
        }
    } else {
        if v6 && id.is_none() && host_name.is_none() {
            return Err(xml_err(format!(
                "Static host definition in IPv6 network '{name}' must have id or name attribute"
            )));
        }
        if !v6 && mac.is_none() && host_name.is_none() {
            return Err(xml_err(format!(
                "Static host definition in IPv4 network '{name}' must have mac or name attribute"
            )));
        }
        if addr.is_none() {
            return Err(xml_err(format!(
                "Missing IP address in static host definition for network '{name}'"
            )));
        }
    }
    Ok(DhcpHost {
        mac,
        id,
        name: host_name,
        ip: addr,
        lease: parse_lease(e.child("lease"))?,
    })
}

fn parse_ip_def(e: &Element, name: &str) -> Result<IpDef> {
    let family = opt_string(e, "family");
    let address_text = e.attr("address").ok_or_else(|| {
        xml_err(format!(
            "Missing required address attribute in network '{name}'"
        ))
    })?;
    let address = parse_ip(address_text).ok_or_else(|| {
        xml_err(format!(
            "Invalid address '{address_text}' in network '{name}'"
        ))
    })?;
    let netmask_text = e.attr("netmask");
    let netmask = match netmask_text {
        None => None,
        Some(t) => Some(
            parse_ip(t)
                .ok_or_else(|| xml_err(format!("Invalid netmask '{t}' in network '{name}'")))?,
        ),
    };
    let prefix = match e.attr("prefix") {
        None => None,
        Some(p) => Some(p.parse::<u32>().map_err(|_| {
            Error::new(
                ErrorCode::XmlError,
                ErrorDomain::Xml,
                format!("Invalid value for attribute 'prefix' in element 'ip': '{p}'. Expected non-negative integer value"),
            )
        })?),
    };
    let local_ptr = yes_no(e, "localPtr")?;
    let mut v4_netmask: Option<Ipv4Addr> = None;
    match family.as_deref() {
        None | Some("ipv4") => {
            if !address.is_ipv4() {
                return Err(unsupported(format!(
                    "{} family specified for non-IPv4 address '{address_text}' in network '{name}'",
                    family.as_deref().unwrap_or("no")
                )));
            }
            if let Some(m) = netmask {
                let IpAddr::V4(m4) = m else {
                    return Err(unsupported(format!(
                        "Invalid netmask '{}' for address '{address_text}' in network '{name}' (both must be IPv4)",
                        netmask_text.unwrap_or_default()
                    )));
                };
                if prefix.is_some_and(|p| p > 0) {
                    return Err(unsupported(format!(
                        "Network '{name}' IP address cannot have both a prefix and a netmask"
                    )));
                }
                v4_netmask = Some(m4);
            } else if let Some(p) = prefix.filter(|p| *p > 32) {
                return Err(unsupported(format!(
                    "Invalid IPv4 prefix '{p}' in network '{name}'"
                )));
            }
        }
        Some("ipv6") => {
            if !address.is_ipv6() {
                return Err(unsupported(format!(
                    "Family 'ipv6' specified for non-IPv6 address '{address_text}' in network '{name}'"
                )));
            }
            if netmask.is_some() {
                return Err(unsupported(format!(
                    "netmask not allowed for IPv6 address '{address_text}' in network '{name}'"
                )));
            }
            if let Some(p) = prefix.filter(|p| *p > 128) {
                return Err(unsupported(format!(
                    "Invalid IPv6 prefix '{p}' in network '{name}'"
                )));
            }
        }
        Some(f) => {
            return Err(xml_err(format!(
                "Unrecognized family '{f}' in network '{name}'"
            )));
        }
    }
    let mut ip = IpDef {
        family,
        address,
        netmask: v4_netmask,
        prefix: prefix.map(|p| p as u8),
        local_ptr,
        tftp_root: None,
        ranges: Vec::new(),
        hosts: Vec::new(),
        bootp: None,
    };
    if let Some(dhcp) = e.child("dhcp") {
        for c in &dhcp.children {
            match c.name.as_str() {
                "range" => {
                    let r = parse_range(c, &ip, name)?;
                    ip.ranges.push(r);
                }
                "host" => {
                    let h = parse_host(c, &ip, name, false)?;
                    ip.hosts.push(h);
                }
                "bootp" if ip.address.is_ipv4() => {
                    if let Some(file) = c.attr("file") {
                        let server = c.attr("server").map(socket_addr).transpose()?;
                        ip.bootp = Some((file.to_string(), server));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(t) = e.child("tftp") {
        if !ip.address.is_ipv4() {
            return Err(unsupported(format!(
                "Unsupported <tftp> element in an IPv6 element in network '{name}'"
            )));
        }
        ip.tftp_root = Some(t.attr("root").unwrap_or_default().to_string());
    }
    Ok(ip)
}

fn detail(detail: String) -> Error {
    Error::new(ErrorCode::XmlDetail, ErrorDomain::Network, detail)
}

/// `virNetworkDNSHostDefParseXML`.
pub(super) fn parse_dns_host(e: &Element, name: &str, partial: bool) -> Result<DnsHost> {
    let ip = match e.attr("ip") {
        None if partial => None,
        None => {
            return Err(detail(format!(
                "Missing IP address in network '{name}' DNS HOST record"
            )));
        }
        Some(t) => Some(parse_ip(t).ok_or_else(|| {
            detail(format!(
                "Invalid IP address in network '{name}' DNS HOST record"
            ))
        })?),
    };
    let mut hostnames = Vec::new();
    for h in e.children_named("hostname") {
        if h.text.is_empty() {
            return Err(detail(format!(
                "Missing hostname in network '{name}' DNS HOST record"
            )));
        }
        hostnames.push(h.text.clone());
    }
    if hostnames.is_empty() && !partial {
        return Err(detail(format!(
            "Missing hostname in network '{name}' DNS HOST record"
        )));
    }
    match ip {
        Some(ip) => Ok(DnsHost { ip, hostnames }),
        None if hostnames.is_empty() => Err(detail(format!(
            "Missing ip and hostname in network '{name}' DNS HOST record"
        ))),
        // A partial entry (update delete) matched by its names only.
        None => Ok(DnsHost {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            hostnames,
        }),
    }
}

fn parse_dns(d: &Element, name: &str) -> Result<Dns> {
    let mut dns = Dns {
        enable: yes_no(d, "enable")?,
        forward_plain_names: yes_no(d, "forwardPlainNames")?,
        ..Dns::default()
    };
    for f in d.children_named("forwarder") {
        let addr = match f.attr("addr") {
            None => None,
            Some(t) => Some(parse_ip(t).ok_or_else(|| {
                xml_err(format!(
                    "Invalid forwarder IP address '{t}' in network '{name}'"
                ))
            })?),
        };
        let domain = opt_string(f, "domain");
        if addr.is_none() && domain.is_none() {
            return Err(xml_err(
                "Invalid forwarder element, must contain at least one of addr or domain",
            ));
        }
        dns.forwarders.push(DnsForwarder { domain, addr });
    }
    for h in d.children_named("host") {
        dns.hosts.push(parse_dns_host(h, name, false)?);
    }
    for s in d.children_named("srv") {
        let service = s.attr("service").ok_or_else(|| {
            xml_err(format!(
                "missing required service attribute in DNS SRV record of network '{name}'"
            ))
        })?;
        let protocol = s.attr("protocol").ok_or_else(|| {
            xml_err(format!(
                "missing required protocol attribute in DNS SRV record '{service}' of network '{name}'"
            ))
        })?;
        let num = |a: &str| -> Result<u32> {
            s.attr(a)
                .map(|v| {
                    v.parse::<u32>().map_err(|_| {
                        xml_err(format!(
                            "invalid DNS SRV {a} attribute for service '{service}' in network '{name}'"
                        ))
                    })
                })
                .transpose()
                .map(|v| v.unwrap_or(0))
        };
        dns.srvs.push(DnsSrv {
            service: service.to_string(),
            protocol: protocol.to_string(),
            domain: opt_string(s, "domain"),
            target: opt_string(s, "target"),
            port: num("port")?,
            priority: num("priority")?,
            weight: num("weight")?,
        });
    }
    for t in d.children_named("txt") {
        let (Some(n), Some(v)) = (t.attr("name"), t.attr("value")) else {
            return Err(xml_err(format!(
                "missing required name attribute in DNS TXT record of network {name}"
            )));
        };
        if n.contains(' ') {
            return Err(xml_err(format!(
                "prohibited character in DNS TXT record name '{n}' of network {name}"
            )));
        }
        dns.txts.push((n.to_string(), v.to_string()));
    }
    if dns.enable == Some(false)
        && (!dns.forwarders.is_empty()
            || !dns.hosts.is_empty()
            || !dns.srvs.is_empty()
            || !dns.txts.is_empty()
            || dns.forward_plain_names.is_some())
    {
        return Err(xml_err(format!("Extra data in disabled network '{name}'")));
    }
    Ok(dns)
}

fn check_routes(routes: &[Element], ips: &[IpDef], name: &str) -> Result<()> {
    for r in routes {
        let Some(gw) = r.attr("gateway").and_then(parse_ip) else {
            continue;
        };
        let reachable = ips
            .iter()
            .any(|ip| in_subnet(gw, ip.address, ip.effective_prefix()));
        if !reachable {
            return Err(unsupported(format!(
                "unreachable static route gateway '{gw}' specified for network '{name}'"
            )));
        }
    }
    Ok(())
}

fn parse_forward(f: &Element, name: &str) -> Result<Forward> {
    let mode = match f.attr("mode") {
        None => ForwardMode::Nat,
        Some(m) => ForwardMode::parse(m)
            .filter(|m| *m != ForwardMode::None)
            .ok_or_else(|| unsupported(format!("unknown forwarding type '{m}'")))?,
    };
    let mut fwd = Forward {
        mode,
        devs: Vec::new(),
        nat_addr: None,
        nat_ports: None,
        nat_ipv6: None,
        managed: f.attr("managed") == Some("yes"),
        other: Vec::new(),
    };
    let nats: Vec<&Element> = f.children_named("nat").collect();
    if nats.len() > 1 {
        return Err(xml_err(format!(
            "Only one <nat> element is allowed in <forward> of network {name}"
        )));
    }
    if let Some(nat) = nats.first() {
        if mode != ForwardMode::Nat {
            return Err(xml_err(format!(
                "The <nat> element can only be used when <forward> 'mode' is 'nat' in network {name}"
            )));
        }
        parse_nat(nat, name, &mut fwd)?;
    }
    let has_addr_or_pf = f.child("address").is_some() || f.child("pf").is_some();
    if let Some(dev) = f.attr("dev") {
        if has_addr_or_pf {
            return Err(xml_err(format!(
                "the <forward> 'dev' attribute cannot be used when <address> or <pf> sub-elements are present in network {name}"
            )));
        }
        fwd.devs.push(dev.to_string());
    }
    for (i, iface) in f.children_named("interface").enumerate() {
        let dev = iface.attr("dev").ok_or_else(|| {
            xml_err(format!(
                "Missing required dev attribute in <forward> <interface> element of network {name}"
            ))
        })?;
        if i == 0 && f.attr("dev").is_some() {
            if fwd.devs[0] != dev {
                return Err(xml_err(format!(
                    "<forward dev='{}'> must match first <interface dev='{dev}'/> in network {name}",
                    fwd.devs[0]
                )));
            }
            continue;
        }
        if fwd.devs.iter().any(|d| d == dev) {
            return Err(xml_err(format!(
                "interface '{dev}' can only be listed once in network {name}"
            )));
        }
        fwd.devs.push(dev.to_string());
    }
    fwd.other = f
        .children
        .iter()
        .filter(|c| matches!(c.name.as_str(), "driver" | "pf" | "address"))
        .cloned()
        .collect();
    Ok(fwd)
}

fn parse_nat(nat: &Element, name: &str, fwd: &mut Forward) -> Result<()> {
    fwd.nat_ipv6 = yes_no(nat, "ipv6")?;
    let addrs: Vec<&Element> = nat.children_named("address").collect();
    if addrs.len() > 1 {
        return Err(xml_err(format!(
            "Only one <address> element is allowed in <nat> in <forward> in network {name}"
        )));
    }
    if let Some(a) = addrs.first() {
        let start = a.attr("start").ok_or_else(|| {
            xml_err(format!(
                "missing 'start' attribute in <address> element in <nat> in <forward> in network {name}"
            ))
        })?;
        let end = a.attr("end").ok_or_else(|| {
            xml_err(format!(
                "missing 'end' attribute in <address> element in <nat> in <forward> in network {name}"
            ))
        })?;
        let s: Ipv4Addr = start.parse().map_err(|_| {
            xml_err(format!(
                "Bad ipv4 start address '{start}' in <nat> in <forward> in network '{name}'"
            ))
        })?;
        let e: Ipv4Addr = end.parse().map_err(|_| {
            xml_err(format!(
                "Bad ipv4 end address '{end}' in <nat> in <forward> in network '{name}'"
            ))
        })?;
        fwd.nat_addr = Some((s, Some(e)));
    }
    let ports: Vec<&Element> = nat.children_named("port").collect();
    if ports.len() > 1 {
        return Err(xml_err(format!(
            "Only one <port> element is allowed in <nat> in <forward> in network {name}"
        )));
    }
    if let Some(p) = ports.first() {
        let start = p
            .attr("start")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v <= 65535)
            .ok_or_else(|| {
                xml_err(format!(
                    "Missing or invalid 'start' attribute in <port> in <nat> in <forward> in network {name}"
                ))
            })?;
        let end = p
            .attr("end")
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|v| *v <= 65535 && *v >= start)
            .ok_or_else(|| {
                xml_err(format!(
                    "Missing or invalid 'end' attribute in <port> in <nat> in <forward> in network {name}"
                ))
            })?;
        fwd.nat_ports = Some((start, end));
    }
    Ok(())
}

/// The checks `virNetworkDefParse` makes of the definition against its
/// forward mode.
fn check_forward_fit(def: &NetworkDef, bridge: Option<&Element>) -> Result<()> {
    let name = &def.name;
    let mode = def.forward.mode;
    match mode {
        ForwardMode::None => {}
        ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open => {
            if def.ips.is_empty() {
                return Err(xml_err(format!(
                    "{} forwarding requested, but no IP address provided for network '{name}'",
                    mode.as_str()
                )));
            }
            if def.forward.devs.len() > 1 {
                return Err(xml_err(format!(
                    "multiple forwarding interfaces specified for network '{name}', only one is supported"
                )));
            }
            if mode == ForwardMode::Open && !def.forward.devs.is_empty() {
                return Err(xml_err(format!(
                    "forward dev not allowed for network '{name}' with forward mode='open'"
                )));
            }
        }
        _ => {
            if mode != ForwardMode::Bridge {
                if def.bridge.name.is_some() {
                    return Err(xml_err(format!(
                        "bridge name not allowed in {} mode (network '{name}')",
                        mode.as_str()
                    )));
                }
                if def.bridge.zone.is_some() {
                    return Err(xml_err(format!(
                        "bridge zone not allowed in {} mode (network '{name}')",
                        mode.as_str()
                    )));
                }
                if def.bridge.mac_table_manager.is_some() {
                    return Err(xml_err(format!(
                        "bridge macTableManager setting not allowed in {} mode (network '{name}')",
                        mode.as_str()
                    )));
                }
            }
            let stp_given = bridge.is_some_and(|b| b.attr("stp").is_some());
            if def.bridge.delay != 0 || stp_given || def.bridge.zone.is_some() {
                return Err(xml_err(format!(
                    "bridge delay/stp/zone options only allowed in route, nat, and isolated mode, not in {} (network '{name}')",
                    mode.as_str()
                )));
            }
            if def.bridge.name.is_some() && !def.forward.devs.is_empty() {
                return Err(xml_err(format!(
                    "A network with forward mode='{}' can specify a bridge name or a forward dev, but not both (network '{name}')",
                    mode.as_str()
                )));
            }
        }
    }
    if def.mtu != 0 && !mode.makes_bridge() {
        return Err(xml_err(format!(
            "mtu size only allowed in open, route, nat, and isolated mode, not in {} (network '{name}')",
            mode.as_str()
        )));
    }
    Ok(())
}

/// The checks the network driver makes when a definition is defined or
/// created (`networkValidate`), bridge names aside.
pub fn validate(def: &NetworkDef) -> Result<()> {
    let name = &def.name;
    if name.contains('\n') {
        return Err(Error::new(
            ErrorCode::XmlDetail,
            ErrorDomain::Network,
            "invalid char in name: \n",
        ));
    }
    if !def.makes_bridge() {
        let mode = def.forward.mode.as_str();
        let refuse = |what: &str| {
            Err(unsupported(format!(
                "Unsupported {what} element in network {name} with forward mode='{mode}'"
            )))
        };
        if def.mac.is_some() {
            return refuse("<mac>");
        }
        if !def.ips.is_empty() {
            return refuse("<ip>");
        }
        if !def.dns.txts.is_empty() || !def.dns.hosts.is_empty() || !def.dns.srvs.is_empty() {
            return refuse("<dns>");
        }
        if def.domain.is_some() {
            return refuse("<domain>");
        }
    }
    let mut v4 = false;
    let mut v6 = false;
    for ip in def.ips.iter().filter(|i| i.has_dhcp()) {
        let seen = if ip.address.is_ipv4() {
            &mut v4
        } else {
            &mut v6
        };
        if *seen {
            return Err(unsupported(if ip.address.is_ipv4() {
                "Multiple IPv4 dhcp sections found -- dhcp is supported only for a single IPv4 address on each network"
            } else {
                "Multiple IPv6 dhcp sections found -- dhcp is supported only for a single IPv6 address on each network"
            }));
        }
        *seen = true;
    }
    Ok(())
}
