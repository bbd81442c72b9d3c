//! The data structures of the EHCI schedules in guest memory (EHCI 1.0
//! chapter 3): link pointers, queue element transfer descriptors (qTD)
//! and queue heads (QH), read and written a dword at a time. Only 32-bit
//! addressing is offered, so the 64-bit extensions are never read.

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::memory::GuestMemory;

/// Guest memory the controller could not reach (a master abort on real
/// hardware: the controller stops with Host System Error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault(pub u32);

pub fn read_u32(mem: &GuestMemory, addr: u32) -> Result<u32, Fault> {
    mem.read_obj::<u32>(GuestAddress(u64::from(addr)))
        .map(u32::from_le)
        .map_err(|_| Fault(addr))
}

pub fn write_u32(mem: &GuestMemory, addr: u32, v: u32) -> Result<(), Fault> {
    mem.write_obj(v.to_le(), GuestAddress(u64::from(addr)))
        .map_err(|_| Fault(addr))
}

/// Link pointers: the T bit ends a list; a typed link names what it
/// points to.
pub const LINK_TERMINATE: u32 = 1;
pub const LINK_ADDRESS: u32 = !0x1f;

/// What a typed link (frame list entry, horizontal link) points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    End,
    Itd(u32),
    Qh(u32),
    Sitd(u32),
    Fstn(u32),
}

impl Link {
    pub fn decode(v: u32) -> Link {
        if v & LINK_TERMINATE != 0 {
            return Link::End;
        }
        let a = v & LINK_ADDRESS;
        match (v >> 1) & 3 {
            0 => Link::Itd(a),
            1 => Link::Qh(a),
            2 => Link::Sitd(a),
            _ => Link::Fstn(a),
        }
    }
}

/// The qTD token (EHCI 1.0 section 3.5.3), in qTDs and QH overlays.
pub mod token {
    pub const PING: u32 = 1 << 0;
    pub const XACTERR: u32 = 1 << 3;
    pub const DBERR: u32 = 1 << 5;
    pub const HALTED: u32 = 1 << 6;
    pub const ACTIVE: u32 = 1 << 7;
    pub const PID_SHIFT: u32 = 8;
    pub const CERR_MASK: u32 = 3 << 10;
    pub const CPAGE_SHIFT: u32 = 12;
    pub const CPAGE_MASK: u32 = 7 << CPAGE_SHIFT;
    pub const IOC: u32 = 1 << 15;
    pub const BYTES_SHIFT: u32 = 16;
    pub const BYTES_MASK: u32 = 0x7fff << BYTES_SHIFT;
    pub const TOGGLE: u32 = 1 << 31;
    /// The most a qTD can move: five 4 KiB pages.
    pub const MAX_BYTES: u32 = 5 * 4096;
}

/// QH endpoint characteristics and capabilities (section 3.6.2).
pub mod endpoint {
    pub const ADDRESS_MASK: u32 = 0x7f;
    pub const NUMBER_SHIFT: u32 = 8;
    pub const SPEED_SHIFT: u32 = 12;
    pub const SPEED_HIGH: u32 = 2;
    /// Data toggle from the qTD rather than the QH.
    pub const DTC: u32 = 1 << 14;
    pub const MAX_PACKET_SHIFT: u32 = 16;
    pub const MAX_PACKET_MASK: u32 = 0x7ff;
    /// Capabilities: the interrupt schedule mask and the packets per
    /// microframe.
    pub const SMASK: u32 = 0xff;
    pub const MULT_SHIFT: u32 = 30;
}

/// A qTD: next and alternate next pointers, token, five buffer pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Qtd {
    pub next: u32,
    pub alt_next: u32,
    pub token: u32,
    pub buffers: [u32; 5],
}

impl Qtd {
    pub const DWORDS: u32 = 8;

