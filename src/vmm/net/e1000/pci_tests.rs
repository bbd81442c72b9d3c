//! The PCI function: configuration space, BARs, the I/O window, and
//! frames both ways through the worker thread over a stream socket.

use std::io::{Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};

use super::regs::*;
use super::test_rig::{GSI, MAC, RX_BUFS, RX_RING, TX_BUFS, TX_RING, frame, memory_and_pin};
use super::*;
use crate::vmm::virtio::interrupt::IntxLines;

struct Nic {
    f: E1000,
    peer: UnixStream,
    mem: GuestMemory,
    lines: Arc<IntxLines>,
}

fn nic() -> Nic {
    let (ours, peer) = UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let tap = Tap::from_stream_fd(ours.into_raw_fd()).unwrap();
    let (mem, lines, irq) = memory_and_pin(4);
    let at = Placement {
        mmio: 0xc000_0000,
        io: 0xc040,
    };
    let stats = Arc::new(NetStats::default());
    let f = E1000::new(MAC, tap, mem.clone(), irq, at, stats, "e1000-test".into()).unwrap();
    Nic {
        f,
        peer,
        mem,
        lines,
    }
}

impl Nic {
    fn w(&mut self, off: u32, v: u32) {
        self.f.bar_write(0, u64::from(off), &v.to_le_bytes());
    }

    fn r(&mut self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.f.bar_read(0, u64::from(off), &mut b);
        u32::from_le_bytes(b)
    }

