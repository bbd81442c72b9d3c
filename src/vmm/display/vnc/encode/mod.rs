//! Rectangle encodings: the pixels of a frame region in the bytes a
//! client asked for.

pub mod raw;
pub mod zrle;

use super::dirty::Rect;
use crate::vmm::display::Frame;

/// The pixels of `r` row by row (`r` lies inside `frame`).
fn rect_rows<'a>(frame: &'a Frame, r: Rect) -> impl Iterator<Item = &'a [u32]> + 'a {
    let stride = frame.width as usize;
    (r.y..r.y + r.h).map(move |y| {
        let start = y as usize * stride + r.x as usize;
        frame.pixels.get(start..start + r.w as usize).unwrap_or(&[])
    })
}
