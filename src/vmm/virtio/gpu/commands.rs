//! One control-queue or cursor-queue request, as the bytes the driver
//! wrote, turned into the bytes of its response.

use super::edid;
use super::protocol::{self as p, Fields, HDR_LEN, Header, MEM_ENTRY_LEN};
use super::resources::{GpuState, MAX_BACKING_ENTRIES, Refusal};
use crate::vmm::memory::GuestMemory;

/// Most bytes read from one request: ATTACH_BACKING with the most entries
/// allowed.
pub const MAX_REQUEST: usize = HDR_LEN + 8 + MAX_BACKING_ENTRIES * MEM_ENTRY_LEN;

/// What the device negotiated that changes the answers.
#[derive(Clone, Copy, Debug, Default)]
pub struct Negotiated {
    pub edid: bool,
}

/// Runs one control-queue request and returns the response.
pub fn control(state: &mut GpuState, mem: &GuestMemory, req: &[u8], neg: Negotiated) -> Vec<u8> {
    let Some(hdr) = Header::parse(req) else {
        return Header::default().response(p::RESP_ERR_UNSPEC).to_vec();
    };
    let f = Fields(req);
    let nodata = |r: Result<(), Refusal>| {
        let kind = match r {
            Ok(()) => p::RESP_OK_NODATA,
            Err(e) => e.response_type(),
        };
        hdr.response(kind).to_vec()
    };
    let short = || hdr.response(p::RESP_ERR_UNSPEC).to_vec();
    match hdr.kind {
        p::CMD_GET_DISPLAY_INFO => display_info(&hdr, state.preferred),
        p::CMD_GET_EDID => {
            let Some(scanout) = f.u32(HDR_LEN) else {
                return short();
            };
            if !neg.edid {
                return short();
            }
            if scanout != 0 {
                return hdr.response(p::RESP_ERR_INVALID_PARAMETER).to_vec();
            }
            edid_response(&hdr, state.preferred)
        }
        p::CMD_RESOURCE_CREATE_2D => {
            let (Some(id), Some(format), Some(w), Some(h)) = (
                f.u32(HDR_LEN),
                f.u32(HDR_LEN + 4),
                f.u32(HDR_LEN + 8),
                f.u32(HDR_LEN + 12),
            ) else {
                return short();
            };
            nodata(state.create_2d(id, format, w, h))
        }
        p::CMD_RESOURCE_UNREF => match f.u32(HDR_LEN) {
            Some(id) => nodata(state.unref(id)),
            None => short(),
        },
        p::CMD_SET_SCANOUT => {
            let (Some(r), Some(scanout), Some(id)) =
                (f.rect(HDR_LEN), f.u32(HDR_LEN + 16), f.u32(HDR_LEN + 20))
            else {
                return short();
            };
            nodata(state.set_scanout(scanout, id, r))
        }
        p::CMD_RESOURCE_FLUSH => {
            let (Some(r), Some(id)) = (f.rect(HDR_LEN), f.u32(HDR_LEN + 16)) else {
                return short();
            };
            nodata(state.flush(id, r))
        }
        p::CMD_TRANSFER_TO_HOST_2D => {
            let (Some(r), Some(offset), Some(id)) =
                (f.rect(HDR_LEN), f.u64(HDR_LEN + 16), f.u32(HDR_LEN + 24))
            else {
                return short();
            };
            nodata(state.transfer_to_host(mem, id, r, offset))
        }
        p::CMD_RESOURCE_ATTACH_BACKING => {
            let (Some(id), Some(n)) = (f.u32(HDR_LEN), f.u32(HDR_LEN + 4)) else {
                return short();
            };
            match mem_entries(f, HDR_LEN + 8, n) {
                Some(entries) => nodata(state.attach_backing(mem, id, &entries)),
                None => short(),
            }
        }
        p::CMD_RESOURCE_DETACH_BACKING => match f.u32(HDR_LEN) {
            Some(id) => nodata(state.detach_backing(id)),
            None => short(),
        },
        _ => short(),
    }
}

