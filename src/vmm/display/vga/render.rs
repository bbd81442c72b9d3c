//! Turning the adapter's state into a [`Frame`]: the DISPI linear
//! framebuffer (8 bpp through the DAC, 15, 16, 24 and 32 bpp), text mode,
//! chain-4 256-colour modes (mode 13h) from 0xA0000, and black for what
//! cannot be shown (planar modes, a blanked screen, nothing set up).
//!
//! The registers are copied under the lock; memory is then read without
//! it, a row at a time.

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use super::dispi::LinearMode;
use super::regs::VgaRegs;
use super::text::{self, TextLayout};
use super::vram::Vram;
use super::{VgaState, lock};
use crate::vmm::display::{DisplaySource, Frame};
use crate::vmm::memory::GuestMemory;

/// The legacy window, 0xA0000-0xBFFFF.
const WINDOW_START: u64 = 0xa0000;
const WINDOW_LEN: usize = 0x20000;
/// What is shown when the guest has not set a mode.
const DEFAULT_SIZE: (u32, u32) = (640, 480);
/// The largest picture rendered; larger modes are cropped.
const MAX_SIDE: u32 = 8192;

/// The adapter's screen, for the VNC server and screenshots.
pub struct VgaDisplay {
    pub(super) state: Arc<Mutex<VgaState>>,
    vram: Arc<Vram>,
    mem: GuestMemory,
}

/// A chain-4 256-colour mode: one byte per pixel, linear from the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Chain4 {
    width: u32,
    height: u32,
    /// Offsets from 0xA0000.
    start: usize,
    stride: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Scene {
    Linear(LinearMode),
    Text(TextLayout),
    Chain4(Chain4),
    Black(u32, u32),
}

impl Scene {
    fn size(&self) -> (u32, u32) {
        match self {
            Scene::Linear(m) => (m.width, m.height),
            Scene::Text(t) => t.size(),
            Scene::Chain4(c) => (c.width, c.height),
            Scene::Black(w, h) => (*w, *h),
        }
    }
}

/// Scan lines per pixel row: max scan line plus one, doubled by CRTC 9
/// bit 7.
fn line_repeat(r: &VgaRegs) -> u32 {
    ((u32::from(r.crtc[0x09] & 0x1f)) + 1) << (r.crtc[0x09] >> 7)
}

fn chain4(r: &VgaRegs) -> Option<Chain4> {
    let shift256 = r.gc[5] & 0x40 != 0;
    let chained = r.seq[4] & 0x08 != 0;
    if !(shift256 && chained) {
        return None;
    }
    // Two dot clocks per pixel: four pixels per character clock.
    let width = r.display_chars() * 4;
    let height = r.display_lines() / line_repeat(r);
    let stride = match usize::from(r.crtc[0x13]) * 8 {
        0 => width as usize,
        s => s,
    };
    (height > 0).then_some(Chain4 {
        width,
        height,
        start: r.window_offset() + r.start_address() as usize * 4,
        stride,
    })
}

/// What the registers ask to be shown.
fn scene(r: &VgaRegs, d: &super::dispi::Dispi) -> Scene {
    let s = if d.enabled() {
        match d.mode() {
            Some(m) if m.bpp == 4 => Scene::Black(m.width, m.height),
            Some(m) => Scene::Linear(m),
            None => Scene::Black(DEFAULT_SIZE.0, DEFAULT_SIZE.1),
        }
    } else if !r.crtc_programmed() {
        Scene::Black(DEFAULT_SIZE.0, DEFAULT_SIZE.1)
    } else if !r.graphics_mode() {
        TextLayout::from_regs(r)
            .map(Scene::Text)
            .unwrap_or(Scene::Black(DEFAULT_SIZE.0, DEFAULT_SIZE.1))
    } else if let Some(c) = chain4(r) {
        Scene::Chain4(c)
    } else {
        // Planar and CGA modes: not emulated, black of the right size.
        Scene::Black(r.display_chars() * 8, r.display_lines() / line_repeat(r))
    };
    let off = r.blanked() || (!d.enabled() && r.screen_off());
    if off {
        let (w, h) = s.size();
        Scene::Black(w, h)
    } else {
        s
    }
}

