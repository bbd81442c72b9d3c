//! Typed-parameter records of domain statistics (`GetStats`,
//! `GetAllDomainStats`), with values double-wrapped as libvirt-dbus sends them.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use crate::driver::stats::{DomainStats, StatValue, record};

/// The record for `groups` (0 means every group oxvirt has).
pub fn stats_record(s: &DomainStats, groups: u32) -> HashMap<String, OwnedValue> {
    let mut m = HashMap::new();
    for (key, v) in record(s, groups) {
        let v = match v {
            StatValue::Int(x) => Value::I32(x),
            StatValue::UInt(x) => Value::U32(x),
            StatValue::ULLong(x) => Value::U64(x),
            StatValue::Str(x) => Value::from(x),
        };
        if let Ok(ov) = OwnedValue::try_from(Value::Value(Box::new(v))) {
            m.insert(key, ov);
        }
    }
    m
}
