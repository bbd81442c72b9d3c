//! Client of a VMM's control socket: JSON lines with request ids, replies
//! matched to their requests, events handed to the domain's monitor.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::protocol::{Command, Stats, Status};

/// How long one control command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// An event pushed by the VMM.
#[derive(Clone, Debug, PartialEq)]
pub struct VmmEvent {
    pub name: String,
    pub reason: Option<String>,
    /// The whole event line.
    pub data: Value,
}

type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value>>>>>;

/// A connected control socket.
pub struct ControlClient {
    writer: Mutex<OwnedWriteHalf>,
    pending: Pending,
    next_id: AtomicU64,
}

fn monitor_error(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::OperationFailed, ErrorDomain::Qemu, detail)
}

impl ControlClient {
    /// Connects to `path`; events go to `events` until the socket closes.
    pub async fn connect(path: &Path, events: mpsc::UnboundedSender<VmmEvent>) -> Result<Self> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            monitor_error(format!(
                "cannot connect to the control socket '{}': {e}",
                path.display()
            ))
        })?;
        let (read, write) = stream.into_split();
        let pending: Pending = Arc::default();
        let reader_pending = pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                handle_line(&line, &reader_pending, &events);
            }
            // The socket closed: fail every request still waiting.
            let waiting: Vec<_> = match reader_pending.lock() {
                Ok(mut p) => p.drain().collect(),
                Err(_) => Vec::new(),
            };
            for (_, tx) in waiting {
                let _ = tx.send(Err(monitor_error("the VMM closed its control socket")));
            }
        });
        Ok(ControlClient {
            writer: Mutex::new(write),
            pending,
            next_id: AtomicU64::new(1),
        })
    }

    /// Runs one command (`protocol::Command`), its reply as JSON.
    pub async fn run(&self, command: &Command) -> Result<Value> {
        self.request(command.name(), command.arguments(), &[], COMMAND_TIMEOUT)
            .await
    }

    /// Runs one command with `fd` sent along with it (SCM_RIGHTS), for
    /// at most `timeout`.
    pub async fn run_with_fd(
        &self,
        command: &Command,
        fd: std::os::fd::BorrowedFd<'_>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        self.run_with_fds(command, &[fd], timeout).await
    }

    /// Runs one command with `fds` sent along with it, in order.
    pub async fn run_with_fds(
        &self,
        command: &Command,
        fds: &[std::os::fd::BorrowedFd<'_>],
        timeout: Option<Duration>,
    ) -> Result<Value> {
        let timeout = timeout.unwrap_or(COMMAND_TIMEOUT);
        self.request(command.name(), command.arguments(), fds, timeout)
            .await
    }

    /// `query-stats`, typed.
    pub async fn stats(&self) -> Result<Stats> {
        let v = self.run(&Command::QueryStats).await?;
        serde_json::from_value(v)
            .map_err(|e| monitor_error(format!("cannot read the VMM's statistics: {e}")))
    }

    /// `query-status`, typed.
    pub async fn status(&self) -> Result<Status> {
        let v = self.run(&Command::QueryStatus).await?;
        serde_json::from_value(v)
            .map_err(|e| monitor_error(format!("cannot read the VMM's status: {e}")))
    }

    async fn request(
        &self,
        command: &str,
        arguments: Option<Value>,
        fds: &[std::os::fd::BorrowedFd<'_>],
        timeout: Duration,
    ) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let mut request = json!({ "id": id, "execute": command });
        if let Some(a) = arguments {
            request["arguments"] = a;
        }
        let line = format!("{request}\n");
        let sent = {
            let mut w = self.writer.lock().await;
            if fds.is_empty() {
                w.write_all(line.as_bytes()).await
            } else {
                send_with_fds(&mut w, line.as_bytes(), fds).await
            }
        };
        if let Err(e) = sent {
            if let Ok(mut p) = self.pending.lock() {
                p.remove(&id);
            }
            return Err(monitor_error(format!(
                "cannot send '{command}' to the VMM: {e}"
            )));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(monitor_error("the VMM closed its control socket")),
            Err(_) => {
                if let Ok(mut p) = self.pending.lock() {
                    p.remove(&id);
                }
                Err(Error::new(
                    ErrorCode::OperationTimeout,
                    ErrorDomain::Qemu,
                    format!("VMM command '{command}' did not answer"),
                ))
            }
        }
    }
}

/// Writes `bytes` with `fd` attached to their first byte.
async fn send_with_fds(
    w: &mut OwnedWriteHalf,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::{AsFd, AsRawFd};
    let sock: &UnixStream = w.as_ref();
    let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let sent = loop {
        sock.writable().await?;
        let r = sock.try_io(tokio::io::Interest::WRITABLE, || {
            sendmsg::<()>(
                sock.as_fd().as_raw_fd(),
                &[std::io::IoSlice::new(bytes)],
                &[ControlMessage::ScmRights(&raw)],
                MsgFlags::MSG_NOSIGNAL,
                None,
            )
            .map_err(std::io::Error::from)
        });
        match r {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    w.write_all(&bytes[sent..]).await
}

fn handle_line(line: &str, pending: &Pending, events: &mpsc::UnboundedSender<VmmEvent>) {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        tracing::warn!("unparsable line from VMM: {line}");
        return;
    };
    if let Some(name) = v.get("event").and_then(Value::as_str) {
        let reason = v.get("reason").and_then(Value::as_str).map(str::to_string);
        let _ = events.send(VmmEvent {
            name: name.to_string(),
            reason,
            data: v.clone(),
        });
        return;
    }
    let Some(id) = v.get("id").and_then(Value::as_u64) else {
        return;
    };
    let tx = pending.lock().ok().and_then(|mut p| p.remove(&id));
    let Some(tx) = tx else { return };
    let result = if let Some(ret) = v.get("return") {
        Ok(ret.clone())
    } else {
        let desc = v
            .pointer("/error/desc")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        Err(monitor_error(desc))
    };
    let _ = tx.send(result);
}
