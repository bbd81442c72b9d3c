//! Raw encoding (0): every pixel in the client's pixel format.

use super::rect_rows;
use crate::vmm::display::Frame;
use crate::vmm::display::vnc::dirty::Rect;
use crate::vmm::display::vnc::pixel_format::PixelFormat;

pub fn encode(frame: &Frame, r: Rect, pf: &PixelFormat, out: &mut Vec<u8>) {
    out.reserve(r.w as usize * r.h as usize * pf.bytes_per_pixel());
    for row in rect_rows(frame, r) {
        for &p in row {
            pf.put(p, out);
        }
    }
}
