//! libvirt's virtual network XML (`network.rng`): parsed as libvirt's
//! network driver reads it (`virNetworkDefParse` and the driver's
//! validation) and formatted byte for byte as `virsh net-dumpxml` prints
//! it. No I/O: bridge names and MACs the driver assigns are filled in by
//! the driver.

pub mod addr;
mod format;
mod parse;
pub mod update;

use std::net::{IpAddr, Ipv4Addr};

use crate::xml::mac::MacAddr;
use crate::xml::tree::Element;

pub use parse::{parse_network, validate};

/// `virNetworkForwardType`, in libvirt's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForwardMode {
    None,
    Nat,
    Route,
    Open,
    Bridge,
    Private,
    Vepa,
    Passthrough,
    Hostdev,
}

const FORWARD_MODES: [(&str, ForwardMode); 9] = [
    ("none", ForwardMode::None),
    ("nat", ForwardMode::Nat),
    ("route", ForwardMode::Route),
    ("open", ForwardMode::Open),
    ("bridge", ForwardMode::Bridge),
    ("private", ForwardMode::Private),
    ("vepa", ForwardMode::Vepa),
    ("passthrough", ForwardMode::Passthrough),
    ("hostdev", ForwardMode::Hostdev),
];

impl ForwardMode {
    pub fn parse(s: &str) -> Option<ForwardMode> {
        FORWARD_MODES.iter().find(|(n, _)| *n == s).map(|(_, m)| *m)
    }

    pub fn as_str(self) -> &'static str {
        FORWARD_MODES[self as usize].0
    }

    /// The modes whose bridge, addresses and services the driver makes
    /// itself (isolated, nat, route, open).
    pub fn makes_bridge(self) -> bool {
        matches!(
            self,
            ForwardMode::None | ForwardMode::Nat | ForwardMode::Route | ForwardMode::Open
        )
    }
}

/// `<forward>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    pub mode: ForwardMode,
    /// `<interface dev>` (and `dev=`, which names the first).
    pub devs: Vec<String>,
    /// `<nat><address start end/>`.
    pub nat_addr: Option<(Ipv4Addr, Option<Ipv4Addr>)>,
    /// `<nat><port start end/>`.
    pub nat_ports: Option<(u32, u32)>,
    /// `<nat ipv6='yes|no'/>`.
    pub nat_ipv6: Option<bool>,
    /// `managed='yes'` of a `hostdev` network.
    pub managed: bool,
    /// Elements kept as given: `<pf>`, `<address>`, `<driver>`.
    pub other: Vec<Element>,
}

/// `<lease expiry unit/>` of a DHCP range or host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTime {
    pub expiry: u64,
    /// `seconds`, `minutes` or `hours`.
    pub unit: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DhcpRange {
    pub start: IpAddr,
    pub end: IpAddr,
    pub lease: Option<LeaseTime>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DhcpHost {
    pub mac: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
    pub lease: Option<LeaseTime>,
}

/// `<ip>`.
#[derive(Clone, Debug, PartialEq)]
pub struct IpDef {
    /// `family=` as given (`ipv4`, `ipv6`).
    pub family: Option<String>,
    pub address: IpAddr,
    pub netmask: Option<Ipv4Addr>,
    pub prefix: Option<u8>,
    pub local_ptr: Option<bool>,
    pub tftp_root: Option<String>,
    pub ranges: Vec<DhcpRange>,
    pub hosts: Vec<DhcpHost>,
    /// `<bootp file server/>`.
    pub bootp: Option<(String, Option<IpAddr>)>,
}

impl IpDef {
    /// `virNetworkIPDefPrefix`.
    pub fn effective_prefix(&self) -> u8 {
        addr::effective_prefix(self.address, self.netmask, self.prefix)
    }

    pub fn has_dhcp(&self) -> bool {
        !self.ranges.is_empty() || !self.hosts.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DnsHost {
    pub ip: IpAddr,
    pub hostnames: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DnsForwarder {
    pub domain: Option<String>,
    pub addr: Option<IpAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DnsSrv {
    pub service: String,
    pub protocol: String,
    pub domain: Option<String>,
    pub target: Option<String>,
    pub port: u32,
    pub priority: u32,
    pub weight: u32,
}

/// `<dns>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dns {
    pub enable: Option<bool>,
    pub forward_plain_names: Option<bool>,
    pub forwarders: Vec<DnsForwarder>,
    pub txts: Vec<(String, String)>,
    pub srvs: Vec<DnsSrv>,
    pub hosts: Vec<DnsHost>,
}

/// `<bridge>`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BridgeDef {
    pub name: Option<String>,
    pub zone: Option<String>,
    pub stp: bool,
    pub stp_given: bool,
    pub delay: u64,
    pub mac_table_manager: Option<String>,
}

/// A virtual network's definition.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkDef {
    pub name: String,
    pub uuid: uuid::Uuid,
    /// `ipv6='yes'`.
    pub ipv6_nogw: Option<bool>,
    pub trust_guest_rx_filters: Option<bool>,
    pub metadata: Option<Element>,
    pub forward: Forward,
    pub bridge: BridgeDef,
    pub mtu: u32,
    pub mac: Option<MacAddr>,
    /// `<domain name localOnly/>`.
    pub domain: Option<(String, Option<bool>)>,
    pub dns: Dns,
    /// Elements kept as given, in libvirt's output order.
    pub vlan: Option<Element>,
    pub bandwidth: Option<Element>,
    pub port: Option<Element>,
    pub ips: Vec<IpDef>,
    pub routes: Vec<Element>,
    pub virtualport: Option<Element>,
    pub portgroups: Vec<Element>,
    /// `<dnsmasq:options>`: lines added to dnsmasq's configuration.
    pub dnsmasq_options: Vec<String>,
}

/// The namespace of `<dnsmasq:options>`.
pub const DNSMASQ_NS: &str = "http://libvirt.org/schemas/network/dnsmasq/1.0";

impl NetworkDef {
    /// The IPv4 `<ip>` with DHCP, if any (libvirt serves one per family).
    pub fn ipv4_dhcp(&self) -> Option<&IpDef> {
        self.ips
            .iter()
            .find(|i| i.address.is_ipv4() && i.has_dhcp())
    }

    /// Whether the driver makes and owns this network's bridge.
    pub fn makes_bridge(&self) -> bool {
        self.forward.mode.makes_bridge()
    }

    /// The bridge guests join: the one the driver made, or the host
    /// bridge a `bridge` network names.
    pub fn bridge_name(&self) -> Option<&str> {
        self.bridge.name.as_deref()
    }

    /// Whether this network needs dnsmasq (DNS or DHCP on its bridge).
    pub fn wants_dnsmasq(&self) -> bool {
        self.makes_bridge()
            && (self.dns.enable != Some(false) || self.ips.iter().any(IpDef::has_dhcp))
            && !self.ips.is_empty()
    }
}
