//! PCI slot assignment on the root bus.
//!
//! oxvirt's machine has a bare PCI root: slot 0 is the host bridge and
//! nothing else is built in, so devices get slots from 0x01 upwards, one
//! slot each, in the device order libvirt's QEMU driver uses. Slots named
//! in the XML are never handed out again.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::address::{Address, PciAddress};
use crate::xml::model::controller::{Controller, ControllerType};
use crate::xml::model::devices::{kept_address, set_kept_address};
use crate::xml::model::disk::DiskBus;
use crate::xml::model::display::VideoModel;
use crate::xml::model::input::InputBus;
use crate::xml::model::interface::InterfaceType;
use crate::xml::model::virtio_misc::{BalloonModel, WatchdogModel};
use crate::xml::tree::Element;

const FIRST_SLOT: u8 = 1;
const LAST_SLOT: u8 = 0x1f;

struct SlotAllocator {
    used: [bool; LAST_SLOT as usize + 1],
}

impl SlotAllocator {
    fn reserve(&mut self, addr: &PciAddress) {
        if addr.domain == 0
            && addr.bus == 0
            && let Some(u) = self.used.get_mut(usize::from(addr.slot))
        {
            *u = true;
        }
    }

    fn next(&mut self) -> Result<Address> {
        let slot = self.next_slot()?;
        Ok(Address::Pci {
            addr: PciAddress {
                domain: 0,
                bus: 0,
                slot,
                function: 0,
            },
            multifunction: None,
        })
    }

    /// Takes the first free slot.
    fn next_slot(&mut self) -> Result<u8> {
        for slot in FIRST_SLOT..=LAST_SLOT {
            if let Some(u) = self.used.get_mut(usize::from(slot))
                && !*u
            {
                *u = true;
                return Ok(slot);
            }
        }
        Err(Error::internal("No more available PCI slots"))
    }

    /// Takes `slot` if it is free.
    fn take(&mut self, slot: u8) -> bool {
        match self.used.get_mut(usize::from(slot)) {
            Some(u) if !*u => {
                *u = true;
                true
            }
            _ => false,
        }
    }

    /// Give `address` a slot when it has none.
    fn fill(&mut self, address: &mut Option<Address>) -> Result<()> {
        if address.is_none() {
            *address = Some(self.next()?);
        }
        Ok(())
    }
}

/// Every device address the definition names.
pub fn every_address(dom: &Domain) -> Vec<Address> {
    let d = &dom.devices;
    let mut all: Vec<Option<Address>> = Vec::new();
    all.extend(d.disks.iter().map(|x| x.address.clone()));
    all.extend(d.controllers.iter().map(|x| x.address.clone()));
    all.extend(d.interfaces.iter().map(|x| x.address.clone()));
    for list in [&d.serials, &d.parallels, &d.consoles, &d.channels] {
        all.extend(list.iter().map(|x| x.address.clone()));
    }
    all.extend(d.inputs.iter().map(|x| x.address.clone()));
    all.extend(d.videos.iter().map(|x| x.address.clone()));
    all.extend(d.watchdogs.iter().map(|x| x.address.clone()));
    all.extend(d.memballoon.iter().map(|x| x.address.clone()));
    all.extend(d.rngs.iter().map(|x| x.address.clone()));
    all.extend(d.vsock.iter().map(|x| x.address.clone()));
    all.extend(d.kept.iter().map(|e| kept_address(e).ok().flatten()));
    all.into_iter().flatten().collect()
}

fn controller_needs_slot(t: ControllerType, model: Option<&str>, index: Option<u32>) -> bool {
    match t {
        ControllerType::Pci => index != Some(0),
        ControllerType::Usb => model != Some("none"),
        ControllerType::Scsi
        | ControllerType::Sata
        | ControllerType::VirtioSerial
        | ControllerType::Ide => true,
        _ => false,
    }
}

fn kept_needs_slot(e: &Element) -> bool {
    match e.name.as_str() {
        "filesystem" | "shmem" => true,
        "sound" => !matches!(e.attr("model"), Some("pcspk") | Some("usb")),
        "hostdev" => e.attr("type") == Some("pci"),
        _ => false,
    }
}

fn fill_kept(alloc: &mut SlotAllocator, dom: &mut Domain, name: &str) -> Result<()> {
    for e in dom.devices.kept.iter_mut().filter(|e| e.name == name) {
        if kept_needs_slot(e) && kept_address(e)?.is_none() {
            let addr = alloc.next()?;
            set_kept_address(e, &addr);
        }
    }
    Ok(())
}

