//! Disk backends for virtio-blk: raw files/block devices and qcow2. Data
//! moves between the image and guest memory directly: `preadv`/`pwritev`
//! on guest memory for raw images, imago's vectored I/O for qcow2.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use imago::io_buffers::{IoVector, IoVectorMut};
use imago::{FormatDriverBuilder, PermissiveImplicitOpenGate, SyncFormatAccess};

use super::blk_merge::IOV_MAX;
use super::iov::Slice;

/// Byte-addressed disk storage.
pub trait Disk: Send {
    fn size(&self) -> u64;
    /// Fills `bufs` (guest memory) from `off`.
    fn read_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()>;
    /// Writes `bufs` (guest memory) at `off`.
    fn write_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()>;
    fn flush(&self) -> io::Result<()>;
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()>;
    /// Drops the data of a range (may be a no-op).
    fn discard(&mut self, off: u64, len: u64) -> io::Result<()>;
    /// Gives the image the virtual size `size`. Formats with metadata are
    /// resized by whoever holds them open; a raw file is resized by the
    /// daemon and reopened, so by default this is not supported.
    fn resize(&mut self, _size: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the image is resized where it is opened",
        ))
    }
    /// A second handle on a plain image file, for parallel reads and
    /// writes (`None` for formats with metadata).
    fn clone_file(&self) -> Option<File> {
        None
    }
}

/// A raw image: a regular file or a block device.
pub struct RawDisk {
    file: File,
    size: u64,
}

fn block_device_size(f: &File) -> io::Result<u64> {
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

impl RawDisk {
    pub fn open(path: &Path, readonly: bool) -> io::Result<Self> {
        Self::from_file(OpenOptions::new().read(true).write(!readonly).open(path)?)
    }

    /// The image open as `file` (a regular file or a block device).
    pub fn from_file(file: File) -> io::Result<Self> {
        let meta = file.metadata()?;
        let size = if std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
            block_device_size(&file)?
        } else {
            meta.len()
        };
        Ok(RawDisk { file, size })
    }
}

/// `preadv`/`pwritev` until every byte of `iovs` moved; a short transfer
/// at the end of the file is an error.
pub(crate) fn rw_all(
    fd: i32,
    iovs: &mut [libc::iovec],
    mut off: u64,
    write: bool,
) -> io::Result<()> {
    let mut i = 0;
    while i < iovs.len() {
        if iovs[i].iov_len == 0 {
            i += 1;
            continue;
        }
        let n = (iovs.len() - i).min(IOV_MAX) as libc::c_int;
        let at = libc::off_t::try_from(off)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: iovs[i..i + n] are valid iovecs describing mapped guest
        // memory (kept mapped by the caller's slices) or zero-length ones;
        // the kernel only reads or writes within them.
        let r = unsafe {
            if write {
                libc::pwritev(fd, iovs[i..].as_ptr(), n, at)
            } else {
                libc::preadv(fd, iovs[i..].as_ptr(), n, at)
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let mut left = r as usize;
        off += left as u64;
        while left > 0 && i < iovs.len() {
            let v = &mut iovs[i];
            if left >= v.iov_len {
                left -= v.iov_len;
                v.iov_len = 0;
                i += 1;
            } else {
                // SAFETY: advancing within the same iovec (left < iov_len).
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(left).cast() };
                v.iov_len -= left;
                left = 0;
            }
        }
    }
    Ok(())
}

/// The iovecs of guest memory slices (valid while the memory is mapped).
pub(crate) fn iovecs(bufs: &[Slice<'_>]) -> Vec<libc::iovec> {
    bufs.iter()
        .map(|s| libc::iovec {
            iov_base: s.ptr_guard_mut().as_ptr().cast(),
            iov_len: s.len(),
        })
        .collect()
}

fn raw_vectored(file: &File, bufs: &[Slice<'_>], off: u64, write: bool) -> io::Result<()> {
    rw_all(file.as_raw_fd(), &mut iovecs(bufs), off, write)
}

impl Disk for RawDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn clone_file(&self) -> Option<File> {
        self.file.try_clone().ok()
    }
    fn read_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        raw_vectored(&self.file, bufs, off, false)
    }
    fn write_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        raw_vectored(&self.file, bufs, off, true)
    }
    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()> {
        zero_fill(&self.file, off, len)
    }
    fn discard(&mut self, off: u64, len: u64) -> io::Result<()> {
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on an fd we own; no memory is passed.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), mode, off as i64, len as i64) };
        if rc < 0 {
            // Not supported by the file system: discarding is advisory.
            return Ok(());
        }
        Ok(())
    }
}

