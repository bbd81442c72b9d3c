//! Small file helpers: atomic writes and libvirt-style system errors.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, ErrorCode, ErrorDomain};

/// A libvirt system error: "`what`: `os error text`".
pub fn system_error(what: impl AsRef<str>, err: &io::Error) -> Error {
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::Qemu,
        format!("{}: {}", what.as_ref(), os_text(err)),
    )
}

/// The plain strerror text of an I/O error, without Rust's "(os error N)".
pub fn os_text(err: &io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// How far [`write_atomic`] goes to make a write survive a host crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// The temporary file is fsynced before it is renamed over the target,
    /// so after a crash the target holds either the old or the new content,
    /// never a truncated one. The directory is not fsynced: the rename
    /// reaches the disk with the filesystem's next journal commit. This is
    /// what libvirt does for its definitions (`virFileRewrite`: write,
    /// fsync, rename), and it saves a second journal flush per write.
    Persistent,
    /// Runtime state (`/run`, normally a tmpfs) that describes processes a
    /// host crash ends anyway: rename for atomicity against a daemon crash,
    /// no fsync. (libvirt fsyncs its status XML as well, but it lives on
    /// the tmpfs of `/run`, where an fsync does nothing.)
    Runtime,
}

/// The mode of the files the daemon keeps (definitions, state, logs):
/// they may hold passwords and secrets, as libvirt's 0600 files do.
pub const PRIVATE_FILE: u32 = 0o600;
/// The mode of the directories it makes for them.
pub const PRIVATE_DIR: u32 = 0o700;

/// Writes `data` to `path` atomically with mode [`PRIVATE_FILE`]: a
/// temporary file beside it, then a rename over the target;
/// [`Durability`] says what is fsynced.
pub fn write_atomic(path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
    write_atomic_mode(path, data, durability, PRIVATE_FILE)
}

/// [`write_atomic`] with the file's mode given (for files other programs
/// read).
pub fn write_atomic_mode(
    path: &Path,
    data: &[u8],
    durability: Durability,
    mode: u32,
) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        if durability == Durability::Persistent {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and its parents with mode [`PRIVATE_DIR`], reporting
/// failure as libvirt does.
pub fn ensure_dir(dir: &Path) -> Result<(), Error> {
    ensure_dir_mode(dir, PRIVATE_DIR)
}

/// [`ensure_dir`] with the mode of the directories it makes given.
pub fn ensure_dir_mode(dir: &Path, mode: u32) -> Result<(), Error> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(|e| system_error(format!("cannot create directory '{}'", dir.display()), &e))
}

/// Makes (`on`) or removes the autostart link `link` to the definition
/// `target`, with libvirt's messages; the link's directory is made when
/// needed, and removing a missing link is not an error.
pub fn set_autostart_link(link: &Path, target: &Path, on: bool) -> Result<(), Error> {
    if on {
        if let Some(dir) = link.parent() {
            ensure_dir(dir)?;
        }
        let _ = fs::remove_file(link);
        std::os::unix::fs::symlink(target, link).map_err(|e| {
            system_error(
                format!(
                    "Failed to create symlink '{}' to '{}'",
                    link.display(),
                    target.display()
                ),
                &e,
            )
        })
    } else {
        match fs::remove_file(link) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(system_error(
                format!("Failed to delete symlink '{}'", link.display()),
                &e,
            )),
            _ => Ok(()),
        }
    }
}

/// Removes the temporary files [`write_atomic`] leaves in `dir` when the
/// daemon dies during a write (`.NAME.tmpPID`); returns how many.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = name.starts_with('.')
            && name
                .rsplit_once(".tmp")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if stale && e.file_type().is_ok_and(|t| t.is_file()) && fs::remove_file(e.path()).is_ok() {
            tracing::info!(file = %e.path().display(), "removed a stale temporary file");
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_content() {
        let dir = std::env::temp_dir().join(format!("oxvirt-fsutil-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.xml");
        write_atomic(&p, b"one", Durability::Persistent).unwrap();
        write_atomic(&p, b"two", Durability::Runtime).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // What a daemon killed during a write leaves, and what it does not
        // touch.
        fs::write(dir.join(".a.xml.tmp4242"), b"half").unwrap();
        fs::write(dir.join(".hidden.tmpx"), b"keep").unwrap();
        assert_eq!(remove_stale_temps(&dir), 1);
        assert!(dir.join(".hidden.tmpx").exists());
        fs::remove_file(dir.join(".hidden.tmpx")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn os_text_drops_rust_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(os_text(&e), "No such file or directory");
    }
}
