//! libvirt's tuning of a guest: the CPU scheduler's parameters
//! (`virDomain{Get,Set}SchedulerParameters[Flags]`), memory and block I/O
//! parameters, applied through the guest's cgroup and kept in
//! `<cputune>`, `<memtune>` and `<blkiotune>`; and the guest's CPU time
//! (`virDomainGetCPUStats`).

pub mod apply;
mod blkio;
mod change;
mod memory;
mod params;
pub mod pinning;
pub mod tunables;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::xml::model::Domain;

use super::Driver;
use super::cgroup::{GuestCgroup, Part};
use super::domain::DomainObj;
use super::stats::StatValue;
use super::vcpus::{AFFECT_CONFIG, AFFECT_LIVE};
pub use params::TYPED_PARAM_STRING_OKAY;
use params::{ParamType, signed, unsigned, validate};

/// The parameters libvirt's QEMU driver reports, in its order.
const SCHED_PARAMS: [(&str, bool); 9] = [
    ("cpu_shares", false),
    ("vcpu_period", false),
    ("vcpu_quota", true),
    ("emulator_period", false),
    ("emulator_quota", true),
    ("global_period", false),
    ("global_quota", true),
    ("iothread_period", false),
    ("iothread_quota", true),
];

/// The `<cputune>` element a scheduler parameter is kept in.
fn cputune_tag(name: &str) -> &str {
    match name {
        "cpu_shares" => "shares",
        "vcpu_period" => "period",
        "vcpu_quota" => "quota",
        other => other,
    }
}

/// `<cputune>` child `name` as a number (0 when absent).
fn cputune_value(def: &Domain, name: &str) -> i64 {
    tunables::cputune(def, cputune_tag(name)).unwrap_or(0)
}

/// A scheduler parameter of a running guest, from its cgroup: the part
/// it addresses and whether it is the period (else the quota).
fn bandwidth_part(name: &str) -> Option<(Part, bool)> {
    Some(match name {
        "vcpu_period" => (Part::Vcpu(0), true),
        "vcpu_quota" => (Part::Vcpu(0), false),
        "emulator_period" => (Part::Emulator, true),
        "emulator_quota" => (Part::Emulator, false),
        "global_period" => (Part::Guest, true),
        "global_quota" => (Part::Guest, false),
        _ => return None,
    })
}

fn live_value(cg: &GuestCgroup, name: &str) -> Result<i64> {
    if name == "cpu_shares" {
        return Ok(cg.cpu_shares()? as i64);
    }
    match bandwidth_part(name) {
        Some((part, period)) => {
            let (p, q) = cg.cpu_bandwidth(part)?;
            Ok(if period { p as i64 } else { q })
        }
        // No I/O threads: nothing to report.
        None => Ok(0),
    }
}

/// The definition a query with `flags` reads: the persistent one
/// (`VIR_DOMAIN_AFFECT_CONFIG`), the live one (`_LIVE`), or the current
/// one; libvirt's errors otherwise.
pub(super) fn definition_for<'a>(
    d: &'a super::domain::DomainData,
    uuid: &uuid::Uuid,
    flags: u32,
) -> Result<&'a Domain> {
    if d.removed {
        return Err(Error::no_domain_uuid(&uuid.to_string()));
    }
    match flags & (AFFECT_LIVE | AFFECT_CONFIG) {
        AFFECT_CONFIG => d.persistent.as_ref(),
        AFFECT_LIVE => {
            if !d.is_active() {
                return Err(Error::operation_invalid("domain is not running"));
            }
            d.live.as_ref().map(|l| &l.def)
        }
        0 => d.current_def(),
        _ => {
            return Err(Error::invalid_arg(
                "Flags 'VIR_DOMAIN_AFFECT_LIVE' and 'VIR_DOMAIN_AFFECT_CONFIG' are mutually exclusive",
            ));
        }
    }
    .ok_or_else(|| Error::operation_invalid("transient domains do not have any persistent config"))
}

/// `virDomainGetSchedulerType`: the scheduler and its parameter count.
pub fn get_scheduler_type(obj: &DomainObj) -> Result<(String, i32)> {
    obj.info()?;
    Ok(("posix".to_string(), SCHED_PARAMS.len() as i32))
}

