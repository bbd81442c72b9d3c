//! What the driver reads of disk images without the VMM: the qcow2
//! header (virtual size, backing file), the backing chain's presence,
//! and the sizes libvirt reports (capacity, allocation, physical).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;
use crate::xml::model::disk::MAX_BACKING_CHAIN;

use super::fsutil::os_text;

const QCOW2_MAGIC: u32 = 0x5146_49fb;
/// Longest backing file name the qcow2 format allows.
const MAX_BACKING_NAME: u32 = 1023;

/// The fields of a qcow2 header used here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Qcow2Header {
    pub virtual_size: u64,
    /// The backing file as the image names it.
    pub backing: Option<String>,
    /// 2 or 3.
    pub version: u32,
    pub cluster_bits: u32,
    /// Version 3 feature bits (zero for version 2).
    pub incompatible_features: u64,
    pub compatible_features: u64,
    /// The backing file's format from the header extension, if recorded.
    pub backing_format: Option<String>,
}

/// Header extension naming the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Compatible feature bit: lazy refcounts.
pub const QCOW2_COMPAT_LAZY_REFCOUNTS: u64 = 1;
/// Incompatible feature bit: extended L2 entries.
pub const QCOW2_INCOMPAT_EXTENDED_L2: u64 = 1 << 4;

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The qcow2 header of `f`, or `None` when it is not a qcow2 image.
pub fn qcow2_header(f: &mut File) -> io::Result<Option<Qcow2Header>> {
    let mut h = [0u8; 104];
    f.seek(SeekFrom::Start(0))?;
    let got = read_up_to(f, &mut h)?;
    if got < 72 || be32(&h[0..4]) != QCOW2_MAGIC {
        return Ok(None);
    }
    let version = be32(&h[4..8]);
    let (incompatible_features, compatible_features, header_len) = if version >= 3 && got >= 104 {
        (
            be64(&h[72..80]),
            be64(&h[80..88]),
            u64::from(be32(&h[100..104])),
        )
    } else {
        (0, 0, 72)
    };
    let backing_format = read_backing_format(f, header_len)?;
    let offset = be64(&h[8..16]);
    let len = be32(&h[16..20]);
    let backing = if offset == 0 || len == 0 || len > MAX_BACKING_NAME {
        None
    } else {
        let mut name = vec![0u8; len as usize];
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(&mut name)?;
        Some(String::from_utf8_lossy(&name).into_owned())
    };
    Ok(Some(Qcow2Header {
        virtual_size: be64(&h[24..32]),
        backing,
        version,
        cluster_bits: be32(&h[20..24]),
        incompatible_features,
        compatible_features,
        backing_format,
    }))
}

/// Reads as much of `buf` as the file holds.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Walks the header extensions after `start` for the backing format.
fn read_backing_format(f: &mut File, start: u64) -> io::Result<Option<String>> {
    let mut offset = start;
    // A header's extensions end within its first cluster; bound the walk.
    for _ in 0..64 {
        let mut ext = [0u8; 8];
        f.seek(SeekFrom::Start(offset))?;
        if read_up_to(f, &mut ext)? < 8 {
            return Ok(None);
        }
        let (kind, len) = (be32(&ext[0..4]), be32(&ext[4..8]));
        if kind == 0 {
            return Ok(None);
        }
        if kind == EXT_BACKING_FORMAT && len <= 64 {
            let mut name = vec![0u8; len as usize];
            f.read_exact(&mut name)?;
            return Ok(Some(String::from_utf8_lossy(&name).into_owned()));
        }
        offset += 8 + u64::from(len).div_ceil(8) * 8;
    }
    Ok(None)
}

fn system(detail: String, e: &io::Error) -> Error {
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::Storage,
        format!("{detail}: {}", os_text(e)),
    )
}

/// Checks that every backing file of a qcow2 image can be read, as
/// libvirt does before it starts a guest.
pub fn check_backing_chain(path: &Path, format: DiskFormat) -> Result<()> {
    backing_chain(path, format).map(|_| ())
}

