//! virtio-balloon: inflate/deflate queues, the statistics queue, and the
//! `num_pages`/`actual` pair in the configuration space.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use virtio_bindings::virtio_ids::VIRTIO_ID_BALLOON;
use virtio_queue::QueueT;
use vm_memory::{GuestAddress, GuestMemoryBackend};
use vmm_sys_util::eventfd::EventFd;

use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice};
use crate::vmm::memory::GuestMemory;

/// `VIRTIO_BALLOON_F_STATS_VQ`: kept here, `virtio_bindings` has no
/// `virtio_balloon` module.
pub const F_STATS_VQ: u64 = super::feature(1);
const PAGE: u64 = 4096;

const STAT_NAMES: [&str; 10] = [
    "swap-in",
    "swap-out",
    "major-faults",
    "minor-faults",
    "free-memory",
    "total-memory",
    "available-memory",
    "disk-caches",
    "hugetlb-allocations",
    "hugetlb-failures",
];

/// The guest's latest statistics (tag, value) and when they came.
type StatsSample = (Vec<(u16, u64)>, Instant);

/// What a state image keeps of the balloon beyond the transport: the
/// target the host set and the size the guest reported.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BalloonSaved {
    num_pages: u32,
    actual: u32,
}

/// State shared between the device, its worker and the control socket.
pub struct BalloonState {
    num_pages: AtomicU32,
    actual: AtomicU32,
    period_s: u32,
    stats: Mutex<Option<StatsSample>>,
    irq: Mutex<Option<Arc<Interrupt>>>,
    /// Signalled when the guest changes `actual` (the main loop reports it).
    changed: Option<EventFd>,
}

impl BalloonState {
    pub fn new(period_s: u32) -> Self {
        BalloonState {
            num_pages: AtomicU32::new(0),
            actual: AtomicU32::new(0),
            period_s,
            stats: Mutex::new(None),
            irq: Mutex::new(None),
            changed: EventFd::new(libc::EFD_NONBLOCK).ok(),
        }
    }

    /// The eventfd signalled when the guest changes `actual`, if any.
    pub fn changed_fd(&self) -> Option<std::os::fd::RawFd> {
        self.changed.as_ref().map(|e| e.as_raw_fd())
    }

    /// Clears the change notification; returns the pages the guest has
    /// given up now.
    pub fn take_change(&self) -> u32 {
        if let Some(e) = &self.changed {
            let _ = e.read();
        }
        self.actual.load(Ordering::Acquire)
    }

    /// Asks the guest to hold `pages` 4 KiB pages.
    pub fn set_target_pages(&self, pages: u32) {
        self.num_pages.store(pages, Ordering::Release);
        if let Ok(g) = self.irq.lock()
            && let Some(i) = g.as_ref()
        {
            i.signal_config();
        }
    }

    /// `query-stats` view: sizes in bytes, the latest guest statistics.
    pub fn json(&self) -> Value {
        let mut stats = Map::new();
        let mut age = Value::Null;
        if let Ok(g) = self.stats.lock()
            && let Some((list, when)) = g.as_ref()
        {
            for (tag, v) in list {
                let name = STAT_NAMES
                    .get(usize::from(*tag))
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| format!("tag-{tag}"));
                stats.insert(name, json!(v));
            }
            age = json!(when.elapsed().as_millis() as u64);
        }
        json!({
            "num-pages": self.num_pages.load(Ordering::Acquire),
            "actual-pages": self.actual.load(Ordering::Acquire),
            "actual-bytes": u64::from(self.actual.load(Ordering::Acquire)) * PAGE,
            "stats": stats,
            "stats-age-ms": age,
        })
    }
}

pub struct Balloon {
    state: Arc<BalloonState>,
    worker: Option<Worker>,
}

impl Balloon {
    pub fn new(state: Arc<BalloonState>) -> Self {
        Balloon {
            state,
            worker: None,
        }
    }
}

struct BalloonWorker {
    mem: GuestMemory,
    queues: Vec<WorkQueue>,
    irq: Arc<Interrupt>,
    state: Arc<BalloonState>,
    /// The statistics buffer the device holds until it wants new numbers.
    held: Option<u16>,
    next_poll: Option<Instant>,
}

impl BalloonWorker {
    fn pages(&mut self, q: usize, inflate: bool) {
        let Some(wq) = self.queues.get_mut(q) else {
            return;
        };
        if !wq.queue.ready() {
            return;
        }
        let mem = &self.mem;
        wq.process(mem, &self.irq, |chain| {
            let Ok(mut r) = chain.reader(mem) else {
                return 0;
            };
            let mut pfn = [0u8; 4];
            while r.read_exact(&mut pfn).is_ok() {
                if inflate {
                    release_page(mem, u64::from(u32::from_le_bytes(pfn)));
                }
            }
            0
        });
    }

