//! The host side of a virtio console plugged into a running guest. A
//! confined VMM opens nothing after it starts, so the daemon opens the
//! backend the console's XML names and passes it as a descriptor: a new
//! pty's master, the file to append to, the socket listening at its path.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::vmm::config::SerialConfig;
use crate::vmm::serial_backend::{self, SerialBackend};

use super::fsutil::system_error;

/// A console backend opened for the VMM.
pub(super) struct ConsoleHost {
    /// What the VMM is told the descriptor is.
    pub sent: SerialConfig,
    pub fd: Option<OwnedFd>,
    /// The pty's slave, for the live XML.
    pub pty: Option<String>,
    /// The socket file made, removed again unless [`ConsoleHost::keep`].
    socket: Option<PathBuf>,
}

impl ConsoleHost {
    /// Opens the backend `wanted` (as the resolver made it from the XML).
    pub fn open(wanted: &SerialConfig) -> Result<ConsoleHost> {
        let mut host = ConsoleHost {
            sent: wanted.clone(),
            fd: None,
            pty: None,
            socket: None,
        };
        match wanted {
            SerialConfig::Pty => {
                let (master, path) = serial_backend::open_pty()
                    .map_err(|e| system_error("cannot open a pty for the console", &e))?;
                host.sent = SerialConfig::PtyFd {
                    fd: -1,
                    path: path.clone(),
                };
                host.fd = Some(master);
                host.pty = Some(path);
            }
            SerialConfig::File { path } => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| {
                        system_error(format!("Unable to open file '{}'", path.display()), &e)
                    })?;
                host.fd = Some(file.into());
            }
            SerialConfig::Unix { path } => {
                // The VMM's own rules at start: only a stale socket is
                // replaced.
                let mut backend = SerialBackend::open(wanted)
                    .map_err(|e| Error::internal(format!("cannot add the console: {e}")))?;
                let (listener, path) = backend
                    .listener
                    .take()
                    .unwrap_or_else(|| unreachable!("a unix backend listens at {path:?}"));
                host.fd = Some(listener.into());
                host.socket = Some(path);
            }
            SerialConfig::Null => {}
            SerialConfig::PtyFd { .. } | SerialConfig::Stdio => {
                return Err(Error::internal("a console's XML never names this backend"));
            }
        }
        Ok(host)
    }

    /// The console was plugged in: its socket stays until it is released.
    pub fn keep(&mut self) {
        self.socket = None;
    }
}

impl Drop for ConsoleHost {
    fn drop(&mut self) {
        if let Some(p) = &self.socket {
            let _ = std::fs::remove_file(p);
        }
    }
}
