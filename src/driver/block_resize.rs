//! `virDomainBlockResize`: a running guest's disk given a new size, the
//! guest told through its device's configuration change. The image is
//! resized here (a raw file's length, as QEMU's `block_resize` truncates
//! it) and the VMM goes on with it at its new size (`disk-reopen` with
//! `resize`). Virtio disks with raw images; others get libvirt's
//! "not supported".

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;

use super::Driver;
use super::domain::DomainObj;
use super::fsutil::system_error;

/// `VIR_DOMAIN_BLOCK_RESIZE_BYTES`: the size is in bytes, not KiB.
pub const BLOCK_RESIZE_BYTES: u32 = 1;

fn unsupported(detail: String) -> Error {
    Error::new(ErrorCode::OperationUnsupported, ErrorDomain::Qemu, detail)
}

impl Driver {
    /// `virDomainBlockResize`: `disk` by target or source path, `size` in
    /// KiB (bytes with [`BLOCK_RESIZE_BYTES`]).
    pub async fn block_resize(
        &self,
        obj: &Arc<DomainObj>,
        disk: &str,
        size: u64,
        flags: u32,
    ) -> Result<()> {
        super::check_flags(flags, BLOCK_RESIZE_BYTES, "qemuDomainBlockResize")?;
        let bytes = if flags & BLOCK_RESIZE_BYTES != 0 {
            size
        } else {
            size.checked_mul(1024).ok_or_else(|| {
                Error::new(
                    ErrorCode::Overflow,
                    ErrorDomain::Qemu,
                    format!("size must be less than {}", u64::MAX / 1024),
                )
            })?
        };
        let _job = obj.begin_job().await?;
        let (vmm, target, res) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let l = d
                .live
                .as_ref()
                .ok_or_else(|| Error::operation_invalid("domain is not running"))?;
            let def_disk = l
                .def
                .devices
                .disks
                .iter()
                .find(|x| {
                    x.target.dev == disk
                        || x.source.as_ref().and_then(|s| s.path.as_deref()) == Some(disk)
                })
                .ok_or_else(|| {
                    Error::invalid_arg(format!("disk '{disk}' was not found in the domain config"))
                })?;
            let target = def_disk.target.dev.clone();
            let res = l.host.disks.iter().find(|r| r.target == target).cloned();
            (l.vmm.clone(), target, res)
        };
        let res = res.ok_or_else(|| {
            unsupported(format!(
                "resizing disk '{target}' of a running domain is supported on the virtio bus only"
            ))
        })?;
        if res.format != DiskFormat::Raw {
            return Err(unsupported(format!(
                "resizing the qcow2 image of disk '{target}' of a running domain is not supported"
            )));
        }
        let path = res.path.display();
        let failed = |what: &str, e: std::io::Error| system_error(format!("{what} '{path}'"), &e);
        let image = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&res.path)
            .map_err(|e| failed("cannot open", e))?;
        let old = image
            .metadata()
            .map_err(|e| failed("cannot stat", e))?
            .len();
        let for_vmm = image.try_clone().map_err(|e| failed("cannot open", e))?;
        image
            .set_len(bytes)
            .map_err(|e| failed("cannot resize", e))?;
        if let Err(e) = vmm.disk_resized(res.slot, for_vmm).await {
            // The guest keeps its disk as it was.
            let _ = image.set_len(old);
            return Err(e);
        }
        tracing::info!(disk = target, bytes, "block device resized");
        Ok(())
    }
}
