//! The host side of a directory pool: its directory, the files in it, and
//! creating, copying, resizing, wiping and removing volumes. Blocking I/O;
//! callers run it off the async runtime.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use imago::{
    FormatCreateBuilder, FormatDriverBuilder, PermissiveImplicitOpenGate, SyncFormatAccess,
};

use super::probe::{self, Skip};
use crate::driver::fsutil::os_text;
use crate::driver::image::QCOW2_COMPAT_LAZY_REFCOUNTS;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::storage::{PoolDef, VolDef, VolFormat};

/// Mode of a pool directory made by a build that gives none.
const DEFAULT_POOL_MODE: u32 = 0o711;
/// Mode of a volume created without `<permissions><mode>`.
pub const DEFAULT_VOL_MODE: u32 = 0o600;
/// Copy, conversion and wipe chunk size.
const CHUNK: usize = 1 << 20;

/// A libvirt system error raised by the storage driver.
pub fn sys(what: impl AsRef<str>, e: &io::Error) -> Error {
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::Storage,
        format!("{}: {}", what.as_ref(), os_text(e)),
    )
}

/// What a refresh found: the pool's sizes and its volumes.
pub struct Scan {
    /// Mode, owner and group of the pool directory.
    pub perms: crate::xml::storage::Perms,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
    pub volumes: Vec<VolDef>,
}

/// `pool-build`: makes the directory (and its parents) with the pool's
/// permissions.
pub fn build(def: &PoolDef) -> Result<()> {
    let path = Path::new(&def.target_path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| sys(format!("cannot create path '{}'", parent.display()), &e))?;
    }
    // Something else already at the path is left as it is (libvirt's
    // build succeeds; starting the pool then fails on it).
    let existed = path.exists();
    if existed && !path.is_dir() {
        return Ok(());
    }
    if !existed {
        fs::DirBuilder::new()
            .mode(def.target_perms.mode.unwrap_or(DEFAULT_POOL_MODE))
            .create(path)
            .map_err(|e| sys(format!("cannot create directory '{}'", path.display()), &e))?;
    }
    let mode = def
        .target_perms
        .mode
        .or((!existed).then_some(DEFAULT_POOL_MODE));
    if let Some(m) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(m)).map_err(|e| {
            sys(
                format!("cannot set mode of '{}' to {m:04o}", path.display()),
                &e,
            )
        })?;
    }
    chown(path, def.target_perms.owner, def.target_perms.group)
}

fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    if uid.is_none() && gid.is_none() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, uid, gid).map_err(|e| {
        sys(
            format!(
                "cannot chown '{}' to ({}, {})",
                path.display(),
                uid.map_or(-1, i64::from),
                gid.map_or(-1, i64::from)
            ),
            &e,
        )
    })
}

/// Whether the pool's directory is there (`checkPool` at daemon start).
pub fn exists(def: &PoolDef) -> bool {
    Path::new(&def.target_path).is_dir()
}

/// `pool-refresh` (and the refresh that starts a pool): every regular file
/// and directory in the pool directory, and the filesystem's sizes.
pub fn scan(def: &PoolDef) -> Result<Scan> {
    let dir = Path::new(&def.target_path);
    // libvirt raises this one from its generic directory helper, so the
    // error carries no storage domain.
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::new(
            ErrorCode::SystemError,
            ErrorDomain::None,
            format!("cannot open directory '{}': {}", dir.display(), os_text(&e)),
        )
    })?;
    let mut volumes = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| sys(format!("cannot read directory '{}'", dir.display()), &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match probe::describe(&name, &entry.path()) {
            Ok(v) => volumes.push(v),
            Err(Skip::NotAVolume) => {}
            Err(Skip::Io(e)) => tracing::debug!(volume = name, "skipped: {e}"),
        }
    }
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    let (capacity, allocation, available) = fs_sizes(dir)?;
    let meta =
        fs::metadata(dir).map_err(|e| sys(format!("cannot stat path '{}'", dir.display()), &e))?;
    Ok(Scan {
        perms: crate::xml::storage::Perms {
            mode: Some(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777),
            owner: Some(std::os::unix::fs::MetadataExt::uid(&meta)),
            group: Some(std::os::unix::fs::MetadataExt::gid(&meta)),
            label: None,
        },
        capacity,
        allocation,
        available,
        volumes,
    })
}

