//! MAC addresses: parsing as libvirt does and generating in QEMU's
//! locally administered 52:54:00 range, which libvirt tools expect.

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parse `xx:xx:xx:xx:xx:xx` (one or two hex digits per octet, `:` or
    /// `-` separators) and insist on a unicast address.
    pub fn parse(text: &str) -> Result<MacAddr> {
        let bad = || Error::xml(format!("unable to parse mac address '{text}'"));
        let mut octets = [0u8; 6];
        let sep = if text.contains('-') { '-' } else { ':' };
        let mut parts = text.split(sep);
        for octet in octets.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let mac = MacAddr(octets);
        if octets[0] & 1 == 1 {
            return Err(Error::xml(format!(
                "expected unicast mac address, found multicast '{mac}'"
            )));
        }
        Ok(mac)
    }

    /// A random address with the 52:54:00 prefix.
    pub fn generate() -> MacAddr {
        let random = uuid::Uuid::new_v4();
        let b = random.as_bytes();
        MacAddr([0x52, 0x54, 0x00, b[0], b[1], b[2]])
    }
}

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        assert_eq!(
            MacAddr::parse("52:54:00:AB:1:ff").unwrap().to_string(),
            "52:54:00:ab:01:ff"
        );
        assert_eq!(
            MacAddr::parse("zz").unwrap_err().message,
            "XML error: unable to parse mac address 'zz'"
        );
        assert_eq!(
            MacAddr::parse("01:00:00:00:00:01").unwrap_err().message,
            "XML error: expected unicast mac address, found multicast '01:00:00:00:00:01'"
        );
        assert!(MacAddr::parse("52:54:00:00:00").is_err());
        assert!(MacAddr::parse("52:54:00:00:00:00:00").is_err());
        assert_eq!(MacAddr::generate().0[..3], [0x52, 0x54, 0x00]);
    }
}
