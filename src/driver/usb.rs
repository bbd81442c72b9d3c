//! USB input devices: the tablet, mouse and keyboard of `<input
//! bus='usb'>` on the USB controllers the VMM emulates: QEMU's
//! `qemu-xhci`, and ICH9's `ich9-ehci1` with its `ich9-uhci1..3`
//! companions (what virt-install gives an OS without USB 3 support).
//!
//! A domain without USB inputs keeps its USB controllers as written (the
//! guest sees none). With USB inputs, the USB controller of index 0 must
//! be a `qemu-xhci` or an `ich9-ehci1`, or absent: oxvirt's machine then
//! provides an xHCI, where libvirt would add the machine's own USB
//! controller. An `ich9-ehci1` comes alone or with all three companions
//! at master start ports 0, 2 and 4, in one PCI slot at functions 7 and
//! 0-2, as libvirt lays them out.

use crate::error::{Error, Result};
use crate::vmm::config::{DeviceConfig, EhciConfig, UsbDeviceConfig, UsbDeviceKind, XhciConfig};
use crate::xml::model::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::controller::{Controller, ControllerType, ICH9_COMPANIONS, ICH9_EHCI};
use crate::xml::model::input::{InputBus, InputType};

use super::devices::SlotMap;

/// The USB controller models the VMM has.
pub const XHCI_MODEL: &str = "qemu-xhci";
/// Root ports of each.
const XHCI_PORTS: u8 = 4;
const EHCI_PORTS: u8 = 6;
/// The EHCI's function in the slot of its set.
const EHCI_FUNCTION: u8 = 7;

/// The USB controller with the domain's USB inputs, if it has any.
pub fn controller(def: &Domain, slots: &mut SlotMap) -> Result<Option<DeviceConfig>> {
    let inputs: Vec<_> = def
        .devices
        .inputs
        .iter()
        .filter(|i| i.bus == Some(InputBus::Usb))
        .collect();
    if inputs.is_empty() {
        return Ok(None);
    }
    let bus0: Vec<&Controller> = def
        .devices
        .controllers
        .iter()
        .filter(|c| c.ctrl_type == ControllerType::Usb && c.index.unwrap_or(0) == 0)
        .collect();
    let master = bus0.iter().find(|c| c.master_startport.is_none());
    if master.is_none() && !bus0.is_empty() {
        // Companions whose master is another bus: what libvirt says when
        // it builds QEMU's command line.
        return Err(Error::internal("masterbus not found"));
    }
    let ehci = match master.and_then(|c| c.model.as_deref()) {
        Some(ICH9_EHCI) => true,
        Some(XHCI_MODEL) | None => false,
        Some("none") => {
            return Err(Error::unsupported(
                "Can't add USB input device. USB controller is disabled.",
            ));
        }
        Some(other) => {
            return Err(Error::unsupported(format!(
                "USB input devices need a '{XHCI_MODEL}' or '{ICH9_EHCI}' USB controller, not '{other}'"
            )));
        }
    };
    let ports = if ehci { EHCI_PORTS } else { XHCI_PORTS };
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
            port: usb_port(i.address.as_ref(), ports)?,
        });
    }
    if devices.len() > usize::from(ports) {
        return Err(Error::unsupported(format!(
            "at most {ports} USB input devices are supported"
        )));
    }
    let address = master.and_then(|c| c.address.as_ref());
    if !ehci {
        return Ok(Some(DeviceConfig::Xhci(XhciConfig {
            pci_slot: Some(slots.slot(address, "USB controller")?),
            devices,
        })));
    }
    let pci_slot = slots.controller_slot(address, "USB controller")?;
    let companions = companions(&bus0, pci_slot)?;
    if let Some(Address::Pci { addr, .. }) = address
        && addr.function != EHCI_FUNCTION
    {
        return Err(Error::unsupported(format!(
            "USB controller '{ICH9_EHCI}' is supported at function {EHCI_FUNCTION} of its slot only"
        )));
    }
    Ok(Some(DeviceConfig::Ehci(EhciConfig {
        pci_slot: Some(pci_slot),
        companions,
        devices,
    })))
}

