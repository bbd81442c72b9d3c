//! Hard disks on the AHCI controller, driven through the registers and
//! tables as SeaBIOS and Linux drive them: signature, IDENTIFY DEVICE,
//! DMA and PIO reads and writes through raw and qcow2 images, the
//! housekeeping commands, and hostile task files and PRDTs.

use super::*;
use crate::vmm::storage::ata_disk::AtaDisk;
use crate::vmm::virtio::disk::{Disk, MemDisk, Qcow2Disk, RawDisk};

/// Sectors of the test disks.
const SECTORS: u64 = 64;
/// Port of the writable disk, of the read-only one, of a read-only disk
/// whose backend would take writes.
const RW: usize = 2;
const RO: usize = 4;
const RO_MEM: usize = 5;
/// A second data buffer.
const BUF2: u64 = 0xc_0000;

/// Sector `n`'s filling.
fn fill(n: u64) -> u8 {
    0x40 + n as u8
}

fn contents() -> Vec<u8> {
    (0..SECTORS)
        .flat_map(|n| std::iter::repeat_n(fill(n), 512))
        .collect()
}

fn raw_image() -> std::path::PathBuf {
    let p = temp_image("raw");
    std::fs::write(&p, contents()).unwrap();
    p
}

fn disk(image: Box<dyn Disk>, readonly: bool, serial: &str) -> Option<PortDrive> {
    Some(PortDrive::Disk(Arc::new(Mutex::new(AtaDisk::new(
        image, readonly, serial,
    )))))
}

/// A writable raw disk on port 2, a read-only one on port 4, a read-only
/// disk in memory on port 5.
fn disks() -> Rig {
    let (rw, ro) = (raw_image(), raw_image());
    let drives = vec![
        None,
        None,
        disk(
            Box::new(RawDisk::open(&rw, false).unwrap()),
            false,
            "disk-rw",
        ),
        None,
        disk(Box::new(RawDisk::open(&ro, true).unwrap()), true, "disk-ro"),
        disk(Box::new(MemDisk(contents())), true, "disk-mem"),
    ];
    rig_with(drives, vec![rw, ro])
}

/// A command FIS with a 48-bit address and count.
fn ata(cmd: u8, lba: u64, count: u16) -> [u8; 20] {
    let mut f = command_fis(cmd);
    let l = lba.to_le_bytes();
    f[4..7].copy_from_slice(&l[0..3]);
    f[7] = 0x40;
    f[8..11].copy_from_slice(&l[3..6]);
    f[12..14].copy_from_slice(&count.to_le_bytes());
    f
}

/// A 28-bit command: LBA bits 27:24 in the device register.
fn ata28(cmd: u8, lba: u32, count: u8) -> [u8; 20] {
    let mut f = ata(cmd, u64::from(lba & 0xff_ffff), u16::from(count));
    f[7] = 0x40 | (lba >> 24) as u8 & 0x0f;
    f
}

impl Rig {
    /// Image `i` as the host sees it.
    fn image(&self, i: usize) -> Vec<u8> {
        std::fs::read(&self.images[i]).unwrap()
    }

    fn ok(&self, p: usize) {
        assert_eq!(self.pr(p, P_TFD), 0x50, "command failed");
    }

    fn aborted(&self, p: usize) {
        assert_eq!(self.pr(p, P_TFD), 0x0441, "command not aborted");
        assert_ne!(self.pr(p, P_IS) & IS_TFES, 0);
        self.pw(p, P_IS, u32::MAX);
    }

    fn identify(&self, p: usize) -> Vec<u8> {
        self.run(p, command_fis(0xec), &[], &[(BUF, 512)]);
        self.ok(p);
        self.bytes(BUF, 512)
    }
}

fn word(id: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([id[2 * i], id[2 * i + 1]])
}

