//! The images external snapshots are made of: a qcow2 overlay made on
//! top of a disk's image (which it freezes), the overlay's data merged
//! back into that image (a block commit), and the names libvirt gives
//! overlays. Image I/O runs on a blocking thread: imago's synchronous
//! calls bring their own runtime.

use std::io;
use std::path::{Path, PathBuf};

use imago::io_buffers::IoVectorMut;
use imago::{
    FormatAccess, FormatCreateBuilder, FormatDriverBuilder, Mapping, PermissiveImplicitOpenGate,
};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;

use super::super::fsutil::system_error;
use super::super::image;

type Storage = imago::file::File;

/// Runs image I/O on a blocking thread (imago's synchronous calls bring a
/// runtime of their own, which must not start inside the daemon's).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<io::Result<T>> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(format!("image task failed: {e}")))
}

/// libvirt's name for a disk's overlay: the image's path without its
/// last extension, then `.SNAPSHOT`.
pub fn default_name(source: &str, snapshot: &str) -> String {
    let slash = source.rfind('/').map_or(0, |i| i + 1);
    let stem = match source[slash..].rfind('.') {
        Some(dot) => &source[..slash + dot],
        None => source,
    };
    format!("{stem}.{snapshot}")
}

/// Makes `path` a new qcow2 image backed by `backing`, of its size. An
/// existing empty file is used (as libvirt does); anything else there is
/// refused by the caller before this runs.
pub async fn create(path: PathBuf, backing: PathBuf, backing_format: DiskFormat) -> Result<()> {
    let what = format!("cannot create overlay '{}'", path.display());
    blocking(move || create_blocking(&path, &backing, backing_format))
        .await?
        .map_err(|e| system_error(what, &e))
}

fn create_blocking(path: &Path, backing: &Path, backing_format: DiskFormat) -> io::Result<()> {
    let size = image::sizes(backing, backing_format)
        .map(|s| s.capacity)
        .ok_or_else(|| io::Error::other(format!("cannot read '{}'", backing.display())))?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    let sync = file.try_clone()?;
    let storage = Storage::try_from(file)?;
    let format = match backing_format {
        DiskFormat::Raw => "raw",
        DiskFormat::Qcow2 => "qcow2",
    };
    let builder = imago::qcow2::Qcow2::<Storage>::create_builder(storage)
        .size(size)
        .backing(backing.to_string_lossy().into_owned(), format.to_string());
    let made = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(builder.create());
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    sync.sync_all()
}

/// Writes the data `overlay` holds itself (not what it reads through its
/// backing) into `base`, the image below it, which then reads as the
/// overlay did. Nothing else may have either image open for writing.
pub async fn commit(overlay: PathBuf, base: PathBuf, base_format: DiskFormat) -> Result<()> {
    let what = format!(
        "block commit failed while merging '{}' into '{}'",
        overlay.display(),
        base.display()
    );
    blocking(move || commit_blocking(&overlay, &base, base_format))
        .await?
        .map_err(|e| {
            Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                format!("{what}: {e}"),
            )
        })
}

fn open_sync(
    path: &Path,
    format: DiskFormat,
    write: bool,
    backing: bool,
) -> io::Result<imago::SyncFormatAccess<Storage>> {
    let access = match format {
        DiskFormat::Raw => FormatAccess::new(
            imago::raw::Raw::<Storage>::builder_path(path)
                .write(write)
                .open_sync(PermissiveImplicitOpenGate::default())?,
        ),
        DiskFormat::Qcow2 => {
            let mut b = imago::qcow2::Qcow2::<Storage>::builder_path(path).write(write);
            if !backing {
                b = b.backing(None);
            }
            FormatAccess::new(b.open_sync(PermissiveImplicitOpenGate::default())?)
        }
    };
    imago::SyncFormatAccess::try_from(access)
}

/// Largest piece copied at once.
const CHUNK: u64 = 4 << 20;

