//! The Bochs VBE extension ("DISPI"): an index/data register pair at
//! ports 0x1CE/0x1CF (and in BAR 2) that sets a linear framebuffer mode
//! in video memory. Register semantics and the clamping of bad values
//! follow QEMU's, so guests written against it see the same values.

use super::vram::Vram;

pub const INDEX_ID: u16 = 0x0;
pub const INDEX_XRES: u16 = 0x1;
pub const INDEX_YRES: u16 = 0x2;
pub const INDEX_BPP: u16 = 0x3;
pub const INDEX_ENABLE: u16 = 0x4;
pub const INDEX_BANK: u16 = 0x5;
pub const INDEX_VIRT_WIDTH: u16 = 0x6;
pub const INDEX_VIRT_HEIGHT: u16 = 0x7;
pub const INDEX_X_OFFSET: u16 = 0x8;
pub const INDEX_Y_OFFSET: u16 = 0x9;
pub const INDEX_VIDEO_MEMORY_64K: u16 = 0xa;
const REG_COUNT: usize = 10;

pub const ID0: u16 = 0xb0c0;
pub const ID5: u16 = 0xb0c5;

pub const ENABLED: u16 = 0x01;
pub const GETCAPS: u16 = 0x02;
pub const DAC_8BIT: u16 = 0x20;
pub const LFB_ENABLED: u16 = 0x40;
pub const NOCLEARMEM: u16 = 0x80;

pub const MAX_XRES: u16 = 16000;
pub const MAX_YRES: u16 = 12000;
pub const MAX_BPP: u16 = 32;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dispi {
    index: u16,
    regs: [u16; REG_COUNT],
    vram_size: u64,
}

impl Dispi {
    /// The same registers for video memory of `bytes` (to compare a saved
    /// adapter's size with this one's).
    pub fn with_vram_size(mut self, bytes: u64) -> Dispi {
        self.vram_size = bytes;
        self
    }
}

/// A validated linear framebuffer mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearMode {
    pub width: u32,
    pub height: u32,
    /// 4, 8, 15, 16, 24 or 32.
    pub bpp: u16,
    /// Bytes from one line to the next.
    pub stride: u64,
    /// Byte offset of the top-left visible pixel.
    pub start: u64,
}

/// Bits a pixel takes in memory (15 bpp is stored in 16).
fn storage_bits(bpp: u16) -> Option<u64> {
    match bpp {
        4 | 8 | 16 | 24 | 32 => Some(u64::from(bpp)),
        15 => Some(16),
        _ => None,
    }
}

impl Dispi {
    pub fn new(vram_size: u64) -> Self {
        let mut regs = [0; REG_COUNT];
        regs[usize::from(INDEX_ID)] = ID5;
        Dispi {
            index: 0,
            regs,
            vram_size,
        }
    }

    fn reg(&self, i: u16) -> u16 {
        self.regs.get(usize::from(i)).copied().unwrap_or(0)
    }

    fn set(&mut self, i: u16, v: u16) {
        if let Some(r) = self.regs.get_mut(usize::from(i)) {
            *r = v;
        }
    }

    pub fn enabled(&self) -> bool {
        self.reg(INDEX_ENABLE) & ENABLED != 0
    }

    /// Whether the DAC takes 8 bits per component instead of 6.
    pub fn dac_8bit(&self) -> bool {
        self.reg(INDEX_ENABLE) & DAC_8BIT != 0
    }

    pub fn index(&self) -> u16 {
        self.index
    }

    pub fn write_index(&mut self, v: u16) {
        self.index = v;
    }

    pub fn read_data(&self) -> u16 {
        let i = self.index;
        if usize::from(i) < REG_COUNT {
            if self.reg(INDEX_ENABLE) & GETCAPS != 0 {
                match i {
                    INDEX_XRES => return MAX_XRES,
                    INDEX_YRES => return MAX_YRES,
                    INDEX_BPP => return MAX_BPP,
                    _ => {}
                }
            }
            self.reg(i)
        } else if i == INDEX_VIDEO_MEMORY_64K {
            u16::try_from(self.vram_size >> 16).unwrap_or(u16::MAX)
        } else {
            0
        }
    }

