//! `<controller>`: PCI topology, USB, SCSI, SATA, IDE and virtio-serial.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, int_attr, opt_string, req_enum_attr, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, parse_alias, parse_device_address, with_alias_and_address};

xml_enum! {
    ControllerType {
        Ide = "ide", Fdc = "fdc", Scsi = "scsi", Sata = "sata", VirtioSerial = "virtio-serial",
        Ccid = "ccid", Usb = "usb", Pci = "pci", Xenbus = "xenbus", Isa = "isa",
    }
}

const PCI_MODELS: &[&str] = &[
    "pci-root",
    "pcie-root",
    "pci-bridge",
    "dmi-to-pci-bridge",
    "pcie-root-port",
    "pcie-switch-upstream-port",
    "pcie-switch-downstream-port",
    "pci-expander-bus",
    "pcie-expander-bus",
    "pcie-to-pci-bridge",
];
const USB_MODELS: &[&str] = &[
    "piix3-uhci",
    "piix4-uhci",
    "ehci",
    "ich9-ehci1",
    "ich9-uhci1",
    "ich9-uhci2",
    "ich9-uhci3",
    "vt82c686b-uhci",
    "pci-ohci",
    "nec-xhci",
    "qusb1",
    "qusb2",
    "qemu-xhci",
    "none",
    "default",
];
const SCSI_MODELS: &[&str] = &[
    "auto",
    "buslogic",
    "lsilogic",
    "lsisas1068",
    "vmpvscsi",
    "ibmvscsi",
    "virtio-scsi",
    "lsisas1078",
    "virtio-transitional",
    "virtio-non-transitional",
    "ncr53c90",
    "am53c974",
    "dc390",
];
const VIRTIO_SERIAL_MODELS: &[&str] = &["virtio", "virtio-transitional", "virtio-non-transitional"];
const IDE_MODELS: &[&str] = &["piix3", "piix4", "ich6"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controller {
    pub ctrl_type: ControllerType,
    /// Filled by post-parse with the next free index of the type.
    pub index: Option<u32>,
    pub model: Option<String>,
    pub ports: Option<u32>,
    pub vectors: Option<u32>,
    /// `<model name=...>` of PCI controllers.
    pub model_name: Option<String>,
    /// `<driver>` and `<target>` kept as written.
    pub driver: Option<Element>,
    pub target: Option<Element>,
    pub alias: Option<String>,
    pub address: Option<Address>,
}

fn known_models(t: ControllerType) -> Option<&'static [&'static str]> {
    match t {
        ControllerType::Pci => Some(PCI_MODELS),
        ControllerType::Usb => Some(USB_MODELS),
        ControllerType::Scsi => Some(SCSI_MODELS),
        ControllerType::VirtioSerial => Some(VIRTIO_SERIAL_MODELS),
        ControllerType::Ide => Some(IDE_MODELS),
        _ => None,
    }
}

/// A count libvirt reads as a signed number; negative means unset.
fn signed_count(e: &Element, attr: &str) -> Result<Option<u32>> {
    match int_attr(e, attr)? {
        None => Ok(None),
        Some(i) => u32::try_from(i).map(Some).map_err(|_| {
            Error::xml(format!(
                "Invalid value for attribute '{attr}' in element '{}': '{i}'. Expected non-negative value",
                e.name
            ))
        }),
    }
}

/// `index` is a signed number in libvirt; a negative one means "pick".
fn parse_index(e: &Element) -> Result<Option<u32>> {
    Ok(int_attr(e, "index")?.and_then(|i| u32::try_from(i).ok()))
}

impl Controller {
    pub fn new(ctrl_type: ControllerType, index: u32, model: Option<&str>) -> Controller {
        Controller {
            ctrl_type,
            index: Some(index),
            model: model.map(str::to_string),
            ports: None,
            vectors: None,
            model_name: None,
            driver: None,
            target: None,
            alias: None,
            address: None,
        }
    }

    pub fn parse(e: &Element) -> Result<Controller> {
        let ctrl_type: ControllerType = req_enum_attr(e, "type")?;
        for child in ["model", "target", "driver"] {
            if e.children_named(child).count() > 1 {
                return Err(Error::xml(format!(
                    "Multiple <{child}> elements in controller definition not allowed"
                )));
            }
        }
        let model = opt_string(e, "model");
        if let (Some(m), Some(list)) = (&model, known_models(ctrl_type))
            && !list.contains(&m.as_str())
        {
            return Err(Error::unsupported(format!("Unknown model type '{m}'")));
        }
        Ok(Controller {
            ctrl_type,
            index: parse_index(e)?,
            model,
            ports: signed_count(e, "ports")?,
            vectors: signed_count(e, "vectors")?,
            model_name: e.child("model").and_then(|m| opt_string(m, "name")),
            driver: e.child("driver").cloned(),
            target: e.child("target").cloned(),
            alias: parse_alias(e),
            address: parse_device_address(e)?,
        })
    }

    pub fn model_is(&self, model: &str) -> bool {
        self.model.as_deref() == Some(model)
    }

    pub fn to_element(&self, inactive: bool) -> Element {
        let e = Element::new("controller")
            .with_attr("type", self.ctrl_type.as_str())
            .with_opt_attr("index", self.index)
            .with_opt_attr("model", self.model.as_ref())
            .with_opt_attr("ports", self.ports)
            .with_opt_attr("vectors", self.vectors)
            .with_opt_child(
                self.model_name
                    .as_ref()
                    .map(|n| Element::new("model").with_attr("name", n.clone())),
            )
            .with_opt_child(self.driver.clone())
            .with_opt_child(self.target.clone());
        with_alias_and_address(e, &self.alias, &self.address, inactive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_and_validates_models() {
        let e =
            parse_document("<controller type='virtio-serial' index='0' ports='16' vectors='4'/>")
                .unwrap();
        let c = Controller::parse(&e).unwrap();
        assert_eq!(c.ports, Some(16));
        assert_eq!(Controller::parse(&c.to_element(true)).unwrap(), c);
        let e = parse_document("<controller type='pci' model='foo'/>").unwrap();
        assert_eq!(
            Controller::parse(&e).unwrap_err().message,
            "unsupported configuration: Unknown model type 'foo'"
        );
        let e = parse_document("<controller type='foo'/>").unwrap();
        assert_eq!(
            Controller::parse(&e).unwrap_err().message,
            "XML error: Invalid value for attribute 'type' in element 'controller': 'foo'."
        );
    }
}
