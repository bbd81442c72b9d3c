//! The CD-ROM unit command by command, media changes, and hostile CDBs.

use std::fs::File;
use std::path::PathBuf;

use super::*;
use crate::vmm::storage::mmc::INTERFACE_SCSI;
use crate::vmm::storage::sense::{CHECK_CONDITION, GOOD};

/// A scratch image of `blocks` blocks; block N is filled with byte N.
struct Image {
    path: PathBuf,
}

impl Image {
    fn new(name: &str, blocks: u64) -> Image {
        let path =
            std::env::temp_dir().join(format!("oxvirt-cdrom-{}-{name}.iso", std::process::id()));
        let mut bytes = Vec::with_capacity((blocks * BLOCK_SIZE) as usize);
        for b in 0..blocks {
            bytes.extend(std::iter::repeat_n(b as u8, BLOCK_SIZE as usize));
        }
        std::fs::write(&path, bytes).unwrap();
        Image { path }
    }

    fn open(&self) -> File {
        File::open(&self.path).unwrap()
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn drive(img: Option<&Image>) -> Cdrom {
    let media = img.map(|i| Media::new(i.open()).unwrap());
    Cdrom::new("cd0", INTERFACE_SCSI, media)
}

/// Runs `cdb` with a buffer of `cap` bytes; returns the completion and
/// the bytes written.
fn run(d: &mut Cdrom, cdb: &[u8], cap: usize) -> (Completion, Vec<u8>) {
    let mut buf = vec![0u8; cap];
    let c = d.execute(cdb, &mut buf);
    buf.truncate(c.len);
    (c, buf)
}

fn sense_of(c: &Completion) -> Sense {
    assert_eq!(c.status, CHECK_CONDITION, "{c:?}");
    c.sense.unwrap()
}

fn read10(lba: u32, blocks: u16) -> Vec<u8> {
    let mut c = vec![0x28, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.push(0);
    c.extend_from_slice(&blocks.to_be_bytes());
    c.push(0);
    c
}

fn read12(lba: u32, blocks: u32) -> Vec<u8> {
    let mut c = vec![0xa8, 0];
    c.extend_from_slice(&lba.to_be_bytes());
    c.extend_from_slice(&blocks.to_be_bytes());
    c.extend_from_slice(&[0, 0]);
    c
}

#[test]
fn test_unit_ready_and_request_sense() {
    let img = Image::new("tur", 4);
    let mut d = drive(Some(&img));
    assert!(run(&mut d, &[0; 6], 0).0.is_good());
    let mut empty = drive(None);
    let (c, _) = run(&mut empty, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    // REQUEST SENSE reports the last failure once.
    let (c, data) = run(&mut empty, &[0x03, 0, 0, 0, 252, 0], 252);
    assert!(c.is_good());
    assert_eq!(data.len(), 18);
    assert_eq!((data[2], data[12], data[13]), (2, 0x3a, 0x01));
    let (_, data) = run(&mut empty, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!(data[2], 0, "NO SENSE once reported");
    // Cut to the allocation length.
    run(&mut empty, &[0; 6], 0);
    assert_eq!(run(&mut empty, &[0x03, 0, 0, 0, 8, 0], 64).1.len(), 8);
}

/// An image without one whole block (the empty file a management tool
/// creates as "install media to come") is a drive without a disc, as
/// with QEMU: accepted, and every media command answers "medium not
/// present" until a real image goes in.
#[test]
fn an_image_shorter_than_a_block_is_an_empty_drive() {
    let img = Image::new("short", 0);
    std::fs::write(&img.path, [0u8; 100]).unwrap();
    let mut d = drive(Some(&img));
    assert!(!d.has_media());
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    let (c, _) = run(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    let (c, _) = run(&mut d, &read10(0, 1), 2048);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    // Inserting a real disc later works as from an empty drive.
    let disc = Image::new("after-short", 2);
    d.change_media(Some(disc.open())).unwrap();
    assert_eq!(
        sense_of(&run(&mut d, &[0; 6], 0).0),
        Sense::NO_MEDIUM_ATTENTION
    );
    assert_eq!(sense_of(&run(&mut d, &[0; 6], 0).0), Sense::MEDIUM_CHANGED);
    assert!(run(&mut d, &[0; 6], 0).0.is_good());
}

#[test]
fn inquiry_standard_and_vpd() {
    let mut d = drive(None);
    let (c, data) = run(&mut d, &[0x12, 0, 0, 0, 96, 0], 96);
    assert!(c.is_good());
    assert_eq!(data.len(), 36);
    assert_eq!((data[0], data[1]), (0x05, 0x80));
    assert_eq!(&data[8..14], b"OXVIRT");
    let (_, pages) = run(&mut d, &[0x12, 1, 0, 0, 255, 0], 255);
    assert_eq!(&pages[4..], &[0x00, 0x80, 0x83]);
    let (_, serial) = run(&mut d, &[0x12, 1, 0x80, 0, 255, 0], 255);
    assert_eq!(&serial[4..], b"cd0");
    assert!(run(&mut d, &[0x12, 1, 0x83, 0, 255, 0], 255).0.is_good());
    let (c, _) = run(&mut d, &[0x12, 1, 0xb0, 0, 255, 0], 255);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
    let (c, _) = run(&mut d, &[0x12, 0, 0x80, 0, 255, 0], 255);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
    // A 4-byte buffer gets 4 bytes; the command wanted 36.
    let (c, data) = run(&mut d, &[0x12, 0, 0, 0, 255, 0], 4);
    assert_eq!((data.len(), c.wanted), (4, 36));
}

#[test]
fn read_capacity_and_reads() {
    let img = Image::new("read", 20);
    let mut d = drive(Some(&img));
    let (c, cap) = run(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert!(c.is_good());
    assert_eq!(cap, vec![0, 0, 0, 19, 0, 0, 8, 0]);
    let (c, data) = run(&mut d, &read10(3, 2), 4096);
    assert!(c.is_good());
    assert_eq!((data.len(), data[0], data[2048]), (4096, 3, 4));
    let (c, data) = run(&mut d, &read12(19, 1), 2048);
    assert!(c.is_good() && data.iter().all(|&b| b == 19));
    // Zero blocks: nothing to do.
    assert_eq!(run(&mut d, &read10(0, 0), 0).0.len, 0);
    // A buffer shorter than the transfer: what fits, and what was wanted.
    let (c, data) = run(&mut d, &read10(0, 4), 5000);
    assert_eq!((data.len(), c.wanted), (5000, 8192));
    assert_eq!(data[4096], 2);
}

#[test]
fn hostile_reads_are_refused() {
    let img = Image::new("hostile", 20);
    let mut d = drive(Some(&img));
    for cdb in [
        read10(20, 1),
        read10(19, 2),
        read10(u32::MAX, 1),
        read10(0, u16::MAX),
        read12(0, u32::MAX),
        read12(u32::MAX, u32::MAX),
        read12(1, 20),
    ] {
        let (c, data) = run(&mut d, &cdb, 4096);
        assert_eq!(sense_of(&c), Sense::LBA_OUT_OF_RANGE, "{cdb:x?}");
        assert!(data.is_empty());
    }
    let mut empty = drive(None);
    let (c, _) = run(&mut empty, &read12(0, u32::MAX), 4096);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
}

#[test]
fn mode_sense_pages() {
    let mut d = drive(None);
    let (c, data) = run(&mut d, &[0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 128, 0], 128);
    assert!(c.is_good());
    assert_eq!(data.len(), 8 + 22);
    assert_eq!(data[8], 0x2a);
    let (c, data) = run(&mut d, &[0x1a, 0, 0x3f, 0, 255, 0], 255);
    assert!(c.is_good());
    assert_eq!(data[0] as usize, data.len() - 1);
    let (c, _) = run(&mut d, &[0x1a, 0, 0xc0 | 0x2a, 0, 255, 0], 255);
    assert_eq!(sense_of(&c), Sense::SAVING_NOT_SUPPORTED);
    let (c, _) = run(&mut d, &[0x1a, 0, 0x08, 0, 255, 0], 255);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
}

#[test]
fn tray_lock_eject_and_load() {
    let img = Image::new("tray", 4);
    let mut d = drive(Some(&img));
    let eject = [0x1b, 0, 0, 0, 0x02, 0];
    let load = [0x1b, 0, 0, 0, 0x03, 0];
    assert!(run(&mut d, &[0x1e, 0, 0, 0, 1, 0], 0).0.is_good());
    assert!(d.locked());
    let (_, caps) = run(&mut d, &[0x1a, 0, 0x2a, 0, 255, 0], 255);
    assert_eq!(caps[4 + 6] & 0x02, 0x02, "capabilities page shows the lock");
    let (c, _) = run(&mut d, &eject, 0);
    assert_eq!(sense_of(&c), Sense::REMOVAL_PREVENTED);
    assert!(d.has_media());
    run(&mut d, &[0x1e, 0, 0, 0, 0, 0], 0);
    assert!(run(&mut d, &eject, 0).0.is_good());
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_OPEN);
    let (_, mech) = run(&mut d, &[0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 8);
    assert_eq!(mech[1], 0x10, "door open");
    assert!(run(&mut d, &load, 0).0.is_good());
    assert!(run(&mut d, &[0; 6], 0).0.is_good());
    // A power condition: no tray movement.
    assert!(run(&mut d, &[0x1b, 0, 0, 0, 0x12, 0], 0).0.is_good());
    assert!(d.has_media());
    // Locked and empty: NOT READY flavour of the refusal.
    let mut empty = drive(None);
    run(&mut empty, &[0x1e, 0, 0, 0, 1, 0], 0);
    let (c, _) = run(&mut empty, &eject, 0);
    assert_eq!(sense_of(&c), Sense::NOT_READY_REMOVAL_PREVENTED);
}

#[test]
fn toc_disc_information_and_speed() {
    let img = Image::new("toc", 100);
    let mut d = drive(Some(&img));
    let (c, toc) = run(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0x03, 0x24, 0], 0x324);
    assert!(c.is_good());
    assert_eq!(toc.len(), 20);
    assert_eq!(u32::from_be_bytes(toc[16..20].try_into().unwrap()), 100);
    let (_, msf) = run(&mut d, &[0x43, 2, 0, 0, 0, 0, 0, 0, 20, 0], 20);
    assert_eq!(&msf[16..20], &[0, 0, 3, 25]); // 250 frames
    let (_, ses) = run(&mut d, &[0x43, 0, 1, 0, 0, 0, 0, 0, 12, 0], 12);
    assert_eq!(ses[1], 10);
    // The ATAPI form of the format field (byte 9).
    let (_, ses9) = run(&mut d, &[0x43, 0, 0, 0, 0, 0, 0, 0, 12, 0x40], 12);
    assert_eq!(ses, ses9);
    let (c, _) = run(&mut d, &[0x43, 0, 0, 0, 0, 0, 5, 0, 12, 0], 12);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
    let (c, info) = run(&mut d, &[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34);
    assert!(c.is_good());
    assert_eq!((info.len(), info[2]), (34, 0x0e));
    let (c, _) = run(&mut d, &[0x51, 1, 0, 0, 0, 0, 0, 0, 34, 0], 34);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
    assert!(
        run(&mut d, &[0xbb, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0], 0)
            .0
            .is_good()
    );
    let mut empty = drive(None);
    let (c, _) = run(&mut empty, &[0x43, 0, 0, 0, 0, 0, 0, 0, 20, 0], 20);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    let (c, _) = run(&mut empty, &[0x51, 0, 0, 0, 0, 0, 0, 0, 34, 0], 34);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
}

#[test]
fn configuration_profile_follows_the_medium() {
    let get = [0x46, 0, 0, 0, 0, 0, 0, 0x01, 0, 0];
    let profile = |d: &mut Cdrom| {
        let (_, b) = run(d, &get, 256);
        u16::from_be_bytes([b[6], b[7]])
    };
    let cd = Image::new("cd", 4);
    assert_eq!(profile(&mut drive(Some(&cd))), 0x08);
    assert_eq!(profile(&mut drive(None)), 0x00);
    // A sparse image one block larger than an 80-minute CD: a DVD.
    let dvd = Image::new("dvd", 1);
    File::options()
        .write(true)
        .open(&dvd.path)
        .unwrap()
        .set_len((CD_MAX_BLOCKS + 1) * BLOCK_SIZE)
        .unwrap();
    assert_eq!(profile(&mut drive(Some(&dvd))), 0x10);
}

#[test]
fn host_media_change_raises_attentions_and_events() {
    let a = Image::new("a", 4);
    let b = Image::new("b", 8);
    let mut d = drive(Some(&a));
    let gesn = [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8, 0];
    let (_, ev) = run(&mut d, &gesn, 8);
    assert_eq!((ev[4], ev[5]), (0, 2), "no event, medium present");
    // The guest locked the tray; the host's change wins.
    run(&mut d, &[0x1e, 0, 0, 0, 1, 0], 0);
    d.change_media(Some(b.open())).unwrap();
    assert!(!d.locked());
    // INQUIRY and GESN neither report nor clear the attention.
    assert!(run(&mut d, &[0x12, 0, 0, 0, 36, 0], 36).0.is_good());
    let (_, ev) = run(&mut d, &gesn, 8);
    assert_eq!(ev[4], 2, "new media");
    let (_, ev) = run(&mut d, &gesn, 8);
    assert_eq!(ev[4], 0, "reported once");
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_ATTENTION);
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::MEDIUM_CHANGED);
    assert!(run(&mut d, &[0; 6], 0).0.is_good());
    let (_, cap) = run(&mut d, &[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], 8);
    assert_eq!(cap[3], 7, "the new image's size");
    // Host eject.
    d.change_media(None).unwrap();
    let (_, ev) = run(&mut d, &gesn, 8);
    assert_eq!((ev[4], ev[5]), (3, 0), "removal, no medium");
    // REQUEST SENSE reports a pending attention too.
    let (_, s) = run(&mut d, &[0x03, 0, 0, 0, 18, 0], 18);
    assert_eq!((s[2], s[12]), (6, 0x3a));
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::NO_MEDIUM_TRAY_CLOSED);
    // An image shorter than a block goes in as "no disc": no new-media
    // event or attention, the drive stays empty.
    let empty_file = std::env::temp_dir().join(format!("oxvirt-cdrom-{}-0", std::process::id()));
    std::fs::write(&empty_file, b"tiny").unwrap();
    d.change_media(Some(File::open(&empty_file).unwrap()))
        .unwrap();
    std::fs::remove_file(&empty_file).unwrap();
    assert_eq!(
        sense_of(&run(&mut d, &[0; 6], 0).0),
        Sense::NO_MEDIUM_ATTENTION
    );
    assert_eq!(
        sense_of(&run(&mut d, &[0; 6], 0).0),
        Sense::NO_MEDIUM_TRAY_CLOSED
    );
    assert!(!d.has_media());
}

#[test]
fn reset_unlocks_and_attends() {
    let img = Image::new("reset", 4);
    let mut d = drive(Some(&img));
    run(&mut d, &[0x1e, 0, 0, 0, 1, 0], 0);
    d.reset();
    assert!(!d.locked());
    let (c, _) = run(&mut d, &[0; 6], 0);
    assert_eq!(sense_of(&c), Sense::RESET);
    assert!(run(&mut d, &[0; 6], 0).0.is_good());
}

#[test]
fn report_luns_and_unknown_commands() {
    let mut d = drive(None);
    let (c, luns) = run(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], 16);
    assert!(c.is_good());
    assert_eq!(luns, vec![0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (c, _) = run(&mut d, &[0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0], 16);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD);
    for op in [0x0a, 0x2a, 0x35, 0x55, 0x88, 0x9e, 0xff] {
        let (c, _) = run(&mut d, &[op, 0, 0, 0, 0, 0, 0, 0, 0, 0], 512);
        assert_eq!(sense_of(&c), Sense::INVALID_OPCODE, "opcode {op:#x}");
    }
    let (c, _) = run(&mut d, &[0x4a, 0, 0, 0, 0x10, 0, 0, 0, 8, 0], 8);
    assert_eq!(sense_of(&c), Sense::INVALID_FIELD, "asynchronous GESN");
}

#[test]
fn random_cdbs_never_panic_or_overflow_the_buffer() {
    let img = Image::new("fuzz", 16);
    let mut d = drive(Some(&img));
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let ops = [
        0x00, 0x03, 0x12, 0x1a, 0x1b, 0x1e, 0x25, 0x28, 0x43, 0x46, 0x4a, 0x51, 0x5a, 0xa0, 0xa8,
        0xbb, 0xbd,
    ];
    for i in 0..20_000 {
        let len = (next() % 40) as usize;
        let mut cdb: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if let Some(op) = cdb.first_mut() {
            *op = ops[i % ops.len()];
        }
        let cap = (next() % 9000) as usize;
        let mut buf = vec![0u8; cap];
        let c = d.execute(&cdb, &mut buf);
        assert!(c.len <= cap);
        assert!(c.status == GOOD || c.sense.is_some());
        if i % 997 == 0 {
            let _ = d.change_media(Some(img.open()));
        }
    }
}
