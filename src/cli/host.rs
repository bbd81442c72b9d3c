//! nodeinfo, capabilities, version, uri, hostname, sysinfo.

use std::collections::HashMap;

use super::bus::{Bus, CONNECT};
use super::error::{CliError, Result};
use super::format::kv;
use super::xpath::Doc;

/// `major.minor.release` from libvirt's packed version number.
pub fn version_string(v: u64) -> String {
    format!("{}.{}.{}", v / 1_000_000, (v / 1000) % 1000, v % 1000)
}

/// The driver name of the connect object (`QEMU` for `/org/libvirt/QEMU`).
fn driver_name(bus: &Bus) -> &str {
    bus.root.rsplit('/').next().unwrap_or("QEMU")
}

pub fn version(bus: &Bus) -> Result<String> {
    let root = bus.root.clone();
    let lib: u64 = bus.prop(&root, CONNECT, "LibVersion")?;
    let mut out = String::new();
    out += &format!(
        "Compiled against library: libvirt {}\n",
        version_string(lib)
    );
    out += &format!("Using library: libvirt {}\n", version_string(lib));
    out += &format!("Using API: {} {}\n", driver_name(bus), version_string(lib));
    if let Ok(hv) = bus.prop::<u64>(&root, CONNECT, "Version") {
        out += &format!(
            "Running hypervisor: {} {}\n",
            driver_name(bus),
            version_string(hv)
        );
    }
    Ok(out)
}

pub fn hostname(bus: &Bus) -> Result<String> {
    let root = bus.root.clone();
    let h: String = bus.prop(&root, CONNECT, "Hostname")?;
    Ok(format!("{h}\n"))
}

pub fn capabilities(bus: &Bus) -> Result<String> {
    let caps: String = bus.connect("GetCapabilities", &())?;
    Ok(format!("{caps}\n"))
}

pub fn sysinfo(bus: &Bus) -> Result<String> {
    let s: String = bus
        .connect("GetSysinfo", &(0u32,))
        .map_err(|e| e.with_ctx("failed to get sysinfo"))?;
    Ok(s)
}

pub fn nodeinfo(bus: &Bus) -> Result<String> {
    let caps: String = bus
        .connect("GetCapabilities", &())
        .map_err(|e| e.with_ctx("failed to get node information"))?;
    let doc = Doc::parse(&caps).map_err(CliError::msg)?;
    let first = |expr: &str| doc.select(expr).ok().and_then(|v| v.into_iter().next());
    let attr_num = |expr: &str| -> Option<u64> {
        first(expr).and_then(|s| s.split('"').nth(1).and_then(|v| v.parse::<u64>().ok()))
    };
    let model = first("/capabilities/host/cpu/arch/text()").unwrap_or_default();
    let map: Vec<bool> = bus.connect("NodeGetCPUMap", &(0u32,)).unwrap_or_default();
    let cpus = map.iter().filter(|b| **b).count() as u64;
    let cells = doc
        .select("/capabilities/host/topology/cells/cell")
        .map(|v| v.len() as u64)
        .unwrap_or(0)
        .max(1);
    let sockets = attr_num("/capabilities/host/cpu/topology/@sockets").unwrap_or(1);
    let threads = attr_num("/capabilities/host/cpu/topology/@threads").unwrap_or(1);
    let cores = attr_num("/capabilities/host/cpu/topology/@cores")
        .unwrap_or_else(|| (cpus / (sockets * threads * cells).max(1)).max(1));
    let mhz = attr_num("/capabilities/host/cpu/counter/@frequency")
        .map(|hz| hz / 1_000_000)
        .unwrap_or(0);
    let mem: HashMap<String, u64> = bus
        .connect("NodeGetMemoryStats", &(-1i32, 0u32))
        .unwrap_or_default();
    let total = mem.get("total").copied().unwrap_or(0);
    let w = 21;
    let mut out = String::new();
    out += &kv("CPU model", model, w);
    out += &kv("CPU(s)", cpus, w);
    out += &kv("CPU frequency", format!("{mhz} MHz"), w);
    out += &kv("CPU socket(s)", sockets, w);
    out += &kv("Core(s) per socket", cores, w);
    out += &kv("Thread(s) per core", threads, w);
    out += &kv("NUMA cell(s)", cells, w);
    out += &kv("Memory size", format!("{total} KiB"), w);
    Ok(out)
}