impl Driver {
    /// `virDomainGetSchedulerParametersFlags`: at most `max` parameters.
    pub fn get_scheduler_parameters(
        &self,
        obj: &DomainObj,
        max: i32,
        flags: u32,
    ) -> Result<Vec<(String, StatValue)>> {
        params::check_affect_flags(
            flags,
            TYPED_PARAM_STRING_OKAY,
            "qemuDomainGetSchedulerParametersFlags",
        )?;
        let d = obj.data();
        let live_cgroup = match flags & (AFFECT_LIVE | AFFECT_CONFIG) {
            AFFECT_LIVE | 0 => d.live.as_ref().and_then(|l| l.cgroup.clone()),
            _ => None,
        };
        let def = definition_for(&d, &obj.uuid, flags)?;
        SCHED_PARAMS
            .iter()
            .take(max.max(0) as usize)
            .map(|(name, signed)| {
                let v = match &live_cgroup {
                    Some(cg) => live_value(cg, name)?,
                    None => cputune_value(def, name),
                };
                let value = if *signed {
                    StatValue::LLong(v)
                } else {
                    StatValue::ULLong(v.max(0) as u64)
                };
                Ok((name.to_string(), value))
            })
            .collect()
    }

    /// `virDomainSetSchedulerParametersFlags`.
    pub async fn set_scheduler_parameters(
        &self,
        obj: &Arc<DomainObj>,
        params: &[(String, StatValue)],
        flags: u32,
    ) -> Result<()> {
        params::check_affect_flags(flags, 0, "qemuDomainSetSchedulerParametersFlags")?;
        let known: Vec<(&str, ParamType)> = SCHED_PARAMS
            .iter()
            .map(|(n, s)| {
                (
                    *n,
                    if *s {
                        ParamType::LLong
                    } else {
                        ParamType::ULLong
                    },
                )
            })
            .collect();
        validate(params, &known)?;
        // The values as cgroups take them, checked before anything changes.
        for (name, v) in params {
            match name.as_str() {
                "cpu_shares" => {}
                n if n.ends_with("_period") && unsigned(v) != 0 => {
                    super::cgroup::check_period(unsigned(v))?
                }
                n if n.ends_with("_quota") && signed(v) != 0 => {
                    super::cgroup::check_quota(signed(v))?
                }
                _ => {}
            }
        }
        let edit = |def: &mut Domain, _live: bool| {
            for (name, v) in params {
                let value = if name.ends_with("_quota") {
                    signed(v)
                } else {
                    i64::try_from(unsigned(v)).unwrap_or(i64::MAX)
                };
                tunables::set_cputune(def, cputune_tag(name), value);
            }
            Ok(())
        };
        self.change_tunables(obj, flags, edit, |cg, def, _| {
            for (name, v) in params {
                if name == "cpu_shares" {
                    cg.set_cpu_shares(unsigned(v))?;
                    continue;
                }
                let Some((part, period)) = bandwidth_part(name) else {
                    continue;
                };
                let parts: Vec<Part> = match part {
                    Part::Vcpu(_) => (0..def.vcpu.online()).map(Part::Vcpu).collect(),
                    p => vec![p],
                };
                for p in parts {
                    if period {
                        cg.set_cpu_bandwidth(p, Some(unsigned(v)), None)?;
                    } else {
                        cg.set_cpu_bandwidth(p, None, Some(signed(v)))?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// One thread's CPU time and the CPU it last ran on.
struct ThreadTime {
    ns: u64,
    user_ns: u64,
    system_ns: u64,
    cpu: usize,
    is_vcpu: bool,
}

/// Clock ticks to nanoseconds.
fn tick_ns() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    1_000_000_000 / hz
}

/// Every thread of process `pid` from `/proc/PID/task/*/stat`.
fn thread_times(pid: i32) -> Vec<ThreadTime> {
    let ns = tick_ns();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            // Fields after the parenthesised command name, from field 3.
            let rest = &stat[stat.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| {
                f.get(i - 3)
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Some(ThreadTime {
                ns: (num(14) + num(15)) * ns,
                user_ns: num(14) * ns,
                system_ns: num(15) * ns,
                cpu: num(39) as usize,
                is_vcpu: comm.starts_with("vcpu"),
            })
        })
        .collect()
}

impl Driver {
    /// `virDomainGetCPUStats`: with `start_cpu` -1 the VMM's total
    /// (`cpu_time`, `user_time`, `system_time`); otherwise per host CPU
    /// (`cpu_time`, `vcpu_time`) from `start_cpu` on, each thread's time
    /// counted on the CPU it last ran on (there is no per-CPU accounting
    /// without a cgroup's accounting). With `nparams` 0 it answers how many values
    /// there are (or, with `ncpus` 0 as well, how many host CPUs). Returns
    /// libvirt's return value and the values, `nparams` per CPU at most.
    pub fn get_cpu_stats(
        &self,
        obj: &DomainObj,
        nparams: u32,
        start_cpu: i32,
        ncpus: u32,
        flags: u32,
    ) -> Result<(i32, Vec<(String, StatValue)>)> {
        // VIR_TYPED_PARAM_STRING_OKAY is its only flag.
        super::check_flags(flags, TYPED_PARAM_STRING_OKAY, "qemuDomainGetCPUStats")?;
        let (pid, cgroup, vcpus) = obj.with_live(|live| {
            let vcpus = live.def.vcpu.online();
            (live.vmm.pid, live.cgroup.clone(), vcpus)
        })?;
        let threads = thread_times(pid);
        if start_cpu == -1 {
            const TOTAL: [&str; 3] = ["cpu_time", "user_time", "system_time"];
            if nparams == 0 {
                return Ok((TOTAL.len() as i32, Vec::new()));
            }
            let sum = |f: fn(&ThreadTime) -> u64| threads.iter().map(f).sum::<u64>();
            // The cgroup's accounting where there is one (it keeps the
            // time of threads that ended too).
            let values = match cgroup.as_ref().and_then(GuestCgroup::cpu_time) {
                Some((total, user, system)) => [total, user, system],
                None => [sum(|t| t.ns), sum(|t| t.user_ns), sum(|t| t.system_ns)],
            };
            let out: Vec<(String, StatValue)> = TOTAL
                .iter()
                .zip(values)
                .take(nparams as usize)
                .map(|(k, v)| (k.to_string(), StatValue::ULLong(v)))
                .collect();
            return Ok((out.len() as i32, out));
        }
        let host_cpus = super::host::cpu_map().len();
        if nparams == 0 && ncpus == 0 {
            return Ok((host_cpus as i32, Vec::new()));
        }
        const PER_CPU: [&str; 2] = ["cpu_time", "vcpu_time"];
        if nparams == 0 {
            return Ok((PER_CPU.len() as i32, Vec::new()));
        }
        let start = usize::try_from(start_cpu)
            .map_err(|_| Error::invalid_arg("start_cpu must be -1 or at least 0"))?;
        if start >= host_cpus {
            return Err(Error::invalid_arg(format!(
                "start_cpu {start} larger than maximum of {}",
                host_cpus.saturating_sub(1)
            )));
        }
        let per = (nparams as usize).min(PER_CPU.len());
        // Per-CPU accounting of the cgroup (v1), else each thread's time
        // counted on the CPU it last ran on.
        let accounted = cgroup.as_ref().and_then(|cg| {
            let all = cg.per_cpu_time(Part::Guest)?;
            let mut vcpu = vec![0u64; all.len()];
            for i in 0..vcpus {
                for (sum, v) in vcpu.iter_mut().zip(cg.per_cpu_time(Part::Vcpu(i))?) {
                    *sum += v;
                }
            }
            Some((all, vcpu))
        });
        let mut out = Vec::new();
        for cpu in start..(start + ncpus as usize).min(host_cpus) {
            let (all, vcpu) = match &accounted {
                Some((all, vcpu)) => (
                    all.get(cpu).copied().unwrap_or(0),
                    vcpu.get(cpu).copied().unwrap_or(0),
                ),
                None => {
                    let on = threads.iter().filter(|t| t.cpu == cpu);
                    (
                        on.clone().map(|t| t.ns).sum(),
                        on.filter(|t| t.is_vcpu).map(|t| t.ns).sum(),
                    )
                }
            };
            for (k, v) in PER_CPU.iter().zip([all, vcpu]).take(per) {
                out.push((k.to_string(), StatValue::ULLong(v)));
            }
        }
        Ok((per as i32, out))
    }
}
