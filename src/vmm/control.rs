//! The control socket: JSON lines, one request and one reply per line.
//!
//! ```text
//! → {"id":1,"execute":"query-status"}
//! ← {"id":1,"return":{"status":"running",...}}
//! ← {"id":2,"error":{"class":"CommandNotFound","desc":"..."}}
//! ← {"event":"shutdown","reason":"poweroff"}          (pushed to every client)
//! ```
//!
//! Commands: `query-status`, `pause`, `resume`, `powerdown`, `reset`,
//! `quit`, `query-stats`. Events: `running`, `paused`, `resumed`,
//! `shutdown` (with `reason`).
//!
//! The socket is a path, or a name in the Linux abstract namespace when
//! written `@name`. An abstract socket leaves nothing on disk even after
//! `kill -9`; a path socket is removed on every exit the VMM controls, and
//! a stale one left by `kill -9` is replaced at the next start. Only root
//! and the VMM's own uid may connect (checked with SO_PEERCRED).

use std::collections::HashMap;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{Error, Result};

/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

/// Where the socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAddr {
    Abstract(String),
    Path(PathBuf),
}

impl ControlAddr {
    /// `@name` is abstract; anything else is a path.
    pub fn parse(s: &str) -> Result<Self> {
        match s.strip_prefix('@') {
            Some("") => Err(Error::Config("empty abstract socket name".into())),
            Some(name) => Ok(ControlAddr::Abstract(name.to_string())),
            None if s.is_empty() => Err(Error::Config("empty control socket path".into())),
            None => Ok(ControlAddr::Path(PathBuf::from(s))),
        }
    }

    fn display(&self) -> String {
        match self {
            ControlAddr::Abstract(n) => format!("@{n}"),
            ControlAddr::Path(p) => p.display().to_string(),
        }
    }

    /// Connects to the socket (used by tests and tools).
    pub fn connect(&self) -> io::Result<UnixStream> {
        match self {
            ControlAddr::Abstract(n) => {
                UnixStream::connect_addr(&SocketAddr::from_abstract_name(n)?)
            }
            ControlAddr::Path(p) => UnixStream::connect(p),
        }
    }
}

/// A parsed request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub id: Option<Value>,
    pub execute: String,
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// Error classes in replies.
pub const CLASS_GENERIC: &str = "GenericError";
pub const CLASS_NOT_FOUND: &str = "CommandNotFound";

/// A successful reply line.
pub fn reply_ok(id: &Option<Value>, ret: Value) -> String {
    let mut v = json!({ "return": ret });
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    v.to_string()
}

/// An error reply line.
pub fn reply_err(id: &Option<Value>, class: &str, desc: &str) -> String {
    let mut v = json!({ "error": { "class": class, "desc": desc } });
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    v.to_string()
}

/// An event line.
pub fn event(name: &str, extra: Option<(&str, Value)>) -> String {
    let mut v = json!({ "event": name });
    if let Some((k, val)) = extra {
        v[k] = val;
    }
    v.to_string()
}

/// Parses one line into a request, or gives the error reply for it.
pub fn parse_line(line: &str) -> std::result::Result<Request, String> {
    match serde_json::from_str::<Request>(line) {
        Ok(r) => Ok(r),
        Err(e) => {
            let id = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("id").cloned());
            Err(reply_err(
                &id,
                CLASS_GENERIC,
                &format!("invalid request: {e}"),
            ))
        }
    }
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Descriptors that came with the client's requests (SCM_RIGHTS),
    /// oldest first, for the requests that take one.
    fds: std::collections::VecDeque<std::os::fd::OwnedFd>,
}

/// Most descriptors taken from one message; more are closed. A disk
/// snapshot sends an overlay and its whole backing chain.
const MAX_FDS_PER_MESSAGE: usize = 1 + crate::xml::model::disk::MAX_BACKING_CHAIN;
/// Most descriptors a client may leave waiting.
const MAX_PENDING_FDS: usize = 2 * MAX_FDS_PER_MESSAGE;

