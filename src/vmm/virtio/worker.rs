//! A device's worker thread: an epoll loop over its queue eventfds and its
//! backend's fds, stopped through an eventfd on reset or exit.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use virtio_bindings::virtio_ring::VRING_AVAIL_F_NO_INTERRUPT;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::Bytes;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::Interrupt;
use crate::vmm::memory::GuestMemory;
use crate::vmm::sandbox::ThreadKind;

const KILL_TOKEN: u64 = u64::MAX;
/// Avail ring flag: the driver polls and wants no interrupts (a `u16`
/// flag, `u32` in `virtio_bindings`).
const AVAIL_F_NO_INTERRUPT: u16 = VRING_AVAIL_F_NO_INTERRUPT as u16;

/// Where a device keeps a host resource (a tap, a console backend) while
/// a worker has it.
pub type Home<T> = Arc<Mutex<Option<T>>>;

/// A host resource a device lends to its worker. It goes back to the
/// device's [`Home`] when the worker ends, so that after a reset the next
/// activation finds it again.
pub struct Lent<T> {
    value: Option<T>,
    home: Home<T>,
}

impl<T> Lent<T> {
    pub fn new(value: T, home: Home<T>) -> Self {
        Lent {
            value: Some(value),
            home,
        }
    }

    pub fn as_ref(&self) -> Option<&T> {
        self.value.as_ref()
    }

    pub fn as_mut(&mut self) -> Option<&mut T> {
        self.value.as_mut()
    }
}

impl<T> Drop for Lent<T> {
    fn drop(&mut self) {
        if let (Some(v), Ok(mut h)) = (self.value.take(), self.home.lock()) {
            *h = Some(v);
        }
    }
}

/// Puts what a finished worker returned back into an empty `slot`.
pub fn reclaim<T>(slot: &mut Option<T>, home: &Home<T>) {
    if slot.is_none()
        && let Ok(mut h) = home.lock()
    {
        *slot = h.take();
    }
}

/// The epoll set a handler may change while it runs.
pub struct Poll {
    epoll: Epoll,
}

impl Poll {
    /// Watches `fd` for input, reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.epoll.ctl(
            ControlOperation::Add,
            fd,
            EpollEvent::new(EventSet::IN, token),
        )
    }

    /// Stops watching `fd`.
    pub fn remove(&self, fd: RawFd) {
        let _ = self
            .epoll
            .ctl(ControlOperation::Delete, fd, EpollEvent::default());
    }
}

/// What a device does on its thread.
pub trait Handler: Send + 'static {
    /// Registers the handler's fds (queue eventfds, backends).
    fn register(&mut self, poll: &Poll) -> io::Result<()>;
    /// Handles readiness of the fd registered with `token`.
    fn event(&mut self, token: u64, poll: &Poll);
    /// Milliseconds until `tick` should run, or None.
    fn timeout_ms(&self) -> Option<i32> {
        None
    }
    /// Runs when the timeout passes with no event.
    fn tick(&mut self, _poll: &Poll) {}
}

