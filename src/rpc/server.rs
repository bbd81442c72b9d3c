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

pub use crate::daemon_config::ClientLimits;

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

/// Sets how many connections may wait to be accepted (listen(2) again on
/// a listening socket changes its queue).
fn set_queue_length(l: &UnixListener, queued: usize) -> Result<()> {
    use std::os::fd::AsRawFd;
    let backlog = i32::try_from(queued).unwrap_or(i32::MAX);
    // SAFETY: listen on a descriptor the listener owns; no memory is passed.
    if unsafe { libc::listen(l.as_raw_fd(), backlog) } < 0 {
        return Err(sys_err(
            "cannot set the socket's queue length".to_string(),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn bind_one(path: &Path, mode: u32, group: Option<u32>, queued: usize) -> Result<UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| sys_err(format!("cannot create {}", dir.display()), e))?;
    }
    clear_stale(path)?;
    let l = UnixListener::bind(path)
        .map_err(|e| sys_err(format!("cannot listen on {}", path.display()), e))?;
    set_queue_length(&l, queued)?;
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
    let queued = cfg.limits.max_queued_clients;
    let rw = bind_one(&cfg.socket, rw_mode, group, queued)?;
    let mut paths = vec![cfg.socket.clone()];
    let ro = match &cfg.socket_ro {
        Some(p) => {
            let l = bind_one(p, 0o666, None, queued)?;
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
/// as they are, without touching the socket files' owner or mode; their
/// queue length is the unit's `Backlog=`.
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
        place_freed: tokio::sync::Notify::new(),
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

/// Clients that count against `readonly`'s places: read-only clients
/// count against the read-write ones' places too, read-write clients
/// only against their own.
fn places_taken(shared: &Shared, readonly: bool) -> usize {
    let rw = shared.clients_rw.load(Ordering::SeqCst);
    if readonly {
        rw + shared.clients_ro.load(Ordering::SeqCst)
    } else {
        rw
    }
}

/// Waits until a client of this socket may be accepted. Meanwhile new
/// connections wait in the socket's queue, as libvirt suspends its
/// services at `max_clients`.
async fn wait_for_place(shared: &Shared, readonly: bool) {
    let mut suspended = false;
    loop {
        let freed = shared.place_freed.notified();
        tokio::pin!(freed);
        // Registered before the count is read, so a place freed between
        // the two is not missed.
        freed.as_mut().enable();
        if places_taken(shared, readonly) < shared.limits.max_clients {
            break;
        }
        if !suspended {
            tracing::warn!(
                readonly,
                max_clients = shared.limits.max_clients,
                "too many clients; temporarily not accepting new ones"
            );
            suspended = true;
        }
        freed.await;
    }
    if suspended {
        tracing::info!(readonly, "accepting new clients again");
    }
}

async fn accept_loop(l: UnixListener, shared: Arc<Shared>, readonly: bool) {
    loop {
        wait_for_place(&shared, readonly).await;
        match l.accept().await {
            Ok((s, _)) => {
                let count = if readonly {
                    &shared.clients_ro
                } else {
                    &shared.clients_rw
                };
                count.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(s, shared.clone(), readonly).await;
                    let count = if readonly {
                        &shared.clients_ro
                    } else {
                        &shared.clients_rw
                    };
                    count.fetch_sub(1, Ordering::SeqCst);
                    shared.place_freed.notify_waiters();
                });
            }
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Sends descriptors after their message as libvirt's client reads them:
/// each with one byte of data.
async fn send_fds(
    wr: &tokio::net::unix::OwnedWriteHalf,
    fds: &[std::os::fd::OwnedFd],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let stream: &UnixStream = wr.as_ref();
    for fd in fds {
        let raw = [fd.as_raw_fd()];
        loop {
            stream.writable().await?;
            let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
                let iov = [std::io::IoSlice::new(&[0u8])];
                sendmsg::<()>(
                    stream.as_raw_fd(),
                    &iov,
                    &[ControlMessage::ScmRights(&raw)],
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(std::io::Error::from)
            });
            match sent {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Serves one client until it goes away or breaks the protocol.
pub async fn connection(s: UnixStream, shared: Arc<Shared>, readonly: bool) {
    let (rd, mut wr) = s.into_split();
    // Buffered: a whole call usually arrives in one read, instead of one
    // read for the length word and one for the rest.
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let (tx, mut rx) = mpsc::channel::<super::conn::Outgoing>(1024);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if wr.write_all(&m.bytes).await.is_err() {
                break;
            }
            if send_fds(&wr, &m.fds).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let conn = Arc::new(Conn::new(shared, readonly, tx));
    tracing::debug!(readonly, "client connected");
    loop {
        let read = tokio::select! {
            r = frame::read_message(&mut rd) => r,
            () = conn.keepalive_expired() => {
                tracing::warn!("connection closed due to keepalive timeout");
                break;
            }
        };
        let (h, payload) = match read {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("closing client connection: {e}");
                break;
            }
        };
        conn.note_received();
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
                conn.send_msg(Header::keepalive(frame::KEEPALIVE_PONG), &[])
                    .await;
            }
            // A pong needs no answer: receiving it was the point.
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
        Ok(Outcome::ReplyWithFds(ret, fds)) => {
            conn.send_with_fds(
                Header::answer(&h, MsgType::ReplyWithFds, STATUS_OK),
                &ret,
                fds,
            )
            .await;
        }
        Ok(Outcome::Screenshot(ret, file)) => {
            conn.send_msg(Header::answer(&h, MsgType::Reply, STATUS_OK), &ret)
                .await;
            vol_stream::send_file(conn, h, file, 0, "unable to read screenshot", ());
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
