//! Typed-parameter records of domain statistics (`GetStats`,
//! `GetAllDomainStats`), with values double-wrapped as libvirt-dbus sends them.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use crate::driver::stats::DomainStats;

/// `virDomainStatsTypes` groups.
const STATE: u32 = 1;
const CPU_TOTAL: u32 = 2;
const BALLOON: u32 = 4;
const VCPU: u32 = 8;
const INTERFACE: u32 = 16;
const BLOCK: u32 = 32;

fn put(map: &mut HashMap<String, OwnedValue>, key: impl Into<String>, v: Value<'static>) {
    if let Ok(ov) = OwnedValue::try_from(Value::Value(Box::new(v))) {
        map.insert(key.into(), ov);
    }
}

/// The record for `groups` (0 means every group oxvirt has).
pub fn stats_record(s: &DomainStats, groups: u32) -> HashMap<String, OwnedValue> {
    let groups = if groups == 0 { u32::MAX } else { groups };
    let mut m = HashMap::new();
    let active = s.info.id.is_some();
    if groups & STATE != 0 {
        put(&mut m, "state.state", Value::I32(s.info.state as i32));
        put(&mut m, "state.reason", Value::I32(s.info.reason));
    }
    if groups & CPU_TOTAL != 0 && active {
        let t = s.cpu_time_ns();
        put(&mut m, "cpu.time", Value::U64(t));
        put(&mut m, "cpu.user", Value::U64(0));
        put(&mut m, "cpu.system", Value::U64(t));
    }
    if groups & BALLOON != 0 {
        put(&mut m, "balloon.current", Value::U64(s.info.memory_kib));
        put(&mut m, "balloon.maximum", Value::U64(s.info.max_memory_kib));
        if let Some(rss) = s.rss_kib {
            put(&mut m, "balloon.rss", Value::U64(rss));
        }
    }
    if groups & VCPU != 0 {
        put(&mut m, "vcpu.current", Value::U32(s.info.vcpus));
        put(&mut m, "vcpu.maximum", Value::U32(s.info.max_vcpus));
        if active {
            for (i, t) in s.vcpu_time_ns.iter().enumerate() {
                put(&mut m, format!("vcpu.{i}.state"), Value::I32(1));
                put(&mut m, format!("vcpu.{i}.time"), Value::U64(*t));
            }
        }
    }
    if groups & INTERFACE != 0 {
        put(&mut m, "net.count", Value::U32(0));
    }
    if groups & BLOCK != 0 {
        put(&mut m, "block.count", Value::U32(0));
    }
    m
}
