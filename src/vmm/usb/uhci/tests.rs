//! The UHCI driven as a driver drives it: a frame list, queue heads and
//! TDs in a small guest memory, run at chosen instants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::regs::portsc::{PE, RESET};
use super::regs::*;
use super::schedule::{
    LINK_DEPTH_FIRST as DEPTH, LINK_QH, LINK_TERMINATE as T, PID_IN as IN, PID_OUT as OUT,
    PID_SETUP as SETUP, TD_ACTIVE as ACTIVE, TD_ERROR_COUNT as CERR3, TD_IOC as IOC, TD_NAK as NAK,
    TD_STALLED as STALLED, TD_TIMEOUT as TIMEOUT,
};
use super::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::usb::hid::HidKind;
use crate::vmm::usb::packet::PacketDevice;
use crate::vmm::usb::testing;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};
use vm_memory::{Bytes, GuestAddress};

const FRAME_LIST: u32 = 0x1000;
const QH: u32 = 0x2000;
const QH2: u32 = 0x2010;
const TDS: u32 = 0x3000;
const BUFFER: u32 = 0x4000;
const GSI: u32 = 18;

/// A TD token: PID, device, endpoint, length.
fn token(pid: u32, addr: u32, ep: u32, len: u32) -> u32 {
    let max = len.wrapping_sub(1) & 0x7ff;
    max << 21 | ep << 15 | addr << 8 | pid
}

struct Driver {
    mem: GuestMemory,
    lines: Arc<IntxLines>,
    uhci: Uhci,
    devices: Vec<Option<PacketDevice>>,
    t0: Instant,
    ms: u64,
}

