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
    if groups & INTERFACE != 0 && active {
        put(&mut m, "net.count", Value::U32(s.net.len() as u32));
        for (i, n) in s.net.iter().enumerate() {
            put(&mut m, format!("net.{i}.name"), Value::from(n.name.clone()));
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
                    put(&mut m, format!("net.{i}.{k}"), Value::U64(v));
                }
            }
        }
    }
    if groups & BLOCK != 0 {
        put(&mut m, "block.count", Value::U32(s.block.len() as u32));
        for (i, b) in s.block.iter().enumerate() {
            put(
                &mut m,
                format!("block.{i}.name"),
                Value::from(b.name.clone()),
            );
            if let Some(p) = &b.path {
                put(&mut m, format!("block.{i}.path"), Value::from(p.clone()));
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
                    ("errors", io.errors),
                ] {
                    put(&mut m, format!("block.{i}.{k}"), Value::U64(v));
                }
            }
            if let Some(z) = &b.sizes {
                put(
                    &mut m,
                    format!("block.{i}.allocation"),
                    Value::U64(z.allocation),
                );
                put(
                    &mut m,
                    format!("block.{i}.capacity"),
                    Value::U64(z.capacity),
                );
                put(
                    &mut m,
                    format!("block.{i}.physical"),
                    Value::U64(z.physical),
                );
            }
        }
    }
    m
}
