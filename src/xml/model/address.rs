//! Device addresses (`<address type=...>`) and aliases.

use crate::error::{Error, Result};
use crate::xml::props::{on_off, on_off_attr, parse_uint_any_base};
use crate::xml::tree::Element;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u16,
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Pci {
        addr: PciAddress,
        multifunction: Option<bool>,
    },
    /// A disk's position on an IDE/SCSI/SATA/floppy controller.
    Drive {
        controller: u32,
        bus: u32,
        target: u32,
        unit: u32,
    },
    VirtioSerial {
        controller: u32,
        bus: u32,
        port: u32,
    },
    /// Any other address type, kept as written.
    Other(Element),
}

fn number(elem: &Element, attr: &str, max: u64) -> Result<u64> {
    match elem.attr(attr) {
        None => Ok(0),
        Some(v) => parse_uint_any_base(v).filter(|n| *n <= max).ok_or_else(|| {
            Error::xml(format!(
                "Invalid value for attribute '{attr}' in element '{}': '{v}'. Expected non-negative integer value",
                elem.name
            ))
        }),
    }
}

/// libvirt's PCI range check; its wording differs per field.
fn pci_part(elem: &Element, attr: &str, max: u64) -> Result<u64> {
    let n = number(elem, attr, u64::from(u32::MAX))?;
    if n > max {
        let detail = if attr == "function" {
            format!("Invalid PCI address function=0x{n:x}, must be <= {max}")
        } else {
            format!("Invalid PCI address {attr}='0x{n:x}', must be <= 0x{max:X}")
        };
        return Err(Error::xml(detail));
    }
    Ok(n)
}

impl PciAddress {
    /// Read the domain/bus/slot/function attributes of `elem`.
    pub fn parse(elem: &Element) -> Result<PciAddress> {
        // Range checks and wording follow libvirt's PCI address validation.
        let domain = pci_part(elem, "domain", 0xFFFF)?;
        let bus = pci_part(elem, "bus", 0xFF)?;
        let slot = pci_part(elem, "slot", 0x1F)?;
        let function = pci_part(elem, "function", 7)?;
        Ok(PciAddress {
            domain: domain as u16,
            bus: bus as u8,
            slot: slot as u8,
            function: function as u8,
        })
    }

    /// Add libvirt's hex spelling of the four fields to `elem`.
    pub fn write_attrs(&self, elem: Element) -> Element {
        elem.with_attr("domain", format!("0x{:04x}", self.domain))
            .with_attr("bus", format!("0x{:02x}", self.bus))
            .with_attr("slot", format!("0x{:02x}", self.slot))
            .with_attr("function", format!("0x{:x}", self.function))
    }
}

impl Address {
    pub fn parse(elem: &Element) -> Result<Address> {
        let kind = elem
            .attr("type")
            .ok_or_else(|| Error::internal("No type specified for device address"))?;
        let u32_of = |attr: &str| number(elem, attr, u64::from(u32::MAX)).map(|n| n as u32);
        Ok(match kind {
            "pci" => Address::Pci {
                addr: PciAddress::parse(elem)?,
                multifunction: on_off_attr(elem, "multifunction")?,
            },
            "drive" => Address::Drive {
                controller: u32_of("controller")?,
                bus: u32_of("bus")?,
                target: u32_of("target")?,
                unit: u32_of("unit")?,
            },
            "virtio-serial" => Address::VirtioSerial {
                controller: u32_of("controller")?,
                bus: u32_of("bus")?,
                port: u32_of("port")?,
            },
            "ccid" | "usb" | "spapr-vio" | "ccw" | "virtio-mmio" | "isa" | "dimm"
            | "unassigned" => Address::Other(elem.clone()),
            other => {
                return Err(Error::unsupported(format!(
                    "unknown address type '{other}'"
                )));
            }
        })
    }

    pub fn to_element(&self) -> Element {
        match self {
            Address::Pci {
                addr,
                multifunction,
            } => addr
                .write_attrs(Element::new("address").with_attr("type", "pci"))
                .with_opt_attr("multifunction", multifunction.map(on_off)),
            Address::Drive {
                controller,
                bus,
                target,
                unit,
            } => Element::new("address")
                .with_attr("type", "drive")
                .with_attr("controller", controller.to_string())
                .with_attr("bus", bus.to_string())
                .with_attr("target", target.to_string())
                .with_attr("unit", unit.to_string()),
            Address::VirtioSerial {
                controller,
                bus,
                port,
            } => Element::new("address")
                .with_attr("type", "virtio-serial")
                .with_attr("controller", controller.to_string())
                .with_attr("bus", bus.to_string())
                .with_attr("port", port.to_string()),
            Address::Other(e) => e.clone(),
        }
    }

    /// The PCI address, for PCI-addressed devices.
    pub fn pci(&self) -> Option<PciAddress> {
        match self {
            Address::Pci { addr, .. } => Some(*addr),
            _ => None,
        }
    }
}

/// The `<address>` child of a device element, if any.
pub fn parse_device_address(dev: &Element) -> Result<Option<Address>> {
    dev.child("address").map(Address::parse).transpose()
}

/// The `<alias name=...>` child of a device element, if any.
pub fn parse_alias(dev: &Element) -> Option<String> {
    dev.child("alias")
        .and_then(|a| a.attr("name"))
        .map(str::to_string)
}

/// Whether an alias survives into inactive XML: only user aliases
/// (`ua-` prefix) are part of the persistent definition.
pub fn alias_is_persistent(alias: &str) -> bool {
    alias.starts_with("ua-")
}

/// The `<alias>` element, if the alias is formatted.
pub fn alias_element(alias: &Option<String>, inactive: bool) -> Option<Element> {
    alias
        .as_ref()
        .filter(|a| !inactive || alias_is_persistent(a))
        .map(|a| Element::new("alias").with_attr("name", a.clone()))
}

/// Append the alias and address children a device formats last.
pub fn with_alias_and_address(
    elem: Element,
    alias: &Option<String>,
    address: &Option<Address>,
    inactive: bool,
) -> Element {
    elem.with_opt_child(alias_element(alias, inactive))
        .with_opt_child(address.as_ref().map(Address::to_element))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_round_trip_in_libvirt_spelling() {
        let e = Element::new("address")
            .with_attr("type", "pci")
            .with_attr("bus", "0")
            .with_attr("slot", "3")
            .with_attr("function", "0");
        let a = Address::parse(&e).unwrap();
        let out = a.to_element();
        assert_eq!(out.attr("domain"), Some("0x0000"));
        assert_eq!(out.attr("slot"), Some("0x03"));
        assert_eq!(out.attr("function"), Some("0x0"));
        assert_eq!(Address::parse(&out).unwrap(), a);
    }

    #[test]
    fn rejects_out_of_range_slot() {
        let e = Element::new("address")
            .with_attr("type", "pci")
            .with_attr("slot", "0x20");
        assert_eq!(
            Address::parse(&e).unwrap_err().message,
            "XML error: Invalid PCI address slot='0x20', must be <= 0x1F"
        );
    }
}
