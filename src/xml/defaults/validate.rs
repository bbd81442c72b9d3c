//! Consistency rules libvirt enforces when a domain is defined, beyond
//! what each element checks on its own.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::model::display::VideoModel;
use crate::xml::model::features::FeatureKind;
use crate::xml::model::os::{Firmware, LoaderType};
use crate::xml::props::XmlEnum;

pub fn check(dom: &Domain) -> Result<()> {
    check_topology(dom)?;
    check_uefi_acpi(dom)?;
    check_secondary_videos(dom)?;
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
    fn secondary_video_must_be_paravirtual() {
        let err = parse("", "<devices><video><model type='virtio'/></video><video><model type='vga'/></video></devices>").unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: video type 'vga' is only valid as primary video device"
        );
    }
}
