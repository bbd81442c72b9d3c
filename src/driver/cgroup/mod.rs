//! Control groups for guests, as libvirt's QEMU driver keeps them: each
//! guest's VMM in a group of its own under a partition (`/machine`), in
//! every hierarchy that has one of the controllers libvirt uses, whether
//! the host mounts cgroup v1 hierarchies, the v2 unified one, or both.
//! Inside, as in libvirt, the CPU controllers get one child per vCPU
//! thread (`vcpuN`) and one for every other thread (`emulator`), so that
//! `<cputune>` can bound vCPUs, the rest of the VMM and the whole guest
//! apart.
//!
//! [`Cgroups`] is what the host offers; [`GuestCgroup`] one guest's group.
//! The values libvirt's tunables map to are in `values.rs`.

mod hierarchy;
mod values;

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::fsutil::system_error;

pub use hierarchy::Cgroups;
use hierarchy::Hierarchy;
pub use values::{
    BlkioDevice, DeviceLimit, MemoryLimit, UNLIMITED_KIB, check_memory_kib, check_period,
    check_quota,
};

/// The controllers libvirt uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Blkio,
    Pids,
}

impl Controller {
    pub const ALL: [Controller; 6] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Blkio,
        Controller::Pids,
    ];

    /// The name a v1 hierarchy mounts it under.
    fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Blkio => "blkio",
            Controller::Pids => "pids",
        }
    }

    /// The name in v2's `cgroup.controllers` (v2 accounts CPU time in
    /// the `cpu` controller and, at its base, without any).
    fn v2_name(self) -> &'static str {
        match self {
            Controller::Cpu | Controller::Cpuacct => "cpu",
            Controller::Blkio => "io",
            other => other.v1_name(),
        }
    }

    /// Whether threads of one process may sit in different groups of it
    /// (v2's threaded controllers; the vCPU and emulator children).
    fn per_thread(self) -> bool {
        matches!(
            self,
            Controller::Cpu | Controller::Cpuacct | Controller::Cpuset
        )
    }
}

/// A part of the guest's group the CPU tunables address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The whole guest.
    Guest,
    /// vCPU `n`'s thread.
    Vcpu(u32),
    /// Every other thread of the VMM.
    Emulator,
}

impl Part {
    fn child(self) -> Option<String> {
        match self {
            Part::Guest => None,
            Part::Vcpu(n) => Some(format!("vcpu{n}")),
            Part::Emulator => Some("emulator".to_string()),
        }
    }
}

/// The partition guests go to by default, as libvirt's without systemd.
pub const DEFAULT_PARTITION: &str = "/machine";

/// The partition of a daemon whose run directory is `run_dir`: the
/// default for the system daemon, one named after the directory for any
/// other, so that private daemons' guests of the same name never share
/// a group.
pub fn partition_for(run_dir: &Path, system_run_dir: &Path) -> String {
    if run_dir == system_run_dir {
        return DEFAULT_PARTITION.to_string();
    }
    let name: String = run_dir
        .to_string_lossy()
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{DEFAULT_PARTITION}/oxvirt-{name}")
}

/// Checks a partition as libvirt checks `<resource><partition>`.
pub fn check_partition(p: &str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(Error::unsupported(format!(
            "Resource partition '{p}' must start with '/'"
        )));
    }
    if p.split('/').any(|c| c == "." || c == "..") {
        return Err(Error::unsupported(format!(
            "Resource partition '{p}' must not contain '.' or '..'"
        )));
    }
    Ok(())
}

/// One guest's group: a directory in each hierarchy (none: the host
/// offers no controller, and every change reports that).
#[derive(Clone, Debug, Default)]
pub struct GuestCgroup {
    dirs: Vec<(Hierarchy, PathBuf)>,
    /// The partition's directories this group created, innermost last,
    /// removed again when empty.
    partition_dirs: Vec<(Hierarchy, PathBuf)>,
}

fn io_error(what: String, e: &std::io::Error) -> Error {
    system_error(what, e)
}

fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| io_error(format!("Unable to write to '{}'", path.display()), &e))
}

fn read_file(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end().to_string())
        .map_err(|e| io_error(format!("Unable to read from '{}'", path.display()), &e))
}

