//! Unix-socket listeners (read-write and read-only) and the per-connection
//! tasks: one reader that answers keepalive pings itself and spawns a task
//! per call (calls are pipelined, replies may go out in any order), and
//! one writer draining the connection's queue.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use crate::driver::Driver;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::conn::{Conn, Shared};
use super::dispatch::{self, Outcome};
use super::frame::{
    self, Header, KEEPALIVE_PING, MsgType, PROGRAM_KEEPALIVE, PROGRAM_QEMU, PROGRAM_REMOTE,
    PROTOCOL_VERSION, STATUS_OK,
};
use super::{stream, vol_stream};

/// Where to listen.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// Read-write socket (`/run/libvirt/libvirt-sock`).
    pub socket: PathBuf,
    /// Read-only socket (`/run/libvirt/libvirt-sock-ro`), if any.
    pub socket_ro: Option<PathBuf>,
    /// How many clients may be served at once, and how many calls each.
    pub limits: ClientLimits,
}

/// libvirt's `max_clients` and `max_client_requests`. At `max_clients`,
/// new connections are closed at once, as libvirt closes them; the
/// read-only socket's clients cannot take the read-write socket's places,
/// so a flood of local users' connections never locks root out.
#[derive(Clone, Copy, Debug)]
pub struct ClientLimits {
    pub max_clients: usize,
    pub max_client_requests: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_clients: crate::daemon_config::DEFAULT_MAX_CLIENTS,
            max_client_requests: crate::daemon_config::DEFAULT_MAX_CLIENT_REQUESTS,
        }
    }
}

impl RpcConfig {
    pub fn system_default() -> Self {
        RpcConfig {
            socket: PathBuf::from("/run/libvirt/libvirt-sock"),
            socket_ro: Some(PathBuf::from("/run/libvirt/libvirt-sock-ro")),
            limits: ClientLimits::default(),
        }
    }
}

/// Bound listeners, ready to serve.
pub struct Listeners {
    rw: UnixListener,
    ro: Option<UnixListener>,
    paths: Vec<PathBuf>,
    limits: ClientLimits,
}

fn sys_err(what: String, e: std::io::Error) -> Error {
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::Rpc,
        format!("{what}: {e}"),
    )
}

/// Whether something accepts connections at `path`.
fn is_served(path: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(path).is_ok()
}

/// Removes a socket file nobody listens on; refuses if someone does.
fn clear_stale(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if is_served(path) {
        return Err(Error::new(
            ErrorCode::OperationFailed,
            ErrorDomain::Rpc,
            format!(
                "another daemon is already serving {} (stop libvirtd/virtqemud first)",
                path.display()
            ),
        ));
    }
    std::fs::remove_file(path)
        .map_err(|e| sys_err(format!("cannot remove stale {}", path.display()), e))
}

/// The gid of group `name` from /etc/group.
fn group_id(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.next()?;
        f.next()?.parse().ok()
    })
}

fn bind_one(path: &Path, mode: u32, group: Option<u32>) -> Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| sys_err(format!("cannot create {}", dir.display()), e))?;
    }
    clear_stale(path)?;
    let l = UnixListener::bind(path)
        .map_err(|e| sys_err(format!("cannot listen on {}", path.display()), e))?;
    if let Some(gid) = group
        && let Err(e) = std::os::unix::fs::chown(path, None, Some(gid))
    {
        tracing::warn!("cannot give {} to group {gid}: {e}", path.display());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| sys_err(format!("cannot set mode of {}", path.display()), e))?;
    Ok(l)
}

