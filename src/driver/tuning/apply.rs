//! A guest's tunables put into its cgroup when it starts: what holds for
//! the whole guest before its VMM runs, the vCPU and emulator parts once
//! the VMM's threads exist.

use crate::error::Result;
use crate::xml::model::Domain;

use super::super::cgroup::{BlkioDevice, DeviceLimit, GuestCgroup, MemoryLimit, Part};
use super::tunables;

/// Shares, the global bandwidth, memory limits and block I/O weights and
/// limits, set on the guest's (still empty) group.
pub fn before_start(cg: &GuestCgroup, def: &Domain) -> Result<()> {
    if let Some(shares) = tunables::cputune(def, "shares") {
        cg.set_cpu_shares(u64::try_from(shares).unwrap_or(0))?;
    }
    bandwidth(cg, def, Part::Guest, "global_period", "global_quota")?;
    // The hard limit before the swap limit: v1 wants memsw ≥ limit, and
    // the definition was checked to ask for that.
    for which in [MemoryLimit::Hard, MemoryLimit::Soft, MemoryLimit::SwapHard] {
        if let Some(kib) = tunables::memtune(def, which)? {
            cg.set_memory(which, kib)?;
        }
    }
    if let Some(w) = tunables::blkio_weight(def) {
        cg.set_blkio_weight(w)?;
    }
    for limit in DeviceLimit::ALL {
        for (path, v) in tunables::blkio_devices(def, Some(limit)) {
            cg.set_device_limit(limit, &BlkioDevice::open(&path)?, v)?;
        }
    }
    if !tunables::blkio_devices(def, None).is_empty() {
        return Err(crate::error::Error::operation_invalid(
            "blkio device weight is valid only for bfq or cfq scheduler",
        ));
    }
    Ok(())
}

/// Puts the VMM's threads in their parts, bounds the vCPUs and the
/// emulator threads and pins them as `<cputune>` asks.
pub fn after_start(cg: &GuestCgroup, def: &Domain, pid: i32, vcpu_tids: &[i32]) -> Result<()> {
    cg.place_threads(pid, vcpu_tids)?;
    for i in 0..vcpu_tids.len() {
        bandwidth(cg, def, Part::Vcpu(i as u32), "period", "quota")?;
    }
    bandwidth(cg, def, Part::Emulator, "emulator_period", "emulator_quota")?;
    super::pinning::at_start(cg, def, pid, vcpu_tids.len() as u32)
}

fn bandwidth(cg: &GuestCgroup, def: &Domain, part: Part, period: &str, quota: &str) -> Result<()> {
    let p = tunables::cputune(def, period).and_then(|v| u64::try_from(v).ok());
    let q = tunables::cputune(def, quota);
    if p.is_some() || q.is_some() {
        cg.set_cpu_bandwidth(part, p, q)?;
    }
    Ok(())
}