/// Capacity, allocation and available bytes of the filesystem holding `dir`.
pub fn fs_sizes(dir: &Path) -> Result<(u64, u64, u64)> {
    let s = nix::sys::statvfs::statvfs(dir).map_err(|e| {
        sys(
            format!("cannot statvfs path '{}'", dir.display()),
            &io::Error::from(e),
        )
    })?;
    let frsize = s.fragment_size();
    let capacity = (s.blocks() as u64).saturating_mul(frsize);
    let allocation = ((s.blocks() - s.blocks_free()) as u64).saturating_mul(frsize);
    // libvirt counts the blocks reserved for root as available.
    let available = (s.blocks_free() as u64).saturating_mul(frsize);
    Ok((capacity, allocation, available))
}

/// The free space of the pool's filesystem.
pub fn available(def: &PoolDef) -> Result<u64> {
    fs_sizes(Path::new(&def.target_path)).map(|(_, _, a)| a)
}

/// `pool-delete`: removes the (empty) directory.
pub fn delete(def: &PoolDef) -> Result<()> {
    fs::remove_dir(&def.target_path)
        .map_err(|e| sys(format!("failed to remove pool '{}'", def.target_path), &e))
}

/// The path of volume `name` in the pool.
pub fn vol_path(def: &PoolDef, name: &str) -> PathBuf {
    Path::new(&def.target_path).join(name)
}

/// Removes a half-made volume after a failure.
struct Undo<'a>(Option<&'a Path>);

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn create_file(path: &Path, mode: u32) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| sys(format!("cannot create path '{}'", path.display()), &e))
}

/// `vol-create`: a raw or qcow2 file as `vol` describes it. Nothing is
/// left behind on failure.
pub fn create_volume(
    path: &Path,
    vol: &VolDef,
    backing_capacity: Option<u64>,
    prealloc_metadata: bool,
) -> Result<()> {
    let mode = vol.perms.mode.unwrap_or(DEFAULT_VOL_MODE);
    let file = create_file(path, mode)?;
    let mut undo = Undo(Some(path));
    match vol.format {
        f if f == VolFormat::RAW => {
            file.set_len(vol.capacity)
                .map_err(|e| sys(format!("cannot extend file '{}'", path.display()), &e))?;
            allocate(&file, path, 0, vol.allocation.min(vol.capacity))?;
        }
        f if f == VolFormat::QCOW2 => {
            let capacity = if vol.has_capacity {
                vol.capacity
            } else {
                backing_capacity.unwrap_or(0)
            };
            format_qcow2(file, vol, capacity, prealloc_metadata).map_err(|e| {
                Error::new(
                    ErrorCode::InternalError,
                    ErrorDomain::Storage,
                    format!("cannot create qcow2 image '{}': {e}", path.display()),
                )
            })?;
        }
        other => {
            return Err(Error::new(
                ErrorCode::OperationUnsupported,
                ErrorDomain::Storage,
                format!(
                    "creating volumes of format '{}' is not supported",
                    other.as_str()
                ),
            ));
        }
    }
    chown(path, vol.perms.owner, vol.perms.group)?;
    undo.0 = None;
    Ok(())
}

