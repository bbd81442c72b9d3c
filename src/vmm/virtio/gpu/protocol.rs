//! The virtio-gpu wire format (virtio 1.2 §5.7.6): the numbers come from
//! `virtio_bindings::virtio_gpu`; requests are read field by field from
//! the bytes the driver wrote, little-endian, so a short or odd request
//! can never be over-read.

use virtio_bindings::virtio_gpu as b;

/// Feature: GET_EDID is answered.
pub const F_EDID: u32 = b::VIRTIO_GPU_F_EDID;
/// Header flag: the driver wants the fence (and context) echoed.
pub const FLAG_FENCE: u32 = b::VIRTIO_GPU_FLAG_FENCE;
/// Header flag: `ring_idx` is meaningful (echoed with the fence).
pub const FLAG_INFO_RING_IDX: u32 = b::VIRTIO_GPU_FLAG_INFO_RING_IDX;
/// Configuration event: the display information changed.
pub const EVENT_DISPLAY: u32 = b::VIRTIO_GPU_EVENT_DISPLAY;
/// Scanouts a display-information response describes.
pub const MAX_SCANOUTS: usize = b::VIRTIO_GPU_MAX_SCANOUTS as usize;

pub const CMD_GET_DISPLAY_INFO: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_DISPLAY_INFO;
pub const CMD_RESOURCE_CREATE_2D: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_CREATE_2D;
pub const CMD_RESOURCE_UNREF: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_UNREF;
pub const CMD_SET_SCANOUT: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_SET_SCANOUT;
pub const CMD_RESOURCE_FLUSH: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_FLUSH;
pub const CMD_TRANSFER_TO_HOST_2D: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D;
pub const CMD_RESOURCE_ATTACH_BACKING: u32 =
    b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING;
pub const CMD_RESOURCE_DETACH_BACKING: u32 =
    b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING;
pub const CMD_GET_EDID: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_GET_EDID;
pub const CMD_UPDATE_CURSOR: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_UPDATE_CURSOR;
pub const CMD_MOVE_CURSOR: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_CMD_MOVE_CURSOR;

pub const RESP_OK_NODATA: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_NODATA;
pub const RESP_OK_DISPLAY_INFO: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_DISPLAY_INFO;
pub const RESP_OK_EDID: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_OK_EDID;
pub const RESP_ERR_UNSPEC: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_UNSPEC;
pub const RESP_ERR_OUT_OF_MEMORY: u32 = b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY;
pub const RESP_ERR_INVALID_SCANOUT_ID: u32 =
    b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID;
pub const RESP_ERR_INVALID_RESOURCE_ID: u32 =
    b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID;
pub const RESP_ERR_INVALID_PARAMETER: u32 =
    b::virtio_gpu_ctrl_type_VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER;

pub const FORMAT_B8G8R8A8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM;
pub const FORMAT_B8G8R8X8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
pub const FORMAT_A8R8G8B8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_A8R8G8B8_UNORM;
pub const FORMAT_X8R8G8B8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_X8R8G8B8_UNORM;
pub const FORMAT_R8G8B8A8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8A8_UNORM;
pub const FORMAT_X8B8G8R8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_X8B8G8R8_UNORM;
pub const FORMAT_A8B8G8R8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_A8B8G8R8_UNORM;
pub const FORMAT_R8G8B8X8: u32 = b::virtio_gpu_formats_VIRTIO_GPU_FORMAT_R8G8B8X8_UNORM;

/// Size of `virtio_gpu_ctrl_hdr`.
pub const HDR_LEN: usize = 24;
/// Size of one `virtio_gpu_mem_entry` (address, length, padding).
pub const MEM_ENTRY_LEN: usize = 16;

/// Little-endian fields of a request, read at byte offsets; a field past
/// the end reads as `None`.
#[derive(Clone, Copy)]
pub struct Fields<'a>(pub &'a [u8]);

