//! What oxvirt's KVM driver will run. A definition can be valid libvirt
//! XML yet ask for hardware oxvirt has no model for; each rule here names
//! the element and value it refuses (`VIR_ERR_CONFIG_UNSUPPORTED`).
//! `xml-schemas/README.md` ("What oxvirt accepts") explains each choice.
//!
//! The rules are deliberately about device *kinds*: finer limits of the
//! VMM (which disk formats or buses it emulates today) are the driver's
//! to report when it resolves a domain for start.

use crate::error::{Error, Result};

use super::model::Domain;
use super::model::chardev::{CharSourceType, Chardev};
use super::model::disk::DiskType;
use super::model::display::{GraphicsType, Listen, VideoModel};
use super::model::domain::VirtType;
use super::model::input::{InputBus, InputType};

fn not_supported(what: &str, value: impl std::fmt::Display) -> Error {
    Error::unsupported(format!("{what} '{value}' is not supported"))
}

/// Device elements kept as written that oxvirt has no device model for.
const UNSUPPORTED_DEVICES: &[&str] = &[
    "filesystem",
    "smartcard",
    "tpm",
    "sound",
    "hostdev",
    "redirdev",
    "hub",
    "shmem",
    "memory",
    "iommu",
    "crypto",
    "lease",
];

/// Character device back ends that only make sense with SPICE or D-Bus
/// displays, which oxvirt does not provide.
fn display_chardev(c: &Chardev) -> bool {
    matches!(
        c.source_type,
        CharSourceType::Spicevmc
            | CharSourceType::Spiceport
            | CharSourceType::QemuVdagent
            | CharSourceType::Dbus
            | CharSourceType::Vc
    )
}

/// Check `dom` against what oxvirt can run; the first problem wins.
pub fn check_supported(dom: &Domain) -> Result<()> {
    check_machine(dom)?;
    check_devices(dom)?;
    Ok(())
}

fn check_machine(dom: &Domain) -> Result<()> {
    if dom.virt_type != VirtType::Kvm {
        return Err(not_supported("domain type", dom.virt_type));
    }
    // A 32-bit guest runs in the same machine; firmware starts it in real
    // mode like any other.
    if let Some(arch) = dom
        .os
        .arch
        .as_deref()
        .filter(|a| !["x86_64", "i686"].contains(a))
    {
        return Err(not_supported("architecture", arch));
    }
    Ok(())
}

fn check_devices(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    for disk in &d.disks {
        // A volume of a storage pool is its file, found when the guest starts.
        if !matches!(
            disk.disk_type,
            DiskType::File | DiskType::Block | DiskType::Dir | DiskType::Volume
        ) {
            return Err(not_supported("disk type", disk.disk_type));
        }
    }
    check_display(dom)?;
    for e in &d.kept {
        if UNSUPPORTED_DEVICES.contains(&e.name.as_str()) {
            return Err(Error::unsupported(format!(
                "{} devices are not supported",
                e.name
            )));
        }
        if e.name == "audio"
            && let Some(t) = e.attr("type").filter(|t| *t != "none")
        {
            return Err(not_supported("audio type", t));
        }
    }
    let chardevs = d
        .serials
        .iter()
        .chain(&d.parallels)
        .chain(&d.consoles)
        .chain(&d.channels);
    for c in chardevs {
        if display_chardev(c) {
            return Err(not_supported(&format!("{} type", c.kind), c.source_type));
        }
    }
    Ok(())
}

/// One VNC server, the standard VGA adapter, and the PS/2, USB and virtio
/// input devices; SPICE and the other outputs are not offered.
fn check_display(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    for g in &d.graphics {
        if g.graphics_type != GraphicsType::Vnc {
            return Err(not_supported("graphics type", g.graphics_type));
        }
        if let Some(Listen::Network(_)) = g.listens()?.first() {
            return Err(not_supported("graphics listen type", "network"));
        }
    }
    if d.graphics.len() > 1 {
        return Err(Error::unsupported(
            "only 1 graphics device of each type (sdl, vnc, spice, dbus) is supported",
        ));
    }
    for v in &d.videos {
        if let Some(model) = v
            .model
            .filter(|m| !matches!(m, VideoModel::None | VideoModel::Vga | VideoModel::Virtio))
        {
            return Err(not_supported("video model", model));
        }
    }
    if d.videos
        .iter()
        .filter(|v| v.model.is_some_and(|m| m != VideoModel::None))
        .count()
        > 1
    {
        return Err(Error::unsupported("only one video adapter is supported"));
    }
    for i in &d.inputs {
        match (i.input_type, i.bus) {
            (InputType::Mouse | InputType::Keyboard, Some(InputBus::Ps2) | None) => {}
            (
                InputType::Mouse | InputType::Keyboard | InputType::Tablet,
                Some(InputBus::Usb | InputBus::Virtio),
            ) => {}
            (InputType::Tablet, None) => {}
            (InputType::Mouse | InputType::Keyboard | InputType::Tablet, Some(bus)) => {
                return Err(not_supported("input bus", bus));
            }
            (t, _) => return Err(not_supported("input device type", t)),
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
            "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/a'/><target dev='vda' bus='virtio'/></disk>\
             <controller type='usb' model='qemu-xhci'/>\
             <interface type='network'><source network='default'/><model type='virtio'/></interface>\
             <serial type='pty'/><channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
             <input type='tablet' bus='usb'/><video><model type='none'/></video>\
             <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>",
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
            check("<graphics type='vnc'/><graphics type='vnc'/>")
                .unwrap_err()
                .message,
            "unsupported configuration: only 1 graphics device of each type (sdl, vnc, spice, dbus) is supported"
        );
        check("<input type='tablet' bus='virtio'/><input type='keyboard' bus='virtio'/>").unwrap();
        assert_eq!(
            check(
                "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>"
            )
            .unwrap_err()
            .message,
            "unsupported configuration: input device type 'passthrough' is not supported"
        );
        assert_eq!(
            check("<input type='mouse' bus='xen'/>")
                .unwrap_err()
                .message,
            "unsupported configuration: input bus 'xen' is not supported"
        );
        check("<graphics type='vnc' passwd='x'/><video><model type='vga'/></video>").unwrap();
        assert_eq!(
            check("<video><model type='qxl'/></video>")
                .unwrap_err()
                .message,
            "unsupported configuration: video model 'qxl' is not supported"
        );
        assert_eq!(
            check("<sound model='ich9'/>").unwrap_err().message,
            "unsupported configuration: sound devices are not supported"
        );
        assert_eq!(
            check("<disk type='network'><source protocol='nbd' name='x'><host name='h'/></source><target dev='vda'/></disk>")
                .unwrap_err()
                .message,
            "unsupported configuration: disk type 'network' is not supported"
        );
        let d = parse_domain("<domain type='qemu'><name>t</name><memory>1</memory><os><type>hvm</type></os></domain>").unwrap();
        assert_eq!(
            check_supported(&d).unwrap_err().message,
            "unsupported configuration: domain type 'qemu' is not supported"
        );
    }
}