/// The function of each member of ICH9's USB 2 set in its slot: the EHCI
/// at 7, UHCI1 at 0 (saying the slot is multi-function), UHCI2 at 1,
/// UHCI3 at 2.
fn usb2_function(c: &Controller) -> (u8, Option<bool>) {
    match c.model.as_deref() {
        Some("ich9-uhci1") => (0, Some(true)),
        Some("ich9-uhci2") => (1, None),
        Some("ich9-uhci3") => (2, None),
        _ => (7, None),
    }
}

/// Addresses for ICH9's USB 2 sets as libvirt gives them: each
/// controller without one joins the slot of the first of its set (same
/// index) that has one, at its own function; the first of a set takes a
/// new slot. On q35 the first UHCI1 goes to slot 0x1D (else 0x1A) if
/// free, as on the real chipset.
fn assign_usb2(alloc: &mut SlotAllocator, ctrls: &mut [Controller], q35: bool) -> Result<()> {
    if q35
        && let Some(c) = ctrls
            .iter_mut()
            .find(|c| c.model_is("ich9-uhci1") && c.address.is_none())
        && let Some(slot) = [0x1d, 0x1a].into_iter().find(|s| alloc.take(*s))
    {
        c.address = Some(pci_address(0, slot, 0, Some(true)));
    }
    for i in 0..ctrls.len() {
        if !ctrls[i].is_usb2() || ctrls[i].address.is_some() {
            continue;
        }
        let index = ctrls[i].index;
        let found = ctrls
            .iter()
            .filter(|o| o.is_usb2() && o.index == index)
            .find_map(|o| o.address.as_ref().and_then(Address::pci));
        let (bus, slot) = match found {
            Some(a) => (a.bus, a.slot),
            None => (0, alloc.next_slot()?),
        };
        let (function, multifunction) = usb2_function(&ctrls[i]);
        ctrls[i].address = Some(pci_address(bus, slot, function, multifunction));
    }
    Ok(())
}

fn pci_address(bus: u8, slot: u8, function: u8, multifunction: Option<bool>) -> Address {
    Address::Pci {
        addr: PciAddress {
            domain: 0,
            bus,
            slot,
            function,
        },
        multifunction,
    }
}

/// Every PCI address the XML gives is used once only.
pub fn check_duplicates(dom: &Domain) -> Result<()> {
    let mut given: Vec<PciAddress> = Vec::new();
    for p in every_address(dom).iter().filter_map(Address::pci) {
        if p.domain != 0 {
            return Err(Error::xml(format!(
                "Invalid PCI address {:04x}:{:02x}:{:02x}.{:x}. Only PCI domain 0 is available",
                p.domain, p.bus, p.slot, p.function
            )));
        }
        if given.contains(&p) {
            return Err(Error::xml(format!(
                "Attempted double use of PCI Address {:04x}:{:02x}:{:02x}.{:x}",
                p.domain, p.bus, p.slot, p.function
            )));
        }
        given.push(p);
    }
    Ok(())
}

