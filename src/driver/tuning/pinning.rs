//! Where a guest's threads may run: `virDomainPinVcpu[Flags]`,
//! `virDomainGetVcpuPinInfo`, `virDomainPinEmulator`,
//! `virDomainGetEmulatorPinInfo`, kept as `<cputune>`'s `<vcpupin>` and
//! `<emulatorpin>` (defaulting to `<vcpu cpuset>`, then every host CPU),
//! applied through the cpuset cgroup where the host has one and the
//! threads' affinity always.

use std::sync::Arc;

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::xml::bitmap::{format_cpu_list, parse_cpu_list};
use crate::xml::model::Domain;

use super::super::Driver;
use super::super::cgroup::{GuestCgroup, Part};
use super::super::domain::DomainObj;
use super::super::host;
use super::params::check_affect_flags;
use super::tunables;

/// One host CPU per entry: may the thread run there.
pub type CpuMap = Vec<bool>;

fn to_map(cpus: &[u32]) -> CpuMap {
    let len = host::cpu_map()
        .len()
        .max(cpus.iter().max().map_or(0, |m| *m as usize + 1));
    let mut map = vec![false; len];
    for c in cpus {
        map[*c as usize] = true;
    }
    map
}

fn to_list(map: &[bool]) -> Vec<u32> {
    map.iter()
        .enumerate()
        .filter(|(_, on)| **on)
        .map(|(i, _)| i as u32)
        .collect()
}

/// The CPUs of vCPU `vcpu` (Some) or of the emulator threads (None).
fn pinned(def: &Domain, vcpu: Option<u32>) -> Result<Vec<u32>> {
    match tunables::pin(def, vcpu).or_else(|| def.vcpu.cpuset.clone()) {
        Some(list) => parse_cpu_list(&list),
        None => Ok(to_list(&host::cpu_map())),
    }
}

/// The VMM's threads named `vcpuN` (Some(N)) or not named `vcpu*` (None).
fn threads(pid: i32, vcpu: Option<u32>) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let tid: i32 = t.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let comm = comm.trim();
            let wanted = match vcpu {
                Some(n) => comm == format!("vcpu{n}"),
                None => !comm.starts_with("vcpu"),
            };
            wanted.then_some(tid)
        })
        .collect()
}

/// Pins the threads of `vcpu` (or the emulator threads) of the VMM `pid`
/// to `cpus`: their cpuset group, where there is one, and their affinity.
fn apply(cg: &GuestCgroup, pid: i32, vcpu: Option<u32>, cpus: &[u32]) -> Result<()> {
    let part = vcpu.map_or(Part::Emulator, Part::Vcpu);
    cg.set_cpus(part, &format_cpu_list(cpus))?;
    let mut set = CpuSet::new();
    for c in cpus {
        set.set(*c as usize)
            .map_err(|e| Error::invalid_arg(format!("cannot pin to CPU {c}: {e}")))?;
    }
    for tid in threads(pid, vcpu) {
        // A thread that ended meanwhile has nothing to pin.
        if let Err(e) = sched_setaffinity(Pid::from_raw(tid), &set)
            && e != nix::errno::Errno::ESRCH
        {
            return Err(Error::new(
                crate::error::ErrorCode::SystemError,
                crate::error::ErrorDomain::Domain,
                format!("cannot set CPU affinity on process {tid}: {e}"),
            ));
        }
    }
    Ok(())
}

/// Pins a new VMM's threads as its definition says (nothing when it says
/// nothing: they may run anywhere).
pub fn at_start(cg: &GuestCgroup, def: &Domain, pid: i32, vcpus: u32) -> Result<()> {
    for n in 0..vcpus {
        if tunables::pin(def, Some(n)).is_some() || def.vcpu.cpuset.is_some() {
            apply(cg, pid, Some(n), &pinned(def, Some(n))?)?;
        }
    }
    if tunables::pin(def, None).is_some() || def.vcpu.cpuset.is_some() {
        apply(cg, pid, None, &pinned(def, None)?)?;
    }
    Ok(())
}

/// A CPU map from a client, checked: not empty, only host CPUs.
fn requested(map: &[bool]) -> Result<Vec<u32>> {
    let cpus = to_list(map);
    if cpus.is_empty() {
        return Err(Error::invalid_arg("Empty cpu list for pinning"));
    }
    let host = host::cpu_map();
    if let Some(c) = cpus
        .iter()
        .find(|c| !host.get(**c as usize).copied().unwrap_or(false))
    {
        return Err(Error::invalid_arg(format!(
            "CPU {c} is not available on this host"
        )));
    }
    Ok(cpus)
}

