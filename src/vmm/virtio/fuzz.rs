//! Harnesses shared by the seeded robustness tests (`fuzz_tests.rs`) and
//! the cargo-fuzz targets (`fuzz/fuzz_targets/`): arbitrary bytes become
//! the descriptor table, rings and buffers seen by the virtio-blk request
//! parser, or a sequence of PCI configuration-space and BAR accesses to
//! virtio-pci functions, or a virtio-net control-queue request. Nothing
//! may panic or hang.

use std::sync::{Arc, Mutex, OnceLock};

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::blk::BlkCore;
use super::disk::MemDisk;
use super::stats::BlkStats;
use crate::vmm::bus::BusDevice;
use crate::vmm::memory::GuestMemory;

/// Guest memory of the blk harness.
pub const MEM_SIZE: u64 = 0x10_0000;
/// Where the harness puts the descriptor table, the rings and the buffers
/// the fuzzer writes (`BLK_INPUT` onwards).
pub const DESC: u64 = 0x1000;
pub const AVAIL: u64 = 0x2000;
pub const USED: u64 = 0x3000;
pub const QSIZE: u16 = 16;
const BLK_INPUT: u64 = DESC;
/// Longest input copied into guest memory.
const BLK_INPUT_MAX: usize = 0x20000;

/// Guest memory for the harnesses.
pub fn guest() -> GuestMemory {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)])
        .expect("harness guest memory")
}

/// A virtio-blk request parser over a 64 KiB disk holding a byte pattern.
pub fn blk_core(readonly: bool) -> BlkCore {
    let disk: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    BlkCore {
        disk: Box::new(MemDisk(disk)),
        readonly,
        writethrough: false,
        serial: *b"FUZZSERIAL0000000000",
        stats: Arc::new(BlkStats::default()),
    }
}

/// The harness queue: QSIZE entries at DESC/AVAIL/USED.
pub fn blk_queue(mem: &GuestMemory) -> Queue {
    let mut q = Queue::new(QSIZE).expect("queue");
    q.set_size(QSIZE);
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_ready(true);
    debug_assert!(q.is_valid(mem));
    q
}

/// Runs every published chain through the parser (at most 64); returns
/// the used lengths.
pub fn blk_drain(mem: &GuestMemory, q: &mut Queue, c: &mut BlkCore) -> Vec<u32> {
    let mut lens = Vec::new();
    for _ in 0..64 {
        let chain = match q.iter(mem) {
            Ok(mut it) => it.next(),
            Err(_) => None,
        };
        let Some(chain) = chain else { break };
        let head = chain.head_index();
        let n = c.handle(mem, chain);
        let _ = q.add_used(mem, head, n);
        lens.push(n);
    }
    lens
}

/// One fuzz input for the virtio-blk parser: byte 0 picks a read-only or
/// writable disk, the rest is copied to guest memory from DESC on (the
/// descriptor table, then the avail ring at AVAIL, then buffers and
/// request headers), and every chain the avail ring names is served.
/// Used lengths never exceed what the chain could hold.
pub fn blk_input(data: &[u8]) {
    let mem = guest();
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let rest = &rest[..rest.len().min(BLK_INPUT_MAX)];
    if mem.write_slice(rest, GuestAddress(BLK_INPUT)).is_err() {
        return;
    }
    // The device owns the used ring.
    let _ = mem.write_slice(&[0u8; 4 + 8 * QSIZE as usize], GuestAddress(USED));
    let mut q = blk_queue(&mem);
    let mut c = blk_core(first & 1 == 1);
    for len in blk_drain(&mem, &mut q, &mut c) {
        assert!(len as usize <= crate::vmm::virtio::blk::MAX_REQUEST + 1);
    }
}

/// Two virtio-pci functions (rng at slot 3, blk at slot 4, MSI-X on) on a
/// PCI root, with its three ways in: ports 0xCF8/0xCFC, ECAM and the
/// 32-bit BAR window.
pub struct PciHarness {
    pub io: crate::vmm::devices::pci::PciConfigIo,
    pub ecam: crate::vmm::devices::pci::PciEcam,
    pub bars: crate::vmm::devices::pci::PciBarSpace,
}

impl PciHarness {
    /// Needs /dev/kvm (ioeventfds, GSI routes); `None` without it.
    pub fn new() -> Option<PciHarness> {
        use crate::vmm::devices::pci::{PciBarSpace, PciConfigIo, PciEcam, PciRoot};
        use crate::vmm::layout;
        use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};
        use crate::vmm::virtio::transport::{Placement, VirtioPci};
        use vmm_sys_util::eventfd::EventFd;

