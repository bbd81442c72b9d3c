//! The AHCI controller driven as SeaBIOS and Linux drive it, through its
//! registers and tables in guest memory, plus hostile tables.

use std::fs::File;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::vmm::storage::ahci_port::{IS_DHRS, IS_PSS, IS_TFES};
use crate::vmm::storage::cdrom::{Cdrom, Media};
use crate::vmm::storage::mmc::INTERFACE_ATAPI;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};

const MEM: u64 = 0x10_0000;
const GSI: u32 = 20;
const BUF: u64 = 0x8_0000;

/// Port register offsets (from the port's base).
const P_CLB: u64 = 0x00;
const P_FB: u64 = 0x08;
const P_IS: u64 = 0x10;
const P_IE: u64 = 0x14;
const P_CMD: u64 = 0x18;
const P_TFD: u64 = 0x20;
const P_SIG: u64 = 0x24;
const P_SSTS: u64 = 0x28;
const P_SCTL: u64 = 0x2c;
const P_CI: u64 = 0x38;

struct Rig {
    hba: Mutex<Hba>,
    mem: GuestMemory,
    lines: Arc<IntxLines>,
    /// Image files, removed at the end.
    images: Vec<std::path::PathBuf>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        for i in &self.images {
            let _ = std::fs::remove_file(i);
        }
    }
}

/// A path for a temporary image.
fn temp_image(ext: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("oxvirt-ahci-{}-{n}.{ext}", std::process::id()))
}

/// A controller with `drives` on its ports (index = port) over `images`.
fn rig_with(drives: Vec<Option<PortDrive>>, images: Vec<std::path::PathBuf>) -> Rig {
    let mem: GuestMemory =
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM as usize)]).unwrap();
    let lines = Arc::new(IntxLines::new(None));
    let irq = Arc::new(Interrupt::new(
        IntxLine {
            lines: lines.clone(),
            gsi: GSI,
            slot: 4,
        },
        vec![],
    ));
    Rig {
        hba: Mutex::new(Hba::new(drives, mem.clone(), irq)),
        mem,
        lines,
        images,
    }
}

fn clb(p: usize) -> u64 {
    0x1_0000 + p as u64 * 0x1000
}

fn fb(p: usize) -> u64 {
    0x2_0000 + p as u64 * 0x100
}

fn table(p: usize, slot: u32) -> u64 {
    0x3_0000 + p as u64 * 0x8000 + u64::from(slot) * 0x400
}

/// A controller with a drive holding a 16-block image (block N filled
/// with N) on port 1 and an empty drive on port 3.
fn rig() -> Rig {
    let image = temp_image("iso");
    let bytes: Vec<u8> = (0..16u8)
        .flat_map(|b| std::iter::repeat_n(b, 2048))
        .collect();
    std::fs::write(&image, bytes).unwrap();
    let media = Media::new(File::open(&image).unwrap()).unwrap();
    let drive = |media, serial: &str| PortDrive::Cdrom {
        unit: Arc::new(Mutex::new(Cdrom::new(serial, INTERFACE_ATAPI, media))),
        serial: serial.into(),
    };
    let drives = vec![
        None,
        Some(drive(Some(media), "cd1")),
        None,
        Some(drive(None, "cd3")),
    ];
    rig_with(drives, vec![image])
}

impl Rig {
    fn w(&self, off: u64, v: u32) -> bool {
        self.hba.lock().unwrap().write(off, v)
    }

    fn r(&self, off: u64) -> u32 {
        self.hba.lock().unwrap().read(off)
    }

    fn pw(&self, p: usize, reg: u64, v: u32) -> bool {
        self.w(0x100 + p as u64 * 0x80 + reg, v)
    }

    fn pr(&self, p: usize, reg: u64) -> u32 {
        self.r(0x100 + p as u64 * 0x80 + reg)
    }

    /// Command list and FIS area set, FIS receive and the engine on.
    fn start(&self, p: usize) {
        self.pw(p, P_CLB, clb(p) as u32);
        self.pw(p, P_FB, fb(p) as u32);
        self.pw(p, P_CMD, 0x10);
        self.pw(p, P_CMD, 0x11);
    }

