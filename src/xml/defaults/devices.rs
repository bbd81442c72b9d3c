//! Per-device defaults: MACs, disk drivers and buses, input buses, the
//! balloon and RNG backends.

use crate::xml::mac::MacAddr;
use crate::xml::model::Domain;
use crate::xml::model::disk::{DiskDriver, DiskType};
use crate::xml::model::input::{Input, InputBus, InputType};
use crate::xml::model::virtio_misc::{Memballoon, RngBackendModel};
use crate::xml::tree::Element;

/// The host entropy source used when a `random` backend names none.
/// (libvirt 9.0's QEMU driver fills `/dev/random`; `/dev/urandom` does
/// not block and is what oxvirt's VMM reads.)
pub const DEFAULT_RNG_SOURCE: &str = "/dev/urandom";

/// An x86 machine always has the PS/2 mouse and keyboard of its i8042;
/// libvirt lists them after the inputs the XML names.
fn add_implicit_inputs(arch: Option<&str>, inputs: &mut Vec<Input>) {
    if !matches!(arch, Some("x86_64" | "i686")) {
        return;
    }
    for kind in [InputType::Mouse, InputType::Keyboard] {
        let present = inputs
            .iter()
            .any(|i| i.input_type == kind && i.bus.is_none_or(|b| b == InputBus::Ps2));
        if !present {
            inputs.push(Input {
                input_type: kind,
                bus: Some(InputBus::Ps2),
                extra: Vec::new(),
                alias: None,
                address: None,
            });
        }
    }
}

pub fn fill(dom: &mut Domain) {
    let d = &mut dom.devices;
    for iface in &mut d.interfaces {
        if iface.mac.is_none() {
            iface.mac = Some(MacAddr::generate());
        }
    }
    for disk in &mut d.disks {
        let bus = disk.bus();
        disk.target.bus = Some(bus);
        if disk.disk_type != DiskType::Volume || disk.driver.is_some() {
            let driver = disk.driver.get_or_insert_with(DiskDriver::default);
            driver.name.get_or_insert_with(|| "qemu".to_string());
            driver.format.get_or_insert_with(|| "raw".to_string());
        }
    }
    add_implicit_inputs(dom.os.arch.as_deref(), &mut dom.devices.inputs);
    let d = &mut dom.devices;
    for input in &mut d.inputs {
        if input.bus.is_none() {
            input.bus = Some(match input.input_type {
                InputType::Tablet => InputBus::Usb,
                InputType::Mouse | InputType::Keyboard => InputBus::Ps2,
                InputType::Passthrough => InputBus::Virtio,
                InputType::Evdev => InputBus::None,
            });
        }
    }
    if let Some(v) = d.vsock.as_mut()
        && v.cid.is_some()
        && v.cid_auto.is_none()
    {
        v.cid_auto = Some(false);
    }
    if d.memballoon.is_none() {
        d.memballoon = Some(Memballoon::virtio());
    }
    for rng in &mut d.rngs {
        match rng.backend {
            RngBackendModel::Random if rng.backend_path.is_none() => {
                rng.backend_path = Some(DEFAULT_RNG_SOURCE.to_string());
            }
            RngBackendModel::Egd
                if rng.backend_type.as_deref() == Some("tcp")
                    && !rng.backend_children.iter().any(|c| c.name == "protocol") =>
            {
                rng.backend_children
                    .push(Element::new("protocol").with_attr("type", "raw"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::model::input::InputBus;
    use crate::xml::parse_domain;

    #[test]
    fn fills_macs_drivers_buses_balloon_and_rng_source() {
        let d = parse_domain(
            "<domain type='kvm'><name>d</name><memory>65536</memory><os><type>hvm</type></os><devices>\
             <disk><source file='/a'/><target dev='vda'/></disk>\
             <interface type='network'><source network='default'/></interface>\
             <input type='tablet'/><input type='mouse'/>\
             <rng model='virtio'><backend model='random'/></rng></devices></domain>",
        )
        .unwrap();
        let dev = &d.devices;
        let driver = dev.disks[0].driver.as_ref().unwrap();
        assert_eq!(
            (driver.name.as_deref(), driver.format.as_deref()),
            (Some("qemu"), Some("raw"))
        );
        assert_eq!(dev.interfaces[0].mac.unwrap().0[..3], [0x52, 0x54, 0x00]);
        assert_eq!(dev.inputs[0].bus, Some(InputBus::Usb));
        assert_eq!(dev.inputs[1].bus, Some(InputBus::Ps2));
        assert!(dev.memballoon.is_some());
        assert_eq!(
            dev.rngs[0].backend_path.as_deref(),
            Some(super::DEFAULT_RNG_SOURCE)
        );
    }
}
