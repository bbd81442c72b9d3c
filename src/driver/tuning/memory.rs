//! `virDomainGetMemoryParameters` and `virDomainSetMemoryParameters`:
//! `<memtune>`'s limits, in KiB, live from the guest's memory cgroup.

use std::sync::Arc;

use crate::error::{Error, Result};

use super::super::Driver;
use super::super::cgroup::{MemoryLimit, UNLIMITED_KIB};
use super::super::domain::{DomainData, DomainObj};
use super::super::stats::StatValue;
use super::params::{ParamType, check_affect_flags, get_parameters, unsigned, validate};
use super::tunables;

/// The parameters, in libvirt's order.
const PARAMS: [(&str, MemoryLimit); 3] = [
    ("hard_limit", MemoryLimit::Hard),
    ("soft_limit", MemoryLimit::Soft),
    ("swap_hard_limit", MemoryLimit::SwapHard),
];

impl Driver {
    /// With `nparams` 0, how many there are; else up to `nparams` values.
    pub fn get_memory_parameters(
        &self,
        obj: &DomainObj,
        nparams: usize,
        flags: u32,
    ) -> Result<(usize, Vec<(String, StatValue)>)> {
        // Only the values asked for: a missing swap accounting file must not
        // fail a query for the first two.
        let read = |d: &DomainData, live: bool| {
            PARAMS
                .iter()
                .take(nparams)
                .map(|(name, which)| {
                    let kib = if live {
                        let cg = d
                            .live
                            .as_ref()
                            .and_then(|l| l.cgroup.clone())
                            .unwrap_or_default();
                        cg.memory(*which)?
                    } else {
                        let def = d.persistent.as_ref().ok_or_else(|| {
                            Error::operation_invalid(
                                "transient domains do not have any persistent config",
                            )
                        })?;
                        tunables::memtune(def, *which)?.unwrap_or(UNLIMITED_KIB)
                    };
                    Ok((name.to_string(), StatValue::ULLong(kib)))
                })
                .collect()
        };
        get_parameters(
            obj,
            nparams,
            flags,
            "qemuDomainGetMemoryParameters",
            PARAMS.len(),
            read,
        )
    }

    pub async fn set_memory_parameters(
        &self,
        obj: &Arc<DomainObj>,
        params: &[(String, StatValue)],
        flags: u32,
    ) -> Result<()> {
        check_affect_flags(flags, 0, "qemuDomainSetMemoryParameters")?;
        let known: Vec<(&str, ParamType)> = PARAMS
            .iter()
            .map(|(n, _)| (*n, ParamType::ULLong))
            .chain([("min_guarantee", ParamType::ULLong)])
            .collect();
        validate(params, &known)?;
        if params.iter().any(|(n, _)| n == "min_guarantee") {
            return Err(Error::unsupported(
                "QEMU driver does not support modifying min_guarantee",
            ));
        }
        let wanted: Vec<(MemoryLimit, u64)> = PARAMS
            .iter()
            .filter_map(|(n, which)| {
                let (_, v) = params.iter().find(|(p, _)| p == n)?;
                Some((*which, unsigned(v)))
            })
            .collect();
        for (_, kib) in &wanted {
            crate::driver::cgroup::check_memory_kib(*kib)?;
        }
        let edit = |def: &mut crate::xml::model::Domain, _live: bool| {
            for (which, kib) in &wanted {
                tunables::set_memtune(def, *which, Some(*kib));
            }
            let hard = tunables::memtune(def, MemoryLimit::Hard)?.unwrap_or(UNLIMITED_KIB);
            let swap = tunables::memtune(def, MemoryLimit::SwapHard)?.unwrap_or(UNLIMITED_KIB);
            if hard > swap {
                return Err(Error::invalid_arg(
                    "memory hard_limit tunable value must be lower than or equal to swap_hard_limit",
                ));
            }
            Ok(())
        };
        self.change_tunables(obj, flags, edit, |cg, _, _| {
            // v1 keeps memsw ≥ limit at every step: a swap limit that
            // grows goes first, one that shrinks after the hard limit.
            let swap_grows = wanted.iter().any(|(w, kib)| {
                *w == MemoryLimit::SwapHard
                    && cg
                        .memory(MemoryLimit::SwapHard)
                        .is_ok_and(|cur| *kib >= cur)
            });
            let mut order = wanted.clone();
            order.sort_by_key(|(w, _)| match (w, swap_grows) {
                (MemoryLimit::SwapHard, true) => 0,
                (MemoryLimit::SwapHard, false) => 2,
                _ => 1,
            });
            for (which, kib) in order {
                cg.set_memory(which, kib)?;
            }
            Ok(())
        })
        .await
    }
}
