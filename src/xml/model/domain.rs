//! `<domain>`: identity, memory, vCPUs, and the composition of all parts.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::props::{XmlEnum, enum_attr, uint_attr, xml_enum};
use crate::xml::tree::Element;
use crate::xml::units::{memory_element, parse_memory_kib};
use crate::xml::uuid_text::{generate, parse_uuid};

use super::clock::Clock;
use super::cpu::Cpu;
use super::devices::Devices;
use super::features::Features;
use super::lifecycle::{CrashAction, LifecycleAction, Pm, parse_action};
use super::os::Os;

xml_enum! {
    /// `<domain type=...>`: the hypervisor the definition is written for.
    VirtType {
        None = "none", Qemu = "qemu", Kqemu = "kqemu", Kvm = "kvm", Xen = "xen", Lxc = "lxc",
        Uml = "uml", Openvz = "openvz", Test = "test", Vmware = "vmware", Hyperv = "hyperv",
        Vbox = "vbox", Phyp = "phyp", Parallels = "parallels", Bhyve = "bhyve", Vz = "vz",
    }
}

xml_enum! {
    VcpuPlacement { Static = "static", Auto = "auto" }
}

/// Top-level elements kept as written, in libvirt's formatting order.
/// `None` marks where the typed parts go.
const KEPT_TOP_LEVEL: &[&str] = &[
    "blkiotune",
    "memtune",
    "memoryBacking",
    "vcpus",
    "iothreads",
    "iothreadids",
    "cputune",
    "numatune",
    "resource",
    "sysinfo",
    "bootloader",
    "bootloader_args",
    "idmap",
    "perf",
    "seclabel",
    "keywrap",
    "launchSecurity",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxMemory {
    pub kib: u64,
    pub slots: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vcpu {
    pub max: u32,
    /// vCPUs online at boot, when fewer than `max`.
    pub current: Option<u32>,
    pub placement: VcpuPlacement,
    pub cpuset: Option<String>,
}

impl Vcpu {
    /// The vCPUs online: `current`, or all of them.
    pub fn online(&self) -> u32 {
        self.current.unwrap_or(self.max)
    }

    /// `n` online; `current` is written only below the maximum, as libvirt
    /// formats it.
    pub fn set_online(&mut self, n: u32) {
        self.current = (n != self.max).then_some(n);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Domain {
    pub virt_type: VirtType,
    /// Only in live XML.
    pub id: Option<i32>,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub genid: Option<uuid::Uuid>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// `<metadata>` children, each self-contained with its namespace.
    pub metadata: Vec<Element>,
    pub max_memory: Option<MaxMemory>,
    pub memory_kib: u64,
    pub current_memory_kib: u64,
    pub vcpu: Vcpu,
    pub os: Os,
    pub features: Features,
    pub cpu: Option<Cpu>,
    pub clock: Clock,
    pub on_poweroff: LifecycleAction,
    pub on_reboot: LifecycleAction,
    pub on_crash: CrashAction,
    pub pm: Option<Pm>,
    pub devices: Devices,
    /// Elements listed in `KEPT_TOP_LEVEL`, kept as written.
    pub kept: Vec<Element>,
}

fn parse_name(dom: &Element) -> Result<String> {
    let name = dom.child_text("name").unwrap_or("");
    if name.is_empty() {
        return Err(Error::new(ErrorCode::NoName, ErrorDomain::Domain, ""));
    }
    if name.contains('/') {
        return Err(Error::xml(format!("name {name} cannot contain '/'")));
    }
    Ok(name.to_string())
}

/// libvirt's QEMU namespace (`<qemu:commandline>`, `<qemu:capabilities>`,
/// `<qemu:override>`, `<qemu:deprecation>`).
const QEMU_NS: &str = "http://libvirt.org/schemas/domain/qemu/1.0";

/// Refuses what the QEMU namespace asks for: it passes arguments and
/// settings to QEMU, which oxvirt does not run; ignoring them would leave
/// a guest without what its owner asked for.
fn refuse_qemu_namespace(dom: &Element) -> Result<()> {
    let prefixes: Vec<&str> = dom
        .attrs
        .iter()
        .filter(|(_, v)| v == QEMU_NS)
        .filter_map(|(k, _)| k.strip_prefix("xmlns:"))
        .collect();
    if let Some(c) = dom.children.iter().find(|c| {
        c.name
            .split_once(':')
            .is_some_and(|(p, _)| prefixes.contains(&p))
    }) {
        return Err(Error::unsupported(format!(
            "<{}> is not supported: it passes settings to QEMU, which oxvirt does not run",
            c.name
        )));
    }
    Ok(())
}

/// The parts of `<cputune>` libvirt checks although oxvirt keeps the
/// element as written: pinning entries and their CPU lists.
fn check_cputune(cputune: &Element) -> Result<()> {
    for pin in &cputune.children {
        let needs_vcpu = match pin.name.as_str() {
            "vcpupin" => true,
            "emulatorpin" | "iothreadpin" => false,
            _ => continue,
        };
        if needs_vcpu {
            let vcpu = crate::xml::props::req_attr(pin, "vcpu")?;
            let twin = cputune
                .children_named("vcpupin")
                .filter(|o| o.attr("vcpu") == Some(vcpu))
                .count()
                > 1;
            if twin {
                return Err(Error::internal(format!(
                    "duplicate vcpupin for vcpu '{vcpu}'"
                )));
            }
        }
        let cpuset = pin
            .attr("cpuset")
            .ok_or_else(|| Error::internal(format!("missing cpuset for {}", pin.name)))?;
        crate::xml::bitmap::parse_cpu_list(cpuset)?;
    }
    Ok(())
}

/// libvirt reads devices from every `<devices>` element, as one list.
fn all_devices(dom: &Element) -> Element {
    let mut merged = Element::new("devices");
    for d in dom.children_named("devices") {
        merged.children.extend(d.children.iter().cloned());
    }
    merged
}

fn parse_vcpu(dom: &Element) -> Result<Vcpu> {
    let Some(v) = dom.child("vcpu") else {
        return Ok(Vcpu {
            max: 1,
            current: None,
            placement: VcpuPlacement::Static,
            cpuset: None,
        });
    };
    let max: u32 = v
        .text
        .trim()
        .parse()
        .map_err(|_| Error::xml("maximum vcpus count must be an integer"))?;
    if max == 0 {
        // libvirt 9.0 reports a zero count through its NUMA consistency check.
        return Err(Error::internal("CPU IDs in <numa> exceed the <vcpu> count"));
    }
    let current: Option<u32> = uint_attr(v, "current")?;
    if current.is_some_and(|c| c > max) {
        return Err(Error::unsupported(
            "maximum vCPU count must not be less than current vCPU count",
        ));
    }
    if let Some(cpuset) = v.attr("cpuset") {
        crate::xml::bitmap::parse_cpu_list(cpuset)?;
    }
    let placement = enum_attr(v, "placement")?.unwrap_or(VcpuPlacement::Static);
    Ok(Vcpu {
        max,
        current: current.filter(|c| *c != max && *c != 0),
        placement,
        // With automatic placement the host decides; a cpuset is dropped.
        cpuset: v
            .attr("cpuset")
            .filter(|_| placement == VcpuPlacement::Static)
            .map(str::to_string),
    })
}

/// Metadata children carry their namespace declarations with them, as
/// libvirt stores each one as a standalone document.
fn parse_metadata(dom: &Element) -> Vec<Element> {
    let Some(meta) = dom.child("metadata") else {
        return Vec::new();
    };
    let mut out: Vec<Element> = Vec::new();
    let mut seen_uris: Vec<String> = Vec::new();
    for child in &meta.children {
        let mut c = child.clone();
        let Some(prefix) = c.prefix().map(str::to_string) else {
            // An element outside any namespace cannot be told apart from
            // others; libvirt drops those.
            continue;
        };
        let decl = format!("xmlns:{prefix}");
        if c.attr(&decl).is_none() {
            let Some(uri) = meta.attr(&decl).or_else(|| dom.attr(&decl)) else {
                continue;
            };
            c.attrs.insert(0, (decl.clone(), uri.to_string()));
        }
        // One element per namespace: later ones are dropped, as libvirt
        // keys metadata by namespace URI.
        let uri = c.attr(&decl).unwrap_or_default().to_string();
        if seen_uris.contains(&uri) {
            continue;
        }
        seen_uris.push(uri);
        out.push(c);
    }
    out
}

fn parse_uuid_element(dom: &Element, name: &str) -> Result<Option<uuid::Uuid>> {
    match dom.child(name) {
        None => Ok(None),
        // An empty element asks for a generated value.
        Some(e) if e.text.trim().is_empty() => Ok(Some(generate())),
        Some(e) => parse_uuid(&e.text)
            .map(Some)
            .ok_or_else(|| Error::internal(format!("malformed {name} element"))),
    }
}

impl Domain {
    /// Read a `<domain>` element (no defaults filled beyond the trivial).
    pub fn parse(dom: &Element) -> Result<Domain> {
        if dom.name != "domain" {
            return Err(Error::xml(format!(
                "expecting root element of 'domain', not '{}'",
                dom.name
            )));
        }
        refuse_qemu_namespace(dom)?;
        let virt_type = match dom.attr("type") {
            None | Some("") => return Err(Error::internal("missing domain type attribute")),
            Some(t) => VirtType::from_xml(t)
                .ok_or_else(|| Error::unsupported(format!("invalid domain type {t}")))?,
        };
        let id = match dom.attr("id") {
            None => None,
            Some(s) => s.trim().parse::<i32>().ok().filter(|i| *i >= 0),
        };
        let name = parse_name(dom)?;
        let uuid = parse_uuid_element(dom, "uuid")?.unwrap_or_else(generate);
        let genid = parse_uuid_element(dom, "genid")?;
        let title = dom
            .child("title")
            .map(|t| t.text.clone())
            .filter(|t| !t.is_empty());
        if title.as_deref().is_some_and(|t| t.contains('\n')) {
            return Err(Error::xml("Domain title can't contain newlines"));
        }
        if let Some(cputune) = dom.child("cputune") {
            check_cputune(cputune)?;
        }
        if let Some(sysinfo) = dom.child("sysinfo") {
            crate::xml::props::req_attr(sysinfo, "type")?;
        }
        let cpu = dom.child("cpu").map(Cpu::parse).transpose()?;
        let memory_kib = match dom.child("memory") {
            Some(m) if !m.text.is_empty() => parse_memory_kib(m)?,
            _ => cpu.as_ref().and_then(Cpu::numa_memory_kib).unwrap_or(0),
        };
        if memory_kib == 0 {
            return Err(Error::xml(
                "Memory size must be specified via <memory> or in the <numa> configuration",
            ));
        }
        let current_memory_kib = match dom.child("currentMemory").filter(|m| !m.text.is_empty()) {
            Some(m) => parse_memory_kib(m)?.min(memory_kib),
            None => memory_kib,
        };
        let current_memory_kib = if current_memory_kib == 0 {
            memory_kib
        } else {
            current_memory_kib
        };
        let max_memory = match dom.child("maxMemory") {
            None => None,
            Some(m) => Some(MaxMemory {
                kib: parse_memory_kib(m)?,
                slots: uint_attr(m, "slots")?,
            }),
        };
        let os = Os::parse(
            dom.child("os")
                .ok_or_else(|| Error::xml("an os <type> must be specified"))?,
        )?;
        Ok(Domain {
            virt_type,
            id,
            name,
            uuid,
            genid,
            title,
            description: dom
                .child("description")
                .map(|d| d.text.clone())
                .filter(|d| !d.is_empty()),
            metadata: parse_metadata(dom),
            max_memory,
            memory_kib,
            current_memory_kib,
            vcpu: parse_vcpu(dom)?,
            os,
            features: dom
                .child("features")
                .map(Features::parse)
                .transpose()?
                .unwrap_or_default(),
            cpu,
            clock: dom
                .child("clock")
                .map(Clock::parse)
                .transpose()?
                .unwrap_or_default(),
            on_poweroff: parse_action(dom, "on_poweroff", LifecycleAction::Destroy)?,
            on_reboot: parse_action(dom, "on_reboot", LifecycleAction::Restart)?,
            on_crash: parse_action(dom, "on_crash", CrashAction::Destroy)?,
            pm: dom.child("pm").map(Pm::parse).transpose()?,
            devices: Devices::parse(&all_devices(dom))?,
            kept: dom
                .children
                .iter()
                .filter(|c| KEPT_TOP_LEVEL.contains(&c.name.as_str()))
                .cloned()
                .collect(),
        })
    }

    fn kept_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Element> + 'a {
        self.kept.iter().filter(move |e| e.name == name).cloned()
    }

    /// The whole definition as an element tree, metadata excluded (it is
    /// written by a different serializer; see `format`).
    pub fn to_element(&self, inactive: bool, secure: bool) -> Element {
        let mut d = Element::new("domain").with_attr("type", self.virt_type.as_str());
        if !inactive {
            d = d.with_opt_attr("id", self.id);
        }
        let c = &mut d.children;
        c.push(Element::new("name").with_text(self.name.clone()));
        c.push(Element::new("uuid").with_text(self.uuid.to_string()));
        if let Some(g) = &self.genid {
            c.push(Element::new("genid").with_text(g.to_string()));
        }
        if let Some(t) = &self.title {
            c.push(Element::new("title").with_text(t.clone()));
        }
        if let Some(t) = &self.description {
            c.push(Element::new("description").with_text(t.clone()));
        }
        if !self.metadata.is_empty() {
            c.push(Element::new("metadata"));
        }
        if let Some(m) = &self.max_memory {
            let mut e = Element::new("maxMemory").with_opt_attr("slots", m.slots);
            let mem = memory_element("maxMemory", m.kib);
            e.attrs.extend(mem.attrs);
            e.text = mem.text;
            c.push(e);
        }
        c.push(memory_element("memory", self.memory_kib));
        c.push(memory_element("currentMemory", self.current_memory_kib));
        for name in ["blkiotune", "memtune", "memoryBacking"] {
            c.extend(self.kept_named(name));
        }
        c.push(
            Element::new("vcpu")
                .with_attr("placement", self.vcpu.placement.as_str())
                .with_opt_attr("cpuset", self.vcpu.cpuset.as_ref())
                .with_opt_attr("current", self.vcpu.current)
                .with_text(self.vcpu.max.to_string()),
        );
        for name in [
            "vcpus",
            "iothreads",
            "iothreadids",
            "cputune",
            "numatune",
            "resource",
            "sysinfo",
            "bootloader",
            "bootloader_args",
        ] {
            c.extend(self.kept_named(name));
        }
        c.push(self.os.to_element());
        c.extend(self.kept_named("idmap"));
        if let Some(f) = self.features.to_element() {
            c.push(f);
        }
        if let Some(cpu) = &self.cpu {
            c.push(cpu.to_element());
        }
        c.push(self.clock.to_element());
        c.push(Element::new("on_poweroff").with_text(self.on_poweroff.as_str()));
        c.push(Element::new("on_reboot").with_text(self.on_reboot.as_str()));
        c.push(Element::new("on_crash").with_text(self.on_crash.as_str()));
        if let Some(pm) = &self.pm {
            c.push(pm.to_element());
        }
        c.extend(self.kept_named("perf"));
        c.push(self.devices.to_element(inactive, secure));
        for name in ["seclabel", "keywrap", "launchSecurity"] {
            c.extend(self.kept_named(name));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    fn parse(xml: &str) -> Result<Domain> {
        Domain::parse(&parse_document(xml).unwrap())
    }

    #[test]
    fn reports_libvirt_identity_errors() {
        let err = parse("<domain type='kvm'><memory>1</memory><os><type>hvm</type></os></domain>")
            .unwrap_err();
        assert_eq!(
            (err.code as i32, err.message.as_str()),
            (21, "missing name information")
        );
        let err = parse("<domain><name>a</name></domain>").unwrap_err();
        assert_eq!(err.message, "internal error: missing domain type attribute");
        let err = parse("<domain type='foo'><name>a</name></domain>").unwrap_err();
        assert_eq!(
            err.message,
            "unsupported configuration: invalid domain type foo"
        );
        let err = parse("<domain type='kvm'><name>a/b</name></domain>").unwrap_err();
        assert_eq!(err.message, "XML error: name a/b cannot contain '/'");
        let err = parse("<domain type='kvm'><name>a</name><uuid>zzz</uuid></domain>").unwrap_err();
        assert_eq!(err.message, "internal error: malformed uuid element");
    }

    #[test]
    fn caps_current_memory_and_checks_vcpus() {
        let d = parse("<domain type='kvm'><name>a</name><memory>1024</memory><currentMemory>4096</currentMemory><vcpu current='2'>4</vcpu><os><type>hvm</type></os></domain>").unwrap();
        assert_eq!(d.current_memory_kib, 1024);
        assert_eq!(d.vcpu.current, Some(2));
        let err = parse("<domain type='kvm'><name>a</name><memory>1</memory><vcpu current='3'>2</vcpu><os><type>hvm</type></os></domain>").unwrap_err();
        assert_eq!(err.code as i32, 67);
    }

    #[test]
    fn the_qemu_namespace_is_refused() {
        let e = parse(
            "<domain type='kvm' xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'>\
             <name>x</name><memory>1</memory><os><type>hvm</type></os>\
             <q:commandline><q:arg value='-s'/></q:commandline></domain>",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "unsupported configuration: <q:commandline> is not supported: it passes settings to QEMU, which oxvirt does not run"
        );
        // Other namespaces' elements are not the QEMU driver's.
        assert!(parse("<domain type='kvm' xmlns:o='urn:other'><name>x</name><memory>1</memory><os><type>hvm</type></os><o:thing/></domain>").is_ok());
    }

    #[test]
    fn metadata_children_carry_their_namespace() {
        let d = parse("<domain type='kvm' xmlns:a='urn:a'><name>x</name><memory>1</memory><os><type>hvm</type></os><metadata><a:x/><plain/></metadata></domain>").unwrap();
        assert_eq!(d.metadata.len(), 1);
        assert_eq!(d.metadata[0].attr("xmlns:a"), Some("urn:a"));
    }
}