/// `n` memory entries from `at`; `None` if there are too many or the
/// request is too short for them.
fn mem_entries(f: Fields<'_>, at: usize, n: u32) -> Option<Vec<(u64, u32)>> {
    let n = usize::try_from(n).ok()?;
    if n > MAX_BACKING_ENTRIES || f.0.len() < at + n * MEM_ENTRY_LEN {
        return None;
    }
    (0..n)
        .map(|i| {
            let e = at + i * MEM_ENTRY_LEN;
            Some((f.u64(e)?, f.u32(e + 8)?))
        })
        .collect()
}

fn display_info(hdr: &Header, (w, h): (u32, u32)) -> Vec<u8> {
    let mut out = hdr.response(p::RESP_OK_DISPLAY_INFO).to_vec();
    for i in 0..p::MAX_SCANOUTS {
        let mut one = [0u8; 24];
        if i == 0 {
            let r = p::Rect {
                x: 0,
                y: 0,
                width: w,
                height: h,
            };
            one[0..16].copy_from_slice(&r.to_le_bytes());
            one[16..20].copy_from_slice(&1u32.to_le_bytes());
        }
        out.extend_from_slice(&one);
    }
    out
}

fn edid_response(hdr: &Header, (w, h): (u32, u32)) -> Vec<u8> {
    let mut out = hdr.response(p::RESP_OK_EDID).to_vec();
    out.extend_from_slice(&(edid::EDID_LEN as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    let mut block = [0u8; 1024];
    block[..edid::EDID_LEN].copy_from_slice(&edid::edid(w, h));
    out.extend_from_slice(&block);
    out
}

/// Runs one cursor-queue request: the position and image are recorded
/// (the cursor is not drawn into the frame). Nothing is returned: cursor
/// requests have no response buffer.
pub fn cursor(state: &mut GpuState, req: &[u8]) {
    let Some(hdr) = Header::parse(req) else {
        return;
    };
    let f = Fields(req);
    let (Some(x), Some(y)) = (f.u32(HDR_LEN + 4), f.u32(HDR_LEN + 8)) else {
        return;
    };
    match hdr.kind {
        p::CMD_MOVE_CURSOR => state.cursor = (x, y, state.cursor.2),
        p::CMD_UPDATE_CURSOR => {
            let id = f.u32(HDR_LEN + 16).unwrap_or(0);
            let id = if state.resource(id).is_some() { id } else { 0 };
            state.cursor = (x, y, id);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::display::Frame;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    const NEG: Negotiated = Negotiated { edid: true };

    fn mem() -> GuestMemory {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 22)]).unwrap()
    }

    fn state() -> GpuState {
        GpuState::new(64 << 20, (1024, 768))
    }

    /// A request: header of `kind` (with a fence when `fence` is set)
    /// followed by `words`.
    fn req(kind: u32, fence: Option<u64>, words: &[u32]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&(if fence.is_some() { p::FLAG_FENCE } else { 0 }).to_le_bytes());
        v.extend_from_slice(&fence.unwrap_or(0).to_le_bytes());
        v.extend_from_slice(&[0u8; 8]);
        for w in words {
            v.extend_from_slice(&w.to_le_bytes());
        }
        v
    }

    fn kind(resp: &[u8]) -> u32 {
        Header::parse(resp).unwrap().kind
    }

    fn run(s: &mut GpuState, m: &GuestMemory, r: &[u8]) -> u32 {
        kind(&control(s, m, r, NEG))
    }

    #[test]
    fn display_info_reports_one_enabled_scanout() {
        let (m, mut s) = (mem(), state());
        let r = control(&mut s, &m, &req(p::CMD_GET_DISPLAY_INFO, None, &[]), NEG);
        assert_eq!(r.len(), HDR_LEN + 24 * 16);
        assert_eq!(kind(&r), p::RESP_OK_DISPLAY_INFO);
        let f = Fields(&r);
        assert_eq!(
            f.rect(HDR_LEN),
            Some(p::Rect {
                x: 0,
                y: 0,
                width: 1024,
                height: 768
            })
        );
        assert_eq!(f.u32(HDR_LEN + 16), Some(1));
        assert_eq!(f.u32(HDR_LEN + 24 + 16), Some(0), "scanout 1 disabled");
    }

    #[test]
    fn edid_is_answered_when_negotiated() {
        let (m, mut s) = (mem(), state());
        let get = req(p::CMD_GET_EDID, Some(5), &[0, 0]);
        let r = control(&mut s, &m, &get, NEG);
        assert_eq!(r.len(), HDR_LEN + 8 + 1024);
        let h = Header::parse(&r).unwrap();
        assert_eq!(
            (h.kind, h.flags, h.fence_id),
            (p::RESP_OK_EDID, p::FLAG_FENCE, 5)
        );
        assert_eq!(Fields(&r).u32(HDR_LEN), Some(128));
        assert_eq!(&r[HDR_LEN + 8..HDR_LEN + 16], &edid::edid(1024, 768)[..8]);
        assert_eq!(
            kind(&control(&mut s, &m, &get, Negotiated { edid: false })),
            p::RESP_ERR_UNSPEC
        );
        assert_eq!(
            run(&mut s, &m, &req(p::CMD_GET_EDID, None, &[1, 0])),
            p::RESP_ERR_INVALID_PARAMETER
        );
    }

    #[test]
    fn a_frame_goes_from_guest_memory_to_the_scanout() {
        let (m, mut s) = (mem(), state());
        let (w, h) = (64u32, 16u32);
        let ok = p::RESP_OK_NODATA;
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(
                    p::CMD_RESOURCE_CREATE_2D,
                    None,
                    &[1, p::FORMAT_B8G8R8X8, w, h]
                )
            ),
            ok
        );
        // The image as 0x00RRGGBB words in 4 KiB pages 8 KiB apart from
        // 0x10000, listed in order.
        let pixels: Vec<u32> = (0..w * h).map(|i| (i * 0x0001_0203) & 0xff_ffff).collect();
        let bytes: Vec<u8> = pixels.iter().flat_map(|p| p.to_le_bytes()).collect();
        let pages = bytes.len() / 4096;
        let mut attach = req(p::CMD_RESOURCE_ATTACH_BACKING, None, &[1, pages as u32]);
        for (i, page) in bytes.chunks(4096).enumerate() {
            let at = 0x10000u64 + 0x2000 * i as u64;
            m.write_slice(page, GuestAddress(at)).unwrap();
            attach.extend_from_slice(&at.to_le_bytes());
            attach.extend_from_slice(&4096u32.to_le_bytes());
            attach.extend_from_slice(&0u32.to_le_bytes());
        }
        assert_eq!(run(&mut s, &m, &attach), ok);
        let t = req(
            p::CMD_TRANSFER_TO_HOST_2D,
            Some(7),
            &[0, 0, w, h, 0, 0, 1, 0],
        );
        let resp = control(&mut s, &m, &t, NEG);
        assert_eq!(Header::parse(&resp).unwrap().fence_id, 7);
        assert_eq!(kind(&resp), ok);
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_SET_SCANOUT, None, &[0, 0, w, h, 0, 1])
            ),
            ok
        );
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_RESOURCE_FLUSH, None, &[0, 0, w, h, 1, 0])
            ),
            ok
        );
        let mut f = Frame::default();
        s.render(&mut f);
        assert_eq!((f.width, f.height), (w, h));
        assert_eq!(f.pixels, pixels);

        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_RESOURCE_DETACH_BACKING, None, &[1, 0])
            ),
            ok
        );
        assert_eq!(
            run(&mut s, &m, &req(p::CMD_RESOURCE_UNREF, None, &[1, 0])),
            ok
        );
        assert_eq!(
            run(&mut s, &m, &req(p::CMD_RESOURCE_UNREF, None, &[1, 0])),
            p::RESP_ERR_INVALID_RESOURCE_ID
        );
        assert_eq!(s.used, 0);
    }

    #[test]
    fn short_unknown_and_oversized_requests_are_refused() {
        let (m, mut s) = (mem(), state());
        // Too short for a header.
        assert_eq!(
            kind(&control(&mut s, &m, &[1, 2, 3], NEG)),
            p::RESP_ERR_UNSPEC
        );
        // Header only, for commands that need a body.
        for k in [
            p::CMD_RESOURCE_CREATE_2D,
            p::CMD_RESOURCE_UNREF,
            p::CMD_SET_SCANOUT,
            p::CMD_RESOURCE_FLUSH,
            p::CMD_TRANSFER_TO_HOST_2D,
            p::CMD_RESOURCE_ATTACH_BACKING,
            p::CMD_RESOURCE_DETACH_BACKING,
            p::CMD_GET_EDID,
        ] {
            assert_eq!(
                run(&mut s, &m, &req(k, None, &[])),
                p::RESP_ERR_UNSPEC,
                "{k:#x}"
            );
        }
        // 3D commands and unknown types.
        assert_eq!(
            run(&mut s, &m, &req(0x200, None, &[0; 8])),
            p::RESP_ERR_UNSPEC
        );
        assert_eq!(
            run(&mut s, &m, &req(0xdead, None, &[0; 8])),
            p::RESP_ERR_UNSPEC
        );
        // Attach with more entries than the request holds, or than allowed.
        run(
            &mut s,
            &m,
            &req(
                p::CMD_RESOURCE_CREATE_2D,
                None,
                &[1, p::FORMAT_B8G8R8X8, 4, 4],
            ),
        );
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_RESOURCE_ATTACH_BACKING, None, &[1, 2, 0, 0, 64, 0])
            ),
            p::RESP_ERR_UNSPEC
        );
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_RESOURCE_ATTACH_BACKING, None, &[1, u32::MAX])
            ),
            p::RESP_ERR_UNSPEC
        );
        // Errors from the resources, with the fence still echoed.
        let r = control(
            &mut s,
            &m,
            &req(
                p::CMD_RESOURCE_CREATE_2D,
                Some(9),
                &[2, p::FORMAT_B8G8R8X8, 1 << 15, 1 << 15],
            ),
            NEG,
        );
        let h = Header::parse(&r).unwrap();
        assert_eq!((h.kind, h.fence_id), (p::RESP_ERR_OUT_OF_MEMORY, 9));
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_SET_SCANOUT, None, &[0, 0, 4, 4, 3, 1])
            ),
            p::RESP_ERR_INVALID_SCANOUT_ID
        );
        // A transfer needs backing first, then a rectangle inside the
        // resource.
        let wide = req(p::CMD_TRANSFER_TO_HOST_2D, None, &[0, 0, 5, 4, 0, 0, 1, 0]);
        assert_eq!(run(&mut s, &m, &wide), p::RESP_ERR_UNSPEC);
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(
                    p::CMD_RESOURCE_ATTACH_BACKING,
                    None,
                    &[1, 1, 0x1000, 0, 64, 0]
                )
            ),
            p::RESP_OK_NODATA
        );
        assert_eq!(
            run(
                &mut s,
                &m,
                &req(p::CMD_TRANSFER_TO_HOST_2D, None, &[0, 0, 5, 4, 0, 0, 1, 0])
            ),
            p::RESP_ERR_INVALID_PARAMETER
        );
    }

    #[test]
    fn cursor_requests_are_recorded() {
        let mut s = state();
        cursor(&mut s, &req(p::CMD_MOVE_CURSOR, None, &[0, 10, 20, 0]));
        assert_eq!(s.cursor, (10, 20, 0));
        s.create_2d(3, p::FORMAT_B8G8R8A8, 64, 64).unwrap();
        cursor(
            &mut s,
            &req(p::CMD_UPDATE_CURSOR, None, &[0, 1, 2, 0, 3, 0, 0, 0]),
        );
        assert_eq!(s.cursor, (1, 2, 3));
        cursor(
            &mut s,
            &req(p::CMD_UPDATE_CURSOR, None, &[0, 1, 2, 0, 4, 0, 0, 0]),
        );
        assert_eq!(s.cursor, (1, 2, 0), "an unknown resource hides the cursor");
        cursor(&mut s, &[0; 5]);
        s.unref(3).unwrap();
    }
}
