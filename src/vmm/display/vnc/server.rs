//! The server: accept threads (one per endpoint), a thread per client,
//! and what they share (frames, password, the client table).

use super::auth::FailureDelay;
use super::conn::{Counters, Socket};
use super::frames::FrameCache;
use super::{Endpoint, Listener, SharePolicy, VncOptions, session};
use crate::vmm::display::{DisplaySource, InputSink};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Connections beyond this many are closed at once.
pub const MAX_CLIENTS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Still in the handshake.
    Connecting,
    Shared,
    Exclusive,
    /// Disconnected by an exclusive client, on its way out.
    Leaving,
}

struct ClientEntry {
    id: u64,
    /// A second handle on the client's socket, to shut it down.
    socket: Socket,
    mode: Mode,
}

/// Starts a named thread running a body: how the server gets threads.
pub type Spawner = Arc<
    dyn Fn(&str, Box<dyn FnOnce() + Send>) -> io::Result<std::thread::JoinHandle<()>> + Send + Sync,
>;

/// A [`Spawner`] of plain threads.
pub fn plain_threads() -> Spawner {
    Arc::new(|name, body| std::thread::Builder::new().name(name.into()).spawn(body))
}

/// What every thread of one server sees.
pub struct Shared {
    password: Mutex<Option<String>>,
    share_policy: SharePolicy,
    pub desktop_name: String,
    pub layout: Option<crate::keymap::Layout>,
    pub frames: FrameCache,
    pub input: Arc<dyn InputSink>,
    pub failures: FailureDelay,
    clients: Mutex<Vec<ClientEntry>>,
    total_bytes: Arc<AtomicU64>,
    stop: AtomicBool,
    spawn: Spawner,
    next_id: AtomicU64,
}

impl Shared {
    fn clients(&self) -> MutexGuard<'_, Vec<ClientEntry>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn password(&self) -> Option<String> {
        self.password
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Applies the share policy to client `id`'s ClientInit shared flag;
    /// false means the client must be turned away.
    pub fn join(&self, id: u64, shared_flag: bool) -> bool {
        let mut clients = self.clients();
        let exclusive = match self.share_policy {
            SharePolicy::AllowExclusive => !shared_flag,
            SharePolicy::ForceShared | SharePolicy::Ignore => false,
        };
        if exclusive {
            for c in clients.iter_mut().filter(|c| c.id != id) {
                if matches!(c.mode, Mode::Shared | Mode::Exclusive) {
                    tracing::info!("vnc: client {} disconnected by an exclusive client", c.id);
                    c.mode = Mode::Leaving;
                    c.socket.shutdown();
                }
            }
        } else if self.share_policy == SharePolicy::AllowExclusive
            && clients
                .iter()
                .any(|c| c.id != id && c.mode == Mode::Exclusive)
        {
            return false;
        }
        if let Some(me) = clients.iter_mut().find(|c| c.id == id) {
            me.mode = if exclusive {
                Mode::Exclusive
            } else {
                Mode::Shared
            };
        }
        true
    }

    /// Adds a connection to the table unless it is full.
    fn register(&self, socket: &Socket) -> Option<u64> {
        let handle = socket.try_clone().ok()?;
        let mut clients = self.clients();
        if clients.len() >= MAX_CLIENTS {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        clients.push(ClientEntry {
            id,
            socket: handle,
            mode: Mode::Connecting,
        });
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.clients().retain(|c| c.id != id);
    }
}

/// A VNC server for one guest display; see the module documentation.
pub struct VncServer {
    shared: Arc<Shared>,
    accept_threads: Vec<JoinHandle<()>>,
}

impl VncServer {
    /// Starts accepting on every endpoint. Every thread of the server is
    /// started through `spawn` (the VMM's confined thread launcher).
    pub fn start(
        endpoints: Vec<Endpoint>,
        opts: VncOptions,
        source: Arc<dyn DisplaySource>,
        input: Arc<dyn InputSink>,
        spawn: Spawner,
    ) -> io::Result<VncServer> {
        let shared = Arc::new(Shared {
            password: Mutex::new(opts.password),
            share_policy: opts.share_policy,
            desktop_name: opts.desktop_name,
            layout: opts.layout,
            frames: FrameCache::new(source),
            input,
            failures: FailureDelay::default(),
            clients: Mutex::new(Vec::new()),
            total_bytes: Arc::default(),
            stop: AtomicBool::new(false),
            spawn,
            next_id: AtomicU64::new(1),
        });
        let mut server = VncServer {
            shared: shared.clone(),
            accept_threads: Vec::new(),
        };
        for ep in endpoints {
            match &ep.listener {
                Listener::Tcp(l) => l.set_nonblocking(true)?,
                Listener::Unix(l) => l.set_nonblocking(true)?,
            }
            let accepting = shared.clone();
            let thread =
                (shared.spawn)("vnc-accept", Box::new(move || accept_loop(&accepting, ep)))?;
            // On an error here, dropping `server` stops the threads started.
            server.accept_threads.push(thread);
        }
        Ok(server)
    }

    /// Replaces the password (`None`: no authentication) for new clients.
    pub fn set_password(&self, password: Option<String>) {
        *self
            .shared
            .password
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = password;
    }

    /// Serves a client connected through a socket the host hands over
    /// (libvirt's `virDomainOpenGraphicsFD`); with `skip_auth` it is not
    /// asked for the password.
    pub fn add_client(&self, stream: std::os::unix::net::UnixStream, skip_auth: bool) {
        start_client(&self.shared, Socket::Unix(stream), false, skip_auth);
    }

    /// Open connections, including ones still in the handshake.
    pub fn client_count(&self) -> usize {
        self.shared.clients().len()
    }

    /// Bytes sent to all clients since the start.
    pub fn bytes_sent(&self) -> u64 {
        self.shared.total_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for VncServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for c in self.shared.clients().iter() {
            c.socket.shutdown();
        }
        for t in self.accept_threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_one(listener: &Listener) -> io::Result<Socket> {
    Ok(match listener {
        Listener::Tcp(l) => Socket::Tcp(l.accept()?.0),
        Listener::Unix(l) => Socket::Unix(l.accept()?.0),
    })
}

fn accept_loop(shared: &Arc<Shared>, ep: Endpoint) {
    while !shared.stopping() {
        let ready = {
            let fd = match &ep.listener {
                Listener::Tcp(l) => l.as_fd(),
                Listener::Unix(l) => l.as_fd(),
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(200u16))
        };
        match ready {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!("vnc: cannot wait for connections: {e}");
                return;
            }
        }
        match accept_one(&ep.listener) {
            Ok(socket) => start_client(shared, socket, ep.websocket, false),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning.
                tracing::warn!("vnc: accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

fn start_client(shared: &Arc<Shared>, socket: Socket, websocket: bool, skip_auth: bool) {
    let Some(id) = shared.register(&socket) else {
        tracing::warn!(
            "vnc: refused {}: {MAX_CLIENTS} clients already",
            socket.peer()
        );
        return;
    };
    let counters = Counters {
        client: Arc::default(),
        total: shared.total_bytes.clone(),
    };
    let thread_shared = shared.clone();
    let spawned = (shared.spawn)(
        "vnc-client",
        Box::new(move || {
            session::serve(&thread_shared, id, socket, websocket, skip_auth, counters);
            thread_shared.unregister(id);
        }),
    );
    if let Err(e) = spawned {
        tracing::warn!("vnc: cannot start a client thread: {e}");
        shared.unregister(id);
    }
}
