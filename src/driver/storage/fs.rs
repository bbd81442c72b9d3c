//! The host side of a filesystem pool (`<pool type='fs'>`): a block
//! device holding a filesystem, mounted on the pool's directory while the
//! pool is active. Volumes are files in it, as in a directory pool. Like
//! libvirt, the daemon runs the host's mount(8), umount(8), mkfs(8) and
//! blkid(8).

use std::path::Path;
use std::process::Command;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::storage::PoolDef;

/// `virCommandRun`'s report of a command that failed.
fn run(argv: &[&str]) -> Result<String> {
    let shown = argv.join(" ");
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| {
            Error::new(
                ErrorCode::SystemError,
                ErrorDomain::None,
                format!("Cannot find '{}' in path: {e}", argv[0]),
            )
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    let status = match out.status.code() {
        Some(c) => format!("exit status {c}"),
        None => "fatal signal".to_string(),
    };
    Err(Error::new(
        ErrorCode::InternalError,
        ErrorDomain::None,
        format!(
            "Child process ({shown}) unexpected {status}{}{err}",
            if err.is_empty() { "" } else { ": " }
        ),
    ))
}

/// The one source device, as libvirt requires of a filesystem pool.
fn device(def: &PoolDef) -> Result<&str> {
    match def.source_devices.as_slice() {
        [d] => Ok(d),
        [] => Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::Storage,
            "missing source device",
        )),
        _ => Err(Error::new(
            ErrorCode::ConfigUnsupported,
            ErrorDomain::Storage,
            "expected exactly 1 device for the storage pool",
        )),
    }
}

fn format(def: &PoolDef) -> &str {
    def.source_format.as_deref().unwrap_or("auto")
}

/// Whether the pool's device is mounted on its directory (a regular file
/// as the device is mounted through a loop device backed by it).
pub fn is_mounted(def: &PoolDef) -> bool {
    let Ok(dev) = device(def) else { return false };
    let canon = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| p.into());
    let target = canon(&def.target_path);
    let dev = canon(dev);
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut f = l.split_whitespace();
            let (Some(src), Some(dir)) = (f.next(), f.next()) else {
                return false;
            };
            Path::new(dir) == target
                && (canon(src) == dev || loop_backing(src) == Some(dev.clone()))
        })
}

/// The file behind a loop device, if `src` is one.
fn loop_backing(src: &str) -> Option<std::path::PathBuf> {
    let name = Path::new(src).file_name()?.to_str()?;
    if !name.starts_with("loop") {
        return None;
    }
    let backing = std::fs::read_to_string(format!("/sys/block/{name}/loop/backing_file")).ok()?;
    Some(backing.trim().into())
}

/// Starting the pool: mounts its device unless it is mounted already.
pub fn mount(def: &PoolDef) -> Result<()> {
    let dev = device(def)?;
    if is_mounted(def) {
        return Ok(());
    }
    run(&["mount", "-t", format(def), dev, &def.target_path]).map(|_| ())
}

/// Stopping the pool: unmounts its device if it is mounted.
pub fn unmount(def: &PoolDef) -> Result<()> {
    device(def)?;
    if !is_mounted(def) {
        return Ok(());
    }
    run(&["umount", &def.target_path]).map(|_| ())
}

/// `pool-build --overwrite` / `--no-overwrite`: makes the filesystem
/// (the latter only on a device with none).
pub fn make_filesystem(def: &PoolDef, overwrite: bool) -> Result<()> {
    let Some(dev) = def.source_devices.first() else {
        return Err(Error::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Storage,
            format!(
                "No source device specified when formatting pool '{}'",
                def.name
            ),
        ));
    };
    if !Path::new(dev).exists() {
        return Err(Error::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Storage,
            format!(
                "Source device does not exist when formatting pool '{}'",
                def.name
            ),
        ));
    }
    // "auto" is handed to mkfs as it is, as libvirt does (mkfs fails).
    let fmt = format(def);
    if !overwrite {
        let found = Command::new("blkid")
            .args(["-o", "value", "-s", "TYPE", dev])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        // libvirt's probe: the expected filesystem there already, or
        // another one, both refuse; nothing recognised goes on to mkfs.
        if found == fmt {
            return Err(Error::new(
                ErrorCode::StoragePoolBuilt,
                ErrorDomain::Storage,
                format!("Device '{dev}' already formatted using '{fmt}'"),
            ));
        }
        if !found.is_empty() {
            return Err(Error::new(
                ErrorCode::StoragePoolBuilt,
                ErrorDomain::Storage,
                format!(
                    "Format of device '{dev}' does not match the expected format '{fmt}', forced overwrite is necessary"
                ),
            ));
        }
    }
    let mut argv = vec!["mkfs", "-t", fmt];
    match fmt {
        "xfs" => argv.push("-f"),
        "ext2" | "ext3" | "ext4" => argv.push("-F"),
        "vfat" => argv.push("-I"),
        _ => {}
    }
    argv.push(dev);
    run(&argv).map(|_| ())
}
