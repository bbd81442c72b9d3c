//! The legacy VGA register file at ports 0x3B0-0x3DF: miscellaneous
//! output, sequencer, graphics controller, attribute controller, CRTC,
//! DAC and the status registers. Only the registers are kept; memory at
//! 0xA0000 is guest RAM and is read directly by the renderer.

/// Ports, as absolute I/O addresses.
pub const ATTR_INDEX: u16 = 0x3c0;
pub const ATTR_DATA_READ: u16 = 0x3c1;
pub const MISC_WRITE: u16 = 0x3c2;
pub const VGA_ENABLE: u16 = 0x3c3;
pub const SEQ_INDEX: u16 = 0x3c4;
pub const SEQ_DATA: u16 = 0x3c5;
pub const DAC_MASK: u16 = 0x3c6;
pub const DAC_READ_INDEX: u16 = 0x3c7;
pub const DAC_WRITE_INDEX: u16 = 0x3c8;
pub const DAC_DATA: u16 = 0x3c9;
pub const FEATURE_READ: u16 = 0x3ca;
pub const MISC_READ: u16 = 0x3cc;
pub const GC_INDEX: u16 = 0x3ce;
pub const GC_DATA: u16 = 0x3cf;
/// CRTC and input status 1 exist at a mono (0x3Bx) and colour (0x3Dx)
/// address; misc output bit 0 picks which one decodes.
pub const CRTC_INDEX_MONO: u16 = 0x3b4;
pub const CRTC_DATA_MONO: u16 = 0x3b5;
pub const STATUS1_MONO: u16 = 0x3ba;
pub const CRTC_INDEX_COLOR: u16 = 0x3d4;
pub const CRTC_DATA_COLOR: u16 = 0x3d5;
pub const STATUS1_COLOR: u16 = 0x3da;

/// Misc output: colour (0x3Dx) I/O addresses.
const MISC_COLOR: u8 = 0x01;
/// Input status 1: display enable and vertical retrace, toggled on each
/// read so that loops waiting for either edge end.
const STATUS1_TOGGLE: u8 = 0x09;
/// Attribute index bit 5: the palette is driven by the display (clear
/// while a program writes the palette, which blanks the screen).
pub const ATTR_PALETTE_SOURCE: u8 = 0x20;
/// CRTC 0x11 bit 7 write-protects CRTC 0-7 (except CRTC 7 bit 4).
const CRTC_PROTECT: u8 = 0x80;
const CRTC_OVERFLOW: usize = 0x07;
const CRTC_VSYNC_END: usize = 0x11;

/// Writable bits of each sequencer and graphics controller register.
const SEQ_MASK: [u8; 8] = [0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0xff];
const GC_MASK: [u8; 16] = [
    0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff, 0, 0, 0, 0, 0, 0, 0,
];
/// Attribute controller registers: 16 palette entries, mode, overscan,
/// plane enable, horizontal panning, colour select.
pub const ATTR_COUNT: usize = 0x15;
pub const ATTR_MODE: usize = 0x10;
const ATTR_COLOR_SELECT: usize = 0x14;

/// [`VgaRegs`] as a state image keeps them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgaRegsState {
    misc: u8,
    feature: u8,
    enable: u8,
    seq_index: u8,
    seq: Vec<u8>,
    gc_index: u8,
    gc: Vec<u8>,
    attr_index: u8,
    attr_flip_flop: bool,
    attr: Vec<u8>,
    crtc_index: u8,
    crtc: Vec<u8>,
    dac_mask: u8,
    dac_read_index: u8,
    dac_write_index: u8,
    dac_sub_index: u8,
    dac_state: u8,
    dac_cache: Vec<u8>,
    palette: Vec<u8>,
    status1: u8,
}

fn array<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], String> {
    v.try_into()
        .map_err(|_| format!("VGA state: {what} has {} bytes, not {N}", v.len()))
}

#[derive(Clone)]
pub struct VgaRegs {
    pub misc: u8,
    feature: u8,
    enable: u8,
    seq_index: u8,
    pub seq: [u8; 8],
    gc_index: u8,
    pub gc: [u8; 16],
    pub attr_index: u8,
    attr_flip_flop: bool,
    pub attr: [u8; ATTR_COUNT],
    crtc_index: u8,
    pub crtc: [u8; 256],
    pub dac_mask: u8,
    dac_read_index: u8,
    dac_write_index: u8,
    dac_sub_index: u8,
    dac_state: u8,
    dac_cache: [u8; 3],
    /// 256 RGB triples as written (6 or 8 significant bits).
    pub palette: [u8; 768],
    status1: u8,
}

