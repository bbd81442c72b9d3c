//! PCI slot assignment on the root bus.
//!
//! oxvirt's machine has a bare PCI root: slot 0 is the host bridge and
//! nothing else is built in, so devices get slots from 0x01 upwards, one
//! slot each, in the device order libvirt's QEMU driver uses. Slots named
//! in the XML are never handed out again.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::address::{Address, PciAddress};
use crate::xml::model::controller::ControllerType;
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
        for slot in FIRST_SLOT..=LAST_SLOT {
            if let Some(u) = self.used.get_mut(usize::from(slot))
                && !*u
            {
                *u = true;
                return Ok(Address::Pci {
                    addr: PciAddress {
                        domain: 0,
                        bus: 0,
                        slot,
                        function: 0,
                    },
                    multifunction: None,
                });
            }
        }
        Err(Error::internal("No more available PCI slots"))
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
    for c in d
        .controllers
        .iter_mut()
        .filter(|c| c.ctrl_type != ControllerType::Pci)
    {
        if controller_needs_slot(c.ctrl_type, c.model.as_deref(), c.index) {
            alloc.fill(&mut c.address)?;
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
