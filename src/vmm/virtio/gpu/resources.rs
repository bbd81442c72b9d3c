//! The device's host side: 2D resources (a host copy of each image, at
//! most `limit` bytes in all), the guest pages backing them, the one
//! scanout, and turning the scanout's image into a [`Frame`].

use std::collections::BTreeMap;

use vm_memory::{Bytes, GuestAddress, GuestMemory as _, Permissions};

use super::protocol::{self as p, Rect};
use crate::vmm::display::Frame;
use crate::vmm::memory::GuestMemory;

/// Bytes per pixel of every supported format.
pub const BPP: u64 = 4;
/// Most backing entries one resource may have (as QEMU allows).
pub const MAX_BACKING_ENTRIES: usize = 16384;

/// Where the red, green and blue bytes of a pixel are, by format: every
/// format names its bytes in memory order.
pub fn channel_offsets(format: u32) -> Option<[usize; 3]> {
    Some(match format {
        p::FORMAT_B8G8R8A8 | p::FORMAT_B8G8R8X8 => [2, 1, 0],
        p::FORMAT_A8R8G8B8 | p::FORMAT_X8R8G8B8 => [1, 2, 3],
        p::FORMAT_R8G8B8A8 | p::FORMAT_R8G8B8X8 => [0, 1, 2],
        p::FORMAT_A8B8G8R8 | p::FORMAT_X8B8G8R8 => [3, 2, 1],
        _ => return None,
    })
}

/// A request the device refuses, as the response type to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unspec,
    OutOfMemory,
    InvalidScanout,
    InvalidResource,
    InvalidParameter,
}

impl Refusal {
    pub fn response_type(self) -> u32 {
        match self {
            Refusal::Unspec => p::RESP_ERR_UNSPEC,
            Refusal::OutOfMemory => p::RESP_ERR_OUT_OF_MEMORY,
            Refusal::InvalidScanout => p::RESP_ERR_INVALID_SCANOUT_ID,
            Refusal::InvalidResource => p::RESP_ERR_INVALID_RESOURCE_ID,
            Refusal::InvalidParameter => p::RESP_ERR_INVALID_PARAMETER,
        }
    }
}

pub type Outcome = Result<(), Refusal>;

/// Guest memory behind a resource: its entries in order, each with the
/// offset it starts at in the resource's backing.
#[derive(Debug, Default)]
struct Backing {
    entries: Vec<(GuestAddress, u64)>,
    starts: Vec<u64>,
    len: u64,
}

impl Backing {
    /// Copies backing bytes from offset `off` into `dst`, as far as the
    /// backing reaches; returns how many were copied.
    fn read_at(&self, mem: &GuestMemory, mut off: u64, dst: &mut [u8]) -> usize {
        let mut done = 0;
        let mut i = match self.starts.binary_search(&off) {
            Ok(i) => i,
            Err(0) => return 0,
            Err(i) => i - 1,
        };
        while done < dst.len() {
            let (Some(&(addr, len)), Some(&start)) = (self.entries.get(i), self.starts.get(i))
            else {
                break;
            };
            let within = off - start;
            if within >= len {
                break;
            }
            let n = (len - within).min((dst.len() - done) as u64) as usize;
            let Some(src) = addr.0.checked_add(within) else {
                break;
            };
            if n > 0
                && mem
                    .read_slice(&mut dst[done..done + n], GuestAddress(src))
                    .is_err()
            {
                break;
            }
            done += n;
            off += n as u64;
            i += 1;
        }
        done
    }
}

/// One 2D resource.
#[derive(Debug)]
pub struct Resource {
    pub format: u32,
    pub width: u32,
    pub height: u32,
    /// The host copy, `width * 4` bytes a row.
    pixels: Vec<u8>,
    backing: Option<Backing>,
}

impl Resource {
    fn stride(&self) -> u64 {
        u64::from(self.width) * BPP
    }
}

/// What the scanout shows: a rectangle of a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanout {
    pub resource_id: u32,
    pub rect: Rect,
}

