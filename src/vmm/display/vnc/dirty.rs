//! Which parts of the picture changed since a client's last update: the
//! frame is compared in square tiles and changed tiles are merged into
//! few rectangles.

use crate::vmm::display::Frame;

pub const TILE: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn whole(frame: &Frame) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: frame.width,
            h: frame.height,
        }
    }
}

fn row(frame: &Frame, y: u32, x0: u32, x1: u32) -> &[u32] {
    let base = y as usize * frame.width as usize;
    frame
        .pixels
        .get(base + x0 as usize..base + x1 as usize)
        .unwrap_or(&[])
}

fn tile_differs(old: &Frame, new: &Frame, x0: u32, y0: u32, x1: u32, y1: u32) -> bool {
    (y0..y1).any(|y| row(old, y, x0, x1) != row(new, y, x0, x1))
}

/// The rectangles of `new` that differ from `old`, both of the same size
/// (a different size counts as all changed). Runs of changed tiles in a
/// tile row become one rectangle, and a rectangle grows downwards while
/// the next tile row has a run with the same columns.
pub fn changed_rects(old: &Frame, new: &Frame) -> Vec<Rect> {
    if (old.width, old.height) != (new.width, new.height) {
        return vec![Rect::whole(new)];
    }
    let (w, h) = (new.width, new.height);
    let mut done: Vec<Rect> = Vec::new();
    // Rectangles that ended at the previous tile row and may grow.
    let mut open: Vec<Rect> = Vec::new();
    let mut y0 = 0;
    while y0 < h {
        let y1 = (y0 + TILE).min(h);
        let mut runs: Vec<(u32, u32)> = Vec::new();
        let mut x0 = 0;
        while x0 < w {
            let x1 = (x0 + TILE).min(w);
            if tile_differs(old, new, x0, y0, x1, y1) {
                match runs.last_mut() {
                    Some(run) if run.1 == x0 => run.1 = x1,
                    _ => runs.push((x0, x1)),
                }
            }
            x0 = x1;
        }
        let mut next_open = Vec::with_capacity(runs.len());
        for (rx0, rx1) in runs {
            let grown = open.iter().position(|r| r.x == rx0 && r.x + r.w == rx1);
            match grown {
                Some(i) => {
                    let mut r = open.swap_remove(i);
                    r.h = y1 - r.y;
                    next_open.push(r);
                }
                None => next_open.push(Rect {
                    x: rx0,
                    y: y0,
                    w: rx1 - rx0,
                    h: y1 - y0,
                }),
            }
        }
        done.append(&mut open);
        open = next_open;
        y0 = y1;
    }
    done.append(&mut open);
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32) -> Frame {
        let mut f = Frame::default();
        f.resize(w, h);
        f
    }

    fn set(f: &mut Frame, x: u32, y: u32) {
        f.pixels[(y * f.width + x) as usize] = 0xffffff;
    }

    #[test]
    fn nothing_changed_gives_nothing() {
        assert!(changed_rects(&frame(200, 100), &frame(200, 100)).is_empty());
    }

    #[test]
    fn single_pixel_gives_its_clipped_tile() {
        let old = frame(200, 100);
        let mut new = old.clone();
        set(&mut new, 199, 99);
        assert_eq!(
            changed_rects(&old, &new),
            [Rect {
                x: 192,
                y: 64,
                w: 8,
                h: 36
            }]
        );
    }

    #[test]
    fn adjacent_tiles_merge_across_and_down() {
        let old = frame(300, 300);
        let mut new = old.clone();
        for (x, y) in [(0, 0), (70, 0), (0, 70), (70, 70), (250, 10)] {
            set(&mut new, x, y);
        }
        let mut got = changed_rects(&old, &new);
        got.sort_by_key(|r| (r.y, r.x));
        assert_eq!(
            got,
            [
                Rect {
                    x: 0,
                    y: 0,
                    w: 128,
                    h: 128
                },
                Rect {
                    x: 192,
                    y: 0,
                    w: 64,
                    h: 64
                }
            ]
        );
    }

    #[test]
    fn size_change_is_whole_frame() {
        assert_eq!(
            changed_rects(&frame(10, 10), &frame(20, 10)),
            [Rect {
                x: 0,
                y: 0,
                w: 20,
                h: 10
            }]
        );
    }
}
