//! Character devices: `<serial>`, `<parallel>`, `<console>`, `<channel>`.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, on_off, on_off_attr, opt_string, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    /// How the host side of a character device is provided.
    CharSourceType {
        Null = "null", Vc = "vc", Pty = "pty", Dev = "dev", File = "file", Pipe = "pipe",
        Stdio = "stdio", Udp = "udp", Tcp = "tcp", Unix = "unix", Spicevmc = "spicevmc",
        Spiceport = "spiceport", Nmdm = "nmdm", QemuVdagent = "qemu-vdagent", Dbus = "dbus",
    }
}

xml_enum! {
    /// Which element a character device is.
    ChardevKind { Serial = "serial", Parallel = "parallel", Console = "console", Channel = "channel" }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CharSource {
    pub mode: Option<String>,
    pub host: Option<String>,
    pub service: Option<String>,
    pub path: Option<String>,
    pub append: Option<bool>,
    /// Other attributes kept as written.
    pub other: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CharTarget {
    pub target_type: Option<String>,
    pub port: Option<u32>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub model: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chardev {
    pub kind: ChardevKind,
    pub source_type: CharSourceType,
    pub sources: Vec<CharSource>,
    /// `<protocol type=...>` of TCP devices.
    pub protocol: Option<String>,
    pub log: Option<Element>,
    pub target: CharTarget,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl CharSource {
    fn parse(s: &Element) -> Result<CharSource> {
        let mut src = CharSource {
            append: on_off_attr(s, "append")?,
            ..Default::default()
        };
        for (k, v) in &s.attrs {
            let slot = match k.as_str() {
                "mode" => &mut src.mode,
                "host" => &mut src.host,
                "service" => &mut src.service,
                "path" => &mut src.path,
                "append" => continue,
                _ => {
                    src.other.push((k.clone(), v.clone()));
                    continue;
                }
            };
            *slot = Some(v.clone());
        }
        Ok(src)
    }

    fn to_element(&self) -> Element {
        let mut e = Element::new("source")
            .with_opt_attr("mode", self.mode.as_ref())
            .with_opt_attr("host", self.host.as_ref())
            .with_opt_attr("service", self.service.as_ref())
            .with_opt_attr("path", self.path.as_ref());
        e.attrs.extend(self.other.iter().cloned());
        e.with_opt_attr("append", self.append.map(on_off))
    }
}

/// A target port: a decimal number; negative means "pick one".
fn parse_port(target: &Element) -> Result<Option<u32>> {
    let Some(v) = target.attr("port") else {
        return Ok(None);
    };
    if v.is_empty() {
        return Err(Error::xml(
            "Invalid value for attribute 'port' in element 'target': ''. Expected integer value",
        ));
    }
    let n: i64 = v
        .parse()
        .map_err(|_| Error::xml(format!("Invalid port number: {v}")))?;
    Ok(u32::try_from(n).ok())
}

/// Models of the emulated port behind a serial target.
const TARGET_MODELS: &[&str] = &[
    "isa-serial",
    "usb-serial",
    "pci-serial",
    "spapr-vty",
    "pl011",
    "sclpconsole",
    "sclplmconsole",
    "16550a",
    "isa-debugcon",
];

fn parse_target_model(m: &Element) -> Result<Option<String>> {
    match m.attr("name") {
        None => Ok(None),
        Some(n) if TARGET_MODELS.contains(&n) => Ok(Some(n.to_string())),
        Some(n) => Err(Error::unsupported(format!(
            "unknown target model '{n}' specified for character device"
        ))),
    }
}

/// `<protocol type=...>` of a TCP device.
fn parse_protocol(p: &Element) -> Result<Option<String>> {
    match p.attr("type") {
        None => Ok(None),
        Some(t) if ["raw", "telnet", "telnets", "tls"].contains(&t) => Ok(Some(t.to_string())),
        Some(t) => Err(Error::unsupported(format!("Unknown protocol '{t}'"))),
    }
}

/// Target types each kind of character device may have.
fn check_target_type(kind: ChardevKind, target_type: Option<&str>) -> Result<()> {
    let allowed: &[&str] = match kind {
        ChardevKind::Serial => &[
            "isa-serial",
            "usb-serial",
            "pci-serial",
            "spapr-vio-serial",
            "system-serial",
            "sclp-serial",
            "isa-debug",
        ],
        ChardevKind::Console => &[
            "serial", "xen", "uml", "virtio", "lxc", "openvz", "sclp", "sclplm",
        ],
        ChardevKind::Channel => &["guestfwd", "virtio", "xen"],
        ChardevKind::Parallel => return Ok(()),
    };
    match target_type {
        None if kind != ChardevKind::Channel => Ok(()),
        Some(t) if allowed.contains(&t) => Ok(()),
        other => Err(Error::unsupported(format!(
            "unknown target type '{}' specified for character device",
            other.unwrap_or("(null)")
        ))),
    }
}

/// The host-side attributes each back end cannot do without.
/// `generated_path`: the device is a virtio/xen channel, whose UNIX
/// socket path the driver makes up when none is given.
fn check_source(t: CharSourceType, src: Option<&CharSource>, generated_path: bool) -> Result<()> {
    let missing =
        |what: &str| Error::internal(format!("Missing source {what} attribute for char device"));
    match t {
        CharSourceType::File | CharSourceType::Pipe | CharSourceType::Dev
            if src.and_then(|s| s.path.as_ref()).is_none() =>
        {
            return Err(missing("path"));
        }
        CharSourceType::Tcp => {
            if src.and_then(|s| s.host.as_ref()).is_none() {
                return Err(missing("host"));
            }
            if src.and_then(|s| s.service.as_ref()).is_none() {
                return Err(missing("service"));
            }
        }
        CharSourceType::Unix if !generated_path && src.and_then(|s| s.path.as_ref()).is_none() => {
            return Err(missing("path"));
        }
        CharSourceType::Udp if src.and_then(|s| s.service.as_ref()).is_none() => {
            return Err(missing("service"));
        }
        _ => {}
    }
    Ok(())
}

impl Chardev {
    pub fn new(kind: ChardevKind, source_type: CharSourceType) -> Chardev {
        Chardev {
            kind,
            source_type,
            sources: Vec::new(),
            protocol: None,
            log: None,
            target: CharTarget::default(),
            alias: None,
            address: None,
        }
    }

    pub fn parse(e: &Element, kind: ChardevKind) -> Result<Chardev> {
        let source_type = match e.attr("type") {
            None => CharSourceType::Null,
            Some(t) => CharSourceType::from_xml(t).ok_or_else(|| {
                Error::unsupported(format!(
                    "unknown type presented to host for character device: {t}"
                ))
            })?,
        };
        let mut sources = Vec::new();
        // Only UDP has two ends to describe.
        if source_type != CharSourceType::Udp && e.children_named("source").count() > 1 {
            return Err(Error::xml(
                "only one source element is allowed for character device",
            ));
        }
        if e.children_named("protocol").count() > 1 {
            return Err(Error::xml(
                "only one protocol element is allowed for character device",
            ));
        }
        let raw: Vec<CharSource> = e
            .children_named("source")
            .map(CharSource::parse)
            .collect::<Result<_>>()?;
        for src in &raw {
            if let Some(mode) = src.mode.as_deref()
                && mode != "bind"
                && mode != "connect"
            {
                return Err(Error::xml(format!(
                    "Invalid value for attribute 'mode' in element 'source': '{mode}'."
                )));
            }
            // A UNIX socket without a path gets one generated at start;
            // such a source is not part of the persistent definition.
            // Likewise a pty's path is only known while the guest runs.
            let generated = source_type == CharSourceType::Pty
                || (source_type == CharSourceType::Unix
                    && src.path.is_none()
                    && src.host.is_none()
                    && src.service.is_none()
                    && src.other.is_empty());
            if !generated {
                sources.push(src.clone());
            }
        }
        if kind == ChardevKind::Channel && e.child("target").is_none() {
            return Err(Error::xml(
                "target type must be specified for channel device",
            ));
        }
        let target = match e.child("target") {
            None => CharTarget::default(),
            Some(t) => CharTarget {
                // `none` is libvirt's spelling of "the default".
                target_type: opt_string(t, "type").filter(|t| t != "none"),
                port: parse_port(t)?,
                name: opt_string(t, "name"),
                address: opt_string(t, "address"),
                model: t
                    .child("model")
                    .map(parse_target_model)
                    .transpose()?
                    .flatten(),
            },
        };
        check_target_type(kind, target.target_type.as_deref())?;
        let generated_path = kind == ChardevKind::Channel
            && matches!(target.target_type.as_deref(), Some("virtio") | Some("xen"));
        check_source(source_type, raw.first(), generated_path)?;
        Ok(Chardev {
            kind,
            source_type,
            sources,
            protocol: e
                .child("protocol")
                .map(parse_protocol)
                .transpose()?
                .flatten(),
            log: e.child("log").cloned(),
            target,
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    /// Whether the host sides of two devices are the same.
    pub fn same_source(&self, other: &Chardev) -> bool {
        self.source_type == other.source_type
            && self.sources == other.sources
            && self.protocol == other.protocol
    }

    /// Copy the host side of `other` onto this device.
    pub fn copy_source_from(&mut self, other: &Chardev) {
        self.source_type = other.source_type;
        self.sources = other.sources.clone();
        self.protocol = other.protocol.clone();
        self.log = other.log.clone();
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let mut e = Element::new(self.kind.as_str()).with_attr("type", self.source_type.as_str());
        // Live consoles on a pty name it in `tty` too, as libvirt does.
        if !inactive && self.kind == ChardevKind::Console && self.source_type == CharSourceType::Pty
        {
            e = e.with_opt_attr("tty", self.sources.first().and_then(|s| s.path.as_ref()));
        }
        for s in &self.sources {
            // A pty's path is only known while the guest runs.
            if inactive && self.source_type == CharSourceType::Pty {
                continue;
            }
            e.children.push(s.to_element());
        }
        if let Some(p) = &self.protocol {
            e.children
                .push(Element::new("protocol").with_attr("type", p.clone()));
        }
        e = e.with_opt_child(self.log.clone());
        let t = &self.target;
        let mut target = Element::new("target")
            .with_opt_attr("type", t.target_type.as_ref())
            .with_opt_attr("name", t.name.as_ref())
            .with_opt_attr("address", t.address.as_ref())
            .with_opt_attr("port", t.port);
        if let Some(m) = &t.model {
            target
                .children
                .push(Element::new("model").with_attr("name", m.clone()));
        }
        if !target.attrs.is_empty() || !target.children.is_empty() {
            e.children.push(target);
        }
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_tcp_serial() {
        let e = parse_document(
            "<serial type='tcp'><source mode='bind' host='127.0.0.1' service='4555'/><protocol type='telnet'/><target port='1'/></serial>",
        )
        .unwrap();
        let c = Chardev::parse(&e, ChardevKind::Serial).unwrap();
        assert_eq!(c.target.port, Some(1));
        assert_eq!(
            Chardev::parse(&c.to_element(true), ChardevKind::Serial).unwrap(),
            c
        );
    }

    #[test]
    fn rejects_unknown_type() {
        let e = parse_document("<serial type='foo'/>").unwrap();
        assert_eq!(
            Chardev::parse(&e, ChardevKind::Serial).unwrap_err().message,
            "unsupported configuration: unknown type presented to host for character device: foo"
        );
    }
}
