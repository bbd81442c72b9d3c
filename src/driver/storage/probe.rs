//! What a file in a directory pool is, as libvirt's refresh describes it:
//! format (qcow2 header, ISO 9660 signature, else raw), capacity,
//! allocation, physical size, permissions, timestamps, qcow2 details and
//! the backing store.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::driver::image::{self, QCOW2_COMPAT_LAZY_REFCOUNTS, QCOW2_INCOMPAT_EXTENDED_L2};
use crate::xml::storage::volume::Backing;
use crate::xml::storage::{Perms, Timestamps, VolDef, VolFormat};

/// Offset of the ISO 9660 primary volume descriptor's "CD001".
const ISO_SIGNATURE_OFFSET: u64 = 0x8001;

/// Why a directory entry is not a volume.
pub enum Skip {
    /// Not a regular file or directory (socket, fifo, device).
    NotAVolume,
    /// It went away or cannot be read.
    Io(io::Error),
}

fn perms_of(meta: &std::fs::Metadata) -> Perms {
    Perms {
        mode: Some(meta.mode() & 0o777),
        owner: Some(meta.uid()),
        group: Some(meta.gid()),
        label: None,
    }
}

fn timestamps_of(meta: &std::fs::Metadata) -> Timestamps {
    Timestamps {
        atime: (meta.atime(), meta.atime_nsec() as u32),
        mtime: (meta.mtime(), meta.mtime_nsec() as u32),
        ctime: (meta.ctime(), meta.ctime_nsec() as u32),
    }
}

fn is_iso(f: &mut File) -> io::Result<bool> {
    let mut sig = [0u8; 5];
    f.seek(SeekFrom::Start(ISO_SIGNATURE_OFFSET))?;
    Ok(f.read_exact(&mut sig).is_ok() && &sig == b"CD001")
}

/// Describes the file `path`, named `name` in its pool.
pub fn describe(name: &str, path: &Path) -> Result<VolDef, Skip> {
    let meta = std::fs::metadata(path).map_err(Skip::Io)?;
    let path_text = path.to_string_lossy().into_owned();
    let mut vol = VolDef {
        name: name.to_string(),
        key: Some(path_text.clone()),
        vol_type: "file",
        capacity: meta.len(),
        has_capacity: true,
        allocation: meta.blocks().saturating_mul(512),
        has_allocation: true,
        physical: meta.len(),
        path: Some(path_text),
        format: VolFormat::RAW,
        perms: perms_of(&meta),
        timestamps: Some(timestamps_of(&meta)),
        compat: None,
        nocow: false,
        cluster_size: 0,
        features: None,
        backing: None,
        encryption: false,
    };
    if meta.is_dir() {
        vol.vol_type = "dir";
        vol.format = VolFormat::DIR;
        return Ok(vol);
    }
    if !meta.is_file() {
        return Err(Skip::NotAVolume);
    }
    let mut f = File::open(path).map_err(Skip::Io)?;
    if let Some(h) = image::qcow2_header(&mut f).map_err(Skip::Io)? {
        vol.format = VolFormat::QCOW2;
        vol.capacity = h.virtual_size;
        vol.cluster_size = 1u64.checked_shl(h.cluster_bits).unwrap_or(0);
        if h.version >= 3 {
            vol.compat = Some("1.1".into());
            let mut features = Vec::new();
            if h.compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS != 0 {
                features.push("lazy_refcounts");
            }
            if h.incompatible_features & QCOW2_INCOMPAT_EXTENDED_L2 != 0 {
                features.push("extended_l2");
            }
            vol.features = Some(features);
        } else {
            vol.compat = Some("0.10".into());
        }
        vol.backing = h
            .backing
            .as_deref()
            .map(|b| backing_of(path, b, h.backing_format));
    } else if is_iso(&mut f).unwrap_or(false) {
        vol.format = VolFormat::ISO;
    }
    Ok(vol)
}

/// The format of a file, without following its backing chain.
fn format_of(path: &Path) -> Option<VolFormat> {
    let mut f = File::open(path).ok()?;
    if image::qcow2_header(&mut f).ok()?.is_some() {
        Some(VolFormat::QCOW2)
    } else if is_iso(&mut f).unwrap_or(false) {
        Some(VolFormat::ISO)
    } else {
        Some(VolFormat::RAW)
    }
}

/// The backing store of `image`, named `name` in its header.
fn backing_of(image: &Path, name: &str, format: Option<String>) -> Backing {
    let resolved = if Path::new(name).is_absolute() {
        Path::new(name).to_path_buf()
    } else {
        image.parent().unwrap_or(Path::new("/")).join(name)
    };
    let format = format
        .as_deref()
        .and_then(VolFormat::parse)
        .or_else(|| format_of(&resolved))
        .unwrap_or(VolFormat::RAW);
    let meta = std::fs::metadata(&resolved).ok();
    Backing {
        path: resolved.to_string_lossy().into_owned(),
        format,
        perms: meta.as_ref().map(perms_of).unwrap_or_default(),
        timestamps: meta.as_ref().map(timestamps_of),
    }
}
