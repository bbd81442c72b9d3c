//! Post-parse defaults: what libvirt fills in on define, adapted to
//! oxvirt's machine (one PCI root bus, no chipset devices in slot 1).

mod chardevs;
mod controllers;
mod cpu;
mod devices;
mod graphics;
pub mod pci;
mod validate;
mod video;

use crate::error::{Error, Result};

use super::model::Domain;
use super::model::domain::VcpuPlacement;
use super::model::os::{BootDev, LoaderType, Nvram, OsType};
use super::tree::Element;

/// Fill every default, in the order libvirt's post-parse does.
pub fn fill(dom: &mut Domain) -> Result<()> {
    validate::check_capabilities(dom)?;
    // Indexes written in the XML first; those filled in are checked again.
    super::model::devices::check_controller_indexes(&dom.devices.controllers)?;
    fill_os(dom)?;
    fill_numatune(dom);
    cpu::fill(dom);
    devices::fill(dom);
    graphics::fill(dom)?;
    video::fill(dom);
    pci::check_duplicates(dom)?;
    validate::check(dom)?;
    chardevs::fill(dom)?;
    controllers::fill(dom)?;
    pci::assign(dom)?;
    for disk in &dom.devices.disks {
        super::model::disk::check_dev_name(disk)?;
    }
    Ok(())
}

fn has_device_boot_order(dom: &Domain) -> bool {
    let d = &dom.devices;
    d.disks.iter().any(|x| x.boot_order.is_some())
        || d.interfaces.iter().any(|x| x.boot_order.is_some())
        || d.kept
            .iter()
            .any(|e| e.child("boot").is_some_and(|b| b.attr("order").is_some()))
}

fn fill_os(dom: &mut Domain) -> Result<()> {
    let per_device = has_device_boot_order(dom);
    if per_device && !dom.os.boot_devs.is_empty() {
        return Err(Error::unsupported(
            "per-device boot elements cannot be used together with os/boot elements",
        ));
    }
    fill_nvram(dom);
    if dom.os.os_type == OsType::Hvm {
        if dom.os.arch.is_none() {
            dom.os.arch = Some("x86_64".to_string());
        }
        dom.os.machine = Some(canonical_machine(dom.os.machine.as_deref()).to_string());
        if !per_device && dom.os.boot_devs.is_empty() {
            dom.os.boot_devs.push(BootDev::Hd);
        }
    }
    Ok(())
}

/// The machine type as libvirt's QEMU driver records it: QEMU's aliases
/// `pc` and `q35` (and no machine at all, which means `pc`) become the
/// versioned names of QEMU 7.2, the version libvirt reports here; any
/// other name is kept as written. oxvirt runs every one on its platform.
pub fn canonical_machine(machine: Option<&str>) -> &str {
    match machine {
        None | Some("pc") => "pc-i440fx-7.2",
        Some("q35") => "pc-q35-7.2",
        Some(other) => other,
    }
}

/// Where a guest's UEFI variable store lives unless the XML says.
pub const NVRAM_DIR: &str = "/var/lib/oxvirt/nvram";

/// A read-only pflash firmware needs a writable variable store per guest.
fn fill_nvram(dom: &mut Domain) {
    let needs_store = dom
        .os
        .loader
        .as_ref()
        .is_some_and(|l| l.loader_type == Some(LoaderType::Pflash) && l.readonly == Some(true));
    if !needs_store {
        return;
    }
    let nvram = dom.os.nvram.get_or_insert_with(Nvram::default);
    if nvram.path.is_none() {
        nvram.path = Some(format!("{NVRAM_DIR}/{}_VARS.fd", dom.name));
    }
}

/// Automatic vCPU placement implies automatic memory placement.
fn fill_numatune(dom: &mut Domain) {
    if dom.vcpu.placement == VcpuPlacement::Auto && !dom.kept.iter().any(|e| e.name == "numatune") {
        dom.kept.push(
            Element::new("numatune").with_child(
                Element::new("memory")
                    .with_attr("mode", "strict")
                    .with_attr("placement", "auto"),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::parse_domain;

    const BASE: &str = "<domain type='kvm'><name>t</name><memory>65536</memory>";

    #[test]
    fn adds_boot_hd_unless_device_boot_order() {
        let d = parse_domain(&format!("{BASE}<os><type>hvm</type></os></domain>")).unwrap();
        assert_eq!(d.os.boot_devs.len(), 1);
        let d = parse_domain(&format!(
            "{BASE}<os><type>hvm</type></os><devices><disk><source file='/a'/><target dev='vda'/><boot order='1'/></disk></devices></domain>"
        ))
        .unwrap();
        assert!(d.os.boot_devs.is_empty());
        let err = parse_domain(&format!(
            "{BASE}<os><type>hvm</type><boot dev='hd'/></os><devices><disk><source file='/a'/><target dev='vda'/><boot order='1'/></disk></devices></domain>"
        ))
        .unwrap_err();
        assert_eq!(err.code as i32, 67);
    }

    #[test]
    fn checks_topology_against_vcpus() {
        let err = parse_domain(&format!(
            "{BASE}<vcpu>4</vcpu><os><type>hvm</type></os><cpu><topology sockets='1' cores='2' threads='1'/></cpu></domain>"
        ))
        .unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: CPU topology doesn't match maximum vcpu count"
        );
    }
}
