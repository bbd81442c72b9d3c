//! ZRLE encoding (16, RFC 6143 7.7.6): 64x64 tiles, each solid, packed
//! palette, run-length or raw, whichever is smallest, all through one
//! zlib stream that lives as long as the client.

use super::rect_rows;
use crate::vmm::display::Frame;
use crate::vmm::display::vnc::dirty::Rect;
use crate::vmm::display::vnc::pixel_format::PixelFormat;
use flate2::{Compress, Compression, FlushCompress};
use std::io;

const TILE: u32 = 64;
const MAX_PALETTE: usize = 127;

pub struct ZrleEncoder {
    zlib: Compress,
    plain: Vec<u8>,
    tile: Vec<u32>,
    palette: Palette,
}

impl Default for ZrleEncoder {
    fn default() -> Self {
        ZrleEncoder {
            zlib: Compress::new(Compression::new(6), true),
            plain: Vec::new(),
            tile: Vec::with_capacity((TILE * TILE) as usize),
            palette: Palette::default(),
        }
    }
}

/// A colour to index map of at most [`MAX_PALETTE`] colours, open
/// addressing in 256 slots.
struct Palette {
    slots: [(u32, u8); 256],
    used: [bool; 256],
    colours: Vec<u32>,
}

impl Default for Palette {
    fn default() -> Self {
        Palette {
            slots: [(0, 0); 256],
            used: [false; 256],
            colours: Vec::with_capacity(MAX_PALETTE),
        }
    }
}

impl Palette {
    fn clear(&mut self) {
        self.used = [false; 256];
        self.colours.clear();
    }

    /// The index of `c`, added if new; `None` once the palette is full.
    fn insert(&mut self, c: u32) -> Option<u8> {
        let mut slot = (c.wrapping_mul(0x9e37_79b1) >> 24) as usize;
        loop {
            let s = slot & 0xff;
            if !self.used[s] {
                if self.colours.len() >= MAX_PALETTE {
                    return None;
                }
                let index = self.colours.len() as u8;
                self.used[s] = true;
                self.slots[s] = (c, index);
                self.colours.push(c);
                return Some(index);
            }
            if self.slots[s].0 == c {
                return Some(self.slots[s].1);
            }
            slot = s + 1;
        }
    }

    fn index(&mut self, c: u32) -> u8 {
        self.insert(c).unwrap_or(0)
    }
}

/// Bytes of a ZRLE run length (`len` >= 1): 255s, then the remainder.
fn run_length_bytes(len: usize) -> usize {
    (len - 1) / 255 + 1
}