    /// Waits until `pred` holds (the worker runs on its own thread).
    fn wait(&mut self, what: &str, mut pred: impl FnMut(&mut Nic) -> bool) {
        let end = Instant::now() + Duration::from_secs(5);
        while !pred(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The status byte of receive descriptor `i`.
    fn rx_status(&self, i: u64) -> u8 {
        self.mem
            .read_obj(GuestAddress(RX_RING + 16 * i + 12))
            .unwrap()
    }

    /// A frame from the peer, as the stream carries it.
    fn peer_send(&mut self, f: &[u8]) {
        self.peer
            .write_all(&(f.len() as u32).to_be_bytes())
            .unwrap();
        self.peer.write_all(f).unwrap();
    }

    fn peer_recv(&mut self) -> Vec<u8> {
        let mut len = [0u8; 4];
        self.peer.read_exact(&mut len).unwrap();
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        self.peer.read_exact(&mut f).unwrap();
        f
    }
}

fn config(f: &E1000, reg: u16) -> u32 {
    f.read_config(reg)
}

#[test]
fn configuration_space_and_bars() {
    let mut n = nic();
    let f = &mut n.f;
    assert_eq!(config(f, 0x00), 0x100e_8086);
    assert_eq!(config(f, 0x08), 0x0200_0003);
    assert_eq!(config(f, 0x2c), 0x1100_1af4);
    assert_eq!(config(f, 0x3c), 1 << 8 | GSI);
    assert_eq!(config(f, 0x0c) & 0xff, 0x10, "cache line size");
    assert_eq!(config(f, 0x10), 0xc000_0000);
    assert_eq!(config(f, 0x14), 0xc041);
    assert_eq!(f.bar_at(0xc001_fffc), Some((0, 0x1fffc)));
    assert_eq!(f.bar_at(0xc002_0000), None);
    assert_eq!(f.io_bar_at(0xc044), Some((1, 4)));
    assert_eq!(f.io_bar_at(0xc080), None);
    // Sizing: all ones read back as the size masks; decoding nothing.
    f.write_config(0x10, 0xffff_ffff);
    f.write_config(0x14, 0xffff_ffff);
    assert_eq!(config(f, 0x10), 0xfffe_0000);
    assert_eq!(config(f, 0x14), 0xffff_ffc1);
    assert_eq!(f.io_bar_at(0xffc0), None);
    // Moved, and decoding off with the command register.
    f.write_config(0x10, 0xd000_0000);
    f.write_config(0x14, 0x1000);
    assert_eq!(f.bar_at(0xd000_0008), Some((0, 8)));
    assert_eq!(f.io_bar_at(0x1000), Some((1, 0)));
    f.write_config(0x04, 0);
    assert_eq!(f.bar_at(0xd000_0008), None);
    assert_eq!(f.io_bar_at(0x1000), None);
    // The status register shows a pending interrupt.
    f.write_config(0x04, 0x0006);
    n.w(IMS, ICR_LSC);
    n.w(ICS, ICR_LSC);
    assert_ne!(config(&n.f, 0x04) & (1 << 19), 0);
    assert!(n.lines.level(GSI));
    n.f.write_config(0x04, 0x0406);
    assert!(!n.lines.level(GSI), "INTx disabled");
}

#[test]
fn io_window_reaches_the_registers() {
    let mut n = nic();
    let io = |f: &mut E1000, off: u64, v: u32| f.bar_write(1, off, &v.to_le_bytes());
    let io_read = |f: &mut E1000, off: u64| {
        let mut b = [0u8; 4];
        f.bar_read(1, off, &mut b);
        u32::from_le_bytes(b)
    };
    io(&mut n.f, 0, STATUS);
    assert_eq!(io_read(&mut n.f, 0), STATUS);
    let status = io_read(&mut n.f, 4);
    assert_eq!(status, n.r(STATUS));
    io(&mut n.f, 0, IMS);
    io(&mut n.f, 4, ICR_RXT0);
    assert_eq!(n.r(IMS), ICR_RXT0);
    // Linux resets an 82540EM through the I/O window.
    io(&mut n.f, 0, CTRL);
    io(&mut n.f, 4, CTRL_SLU | CTRL_RST);
    assert_eq!(n.r(IMS), 0);
    // Partial reads see the bytes of the dword.
    let mut b = [0u8; 2];
    n.f.bar_read(0, u64::from(RA) + 2, &mut b);
    assert_eq!(b, [MAC[2], MAC[3]]);
}

#[test]
fn frames_both_ways_through_the_worker() {
    let mut n = nic();
    n.w(IMS, ICR_RXT0 | ICR_TXDW | ICR_RXO);
    // Transmit: one legacy descriptor.
    let out = frame([0xff; 6], 80);
    n.mem.write_slice(&out, GuestAddress(TX_BUFS)).unwrap();
    let d = super::test_rig::legacy(TX_BUFS, 80, super::test_rig::EOP | super::test_rig::RS);
    n.mem.write_slice(&d, GuestAddress(TX_RING)).unwrap();
    n.w(TDBAL, TX_RING as u32);
    n.w(TDLEN, 8 * 16);
    n.w(TCTL, TCTL_EN);
    n.w(TDT, 1);
    assert_eq!(n.peer_recv(), out);
    n.wait("TXDW", |n| n.lines.level(GSI));
    assert_eq!(n.r(ICR) & ICR_TXDW, ICR_TXDW);
    // Receive: a ring of 8 with 2 free descriptors.
    for i in 0..8u64 {
        let buf = (RX_BUFS + 0x1000 * i).to_le_bytes();
        n.mem
            .write_slice(&buf, GuestAddress(RX_RING + 16 * i))
            .unwrap();
    }
    n.w(RDBAL, RX_RING as u32);
    n.w(RDLEN, 8 * 16);
    n.w(RCTL, RCTL_EN | RCTL_SECRC);
    n.w(RDT, 2);
    let frames: Vec<Vec<u8>> = (0..4).map(|i| frame(MAC, 64 + i)).collect();
    for f in &frames {
        n.peer_send(f);
    }
    n.wait("two frames", |n| n.rx_status(1) & 1 == 1);
    // The ring is full: RXO, and the others wait instead of being lost.
    n.wait("RXO", |n| n.r(ICR) & ICR_RXO != 0);
    assert_eq!(n.rx_status(2), 0);
    assert_eq!(n.r(RNBC), 1);
    n.w(RDT, 6);
    n.wait("the rest", |n| n.rx_status(3) & 1 == 1);
    for (i, f) in frames.iter().enumerate() {
        let mut got = vec![0u8; f.len()];
        n.mem
            .read_slice(&mut got, GuestAddress(RX_BUFS + 0x1000 * i as u64))
            .unwrap();
        assert_eq!(&got, f, "frame {i}");
    }
    assert_eq!(n.r(GPRC), 4);
    assert_eq!(n.rx_status(4), 0);
}
