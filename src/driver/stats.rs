//! Per-domain statistics: the domain's state and sizes, CPU time, memory
//! use, disk I/O counters reported by its VMM while it runs, and its
//! interface counters as the host sees its taps.

use crate::vmm::protocol::BlockCounters;
use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};

use crate::vmm::config::DiskFormat;

use super::domain::{DomainInfo, DomainObj};
use super::image::{self, Sizes};
use super::netdev::{self, Counters};

/// I/O counters of one disk (or the sum of all), libvirt's block stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockIo {
    pub rd_reqs: u64,
    pub rd_bytes: u64,
    /// Nanoseconds spent reading.
    pub rd_times: u64,
    pub wr_reqs: u64,
    pub wr_bytes: u64,
    pub wr_times: u64,
    pub fl_reqs: u64,
    pub fl_times: u64,
    /// Requests that failed.
    pub errors: u64,
}

impl BlockIo {
    fn from_vmm(c: &BlockCounters) -> BlockIo {
        BlockIo {
            rd_reqs: c.reads,
            rd_bytes: c.read_bytes,
            rd_times: c.read_time_ns,
            wr_reqs: c.writes,
            wr_bytes: c.write_bytes,
            wr_times: c.write_time_ns,
            fl_reqs: c.flushes,
            fl_times: c.flush_time_ns,
            errors: c.errors,
        }
    }

    fn add(&mut self, o: &BlockIo) {
        self.rd_reqs += o.rd_reqs;
        self.rd_bytes += o.rd_bytes;
        self.rd_times += o.rd_times;
        self.wr_reqs += o.wr_reqs;
        self.wr_bytes += o.wr_bytes;
        self.wr_times += o.wr_times;
        self.fl_reqs += o.fl_reqs;
        self.fl_times += o.fl_times;
        self.errors += o.errors;
    }
}

/// One disk in the statistics.
#[derive(Clone, Debug)]
pub struct BlockStat {
    /// `<target dev>`.
    pub name: String,
    /// Source file or device.
    pub path: Option<String>,
    /// Counters, while the domain runs.
    pub io: Option<BlockIo>,
    pub sizes: Option<Sizes>,
}

/// One interface in the statistics.
#[derive(Clone, Debug)]
pub struct NetStat {
    /// The tap's name.
    pub name: String,
    /// The guest's view (host counters swapped), if the tap is there.
    pub counters: Option<Counters>,
}

/// What `virDomainListGetStats`-style calls report.
#[derive(Clone, Debug)]
pub struct DomainStats {
    pub info: DomainInfo,
    /// Nanoseconds of CPU time per vCPU (running domains only).
    pub vcpu_time_ns: Vec<u64>,
    /// Resident memory of the VMM process, KiB.
    pub rss_kib: Option<u64>,
    pub block: Vec<BlockStat>,
    /// Interfaces; running domains only.
    pub net: Vec<NetStat>,
    /// The guest cgroup's CPU time, ns: total, user, system.
    pub cgroup_cpu_ns: Option<(u64, u64, u64)>,
}

impl DomainStats {
    /// The guest's CPU time, ns: total, user, system. From its cgroup
    /// where it has one, else the vCPUs' time (all counted as system
    /// time: guest code runs in the kernel's KVM_RUN).
    pub fn cpu_times_ns(&self) -> (u64, u64, u64) {
        self.cgroup_cpu_ns.unwrap_or_else(|| {
            let t = self.vcpu_time_ns.iter().sum();
            (t, 0, t)
        })
    }
}

fn format_of(driver_format: Option<&str>) -> Option<DiskFormat> {
    match driver_format {
        None | Some("raw") => Some(DiskFormat::Raw),
        Some("qcow2") => Some(DiskFormat::Qcow2),
        _ => None,
    }
}