    /// Writes the selected register; enabling a mode clears `vram` unless
    /// the guest asks not to.
    pub fn write_data(&mut self, v: u16, vram: &Vram) {
        match self.index {
            INDEX_ID if (ID0..=ID5).contains(&v) => self.set(INDEX_ID, v),
            INDEX_XRES | INDEX_YRES | INDEX_BPP | INDEX_VIRT_WIDTH | INDEX_X_OFFSET
            | INDEX_Y_OFFSET => {
                self.set(self.index, v);
                self.fixup();
            }
            // Recorded only: the window at 0xA0000 is guest RAM, so
            // banked access is not emulated.
            INDEX_BANK => {
                let mask =
                    u16::try_from((self.vram_size >> 16).saturating_sub(1)).unwrap_or(u16::MAX);
                self.set(INDEX_BANK, v & mask);
            }
            INDEX_ENABLE => {
                if v & ENABLED != 0 && !self.enabled() {
                    self.set(INDEX_VIRT_WIDTH, 0);
                    self.set(INDEX_X_OFFSET, 0);
                    self.set(INDEX_Y_OFFSET, 0);
                    self.regs[usize::from(INDEX_ENABLE)] |= ENABLED;
                    self.fixup();
                    if v & LFB_ENABLED == 0 {
                        tracing::debug!(
                            "VBE mode without the linear framebuffer: banks not emulated"
                        );
                    }
                    if v & NOCLEARMEM == 0
                        && let Some(m) = self.mode()
                    {
                        vram.clear(u64::from(m.height) * m.stride);
                    }
                }
                self.set(INDEX_ENABLE, v);
            }
            _ => {}
        }
    }

    /// Brings the mode registers to the nearest valid values: a known
    /// depth, a width that is a non-zero multiple of 8, a height and
    /// panning offsets that keep the visible picture inside video memory.
    fn fixup(&mut self) {
        if !self.enabled() {
            return;
        }
        let bits = match storage_bits(self.reg(INDEX_BPP)) {
            Some(b) => b,
            None => {
                self.set(INDEX_BPP, 8);
                8
            }
        };
        let xres = (self.reg(INDEX_XRES) & !7).clamp(8, MAX_XRES);
        self.set(INDEX_XRES, xres);
        let virt = (self.reg(INDEX_VIRT_WIDTH) & !7).clamp(xres, MAX_XRES);
        self.set(INDEX_VIRT_WIDTH, virt);

        let line = u64::from(virt) * bits / 8;
        let max_y = self.vram_size / line.max(1);
        let yres = u64::from(self.reg(INDEX_YRES).clamp(1, MAX_YRES)).min(max_y);
        self.set(INDEX_YRES, yres as u16);

        let xoff = self.reg(INDEX_X_OFFSET).min(MAX_XRES);
        let yoff = self.reg(INDEX_Y_OFFSET).min(MAX_YRES);
        self.set(INDEX_X_OFFSET, xoff);
        self.set(INDEX_Y_OFFSET, yoff);
        let used = yres * line;
        let x_bytes = u64::from(xoff) * bits / 8;
        if x_bytes + u64::from(yoff) * line + used > self.vram_size {
            self.set(INDEX_Y_OFFSET, 0);
            if x_bytes + used > self.vram_size {
                self.set(INDEX_X_OFFSET, 0);
            }
        }
        self.set(INDEX_VIRT_HEIGHT, u16::try_from(max_y).unwrap_or(u16::MAX));
    }

