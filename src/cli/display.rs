//! The graphical console: `screenshot`, `send-key`, `domdisplay` and
//! `vncdisplay`, with virsh's option checks, messages and URIs.

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use nix::sys::memfd::{MFdFlags, memfd_create};

use super::bus::{Bus, CONSOLE, DOMAIN};
use super::domain::lookup;
use super::error::{CliError, Result};
use super::options::exclusive;
use super::xpath::Doc;
use crate::keymap::{self, Codeset};

/// libvirt's `VIR_DOMAIN_SEND_KEY_MAX_KEYS`.
const SEND_KEY_MAX_KEYS: usize = 16;
/// `VIR_DOMAIN_XML_SECURE`.
const XML_SECURE: u32 = 1;

/// virsh's unsigned option (`vshCommandOptUInt`): base 10, no minus.
fn uint_option(value: &str, name: &str) -> Result<u32> {
    value.trim_start().parse::<u32>().map_err(|_| {
        CliError::ctx(format!(
            "Numeric value '{value}' for <{name}> option is malformed or out of range"
        ))
    })
}

/// A key code as a number, the way virsh reads one: decimal, `0x` hex or
/// `0` octal, up to 0xffff.
fn keycode_number(s: &str) -> Option<u32> {
    let t = s.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    if !digits.starts_with(|c: char| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .filter(|v| *v <= 0xffff)
}

/// The file name virsh makes up: `DOMAIN-YYYY-MM-DD-HH:MM:SS[.ext]`.
fn generated_name(domain: &str, mime: &str, now_secs: i64) -> String {
    let ext = match mime {
        "image/x-portable-pixmap" => ".ppm",
        "image/png" => ".png",
        _ => "",
    };
    let stamp = super::format::local_time(now_secs).replace(' ', "-");
    format!("{domain}-{stamp}{ext}")
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `screenshot DOMAIN [FILE] [--screen N]`. The daemon writes the image
/// into an anonymous memory file; it is copied to FILE once the MIME type
/// (which names a generated FILE) is known, as virsh does with its stream.
pub fn screenshot(
    bus: &Bus,
    name: &str,
    file: Option<&str>,
    screen: Option<&str>,
) -> Result<String> {
    let screen = screen
        .map(|s| uint_option(s, "screen"))
        .transpose()?
        .unwrap_or(0);
    let d = lookup(bus, name)?;
    let failed = |m: String| CliError {
        context: Some(format!("could not take a screenshot of {name}")),
        message: Some(m),
    };
    let image = memfd_create(c"oxvirsh-screenshot", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| failed(e.desc().to_string()))?;
    let passed = image.try_clone().map_err(|e| failed(e.to_string()))?;
    let mime: String = bus
        .call(
            &d.path,
            CONSOLE,
            "Screenshot",
            &(zbus::zvariant::Fd::from(&passed), screen, 0u32),
        )
        .map_err(|e: CliError| e.with_ctx(format!("could not take a screenshot of {name}")))?;
    drop(passed);
    let path = match file {
        Some(f) => f.to_string(),
        None => generated_name(&d.name, &mime, now_secs()),
    };
    let mut created = true;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .open(&path)
        .or_else(|e| {
            created = false;
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&path)
            } else {
                Err(e)
            }
        })
        .map_err(|_| CliError::ctx(format!("cannot create file {path}")))?;
    let mut image = std::fs::File::from(image);
    let copied = image
        .seek(SeekFrom::Start(0))
        .and_then(|_| std::io::copy(&mut image, &mut out))
        .and_then(|_| out.sync_all());
    if copied.is_err() {
        if created {
            let _ = std::fs::remove_file(&path);
        }
        return Err(CliError::ctx(format!(
            "could not receive data from domain '{name}'"
        )));
    }
    Ok(format!("Screenshot saved to {path}, with type of {mime}"))
}

