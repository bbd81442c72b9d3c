//! The dnsmasq instance behind a network's DHCP and DNS: its configuration
//! (the same text libvirt's network driver writes, option for option), its
//! hosts files, and running it.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::network::addr::prefix_netmask;
use crate::xml::network::{ForwardMode, IpDef, LeaseTime, NetworkDef};

/// Where Debian's `dnsmasq-base` installs the daemon.
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A network's dnsmasq configuration and the hosts files it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub conf: String,
    /// `dhcp-hostsfile`: one static DHCP host per line.
    pub hostsfile: String,
    /// `addn-hosts`: the DNS host records.
    pub addnhosts: String,
}

/// The files of network `name` under `dir`.
pub fn conf_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.conf"))
}

/// The hosts files carry the network's name escaped as XML text, as
/// libvirt names them.
pub fn hostsfile_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.hostsfile", xml_escaped(name)))
}

pub fn addnhosts_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.addnhosts", xml_escaped(name)))
}

fn xml_escaped(name: &str) -> String {
    crate::xml::storage::out::esc(name)
}

pub fn leases_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.leases"))
}

fn unsupported(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::ConfigUnsupported, ErrorDomain::Network, detail)
}

/// dnsmasq's spelling of a lease time.
fn lease_time(l: &LeaseTime) -> String {
    if l.expiry == 0 {
        "infinite".into()
    } else {
        format!("{}{}", l.expiry, &l.unit[..1])
    }
}

/// The reverse-lookup zone of `ip/prefix` (`localPtr='yes'`).
fn ptr_domain(ip: &IpDef) -> Result<String> {
    let prefix = ip.effective_prefix();
    match ip.address {
        IpAddr::V4(a) if prefix.is_multiple_of(8) && prefix > 0 => {
            let o = a.octets();
            let mut parts: Vec<String> = o[..usize::from(prefix / 8)]
                .iter()
                .map(u8::to_string)
                .collect();
            parts.reverse();
            Ok(format!("{}.in-addr.arpa", parts.join(".")))
        }
        IpAddr::V6(a) if prefix.is_multiple_of(4) && prefix > 0 => {
            let bits = u128::from(a);
            let mut nibbles: Vec<String> = (0..usize::from(prefix / 4))
                .map(|i| format!("{:x}", (bits >> (124 - 4 * i)) & 0xf))
                .collect();
            nibbles.reverse();
            Ok(format!("{}.ip6.arpa", nibbles.join(".")))
        }
        _ => Err(unsupported(format!(
            "PTR domain for {} network with prefix {prefix} cannot be automatically created",
            if ip.address.is_ipv4() { "IPv4" } else { "IPv6" }
        ))),
    }
}

/// The `dhcp-hostsfile` line of a static host, as libvirt writes it.
fn dhcp_host_line(h: &crate::xml::network::DhcpHost, ip: IpAddr, v6: bool) -> String {
    let mut s = if v6 {
        let head = match (&h.name, &h.id) {
            (Some(n), Some(id)) => format!("id:{id},{n}"),
            (Some(n), None) => n.clone(),
            (None, Some(id)) => format!("id:{id}"),
            (None, None) => String::new(),
        };
        format!("{head},[{ip}]")
    } else {
        match (&h.name, &h.mac) {
            (Some(n), Some(m)) => format!("{m},{ip},{n}"),
            (Some(n), None) => format!("{n},{ip}"),
            (None, m) => format!("{},{ip}", m.as_deref().unwrap_or_default()),
        }
    };
    if let Some(l) = &h.lease {
        s += ",";
        s += &lease_time(l);
    }
    s
}