impl GuestCgroup {
    /// The group of guest `name` under `partition` (nothing is created).
    /// The directory is named as libvirt names it without systemd.
    pub fn new(cgroups: &Cgroups, partition: &str, name: &str) -> GuestCgroup {
        let rel = Path::new(partition.trim_start_matches('/'));
        let leaf = format!("{}.libvirt-qemu", escape(name));
        let mut dirs = Vec::new();
        let mut partition_dirs = Vec::new();
        for h in cgroups.hierarchies() {
            let base = h.mount.join(rel);
            let mut p = h.mount.clone();
            for c in rel.components() {
                p.push(c);
                partition_dirs.push((h.clone(), p.clone()));
            }
            dirs.push((h.clone(), base.join(&leaf)));
        }
        GuestCgroup {
            dirs,
            partition_dirs,
        }
    }

    /// Whether the group's directories are there.
    pub fn exists(&self) -> bool {
        self.dirs.iter().any(|(_, d)| d.is_dir())
    }

    /// Whether the host offers any controller at all.
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    /// The directory of `c`'s hierarchy, with `part`'s child.
    fn dir(&self, c: Controller, part: Part) -> Option<PathBuf> {
        let (_, d) = self.dirs.iter().find(|(h, _)| h.has(c))?;
        Some(match part.child() {
            Some(child) if c.per_thread() => d.join(child),
            _ => d.clone(),
        })
    }

    /// The file `file` of `c` for `part`; an error when the host has no
    /// such controller, worded as libvirt words it.
    fn file(&self, c: Controller, part: Part, file: &str) -> Result<PathBuf> {
        self.dir(c, part).map(|d| d.join(file)).ok_or_else(|| {
            Error::operation_invalid(format!("cgroup {} controller is not mounted", c.v1_name()))
        })
    }

    fn version2(&self, c: Controller) -> bool {
        self.dirs.iter().any(|(h, _)| h.has(c) && h.v2)
    }

    /// Makes the group's directories (and the partition's), ready for
    /// the VMM: v1 cpusets get their parent's CPUs and memory nodes, v2
    /// parents hand their controllers down.
    pub fn create(&self) -> Result<()> {
        for (h, p) in self.partition_dirs.iter().chain(&self.dirs) {
            // A partition is shared: a guest starting at the same time
            // may have made it between the check and the mkdir.
            match std::fs::create_dir(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(io_error(
                        format!("Unable to create cgroup '{}'", p.display()),
                        &e,
                    ));
                }
            }
            h.prepare(p)?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new VMM writes itself into before it
    /// runs, so that it is charged from its first page on.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|(_, d)| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).ok())
            .collect()
    }

