//! Disk backends for virtio-blk: raw files/block devices and qcow2.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use imago::{FormatDriverBuilder, PermissiveImplicitOpenGate, SyncFormatAccess};

/// Byte-addressed disk storage.
pub trait Disk: Send {
    fn size(&self) -> u64;
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()>;
    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<()>;
    fn flush(&self) -> io::Result<()>;
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()>;
    /// Drops the data of a range (may be a no-op).
    fn discard(&mut self, off: u64, len: u64) -> io::Result<()>;
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
        let file = OpenOptions::new().read(true).write(!readonly).open(path)?;
        let meta = file.metadata()?;
        let size = if std::os::unix::fs::FileTypeExt::is_block_device(&meta.file_type()) {
            block_device_size(&file)?
        } else {
            meta.len()
        };
        Ok(RawDisk { file, size })
    }
}

impl Disk for RawDisk {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        self.file.write_all_at(buf, off)
    }
    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()> {
        zero_fill(self, off, len)
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

fn zero_fill(d: &mut dyn Disk, off: u64, len: u64) -> io::Result<()> {
    let chunk = vec![0u8; 64 << 10];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        d.write_at(&chunk[..n], off + done)?;
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
    fn read_at(&mut self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.img.read(buf, off)
    }
    fn write_at(&mut self, buf: &[u8], off: u64) -> io::Result<()> {
        self.img.write(buf, off)
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
}

impl Drop for Qcow2Disk {
    fn drop(&mut self) {
        let _ = self.img.flush();
    }
}