fn put_run_length(len: usize, out: &mut Vec<u8>) {
    let mut rest = len - 1;
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

/// Calls `f(colour, length)` for each run of equal pixels.
fn for_each_run(pixels: &[u32], mut f: impl FnMut(u32, usize)) {
    let mut i = 0;
    while let Some(&c) = pixels.get(i) {
        let len = pixels[i..].iter().take_while(|&&p| p == c).count();
        f(c, len);
        i += len;
    }
}

impl ZrleEncoder {
    /// Appends the ZRLE data of `r` (length and zlib bytes) to `out`.
    pub fn encode(
        &mut self,
        frame: &Frame,
        r: Rect,
        pf: &PixelFormat,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        self.plain.clear();
        let mut ty = r.y;
        while ty < r.y + r.h {
            let th = TILE.min(r.y + r.h - ty);
            let mut tx = r.x;
            while tx < r.x + r.w {
                let tw = TILE.min(r.x + r.w - tx);
                self.tile.clear();
                for row in rect_rows(
                    frame,
                    Rect {
                        x: tx,
                        y: ty,
                        w: tw,
                        h: th,
                    },
                ) {
                    self.tile.extend_from_slice(row);
                }
                self.encode_tile(tw as usize, pf);
                tx += tw;
            }
            ty += th;
        }
        self.compress(out)
    }

    fn encode_tile(&mut self, width: usize, pf: &PixelFormat) {
        let cpx = pf.cpixel_len();
        let n = self.tile.len();
        let height = n.checked_div(width).unwrap_or(0);
        self.palette.clear();
        let (mut plain_rle, mut palette_rle, mut fits) = (0usize, 0usize, true);
        let palette = &mut self.palette;
        for_each_run(&self.tile, |c, len| {
            plain_rle += cpx + run_length_bytes(len);
            palette_rle += if len == 1 {
                1
            } else {
                1 + run_length_bytes(len)
            };
            fits = fits && palette.insert(c).is_some();
        });
        let colours = self.palette.colours.len();
        let out = &mut self.plain;
        if fits && colours == 1 {
            out.push(1);
            pf.put_cpixel(self.palette.colours[0], out);
            return;
        }
        let raw = n * cpx;
        let packed_bits = match colours {
            2 => 1,
            3..=4 => 2,
            _ => 4,
        };
        let packed = if fits && colours <= 16 {
            colours * cpx + height * (width * packed_bits).div_ceil(8)
        } else {
            usize::MAX
        };
        let palette_rle = if fits {
            colours * cpx + palette_rle
        } else {
            usize::MAX
        };
        let best = raw.min(plain_rle).min(packed).min(palette_rle);
        if best == packed {
            out.push(colours as u8);
            for &c in &self.palette.colours {
                pf.put_cpixel(c, out);
            }
            for row in self.tile.chunks(width.max(1)) {
                let (mut byte, mut filled) = (0u8, 0);
                for &p in row {
                    byte = (byte << packed_bits) | self.palette.index(p);
                    filled += packed_bits;
                    if filled == 8 {
                        out.push(byte);
                        (byte, filled) = (0, 0);
                    }
                }
                if filled > 0 {
                    out.push(byte << (8 - filled));
                }
            }
        } else if best == palette_rle {
            out.push(128 + colours as u8);
            for &c in &self.palette.colours {
                pf.put_cpixel(c, out);
            }
            let palette = &mut self.palette;
            for_each_run(&self.tile, |c, len| {
                let index = palette.index(c);
                if len == 1 {
                    out.push(index);
                } else {
                    out.push(index | 0x80);
                    put_run_length(len, out);
                }
            });
        } else if best == plain_rle {
            out.push(128);
            for_each_run(&self.tile, |c, len| {
                pf.put_cpixel(c, out);
                put_run_length(len, out);
            });
        } else {
            out.push(0);
            for &p in &self.tile {
                pf.put_cpixel(p, out);
            }
        }
    }

    /// Compresses the tile data with a sync flush, so the client can
    /// decode it now, and appends its length and bytes to `out`.
    fn compress(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        let start_in = self.zlib.total_in();
        loop {
            let consumed = (self.zlib.total_in() - start_in) as usize;
            out.reserve(self.plain.len() / 2 + 1024);
            let input = self.plain.get(consumed..).unwrap_or(&[]);
            self.zlib
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(io::Error::other)?;
            let all_in = (self.zlib.total_in() - start_in) as usize == self.plain.len();
            if all_in && out.len() < out.capacity() {
                break;
            }
        }
        let len = u32::try_from(out.len() - len_at - 4)
            .map_err(|_| io::Error::other("ZRLE rectangle too large"))?;
        out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A ZRLE decoder for 32 bpp little-endian clients (3-byte CPIXELs),
    /// independent of the encoder; `zlib` lives as long as the connection.
    pub fn decode(zlib: &mut flate2::Decompress, data: &[u8], r: Rect, frame: &mut Frame) {
        let mut plain = Vec::with_capacity(1 << 20);
        let start_in = zlib.total_in();
        loop {
            let used = (zlib.total_in() - start_in) as usize;
            plain.reserve(1 << 16);
            zlib.decompress_vec(&data[used..], &mut plain, flate2::FlushDecompress::Sync)
                .unwrap();
            if (zlib.total_in() - start_in) as usize == data.len() && plain.len() < plain.capacity()
            {
                break;
            }
        }
        let mut p = &plain[..];
        let mut take = |n: usize| {
            let (a, b) = p.split_at(n);
            p = b;
            a.to_vec()
        };
        let cpixel = |b: Vec<u8>| u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        let mut ty = r.y;
        while ty < r.y + r.h {
            let th = TILE.min(r.y + r.h - ty);
            let mut tx = r.x;
            while tx < r.x + r.w {
                let tw = TILE.min(r.x + r.w - tx);
                let n = (tw * th) as usize;
                let sub = take(1)[0];
                let mut px: Vec<u32> = Vec::with_capacity(n);
                let run_len = |take: &mut dyn FnMut(usize) -> Vec<u8>| {
                    let mut len = 1usize;
                    loop {
                        let b = take(1)[0];
                        len += b as usize;
                        if b != 255 {
                            return len;
                        }
                    }
                };
                match sub {
                    0 => (0..n).for_each(|_| px.push(cpixel(take(3)))),
                    1 => px.resize(n, cpixel(take(3))),
                    2..=16 => {
                        let pal: Vec<u32> = (0..sub).map(|_| cpixel(take(3))).collect();
                        let bits = match sub {
                            2 => 1,
                            3..=4 => 2,
                            _ => 4,
                        };
                        for _ in 0..th {
                            let row = take((tw as usize * bits).div_ceil(8));
                            for x in 0..tw as usize {
                                let bit = x * bits;
                                let v = (row[bit / 8] >> (8 - bits - bit % 8))
                                    & ((1 << bits) - 1) as u8;
                                px.push(pal[v as usize]);
                            }
                        }
                    }
                    128 => {
                        while px.len() < n {
                            let c = cpixel(take(3));
                            let len = run_len(&mut take);
                            px.extend(std::iter::repeat_n(c, len));
                        }
                    }
                    130..=255 => {
                        let pal: Vec<u32> = (0..sub - 128).map(|_| cpixel(take(3))).collect();
                        while px.len() < n {
                            let i = take(1)[0];
                            let len = if i & 0x80 != 0 { run_len(&mut take) } else { 1 };
                            px.extend(std::iter::repeat_n(pal[(i & 0x7f) as usize], len));
                        }
                    }
                    other => panic!("bad ZRLE subencoding {other}"),
                }
                assert_eq!(px.len(), n, "tile overran");
                for (i, c) in px.into_iter().enumerate() {
                    let (x, y) = (tx + i as u32 % tw, ty + i as u32 / tw);
                    frame.pixels[(y * frame.width + x) as usize] = c;
                }
                tx += tw;
            }
            ty += th;
        }
        assert!(p.is_empty(), "trailing ZRLE data");
    }

    fn encode_decode(frame: &Frame) {
        let mut enc = ZrleEncoder::default();
        let mut zlib = flate2::Decompress::new(true);
        let r = Rect::whole(frame);
        // Twice through the same streams: the zlib state must carry over.
        for _ in 0..2 {
            let mut out = Vec::new();
            enc.encode(frame, r, &PixelFormat::SERVER, &mut out)
                .unwrap();
            let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
            assert_eq!(len, out.len() - 4);
            let mut got = Frame::default();
            got.resize(frame.width, frame.height);
            decode(&mut zlib, &out[4..], r, &mut got);
            assert_eq!(got.pixels, frame.pixels);
        }
    }

    #[test]
    fn every_subencoding_round_trips() {
        let mut f = Frame::default();
        f.resize(330, 140);
        for y in 0..140u32 {
            for x in 0..330u32 {
                f.pixels[(y * 330 + x) as usize] = match x / 64 {
                    0 => 0x123456,                                               // solid
                    1 => [0xff0000, 0x00ff00, 0x0000ff][((x + y) % 3) as usize], // packed
                    2 => ((x * 7919 + y * 104729) % 1000) * 16411,               // raw
                    3 => {
                        if x % 32 < 16 {
                            0xabcdef
                        } else {
                            0x010203
                        }
                    } // runs
                    _ => (x / 3 % 40) * 0x030201,                                // palette rle
                };
            }
        }
        encode_decode(&f);
    }

    #[test]
    fn long_runs_and_odd_sizes() {
        let mut f = Frame::default();
        f.resize(1, 700);
        encode_decode(&f);
        f.resize(97, 1);
        f.pixels
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p = i as u32 * 0x010101);
        encode_decode(&f);
    }
}