/// `networkDnsmasqConfDHCP`: the DHCP lines of one `<ip>`; adds the
/// number of leases its ranges hold to `leases`.
fn dhcp_lines(conf: &mut String, hosts: &mut String, ip: &IpDef, leases: &mut u32) -> Result<()> {
    let prefix = ip.effective_prefix();
    let v6 = ip.address.is_ipv6();
    for r in &ip.ranges {
        if v6 {
            let _ = write!(conf, "dhcp-range={},{},{prefix}", r.start, r.end);
        } else {
            let _ = write!(
                conf,
                "dhcp-range={},{},{}",
                r.start,
                r.end,
                prefix_netmask(prefix)
            );
        }
        if let Some(l) = &r.lease {
            let _ = write!(conf, ",{}", lease_time(l));
        }
        conf.push('\n');
        *leases += crate::xml::network::addr::range_size(r.start, r.end, ip.address, prefix)?;
    }
    if ip.ranges.is_empty() && !ip.hosts.is_empty() {
        let _ = write!(conf, "dhcp-range={},static", ip.address);
        if v6 {
            let _ = write!(conf, ",{prefix}");
        }
        conf.push('\n');
    }
    for h in &ip.hosts {
        if let Some(addr) = h.ip {
            hosts.push_str(&dhcp_host_line(h, addr, v6));
            hosts.push('\n');
        }
    }
    if !v6 {
        if ip.has_dhcp() {
            conf.push_str("dhcp-no-override\ndhcp-authoritative\n");
        }
        if let Some((file, server)) = &ip.bootp {
            match server {
                Some(s) => {
                    let _ = writeln!(conf, "dhcp-boot={file},,{s}");
                }
                None => {
                    let _ = writeln!(conf, "dhcp-boot={file}");
                }
            }
        }
    }
    Ok(())
}

impl Config {
    /// `networkDnsmasqConfContents`: the configuration of `def`'s dnsmasq,
    /// its hosts files kept in `dir`, its pid file at `pidfile`.
    pub fn new(def: &NetworkDef, dir: &Path, pidfile: Option<&Path>) -> Result<Config> {
        let mut c = String::new();
        let _ = write!(
            c,
            "##WARNING:  THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE\n\
             ##OVERWRITTEN AND LOST.  Changes to this configuration should be made using:\n\
             ##    virsh net-edit {}\n\
             ## or other application using the libvirt API.\n\
             ##\n## dnsmasq conf file created by libvirt\n\
             strict-order\n",
            def.name
        );
        let dns = &def.dns;
        let want_dns = dns.enable != Some(false);
        if !want_dns {
            c.push_str("port=0\n");
        }
        if want_dns && !dns.forwarders.is_empty() {
            let mut no_resolv = false;
            for f in &dns.forwarders {
                c.push_str("server=");
                if let Some(d) = &f.domain {
                    let _ = write!(c, "/{d}/");
                }
                match &f.addr {
                    Some(a) => {
                        let _ = writeln!(c, "{a}");
                        no_resolv |= f.domain.is_none();
                    }
                    None => c.push_str("#\n"),
                }
            }
            if no_resolv {
                c.push_str("no-resolv\n");
            }
        }
        if let Some((domain, local)) = &def.domain {
            if *local == Some(true) {
                let _ = writeln!(c, "local=/{domain}/");
            }
            let _ = write!(c, "domain={domain}\nexpand-hosts\n");
        }
        if want_dns {
            for ip in def.ips.iter().filter(|i| i.local_ptr == Some(true)) {
                let _ = writeln!(c, "local=/{}/", ptr_domain(ip)?);
            }
        }
        if want_dns && dns.forward_plain_names == Some(false) {
            c.push_str("domain-needed\nlocal=//\n");
        }
        if let Some(p) = pidfile {
            let _ = writeln!(c, "pid-file={}", p.display());
        }
        let bridge = def.bridge.name.as_deref().unwrap_or_default();
        let _ = write!(c, "except-interface=lo\nbind-dynamic\ninterface={bridge}\n");
        if def.forward.mode == ForwardMode::None {
            c.push_str("dhcp-option=3\nno-resolv\nra-param=*,0,0\n");
        }
        if want_dns {
            for (n, v) in &dns.txts {
                let _ = writeln!(c, "txt-record={n},{v}");
            }
            for s in &dns.srvs {
                let _ = write!(c, "srv-host=_{}._{}", s.service, s.protocol);
                if let Some(d) = &s.domain {
                    let _ = write!(c, ".{d}");
                }
                if let Some(t) = s.target.as_deref().filter(|t| *t != ".") {
                    let _ = write!(c, ",{t}");
                    if s.port != 0 || s.priority != 0 || s.weight != 0 {
                        let _ = write!(c, ",{}", if s.port != 0 { s.port } else { 1 });
                    }
                    if s.priority != 0 || s.weight != 0 {
                        let _ = write!(c, ",{}", s.priority);
                    }
                    if s.weight != 0 {
                        let _ = write!(c, ",{}", s.weight);
                    }
                }
                c.push('\n');
            }
        }
        let mut ipv4: Option<&IpDef> = None;
        let mut ipv6: Option<&IpDef> = None;
        let mut tftp = false;
        for ip in &def.ips {
            if ip.address.is_ipv4() {
                if ip.has_dhcp() {
                    if ipv4.is_some() {
                        return Err(unsupported(
                            "For IPv4, multiple DHCP definitions cannot be specified.",
                        ));
                    }
                    ipv4 = Some(ip);
                }
                if let Some(root) = &ip.tftp_root {
                    if !tftp {
                        c.push_str("enable-tftp\n");
                        tftp = true;
                    }
                    let _ = writeln!(c, "tftp-root={root}");
                }
            } else if ip.has_dhcp() {
                if ipv6.is_some() {
                    return Err(unsupported(
                        "For IPv6, multiple DHCP definitions cannot be specified.",
                    ));
                }
                ipv6 = Some(ip);
            }
        }
        let mut hostsfile = String::new();
        let mut leases = 0;
        for ip in [ipv4, ipv6].into_iter().flatten() {
            dhcp_lines(&mut c, &mut hostsfile, ip, &mut leases)?;
        }
        if leases > 0 {
            let _ = writeln!(c, "dhcp-lease-max={leases}");
        }
        if ipv4.is_some() || ipv6.is_some() {
            let _ = writeln!(
                c,
                "dhcp-hostsfile={}",
                hostsfile_path(dir, &def.name).display()
            );
        }
        if want_dns {
            let _ = writeln!(c, "addn-hosts={}", addnhosts_path(dir, &def.name).display());
        }
        if def.mtu > 0 {
            let _ = writeln!(c, "dhcp-option=option:mtu,{}", def.mtu);
        }
        if ipv6.is_some() {
            c.push_str("enable-ra\n");
        } else {
            for ip in def
                .ips
                .iter()
                .filter(|i| i.address.is_ipv6() && !i.has_dhcp())
            {
                let _ = writeln!(c, "dhcp-range={},ra-only", ip.address);
            }
        }
        for o in &def.dnsmasq_options {
            let _ = writeln!(c, "{o}");
        }
        let mut addnhosts = String::new();
        for h in &dns.hosts {
            if h.ip.is_unspecified() {
                continue;
            }
            let _ = write!(addnhosts, "{}\t", h.ip);
            for n in &h.hostnames {
                let _ = write!(addnhosts, "{n}\t");
            }
            addnhosts.push('\n');
        }
        Ok(Config {
            conf: c,
            hostsfile,
            addnhosts,
        })
    }
}