#[test]
fn a_disk_shows_the_ata_signature_and_identifies() {
    let r = disks();
    r.start(RW);
    assert_eq!(r.pr(RW, P_SSTS), 0x113);
    assert_eq!(r.pr(RW, P_SIG), 0x0000_0101);
    assert_eq!(r.pr(RW, P_TFD), 0x0150);
    let d2h = r.bytes(fb(RW) + 0x40, 20);
    assert_eq!(
        (d2h[0], d2h[4], d2h[5], d2h[6], d2h[12]),
        (0x34, 1, 0, 0, 1)
    );
    // SeaBIOS asks for a packet device first: a disk aborts.
    r.pw(RW, P_IS, u32::MAX);
    r.run(RW, command_fis(0xa1), &[], &[(BUF, 512)]);
    r.aborted(RW);
    assert_eq!(r.prdbc(RW), 0);
    // IDENTIFY DEVICE: PIO data-in, a PIO setup FIS then a D2H FIS.
    let id = r.identify(RW);
    assert_eq!(r.prdbc(RW), 512);
    assert_eq!(r.pr(RW, P_IS), IS_PSS | IS_DHRS);
    let pio = r.bytes(fb(RW) + 0x20, 20);
    assert_eq!((pio[0], pio[1] & 0x20, pio[15]), (0x5f, 0x20, 0x50));
    assert_eq!(word(&id, 0) & 0x8000, 0, "ATA");
    let model: Vec<u8> = id[54..94].chunks(2).flat_map(|p| [p[1], p[0]]).collect();
    assert!(model.starts_with(b"OXVIRT HARDDISK "));
    assert_eq!(&id[20..28], b"idksr- w", "\"disk-rw\", bytes swapped");
    assert_eq!(u32::from(word(&id, 60)), SECTORS as u32);
    assert_eq!(word(&id, 100), SECTORS as u16);
    assert_ne!(word(&id, 83) & 1 << 10, 0);
    // A CD-ROM's PxSIG is unchanged by the disks.
    let r = rig();
    r.start(1);
    assert_eq!(r.pr(1, P_SIG), 0xeb14_0101);
}

#[test]
fn dma_and_pio_reads_and_writes_reach_the_image() {
    let r = disks();
    r.start(RW);
    // WRITE DMA EXT of sectors 5-7 from two regions (1000 + 536 bytes).
    let data: Vec<u8> = (0..1536u32).map(|i| (i * 7 % 251) as u8).collect();
    r.mem.write_slice(&data, GuestAddress(BUF)).unwrap();
    r.mem
        .write_slice(&data[1000..], GuestAddress(BUF2))
        .unwrap();
    r.run(RW, ata(0x35, 5, 3), &[], &[(BUF, 1000), (BUF2, 536)]);
    r.ok(RW);
    assert_eq!(r.prdbc(RW), 1536);
    assert_eq!(r.pr(RW, P_IS) & IS_PSS, 0, "DMA: no PIO setup FIS");
    let img = r.image(0);
    assert_eq!(&img[5 * 512..8 * 512], &data[..]);
    assert_eq!((img[5 * 512 - 1], img[8 * 512]), (fill(4), fill(8)));
    // FLUSH CACHE EXT, then READ DMA (28-bit) of sectors 4-8 back.
    r.run(RW, command_fis(0xea), &[], &[]);
    r.ok(RW);
    r.run(RW, ata28(0xc8, 4, 5), &[], &[(BUF2, 5 * 512)]);
    r.ok(RW);
    let back = r.bytes(BUF2, 5 * 512);
    assert_eq!(back[0], fill(4));
    assert_eq!(&back[512..2048], &data[..]);
    assert_eq!(back[2048], fill(8));
    // READ SECTOR(S): PIO data-in, announced by a PIO setup FIS.
    r.pw(RW, P_IS, u32::MAX);
    r.run(RW, ata28(0x20, 63, 1), &[], &[(BUF, 512)]);
    r.ok(RW);
    assert_eq!(r.pr(RW, P_IS), IS_PSS | IS_DHRS);
    assert_eq!(r.bytes(BUF, 512), vec![fill(63); 512]);
    // WRITE SECTOR(S) EXT: PIO data-out.
    r.mem.write_slice(&[0xee; 512], GuestAddress(BUF)).unwrap();
    r.run(RW, ata(0x34, 0, 1), &[], &[(BUF, 512)]);
    r.ok(RW);
    assert_eq!(&r.image(0)[..512], &[0xee; 512][..]);
    // READ VERIFY: a range check, no data.
    r.run(RW, ata28(0x40, 60, 4), &[], &[]);
    r.ok(RW);
    r.run(RW, ata(0x42, 61, 4), &[], &[]);
    r.aborted(RW);
}