/// `send-key DOMAIN [--codeset SET] [--holdtime MS] KEYCODE...`.
pub fn send_key(
    bus: &Bus,
    name: &str,
    codeset: Option<&str>,
    holdtime: Option<&str>,
    keys: &[String],
) -> Result<String> {
    let d = lookup(bus, name)?;
    let holdtime = holdtime
        .map(|h| uint_option(h, "holdtime"))
        .transpose()?
        .unwrap_or(0);
    let (set, codes) = parse_keys(codeset, keys)?;
    d.act(bus, "SendKey", &(set as u32, holdtime, codes, 0u32))?;
    Ok(String::new())
}

/// The code set and key codes of `send-key`, with virsh's errors.
fn parse_keys(codeset: Option<&str>, keys: &[String]) -> Result<(Codeset, Vec<u32>)> {
    let name = match codeset.filter(|c| !c.is_empty()).unwrap_or("linux") {
        // qnum's old name.
        "rfb" => "qnum",
        n => n,
    };
    let set: Codeset = name
        .parse()
        .map_err(|_| CliError::ctx(format!("unknown codeset: '{name}'")))?;
    let mut codes = Vec::with_capacity(keys.len().min(SEND_KEY_MAX_KEYS));
    for k in keys {
        if codes.len() == SEND_KEY_MAX_KEYS {
            return Err(CliError::ctx("too many keycodes"));
        }
        let code = keycode_number(k)
            .or_else(|| keymap::code_by_name(set, k))
            .ok_or_else(|| CliError::ctx(format!("invalid keycode: '{k}'")))?;
        codes.push(code);
    }
    Ok((set, codes))
}

/// The live XML of a running domain, as `domdisplay` and `vncdisplay`
/// read it.
fn running_xml(bus: &Bus, name: &str, flags: u32) -> Result<String> {
    let d = lookup(bus, name)?;
    let active: bool = bus.prop(&d.path, DOMAIN, "Active")?;
    if !active {
        return Err(CliError::ctx("Domain is not running"));
    }
    d.xml(bus, flags)
}

/// `domdisplay DOMAIN [--include-password] [--type T] [--all]`.
pub fn domdisplay(
    bus: &Bus,
    name: &str,
    include_password: bool,
    kind: Option<&str>,
    all: bool,
) -> Result<String> {
    exclusive(&[("all", "type", all && kind.is_some())])?;
    let flags = if include_password { XML_SECURE } else { 0 };
    let xml = running_xml(bus, name, flags)?;
    let doc = Doc::parse(&xml).map_err(CliError::msg)?;
    let server = uri_server(&bus.uri);
    let mut out = String::new();
    let mut notes = Vec::new();
    for scheme in ["vnc", "spice", "rdp", "dbus"] {
        if !all && kind.is_some_and(|k| k != scheme) {
            continue;
        }
        match display_uri(&doc, scheme, server.as_deref()) {
            Ok(Some(uri)) => {
                out.push_str(&uri);
                if !all {
                    break;
                }
                out.push('\n');
            }
            Ok(None) => {}
            Err(note) => notes.push(note),
        }
    }
    for n in &notes {
        esayln!("error: {n}");
    }
    if out.is_empty() {
        return Err(CliError::ctx(match kind {
            Some(k) => format!("No graphical display with type '{k}' found"),
            None => "No graphical display found".to_string(),
        }));
    }
    Ok(out)
}

/// `vncdisplay DOMAIN`.
pub fn vncdisplay(bus: &Bus, name: &str) -> Result<String> {
    let xml = running_xml(bus, name, 0)?;
    let doc = Doc::parse(&xml).map_err(CliError::msg)?;
    vnc_display(&doc)
}

