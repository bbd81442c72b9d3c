//! virtio-blk: requests on one queue, served from a raw file/block device
//! or a qcow2 image (through imago, backing chains included).

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use virtio_queue::{DescriptorChain, QueueT};

use super::disk::Disk;
use super::stats::BlkStats;
use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, TYPE_BLOCK, VirtioDevice};
use crate::vmm::memory::GuestMemory;

pub const SECTOR: u64 = 512;
const QUEUE_SIZE: u16 = 256;
/// Largest data transfer of one request; larger ones fail with IOERR.
pub const MAX_REQUEST: usize = 16 << 20;
const SEG_MAX: u32 = 126;
const MAX_WRITE_ZEROES_SECTORS: u32 = 1 << 16;

pub const F_SEG_MAX: u64 = 1 << 2;
pub const F_RO: u64 = 1 << 5;
pub const F_BLK_SIZE: u64 = 1 << 6;
pub const F_FLUSH: u64 = 1 << 9;
pub const F_DISCARD: u64 = 1 << 13;
pub const F_WRITE_ZEROES: u64 = 1 << 14;

pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const T_GET_ID: u32 = 8;
pub const T_DISCARD: u32 = 11;
pub const T_WRITE_ZEROES: u32 = 13;

pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// Length of the GET_ID answer.
const ID_LEN: usize = 20;

fn elapsed_ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The request logic, shared by the worker and the tests.
pub struct BlkCore {
    pub disk: Box<dyn Disk>,
    pub readonly: bool,
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
        if !super::worker::chain_complete(&chain) {
            self.stats.errors.inc();
            return 0;
        }
        let (Ok(mut reader), Ok(mut writer)) = (chain.clone().reader(mem), chain.writer(mem))
        else {
            self.stats.errors.inc();
            return 0;
        };
        let avail = writer.available_bytes();
        if avail == 0 {
            self.stats.errors.inc();
            return 0;
        }
        let Ok(mut status_w) = writer.split_at(avail - 1) else {
            return 0;
        };
        let mut hdr = [0u8; 16];
        let status = if reader.read_exact(&mut hdr).is_err() {
            S_IOERR
        } else {
            let ty = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
            let sector = u64::from_le_bytes(hdr[8..16].try_into().unwrap_or([0; 8]));
            self.dispatch(ty, sector, &mut reader, &mut writer)
        };
        if status != S_OK {
            self.stats.errors.inc();
        }
        let _ = status_w.write_all(&[status]);
        (writer.bytes_written() + 1) as u32
    }

    fn dispatch(
        &mut self,
        ty: u32,
        sector: u64,
        reader: &mut virtio_queue::Reader<'_, ()>,
        writer: &mut virtio_queue::Writer<'_, ()>,
    ) -> u8 {
        match ty {
            T_IN => {
                let len = writer.available_bytes();
                if len > MAX_REQUEST || !(len as u64).is_multiple_of(SECTOR) {
                    return S_IOERR;
                }
                let Some(off) = self.range(sector, len as u64) else {
                    return S_IOERR;
                };
                let mut buf = vec![0u8; len];
                let started = Instant::now();
                if self.disk.read_at(&mut buf, off).is_err() || writer.write_all(&buf).is_err() {
                    return S_IOERR;
                }
                self.stats.read_ns.add(elapsed_ns(started));
                self.stats.reads.inc();
                self.stats.read_bytes.add(len as u64);
                S_OK
            }
            T_OUT => {
                if self.readonly {
                    return S_IOERR;
                }
                let len = reader.available_bytes();
                if len > MAX_REQUEST || !(len as u64).is_multiple_of(SECTOR) {
                    return S_IOERR;
                }
                let Some(off) = self.range(sector, len as u64) else {
                    return S_IOERR;
                };
                let mut buf = vec![0u8; len];
                let started = Instant::now();
                if reader.read_exact(&mut buf).is_err() || self.disk.write_at(&buf, off).is_err() {
                    return S_IOERR;
                }
                self.stats.write_ns.add(elapsed_ns(started));
                self.stats.writes.inc();
                self.stats.write_bytes.add(len as u64);
                S_OK
            }
            T_FLUSH => {
                self.stats.flushes.inc();
                let started = Instant::now();
                let ok = self.readonly || self.disk.flush().is_ok();
                self.stats.flush_ns.add(elapsed_ns(started));
                if ok { S_OK } else { S_IOERR }
            }
            T_GET_ID => {
                let n = writer.available_bytes().min(ID_LEN);
                match writer.write_all(&self.serial[..n]) {
                    Ok(()) => S_OK,
                    Err(_) => S_IOERR,
                }
            }
            T_WRITE_ZEROES | T_DISCARD => {
                if self.readonly {
                    return S_IOERR;
                }
                self.segments(ty, reader)
            }
            _ => S_UNSUPP,
        }
    }

    fn segments(&mut self, ty: u32, reader: &mut virtio_queue::Reader<'_, ()>) -> u8 {
        let count = reader.available_bytes() / 16;
        if count == 0 || count > 1 {
            // One segment per request (max_*_seg = 1 in the config).
            return S_IOERR;
        }
        let mut seg = [0u8; 16];
        if reader.read_exact(&mut seg).is_err() {
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
        let r = if ty == T_DISCARD {
            self.disk.discard(off, len)
        } else {
            self.disk.write_zeroes(off, len)
        };
        if r.is_ok() { S_OK } else { S_IOERR }
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
        self.queue
            .process(mem, &self.irq, |chain| core.handle(mem, chain));
    }
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
        TYPE_BLOCK
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
        let core = self.core.take().ok_or("disk not available")?;
        let (q, ev) = act.queues.into_iter().next().ok_or("no queue")?;
        let w = BlkWorker {
            core: Some(core),
            mem: act.mem,
            queue: WorkQueue::new(0, q, ev),
            irq: act.interrupt,
            home: self.returned.clone(),
        };
        self.worker = Some(Worker::spawn(&self.label, w).map_err(|e| e.to_string())?);
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
