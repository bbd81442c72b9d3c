//! virtio-blk: requests on one queue, served from a raw file/block device
//! or a qcow2 image (through imago, backing chains included).

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR,
    VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{DescriptorChain, Queue, QueueT};

use super::blk_merge::{self, Span};
use super::blk_pool::{IoPool, Job};
use super::disk::{self, Disk};
use super::iov;
use super::stats::BlkStats;
use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice, feature};
use crate::vmm::memory::GuestMemory;

pub const SECTOR: u64 = 512;
const QUEUE_SIZE: u16 = 256;
/// Largest data transfer of one request; larger ones fail with IOERR.
pub const MAX_REQUEST: usize = 16 << 20;
const SEG_MAX: u32 = 126;
const MAX_WRITE_ZEROES_SECTORS: u32 = 1 << 16;

pub const F_SEG_MAX: u64 = feature(VIRTIO_BLK_F_SEG_MAX);
pub const F_RO: u64 = feature(VIRTIO_BLK_F_RO);
pub const F_BLK_SIZE: u64 = feature(VIRTIO_BLK_F_BLK_SIZE);
pub const F_FLUSH: u64 = feature(VIRTIO_BLK_F_FLUSH);
pub const F_DISCARD: u64 = feature(VIRTIO_BLK_F_DISCARD);
pub const F_WRITE_ZEROES: u64 = feature(VIRTIO_BLK_F_WRITE_ZEROES);

/// Status bytes (`VIRTIO_BLK_S_*`, which `virtio_bindings` types `u32`).
pub const S_OK: u8 = VIRTIO_BLK_S_OK as u8;
pub const S_IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
pub const S_UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

/// Length of the GET_ID answer.
const ID_LEN: usize = VIRTIO_BLK_ID_BYTES as usize;

/// A read or write taken out of its chain: guest memory, disk offset and
/// where its status byte goes.
pub struct Transfer<'a> {
    pub write: bool,
    pub off: u64,
    pub len: usize,
    pub data: Vec<iov::Slice<'a>>,
    status: Vec<iov::Slice<'a>>,
    /// When the request was taken from the ring, for the time counters
    /// (submission to completion, as QEMU's `rd_total_time_ns`).
    started: Instant,
}

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl Transfer<'_> {
    /// What merging looks at.
    pub fn span(&self) -> Span {
        Span {
            write: self.write,
            off: self.off,
            len: self.len,
            segs: self.data.len(),
        }
    }
}

/// Any request other than a well-formed read or write (flush, GET_ID,
/// discard, write zeroes, unknown types), parsed.
pub struct Other<'a> {
    ty: u32,
    out: Vec<iov::Slice<'a>>,
    inp: Vec<iov::Slice<'a>>,
    status: Vec<iov::Slice<'a>>,
}

