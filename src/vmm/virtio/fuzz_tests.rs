//! Randomised robustness tests: arbitrary descriptor tables and rings fed
//! to the virtio-blk request parser, malicious chains (loops, indirect
//! tables that nest or point outside memory, huge lengths, addresses out
//! of range), and arbitrary configuration-space and BAR accesses to
//! virtio-pci functions. Nothing may panic or hang, and a rejected chain
//! leaves the disk untouched. The harnesses are in `fuzz.rs`, shared with
//! the cargo-fuzz targets.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_blk::{VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::blk::{self, BlkCore};
use crate::vmm::bus::BusDevice;
use crate::vmm::memory::GuestMemory;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

use super::fuzz::{AVAIL, MEM_SIZE, QSIZE, USED, blk_core as core, guest};
use super::test_ring::{INDIRECT, NEXT, WRITE, desc, desc_at, publish};

fn queue(mem: &GuestMemory) -> Queue {
    super::fuzz::blk_queue(mem)
}

fn drain(mem: &GuestMemory, q: &mut Queue, c: &mut BlkCore) -> Vec<u32> {
    super::fuzz::blk_drain(mem, q, c)
}

fn intx_line() -> super::interrupt::IntxLine {
    super::interrupt::IntxLine {
        lines: Arc::new(super::interrupt::IntxLines::new(None)),
        gsi: 17,
        slot: 3,
    }
}

fn header(mem: &GuestMemory, at: u64, ty: u32, sector: u64) {
    mem.write_obj(ty, GuestAddress(at)).unwrap();
    mem.write_obj(0u32, GuestAddress(at + 4)).unwrap();
    mem.write_obj(sector, GuestAddress(at + 8)).unwrap();
}

#[test]
fn well_formed_read_and_rejections() {
    let mem = guest();
    let mut q = queue(&mem);
    let mut c = core(true);
    // IN of one sector at sector 1.
    header(&mem, 0x10000, VIRTIO_BLK_T_IN, 1);
    desc(&mem, 0, 0x10000, 16, NEXT, 1);
    desc(&mem, 1, 0x11000, 512, NEXT | WRITE, 2);
    desc(&mem, 2, 0x12000, 1, WRITE, 0);
    // OUT on a read-only disk.
    header(&mem, 0x10100, VIRTIO_BLK_T_OUT, 0);
    desc(&mem, 3, 0x10100, 16, NEXT, 4);
    desc(&mem, 4, 0x13000, 512, NEXT, 5);
    desc(&mem, 5, 0x12001, 1, WRITE, 0);
    // IN beyond the end of the disk.
    header(&mem, 0x10200, VIRTIO_BLK_T_IN, 1 << 40);
    desc(&mem, 6, 0x10200, 16, NEXT, 7);
    desc(&mem, 7, 0x14000, 512, NEXT | WRITE, 8);
    desc(&mem, 8, 0x12002, 1, WRITE, 0);
    // A loop: 9 -> 10 -> 9.
    desc(&mem, 9, 0x10000, 16, NEXT, 10);
    desc(&mem, 10, 0x12003, 1, NEXT | WRITE, 9);
    // Data outside guest memory.
    header(&mem, 0x10300, VIRTIO_BLK_T_IN, 0);
    desc(&mem, 11, 0x10300, 16, NEXT, 12);
    desc(&mem, 12, MEM_SIZE - 16, 4096, NEXT | WRITE, 13);
    desc(&mem, 13, 0x12004, 1, WRITE, 0);
    publish(&mem, &[0, 3, 6, 9, 11]);
    let lens = drain(&mem, &mut q, &mut c);
    assert_eq!(lens.len(), 5);
    assert_eq!(lens[0], 513);
    let mut data = [0u8; 512];
    mem.read_slice(&mut data, GuestAddress(0x11000)).unwrap();
    assert!(
        data.iter()
            .enumerate()
            .all(|(i, &b)| b == ((512 + i) % 251) as u8)
    );
    let status = |i: u64| mem.read_obj::<u8>(GuestAddress(0x12000 + i)).unwrap();
    assert_eq!(status(0), blk::S_OK);
    assert_eq!(status(1), blk::S_IOERR);
    assert_eq!(status(2), blk::S_IOERR);
    assert_eq!(lens[3], 0, "looping chain must be rejected");
    assert_eq!(lens[4], 0, "chain outside memory must be rejected");
}

