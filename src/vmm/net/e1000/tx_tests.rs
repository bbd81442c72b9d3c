//! The transmit ring driven with legacy, context and data descriptors,
//! and with garbage.

use vm_memory::{Bytes, GuestAddress};

use super::super::regs::*;
use super::super::test_rig::{
    DEXT, EOP, MEM, RS, Rig, TSE, TX_BUFS, TX_RING, VLE, frame, legacy, rig,
};
use super::*;

fn send(r: &mut Rig, budget: usize) -> Vec<Vec<u8>> {
    let mut out = Outbox::default();
    process(&mut r.dev, &r.mem, &mut out, budget);
    out.frames().map(<[u8]>::to_vec).collect()
}

/// Puts `bytes` in guest memory at `at`.
fn put(r: &Rig, at: u64, bytes: &[u8]) {
    r.mem.write_slice(bytes, GuestAddress(at)).unwrap();
}

#[test]
fn legacy_descriptors_make_a_frame() {
    let mut r = rig();
    r.tx_ring(8);
    r.dev.write(IMS, ICR_TXDW);
    let f = frame([0xff; 6], 100);
    put(&r, TX_BUFS, &f[..40]);
    put(&r, TX_BUFS + 0x1000, &f[40..]);
    r.tx_desc(0, legacy(TX_BUFS, 40, 0));
    r.tx_desc(1, legacy(TX_BUFS + 0x1000, 60, EOP | RS));
    assert!(r.dev.write(TDT, 2));
    assert_eq!(send(&mut r, 64), vec![f]);
    assert_eq!(r.dev.read(TDH), 2);
    assert_eq!(r.tx_status(0) & 1, 0, "no RS: no write-back");
    assert_eq!(r.tx_status(1) & 1, 1, "DD");
    assert!(r.irq());
    assert_eq!(r.dev.read(ICR), ICR_TXDW | ICR_TXQE);
    assert_eq!(r.dev.read(TPT), 1);
    assert_eq!(r.dev.read(GPTC), 1);
    assert_eq!(r.dev.read(BPTC), 1);
    assert_eq!(r.dev.read(GOTCL), 104);
    assert_eq!(r.dev.read(PTC64 + 4), 1, "65-127 bytes");
}

#[test]
fn budget_and_wrap() {
    let mut r = rig();
    r.tx_ring(8);
    let f = frame([2, 0, 0, 0, 0, 1], 60);
    put(&r, TX_BUFS, &f);
    for i in 0..8 {
        r.tx_desc(i, legacy(TX_BUFS, 60, EOP | RS));
    }
    r.dev.write(TDH, 6);
    r.dev.write(TDT, 4);
    let mut out = Outbox::default();
    assert!(process(&mut r.dev, &r.mem, &mut out, 3), "more waiting");
    assert_eq!(r.dev.read(TDH), 1);
    assert!(!process(&mut r.dev, &r.mem, &mut out, 64));
    assert_eq!(out.frames().count(), 6);
    assert_eq!(r.dev.read(TDH), 4);
}

/// A UDP/IPv4 packet (checksums zero).
fn udp_packet() -> Vec<u8> {
    let mut p = frame([2, 0, 0, 0, 0, 1], 14);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 36, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2,
    ];
    ip.extend_from_slice(&[0x13, 0x88, 0, 7, 0, 16, 0, 0]);
    ip.extend_from_slice(b"checksum");
    p.extend_from_slice(&ip);
    p
}

fn context(ctx: &[u8; 8], tucmd: u32, hdr_len: u8, mss: u16) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(ctx);
    d[8..12].copy_from_slice(&tucmd.to_le_bytes());
    d[11] |= DEXT;
    d[13] = hdr_len;
    d[14..].copy_from_slice(&mss.to_le_bytes());
    d
}

fn data(addr: u64, len: u32, cmd: u8, popts: u8) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&addr.to_le_bytes());
    d[8..12].copy_from_slice(&(len | 1 << 20).to_le_bytes());
    d[11] = cmd | DEXT;
    d[13] = popts;
    d
}

#[test]
fn context_and_data_descriptors_insert_checksums() {
    let mut r = rig();
    r.tx_ring(8);
    let p = udp_packet();
    put(&r, TX_BUFS, &p);
    // IP checksum over 14..=33 at 24, UDP checksum from 34 at 40.
    r.tx_desc(0, context(&[14, 24, 33, 0, 34, 40, 0, 0], 1 << 25, 0, 0));
    r.tx_desc(1, data(TX_BUFS, 20, 0, POPTS_IXSM_TXSM));
    r.tx_desc(2, data(TX_BUFS + 20, p.len() as u32 - 20, EOP | RS, 0));
    r.dev.write(TDT, 3);
    let frames = send(&mut r, 64);
    let mut want = p.clone();
    let ctx = Context::parse(&{
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&[14, 24, 33, 0, 34, 40, 0, 0]);
        d
    });
    offload::checksum(&mut want, &ctx, POPTS_IXSM_TXSM).unwrap();
    assert_eq!(frames, vec![want.clone()]);
    assert_ne!(&want[24..26], &[0, 0]);
    assert_ne!(&want[40..42], &[0, 0]);
    // The context stays for the next packet; POPTS 0 asks for nothing.
    r.tx_desc(3, data(TX_BUFS, p.len() as u32, EOP, 0));
    r.dev.write(TDT, 4);
    assert_eq!(send(&mut r, 64), vec![p]);
}

