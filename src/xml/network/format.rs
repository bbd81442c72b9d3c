//! Writing `<network>` as `virNetworkDefFormat` does.

use super::{DNSMASQ_NS, DhcpHost, Dns, IpDef, LeaseTime, NetworkDef};
use crate::xml::props::{on_off, yes_no};
use crate::xml::storage::out::{Out, esc};
use crate::xml::tree::Element;
use crate::xml::writer::{Style, write_element};

/// An element kept as given, at the writer's indentation.
fn kept(out: &mut Out, e: &Element, level: usize) {
    let mut s = String::new();
    write_element(&mut s, e, level, Style::Libvirt);
    out.raw(&s);
}

fn lease(out: &mut Out, l: &LeaseTime) {
    if l.expiry == 0 {
        out.line("<lease expiry='0'/>");
    } else {
        out.line(&format!("<lease expiry='{}' unit='{}'/>", l.expiry, l.unit));
    }
}

fn host_line(h: &DhcpHost) -> String {
    let mut s = String::from("<host");
    if let Some(m) = &h.mac {
        s += &format!(" mac='{m}'");
    }
    if let Some(i) = &h.id {
        s += &format!(" id='{i}'");
    }
    if let Some(n) = &h.name {
        s += &format!(" name='{n}'");
    }
    if let Some(ip) = &h.ip {
        s += &format!(" ip='{ip}'");
    }
    s
}

fn ip(out: &mut Out, ip: &IpDef) {
    let mut s = String::from("<ip");
    if let Some(f) = &ip.family {
        s += &format!(" family='{f}'");
    }
    s += &format!(" address='{}'", ip.address);
    if let Some(m) = ip.netmask {
        s += &format!(" netmask='{m}'");
    }
    if let Some(p) = ip.prefix.filter(|p| *p > 0) {
        s += &format!(" prefix='{p}'");
    }
    if let Some(l) = ip.local_ptr {
        s += &format!(" localPtr='{}'", yes_no(l));
    }
    s.push('>');
    out.open(&s);
    if let Some(root) = &ip.tftp_root {
        out.line(&format!("<tftp root='{}'/>", esc(root)));
    }
    if ip.has_dhcp() {
        out.open("<dhcp>");
        for r in &ip.ranges {
            let head = format!("<range start='{}' end='{}'", r.start, r.end);
            match &r.lease {
                Some(l) => {
                    out.open(&format!("{head}>"));
                    lease(out, l);
                    out.close("</range>");
                }
                None => out.line(&format!("{head}/>")),
            }
        }
        for h in &ip.hosts {
            match &h.lease {
                Some(l) => {
                    out.open(&format!("{}>", host_line(h)));
                    lease(out, l);
                    out.close("</host>");
                }
                None => out.line(&format!("{}/>", host_line(h))),
            }
        }
        if let Some((file, server)) = &ip.bootp {
            let mut b = format!("<bootp file='{}'", esc(file));
            if let Some(s) = server {
                b += &format!(" server='{s}'");
            }
            out.line(&format!("{b}/>"));
        }
        out.close("</dhcp>");
    }
    out.close("</ip>");
}

fn dns(out: &mut Out, d: &Dns) {
    let has_children =
        !(d.forwarders.is_empty() && d.hosts.is_empty() && d.srvs.is_empty() && d.txts.is_empty());
    if d.enable.is_none() && d.forward_plain_names.is_none() && !has_children {
        return;
    }
    let mut s = String::from("<dns");
    if let Some(e) = d.enable {
        s += &format!(" enable='{}'", yes_no(e));
    }
    if let Some(f) = d.forward_plain_names {
        s += &format!(" forwardPlainNames='{}'", yes_no(f));
    }
    if !has_children {
        out.line(&format!("{s}/>"));
        return;
    }
    out.open(&format!("{s}>"));
    for f in &d.forwarders {
        let mut l = String::from("<forwarder");
        if let Some(dom) = &f.domain {
            l += &format!(" domain='{}'", esc(dom));
        }
        if let Some(a) = &f.addr {
            l += &format!(" addr='{a}'");
        }
        out.line(&format!("{l}/>"));
    }
    for (n, v) in &d.txts {
        out.line(&format!("<txt name='{}' value='{}'/>", esc(n), esc(v)));
    }
    for srv in &d.srvs {
        let mut l = format!(
            "<srv service='{}' protocol='{}'",
            esc(&srv.service),
            esc(&srv.protocol)
        );
        if let Some(dom) = &srv.domain {
            l += &format!(" domain='{}'", esc(dom));
        }
        if let Some(t) = &srv.target {
            l += &format!(" target='{}'", esc(t));
        }
        for (k, v) in [
            ("port", srv.port),
            ("priority", srv.priority),
            ("weight", srv.weight),
        ] {
            if v != 0 {
                l += &format!(" {k}='{v}'");
            }
        }
        out.line(&format!("{l}/>"));
    }
    for h in &d.hosts {
        out.open(&format!("<host ip='{}'>", h.ip));
        for n in &h.hostnames {
            out.text_elem("hostname", n);
        }
        out.close("</host>");
    }
    out.close("</dns>");
}

