//! `<controller>`: PCI topology, USB, SCSI, SATA, IDE and virtio-serial.

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, int_attr, opt_string, req_enum_attr, uint_attr, xml_enum};
use crate::xml::tree::Element;

use super::address::{Address, alias_element, parse_alias, parse_device_address};

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
/// ICH9's USB 2 set: the EHCI and its UHCI companions with the first
/// root port each takes (libvirt fills `<master startport>` with these
/// when a companion has none).
pub const ICH9_EHCI: &str = "ich9-ehci1";
pub const ICH9_COMPANIONS: [(&str, u32); 3] =
    [("ich9-uhci1", 0), ("ich9-uhci2", 2), ("ich9-uhci3", 4)];
/// The USB controllers virt-install writes for an OS without USB 3.
#[cfg(test)]
pub const VIRT_INSTALL_USB2: &str = "<controller type='usb' model='ich9-ehci1'/>\
    <controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>\
    <controller type='usb' model='ich9-uhci2'><master startport='2'/></controller>\
    <controller type='usb' model='ich9-uhci3'><master startport='4'/></controller>";
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
    /// `<master startport>`: the first root port of the master USB
    /// controller a companion controller takes.
    pub master_startport: Option<u32>,
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
            master_startport: None,
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
        let master_startport = match e.child("master") {
            Some(m) => Some(uint_attr::<u32>(m, "startport")?.unwrap_or(0)),
            // A companion without one starts where it does on ICH9.
            None if ctrl_type == ControllerType::Usb => model.as_deref().and_then(|m| {
                ICH9_COMPANIONS
                    .iter()
                    .find(|(c, _)| *c == m)
                    .map(|(_, port)| *port)
            }),
            None => None,
        };
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
            master_startport,
            address: parse_device_address(e)?,
        })
    }

    pub fn model_is(&self, model: &str) -> bool {
        self.model.as_deref() == Some(model)
    }

    /// One of ICH9's USB 2 set (libvirt's IS_USB2_CONTROLLER).
    pub fn is_usb2(&self) -> bool {
        self.ctrl_type == ControllerType::Usb
            && (self.model_is(ICH9_EHCI) || self.is_ich9_companion())
    }

    /// One of ICH9's UHCI companions, which share their EHCI's index.
    pub fn is_ich9_companion(&self) -> bool {
        self.ctrl_type == ControllerType::Usb
            && ICH9_COMPANIONS.iter().any(|(m, _)| self.model_is(m))
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
        e.with_opt_child(alias_element(&self.alias, inactive))
            .with_opt_child(
                self.master_startport
                    .map(|p| Element::new("master").with_attr("startport", p.to_string())),
            )
            .with_opt_child(self.address.as_ref().map(Address::to_element))
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
        // Companions get their ICH9 start port; it sits before the address.
        let e = parse_document("<controller type='usb' model='ich9-uhci2'><address type='pci' slot='4' function='1'/></controller>").unwrap();
        let c = Controller::parse(&e).unwrap();
        assert_eq!(c.master_startport, Some(2));
        assert!(c.is_usb2() && c.is_ich9_companion());
        let names: Vec<String> = c
            .to_element(true)
            .children
            .iter()
            .map(|e| e.name.clone())
            .collect();
        assert_eq!(names, ["master", "address"]);
        let e = parse_document(
            "<controller type='usb' model='ich9-uhci1'><master startport='x'/></controller>",
        )
        .unwrap();
        assert_eq!(
            Controller::parse(&e).unwrap_err().message,
            "XML error: Invalid value for attribute 'startport' in element 'master': 'x'. Expected non-negative integer value"
        );
        let e = parse_document("<controller type='foo'/>").unwrap();
        assert_eq!(
            Controller::parse(&e).unwrap_err().message,
            "XML error: Invalid value for attribute 'type' in element 'controller': 'foo'."
        );
    }
}