#[test]
fn addresses_past_the_end_abort_before_any_io() {
    let r = disks();
    r.start(RW);
    r.mem.write_slice(&[0xaa; 4096], GuestAddress(BUF)).unwrap();
    let before = r.image(0);
    for fis in [
        ata(0x25, SECTORS - 1, 2),
        ata(0x25, SECTORS, 1),
        ata(0x25, 0xffff_ffff_ffff, 1),
        ata(0x35, SECTORS - 1, 2),
        // Count 0: 65536 sectors (48-bit), 256 (28-bit).
        ata(0x25, 0, 0),
        ata28(0xc8, 0, 0),
        ata28(0xca, 0x0fff_ffff, 1),
        ata28(0x20, SECTORS as u32, 1),
    ] {
        r.run(RW, fis, &[], &[(BUF, 4096)]);
        r.aborted(RW);
        assert_eq!(r.prdbc(RW), 0);
    }
    assert_eq!(r.bytes(BUF, 4096), vec![0xaa; 4096], "nothing read");
    assert_eq!(r.image(0), before, "nothing written");
    // The last sector itself is fine.
    r.run(RW, ata(0x25, SECTORS - 1, 1), &[], &[(BUF, 512)]);
    r.ok(RW);
}

#[test]
fn a_read_only_disk_aborts_writes() {
    let r = disks();
    r.start(RO);
    r.mem.write_slice(&[0x11; 1024], GuestAddress(BUF)).unwrap();
    let before = r.image(1);
    for cmd in [0xca, 0xcb, 0x30, 0x31] {
        r.run(RO, ata28(cmd, 1, 1), &[], &[(BUF, 512)]);
        r.aborted(RO);
    }
    for cmd in [0x35, 0x34] {
        r.run(RO, ata(cmd, 1, 2), &[], &[(BUF, 1024)]);
        r.aborted(RO);
    }
    assert_eq!(r.image(1), before);
    // Reads and flushes work.
    r.run(RO, ata(0x25, 3, 1), &[], &[(BUF, 512)]);
    r.ok(RO);
    assert_eq!(r.bytes(BUF, 512), vec![fill(3); 512]);
    r.run(RO, command_fis(0xe7), &[], &[]);
    r.ok(RO);
    // The refusal is the disk's, not only the read-only file's.
    r.start(RO_MEM);
    r.run(RO_MEM, ata(0x35, 2, 1), &[], &[(BUF, 512)]);
    r.aborted(RO_MEM);
    r.run(RO_MEM, ata(0x25, 2, 1), &[], &[(BUF, 512)]);
    r.ok(RO_MEM);
    assert_eq!(r.bytes(BUF, 512), vec![fill(2); 512]);
}

#[test]
fn hostile_prdts_on_a_disk() {
    let r = disks();
    r.start(RW);
    let before = r.image(0);
    // Shorter than the transfer; a region outside guest memory;
    // straddling its end; wrapping the address space; no PRDT at all.
    let cases: [&[(u64, u32)]; 5] = [
        &[(BUF, 512)],
        &[(BUF, 512), (MEM + 0x1000, 512)],
        &[(MEM - 256, 1024)],
        &[(u64::MAX - 255, 1024)],
        &[],
    ];
    for prdt in cases {
        r.run(RW, ata(0x25, 0, 2), &[], prdt);
        r.aborted(RW);
        r.run(RW, ata(0x35, 0, 2), &[], prdt);
        r.aborted(RW);
    }
    assert_eq!(r.image(0), before);
    // Regions longer than the transfer: only what the transfer needs is
    // used, the rest of guest memory stays as it was.
    r.mem.write_slice(&[0x77; 2048], GuestAddress(BUF)).unwrap();
    r.run(RW, ata(0x25, 9, 1), &[], &[(BUF, 1024), (BUF2, 4096)]);
    r.ok(RW);
    assert_eq!(r.prdbc(RW), 512);
    assert_eq!(r.bytes(BUF + 512, 512), vec![0x77; 512]);
    // The largest PRDT, every entry 4 MiB straddling the end of guest
    // memory: aborted, not a panic.
    let t = table(RW, 0);
    r.prepare(RW, 0, ata(0x25, 0, 64), &[], &[]);
    r.mem
        .write_obj([0xffffu32 << 16 | 5, 0, t as u32, 0], GuestAddress(clb(RW)))
        .unwrap();
    for i in 0..0xffffu64 {
        let e = [(MEM - 0x100) as u32, 0, 0, 0x3f_ffff];
        if r.mem.write_obj(e, GuestAddress(t + 0x80 + 16 * i)).is_err() {
            break;
        }
    }
    r.pw(RW, P_CI, 1);
    run_pending(&r.hba, &r.mem);
    r.aborted(RW);
}

