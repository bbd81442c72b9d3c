//! virtio-console with a single port (no MULTIPORT): receive queue 0,
//! transmit queue 1, and the same host backends as COM1.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_queue::{QueueOwnedT, QueueT};

use super::worker::{Handler, Home, Lent, Poll, WorkQueue, Worker, reclaim};
use super::{Activation, Interrupt, VirtioDevice};
use crate::vmm::config::SerialConfig;
use crate::vmm::error::Result;
use crate::vmm::memory::GuestMemory;
use crate::vmm::serial_backend::{self, SerialBackend};

const RX: u64 = 0;
const TX: u64 = 1;
const LISTENER: u64 = 10;
const INPUT: u64 = 11;
/// Bytes taken from one transmit chain at most.
const MAX_TX: usize = 64 << 10;

pub struct Console {
    backend: Option<SerialBackend>,
    home: Home<SerialBackend>,
    worker: Option<Worker>,
    socket: Option<std::path::PathBuf>,
}

impl Console {
    pub fn new(cfg: &SerialConfig) -> Result<Self> {
        Self::on(SerialBackend::open(cfg)?)
    }

    /// A console on the backend `cfg` describes, opened by the daemon as
    /// `fd` (see [`SerialBackend::adopt`]).
    pub fn adopt(cfg: &SerialConfig, fd: std::os::fd::OwnedFd) -> Result<Self> {
        Self::on(SerialBackend::adopt(cfg, fd)?)
    }

    fn on(backend: SerialBackend) -> Result<Self> {
        if let Some(p) = &backend.pty_path {
            eprintln!("char device redirected to {p} (label console0)");
        }
        let socket = backend.listener.as_ref().map(|(_, p)| p.clone());
        Ok(Console {
            backend: Some(backend),
            home: Arc::new(Mutex::new(None)),
            worker: None,
            socket,
        })
    }

    /// The pty slave of the backend, if it is a pty.
    pub fn pty_path(&self) -> Option<String> {
        self.backend.as_ref().and_then(|b| b.pty_path.clone())
    }

    /// The unix socket the backend listens on, if any.
    pub fn socket_path(&self) -> Option<std::path::PathBuf> {
        self.socket.clone()
    }
}

struct ConsoleWorker {
    backend: Lent<SerialBackend>,
    mem: GuestMemory,
    rx: WorkQueue,
    tx: WorkQueue,
    irq: Arc<Interrupt>,
    input: Option<RawFd>,
    input_paused: bool,
}

impl ConsoleWorker {
    fn transmit(&mut self) {
        let Some(b) = self.backend.as_mut() else {
            return;
        };
        if !self.tx.queue.ready() {
            return;
        }
        let mem = &self.mem;
        self.tx.process(mem, &self.irq, |chain| {
            if let Ok(mut r) = chain.reader(mem) {
                let mut buf = vec![0u8; r.available_bytes().min(MAX_TX)];
                if r.read_exact(&mut buf).is_ok() {
                    let _ = b.out.write_all(&buf);
                    let _ = b.out.flush();
                }
            }
            0
        });
    }

    fn receive(&mut self, poll: &Poll) {
        let Some(fd) = self.input else {
            return;
        };
        if !self.rx.queue.ready() {
            return;
        }
        let mut completed = false;
        loop {
            let Some(chain) = self.rx.pop(&self.mem) else {
                // No buffer: stop polling until the driver adds some.
                poll.remove(fd);
                self.input_paused = true;
                break;
            };
            let head = chain.head_index();
            let Ok(mut w) = chain.writer(&self.mem) else {
                self.rx.complete(&self.mem, head, 0);
                completed = true;
                continue;
            };
            let mut buf = vec![0u8; w.available_bytes().min(4096)];
            match serial_backend::read_available(fd, &mut buf) {
                Ok(n) if n > 0 => {
                    let ok = w.write_all(&buf[..n]).is_ok();
                    self.rx
                        .complete(&self.mem, head, if ok { n as u32 } else { 0 });
                    completed = true;
                }
                r => {
                    self.rx.queue.go_to_previous_position();
                    if !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock) {
                        // EOF or error: forget this input.
                        poll.remove(fd);
                        self.input = None;
                    }
                    break;
                }
            }
        }
        if completed {
            self.rx.notify(&self.mem, &self.irq);
        }
    }
}

impl Handler for ConsoleWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.rx.event.as_raw_fd(), RX)?;
        poll.add(self.tx.event.as_raw_fd(), TX)?;
        if let Some((l, _)) = self.backend.as_ref().and_then(|b| b.listener.as_ref()) {
            poll.add(l.as_raw_fd(), LISTENER)?;
        }
        if let Some(fd) = self.input
            && poll.add(fd, INPUT).is_err()
        {
            self.input = None;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, poll: &Poll) {
        match token {
            RX => {
                self.rx.ack();
                if self.input_paused
                    && let Some(fd) = self.input
                {
                    self.input_paused = false;
                    let _ = poll.add(fd, INPUT);
                }
                self.receive(poll);
            }
            TX => {
                self.tx.ack();
                self.transmit();
            }
            LISTENER => {
                let Some(fd) = self.backend.as_ref().and_then(|b| b.accept()) else {
                    return;
                };
                if let Some(old) = self.input.replace(fd) {
                    poll.remove(old);
                }
                self.input_paused = false;
                let _ = poll.add(fd, INPUT);
            }
            _ => self.receive(poll),
        }
    }
}

impl VirtioDevice for Console {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![64, 64]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn activate(&mut self, act: Activation) -> std::result::Result<(), String> {
        let backend = self.backend.take().ok_or("console backend not available")?;
        let mut qs = act.queues.into_iter();
        let (rq, re) = qs.next().ok_or("no receive queue")?;
        let (tq, te) = qs.next().ok_or("no transmit queue")?;
        let input = backend.input;
        let w = ConsoleWorker {
            backend: Lent::new(backend, self.home.clone()),
            mem: act.mem,
            rx: WorkQueue::new(0, rq, re),
            tx: WorkQueue::new(1, tq, te),
            irq: act.interrupt,
            input,
            input_paused: false,
        };
        self.worker = Some(
            Worker::spawn(
                crate::vmm::sandbox::ThreadKind::Console,
                "virtio-console",
                w,
            )
            .map_err(|e| e.to_string())?,
        );
        Ok(())
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        reclaim(&mut self.backend, &self.home);
    }
}
