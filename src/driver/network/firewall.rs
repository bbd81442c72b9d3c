//! A network's firewall rules, in one nftables table of its own
//! (`inet oxvirt_<daemon>_<uuid>`, the daemon's tag telling apart the
//! tables of daemons with other state directories): the rules libvirt's network driver installs
//! for each forward mode (DHCP and DNS from guests, forwarding to and from
//! the network's subnets, masquerading for `nat`), replaced atomically and
//! removed with the table.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::network::addr::network_of;
use crate::xml::network::{ForwardMode, NetworkDef};

/// Tables this driver owns start with this.
pub const TABLE_PREFIX: &str = "oxvirt_";

/// A daemon's tag: a hash of its network state directory.
pub fn daemon_tag(state_dir: &std::path::Path) -> String {
    // FNV-1a: stable across builds, unlike the std hasher.
    let mut h: u32 = 0x811c_9dc5;
    for b in state_dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The table of the network with this UUID, of the daemon tagged `tag`.
pub fn table_name(tag: &str, uuid: &uuid::Uuid) -> String {
    format!("{TABLE_PREFIX}{tag}_{}", uuid.simple())
}

fn fail(detail: String) -> Error {
    Error::new(ErrorCode::InternalError, ErrorDomain::Network, detail)
}

fn quoted(ifname: &str) -> String {
    format!("\"{}\"", ifname.replace('"', ""))
}

/// The nftables script that installs (or replaces) the network's table;
/// `None` when the mode needs no rules (`open`, and the modes on host
/// devices).
pub fn ruleset(def: &NetworkDef, table: &str) -> Option<String> {
    let mode = def.forward.mode;
    if !matches!(
        mode,
        ForwardMode::None | ForwardMode::Nat | ForwardMode::Route
    ) {
        return None;
    }
    let bridge = quoted(def.bridge.name.as_deref()?);
    let out_dev = def.forward.devs.first().map(|d| quoted(d));
    let mut input = String::new();
    let mut output = String::new();
    let mut forward = String::new();
    let mut nat = String::new();
    // DHCP and DNS from guests to dnsmasq (and its answers).
    let has_v4 = def.ips.iter().any(|i| i.address.is_ipv4());
    let has_v6 = def.ips.iter().any(|i| i.address.is_ipv6());
    if has_v4 {
        let _ = writeln!(
            input,
            "    iifname {bridge} meta nfproto ipv4 udp dport 67 accept"
        );
        let _ = writeln!(
            input,
            "    iifname {bridge} meta nfproto ipv4 tcp dport 67 accept"
        );
        let _ = writeln!(
            output,
            "    oifname {bridge} meta nfproto ipv4 udp dport 68 accept"
        );
        let _ = writeln!(
            output,
            "    oifname {bridge} meta nfproto ipv4 tcp dport 68 accept"
        );
    }
    if has_v6 {
        let _ = writeln!(
            input,
            "    iifname {bridge} meta nfproto ipv6 udp dport 547 accept"
        );
        let _ = writeln!(
            output,
            "    oifname {bridge} meta nfproto ipv6 udp dport 546 accept"
        );
    }
    let _ = writeln!(input, "    iifname {bridge} udp dport 53 accept");
    let _ = writeln!(input, "    iifname {bridge} tcp dport 53 accept");
    let _ = writeln!(output, "    oifname {bridge} udp dport 53 accept");
    let _ = writeln!(output, "    oifname {bridge} tcp dport 53 accept");
    // Guests on the same bridge reach each other.
    let _ = writeln!(forward, "    iifname {bridge} oifname {bridge} accept");
    if mode != ForwardMode::None {
        for ip in &def.ips {
            let prefix = ip.effective_prefix();
            let net = network_of(ip.address, prefix);
            let fam = if ip.address.is_ipv4() { "ip" } else { "ip6" };
            let out_match = out_dev
                .as_ref()
                .map(|d| format!(" oifname {d}"))
                .unwrap_or_default();
            let in_match = out_dev
                .as_ref()
                .map(|d| format!(" iifname {d}"))
                .unwrap_or_default();
            let _ = writeln!(
                forward,
                "    iifname {bridge}{out_match} {fam} saddr {net}/{prefix} accept"
            );
            let natted = mode == ForwardMode::Nat
                && (ip.address.is_ipv4() || def.forward.nat_ipv6 == Some(true));
            let state = if natted {
                " ct state related,established"
            } else {
                ""
            };
            let _ = writeln!(
                forward,
                "    oifname {bridge}{in_match} {fam} daddr {net}/{prefix}{state} accept"
            );
            if natted {
                masquerade(&mut nat, def, fam, net, prefix, out_match.as_str());
            }
        }
    }
    // Anything else to or from the bridge is refused.
    let _ = writeln!(forward, "    iifname {bridge} reject");
    let _ = writeln!(forward, "    oifname {bridge} reject");
    let mut s = format!("table inet {table}\ndelete table inet {table}\ntable inet {table} {{\n");
    let chain = |s: &mut String, name: &str, hook: &str, prio: &str, body: &str| {
        let _ = write!(
            s,
            "  chain {name} {{\n    type {hook} priority {prio}; policy accept;\n{body}  }}\n"
        );
    };
    chain(&mut s, "input", "filter hook input", "filter", &input);
    chain(&mut s, "output", "filter hook output", "filter", &output);
    chain(&mut s, "forward", "filter hook forward", "filter", &forward);
    if !nat.is_empty() {
        chain(
            &mut s,
            "postrouting",
            "nat hook postrouting",
            "srcnat",
            &nat,
        );
    }
    s.push_str("}\n");
    Some(s)
}

/// libvirt's masquerade rules for one subnet: multicast and broadcast
/// left alone, TCP and UDP to the port range, everything else
/// masqueraded as is.
fn masquerade(
    out: &mut String,
    def: &NetworkDef,
    fam: &str,
    net: IpAddr,
    prefix: u8,
    out_match: &str,
) {
    let src = format!("{fam} saddr {net}/{prefix}");
    if fam == "ip" {
        let _ = writeln!(out, "   {out_match} {src} ip daddr 224.0.0.0/24 return");
        let _ = writeln!(out, "   {out_match} {src} ip daddr 255.255.255.255 return");
    }
    let (lo, hi) = def.forward.nat_ports.unwrap_or((1024, 65535));
    let ports = format!(":{lo}-{hi}");
    let target = |ports: &str| match def.forward.nat_addr.filter(|_| fam == "ip") {
        Some((start, end)) => {
            let end = end.unwrap_or(start);
            if start == end {
                format!("snat ip to {start}{ports}")
            } else {
                format!("snat ip to {start}-{end}{ports}")
            }
        }
        None => format!("masquerade to {ports}"),
    };
    let dst = format!("{fam} daddr != {net}/{prefix}");
    let _ = writeln!(
        out,
        "   {out_match} {src} {dst} meta l4proto tcp {}",
        target(&ports)
    );
    let _ = writeln!(
        out,
        "   {out_match} {src} {dst} meta l4proto udp {}",
        target(&ports)
    );
    let plain = match def.forward.nat_addr.filter(|_| fam == "ip") {
        Some(_) => target(""),
        None => "masquerade".to_string(),
    };
    let _ = writeln!(out, "   {out_match} {src} {dst} {plain}");
}

/// Runs an nftables script (one atomic transaction).
pub fn install(script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("Failed to run nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("Failed to run nft: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "Failed to apply firewall rules: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Installs (or replaces) the network's table.
pub fn apply(def: &NetworkDef, table: &str) -> Result<()> {
    match ruleset(def, table) {
        Some(script) => install(&script),
        None => Ok(()),
    }
}

/// Removes the table `name` if it exists.
pub fn remove(table: &str) {
    let _ = install(&format!("table inet {table}\ndelete table inet {table}\n"));
}

/// The tables of the daemon tagged `tag` present in the kernel.
pub fn owned_tables(tag: &str) -> Vec<String> {
    let prefix = format!("{TABLE_PREFIX}{tag}_");
    let Ok(out) = Command::new("nft").args(["list", "tables"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .filter(|t| t.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::network::parse_network;

    #[test]
    fn nat_rules_follow_libvirts() {
        let def = parse_network(
            "<network><name>default</name><uuid>81ff0d90-c91e-6742-64da-4a736edb9a9b</uuid>\
             <bridge name='virbr0'/><forward/>\
             <ip address='192.168.122.1' netmask='255.255.255.0'/></network>",
        )
        .unwrap();
        let t = table_name("0badcafe", &def.uuid);
        assert_eq!(t, "oxvirt_0badcafe_81ff0d90c91e674264da4a736edb9a9b");
        let s = ruleset(&def, &t).unwrap();
        assert!(s.starts_with(&format!("table inet {t}\n")));
        assert!(s.contains("iifname \"virbr0\" ip saddr 192.168.122.0/24 accept"));
        assert!(s.contains(
            "oifname \"virbr0\" ip daddr 192.168.122.0/24 ct state related,established accept"
        ));
        assert!(s.contains(
            "ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 meta l4proto tcp masquerade to :1024-65535"
        ));
        assert!(s.contains("ip saddr 192.168.122.0/24 ip daddr != 192.168.122.0/24 masquerade\n"));
        assert!(s.contains("type nat hook postrouting priority srcnat"));
    }
}