/// Collects statistics; a VMM that does not answer only leaves the
/// runtime figures out.
pub async fn collect(obj: &Arc<DomainObj>) -> Result<DomainStats> {
    let info = obj.info()?;
    let (vmm, disks, host, cgroup) = {
        let d = obj.data();
        let def = d
            .current_def()
            .ok_or_else(|| Error::internal("domain without a definition"))?;
        let disks: Vec<(String, Option<String>, Option<DiskFormat>)> = def
            .devices
            .disks
            .iter()
            .map(|x| {
                (
                    x.target.dev.clone(),
                    x.source.as_ref().and_then(|s| s.path.clone()),
                    format_of(x.driver.as_ref().and_then(|d| d.format.as_deref())),
                )
            })
            .collect();
        let live = d.live.as_ref();
        (
            live.map(|l| l.vmm.clone()),
            disks,
            live.map(|l| l.host.clone()),
            live.and_then(|l| l.cgroup.clone()),
        )
    };
    let mut stats = DomainStats {
        info,
        vcpu_time_ns: Vec::new(),
        cgroup_cpu_ns: cgroup
            .as_ref()
            .and_then(super::cgroup::GuestCgroup::cpu_time),
        rss_kib: None,
        block: Vec::new(),
        net: Vec::new(),
    };
    let mut io_by_slot: HashMap<u64, BlockIo> = HashMap::new();
    if let Some(vmm) = vmm {
        match vmm.control.stats().await {
            Ok(v) => {
                stats.vcpu_time_ns = v.vcpus.iter().map(|c| c.time_ns).collect();
                stats.rss_kib = Some(v.memory.rss_bytes / 1024);
                for b in &v.devices.block {
                    io_by_slot.insert(u64::from(b.slot), BlockIo::from_vmm(b));
                }
            }
            Err(e) => tracing::debug!("query-stats failed: {e}"),
        }
    }
    for (name, path, format) in disks {
        let res = host
            .as_ref()
            .and_then(|h| h.disks.iter().find(|r| r.target == name));
        let io = res.map(|r| {
            io_by_slot
                .get(&u64::from(r.slot))
                .copied()
                .unwrap_or_default()
        });
        let sizes = match (&path, format) {
            (Some(p), Some(f)) => image::sizes(std::path::Path::new(p), f),
            _ => None,
        };
        stats.block.push(BlockStat {
            name,
            path,
            io,
            sizes,
        });
    }
    if let Some(h) = &host {
        let mut nets = h.nets.clone();
        nets.sort_by_key(|n| n.index);
        for n in nets {
            stats.net.push(NetStat {
                counters: netdev::counters(&n.ifname).map(Counters::swapped),
                name: n.ifname,
            });
        }
    }
    Ok(stats)
}

/// The block statistics `virDomainBlockStats` reports for `path` (a
/// target such as `vda` or a source path; empty for all disks summed).
pub fn block_io(stats: &DomainStats, path: &str) -> Result<BlockIo> {
    if stats.info.id.is_none() {
        return Err(Error::operation_invalid("domain is not running"));
    }
    if path.is_empty() {
        let mut sum = BlockIo::default();
        for b in &stats.block {
            sum.add(&b.io.unwrap_or_default());
        }
        return Ok(sum);
    }
    stats
        .block
        .iter()
        .find(|b| b.name == path || b.path.as_deref() == Some(path))
        .map(|b| b.io.unwrap_or_default())
        .ok_or_else(|| Error::invalid_arg(format!("invalid path: {path}")))
}

/// `virDomainStatsTypes` groups.
pub mod groups {
    pub const STATE: u32 = 1;
    pub const CPU_TOTAL: u32 = 2;
    pub const BALLOON: u32 = 4;
    pub const VCPU: u32 = 8;
    pub const INTERFACE: u32 = 16;
    pub const BLOCK: u32 = 32;
}

/// A typed parameter's value (statistics records, tunables).
#[derive(Clone, Debug, PartialEq)]
pub enum StatValue {
    Int(i32),
    UInt(u32),
    LLong(i64),
    ULLong(u64),
    Double(f64),
    Boolean(bool),
    Str(String),
}

fn put(m: &mut Vec<(String, StatValue)>, key: impl Into<String>, v: StatValue) {
    m.push((key.into(), v));
}

