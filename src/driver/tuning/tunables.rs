//! The tunables of a definition: `<cputune>`'s bandwidth and shares,
//! `<memtune>`'s limits and `<blkiotune>`'s weights and per-device
//! limits, read from and written back into the definition as libvirt
//! formats them.

use crate::error::{Error, Result};
use crate::xml::model::Domain;
use crate::xml::tree::Element;
use crate::xml::units::parse_memory_kib;

use super::super::cgroup::{DeviceLimit, MemoryLimit};

/// `<cputune>` children that are numbers, by their XML name.
pub const CPUTUNE_NUMBERS: [&str; 9] = [
    "shares",
    "period",
    "quota",
    "global_period",
    "global_quota",
    "emulator_period",
    "emulator_quota",
    "iothread_period",
    "iothread_quota",
];

fn kept<'a>(def: &'a Domain, name: &str) -> Option<&'a Element> {
    def.kept.iter().find(|e| e.name == name)
}

/// The kept element `name`, made (empty) if absent.
fn kept_mut<'a>(def: &'a mut Domain, name: &str) -> &'a mut Element {
    if let Some(i) = def.kept.iter().position(|e| e.name == name) {
        return &mut def.kept[i];
    }
    def.kept.push(Element::new(name));
    def.kept.last_mut().expect("just pushed")
}

/// Drops the kept element `name` when it has nothing left.
fn drop_if_empty(def: &mut Domain, name: &str) {
    def.kept
        .retain(|e| e.name != name || !e.children.is_empty() || !e.attrs.is_empty());
}

/// Sets (or with `None` removes) child `child` of `parent`, keeping the
/// order `order` lists.
fn set_child(parent: &mut Element, child: Element, order: &[&str]) {
    let rank = |n: &str| order.iter().position(|o| *o == n).unwrap_or(order.len());
    parent.children.retain(|c| c.name != child.name);
    let at = parent
        .children
        .iter()
        .position(|c| rank(&c.name) > rank(&child.name))
        .unwrap_or(parent.children.len());
    parent.children.insert(at, child);
}

/// A `<cputune>` number (None when absent).
pub fn cputune(def: &Domain, name: &str) -> Option<i64> {
    kept(def, "cputune")?.child_text(name)?.trim().parse().ok()
}

/// Sets a `<cputune>` number; 0 removes it, as libvirt drops zero values.
/// The numbers come first, in their order, before any pinning.
pub fn set_cputune(def: &mut Domain, name: &str, value: i64) {
    let t = kept_mut(def, "cputune");
    if value == 0 {
        t.children.retain(|c| c.name != name);
    } else {
        set_child(
            t,
            Element::new(name).with_text(value.to_string()),
            &CPUTUNE_NUMBERS,
        );
    }
    drop_if_empty(def, "cputune");
}

/// The CPU list of `<cputune>`'s `<vcpupin vcpu='N'>` (`vcpu` Some) or
/// `<emulatorpin>` (None).
pub fn pin(def: &Domain, vcpu: Option<u32>) -> Option<String> {
    let t = kept(def, "cputune")?;
    match vcpu {
        Some(n) => t
            .children_named("vcpupin")
            .find(|p| p.attr("vcpu").and_then(|v| v.parse::<u32>().ok()) == Some(n))?
            .attr("cpuset")
            .map(str::to_string),
        None => t.child("emulatorpin")?.attr("cpuset").map(str::to_string),
    }
}

/// Sets a `<vcpupin>` (`vcpu` Some) or the `<emulatorpin>`.
pub fn set_pin(def: &mut Domain, vcpu: Option<u32>, cpuset: &str) {
    let t = kept_mut(def, "cputune");
    let mut e = match vcpu {
        Some(n) => Element::new("vcpupin").with_attr("vcpu", n.to_string()),
        None => Element::new("emulatorpin"),
    };
    e = e.with_attr("cpuset", cpuset);
    let same = |c: &Element| match vcpu {
        Some(n) => c.name == "vcpupin" && c.attr("vcpu").and_then(|v| v.parse().ok()) == Some(n),
        None => c.name == "emulatorpin",
    };
    match t.children.iter().position(same) {
        Some(i) => t.children[i] = e,
        None => {
            // After the numbers and the vCPU pins that come before it.
            let at = t
                .children
                .iter()
                .rposition(|c| {
                    CPUTUNE_NUMBERS.contains(&c.name.as_str())
                        || (c.name == "vcpupin"
                            && (vcpu.is_none()
                                || c.attr("vcpu").and_then(|v| v.parse::<u32>().ok()) < vcpu))
                })
                .map_or(0, |i| i + 1);
            t.children.insert(at, e);
        }
    }
}

impl MemoryLimit {
    /// Its `<memtune>` element.
    pub fn element(self) -> &'static str {
        match self {
            MemoryLimit::Hard => "hard_limit",
            MemoryLimit::Soft => "soft_limit",
            MemoryLimit::SwapHard => "swap_hard_limit",
        }
    }
}

