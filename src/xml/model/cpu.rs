//! `<cpu>`: CPU model, features and topology.

use crate::error::{Error, Result};
use crate::xml::props::{
    XmlEnum, enum_attr, missing_attr, on_off, on_off_attr, opt_string, positive_attr, xml_enum,
};
use crate::xml::tree::Element;

xml_enum! {
    CpuMode { Custom = "custom", HostModel = "host-model", HostPassthrough = "host-passthrough", Maximum = "maximum" }
}

xml_enum! {
    CpuMatch { Minimum = "minimum", Exact = "exact", Strict = "strict" }
}

xml_enum! {
    CpuCheck { None = "none", Partial = "partial", Full = "full" }
}

xml_enum! {
    CpuFallback { Allow = "allow", Forbid = "forbid" }
}

xml_enum! {
    FeaturePolicy { Force = "force", Require = "require", Optional = "optional", Disable = "disable", Forbid = "forbid" }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuModel {
    pub name: String,
    pub fallback: Option<CpuFallback>,
    pub vendor_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    pub sockets: u32,
    pub dies: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Topology {
    /// Total vCPUs the topology describes, or `None` on overflow.
    pub fn vcpus(&self) -> Option<u32> {
        self.sockets
            .checked_mul(self.dies)?
            .checked_mul(self.cores)?
            .checked_mul(self.threads)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuFeature {
    pub policy: Option<FeaturePolicy>,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cpu {
    pub mode: Option<CpuMode>,
    pub match_: Option<CpuMatch>,
    pub check: Option<CpuCheck>,
    pub migratable: Option<bool>,
    pub model: Option<CpuModel>,
    pub vendor: Option<String>,
    pub topology: Option<Topology>,
    /// `<cache>` kept as written.
    pub cache: Option<Element>,
    pub features: Vec<CpuFeature>,
    /// `<numa>` kept as written (cells with their memory normalised).
    pub numa: Option<Element>,
}

fn topology_part(t: &Element, attr: &str) -> Result<u32> {
    positive_attr(t, attr)?.ok_or_else(|| missing_attr(t, attr))
}

impl Cpu {
    pub fn parse(cpu: &Element) -> Result<Cpu> {
        let mode = match cpu.attr("mode") {
            None => None,
            Some(m) => Some(
                CpuMode::from_xml(m)
                    .ok_or_else(|| Error::unsupported(format!("Invalid mode attribute '{m}'")))?,
            ),
        };
        let model = cpu.child("model").map(|m| -> Result<CpuModel> {
            Ok(CpuModel {
                name: m.text.trim().to_string(),
                fallback: match m.attr("fallback") {
                    None => None,
                    Some(f) => Some(
                        CpuFallback::from_xml(f)
                            .ok_or_else(|| Error::unsupported("Invalid fallback attribute"))?,
                    ),
                },
                vendor_id: opt_string(m, "vendor_id"),
            })
        });
        let topology = match cpu.child("topology") {
            None => None,
            Some(t) => Some(Topology {
                sockets: topology_part(t, "sockets")?,
                dies: positive_attr(t, "dies")?.unwrap_or(1),
                cores: topology_part(t, "cores")?,
                threads: topology_part(t, "threads")?,
            }),
        };
        let mut features = Vec::new();
        for f in cpu.children_named("feature") {
            let policy = match f.attr("policy") {
                None => None,
                Some(p) => Some(
                    FeaturePolicy::from_xml(p)
                        .ok_or_else(|| Error::unsupported("Invalid CPU feature policy"))?,
                ),
            };
            let name = f
                .attr("name")
                .filter(|n| !n.is_empty())
                .ok_or_else(|| Error::xml("Invalid CPU feature name"))?;
            if features.iter().any(|x: &CpuFeature| x.name == name) {
                return Err(Error::xml(format!(
                    "CPU feature '{name}' specified more than once"
                )));
            }
            features.push(CpuFeature {
                policy,
                name: name.to_string(),
            });
        }
        let migratable_mode = matches!(
            mode,
            Some(CpuMode::HostPassthrough) | Some(CpuMode::Maximum)
        );
        if cpu.attr("migratable").is_some() && !migratable_mode {
            return Err(Error::unsupported(
                "Attribute migratable is only allowed for 'host-passthrough' / 'maximum' CPU mode",
            ));
        }
        let custom = matches!(mode, None | Some(CpuMode::Custom));
        if custom && cpu.child("model").is_none() && cpu.child("feature").is_some() {
            return Err(Error::xml(
                "Non-empty feature list specified without CPU model",
            ));
        }
        if cpu.child("vendor").is_some() && cpu.child("model").is_none() {
            return Err(Error::xml("CPU vendor specified without CPU model"));
        }
        let numa = match cpu.child("numa") {
            None => None,
            Some(n) => Some(normalise_numa(n)?),
        };
        Ok(Cpu {
            mode,
            match_: enum_attr(cpu, "match")?,
            check: enum_attr(cpu, "check")?,
            migratable: on_off_attr(cpu, "migratable")?,
            model: model.transpose()?,
            vendor: cpu.child_text("vendor").map(str::to_string),
            topology,
            cache: cpu.child("cache").cloned(),
            features,
            numa,
        })
    }

    /// Memory of all NUMA cells in KiB, if cells are defined.
    pub fn numa_memory_kib(&self) -> Option<u64> {
        let numa = self.numa.as_ref()?;
        let mut total = 0u64;
        let mut any = false;
        for cell in numa.children_named("cell") {
            any = true;
            total = total.saturating_add(
                cell.attr("memory")
                    .and_then(|m| m.parse().ok())
                    .unwrap_or(0),
            );
        }
        any.then_some(total)
    }

    pub fn to_element(&self) -> Element {
        let mut e = Element::new("cpu")
            .with_opt_attr("mode", self.mode)
            .with_opt_attr("match", self.match_)
            .with_opt_attr("check", self.check)
            .with_opt_attr("migratable", self.migratable.map(on_off));
        if let Some(m) = &self.model {
            e.children.push(
                Element::new("model")
                    .with_opt_attr("fallback", m.fallback)
                    .with_opt_attr("vendor_id", m.vendor_id.as_ref())
                    .with_text(m.name.clone()),
            );
        }
        if let Some(v) = &self.vendor {
            e.children.push(Element::new("vendor").with_text(v.clone()));
        }
        if let Some(t) = &self.topology {
            e.children.push(
                Element::new("topology")
                    .with_attr("sockets", t.sockets.to_string())
                    .with_attr("dies", t.dies.to_string())
                    .with_attr("cores", t.cores.to_string())
                    .with_attr("threads", t.threads.to_string()),
            );
        }
        e = e.with_opt_child(self.cache.clone());
        for f in &self.features {
            e.children.push(
                Element::new("feature")
                    .with_opt_attr("policy", f.policy)
                    .with_attr("name", f.name.clone()),
            );
        }
        e.with_opt_child(self.numa.clone())
    }
}

/// Rewrite each NUMA cell's memory in KiB, as libvirt prints it.
fn normalise_numa(numa: &Element) -> Result<Element> {
    let mut out = numa.clone();
    for (index, cell) in out
        .children
        .iter_mut()
        .filter(|c| c.name == "cell")
        .enumerate()
    {
        if cell.attr("id").is_none() {
            cell.attrs.insert(0, ("id".into(), index.to_string()));
        }
        let Some(mem) = cell.attr("memory") else {
            return Err(missing_attr(cell, "memory"));
        };
        let probe = Element::new("memory")
            .with_attr("unit", cell.attr("unit").unwrap_or("KiB"))
            .with_text(mem);
        let kib = crate::xml::units::parse_memory_kib(&probe)?;
        for (k, v) in cell.attrs.iter_mut() {
            if k == "memory" {
                *v = kib.to_string();
            }
        }
        cell.attrs.retain(|(k, _)| k != "unit");
        cell.attrs.push(("unit".into(), "KiB".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn parses_topology_with_default_dies() {
        let e = parse_document(
            "<cpu mode='host-passthrough'><topology sockets='1' cores='2' threads='2'/></cpu>",
        )
        .unwrap();
        let cpu = Cpu::parse(&e).unwrap();
        assert_eq!(cpu.topology.unwrap().vcpus(), Some(4));
        assert_eq!(Cpu::parse(&cpu.to_element()).unwrap(), cpu);
    }

    #[test]
    fn reports_missing_threads_and_bad_mode() {
        let e = parse_document("<cpu><topology sockets='1' cores='2'/></cpu>").unwrap();
        assert_eq!(
            Cpu::parse(&e).unwrap_err().message,
            "XML error: Missing required attribute 'threads' in element 'topology'"
        );
        let e = parse_document("<cpu mode='foo'/>").unwrap();
        assert_eq!(
            Cpu::parse(&e).unwrap_err().message,
            "unsupported configuration: Invalid mode attribute 'foo'"
        );
    }

    #[test]
    fn normalises_numa_memory() {
        let e =
            parse_document("<cpu><numa><cell id='0' cpus='0' memory='1' unit='GiB'/></numa></cpu>")
                .unwrap();
        let cpu = Cpu::parse(&e).unwrap();
        assert_eq!(cpu.numa_memory_kib(), Some(1_048_576));
    }
}
