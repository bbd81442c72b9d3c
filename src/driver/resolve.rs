//! Host resolution: from a domain definition to the `VmConfig` the VMM
//! runs, with every host resource checked first (files exist and can be
//! read) so that a start fails before anything is spawned.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::{BootConfig, CONFIG_VERSION, CpuConfig, SerialConfig, Topology, VmConfig};
use crate::xml::Domain;
use crate::xml::model::chardev::{CharSourceType, Chardev};

use super::fsutil::os_text;

/// Checks that `path` can be opened for reading, worded as libvirt words it.
fn check_readable(path: &str, storage: bool) -> Result<()> {
    match std::fs::File::open(path) {
        Ok(_) => Ok(()),
        Err(e) => {
            let what = if storage {
                format!("Cannot access storage file '{path}'")
            } else {
                format!("Cannot access file '{path}'")
            };
            Err(Error::new(
                ErrorCode::SystemError,
                ErrorDomain::Qemu,
                format!("{what}: {}", os_text(&e)),
            ))
        }
    }
}

fn serial_backend(dev: &Chardev) -> Result<SerialConfig> {
    let path = dev.sources.first().and_then(|s| s.path.clone());
    Ok(match dev.source_type {
        CharSourceType::Pty => SerialConfig::Pty,
        CharSourceType::Null => SerialConfig::Null,
        CharSourceType::File => SerialConfig::File {
            path: PathBuf::from(
                path.ok_or_else(|| Error::xml("Missing source path attribute for char device"))?,
            ),
        },
        CharSourceType::Unix => SerialConfig::Unix {
            path: PathBuf::from(
                path.ok_or_else(|| Error::xml("Missing source path attribute for char device"))?,
            ),
        },
        other => {
            return Err(Error::unsupported(format!(
                "serial backend '{other}' is not supported by the VMM yet"
            )));
        }
    })
}

/// Builds the VMM configuration of `def`, checking host files.
pub fn resolve(def: &Domain) -> Result<VmConfig> {
    let kernel = def.os.kernel.as_deref().ok_or_else(|| {
        Error::unsupported("oxvirt can only boot a kernel directly: <os><kernel> is required")
    })?;
    check_readable(kernel, false)?;
    if let Some(initrd) = def.os.initrd.as_deref() {
        check_readable(initrd, false)?;
    }
    for disk in &def.devices.disks {
        if let Some(p) = disk.source.as_ref().and_then(|s| s.path.as_deref()) {
            check_readable(p, true)?;
        }
    }
    if let Some(disk) = def.devices.disks.first() {
        return Err(Error::unsupported(format!(
            "disk '{}': the VMM has no block devices yet",
            disk.target.dev
        )));
    }
    if !def.devices.interfaces.is_empty() {
        return Err(Error::unsupported(
            "network interfaces: the VMM has no network devices yet",
        ));
    }
    let serial = match def.devices.serials.first() {
        Some(s) => serial_backend(s)?,
        None => SerialConfig::Null,
    };
    let count = def.vcpu.current.unwrap_or(def.vcpu.max).max(1);
    let topology = def
        .cpu
        .as_ref()
        .and_then(|c| c.topology.as_ref())
        .filter(|t| t.dies <= 1)
        .map(|t| Topology {
            sockets: t.sockets,
            cores: t.cores,
            threads: t.threads,
        })
        .filter(|t| {
            u64::from(t.sockets) * u64::from(t.cores) * u64::from(t.threads) == u64::from(count)
        });
    let memory_kib = if def.current_memory_kib > 0 {
        def.current_memory_kib
    } else {
        def.memory_kib
    };
    let cfg = VmConfig {
        version: CONFIG_VERSION,
        name: def.name.clone(),
        uuid: Some(def.uuid.to_string()),
        memory_mib: memory_kib.div_ceil(1024).max(1),
        cpus: CpuConfig { count, topology },
        boot: BootConfig {
            kernel: PathBuf::from(kernel),
            initrd: def.os.initrd.as_deref().map(PathBuf::from),
            cmdline: def.os.cmdline.clone().unwrap_or_default(),
        },
        serial,
        devices: Vec::new(),
        on_reboot: Default::default(),
    };
    cfg.validate()
        .map_err(|e| Error::unsupported(e.to_string()))?;
    Ok(cfg)
}

/// Files a start creates for this configuration and a stop removes.
pub fn created_files(cfg: &VmConfig) -> Vec<&Path> {
    match &cfg.serial {
        SerialConfig::Unix { path } => vec![path.as_path()],
        _ => Vec::new(),
    }
}