#[test]
fn features_power_modes_and_geometry() {
    let r = disks();
    r.start(RW);
    let set_features = |feature: u8, count: u8| {
        let mut f = command_fis(0xef);
        f[3] = feature;
        f[12] = count;
        r.run(RW, f, &[], &[]);
    };
    // Transfer modes: multiword DMA 2, then an invalid UDMA 6.
    set_features(0x03, 0x22);
    r.ok(RW);
    let id = r.identify(RW);
    assert_eq!((word(&id, 63), word(&id, 88)), (0x0407, 0x003f));
    set_features(0x03, 0x46);
    r.aborted(RW);
    set_features(0x03, 0x45);
    r.ok(RW);
    set_features(0x03, 0x0c); // PIO 4 leaves the DMA mode alone
    r.ok(RW);
    assert_eq!(word(&r.identify(RW), 88), 0x203f);
    // Write cache off, on; unknown features abort.
    set_features(0x82, 0);
    r.ok(RW);
    assert_eq!(word(&r.identify(RW), 85) & 1 << 5, 0);
    set_features(0x02, 0);
    assert_ne!(word(&r.identify(RW), 85) & 1 << 5, 0);
    set_features(0x10, 0x02);
    r.aborted(RW);
    // Power modes.
    let power = |cmd: u8| {
        r.run(RW, command_fis(cmd), &[], &[]);
        r.ok(RW);
        r.run(RW, command_fis(0xe5), &[], &[]);
        r.ok(RW);
        r.bytes(fb(RW) + 0x40, 20)[12]
    };
    assert_eq!(power(0xe0), 0x00, "standby");
    assert_eq!(power(0xe1), 0xff, "idle");
    assert_eq!(power(0xe2), 0x00);
    r.run(RW, ata(0x25, 0, 1), &[], &[(BUF, 512)]);
    r.run(RW, command_fis(0xe5), &[], &[]);
    assert_eq!(r.bytes(fb(RW) + 0x40, 20)[12], 0xff, "woken by a read");
    // READ MULTIPLE needs SET MULTIPLE; 3 is no power of two.
    r.run(RW, ata28(0xc4, 0, 1), &[], &[(BUF, 512)]);
    r.aborted(RW);
    r.run(RW, ata28(0xc6, 0, 3), &[], &[]);
    r.aborted(RW);
    r.run(RW, ata28(0xc6, 0, 32), &[], &[]);
    r.aborted(RW);
    r.run(RW, ata28(0xc6, 0, 8), &[], &[]);
    r.ok(RW);
    assert_eq!(word(&r.identify(RW), 59), 0x0108);
    r.run(RW, ata(0x29, 2, 2), &[], &[(BUF, 1024)]);
    r.ok(RW);
    assert_eq!(r.bytes(BUF + 512, 1), vec![fill(3)]);
    // CHS addressing under INITIALIZE DEVICE PARAMETERS: 8 heads of 4
    // sectors; cylinder 1, head 2, sector 3 is LBA (1 * 8 + 2) * 4 + 2.
    let mut f = command_fis(0x91);
    f[12] = 4;
    f[7] = 7;
    r.run(RW, f, &[], &[]);
    r.ok(RW);
    let id = r.identify(RW);
    assert_eq!((word(&id, 54), word(&id, 55), word(&id, 56)), (2, 8, 4));
    let mut f = command_fis(0xc8);
    f[4] = 3; // sector
    f[5] = 1; // cylinder low
    f[7] = 2; // head, LBA bit clear
    f[12] = 1;
    r.run(RW, f, &[], &[(BUF, 512)]);
    r.ok(RW);
    assert_eq!(r.bytes(BUF, 1), vec![fill(42)]);
    for (sector, head) in [(0, 0), (5, 0), (1, 8)] {
        f[4] = sector;
        f[7] = head;
        r.run(RW, f, &[], &[(BUF, 512)]);
        r.aborted(RW);
    }
    // Zero sectors per track is refused.
    r.run(RW, command_fis(0x91), &[], &[]);
    r.aborted(RW);
    // NOP, SMART, READ LOG EXT, DEVICE RESET, PACKET: aborted.
    for cmd in [0x00, 0xb0, 0x2f, 0x47, 0x08, 0xa0, 0x60] {
        r.run(RW, command_fis(cmd), &[], &[(BUF, 512)]);
        r.aborted(RW);
    }
    // EXECUTE DEVICE DIAGNOSTIC: the signature again.
    r.mem
        .write_slice(&[0u8; 20], GuestAddress(fb(RW) + 0x40))
        .unwrap();
    r.run(RW, command_fis(0x90), &[], &[]);
    assert_eq!(r.bytes(fb(RW) + 0x40, 20)[12], 1);
    assert_eq!(r.pr(RW, P_TFD), 0x0150);
}