impl VgaDisplay {
    pub(super) fn new(state: Arc<Mutex<VgaState>>, vram: Arc<Vram>, mem: GuestMemory) -> Self {
        VgaDisplay { state, vram, mem }
    }

    /// A copy of guest memory at 0xA0000-0xBFFFF (zeros if it is not RAM).
    fn legacy_window(&self) -> Vec<u8> {
        let mut w = vec![0u8; WINDOW_LEN];
        if self
            .mem
            .read_slice(&mut w, GuestAddress(WINDOW_START))
            .is_err()
        {
            w.fill(0);
        }
        w
    }
}

impl DisplaySource for VgaDisplay {
    fn render(&self, frame: &mut Frame) {
        let (regs, dispi) = {
            let s = lock(&self.state);
            (s.regs.clone(), s.dispi.clone())
        };
        let eight_bit = dispi.dac_8bit();
        match scene(&regs, &dispi) {
            Scene::Linear(m) => draw_linear(&self.vram, &m, &regs.dac_table(eight_bit), frame),
            Scene::Text(t) => {
                let window = self.legacy_window();
                text::draw(&window, &t, &regs.text_colours(eight_bit), frame)
            }
            Scene::Chain4(c) => {
                let window = self.legacy_window();
                draw_chain4(&window, &c, &regs.dac_table(eight_bit), frame)
            }
            Scene::Black(w, h) => black(frame, w, h),
        }
    }
}

fn black(frame: &mut Frame, w: u32, h: u32) {
    let (w, h) = if w == 0 || h == 0 {
        DEFAULT_SIZE
    } else {
        (w.min(MAX_SIDE), h.min(MAX_SIDE))
    };
    frame.resize(w, h);
    frame.pixels.fill(0);
}

/// Draws a DISPI mode from video memory. Rows that would leave video
/// memory are black (the mode was validated; this only guards).
fn draw_linear(vram: &Vram, m: &LinearMode, dac: &[u32; 256], frame: &mut Frame) {
    let bytes_per_pixel = match m.bpp {
        8 => 1,
        15 | 16 => 2,
        24 => 3,
        32 => 4,
        _ => return black(frame, m.width, m.height),
    };
    let (w, h) = (m.width.min(MAX_SIDE), m.height.min(MAX_SIDE));
    if w == 0 || h == 0 {
        return black(frame, 0, 0);
    }
    frame.resize(w, h);
    let row_bytes = w as usize * bytes_per_pixel;
    let mut row = vec![0u8; row_bytes];
    for (y, out) in frame.pixels.chunks_exact_mut(w as usize).enumerate() {
        let src = m
            .stride
            .checked_mul(y as u64)
            .and_then(|o| o.checked_add(m.start))
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| vram.slice(o, row_bytes));
        let Some(src) = src else {
            out.fill(0);
            continue;
        };
        src.copy_to(&mut row);
        match m.bpp {
            8 => row_8(&row, out, dac),
            15 => row_15(&row, out),
            16 => row_16(&row, out),
            24 => row_24(&row, out),
            _ => row_32(&row, out),
        }
    }
}

fn row_8(src: &[u8], out: &mut [u32], dac: &[u32; 256]) {
    for (d, &s) in out.iter_mut().zip(src) {
        *d = dac[usize::from(s)];
    }
}

/// 5 bits to 8, filling the low bits so white stays white.
fn expand5(v: u16) -> u32 {
    let v = u32::from(v & 0x1f);
    (v << 3) | (v >> 2)
}

fn expand6(v: u16) -> u32 {
    let v = u32::from(v & 0x3f);
    (v << 2) | (v >> 4)
}