/// The typed parameters libvirt reports for `groups` (0 means every
/// group oxvirt has), in libvirt's order.
pub fn record(s: &DomainStats, wanted: u32) -> Vec<(String, StatValue)> {
    let wanted = if wanted == 0 { u32::MAX } else { wanted };
    let mut m = Vec::new();
    let active = s.info.id.is_some();
    if wanted & groups::STATE != 0 {
        put(&mut m, "state.state", StatValue::Int(s.info.state as i32));
        put(&mut m, "state.reason", StatValue::Int(s.info.reason));
    }
    if wanted & groups::CPU_TOTAL != 0 && active {
        let (total, user, system) = s.cpu_times_ns();
        put(&mut m, "cpu.time", StatValue::ULLong(total));
        put(&mut m, "cpu.user", StatValue::ULLong(user));
        put(&mut m, "cpu.system", StatValue::ULLong(system));
    }
    if wanted & groups::BALLOON != 0 {
        put(
            &mut m,
            "balloon.current",
            StatValue::ULLong(s.info.memory_kib),
        );
        put(
            &mut m,
            "balloon.maximum",
            StatValue::ULLong(s.info.max_memory_kib),
        );
        if let Some(rss) = s.rss_kib {
            put(&mut m, "balloon.rss", StatValue::ULLong(rss));
        }
    }
    if wanted & groups::VCPU != 0 {
        put(&mut m, "vcpu.current", StatValue::UInt(s.info.vcpus));
        put(&mut m, "vcpu.maximum", StatValue::UInt(s.info.max_vcpus));
        if active {
            for (i, t) in s.vcpu_time_ns.iter().enumerate() {
                put(&mut m, format!("vcpu.{i}.state"), StatValue::Int(1));
                put(&mut m, format!("vcpu.{i}.time"), StatValue::ULLong(*t));
            }
        }
    }
    if wanted & groups::INTERFACE != 0 && active {
        put(&mut m, "net.count", StatValue::UInt(s.net.len() as u32));
        for (i, n) in s.net.iter().enumerate() {
            put(
                &mut m,
                format!("net.{i}.name"),
                StatValue::Str(n.name.clone()),
            );
            if let Some(c) = &n.counters {
                for (k, v) in [
                    ("rx.bytes", c.rx_bytes),
                    ("rx.pkts", c.rx_packets),
                    ("rx.errs", c.rx_errs),
                    ("rx.drop", c.rx_drop),
                    ("tx.bytes", c.tx_bytes),
                    ("tx.pkts", c.tx_packets),
                    ("tx.errs", c.tx_errs),
                    ("tx.drop", c.tx_drop),
                ] {
                    put(&mut m, format!("net.{i}.{k}"), StatValue::ULLong(v));
                }
            }
        }
    }
    if wanted & groups::BLOCK != 0 {
        put(&mut m, "block.count", StatValue::UInt(s.block.len() as u32));
        for (i, b) in s.block.iter().enumerate() {
            put(
                &mut m,
                format!("block.{i}.name"),
                StatValue::Str(b.name.clone()),
            );
            if let Some(p) = &b.path {
                put(&mut m, format!("block.{i}.path"), StatValue::Str(p.clone()));
            }
            if let Some(io) = &b.io {
                for (k, v) in [
                    ("rd.reqs", io.rd_reqs),
                    ("rd.bytes", io.rd_bytes),
                    ("rd.times", io.rd_times),
                    ("wr.reqs", io.wr_reqs),
                    ("wr.bytes", io.wr_bytes),
                    ("wr.times", io.wr_times),
                    ("fl.reqs", io.fl_reqs),
                    ("fl.times", io.fl_times),
                ] {
                    put(&mut m, format!("block.{i}.{k}"), StatValue::ULLong(v));
                }
            }
            if let Some(z) = &b.sizes {
                put(
                    &mut m,
                    format!("block.{i}.allocation"),
                    StatValue::ULLong(z.allocation),
                );
                put(
                    &mut m,
                    format!("block.{i}.capacity"),
                    StatValue::ULLong(z.capacity),
                );
                put(
                    &mut m,
                    format!("block.{i}.physical"),
                    StatValue::ULLong(z.physical),
                );
            }
        }
    }
    m
}