/// Binds the sockets. A stale socket file is replaced; a live one (another
/// daemon) is an error. A stale `virtqemud-sock` beside ours would make
/// clients try it first, so it is removed too.
pub fn bind(cfg: &RpcConfig) -> Result<Listeners> {
    if let Some(dir) = cfg.socket.parent() {
        for name in ["virtqemud-sock", "virtqemud-sock-ro"] {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok() {
                if is_served(&p) {
                    tracing::warn!(
                        "{} is served by another daemon; qemu:///system clients will use it instead of oxvirtd",
                        p.display()
                    );
                } else if let Err(e) = std::fs::remove_file(&p) {
                    tracing::warn!("cannot remove stale {}: {e}", p.display());
                } else {
                    tracing::info!("removed stale {}", p.display());
                }
            }
        }
    }
    let group = group_id("libvirt");
    let rw_mode = if group.is_some() { 0o660 } else { 0o600 };
    let rw = bind_one(&cfg.socket, rw_mode, group)?;
    let mut paths = vec![cfg.socket.clone()];
    let ro = match &cfg.socket_ro {
        Some(p) => {
            let l = bind_one(p, 0o666, None)?;
            paths.push(p.clone());
            Some(l)
        }
        None => None,
    };
    Ok(Listeners {
        rw,
        ro,
        paths,
        limits: cfg.limits,
    })
}

/// Listeners the service manager bound for us (socket activation): used
/// as they are, without touching the socket files' owner or mode.
pub fn adopt(
    rw: std::os::unix::net::UnixListener,
    ro: Option<std::os::unix::net::UnixListener>,
    limits: ClientLimits,
) -> Result<Listeners> {
    let wrap = |l: std::os::unix::net::UnixListener| -> Result<(UnixListener, PathBuf)> {
        let path = l
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("(passed socket)"));
        l.set_nonblocking(true)
            .and_then(|()| UnixListener::from_std(l))
            .map(|l| (l, path.clone()))
            .map_err(|e| {
                sys_err(
                    format!("cannot use the passed socket {}", path.display()),
                    e,
                )
            })
    };
    let (rw, rw_path) = wrap(rw)?;
    let mut paths = vec![rw_path];
    let ro = match ro {
        Some(l) => {
            let (l, p) = wrap(l)?;
            paths.push(p);
            Some(l)
        }
        None => None,
    };
    Ok(Listeners {
        rw,
        ro,
        paths,
        limits,
    })
}

/// Serves connections until the process ends.
pub async fn serve(listeners: Listeners, driver: Driver) {
    let shared = Arc::new(Shared {
        driver,
        next_callback: AtomicI32::new(0),
        limits: listeners.limits,
        clients_rw: AtomicUsize::new(0),
        clients_ro: AtomicUsize::new(0),
    });
    for p in &listeners.paths {
        tracing::info!("libvirt RPC listening on {}", p.display());
    }
    let ro_task = listeners
        .ro
        .map(|l| tokio::spawn(accept_loop(l, shared.clone(), true)));
    accept_loop(listeners.rw, shared, false).await;
    if let Some(t) = ro_task {
        t.abort();
    }
}

async fn accept_loop(l: UnixListener, shared: Arc<Shared>, readonly: bool) {
    loop {
        match l.accept().await {
            Ok((s, _)) => {
                // Read-only clients count against the read-write ones'
                // places too; read-write clients only against their own.
                let (mine, others) = if readonly {
                    (&shared.clients_ro, &shared.clients_rw)
                } else {
                    (&shared.clients_rw, &shared.clients_ro)
                };
                let held = mine.load(Ordering::SeqCst)
                    + if readonly {
                        others.load(Ordering::SeqCst)
                    } else {
                        0
                    };
                if held >= shared.limits.max_clients {
                    tracing::warn!(
                        readonly,
                        max_clients = shared.limits.max_clients,
                        "too many clients; closing a new connection"
                    );
                    drop(s);
                    continue;
                }
                mine.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(s, shared.clone(), readonly).await;
                    let count = if readonly {
                        &shared.clients_ro
                    } else {
                        &shared.clients_rw
                    };
                    count.fetch_sub(1, Ordering::SeqCst);
                });
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one client until it goes away or breaks the protocol.
pub async fn connection(s: UnixStream, shared: Arc<Shared>, readonly: bool) {
    let (rd, mut wr) = s.into_split();
    // Buffered: a whole call usually arrives in one read, instead of one
    // read for the length word and one for the rest.
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if wr.write_all(&m).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let conn = Arc::new(Conn::new(shared, readonly, tx));
    tracing::debug!(readonly, "client connected");
    loop {
        let (h, payload) = match frame::read_message(&mut rd).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing client connection: {e}");
                break;
            }
        };
        if !handle_message(&conn, h, payload).await {
            break;
        }
    }
    conn.teardown();
    drop(conn);
    // The writer ends once every in-flight call has queued its reply.
    let _ = writer.await;
    tracing::debug!("client disconnected");
}

