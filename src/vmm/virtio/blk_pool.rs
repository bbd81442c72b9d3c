//! A second thread for a virtio-blk queue on a raw image: when the driver
//! keeps several requests in flight, the worker hands half of each batch
//! of reads and writes to this thread and runs the other half itself, so
//! two copies between the page cache and guest memory proceed at once.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use super::blk::Transfer;
use super::disk;

/// Reads and writes as iovecs into guest memory.
struct Batch(Vec<(bool, u64, Vec<libc::iovec>)>);

// SAFETY: the iovecs point into guest memory, which stays mapped while the
// VM runs; the worker that sends a batch waits for its results before it
// completes (or forgets) the chains the iovecs came from.
unsafe impl Send for Batch {}

/// The helper thread and its channels.
pub struct IoPool {
    jobs: Option<Sender<Batch>>,
    done: Receiver<Vec<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl IoPool {
    /// Starts the helper on its own handle of the image.
    pub fn new(file: File, name: &str) -> io::Result<IoPool> {
        let (jobs, rx) = channel::<Batch>();
        let (tx, done) = channel();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let fd = file.as_raw_fd();
                for Batch(items) in rx {
                    let r = items
                        .into_iter()
                        .map(|(write, off, mut iovs)| {
                            disk::rw_all(fd, &mut iovs, off, write).is_ok()
                        })
                        .collect();
                    if tx.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(IoPool {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Runs `transfers`, the second half on the helper; returns one
    /// result per transfer, in order. `local` runs one on this thread.
    pub fn run<F>(&self, transfers: &[Transfer<'_>], mut local: F) -> Vec<io::Result<()>>
    where
        F: FnMut(&Transfer<'_>) -> io::Result<()>,
    {
        let half = transfers.len() / 2;
        let sent = half > 0
            && self.jobs.as_ref().is_some_and(|j| {
                let items = transfers[half..]
                    .iter()
                    .map(|t| (t.write, t.off, disk::iovecs(&t.data)))
                    .collect();
                j.send(Batch(items)).is_ok()
            });
        let mine = if sent { half } else { transfers.len() };
        let mut out: Vec<io::Result<()>> = transfers[..mine].iter().map(&mut local).collect();
        if sent {
            match self.done.recv() {
                Ok(r) => out.extend(r.into_iter().map(|ok| {
                    if ok {
                        Ok(())
                    } else {
                        Err(io::Error::other("I/O error"))
                    }
                })),
                Err(_) => out.extend(transfers[mine..].iter().map(&mut local)),
            }
        }
        out
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
