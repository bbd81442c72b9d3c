//! Typed parameters coming in, checked as libvirt's
//! `virTypedParamsValidate` checks them.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::super::stats::StatValue;

/// A typed parameter's declared type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    UInt,
    LLong,
    ULLong,
    Str,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::UInt => "uint",
            ParamType::LLong => "llong",
            ParamType::ULLong => "ullong",
            ParamType::Str => "string",
        }
    }
}

fn type_name(v: &StatValue) -> &'static str {
    match v {
        StatValue::Int(_) => "int",
        StatValue::UInt(_) => "uint",
        StatValue::LLong(_) => "llong",
        StatValue::ULLong(_) => "ullong",
        StatValue::Double(_) => "double",
        StatValue::Boolean(_) => "boolean",
        StatValue::Str(_) => "string",
    }
}

fn matches(v: &StatValue, t: ParamType) -> bool {
    matches!(
        (v, t),
        (StatValue::UInt(_), ParamType::UInt)
            | (StatValue::LLong(_), ParamType::LLong)
            | (StatValue::ULLong(_), ParamType::ULLong)
            | (StatValue::Str(_), ParamType::Str)
    )
}

/// Every parameter known, of its type, once.
pub fn validate(params: &[(String, StatValue)], known: &[(&str, ParamType)]) -> Result<()> {
    for (i, (name, value)) in params.iter().enumerate() {
        let Some((_, t)) = known.iter().find(|(k, _)| k == name) else {
            return Err(Error::new(
                ErrorCode::ArgumentUnsupported,
                ErrorDomain::Domain,
                format!("parameter '{name}' not supported"),
            ));
        };
        if !matches(value, *t) {
            return Err(Error::invalid_arg(format!(
                "invalid type '{}' for parameter '{name}', expected '{}'",
                type_name(value),
                t.name()
            )));
        }
        if params[..i].iter().any(|(n, _)| n == name) {
            return Err(Error::invalid_arg(format!(
                "parameter '{name}' occurs multiple times"
            )));
        }
    }
    Ok(())
}

/// The value of an unsigned parameter (validated before).
pub fn unsigned(v: &StatValue) -> u64 {
    match v {
        StatValue::UInt(x) => u64::from(*x),
        StatValue::ULLong(x) => *x,
        StatValue::LLong(x) => u64::try_from(*x).unwrap_or(0),
        StatValue::Int(x) => u64::try_from(*x).unwrap_or(0),
        _ => 0,
    }
}

/// The value of a signed parameter (validated before).
pub fn signed(v: &StatValue) -> i64 {
    match v {
        StatValue::LLong(x) => *x,
        StatValue::Int(x) => i64::from(*x),
        StatValue::UInt(x) => i64::from(*x),
        StatValue::ULLong(x) => i64::try_from(*x).unwrap_or(i64::MAX),
        _ => 0,
    }
}
