//! Domain and host queries served on the generated protocol structures:
//! metadata, scheduler parameters, block info, snapshots, CPU statistics,
//! NUMA cell memory and CPU model names. Semantics are the driver's.

use std::sync::Arc;

use uuid::Uuid;

use crate::driver::stats::StatValue;
use crate::driver::{DomainObj, Driver, host, tuning};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};
use super::xdr::Opaque;

pub(super) fn typed(params: Vec<(String, StatValue)>) -> Vec<g::TypedParam> {
    params
        .into_iter()
        .map(|(field, v)| g::TypedParam {
            field,
            value: match v {
                StatValue::Int(x) => g::TypedParamValue::Int(x),
                StatValue::UInt(x) => g::TypedParamValue::Uint(x),
                StatValue::LLong(x) => g::TypedParamValue::Llong(x),
                StatValue::ULLong(x) => g::TypedParamValue::Ullong(x),
                StatValue::Double(x) => g::TypedParamValue::Double(x),
                StatValue::Boolean(x) => g::TypedParamValue::Boolean(i32::from(x)),
                StatValue::Str(x) => g::TypedParamValue::String(x),
            },
        })
        .collect()
}

/// Typed parameters from the wire, for the driver.
fn untyped(params: Vec<g::TypedParam>) -> Vec<(String, StatValue)> {
    params
        .into_iter()
        .map(|p| {
            let v = match p.value {
                g::TypedParamValue::Int(x) => StatValue::Int(x),
                g::TypedParamValue::Uint(x) => StatValue::UInt(x),
                g::TypedParamValue::Llong(x) => StatValue::LLong(x),
                g::TypedParamValue::Ullong(x) => StatValue::ULLong(x),
                g::TypedParamValue::Double(x) => StatValue::Double(x),
                g::TypedParamValue::Boolean(x) => StatValue::Boolean(x != 0),
                g::TypedParamValue::String(x) => StatValue::Str(x),
            };
            (p.field, v)
        })
        .collect()
}

/// A client's CPU map (bit i of byte i/8: host CPU i).
fn cpus_of(map: &[u8]) -> Vec<bool> {
    (0..map.len() * 8)
        .map(|i| map[i / 8] & (1 << (i % 8)) != 0)
        .collect()
}

/// A CPU map of `maplen` bytes.
fn map_of(cpus: &[bool], maplen: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; maplen];
    for (i, on) in cpus.iter().enumerate() {
        if *on && i / 8 < maplen {
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    bytes
}

/// `maplen` and `ncpumaps` as libvirt's remote driver bounds them.
fn cpumaps_size(ncpumaps: i32, maplen: i32) -> Result<(usize, usize)> {
    if maplen <= 0 || maplen as usize > g::REMOTE_CPUMAP_MAX {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            "maplen > REMOTE_CPUMAP_MAX",
        ));
    }
    let n = usize::try_from(ncpumaps).unwrap_or(0);
    if n.saturating_mul(maplen as usize) > g::REMOTE_CPUMAPS_MAX {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            "ncpumaps * maplen > REMOTE_CPUMAPS_MAX",
        ));
    }
    Ok((n, maplen as usize))
}

fn nparams_limit(n: i32, max: usize) -> Result<i32> {
    if n < 0 || n as usize > max {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            "nparams too large",
        ));
    }
    Ok(n)
}