/// A `<memtune>` limit in KiB (None when absent).
pub fn memtune(def: &Domain, which: MemoryLimit) -> Result<Option<u64>> {
    match kept(def, "memtune").and_then(|m| m.child(which.element())) {
        Some(e) => parse_memory_kib(e).map(Some),
        None => Ok(None),
    }
}

/// Sets a `<memtune>` limit (None or unlimited removes it).
pub fn set_memtune(def: &mut Domain, which: MemoryLimit, kib: Option<u64>) {
    const ORDER: [&str; 4] = [
        "hard_limit",
        "soft_limit",
        "swap_hard_limit",
        "min_guarantee",
    ];
    let t = kept_mut(def, "memtune");
    match kib.filter(|k| *k < super::super::cgroup::UNLIMITED_KIB) {
        Some(k) => set_child(
            t,
            Element::new(which.element())
                .with_attr("unit", "KiB")
                .with_text(k.to_string()),
            &ORDER,
        ),
        None => t.children.retain(|c| c.name != which.element()),
    }
    drop_if_empty(def, "memtune");
}

/// `<blkiotune><weight>`.
pub fn blkio_weight(def: &Domain) -> Option<u32> {
    kept(def, "blkiotune")?
        .child_text("weight")?
        .trim()
        .parse()
        .ok()
}

pub fn set_blkio_weight(def: &mut Domain, weight: u32) {
    let t = kept_mut(def, "blkiotune");
    if weight == 0 {
        t.children.retain(|c| c.name != "weight");
    } else {
        set_child(
            t,
            Element::new("weight").with_text(weight.to_string()),
            &["weight", "device"],
        );
    }
    drop_if_empty(def, "blkiotune");
}

impl DeviceLimit {
    /// Its element in `<blkiotune><device>` and its typed-parameter name.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            DeviceLimit::ReadIops => ("read_iops_sec", "device_read_iops_sec"),
            DeviceLimit::WriteIops => ("write_iops_sec", "device_write_iops_sec"),
            DeviceLimit::ReadBytes => ("read_bytes_sec", "device_read_bytes_sec"),
            DeviceLimit::WriteBytes => ("write_bytes_sec", "device_write_bytes_sec"),
        }
    }
}

/// The per-device values `<blkiotune>` holds for one tunable: (path,
/// value) with `None` naming the device weight.
pub fn blkio_devices(def: &Domain, limit: Option<DeviceLimit>) -> Vec<(String, u64)> {
    let tag = limit.map(|l| l.names().0).unwrap_or("weight");
    let Some(t) = kept(def, "blkiotune") else {
        return Vec::new();
    };
    t.children_named("device")
        .filter_map(|d| {
            let path = d.child_text("path")?.trim().to_string();
            let v: u64 = d.child_text(tag)?.trim().parse().ok()?;
            (v != 0).then_some((path, v))
        })
        .collect()
}

/// Sets one device's value of one tunable (0 removes it; a device left
/// with nothing goes).
pub fn set_blkio_device(def: &mut Domain, limit: Option<DeviceLimit>, path: &str, value: u64) {
    const ORDER: [&str; 6] = [
        "path",
        "weight",
        "read_iops_sec",
        "write_iops_sec",
        "read_bytes_sec",
        "write_bytes_sec",
    ];
    let tag = limit.map(|l| l.names().0).unwrap_or("weight");
    let t = kept_mut(def, "blkiotune");
    let pos = t
        .children
        .iter()
        .position(|d| d.name == "device" && d.child_text("path").map(str::trim) == Some(path));
    let i = match pos {
        Some(i) => i,
        None => {
            t.children
                .push(Element::new("device").with_child(Element::new("path").with_text(path)));
            t.children.len() - 1
        }
    };
    let dev = &mut t.children[i];
    if value == 0 {
        dev.children.retain(|c| c.name != tag);
    } else {
        set_child(dev, Element::new(tag).with_text(value.to_string()), &ORDER);
    }
    if dev.children.iter().all(|c| c.name == "path") {
        t.children.remove(i);
    }
    drop_if_empty(def, "blkiotune");
}

/// Checks the tunables a definition asks for before it starts.
pub fn check(def: &Domain) -> Result<()> {
    for which in [MemoryLimit::Hard, MemoryLimit::Soft, MemoryLimit::SwapHard] {
        memtune(def, which)?;
    }
    if let (Some(hard), Some(swap)) = (
        memtune(def, MemoryLimit::Hard)?,
        memtune(def, MemoryLimit::SwapHard)?,
    ) && hard > swap
    {
        return Err(Error::invalid_arg(
            "memory hard_limit tunable value must be lower than or equal to swap_hard_limit",
        ));
    }
    Ok(())
}