fn commit_blocking(overlay: &Path, base: &Path, base_format: DiskFormat) -> io::Result<()> {
    let top = open_sync(overlay, DiskFormat::Qcow2, false, false)?;
    let bottom = open_sync(base, base_format, true, true)?;
    let size = top.size().min(bottom.size());
    let mut buf = vec![0u8; CHUNK as usize];
    let mut off = 0;
    while off < size {
        let (mapping, len) = top.get_mapping_sync(off, (size - off).min(CHUNK))?;
        let len = len.min(size - off);
        if len == 0 {
            break;
        }
        let copy = match mapping {
            Mapping::Raw { .. } | Mapping::Special { .. } => Some(true),
            Mapping::Zero { explicit: true, .. } => Some(false),
            _ => None,
        };
        match copy {
            Some(true) => {
                let piece = &mut buf[..len as usize];
                top.read(IoVectorMut::from(&mut piece[..]), off)?;
                bottom.write(&piece[..], off)?;
            }
            Some(false) => bottom.write_zeroes(off, len)?,
            None => {}
        }
        off += len;
    }
    bottom.flush()?;
    bottom.sync()
}

/// Header extension naming the backing file's format.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;

/// Points the qcow2 image at `path` at another backing file (what
/// `qemu-img rebase -u` does: the data is not looked at; the new backing
/// must read as the old one did). The header extensions are written again
/// with the new backing format and the name after them, all within the
/// image's first cluster.
pub fn set_backing(path: &Path, backing: &Path, format: DiskFormat) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mut h = [0u8; 104];
    f.read_exact_at(&mut h[..72], 0)?;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let version = be32(&h[4..]);
    let cluster = 1u64 << be32(&h[20..]).min(21);
    let header_len = if version >= 3 {
        f.read_exact_at(&mut h[72..104], 72)?;
        u64::from(be32(&h[100..]))
    } else {
        72
    };
    // The extensions other than the backing format, as they are.
    let mut kept = Vec::new();
    let mut at = header_len;
    loop {
        let mut eh = [0u8; 8];
        f.read_exact_at(&mut eh, at)?;
        let (kind, len) = (be32(&eh[..4]), u64::from(be32(&eh[4..])));
        if kind == 0 {
            break;
        }
        let padded = len.div_ceil(8) * 8;
        if at + 8 + padded > cluster {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad header extensions",
            ));
        }
        if kind != EXT_BACKING_FORMAT {
            let mut e = vec![0u8; (8 + padded) as usize];
            f.read_exact_at(&mut e, at)?;
            kept.extend_from_slice(&e);
        }
        at += 8 + padded;
    }
    let fmt: &[u8] = match format {
        DiskFormat::Raw => b"raw",
        DiskFormat::Qcow2 => b"qcow2",
    };
    let mut area = kept;
    area.extend_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
    area.extend_from_slice(&(fmt.len() as u32).to_be_bytes());
    area.extend_from_slice(fmt);
    area.resize(area.len().div_ceil(8) * 8, 0);
    area.extend_from_slice(&[0u8; 8]);
    let name = backing.to_string_lossy().into_owned();
    let name_at = header_len + area.len() as u64;
    area.extend_from_slice(name.as_bytes());
    if header_len + area.len() as u64 > cluster {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the backing file name does not fit in the image's first cluster",
        ));
    }
    f.write_all_at(&area, header_len)?;
    let mut fields = [0u8; 12];
    fields[..8].copy_from_slice(&name_at.to_be_bytes());
    fields[8..].copy_from_slice(&(name.len() as u32).to_be_bytes());
    f.write_all_at(&fields, 8)?;
    f.sync_data()
}

