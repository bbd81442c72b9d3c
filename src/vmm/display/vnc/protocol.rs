//! RFB numbers (RFC 6143 and the QEMU/TigerVNC extensions) and the small
//! pieces of server messages.

pub const ENC_RAW: i32 = 0;
pub const ENC_ZRLE: i32 = 16;
pub const ENC_DESKTOP_SIZE: i32 = -223;
pub const ENC_POINTER_TYPE_CHANGE: i32 = -257;
pub const ENC_EXT_KEY_EVENT: i32 = -258;
pub const ENC_EXT_DESKTOP_SIZE: i32 = -308;

pub const MSG_SET_PIXEL_FORMAT: u8 = 0;
pub const MSG_SET_ENCODINGS: u8 = 2;
pub const MSG_UPDATE_REQUEST: u8 = 3;
pub const MSG_KEY_EVENT: u8 = 4;
pub const MSG_POINTER_EVENT: u8 = 5;
pub const MSG_CUT_TEXT: u8 = 6;
pub const MSG_SET_DESKTOP_SIZE: u8 = 251;
pub const MSG_QEMU: u8 = 255;
pub const QEMU_EXT_KEY_EVENT: u8 = 0;

pub const SERVER_FRAMEBUFFER_UPDATE: u8 = 0;

pub const SECURITY_NONE: u8 = 1;
pub const SECURITY_VNC_AUTH: u8 = 2;

/// ExtendedDesktopSize reasons and status codes.
pub const EDS_REASON_SERVER: u16 = 0;
pub const EDS_REASON_CLIENT: u16 = 1;
pub const EDS_STATUS_OK: u16 = 0;
pub const EDS_STATUS_PROHIBITED: u16 = 1;

/// Largest ClientCutText accepted (and thrown away).
pub const MAX_CUT_TEXT: usize = 1 << 20;

/// The protocol minor version a client's ProtocolVersion selects: 3, 7 or 8.
/// Unknown 3.x versions below 3.7 are treated as 3.3, later ones as 3.8.
pub fn parse_version(msg: &[u8; 12]) -> Option<u8> {
    let text = std::str::from_utf8(msg).ok()?;
    let rest = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
    let (major, minor) = rest.split_once('.')?;
    if major != "003" || minor.len() != 3 {
        return None;
    }
    Some(match minor.parse::<u16>().ok()? {
        7 => 7,
        m if m >= 8 => 8,
        _ => 3,
    })
}

pub fn rect_header(out: &mut Vec<u8>, x: u32, y: u32, w: u32, h: u32, encoding: i32) {
    for v in [x, y, w, h] {
        out.extend_from_slice(&(v.min(0xffff) as u16).to_be_bytes());
    }
    out.extend_from_slice(&encoding.to_be_bytes());
}

/// An ExtendedDesktopSize pseudo-rectangle with one screen.
pub fn ext_desktop_size(out: &mut Vec<u8>, reason: u16, status: u16, w: u32, h: u32) {
    rect_header(
        out,
        u32::from(reason),
        u32::from(status),
        w,
        h,
        ENC_EXT_DESKTOP_SIZE,
    );
    out.extend_from_slice(&[1, 0, 0, 0]);
    out.extend_from_slice(&0u32.to_be_bytes());
    rect_header(out, 0, 0, w, h, 0);
    // rect_header wrote a zero encoding where the screen flags go.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version(b"RFB 003.008\n"), Some(8));
        assert_eq!(parse_version(b"RFB 003.007\n"), Some(7));
        assert_eq!(parse_version(b"RFB 003.003\n"), Some(3));
        assert_eq!(parse_version(b"RFB 003.005\n"), Some(3));
        assert_eq!(parse_version(b"RFB 003.889\n"), Some(8));
        assert_eq!(parse_version(b"RFB 004.001\n"), None);
        assert_eq!(parse_version(b"GET / HTTP/1"), None);
    }

    #[test]
    fn ext_desktop_size_layout() {
        let mut out = Vec::new();
        ext_desktop_size(&mut out, 1, 1, 800, 600);
        assert_eq!(out.len(), 12 + 4 + 16);
        assert_eq!(&out[..4], &[0, 1, 0, 1]);
        assert_eq!(&out[8..12], &(-308i32).to_be_bytes());
        assert_eq!(&out[20..28], &[0, 0, 0, 0, 0x03, 0x20, 0x02, 0x58]);
        assert_eq!(&out[28..], &[0, 0, 0, 0]);
    }
}