const POPTS_IXSM_TXSM: u8 = offload::POPTS_IXSM | offload::POPTS_TXSM;

#[test]
fn tso_descriptors_make_segments() {
    let mut r = rig();
    r.tx_ring(8);
    // Ethernet, IPv4, TCP headers (54 bytes), 3000 bytes of payload.
    let mut p = frame([2, 0, 0, 0, 0, 1], 14);
    p[12..14].copy_from_slice(&[0x08, 0x00]);
    p.extend_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2,
    ]);
    let mut tcp = [0u8; 20];
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;
    p.extend_from_slice(&tcp);
    p.extend((0..3000u32).map(|i| i as u8));
    put(&r, TX_BUFS, &p);
    let tucmd = 1 << 24 | 1 << 25 | 1 << 26 | 3000;
    r.tx_desc(0, context(&[14, 24, 33, 0, 34, 50, 0, 0], tucmd, 54, 1000));
    r.tx_desc(1, data(TX_BUFS, 54, TSE, POPTS_IXSM_TXSM));
    r.tx_desc(2, data(TX_BUFS + 54, 3000, TSE | EOP | RS, 0));
    r.dev.write(TDT, 3);
    let frames = send(&mut r, 64);
    assert_eq!(frames.len(), 3);
    assert!(frames.iter().all(|f| f.len() == 54 + 1000));
    assert_eq!(r.dev.read(TSCTC), 1);
    assert_eq!(r.dev.read(TPT), 3);
    assert_eq!(r.tx_status(2) & 1, 1);
}

#[test]
fn vlan_tag_inserted_when_enabled() {
    let mut r = rig();
    r.tx_ring(8);
    let f = frame([2, 0, 0, 0, 0, 1], 60);
    put(&r, TX_BUFS, &f);
    let mut d = legacy(TX_BUFS, 60, EOP | VLE);
    d[14..].copy_from_slice(&5u16.to_le_bytes());
    r.tx_desc(0, d);
    r.tx_desc(1, d);
    r.dev.write(TDT, 1);
    assert_eq!(send(&mut r, 64), vec![f.clone()], "CTRL.VME off");
    let v = r.dev.read(CTRL) | CTRL_VME;
    r.dev.write(CTRL, v);
    r.dev.write(TDT, 2);
    let out = send(&mut r, 64);
    assert_eq!(&out[0][12..16], &[0x81, 0x00, 0x00, 0x05]);
    assert_eq!(&out[0][16..], &f[12..]);
}

#[test]
fn nothing_moves_while_disabled() {
    let mut r = rig();
    r.tx_ring(8);
    let f = frame([2, 0, 0, 0, 0, 1], 60);
    put(&r, TX_BUFS, &f);
    r.tx_desc(0, legacy(TX_BUFS, 60, EOP | RS));
    r.dev.write(TCTL, 0);
    r.dev.write(TDT, 1);
    assert!(send(&mut r, 64).is_empty());
    r.dev.write(TCTL, TCTL_EN);
    r.dev.set_command(0);
    assert!(send(&mut r, 64).is_empty(), "no bus mastering");
    assert_eq!(r.dev.read(TDH), 0);
    r.dev.set_command(super::super::device::PCI_CMD_BUS_MASTER);
    assert_eq!(send(&mut r, 64).len(), 1);
}

#[test]
fn garbage_is_counted_never_followed() {
    let mut r = rig();
    r.tx_ring(8);
    let f = frame([2, 0, 0, 0, 0, 1], 60);
    put(&r, TX_BUFS, &f);
    // A buffer outside guest memory, one whose end is, an unknown
    // descriptor type, a buffer longer than any packet, an address that
    // wraps: each packet dropped, every descriptor consumed.
    r.tx_desc(0, legacy(MEM + 0x1000, 60, EOP | RS));
    r.tx_desc(1, legacy(MEM - 10, 60, EOP | RS));
    r.tx_desc(2, {
        let mut d = data(TX_BUFS, 60, EOP, 0);
        d[10] = 0x70;
        d
    });
    r.tx_desc(3, data(TX_BUFS, 0xf_ffff, 0, 0));
    r.tx_desc(4, data(TX_BUFS, 0xf_ffff, 0, 0));
    r.tx_desc(5, data(u64::MAX - 4, 60, EOP | RS, 0));
    r.tx_desc(6, legacy(TX_BUFS, 60, EOP | RS));
    r.dev.write(TDT, 7);
    assert_eq!(send(&mut r, 64), vec![f.clone()], "only the good one");
    assert_eq!(r.dev.read(TDH), 7);
    assert_eq!(r.dev.stats.tx_drops.get(), 4);
    assert_eq!(r.tx_status(0) & 1, 1, "written back all the same");
    // The ring itself outside guest memory: descriptors unreadable.
    r.dev.write(TDBAL, 0xffff_fff0);
    r.dev.write(TDBAH, 0xffff_ffff);
    r.dev.write(TDH, 0);
    r.dev.write(TDT, 3);
    assert!(send(&mut r, 64).is_empty());
    assert_eq!(r.dev.read(TDH), 3);
    // A tail past the ring: nothing is taken.
    r.dev.write(TDBAL, TX_RING as u32);
    r.dev.write(TDBAH, 0);
    r.dev.write(TDT, 9);
    assert!(send(&mut r, 64).is_empty());
    assert_eq!(r.dev.read(TDH), 3);
}
