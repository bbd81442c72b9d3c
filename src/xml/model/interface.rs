//! `<interface>`: network interfaces.

use crate::error::{Error, Result};
use crate::xml::mac::MacAddr;
use crate::xml::props::{XmlEnum, enum_attr, on_off_attr, opt_string, uint_attr, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};
use super::disk::parse_boot_order;

xml_enum! {
    InterfaceType {
        User = "user", Ethernet = "ethernet", VhostUser = "vhostuser", Server = "server",
        Client = "client", Mcast = "mcast", Network = "network", Bridge = "bridge",
        Internal = "internal", Direct = "direct", Hostdev = "hostdev", Udp = "udp",
        Vdpa = "vdpa", Null = "null", Vds = "vds",
    }
}

/// Target device names libvirt reserves for ones it generates; they are
/// dropped from persistent definitions.
const GENERATED_TAP_PREFIXES: &[&str] = &["vnet", "vif", "macvtap", "macvlan"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceSource {
    pub network: Option<String>,
    pub portgroup: Option<String>,
    pub bridge: Option<String>,
    pub dev: Option<String>,
    pub mode: Option<String>,
    /// Other attributes (address, port, path, ...) kept as written.
    pub other: Vec<(String, String)>,
    /// Child elements (`<local>` of a udp source, `<reconnect>`, ...)
    /// kept as written.
    pub children: Vec<Element>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub iface_type: InterfaceType,
    /// Filled by post-parse with a random 52:54:00 address.
    pub mac: Option<MacAddr>,
    pub source: Option<InterfaceSource>,
    pub target_dev: Option<String>,
    pub target_managed: Option<String>,
    pub model: Option<String>,
    pub driver_name: Option<String>,
    pub driver_queues: Option<u32>,
    pub link_state: Option<String>,
    pub mtu: Option<u32>,
    pub boot_order: Option<u32>,
    /// Children not modelled (virtualport, bandwidth, filterref, ...).
    pub extra: Vec<Element>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

const MODELLED: &[&str] = &[
    "mac", "source", "target", "model", "driver", "link", "mtu", "boot", "alias", "address",
];

impl InterfaceSource {
    fn parse(s: &Element) -> InterfaceSource {
        let mut src = InterfaceSource::default();
        for (k, v) in &s.attrs {
            let slot = match k.as_str() {
                "network" => &mut src.network,
                "portgroup" => &mut src.portgroup,
                "bridge" => &mut src.bridge,
                "dev" => &mut src.dev,
                "mode" => &mut src.mode,
                _ => {
                    src.other.push((k.clone(), v.clone()));
                    continue;
                }
            };
            *slot = Some(v.clone());
        }
        src.children = s.children.clone();
        src
    }

    fn to_element(&self) -> Element {
        let mut e = Element::new("source")
            .with_opt_attr("network", self.network.as_ref())
            .with_opt_attr("portgroup", self.portgroup.as_ref())
            .with_opt_attr("bridge", self.bridge.as_ref())
            .with_opt_attr("dev", self.dev.as_ref())
            .with_opt_attr("mode", self.mode.as_ref());
        e.attrs.extend(self.other.iter().cloned());
        e.children = self.children.clone();
        e
    }
}

/// Whether `model` is one of virtio-net's names.
pub fn is_virtio_model(model: &str) -> bool {
    matches!(
        model,
        "virtio" | "virtio-transitional" | "virtio-non-transitional"
    )
}

/// The `<driver>` options every virtio device has, which libvirt refuses
/// on any other NIC model, with its messages.
fn refuse_virtio_options(driver: &Element) -> Result<()> {
    for (attr, what) in [
        ("iommu", "iommu driver option is"),
        ("ats", "ats driver option is"),
        ("packed", "packed driver option is"),
        ("page_per_vq", "page_per_vq option is"),
    ] {
        if on_off_attr(driver, attr)?.is_some() {
            return Err(Error::unsupported(format!(
                "{what} only supported for virtio devices"
            )));
        }
    }
    Ok(())
}

fn parse_link_state(link: &Element) -> Result<Option<String>> {
    match link.attr("state") {
        None => Ok(None),
        Some(s @ ("up" | "down")) => Ok(Some(s.to_string())),
        Some(s) => Err(Error::unsupported(format!(
            "unknown interface link state '{s}'"
        ))),
    }
}

/// Interface types that cannot work without naming their host side.
fn check_source(t: InterfaceType, source: Option<&Element>) -> Result<()> {
    let attr = match t {
        InterfaceType::Network => "network",
        InterfaceType::Bridge => "bridge",
        InterfaceType::Direct => "dev",
        _ => return Ok(()),
    };
    let Some(source) = source else {
        return Err(Error::xml(format!(
            "interface type='{t}' requires a 'source' element"
        )));
    };
    if source.attr(attr).is_none() {
        return Err(crate::xml::props::missing_attr(source, attr));
    }
    Ok(())
}

impl Interface {
    pub fn parse(e: &Element) -> Result<Interface> {
        let iface_type: InterfaceType = enum_attr(e, "type")?.unwrap_or(InterfaceType::User);
        if let Some(model) = e.child("model").and_then(|m| m.attr("type")) {
            let ok = model
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(Error::invalid_arg("Model name contains invalid characters"));
            }
        }
        let mac = match e.child("mac").and_then(|m| m.attr("address")) {
            None => None,
            Some(a) => Some(MacAddr::parse(a)?),
        };
        check_source(iface_type, e.child("source"))?;
        let target = e.child("target");
        let target_dev = target
            .and_then(|t| opt_string(t, "dev"))
            .filter(|d| !GENERATED_TAP_PREFIXES.iter().any(|p| d.starts_with(p)));
        let mtu = match e.child("mtu") {
            None => None,
            Some(m) => Some(
                uint_attr::<u32>(m, "size")
                    .ok()
                    .flatten()
                    .ok_or_else(|| Error::xml("malformed mtu size"))?,
            ),
        };
        let model = e.child("model").and_then(|m| opt_string(m, "type"));
        // As libvirt's parser: `<driver>`'s virtio-net settings (name,
        // queues, ...) are read for virtio models only and dropped for
        // others (an e1000); the virtio device options are refused there.
        // Without a model the NIC is virtio-net here.
        let driver = match (e.child("driver"), model.as_deref()) {
            (Some(d), Some(m)) if !is_virtio_model(m) => {
                refuse_virtio_options(d)?;
                None
            }
            (d, _) => d,
        };
        Ok(Interface {
            iface_type,
            mac,
            source: e.child("source").map(InterfaceSource::parse),
            target_managed: target_dev
                .as_ref()
                .and(target)
                .and_then(|t| opt_string(t, "managed")),
            target_dev,
            model,
            driver_name: driver.and_then(|d| opt_string(d, "name")),
            // There is always one queue pair: 0 and 1 are dropped, as
            // libvirt's parser does.
            driver_queues: driver
                .map(|d| uint_attr::<u32>(d, "queues"))
                .transpose()?
                .flatten()
                .filter(|q| *q > 1),
            link_state: e.child("link").map(parse_link_state).transpose()?.flatten(),
            mtu,
            boot_order: parse_boot_order(e)?,
            extra: e
                .children
                .iter()
                .filter(|c| !MODELLED.contains(&c.name.as_str()))
                .cloned()
                .collect(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn is_virtio(&self) -> bool {
        self.model.as_deref() == Some("virtio")
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let mut e = Element::new("interface").with_attr("type", self.iface_type.as_str());
        if let Some(m) = &self.mac {
            e.children
                .push(Element::new("mac").with_attr("address", m.to_string()));
        }
        if let Some(s) = &self.source {
            e.children.push(s.to_element());
        }
        e.children.extend(self.extra.iter().cloned());
        if let Some(d) = &self.target_dev {
            e.children.push(
                Element::new("target")
                    .with_attr("dev", d.clone())
                    .with_opt_attr("managed", self.target_managed.as_ref()),
            );
        }
        if let Some(m) = &self.model {
            e.children
                .push(Element::new("model").with_attr("type", m.clone()));
        }
        if self.driver_name.is_some() || self.driver_queues.is_some() {
            e.children.push(
                Element::new("driver")
                    .with_opt_attr("name", self.driver_name.as_ref())
                    .with_opt_attr("queues", self.driver_queues),
            );
        }
        if let Some(l) = &self.link_state {
            e.children
                .push(Element::new("link").with_attr("state", l.clone()));
        }
        if let Some(m) = self.mtu {
            e.children
                .push(Element::new("mtu").with_attr("size", m.to_string()));
        }
        if let Some(o) = self.boot_order {
            e.children
                .push(Element::new("boot").with_attr("order", o.to_string()));
        }
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_bridge_interface_and_drops_generated_tap() {
        let e = parse_document(
            "<interface type='bridge'><source bridge='br0'/><target dev='vnet7'/><model type='virtio'/><mtu size='1500'/><boot order='2'/></interface>",
        )
        .unwrap();
        let i = Interface::parse(&e).unwrap();
        assert_eq!(i.target_dev, None);
        assert_eq!(i.mtu, Some(1500));
        assert_eq!(Interface::parse(&i.to_element(true)).unwrap(), i);
    }

    #[test]
    fn one_queue_pair_is_not_written() {
        let queues = |q: &str| {
            let x = format!(
                "<interface type='bridge'><source bridge='br0'/><driver queues='{q}'/></interface>"
            );
            let i = Interface::parse(&parse_document(&x).unwrap()).unwrap();
            (
                i.driver_queues,
                i.to_element(false).child("driver").is_some(),
            )
        };
        assert_eq!(queues("0"), (None, false));
        assert_eq!(queues("1"), (None, false));
        assert_eq!(queues("2"), (Some(2), true));
        let e = parse_document(
            "<interface type='bridge'><source bridge='br0'/><driver queues='-1'/></interface>",
        )
        .unwrap();
        assert!(Interface::parse(&e).is_err());
    }

    #[test]
    fn virtio_driver_settings_are_dropped_for_other_models() {
        let parse = |x: &str| Interface::parse(&parse_document(x).unwrap());
        let i = parse(
            "<interface type='bridge'><source bridge='br0'/><model type='e1000'/>\
             <driver name='vhost' queues='4' txmode='iothread'/></interface>",
        )
        .unwrap();
        assert_eq!((i.driver_name.as_deref(), i.driver_queues), (None, None));
        assert!(i.to_element(false).child("driver").is_none());
        let i = parse(
            "<interface type='bridge'><source bridge='br0'/><model type='virtio-transitional'/>\
             <driver name='qemu' queues='4'/></interface>",
        )
        .unwrap();
        assert_eq!(i.driver_queues, Some(4));
        for (attr, msg) in [
            ("iommu='on'", "iommu driver option is"),
            ("ats='off'", "ats driver option is"),
            ("packed='on'", "packed driver option is"),
            ("page_per_vq='on'", "page_per_vq option is"),
        ] {
            let e = parse(&format!(
                "<interface type='user'><model type='e1000'/><driver {attr}/></interface>"
            ))
            .unwrap_err();
            assert_eq!(
                e.message,
                format!("unsupported configuration: {msg} only supported for virtio devices")
            );
            assert!(
                parse(&format!(
                    "<interface type='user'><model type='virtio'/><driver {attr}/></interface>"
                ))
                .is_ok()
            );
        }
    }

    #[test]
    fn reports_bad_mtu_and_type() {
        let e = parse_document("<interface type='user'><mtu size='abc'/></interface>").unwrap();
        assert_eq!(
            Interface::parse(&e).unwrap_err().message,
            "XML error: malformed mtu size"
        );
        let e = parse_document("<interface type='bridge'/>").unwrap();
        assert_eq!(
            Interface::parse(&e).unwrap_err().message,
            "XML error: interface type='bridge' requires a 'source' element"
        );
        let e = parse_document("<interface type='foo'/>").unwrap();
        assert!(
            Interface::parse(&e)
                .unwrap_err()
                .message
                .contains("'interface': 'foo'")
        );
    }
}
