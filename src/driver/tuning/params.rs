//! Typed parameters coming in, checked as libvirt's
//! `virTypedParamsValidate` checks them.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::super::domain::{DomainData, DomainObj};
use super::super::stats::StatValue;
use super::super::vcpus::{AFFECT_CONFIG, AFFECT_LIVE};

/// `VIR_TYPED_PARAM_STRING_OKAY`: the caller takes string parameters.
pub const TYPED_PARAM_STRING_OKAY: u32 = 1 << 2;

/// Refuses flags other than `VIR_DOMAIN_AFFECT_*` and `extra`, as
/// `virCheckFlags` in `function`.
pub fn check_affect_flags(flags: u32, extra: u32, function: &str) -> Result<()> {
    super::super::check_flags(flags, AFFECT_LIVE | AFFECT_CONFIG | extra, function)
}

/// The preamble libvirt's `virDomainGet*Parameters` share: flags
/// checked, with `nparams` 0 only the count of parameters, else `read`
/// gives them from the definitions `flags` name (told whether the live
/// one), at most `nparams`.
pub fn get_parameters(
    obj: &DomainObj,
    nparams: usize,
    flags: u32,
    function: &str,
    count: usize,
    read: impl FnOnce(&DomainData, bool) -> Result<Vec<(String, StatValue)>>,
) -> Result<(usize, Vec<(String, StatValue)>)> {
    check_affect_flags(flags, TYPED_PARAM_STRING_OKAY, function)?;
    let d = obj.data();
    if d.removed {
        return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
    }
    if nparams == 0 {
        return Ok((count, Vec::new()));
    }
    let (live, _) = super::super::metadata::targets(&d, flags)?;
    let mut out = read(&d, live)?;
    out.truncate(nparams);
    Ok((out.len(), out))
}

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
