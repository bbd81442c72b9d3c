//! `struct ifreq` and the ioctl that carries it: shared by the VMM (opening
//! and steering tap queues) and the daemon (creating taps, setting MTU,
//! flags and bridge ports).

use std::io;
use std::os::fd::RawFd;

/// `ifr_flags` bits as its 16-bit field holds them (libc has them as ints).
pub const IFF_UP: u16 = libc::IFF_UP as u16;
pub const IFF_TAP: u16 = libc::IFF_TAP as u16;
pub const IFF_NO_PI: u16 = libc::IFF_NO_PI as u16;
pub const IFF_VNET_HDR: u16 = libc::IFF_VNET_HDR as u16;
pub const IFF_TUN_EXCL: u16 = libc::IFF_TUN_EXCL as u16;
pub const IFF_MULTI_QUEUE: u16 = libc::IFF_MULTI_QUEUE as u16;
pub const IFF_ATTACH_QUEUE: u16 = libc::IFF_ATTACH_QUEUE as u16;
pub const IFF_DETACH_QUEUE: u16 = libc::IFF_DETACH_QUEUE as u16;

/// Longest interface name (IFNAMSIZ - 1).
pub const MAX_NAME: usize = 15;

/// An interface name and the request's 24-byte union; each request reads
/// or writes one member of the union, at its start.
#[repr(C)]
pub struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    /// A request for `name`, cut to [`MAX_NAME`] bytes (empty: no name,
    /// as TUNGETIFF and TUNSETQUEUE take).
    pub fn new(name: &str) -> IfReq {
        let mut r = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        let n = name.len().min(MAX_NAME);
        r.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        r
    }

    /// `ifr_flags`, a C short (read as its bit pattern).
    pub fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.data[0], self.data[1]])
    }

    pub fn set_flags(&mut self, v: u16) {
        self.data[..2].copy_from_slice(&v.to_ne_bytes());
    }

    /// `ifr_mtu` / `ifr_ifindex`, a C int.
    pub fn int(&self) -> i32 {
        i32::from_ne_bytes([self.data[0], self.data[1], self.data[2], self.data[3]])
    }

    pub fn set_int(&mut self, v: i32) {
        self.data[..4].copy_from_slice(&v.to_ne_bytes());
    }

    /// `ifr_hwaddr`, a `struct sockaddr`: its family, then the address.
    pub fn set_hwaddr(&mut self, family: u16, addr: &[u8; 6]) {
        self.data[..2].copy_from_slice(&family.to_ne_bytes());
        self.data[2..8].copy_from_slice(addr);
    }

    /// `ifr_data`, a pointer (as SIOCETHTOOL takes its command).
    pub fn set_ptr(&mut self, p: *mut libc::c_void) {
        let n = std::mem::size_of::<usize>();
        self.data[..n].copy_from_slice(&(p as usize).to_ne_bytes());
    }

    /// Issues `req`, which must be one of the requests taking a
    /// `struct ifreq *`, on `fd`.
    pub fn ioctl(&mut self, fd: RawFd, req: libc::c_ulong) -> io::Result<()> {
        // SAFETY: `req` takes a `struct ifreq *`, and `self` is a live
        // ifreq of the kernel's size (40 bytes) for the whole call.
        let rc = unsafe { libc::ioctl(fd, req, self as *mut IfReq) };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_kernels() {
        assert_eq!(
            std::mem::size_of::<IfReq>(),
            std::mem::size_of::<libc::ifreq>()
        );
        let mut r = IfReq::new("a-name-longer-than-fifteen");
        assert_eq!(&r.name[..15], b"a-name-longer-t");
        assert_eq!(r.name[15], 0);
        r.set_flags(0x1002);
        assert_eq!(r.flags(), 0x1002);
        r.set_int(-7);
        assert_eq!(r.int(), -7);
    }
}