/// One vCPU of a running guest, as `virDomainGetVcpus` reports it.
#[derive(Clone, Debug)]
pub struct VcpuRuntime {
    pub number: u32,
    pub cpu_time_ns: u64,
    /// The host CPU its thread last ran on.
    pub cpu: i32,
    pub affinity: CpuMap,
}

/// Field 39 of `/proc/PID/task/TID/stat`: the CPU the thread last ran on.
fn last_cpu(pid: i32, tid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(39 - 3)?.parse().ok()
}

fn affinity(tid: i32) -> Option<CpuMap> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(tid)).ok()?;
    let len = host::cpu_map().len();
    Some((0..len).map(|c| set.is_set(c).unwrap_or(false)).collect())
}

impl Driver {
    /// `virDomainGetVcpus`: each online vCPU's time, the CPU it last ran
    /// on and where it may run.
    pub async fn get_vcpus(&self, obj: &Arc<DomainObj>) -> Result<Vec<VcpuRuntime>> {
        let stats = self.stats(obj).await?;
        let pid = obj.data().live.as_ref().map(|l| l.vmm.pid).ok_or_else(|| {
            Error::operation_invalid("cannot list vcpu pinning for an inactive domain")
        })?;
        Ok((0..stats.info.vcpus)
            .map(|n| {
                let tid = threads(pid, Some(n)).first().copied();
                VcpuRuntime {
                    number: n,
                    cpu_time_ns: stats.vcpu_time_ns.get(n as usize).copied().unwrap_or(0),
                    cpu: tid.and_then(|t| last_cpu(pid, t)).unwrap_or(0),
                    affinity: tid.and_then(affinity).unwrap_or_else(host::cpu_map),
                }
            })
            .collect())
    }

    /// `virDomainGetVcpuPinInfo`: a map per vCPU, `ncpumaps` at most.
    pub fn get_vcpu_pin_info(
        &self,
        obj: &DomainObj,
        ncpumaps: usize,
        flags: u32,
    ) -> Result<Vec<CpuMap>> {
        check_affect_flags(flags, 0, "qemuDomainGetVcpuPinInfo")?;
        let d = obj.data();
        let def = super::definition_for(&d, &obj.uuid, flags)?;
        (0..def.vcpu.max.min(ncpumaps as u32))
            .map(|n| pinned(def, Some(n)).map(|l| to_map(&l)))
            .collect()
    }

    /// `virDomainGetEmulatorPinInfo`.
    pub fn get_emulator_pin_info(&self, obj: &DomainObj, flags: u32) -> Result<CpuMap> {
        check_affect_flags(flags, 0, "qemuDomainGetEmulatorPinInfo")?;
        let d = obj.data();
        let def = super::definition_for(&d, &obj.uuid, flags)?;
        pinned(def, None).map(|l| to_map(&l))
    }

    /// `virDomainPinVcpuFlags`.
    pub async fn pin_vcpu(
        &self,
        obj: &Arc<DomainObj>,
        vcpu: u32,
        map: &[bool],
        flags: u32,
    ) -> Result<()> {
        check_affect_flags(flags, 0, "qemuDomainPinVcpuFlags")?;
        let cpus = requested(map)?;
        let list = format_cpu_list(&cpus);
        let edit = |def: &mut Domain, live: bool| {
            let count = def.vcpu.online();
            if vcpu >= count {
                let which = if live { "live" } else { "persistent" };
                return Err(Error::invalid_arg(format!(
                    "vcpu {vcpu} is out of range of {which} cpu count {count}"
                )));
            }
            tunables::set_pin(def, Some(vcpu), &list);
            Ok(())
        };
        self.change_tunables(obj, flags, edit, |cg, _, pid| {
            apply(cg, pid, Some(vcpu), &cpus)
        })
        .await
    }

    /// `virDomainPinEmulator`.
    pub async fn pin_emulator(&self, obj: &Arc<DomainObj>, map: &[bool], flags: u32) -> Result<()> {
        check_affect_flags(flags, 0, "qemuDomainPinEmulator")?;
        let cpus = requested(map)?;
        let list = format_cpu_list(&cpus);
        let edit = |def: &mut Domain, _live: bool| {
            tunables::set_pin(def, None, &list);
            Ok(())
        };
        self.change_tunables(obj, flags, edit, |cg, _, pid| apply(cg, pid, None, &cpus))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_lists() {
        assert_eq!(to_list(&[true, false, true]), [0, 2]);
        let m = to_map(&[1]);
        assert!(m[1] && !m[0]);
        assert!(requested(&[false, false]).is_err());
    }
}
