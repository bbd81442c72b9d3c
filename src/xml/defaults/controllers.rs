//! Controller defaults: indexes, the PCI root, drive addresses of
//! IDE/SCSI/SATA/floppy disks and the controllers they imply, and the
//! virtio-serial controller that virtio consoles and channels need.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::controller::{Controller, ControllerType};
use crate::xml::model::devices::check_controller_indexes;
use crate::xml::model::disk::{DiskBus, dev_name_index};

/// The index of a USB 2 controller without one that belongs to the
/// group before it, as libvirt decides: the USB controller just before
/// it in the list is USB 2 too, and no controller of its model has that
/// index yet.
fn usb2_group_index(ctrls: &[Controller], i: usize) -> Option<u32> {
    let c = ctrls.get(i).filter(|c| c.is_usb2())?;
    let prev = ctrls
        .get(..i)?
        .iter()
        .rev()
        .find(|p| p.ctrl_type == ControllerType::Usb)
        .filter(|p| p.is_usb2())?;
    let index = prev.index?;
    let taken = ctrls
        .iter()
        .any(|o| o.is_usb2() && o.index == Some(index) && o.model == c.model);
    (!taken).then_some(index)
}

fn fill_indexes(dom: &mut Domain) {
    let ctrls = &mut dom.devices.controllers;
    for i in 0..ctrls.len() {
        if ctrls.get(i).is_some_and(|c| c.index.is_some()) {
            continue;
        }
        let Some(t) = ctrls.get(i).map(|c| c.ctrl_type) else {
            continue;
        };
        // The root bus is always index 0.
        let root = ctrls
            .get(i)
            .is_some_and(|c| c.model_is("pci-root") || c.model_is("pcie-root"));
        let next = if root {
            0
        } else if let Some(index) = usb2_group_index(ctrls, i) {
            index
        } else {
            ctrls
                .iter()
                .filter(|c| c.ctrl_type == t)
                .filter_map(|c| c.index)
                .max()
                .map_or(0, |m| m + 1)
        };
        if let Some(c) = ctrls.get_mut(i) {
            c.index = Some(next);
        }
    }
}

fn has_controller(dom: &Domain, t: ControllerType, index: u32) -> bool {
    dom.devices
        .controllers
        .iter()
        .any(|c| c.ctrl_type == t && c.index == Some(index))
}

fn add_controller(dom: &mut Domain, t: ControllerType, index: u32) {
    if !has_controller(dom, t, index) {
        dom.devices
            .controllers
            .push(Controller::new(t, index, None));
    }
}

fn uses_pcie_root(dom: &Domain) -> bool {
    dom.os.machine.as_deref().is_some_and(|m| m.contains("q35"))
}

fn fill_pci_root(dom: &mut Domain) {
    let root_model = if uses_pcie_root(dom) {
        "pcie-root"
    } else {
        "pci-root"
    };
    for c in &mut dom.devices.controllers {
        if c.ctrl_type == ControllerType::Pci && c.index == Some(0) && c.model.is_none() {
            c.model = Some(root_model.to_string());
        }
    }
    if !has_controller(dom, ControllerType::Pci, 0) {
        dom.devices
            .controllers
            .push(Controller::new(ControllerType::Pci, 0, Some(root_model)));
    }
}

/// Where libvirt places a disk of index `idx` on a bus of `bus` type.
fn drive_address(bus: DiskBus, idx: u32) -> Option<(ControllerType, Address)> {
    let (ctrl_type, controller, bus_no, unit) = match bus {
        DiskBus::Scsi => (ControllerType::Scsi, idx / 7, 0, idx % 7),
        DiskBus::Sata => (ControllerType::Sata, idx / 6, 0, idx % 6),
        DiskBus::Ide => (ControllerType::Ide, idx / 4, (idx % 4) / 2, idx % 2),
        DiskBus::Fdc => (ControllerType::Fdc, idx / 2, 0, idx % 2),
        _ => return None,
    };
    Some((
        ctrl_type,
        Address::Drive {
            controller,
            bus: bus_no,
            target: 0,
            unit,
        },
    ))
}

fn controller_type_for(bus: DiskBus) -> Option<ControllerType> {
    match bus {
        DiskBus::Scsi => Some(ControllerType::Scsi),
        DiskBus::Sata => Some(ControllerType::Sata),
        DiskBus::Ide => Some(ControllerType::Ide),
        DiskBus::Fdc => Some(ControllerType::Fdc),
        _ => None,
    }
}

