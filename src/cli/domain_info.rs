//! dominfo, domstate, domid, domname, domuuid, dumpxml, vcpucount.

use super::bus::{Bus, DOMAIN, param_u64};
use super::domain::{Dom, STATS_BALLOON, STATS_CPU, STATS_STATE, STATS_VCPU, lookup};
use super::error::{CliError, Result};
use super::format::{kv, reason_name, state_name, yes_no};
use super::options::{exclusive, flag_bits};
use super::xpath::Doc;

/// `VIR_DOMAIN_XML_*`.
pub const XML_SECURE: u32 = 1;
pub const XML_INACTIVE: u32 = 2;

pub fn dominfo(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let w = 16;
    let mut out = String::new();
    let id = d.id(bus)?;
    out += &kv("Id", id.map_or("-".to_string(), |i| i.to_string()), w);
    out += &kv("Name", &d.name, w);
    out += &kv("UUID", d.uuid(bus)?, w);
    let os: String = bus
        .prop(&d.path, DOMAIN, "OSType")
        .unwrap_or_else(|_| "hvm".into());
    out += &kv("OS Type", os, w);
    let (state, _) = d.state(bus)?;
    out += &kv("State", state_name(state), w);
    let st = d.stats(bus, STATS_STATE | STATS_CPU | STATS_BALLOON | STATS_VCPU)?;
    let vcpus = param_u64(&st, "vcpu.current").unwrap_or(0);
    out += &kv("CPU(s)", vcpus, w);
    let cpu_ns = param_u64(&st, "cpu.time").unwrap_or(0);
    if cpu_ns != 0 {
        out += &kv("CPU time", format!("{:.1}s", cpu_ns as f64 / 1e9), w);
    }
    match param_u64(&st, "balloon.maximum") {
        Some(m) if m != u64::from(u32::MAX) => out += &kv("Max memory", format!("{m} KiB"), w),
        _ => out += &kv("Max memory", "no limit", w),
    }
    let used = param_u64(&st, "balloon.current").unwrap_or(0);
    out += &kv("Used memory", format!("{used} KiB"), w);
    match bus.prop::<bool>(&d.path, DOMAIN, "Persistent") {
        Ok(p) => out += &kv("Persistent", yes_no(p), w),
        Err(_) => out += &kv("Persistent", "unknown", w),
    }
    if let Ok(a) = bus.prop::<bool>(&d.path, DOMAIN, "Autostart") {
        out += &kv("Autostart", if a { "enable" } else { "disable" }, w);
    }
    if let Ok(m) = bus.call::<_, bool>(&d.path, DOMAIN, "HasManagedSaveImage", &(0u32,)) {
        out += &kv("Managed save", yes_no(m), w);
    }
    if let Ok((model, doi)) = bus.connect::<_, (String, String)>("NodeGetSecurityModel", &())
        && !model.is_empty()
    {
        out += &kv("Security model", model, w);
        out += &kv("Security DOI", doi, w);
    }
    Ok(out)
}

pub fn domstate(bus: &Bus, name: &str, reason: bool) -> Result<String> {
    let d = lookup(bus, name)?;
    let (state, why) = d.state(bus)?;
    if reason {
        Ok(format!(
            "{} ({})\n",
            state_name(state),
            reason_name(state, why)
        ))
    } else {
        Ok(format!("{}\n", state_name(state)))
    }
}

pub fn domid(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    Ok(match d.id(bus)? {
        Some(i) => format!("{i}\n"),
        None => "-\n".to_string(),
    })
}

pub fn domname(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    Ok(format!("{}\n", d.name))
}

pub fn domuuid(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    Ok(format!("{}\n", d.uuid(bus)?))
}

pub fn dumpxml(
    bus: &Bus,
    name: &str,
    inactive: bool,
    security_info: bool,
    xpath: Option<&str>,
    wrap: bool,
) -> Result<String> {
    let d: Dom = lookup(bus, name)?;
    let mut flags = 0;
    if inactive {
        flags |= XML_INACTIVE;
    }
    if security_info {
        flags |= XML_SECURE;
    }
    let xml = d.xml(bus, flags)?;
    let Some(expr) = xpath else {
        return Ok(xml);
    };
    let doc = Doc::parse(&xml).map_err(CliError::msg)?;
    let hits = doc
        .select(expr)
        .map_err(|_| CliError::msg(format!("internal error: Incorrect xpath '{expr}'")))?;
    let mut out = String::new();
    if wrap {
        out.push_str("<nodes>\n");
        for h in &hits {
            for line in h.split('\n') {
                out.push_str("  ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push_str("</nodes>\n");
    } else {
        for h in &hits {
            out.push_str(h);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The options of `vcpucount`.
pub struct VcpuCountQuery {
    pub maximum: bool,
    pub active: bool,
    pub live: bool,
    pub config: bool,
    pub current: bool,
    pub guest: bool,
}

const VCPU_LIVE: u32 = 1;
const VCPU_CONFIG: u32 = 2;
const VCPU_MAXIMUM: u32 = 4;
const VCPU_GUEST: u32 = 8;

impl VcpuCountQuery {
    /// `virDomainVcpuFlags` for one count, or `None` for virsh's table of
    /// every count that applies.
    fn flags(&self) -> Result<Option<u32>> {
        let all = !(self.maximum
            || self.active
            || self.live
            || self.config
            || self.current
            || self.guest);
        // Before `--current` meant the domain's state, it meant "not
        // --maximum"; virsh still reads it so when alone.
        let current = self.current && (self.maximum || self.active);
        exclusive(&[
            ("current", "live", current && self.live),
            ("current", "config", current && self.config),
            ("active", "maximum", self.active && self.maximum),
            ("guest", "config", self.guest && self.config),
        ])?;
        if all {
            return Ok(None);
        }
        Ok(Some(flag_bits(&[
            (self.live, VCPU_LIVE),
            (self.config, VCPU_CONFIG),
            (self.maximum, VCPU_MAXIMUM),
            (self.guest, VCPU_GUEST),
        ])))
    }
}

pub fn vcpucount(bus: &Bus, name: &str, q: &VcpuCountQuery) -> Result<String> {
    let flags = q.flags()?;
    let d = lookup(bus, name)?;
    let count = |flags: u32| -> Result<u32> { bus.call(&d.path, DOMAIN, "GetVcpus", &(flags,)) };
    let Some(flags) = flags else {
        let active: bool = bus.prop(&d.path, DOMAIN, "Active")?;
        let persistent: bool = bus.prop(&d.path, DOMAIN, "Persistent")?;
        let mut out = String::new();
        for (which, state, f, applies) in [
            ("maximum", "config", VCPU_CONFIG | VCPU_MAXIMUM, persistent),
            ("maximum", "live", VCPU_LIVE | VCPU_MAXIMUM, active),
            ("current", "config", VCPU_CONFIG, persistent),
            ("current", "live", VCPU_LIVE, active),
        ] {
            if applies {
                out += &format!("{which:<12} {state:<12} {:>3}\n", count(f)?);
            }
        }
        return Ok(out);
    };
    Ok(format!("{}\n", count(flags)?))
}
