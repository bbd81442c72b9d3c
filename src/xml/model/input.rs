//! `<input>`: mice, tablets and keyboards.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    InputType { Mouse = "mouse", Tablet = "tablet", Keyboard = "keyboard", Passthrough = "passthrough", Evdev = "evdev" }
}

xml_enum! {
    InputBus { Ps2 = "ps2", Usb = "usb", Xen = "xen", Parallels = "parallels", Virtio = "virtio", None = "none" }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub input_type: InputType,
    /// Filled by post-parse: ps2 for mice and keyboards, usb for tablets.
    pub bus: Option<InputBus>,
    /// Children such as `<source>` kept as written.
    pub extra: Vec<Element>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

impl Input {
    pub fn parse(e: &Element) -> Result<Input> {
        let t = e
            .attr("type")
            .ok_or_else(|| Error::internal("missing input device type"))?;
        let input_type = InputType::from_xml(t)
            .ok_or_else(|| Error::unsupported(format!("unknown input device type '{t}'")))?;
        Ok(Input {
            input_type,
            bus: match e.attr("bus") {
                None => None,
                Some(b) => {
                    Some(InputBus::from_xml(b).ok_or_else(|| {
                        Error::unsupported(format!("unknown input bus type '{b}'"))
                    })?)
                }
            },
            extra: e
                .children
                .iter()
                .filter(|c| c.name != "alias" && c.name != "address")
                .cloned()
                .collect(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let mut e = Element::new("input")
            .with_attr("type", self.input_type.as_str())
            // libvirt writes no bus='none' (an evdev input's bus).
            .with_opt_attr("bus", self.bus.filter(|b| *b != InputBus::None));
        e.children.extend(self.extra.iter().cloned());
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_and_rejects() {
        let e = parse_document("<input type='tablet' bus='usb'/>").unwrap();
        let i = Input::parse(&e).unwrap();
        assert_eq!(i.bus, Some(InputBus::Usb));
        let e = parse_document("<input type='foo'/>").unwrap();
        assert_eq!(
            Input::parse(&e).unwrap_err().message,
            "unsupported configuration: unknown input device type 'foo'"
        );
    }
}