    /// Writes slot `slot`'s header and table (FIS, ATAPI command, PRDT
    /// of (address, bytes)) and issues it; does not run it.
    fn prepare(&self, p: usize, slot: u32, fis: [u8; 20], acmd: &[u8], prdt: &[(u64, u32)]) {
        let t = table(p, slot);
        let header = [
            (prdt.len() as u32) << 16 | u32::from(!acmd.is_empty()) << 5 | 5,
            0xdead,
            t as u32,
            0,
        ];
        self.mem
            .write_obj(header, GuestAddress(clb(p) + u64::from(slot) * 32))
            .unwrap();
        self.mem
            .write_slice(&[0u8; 0x400], GuestAddress(t))
            .unwrap();
        self.mem.write_slice(&fis, GuestAddress(t)).unwrap();
        self.mem.write_slice(acmd, GuestAddress(t + 0x40)).unwrap();
        for (i, &(addr, len)) in prdt.iter().enumerate() {
            let e = [addr as u32, (addr >> 32) as u32, 0, len - 1];
            self.mem
                .write_obj(e, GuestAddress(t + 0x80 + 16 * i as u64))
                .unwrap();
        }
    }

    /// Issues a command in slot 0 and runs it to completion.
    fn run(&self, p: usize, fis: [u8; 20], acmd: &[u8], prdt: &[(u64, u32)]) {
        self.prepare(p, 0, fis, acmd, prdt);
        assert!(self.pw(p, P_CI, 1), "the issued slot waits for the worker");
        run_pending(&self.hba, &self.mem);
        assert_eq!(self.pr(p, P_CI), 0);
    }

    fn prdbc(&self, p: usize) -> u32 {
        self.mem.read_obj(GuestAddress(clb(p) + 4)).unwrap()
    }

    fn bytes(&self, at: u64, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.mem.read_slice(&mut b, GuestAddress(at)).unwrap();
        b
    }
}

fn command_fis(cmd: u8) -> [u8; 20] {
    let mut f = [0u8; 20];
    f[0] = 0x27;
    f[1] = 0x80;
    f[2] = cmd;
    f
}

fn packet() -> [u8; 20] {
    let mut f = command_fis(0xa0);
    f[3] = 1; // DMA
    f
}

#[test]
fn host_registers_and_signature() {
    let r = rig();
    assert_eq!(r.r(0x00) & 0x1f, 5, "six ports");
    assert_eq!(r.r(0x00) >> 31, 1, "64-bit");
    assert_eq!(r.r(0x04), 1 << 31, "AHCI enabled");
    assert_eq!(r.r(0x0c), 0x3f);
    assert_eq!(r.r(0x10), 0x0001_0000);
    assert_eq!((r.pr(0, P_SSTS), r.pr(1, P_SSTS)), (0, 0x113));
    // The reset signature waits for FIS receive.
    assert_eq!(r.pr(1, P_SIG), 0xffff_ffff);
    r.start(1);
    assert_eq!(r.pr(1, P_SIG), 0xeb14_0101);
    assert_eq!(r.pr(1, P_TFD), 0x0150);
    let d2h = r.bytes(fb(1) + 0x40, 20);
    assert_eq!((d2h[0], d2h[5], d2h[6], d2h[12]), (0x34, 0x14, 0xeb, 1));
    assert_eq!(
        r.pr(1, P_CMD) & 0xc011,
        0xc011,
        "CR and FR follow ST and FRE"
    );
    // No device: nothing answers.
    r.start(0);
    assert_eq!(r.pr(0, P_SIG), 0xffff_ffff);
    assert_eq!(r.pr(0, P_TFD), 0x7f);
    // Unimplemented ports and registers read 0.
    assert_eq!(r.r(0x100 + 6 * 0x80), 0);
    assert_eq!(r.r(0x50), 0);
}

#[test]
fn identify_packet_device() {
    let r = rig();
    r.start(1);
    r.pw(1, P_IS, u32::MAX);
    r.run(1, command_fis(0xa1), &[], &[(BUF, 512)]);
    let id = r.bytes(BUF, 512);
    assert_eq!(u16::from_le_bytes([id[0], id[1]]), 0x85c0);
    assert_eq!(r.prdbc(1), 512);
    assert_eq!(r.pr(1, P_IS), IS_PSS | IS_DHRS);
    let pio = r.bytes(fb(1) + 0x20, 20);
    assert_eq!((pio[0], pio[2], pio[15]), (0x5f, 0x50, 0x50));
    assert_eq!(r.pr(1, P_TFD), 0x50);
    // IDENTIFY DEVICE: aborted, with the packet signature.
    r.pw(1, P_IS, u32::MAX);
    r.run(1, command_fis(0xec), &[], &[(BUF, 512)]);
    assert_eq!(r.pr(1, P_IS), IS_DHRS | IS_TFES);
    let d2h = r.bytes(fb(1) + 0x40, 20);
    assert_eq!((d2h[2], d2h[3], d2h[5], d2h[6]), (0x41, 0x04, 0x14, 0xeb));
}

