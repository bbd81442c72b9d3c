//! Text mode: character/attribute pairs from the legacy window, glyphs
//! from font memory at 0xA0000 (where the VGA BIOS and Linux load fonts
//! through plane 2: 32 bytes per character), colours through the
//! attribute controller and the DAC. Blinking is not animated.

use super::regs::{ATTR_MODE, VgaRegs};
use crate::vmm::display::Frame;

/// Bytes per character in font memory.
const GLYPH_BYTES: usize = 32;
/// Where each of the eight font blocks starts in plane 2.
const FONT_BLOCKS: [usize; 8] = [
    0x0000, 0x4000, 0x8000, 0xc000, 0x2000, 0x6000, 0xa000, 0xe000,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    /// Character address (as the CRTC counts).
    cell: usize,
    first_line: usize,
    last_line: usize,
}

/// A text screen as the CRTC, sequencer and attribute controller set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextLayout {
    pub cols: usize,
    pub rows: usize,
    pub char_width: usize,
    pub char_height: usize,
    /// Offset of text memory from 0xA0000.
    base: usize,
    /// First character shown and characters from one row to the next.
    start: usize,
    stride: usize,
    cursor: Option<Cursor>,
    /// Font blocks for attribute bit 3 set (A) and clear (B).
    font_a: usize,
    font_b: usize,
    /// Characters 0xC0-0xDF extend into the ninth column.
    line_graphics: bool,
    /// Attribute bit 7 blinks instead of selecting bright backgrounds.
    blink: bool,
}

impl TextLayout {
    /// The layout, or `None` for a screen with no rows or columns.
    pub fn from_regs(r: &VgaRegs) -> Option<Self> {
        let cols = r.display_chars() as usize;
        let char_height = usize::from(r.crtc[0x09] & 0x1f) + 1;
        let rows = r.display_lines() as usize / char_height;
        if cols == 0 || rows == 0 {
            return None;
        }
        let char_width = if r.seq[1] & 1 != 0 { 8 } else { 9 };
        let stride = match usize::from(r.crtc[0x13]) * 2 {
            0 => cols,
            s => s,
        };
        let cursor_start = r.crtc[0x0a];
        let first_line = usize::from(cursor_start & 0x1f);
        let last_line = usize::from(r.crtc[0x0b] & 0x1f).min(char_height - 1);
        let cursor = (cursor_start & 0x20 == 0 && first_line <= last_line).then_some(Cursor {
            cell: (usize::from(r.crtc[0x0e]) << 8) | usize::from(r.crtc[0x0f]),
            first_line,
            last_line,
        });
        let map = r.seq[3];
        let a = usize::from(((map >> 2) & 3) | ((map >> 3) & 4));
        let b = usize::from((map & 3) | ((map >> 2) & 4));
        let mode = r.attr[ATTR_MODE];
        Some(TextLayout {
            cols,
            rows,
            char_width,
            char_height,
            base: r.window_offset(),
            start: r.start_address() as usize,
            stride,
            cursor,
            font_a: FONT_BLOCKS[a],
            font_b: FONT_BLOCKS[b],
            line_graphics: mode & 0x04 != 0,
            blink: mode & 0x08 != 0,
        })
    }

    pub fn size(&self) -> (u32, u32) {
        (
            (self.cols * self.char_width) as u32,
            (self.rows * self.char_height) as u32,
        )
    }
}

/// Draws `layout` from `window` (guest memory from 0xA0000 on) with the
/// sixteen attribute colours.
pub fn draw(window: &[u8], layout: &TextLayout, colours: &[u32; 16], frame: &mut Frame) {
    let (w, h) = layout.size();
    frame.resize(w, h);
    let width = w as usize;
    let byte = |at: usize| window.get(at).copied().unwrap_or(0);
    for row in 0..layout.rows {
        for col in 0..layout.cols {
            let cell = layout.start + row * layout.stride + col;
            let at = layout.base + cell * 2;
            let (ch, attr) = (byte(at), byte(at + 1));
            let fg = colours[usize::from(attr & 0x0f)];
            let bg_index = if layout.blink {
                (attr >> 4) & 7
            } else {
                attr >> 4
            };
            let bg = colours[usize::from(bg_index)];
            let font = if attr & 0x08 != 0 {
                layout.font_a
            } else {
                layout.font_b
            };
            let glyph = font + usize::from(ch) * GLYPH_BYTES;
            let cursor = layout.cursor.filter(|c| c.cell == cell);
            let extend = layout.line_graphics && (0xc0..=0xdf).contains(&ch);
            for line in 0..layout.char_height {
                let bits = if line < GLYPH_BYTES {
                    byte(glyph + line)
                } else {
                    0
                };
                let solid = cursor.is_some_and(|c| (c.first_line..=c.last_line).contains(&line));
                let y = row * layout.char_height + line;
                let x = col * layout.char_width;
                let Some(px) = frame
                    .pixels
                    .get_mut(y * width + x..)
                    .and_then(|p| p.get_mut(..layout.char_width))
                else {
                    continue;
                };
                for (i, p) in px.iter_mut().enumerate() {
                    let on = if i < 8 {
                        bits & (0x80 >> i) != 0
                    } else {
                        extend && bits & 1 != 0
                    };
                    *p = if on || solid { fg } else { bg };
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Mode 3 as the VGA BIOS programs it: 80x25, 9x16 cells.
    pub(crate) fn mode3() -> VgaRegs {
        let mut r = VgaRegs::default();
        r.misc = 0x67;
        r.crtc[0x01] = 79;
        r.crtc[0x07] = 0x1f;
        r.crtc[0x09] = 0x4f;
        r.crtc[0x0a] = 0x0d;
        r.crtc[0x0b] = 0x0e;
        r.crtc[0x12] = 0x8f;
        r.crtc[0x13] = 40;
        r.gc[6] = 0x0e;
        r.attr[ATTR_MODE] = 0x0c;
        r
    }

    #[test]
    fn mode3_layout() {
        let l = TextLayout::from_regs(&mode3()).unwrap();
        assert_eq!(
            (l.cols, l.rows, l.char_width, l.char_height),
            (80, 25, 9, 16)
        );
        assert_eq!(l.size(), (720, 400));
        assert_eq!(l.base, 0x18000);
        assert_eq!(l.stride, 80);
        assert_eq!(
            l.cursor,
            Some(Cursor {
                cell: 0,
                first_line: 13,
                last_line: 14
            })
        );
        let mut r = mode3();
        r.crtc[0x0a] |= 0x20;
        assert_eq!(TextLayout::from_regs(&r).unwrap().cursor, None);
        r.crtc[0x12] = 0;
        r.crtc[0x07] = 0;
        assert!(TextLayout::from_regs(&r).is_none());
    }
}