/// Reads what is there, with the descriptors that came with it.
fn recv_with_fds(s: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<std::os::fd::OwnedFd>)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS_PER_MESSAGE]);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = c {
            // SAFETY: the kernel installed these descriptors in this
            // process for this message; nothing else owns them.
            fds.extend(
                received
                    .into_iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    Ok((msg.bytes, fds))
}

/// Listener plus connected clients.
pub struct ControlServer {
    listener: UnixListener,
    addr: ControlAddr,
    clients: HashMap<RawFd, Client>,
}

/// One unit of client input.
pub enum Line {
    /// A complete request line.
    Request(String),
    /// A line longer than the limit; its bytes were discarded.
    TooLong,
}

/// What a readable client produced.
pub enum ClientInput {
    /// Complete lines to handle.
    Lines(Vec<Line>),
    /// The client went away (its fd is already deregistered by the caller).
    Closed,
}

fn peer_allowed(s: &UnixStream) -> bool {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred and len are valid for writes; the fd is a connected socket.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    rc == 0 && (cred.uid == 0 || cred.uid == me)
}

impl ControlServer {
    /// Binds the socket.
    pub fn bind(addr: ControlAddr) -> Result<Self> {
        let err = |source| Error::Control {
            path: addr.display(),
            source,
        };
        let listener = match &addr {
            ControlAddr::Abstract(n) => {
                let sa = SocketAddr::from_abstract_name(n).map_err(err)?;
                UnixListener::bind_addr(&sa).map_err(err)?
            }
            ControlAddr::Path(p) => {
                if std::fs::symlink_metadata(p).is_ok() {
                    use std::os::unix::fs::FileTypeExt;
                    let is_sock = std::fs::symlink_metadata(p)
                        .map(|m| m.file_type().is_socket())
                        .unwrap_or(false);
                    if !is_sock || UnixStream::connect(p).is_ok() {
                        return Err(err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            "exists and is not a stale socket",
                        )));
                    }
                    std::fs::remove_file(p).map_err(err)?;
                }
                UnixListener::bind(p).map_err(err)?
            }
        };
        listener.set_nonblocking(true).map_err(err)?;
        Ok(ControlServer {
            listener,
            addr,
            clients: HashMap::new(),
        })
    }

    pub fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    pub fn addr(&self) -> &ControlAddr {
        &self.addr
    }

    /// Accepts pending connections; returns the new client fds.
    pub fn accept(&mut self) -> Vec<RawFd> {
        let mut fds = Vec::new();
        while let Ok((s, _)) = self.listener.accept() {
            if !peer_allowed(&s) {
                tracing::warn!("control: refused a client with another uid");
                continue;
            }
            if s.set_nonblocking(true).is_err() {
                continue;
            }
            let fd = s.as_raw_fd();
            self.clients.insert(
                fd,
                Client {
                    stream: s,
                    buf: Vec::new(),
                    fds: Default::default(),
                },
            );
            fds.push(fd);
        }
        fds
    }

    /// Reads from a client.
    pub fn read(&mut self, fd: RawFd) -> ClientInput {
        let Some(c) = self.clients.get_mut(&fd) else {
            return ClientInput::Closed;
        };
        let mut chunk = [0u8; 4096];
        let mut closed = false;
        loop {
            match recv_with_fds(&c.stream, &mut chunk) {
                Ok((0, _)) => {
                    closed = true;
                    break;
                }
                Ok((n, fds)) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    for fd in fds {
                        if c.fds.len() < MAX_PENDING_FDS {
                            c.fds.push_back(fd);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut lines = Vec::new();
        while let Some(pos) = c.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = c.buf.drain(..=pos).collect();
            let text = String::from_utf8_lossy(&raw[..raw.len() - 1])
                .trim()
                .to_string();
            if !text.is_empty() {
                lines.push(Line::Request(text));
            }
        }
        if c.buf.len() > MAX_LINE {
            c.buf.clear();
            lines.push(Line::TooLong);
        }
        if closed && lines.is_empty() {
            self.clients.remove(&fd);
            return ClientInput::Closed;
        }
        if closed {
            self.clients.remove(&fd);
        }
        ClientInput::Lines(lines)
    }

    /// The oldest descriptor client `fd` sent and no request took yet.
    pub fn take_fd(&mut self, fd: RawFd) -> Option<std::os::fd::OwnedFd> {
        self.clients.get_mut(&fd)?.fds.pop_front()
    }

    /// Sends one line to one client (dropping the client on failure).
    pub fn send(&mut self, fd: RawFd, line: &str) {
        let ok = match self.clients.get_mut(&fd) {
            Some(c) => write_line(&mut c.stream, line).is_ok(),
            None => return,
        };
        if !ok {
            self.clients.remove(&fd);
        }
    }

    /// Sends a line to every client.
    pub fn broadcast(&mut self, line: &str) {
        let fds: Vec<RawFd> = self.clients.keys().copied().collect();
        for fd in fds {
            self.send(fd, line);
        }
    }

    /// Removes the socket file, if any.
    pub fn cleanup(&self) {
        if let ControlAddr::Path(p) = &self.addr {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn write_line(s: &mut UnixStream, line: &str) -> io::Result<()> {
    // Replies are small; wait briefly for room rather than drop them.
    s.set_nonblocking(false)?;
    s.set_write_timeout(Some(std::time::Duration::from_secs(2)))?;
    let r = s
        .write_all(line.as_bytes())
        .and_then(|_| s.write_all(b"\n"));
    s.set_nonblocking(true)?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_parsing_and_replies() {
        let r = parse_line(r#"{"id":1,"execute":"query-status"}"#).unwrap();
        assert_eq!(r.execute, "query-status");
        let e = parse_line(r#"{"id":7,"exec":"x"}"#).unwrap_err();
        let v: Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["id"], 7);
        assert_eq!(v["error"]["class"], CLASS_GENERIC);
        assert!(parse_line("not json").is_err());
        let ok: Value = serde_json::from_str(&reply_ok(&Some(json!(3)), json!({}))).unwrap();
        assert_eq!(ok["id"], 3);
        let ev: Value =
            serde_json::from_str(&event("shutdown", Some(("reason", json!("poweroff"))))).unwrap();
        assert_eq!(ev["reason"], "poweroff");
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ControlAddr::parse("@x").unwrap(),
            ControlAddr::Abstract("x".into())
        );
        assert!(ControlAddr::parse("@").is_err());
        assert!(ControlAddr::parse("").is_err());
    }
}