/// Handles one incoming message; false closes the connection.
async fn handle_message(conn: &Arc<Conn>, h: Header, payload: Vec<u8>) -> bool {
    if h.vers != PROTOCOL_VERSION {
        tracing::warn!(
            prog = h.prog,
            vers = h.vers,
            "unknown program version; closing"
        );
        return false;
    }
    let mtype = MsgType::from_u32(h.mtype);
    match h.prog {
        PROGRAM_KEEPALIVE => {
            if mtype == Some(MsgType::Message) && h.proc_ == KEEPALIVE_PING {
                let pong = Header {
                    prog: PROGRAM_KEEPALIVE,
                    vers: PROTOCOL_VERSION,
                    proc_: frame::KEEPALIVE_PONG,
                    mtype: MsgType::Message as u32,
                    serial: 0,
                    status: STATUS_OK,
                };
                conn.send_msg(pong, &[]).await;
            }
            true
        }
        PROGRAM_REMOTE => match mtype {
            Some(MsgType::Call) => {
                // At max_client_requests calls in progress, the client's
                // next message waits (libvirt stops reading from it).
                let Ok(permit) = conn.requests.clone().acquire_owned().await else {
                    return false;
                };
                let conn = conn.clone();
                tokio::spawn(async move {
                    run_call(&conn, h, payload).await;
                    drop(permit);
                });
                true
            }
            Some(MsgType::CallWithFds) => {
                // No procedure served here takes descriptors.
                conn.send_error(&h, MsgType::Reply, &dispatch::unsupported(h.proc_))
                    .await;
                true
            }
            Some(MsgType::Stream) => {
                stream::incoming(conn, &h, payload).await;
                true
            }
            Some(MsgType::StreamHole) => {
                stream::incoming_hole(conn, &h, &payload).await;
                true
            }
            Some(MsgType::Message) => true,
            _ => {
                tracing::warn!(mtype = h.mtype, "unexpected message type; closing");
                false
            }
        },
        PROGRAM_QEMU if mtype == Some(MsgType::Call) => {
            let err = Error::new(
                ErrorCode::NoSupport,
                ErrorDomain::Qemu,
                "QEMU monitor and agent commands",
            );
            conn.send_error(&h, MsgType::Reply, &err).await;
            true
        }
        other => {
            tracing::warn!(prog = other, "unknown program; closing");
            false
        }
    }
}

async fn run_call(conn: &Arc<Conn>, h: Header, payload: Vec<u8>) {
    let result = dispatch::call(conn, h.proc_, &payload).await;
    match result {
        Ok(Outcome::Reply(ret)) => {
            conn.send_msg(Header::answer(&h, MsgType::Reply, STATUS_OK), &ret)
                .await;
        }
        Ok(Outcome::Console(pty)) => {
            conn.send_msg(Header::answer(&h, MsgType::Reply, STATUS_OK), &[])
                .await;
            if let Err(e) = stream::start(conn, h, pty) {
                // The reply is out; report the failure on the stream.
                conn.send_error(&h, MsgType::Stream, &e).await;
            }
        }
        Ok(Outcome::VolDownload(s)) => {
            conn.send_msg(Header::answer(&h, MsgType::Reply, STATUS_OK), &[])
                .await;
            vol_stream::start_download(conn, h, s);
        }
        Ok(Outcome::VolUpload(s, vol)) => {
            // The stream is registered before the reply goes out: the
            // client sends its data as soon as it has the reply, and
            // data for a stream not yet known would be dropped.
            let storage = conn.driver().storage().clone();
            vol_stream::start_upload(conn, h, s, storage, vol);
            conn.send_msg(Header::answer(&h, MsgType::Reply, STATUS_OK), &[])
                .await;
        }
        Ok(Outcome::NotMine) => {
            conn.send_error(&h, MsgType::Reply, &dispatch::unsupported(h.proc_))
                .await;
        }
        Err(e) => {
            tracing::debug!(proc_ = h.proc_, "call failed: {e}");
            conn.send_error(&h, MsgType::Reply, &e).await;
        }
    }
}
