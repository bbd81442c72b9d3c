//! Volume upload and download streams (`vol-upload`, `vol-download`),
//! and the sending of any file on a stream (screenshots).
//!
//! Download: the file's bytes go out as STREAM packets (CONTINUE), then an
//! empty CONTINUE marks the end; the client's finish is confirmed as for
//! consoles. Upload: the client's packets are written in order; its
//! finish (OK) is confirmed only once every byte is on disk, so that
//! `virStreamFinish` returning means the data is there. A failed write is
//! reported on the stream and the rest of the data is dropped.

use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::driver::storage::{Storage, VolRef, VolStream, dir};
use crate::error::Error;

use super::conn::{Conn, STREAM_BACKLOG, StreamChunk, StreamHandle};
use super::frame::{Header, MsgType, STATUS_CONTINUE, STATUS_OK, STREAM_CHUNK_MAX};

fn packet(call: &Header, status: u32) -> Header {
    Header::answer(call, MsgType::Stream, status)
}

/// Starts sending a volume to the client (after the call's reply).
pub fn start_download(conn: &Arc<Conn>, call: Header, s: VolStream) {
    let (file, length, in_use) = s.into_parts();
    send_file(conn, call, file, length, "cannot read volume", in_use);
}

/// Starts sending `length` bytes of `file` (0: up to its end) as the
/// stream of `call`, then the empty packet that ends it. `guard` is held
/// until the last byte is out; `what` names a read failure.
pub fn send_file<G: Send + 'static>(
    conn: &Arc<Conn>,
    call: Header,
    file: std::fs::File,
    length: u64,
    what: &'static str,
    guard: G,
) {
    let weak = Arc::downgrade(conn);
    // A download takes no client data; the channel only completes the handle.
    let (tx, _rx) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let mut file = tokio::fs::File::from_std(file);
        let mut left = if length == 0 { u64::MAX } else { length };
        let mut buf = vec![0u8; STREAM_CHUNK_MAX];
        while left > 0 {
            let want = (buf.len() as u64).min(left) as usize;
            let n = match file.read(&mut buf[..want]).await {
                Ok(n) => n,
                Err(e) => {
                    if let Some(conn) = weak.upgrade() {
                        conn.send_error(&call, MsgType::Stream, &dir::sys(what, &e))
                            .await;
                    }
                    return;
                }
            };
            if n == 0 {
                break;
            }
            left -= n as u64;
            let Some(conn) = weak.upgrade() else { return };
            conn.send_msg(packet(&call, STATUS_CONTINUE), &buf[..n])
                .await;
        }
        if let Some(conn) = weak.upgrade() {
            conn.send_msg(packet(&call, STATUS_CONTINUE), &[]).await;
        }
        drop(guard);
    });
    conn.add_stream(
        call.serial,
        StreamHandle {
            proc_: call.proc_,
            to_guest: tx,
            tasks: vec![task.abort_handle()],
            confirms_own_finish: false,
        },
    );
}

/// Starts receiving a volume from the client (after the call's reply).
/// A thread of its own writes the packets in order with plain `write`s
/// (no extra copy) and syncs the data when the client finishes.
pub fn start_upload(conn: &Arc<Conn>, call: Header, s: VolStream, storage: Storage, vol: VolRef) {
    let weak = Arc::downgrade(conn);
    let (tx, mut rx) = mpsc::channel::<StreamChunk>(STREAM_BACKLOG);
    let task = tokio::spawn(async move {
        let (file, length, in_use) = s.into_parts();
        let written = tokio::task::spawn_blocking(move || {
            use std::io::{Seek, SeekFrom, Write};
            let mut file = file;
            let mut left = if length == 0 { u64::MAX } else { length };
            while let Some(chunk) = rx.blocking_recv() {
                match chunk {
                    StreamChunk::Data(data) => {
                        let n = (data.len() as u64).min(left) as usize;
                        file.write_all(&data[..n])
                            .map_err(|e| dir::sys("cannot write volume", &e))?;
                        left -= n as u64;
                    }
                    // A sparse upload's hole reads as zeros afterwards:
                    // the range is deallocated, or zeroed where the
                    // filesystem cannot.
                    StreamChunk::Hole(len) => {
                        let n = len.min(left);
                        let at = file
                            .stream_position()
                            .map_err(|e| dir::sys("cannot seek in volume", &e))?;
                        dir::punch_hole(&file, at, n)
                            .map_err(|e| dir::sys("cannot punch a hole in volume", &e))?;
                        file.seek(SeekFrom::Current(n as i64))
                            .map_err(|e| dir::sys("cannot seek in volume", &e))?;
                        left -= n;
                    }
                }
            }
            // A hole at the end still makes the file that long.
            let end = file
                .stream_position()
                .map_err(|e| dir::sys("cannot seek in volume", &e))?;
            if file.metadata().map(|m| m.len() < end).unwrap_or(false) {
                file.set_len(end)
                    .map_err(|e| dir::sys("cannot extend volume", &e))?;
            }
            // The client finished: the sender went away with the handle.
            file.sync_data()
                .map_err(|e| dir::sys("cannot sync volume", &e))
        })
        .await
        .unwrap_or_else(|e| Err(Error::internal(format!("upload writer failed: {e}"))));
        drop(in_use);
        storage.storage_vol_upload_done(&vol);
        let Some(conn) = weak.upgrade() else { return };
        match written {
            Ok(()) => conn.send_msg(packet(&call, STATUS_OK), &[]).await,
            Err(e) => {
                // Data still coming for this stream is dropped.
                conn.take_stream(call.serial);
                conn.send_error(&call, MsgType::Stream, &e).await
            }
        }
    });
    conn.add_stream(
        call.serial,
        StreamHandle {
            proc_: call.proc_,
            to_guest: tx,
            tasks: vec![task.abort_handle()],
            confirms_own_finish: true,
        },
    );
}
