//! Per-connection state shared by the reader, the call handlers, event
//! forwarding and console streams. Everything sent to the client goes
//! through one queue drained by a single writer task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard};

use std::os::fd::OwnedFd;

use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::driver::Driver;
use crate::error::Error;

use super::frame::{self, Header, MsgType, PROGRAM_REMOTE, PROTOCOL_VERSION, STATUS_ERROR};
use super::protocol::RemoteError;
use super::xdr::to_bytes;

/// State shared by every connection of one server.
pub struct Shared {
    pub driver: Driver,
    /// Callback ids are allocated daemon-wide, as libvirtd does.
    pub next_callback: AtomicI32,
    pub limits: super::server::ClientLimits,
    /// Clients connected to the read-write and the read-only socket.
    pub clients_rw: std::sync::atomic::AtomicUsize,
    pub clients_ro: std::sync::atomic::AtomicUsize,
    /// Told whenever a client leaves and its place frees.
    pub place_freed: tokio::sync::Notify,
}

/// One registered event callback.
#[derive(Clone, Debug)]
pub struct Callback {
    pub event_id: i32,
    /// Only events of this domain, if set.
    pub filter: Option<uuid::Uuid>,
    /// Registered through the legacy (non-callback) procedure.
    pub legacy: bool,
}

/// A console stream's handle, as the reader needs it.
/// What a client sends on a stream: bytes, or a hole of that many bytes
/// (a sparse upload's STREAM_HOLE).
#[derive(Debug)]
pub enum StreamChunk {
    Data(Vec<u8>),
    Hole(u64),
}

/// Packets a stream's pump may have waiting.
pub const STREAM_BACKLOG: usize = 64;

pub struct StreamHandle {
    pub proc_: i32,
    /// Client data for the pump. Bounded: a pump that falls behind holds
    /// up the connection's reader, so a fast client cannot pile data up
    /// in the daemon's memory.
    pub to_guest: mpsc::Sender<StreamChunk>,
    pub tasks: Vec<AbortHandle>,
    /// The pump confirms the client's finish itself once its work is
    /// done (uploads); otherwise the finish is confirmed at once.
    pub confirms_own_finish: bool,
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub struct Conn {
    pub shared: std::sync::Arc<Shared>,
    /// A read-only socket's connection, or one opened with
    /// `VIR_CONNECT_RO`.
    readonly: AtomicBool,
    pub opened: AtomicBool,
    out: mpsc::Sender<Outgoing>,
    callbacks: Mutex<HashMap<i32, Callback>>,
    /// Storage pool and network event callbacks: id → (kind, event id,
    /// only this object).
    object_callbacks: Mutex<HashMap<i32, ObjectCallback>>,
    /// Node device event callbacks: id → the procedure that removes it.
    /// No node device changes, so they only wait.
    quiet_callbacks: Mutex<HashMap<i32, i32>>,
    streams: Mutex<HashMap<u32, StreamHandle>>,
    event_task: Mutex<Option<AbortHandle>>,
    /// Calls in progress (`max_client_requests` permits).
    pub requests: std::sync::Arc<tokio::sync::Semaphore>,
    /// One event forwarder per object kind with callbacks.
    object_event_tasks: Mutex<HashMap<ObjectKind, AbortHandle>>,
    pub keepalive: super::keepalive::Keepalive,
    keepalive_task: Mutex<Option<AbortHandle>>,
}

/// A callback for events of one kind: (kind, event id, only this object).
type ObjectCallback = (ObjectKind, i32, Option<uuid::Uuid>);

/// The kinds of objects whose events a connection forwards besides
/// domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    StoragePool,
    Network,
}