/// Random task files on a disk: nothing panics, nothing outside the
/// image changes size.
#[test]
fn random_commands_on_a_disk() {
    let r = disks();
    r.start(RW);
    r.start(RO);
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..3000 {
        let mut f = [0u8; 20];
        for b in f.iter_mut() {
            *b = next() as u8;
        }
        f[0] = 0x27;
        f[1] = 0x80;
        // Mostly the data commands, with small counts.
        let cmds = [0x20, 0x25, 0x29, 0x35, 0x39, 0xc8, 0xca, 0xc4, 0x40, 0x91];
        if i % 2 == 0 {
            f[2] = cmds[next() as usize % cmds.len()];
            f[13] = 0;
            f[12] %= 8;
        }
        let prdt: Vec<(u64, u32)> = (0..next() % 4)
            .map(|_| (next() % (MEM + 0x1000), (next() % 8192) as u32 + 1))
            .collect();
        let p = if i % 3 == 0 { RO } else { RW };
        r.run(p, f, &[], &prdt);
        r.pw(p, P_IS, u32::MAX);
    }
    assert_eq!(r.image(0).len() as u64, SECTORS * 512);
    assert_eq!(r.image(1).len() as u64, SECTORS * 512);
}

fn qcow2_image(size: u64) -> std::path::PathBuf {
    use imago::FormatCreateBuilder;
    let p = temp_image("qcow2");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .unwrap();
    let storage = imago::file::File::try_from(f).unwrap();
    let b = imago::qcow2::Qcow2::<imago::file::File>::create_builder(storage).size(size);
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(b.create())
        .unwrap();
    p
}

#[test]
fn a_qcow2_disk_round_trips_and_keeps_its_data() {
    let p = qcow2_image(1 << 20);
    {
        let image = Box::new(Qcow2Disk::open(&p, false).unwrap());
        let r = rig_with(vec![disk(image, false, "q")], vec![]);
        r.start(0);
        let id = r.identify(0);
        assert_eq!(u32::from(word(&id, 60)), 2048);
        let data: Vec<u8> = (0..8192u32).map(|i| (i % 253) as u8).collect();
        r.mem.write_slice(&data, GuestAddress(BUF)).unwrap();
        r.run(0, ata(0x35, 1000, 16), &[], &[(BUF, 8192)]);
        r.ok(0);
        r.run(0, ata(0x25, 999, 18), &[], &[(BUF2, 18 * 512)]);
        r.ok(0);
        let back = r.bytes(BUF2, 18 * 512);
        assert_eq!(&back[..512], &[0u8; 512][..], "unwritten: zeroes");
        assert_eq!(&back[512..512 + 8192], &data[..]);
        r.run(0, command_fis(0xea), &[], &[]);
        r.ok(0);
        // The worker flushes its disks when it stops.
        let disks = r.hba.lock().unwrap().disks();
        assert_eq!(disks.len(), 1);
        disks[0].lock().unwrap().flush().unwrap();
    }
    // Opened again: the data is there.
    let image = Box::new(Qcow2Disk::open(&p, true).unwrap());
    let r = rig_with(vec![disk(image, true, "q")], vec![p]);
    r.start(0);
    r.run(0, ata(0x25, 1000, 1), &[], &[(BUF, 512)]);
    r.ok(0);
    let first: Vec<u8> = (0..512u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(r.bytes(BUF, 512), first);
    r.run(0, ata(0x35, 1000, 1), &[], &[(BUF, 512)]);
    r.aborted(0);
}