#[test]
fn packet_commands_move_data_and_sense() {
    let r = rig();
    r.start(1);
    r.run(1, packet(), &[0x12, 0, 0, 0, 36, 0], &[(BUF, 36)]);
    assert_eq!(&r.bytes(BUF + 8, 6), b"OXVIRT");
    assert_eq!(r.prdbc(1), 36);
    // READ(10) of blocks 2 and 3 into two regions.
    let read = [0x28, 0, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0];
    r.run(1, packet(), &read, &[(BUF, 2048), (BUF + 0x4000, 2048)]);
    assert_eq!((r.bytes(BUF, 1)[0], r.bytes(BUF + 0x4000, 1)[0]), (2, 3));
    assert_eq!(r.prdbc(1), 4096);
    // The empty drive: NOT READY in the error register, then the sense.
    r.start(3);
    r.pw(3, P_IS, u32::MAX);
    r.run(3, packet(), &[0; 12], &[]);
    assert_eq!(r.pr(3, P_TFD), 0x2441);
    assert_ne!(r.pr(3, P_IS) & IS_TFES, 0);
    r.run(3, packet(), &[0x03, 0, 0, 0, 18, 0], &[(BUF, 18)]);
    assert_eq!(r.pr(3, P_TFD), 0x50);
    assert_eq!((r.bytes(BUF + 2, 1)[0], r.bytes(BUF + 12, 1)[0]), (2, 0x3a));
    // Harmless ATA commands; NOP aborts.
    r.run(1, command_fis(0xef), &[], &[]);
    assert_eq!(r.pr(1, P_TFD), 0x50);
    r.run(1, command_fis(0x00), &[], &[]);
    assert_eq!(r.pr(1, P_TFD), 0x0441);
}

#[test]
fn interrupt_follows_status_and_enables() {
    let r = rig();
    r.start(1);
    r.pw(1, P_IS, u32::MAX);
    r.pw(1, P_IE, IS_DHRS);
    r.run(1, command_fis(0xef), &[], &[]);
    assert!(!r.lines.level(GSI), "GHC.IE off");
    assert_eq!(r.r(0x08), 1 << 1, "HBA IS names the port");
    r.w(0x04, 1 << 1);
    assert!(r.lines.level(GSI));
    r.pw(1, P_IS, IS_DHRS);
    assert!(!r.lines.level(GSI));
    assert_eq!(r.r(0x08), 0);
    // HBA reset: registers back, interrupts off, signature pending.
    r.w(0x04, 1);
    assert_eq!(r.r(0x04), 1 << 31);
    assert_eq!(r.pr(1, P_IE), 0);
    assert_eq!(r.pr(1, P_CMD), 0x6, "spun up, powered on, stopped");
}

#[test]
fn resets_and_a_stopped_engine() {
    let r = rig();
    r.start(1);
    // COMRESET: DET 1 then 0 posts the signature again.
    r.mem
        .write_slice(&[0u8; 20], GuestAddress(fb(1) + 0x40))
        .unwrap();
    r.pw(1, P_SCTL, 1);
    r.pw(1, P_SCTL, 0);
    assert_eq!(r.bytes(fb(1) + 0x40, 1)[0], 0x34);
    assert_eq!(r.pr(1, P_SIG), 0xeb14_0101);
    // A software reset: SRST set, then cleared.
    r.mem
        .write_slice(&[0u8; 20], GuestAddress(fb(1) + 0x40))
        .unwrap();
    let mut control = [0u8; 20];
    control[0] = 0x27;
    control[15] = 0x04;
    r.run(1, control, &[], &[]);
    assert_eq!(r.bytes(fb(1) + 0x40, 1)[0], 0, "nothing yet");
    control[15] = 0;
    r.run(1, control, &[], &[]);
    assert_eq!(r.bytes(fb(1) + 0x40, 1)[0], 0x34);
    // A slot taken by the worker, then the engine stops: PxCI clears and
    // the late completion changes nothing.
    r.prepare(1, 2, command_fis(0xef), &[], &[]);
    r.pw(1, P_IS, u32::MAX);
    r.pw(1, P_CI, 1 << 2);
    let (port, job) = r.hba.lock().unwrap().take_job().unwrap();
    assert_eq!((port, job.slot), (1, 2));
    r.pw(1, P_CMD, 0x10);
    assert_eq!(r.pr(1, P_CI), 0);
    let outcome = ahci_cmd::execute(&r.mem, job.header_at, None);
    r.hba.lock().unwrap().complete(port, &job, outcome);
    assert_eq!(r.pr(1, P_IS), 0);
    // With the engine stopped, PxCI writes are ignored.
    assert!(!r.pw(1, P_CI, 1));
    assert_eq!(r.pr(1, P_CI), 0);
}