/// A message for the connection's writer, with the descriptors that
/// follow it.
pub struct Outgoing {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Conn {
    pub fn new(
        shared: std::sync::Arc<Shared>,
        readonly: bool,
        out: mpsc::Sender<Outgoing>,
    ) -> Self {
        Conn {
            readonly: AtomicBool::new(readonly),
            opened: AtomicBool::new(false),
            out,
            callbacks: Mutex::new(HashMap::new()),
            object_callbacks: Mutex::new(HashMap::new()),
            quiet_callbacks: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            event_task: Mutex::new(None),
            object_event_tasks: Mutex::new(HashMap::new()),
            keepalive: super::keepalive::Keepalive::default(),
            keepalive_task: Mutex::new(None),
            requests: std::sync::Arc::new(tokio::sync::Semaphore::new(
                shared.limits.max_client_requests,
            )),
            shared,
        }
    }

    pub fn is_readonly(&self) -> bool {
        self.readonly.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes the connection read-only from now on.
    pub fn set_readonly(&self) {
        self.readonly
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn driver(&self) -> &Driver {
        &self.shared.driver
    }

    pub fn is_open(&self) -> bool {
        self.opened.load(Ordering::SeqCst)
    }

    /// Queues a whole message; a closed connection drops it.
    pub async fn send(&self, msg: Vec<u8>) {
        let _ = self
            .out
            .send(Outgoing {
                bytes: msg,
                fds: Vec::new(),
            })
            .await;
    }

    /// Queues a `*_WITH_FDS` message: the payload after the descriptor
    /// count, the descriptors themselves after the message.
    pub async fn send_with_fds(&self, header: Header, payload: &[u8], fds: Vec<OwnedFd>) {
        let mut body = Vec::with_capacity(4 + payload.len());
        body.extend_from_slice(&(fds.len() as u32).to_be_bytes());
        body.extend_from_slice(payload);
        let _ = self
            .out
            .send(Outgoing {
                bytes: frame::encode(&header, &body),
                fds,
            })
            .await;
    }

    /// Queues a message with `header` and `payload`.
    pub async fn send_msg(&self, header: Header, payload: &[u8]) {
        self.send(frame::encode(&header, payload)).await;
    }

    /// Answers `call` with an error.
    pub async fn send_error(&self, call: &Header, mtype: MsgType, err: &Error) {
        let h = Header::answer(call, mtype, STATUS_ERROR);
        self.send_msg(h, &to_bytes(&remote_error(err))).await;
    }

    /// An asynchronous event message of the remote program.
    pub async fn send_event(&self, proc_: i32, payload: &[u8]) {
        let h = Header {
            prog: PROGRAM_REMOTE,
            vers: PROTOCOL_VERSION,
            proc_,
            mtype: MsgType::Message as u32,
            serial: 1,
            status: frame::STATUS_OK,
        };
        self.send_msg(h, payload).await;
    }

    // ---- event callbacks ---------------------------------------------

    pub fn add_object_callback(
        &self,
        kind: ObjectKind,
        id: i32,
        event_id: i32,
        filter: Option<uuid::Uuid>,
    ) {
        lock(&self.object_callbacks).insert(id, (kind, event_id, filter));
    }

    pub fn add_quiet_callback(&self, id: i32, deregister_proc: i32) {
        lock(&self.quiet_callbacks).insert(id, deregister_proc);
    }

    /// Removes callback `id` if `deregister_proc` is the procedure for it.
    pub fn remove_quiet_callback(&self, id: i32, deregister_proc: i32) -> bool {
        let mut cbs = lock(&self.quiet_callbacks);
        if cbs.get(&id) == Some(&deregister_proc) {
            cbs.remove(&id);
            true
        } else {
            false
        }
    }

    /// Removes callback `id` if it is one of `kind`.
    pub fn remove_object_callback(&self, kind: ObjectKind, id: i32) -> bool {
        let mut cbs = lock(&self.object_callbacks);
        if cbs.get(&id).is_some_and(|(k, _, _)| *k == kind) {
            cbs.remove(&id);
            true
        } else {
            false
        }
    }

    /// The callbacks of `kind`: (id, event id, only this object).
    pub fn object_callbacks(&self, kind: ObjectKind) -> Vec<(i32, i32, Option<uuid::Uuid>)> {
        lock(&self.object_callbacks)
            .iter()
            .filter(|(_, (k, _, _))| *k == kind)
            .map(|(id, (_, ev, f))| (*id, *ev, *f))
            .collect()
    }

    /// Starts the event forwarder of `kind` once per connection.
    pub fn set_object_event_task_if_none(
        &self,
        kind: ObjectKind,
        make: impl FnOnce() -> AbortHandle,
    ) {
        lock(&self.object_event_tasks)
            .entry(kind)
            .or_insert_with(make);
    }

    pub fn add_callback(&self, id: i32, cb: Callback) {
        lock(&self.callbacks).insert(id, cb);
    }

    pub fn remove_callback(&self, id: i32) -> bool {
        lock(&self.callbacks).remove(&id).is_some()
    }

    /// Removes the legacy registration for `event_id`.
    pub fn remove_legacy(&self, event_id: i32) -> bool {
        let mut cbs = lock(&self.callbacks);
        let key = cbs
            .iter()
            .find(|(_, c)| c.legacy && c.event_id == event_id)
            .map(|(k, _)| *k);
        key.and_then(|k| cbs.remove(&k)).is_some()
    }

    pub fn callbacks(&self) -> Vec<(i32, Callback)> {
        lock(&self.callbacks)
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// Records the event forwarding task, unless one runs already.
    /// Returns false when one was already running.
    pub fn set_event_task_if_none(&self, make: impl FnOnce() -> AbortHandle) -> bool {
        let mut t = lock(&self.event_task);
        if t.is_some() {
            return false;
        }
        *t = Some(make());
        true
    }

    // ---- streams -------------------------------------------------------

    pub fn add_stream(&self, serial: u32, h: StreamHandle) {
        lock(&self.streams).insert(serial, h);
    }

    pub fn take_stream(&self, serial: u32) -> Option<StreamHandle> {
        lock(&self.streams).remove(&serial)
    }

    /// Passes client data to a stream, waiting while the stream's pump is
    /// behind; false if no such stream.
    pub async fn stream_data(&self, serial: u32, proc_: i32, data: StreamChunk) -> bool {
        let tx = match lock(&self.streams).get(&serial) {
            Some(s) if s.proc_ == proc_ => s.to_guest.clone(),
            _ => return false,
        };
        tx.send(data).await.is_ok()
    }

    /// Drops everything tied to the connection: callbacks, streams,
    /// the event task.
    pub fn teardown(&self) {
        lock(&self.callbacks).clear();
        lock(&self.object_callbacks).clear();
        lock(&self.quiet_callbacks).clear();
        for (_, t) in lock(&self.object_event_tasks).drain() {
            t.abort();
        }
        lock(&self.streams).clear();
        if let Some(t) = lock(&self.event_task).take() {
            t.abort();
        }
        if let Some(t) = lock(&self.keepalive_task).take() {
            t.abort();
        }
    }

    /// Keeps the keepalive task's handle, for the teardown to end it.
    pub fn keep_task(&self, task: AbortHandle) {
        *lock(&self.keepalive_task) = Some(task);
    }

    /// Notes a message from the client (keepalive's sign of life).
    pub fn note_received(&self) {
        self.keepalive.received();
    }

    /// Resolves once keepalive found the client dead.
    pub async fn keepalive_expired(&self) {
        self.keepalive.expired().await;
    }
}

/// The wire form of an error.
pub fn remote_error(e: &Error) -> RemoteError {
    RemoteError {
        code: e.code as i32,
        domain: e.domain as i32,
        message: Some(e.message.clone()),
        level: 2,
        dom: None,
        str1: None,
        str2: None,
        str3: None,
        int1: -1,
        int2: -1,
        net: None,
    }
}