pub fn assign(dom: &mut Domain) -> Result<()> {
    check_duplicates(dom)?;
    let mut alloc = SlotAllocator {
        used: [false; LAST_SLOT as usize + 1],
    };
    for p in every_address(dom).iter().filter_map(Address::pci) {
        alloc.reserve(&p);
    }
    let q35 = dom.os.machine.as_deref().is_some_and(|m| m.contains("q35"));
    let d = &mut dom.devices;
    // The primary video adapter comes first, as libvirt reserves its slot
    // before any other device's.
    if let Some(v) = d
        .videos
        .first_mut()
        .filter(|v| v.model != Some(VideoModel::None))
    {
        alloc.fill(&mut v.address)?;
    }
    for c in d
        .controllers
        .iter_mut()
        .filter(|c| c.ctrl_type == ControllerType::Pci)
    {
        if controller_needs_slot(c.ctrl_type, c.model.as_deref(), c.index) {
            alloc.fill(&mut c.address)?;
        }
    }
    fill_kept(&mut alloc, dom, "filesystem")?;
    let d = &mut dom.devices;
    for n in d
        .interfaces
        .iter_mut()
        .filter(|n| n.iface_type != InterfaceType::Hostdev)
    {
        alloc.fill(&mut n.address)?;
    }
    fill_kept(&mut alloc, dom, "sound")?;
    let d = &mut dom.devices;
    for i in 0..d.controllers.len() {
        let c = &d.controllers[i];
        if c.ctrl_type == ControllerType::Pci
            || !controller_needs_slot(c.ctrl_type, c.model.as_deref(), c.index)
        {
            continue;
        }
        if c.is_usb2() {
            assign_usb2(&mut alloc, &mut d.controllers, q35)?;
        } else {
            alloc.fill(&mut d.controllers[i].address)?;
        }
    }
    for disk in d.disks.iter_mut().filter(|x| x.bus() == DiskBus::Virtio) {
        alloc.fill(&mut disk.address)?;
    }
    fill_kept(&mut alloc, dom, "hostdev")?;
    let d = &mut dom.devices;
    if let Some(b) = d
        .memballoon
        .as_mut()
        .filter(|b| b.model != BalloonModel::None)
        && b.model != BalloonModel::Xen
    {
        alloc.fill(&mut b.address)?;
    }
    for r in d.rngs.iter_mut() {
        alloc.fill(&mut r.address)?;
    }
    for w in d
        .watchdogs
        .iter_mut()
        .filter(|w| w.model == WatchdogModel::I6300esb)
    {
        alloc.fill(&mut w.address)?;
    }
    for v in d
        .videos
        .iter_mut()
        .filter(|v| v.model != Some(VideoModel::None))
    {
        alloc.fill(&mut v.address)?;
    }
    fill_kept(&mut alloc, dom, "shmem")?;
    let d = &mut dom.devices;
    for i in d
        .inputs
        .iter_mut()
        .filter(|i| i.bus == Some(InputBus::Virtio))
    {
        alloc.fill(&mut i.address)?;
    }
    if let Some(v) = d.vsock.as_mut() {
        alloc.fill(&mut v.address)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::xml::parse_domain;

    fn slot_of(a: &Option<crate::xml::model::Address>) -> u8 {
        a.as_ref().and_then(|a| a.pci()).map(|p| p.slot).unwrap()
    }

    #[test]
    fn assigns_slots_in_libvirt_device_order_skipping_given_ones() {
        let d = parse_domain(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>\
             <disk><source file='/a'/><target dev='vda'/></disk>\
             <interface type='network'><source network='default'/><model type='virtio'/></interface>\
             <interface type='network'><source network='default'/><model type='virtio'/><address type='pci' bus='0' slot='2'/></interface>\
             <rng model='virtio'><backend model='random'/></rng></devices></domain>",
        )
        .unwrap();
        let dev = &d.devices;
        assert_eq!(slot_of(&dev.interfaces[0].address), 1);
        assert_eq!(slot_of(&dev.interfaces[1].address), 2);
        assert_eq!(slot_of(&dev.disks[0].address), 3);
        assert_eq!(slot_of(&dev.memballoon.as_ref().unwrap().address), 4);
        assert_eq!(slot_of(&dev.rngs[0].address), 5);
    }

    /// (function, multifunction) of each controller, and the slots.
    fn usb2_layout(xml_devices: &str, machine: &str) -> Vec<(String, u8, u8, Option<bool>)> {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type machine='{machine}'>hvm</type></os><devices>{xml_devices}</devices></domain>"
        ))
        .unwrap();
        d.devices
            .controllers
            .iter()
            .filter_map(|c| match &c.address {
                Some(crate::xml::model::Address::Pci {
                    addr,
                    multifunction,
                }) => Some((
                    c.model.clone().unwrap_or_default(),
                    addr.slot,
                    addr.function,
                    *multifunction,
                )),
                _ => None,
            })
            .collect()
    }

    use crate::xml::model::controller::VIRT_INSTALL_USB2;

    #[test]
    fn an_ich9_usb2_set_shares_one_slot() {
        let set = |slot| {
            vec![
                ("ich9-ehci1".to_string(), slot, 7, None),
                ("ich9-uhci1".to_string(), slot, 0, Some(true)),
                ("ich9-uhci2".to_string(), slot, 1, None),
                ("ich9-uhci3".to_string(), slot, 2, None),
            ]
        };
        assert_eq!(usb2_layout(VIRT_INSTALL_USB2, "pc"), set(1));
        // q35: where the chipset has it.
        assert_eq!(usb2_layout(VIRT_INSTALL_USB2, "q35"), set(0x1d));
        // A member with an address brings the others to its slot.
        let xml = VIRT_INSTALL_USB2.replace(
            "<master startport='2'/>",
            "<master startport='2'/><address type='pci' bus='0' slot='9' function='1'/>",
        );
        assert_eq!(usb2_layout(&xml, "pc"), set(9));
    }

    #[test]
    fn runs_out_of_slots_with_an_error() {
        let nets = "<interface type='network'><source network='n'/></interface>".repeat(40);
        let xml = format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>{nets}</devices></domain>"
        );
        assert_eq!(
            parse_domain(&xml).unwrap_err().message,
            "internal error: No more available PCI slots"
        );
    }
}