impl VgaRegs {
    pub fn state(&self) -> VgaRegsState {
        VgaRegsState {
            misc: self.misc,
            feature: self.feature,
            enable: self.enable,
            seq_index: self.seq_index,
            seq: self.seq.to_vec(),
            gc_index: self.gc_index,
            gc: self.gc.to_vec(),
            attr_index: self.attr_index,
            attr_flip_flop: self.attr_flip_flop,
            attr: self.attr.to_vec(),
            crtc_index: self.crtc_index,
            crtc: self.crtc.to_vec(),
            dac_mask: self.dac_mask,
            dac_read_index: self.dac_read_index,
            dac_write_index: self.dac_write_index,
            dac_sub_index: self.dac_sub_index,
            dac_state: self.dac_state,
            dac_cache: self.dac_cache.to_vec(),
            palette: self.palette.to_vec(),
            status1: self.status1,
        }
    }

    pub fn from_state(s: &VgaRegsState) -> Result<VgaRegs, String> {
        Ok(VgaRegs {
            misc: s.misc,
            feature: s.feature,
            enable: s.enable,
            seq_index: s.seq_index,
            seq: array(&s.seq, "sequencer")?,
            gc_index: s.gc_index,
            gc: array(&s.gc, "graphics controller")?,
            attr_index: s.attr_index,
            attr_flip_flop: s.attr_flip_flop,
            attr: array(&s.attr, "attribute controller")?,
            crtc_index: s.crtc_index,
            crtc: array(&s.crtc, "CRT controller")?,
            dac_mask: s.dac_mask,
            dac_read_index: s.dac_read_index,
            dac_write_index: s.dac_write_index,
            dac_sub_index: s.dac_sub_index,
            dac_state: s.dac_state,
            dac_cache: array(&s.dac_cache, "DAC cache")?,
            palette: array(&s.palette, "palette")?,
            status1: s.status1,
        })
    }
}

impl Default for VgaRegs {
    fn default() -> Self {
        VgaRegs {
            misc: 0,
            feature: 0,
            enable: 0,
            seq_index: 0,
            seq: [0; 8],
            gc_index: 0,
            gc: [0; 16],
            attr_index: 0,
            attr_flip_flop: false,
            attr: [0; ATTR_COUNT],
            crtc_index: 0,
            crtc: [0; 256],
            dac_mask: 0xff,
            dac_read_index: 0,
            dac_write_index: 0,
            dac_sub_index: 0,
            dac_state: 0,
            dac_cache: [0; 3],
            palette: [0; 768],
            status1: 0,
        }
    }
}

impl VgaRegs {
    fn color(&self) -> bool {
        self.misc & MISC_COLOR != 0
    }

    /// The mono or colour half that misc output currently disables.
    fn ignored(&self, port: u16) -> bool {
        if self.color() {
            (0x3b0..=0x3bf).contains(&port)
        } else {
            (0x3d0..=0x3df).contains(&port)
        }
    }

    /// An `in` from `port`.
    pub fn read(&mut self, port: u16) -> u8 {
        if self.ignored(port) {
            return 0xff;
        }
        match port {
            ATTR_INDEX if !self.attr_flip_flop => self.attr_index,
            ATTR_DATA_READ => {
                let i = usize::from(self.attr_index & 0x1f);
                self.attr.get(i).copied().unwrap_or(0)
            }
            VGA_ENABLE => self.enable,
            SEQ_INDEX => self.seq_index,
            SEQ_DATA => self.seq[usize::from(self.seq_index & 7)],
            DAC_MASK => self.dac_mask,
            DAC_READ_INDEX => self.dac_state,
            DAC_WRITE_INDEX => self.dac_write_index,
            DAC_DATA => {
                let i = usize::from(self.dac_read_index) * 3 + usize::from(self.dac_sub_index);
                let v = self.palette.get(i).copied().unwrap_or(0);
                self.dac_sub_index += 1;
                if self.dac_sub_index == 3 {
                    self.dac_sub_index = 0;
                    self.dac_read_index = self.dac_read_index.wrapping_add(1);
                }
                v
            }
            FEATURE_READ => self.feature,
            MISC_READ => self.misc,
            GC_INDEX => self.gc_index,
            GC_DATA => self.gc[usize::from(self.gc_index & 0x0f)],
            CRTC_INDEX_MONO | CRTC_INDEX_COLOR => self.crtc_index,
            CRTC_DATA_MONO | CRTC_DATA_COLOR => self.crtc[usize::from(self.crtc_index)],
            STATUS1_MONO | STATUS1_COLOR => {
                self.status1 ^= STATUS1_TOGGLE;
                self.attr_flip_flop = false;
                self.status1
            }
            // Input status 0 (0x3C2) and the rest read as zero.
            _ => 0,
        }
    }

