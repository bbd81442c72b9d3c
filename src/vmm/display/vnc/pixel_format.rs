//! RFB pixel formats: the server's native one and the conversion of
//! `0x00RRGGBB` pixels into whatever true-colour format a client asked for.

/// A PIXEL_FORMAT structure (RFC 6143 7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    pub red_max: u16,
    pub green_max: u16,
    pub blue_max: u16,
    pub red_shift: u8,
    pub green_shift: u8,
    pub blue_shift: u8,
}

/// How a ZRLE CPIXEL is cut out of a full pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CPixel {
    /// The whole pixel.
    Full,
    /// The three least significant bytes of a 32-bit pixel.
    Low3,
    /// The three most significant bytes of a 32-bit pixel.
    High3,
}

impl PixelFormat {
    /// What the server announces: 32 bpp, depth 24, little endian,
    /// `0x00RRGGBB`, the layout of [`crate::vmm::display::Frame`] pixels.
    pub const SERVER: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        red_max: 255,
        green_max: 255,
        blue_max: 255,
        red_shift: 16,
        green_shift: 8,
        blue_shift: 0,
    };

    pub fn to_bytes(self) -> [u8; 16] {
        let [rh, rl] = self.red_max.to_be_bytes();
        let [gh, gl] = self.green_max.to_be_bytes();
        let [bh, bl] = self.blue_max.to_be_bytes();
        [
            self.bits_per_pixel,
            self.depth,
            self.big_endian as u8,
            self.true_colour as u8,
            rh,
            rl,
            gh,
            gl,
            bh,
            bl,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
            0,
            0,
            0,
        ]
    }

    pub fn from_bytes(b: &[u8; 16]) -> PixelFormat {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            red_max: u16::from_be_bytes([b[4], b[5]]),
            green_max: u16::from_be_bytes([b[6], b[7]]),
            blue_max: u16::from_be_bytes([b[8], b[9]]),
            red_shift: b[10],
            green_shift: b[11],
            blue_shift: b[12],
        }
    }

    /// Whether the server can encode to this format; the error says why not.
    pub fn check_supported(&self) -> Result<(), &'static str> {
        if !self.true_colour {
            return Err("colour-map pixel formats are not supported");
        }
        if !matches!(self.bits_per_pixel, 8 | 16 | 32) {
            return Err("bits per pixel must be 8, 16 or 32");
        }
        Ok(())
    }

    pub fn bytes_per_pixel(&self) -> usize {
        usize::from(self.bits_per_pixel / 8)
    }

    /// The pixel value (before byte order) of an `0x00RRGGBB` colour.
    pub fn value(&self, rgb: u32) -> u32 {
        if self.is_native_layout() {
            return rgb & 0x00ff_ffff;
        }
        let scale = |c: u32, max: u16| (c * u32::from(max) + 127) / 255;
        let place = |v: u32, shift: u8| v.checked_shl(u32::from(shift)).unwrap_or(0);
        place(scale((rgb >> 16) & 0xff, self.red_max), self.red_shift)
            | place(scale((rgb >> 8) & 0xff, self.green_max), self.green_shift)
            | place(scale(rgb & 0xff, self.blue_max), self.blue_shift)
    }

    fn is_native_layout(&self) -> bool {
        self.red_max == 255
            && self.green_max == 255
            && self.blue_max == 255
            && self.red_shift == 16
            && self.green_shift == 8
            && self.blue_shift == 0
    }

    /// Appends the colour as one PIXEL of this format.
    pub fn put(&self, rgb: u32, out: &mut Vec<u8>) {
        let v = self.value(rgb);
        match (self.bits_per_pixel, self.big_endian) {
            (8, _) => out.push(v as u8),
            (16, false) => out.extend_from_slice(&(v as u16).to_le_bytes()),
            (16, true) => out.extend_from_slice(&(v as u16).to_be_bytes()),
            (_, false) => out.extend_from_slice(&v.to_le_bytes()),
            (_, true) => out.extend_from_slice(&v.to_be_bytes()),
        }
    }

    /// The ZRLE CPIXEL layout of this format (RFC 6143 7.7.6).
    pub fn cpixel(&self) -> CPixel {
        if !self.true_colour || self.bits_per_pixel != 32 || self.depth > 24 {
            return CPixel::Full;
        }
        let mask = |max: u16, shift: u8| {
            u64::from(max)
                .checked_shl(u32::from(shift))
                .unwrap_or(u64::MAX)
        };
        let all = mask(self.red_max, self.red_shift)
            | mask(self.green_max, self.green_shift)
            | mask(self.blue_max, self.blue_shift);
        if all < 1 << 24 {
            CPixel::Low3
        } else if all & 0xff == 0 && all < 1 << 32 {
            CPixel::High3
        } else {
            CPixel::Full
        }
    }

    pub fn cpixel_len(&self) -> usize {
        match self.cpixel() {
            CPixel::Full => self.bytes_per_pixel(),
            CPixel::Low3 | CPixel::High3 => 3,
        }
    }

    /// Appends the colour as one ZRLE CPIXEL of this format.
    pub fn put_cpixel(&self, rgb: u32, out: &mut Vec<u8>) {
        let v = self.value(rgb);
        let (le, be) = (v.to_le_bytes(), v.to_be_bytes());
        match (self.cpixel(), self.big_endian) {
            (CPixel::Full, _) => self.put(rgb, out),
            (CPixel::Low3, false) => out.extend_from_slice(&le[..3]),
            (CPixel::Low3, true) => out.extend_from_slice(&be[1..]),
            (CPixel::High3, false) => out.extend_from_slice(&le[1..]),
            (CPixel::High3, true) => out.extend_from_slice(&be[..3]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_format_round_trips_and_is_little_endian_bgrx() {
        let pf = PixelFormat::SERVER;
        assert_eq!(PixelFormat::from_bytes(&pf.to_bytes()), pf);
        let mut out = Vec::new();
        pf.put(0x00123456, &mut out);
        assert_eq!(out, [0x56, 0x34, 0x12, 0x00]);
        assert_eq!(pf.cpixel(), CPixel::Low3);
        out.clear();
        pf.put_cpixel(0x00123456, &mut out);
        assert_eq!(out, [0x56, 0x34, 0x12]);
    }

    #[test]
    fn rgb565_big_endian() {
        let pf = PixelFormat {
            bits_per_pixel: 16,
            depth: 16,
            big_endian: true,
            true_colour: true,
            red_max: 31,
            green_max: 63,
            blue_max: 31,
            red_shift: 11,
            green_shift: 5,
            blue_shift: 0,
        };
        let mut out = Vec::new();
        pf.put(0x00ff0000, &mut out);
        pf.put(0x000000ff, &mut out);
        pf.put(0x00ffffff, &mut out);
        assert_eq!(out, [0xf8, 0x00, 0x00, 0x1f, 0xff, 0xff]);
        assert_eq!(pf.cpixel(), CPixel::Full);
    }

    #[test]
    fn high_three_bytes_cpixel() {
        let pf = PixelFormat {
            red_shift: 24,
            green_shift: 16,
            blue_shift: 8,
            big_endian: true,
            ..PixelFormat::SERVER
        };
        assert_eq!(pf.cpixel(), CPixel::High3);
        let mut out = Vec::new();
        pf.put_cpixel(0x00abcdef, &mut out);
        assert_eq!(out, [0xab, 0xcd, 0xef]);
    }

    #[test]
    fn colour_map_and_odd_depths_are_refused() {
        let cmap = PixelFormat {
            true_colour: false,
            ..PixelFormat::SERVER
        };
        assert!(cmap.check_supported().is_err());
        let odd = PixelFormat {
            bits_per_pixel: 24,
            ..PixelFormat::SERVER
        };
        assert!(odd.check_supported().is_err());
        // Absurd shifts never panic.
        let wild = PixelFormat {
            red_shift: 200,
            ..PixelFormat::SERVER
        };
        let mut out = Vec::new();
        wild.put(0x00ffffff, &mut out);
        assert_eq!(out.len(), 4);
    }
}
