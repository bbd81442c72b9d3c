//! `<input bus='virtio'>`: the keyboards, mice and tablets the VMM
//! emulates as virtio-input devices, each its own PCI function at the
//! address the domain's defaults gave it.

use crate::error::Result;
use crate::vmm::config::{DeviceConfig, InputConfig, InputKind};
use crate::xml::model::Domain;
use crate::xml::model::input::{InputBus, InputType};

use super::devices::SlotMap;

/// One virtio-input device per `<input bus='virtio'>`, in domain order.
pub fn devices(def: &Domain, slots: &mut SlotMap) -> Result<Vec<DeviceConfig>> {
    def.devices
        .inputs
        .iter()
        .filter(|i| i.bus == Some(InputBus::Virtio))
        .map(|i| {
            let kind = match i.input_type {
                InputType::Keyboard => InputKind::Keyboard,
                InputType::Mouse => InputKind::Mouse,
                InputType::Tablet => InputKind::Tablet,
                other => return Err(super::devices::not_supported("virtio input device", other)),
            };
            Ok(DeviceConfig::Input(InputConfig {
                pci_slot: Some(slots.slot(i.address.as_ref(), "virtio input device")?),
                kind,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_domain;

    fn plan(devs: &str) -> Result<Vec<DeviceConfig>> {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>v</name><memory>65536</memory><os><type>hvm</type></os><devices>{devs}</devices></domain>"
        ))?;
        devices(&d, &mut SlotMap::new(&d))
    }

    #[test]
    fn virtio_inputs_at_their_pci_slots() {
        let got = plan(
            "<input type='keyboard' bus='virtio'><address type='pci' domain='0' bus='0' slot='7' function='0'/></input>\
             <input type='tablet' bus='usb'/><input type='mouse' bus='ps2'/>\
             <input type='tablet' bus='virtio'/>",
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            DeviceConfig::Input(InputConfig {
                pci_slot: Some(7),
                kind: InputKind::Keyboard
            })
        );
        let DeviceConfig::Input(t) = &got[1] else {
            panic!("not an input device")
        };
        assert_eq!(t.kind, InputKind::Tablet);
        assert!(t.pci_slot.is_some_and(|s| s != 7 && s != 0));
        assert!(plan("<input type='mouse'/>").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_it_cannot_emulate() {
        assert!(
            plan(
                "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event0'/></input>"
            )
            .is_err()
        );
        assert!(
            plan("<input type='mouse' bus='virtio'><address type='pci' domain='0' bus='1' slot='1' function='0'/></input>")
                .is_err()
        );
    }
}
