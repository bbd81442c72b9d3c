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

/// Typed parameters from an `a{sv}` argument, as libvirt-dbus reads
/// them: each variant's D-Bus type gives the parameter's type.
pub fn from_dbus(
    params: HashMap<String, OwnedValue>,
) -> crate::error::Result<Vec<(String, StatValue)>> {
    params
        .into_iter()
        .map(|(k, v)| {
            let v = match &*v {
                Value::I32(x) => StatValue::Int(*x),
                Value::U32(x) => StatValue::UInt(*x),
                Value::I64(x) => StatValue::LLong(*x),
                Value::U64(x) => StatValue::ULLong(*x),
                Value::F64(x) => StatValue::Double(*x),
                Value::Bool(x) => StatValue::Boolean(*x),
                Value::Str(x) => StatValue::Str(x.to_string()),
                other => {
                    return Err(crate::error::Error::invalid_arg(format!(
                        "Unsupported type '{}' of parameter '{k}'",
                        other.value_signature()
                    )));
                }
            };
            Ok((k, v))
        })
        .collect()
}

/// A typed-parameter value as its D-Bus variant.
pub fn value(v: StatValue) -> Value<'static> {
    match v {
        StatValue::Int(x) => Value::I32(x),
        StatValue::UInt(x) => Value::U32(x),
        StatValue::LLong(x) => Value::I64(x),
        StatValue::ULLong(x) => Value::U64(x),
        StatValue::Double(x) => Value::F64(x),
        StatValue::Boolean(x) => Value::Bool(x),
        StatValue::Str(x) => Value::from(x),
    }
}