    fn stats(&mut self) {
        let Some(wq) = self.queues.get_mut(2) else {
            return;
        };
        if !wq.queue.ready() {
            return;
        }
        while let Some(chain) = wq.pop(&self.mem) {
            let head = chain.head_index();
            if let Ok(mut r) = chain.reader(&self.mem) {
                let mut list = Vec::new();
                let mut e = [0u8; 10];
                while list.len() < 64 && r.read_exact(&mut e).is_ok() {
                    let tag = u16::from_le_bytes([e[0], e[1]]);
                    let v = u64::from_le_bytes(e[2..10].try_into().unwrap_or([0; 8]));
                    list.push((tag, v));
                }
                if let Ok(mut s) = self.state.stats.lock() {
                    *s = Some((list, Instant::now()));
                }
            }
            if let Some(old) = self.held.replace(head) {
                wq.complete(&self.mem, old, 0);
                wq.notify(&self.mem, &self.irq);
            }
        }
        if self.state.period_s > 0 && self.next_poll.is_none() {
            self.next_poll =
                Some(Instant::now() + Duration::from_secs(u64::from(self.state.period_s)));
        }
    }
}

/// Gives an inflated page's memory back to the host.
fn release_page(mem: &GuestMemory, pfn: u64) {
    let Some(addr) = pfn.checked_mul(PAGE) else {
        return;
    };
    if let Ok(host) = mem.get_host_address(GuestAddress(addr)) {
        // The whole page must lie inside one region.
        if mem.get_slice(GuestAddress(addr), PAGE as usize).is_ok() {
            // SAFETY: [host, host + 4096) is guest RAM mapped by this
            // process (checked above); MADV_DONTNEED only drops its
            // contents, which the guest gave up by inflating the page.
            unsafe { libc::madvise(host.cast(), PAGE as usize, libc::MADV_DONTNEED) };
        }
    }
}

impl Handler for BalloonWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        for (i, q) in self.queues.iter().enumerate() {
            poll.add(q.event.as_raw_fd(), i as u64)?;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, _poll: &Poll) {
        if let Some(q) = self.queues.get(token as usize) {
            q.ack();
        }
        match token {
            0 => self.pages(0, true),
            1 => self.pages(1, false),
            _ => self.stats(),
        }
    }

    fn timeout_ms(&self) -> Option<i32> {
        self.next_poll.map(|t| {
            t.saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32
        })
    }

    fn tick(&mut self, _poll: &Poll) {
        self.next_poll = None;
        // Hand the held buffer back: the driver refills it with fresh
        // statistics and queues it again.
        if let (Some(head), Some(wq)) = (self.held.take(), self.queues.get_mut(2)) {
            wq.complete(&self.mem, head, 0);
            wq.notify(&self.mem, &self.irq);
        }
    }
}

impl VirtioDevice for Balloon {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BALLOON
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![128, 128, 16]
    }
    fn features(&self) -> u64 {
        F_STATS_VQ
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; 8];
        c[0..4].copy_from_slice(&self.state.num_pages.load(Ordering::Acquire).to_le_bytes());
        c[4..8].copy_from_slice(&self.state.actual.load(Ordering::Acquire).to_le_bytes());
        super::read_config_bytes(&c, offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == 4 && data.len() == 4 {
            let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            let old = self.state.actual.swap(v, Ordering::AcqRel);
            if old != v
                && let Some(e) = &self.state.changed
            {
                let _ = e.write(1);
            }
        }
    }
    fn save_state(&self) -> serde_json::Value {
        let saved = BalloonSaved {
            num_pages: self.state.num_pages.load(Ordering::Acquire),
            actual: self.state.actual.load(Ordering::Acquire),
        };
        serde_json::to_value(saved).unwrap_or_default()
    }
    fn restore_state(
        &mut self,
        state: &serde_json::Value,
        _mem: &crate::vmm::memory::GuestMemory,
    ) -> Result<(), String> {
        let s: BalloonSaved = serde_json::from_value(state.clone())
            .map_err(|e| format!("virtio-balloon state: {e}"))?;
        self.state.num_pages.store(s.num_pages, Ordering::Release);
        self.state.actual.store(s.actual, Ordering::Release);
        Ok(())
    }
    fn activate(&mut self, act: Activation) -> Result<(), String> {
        if let Ok(mut g) = self.state.irq.lock() {
            *g = Some(act.interrupt.clone());
        }
        let queues = act
            .queues
            .into_iter()
            .enumerate()
            .map(|(i, (q, e))| WorkQueue::new(i, q, e))
            .collect();
        let w = BalloonWorker {
            mem: act.mem,
            queues,
            irq: act.interrupt,
            state: self.state.clone(),
            held: None,
            next_poll: None,
        };
        self.worker = Some(
            Worker::spawn(
                crate::vmm::sandbox::ThreadKind::Balloon,
                "virtio-balloon",
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
        if let Ok(mut g) = self.state.irq.lock() {
            *g = None;
        }
    }
}
