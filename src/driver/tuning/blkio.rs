//! `virDomainGetBlkioParameters` and `virDomainSetBlkioParameters`:
//! `<blkiotune>`'s weight and per-device limits, the latter as libvirt's
//! "path,value[,path,value...]" strings.

use std::sync::Arc;

use crate::error::{Error, Result};

use super::super::Driver;
use super::super::cgroup::{BlkioDevice, DeviceLimit};
use super::super::domain::{DomainData, DomainObj};
use super::super::stats::StatValue;
use super::params::{ParamType, check_affect_flags, get_parameters, unsigned, validate};
use super::tunables;

/// The per-device parameters in libvirt's order (`None`: device_weight).
const DEVICE_PARAMS: [Option<DeviceLimit>; 5] = [
    None,
    Some(DeviceLimit::ReadIops),
    Some(DeviceLimit::WriteIops),
    Some(DeviceLimit::ReadBytes),
    Some(DeviceLimit::WriteBytes),
];

fn param_name(limit: Option<DeviceLimit>) -> &'static str {
    limit.map(|l| l.names().1).unwrap_or("device_weight")
}

/// One per-device parameter's (path, value) pairs.
type DeviceValues = (Option<DeviceLimit>, Vec<(String, u64)>);

/// "path,value,path,value" into pairs; libvirt's errors for bad text.
fn parse_devices(name: &str, text: &str) -> Result<Vec<(String, u64)>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let fields: Vec<&str> = text.split(',').collect();
    if !fields.len().is_multiple_of(2) {
        return Err(Error::invalid_arg(format!(
            "unable to parse blkio device '{text}' '{name}'"
        )));
    }
    fields
        .chunks(2)
        .map(|pair| {
            let v: u64 = pair[1].parse().map_err(|_| {
                Error::invalid_arg(format!(
                    "invalid value '{}' for parameter '{name}' of device '{}'",
                    pair[1], pair[0]
                ))
            })?;
            Ok((pair[0].to_string(), v))
        })
        .collect()
}

fn format_devices(list: &[(String, u64)]) -> String {
    list.iter()
        .map(|(p, v)| format!("{p},{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Driver {
    /// With `nparams` 0, how many there are; else up to `nparams` values.
    pub fn get_blkio_parameters(
        &self,
        obj: &DomainObj,
        nparams: usize,
        flags: u32,
    ) -> Result<(usize, Vec<(String, StatValue)>)> {
        let read = |d: &DomainData, live: bool| {
            let def = if live {
                d.live.as_ref().map(|l| &l.def)
            } else {
                d.persistent.as_ref()
            }
            .ok_or_else(|| Error::operation_invalid("domain is not running"))?;
            // The weight the scheduler applies, where it has one.
            let weight = live
                .then(|| d.live.as_ref().and_then(|l| l.cgroup.as_ref()))
                .flatten()
                .and_then(|cg| cg.blkio_weight().ok())
                .or_else(|| tunables::blkio_weight(def))
                .unwrap_or(0);
            let mut out = vec![("weight".to_string(), StatValue::UInt(weight))];
            for limit in DEVICE_PARAMS {
                let list = tunables::blkio_devices(def, limit);
                out.push((
                    param_name(limit).to_string(),
                    StatValue::Str(format_devices(&list)),
                ));
            }
            Ok(out)
        };
        get_parameters(
            obj,
            nparams,
            flags,
            "qemuDomainGetBlkioParameters",
            1 + DEVICE_PARAMS.len(),
            read,
        )
    }

    pub async fn set_blkio_parameters(
        &self,
        obj: &Arc<DomainObj>,
        params: &[(String, StatValue)],
        flags: u32,
    ) -> Result<()> {
        check_affect_flags(flags, 0, "qemuDomainSetBlkioParameters")?;
        let mut known = vec![("weight", ParamType::UInt)];
        known.extend(
            DEVICE_PARAMS
                .iter()
                .map(|l| (param_name(*l), ParamType::Str)),
        );
        validate(params, &known)?;
        let mut weight = None;
        let mut devices: Vec<DeviceValues> = Vec::new();
        for (name, v) in params {
            if name == "weight" {
                let w = unsigned(v) as u32;
                if !(100..=1000).contains(&w) && w != 0 {
                    return Err(Error::invalid_arg("out of blkio weight range."));
                }
                weight = Some(w);
                continue;
            }
            let limit = DEVICE_PARAMS
                .into_iter()
                .find(|l| param_name(*l) == name)
                .expect("validated");
            let StatValue::Str(text) = v else {
                unreachable!("validated as a string")
            };
            devices.push((limit, parse_devices(name, text)?));
        }
        if devices
            .iter()
            .any(|(l, list)| l.is_none() && !list.is_empty())
        {
            return Err(Error::operation_invalid(
                "blkio device weight is valid only for bfq or cfq scheduler",
            ));
        }
        let edit = |def: &mut crate::xml::model::Domain, _live: bool| {
            if let Some(w) = weight {
                tunables::set_blkio_weight(def, w);
            }
            for (limit, list) in &devices {
                for (path, v) in list {
                    tunables::set_blkio_device(def, *limit, path, *v);
                }
            }
            Ok(())
        };
        self.change_tunables(obj, flags, edit, |cg, _, _| {
            if let Some(w) = weight {
                cg.set_blkio_weight(w)?;
            }
            for (limit, list) in &devices {
                let Some(limit) = limit else { continue };
                for (path, v) in list {
                    cg.set_device_limit(*limit, &BlkioDevice::open(path)?, *v)?;
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_strings() {
        assert_eq!(
            parse_devices("device_read_iops_sec", "/dev/a,10,/dev/b,20").unwrap(),
            [("/dev/a".to_string(), 10), ("/dev/b".to_string(), 20)]
        );
        assert!(parse_devices("x", "/dev/a").is_err());
        assert!(parse_devices("x", "/dev/a,ten").is_err());
        assert_eq!(format_devices(&[("/dev/a".into(), 10)]), "/dev/a,10");
    }
}
