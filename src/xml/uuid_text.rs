//! UUIDs as libvirt reads them: 32 hex digits, dashes allowed anywhere,
//! surrounding blanks ignored, any case.

/// Parse a UUID string with libvirt's leniency.
pub fn parse_uuid(text: &str) -> Option<uuid::Uuid> {
    let mut bytes = [0u8; 16];
    let mut digits = 0usize;
    let mut chars = text.trim_start_matches(' ').chars();
    while digits < 32 {
        let ch = chars.next()?;
        if ch == '-' {
            continue;
        }
        let nibble = ch.to_digit(16)? as u8;
        let byte = bytes.get_mut(digits / 2)?;
        *byte = (*byte << 4) | nibble;
        digits += 1;
    }
    if chars.all(|c| c == ' ') {
        Some(uuid::Uuid::from_bytes(bytes))
    } else {
        None
    }
}

/// A fresh random (version 4) UUID.
pub fn generate() -> uuid::Uuid {
    uuid::Uuid::new_v4()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_libvirt_spellings() {
        let want = "12345678-abcd-5678-1234-56781234567a";
        for s in [
            want,
            " 12345678ABCD5678123456781234567a ",
            "1234-5678-abcd-5678-1234-5678-1234-567a",
        ] {
            assert_eq!(parse_uuid(s).unwrap().to_string(), want, "{s}");
        }
        for s in [
            "zzz",
            "1234567812345678123456781234567",
            "12345678-1234-5678-1234-5678123456789",
            "",
        ] {
            assert!(parse_uuid(s).is_none(), "{s}");
        }
    }
}
