//! Device aliases as libvirt's QEMU driver names them when a guest
//! starts (`virtio-disk0`, `net0`, `serial0`, `pci.0`, ...). They appear
//! only in live XML; user aliases (`ua-...`) are left alone.

use super::model::Domain;
use super::model::address::{Address, alias_is_persistent};
use super::model::controller::ControllerType;
use super::model::devices::set_kept_alias;
use super::model::disk::{DiskBus, dev_name_index};
use super::model::display::VideoModel;

fn set(slot: &mut Option<String>, name: String) {
    if !slot.as_deref().is_some_and(alias_is_persistent) {
        *slot = Some(name);
    }
}

fn disk_alias(bus: DiskBus, dev: &str, address: &Option<Address>, position: usize) -> String {
    let index = dev_name_index(dev).map_or(position, |i| i as usize);
    match (bus, address) {
        (
            DiskBus::Scsi,
            Some(Address::Drive {
                controller,
                bus,
                target,
                unit,
            }),
        ) => {
            // The target appears only when it is not 0.
            if *target == 0 {
                format!("scsi{controller}-{bus}-{unit}")
            } else {
                format!("scsi{controller}-{bus}-{target}-{unit}")
            }
        }
        (
            DiskBus::Ide | DiskBus::Sata | DiskBus::Fdc,
            Some(Address::Drive {
                controller,
                bus: b,
                unit,
                ..
            }),
        ) => {
            let prefix = match bus {
                DiskBus::Ide => "ide",
                DiskBus::Sata => "sata",
                _ => "fdc",
            };
            format!("{prefix}{controller}-{b}-{unit}")
        }
        (DiskBus::Usb, _) => format!("usb-disk{index}"),
        _ => format!("virtio-disk{index}"),
    }
}

fn controller_alias(t: ControllerType, model: Option<&str>, index: u32) -> String {
    match t {
        ControllerType::Pci if index == 0 && model == Some("pcie-root") => "pcie.0".to_string(),
        ControllerType::Pci => format!("pci.{index}"),
        ControllerType::Usb | ControllerType::Ide if index == 0 => t.to_string(),
        _ => format!("{t}{index}"),
    }
}

/// Give every device its live alias.
pub fn assign_aliases(dom: &mut Domain) {
    let d = &mut dom.devices;
    for (i, disk) in d.disks.iter_mut().enumerate() {
        let name = disk_alias(disk.bus(), &disk.target.dev, &disk.address, i);
        set(&mut disk.alias, name);
    }
    for c in &mut d.controllers {
        let name = controller_alias(c.ctrl_type, c.model.as_deref(), c.index.unwrap_or(0));
        set(&mut c.alias, name);
    }
    for (i, n) in d.interfaces.iter_mut().enumerate() {
        set(&mut n.alias, format!("net{i}"));
    }
    for (i, s) in d.serials.iter_mut().enumerate() {
        set(&mut s.alias, format!("serial{i}"));
    }
    for (i, p) in d.parallels.iter_mut().enumerate() {
        set(&mut p.alias, format!("parallel{i}"));
    }
    for (i, c) in d.consoles.iter_mut().enumerate() {
        // A serial console is the serial port itself and shares its name.
        let name = if i == 0 && c.target.target_type.as_deref() == Some("serial") {
            "serial0".to_string()
        } else {
            format!("console{i}")
        };
        set(&mut c.alias, name);
    }
    for (i, c) in d.channels.iter_mut().enumerate() {
        set(&mut c.alias, format!("channel{i}"));
    }
    for (i, x) in d.inputs.iter_mut().enumerate() {
        set(&mut x.alias, format!("input{i}"));
    }
    for (i, v) in d.videos.iter_mut().enumerate() {
        if v.model != Some(VideoModel::None) {
            set(&mut v.alias, format!("video{i}"));
        }
    }
    for (i, w) in d.watchdogs.iter_mut().enumerate() {
        set(&mut w.alias, format!("watchdog{i}"));
    }
    if let Some(b) = d.memballoon.as_mut() {
        set(&mut b.alias, "balloon0".to_string());
    }
    for (i, r) in d.rngs.iter_mut().enumerate() {
        set(&mut r.alias, format!("rng{i}"));
    }
    if let Some(v) = d.vsock.as_mut() {
        set(&mut v.alias, "vsock0".to_string());
    }
    let mut counters: Vec<(&'static str, usize)> = Vec::new();
    for e in &mut d.kept {
        let prefix = match e.name.as_str() {
            "filesystem" => "fs",
            "sound" => "sound",
            "hostdev" => "hostdev",
            "tpm" => "tpm",
            "redirdev" => "redir",
            "smartcard" => "smartcard",
            "hub" => "hub",
            "shmem" => "shmem",
            "panic" | "audio" | "iommu" | "lease" | "nvram" | "redirfilter" => continue,
            _ => continue,
        };
        let existing = e.child("alias").and_then(|a| a.attr("name"));
        let index = match counters.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                counters.push((prefix, 1));
                0
            }
        };
        if !existing.is_some_and(alias_is_persistent) {
            set_kept_alias(e, &format!("{prefix}{index}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{FormatFlags, parse_domain};

    #[test]
    fn names_devices_as_libvirt() {
        let mut d = parse_domain(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>\
             <disk><source file='/a'/><target dev='vdb'/></disk>\
             <disk device='cdrom'><source file='/c'/><target dev='sda'/></disk>\
             <interface type='network'><source network='default'/><alias name='ua-mine'/></interface>\
             <serial type='pty'/></devices></domain>",
        )
        .unwrap();
        assign_aliases(&mut d);
        let dev = &d.devices;
        assert_eq!(dev.disks[0].alias.as_deref(), Some("virtio-disk1"));
        assert_eq!(dev.disks[1].alias.as_deref(), Some("scsi0-0-0"));
        assert_eq!(dev.interfaces[0].alias.as_deref(), Some("ua-mine"));
        assert_eq!(dev.consoles[0].alias.as_deref(), Some("serial0"));
        assert_eq!(
            dev.memballoon.as_ref().unwrap().alias.as_deref(),
            Some("balloon0")
        );
        let live = d.to_xml(FormatFlags::default());
        assert!(live.contains("<alias name='pci.0'/>"));
        let inactive = d.to_xml(FormatFlags::from_bits(FormatFlags::INACTIVE));
        assert!(!inactive.contains("<alias name='pci.0'/>"));
        assert!(inactive.contains("<alias name='ua-mine'/>"));
    }
}
