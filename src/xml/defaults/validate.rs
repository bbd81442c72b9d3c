//! Consistency rules libvirt enforces when a domain is defined, beyond
//! what each element checks on its own.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::model::Domain;
use crate::xml::model::controller::ControllerType;
use crate::xml::model::display::VideoModel;
use crate::xml::model::domain::VirtType;
use crate::xml::model::features::FeatureKind;
use crate::xml::model::input::InputBus;
use crate::xml::model::lifecycle::{CrashAction, LifecycleAction};
use crate::xml::model::os::OsType;
use crate::xml::model::os::{Firmware, LoaderType};
use crate::xml::props::XmlEnum;

/// The emulator libvirt names in capability errors; oxvirt answers as a
/// standard x86_64 KVM host would.
const EMULATOR: &str = "/usr/bin/qemu-system-x86_64";

/// What the host can run at all: HVM guests under KVM (or plain
/// emulation, which `check_supported` refuses later with its own error).
pub fn check_capabilities(dom: &Domain) -> Result<()> {
    if dom.os.os_type != OsType::Hvm {
        return Err(Error::unsupported(format!(
            "Emulator '{EMULATOR}' does not support os type '{}'",
            dom.os.os_type
        )));
    }
    if !matches!(dom.virt_type, VirtType::Kvm | VirtType::Qemu) {
        return Err(Error::unsupported(format!(
            "Emulator '{EMULATOR}' does not support virt type '{}'",
            dom.virt_type
        )));
    }
    Ok(())
}

pub fn check(dom: &Domain) -> Result<()> {
    check_topology(dom)?;
    check_vcpu_limit(dom)?;
    check_lifecycle(dom)?;
    check_boot_orders(dom)?;
    check_usb(dom)?;
    check_uefi_acpi(dom)?;
    check_secondary_videos(dom)?;
    dom.devices.validate()?;
    Ok(())
}

fn check_topology(dom: &Domain) -> Result<()> {
    let Some(topology) = dom.cpu.as_ref().and_then(|c| c.topology) else {
        return Ok(());
    };
    if topology.vcpus() != Some(dom.vcpu.max) {
        return Err(Error::unsupported(
            "CPU topology doesn't match maximum vcpu count",
        ));
    }
    Ok(())
}

/// The vCPU ceiling of the machine types libvirt's x86 guests use.
fn check_vcpu_limit(dom: &Domain) -> Result<()> {
    let q35 = dom.os.machine.as_deref().is_some_and(|m| m.contains("q35"));
    let limit = if q35 { 288 } else { 255 };
    if dom.vcpu.max > limit {
        return Err(Error::unsupported(format!(
            "Maximum CPUs greater than specified machine type limit {limit}"
        )));
    }
    Ok(())
}

fn check_lifecycle(dom: &Domain) -> Result<()> {
    let preserve = [dom.on_poweroff, dom.on_reboot].contains(&LifecycleAction::Preserve);
    if preserve {
        return Err(Error::unsupported(
            "qemu driver doesn't support the 'preserve' action for 'on_reboot'/'on_poweroff'",
        ));
    }
    let rename = [dom.on_poweroff, dom.on_reboot].contains(&LifecycleAction::RenameRestart)
        || dom.on_crash == CrashAction::RenameRestart;
    if rename {
        return Err(Error::unsupported(
            "qemu driver doesn't support the 'rename-restart' action for 'on_reboot'/'on_poweroff'/'on_crash'",
        ));
    }
    Ok(())
}

/// Per-device boot orders must be distinct.
fn check_boot_orders(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    let kept = d.kept.iter().filter_map(|e| {
        e.child("boot")
            .and_then(|b| b.attr("order"))
            .and_then(|o| o.trim().parse::<u32>().ok())
    });
    let mut seen: Vec<u32> = Vec::new();
    let orders = d
        .disks
        .iter()
        .filter_map(|x| x.boot_order)
        .chain(d.interfaces.iter().filter_map(|x| x.boot_order))
        .chain(kept);
    for order in orders {
        if seen.contains(&order) {
            return Err(Error::unsupported(format!(
                "boot order '{order}' used for more than one device"
            )));
        }
        seen.push(order);
    }
    Ok(())
}