/// Runs one of these procedures; `None` when `proc_` is not one.
pub async fn call(drv: &Driver, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let dom = |d: &g::NonnullDomain| -> Result<Arc<DomainObj>> {
        drv.lookup_by_uuid(&Uuid::from_bytes(d.uuid))
    };
    let r = match proc_ {
        procs::DOMAIN_GET_METADATA => (|| {
            let a: g::DomainGetMetadataArgs = args(p)?;
            let metadata = drv.get_metadata(&*dom(&a.dom)?, a.r#type, a.uri.as_deref(), a.flags)?;
            reply(&g::DomainGetMetadataRet { metadata })
        })(),
        procs::DOMAIN_SET_METADATA => {
            async {
                let a: g::DomainSetMetadataArgs = args(p)?;
                drv.set_metadata(
                    &dom(&a.dom)?,
                    a.r#type,
                    a.metadata.as_deref(),
                    a.key.as_deref(),
                    a.uri.as_deref(),
                    a.flags,
                )
                .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_BLOCK_RESIZE => {
            async {
                let a: g::DomainBlockResizeArgs = args(p)?;
                drv.block_resize(&dom(&a.dom)?, &a.disk, a.size, a.flags)
                    .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_ATTACH_DEVICE => {
            async {
                let a: g::DomainAttachDeviceArgs = args(p)?;
                drv.attach_device(&dom(&a.dom)?, &a.xml).await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_ATTACH_DEVICE_FLAGS => {
            async {
                let a: g::DomainAttachDeviceFlagsArgs = args(p)?;
                drv.attach_device_flags(&dom(&a.dom)?, &a.xml, a.flags)
                    .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_DETACH_DEVICE => {
            async {
                let a: g::DomainDetachDeviceArgs = args(p)?;
                drv.detach_device(&dom(&a.dom)?, &a.xml).await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_DETACH_DEVICE_FLAGS => {
            async {
                let a: g::DomainDetachDeviceFlagsArgs = args(p)?;
                drv.detach_device_flags(&dom(&a.dom)?, &a.xml, a.flags)
                    .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_DETACH_DEVICE_ALIAS => {
            async {
                let a: g::DomainDetachDeviceAliasArgs = args(p)?;
                drv.detach_device_alias(&dom(&a.dom)?, &a.alias, a.flags)
                    .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_UPDATE_DEVICE_FLAGS => {
            async {
                let a: g::DomainUpdateDeviceFlagsArgs = args(p)?;
                drv.update_device_flags(&dom(&a.dom)?, &a.xml, a.flags)
                    .await?;
                Ok(Outcome::Reply(Vec::new()))
            }
            .await
        }
        procs::DOMAIN_GET_SCHEDULER_TYPE => (|| {
            let a: g::DomainGetSchedulerTypeArgs = args(p)?;
            let (r#type, nparams) = tuning::get_scheduler_type(&*dom(&a.dom)?)?;
            reply(&g::DomainGetSchedulerTypeRet { r#type, nparams })
        })(),
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS => (|| {
            let a: g::DomainGetSchedulerParametersArgs = args(p)?;
            let n = nparams_limit(a.nparams, g::REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)?;
            let params = drv.get_scheduler_parameters(&*dom(&a.dom)?, n, 0)?;
            reply(&g::DomainGetSchedulerParametersRet {
                params: typed(params),
            })
        })(),
        procs::DOMAIN_GET_SCHEDULER_PARAMETERS_FLAGS => (|| {
            let a: g::DomainGetSchedulerParametersFlagsArgs = args(p)?;
            let n = nparams_limit(a.nparams, g::REMOTE_DOMAIN_SCHEDULER_PARAMETERS_MAX)?;
            let params = drv.get_scheduler_parameters(&*dom(&a.dom)?, n, a.flags)?;
            reply(&g::DomainGetSchedulerParametersFlagsRet {
                params: typed(params),
            })
        })(),
        procs::DOMAIN_GET_BLOCK_INFO => (|| {
            let a: g::DomainGetBlockInfoArgs = args(p)?;
            let s = drv.get_block_info(&*dom(&a.dom)?, &a.path, a.flags)?;
            reply(&g::DomainGetBlockInfoRet {
                allocation: s.allocation,
                capacity: s.capacity,
                physical: s.physical,
            })
        })(),
        procs::DOMAIN_SET_SCHEDULER_PARAMETERS => {
            async {
                let a: g::DomainSetSchedulerParametersArgs = args(p)?;
                drv.set_scheduler_parameters(&dom(&a.dom)?, &untyped(a.params), 0)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_SET_SCHEDULER_PARAMETERS_FLAGS => {
            async {
                let a: g::DomainSetSchedulerParametersFlagsArgs = args(p)?;
                drv.set_scheduler_parameters(&dom(&a.dom)?, &untyped(a.params), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_SET_MEMORY_PARAMETERS => {
            async {
                let a: g::DomainSetMemoryParametersArgs = args(p)?;
                drv.set_memory_parameters(&dom(&a.dom)?, &untyped(a.params), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_GET_MEMORY_PARAMETERS => (|| {
            let a: g::DomainGetMemoryParametersArgs = args(p)?;
            let n = nparams_limit(a.nparams, g::REMOTE_DOMAIN_MEMORY_PARAMETERS_MAX)?;
            let (count, params) = drv.get_memory_parameters(&*dom(&a.dom)?, n as usize, a.flags)?;
            reply(&g::DomainGetMemoryParametersRet {
                params: typed(params),
                nparams: count as i32,
            })
        })(),
        procs::DOMAIN_SET_BLKIO_PARAMETERS => {
            async {
                let a: g::DomainSetBlkioParametersArgs = args(p)?;
                drv.set_blkio_parameters(&dom(&a.dom)?, &untyped(a.params), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_GET_BLKIO_PARAMETERS => (|| {
            let a: g::DomainGetBlkioParametersArgs = args(p)?;
            let n = nparams_limit(a.nparams, g::REMOTE_DOMAIN_BLKIO_PARAMETERS_MAX)?;
            let (count, params) = drv.get_blkio_parameters(&*dom(&a.dom)?, n as usize, a.flags)?;
            reply(&g::DomainGetBlkioParametersRet {
                params: typed(params),
                nparams: count as i32,
            })
        })(),
        procs::DOMAIN_PIN_VCPU => {
            async {
                let a: g::DomainPinVcpuArgs = args(p)?;
                let live = crate::driver::vcpus::AFFECT_LIVE;
                drv.pin_vcpu(&dom(&a.dom)?, a.vcpu, &cpus_of(&a.cpumap.0), live)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_PIN_VCPU_FLAGS => {
            async {
                let a: g::DomainPinVcpuFlagsArgs = args(p)?;
                drv.pin_vcpu(&dom(&a.dom)?, a.vcpu, &cpus_of(&a.cpumap.0), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_PIN_EMULATOR => {
            async {
                let a: g::DomainPinEmulatorArgs = args(p)?;
                drv.pin_emulator(&dom(&a.dom)?, &cpus_of(&a.cpumap.0), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_GET_VCPU_PIN_INFO => (|| {
            let a: g::DomainGetVcpuPinInfoArgs = args(p)?;
            let (n, maplen) = cpumaps_size(a.ncpumaps, a.maplen)?;
            let maps = drv.get_vcpu_pin_info(&*dom(&a.dom)?, n, a.flags)?;
            let mut bytes = Vec::with_capacity(n * maplen);
            for m in &maps {
                bytes.extend(map_of(m, maplen));
            }
            bytes.resize(n * maplen, 0);
            reply(&g::DomainGetVcpuPinInfoRet {
                cpumaps: Opaque(bytes),
                num: maps.len() as i32,
            })
        })(),
        procs::DOMAIN_GET_EMULATOR_PIN_INFO => (|| {
            let a: g::DomainGetEmulatorPinInfoArgs = args(p)?;
            let (_, maplen) = cpumaps_size(1, a.maplen)?;
            let map = drv.get_emulator_pin_info(&*dom(&a.dom)?, a.flags)?;
            reply(&g::DomainGetEmulatorPinInfoRet {
                cpumaps: Opaque(map_of(&map, maplen)),
                ret: 1,
            })
        })(),
        procs::DOMAIN_GET_CPU_STATS => (|| {
            let a: g::DomainGetCpuStatsArgs = args(p)?;
            if a.nparams as usize > g::REMOTE_NODE_CPU_STATS_MAX {
                return Err(Error::internal("nparams too large"));
            }
            if a.ncpus as usize > g::REMOTE_DOMAIN_GET_CPU_STATS_NCPUS_MAX {
                return Err(Error::internal("ncpus too large"));
            }
            let (nparams, params) =
                drv.get_cpu_stats(&*dom(&a.dom)?, a.nparams, a.start_cpu, a.ncpus, a.flags)?;
            reply(&g::DomainGetCpuStatsRet {
                params: typed(params),
                nparams,
            })
        })(),
        procs::NODE_GET_CELLS_FREE_MEMORY => (|| {
            let a: g::NodeGetCellsFreeMemoryArgs = args(p)?;
            if a.maxcells < 0 || a.maxcells as usize > g::REMOTE_NODE_MAX_CELLS {
                return Err(Error::new(
                    ErrorCode::Rpc,
                    ErrorDomain::Rpc,
                    "maxCells > REMOTE_NODE_MAX_CELLS",
                ));
            }
            let cells = host::cells_free_memory(a.start_cell, a.maxcells)?;
            reply(&g::NodeGetCellsFreeMemoryRet { cells })
        })(),
        procs::CONNECT_GET_CPU_MODEL_NAMES => (|| {
            let a: g::ConnectGetCpuModelNamesArgs = args(p)?;
            let models = host::cpu_model_names(&a.arch, a.flags)?;
            let ret = models.len() as i32;
            reply(&g::ConnectGetCpuModelNamesRet {
                models: if a.need_results != 0 {
                    models
                } else {
                    Vec::new()
                },
                ret,
            })
        })(),
        _ => return None,
    };
    Some(r)
}
