//! Console streams: the bytes of a guest's serial pty travel as STREAM
//! packets (status CONTINUE) both ways; a client "finish" (STREAM, OK,
//! empty) is confirmed with the same; guest EOF is an empty CONTINUE,
//! after which the client finishes the stream as usual.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use crate::error::{Error, Result};

use super::conn::{Conn, STREAM_BACKLOG, StreamChunk, StreamHandle};
use super::frame::{Header, MsgType, STATUS_CONTINUE, STATUS_OK, STREAM_CHUNK_MAX};

/// Opens the pty slave non-blocking and puts it in raw mode, so that the
/// line discipline neither echoes nor rewrites the guest's bytes.
pub fn open_pty(path: &str) -> Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            Error::new(
                crate::error::ErrorCode::SystemError,
                crate::error::ErrorDomain::None,
                format!("Unable to open {path}: {e}"),
            )
        })?;
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `f` for the whole block;
    // `t` is a plain C struct fully written by tcgetattr before use.
    unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
    Ok(f)
}

fn register(f: File) -> Result<AsyncFd<File>> {
    // SAFETY: a `File` owns its descriptor; it stays open and unchanged
    // until the `AsyncFd` (which owns the `File`) is dropped.
    unsafe { AsyncFd::register(f) }.map_err(|e| Error::internal(format!("pty: {e}")))
}

fn stream_header(call: &Header, status: u32) -> Header {
    Header::answer(call, MsgType::Stream, status)
}

/// Starts pumping between the pty and the client. Called after the
/// OPEN_CONSOLE reply was queued, so data never precedes the reply.
pub fn start(conn: &Arc<Conn>, call: Header, pty: File) -> Result<()> {
    let writer_file = pty
        .try_clone()
        .map_err(|e| Error::internal(format!("cannot duplicate pty: {e}")))?;
    let reader = register(pty)?;
    let writer = register(writer_file)?;
    let (tx, rx) = mpsc::channel(STREAM_BACKLOG);
    let weak = Arc::downgrade(conn);
    let out = tokio::spawn(guest_to_client(weak, call, reader)).abort_handle();
    let inp = tokio::spawn(client_to_guest(writer, rx)).abort_handle();
    conn.add_stream(
        call.serial,
        StreamHandle {
            proc_: call.proc_,
            to_guest: tx,
            tasks: vec![out, inp],
            confirms_own_finish: false,
        },
    );
    Ok(())
}

async fn guest_to_client(conn: std::sync::Weak<Conn>, call: Header, pty: AsyncFd<File>) {
    let mut buf = vec![0u8; STREAM_CHUNK_MAX.min(64 * 1024)];
    loop {
        let n = match pty.readable().await {
            Ok(mut guard) => match guard.try_io(|f| f.get_ref().read(&mut buf)) {
                Ok(Ok(n)) => n,
                // EIO: the VMM closed the master (guest gone).
                Ok(Err(_)) => 0,
                Err(_would_block) => continue,
            },
            Err(_) => 0,
        };
        let Some(conn) = conn.upgrade() else { return };
        if n == 0 {
            // End of stream: an empty CONTINUE packet. The stream stays
            // registered so that the client's finish or abort that follows
            // is still confirmed (the client waits for that).
            conn.send_msg(stream_header(&call, STATUS_CONTINUE), &[])
                .await;
            return;
        }
        conn.send_msg(stream_header(&call, STATUS_CONTINUE), &buf[..n])
            .await;
    }
}

async fn client_to_guest(pty: AsyncFd<File>, mut rx: mpsc::Receiver<StreamChunk>) {
    while let Some(chunk) = rx.recv().await {
        // A console has no holes.
        let StreamChunk::Data(data) = chunk else {
            continue;
        };
        let mut off = 0;
        while off < data.len() {
            let Ok(mut guard) = pty.writable().await else {
                return;
            };
            match guard.try_io(|f| f.get_ref().write(&data[off..])) {
                Ok(Ok(n)) => off += n,
                Ok(Err(e)) => {
                    tracing::debug!("console write: {e}");
                    return;
                }
                Err(_would_block) => {}
            }
        }
    }
}

/// A STREAM_HOLE packet from the client (`remote_stream_hole`: a hyper
/// length, then flags): the next bytes of a sparse upload are a hole.
pub async fn incoming_hole(conn: &Arc<Conn>, h: &Header, payload: &[u8]) {
    let Some(len) = payload
        .get(..8)
        .map(|b| i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    else {
        return;
    };
    if len > 0
        && !conn
            .stream_data(h.serial, h.proc_, StreamChunk::Hole(len as u64))
            .await
    {
        tracing::debug!(serial = h.serial, "hole for an unknown stream dropped");
    }
}

/// A STREAM packet from the client.
pub async fn incoming(conn: &Arc<Conn>, h: &Header, payload: Vec<u8>) {
    match h.status {
        STATUS_CONTINUE => {
            if !conn
                .stream_data(h.serial, h.proc_, StreamChunk::Data(payload))
                .await
            {
                tracing::debug!(serial = h.serial, "data for an unknown stream dropped");
            }
        }
        // Finish (OK) or abort (ERROR): stop pumping and confirm, or let
        // a pump that must finish its work first confirm the finish.
        _ => {
            if let Some(mut handle) = conn.take_stream(h.serial) {
                if handle.confirms_own_finish && h.status == STATUS_OK {
                    // Detach the pump: dropping the handle closes its input.
                    handle.tasks.clear();
                } else {
                    conn.send_msg(stream_header(h, STATUS_OK), &[]).await;
                }
            }
        }
    }
}
