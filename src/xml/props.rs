//! Reading typed values out of elements, with libvirt's error wording.

use super::tree::Element;
use crate::error::{Error, Result};

/// An enumeration spelled in XML as a fixed set of strings.
pub trait XmlEnum: Sized + Copy {
    fn from_xml(s: &str) -> Option<Self>;
    fn as_str(self) -> &'static str;
}

/// Declares an enum with its XML spellings and an [`XmlEnum`] impl.
macro_rules! xml_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }
        impl $crate::xml::props::XmlEnum for $name {
            fn from_xml(s: &str) -> Option<Self> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::xml::props::XmlEnum::as_str(*self))
            }
        }
    };
}
pub(crate) use xml_enum;

pub fn missing_attr(elem: &Element, attr: &str) -> Error {
    Error::xml(format!(
        "Missing required attribute '{attr}' in element '{}'",
        elem.name
    ))
}

pub fn invalid_attr(elem: &Element, attr: &str, value: &str) -> Error {
    Error::xml(format!(
        "Invalid value for attribute '{attr}' in element '{}': '{value}'.",
        elem.name
    ))
}

/// An optional enumerated attribute.
pub fn enum_attr<T: XmlEnum>(elem: &Element, attr: &str) -> Result<Option<T>> {
    match elem.attr(attr) {
        None => Ok(None),
        Some(v) => T::from_xml(v)
            .map(Some)
            .ok_or_else(|| invalid_attr(elem, attr, v)),
    }
}

/// A required enumerated attribute.
pub fn req_enum_attr<T: XmlEnum>(elem: &Element, attr: &str) -> Result<T> {
    enum_attr(elem, attr)?.ok_or_else(|| missing_attr(elem, attr))
}

/// A required string attribute.
pub fn req_attr<'a>(elem: &'a Element, attr: &str) -> Result<&'a str> {
    elem.attr(attr).ok_or_else(|| missing_attr(elem, attr))
}

/// An optional string attribute, owned.
pub fn opt_string(elem: &Element, attr: &str) -> Option<String> {
    elem.attr(attr).map(str::to_string)
}

/// Parse an unsigned number as C's strtoul with base 0 does (`0x` hex,
/// leading `0` octal), which libvirt uses for addresses.
pub fn parse_uint_any_base(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(s.get(1..)?, 8).ok()
    } else {
        s.parse().ok()
    }
}

/// An optional non-negative decimal attribute.
pub fn uint_attr<T: TryFrom<u64>>(elem: &Element, attr: &str) -> Result<Option<T>> {
    let Some(v) = elem.attr(attr) else {
        return Ok(None);
    };
    // Like strtoul: leading blanks are skipped, trailing ones are not.
    v.trim_start()
        .parse::<u64>()
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .map(Some)
        .ok_or_else(|| {
            Error::xml(format!(
                "Invalid value for attribute '{attr}' in element '{}': '{v}'. Expected non-negative integer value",
                elem.name
            ))
        })
}

/// An optional attribute that must be a positive decimal number.
pub fn positive_attr<T: TryFrom<u64>>(elem: &Element, attr: &str) -> Result<Option<T>> {
    if elem.attr(attr).map(str::trim_start) == Some("0") {
        return Err(Error::xml(format!(
            "Invalid value for attribute '{attr}' in element '{}': Zero is not permitted",
            elem.name
        )));
    }
    uint_attr(elem, attr)
}

/// An optional signed decimal attribute.
pub fn int_attr(elem: &Element, attr: &str) -> Result<Option<i64>> {
    let Some(v) = elem.attr(attr) else {
        return Ok(None);
    };
    v.trim_start().parse::<i64>().map(Some).map_err(|_| {
        Error::xml(format!(
            "Invalid value for attribute '{attr}' in element '{}': '{v}'. Expected integer value",
            elem.name
        ))
    })
}

xml_enum! {
    /// libvirt's `yes`/`no` tristate.
    YesNo { Yes = "yes", No = "no" }
}

xml_enum! {
    /// libvirt's `on`/`off` tristate.
    OnOff { On = "on", Off = "off" }
}

/// An optional `yes`/`no` attribute as a bool.
pub fn yes_no_attr(elem: &Element, attr: &str) -> Result<Option<bool>> {
    Ok(enum_attr::<YesNo>(elem, attr)?.map(|v| v == YesNo::Yes))
}

/// An optional `on`/`off` attribute as a bool.
pub fn on_off_attr(elem: &Element, attr: &str) -> Result<Option<bool>> {
    Ok(enum_attr::<OnOff>(elem, attr)?.map(|v| v == OnOff::On))
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

pub fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_libvirt_wording() {
        let e = Element::new("boot").with_attr("order", "x");
        assert_eq!(
            uint_attr::<u32>(&e, "order").unwrap_err().message,
            "XML error: Invalid value for attribute 'order' in element 'boot': 'x'. Expected non-negative integer value"
        );
        let z = Element::new("boot").with_attr("order", "0");
        assert!(
            positive_attr::<u32>(&z, "order")
                .unwrap_err()
                .message
                .contains("Zero")
        );
        let y = Element::new("pm").with_attr("enabled", "maybe");
        assert!(yes_no_attr(&y, "enabled").is_err());
        assert_eq!(
            missing_attr(&y, "x").message,
            "XML error: Missing required attribute 'x' in element 'pm'"
        );
    }

    #[test]
    fn parses_any_base() {
        assert_eq!(parse_uint_any_base("0x1f"), Some(31));
        assert_eq!(parse_uint_any_base("010"), Some(8));
        assert_eq!(parse_uint_any_base("0"), Some(0));
        assert_eq!(parse_uint_any_base("12"), Some(12));
        assert_eq!(parse_uint_any_base("x"), None);
    }
}
