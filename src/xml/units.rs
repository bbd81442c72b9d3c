//! Memory sizes with libvirt's unit suffixes, normalised to KiB.

use super::tree::Element;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// Bytes per unit for a libvirt scaled-integer suffix. Case is ignored;
/// `KB`, `MB`, ... are powers of 1000, `k`, `KiB`, ... powers of 1024.
pub fn unit_scale(unit: &str) -> Option<u64> {
    let lower = unit.to_ascii_lowercase();
    if lower == "b" || lower == "byte" || lower == "bytes" {
        return Some(1);
    }
    let mut chars = lower.chars();
    let exponent = match chars.next()? {
        'k' => 1,
        'm' => 2,
        'g' => 3,
        't' => 4,
        'p' => 5,
        'e' => 6,
        _ => return None,
    };
    let base: u64 = match chars.as_str() {
        "" | "ib" => 1024,
        "b" => 1000,
        _ => return None,
    };
    Some(base.pow(exponent))
}

/// Parse the memory element `elem` (value plus optional `unit`, default
/// KiB) into KiB, rounding up partial KiB as libvirt does.
pub fn parse_memory_kib(elem: &Element) -> Result<u64> {
    // libvirt reads the number strictly: no surrounding blanks.
    let text = elem.text.as_str();
    let value: u64 = text.parse().map_err(|_| {
        Error::xml(format!(
            "Invalid value '{text}' for element or attribute './{}[1]'",
            elem.name
        ))
    })?;
    let unit = elem.attr("unit").filter(|u| !u.is_empty()).unwrap_or("KiB");
    let scale =
        unit_scale(unit).ok_or_else(|| Error::invalid_arg(format!("unknown suffix '{unit}'")))?;
    let bytes = value.checked_mul(scale).ok_or_else(|| {
        Error::new(
            ErrorCode::Overflow,
            ErrorDomain::None,
            format!("value too large: {value}{unit}"),
        )
    })?;
    Ok(bytes.div_ceil(1024))
}

/// A memory element in libvirt's canonical form.
pub fn memory_element(name: &str, kib: u64) -> Element {
    Element::new(name)
        .with_attr("unit", "KiB")
        .with_text(kib.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kib(v: &str, unit: &str) -> Result<u64> {
        parse_memory_kib(&Element::new("memory").with_attr("unit", unit).with_text(v))
    }

    #[test]
    fn scales_every_unit() {
        assert_eq!(kib("512", "MB").unwrap(), 500_000);
        assert_eq!(kib("1", "GiB").unwrap(), 1_048_576);
        assert_eq!(kib("1", "G").unwrap(), 1_048_576);
        assert_eq!(kib("1", "b").unwrap(), 1);
        assert_eq!(kib("2048", "bytes").unwrap(), 2);
        assert_eq!(kib("4096", "Byte").unwrap(), 4);
        assert_eq!(kib("1", "KB").unwrap(), 1);
        assert_eq!(kib("1", "k").unwrap(), 1);
        assert_eq!(kib("1", "TiB").unwrap(), 1 << 30);
        assert_eq!(kib("1", "EiB").unwrap(), 1 << 50);
        assert_eq!(kib("1", "PB").unwrap(), 976_562_500_000);
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            kib("1", "XB").unwrap_err().message,
            "invalid argument: unknown suffix 'XB'"
        );
        assert!(
            kib("abc", "KiB")
                .unwrap_err()
                .message
                .contains("'./memory[1]'")
        );
        assert!(kib("99999999999", "EiB").is_err());
        assert!(kib("-1", "KiB").is_err());
    }
}