/// `<controller type='usb' model='none'>` disables USB for the guest;
/// companion controllers need a master.
fn check_usb(dom: &Domain) -> Result<()> {
    let d = &dom.devices;
    let usb: Vec<_> = d
        .controllers
        .iter()
        .filter(|c| c.ctrl_type == ControllerType::Usb)
        .collect();
    let others: Vec<_> = usb.iter().filter(|c| !c.model_is("none")).collect();
    if !others.is_empty() && others.iter().all(|c| c.master_startport.is_some()) {
        return Err(Error::new(
            ErrorCode::XmlDetail,
            ErrorDomain::Domain,
            "No master USB controller specified",
        ));
    }
    if !usb.iter().any(|c| c.model_is("none")) {
        return Ok(());
    }
    if usb.len() > 1 {
        return Err(Error::new(
            ErrorCode::XmlDetail,
            ErrorDomain::Domain,
            "Can't add another USB controller: USB is disabled for this domain",
        ));
    }
    if d.inputs.iter().any(|i| i.bus == Some(InputBus::Usb)) {
        return Err(Error::unsupported(
            "Can't add USB input device. USB bus is disabled",
        ));
    }
    Ok(())
}

/// UEFI firmware finds its hardware description in ACPI tables.
fn check_uefi_acpi(dom: &Domain) -> Result<()> {
    let pflash = dom
        .os
        .loader
        .as_ref()
        .is_some_and(|l| l.loader_type == Some(LoaderType::Pflash));
    let efi = dom.os.firmware == Some(Firmware::Efi);
    if (pflash || efi) && !dom.features.has(FeatureKind::Acpi) {
        return Err(Error::unsupported(
            "UEFI requires ACPI on this architecture",
        ));
    }
    Ok(())
}

/// Only paravirtual adapters can be added next to the primary one.
fn check_secondary_videos(dom: &Domain) -> Result<()> {
    for v in dom.devices.videos.iter().skip(1) {
        if let Some(m) = v
            .model
            .filter(|m| !matches!(m, VideoModel::Virtio | VideoModel::Qxl))
        {
            return Err(Error::unsupported(format!(
                "video type '{}' is only valid as primary video device",
                m.as_str()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::xml::parse_domain;

    fn parse(os: &str, rest: &str) -> crate::error::Result<crate::xml::Domain> {
        parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><vcpu>4</vcpu><os><type>hvm</type>{os}</os>{rest}</domain>"
        ))
    }

    #[test]
    fn topology_must_match_vcpus() {
        let err = parse(
            "",
            "<cpu><topology sockets='1' cores='2' threads='1'/></cpu>",
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: CPU topology doesn't match maximum vcpu count"
        );
        parse(
            "",
            "<cpu><topology sockets='1' cores='2' threads='2'/></cpu>",
        )
        .unwrap();
    }

    #[test]
    fn uefi_needs_acpi() {
        let os = "<loader readonly='yes' type='pflash'>/c.fd</loader>";
        let err = parse(os, "").unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: UEFI requires ACPI on this architecture"
        );
        parse(os, "<features><acpi/></features>").unwrap();
    }

    #[test]
    fn a_companion_needs_a_master() {
        let err = parse(
            "",
            "<devices><controller type='usb' index='0' model='ich9-uhci2'><master startport='2'/></controller></devices>",
        )
        .unwrap_err();
        assert_eq!(err.code as i32, 35);
        assert_eq!(err.message, "No master USB controller specified");
        parse("", "<devices><controller type='usb' model='ich9-ehci1'/><controller type='usb' model='ich9-uhci1'/></devices>").unwrap();
    }

    #[test]
    fn secondary_video_must_be_paravirtual() {
        let err = parse("", "<devices><video><model type='virtio'/></video><video><model type='vga'/></video></devices>").unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: video type 'vga' is only valid as primary video device"
        );
    }
}
