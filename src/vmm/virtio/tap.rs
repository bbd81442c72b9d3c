//! Tap devices for virtio-net: opening by name or adopting an inherited fd.
//! A multi-queue tap (`IFF_MULTI_QUEUE`) has one fd per queue pair;
//! queues the guest does not use are detached (`TUNSETQUEUE`) so that the
//! kernel steers no frames to them.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use libc::{TUNGETIFF, TUNSETIFF, TUNSETOFFLOAD, TUNSETQUEUE, TUNSETVNETHDRSZ};

use crate::vmm::ifreq::{
    IFF_ATTACH_QUEUE, IFF_DETACH_QUEUE, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IfReq,
};

/// TUNSETOFFLOAD bits.
pub use libc::{TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6};

/// Length of the virtio-net header (VERSION_1, with num_buffers).
pub const VNET_HDR_LEN: usize = 12;

/// An open tap.
pub struct Tap {
    pub file: File,
    /// Whether frames carry a virtio-net header on the tap side.
    pub vnet_hdr: bool,
}

fn ioctl_ptr<T>(f: &File, req: libc::c_ulong, arg: *mut T) -> io::Result<()> {
    // SAFETY: callers pass a request whose argument is `*mut T` of the
    // right size; `arg` points to a live T.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), req, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setup(file: File, vnet_hdr: bool) -> io::Result<Tap> {
    if vnet_hdr {
        let mut sz: libc::c_int = VNET_HDR_LEN as libc::c_int;
        ioctl_ptr(&file, TUNSETVNETHDRSZ, &mut sz)?;
        // No offloads: the guest gets and sends plain frames.
        // SAFETY: TUNSETOFFLOAD takes an integer argument, not a pointer.
        unsafe { libc::ioctl(file.as_raw_fd(), TUNSETOFFLOAD, 0 as libc::c_ulong) };
    }
    // SAFETY: fcntl with valid flags on an fd we own.
    unsafe {
        let fl = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
        if fl < 0 || libc::fcntl(file.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Tap { file, vnet_hdr })
}

impl Tap {
    /// Tells the tap which offloads the guest can take (TUN_F_* bits):
    /// frames it hands us may then carry partial checksums or be GSO.
    pub fn set_offload(&self, flags: u32) -> io::Result<()> {
        // SAFETY: TUNSETOFFLOAD takes an integer argument, not a pointer.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                TUNSETOFFLOAD,
                libc::c_ulong::from(flags),
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Attaches this queue of a multi-queue tap (frames are steered to
    /// it) or detaches it. Doing what is already done is not an error.
    pub fn set_queue_attached(&self, attached: bool) -> io::Result<()> {
        let mut req = IfReq::new("");
        req.set_flags(if attached {
            IFF_ATTACH_QUEUE
        } else {
            IFF_DETACH_QUEUE
        });
        match req.ioctl(self.file.as_raw_fd(), TUNSETQUEUE) {
            // EINVAL: already in that state (or not a multi-queue tap).
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            r => r,
        }
    }

    /// Writes one frame gathered from guest memory.
    pub fn write_vectored(&self, bufs: &[super::iov::Slice<'_>]) -> io::Result<usize> {
        let iovs: Vec<libc::iovec> = bufs
            .iter()
            .map(|s| libc::iovec {
                iov_base: s.ptr_guard().as_ptr().cast_mut().cast(),
                iov_len: s.len(),
            })
            .collect();
        let n = libc::c_int::try_from(iovs.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
        // SAFETY: the iovecs describe mapped guest memory kept alive by
        // `bufs`; writev only reads from them.
        let r = unsafe { libc::writev(self.file.as_raw_fd(), iovs.as_ptr(), n) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Opens (or creates) the tap called `name`: one queue, or with
    /// `multi_queue` one queue of a multi-queue tap.
    pub fn open(name: &str, multi_queue: bool) -> io::Result<Tap> {
        if name.is_empty() || name.len() > 15 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad tap name"));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq::new(name);
        req.set_flags(
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | if multi_queue { IFF_MULTI_QUEUE } else { 0 },
        );
        req.ioctl(file.as_raw_fd(), TUNSETIFF)?;
        setup(file, true)
    }

    /// Adopts an inherited, already attached tap fd.
    pub fn from_fd(fd: i32) -> io::Result<Tap> {
        // SAFETY: fcntl(F_GETFD) only checks the fd is open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "tap fd is not open",
            ));
        }
        // SAFETY: the fd is open and was handed to this process for the
        // tap; nothing else in the VMM uses it.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut req = IfReq::new("");
        req.ioctl(file.as_raw_fd(), TUNGETIFF)?;
        let vnet = req.flags() & IFF_VNET_HDR != 0;
        setup(file, vnet)
    }
}