    pub fn read(mem: &GuestMemory, addr: u32) -> Result<Qtd, Fault> {
        let mut d = [0u32; Self::DWORDS as usize];
        for (i, w) in d.iter_mut().enumerate() {
            *w = read_u32(mem, addr.wrapping_add(4 * i as u32))?;
        }
        Ok(Qtd {
            next: d[0],
            alt_next: d[1],
            token: d[2],
            buffers: [d[3], d[4], d[5], d[6], d[7]],
        })
    }

    fn dword(&self, i: usize) -> u32 {
        match i {
            0 => self.next,
            1 => self.alt_next,
            2 => self.token,
            _ => self.buffers.get(i - 3).copied().unwrap_or(0),
        }
    }

    pub fn pid(&self) -> u32 {
        (self.token >> token::PID_SHIFT) & 3
    }

    pub fn bytes(&self) -> u32 {
        (self.token & token::BYTES_MASK) >> token::BYTES_SHIFT
    }

    pub fn set_bytes(&mut self, n: u32) {
        self.token =
            (self.token & !token::BYTES_MASK) | (n << token::BYTES_SHIFT & token::BYTES_MASK);
    }

    /// Where the remaining data lies: (address, length) pieces, the
    /// current page and offset on, page by page. None if the transfer
    /// runs past the fifth page.
    pub fn segments(&self) -> Option<Vec<(u32, u32)>> {
        let mut page = ((self.token & token::CPAGE_MASK) >> token::CPAGE_SHIFT) as usize;
        let mut offset = self.buffers[0] & 0xfff;
        let mut left = self.bytes();
        let mut out = Vec::new();
        while left > 0 {
            let base = self.buffers.get(page)? & !0xfff;
            let n = left.min(4096 - offset);
            out.push((base.checked_add(offset)?, n));
            left -= n;
            offset = 0;
            page += 1;
        }
        Some(out)
    }

    /// Moves the current page and offset past `n` bytes.
    pub fn advance(&mut self, n: u32) {
        let page = (self.token & token::CPAGE_MASK) >> token::CPAGE_SHIFT;
        let at = (self.buffers[0] & 0xfff) + n;
        let page = (page + (at >> 12)).min(7);
        self.token = (self.token & !token::CPAGE_MASK) | page << token::CPAGE_SHIFT;
        self.buffers[0] = (self.buffers[0] & !0xfff) | (at & 0xfff);
    }
}

/// A queue head: horizontal link, endpoint description, current qTD and
/// the overlay (the qTD being worked on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Qh {
    pub next: u32,
    pub characteristics: u32,
    pub capabilities: u32,
    pub current: u32,
    pub overlay: Qtd,
}

impl Qh {
    pub fn read(mem: &GuestMemory, addr: u32) -> Result<Qh, Fault> {
        let head = |i: u32| read_u32(mem, addr.wrapping_add(4 * i));
        Ok(Qh {
            next: head(0)?,
            characteristics: head(1)?,
            capabilities: head(2)?,
            current: head(3)?,
            overlay: Qtd::read(mem, addr.wrapping_add(16))?,
        })
    }

    /// Writes back what the controller owns: the current pointer and the
    /// overlay (the first three dwords belong to the driver).
    pub fn write_overlay(&self, mem: &GuestMemory, addr: u32) -> Result<(), Fault> {
        write_u32(mem, addr.wrapping_add(12), self.current)?;
        for i in 0..Qtd::DWORDS as usize {
            write_u32(
                mem,
                addr.wrapping_add(16 + 4 * i as u32),
                self.overlay.dword(i),
            )?;
        }
        Ok(())
    }

    pub fn device_address(&self) -> u8 {
        (self.characteristics & endpoint::ADDRESS_MASK) as u8
    }

    pub fn endpoint(&self) -> u8 {
        ((self.characteristics >> endpoint::NUMBER_SHIFT) & 0xf) as u8
    }

