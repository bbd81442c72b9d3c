//! What oxvirt's KVM driver will run. A definition can be valid libvirt
//! XML yet ask for hardware the VMM does not have; each rule here names
//! the element and value it refuses (`VIR_ERR_CONFIG_UNSUPPORTED`).
//! `xml-schemas/README.md` ("What oxvirt accepts") explains each choice.

use crate::error::{Error, Result};

use super::model::Domain;
use super::model::chardev::{CharSourceType, Chardev};
use super::model::controller::ControllerType;
use super::model::cpu::CpuMode;
use super::model::disk::{DiskBus, DiskDevice, DiskType};
use super::model::display::VideoModel;
use super::model::domain::VirtType;
use super::model::input::InputBus;
use super::model::interface::InterfaceType;
use super::model::lifecycle::{CrashAction, LifecycleAction};
use super::model::os::OsType;
use super::model::virtio_misc::{BalloonModel, RngBackendModel};

fn not_supported(what: &str, value: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("{what} '{value}' is not supported"))
}

/// Kept device kinds the VMM has no model for at all.
const UNSUPPORTED_KEPT: &[&str] = &[
    "filesystem",
    "smartcard",
    "tpm",
    "sound",
    "hostdev",
    "redirdev",
    "hub",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "crypto",
    "lease",
];

/// Check `dom` against what oxvirt can run; the first problem wins.
pub fn check_supported(dom: &Domain) -> Result<()> {
    check_machine(dom)?;
    check_disks(dom)?;
    check_controllers(dom)?;
    check_interfaces(dom)?;
    check_chardevs(dom)?;
    check_other_devices(dom)?;
    Ok(())
}

fn check_machine(dom: &Domain) -> Result<()> {
    if dom.virt_type != VirtType::Kvm {
        return Err(not_supported("domain type", dom.virt_type));
    }
    if dom.os.os_type != OsType::Hvm {
        return Err(not_supported("os type", dom.os.os_type));
    }
    if let Some(arch) = dom.os.arch.as_deref().filter(|a| *a != "x86_64") {
        return Err(not_supported("architecture", arch));
    }
    if let Some(mode) = dom.cpu.as_ref().and_then(|c| c.mode)
        && mode == CpuMode::Custom
    {
        return Err(not_supported("CPU mode", mode));
    }
    for action in [dom.on_poweroff, dom.on_reboot] {
        if action == LifecycleAction::RenameRestart {
            return Err(rename_restart());
        }
    }
    if dom.on_crash == CrashAction::RenameRestart {
        return Err(rename_restart());
    }
    Ok(())
}

fn rename_restart() -> Error {
    Error::unsupported(
        "oxvirt doesn't support the 'rename-restart' action for 'on_reboot'/'on_poweroff'/'on_crash'",
    )
}

fn check_disks(dom: &Domain) -> Result<()> {
    for disk in &dom.devices.disks {
        if !matches!(disk.disk_type, DiskType::File | DiskType::Block) {
            return Err(not_supported("disk type", disk.disk_type));
        }
        if disk.device != DiskDevice::Disk {
            return Err(not_supported("disk device", disk.device));
        }
        if disk.bus() != DiskBus::Virtio {
            return Err(not_supported("disk bus", disk.bus()));
        }
        if let Some(format) = disk.driver.as_ref().and_then(|d| d.format.as_deref())
            && format != "raw"
        {
            return Err(not_supported("disk format", format));
        }
        if disk
            .backing_store
            .as_ref()
            .is_some_and(|b| !matches!(b, super::model::BackingStore::End))
        {
            return Err(Error::unsupported("disk backing chains are not supported"));
        }
    }
    Ok(())
}

fn check_controllers(dom: &Domain) -> Result<()> {
    for c in &dom.devices.controllers {
        match c.ctrl_type {
            // The guest sees no USB bus; accepted so default definitions
            // from virt-install and virt-manager still define and start.
            ControllerType::Usb | ControllerType::VirtioSerial => {}
            ControllerType::Pci => {
                if let Some(model) = c
                    .model
                    .as_deref()
                    .filter(|m| *m != "pci-root" && *m != "pcie-root")
                {
                    return Err(not_supported("PCI controller model", model));
                }
                if c.index != Some(0) {
                    return Err(Error::unsupported(
                        "only the PCI root controller is supported",
                    ));
                }
            }
            t => return Err(not_supported("controller type", t)),
        }
    }
    Ok(())
}