impl Fields<'_> {
    pub fn u32(&self, off: usize) -> Option<u32> {
        let b = self.0.get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }

    pub fn u64(&self, off: usize) -> Option<u64> {
        let b = self.0.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// A `virtio_gpu_rect` at `off`.
    pub fn rect(&self, off: usize) -> Option<Rect> {
        Some(Rect {
            x: self.u32(off)?,
            y: self.u32(off + 4)?,
            width: self.u32(off + 8)?,
            height: self.u32(off + 12)?,
        })
    }
}

/// `virtio_gpu_ctrl_hdr`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub kind: u32,
    pub flags: u32,
    pub fence_id: u64,
    pub ctx_id: u32,
    pub ring_idx: u8,
}

impl Header {
    pub fn parse(req: &[u8]) -> Option<Header> {
        let f = Fields(req);
        Some(Header {
            kind: f.u32(0)?,
            flags: f.u32(4)?,
            fence_id: f.u64(8)?,
            ctx_id: f.u32(16)?,
            ring_idx: *req.get(20)?,
        })
    }

    /// The response header to a request with this header: its fence,
    /// context and ring index echoed when the request asked for a fence.
    pub fn response(&self, kind: u32) -> [u8; HDR_LEN] {
        let mut out = [0u8; HDR_LEN];
        out[0..4].copy_from_slice(&kind.to_le_bytes());
        if self.flags & FLAG_FENCE != 0 {
            let flags = self.flags & (FLAG_FENCE | FLAG_INFO_RING_IDX);
            out[4..8].copy_from_slice(&flags.to_le_bytes());
            out[8..16].copy_from_slice(&self.fence_id.to_le_bytes());
            out[16..20].copy_from_slice(&self.ctx_id.to_le_bytes());
            if flags & FLAG_INFO_RING_IDX != 0 {
                out[20] = self.ring_idx;
            }
        }
        out
    }
}

/// `virtio_gpu_rect`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    /// Whether the rectangle lies inside a `width` x `height` picture
    /// (computed without overflow).
    pub fn fits(&self, width: u32, height: u32) -> bool {
        u64::from(self.x) + u64::from(self.width) <= u64::from(width)
            && u64::from(self.y) + u64::from(self.height) <= u64::from(height)
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    pub fn to_le_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, v) in [self.x, self.y, self.width, self.height].iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_past_the_end_are_none() {
        let f = Fields(&[1, 0, 0, 0, 2, 0, 0]);
        assert_eq!(f.u32(0), Some(1));
        assert_eq!(f.u32(4), None);
        assert_eq!(f.u64(0), None);
        assert_eq!(f.u32(usize::MAX - 1), None);
        assert!(f.rect(0).is_none());
    }

    #[test]
    fn the_fence_is_echoed_only_when_asked_for() {
        let h = Header {
            kind: CMD_RESOURCE_FLUSH,
            flags: FLAG_FENCE | FLAG_INFO_RING_IDX,
            fence_id: 0x1122_3344_5566_7788,
            ctx_id: 9,
            ring_idx: 3,
        };
        let r = h.response(RESP_OK_NODATA);
        let parsed = Header::parse(&r).unwrap();
        assert_eq!(parsed.kind, RESP_OK_NODATA);
        assert_eq!(parsed.flags, FLAG_FENCE | FLAG_INFO_RING_IDX);
        assert_eq!(parsed.fence_id, h.fence_id);
        assert_eq!(parsed.ctx_id, 9);
        assert_eq!(parsed.ring_idx, 3);
        let plain = Header { flags: 0, ..h }.response(RESP_ERR_UNSPEC);
        assert_eq!(
            Header::parse(&plain).unwrap(),
            Header {
                kind: RESP_ERR_UNSPEC,
                ..Header::default()
            }
        );
    }

    #[test]
    fn rectangles_that_wrap_do_not_fit() {
        let r = Rect {
            x: u32::MAX,
            y: 0,
            width: 2,
            height: 1,
        };
        assert!(!r.fits(100, 100));
        let ok = Rect {
            x: 10,
            y: 20,
            width: 90,
            height: 80,
        };
        assert!(ok.fits(100, 100));
        assert!(!ok.fits(99, 100));
    }
}
