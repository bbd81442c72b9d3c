//! `<features>`: hypervisor features, kept per known feature in libvirt's
//! canonical order.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::xml::props::{XmlEnum, on_off_attr, xml_enum};
use crate::xml::tree::Element;

xml_enum! {
    /// Feature names in the order libvirt formats them.
    #[derive(PartialOrd, Ord)]
    FeatureKind {
        Acpi = "acpi", Apic = "apic", Pae = "pae", Hap = "hap", Viridian = "viridian",
        Privnet = "privnet", Hyperv = "hyperv", Kvm = "kvm", Pvspinlock = "pvspinlock",
        Capabilities = "capabilities", Pmu = "pmu", Vmport = "vmport", Gic = "gic", Smm = "smm",
        Ioapic = "ioapic", Hpt = "hpt", Htm = "htm", NestedHv = "nested-hv", Msrs = "msrs",
        CcfAssist = "ccf-assist", Xen = "xen", Cfpc = "cfpc", Sbbc = "sbbc", Ibs = "ibs",
        Tcg = "tcg", AsyncTeardown = "async-teardown",
    }
}

/// Each feature present, with its element as written (attributes and
/// sub-elements such as `<hyperv>` flags).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub entries: BTreeMap<FeatureKind, Element>,
}

impl Features {
    pub fn parse(features: &Element) -> Result<Features> {
        let mut entries = BTreeMap::new();
        for child in &features.children {
            let kind = FeatureKind::from_xml(&child.name).ok_or_else(|| {
                Error::unsupported(format!("unexpected feature '{}'", child.name))
            })?;
            // Validate the common on/off switch where the feature has one.
            on_off_attr(child, "state")?;
            if kind == FeatureKind::Apic {
                on_off_attr(child, "eoi")?;
            }
            if kind == FeatureKind::Ioapic
                && let Some(d) = child.attr("driver")
                && d != "kvm"
                && d != "qemu"
            {
                return Err(Error::unsupported(format!(
                    "Unknown value for attribute driver: '{d}'"
                )));
            }
            entries.insert(kind, child.clone());
        }
        Ok(Features { entries })
    }

    pub fn has(&self, kind: FeatureKind) -> bool {
        self.entries.contains_key(&kind)
    }

    /// The `state` switch of a feature: `Some(true)` for present without
    /// a state or `state='on'`.
    pub fn state(&self, kind: FeatureKind) -> Option<bool> {
        self.entries
            .get(&kind)
            .map(|e| e.attr("state").is_none_or(|s| s == "on"))
    }

    pub fn enable(&mut self, kind: FeatureKind) {
        self.entries
            .entry(kind)
            .or_insert_with(|| Element::new(kind.as_str()));
    }

    pub fn to_element(&self) -> Option<Element> {
        if self.entries.is_empty() {
            return None;
        }
        let mut e = Element::new("features");
        e.children.extend(self.entries.values().cloned());
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn orders_features_as_libvirt() {
        let e =
            parse_document("<features><smm state='on'/><pae/><acpi/><apic eoi='on'/></features>")
                .unwrap();
        let f = Features::parse(&e).unwrap();
        let names: Vec<_> = f
            .to_element()
            .unwrap()
            .children
            .iter()
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(names, ["acpi", "apic", "pae", "smm"]);
        assert_eq!(f.state(FeatureKind::Smm), Some(true));
    }

    #[test]
    fn rejects_unknown_feature() {
        let e = parse_document("<features><acpi/><foo/></features>").unwrap();
        assert_eq!(
            Features::parse(&e).unwrap_err().message,
            "unsupported configuration: unexpected feature 'foo'"
        );
    }
}
