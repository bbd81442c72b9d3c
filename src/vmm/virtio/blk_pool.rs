//! A second thread for a virtio-blk queue on a raw image: when the driver
//! keeps several requests in flight, the reads and writes gathered in one
//! sweep of the ring are offered to this thread too, and each is run by
//! whichever of the two threads claims it first. The worker never waits
//! for a helper that has not started: it only waits for transfers the
//! helper has claimed and is running.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::thread::JoinHandle;

use super::blk::Transfer;
use super::disk;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const DONE_OK: u8 = 2;
const DONE_ERR: u8 = 3;

struct Item {
    write: bool,
    off: u64,
    iovs: Vec<libc::iovec>,
    state: AtomicU8,
}

/// One sweep's transfers, as iovecs into guest memory.
struct Batch(Vec<Item>);

// SAFETY: the iovecs point into guest memory, which stays mapped while the
// VM runs; a transfer's iovecs are used by exactly one thread (the one
// whose compare-exchange claimed it), and the worker completes the chain
// only after that thread marked it done.
unsafe impl Send for Batch {}
// SAFETY: as above; the only shared mutable state is the atomics.
unsafe impl Sync for Batch {}

/// The helper thread.
pub struct IoPool {
    jobs: Option<Sender<Arc<Batch>>>,
    thread: Option<JoinHandle<()>>,
}

impl IoPool {
    /// Starts the helper on its own handle of the image.
    pub fn new(file: File, name: &str) -> io::Result<IoPool> {
        let (jobs, rx) = channel::<Arc<Batch>>();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let fd = file.as_raw_fd();
                for batch in rx {
                    for it in &batch.0 {
                        if it
                            .state
                            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                            .is_err()
                        {
                            continue;
                        }
                        let mut iovs = it.iovs.clone();
                        let ok = disk::rw_all(fd, &mut iovs, it.off, it.write).is_ok();
                        it.state
                            .store(if ok { DONE_OK } else { DONE_ERR }, Ordering::Release);
                    }
                }
            })?;
        Ok(IoPool {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `transfers`, sharing them with the helper; returns one result
    /// per transfer, in order. `local` runs one on this thread.
    pub fn run<F>(&self, transfers: &[Transfer<'_>], mut local: F) -> Vec<io::Result<()>>
    where
        F: FnMut(&Transfer<'_>) -> io::Result<()>,
    {
        if transfers.len() < 2 {
            return transfers.iter().map(&mut local).collect();
        }
        let batch = Arc::new(Batch(
            transfers
                .iter()
                .map(|t| Item {
                    write: t.write,
                    off: t.off,
                    iovs: disk::iovecs(&t.data),
                    state: AtomicU8::new(FREE),
                })
                .collect(),
        ));
        if let Some(j) = &self.jobs {
            let _ = j.send(batch.clone());
        }
        // Claim from the end, so the two threads meet in the middle.
        let mut out: Vec<Option<io::Result<()>>> = (0..transfers.len()).map(|_| None).collect();
        for (i, t) in transfers.iter().enumerate().rev() {
            if batch.0[i]
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                out[i] = Some(local(t));
            }
        }
        out.into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Some(r) => r,
                None => loop {
                    match batch.0[i].state.load(Ordering::Acquire) {
                        DONE_OK => break Ok(()),
                        DONE_ERR => break Err(io::Error::other("I/O error")),
                        _ => std::thread::yield_now(),
                    }
                },
            })
            .collect()
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
