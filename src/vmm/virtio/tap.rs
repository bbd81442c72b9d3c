//! Tap devices for the NICs (virtio-net, e1000): opening by name or adopting an inherited fd;
//! or, in a tap's place, a unix stream socket to a user-mode network
//! stack (passt) carrying length-prefixed frames.
//! A multi-queue tap (`IFF_MULTI_QUEUE`) has one fd per queue pair;
//! queues the guest does not use are detached (`TUNSETQUEUE`) so that the
//! kernel steers no frames to them.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd};

use libc::{TUNGETIFF, TUNSETIFF, TUNSETOFFLOAD, TUNSETQUEUE, TUNSETVNETHDRSZ};

use crate::vmm::ifreq::{
    IFF_ATTACH_QUEUE, IFF_DETACH_QUEUE, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_VNET_HDR, IfReq,
};

/// TUNSETOFFLOAD bits.
pub use libc::{TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6};

/// Length of the virtio-net header (VERSION_1, with num_buffers).
pub const VNET_HDR_LEN: usize = 12;

/// An open tap (or stream socket).
pub struct Tap {
    pub file: File,
    /// Whether frames carry a virtio-net header on the tap side.
    pub vnet_hdr: bool,
    /// For a stream socket: bytes read that do not make a whole frame yet.
    stream: Option<Vec<u8>>,
}

/// Largest frame a stream peer may announce (an Ethernet jumbo frame).
const MAX_STREAM_FRAME: usize = 65535;

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
    Ok(Tap {
        file,
        vnet_hdr,
        stream: None,
    })
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

    /// Writes one frame gathered from guest memory (after its length, on
    /// a stream socket: the socket blocks, so the frame goes out whole).
    pub fn write_vectored(&self, bufs: &[super::iov::Slice<'_>]) -> io::Result<usize> {
        let iovs = bufs.iter().map(|s| libc::iovec {
            iov_base: s.ptr_guard().as_ptr().cast_mut().cast(),
            iov_len: s.len(),
        });
        // SAFETY: the iovecs describe mapped guest memory kept alive by
        // `bufs`.
        unsafe { self.writev_frame(iovs.collect()) }
    }

    /// Writes one frame without a virtio-net header of its own: a tap
    /// that carries headers gets an empty one (no offloads) first.
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<usize> {
        let header = [0u8; VNET_HDR_LEN];
        let mut iovs = Vec::with_capacity(2);
        if self.vnet_hdr {
            iovs.push(libc::iovec {
                iov_base: header.as_ptr().cast_mut().cast(),
                iov_len: header.len(),
            });
        }
        iovs.push(libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        });
        // SAFETY: the iovecs describe `header` and `frame`, alive here.
        unsafe { self.writev_frame(iovs) }
    }

    /// Writes the frame the iovecs make up, after its length on a stream
    /// socket.
    ///
    /// # Safety
    /// Every iovec must describe readable memory that stays valid for
    /// the call.
    unsafe fn writev_frame(&self, frame: Vec<libc::iovec>) -> io::Result<usize> {
        let total: usize = frame.iter().map(|v| v.iov_len).sum();
        let len = u32::try_from(total)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too long"))?
            .to_be_bytes();
        let mut iovs: Vec<libc::iovec> = Vec::with_capacity(frame.len() + 1);
        if self.stream.is_some() {
            iovs.push(libc::iovec {
                iov_base: len.as_ptr().cast_mut().cast(),
                iov_len: len.len(),
            });
        }
        iovs.extend(frame);
        let n = libc::c_int::try_from(iovs.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many buffers"))?;
        // SAFETY: the caller vouches for the frame's iovecs; the length's
        // is `len`, alive here; writev only reads from them.
        let r = unsafe { libc::writev(self.file.as_raw_fd(), iovs.as_ptr(), n) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// Reads one frame into `buf`: from a tap, what one read gives; from
    /// a stream socket, the next whole frame once all its bytes are in
    /// (`WouldBlock` until then).
    pub fn read_frame(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(pending) = self.stream.as_mut() else {
            return self.file.read(buf);
        };
        loop {
            if pending.len() >= 4 {
                let len =
                    u32::from_be_bytes([pending[0], pending[1], pending[2], pending[3]]) as usize;
                if len > MAX_STREAM_FRAME {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "stream peer sent an oversized frame",
                    ));
                }
                if pending.len() >= 4 + len {
                    let n = len.min(buf.len());
                    buf[..n].copy_from_slice(&pending[4..4 + n]);
                    pending.drain(..4 + len);
                    return Ok(n);
                }
            }
            let mut chunk = [0u8; 16384];
            // SAFETY: recv writes at most chunk.len() bytes into chunk.
            let r = unsafe {
                libc::recv(
                    self.file.as_raw_fd(),
                    chunk.as_mut_ptr().cast(),
                    chunk.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            match r {
                r if r < 0 => return Err(io::Error::last_os_error()),
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream peer closed the connection",
                    ));
                }
                r => pending.extend_from_slice(&chunk[..r as usize]),
            }
        }
    }

    /// Adopts an inherited, connected unix stream socket (reads do not
    /// block; writes do, so that a frame never goes out in part).
    pub fn from_stream_fd(fd: i32) -> io::Result<Tap> {
        // SAFETY: fcntl(F_GETFD) only checks the fd is open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "stream fd is not open",
            ));
        }
        // SAFETY: the fd is open and was handed to this process for the
        // device; nothing else in the VMM uses it.
        let file = unsafe { File::from_raw_fd(fd) };
        let mut kind: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SO_TYPE writes one c_int into `kind`.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&raw mut kind).cast(),
                &mut len,
            )
        };
        if rc < 0 || kind != libc::SOCK_STREAM {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a stream socket",
            ));
        }
        Ok(Tap {
            file,
            vnet_hdr: false,
            stream: Some(Vec::new()),
        })
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
