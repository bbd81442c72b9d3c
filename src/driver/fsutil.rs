//! Small file helpers: atomic writes and libvirt-style system errors.

use std::fs::{self, File};
use std::io::{self, Write};
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

/// Writes `data` to `path` atomically: a temporary file beside it, then a
/// rename over the target; [`Durability`] says what is fsynced.
pub fn write_atomic(path: &Path, data: &[u8], durability: Durability) -> io::Result<()> {
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
        let mut f = File::create(&tmp)?;
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

/// Creates `dir` and its parents, reporting failure as libvirt does.
pub fn ensure_dir(dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir)
        .map_err(|e| system_error(format!("cannot create directory '{}'", dir.display()), &e))
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
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn os_text_drops_rust_suffix() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(os_text(&e), "No such file or directory");
    }
}