fn fill_drive_addresses(dom: &mut Domain) -> Result<()> {
    let mut needed = Vec::new();
    for disk in &mut dom.devices.disks {
        let bus = disk.bus();
        let index = dev_name_index(&disk.target.dev);
        // libvirt derives every unaddressed disk's position from its name.
        if disk.address.is_none() && index.is_none() {
            return Err(Error::xml(format!(
                "Unknown disk name '{}' and no address specified",
                disk.target.dev
            )));
        }
        let Some(ctrl_type) = controller_type_for(bus) else {
            continue;
        };
        if let (None, Some(idx)) = (&disk.address, index) {
            disk.address = drive_address(bus, idx).map(|(_, a)| a);
        }
        if let Some(Address::Drive { controller, .. }) = disk.address {
            needed.push((ctrl_type, controller));
        }
    }
    // libvirt adds implied controllers type by type, then by index.
    let order = [
        ControllerType::Scsi,
        ControllerType::Fdc,
        ControllerType::Ide,
        ControllerType::Sata,
    ];
    needed.sort_by_key(|(t, index)| (order.iter().position(|o| o == t), *index));
    for (t, index) in needed {
        add_controller(dom, t, index);
    }
    Ok(())
}

fn needs_virtio_serial(dom: &Domain) -> bool {
    let virtio = |t: &Option<String>| t.as_deref() == Some("virtio");
    dom.devices
        .channels
        .iter()
        .any(|c| virtio(&c.target.target_type))
        || dom
            .devices
            .consoles
            .iter()
            .any(|c| virtio(&c.target.target_type))
}

pub fn fill(dom: &mut Domain) -> Result<()> {
    fill_indexes(dom);
    check_controller_indexes(&dom.devices.controllers)?;
    fill_pci_root(dom);
    fill_drive_addresses(dom)?;
    if needs_virtio_serial(dom) {
        add_controller(dom, ControllerType::VirtioSerial, 0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::xml::model::address::Address;
    use crate::xml::model::controller::ControllerType;
    use crate::xml::parse_domain;

    fn devices(devs: &str) -> crate::error::Result<crate::xml::Domain> {
        parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>{devs}</devices></domain>"
        ))
    }

    #[test]
    fn scsi_disks_get_drive_addresses_and_a_controller() {
        let d = devices("<disk><source file='/a'/><target dev='sdc'/></disk>").unwrap();
        assert_eq!(
            d.devices.disks[0].address,
            Some(Address::Drive {
                controller: 0,
                bus: 0,
                target: 0,
                unit: 2
            })
        );
        let types: Vec<_> = d.devices.controllers.iter().map(|c| c.ctrl_type).collect();
        assert_eq!(types, [ControllerType::Pci, ControllerType::Scsi]);
    }

    #[test]
    fn unknown_disk_name_without_address_fails() {
        let err = devices("<disk><source file='/a'/><target dev='xyz'/></disk>").unwrap_err();
        assert_eq!(
            err.message,
            "XML error: Unknown disk name 'xyz' and no address specified"
        );
    }

    #[test]
    fn usb2_companions_share_their_ehci_index() {
        // virt-install's set, then a second set, then an xHCI.
        let d = devices(
            "<controller type='usb' model='ich9-ehci1'/>\
             <controller type='usb' model='ich9-uhci1'><master startport='0'/></controller>\
             <controller type='usb' model='ich9-uhci2'><master startport='2'/></controller>\
             <controller type='usb' model='ich9-uhci3'><master startport='4'/></controller>\
             <controller type='usb' model='ich9-ehci1'/>\
             <controller type='usb' model='ich9-uhci1'/>\
             <controller type='usb' model='qemu-xhci'/>",
        )
        .unwrap();
        let indexes: Vec<_> = d
            .devices
            .controllers
            .iter()
            .filter(|c| c.ctrl_type == ControllerType::Usb)
            .map(|c| {
                (
                    c.model.clone().unwrap(),
                    c.index.unwrap(),
                    c.master_startport,
                )
            })
            .collect();
        let want = [
            ("ich9-ehci1", 0, None),
            ("ich9-uhci1", 0, Some(0)),
            ("ich9-uhci2", 0, Some(2)),
            ("ich9-uhci3", 0, Some(4)),
            ("ich9-ehci1", 1, None),
            ("ich9-uhci1", 1, Some(0)),
            ("qemu-xhci", 2, None),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(m, i, p)| (m.to_string(), *i, *p))
            .collect();
        assert_eq!(indexes, want);
        assert_eq!(
            devices("<controller type='usb' index='0' model='qemu-xhci'/><controller type='usb' index='0' model='ich9-ehci1'/>")
                .unwrap_err()
                .message,
            "XML error: Duplicate USB controllers with index 0"
        );
    }

    #[test]
    fn virtio_channel_adds_virtio_serial() {
        let d = devices(
            "<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>",
        )
        .unwrap();
        assert!(
            d.devices
                .controllers
                .iter()
                .any(|c| c.ctrl_type == ControllerType::VirtioSerial)
        );
        assert_eq!(
            d.devices.channels[0].address,
            Some(Address::VirtioSerial {
                controller: 0,
                bus: 0,
                port: 1
            })
        );
    }
}
