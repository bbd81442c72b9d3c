//! USB input devices: the tablet, mouse and keyboard of `<input
//! bus='usb'>` on oxvirt's one USB controller model, QEMU's `qemu-xhci`.
//!
//! A domain without USB inputs keeps its USB controllers as written (the
//! guest sees none). With USB inputs, the first USB controller must be a
//! `qemu-xhci`, or absent: oxvirt's machine then provides an xHCI, where
//! libvirt would add the machine's own USB controller.

use crate::error::{Error, Result};
use crate::vmm::config::{DeviceConfig, UsbDeviceConfig, UsbDeviceKind, XhciConfig};
use crate::xml::model::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::controller::ControllerType;
use crate::xml::model::input::{InputBus, InputType};

use super::devices::SlotMap;

/// The only USB controller model the VMM has.
pub const XHCI_MODEL: &str = "qemu-xhci";

/// The xHCI controller with the domain's USB inputs, if it has any.
pub fn xhci(def: &Domain, slots: &mut SlotMap) -> Result<Option<DeviceConfig>> {
    let inputs: Vec<_> = def
        .devices
        .inputs
        .iter()
        .filter(|i| i.bus == Some(InputBus::Usb))
        .collect();
    if inputs.is_empty() {
        return Ok(None);
    }
    let controller = def
        .devices
        .controllers
        .iter()
        .find(|c| c.ctrl_type == ControllerType::Usb && c.index.unwrap_or(0) == 0);
    let address = match controller {
        Some(c) => match c.model.as_deref() {
            Some(XHCI_MODEL) => c.address.as_ref(),
            Some("none") => {
                return Err(Error::unsupported(
                    "Can't add USB input device. USB controller is disabled.",
                ));
            }
            Some(other) => {
                return Err(Error::unsupported(format!(
                    "USB input devices need a '{XHCI_MODEL}' USB controller, not '{other}'"
                )));
            }
            None => c.address.as_ref(),
        },
        None => None,
    };
    let mut devices = Vec::new();
    for i in inputs {
        let kind = match i.input_type {
            InputType::Tablet => UsbDeviceKind::Tablet,
            InputType::Mouse => UsbDeviceKind::Mouse,
            InputType::Keyboard => UsbDeviceKind::Keyboard,
            other => return Err(super::devices::not_supported("USB input device", other)),
        };
        devices.push(UsbDeviceConfig {
            kind,
            port: usb_port(i.address.as_ref())?,
        });
    }
    if devices.len() > 4 {
        return Err(Error::unsupported(
            "at most 4 USB input devices are supported",
        ));
    }
    Ok(Some(DeviceConfig::Xhci(XhciConfig {
        pci_slot: Some(slots.slot(address, "USB controller")?),
        devices,
    })))
}

/// The root port of `<address type='usb' bus='0' port='N'/>`.
fn usb_port(address: Option<&Address>) -> Result<Option<u8>> {
    let Some(Address::Other(e)) = address else {
        return Ok(None);
    };
    if e.attr("type") != Some("usb") {
        return Err(Error::unsupported("USB input devices take USB addresses"));
    }
    match e.attr("port") {
        None => Ok(None),
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| (1..=4).contains(p))
            .map(Some)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "USB port '{p}' is not supported: the controller's ports are 1 to 4, without hubs"
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_domain;

    fn plan(devs: &str) -> Result<Option<DeviceConfig>> {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>u</name><memory>65536</memory><os><type>hvm</type></os><devices>{devs}</devices></domain>"
        ))?;
        xhci(&d, &mut SlotMap::new(&d))
    }

    #[test]
    fn usb_inputs_on_qemu_xhci_or_the_machines_own() {
        let Some(DeviceConfig::Xhci(x)) = plan(
            "<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'><address type='usb' bus='0' port='2'/></input><input type='keyboard' bus='usb'/>",
        )
        .unwrap() else {
            panic!("no xHCI")
        };
        assert_eq!(x.devices.len(), 2);
        assert_eq!(
            (x.devices[0].kind, x.devices[0].port),
            (UsbDeviceKind::Tablet, Some(2))
        );
        assert!(matches!(
            plan("<input type='tablet' bus='usb'/>").unwrap(),
            Some(DeviceConfig::Xhci(_))
        ));
        assert_eq!(
            plan("<controller type='usb' model='ich9-ehci1'/>").unwrap(),
            None
        );
    }

    #[test]
    fn other_controllers_and_ports_are_refused() {
        assert_eq!(
            plan("<controller type='usb' model='ich9-ehci1'/><input type='tablet' bus='usb'/>")
                .unwrap_err()
                .message,
            "unsupported configuration: USB input devices need a 'qemu-xhci' USB controller, not 'ich9-ehci1'"
        );
        assert!(
            plan("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>").is_err()
        );
        assert!(
            plan("<input type='tablet' bus='usb'><address type='usb' bus='0' port='1.2'/></input>")
                .is_err()
        );
    }
}
