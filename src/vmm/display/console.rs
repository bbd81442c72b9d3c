//! The guest's console as the VMM serves it: the VNC server on the
//! sockets of the configuration, and what the host asks through the
//! control socket (a screendump, keys, a new password).
//!
//! Sockets are bound (or adopted from the daemon) while the machine is
//! built; the server's threads start once the VMM is confined.

use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::Arc;

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};

use super::vnc::{Endpoint, Listener, SharePolicy, Spawner, VncOptions, VncServer};
use super::{Buttons, DisplaySource, Frame, InputSink};
use crate::keymap::Layout;
use crate::vmm::config::{VncConfig, VncListenerConfig, VncSharePolicy};
use crate::vmm::error::{Error, Result};
use crate::vmm::sandbox::{self, ThreadKind};

/// Sends keys to one device and the pointer to another (an absolute one
/// such as a USB tablet when the guest has it, else the PS/2 mouse).
pub struct InputRouter {
    pub keyboard: Arc<dyn InputSink>,
    pub pointer: Arc<dyn InputSink>,
}

impl InputSink for InputRouter {
    fn key(&self, code: u16, down: bool) {
        self.keyboard.key(code, down);
    }

    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        self.pointer.pointer(x, y, width, height, buttons);
    }
}

/// The display and input of a guest with a display adapter.
pub struct Console {
    source: Arc<dyn DisplaySource>,
    input: Arc<dyn InputSink>,
    endpoints: Vec<Endpoint>,
    options: VncOptions,
    server: Option<VncServer>,
}

impl Console {
    /// Binds or adopts the listening sockets of `vnc`.
    pub fn new(
        vnc: Option<&VncConfig>,
        desktop_name: &str,
        source: Arc<dyn DisplaySource>,
        input: Arc<dyn InputSink>,
    ) -> Result<Console> {
        let mut endpoints = Vec::new();
        let mut options = VncOptions {
            desktop_name: desktop_name.to_string(),
            ..VncOptions::default()
        };
        if let Some(v) = vnc {
            for l in &v.listeners {
                endpoints.push(endpoint(l)?);
            }
            options.password = v.password.clone();
            options.layout = match &v.keymap {
                Some(name) => Some(
                    Layout::named(name)
                        .ok_or_else(|| Error::Config(format!("unknown keymap '{name}'")))?,
                ),
                None => None,
            };
            options.share_policy = match v.share_policy {
                VncSharePolicy::AllowExclusive => SharePolicy::AllowExclusive,
                VncSharePolicy::ForceShared => SharePolicy::ForceShared,
                VncSharePolicy::Ignore => SharePolicy::Ignore,
            };
        }
        Ok(Console {
            source,
            input,
            endpoints,
            options,
            server: None,
        })
    }

    /// Starts serving clients, each thread confined as a VNC thread.
    pub fn start(&mut self) -> io::Result<()> {
        if self.endpoints.is_empty() {
            return Ok(());
        }
        let spawn: Spawner =
            Arc::new(|name, body| sandbox::spawn(ThreadKind::Vnc, name, None, body));
        let server = VncServer::start(
            std::mem::take(&mut self.endpoints),
            std::mem::take(&mut self.options),
            self.source.clone(),
            self.input.clone(),
            spawn,
        )?;
        self.server = Some(server);
        Ok(())
    }

    /// Writes the screen as a PPM image to `out`, which must be a regular
    /// file: a pipe or socket whose reader stalls would stall the VMM's
    /// control loop with it.
    pub fn screendump(&self, out: OwnedFd) -> io::Result<()> {
        let mut file = std::fs::File::from(out);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the screendump target is not a regular file",
            ));
        }
        let mut frame = Frame::default();
        self.source.render(&mut frame);
        file.write_all(&frame.to_ppm())?;
        file.flush()
    }

    /// Serves a VNC client on a connected socket the host passed.
    pub fn add_client(&self, fd: OwnedFd, skip_auth: bool) -> io::Result<()> {
        let server = self.server.as_ref().ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotConnected, "the guest has no VNC server")
        })?;
        server.add_client(std::os::unix::net::UnixStream::from(fd), skip_auth);
        Ok(())
    }

    pub fn input(&self) -> &Arc<dyn InputSink> {
        &self.input
    }

    /// Sets the password new VNC clients must give (none: no login).
    /// Without listening sockets there are no clients to ask.
    pub fn set_password(&self, password: Option<String>) {
        if let Some(s) = &self.server {
            s.set_password(password);
        }
    }

    /// Bytes the VNC server has sent to all its clients.
    pub fn bytes_sent(&self) -> u64 {
        self.server.as_ref().map_or(0, VncServer::bytes_sent)
    }

    pub fn client_count(&self) -> usize {
        self.server.as_ref().map_or(0, VncServer::client_count)
    }
}

fn endpoint(l: &VncListenerConfig) -> Result<Endpoint> {
    Ok(match l {
        VncListenerConfig::Fd { fd, websocket } => Endpoint {
            listener: adopt(*fd)?,
            websocket: *websocket,
        },
        VncListenerConfig::Tcp { address, websocket } => Endpoint {
            listener: Listener::Tcp(
                TcpListener::bind(address)
                    .map_err(Error::io(format!("binding the VNC server to {address}")))?,
            ),
            websocket: *websocket,
        },
        VncListenerConfig::Unix { path } => {
            let _ = std::fs::remove_file(path);
            Endpoint {
                listener: Listener::Unix(UnixListener::bind(path).map_err(Error::io(format!(
                    "binding the VNC server to {}",
                    path.display()
                )))?),
                websocket: false,
            }
        }
    })
}

/// Takes over a listening socket the daemon passed, by its family.
fn adopt(fd: RawFd) -> Result<Listener> {
    let addr: SockaddrStorage = getsockname(fd)
        .map_err(|e| Error::Config(format!("VNC listener fd {fd} is not a socket: {e}")))?;
    let family = addr.family();
    // SAFETY: the configuration hands this inherited descriptor to the
    // VNC server alone; nothing else in the process owns or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => {
            Ok(Listener::Tcp(TcpListener::from(owned)))
        }
        Some(AddressFamily::Unix) => Ok(Listener::Unix(UnixListener::from(owned))),
        other => Err(Error::Config(format!(
            "VNC listener fd {fd} has address family {other:?}"
        ))),
    }
}