    /// Moves the VMM's threads to the children of the CPU hierarchies:
    /// vCPU `i`'s thread `vcpu_tids[i]` to `vcpuN`, the others to
    /// `emulator`. Threads the VMM starts later inherit `emulator`.
    pub fn place_threads(&self, pid: i32, vcpu_tids: &[i32]) -> Result<()> {
        let tids = thread_ids(pid);
        for (h, d) in &self.dirs {
            if !Controller::ALL.iter().any(|c| h.has(*c) && c.per_thread()) {
                continue;
            }
            let mut children = vec![("emulator".to_string(), None)];
            children.extend(
                vcpu_tids
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("vcpu{i}"), Some(*t))),
            );
            for (child, _) in &children {
                let p = d.join(child);
                if !p.exists() {
                    std::fs::create_dir(&p).map_err(|e| {
                        io_error(format!("Unable to create cgroup '{}'", p.display()), &e)
                    })?;
                }
                h.prepare_thread_child(&p)?;
            }
            let threads_file = if h.v2 { "cgroup.threads" } else { "tasks" };
            for tid in tids.iter().filter(|t| !vcpu_tids.contains(t)) {
                // A thread that ended meanwhile cannot be moved.
                let _ = std::fs::write(d.join("emulator").join(threads_file), tid.to_string());
            }
            for (child, tid) in &children {
                if let Some(tid) = tid {
                    write_file(&d.join(child).join(threads_file), &tid.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// Removes the group (and partition directories it made that are
    /// empty now). The VMM must have exited.
    pub fn remove(&self) {
        for (_, d) in &self.dirs {
            if let Ok(children) = std::fs::read_dir(d) {
                for c in children.filter_map(|c| c.ok()) {
                    if c.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            if let Err(e) = std::fs::remove_dir(d)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot remove cgroup {}: {e}", d.display());
            }
        }
        // Innermost first; the default partition stays, as libvirt's.
        for (_, p) in self.partition_dirs.iter().rev() {
            if !p.ends_with(DEFAULT_PARTITION.trim_start_matches('/')) {
                let _ = std::fs::remove_dir(p);
            }
        }
    }

    /// `cpu_shares`.
    pub fn set_cpu_shares(&self, shares: u64) -> Result<()> {
        let v2 = self.version2(Controller::Cpu);
        values::check_shares(shares, v2)?;
        let name = if v2 { "cpu.weight" } else { "cpu.shares" };
        write_file(
            &self.file(Controller::Cpu, Part::Guest, name)?,
            &shares.to_string(),
        )
    }

    pub fn cpu_shares(&self) -> Result<u64> {
        let v2 = self.version2(Controller::Cpu);
        let name = if v2 { "cpu.weight" } else { "cpu.shares" };
        parse_u64(&self.file(Controller::Cpu, Part::Guest, name)?)
    }

    /// A period and quota of `part` (`*_period`, `*_quota`); a quota
    /// below 0 means none.
    pub fn set_cpu_bandwidth(
        &self,
        part: Part,
        period: Option<u64>,
        quota: Option<i64>,
    ) -> Result<()> {
        if let Some(p) = period {
            values::check_period(p)?;
        }
        if let Some(q) = quota {
            values::check_quota(q)?;
        }
        if self.version2(Controller::Cpu) {
            let f = self.file(Controller::Cpu, part, "cpu.max")?;
            let (old_quota, old_period) = values::parse_cpu_max(&read_file(&f)?)?;
            let quota = quota.unwrap_or(old_quota);
            let period = period.unwrap_or(old_period);
            return write_file(&f, &values::format_cpu_max(quota, period));
        }
        if let Some(p) = period {
            write_file(
                &self.file(Controller::Cpu, part, "cpu.cfs_period_us")?,
                &p.to_string(),
            )?;
        }
        if let Some(q) = quota {
            let q = if q < 0 { -1 } else { q };
            write_file(
                &self.file(Controller::Cpu, part, "cpu.cfs_quota_us")?,
                &q.to_string(),
            )?;
        }
        Ok(())
    }

    /// `part`'s (period, quota); quota -1 when unbounded.
    pub fn cpu_bandwidth(&self, part: Part) -> Result<(u64, i64)> {
        if self.version2(Controller::Cpu) {
            let f = self.file(Controller::Cpu, part, "cpu.max")?;
            let (q, p) = values::parse_cpu_max(&read_file(&f)?)?;
            return Ok((p, q));
        }
        let p = parse_u64(&self.file(Controller::Cpu, part, "cpu.cfs_period_us")?)?;
        let q = read_file(&self.file(Controller::Cpu, part, "cpu.cfs_quota_us")?)?
            .parse::<i64>()
            .map_err(|e| Error::internal(format!("cannot parse cpu.cfs_quota_us: {e}")))?;
        Ok((p, q))
    }

    /// The host CPUs `part`'s threads may run on (a cpuset list); false
    /// when the host has no cpuset controller.
    pub fn set_cpus(&self, part: Part, cpus: &str) -> Result<bool> {
        let Some(d) = self.dir(Controller::Cpuset, part) else {
            return Ok(false);
        };
        write_file(&d.join("cpuset.cpus"), cpus)?;
        Ok(true)
    }

    /// A memory limit in KiB ([`UNLIMITED_KIB`] for none).
    pub fn set_memory(&self, which: MemoryLimit, kib: u64) -> Result<()> {
        let v2 = self.version2(Controller::Memory);
        let f = self.file(Controller::Memory, Part::Guest, which.file(v2))?;
        write_file(&f, &values::format_memory(kib, v2)?)
    }

    pub fn memory(&self, which: MemoryLimit) -> Result<u64> {
        let v2 = self.version2(Controller::Memory);
        let f = self.file(Controller::Memory, Part::Guest, which.file(v2))?;
        values::parse_memory(&read_file(&f)?)
    }

    /// The blkio weight; an error where the I/O scheduler has none, as
    /// libvirt reports it.
    pub fn set_blkio_weight(&self, weight: u32) -> Result<()> {
        let (f, format) = self.blkio_weight_file()?;
        write_file(&f, &format.replace("{}", &weight.to_string()))
    }

    pub fn blkio_weight(&self) -> Result<u32> {
        let (f, _) = self.blkio_weight_file()?;
        values::parse_weight(&read_file(&f)?)
    }

    fn blkio_weight_file(&self) -> Result<(PathBuf, &'static str)> {
        let v2 = self.version2(Controller::Blkio);
        let candidates: &[(&str, &str)] = if v2 {
            &[("io.bfq.weight", "{}"), ("io.weight", "default {}")]
        } else {
            &[("blkio.bfq.weight", "{}"), ("blkio.weight", "{}")]
        };
        for (name, format) in candidates {
            let f = self.file(Controller::Blkio, Part::Guest, name)?;
            if f.exists() {
                return Ok((f, format));
            }
        }
        Err(Error::operation_invalid(
            "blkio weight is valid only for bfq or cfq scheduler",
        ))
    }

    /// One per-device limit of a block device (0: none).
    pub fn set_device_limit(
        &self,
        limit: DeviceLimit,
        dev: &BlkioDevice,
        value: u64,
    ) -> Result<()> {
        let v2 = self.version2(Controller::Blkio);
        let f = self.file(Controller::Blkio, Part::Guest, limit.file(v2))?;
        write_file(&f, &limit.format(dev, value, v2))
    }

    /// A per-device limit's values, by device number.
    pub fn device_limits(&self, limit: DeviceLimit) -> Result<Vec<((u32, u32), u64)>> {
        let v2 = self.version2(Controller::Blkio);
        let f = self.file(Controller::Blkio, Part::Guest, limit.file(v2))?;
        Ok(limit.parse(&read_file(&f)?, v2))
    }

    /// CPU time of the whole guest, ns: total, user, system.
    pub fn cpu_time(&self) -> Option<(u64, u64, u64)> {
        if self.version2(Controller::Cpuacct) {
            let d = self.dir(Controller::Cpuacct, Part::Guest)?;
            return values::parse_cpu_stat(&std::fs::read_to_string(d.join("cpu.stat")).ok()?);
        }
        let d = self.dir(Controller::Cpuacct, Part::Guest)?;
        let total = parse_u64(&d.join("cpuacct.usage")).ok()?;
        let user = parse_u64(&d.join("cpuacct.usage_user")).ok()?;
        let system = parse_u64(&d.join("cpuacct.usage_sys")).ok()?;
        Some((total, user, system))
    }

    /// CPU time per host CPU, ns, of `part` (v1 only: v2 keeps none).
    pub fn per_cpu_time(&self, part: Part) -> Option<Vec<u64>> {
        if self.version2(Controller::Cpuacct) {
            return None;
        }
        let d = self.dir(Controller::Cpuacct, part)?;
        let text = std::fs::read_to_string(d.join("cpuacct.usage_percpu")).ok()?;
        text.split_whitespace().map(|v| v.parse().ok()).collect()
    }

    /// The directory of `c` for `part`, for tests and diagnostics.
    pub fn path(&self, c: Controller, part: Part) -> Option<PathBuf> {
        self.dir(c, part)
    }
}

/// A group made for a start that may still fail: removed when dropped
/// unless kept.
pub struct Pending(Option<GuestCgroup>);

impl Pending {
    pub fn new(cg: GuestCgroup) -> Pending {
        Pending(Some(cg))
    }

    pub fn get(&self) -> &GuestCgroup {
        self.0.as_ref().expect("present until kept")
    }

    pub fn keep(mut self) -> GuestCgroup {
        self.0.take().expect("present until kept")
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            cg.remove();
        }
    }
}

fn parse_u64(path: &Path) -> Result<u64> {
    let text = read_file(path)?;
    text.trim().parse().map_err(|e| {
        Error::internal(format!(
            "cannot parse '{}' from {}: {e}",
            text,
            path.display()
        ))
    })
}

/// The thread ids of process `pid`.
fn thread_ids(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A group name as libvirt escapes it: names that start with `_` or a
/// controller's name, or hold `.`, get a `_` in front; `/` is not allowed
/// in domain names.
fn escape(name: &str) -> String {
    let clash = name.starts_with('_')
        || name.starts_with('.')
        || Controller::ALL
            .iter()
            .any(|c| name.starts_with(c.v1_name()) || name.starts_with(c.v2_name()))
        || name.starts_with("cgroup.")
        || name.starts_with("tasks");
    if clash {
        format!("_{name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_libvirt_makes_them() {
        assert_eq!(escape("g1"), "g1");
        assert_eq!(escape("cpu-hog"), "_cpu-hog");
        assert_eq!(escape("_x"), "__x");
        assert_eq!(escape("tasks1"), "_tasks1");
    }

    #[test]
    fn partitions_are_checked() {
        assert!(check_partition("/machine").is_ok());
        assert!(check_partition("/machine/web").is_ok());
        assert!(check_partition("machine").is_err());
        assert!(check_partition("/machine/../etc").is_err());
    }
}