    /// An `out` of `v` to `port`.
    pub fn write(&mut self, port: u16, v: u8) {
        if self.ignored(port) {
            return;
        }
        match port {
            ATTR_INDEX => {
                if self.attr_flip_flop {
                    self.write_attr(v);
                } else {
                    self.attr_index = v & 0x3f;
                }
                self.attr_flip_flop = !self.attr_flip_flop;
            }
            MISC_WRITE => self.misc = v & !0x10,
            VGA_ENABLE => self.enable = v & 1,
            SEQ_INDEX => self.seq_index = v & 7,
            SEQ_DATA => {
                let i = usize::from(self.seq_index & 7);
                self.seq[i] = v & SEQ_MASK[i];
            }
            DAC_MASK => self.dac_mask = v,
            DAC_READ_INDEX => {
                self.dac_read_index = v;
                self.dac_sub_index = 0;
                self.dac_state = 3;
            }
            DAC_WRITE_INDEX => {
                self.dac_write_index = v;
                self.dac_sub_index = 0;
                self.dac_state = 0;
            }
            DAC_DATA => {
                if let Some(c) = self.dac_cache.get_mut(usize::from(self.dac_sub_index)) {
                    *c = v;
                }
                self.dac_sub_index += 1;
                if self.dac_sub_index >= 3 {
                    let at = usize::from(self.dac_write_index) * 3;
                    if let Some(dst) = self.palette.get_mut(at..at + 3) {
                        dst.copy_from_slice(&self.dac_cache);
                    }
                    self.dac_sub_index = 0;
                    self.dac_write_index = self.dac_write_index.wrapping_add(1);
                }
            }
            GC_INDEX => self.gc_index = v & 0x0f,
            GC_DATA => {
                let i = usize::from(self.gc_index & 0x0f);
                self.gc[i] = v & GC_MASK[i];
            }
            CRTC_INDEX_MONO | CRTC_INDEX_COLOR => self.crtc_index = v,
            CRTC_DATA_MONO | CRTC_DATA_COLOR => self.write_crtc(v),
            STATUS1_MONO | STATUS1_COLOR => self.feature = v & 0x10,
            _ => {}
        }
    }

    fn write_attr(&mut self, v: u8) {
        let i = usize::from(self.attr_index & 0x1f);
        let v = match i {
            0x00..=0x0f => v & 0x3f,
            ATTR_MODE => v & !0x10,
            0x11 => v,
            0x12 => v & !0xc0,
            0x13 | ATTR_COLOR_SELECT => v & 0x0f,
            _ => return,
        };
        if let Some(r) = self.attr.get_mut(i) {
            *r = v;
        }
    }

    fn write_crtc(&mut self, v: u8) {
        let i = usize::from(self.crtc_index);
        if self.crtc[CRTC_VSYNC_END] & CRTC_PROTECT != 0 && i <= CRTC_OVERFLOW {
            if i == CRTC_OVERFLOW {
                self.crtc[i] = (self.crtc[i] & !0x10) | (v & 0x10);
            }
            return;
        }
        self.crtc[i] = v;
    }

    /// One DAC entry as 0x00RRGGBB, after the pixel mask.
    pub fn dac_rgb(&self, index: u8, eight_bit: bool) -> u32 {
        let at = usize::from(index & self.dac_mask) * 3;
        let c = |k: usize| {
            let v = self.palette.get(at + k).copied().unwrap_or(0);
            let v = if eight_bit {
                v
            } else {
                let v = v & 0x3f;
                (v << 2) | (v >> 4)
            };
            u32::from(v)
        };
        c(0) << 16 | c(1) << 8 | c(2)
    }