fn check_interfaces(dom: &Domain) -> Result<()> {
    for n in &dom.devices.interfaces {
        if !matches!(
            n.iface_type,
            InterfaceType::Network | InterfaceType::Bridge | InterfaceType::Ethernet
        ) {
            return Err(not_supported("interface type", n.iface_type));
        }
        if let Some(model) = n.model.as_deref().filter(|m| *m != "virtio") {
            return Err(not_supported("interface model", model));
        }
    }
    Ok(())
}

fn check_chardev_source(c: &Chardev) -> Result<()> {
    match c.source_type {
        CharSourceType::Pty
        | CharSourceType::File
        | CharSourceType::Unix
        | CharSourceType::Null
        | CharSourceType::Tcp
        | CharSourceType::Stdio => Ok(()),
        t => Err(not_supported(&format!("{} type", c.kind), t)),
    }
}

fn check_chardevs(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    for s in &d.serials {
        check_chardev_source(s)?;
        if let Some(t) = s
            .target
            .target_type
            .as_deref()
            .filter(|t| *t != "isa-serial")
        {
            return Err(not_supported("serial target type", t));
        }
    }
    if !d.parallels.is_empty() {
        return Err(Error::unsupported("parallel ports are not supported"));
    }
    for c in &d.consoles {
        check_chardev_source(c)?;
        if let Some(t) = c
            .target
            .target_type
            .as_deref()
            .filter(|t| *t != "serial" && *t != "virtio")
        {
            return Err(not_supported("console target type", t));
        }
    }
    for c in &d.channels {
        check_chardev_source(c)?;
        if let Some(t) = c.target.target_type.as_deref().filter(|t| *t != "virtio") {
            return Err(not_supported("channel target type", t));
        }
    }
    Ok(())
}

fn check_other_devices(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    for i in &d.inputs {
        // PS/2 is the VMM's i8042; USB inputs are accepted and ignored
        // along with the USB controller.
        if let Some(bus) = i
            .bus
            .filter(|b| !matches!(b, InputBus::Ps2 | InputBus::Usb))
        {
            return Err(not_supported("input bus", bus));
        }
    }
    if let Some(g) = d.graphics.first() {
        return Err(not_supported("graphics type", g.graphics_type));
    }
    for v in &d.videos {
        if let Some(model) = v.model.filter(|m| *m != VideoModel::None) {
            return Err(not_supported("video model", model));
        }
    }
    if let Some(w) = d.watchdogs.first() {
        return Err(not_supported("watchdog model", w.model));
    }
    if let Some(b) = &d.memballoon
        && !matches!(b.model, BalloonModel::Virtio | BalloonModel::None)
    {
        return Err(not_supported("memballoon model", b.model));
    }
    for r in &d.rngs {
        if r.model != "virtio" {
            return Err(not_supported("rng model", &r.model));
        }
        if r.backend != RngBackendModel::Random {
            return Err(not_supported("rng backend model", r.backend));
        }
    }
    if let Some(v) = &d.vsock
        && let Some(m) = v.model.as_deref().filter(|m| *m != "virtio")
    {
        return Err(not_supported("vsock model", m));
    }
    for e in &d.kept {
        if e.name == "audio" && e.attr("type") != Some("none") {
            return Err(not_supported("audio type", e.attr("type").unwrap_or("")));
        }
        if UNSUPPORTED_KEPT.contains(&e.name.as_str()) {
            return Err(Error::unsupported(format!(
                "device <{}> is not supported",
                e.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_domain;

    fn check(devs: &str) -> Result<()> {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os><devices>{devs}</devices></domain>"
        ))?;
        check_supported(&d)
    }

    #[test]
    fn accepts_a_typical_guest() {
        check(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
             <controller type='usb' model='qemu-xhci'/>\
             <interface type='network'><source network='default'/><model type='virtio'/></interface>\
             <serial type='pty'/><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <input type='tablet' bus='usb'/><rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
        )
        .unwrap();
    }

    #[test]
    fn names_what_it_refuses() {
        assert_eq!(
            check("<graphics type='spice'/>").unwrap_err().message,
            "unsupported configuration: graphics type 'spice' is not supported"
        );
        assert_eq!(
            check("<disk><source file='/a'/><target dev='sda' bus='sata'/></disk>")
                .unwrap_err()
                .message,
            "unsupported configuration: disk bus 'sata' is not supported"
        );
        assert_eq!(
            check("<interface type='user'/>").unwrap_err().message,
            "unsupported configuration: interface type 'user' is not supported"
        );
        let d = parse_domain("<domain type='qemu'><name>t</name><memory>1</memory><os><type>hvm</type></os></domain>").unwrap();
        assert_eq!(
            check_supported(&d).unwrap_err().message,
            "unsupported configuration: domain type 'qemu' is not supported"
        );
    }
}
