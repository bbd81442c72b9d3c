//! A 128-byte EDID 1.4 base block announcing one preferred mode (a
//! detailed timing at 60 Hz with reduced blanking), for GET_EDID.

/// Length of the base block.
pub const EDID_LEN: usize = 128;

/// Blanking used for the detailed timing: front porch, sync, back porch.
const H_FRONT: u32 = 48;
const H_SYNC: u32 = 32;
const H_BACK: u32 = 80;
const V_FRONT: u32 = 3;
const V_SYNC: u32 = 5;
const V_BACK: u32 = 15;
const REFRESH_HZ: u64 = 60;
/// Pixels per centimetre of the made-up panel (about 96 dpi).
const PX_PER_CM: u32 = 38;

/// The largest active size a detailed timing descriptor can hold.
pub const MAX_DIM: u32 = 4095;

fn descriptor_text(kind: u8, text: &str) -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = kind;
    let mut body = [b' '; 13];
    let bytes = text.as_bytes();
    let n = bytes.len().min(13);
    body[..n].copy_from_slice(&bytes[..n]);
    if n < 13 {
        body[n] = b'\n';
    }
    d[5..18].copy_from_slice(&body);
    d
}

fn detailed_timing(width: u32, height: u32) -> [u8; 18] {
    let hblank = H_FRONT + H_SYNC + H_BACK;
    let vblank = V_FRONT + V_SYNC + V_BACK;
    let total = u64::from(width + hblank) * u64::from(height + vblank);
    // Units of 10 kHz.
    let clock = (total * REFRESH_HZ).div_ceil(10_000).min(0xffff) as u16;
    let (wmm, hmm) = (width * 10 / PX_PER_CM, height * 10 / PX_PER_CM);
    let mut d = [0u8; 18];
    d[0..2].copy_from_slice(&clock.to_le_bytes());
    d[2] = width as u8;
    d[3] = hblank as u8;
    d[4] = ((width >> 8) as u8 & 0xf) << 4 | (hblank >> 8) as u8 & 0xf;
    d[5] = height as u8;
    d[6] = vblank as u8;
    d[7] = ((height >> 8) as u8 & 0xf) << 4 | (vblank >> 8) as u8 & 0xf;
    d[8] = H_FRONT as u8;
    d[9] = H_SYNC as u8;
    d[10] = (V_FRONT as u8 & 0xf) << 4 | V_SYNC as u8 & 0xf;
    d[11] = 0;
    d[12] = wmm as u8;
    d[13] = hmm as u8;
    d[14] = ((wmm >> 8) as u8 & 0xf) << 4 | (hmm >> 8) as u8 & 0xf;
    // Digital separate sync, both polarities positive.
    d[17] = 0x1e;
    d
}

/// The base block for a `width` x `height` preferred mode (each clamped
/// to 1..=4095).
pub fn edid(width: u32, height: u32) -> [u8; EDID_LEN] {
    let (w, h) = (width.clamp(1, MAX_DIM), height.clamp(1, MAX_DIM));
    let mut e = [0u8; EDID_LEN];
    e[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "OXV" (5-bit letters, A = 1), product 1, no serial.
    let id: u16 =
        (u16::from(b'O' - b'@') << 10) | (u16::from(b'X' - b'@') << 5) | u16::from(b'V' - b'@');
    e[8..10].copy_from_slice(&id.to_be_bytes());
    e[10] = 1;
    // Week 1 of 2024 (years count from 1990).
    e[16] = 1;
    e[17] = 34;
    // EDID 1.4.
    e[18] = 1;
    e[19] = 4;
    // Digital input; size in cm; gamma 2.2; sRGB, preferred timing is
    // native, continuous frequency.
    e[20] = 0x80;
    e[21] = (w / PX_PER_CM).min(255) as u8;
    e[22] = (h / PX_PER_CM).min(255) as u8;
    e[23] = 120;
    e[24] = 0x07;
    // sRGB chromaticity.
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // Established timings: 640x480@60, 800x600@60, 1024x768@60.
    e[35] = 0x21;
    e[36] = 0x08;
    // No standard timings.
    for i in 0..8 {
        e[38 + 2 * i] = 1;
        e[39 + 2 * i] = 1;
    }
    e[54..72].copy_from_slice(&detailed_timing(w, h));
    e[72..90].copy_from_slice(&descriptor_text(0xfc, "oxvirt"));
    // Range limits: 50-70 Hz vertical, 30-160 kHz horizontal, 660 MHz
    // pixel clock, no timing formula.
    let mut range = [0u8; 18];
    range[3] = 0xfd;
    range[5..11].copy_from_slice(&[50, 70, 30, 160, 66, 0x01]);
    range[11] = b'\n';
    range[12..18].fill(b' ');
    e[90..108].copy_from_slice(&range);
    e[108..126].copy_from_slice(&descriptor_text(0xfe, "virtio-gpu"));
    let sum = e[..127].iter().fold(0u8, |a, &b| a.wrapping_add(b));
    e[127] = 0u8.wrapping_sub(sum);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn active(e: &[u8; EDID_LEN]) -> (u32, u32) {
        let d = &e[54..72];
        let w = u32::from(d[2]) | u32::from(d[4] >> 4) << 8;
        let h = u32::from(d[5]) | u32::from(d[7] >> 4) << 8;
        (w, h)
    }

    #[test]
    fn the_block_is_valid_and_names_the_mode() {
        for (w, h) in [(1024, 768), (640, 480), (1920, 1080), (4095, 2160)] {
            let e = edid(w, h);
            assert_eq!(&e[0..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
            assert_eq!(e.iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
            assert_eq!((e[18], e[19]), (1, 4));
            assert_eq!(active(&e), (w, h));
            let clock = u16::from_le_bytes([e[54], e[55]]);
            assert!(clock > 0, "pixel clock for {w}x{h}");
            assert_eq!(e[126], 0, "no extension blocks");
        }
        assert_eq!(active(&edid(8000, 0)), (4095, 1));
    }

    #[test]
    fn the_manufacturer_is_three_letters() {
        let e = edid(800, 600);
        let id = u16::from_be_bytes([e[8], e[9]]);
        let letter = |s: u16| (((id >> s) & 0x1f) as u8 + b'@') as char;
        assert_eq!(format!("{}{}{}", letter(10), letter(5), letter(0)), "OXV");
    }
}