    /// The whole DAC as 0x00RRGGBB, indexed by pixel value.
    pub fn dac_table(&self, eight_bit: bool) -> [u32; 256] {
        std::array::from_fn(|i| self.dac_rgb(i as u8, eight_bit))
    }

    /// A 4-bit text or planar colour through the attribute palette to a
    /// DAC index (colour select supplies bits 7-6, and 5-4 in P5:4 mode).
    pub fn attr_to_dac(&self, colour: u8) -> u8 {
        let pal = self.attr[usize::from(colour & 0x0f)];
        let select = self.attr[ATTR_COLOR_SELECT];
        let high = if self.attr[ATTR_MODE] & 0x80 != 0 {
            (select & 0x0f) << 4
        } else {
            ((select & 0x0c) << 4) | (pal & 0x30)
        };
        high | (pal & 0x0f)
    }

    /// The sixteen text colours as 0x00RRGGBB.
    pub fn text_colours(&self, eight_bit: bool) -> [u32; 16] {
        std::array::from_fn(|i| self.dac_rgb(self.attr_to_dac(i as u8), eight_bit))
    }

    /// CRTC start address (in character or doubleword units).
    pub fn start_address(&self) -> u32 {
        u32::from(self.crtc[0x0c]) << 8 | u32::from(self.crtc[0x0d])
    }

    /// Scan lines displayed: vertical display end (10 bits) plus one.
    pub fn display_lines(&self) -> u32 {
        let o = u32::from(self.crtc[CRTC_OVERFLOW]);
        (u32::from(self.crtc[0x12]) | (o & 0x02) << 7 | (o & 0x40) << 3) + 1
    }

    /// Character clocks displayed per line: horizontal display end plus one.
    pub fn display_chars(&self) -> u32 {
        u32::from(self.crtc[0x01]) + 1
    }

    /// Whether the CRTC has been programmed at all (reset leaves it zero).
    pub fn crtc_programmed(&self) -> bool {
        self.crtc[0x01] != 0 && self.display_lines() > 1
    }

    /// Graphics controller misc bit 0: graphics (not text) mode.
    pub fn graphics_mode(&self) -> bool {
        self.gc[6] & 1 != 0
    }

    /// Where the CPU window starts, as an offset from 0xA0000
    /// (graphics controller misc, memory map select).
    pub fn window_offset(&self) -> usize {
        match (self.gc[6] >> 2) & 3 {
            0 | 1 => 0,
            2 => 0x10000,
            _ => 0x18000,
        }
    }

    /// Sequencer clocking mode bit 5: screen off.
    pub fn screen_off(&self) -> bool {
        self.seq[1] & 0x20 != 0
    }