/// What [`BlkCore::begin`] made of a chain.
pub enum Step<'a> {
    /// Answered already (malformed, out of range, refused); the used length.
    Done(u32),
    /// A read or write to run (alone, or in a batch through
    /// [`BlkCore::run_batch`]), then [`BlkCore::finish`].
    Transfer(Transfer<'a>),
    /// To serve with [`BlkCore::other`] once the reads and writes taken
    /// before it completed, so that a FLUSH covers them.
    Other(Other<'a>),
}

/// The request logic, shared by the worker and the tests.
pub struct BlkCore {
    pub disk: Box<dyn Disk>,
    pub readonly: bool,
    /// The driver did not negotiate FLUSH: every write reaches stable
    /// storage before it completes (virtio 1.2, 5.2.6.2).
    pub writethrough: bool,
    pub serial: [u8; ID_LEN],
    pub stats: Arc<BlkStats>,
}

impl BlkCore {
    fn capacity(&self) -> u64 {
        self.disk.size() / SECTOR
    }

    /// Range check of `len` bytes at `sector`; returns the byte offset.
    fn range(&self, sector: u64, len: u64) -> Option<u64> {
        let off = sector.checked_mul(SECTOR)?;
        (off.checked_add(len)? <= self.disk.size()).then_some(off)
    }

    /// Serves one request chain; returns the bytes written to the guest.
    /// Any malformed chain is answered without touching the disk (or
    /// dropped with length 0 if not even a status byte fits).
    pub fn handle(&mut self, mem: &GuestMemory, chain: DescriptorChain<&GuestMemory>) -> u32 {
        match self.begin(mem, chain) {
            Step::Done(n) => n,
            Step::Transfer(t) => {
                let r = self.transfer(&t);
                self.finish(&t, r)
            }
            Step::Other(o) => self.other(o),
        }
    }

    /// Parses a chain. A malformed one, a read or write out of range and a
    /// write to a read-only disk are answered at once; the rest comes back
    /// to be run.
    pub fn begin<'a>(
        &mut self,
        mem: &'a GuestMemory,
        chain: DescriptorChain<&'a GuestMemory>,
    ) -> Step<'a> {
        let Some(b) = iov::chain_buffers(mem, chain) else {
            self.stats.errors.inc();
            return Step::Done(0);
        };
        let wlen = iov::total(&b.writable);
        if wlen == 0 {
            self.stats.errors.inc();
            return Step::Done(0);
        }
        let Some(status_at) = iov::range(&b.writable, wlen - 1, 1) else {
            self.stats.errors.inc();
            return Step::Done(0);
        };
        let rlen = iov::total(&b.readable);
        let mut hdr = [0u8; 16];
        if iov::read_into(&b.readable, &mut hdr) == hdr.len() {
            let ty = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or([0; 8]));
            let data_in = iov::range(&b.writable, 0, wlen - 1).unwrap_or_default();
            let data_out = iov::range(&b.readable, 16, rlen - 16).unwrap_or_default();
            let write = ty == VIRTIO_BLK_T_OUT && !self.readonly;
            if ty == VIRTIO_BLK_T_IN || write {
                let data = if write { data_out } else { data_in };
                let len = iov::total(&data);
                let off = (len <= MAX_REQUEST && (len as u64).is_multiple_of(SECTOR))
                    .then(|| self.range(sector, len as u64))
                    .flatten();
                if let Some(off) = off {
                    return Step::Transfer(Transfer {
                        write,
                        off,
                        len,
                        data,
                        status: status_at,
                        started: Instant::now(),
                    });
                }
            } else if ty != VIRTIO_BLK_T_OUT {
                return Step::Other(Other {
                    ty,
                    out: data_out,
                    inp: data_in,
                    status: status_at,
                });
            }
        }
        // Short header, bad range or size, write to a read-only disk.
        self.stats.errors.inc();
        iov::write_from(&status_at, &[S_IOERR]);
        Step::Done(1)
    }

    /// Runs a read or write on this thread.
    pub fn transfer(&mut self, t: &Transfer<'_>) -> std::io::Result<()> {
        self.transfer_run(std::slice::from_ref(t))
    }

    /// Runs transfers that follow each other on the disk, in one
    /// direction, as one vectored call.
    fn transfer_run(&mut self, ts: &[Transfer<'_>]) -> std::io::Result<()> {
        let Some(first) = ts.first() else {
            return Ok(());
        };
        let merged;
        let data = if ts.len() == 1 {
            &first.data
        } else {
            merged = ts.iter().flat_map(|t| t.data.iter().copied()).collect();
            &merged
        };
        if first.write {
            self.disk.write_vectored(data, first.off)?;
            if self.writethrough {
                self.disk.flush()?;
            }
            Ok(())
        } else {
            self.disk.read_vectored(data, first.off)
        }
    }

    /// Runs the reads and writes taken from the ring in one sweep, in ring
    /// order, requests that follow each other merged into one call (see
    /// `blk_merge.rs`); with `pool`, the calls are shared with the image's
    /// second thread. As each call ends, its requests are finished and
    /// handed to `done` (index in `ts`, used length), so the driver can
    /// reuse them while later calls run. When a merged call fails, its
    /// requests are run again one by one, so that each gets its own status.
    pub fn run_batch(
        &mut self,
        ts: &[Transfer<'_>],
        pool: Option<&IoPool>,
        done: &mut dyn FnMut(usize, u32),
    ) {
        let spans: Vec<Span> = ts.iter().map(Transfer::span).collect();
        let runs = blk_merge::runs(&spans, blk_merge::IOV_MAX, blk_merge::MAX_MERGE_BYTES);
        match pool {
            // Buffered writes to one file take the inode's lock in turn, so a
            // second thread only adds contention to a sweep of writes.
            Some(p) if runs.len() > 1 && runs.iter().any(|r| !ts[r.start].write) => {
                let jobs = runs
                    .iter()
                    .map(|r| Job {
                        write: ts[r.start].write,
                        off: ts[r.start].off,
                        iovs: ts[r.clone()]
                            .iter()
                            .flat_map(|t| disk::iovecs(&t.data))
                            .collect(),
                    })
                    .collect();
                let helper = p.run(jobs, |k| {
                    let res = self.transfer_run(&ts[runs[k].clone()]);
                    self.settle(ts, runs[k].clone(), res, done);
                });
                for (r, res) in runs.into_iter().zip(helper) {
                    if let Some(res) = res {
                        self.settle(ts, r, res, done);
                    }
                }
            }
            _ => {
                for r in runs {
                    let res = self.transfer_run(&ts[r.clone()]);
                    self.settle(ts, r, res, done);
                }
            }
        }
    }

    /// Finishes the requests `r` of `ts` after their call ended with `res`.
    fn settle(
        &mut self,
        ts: &[Transfer<'_>],
        r: Range<usize>,
        res: std::io::Result<()>,
        done: &mut dyn FnMut(usize, u32),
    ) {
        match res {
            Err(e) if r.len() == 1 => {
                let n = self.finish(&ts[r.start], Err(e));
                done(r.start, n);
            }
            Err(_) => {
                for i in r {
                    let res = self.transfer(&ts[i]);
                    let n = self.finish(&ts[i], res);
                    done(i, n);
                }
            }
            Ok(()) => {
                for i in r {
                    let n = self.finish(&ts[i], Ok(()));
                    done(i, n);
                }
            }
        }
    }

    /// Completes a transfer that ran with result `r`: counters, status
    /// byte; returns the bytes written to the guest.
    pub fn finish(&mut self, t: &Transfer<'_>, r: std::io::Result<()>) -> u32 {
        let (status, written) = match (r, t.write) {
            (Ok(()), true) => {
                self.stats.write_ns.add(elapsed_ns(t.started));
                self.stats.writes.inc();
                self.stats.write_bytes.add(t.len as u64);
                (S_OK, 0)
            }
            (Ok(()), false) => {
                self.stats.read_ns.add(elapsed_ns(t.started));
                self.stats.reads.inc();
                self.stats.read_bytes.add(t.len as u64);
                (S_OK, t.len)
            }
            (Err(_), _) => {
                self.stats.errors.inc();
                (S_IOERR, 0)
            }
        };
        iov::write_from(&t.status, &[status]);
        (written + 1) as u32
    }

    /// Serves a request other than a read or write; returns the bytes
    /// written to the guest.
    pub fn other(&mut self, o: Other<'_>) -> u32 {
        let (status, written) = self.dispatch(o.ty, &o.out, &o.inp);
        if status != S_OK {
            self.stats.errors.inc();
        }
        iov::write_from(&o.status, &[status]);
        (written + 1) as u32
    }

    /// Runs a request other than a read or write; returns its status and
    /// the data bytes it wrote to the guest.
    fn dispatch(&mut self, ty: u32, out: &[iov::Slice<'_>], inp: &[iov::Slice<'_>]) -> (u8, usize) {
        match ty {
            VIRTIO_BLK_T_OUT => (S_IOERR, 0),
            VIRTIO_BLK_T_FLUSH => {
                self.stats.flushes.inc();
                let started = Instant::now();
                let ok = self.readonly || self.disk.flush().is_ok();
                self.stats.flush_ns.add(elapsed_ns(started));
                if ok { (S_OK, 0) } else { (S_IOERR, 0) }
            }
            VIRTIO_BLK_T_GET_ID => {
                let n = iov::total(inp).min(ID_LEN);
                (S_OK, iov::write_from(inp, &self.serial[..n]))
            }
            VIRTIO_BLK_T_WRITE_ZEROES | VIRTIO_BLK_T_DISCARD => {
                if self.readonly {
                    return (S_IOERR, 0);
                }
                (self.segments(ty, out), 0)
            }
            _ => (S_UNSUPP, 0),
        }
    }

    fn segments(&mut self, ty: u32, out: &[iov::Slice<'_>]) -> u8 {
        // One segment per request (max_*_seg = 1 in the config).
        if iov::total(out) != 16 {
            return S_IOERR;
        }
        let mut seg = [0u8; 16];
        if iov::read_into(out, &mut seg) != seg.len() {
            return S_IOERR;
        }
        let sector = u64::from_le_bytes(seg[0..8].try_into().unwrap_or([0; 8]));
        let num = u32::from_le_bytes(seg[8..12].try_into().unwrap_or([0; 4]));
        let flags = u32::from_le_bytes(seg[12..16].try_into().unwrap_or([0; 4]));
        if flags & !1 != 0 || num > MAX_WRITE_ZEROES_SECTORS {
            return S_UNSUPP;
        }
        let len = u64::from(num) * SECTOR;
        let Some(off) = self.range(sector, len) else {
            return S_IOERR;
        };
        let r = if ty == VIRTIO_BLK_T_DISCARD {
            self.disk.discard(off, len)
        } else {
            self.disk.write_zeroes(off, len)
        };
        if r.is_ok() && (!self.writethrough || self.disk.flush().is_ok()) {
            S_OK
        } else {
            S_IOERR
        }
    }

    /// The device configuration structure (60 bytes).
    fn config(&self) -> [u8; 60] {
        let mut c = [0u8; 60];
        c[0..8].copy_from_slice(&self.capacity().to_le_bytes());
        c[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        c[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
        c[34..36].copy_from_slice(&1u16.to_le_bytes());
        // Discard and write zeroes: one segment of up to 32 MiB.
        c[36..40].copy_from_slice(&MAX_WRITE_ZEROES_SECTORS.to_le_bytes());
        c[40..44].copy_from_slice(&1u32.to_le_bytes());
        c[44..48].copy_from_slice(&1u32.to_le_bytes());
        c[48..52].copy_from_slice(&MAX_WRITE_ZEROES_SECTORS.to_le_bytes());
        c[52..56].copy_from_slice(&1u32.to_le_bytes());
        c
    }
}

/// The device as the transport sees it.
pub struct Blk {
    core: Option<BlkCore>,
    config: [u8; 60],
    features: u64,
    worker: Option<Worker>,
    returned: Arc<std::sync::Mutex<Option<BlkCore>>>,
    label: String,
}

impl Blk {
    pub fn new(core: BlkCore, label: String) -> Self {
        let mut features = F_SEG_MAX | F_BLK_SIZE;
        if core.readonly {
            features |= F_RO;
        } else {
            features |= F_FLUSH | F_WRITE_ZEROES | F_DISCARD;
        }
        Blk {
            config: core.config(),
            core: Some(core),
            features,
            worker: None,
            returned: Arc::new(std::sync::Mutex::new(None)),
            label,
        }
    }
}

struct BlkWorker {
    core: Option<BlkCore>,
    mem: GuestMemory,
    queue: WorkQueue,
    irq: Arc<Interrupt>,
    home: Arc<std::sync::Mutex<Option<BlkCore>>>,
    /// Raw images with write-back: a second thread for the calls of a
    /// sweep.
    pool: Option<IoPool>,
}

impl Handler for BlkWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        poll.add(self.queue.event.as_raw_fd(), 0)
    }

    fn event(&mut self, _token: u64, _poll: &Poll) {
        self.queue.ack();
        let Some(core) = self.core.as_mut() else {
            return;
        };
        if !self.queue.queue.ready() {
            return;
        }
        let mem = &self.mem;
        let q = &mut self.queue;
        let pool = self.pool.as_ref();
        let mut used = false;
        // Like WorkQueue::process, with `sweep` serving the chains.
        loop {
            let _ = q.queue.disable_notification(mem);
            used |= sweep(core, pool, &mut q.queue, mem);
            match q.queue.enable_notification(mem) {
                Ok(true) => continue,
                _ => break,
            }
        }
        if used {
            q.notify(mem, &self.irq);
        }
    }
}

/// Takes every available chain off the ring and serves it. Reads and
/// writes are gathered and run together ([`BlkCore::run_batch`]); any
/// other request first waits for those taken before it, so a FLUSH covers
/// every write that came before it. Returns whether a chain was used.
pub fn sweep(core: &mut BlkCore, pool: Option<&IoPool>, q: &mut Queue, mem: &GuestMemory) -> bool {
    let mut used = false;
    let mut heads = Vec::new();
    let mut transfers = Vec::new();
    while let Some(chain) = q.pop_descriptor_chain(mem) {
        used = true;
        let head = chain.head_index();
        match core.begin(mem, chain) {
            Step::Done(n) => complete(q, mem, head, n),
            Step::Transfer(t) => {
                heads.push(head);
                transfers.push(t);
            }
            Step::Other(o) => {
                serve(core, pool, q, mem, &mut heads, &mut transfers);
                let n = core.other(o);
                complete(q, mem, head, n);
            }
        }
    }
    serve(core, pool, q, mem, &mut heads, &mut transfers);
    used
}

fn complete(q: &mut Queue, mem: &GuestMemory, head: u16, len: u32) {
    if let Err(e) = q.add_used(mem, head, len) {
        tracing::warn!("virtio-blk: add_used: {e}");
    }
}

/// Runs the gathered reads and writes and puts them in the used ring.
fn serve<'a>(
    core: &mut BlkCore,
    pool: Option<&IoPool>,
    q: &mut Queue,
    mem: &'a GuestMemory,
    heads: &mut Vec<u16>,
    transfers: &mut Vec<Transfer<'a>>,
) {
    if transfers.is_empty() {
        return;
    }
    core.run_batch(transfers, pool, &mut |i, n| complete(q, mem, heads[i], n));
    heads.clear();
    transfers.clear();
}

impl Drop for BlkWorker {
    fn drop(&mut self) {
        // Give the disk back to the device so a reset keeps it.
        if let Some(c) = self.core.take() {
            let _ = c.disk.flush();
            if let Ok(mut h) = self.home.lock() {
                *h = Some(c);
            }
        }
    }
}

impl VirtioDevice for Blk {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        self.features
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config, offset, data);
    }
    fn activate(&mut self, act: Activation) -> Result<(), String> {
        let mut core = self.core.take().ok_or("disk not available")?;
        core.writethrough = !core.readonly && act.features & F_FLUSH == 0;
        let pool = match core.disk.clone_file() {
            Some(f) if !core.writethrough => IoPool::new(f, &format!("{}-io", self.label)).ok(),
            _ => None,
        };
        let (q, ev) = act.queues.into_iter().next().ok_or("no queue")?;
        let w = BlkWorker {
            core: Some(core),
            mem: act.mem,
            queue: WorkQueue::new(0, q, ev),
            irq: act.interrupt,
            home: self.returned.clone(),
            pool,
        };
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::BlockQueue, &self.label, w)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }
    fn change_disk(&mut self, change: super::DiskChange<'_>) -> Result<bool, String> {
        if self.worker.is_some() {
            return Err("the disk is in use".into());
        }
        let core = self.core.as_mut().ok_or("disk not available")?;
        let old_size = core.disk.size();
        match change {
            super::DiskChange::Replace { open, resize } => {
                core.disk
                    .flush()
                    .map_err(|e| format!("cannot flush the disk: {e}"))?;
                let new = open().map_err(|e| e.to_string())?;
                if new.size() != old_size && !resize {
                    return Err(format!(
                        "the new image's size {} is not the disk's {old_size}",
                        new.size()
                    ));
                }
                core.disk = new;
            }
            super::DiskChange::Resize(size) => core
                .disk
                .resize(size)
                .map_err(|e| format!("cannot resize the image: {e}"))?,
        }
        let changed = core.disk.size() != old_size;
        if changed {
            self.config = core.config();
        }
        Ok(changed)
    }
    fn save_state(&self) -> serde_json::Value {
        match &self.core {
            Some(core) => serde_json::json!({ "size": core.disk.size() }),
            None => serde_json::Value::Null,
        }
    }
    /// The driver restored knows the disk's size from before: a disk whose
    /// image grew or shrank since is refused rather than shown to a guest
    /// that would read past its end or miss the new space.
    fn restore_state(
        &mut self,
        state: &serde_json::Value,
        _mem: &GuestMemory,
    ) -> Result<(), String> {
        let (Some(saved), Some(core)) = (state.get("size").and_then(|v| v.as_u64()), &self.core)
        else {
            return Ok(());
        };
        let now = core.disk.size();
        if saved != now {
            return Err(format!(
                "disk '{}' changed since the state was saved: its image holds {now} bytes, the saved guest knew {saved}",
                self.label
            ));
        }
        Ok(())
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        if self.core.is_none()
            && let Ok(mut h) = self.returned.lock()
        {
            self.core = h.take();
        }
    }
}
