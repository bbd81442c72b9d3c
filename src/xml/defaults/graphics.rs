//! VNC graphics as libvirt's parser normalises them: the port and
//! autoport pair, a listen element for every output, and the legacy
//! `listen`/`socket` attributes mirroring the first listen element.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::display::{Graphics, GraphicsType, Listen};
use crate::xml::tree::Element;

pub fn fill(dom: &mut Domain) -> Result<()> {
    for g in &mut dom.devices.graphics {
        if g.graphics_type == GraphicsType::Vnc {
            fill_vnc(g)?;
        }
    }
    Ok(())
}

fn fill_vnc(g: &mut Graphics) -> Result<()> {
    // `socket='path'` is the legacy spelling of a socket listener.
    if let Some(path) = g.attr("socket").map(str::to_string)
        && !g.children.iter().any(|c| c.name == "listen")
    {
        g.children.insert(
            0,
            Element::new("listen")
                .with_attr("type", "socket")
                .with_attr("socket", path),
        );
    }
    if !g.children.iter().any(|c| c.name == "listen") {
        g.children
            .insert(0, Element::new("listen").with_attr("type", "address"));
    }
    let first = g.listens()?.into_iter().next();
    let (port, autoport) = port_and_autoport(g)?;
    for name in ["port", "autoport", "listen", "socket"] {
        g.remove_attr(name);
    }
    match first {
        Some(Listen::Address(addr)) => {
            set_port(g, port, autoport);
            if let Some(a) = addr {
                g.set_attr("listen", a);
            }
        }
        Some(Listen::Network(_)) => set_port(g, port, autoport),
        Some(Listen::Socket(Some(path))) => g.set_attr("socket", path),
        Some(Listen::Socket(None)) | Some(Listen::None) | None => {}
    }
    if let Some(w) = g.attr("websocket") {
        w.parse::<i32>()
            .map_err(|_| Error::xml(format!("invalid value for attribute 'websocket': '{w}'")))?;
    }
    Ok(())
}

fn set_port(g: &mut Graphics, port: Option<i32>, autoport: bool) {
    if let Some(p) = port {
        g.set_attr("port", p);
    }
    g.set_attr("autoport", if autoport { "yes" } else { "no" });
}

/// libvirt's reading of `port` and `autoport`: no port, or `-1`, means
/// an automatic one; an explicit `autoport` overrides that. Returns the
/// port to write (`-1` for one still to be chosen, none when unset) and
/// autoport.
fn port_and_autoport(g: &Graphics) -> Result<(Option<i32>, bool)> {
    let port = match g.attr("port") {
        Some(p) => p
            .parse::<i32>()
            .map_err(|_| Error::internal(format!("cannot parse vnc port {p}")))?,
        None => -1,
    };
    let autoport = match g.attr("autoport") {
        Some("yes") => true,
        Some("no") => false,
        _ => port == -1,
    };
    // A running guest's port is kept with autoport (the live definition
    // is read back after a daemon restart); a definition has none.
    let shown = if port > 0 {
        Some(port)
    } else {
        autoport.then_some(-1)
    };
    Ok((shown, autoport))
}

#[cfg(test)]
mod tests {
    use crate::xml::{FormatFlags, parse_domain};

    fn graphics(g: &str) -> String {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>g</name><memory>65536</memory><os><type>hvm</type></os><devices>{g}</devices></domain>"
        ))
        .unwrap();
        let xml = d.to_xml(FormatFlags::default());
        let start = xml.find("<graphics").unwrap();
        let end = xml[start..]
            .find("</graphics>")
            .map(|e| start + e + "</graphics>".len())
            .unwrap();
        xml[start..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("")
    }

    #[test]
    fn bare_vnc_gets_an_automatic_port_and_an_address_listener() {
        assert_eq!(
            graphics("<graphics type='vnc'/>"),
            "<graphics type='vnc' port='-1' autoport='yes'><listen type='address'/></graphics>"
        );
    }

    #[test]
    fn fixed_ports_listen_addresses_and_sockets_as_libvirt_writes_them() {
        assert_eq!(
            graphics(
                "<graphics type='vnc' port='5903' autoport='no'><listen type='address' address='::1'/></graphics>"
            ),
            "<graphics type='vnc' port='5903' autoport='no' listen='::1'><listen type='address' address='::1'/></graphics>"
        );
        assert_eq!(
            graphics("<graphics type='vnc' port='5900' websocket='5700' listen='127.0.0.1'/>"),
            "<graphics type='vnc' port='5900' autoport='no' websocket='5700' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>"
        );
        assert_eq!(
            graphics(
                "<graphics type='vnc'><listen type='socket' socket='/tmp/vnc.sock'/></graphics>"
            ),
            "<graphics type='vnc' socket='/tmp/vnc.sock'><listen type='socket' socket='/tmp/vnc.sock'/></graphics>"
        );
    }
}
