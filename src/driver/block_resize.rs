//! `virDomainBlockResize`: a running guest's disk given a new size, the
//! guest told through its device's configuration change. A raw image is
//! resized here (the file's length, as QEMU's `block_resize` truncates it)
//! and the VMM goes on with it at its new size (`disk-reopen` with
//! `resize`); a qcow2 image is resized by the VMM, which holds its
//! metadata (`disk-resize`). Virtio disks; others get libvirt's
//! "not supported".

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::DiskFormat;

use super::Driver;
use super::domain::DomainObj;
use super::fsutil::system_error;
use super::resolve::DiskRes;

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
            if def_disk.readonly || def_disk.source.as_ref().is_none_or(|s| s.path.is_none()) {
                return Err(unsupported(format!(
                    "can't resize empty or readonly disk '{target}'"
                )));
            }
            let res = l.host.disks.iter().find(|r| r.target == target).cloned();
            (l.vmm.clone(), target, res)
        };
        let res = res.ok_or_else(|| {
            unsupported(format!(
                "resizing disk '{target}' of a running domain is supported on the virtio bus only"
            ))
        })?;
        match res.format {
            DiskFormat::Raw => resize_raw(&vmm, &res, bytes).await?,
            DiskFormat::Qcow2 => {
                // qcow2 sizes are whole sectors.
                let bytes = bytes.div_ceil(512).checked_mul(512).ok_or_else(|| {
                    Error::new(ErrorCode::Overflow, ErrorDomain::Qemu, "size is too large")
                })?;
                refuse_internal_snapshots(&res.path)?;
                vmm.disk_resize(res.slot, bytes).await?;
            }
        }
        tracing::info!(disk = target, bytes, "block device resized");
        Ok(())
    }
}

/// A raw image's file given its new length, and the VMM going on with it;
/// the old length comes back if the VMM refuses.
async fn resize_raw(vmm: &super::vmm::Vmm, res: &DiskRes, bytes: u64) -> Result<()> {
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
    Ok(())
}

/// QEMU does not resize a qcow2 image that has internal snapshots (their
/// tables keep the old size).
fn refuse_internal_snapshots(path: &std::path::Path) -> Result<()> {
    let image = std::fs::File::open(path)
        .map_err(|e| system_error(format!("cannot open '{}'", path.display()), &e))?;
    let snapshots = crate::vmm::storage::qcow2_snapshot::list(&image)
        .map_err(|e| system_error(format!("cannot read '{}'", path.display()), &e))?;
    if !snapshots.is_empty() {
        return Err(Error::internal(
            "unable to execute QEMU command 'block_resize': Can't resize an image which has snapshots",
        ));
    }
    Ok(())
}
