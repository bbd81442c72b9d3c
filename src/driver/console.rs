//! The guest's screen and keyboard from the host: `virDomainScreenshot`
//! and `virDomainSendKey`.

use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keymap::{self, Codeset};

use super::Driver;
use super::domain::DomainObj;

/// libvirt's `VIR_DOMAIN_SEND_KEY_MAX_KEYS`.
pub const SEND_KEY_MAX_KEYS: usize = 16;
/// How long QEMU holds keys when the caller gives no time.
const DEFAULT_HOLD_MS: u32 = 100;
/// What a screenshot is (QEMU's screendump writes PPM).
pub const SCREENSHOT_MIME: &str = "image/x-portable-pixmap";

impl Driver {
    /// `virDomainScreenshot`: the screen of `screen` as an image file,
    /// rewound, and its MIME type. The caller streams the file.
    pub async fn screenshot(
        &self,
        obj: &Arc<DomainObj>,
        screen: u32,
        flags: u32,
    ) -> Result<(std::fs::File, &'static str)> {
        super::check_flags(flags, 0, "virDomainScreenshot")?;
        let _job = obj.begin_job().await?;
        let (vmm, heads) = obj.with_live(|l| {
            let heads = l
                .def
                .devices
                .videos
                .iter()
                .filter(|v| v.model != Some(crate::xml::model::display::VideoModel::None))
                .map(|v| v.heads.unwrap_or(1))
                .sum::<u32>();
            (l.vmm.clone(), heads)
        })?;
        if heads == 0 {
            return Err(Error::operation_invalid(
                "no screens to take screenshot from",
            ));
        }
        if screen >= heads {
            return Err(Error::operation_invalid("no such screen ID"));
        }
        let mut file = tempfile_in(&self.inner.cfg.run_dir)?;
        vmm.screendump(&file).await?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| super::fsutil::system_error("unable to read screenshot", &e))?;
        Ok((file, SCREENSHOT_MIME))
    }

    /// `virDomainSendKey`.
    pub async fn send_key(
        &self,
        obj: &Arc<DomainObj>,
        codeset: u32,
        holdtime: u32,
        keycodes: &[u32],
        flags: u32,
    ) -> Result<()> {
        if keycodes.is_empty() {
            return Err(Error::invalid_arg(
                "nkeycodes in virDomainSendKey must be greater than 0",
            ));
        }
        let set = Codeset::try_from(codeset)
            .map_err(|_| Error::invalid_arg(format!("Unsupported codeset '{codeset}'")))?;
        if keycodes.len() > SEND_KEY_MAX_KEYS {
            return Err(Error::invalid_arg(format!(
                "nkeycodes must be <= {SEND_KEY_MAX_KEYS}"
            )));
        }
        super::check_flags(flags, 0, "virDomainSendKey")?;
        let keys = keycodes
            .iter()
            .map(|&k| {
                keymap::to_linux(set, k).ok_or_else(|| {
                    Error::internal(format!(
                        "cannot translate keycode {k} of {set} codeset to qnum keycode"
                    ))
                })
            })
            .collect::<Result<Vec<u16>>>()?;
        let _job = obj.begin_job().await?;
        let vmm = obj.with_live(|l| l.vmm.clone())?;
        let hold = if holdtime == 0 {
            DEFAULT_HOLD_MS
        } else {
            holdtime
        };
        vmm.send_key(&keys, hold).await
    }
}

/// `VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH`.
pub const OPEN_GRAPHICS_SKIPAUTH: u32 = 1;

impl Driver {
    /// `virDomainOpenGraphicsFD`: a socket connected to the guest's VNC
    /// server (graphics output `idx`), without the password question
    /// with `VIR_DOMAIN_OPEN_GRAPHICS_SKIPAUTH`.
    pub async fn open_graphics_fd(
        &self,
        obj: &Arc<DomainObj>,
        idx: u32,
        flags: u32,
    ) -> Result<std::os::fd::OwnedFd> {
        super::check_flags(flags, OPEN_GRAPHICS_SKIPAUTH, "virDomainOpenGraphicsFD")?;
        let _job = obj.begin_job().await?;
        let (vmm, kind) = obj.with_live(|l| {
            let kind = l
                .def
                .devices
                .graphics
                .get(idx as usize)
                .map(|g| g.graphics_type);
            (l.vmm.clone(), kind)
        })?;
        match kind {
            None => {
                return Err(Error::internal(format!(
                    "No graphics backend with index {idx}"
                )));
            }
            Some(crate::xml::model::display::GraphicsType::Vnc) => {}
            Some(other) => {
                return Err(Error::unsupported(format!(
                    "Can only open VNC or SPICE graphics backends, not {other}"
                )));
            }
        }
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| super::fsutil::system_error("unable to create socket pair", &e))?;
        vmm.vnc_add_client(theirs.into(), flags & OPEN_GRAPHICS_SKIPAUTH != 0)
            .await?;
        Ok(ours.into())
    }
}

/// An anonymous file in `dir` (unlinked at once).
fn tempfile_in(dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .open(dir)
        .or_else(|_| {
            // Filesystems without O_TMPFILE: a named file, removed at once.
            let p = dir.join(format!(".screendump.{}", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&p);
            let _ = std::fs::remove_file(&p);
            f
        })
        .map_err(|e| {
            super::fsutil::system_error(
                format!("cannot create a screenshot file in '{}'", dir.display()),
                &e,
            )
        })
}