/// The layers of `path`'s chain, opened for the VMM: the image for
/// writing, its backing files read-only.
pub fn open_chain(path: &Path, format: DiskFormat) -> Result<Vec<(std::fs::File, DiskFormat)>> {
    let chain = image::backing_chain(path, format)?;
    let mut out = Vec::with_capacity(chain.len());
    for (i, (p, f)) in chain.into_iter().enumerate() {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(i == 0)
            .open(&p)
            .map_err(|e| system_error(format!("cannot open '{}'", p.display()), &e))?;
        out.push((file, f));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_are_named_as_libvirt_names_them() {
        assert_eq!(
            default_name("/var/lib/libvirt/images/d.qcow2", "s1"),
            "/var/lib/libvirt/images/d.s1"
        );
        assert_eq!(default_name("/img/disk", "s1"), "/img/disk.s1");
        assert_eq!(default_name("/a.b/disk", "s1"), "/a.b/disk.s1");
        assert_eq!(default_name("/img/d.s1", "s2"), "/img/d.s2");
    }

    #[tokio::test]
    async fn an_overlay_reads_as_its_base_and_commits_into_it() {
        let dir = std::env::temp_dir().join(format!("oxvirt-overlay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let base = dir.join("base.img");
        let mut data = vec![0u8; 4 << 20];
        data[..5].copy_from_slice(b"first");
        data[3 << 20..(3 << 20) + 4].copy_from_slice(b"tail");
        std::fs::write(&base, &data).unwrap();
        let top = dir.join("base.s1");
        create(top.clone(), base.clone(), DiskFormat::Raw)
            .await
            .unwrap();
        let h = image::backing_chain(&top, DiskFormat::Qcow2).unwrap();
        assert_eq!(
            h,
            vec![
                (top.clone(), DiskFormat::Qcow2),
                (base.clone(), DiskFormat::Raw)
            ]
        );
        let t = top.clone();
        tokio::task::spawn_blocking(move || {
            let img = open_sync(&t, DiskFormat::Qcow2, true, true).unwrap();
            let mut got = vec![0u8; 5];
            img.read(IoVectorMut::from(&mut got[..]), 0).unwrap();
            assert_eq!(&got, b"first");
            img.write(&b"later"[..], 0).unwrap();
            img.write_zeroes(3 << 20, 65536).unwrap();
            img.flush().unwrap();
        })
        .await
        .unwrap();
        // The base is frozen until the commit.
        assert_eq!(&std::fs::read(&base).unwrap()[..5], b"first");
        commit(top, base.clone(), DiskFormat::Raw).await.unwrap();
        let after = std::fs::read(&base).unwrap();
        assert_eq!(&after[..5], b"later");
        assert_eq!(&after[3 << 20..(3 << 20) + 4], &[0, 0, 0, 0]);
        assert_eq!(after.len(), 4 << 20);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_overlay_moves_onto_another_backing_file() {
        let dir = std::env::temp_dir().join(format!("oxvirt-rebase-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a.img"), dir.join("b.qcow2"));
        std::fs::write(&a, vec![7u8; 1 << 20]).unwrap();
        create(b.clone(), a.clone(), DiskFormat::Raw).await.unwrap();
        let top = dir.join("top.qcow2");
        create(top.clone(), b.clone(), DiskFormat::Qcow2)
            .await
            .unwrap();
        // A longer name, and another format.
        let c = dir.join("a-much-longer-name-for-the-new-backing-file.img");
        std::fs::copy(&a, &c).unwrap();
        set_backing(&top, &c, DiskFormat::Raw).unwrap();
        let chain = image::backing_chain(&top, DiskFormat::Qcow2).unwrap();
        assert_eq!(
            chain,
            vec![
                (top.clone(), DiskFormat::Qcow2),
                (c.clone(), DiskFormat::Raw)
            ]
        );
        let mut f = std::fs::File::open(&top).unwrap();
        let h = image::qcow2_header(&mut f).unwrap().unwrap();
        assert_eq!(h.backing_format.as_deref(), Some("raw"));
        // qemu-img reads the header as written.
        if let Ok(out) = std::process::Command::new("qemu-img")
            .args(["info", "--output=json", top.to_str().unwrap()])
            .output()
        {
            let info = String::from_utf8_lossy(&out.stdout);
            assert!(
                info.contains(&format!("\"backing-filename\": \"{}\"", c.display())),
                "{info}"
            );
            assert!(
                info.contains("\"backing-filename-format\": \"raw\""),
                "{info}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
