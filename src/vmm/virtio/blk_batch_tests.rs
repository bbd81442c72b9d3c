//! Sweeps of the virtio-blk ring: adjacent reads and writes merged into
//! one disk call, a failing request inside a merged call, direction
//! changes, FLUSH after the writes before it, counters per request.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_blk::{VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use vm_memory::{Bytes, GuestAddress};

use super::blk::{self, BlkCore, sweep};
use super::disk::{Disk, MemDisk};
use virtio_queue::{Queue, QueueT};

use super::fuzz::{AVAIL, DESC, USED, guest};
use super::iov::Slice;
use super::stats::BlkStats;
use super::test_ring::{NEXT, WRITE, desc, publish};
use crate::vmm::memory::GuestMemory;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Read(u64, usize, usize),
    Write(u64, usize, usize),
    Flush,
}

/// A memory disk that logs its calls (offset, bytes, pieces) and fails
/// any read or write touching `bad`.
struct LogDisk {
    mem: MemDisk,
    log: Arc<Mutex<Vec<Op>>>,
    bad: Range<u64>,
}

impl LogDisk {
    fn check(&self, off: u64, bufs: &[Slice<'_>]) -> io::Result<()> {
        let end = off + super::iov::total(bufs) as u64;
        if off < self.bad.end && self.bad.start < end {
            return Err(io::Error::other("bad sector"));
        }
        Ok(())
    }
}

impl Disk for LogDisk {
    fn size(&self) -> u64 {
        self.mem.size()
    }
    fn read_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let len = super::iov::total(bufs);
        self.log
            .lock()
            .unwrap()
            .push(Op::Read(off, len, bufs.len()));
        self.check(off, bufs)?;
        self.mem.read_vectored(bufs, off)
    }
    fn write_vectored(&mut self, bufs: &[Slice<'_>], off: u64) -> io::Result<()> {
        let len = super::iov::total(bufs);
        self.log
            .lock()
            .unwrap()
            .push(Op::Write(off, len, bufs.len()));
        self.check(off, bufs)?;
        self.mem.write_vectored(bufs, off)
    }
    fn flush(&self) -> io::Result<()> {
        self.log.lock().unwrap().push(Op::Flush);
        Ok(())
    }
    fn write_zeroes(&mut self, off: u64, len: u64) -> io::Result<()> {
        self.mem.write_zeroes(off, len)
    }
    fn discard(&mut self, _off: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

fn core(bad: Range<u64>) -> (BlkCore, Arc<Mutex<Vec<Op>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let disk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    let c = BlkCore {
        disk: Box::new(LogDisk {
            mem: MemDisk(disk),
            log: log.clone(),
            bad,
        }),
        readonly: false,
        writethrough: false,
        serial: *b"BATCHSERIAL000000000",
        stats: Arc::new(BlkStats::default()),
    };
    (c, log)
}

const HDRS: u64 = 0x10000;
const STATUS: u64 = 0x11000;
const DATA: u64 = 0x20000;

/// Request `i` of a sweep: header, `len` data bytes at DATA + i * 4 KiB
/// (in two pieces when `split`), status byte; three or four descriptors
/// from 4 * i.
fn request(mem: &GuestMemory, i: u16, ty: u32, sector: u64, len: u32, split: bool) -> u16 {
    let hdr = HDRS + u64::from(i) * 16;
    mem.write_obj(ty, GuestAddress(hdr)).unwrap();
    mem.write_obj(0u32, GuestAddress(hdr + 4)).unwrap();
    mem.write_obj(sector, GuestAddress(hdr + 8)).unwrap();
    let data_flags = if ty == VIRTIO_BLK_T_IN {
        NEXT | WRITE
    } else {
        NEXT
    };
    let d0 = 4 * i;
    let data = DATA + u64::from(i) * 4096;
    desc(mem, d0, hdr, 16, NEXT, d0 + 1);
    if ty == VIRTIO_BLK_T_FLUSH {
        desc(mem, d0 + 1, STATUS + u64::from(i), 1, WRITE, 0);
        return d0;
    }
    if split {
        desc(mem, d0 + 1, data, len / 2, data_flags, d0 + 2);
        desc(
            mem,
            d0 + 2,
            data + u64::from(len / 2),
            len / 2,
            data_flags,
            d0 + 3,
        );
        desc(mem, d0 + 3, STATUS + u64::from(i), 1, WRITE, 0);
    } else {
        desc(mem, d0 + 1, data, len, data_flags, d0 + 2);
        desc(mem, d0 + 2, STATUS + u64::from(i), 1, WRITE, 0);
    }
    d0
}

fn status(mem: &GuestMemory, i: u64) -> u8 {
    mem.read_obj(GuestAddress(STATUS + i)).unwrap()
}

/// (head, len) of the used ring's first `n` entries.
fn used(mem: &GuestMemory, n: u64) -> Vec<(u32, u32)> {
    (0..n)
        .map(|i| {
            let e = USED + 4 + 8 * i;
            (
                mem.read_obj(GuestAddress(e)).unwrap(),
                mem.read_obj(GuestAddress(e + 4)).unwrap(),
            )
        })
        .collect()
}

/// A queue of 64 entries at the harness's DESC/AVAIL/USED.
fn blk_queue(mem: &GuestMemory) -> Queue {
    let mut q = Queue::new(64).unwrap();
    q.set_size(64);
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_ready(true);
    assert!(q.is_valid(mem));
    q
}

#[test]
fn adjacent_writes_and_reads_merge_per_direction() {
    let mem = guest();
    let mut q = blk_queue(&mem);
    let (mut c, log) = core(0..0);
    let stats = c.stats.clone();
    for i in 0..3u64 {
        mem.write_slice(&[0xA0 + i as u8; 1024], GuestAddress(DATA + i * 4096))
            .unwrap();
    }
    // Three adjacent writes (the second in two pieces), then two adjacent
    // reads of what they wrote, then a read elsewhere.
    let heads = [
        request(&mem, 0, VIRTIO_BLK_T_OUT, 8, 1024, false),
        request(&mem, 1, VIRTIO_BLK_T_OUT, 10, 1024, true),
        request(&mem, 2, VIRTIO_BLK_T_OUT, 12, 1024, false),
        request(&mem, 3, VIRTIO_BLK_T_IN, 8, 1024, false),
        request(&mem, 4, VIRTIO_BLK_T_IN, 10, 2048, false),
        request(&mem, 5, VIRTIO_BLK_T_IN, 40, 512, false),
    ];
    publish(&mem, &heads);
    assert!(sweep(&mut c, None, &mut q, &mem));
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Op::Write(4096, 3072, 4),
            Op::Read(4096, 3072, 2),
            Op::Read(40 * 512, 512, 1)
        ]
    );
    for i in 0..6 {
        assert_eq!(status(&mem, i), blk::S_OK, "request {i}");
    }
    let mut back = [0u8; 3072];
    mem.read_slice(&mut back[..1024], GuestAddress(DATA + 3 * 4096))
        .unwrap();
    mem.read_slice(&mut back[1024..], GuestAddress(DATA + 4 * 4096))
        .unwrap();
    for (i, b) in back.chunks(1024).enumerate() {
        assert!(b.iter().all(|&x| x == 0xA0 + i as u8), "chunk {i}");
    }
    // Each request completes on its own, in ring order, with its length.
    let heads32: Vec<u32> = heads.iter().map(|&h| u32::from(h)).collect();
    let u = used(&mem, 6);
    assert_eq!(u.iter().map(|e| e.0).collect::<Vec<_>>(), heads32);
    assert_eq!(
        u.iter().map(|e| e.1).collect::<Vec<_>>(),
        vec![1, 1, 1, 1025, 2049, 513]
    );
    // Counted per guest request, not per disk call.
    assert_eq!(stats.writes.get(), 3);
    assert_eq!(stats.reads.get(), 3);
    assert_eq!(stats.write_bytes.get(), 3072);
    assert_eq!(stats.read_bytes.get(), 3584);
    assert_eq!(stats.errors.get(), 0);
}

#[test]
fn a_failing_request_fails_alone() {
    let mem = guest();
    let mut q = blk_queue(&mem);
    // Sector 6 cannot be read or written.
    let (mut c, log) = core(6 * 512..7 * 512);
    let stats = c.stats.clone();
    let heads: Vec<u16> = (0..4u16)
        .map(|i| request(&mem, i, VIRTIO_BLK_T_IN, 4 + u64::from(i), 512, false))
        .collect();
    publish(&mem, &heads);
    sweep(&mut c, None, &mut q, &mem);
    // One merged call, which fails; then each request on its own.
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            Op::Read(2048, 2048, 4),
            Op::Read(2048, 512, 1),
            Op::Read(2560, 512, 1),
            Op::Read(3072, 512, 1),
            Op::Read(3584, 512, 1),
        ]
    );
    let st: Vec<u8> = (0..4).map(|i| status(&mem, i)).collect();
    assert_eq!(st, vec![blk::S_OK, blk::S_OK, blk::S_IOERR, blk::S_OK]);
    let lens: Vec<u32> = used(&mem, 4).iter().map(|e| e.1).collect();
    assert_eq!(lens, vec![513, 513, 1, 513]);
    assert_eq!(stats.reads.get(), 3);
    assert_eq!(stats.errors.get(), 1);
    // The requests that worked got the disk's data.
    let mut b = [0u8; 512];
    mem.read_slice(&mut b, GuestAddress(DATA + 3 * 4096))
        .unwrap();
    assert!(
        b.iter()
            .enumerate()
            .all(|(i, &x)| x == ((7 * 512 + i) % 251) as u8)
    );
}

