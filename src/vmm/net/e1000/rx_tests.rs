//! The receive ring: placement, write-back, filtering, interrupts, a
//! full ring and garbage.

use super::super::regs::*;
use super::super::test_rig::{MAC, MEM, Rig, frame, rig};
use super::*;

fn put(r: &mut Rig, f: &[u8]) -> Delivery {
    let mut scratch = Vec::new();
    deliver(&mut r.dev, &r.mem, f, &mut scratch)
}

fn fcs(f: &[u8]) -> [u8; 4] {
    let mut c = flate2::Crc::new();
    c.update(f);
    c.sum().to_le_bytes()
}

#[test]
fn short_frame_is_padded_and_written_back() {
    let mut r = rig();
    r.rx_ring(8, RCTL_BAM);
    r.dev.write(IMS, ICR_RXT0);
    let f = frame(MAC, 42);
    assert_eq!(put(&mut r, &f), Delivery::Delivered);
    let (len, status, errors, _) = r.rx_desc(0);
    assert_eq!(len, 64, "60 bytes and the FCS");
    assert_eq!(status, STA_DD | STA_EOP | STA_IXSM);
    assert_eq!(errors, 0);
    let mut padded = f.clone();
    padded.resize(60, 0);
    let got = r.rx_buf(0, 64);
    assert_eq!(&got[..60], &padded[..]);
    assert_eq!(&got[60..], &fcs(&padded));
    assert_eq!(r.dev.read(RDH), 1);
    assert!(r.irq());
    assert_eq!(r.dev.read(ICR) & ICR_RXT0, ICR_RXT0);
    assert_eq!(r.dev.read(GPRC), 1);
    assert_eq!(r.dev.read(TPR), 1);
    assert_eq!(r.dev.read(GORCL), 64);
    assert_eq!(r.dev.read(PRC64), 1);
    // With SECRC the FCS is left out.
    let v = r.dev.read(RCTL) | RCTL_SECRC;
    r.dev.write(RCTL, v);
    assert_eq!(put(&mut r, &frame(MAC, 200)), Delivery::Delivered);
    assert_eq!(r.rx_desc(1).0, 200);
}

#[test]
fn filters_decide() {
    let mut r = rig();
    r.rx_ring(8, 0);
    let other = [0x52, 0x54, 0, 0, 0, 9];
    assert_eq!(put(&mut r, &frame(other, 60)), Delivery::Filtered);
    assert_eq!(put(&mut r, &frame([0xff; 6], 60)), Delivery::Filtered);
    assert_eq!(r.dev.read(RDH), 0, "nothing taken");
    r.dev.write(RCTL, RCTL_EN | RCTL_BAM | RCTL_UPE);
    assert_eq!(put(&mut r, &frame([0xff; 6], 60)), Delivery::Delivered);
    assert_eq!(put(&mut r, &frame(other, 60)), Delivery::Delivered);
    assert_eq!(r.dev.read(BPRC), 1);
    r.dev.write(RCTL, RCTL_EN | RCTL_MPE);
    assert_eq!(
        put(&mut r, &frame([0x01, 0, 0x5e, 0, 0, 1], 60)),
        Delivery::Delivered
    );
    assert_eq!(r.dev.read(MPRC), 1);
}

#[test]
fn long_frame_spans_descriptors() {
    let mut r = rig();
    // 256-byte buffers.
    r.rx_ring(8, 3 << RCTL_BSIZE_SHIFT | RCTL_SECRC);
    let f = frame(MAC, 600);
    assert_eq!(put(&mut r, &f), Delivery::Delivered);
    let lens: Vec<(u16, u8)> = (0..3).map(|i| (r.rx_desc(i).0, r.rx_desc(i).1)).collect();
    assert_eq!(
        lens,
        [
            (256, STA_DD | STA_IXSM),
            (256, STA_DD | STA_IXSM),
            (88, STA_DD | STA_IXSM | STA_EOP)
        ]
    );
    let mut got = Vec::new();
    for (i, n) in [(0, 256), (1, 256), (2, 88)] {
        got.extend(r.rx_buf(i, n));
    }
    assert_eq!(got, f);
    assert_eq!(r.dev.read(RDH), 3);
}

#[test]
fn buffer_sizes() {
    assert_eq!(buffer_size(0), 2048);
    assert_eq!(buffer_size(1 << RCTL_BSIZE_SHIFT), 1024);
    assert_eq!(buffer_size(2 << RCTL_BSIZE_SHIFT), 512);
    assert_eq!(buffer_size(3 << RCTL_BSIZE_SHIFT), 256);
    assert_eq!(buffer_size(1 << RCTL_BSIZE_SHIFT | RCTL_BSEX), 16384);
    assert_eq!(buffer_size(2 << RCTL_BSIZE_SHIFT | RCTL_BSEX), 8192);
    assert_eq!(buffer_size(3 << RCTL_BSIZE_SHIFT | RCTL_BSEX), 4096);
}