    pub fn high_speed(&self) -> bool {
        (self.characteristics >> endpoint::SPEED_SHIFT) & 3 == endpoint::SPEED_HIGH
    }

    pub fn max_packet(&self) -> u32 {
        (self.characteristics >> endpoint::MAX_PACKET_SHIFT) & endpoint::MAX_PACKET_MASK
    }

    pub fn smask(&self) -> u32 {
        self.capabilities & endpoint::SMASK
    }

    /// Packets per microframe for high-bandwidth endpoints (0 taken as 1).
    pub fn mult(&self) -> u32 {
        (self.capabilities >> endpoint::MULT_SHIFT).max(1)
    }

    /// The qTD after the overlay's (section 4.10.2): the alternate one
    /// after a short packet, else the next one, if they are valid.
    pub fn next_qtd(&self) -> Option<u32> {
        let valid =
            |p: u32| (p & LINK_TERMINATE == 0 && p & LINK_ADDRESS != 0).then_some(p & LINK_ADDRESS);
        if self.overlay.bytes() != 0
            && let Some(alt) = valid(self.overlay.alt_next)
        {
            return Some(alt);
        }
        valid(self.overlay.next)
    }

    /// Loads the qTD at `addr` into the overlay (section 4.10.2); the
    /// data toggle stays the QH's unless the qTD carries it (DTC), the
    /// ping state stays too.
    pub fn load(&mut self, addr: u32, qtd: &Qtd) {
        let kept = self.overlay.token & (token::TOGGLE | token::PING);
        self.current = addr;
        self.overlay = *qtd;
        self.overlay.token &= !token::PING;
        self.overlay.token |= kept & token::PING;
        if self.characteristics & endpoint::DTC == 0 {
            self.overlay.token = (self.overlay.token & !token::TOGGLE) | (kept & token::TOGGLE);
        }
        // Split transaction progress and frame tags start afresh.
        self.overlay.buffers[1] &= !0xff;
        self.overlay.buffers[2] &= !0x1f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    #[test]
    fn links_decode() {
        assert_eq!(Link::decode(1), Link::End);
        assert_eq!(Link::decode(0x1000 | 2), Link::Qh(0x1000));
        assert_eq!(Link::decode(0x1040), Link::Itd(0x1040));
        assert_eq!(Link::decode(0x1044), Link::Sitd(0x1040));
        assert_eq!(Link::decode(0x1046), Link::Fstn(0x1040));
    }

    #[test]
    fn segments_follow_pages_and_stop_after_five() {
        let mut q = Qtd {
            buffers: [0x1ff0, 0x5000, 0x9000, 0, 0],
            ..Default::default()
        };
        q.set_bytes(0x20);
        assert_eq!(q.segments(), Some(vec![(0x1ff0, 0x10), (0x5000, 0x10)]));
        q.advance(0x18);
        assert_eq!(q.segments().unwrap()[0].0, 0x5008);
        q.set_bytes(token::MAX_BYTES);
        assert_eq!(q.segments(), None, "runs past the last page");
    }

    #[test]
    fn overlay_keeps_the_qh_toggle_unless_dtc() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x2000)]).unwrap();
        let mut qh = Qh::default();
        qh.overlay.token = token::TOGGLE;
        let qtd = Qtd {
            token: token::ACTIVE,
            ..Default::default()
        };
        qh.load(0x100, &qtd);
        assert_eq!(qh.overlay.token, token::ACTIVE | token::TOGGLE);
        qh.characteristics |= endpoint::DTC;
        qh.load(0x100, &qtd);
        assert_eq!(qh.overlay.token, token::ACTIVE);
        qh.write_overlay(&mem, 0x40).unwrap();
        let back = Qh::read(&mem, 0x40).unwrap();
        assert_eq!((back.current, back.overlay.token), (0x100, token::ACTIVE));
        assert_eq!(Qh::read(&mem, 0x1ff0), Err(Fault(0x2000)));
    }
}
