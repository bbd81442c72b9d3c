//! Guest CPU defaults: the mode a bare model implies, and the match,
//! check, fallback and migratable values libvirt fills per mode.

use crate::xml::model::Domain;
use crate::xml::model::cpu::{Cpu, CpuCheck, CpuFallback, CpuMatch, CpuMode};

pub fn fill(dom: &mut Domain) {
    // Without <cpu>, libvirt's QEMU driver writes the model QEMU would
    // give (qemu64). oxvirt-vmm gives the guest the host's CPUID, filtered
    // to what it can run, so the element that describes that is
    // host-passthrough; clients such as Cockpit read the mode from it.
    let cpu = dom.cpu.get_or_insert_with(|| Cpu {
        mode: Some(CpuMode::HostPassthrough),
        ..Cpu::default()
    });
    if cpu.mode.is_none() && cpu.model.is_some() {
        cpu.mode = Some(CpuMode::Custom);
    }
    match cpu.mode {
        Some(CpuMode::Custom) => {
            if let Some(model) = cpu.model.as_mut() {
                cpu.match_.get_or_insert(CpuMatch::Exact);
                cpu.check.get_or_insert(CpuCheck::Partial);
                model.fallback.get_or_insert(CpuFallback::Allow);
            }
        }
        Some(CpuMode::HostModel) => {
            cpu.check.get_or_insert(CpuCheck::Partial);
        }
        Some(CpuMode::HostPassthrough) => {
            cpu.check.get_or_insert(CpuCheck::None);
            cpu.migratable.get_or_insert(true);
        }
        Some(CpuMode::Maximum) => {
            cpu.check.get_or_insert(CpuCheck::None);
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::xml::{FormatFlags, parse_domain};

    fn cpu_line(cpu: &str) -> String {
        let d = parse_domain(&format!(
            "<domain type='kvm'><name>t</name><memory>65536</memory><os><type>hvm</type></os>{cpu}</domain>"
        ))
        .unwrap();
        let xml = d.to_xml(FormatFlags::from_bits(FormatFlags::INACTIVE));
        xml.lines()
            .skip_while(|l| !l.contains("<cpu"))
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn fills_per_mode() {
        assert_eq!(
            cpu_line("<cpu match='minimum'><model>kvm64</model></cpu>"),
            "  <cpu mode='custom' match='minimum' check='partial'>\n    <model fallback='allow'>kvm64</model>"
        );
        assert!(
            cpu_line("<cpu mode='host-passthrough'/>")
                .starts_with("  <cpu mode='host-passthrough' check='none' migratable='on'/>")
        );
        assert!(
            cpu_line("<cpu mode='host-model'/>")
                .starts_with("  <cpu mode='host-model' check='partial'/>")
        );
    }
}