#[test]
fn random_descriptor_tables_never_panic() {
    let mem = guest();
    let mut r = Rng(0x6f78_7669_7274_0001);
    for round in 0..3000 {
        let mut q = queue(&mem);
        let mut c = core(round % 3 == 0);
        for i in 0..QSIZE + 4 {
            if i >= QSIZE {
                break;
            }
            let addr = match r.below(4) {
                0 => r.next(),
                1 => MEM_SIZE - r.below(64),
                _ => 0x10000 + r.below(0x8000),
            };
            let len = match r.below(4) {
                0 => r.next() as u32,
                1 => 0,
                _ => r.below(8192) as u32,
            };
            let flags = r.below(8) as u16;
            let next = r.below(u64::from(QSIZE) + 4) as u16;
            desc(&mem, i, addr, len, flags, next);
        }
        // Random request headers where descriptors may point.
        for k in 0..8u64 {
            let ty = [0, 1, 4, 8, 11, 13, 99][r.below(7) as usize];
            header(&mem, 0x10000 + k * 0x1000, ty, r.below(256));
        }
        let n = r.below(u64::from(QSIZE) + 1) as usize;
        let heads: Vec<u16> = (0..n)
            .map(|_| r.below(u64::from(QSIZE) + 4) as u16)
            .collect();
        publish(&mem, &heads);
        if r.below(10) == 0 {
            // An avail index far ahead of the ring.
            mem.write_obj(r.next() as u16, GuestAddress(AVAIL + 2))
                .unwrap();
        }
        drain(&mem, &mut q, &mut c);
        mem.write_obj(0u16, GuestAddress(AVAIL + 2)).unwrap();
        mem.write_obj(0u16, GuestAddress(USED + 2)).unwrap();
    }
}

#[test]
fn random_config_space_and_bar_accesses_never_panic() {
    let Some(mut h) = super::fuzz::PciHarness::new() else {
        eprintln!("SKIP: no /dev/kvm");
        return;
    };
    let mut r = Rng(0x6f78_7063_6900_0002);
    let sizes = [1usize, 2, 4, 8];
    for _ in 0..40000 {
        let len = sizes[r.below(4) as usize];
        let data = r.next().to_le_bytes();
        let addr = match r.below(3) {
            0 => r.next() as u32,
            1 => (r.below(6) as u32) << 11 | (r.below(256) as u32 & 0xfc),
            _ => (r.below(6) as u32) << 15 | r.below(0x1000) as u32,
        };
        h.access(r.below(7) as u8, addr, len, data);
    }
    // Still answers sensibly: vendor id of slot 3.
    let mut v = [0u8; 2];
    h.ecam.read(3 << 15, &mut v);
    assert_eq!(u16::from_le_bytes(v), super::transport::VENDOR_VIRTIO);
}

#[test]
fn random_fuzz_inputs_never_panic() {
    // The cargo-fuzz targets' entry points, fed seeded random bytes.
    let mut r = Rng(0x6f78_6675_7a7a_0003);
    for round in 0..400 {
        let n = r.below(0x3000) as usize;
        let mut data: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
        // Small indices and addresses inside memory now and then, so that
        // chains get past the first checks.
        if round % 2 == 0 {
            for d in data.chunks_mut(16).take(usize::from(QSIZE)) {
                if d.len() == 16 {
                    d[0..8].copy_from_slice(&(0x10000 + r.below(0x8000)).to_le_bytes());
                    d[8..12].copy_from_slice(&(r.below(0x3000) as u32).to_le_bytes());
                    d[14..16].copy_from_slice(&(r.below(u64::from(QSIZE)) as u16).to_le_bytes());
                }
            }
        }
        super::fuzz::blk_input(&data);
        super::fuzz::pci_input(&data);
        super::fuzz::net_ctrl_input(&data[..data.len().min(8)]);
        if let Some(d) = data.get_mut(2..4) {
            // A VQ_PAIRS_SET header now and then.
            d.copy_from_slice(&[4, 0]);
        }
        super::fuzz::net_ctrl_input(&data[..data.len().min(6)]);
    }
}

#[test]
fn bar_sizing_and_moving() {
    use crate::vmm::devices::pci::{PciBarSpace, PciEcam, PciRoot};
    use crate::vmm::layout;
    use crate::vmm::virtio::transport::{BAR_SIZE, Placement, VirtioPci};

    let Ok(kvm) = kvm_ioctls::Kvm::new() else {
        eprintln!("SKIP: no /dev/kvm");
        return;
    };
    let vm = Arc::new(kvm.create_vm().unwrap());
    let root = Arc::new(Mutex::new(PciRoot::default()));
    let irq = Arc::new(super::Interrupt::new(intx_line(), Vec::new()));
    let f = VirtioPci::new(
        Box::new(super::rng::Rng::default()),
        vm,
        guest(),
        irq,
        Placement {
            bar: layout::PCI_MMIO32_START,
            irq_line: 17,
            windows: vec![(layout::PCI_MMIO32_START, layout::PCI_MMIO32_SIZE)],
        },
        None,
    )
    .unwrap();
    root.lock()
        .unwrap()
        .plug(3, Arc::new(Mutex::new(f)))
        .unwrap();
    let mut ecam = PciEcam::new(root.clone());
    let mut bars = PciBarSpace::new(root.clone(), layout::PCI_MMIO32_START);
    let cfg = |ecam: &mut PciEcam, reg: u64| {
        let mut d = [0u8; 4];
        ecam.read(3 << 15 | reg, &mut d);
        u32::from_le_bytes(d)
    };
    let num_queues = |bars: &mut PciBarSpace, base: u64| {
        let mut d = [0u8; 2];
        bars.read(base - layout::PCI_MMIO32_START + 0x12, &mut d);
        u16::from_le_bytes(d)
    };
    assert_eq!(num_queues(&mut bars, layout::PCI_MMIO32_START), 1);
    // Sizing: decode off, all ones, read the mask back.
    ecam.write(3 << 15 | 4, &0u16.to_le_bytes());
    ecam.write(3 << 15 | 0x10, &u32::MAX.to_le_bytes());
    ecam.write(3 << 15 | 0x14, &u32::MAX.to_le_bytes());
    assert_eq!(cfg(&mut ecam, 0x10), !(BAR_SIZE as u32 - 1) | 0x4);
    assert_eq!(cfg(&mut ecam, 0x14), u32::MAX);
    // Move to 0xD0000000, decode on: the old address is empty, the new
    // one answers.
    let new = 0xd000_0000u64;
    ecam.write(3 << 15 | 0x10, &(new as u32).to_le_bytes());
    ecam.write(3 << 15 | 0x14, &0u32.to_le_bytes());
    assert_eq!(num_queues(&mut bars, new), 0xffff, "decode still off");
    ecam.write(3 << 15 | 4, &6u16.to_le_bytes());
    assert_eq!(num_queues(&mut bars, new), 1);
    assert_eq!(num_queues(&mut bars, layout::PCI_MMIO32_START), 0xffff);
}