/// One resource as a state image keeps it: the host copy (base64) and
/// the guest memory behind it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSaved {
    id: u32,
    format: u32,
    width: u32,
    height: u32,
    pixels: String,
    backing: Option<Vec<(u64, u64)>>,
}

/// [`GpuState`] as a state image keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSaved {
    resources: Vec<ResourceSaved>,
    scanout: Option<(u32, [u32; 4])>,
    used: u64,
    preferred: (u32, u32),
    flushes: u64,
    cursor: (u32, u32, u32),
}

/// Resources, the scanout and the memory they take.
#[derive(Debug)]
pub struct GpuState {
    resources: BTreeMap<u32, Resource>,
    pub scanout: Option<Scanout>,
    /// Bytes of host memory the resources' images take.
    pub used: u64,
    /// Most bytes they may take.
    pub limit: u64,
    /// The mode reported in the display information.
    pub preferred: (u32, u32),
    /// Incremented by every flush of the scanout's resource.
    pub flushes: u64,
    /// The cursor's position and image resource (not drawn).
    pub cursor: (u32, u32, u32),
}

impl GpuState {
    pub fn new(limit: u64, preferred: (u32, u32)) -> Self {
        GpuState {
            resources: BTreeMap::new(),
            scanout: None,
            used: 0,
            limit,
            preferred,
            flushes: 0,
            cursor: (0, 0, 0),
        }
    }

    /// Drops every resource and the scanout (device reset).
    pub fn saved(&self) -> GpuSaved {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        GpuSaved {
            resources: self
                .resources
                .iter()
                .map(|(&id, r)| ResourceSaved {
                    id,
                    format: r.format,
                    width: r.width,
                    height: r.height,
                    pixels: b64.encode(&r.pixels),
                    backing: r
                        .backing
                        .as_ref()
                        .map(|b| b.entries.iter().map(|&(a, l)| (a.0, l)).collect()),
                })
                .collect(),
            scanout: self.scanout.map(|s| {
                (
                    s.resource_id,
                    [s.rect.x, s.rect.y, s.rect.width, s.rect.height],
                )
            }),
            used: self.used,
            preferred: self.preferred,
            flushes: self.flushes,
            cursor: self.cursor,
        }
    }