    /// The mode the registers describe, if DISPI is on and it fits in
    /// video memory (checked again here: registers written while DISPI
    /// was off have not been through [`Self::fixup`]).
    pub fn mode(&self) -> Option<LinearMode> {
        if !self.enabled() {
            return None;
        }
        let bpp = self.reg(INDEX_BPP);
        let bits = storage_bits(bpp)?;
        let width = u32::from(self.reg(INDEX_XRES));
        let height = u32::from(self.reg(INDEX_YRES));
        if width == 0 || height == 0 {
            return None;
        }
        let virt = u64::from(self.reg(INDEX_VIRT_WIDTH).max(self.reg(INDEX_XRES)));
        let stride = virt * bits / 8;
        let start = u64::from(self.reg(INDEX_X_OFFSET)) * bits / 8
            + u64::from(self.reg(INDEX_Y_OFFSET)) * stride;
        let last = start + (u64::from(height) - 1) * stride + u64::from(width) * bits / 8;
        (last <= self.vram_size).then_some(LinearMode {
            width,
            height,
            bpp,
            stride,
            start,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(d: &mut Dispi, v: &Vram, i: u16, x: u16) {
        d.write_index(i);
        d.write_data(x, v);
    }

    fn get(d: &mut Dispi, i: u16) -> u16 {
        d.write_index(i);
        d.read_data()
    }

    #[test]
    fn id_and_capabilities() {
        let v = Vram::new(16 << 20).unwrap();
        let mut d = Dispi::new(v.len());
        assert_eq!(get(&mut d, INDEX_ID), ID5);
        set(&mut d, &v, INDEX_ID, ID0);
        assert_eq!(get(&mut d, INDEX_ID), ID0);
        set(&mut d, &v, INDEX_ID, 0x1234);
        assert_eq!(get(&mut d, INDEX_ID), ID0);
        set(&mut d, &v, INDEX_ENABLE, GETCAPS);
        assert_eq!(get(&mut d, INDEX_XRES), MAX_XRES);
        assert_eq!(get(&mut d, INDEX_YRES), MAX_YRES);
        assert_eq!(get(&mut d, INDEX_BPP), MAX_BPP);
        set(&mut d, &v, INDEX_ENABLE, 0);
        assert_eq!(get(&mut d, INDEX_XRES), 0);
        assert_eq!(get(&mut d, INDEX_VIDEO_MEMORY_64K), 256);
        assert_eq!(get(&mut d, 0x55), 0);
    }

    #[test]
    fn mode_set_clears_memory_unless_asked() {
        let v = Vram::new(16 << 20).unwrap();
        let mut d = Dispi::new(v.len());
        set(&mut d, &v, INDEX_XRES, 1024);
        set(&mut d, &v, INDEX_YRES, 768);
        set(&mut d, &v, INDEX_BPP, 32);
        v.write(0, &[7; 4]);
        set(&mut d, &v, INDEX_ENABLE, ENABLED | LFB_ENABLED | NOCLEARMEM);
        let mut b = [0u8; 4];
        v.read(0, &mut b);
        assert_eq!(b, [7; 4]);
        let m = d.mode().unwrap();
        assert_eq!(
            (m.width, m.height, m.bpp, m.stride, m.start),
            (1024, 768, 32, 4096, 0)
        );
        assert_eq!(get(&mut d, INDEX_VIRT_WIDTH), 1024);
        assert_eq!(get(&mut d, INDEX_VIRT_HEIGHT), 4096);
        set(&mut d, &v, INDEX_ENABLE, 0);
        assert!(d.mode().is_none());
        set(&mut d, &v, INDEX_ENABLE, ENABLED | DAC_8BIT);
        v.read(0, &mut b);
        assert_eq!(b, [0; 4]);
        assert!(d.dac_8bit());
        // Panning inside the virtual screen.
        set(&mut d, &v, INDEX_Y_OFFSET, 768);
        assert_eq!(d.mode().unwrap().start, 768 * 4096);
    }

    #[test]
    fn bad_values_are_clamped() {
        let v = Vram::new(1 << 20).unwrap();
        let mut d = Dispi::new(v.len());
        set(&mut d, &v, INDEX_ENABLE, ENABLED);
        set(&mut d, &v, INDEX_BPP, 13);
        assert_eq!(get(&mut d, INDEX_BPP), 8);
        set(&mut d, &v, INDEX_XRES, 0);
        assert_eq!(get(&mut d, INDEX_XRES), 8);
        set(&mut d, &v, INDEX_XRES, 0xffff);
        assert_eq!(get(&mut d, INDEX_XRES), MAX_XRES);
        // 1 MiB cannot hold 1920x1080x32: the height shrinks to fit.
        // The virtual width never shrinks below the width by itself.
        set(&mut d, &v, INDEX_XRES, 1920);
        assert_eq!(get(&mut d, INDEX_VIRT_WIDTH), MAX_XRES);
        set(&mut d, &v, INDEX_VIRT_WIDTH, 0);
        assert_eq!(get(&mut d, INDEX_VIRT_WIDTH), 1920);
        set(&mut d, &v, INDEX_BPP, 32);
        set(&mut d, &v, INDEX_YRES, 1080);
        assert_eq!(u32::from(get(&mut d, INDEX_YRES)), (1 << 20) / (1920 * 4));
        set(&mut d, &v, INDEX_YRES, 0);
        assert_eq!(get(&mut d, INDEX_YRES), 1);
        // Offsets that would leave video memory are dropped.
        set(&mut d, &v, INDEX_YRES, 100);
        set(&mut d, &v, INDEX_Y_OFFSET, 5000);
        assert_eq!(get(&mut d, INDEX_Y_OFFSET), 0);
        let m = d.mode().unwrap();
        assert!(m.start + u64::from(m.height) * m.stride <= v.len());
        set(&mut d, &v, INDEX_BANK, 0xffff);
        assert_eq!(get(&mut d, INDEX_BANK), 15);
    }

    #[test]
    fn registers_written_while_off_are_checked_on_use() {
        let v = Vram::new(1 << 20).unwrap();
        let mut d = Dispi::new(v.len());
        set(&mut d, &v, INDEX_XRES, 4096);
        set(&mut d, &v, INDEX_YRES, 4096);
        set(&mut d, &v, INDEX_BPP, 32);
        // Enabling runs the fixup, so the mode fits.
        set(&mut d, &v, INDEX_ENABLE, ENABLED | NOCLEARMEM);
        let m = d.mode().unwrap();
        assert_eq!(m.height, 64);
        // A raw register state that does not fit is refused.
        d.regs[usize::from(INDEX_YRES)] = 4096;
        assert!(d.mode().is_none());
    }
}