#[test]
fn malicious_indirect_chains_are_rejected() {
    let mem = guest();
    let mut q = queue(&mem);
    let mut c = core(false);
    let (t0, t1, t2, t3, t4) = (0x20000u64, 0x20100, 0x20200, 0x20300, 0x20400);
    // 0: a well-formed OUT through an indirect table: accepted.
    header(&mem, 0x10000, VIRTIO_BLK_T_OUT, 2);
    desc_at(&mem, t0, 0, 0x10000, 16, NEXT, 1);
    desc_at(&mem, t0, 1, 0x11000, 512, NEXT, 2);
    desc_at(&mem, t0, 2, 0x12000, 1, WRITE, 0);
    desc(&mem, 0, t0, 48, INDIRECT, 0);
    // 1: an indirect table whose entries loop (0 -> 1 -> 0).
    header(&mem, 0x10100, VIRTIO_BLK_T_OUT, 3);
    desc_at(&mem, t1, 0, 0x10100, 16, NEXT, 1);
    desc_at(&mem, t1, 1, 0x11000, 512, NEXT, 0);
    desc(&mem, 1, t1, 32, INDIRECT, 0);
    // 2: an indirect table naming another indirect table.
    desc_at(&mem, t2, 0, t0, 48, INDIRECT, 0);
    desc(&mem, 2, t2, 16, INDIRECT, 0);
    // 3: an indirect table outside guest memory, and one of odd length.
    desc(&mem, 3, MEM_SIZE + 0x1000, 48, INDIRECT, 0);
    desc(&mem, 4, t0, 47, INDIRECT, 0);
    // 5: a data buffer of nearly 4 GiB, and one wrapping the address space.
    header(&mem, 0x10200, VIRTIO_BLK_T_OUT, 4);
    desc_at(&mem, t3, 0, 0x10200, 16, NEXT, 1);
    desc_at(&mem, t3, 1, 0x11000, 0xffff_f000, NEXT, 2);
    desc_at(&mem, t3, 2, 0x12005, 1, WRITE, 0);
    desc(&mem, 5, t3, 48, INDIRECT, 0);
    header(&mem, 0x10300, VIRTIO_BLK_T_OUT, 5);
    desc_at(&mem, t4, 0, 0x10300, 16, NEXT, 1);
    desc_at(&mem, t4, 1, u64::MAX - 0x100, 0x200, NEXT, 2);
    desc_at(&mem, t4, 2, 0x12006, 1, WRITE, 0);
    desc(&mem, 6, t4, 48, INDIRECT, 0);
    // 7: a readable descriptor after a writable one (status in the middle).
    header(&mem, 0x10400, VIRTIO_BLK_T_OUT, 6);
    desc(&mem, 7, 0x10400, 16, NEXT, 8);
    desc(&mem, 8, 0x12007, 1, WRITE | NEXT, 9);
    desc(&mem, 9, 0x11000, 512, 0, 0);
    publish(&mem, &[0, 1, 2, 3, 4, 5, 6, 7]);
    let lens = drain(&mem, &mut q, &mut c);
    assert_eq!(lens.len(), 8);
    assert_eq!(lens[0], 1, "the indirect OUT completes with its status");
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(0x12000)).unwrap(),
        blk::S_OK
    );
    assert_eq!(&lens[1..], &[0; 7], "{lens:?}");
    // Only the well-formed write reached the disk.
    assert_eq!(c.stats.writes.get(), 1);
    assert_eq!(c.stats.write_bytes.get(), 512);
    assert_eq!(c.stats.errors.get(), 7);
}