/// The host part of a connection URI (`qemu+ssh://host/system` → host).
fn uri_server(uri: &str) -> Option<String> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// `string(/domain/devices/graphics[@type=scheme]/<child>/@attr)`: the
/// first such attribute in document order (`child` None: on graphics).
fn graphics_attr<'d>(
    doc: &'d Doc,
    scheme: &str,
    child: Option<&str>,
    attr: &str,
) -> Option<&'d str> {
    let domain = doc.child(0, "domain")?;
    let devices = doc.child(domain, "devices")?;
    doc.nodes[devices]
        .children
        .iter()
        .copied()
        .filter(|g| doc.nodes[*g].name == "graphics" && doc.attr(*g, "type") == Some(scheme))
        .flat_map(|g| match child {
            None => vec![g],
            Some(c) => doc.nodes[g]
                .children
                .iter()
                .copied()
                .filter(|n| doc.nodes[*n].name == c)
                .collect(),
        })
        .find_map(|n| doc.attr(n, attr))
}

/// libvirt's `virXPathInt` of such an attribute: None when missing or not
/// a number.
fn graphics_int(doc: &Doc, scheme: &str, attr: &str) -> Option<i32> {
    graphics_attr(doc, scheme, None, attr)?.parse().ok()
}

/// The URI `domdisplay` prints for `scheme` (None: no such display);
/// `server` is the connection URI's host, put for a wildcard listen
/// address. An error text for a display virsh cannot express as a URI.
fn display_uri(
    doc: &Doc,
    scheme: &str,
    server: Option<&str>,
) -> std::result::Result<Option<String>, String> {
    if scheme == "dbus" {
        let Some(addr) = graphics_attr(doc, "dbus", None, "address") else {
            return Ok(None);
        };
        return match addr.strip_prefix("unix:path=") {
            Some(p) => Ok(Some(format!("dbus+unix://{p}"))),
            None => Err(format!("'{addr}' D-Bus address is not handled")),
        };
    }
    let port = graphics_int(doc, scheme, "port").unwrap_or(0);
    let tls_port = graphics_int(doc, scheme, "tlsPort").unwrap_or(0);
    let mut listen = graphics_attr(doc, scheme, None, "listen").map(str::to_string);
    let sockpath = (graphics_attr(doc, scheme, Some("listen"), "type") == Some("socket"))
        .then(|| graphics_attr(doc, scheme, Some("listen"), "socket"))
        .flatten();
    if port == 0 && tls_port == 0 && sockpath.is_none() {
        return Ok(None);
    }
    match &listen {
        None => listen = graphics_attr(doc, scheme, Some("listen"), "address").map(str::to_string),
        Some(a) => {
            let wildcard = a
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_unspecified());
            if wildcard {
                listen = server.map(str::to_string);
            }
        }
    }
    let passwd = graphics_attr(doc, scheme, None, "passwd");
    let mut uri = match sockpath {
        Some(_) => format!("{scheme}+unix://"),
        None => format!("{scheme}://"),
    };
    if scheme == "vnc"
        && let Some(p) = passwd
    {
        uri.push_str(&format!(":{p}@"));
    }
    match (sockpath, listen.as_deref()) {
        (Some(s), _) => uri.push_str(s),
        (None, None) => uri.push_str("localhost"),
        (None, Some(l)) if l.contains(':') => uri.push_str(&format!("[{l}]")),
        (None, Some(l)) => uri.push_str(l),
    }
    if port != 0 {
        let shown = if scheme == "vnc" { port - 5900 } else { port };
        uri.push_str(&format!(":{shown}"));
    }
    let mut params = String::new();
    if tls_port != 0 {
        params.push_str(&format!("tls-port={tls_port}&"));
    }
    if scheme == "spice"
        && let Some(p) = passwd
    {
        params.push_str(&format!("password={p}&"));
    }
    if !params.is_empty() {
        params.pop();
        uri.push('?');
        uri.push_str(&params);
    }
    Ok(Some(uri))
}