#[test]
fn flush_waits_for_the_writes_before_it() {
    let mem = guest();
    let mut q = blk_queue(&mem);
    let (mut c, log) = core(0..0);
    let heads = [
        request(&mem, 0, VIRTIO_BLK_T_OUT, 0, 512, false),
        request(&mem, 1, VIRTIO_BLK_T_OUT, 1, 512, false),
        request(&mem, 2, VIRTIO_BLK_T_FLUSH, 0, 0, false),
        request(&mem, 3, VIRTIO_BLK_T_OUT, 2, 512, false),
    ];
    publish(&mem, &heads);
    sweep(&mut c, None, &mut q, &mem);
    assert_eq!(
        *log.lock().unwrap(),
        vec![Op::Write(0, 1024, 2), Op::Flush, Op::Write(1024, 512, 1)]
    );
    let u = used(&mem, 4);
    assert_eq!(
        u.iter().map(|e| e.0).collect::<Vec<_>>(),
        heads.iter().map(|&h| u32::from(h)).collect::<Vec<_>>()
    );
    assert!((0..4).all(|i| status(&mem, i) == blk::S_OK));
    assert_eq!(c.stats.flushes.get(), 1);
    assert_eq!(c.stats.writes.get(), 3);
}

#[test]
fn read_only_disk_fails_writes_inside_a_sweep() {
    let mem = guest();
    let mut q = blk_queue(&mem);
    let (mut c, log) = core(0..0);
    c.readonly = true;
    let heads = [
        request(&mem, 0, VIRTIO_BLK_T_IN, 0, 512, false),
        request(&mem, 1, VIRTIO_BLK_T_OUT, 1, 512, false),
        request(&mem, 2, VIRTIO_BLK_T_IN, 1, 512, false),
    ];
    publish(&mem, &heads);
    sweep(&mut c, None, &mut q, &mem);
    assert_eq!(status(&mem, 0), blk::S_OK);
    assert_eq!(status(&mem, 1), blk::S_IOERR);
    assert_eq!(status(&mem, 2), blk::S_OK);
    // The refused write never reached the disk; the reads still merged.
    assert_eq!(*log.lock().unwrap(), vec![Op::Read(0, 1024, 2)]);
    assert_eq!(c.stats.errors.get(), 1);
}

#[test]
fn a_state_restores_only_onto_a_disk_of_its_size() {
    use super::VirtioDevice;
    let mem = guest();
    let saved = blk::Blk::new(super::fuzz::blk_core(false), "vda".into()).save_state();
    let mut same = blk::Blk::new(super::fuzz::blk_core(false), "vda".into());
    assert_eq!(same.restore_state(&saved, &mem), Ok(()));
    let mut grown = super::fuzz::blk_core(false);
    grown.disk = Box::new(MemDisk(vec![0; 128 * 1024]));
    let err = blk::Blk::new(grown, "vda".into())
        .restore_state(&saved, &mem)
        .unwrap_err();
    assert!(err.contains("changed since the state was saved"), "{err}");
    // States written before the size was recorded restore as before.
    assert_eq!(same.restore_state(&serde_json::Value::Null, &mem), Ok(()));
}
