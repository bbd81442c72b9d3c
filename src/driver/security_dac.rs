//! The files a guest's VMM opens, given to the guest's user as libvirt's
//! DAC security driver does: with `dynamic_ownership`, each disk image,
//! kernel and initrd is chowned to the user and group at start and given
//! back to its recorded owner when the guest stops (the records live in
//! the domain's status, so a daemon restart in between loses nothing);
//! without it, a file the user may not open refuses the start with
//! libvirt's error.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::{BootConfig, DeviceConfig, Identity, SataConfig, ScsiConfig, VmConfig};

use super::fsutil::os_text;

/// A file's owner before a start changed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// The files of `config` the VMM opens, with whether it writes them.
pub fn guest_files(config: &VmConfig) -> Vec<(PathBuf, bool)> {
    let mut out: Vec<(PathBuf, bool)> = Vec::new();
    for d in &config.devices {
        match d {
            DeviceConfig::Block(b) => out.push((b.path.clone(), !b.readonly)),
            DeviceConfig::Scsi(ScsiConfig { cdroms, .. })
            | DeviceConfig::Sata(SataConfig { cdroms, .. }) => {
                out.extend(
                    cdroms
                        .iter()
                        .filter_map(|c| c.path.clone())
                        .map(|p| (p, false)),
                );
            }
            _ => {}
        }
    }
    // Kernel and initrd are relabeled as libvirt does; a firmware image is
    // shared by every guest and never is (the VMM reads it before it drops
    // its privileges).
    if let BootConfig::Kernel(_) = &config.boot {
        out.extend(
            config
                .boot
                .files()
                .into_iter()
                .map(|p| (p.to_path_buf(), false)),
        );
    }
    out
}

/// Owner changes made by one start, undone on drop unless kept.
#[derive(Default)]
pub struct Labels {
    records: Vec<OwnerRecord>,
    keep: bool,
}

impl Labels {
    /// The records, which the caller now answers for.
    pub fn keep(mut self) -> Vec<OwnerRecord> {
        self.keep = true;
        std::mem::take(&mut self.records)
    }
}

impl Drop for Labels {
    fn drop(&mut self) {
        if !self.keep {
            restore(&self.records, |_| false);
        }
    }
}

/// Prepares `files` for a VMM running as `user`: chowns them when
/// `dynamic_ownership` is on, else checks the user may open them.
pub fn label(
    user: &Identity,
    dynamic_ownership: bool,
    files: &[(PathBuf, bool)],
) -> Result<Labels> {
    let mut labels = Labels::default();
    for (path, writable) in files {
        if !dynamic_ownership {
            check_access(user, path, *writable)?;
            continue;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            // A missing file is the VMM's to report, as for QEMU.
            continue;
        };
        if (meta.uid(), meta.gid()) == (user.uid, user.gid)
            || labels.records.iter().any(|r| r.path == *path)
        {
            continue;
        }
        chown(path, user.uid, user.gid)?;
        labels.records.push(OwnerRecord {
            path: path.clone(),
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
    Ok(labels)
}

/// Gives each file back to its recorded owner, except those `in_use`
/// says another running guest still holds.
pub fn restore(records: &[OwnerRecord], in_use: impl Fn(&Path) -> bool) {
    for r in records.iter().rev() {
        if in_use(&r.path) {
            continue;
        }
        if let Err(e) = chown(&r.path, r.uid, r.gid) {
            tracing::warn!(path = %r.path.display(), "cannot restore the owner: {e}");
        }
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
        Error::new(
            ErrorCode::SystemError,
            ErrorDomain::Security,
            format!(
                "unable to set user and group to '{uid}:{gid}' on '{}': {}",
                path.display(),
                os_text(&e)
            ),
        )
    })
}

/// Whether `user` may open `path` (for writing too when `writable`), as
/// the kernel decides it for that user: checked on a short-lived thread
/// whose filesystem identity is the user's.
pub fn check_access(user: &Identity, path: &Path, writable: bool) -> Result<()> {
    let mode = if writable {
        libc::R_OK | libc::W_OK
    } else {
        libc::R_OK
    };
    let (uid, gid) = (user.uid, user.gid);
    let target = path.to_path_buf();
    let checked = std::thread::spawn(move || -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(target.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: setfsgid/setfsuid change only this thread's filesystem
        // identity (raw syscalls, not glibc's process-wide wrappers); the
        // thread ends right after the check.
        unsafe {
            libc::syscall(libc::SYS_setfsgid, gid);
            libc::syscall(libc::SYS_setfsuid, uid);
        }
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), mode, libc::AT_EACCESS) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    })
    .join()
    .map_err(|_| Error::internal("the access check thread failed"))?;
    match checked {
        Ok(()) => Ok(()),
        // A missing file is the VMM's to report.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::new(
            ErrorCode::SystemError,
            ErrorDomain::Storage,
            format!(
                "Cannot access storage file '{}' (as uid:{uid}, gid:{gid}): {}",
                path.display(),
                os_text(&e)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn nobody() -> Identity {
        Identity {
            uid: 65534,
            gid: 65534,
            groups: Vec::new(),
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oxvirt-dac-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn owners_are_taken_and_given_back() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let d = scratch("chown");
        let f = d.join("disk.img");
        std::fs::write(&f, b"x").unwrap();
        std::os::unix::fs::chown(&f, Some(12), Some(34)).unwrap();
        let labels = label(&nobody(), true, &[(f.clone(), true)]).unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().uid(), 65534);
        let records = labels.keep();
        assert_eq!(records[0].uid, 12);
        restore(&records, |_| false);
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!((m.uid(), m.gid()), (12, 34));
        // Dropped without keep: undone at once.
        drop(label(&nobody(), true, &[(f.clone(), true)]).unwrap());
        assert_eq!(std::fs::metadata(&f).unwrap().uid(), 12);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn without_dynamic_ownership_an_unreadable_file_is_refused() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let d = scratch("access");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let f = d.join("private.img");
        std::fs::write(&f, b"x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = label(&nobody(), false, &[(f.clone(), false)])
            .err()
            .unwrap();
        assert_eq!(
            e.message,
            format!(
                "Cannot access storage file '{}' (as uid:65534, gid:65534): Permission denied",
                f.display()
            )
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(label(&nobody(), false, &[(f.clone(), false)]).is_ok());
        assert!(label(&nobody(), false, &[(f.clone(), true)]).is_err());
        let _ = std::fs::remove_dir_all(d);
    }
}
