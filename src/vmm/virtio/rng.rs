//! virtio-rng: one queue of device-writable buffers filled from getrandom(2).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_RNG;
use virtio_queue::QueueT;

use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice};
use crate::vmm::memory::GuestMemory;

/// Most random bytes handed out per buffer.
const MAX_FILL: usize = 4096;

#[derive(Default)]
pub struct Rng {
    worker: Option<Worker>,
}

struct RngWorker {
    mem: GuestMemory,
    queue: WorkQueue,
    irq: Arc<Interrupt>,
}

/// Fills `buf` from the kernel's random pool.
pub fn fill_random(buf: &mut [u8]) -> usize {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    n.max(0) as usize
}

impl Handler for RngWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.queue.event.as_raw_fd(), 0)
    }

    fn event(&mut self, _token: u64, _poll: &Poll) {
        self.queue.ack();
        if !self.queue.queue.ready() {
            return;
        }
        let mem = &self.mem;
        self.queue.process(mem, &self.irq, |chain| {
            let Ok(mut w) = chain.writer(mem) else {
                return 0;
            };
            let mut buf = vec![0u8; w.available_bytes().min(MAX_FILL)];
            let n = fill_random(&mut buf);
            match w.write_all(&buf[..n]) {
                Ok(()) => n as u32,
                Err(_) => 0,
            }
        });
    }
}

impl VirtioDevice for Rng {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_RNG
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![256]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(&mut self, act: Activation) -> Result<(), String> {
        let (q, ev) = act.queues.into_iter().next().ok_or("no queue")?;
        let w = RngWorker {
            mem: act.mem,
            queue: WorkQueue::new(0, q, ev),
            irq: act.interrupt,
        };
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::Rng, "virtio-rng", w)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }
}