impl Driver {
    /// A controller with a `kind` device on port 1, reset, enabled, run.
    fn new(kind: HidKind) -> Driver {
        let mem = testing::memory();
        let lines = Arc::new(IntxLines::new(None));
        let mut uhci = Uhci::new(IntxLine {
            lines: lines.clone(),
            gsi: GSI,
            slot: 7,
        });
        let mut dev = PacketDevice::new(kind);
        uhci.attach(0, &mut dev);
        let mut d = Driver {
            mem,
            lines,
            uhci,
            devices: vec![Some(dev), None],
            t0: Instant::now(),
            ms: 0,
        };
        for i in 0..1024 {
            d.put(FRAME_LIST + 4 * i, &[T]);
        }
        d.write(PORTSC1, u32::from(RESET));
        d.write(PORTSC1, 0);
        d.write(PORTSC1, u32::from(PE));
        d.write(FLBASEADD, FRAME_LIST);
        d.write(USBINTR, 0xf);
        d.write(USBCMD, u32::from(CMD_RUN));
        d
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn read(&self, off: u64) -> u32 {
        self.uhci.read(off, 2, self.now())
    }

    fn write(&mut self, off: u64, v: u32) {
        let now = self.now();
        let size = if off == FLBASEADD { 4 } else { 2 };
        self.uhci.write(off, size, v, now, &mut self.devices);
    }

    fn wait(&mut self, ms: u64) {
        self.ms += ms;
        let now = self.now();
        self.uhci.run(now, &self.mem, &mut self.devices);
    }

    fn put(&self, addr: u32, dwords: &[u32]) {
        testing::put(&self.mem, addr, dwords);
    }

    fn get(&self, addr: u32) -> u32 {
        testing::get(&self.mem, addr)
    }

    /// An active TD: `link`, extra control bits, its token (see `token`).
    fn td(&self, at: u32, link: u32, control: u32, token: u32, buf: u32) {
        self.put(at, &[link, ACTIVE | CERR3 | control, token, buf]);
    }

    /// Every frame list entry points to `link`.
    fn schedule(&self, link: u32) {
        for i in 0..1024 {
            self.put(FRAME_LIST + 4 * i, &[link]);
        }
    }
}

#[test]
fn a_control_read_in_eight_byte_packets() {
    let mut d = Driver::new(HidKind::Tablet);
    let setup = testing::setup(0x80, 6, 0x0100, 18).to_u64();
    d.put(BUFFER, &[setup as u32, (setup >> 32) as u32]);
    let td = |i: u32| TDS + 0x10 * i;
    d.td(td(0), td(1) | DEPTH, 0, token(SETUP, 0, 0, 8), BUFFER);
    for i in 0..3 {
        let buf = BUFFER + 0x100 + 8 * i;
        d.td(td(1 + i), td(2 + i) | DEPTH, 0, token(IN, 0, 0, 8), buf);
    }
    d.td(td(4), T, IOC, token(OUT, 0, 0, 0), 0);
    d.put(QH, &[T, td(0)]);
    d.schedule(QH | LINK_QH);
    d.wait(1);
    for i in 0..5 {
        assert_eq!(d.get(td(i) + 4) & ACTIVE, 0, "TD {i}");
    }
    // Actual lengths, n-1 encoded: 8, 8, 8, 2, none.
    let lens: Vec<u32> = (0..5).map(|i| d.get(td(i) + 4) & 0x7ff).collect();
    assert_eq!(lens, vec![7, 7, 7, 1, 0x7ff]);
    assert_eq!(d.get(QH + 4), T, "the queue ran dry");
    let mut desc = [0u8; 18];
    d.mem
        .read_slice(&mut desc, GuestAddress(u64::from(BUFFER + 0x100)))
        .unwrap();
    assert_eq!(&desc[..4], &[18, 1, 0x00, 0x01], "USB 1.0 at full speed");
    assert_eq!(desc[7], 8);
    assert_ne!(d.read(USBSTS) & u32::from(STS_USBINT), 0);
    assert!(d.lines.level(GSI));
    d.write(USBSTS, u32::from(STS_USBINT));
    assert!(!d.lines.level(GSI));
}

#[test]
fn an_interrupt_td_waits_for_a_report() {
    let mut d = Driver::new(HidKind::Keyboard);
    d.td(TDS, T, IOC, token(IN, 0, 1, 8), BUFFER);
    d.put(QH, &[T, TDS]);
    d.schedule(QH | LINK_QH);
    d.wait(3);
    let c = d.get(TDS + 4);
    assert_eq!(c & (ACTIVE | NAK), ACTIVE | NAK);
    assert_eq!(d.read(USBSTS) & u32::from(STS_USBINT), 0);
    d.devices[0]
        .as_mut()
        .unwrap()
        .hid_mut()
        .key_usage(0x05, true);
    d.wait(1);
    let c = d.get(TDS + 4);
    assert_eq!(c & (ACTIVE | NAK), 0);
    assert_eq!(c & 0x7ff, 7);
    assert_eq!(d.get(BUFFER) >> 16 & 0xff, 0x05);
    assert_ne!(d.read(USBSTS) & u32::from(STS_USBINT), 0);
    // FRNUM moved on with the frames.
    assert_eq!(d.read(FRNUM), 4);
}

#[test]
fn stalls_timeouts_and_bad_tds() {
    let mut d = Driver::new(HidKind::Mouse);
    // An OUT to the interrupt endpoint stalls; nobody is at address 9.
    d.td(TDS, TDS + 0x10, 0, token(OUT, 0, 1, 4), BUFFER);
    d.td(TDS + 0x10, T, 0, token(IN, 9, 0, 8), BUFFER);
    d.schedule(TDS);
    d.wait(1);
    assert_eq!(d.get(TDS + 4) & (ACTIVE | STALLED), STALLED);
    let c = d.get(TDS + 0x14);
    assert_eq!(c & (ACTIVE | TIMEOUT | CERR3), TIMEOUT);
    assert_ne!(d.read(USBSTS) & u32::from(STS_ERROR), 0);
    assert!(d.lines.level(GSI), "USBERRINT is enabled");

    // A PID the controller does not know: process error, halted.
    let mut d = Driver::new(HidKind::Mouse);
    d.td(TDS, T, 0, token(0x55, 0, 0, 8), BUFFER);
    d.schedule(TDS);
    d.wait(1);
    let sts = d.read(USBSTS);
    assert_ne!(sts & u32::from(STS_PROCESS_ERROR | STS_HALTED), 0);
    assert_eq!(d.read(USBCMD) & u32::from(CMD_RUN), 0);

    // A frame list outside guest memory: host system error.
    let mut d = Driver::new(HidKind::Mouse);
    d.write(USBCMD, 0);
    d.write(FLBASEADD, 0x8000_0000);
    d.write(USBCMD, u32::from(CMD_RUN));
    d.wait(1);
    assert_ne!(d.read(USBSTS) & u32::from(STS_HOST_ERROR), 0);
    assert!(d.lines.level(GSI));
}

#[test]
fn rings_of_queue_heads_end_the_frame() {
    let mut d = Driver::new(HidKind::Keyboard);
    // Two QHs pointing to each other, each with a NAKing TD that links
    // back to itself.
    d.td(TDS, TDS | DEPTH, 0, token(IN, 0, 1, 8), BUFFER);
    d.put(QH, &[QH2 | LINK_QH, TDS]);
    d.put(QH2, &[QH | LINK_QH, TDS]);
    d.schedule(QH | LINK_QH);
    d.wait(2);
    assert_ne!(d.get(TDS + 4) & ACTIVE, 0);
    assert_eq!(d.read(USBSTS) & u32::from(STS_HOST_ERROR | STS_HALTED), 0);
    assert!(d.uhci.port_enabled(0) && d.uhci.connected(0));
}