impl NetworkDef {
    /// The XML `virNetworkGetXMLDesc` returns; `connections` is the number
    /// of guest interfaces attached (printed for an active network only).
    pub fn to_xml(&self, inactive: bool, connections: u32) -> String {
        let mut out = Out::default();
        let mut head = String::from("<network");
        if !inactive && connections > 0 {
            head += &format!(" connections='{connections}'");
        }
        if let Some(v) = self.ipv6_nogw.filter(|v| *v) {
            head += &format!(" ipv6='{}'", yes_no(v));
        }
        if !self.dnsmasq_options.is_empty() {
            head += &format!(" xmlns:dnsmasq='{DNSMASQ_NS}'");
        }
        if let Some(t) = self.trust_guest_rx_filters {
            head += &format!(" trustGuestRxFilters='{}'", yes_no(t));
        }
        head.push('>');
        out.open(&head);
        out.text_elem("name", &self.name);
        out.text_elem("uuid", &self.uuid.to_string());
        if let Some(m) = &self.metadata {
            // Foreign subtrees are printed by libxml2's dumper.
            out.open("<metadata>");
            for c in &m.children {
                let mut s = String::new();
                write_element(&mut s, c, 2, Style::Libxml);
                out.raw(&s);
            }
            out.close("</metadata>");
        }
        self.forward_xml(&mut out, inactive);
        let makes = self.makes_bridge();
        if makes || self.bridge.name.is_some() || self.bridge.mac_table_manager.is_some() {
            let mut b = String::from("<bridge");
            if let Some(n) = &self.bridge.name {
                b += &format!(" name='{}'", esc(n));
            }
            if let Some(z) = &self.bridge.zone {
                b += &format!(" zone='{}'", esc(z));
            }
            if makes {
                b += &format!(
                    " stp='{}' delay='{}'",
                    on_off(self.bridge.stp),
                    self.bridge.delay
                );
            }
            if let Some(m) = &self.bridge.mac_table_manager {
                b += &format!(" macTableManager='{m}'");
            }
            out.line(&format!("{b}/>"));
        }
        if self.mtu != 0 {
            out.line(&format!("<mtu size='{}'/>", self.mtu));
        }
        if let Some(mac) = &self.mac {
            out.line(&format!("<mac address='{mac}'/>"));
        }
        if let Some((name, local)) = &self.domain {
            let mut d = format!("<domain name='{name}'");
            if let Some(l) = local {
                d += &format!(" localOnly='{}'", yes_no(*l));
            }
            out.line(&format!("{d}/>"));
        }
        dns(&mut out, &self.dns);
        for e in [&self.vlan, &self.bandwidth, &self.port]
            .into_iter()
            .flatten()
        {
            kept(&mut out, e, 1);
        }
        for i in &self.ips {
            ip(&mut out, i);
        }
        for r in &self.routes {
            kept(&mut out, r, 1);
        }
        if let Some(v) = &self.virtualport {
            kept(&mut out, v, 1);
        }
        for p in &self.portgroups {
            kept(&mut out, p, 1);
        }
        if !self.dnsmasq_options.is_empty() {
            out.open("<dnsmasq:options>");
            for o in &self.dnsmasq_options {
                out.line(&format!("<dnsmasq:option value='{}'/>", esc(o)));
            }
            out.close("</dnsmasq:options>");
        }
        out.close("</network>");
        out.finish()
    }

    fn forward_xml(&self, out: &mut Out, _inactive: bool) {
        let f = &self.forward;
        if f.mode == super::ForwardMode::None {
            return;
        }
        let has_pf = f.other.iter().any(|e| e.name == "pf");
        let mut head = String::from("<forward");
        if !has_pf && let Some(dev) = f.devs.first() {
            head += &format!(" dev='{}'", esc(dev));
        }
        head += &format!(" mode='{}'", f.mode.as_str());
        if f.mode == super::ForwardMode::Hostdev {
            head += if f.managed {
                " managed='yes'"
            } else {
                " managed='no'"
            };
        }
        let short = f.devs.is_empty()
            && f.other.is_empty()
            && f.nat_addr.is_none()
            && f.nat_ports.is_none()
            && f.nat_ipv6.is_none();
        if short {
            out.line(&format!("{head}/>"));
            return;
        }
        out.open(&format!("{head}>"));
        for e in f.other.iter().filter(|e| e.name == "driver") {
            kept(out, e, out.level());
        }
        if f.mode == super::ForwardMode::Nat
            && (f.nat_addr.is_some() || f.nat_ports.is_some() || f.nat_ipv6.is_some())
        {
            let mut n = String::from("<nat");
            if let Some(v) = f.nat_ipv6 {
                n += &format!(" ipv6='{}'", yes_no(v));
            }
            if f.nat_addr.is_none() && f.nat_ports.is_none() {
                out.line(&format!("{n}/>"));
            } else {
                out.open(&format!("{n}>"));
                if let Some((s, e)) = f.nat_addr {
                    let mut a = format!("<address start='{s}'");
                    if let Some(e) = e {
                        a += &format!(" end='{e}'");
                    }
                    out.line(&format!("{a}/>"));
                }
                if let Some((s, e)) = f.nat_ports {
                    let mut p = format!("<port start='{s}'");
                    if e != 0 {
                        p += &format!(" end='{e}'");
                    }
                    out.line(&format!("{p}/>"));
                }
                out.close("</nat>");
            }
        }
        for e in f.other.iter().filter(|e| e.name == "pf") {
            kept(out, e, out.level());
        }
        for d in &f.devs {
            out.line(&format!("<interface dev='{}'/>", esc(d)));
        }
        for e in f.other.iter().filter(|e| e.name == "address") {
            kept(out, e, out.level());
        }
        out.close("</forward>");
    }
}
