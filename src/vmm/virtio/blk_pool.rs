//! A second thread for a virtio-blk queue on a raw image: when a sweep of
//! the ring makes more than one call (after merging, see `blk_merge.rs`),
//! the whole list is handed to this thread in one message, and each call
//! is run by whichever of the two threads claims it first (the worker from
//! the end, the helper from the start). The worker never waits for a
//! helper that has not started: it only waits, blocked on a condition
//! variable, for calls the helper claimed and is still running.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::disk;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const DONE_OK: u8 = 2;
const DONE_ERR: u8 = 3;

/// One `preadv`/`pwritev` on the image: iovecs into guest memory.
pub struct Job {
    pub write: bool,
    pub off: u64,
    pub iovs: Vec<libc::iovec>,
}

/// One sweep's calls.
struct Batch {
    jobs: Vec<Job>,
    state: Vec<AtomicU8>,
    /// Calls the helper finished.
    helper_done: Mutex<usize>,
    cv: Condvar,
}

// SAFETY: the iovecs point into guest memory, which stays mapped while the
// VM runs; a call's iovecs are used by exactly one thread (the one whose
// compare-exchange claimed it), and the worker completes the requests only
// after that thread marked it done.
unsafe impl Send for Batch {}
// SAFETY: as above; the shared mutable state is the atomics and the mutex.
unsafe impl Sync for Batch {}

impl Batch {
    fn claim(&self, i: usize) -> bool {
        self.state[i]
            .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The helper thread.
pub struct IoPool {
    jobs: Option<Sender<Arc<Batch>>>,
    thread: Option<JoinHandle<()>>,
}

impl IoPool {
    /// Starts the helper on its own handle of the image.
    pub fn new(file: File, name: &str) -> io::Result<IoPool> {
        let (jobs, rx) = channel::<Arc<Batch>>();
        let kind = crate::vmm::sandbox::ThreadKind::BlockIo;
        let thread = crate::vmm::sandbox::spawn(kind, name, None, move || {
            let fd = file.as_raw_fd();
            for batch in rx {
                for (i, job) in batch.jobs.iter().enumerate() {
                    if !batch.claim(i) {
                        continue;
                    }
                    let mut iovs = job.iovs.clone();
                    let ok = disk::rw_all(fd, &mut iovs, job.off, job.write).is_ok();
                    batch.state[i].store(if ok { DONE_OK } else { DONE_ERR }, Ordering::Release);
                    if let Ok(mut n) = batch.helper_done.lock() {
                        *n += 1;
                    }
                    batch.cv.notify_one();
                }
            }
        })?;
        Ok(IoPool {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `jobs`, sharing them with the helper: `local(i)` runs job `i`
    /// on this thread (and deals with its result). Returns, in order, the
    /// result of each job the helper ran, `None` for the others.
    pub fn run<F>(&self, jobs: Vec<Job>, mut local: F) -> Vec<Option<io::Result<()>>>
    where
        F: FnMut(usize),
    {
        let n = jobs.len();
        if n < 2 {
            (0..n).for_each(&mut local);
            return (0..n).map(|_| None).collect();
        }
        let batch = Arc::new(Batch {
            state: (0..n).map(|_| AtomicU8::new(FREE)).collect(),
            jobs,
            helper_done: Mutex::new(0),
            cv: Condvar::new(),
        });
        if let Some(j) = &self.jobs {
            let _ = j.send(batch.clone());
        }
        let mut ran_here = vec![false; n];
        let mut mine = 0;
        for i in (0..n).rev() {
            if batch.claim(i) {
                local(i);
                ran_here[i] = true;
                mine += 1;
            }
        }
        // Every call is claimed now; wait for the helper's.
        if mine < n
            && let Ok(mut done) = batch.helper_done.lock()
        {
            while *done < n - mine {
                done = match batch.cv.wait(done) {
                    Ok(d) => d,
                    Err(_) => break,
                };
            }
        }
        ran_here
            .into_iter()
            .enumerate()
            .map(|(i, here)| {
                (!here).then(|| match batch.state[i].load(Ordering::Acquire) {
                    DONE_OK => Ok(()),
                    _ => Err(io::Error::other("I/O error")),
                })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn both_threads_serve_a_batch() {
        let mut f = tempfile_in_tmp();
        f.write_all(&vec![7u8; 64 << 10]).unwrap();
        let pool = IoPool::new(f.try_clone().unwrap(), "blk-pool-test").unwrap();
        let mut bufs: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; 8192]).collect();
        let jobs = bufs
            .iter_mut()
            .enumerate()
            .map(|(i, b)| Job {
                write: true,
                off: i as u64 * 8192,
                iovs: vec![libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                }],
            })
            .collect();
        let fd = f.as_raw_fd();
        let mut local = 0;
        let results = pool.run(jobs, |i| {
            let mut b = vec![i as u8; 8192];
            let mut iov = [libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            }];
            disk::rw_all(fd, &mut iov, i as u64 * 8192, true).unwrap();
            local += 1;
        });
        assert_eq!(results.len(), 8);
        // Each job ran on exactly one thread.
        assert_eq!(results.iter().filter(|r| r.is_none()).count(), local);
        assert!(results.iter().flatten().all(|r| r.is_ok()));
        let mut all = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut all).unwrap();
        for i in 0..8 {
            assert!(all[i * 8192..(i + 1) * 8192].iter().all(|&b| b == i as u8));
        }
    }

    fn tempfile_in_tmp() -> File {
        let p = std::env::temp_dir().join(format!("oxvirt-blk-pool-{}", std::process::id()));
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        let _ = std::fs::remove_file(&p);
        f
    }
}