#[test]
fn full_ring_keeps_the_frame_and_threshold_interrupt() {
    let mut r = rig();
    // 8 descriptors, 7 given; RDMTS 1/4: RXDMT0 once 2 or fewer are left.
    r.rx_ring(8, 1 << RCTL_RDMTS_SHIFT);
    let f = frame(MAC, 60);
    for i in 0..7 {
        assert_eq!(put(&mut r, &f), Delivery::Delivered, "frame {i}");
        let dmt = r.dev.read(ICR) & ICR_RXDMT0 != 0;
        assert_eq!(dmt, i >= 4, "RXDMT0 after frame {i}");
    }
    assert_eq!(put(&mut r, &f), Delivery::NoRoom);
    assert_eq!(r.dev.read(RDH), 7);
    // The guest gives two back.
    r.dev.write(RDT, 1);
    assert_eq!(put(&mut r, &f), Delivery::Delivered);
    assert_eq!(r.dev.read(RDH), 0);
    // A frame needing more descriptors than are free waits whole.
    r.dev.write(RCTL, RCTL_EN | 3 << RCTL_BSIZE_SHIFT);
    assert_eq!(put(&mut r, &frame(MAC, 600)), Delivery::NoRoom);
    assert_eq!(r.dev.read(RDH), 0);
}

#[test]
fn nothing_arrives_while_disabled() {
    let mut r = rig();
    r.rx_ring(8, 0);
    r.dev.write(RCTL, 0);
    assert_eq!(put(&mut r, &frame(MAC, 60)), Delivery::NoRoom);
    r.dev.write(RCTL, RCTL_EN);
    r.dev.set_command(0);
    assert_eq!(put(&mut r, &frame(MAC, 60)), Delivery::NoRoom);
    assert_eq!(r.dev.read(RDH), 0);
}

#[test]
fn vlan_tag_stripped_into_the_descriptor() {
    let mut r = rig();
    r.rx_ring(8, RCTL_SECRC);
    let mut f = frame(MAC, 100);
    f.splice(12..12, [0x81, 0x00, 0x20, 0x07]);
    assert_eq!(put(&mut r, &f), Delivery::Delivered, "tag kept");
    assert_eq!(r.rx_desc(0).0, 104);
    let v = r.dev.read(CTRL) | CTRL_VME;
    r.dev.write(CTRL, v);
    assert_eq!(put(&mut r, &f), Delivery::Delivered);
    let (len, status, _, special) = r.rx_desc(1);
    assert_eq!((len, special), (100, 0x2007));
    assert_ne!(status & STA_VP, 0);
    assert_eq!(r.rx_buf(1, 100), frame(MAC, 100));
}

#[test]
fn oversized_frames_are_dropped_unless_long_frames_are_on() {
    let mut r = rig();
    r.rx_ring(8, 0);
    let big = frame(MAC, 2000);
    assert_eq!(put(&mut r, &big), Delivery::Dropped);
    assert_eq!(r.dev.read(ROC), 1);
    r.dev.write(RCTL, RCTL_EN | RCTL_LPE);
    assert_eq!(put(&mut r, &big), Delivery::Delivered);
    assert_eq!(put(&mut r, &frame(MAC, 20000)), Delivery::Dropped);
    assert_eq!(r.dev.stats.rx_drops.get(), 2);
}

#[test]
fn garbage_rings_and_buffers() {
    let mut r = rig();
    r.rx_ring(8, 0);
    // A buffer outside guest memory: the descriptor says RXE.
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&(MEM - 8).to_le_bytes());
    r.mem
        .write_slice(&d, vm_memory::GuestAddress(super::super::test_rig::RX_RING))
        .unwrap();
    assert_eq!(put(&mut r, &frame(MAC, 60)), Delivery::Dropped);
    let (_, status, errors, _) = r.rx_desc(0);
    assert_eq!((status & STA_DD, errors), (STA_DD, ERR_RXE));
    assert_eq!(r.dev.stats.rx_drops.get(), 1);
    // The ring outside guest memory.
    r.dev.write(RDBAL, 0xffff_fff0);
    r.dev.write(RDBAH, 0xffff_ffff);
    assert_eq!(put(&mut r, &frame(MAC, 60)), Delivery::Dropped);
    // Descriptors without buffers are handed back, the frame goes on.
    r.rx_ring(8, 0);
    r.mem
        .write_slice(
            &[0u8; 16],
            vm_memory::GuestAddress(super::super::test_rig::RX_RING),
        )
        .unwrap();
    assert_eq!(put(&mut r, &frame(MAC, 60)), Delivery::Delivered);
    assert_eq!(r.rx_desc(0), (0, STA_DD, 0, 0));
    assert_eq!(r.rx_desc(1).1, STA_DD | STA_EOP | STA_IXSM);
}