/// The layers of an image, itself first and then each backing file with
/// its format (as the image records it, else as the file looks).
pub fn backing_chain(path: &Path, format: DiskFormat) -> Result<Vec<(PathBuf, DiskFormat)>> {
    let mut chain = vec![(path.to_path_buf(), format)];
    if format != DiskFormat::Qcow2 {
        return Ok(chain);
    }
    let mut current = path.to_path_buf();
    for _ in 0..MAX_BACKING_CHAIN {
        let mut f = File::open(&current).map_err(|e| {
            system(
                format!("Cannot access storage file '{}'", current.display()),
                &e,
            )
        })?;
        let header = qcow2_header(&mut f).map_err(|e| {
            system(
                format!("Cannot read storage file '{}'", current.display()),
                &e,
            )
        })?;
        let Some(header) = header else {
            return Ok(chain);
        };
        let Some(name) = header.backing else {
            return Ok(chain);
        };
        let next = backing_path(&current, &name);
        let mut next_file = File::open(&next).map_err(|e| {
            system(
                format!(
                    "Cannot access backing file '{}' of storage file '{}'",
                    next.display(),
                    current.display()
                ),
                &e,
            )
        })?;
        let next_format = match header.backing_format.as_deref() {
            Some("qcow2") => DiskFormat::Qcow2,
            Some(_) => DiskFormat::Raw,
            None => match qcow2_header(&mut next_file) {
                Ok(Some(_)) => DiskFormat::Qcow2,
                _ => DiskFormat::Raw,
            },
        };
        chain.push((next.clone(), next_format));
        if next_format != DiskFormat::Qcow2 {
            return Ok(chain);
        }
        current = next;
    }
    Err(Error::new(
        ErrorCode::InvalidArg,
        ErrorDomain::Storage,
        format!(
            "backing chains more than {MAX_BACKING_CHAIN} layers deep are not supported for disk '{}'",
            path.display()
        ),
    ))
}

/// A backing file name resolved against the directory of its image.
fn backing_path(image: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new("/")).join(p)
    }
}

/// libvirt's three sizes of a disk source, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sizes {
    /// What the guest sees.
    pub capacity: u64,
    /// Host storage in use.
    pub allocation: u64,
    /// Size of the file or device on the host.
    pub physical: u64,
}

/// The sizes of `path`, `None` if it cannot be read.
pub fn sizes(path: &Path, format: DiskFormat) -> Option<Sizes> {
    let mut f = File::open(path).ok()?;
    let meta = f.metadata().ok()?;
    let physical = if meta.file_type().is_file() {
        meta.len()
    } else {
        // A block device: its size is where it ends.
        f.seek(SeekFrom::End(0)).ok()?
    };
    let allocation = if meta.file_type().is_file() {
        meta.blocks().saturating_mul(512)
    } else {
        physical
    };
    let capacity = match format {
        DiskFormat::Qcow2 => qcow2_header(&mut f).ok()??.virtual_size,
        DiskFormat::Raw => physical,
    };
    Some(Sizes {
        capacity,
        allocation,
        physical,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_with_backing(path: &Path, size: u64, backing: Option<&str>) {
        let mut h = vec![0u8; 512];
        h[0..4].copy_from_slice(&QCOW2_MAGIC.to_be_bytes());
        h[4..8].copy_from_slice(&3u32.to_be_bytes());
        if let Some(b) = backing {
            h[8..16].copy_from_slice(&256u64.to_be_bytes());
            h[16..20].copy_from_slice(&(b.len() as u32).to_be_bytes());
            h[256..256 + b.len()].copy_from_slice(b.as_bytes());
        }
        h[24..32].copy_from_slice(&size.to_be_bytes());
        std::fs::write(path, h).unwrap();
    }

    #[test]
    fn reads_qcow2_headers_and_checks_chains() {
        let dir = std::env::temp_dir().join(format!("oxvirt-image-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let top = dir.join("top.qcow2");
        qcow2_with_backing(&top, 1 << 30, Some("base.raw"));
        let mut f = File::open(&top).unwrap();
        let h = qcow2_header(&mut f).unwrap().unwrap();
        assert_eq!(h.virtual_size, 1 << 30);
        assert_eq!(h.backing.as_deref(), Some("base.raw"));
        let err = check_backing_chain(&top, DiskFormat::Qcow2).unwrap_err();
        assert_eq!(
            err.message,
            format!(
                "Cannot access backing file '{}' of storage file '{}': No such file or directory",
                dir.join("base.raw").display(),
                top.display()
            )
        );
        std::fs::write(dir.join("base.raw"), [0u8; 4096]).unwrap();
        check_backing_chain(&top, DiskFormat::Qcow2).unwrap();
        assert_eq!(sizes(&top, DiskFormat::Qcow2).unwrap().capacity, 1 << 30);
        let raw = sizes(&dir.join("base.raw"), DiskFormat::Raw).unwrap();
        assert_eq!((raw.capacity, raw.physical), (4096, 4096));
        // A loop ends at the depth limit instead of running forever.
        let looped = dir.join("loop.qcow2");
        qcow2_with_backing(&looped, 512, Some("loop.qcow2"));
        assert!(check_backing_chain(&looped, DiskFormat::Qcow2).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