/// One line of dnsmasq's lease file: `EXPIRY MAC IP HOSTNAME CLIENTID`
/// (`*` for an absent hostname or client id); IPv6 leases follow a
/// `duid` line and carry the IAID in the MAC's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub expiry: i64,
    pub mac: Option<String>,
    pub iaid: Option<String>,
    pub ip: IpAddr,
    pub hostname: Option<String>,
    pub client_id: Option<String>,
}

/// Reads a dnsmasq lease file.
pub fn parse_leases(text: &str) -> Vec<Lease> {
    let mut out = Vec::new();
    let mut after_duid = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() == Some(&"duid") {
            after_duid = true;
            continue;
        }
        if f.len() < 4 {
            continue;
        }
        let (Ok(expiry), Ok(ip)) = (f[0].parse::<i64>(), f[2].parse::<IpAddr>()) else {
            continue;
        };
        let opt = |s: Option<&&str>| s.filter(|s| **s != "*").map(|s| s.to_string());
        let v6 = after_duid && ip.is_ipv6();
        out.push(Lease {
            expiry,
            mac: (!v6).then(|| f[1].to_string()),
            iaid: v6.then(|| f[1].to_string()),
            ip,
            hostname: opt(f.get(3)),
            client_id: opt(f.get(4)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dnsmasq_leases() {
        let l = parse_leases(
            "1765040000 52:54:00:aa:bb:cc 192.168.122.45 guest1 01:52:54:00:aa:bb:cc\n\
             1765040100 52:54:00:aa:bb:cd 192.168.122.46 * *\n\
             duid 00:01:00:01:2c:aa\n\
             1765040200 1234 2001:db8::10 g6 00:01:00:01\n",
        );
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].hostname.as_deref(), Some("guest1"));
        assert_eq!(l[1].hostname, None);
        assert_eq!(l[2].iaid.as_deref(), Some("1234"));
        assert_eq!(l[2].mac, None);
    }
}