    /// Loads a saved state; backing entries must lie in guest RAM.
    pub fn restore(&mut self, s: &GpuSaved, mem: &GuestMemory) -> Result<(), String> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        self.clear();
        for r in &s.resources {
            let pixels = b64
                .decode(&r.pixels)
                .map_err(|e| format!("virtio-gpu resource {}: {e}", r.id))?;
            if pixels.len() as u64 != u64::from(r.width) * u64::from(r.height) * BPP {
                return Err(format!(
                    "virtio-gpu resource {}: image of the wrong size",
                    r.id
                ));
            }
            self.resources.insert(
                r.id,
                Resource {
                    format: r.format,
                    width: r.width,
                    height: r.height,
                    pixels,
                    backing: None,
                },
            );
            if let Some(entries) = &r.backing {
                let entries: Vec<(u64, u32)> = entries
                    .iter()
                    .map(|&(a, l)| (a, u32::try_from(l).unwrap_or(u32::MAX)))
                    .collect();
                self.attach_backing(mem, r.id, &entries)
                    .map_err(|_| format!("virtio-gpu resource {}: bad backing", r.id))?;
            }
        }
        self.scanout = s
            .scanout
            .map(|(resource_id, [x, y, width, height])| Scanout {
                resource_id,
                rect: Rect {
                    x,
                    y,
                    width,
                    height,
                },
            });
        self.used = s.used;
        self.preferred = s.preferred;
        self.flushes = s.flushes;
        self.cursor = s.cursor;
        Ok(())
    }

    pub fn clear(&mut self) {
        self.resources.clear();
        self.scanout = None;
        self.used = 0;
        self.cursor = (0, 0, 0);
    }

    pub fn resource(&self, id: u32) -> Option<&Resource> {
        self.resources.get(&id)
    }

    pub fn create_2d(&mut self, id: u32, format: u32, width: u32, height: u32) -> Outcome {
        if id == 0 || self.resources.contains_key(&id) {
            return Err(Refusal::InvalidResource);
        }
        if channel_offsets(format).is_none() || width == 0 || height == 0 {
            return Err(Refusal::InvalidParameter);
        }
        let bytes = (u64::from(width) * u64::from(height))
            .checked_mul(BPP)
            .ok_or(Refusal::OutOfMemory)?;
        if self.used.saturating_add(bytes) > self.limit {
            return Err(Refusal::OutOfMemory);
        }
        let len = usize::try_from(bytes).map_err(|_| Refusal::OutOfMemory)?;
        let mut pixels = Vec::new();
        pixels
            .try_reserve_exact(len)
            .map_err(|_| Refusal::OutOfMemory)?;
        pixels.resize(len, 0);
        self.used += bytes;
        self.resources.insert(
            id,
            Resource {
                format,
                width,
                height,
                pixels,
                backing: None,
            },
        );
        Ok(())
    }

    pub fn unref(&mut self, id: u32) -> Outcome {
        let r = self.resources.remove(&id).ok_or(Refusal::InvalidResource)?;
        self.used -= r.pixels.len() as u64;
        if self.scanout.is_some_and(|s| s.resource_id == id) {
            self.scanout = None;
        }
        if self.cursor.2 == id {
            self.cursor.2 = 0;
        }
        Ok(())
    }

    /// Attaches guest memory: `entries` of (address, length), each of
    /// which must lie in guest RAM.
    pub fn attach_backing(
        &mut self,
        mem: &GuestMemory,
        id: u32,
        entries: &[(u64, u32)],
    ) -> Outcome {
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(Refusal::InvalidResource)?;
        if r.backing.is_some() || entries.len() > MAX_BACKING_ENTRIES {
            return Err(Refusal::Unspec);
        }
        let mut b = Backing::default();
        for &(addr, len) in entries {
            let ok = usize::try_from(len)
                .is_ok_and(|l| l == 0 || mem.check_range(GuestAddress(addr), l, Permissions::Read));
            if !ok {
                return Err(Refusal::Unspec);
            }
            if len == 0 {
                continue;
            }
            b.starts.push(b.len);
            b.entries.push((GuestAddress(addr), u64::from(len)));
            b.len += u64::from(len);
        }
        r.backing = Some(b);
        Ok(())
    }

    pub fn detach_backing(&mut self, id: u32) -> Outcome {
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(Refusal::InvalidResource)?;
        r.backing.take().map(|_| ()).ok_or(Refusal::Unspec)
    }

    /// Copies `rect` of the resource from its backing, whose rows are the
    /// resource's stride apart starting at `offset` (a resource without
    /// backing is refused before the rectangle is looked at, as QEMU does). Rows the backing
    /// does not fully cover are copied as far as it reaches.
    pub fn transfer_to_host(
        &mut self,
        mem: &GuestMemory,
        id: u32,
        rect: Rect,
        offset: u64,
    ) -> Outcome {
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(Refusal::InvalidResource)?;
        let stride = r.stride();
        let Some(backing) = r.backing.as_ref() else {
            return Err(Refusal::Unspec);
        };
        if !rect.fits(r.width, r.height) {
            return Err(Refusal::InvalidParameter);
        }
        let row_bytes = (u64::from(rect.width) * BPP) as usize;
        for row in 0..u64::from(rect.height) {
            let Some(src) = row.checked_mul(stride).and_then(|o| o.checked_add(offset)) else {
                break;
            };
            let dst = ((u64::from(rect.y) + row) * stride + u64::from(rect.x) * BPP) as usize;
            // `fits` keeps the row inside the image.
            let Some(out) = r.pixels.get_mut(dst..dst + row_bytes) else {
                break;
            };
            backing.read_at(mem, src, out);
        }
        Ok(())
    }

    pub fn set_scanout(&mut self, scanout_id: u32, id: u32, rect: Rect) -> Outcome {
        if scanout_id != 0 {
            return Err(Refusal::InvalidScanout);
        }
        if id == 0 {
            self.scanout = None;
            return Ok(());
        }
        let r = self.resources.get(&id).ok_or(Refusal::InvalidResource)?;
        if rect.is_empty() || !rect.fits(r.width, r.height) {
            return Err(Refusal::InvalidParameter);
        }
        self.scanout = Some(Scanout {
            resource_id: id,
            rect,
        });
        Ok(())
    }

    pub fn flush(&mut self, id: u32, rect: Rect) -> Outcome {
        let r = self.resources.get(&id).ok_or(Refusal::InvalidResource)?;
        if !rect.fits(r.width, r.height) {
            return Err(Refusal::InvalidParameter);
        }
        if self.scanout.is_some_and(|s| s.resource_id == id) {
            self.flushes = self.flushes.wrapping_add(1);
        }
        Ok(())
    }

    /// The scanout as `0x00RRGGBB` pixels; black 640x480 without one.
    pub fn render(&self, frame: &mut Frame) {
        let shown = self
            .scanout
            .and_then(|s| Some((s.rect, self.resources.get(&s.resource_id)?)));
        let Some((rect, r)) = shown else {
            frame.resize(640, 480);
            frame.pixels.fill(0);
            return;
        };
        frame.resize(rect.width, rect.height);
        let Some(ch) = channel_offsets(r.format) else {
            frame.pixels.fill(0);
            return;
        };
        let stride = r.stride() as usize;
        let row_bytes = rect.width as usize * BPP as usize;
        let rows = frame.pixels.chunks_exact_mut(rect.width as usize);
        for (y, out) in rows.enumerate() {
            let start = (rect.y as usize + y) * stride + rect.x as usize * BPP as usize;
            let Some(src) = r.pixels.get(start..start + row_bytes) else {
                out.fill(0);
                continue;
            };
            for (px, s) in out.iter_mut().zip(src.chunks_exact(BPP as usize)) {
                *px = u32::from(s[ch[0]]) << 16 | u32::from(s[ch[1]]) << 8 | u32::from(s[ch[2]]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    const MIB: u64 = 1 << 20;

    fn mem() -> GuestMemory {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 4 * MIB as usize)]).unwrap()
    }

    fn full(w: u32, h: u32) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: w,
            height: h,
        }
    }

    #[test]
    fn every_format_converts_to_rgb() {
        // Red 0x11, green 0x22, blue 0x33, alpha/padding 0x44, in each
        // format's byte order.
        let cases = [
            (p::FORMAT_B8G8R8A8, [0x33, 0x22, 0x11, 0x44]),
            (p::FORMAT_B8G8R8X8, [0x33, 0x22, 0x11, 0x44]),
            (p::FORMAT_A8R8G8B8, [0x44, 0x11, 0x22, 0x33]),
            (p::FORMAT_X8R8G8B8, [0x44, 0x11, 0x22, 0x33]),
            (p::FORMAT_R8G8B8A8, [0x11, 0x22, 0x33, 0x44]),
            (p::FORMAT_R8G8B8X8, [0x11, 0x22, 0x33, 0x44]),
            (p::FORMAT_A8B8G8R8, [0x44, 0x33, 0x22, 0x11]),
            (p::FORMAT_X8B8G8R8, [0x44, 0x33, 0x22, 0x11]),
        ];
        let m = mem();
        for (format, bytes) in cases {
            let mut s = GpuState::new(MIB, (640, 480));
            s.create_2d(1, format, 2, 1).unwrap();
            m.write_slice(&[bytes, bytes].concat(), GuestAddress(0x1000))
                .unwrap();
            s.attach_backing(&m, 1, &[(0x1000, 8)]).unwrap();
            s.transfer_to_host(&m, 1, full(2, 1), 0).unwrap();
            s.set_scanout(0, 1, full(2, 1)).unwrap();
            let mut f = Frame::default();
            s.render(&mut f);
            assert_eq!(f.pixels, vec![0x112233, 0x112233], "format {format}");
        }
        assert!(channel_offsets(0).is_none());
        assert!(channel_offsets(5).is_none());
    }

    #[test]
    fn the_memory_bound_refuses_and_unref_gives_back() {
        let mut s = GpuState::new(MIB, (640, 480));
        // 512x256x4 = 512 KiB twice fills the budget exactly.
        s.create_2d(1, p::FORMAT_B8G8R8X8, 512, 256).unwrap();
        s.create_2d(2, p::FORMAT_B8G8R8X8, 512, 256).unwrap();
        assert_eq!(s.used, MIB);
        assert_eq!(
            s.create_2d(3, p::FORMAT_B8G8R8X8, 1, 1),
            Err(Refusal::OutOfMemory)
        );
        // Sizes whose product overflows 32 bits are refused, not wrapped.
        assert_eq!(
            s.create_2d(4, p::FORMAT_B8G8R8X8, u32::MAX, u32::MAX),
            Err(Refusal::OutOfMemory)
        );
        s.unref(1).unwrap();
        assert_eq!(s.used, MIB / 2);
        s.create_2d(3, p::FORMAT_B8G8R8X8, 1, 1).unwrap();
    }

    #[test]
    fn creation_checks_ids_formats_and_sizes() {
        let mut s = GpuState::new(MIB, (640, 480));
        assert_eq!(
            s.create_2d(0, p::FORMAT_B8G8R8X8, 1, 1),
            Err(Refusal::InvalidResource)
        );
        assert_eq!(s.create_2d(1, 999, 1, 1), Err(Refusal::InvalidParameter));
        assert_eq!(
            s.create_2d(1, p::FORMAT_B8G8R8X8, 0, 1),
            Err(Refusal::InvalidParameter)
        );
        s.create_2d(1, p::FORMAT_B8G8R8X8, 1, 1).unwrap();
        assert_eq!(
            s.create_2d(1, p::FORMAT_B8G8R8X8, 1, 1),
            Err(Refusal::InvalidResource)
        );
        assert_eq!(s.unref(7), Err(Refusal::InvalidResource));
    }

    #[test]
    fn backing_outside_memory_or_attached_twice_is_refused() {
        let m = mem();
        let mut s = GpuState::new(MIB, (640, 480));
        s.create_2d(1, p::FORMAT_B8G8R8X8, 4, 4).unwrap();
        assert_eq!(
            s.attach_backing(&m, 2, &[(0, 64)]),
            Err(Refusal::InvalidResource)
        );
        assert_eq!(
            s.attach_backing(&m, 1, &[(4 * MIB - 8, 64)]),
            Err(Refusal::Unspec)
        );
        assert_eq!(
            s.attach_backing(&m, 1, &[(u64::MAX - 4, 64)]),
            Err(Refusal::Unspec)
        );
        let too_many = vec![(0u64, 4u32); MAX_BACKING_ENTRIES + 1];
        assert_eq!(s.attach_backing(&m, 1, &too_many), Err(Refusal::Unspec));
        s.attach_backing(&m, 1, &[(0x1000, 64)]).unwrap();
        assert_eq!(
            s.attach_backing(&m, 1, &[(0x1000, 64)]),
            Err(Refusal::Unspec)
        );
        s.detach_backing(1).unwrap();
        assert_eq!(s.detach_backing(1), Err(Refusal::Unspec));
        assert_eq!(
            s.transfer_to_host(&m, 1, full(4, 4), 0),
            Err(Refusal::Unspec)
        );
    }

    #[test]
    fn transfers_gather_rows_across_pages_and_stop_at_the_backing_end() {
        let m = mem();
        let mut s = GpuState::new(MIB, (640, 480));
        // 4x3 image, stride 16 bytes; backing in three pieces, out of
        // order in guest memory, covering only 40 of its 48 bytes.
        s.create_2d(1, p::FORMAT_B8G8R8X8, 4, 3).unwrap();
        let image: Vec<u8> = (0..48u8).collect();
        m.write_slice(&image[0..10], GuestAddress(0x3000)).unwrap();
        m.write_slice(&image[10..30], GuestAddress(0x1000)).unwrap();
        m.write_slice(&image[30..40], GuestAddress(0x2000)).unwrap();
        s.attach_backing(&m, 1, &[(0x3000, 10), (0x1000, 20), (0, 0), (0x2000, 10)])
            .unwrap();
        // The 2x2 rectangle at (1, 1): rows at offset 20 and 36.
        let r = Rect {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        s.transfer_to_host(&m, 1, r, 20).unwrap();
        let px = &s.resource(1).unwrap().pixels;
        assert_eq!(&px[20..28], &image[20..28]);
        // The second row's source (36..44) is cut at 40.
        assert_eq!(&px[36..40], &image[36..40]);
        assert_eq!(&px[40..44], &[0, 0, 0, 0]);
        assert!(px[..20].iter().all(|&b| b == 0));
        // Rectangles outside the image and huge offsets.
        let out = Rect { x: 3, ..r };
        assert_eq!(
            s.transfer_to_host(&m, 1, out, 0),
            Err(Refusal::InvalidParameter)
        );
        s.transfer_to_host(&m, 1, full(4, 3), u64::MAX).unwrap();
        assert_eq!(
            s.transfer_to_host(&m, 9, r, 0),
            Err(Refusal::InvalidResource)
        );
    }

    #[test]
    fn the_scanout_shows_its_rectangle_and_goes_with_its_resource() {
        let m = mem();
        let mut s = GpuState::new(MIB, (1024, 768));
        let mut f = Frame::default();
        s.render(&mut f);
        assert_eq!((f.width, f.height), (640, 480));
        assert!(f.pixels.iter().all(|&p| p == 0));

        s.create_2d(5, p::FORMAT_B8G8R8X8, 3, 2).unwrap();
        let words: Vec<u8> = (0..6u32)
            .flat_map(|i| (i * 0x010101).to_le_bytes())
            .collect();
        m.write_slice(&words, GuestAddress(0x1000)).unwrap();
        s.attach_backing(&m, 5, &[(0x1000, 24)]).unwrap();
        s.transfer_to_host(&m, 5, full(3, 2), 0).unwrap();
        assert_eq!(
            s.set_scanout(1, 5, full(3, 2)),
            Err(Refusal::InvalidScanout)
        );
        assert_eq!(
            s.set_scanout(0, 6, full(3, 2)),
            Err(Refusal::InvalidResource)
        );
        assert_eq!(
            s.set_scanout(0, 5, full(4, 2)),
            Err(Refusal::InvalidParameter)
        );
        assert_eq!(
            s.set_scanout(0, 5, full(0, 2)),
            Err(Refusal::InvalidParameter)
        );
        let right = Rect {
            x: 1,
            y: 0,
            width: 2,
            height: 2,
        };
        s.set_scanout(0, 5, right).unwrap();
        s.flush(5, full(3, 2)).unwrap();
        assert_eq!(s.flushes, 1);
        assert_eq!(s.flush(5, full(3, 3)), Err(Refusal::InvalidParameter));
        assert_eq!(s.flush(6, full(1, 1)), Err(Refusal::InvalidResource));
        s.render(&mut f);
        assert_eq!((f.width, f.height), (2, 2));
        assert_eq!(f.pixels, vec![0x010101, 0x020202, 0x040404, 0x050505]);

        s.unref(5).unwrap();
        assert_eq!(s.scanout, None);
        s.render(&mut f);
        assert_eq!((f.width, f.height), (640, 480));
        // Resource 0 turns the scanout off.
        s.create_2d(5, p::FORMAT_B8G8R8X8, 3, 2).unwrap();
        s.set_scanout(0, 5, full(3, 2)).unwrap();
        s.set_scanout(0, 0, Rect::default()).unwrap();
        assert_eq!(s.scanout, None);
    }
}