/// Reserves `len` bytes from `offset` as libvirt's raw allocation does.
fn allocate(file: &File, path: &Path, offset: u64, len: u64) -> Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a descriptor owned by `file` for the call.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            0,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc != 0 {
        return Err(sys(
            format!("cannot allocate {len} bytes in file '{}'", path.display()),
            &io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().build()
}

/// Formats `file` as a qcow2 image of `capacity` bytes through imago,
/// then sets the lazy-refcounts bit when the volume asks for it.
fn format_qcow2(
    file: File,
    vol: &VolDef,
    capacity: u64,
    prealloc_metadata: bool,
) -> io::Result<()> {
    let header_file = file.try_clone()?;
    let storage = imago::file::File::try_from(file)?;
    let mut b = imago::qcow2::Qcow2::<imago::file::File>::create_builder(storage).size(capacity);
    if prealloc_metadata {
        b = b.preallocate(imago::format::PreallocateMode::FormatAllocate);
    }
    if vol.cluster_size > 0 {
        b = b.cluster_size(vol.cluster_size as usize);
    }
    if let Some(back) = &vol.backing {
        b = b.backing(back.path.clone(), back.format.as_str().to_string());
    }
    runtime()?.block_on(b.create())?;
    let lazy = vol
        .features
        .as_ref()
        .is_some_and(|f| f.contains(&"lazy_refcounts"));
    if lazy {
        set_compatible_feature(&header_file, QCOW2_COMPAT_LAZY_REFCOUNTS)?;
    }
    header_file.sync_all()
}

/// Offset of the version 3 header's compatible feature bits.
const QCOW2_COMPATIBLE_FEATURES_OFFSET: u64 = 80;

/// Sets a compatible feature bit in a version 3 qcow2 header. Lazy
/// refcounts only allow refcounts to lag behind after a crash; imago
/// keeps them exact, so setting the bit records the request truthfully.
fn set_compatible_feature(f: &File, bit: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut word = [0u8; 8];
    f.read_exact_at(&mut word, QCOW2_COMPATIBLE_FEATURES_OFFSET)?;
    let v = u64::from_be_bytes(word) | bit;
    f.write_all_at(&v.to_be_bytes(), QCOW2_COMPATIBLE_FEATURES_OFFSET)
}

/// An image opened for whole-image copying through imago.
fn open_image(
    path: &Path,
    format: VolFormat,
    writable: bool,
) -> io::Result<SyncFormatAccess<imago::file::File>> {
    if format == VolFormat::QCOW2 {
        let q = imago::qcow2::Qcow2::<imago::file::File>::builder_path(path)
            .write(writable)
            .open_sync(PermissiveImplicitOpenGate::default())?;
        SyncFormatAccess::new(q)
    } else {
        let r = imago::raw::Raw::<imago::file::File>::builder_path(path)
            .write(writable)
            .open_sync(PermissiveImplicitOpenGate::default())?;
        SyncFormatAccess::new(r)
    }
}

/// `vol-create-from` / `vol-clone`: a new volume holding the guest-visible
/// content of `src`. Raw to raw copies only the source's data extents;
/// anything involving qcow2 goes through imago, skipping zero chunks.
pub fn clone_volume(src: &VolDef, dst_path: &Path, dst: &VolDef) -> Result<()> {
    let src_path = PathBuf::from(src.path.clone().unwrap_or_default());
    let mut new = dst.clone();
    if !new.has_capacity || new.capacity < src.capacity {
        new.capacity = src.capacity;
    }
    // The copy allocates what it writes; reserve nothing up front.
    new.allocation = 0;
    create_volume(dst_path, &new, None, false)?;
    let mut undo = Undo(Some(dst_path));
    let copied = if src.format == VolFormat::RAW && new.format == VolFormat::RAW {
        copy_raw_extents(&src_path, dst_path, src.capacity)
    } else {
        copy_through_imago(&src_path, src.format, dst_path, new.format, src.capacity)
    };
    copied.map_err(|e| {
        sys(
            format!(
                "failed to copy '{}' to '{}'",
                src_path.display(),
                dst_path.display()
            ),
            &e,
        )
    })?;
    undo.0 = None;
    Ok(())
}

/// `FICLONE`: share the source's extents (XFS, btrfs, ...).
const FICLONE: libc::c_ulong = 0x4004_9409;

/// Copies the data extents of a raw file (holes stay holes). Where the
/// filesystem can share extents the copy is a reflink and reads nothing.
fn copy_raw_extents(src: &Path, dst: &Path, len: u64) -> io::Result<()> {
    let from = File::open(src)?;
    let to = OpenOptions::new().write(true).open(dst)?;
    let (sfd, dfd) = (from.as_raw_fd(), to.as_raw_fd());
    // SAFETY: both descriptors are open for the call; FICLONE takes the
    // source descriptor as its argument and touches no memory of ours.
    if unsafe { libc::ioctl(dfd, FICLONE, sfd) } == 0 {
        if to.metadata()?.len() < len {
            to.set_len(len)?;
        }
        return to.sync_all();
    }
    // SAFETY: an advisory call on a descriptor owned by `from`.
    unsafe { libc::posix_fadvise(sfd, 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    let mut pos: i64 = 0;
    let end = len as i64;
    while pos < end {
        // SAFETY: lseek on descriptors owned by `from` for the loop.
        let data = unsafe { libc::lseek(sfd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole remains
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(sfd, data, libc::SEEK_HOLE) }.min(end);
        let mut off_in = data;
        let mut off_out = data;
        while off_in < hole {
            let want = (hole - off_in) as usize;
            // SAFETY: both descriptors are open for the call; the offsets
            // are local variables the kernel updates.
            let n = unsafe { libc::copy_file_range(sfd, &mut off_in, dfd, &mut off_out, want, 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                break;
            }
        }
        pos = hole;
    }
    to.sync_all()
}

/// Copies guest-visible content between images of any two formats.
fn copy_through_imago(
    src: &Path,
    src_format: VolFormat,
    dst: &Path,
    dst_format: VolFormat,
    len: u64,
) -> io::Result<()> {
    let from = open_image(src, src_format, false)?;
    let to = open_image(dst, dst_format, true)?;
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        from.read(&mut buf[..n], off)?;
        if buf[..n].iter().any(|b| *b != 0) {
            to.write(&buf[..n], off)?;
        }
        off += n as u64;
    }
    to.flush()?;
    to.sync()
}

/// `vol-delete`: removes the file (or empty directory).
pub fn delete_volume(vol: &VolDef) -> Result<()> {
    let path = vol.path.clone().unwrap_or_default();
    let r = if vol.vol_type == "dir" {
        fs::remove_dir(&path)
    } else {
        fs::remove_file(&path)
    };
    r.map_err(|e| sys(format!("cannot unlink file '{path}'"), &e))
}

/// Makes `len` bytes at `offset` read as zeros without allocating them.
pub fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let size = file.metadata()?.len();
    // Beyond the end there is nothing to clear: the file grows sparse.
    let len = len.min(size.saturating_sub(offset));
    if len == 0 {
        return Ok(());
    }
    // SAFETY: fallocate on a descriptor `file` owns for the call.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], offset + done)?;
        done += n as u64;
    }
    Ok(())
}

/// `vol-wipe` with zeros: the file is emptied and extended back to its
/// size, so it reads as zeros and holds no data (libvirt does the same; a
/// qcow2 image thereby becomes a raw one).
pub fn wipe_volume(vol: &VolDef) -> Result<()> {
    let path = PathBuf::from(vol.path.clone().unwrap_or_default());
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| sys(format!("cannot open path '{}'", path.display()), &e))?;
    let size = file
        .metadata()
        .map_err(|e| sys(format!("cannot stat '{}'", path.display()), &e))?
        .len();
    file.set_len(0)
        .and_then(|()| file.set_len(size))
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            sys(
                format!("Failed to truncate volume with path '{}'", path.display()),
                &e,
            )
        })
}

/// `vol-resize` to `capacity` bytes (checked by the caller).
pub fn resize_volume(vol: &VolDef, capacity: u64, allocate_new: bool) -> Result<()> {
    let path = PathBuf::from(vol.path.clone().unwrap_or_default());
    if vol.format == VolFormat::QCOW2 {
        let img = open_image(&path, VolFormat::QCOW2, true)
            .map_err(|e| sys(format!("cannot open '{}'", path.display()), &e))?;
        return img
            .resize_grow(capacity, imago::format::PreallocateMode::None)
            .map_err(|e| sys(format!("failed to resize '{}'", path.display()), &e));
    }
    let file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| sys(format!("cannot open path '{}'", path.display()), &e))?;
    file.set_len(capacity)
        .map_err(|e| sys(format!("Failed to truncate file '{}'", path.display()), &e))?;
    if allocate_new && capacity > vol.capacity {
        allocate(&file, &path, vol.capacity, capacity - vol.capacity)?;
    }
    Ok(())
}