fn zero_fill(f: &File, off: u64, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 64 << 10];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..n], off + done)?;
        done += n as u64;
    }
    Ok(())
}

/// A qcow2 image (and its backing chain) opened through imago.
pub struct Qcow2Disk {
    img: SyncFormatAccess<imago::file::File>,
}

impl Qcow2Disk {
    pub fn open(path: &Path, readonly: bool) -> io::Result<Self> {
        let q = imago::qcow2::Qcow2::<imago::file::File>::builder_path(path)
            .write(!readonly)
            .open_sync(PermissiveImplicitOpenGate::default())?;
        Ok(Qcow2Disk {
            img: SyncFormatAccess::new(q)?,
        })
    }
}

impl Disk for Qcow2Disk {
    fn size(&self) -> u64 {
        self.img.size()
    }
    fn read_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let (v, _mapped) = IoVectorMut::from_volatile_slice(bufs.iter());
        self.img.readv(v, off)
    }
    fn write_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let (v, _mapped) = IoVector::from_volatile_slice(bufs.iter());
        self.img.writev(v, off)
    }
    fn flush(&self) -> io::Result<()> {
        self.img.flush()?;
        self.img.sync()
    }
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()> {
        self.img.write_zeroes(off, len)
    }
    fn discard(&mut self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
    /// Growing writes the new size and, when the L1 table must cover more,
    /// a larger table; shrinking discards the clusters past the end first.
    fn resize(&mut self, size: u64) -> io::Result<()> {
        self.img
            .resize(size, imago::format::PreallocateMode::None)?;
        self.img.flush()?;
        self.img.sync()
    }
}

impl Drop for Qcow2Disk {
    fn drop(&mut self) {
        let _ = self.img.flush();
    }
}

/// A disk reopened on an image whose layers are all open already:
/// `layers` are the files of the chain, the image the guest writes to
/// first (opened for writing) and each backing layer after it (read-only).
/// Every layer's backing is the next one given here, never a path from an
/// image header, so the chain opens without opening any file (in a
/// confined VMM, from descriptors).
pub fn open_chain(
    layers: Vec<(File, crate::vmm::config::DiskFormat)>,
) -> io::Result<Box<dyn Disk>> {
    use crate::vmm::config::DiskFormat;
    use imago::FormatAccess;
    type Storage = imago::file::File;

    let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
    if layers.is_empty() {
        return Err(invalid("no image"));
    }
    if let [(file, DiskFormat::Raw)] = &layers[..] {
        return Ok(Box::new(RawDisk::from_file(file.try_clone()?)?));
    }
    let mut below: Option<FormatAccess<Storage>> = None;
    for (i, (file, format)) in layers.into_iter().enumerate().rev() {
        let top = i == 0;
        let storage = Storage::try_from(file)?;
        let layer = match format {
            DiskFormat::Raw if below.is_some() || top => {
                return Err(invalid("a raw image cannot have a backing layer"));
            }
            DiskFormat::Raw => FormatAccess::new(
                imago::raw::Raw::builder(storage)
                    .write(false)
                    .open_sync(imago::DenyImplicitOpenGate::default())?,
            ),
            DiskFormat::Qcow2 => FormatAccess::new(
                imago::qcow2::Qcow2::<Storage>::builder(storage)
                    .write(top)
                    .backing(below.take())
                    .open_sync(imago::DenyImplicitOpenGate::default())?,
            ),
        };
        below = Some(layer);
    }
    let img = below.ok_or_else(|| invalid("no image"))?;
    Ok(Box::new(Qcow2Disk {
        img: SyncFormatAccess::try_from(img)?,
    }))
}

/// A disk held in memory (tests and fuzz targets).
pub struct MemDisk(pub Vec<u8>);

impl MemDisk {
    fn span(&self, off: u64, len: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        if end > self.0.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(start..end)
    }
}

impl Disk for MemDisk {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let r = self.span(off, super::iov::total(bufs))?;
        super::iov::write_from(bufs, &self.0[r]);
        Ok(())
    }
    fn write_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let r = self.span(off, super::iov::total(bufs))?;
        super::iov::read_into(bufs, &mut self.0[r]);
        Ok(())
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()> {
        let r = self.span(
            off,
            usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?,
        )?;
        self.0[r].fill(0);
        Ok(())
    }
    fn discard(&mut self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}