        let kvm = kvm_ioctls::Kvm::new().ok()?;
        let vm = Arc::new(kvm.create_vm().ok()?);
        vm.create_irq_chip().ok()?;
        let mem = guest();
        let root = Arc::new(Mutex::new(PciRoot::default()));
        let router = Arc::new(super::msix::GsiRouter::new(vm.clone()));
        let lines = Arc::new(IntxLines::new(None));
        let windows = vec![(layout::PCI_MMIO32_START, layout::PCI_MMIO32_SIZE)];
        for (slot, dev) in [
            (
                3u8,
                Box::new(super::rng::Rng::default()) as Box<dyn super::VirtioDevice>,
            ),
            (
                4u8,
                Box::new(super::blk::Blk::new(blk_core(false), "f".into())),
            ),
        ] {
            let irq = Arc::new(super::Interrupt::new(
                IntxLine {
                    lines: lines.clone(),
                    gsi: layout::pci_intx_gsi(slot, 0),
                    slot,
                },
                (0..3)
                    .map(|_| EventFd::new(libc::EFD_NONBLOCK))
                    .collect::<std::io::Result<Vec<_>>>()
                    .ok()?,
            ));
            let f = VirtioPci::new(
                dev,
                vm.clone(),
                mem.clone(),
                irq,
                Placement {
                    bar: layout::PCI_MMIO32_START + u64::from(slot) * 0x8000,
                    irq_line: layout::pci_intx_gsi(slot, 0) as u8,
                    windows: windows.clone(),
                },
                Some(super::msix::MsixTable::new(
                    router.clone(),
                    vec![router.alloc(), router.alloc(), router.alloc()],
                )),
            )
            .ok()?;
            root.lock().ok()?.plug(slot, Arc::new(Mutex::new(f))).ok()?;
        }
        Some(PciHarness {
            io: PciConfigIo::new(root.clone()),
            ecam: PciEcam::new(root.clone()),
            bars: PciBarSpace::new(root, layout::PCI_MMIO32_START),
        })
    }

    /// One access: `kind` picks the way in and the direction, `addr` the
    /// offset (reduced to the region), `len` 1, 2, 4 or 8 bytes of `data`.
    pub fn access(&mut self, kind: u8, addr: u32, len: usize, data: [u8; 8]) {
        let mut buf = data;
        let buf = &mut buf[..len.clamp(1, 8)];
        let a = u64::from(addr);
        match kind % 7 {
            0 => {
                let sel = 0x8000_0000u32 | (addr & 0x00ff_fffc);
                self.io.write(0, &sel.to_le_bytes());
                self.io.write(4 + a % 4, buf);
            }
            1 => {
                let sel = 0x8000_0000u32 | (addr & 0x00ff_fffc);
                self.io.write(0, &sel.to_le_bytes());
                self.io.read(4 + a % 4, buf);
            }
            2 => self.io.read(a % 8, buf),
            3 => self.ecam.write(a % (8 << 15), buf),
            4 => self.ecam.read(a % (8 << 15), buf),
            5 => self.bars.write(a % 0x30000, buf),
            _ => self.bars.read(a % 0x30000, buf),
        }
    }
}

/// One fuzz input for configuration space and BARs: 14-byte records
/// (kind, 4 address bytes, length, 8 data bytes) applied in order to one
/// harness that lives for the whole process.
pub fn pci_input(data: &[u8]) {
    static H: OnceLock<Option<Mutex<PciHarness>>> = OnceLock::new();
    let Some(h) = H.get_or_init(|| PciHarness::new().map(Mutex::new)) else {
        return;
    };
    let mut h = h.lock().unwrap_or_else(|p| p.into_inner());
    for rec in data.chunks_exact(14) {
        let addr = u32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]);
        let len = [1usize, 2, 4, 8][usize::from(rec[5] % 4)];
        let mut d = [0u8; 8];
        d.copy_from_slice(&rec[6..14]);
        h.access(rec[0], addr, len, d);
    }
    // Still a sane function at slot 3.
    let mut v = [0u8; 2];
    h.ecam.read(3 << 15, &mut v);
    assert_eq!(
        u16::from_le_bytes(v),
        crate::vmm::virtio::transport::VENDOR_VIRTIO
    );
}

/// One fuzz input for the virtio-net control-queue parser: byte 0 says
/// whether MQ was negotiated (bit 0), byte 1 is the device's pair count,
/// the rest is the request. A pair count it accepts is always in range.
pub fn net_ctrl_input(data: &[u8]) {
    use super::net_ctrl::{Command, parse};
    let [flags, max, req @ ..] = data else {
        return;
    };
    let max = u16::from(*max);
    if let Command::SetPairs(n) = parse(req, flags & 1 == 1, max) {
        assert!(n >= 1 && n <= max, "pairs {n} outside 1..={max}");
        assert!(flags & 1 == 1 && req.len() == 4);
    }
}