/// Whether the EHCI of slot `slot` has its companions: all three, each
/// at its ICH9 start port and function of that slot, or none.
fn companions(bus0: &[&Controller], slot: u8) -> Result<bool> {
    let found: Vec<&&Controller> = bus0
        .iter()
        .filter(|c| c.master_startport.is_some())
        .collect();
    if found.is_empty() {
        return Ok(false);
    }
    for (function, (model, port)) in ICH9_COMPANIONS.iter().enumerate() {
        let matching: Vec<_> = found.iter().filter(|c| c.model_is(model)).collect();
        let [c] = matching.as_slice() else {
            return Err(Error::unsupported(format!(
                "USB controller '{ICH9_EHCI}' is supported with all of its companions \
                 'ich9-uhci1', 'ich9-uhci2' and 'ich9-uhci3', or none"
            )));
        };
        if c.master_startport != Some(*port) {
            return Err(Error::unsupported(format!(
                "USB controller '{model}' is supported at master startport {port} only"
            )));
        }
        let placed = match &c.address {
            Some(Address::Pci { addr, .. }) => {
                addr.domain == 0
                    && addr.bus == 0
                    && addr.slot == slot
                    && usize::from(addr.function) == function
            }
            None => true,
            Some(_) => false,
        };
        if !placed {
            return Err(Error::unsupported(format!(
                "USB controller '{model}' is supported at function {function} of the slot of its '{ICH9_EHCI}' only"
            )));
        }
    }
    if found.len() > ICH9_COMPANIONS.len() {
        return Err(Error::unsupported(format!(
            "USB controller '{ICH9_EHCI}' is supported with companions of the 'ich9-uhci' models only"
        )));
    }
    Ok(true)
}

/// The root port of `<address type='usb' bus='0' port='N'/>`, 1..=`ports`.
fn usb_port(address: Option<&Address>, ports: u8) -> Result<Option<u8>> {
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
            .filter(|p| (1..=ports).contains(p))
            .map(Some)
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "USB port '{p}' is not supported: the controller's ports are 1 to {ports}, without hubs"
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
        controller(&d, &mut SlotMap::new(&d))
    }

    use crate::xml::model::controller::VIRT_INSTALL_USB2 as USB2;

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
        assert_eq!(plan(USB2).unwrap(), None, "no inputs, no controller");
    }

    #[test]
    fn usb_inputs_on_virt_installs_usb2_set() {
        let Some(DeviceConfig::Ehci(e)) = plan(&format!(
            "{USB2}<input type='tablet' bus='usb'/><input type='keyboard' bus='usb'><address type='usb' bus='0' port='6'/></input>"
        ))
        .unwrap() else {
            panic!("no EHCI")
        };
        // libvirt put the set in slot 1 (oxvirt's machine has no PIIX3).
        assert_eq!(e.pci_slot, Some(1));
        assert!(e.companions);
        assert_eq!(e.devices[1].port, Some(6));
        // Alone, without companions.
        let Some(DeviceConfig::Ehci(e)) = plan(
            "<controller type='usb' model='ich9-ehci1'><address type='pci' bus='0' slot='7' function='7'/></controller><input type='mouse' bus='usb'/>",
        )
        .unwrap() else {
            panic!("no EHCI")
        };
        assert_eq!((e.pci_slot, e.companions), (Some(7), false));
    }

    #[test]
    fn other_controllers_sets_and_ports_are_refused() {
        let msg = |devs: &str| plan(devs).unwrap_err().message;
        assert_eq!(
            msg("<controller type='usb' model='piix3-uhci'/><input type='tablet' bus='usb'/>"),
            "unsupported configuration: USB input devices need a 'qemu-xhci' or 'ich9-ehci1' USB controller, not 'piix3-uhci'"
        );
        assert!(
            msg("<controller type='usb' model='none'/><input type='tablet' bus='usb'/>")
                .contains("disabled")
        );
        assert!(
            plan("<input type='tablet' bus='usb'><address type='usb' bus='0' port='1.2'/></input>")
                .is_err()
        );
        assert!(
            msg("<controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'><address type='usb' bus='0' port='5'/></input>")
                .contains("ports are 1 to 4")
        );
        // Companions on another bus than their master.
        assert_eq!(
            msg(
                "<controller type='usb' index='1' model='ich9-ehci1'/><controller type='usb' index='0' model='ich9-uhci1'/><input type='tablet' bus='usb'/>"
            ),
            "internal error: masterbus not found"
        );
        // Part of a set, a companion elsewhere, an odd start port.
        let partial = USB2.replace(
            "<controller type='usb' model='ich9-uhci3'><master startport='4'/></controller>",
            "",
        );
        assert!(
            msg(&format!("{partial}<input type='tablet' bus='usb'/>"))
                .contains("all of its companions")
        );
        let moved = USB2.replace(
            "<master startport='2'/>",
            "<master startport='2'/><address type='pci' bus='0' slot='9' function='1'/>",
        );
        // (the set follows the companion's slot; the EHCI given elsewhere is refused)
        let split = moved.replace(
            "<controller type='usb' model='ich9-ehci1'/>",
            "<controller type='usb' model='ich9-ehci1'><address type='pci' bus='0' slot='8' function='7'/></controller>",
        );
        assert!(
            msg(&format!("{split}<input type='tablet' bus='usb'/>"))
                .contains("function 1 of the slot")
        );
        let odd = USB2.replace("startport='4'", "startport='3'");
        assert_eq!(
            msg(&format!("{odd}<input type='tablet' bus='usb'/>")),
            "unsupported configuration: USB controller 'ich9-uhci3' is supported at master startport 4 only"
        );
    }
}