    /// Palette access by the CPU blanks the display.
    pub fn blanked(&self) -> bool {
        self.attr_index & ATTR_PALETTE_SOURCE == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour_regs() -> VgaRegs {
        let mut r = VgaRegs::default();
        r.write(MISC_WRITE, 0x67);
        r
    }

    #[test]
    fn dac_write_and_read_cycles() {
        let mut r = colour_regs();
        r.write(DAC_WRITE_INDEX, 5);
        for v in [1, 2, 3, 4, 5, 6] {
            r.write(DAC_DATA, v);
        }
        assert_eq!(r.read(DAC_WRITE_INDEX), 7);
        assert_eq!(r.read(DAC_READ_INDEX), 0);
        r.write(DAC_READ_INDEX, 5);
        assert_eq!(r.read(DAC_READ_INDEX), 3);
        let got: Vec<u8> = (0..6).map(|_| r.read(DAC_DATA)).collect();
        assert_eq!(got, [1, 2, 3, 4, 5, 6]);
        // A new index restarts the three-byte cycle.
        r.write(DAC_WRITE_INDEX, 0);
        r.write(DAC_DATA, 0x3f);
        r.write(DAC_WRITE_INDEX, 1);
        r.write(DAC_DATA, 0x3f);
        r.write(DAC_DATA, 0);
        r.write(DAC_DATA, 0x20);
        assert_eq!(r.palette[..6], [0, 0, 0, 0x3f, 0, 0x20]);
        assert_eq!(r.dac_rgb(1, false), 0xff_00_82);
        r.palette[3] = 0x80;
        assert_eq!(r.dac_rgb(1, true), 0x80_00_20);
        // Wrapping at entry 255 stays inside the palette.
        r.write(DAC_WRITE_INDEX, 255);
        for _ in 0..6 {
            r.write(DAC_DATA, 9);
        }
        assert_eq!(r.palette[765..], [9, 9, 9]);
        assert_eq!(r.palette[0..3], [9, 9, 9]);
    }

    #[test]
    fn attribute_flip_flop_and_status_toggle() {
        let mut r = colour_regs();
        r.write(ATTR_INDEX, 0x01);
        r.write(ATTR_INDEX, 0xff);
        assert_eq!(r.attr[1], 0x3f);
        // Flip-flop is back at index: the next write is an index.
        r.write(ATTR_INDEX, 0x22);
        assert_eq!(r.attr_index, 0x22);
        assert!(!r.blanked());
        // The flip-flop now expects data; reading input status 1 resets
        // it, so the next write is an index again.
        let a = r.read(STATUS1_COLOR);
        let b = r.read(STATUS1_COLOR);
        assert_eq!(a ^ b, STATUS1_TOGGLE);
        r.write(ATTR_INDEX, 0x03);
        r.write(ATTR_INDEX, 0x15);
        assert_eq!(r.attr[3], 0x15);
        assert_eq!(r.read(ATTR_INDEX), 0x03);
        assert_eq!(r.read(ATTR_DATA_READ), 0x15);
        // Out-of-range attribute indices are ignored.
        r.write(ATTR_INDEX, 0x1f);
        r.write(ATTR_INDEX, 0x55);
        assert_eq!(r.read(ATTR_DATA_READ), 0);
    }

    #[test]
    fn crtc_address_follows_misc_output() {
        let mut r = VgaRegs::default();
        // Mono: 0x3B4/5 decode, 0x3D4/5 do not.
        r.write(CRTC_INDEX_MONO, 0x0e);
        r.write(CRTC_DATA_MONO, 0x12);
        r.write(CRTC_INDEX_COLOR, 0x0f);
        assert_eq!(r.read(CRTC_INDEX_COLOR), 0xff);
        assert_eq!(r.read(CRTC_INDEX_MONO), 0x0e);
        r.write(MISC_WRITE, 0x01);
        assert_eq!(r.read(MISC_READ), 0x01);
        assert_eq!(r.read(CRTC_DATA_MONO), 0xff);
        r.write(CRTC_INDEX_COLOR, 0x0e);
        assert_eq!(r.read(CRTC_DATA_COLOR), 0x12);
        // Status 1 too.
        assert_eq!(r.read(STATUS1_MONO), 0xff);
        assert_ne!(r.read(STATUS1_COLOR), 0xff);
        // Write protection of CRTC 0-7.
        r.write(CRTC_INDEX_COLOR, 0x11);
        r.write(CRTC_DATA_COLOR, 0x80);
        r.write(CRTC_INDEX_COLOR, 0x01);
        r.write(CRTC_DATA_COLOR, 0x4f);
        assert_eq!(r.crtc[1], 0);
        r.write(CRTC_INDEX_COLOR, 0x07);
        r.write(CRTC_DATA_COLOR, 0xff);
        assert_eq!(r.crtc[7], 0x10);
    }

    #[test]
    fn seq_and_gc_masks() {
        let mut r = colour_regs();
        r.write(SEQ_INDEX, 0x0c);
        assert_eq!(r.read(SEQ_INDEX), 4);
        r.write(SEQ_DATA, 0xff);
        assert_eq!(r.seq[4], 0x0e);
        r.write(GC_INDEX, 0x06);
        r.write(GC_DATA, 0xff);
        assert_eq!(r.read(GC_DATA), 0x0f);
        assert_eq!(r.window_offset(), 0x18000);
        assert!(r.graphics_mode());
    }

    #[test]
    fn attribute_palette_to_dac() {
        let mut r = colour_regs();
        r.attr[7] = 0x3f;
        r.attr[ATTR_COLOR_SELECT] = 0x0f;
        assert_eq!(r.attr_to_dac(7), 0xff);
        r.attr[ATTR_MODE] = 0x80;
        r.attr[7] = 0x07;
        r.attr[ATTR_COLOR_SELECT] = 0x02;
        assert_eq!(r.attr_to_dac(7), 0x27);
    }
}
