//! Per-device defaults: MACs, disk drivers and buses, input buses, the
//! balloon and RNG backends.

use crate::xml::mac::MacAddr;
use crate::xml::model::Domain;
use crate::xml::model::disk::{DiskDriver, DiskType};
use crate::xml::model::input::{InputBus, InputType};
use crate::xml::model::virtio_misc::{Memballoon, RngBackendModel};
use crate::xml::tree::Element;

/// The host entropy source used when a `random` backend names none.
/// (libvirt 9.0's QEMU driver fills `/dev/random`; `/dev/urandom` does
/// not block and is what oxvirt's VMM reads.)
pub const DEFAULT_RNG_SOURCE: &str = "/dev/urandom";

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
            // Without a source (an empty CD-ROM drive) there is no image
            // whose format could be named.
            if disk.source.is_some() {
                driver.format.get_or_insert_with(|| "raw".to_string());
            }
        }
    }
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
