//! Per-domain statistics: the domain's state and sizes, plus CPU time and
//! memory use reported by its VMM while it runs.

use std::sync::Arc;

use crate::error::Result;

use super::domain::{DomainInfo, DomainObj};

/// What `virDomainListGetStats`-style calls report.
#[derive(Clone, Debug)]
pub struct DomainStats {
    pub info: DomainInfo,
    /// Nanoseconds of CPU time per vCPU (running domains only).
    pub vcpu_time_ns: Vec<u64>,
    /// Resident memory of the VMM process, KiB.
    pub rss_kib: Option<u64>,
}

impl DomainStats {
    pub fn cpu_time_ns(&self) -> u64 {
        self.vcpu_time_ns.iter().sum()
    }
}

/// Collects statistics; a VMM that does not answer only leaves the
/// runtime figures out.
pub async fn collect(obj: &Arc<DomainObj>) -> Result<DomainStats> {
    let info = obj.info()?;
    let vmm = obj.data().live.as_ref().map(|l| l.vmm.clone());
    let mut stats = DomainStats {
        info,
        vcpu_time_ns: Vec::new(),
        rss_kib: None,
    };
    if let Some(vmm) = vmm {
        match vmm.control.execute("query-stats").await {
            Ok(v) => {
                if let Some(list) = v.get("vcpus").and_then(|x| x.as_array()) {
                    stats.vcpu_time_ns = list
                        .iter()
                        .map(|c| c.get("time-ns").and_then(|t| t.as_u64()).unwrap_or(0))
                        .collect();
                }
                stats.rss_kib = v
                    .pointer("/memory/rss-bytes")
                    .and_then(|x| x.as_u64())
                    .map(|b| b / 1024);
            }
            Err(e) => tracing::debug!("query-stats failed: {e}"),
        }
    }
    Ok(stats)
}