/// What `vncdisplay` prints: `ADDRESS:DISPLAY`, or `:DISPLAY` when the
/// server listens everywhere (0.0.0.0) or nowhere in particular.
fn vnc_display(doc: &Doc) -> Result<String> {
    let port = graphics_int(doc, "vnc", "port")
        .ok_or_else(|| CliError::ctx("Failed to get VNC port. Is this domain using VNC?"))?;
    let listen = graphics_attr(doc, "vnc", None, "listen")
        .or_else(|| graphics_attr(doc, "vnc", Some("listen"), "address"));
    let display = port - 5900;
    Ok(match listen {
        None | Some("0.0.0.0") => format!(":{display}\n"),
        Some(l) => format!("{l}:{display}\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(graphics: &str) -> String {
        format!("<domain type='kvm'><name>a</name><devices><video/>{graphics}</devices></domain>")
    }

    fn uri(graphics: &str, server: Option<&str>) -> Option<String> {
        let x = doc(graphics);
        let d = Doc::parse(&x).unwrap();
        display_uri(&d, "vnc", server).unwrap()
    }

    #[test]
    fn vnc_uris_as_virsh_builds_them() {
        let tcp = "<graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>";
        assert_eq!(uri(tcp, None).as_deref(), Some("vnc://127.0.0.1:1"));
        // Everywhere: the connection's host, else localhost.
        let any = "<graphics type='vnc' port='5900' listen='0.0.0.0'/>";
        assert_eq!(uri(any, None).as_deref(), Some("vnc://localhost:0"));
        assert_eq!(uri(any, Some("h1")).as_deref(), Some("vnc://h1:0"));
        let v6 = "<graphics type='vnc' port='5902' listen='::1'/>";
        assert_eq!(uri(v6, None).as_deref(), Some("vnc://[::1]:2"));
        let v6any = "<graphics type='vnc' port='5902' listen='::'/>";
        assert_eq!(uri(v6any, None).as_deref(), Some("vnc://localhost:2"));
        // Only the <listen> element's address.
        let sub = "<graphics type='vnc' port='5903'><listen type='address' address='10.0.0.1'/></graphics>";
        assert_eq!(uri(sub, None).as_deref(), Some("vnc://10.0.0.1:3"));
        let sock =
            "<graphics type='vnc'><listen type='socket' socket='/run/x/vnc.sock'/></graphics>";
        assert_eq!(
            uri(sock, None).as_deref(),
            Some("vnc+unix:///run/x/vnc.sock")
        );
        let pw = "<graphics type='vnc' port='5900' listen='127.0.0.1' passwd='s3'/>";
        assert_eq!(uri(pw, None).as_deref(), Some("vnc://:s3@127.0.0.1:0"));
        let tls = "<graphics type='vnc' port='5900' tlsPort='5999' listen='127.0.0.1'/>";
        assert_eq!(
            uri(tls, None).as_deref(),
            Some("vnc://127.0.0.1:0?tls-port=5999")
        );
        // No port yet (autoport on an inactive definition), or none at all.
        assert_eq!(uri("<graphics type='vnc' autoport='yes'/>", None), None);
        assert_eq!(uri("<graphics type='spice' port='5900'/>", None), None);
    }

    #[test]
    fn other_schemes() {
        let x = doc(
            "<graphics type='spice' port='5930' listen='127.0.0.1' passwd='p'/><graphics type='dbus' address='unix:path=/tmp/d'/><graphics type='rdp' port='3389'/>",
        );
        let d = Doc::parse(&x).unwrap();
        assert_eq!(
            display_uri(&d, "spice", None).unwrap().as_deref(),
            Some("spice://127.0.0.1:5930?password=p")
        );
        assert_eq!(
            display_uri(&d, "dbus", None).unwrap().as_deref(),
            Some("dbus+unix:///tmp/d")
        );
        assert_eq!(
            display_uri(&d, "rdp", None).unwrap().as_deref(),
            Some("rdp://localhost:3389")
        );
        let x = doc("<graphics type='dbus' address='tcp:host=a'/>");
        let d = Doc::parse(&x).unwrap();
        assert_eq!(
            display_uri(&d, "dbus", None).unwrap_err(),
            "'tcp:host=a' D-Bus address is not handled"
        );
    }

    #[test]
    fn vncdisplay_lines() {
        let v = |g: &str| vnc_display(&Doc::parse(&doc(g)).unwrap()).map_err(|e| e.to_string());
        assert_eq!(
            v("<graphics type='vnc' port='5900' listen='127.0.0.1'/>").unwrap(),
            "127.0.0.1:0\n"
        );
        assert_eq!(
            v("<graphics type='vnc' port='5907' listen='0.0.0.0'/>").unwrap(),
            ":7\n"
        );
        assert_eq!(v("<graphics type='vnc' port='5901'/>").unwrap(), ":1\n");
        assert_eq!(
            v("<graphics type='spice' port='5901'/>").unwrap_err(),
            "error: Failed to get VNC port. Is this domain using VNC?\n"
        );
    }

    #[test]
    fn connection_hosts() {
        assert_eq!(uri_server("qemu:///system"), None);
        assert_eq!(
            uri_server("qemu+ssh://root@h2:22/system").as_deref(),
            Some("h2")
        );
        assert_eq!(
            uri_server("qemu+tcp://[fe80::1]/system").as_deref(),
            Some("fe80::1")
        );
    }

    #[test]
    fn key_arguments_as_virsh_reads_them() {
        assert_eq!(keycode_number("30"), Some(30));
        assert_eq!(keycode_number("0x1e"), Some(30));
        assert_eq!(keycode_number("036"), Some(30));
        assert_eq!(keycode_number("0"), Some(0));
        assert_eq!(keycode_number("65536"), None);
        assert_eq!(keycode_number("-1"), None);
        assert_eq!(keycode_number("KEY_A"), None);
        let keys = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (set, codes) = parse_keys(None, &keys(&["30", "0x30"])).unwrap();
        assert_eq!((set, codes), (Codeset::Linux, vec![30, 48]));
        let (set, _) = parse_keys(Some("rfb"), &keys(&["1"])).unwrap();
        assert_eq!(set, Codeset::Qnum);
        let err = |c: Option<&str>, v: &[&str]| parse_keys(c, &keys(v)).unwrap_err().to_string();
        assert_eq!(
            err(Some("ebcdic"), &["1"]),
            "error: unknown codeset: 'ebcdic'\n"
        );
        assert_eq!(err(None, &["1"; 17]), "error: too many keycodes\n");
        assert_eq!(
            err(None, &["no_such_key"]),
            "error: invalid keycode: 'no_such_key'\n"
        );
        assert!(parse_keys(None, &keys(&["1"; 16])).is_ok());
    }

    #[test]
    fn unsigned_options() {
        assert_eq!(uint_option("3", "screen").unwrap(), 3);
        assert_eq!(uint_option("+3", "screen").unwrap(), 3);
        assert_eq!(
            uint_option("-1", "screen").unwrap_err().to_string(),
            "error: Numeric value '-1' for <screen> option is malformed or out of range\n"
        );
        assert!(uint_option("x", "holdtime").is_err());
        assert!(uint_option("4294967296", "holdtime").is_err());
    }

    #[test]
    fn generated_file_names() {
        let n = generated_name("web", "image/x-portable-pixmap", 0);
        assert!(n.starts_with("web-19"), "{n}");
        assert!(n.ends_with(".ppm"));
        // web-YYYY-MM-DD-HH:MM:SS.ppm
        assert_eq!(n.len(), "web-".len() + 19 + 4);
        assert_eq!(&n[14..15], "-");
        assert!(generated_name("w", "image/png", 0).ends_with(".png"));
        assert!(!generated_name("w", "image/bmp", 0).contains('.'));
    }
}