#[test]
fn hostile_tables_are_contained() {
    let r = rig();
    r.start(1);
    // Data regions outside guest memory, or straddling its end.
    let read = [0x28, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0];
    r.run(
        1,
        packet(),
        &read,
        &[(MEM - 100, 2048), (u64::MAX - 10, 2048)],
    );
    assert!(r.prdbc(1) <= 4096);
    // A command table beyond guest memory: aborted.
    r.mem
        .write_obj(
            [1u32 << 16 | 5, 0, 0xffff_ff80, 0xffff],
            GuestAddress(clb(1)),
        )
        .unwrap();
    r.pw(1, P_CI, 1);
    run_pending(&r.hba, &r.mem);
    assert_eq!(r.pr(1, P_TFD), 0x0441);
    // A command list beyond guest memory.
    r.pw(1, P_CMD, 0x10);
    r.pw(1, 0x04, 0x7fff_ffff);
    r.pw(1, P_CMD, 0x11);
    r.pw(1, P_CI, u32::MAX);
    run_pending(&r.hba, &r.mem);
    assert_eq!(r.pr(1, P_CI), 0);
    // The largest PRDT, every entry asking for 4 MiB at address 0.
    r.pw(1, 0x04, 0);
    let t = table(1, 0);
    r.prepare(1, 0, packet(), &read, &[]);
    r.mem
        .write_obj(
            [0xffffu32 << 16 | 1 << 5 | 5, 0, t as u32, 0],
            GuestAddress(clb(1)),
        )
        .unwrap();
    r.pw(1, P_CI, 1);
    run_pending(&r.hba, &r.mem);
    assert_eq!(r.prdbc(1), 4096);
    // A port without a drive: aborted, not hung.
    r.start(0);
    r.run(0, packet(), &[0; 12], &[]);
    assert_eq!(r.pr(0, P_TFD), 0x0441);
}

#[test]
fn random_register_writes_never_panic() {
    let r = rig();
    let mut s = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..20_000 {
        let off = (next() % 0x1000) & !3;
        let v = next() as u32;
        // Keep the tables in memory half of the time.
        let v = if i % 2 == 0 { v % MEM as u32 } else { v };
        r.w(off, v);
        let _ = r.r((next() % 0x1000) & !3);
        if i % 64 == 0 {
            let junk: Vec<u8> = (0..256).map(|_| next() as u8).collect();
            r.mem
                .write_slice(&junk, GuestAddress(next() % (MEM - 256)))
                .unwrap();
            run_pending(&r.hba, &r.mem);
        }
    }
}

#[test]
fn pci_function() {
    let r = rig();
    let irq = Arc::new(Interrupt::new(
        IntxLine {
            lines: r.lines.clone(),
            gsi: GSI,
            slot: 4,
        },
        vec![],
    ));
    let hba = Hba::new(vec![], r.mem.clone(), irq);
    let mut f = Ahci::new(hba, r.mem.clone(), 0xc010_0000, 22, "t".into()).unwrap();
    assert_eq!(f.read_config(0), 0x2922_8086);
    assert_eq!(f.read_config(8) >> 8, 0x01_0601);
    assert_eq!(f.read_config(0x3c), 0x116);
    f.write_config(0x24, u32::MAX);
    assert_eq!(f.read_config(0x24), 0xffff_f000, "sizing: 4 KiB");
    f.write_config(0x24, 0xc020_0000);
    assert_eq!(f.bar_at(0xc020_0004), Some((5, 4)));
    assert_eq!(f.bar_at(0xc020_1000), None);
    let mut b = [0u8; 2];
    f.bar_read(5, 0x0e, &mut b);
    assert_eq!(b, [0, 0], "upper half of PI");
    f.bar_read(5, 0x0c, &mut b);
    assert_eq!(b, [0x3f, 0]);
    f.write_config(0x04, 0);
    assert_eq!(f.bar_at(0xc020_0004), None, "memory decoding off");
    f.bar_write(5, 0x06, &[1, 2]);
}

#[path = "ahci_disk_tests.rs"]
mod disk;