fn row_15(src: &[u8], out: &mut [u32]) {
    for (d, s) in out.iter_mut().zip(src.chunks_exact(2)) {
        let v = u16::from_le_bytes([s[0], s[1]]);
        *d = expand5(v >> 10) << 16 | expand5(v >> 5) << 8 | expand5(v);
    }
}

fn row_16(src: &[u8], out: &mut [u32]) {
    for (d, s) in out.iter_mut().zip(src.chunks_exact(2)) {
        let v = u16::from_le_bytes([s[0], s[1]]);
        *d = expand5(v >> 11) << 16 | expand6(v >> 5) << 8 | expand5(v);
    }
}

fn row_24(src: &[u8], out: &mut [u32]) {
    for (d, s) in out.iter_mut().zip(src.chunks_exact(3)) {
        *d = u32::from_le_bytes([s[0], s[1], s[2], 0]);
    }
}

fn row_32(src: &[u8], out: &mut [u32]) {
    for (d, s) in out.iter_mut().zip(src.chunks_exact(4)) {
        *d = u32::from_le_bytes([s[0], s[1], s[2], 0]);
    }
}

fn draw_chain4(window: &[u8], c: &Chain4, dac: &[u32; 256], frame: &mut Frame) {
    let (w, h) = (c.width.min(MAX_SIDE), c.height.min(MAX_SIDE));
    if w == 0 || h == 0 {
        return black(frame, 0, 0);
    }
    frame.resize(w, h);
    for (y, out) in frame.pixels.chunks_exact_mut(w as usize).enumerate() {
        let line = c.start + y * c.stride;
        for (x, d) in out.iter_mut().enumerate() {
            *d = dac[usize::from(window.get(line + x).copied().unwrap_or(0))];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::dispi::{self, Dispi};
    use super::super::regs::{ATTR_PALETTE_SOURCE, DAC_DATA, DAC_WRITE_INDEX};
    use super::super::text::tests::mode3;
    use super::*;

    fn display(vram_bytes: u64, regs: VgaRegs) -> VgaDisplay {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let vram = Arc::new(Vram::new(vram_bytes).unwrap());
        let state = Arc::new(Mutex::new(VgaState {
            regs,
            dispi: Dispi::new(vram_bytes),
            io_decode: true,
        }));
        VgaDisplay::new(state, vram, mem)
    }

    fn unblanked() -> VgaRegs {
        let mut r = VgaRegs::default();
        r.attr_index = ATTR_PALETTE_SOURCE;
        r
    }

    fn set_mode(d: &VgaDisplay, w: u16, h: u16, bpp: u16, flags: u16) {
        let mut s = lock(&d.state);
        for (i, v) in [
            (dispi::INDEX_ENABLE, 0),
            (dispi::INDEX_XRES, w),
            (dispi::INDEX_YRES, h),
            (dispi::INDEX_BPP, bpp),
            (dispi::INDEX_ENABLE, dispi::ENABLED | flags),
        ] {
            s.dispi.write_index(i);
            s.dispi.write_data(v, &d.vram);
        }
    }

    #[test]
    fn nothing_set_up_is_black_640x480() {
        let d = display(1 << 20, VgaRegs::default());
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (640, 480));
        assert!(f.pixels.iter().all(|&p| p == 0));
    }

    #[test]
    fn renders_32bpp_with_panning() {
        let d = display(16 << 20, unblanked());
        set_mode(&d, 64, 16, 32, 0);
        for y in 0..32u32 {
            for x in 0..64u32 {
                let px = [x as u8, y as u8, 0x80, 0xee];
                d.vram.write(u64::from((y * 64 + x) * 4), &px);
            }
        }
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (64, 16));
        assert_eq!(f.pixels[0], 0x80_00_00);
        assert_eq!(f.pixels[3 * 64 + 5], 0x80_03_05);
        {
            let mut s = lock(&d.state);
            s.dispi.write_index(dispi::INDEX_Y_OFFSET);
            s.dispi.write_data(10, &d.vram);
        }
        d.render(&mut f);
        assert_eq!(f.pixels[3 * 64 + 5], 0x80_0d_05);
    }

    #[test]
    fn renders_other_depths() {
        let d = display(1 << 20, unblanked());
        set_mode(&d, 8, 1, 16, dispi::NOCLEARMEM);
        d.vram.write(0, &[0x1f, 0xf8, 0xe0, 0x07]);
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!(&f.pixels[..2], &[0xff_00_ff, 0x00_ff_00]);
        lock(&d.state).dispi.write_index(dispi::INDEX_BPP);
        lock(&d.state).dispi.write_data(15, &d.vram);
        d.vram.write(0, &[0x00, 0x7c]);
        d.render(&mut f);
        assert_eq!(f.pixels[0], 0xff_00_00);
        lock(&d.state).dispi.write_data(24, &d.vram);
        d.vram.write(0, &[1, 2, 3, 4, 5, 6]);
        d.render(&mut f);
        assert_eq!(&f.pixels[..2], &[0x03_02_01, 0x06_05_04]);
    }

    #[test]
    fn renders_8bpp_through_the_dac() {
        let mut regs = unblanked();
        regs.write(DAC_WRITE_INDEX, 1);
        for v in [0x3f, 0x00, 0x00, 0x00, 0x3f, 0x00] {
            regs.write(DAC_DATA, v);
        }
        let d = display(1 << 20, regs);
        set_mode(&d, 16, 2, 8, 0);
        d.vram.write(0, &[0, 1, 2, 1]);
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (16, 2));
        assert_eq!(&f.pixels[..4], &[0, 0xff_00_00, 0x00_ff_00, 0xff_00_00]);
        // With the 8-bit DAC the stored values are used as they are.
        lock(&d.state).regs.palette[3] = 0x80;
        set_mode(&d, 16, 2, 8, dispi::DAC_8BIT | dispi::NOCLEARMEM);
        d.render(&mut f);
        assert_eq!(f.pixels[1], 0x80_00_00);
    }

    #[test]
    fn blank_and_bad_modes_are_black_not_panics() {
        let d = display(1 << 20, VgaRegs::default());
        set_mode(&d, 32, 32, 32, 0);
        d.vram.write(0, &[0xff; 4]);
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (32, 32));
        assert_eq!(f.pixels[0], 0, "palette source clear blanks");
        lock(&d.state).regs.attr_index = ATTR_PALETTE_SOURCE;
        d.render(&mut f);
        assert_eq!(f.pixels[0], 0xff_ff_ff);
        // A mode set up while DISPI is off, wider and taller than video
        // memory holds: enabling clamps the height, rendering crops the
        // width.
        let m = {
            let mut s = lock(&d.state);
            let vram = d.vram.clone();
            for (i, v) in [
                (dispi::INDEX_ENABLE, 0),
                (dispi::INDEX_XRES, 16000),
                (dispi::INDEX_YRES, 12000),
                (dispi::INDEX_ENABLE, dispi::ENABLED | dispi::NOCLEARMEM),
            ] {
                s.dispi.write_index(i);
                s.dispi.write_data(v, &vram);
            }
            s.dispi.mode().unwrap()
        };
        assert_eq!((m.width, m.height), (16000, (1 << 20) / 64000));
        d.render(&mut f);
        assert_eq!((f.width, f.height), (8192, m.height));
        // 4 bpp (planar) is accepted and shown black.
        set_mode(&d, 64, 64, 4, 0);
        d.render(&mut f);
        assert_eq!((f.width, f.height), (64, 64));
    }

    #[test]
    fn renders_text_from_guest_memory() {
        let mut regs = mode3();
        regs.attr_index = ATTR_PALETTE_SOURCE;
        // Attribute palette: identity; DAC 1 = blue, 7 = grey, 4 = red.
        for i in 0..16 {
            regs.attr[i] = i as u8;
        }
        for (i, rgb) in [
            (1u8, [0, 0, 0x2a]),
            (7, [0x2a, 0x2a, 0x2a]),
            (4, [0x2a, 0, 0]),
        ] {
            regs.write(DAC_WRITE_INDEX, i);
            for c in rgb {
                regs.write(DAC_DATA, c);
            }
        }
        regs.crtc[0x0f] = 1; // cursor on the second cell
        let d = display(1 << 20, regs);
        // Glyph 'A': a vertical bar in column 0 on every line, and the
        // right-most bit on line 2.
        let mut glyph = [0x80u8; 32];
        glyph[2] = 0x81;
        d.mem
            .write_slice(&glyph, GuestAddress(0xa0000 + 0x41 * 32))
            .unwrap();
        // "A" grey on blue, then "A" red on black.
        d.mem
            .write_slice(&[0x41, 0x17, 0x41, 0x04], GuestAddress(0xb8000))
            .unwrap();
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (720, 400));
        let grey = 0xaa_aa_aa;
        let blue = 0x00_00_aa;
        let red = 0xaa_00_00;
        let at = |x: usize, y: usize| f.pixels[y * 720 + x];
        assert_eq!(at(0, 0), grey);
        assert_eq!(at(1, 0), blue);
        assert_eq!(at(7, 2), grey);
        assert_eq!(at(8, 2), blue, "ninth column is background");
        assert_eq!(at(9, 0), red);
        assert_eq!(at(10, 0), 0);
        // Cursor: lines 13-14 of cell 1 in its foreground colour.
        assert_eq!(at(12, 13), red);
        assert_eq!(at(12, 14), red);
        assert_eq!(at(12, 15), 0);
        // Blank cells elsewhere: attribute 0 is black on black.
        assert_eq!(at(700, 390), 0);
        // Start address scrolls by cells.
        lock(&d.state).regs.crtc[0x0d] = 1;
        d.render(&mut f);
        assert_eq!(f.pixels[0], red);
    }

    #[test]
    fn renders_mode13h_from_the_window() {
        let mut regs = unblanked();
        regs.crtc[0x01] = 79;
        regs.crtc[0x07] = 0x1f;
        regs.crtc[0x09] = 0x41;
        regs.crtc[0x12] = 0x8f;
        regs.crtc[0x13] = 40;
        regs.gc[5] = 0x40;
        regs.gc[6] = 0x05;
        regs.seq[4] = 0x0e;
        regs.write(DAC_WRITE_INDEX, 9);
        for c in [0x3f, 0x3f, 0x00] {
            regs.write(DAC_DATA, c);
        }
        let d = display(1 << 20, regs);
        d.mem
            .write_slice(&[9], GuestAddress(0xa0000 + 320 * 199 + 319))
            .unwrap();
        let mut f = Frame::default();
        d.render(&mut f);
        assert_eq!((f.width, f.height), (320, 200));
        assert_eq!(f.pixels[320 * 199 + 319], 0xff_ff_00);
        assert_eq!(f.pixels[0], 0);
        // Unchained (mode X) is not emulated: black of the same size.
        lock(&d.state).regs.seq[4] = 0x06;
        d.render(&mut f);
        assert_eq!((f.width, f.height), (640, 200));
        assert!(f.pixels.iter().all(|&p| p == 0));
    }

    #[test]
    #[ignore = "timing; run with --release --ignored --nocapture"]
    fn render_1080p_speed() {
        let d = display(16 << 20, unblanked());
        set_mode(&d, 1920, 1080, 32, 0);
        let mut f = Frame::default();
        d.render(&mut f);
        let t = std::time::Instant::now();
        for _ in 0..100 {
            d.render(&mut f);
        }
        println!("1920x1080x32: {:?} per frame", t.elapsed() / 100);
    }
}