/// A running worker thread.
pub struct Worker {
    kill: EventFd,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts `handler` on a new thread of `kind` called `name`.
    pub fn spawn<H: Handler>(kind: ThreadKind, name: &str, mut handler: H) -> io::Result<Worker> {
        let kill = EventFd::new(libc::EFD_NONBLOCK)?;
        let poll = Poll {
            epoll: Epoll::new()?,
        };
        poll.add(kill.as_raw_fd(), KILL_TOKEN)?;
        handler.register(&poll)?;
        let handle = crate::vmm::sandbox::spawn(kind, name, None, move || run(handler, poll))?;
        Ok(Worker {
            kill,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        let _ = self.kill.write(1);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A device's worker that starts with the first kick (the first register
/// write that gives it work) and is woken through an eventfd after that.
pub struct LazyWorker {
    kick: EventFd,
    worker: Option<Worker>,
    kind: ThreadKind,
    label: String,
}

impl LazyWorker {
    pub fn new(kind: ThreadKind, label: String) -> io::Result<Self> {
        Ok(LazyWorker {
            kick: EventFd::new(libc::EFD_NONBLOCK)?,
            worker: None,
            kind,
            label,
        })
    }

    /// Wakes the worker; the first time, `start` makes its handler from
    /// a copy of the eventfd to watch (`None`: nothing to start with).
    pub fn kick<H: Handler>(&mut self, start: impl FnOnce(EventFd) -> Option<H>) {
        if self.worker.is_none() {
            let handler = match self.kick.try_clone() {
                Ok(fd) => start(fd),
                Err(e) => {
                    tracing::error!("{}: cannot start the worker: {e}", self.label);
                    return;
                }
            };
            let Some(handler) = handler else { return };
            match Worker::spawn(self.kind, &self.label, handler) {
                Ok(w) => self.worker = Some(w),
                Err(e) => {
                    tracing::error!("{}: cannot start the worker: {e}", self.label);
                    return;
                }
            }
        }
        self.wake();
    }

    /// Wakes the worker if it runs.
    pub fn wake(&self) {
        if self.worker.is_some() {
            let _ = self.kick.write(1);
        }
    }

    /// Stops the worker (at VMM exit).
    pub fn stop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }
}

fn run<H: Handler>(mut handler: H, poll: Poll) {
    let mut events = vec![EpollEvent::default(); 16];
    loop {
        let timeout = handler.timeout_ms().unwrap_or(-1);
        let n = match poll.epoll.wait(timeout, &mut events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!("device worker: epoll_wait: {e}");
                return;
            }
        };
        if n == 0 {
            handler.tick(&poll);
        }
        for ev in &events[..n] {
            if ev.data() == KILL_TOKEN {
                return;
            }
            handler.event(ev.data(), &poll);
        }
    }
}

/// False for a chain cut short: its last descriptor still points to a
/// next one (a loop, or longer than the queue allows).
pub fn chain_complete(chain: &virtio_queue::DescriptorChain<&GuestMemory>) -> bool {
    chain.clone().last().is_some_and(|d| !d.has_next())
}

/// One queue as a worker holds it.
pub struct WorkQueue {
    pub queue: Queue,
    pub event: EventFd,
    pub index: usize,
}

impl WorkQueue {
    pub fn new(index: usize, queue: Queue, event: EventFd) -> Self {
        WorkQueue {
            queue,
            event,
            index,
        }
    }

    /// Clears the notification eventfd.
    pub fn ack(&self) {
        let _ = self.event.read();
    }

    /// Pops every available chain and completes it with the length
    /// `f` returns; signals the driver if it wants it. While it works the
    /// driver is asked not to notify (used flags, or the avail event with
    /// EVENT_IDX); afterwards the ring is checked once more so that no
    /// chain added meanwhile waits for a notification that never comes.
    /// A malformed ring (bad index) stops the loop instead of crashing.
    pub fn process<F>(&mut self, mem: &GuestMemory, irq: &Interrupt, mut f: F)
    where
        F: FnMut(virtio_queue::DescriptorChain<&GuestMemory>) -> u32,
    {
        let mut used = false;
        'outer: loop {
            let _ = self.queue.disable_notification(mem);
            loop {
                let chain = match self.queue.iter(mem) {
                    Ok(mut it) => it.next(),
                    Err(e) => {
                        tracing::warn!("virtio queue {}: {e}", self.index);
                        None
                    }
                };
                let Some(chain) = chain else { break };
                let head = chain.head_index();
                let len = if chain_complete(&chain) { f(chain) } else { 0 };
                if let Err(e) = self.queue.add_used(mem, head, len) {
                    tracing::warn!("virtio queue {}: add_used: {e}", self.index);
                    let _ = self.queue.enable_notification(mem);
                    break 'outer;
                }
                used = true;
            }
            match self.queue.enable_notification(mem) {
                Ok(true) => continue,
                _ => break,
            }
        }
        if used {
            self.notify(mem, irq);
        }
    }

    /// Signals the driver unless it asked not to be: avail flags
    /// VRING_AVAIL_F_NO_INTERRUPT, or the used event with EVENT_IDX.
    pub fn notify(&mut self, mem: &GuestMemory, irq: &Interrupt) {
        let wanted = if self.queue.event_idx_enabled() {
            self.queue.needs_notification(mem).unwrap_or(true)
        } else {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let flags: u16 = mem
                .read_obj(vm_memory::GuestAddress(self.queue.avail_ring()))
                .unwrap_or(0);
            flags & AVAIL_F_NO_INTERRUPT == 0
        };
        if wanted {
            irq.signal_queue(self.index);
        }
    }

    /// Takes one chain, if any. When the ring is empty, notifications are
    /// (re-)enabled so the driver tells us about the next chain; a chain
    /// that arrived meanwhile is returned.
    pub fn pop<'a>(
        &mut self,
        mem: &'a GuestMemory,
    ) -> Option<virtio_queue::DescriptorChain<&'a GuestMemory>> {
        if let Some(c) = self.queue.pop_descriptor_chain(mem) {
            return Some(c);
        }
        match self.queue.enable_notification(mem) {
            Ok(true) => self.queue.pop_descriptor_chain(mem),
            _ => None,
        }
    }

    /// Returns a chain to the used ring.
    pub fn complete(&mut self, mem: &GuestMemory, head: u16, len: u32) {
        if let Err(e) = self.queue.add_used(mem, head, len) {
            tracing::warn!("virtio queue {}: add_used: {e}", self.index);
        }
    }
}
