//! Typed-parameter records of domain statistics (`GetStats`,
//! `GetAllDomainStats`), with values double-wrapped as libvirt-dbus sends them.

use std::collections::HashMap;

use zbus::zvariant::{OwnedValue, Value};

use crate::driver::stats::{DomainStats, StatValue, record};

/// The record for `groups` (0 means every group oxvirt has).
pub fn stats_record(s: &DomainStats, groups: u32) -> HashMap<String, OwnedValue> {
    typed_params(record(s, groups))
}

/// Typed parameters as libvirt-dbus returns them: `a{sv}` with each value
/// wrapped twice.
pub fn typed_params(list: Vec<(String, StatValue)>) -> HashMap<String, OwnedValue> {
    let mut m = HashMap::new();
    for (key, v) in list {
        if let Ok(ov) = OwnedValue::try_from(Value::Value(Box::new(value(v)))) {
            m.insert(key, ov);
        }
    }
    m
}

/// A typed-parameter value as its D-Bus variant.
pub fn value(v: StatValue) -> Value<'static> {
    match v {
        StatValue::Int(x) => Value::I32(x),
        StatValue::UInt(x) => Value::U32(x),
        StatValue::LLong(x) => Value::I64(x),
        StatValue::ULLong(x) => Value::U64(x),
        StatValue::Str(x) => Value::from(x),
    }
}
