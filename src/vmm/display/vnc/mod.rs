//! A VNC (RFB 3.8) server for one guest's screen.
//!
//! oxvirt-vmm starts one per guest on listening sockets the daemon made.
//! Each endpoint gets an accept thread and each client a thread of its
//! own (at most [`server::MAX_CLIENTS`]), with blocking I/O and short read
//! timeouts. Clients share one rendered frame ([`frames`]); each is sent
//! only the tiles that changed since its last update, as Raw or ZRLE, and
//! only when it asked. Security is None or VNC Authentication; endpoints
//! may speak WebSocket for browser clients. Supported pseudo-encodings:
//! DesktopSize, ExtendedDesktopSize, QEMU Extended Key Event and QEMU
//! Pointer Motion Change (always absolute).

mod auth;
mod conn;
mod dirty;
mod encode;
mod frames;
mod handshake;
mod keys;
mod pixel_format;
mod protocol;
mod server;
mod session;
mod websocket;

#[cfg(test)]
mod tests;

pub use server::{MAX_CLIENTS, Spawner, VncServer, plain_threads};

/// A listening socket the daemon made for the server.
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

pub struct Endpoint {
    pub listener: Listener,
    /// Clients speak WebSocket (libvirt's `websocket` port, noVNC).
    pub websocket: bool,
}

/// libvirt's `sharePolicy`: what a client's ClientInit shared flag does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SharePolicy {
    /// A client asking for exclusive access disconnects the others, and
    /// shared clients are refused while an exclusive one is connected.
    #[default]
    AllowExclusive,
    /// Every client is treated as shared.
    ForceShared,
    /// The flag is ignored: every client is shared.
    Ignore,
}

#[derive(Clone, Debug, Default)]
pub struct VncOptions {
    /// `None`: no authentication. `Some("")`: VNC Authentication that
    /// nobody passes (libvirt's `passwd=''`).
    pub password: Option<String>,
    pub share_policy: SharePolicy,
    /// The name clients show, usually the domain name.
    pub desktop_name: String,
    /// The keyboard layout plain key events (keysyms) are typed on;
    /// none: the US layout.
    pub layout: Option<crate::keymap::Layout>,
}
