//! The EHCI driven as a driver drives it: registers, then queue heads
//! and qTDs in a small guest memory, run at chosen instants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress};

use super::queue::{endpoint, token};
use super::regs::{portsc, *};
use super::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::usb::hid::HidKind;
use crate::vmm::usb::packet::PacketDevice;
use crate::vmm::usb::testing;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};

const FRAME_LIST: u32 = 0x1000;
const HEAD_QH: u32 = 0x2000;
const CONTROL_QH: u32 = 0x2040;
const INTERRUPT_QH: u32 = 0x2080;
const QTDS: u32 = 0x3000;
const BUFFER: u32 = 0x4000;
const REPORT: u32 = 0x5000;
const GSI: u32 = 21;

const OP: u64 = CAP_LENGTH;
const T: u32 = 1;

fn portsc_reg(i: u64) -> u64 {
    OP + PORTSC0 + 4 * i
}

/// A driver of a controller without companions (devices attach to it).
struct Driver {
    mem: GuestMemory,
    lines: Arc<IntxLines>,
    ehci: Ehci,
    devices: Vec<Option<PacketDevice>>,
    t0: Instant,
    ms: u64,
}

impl Driver {
    fn new(kinds: &[HidKind]) -> Driver {
        let mem = testing::memory();
        let lines = Arc::new(IntxLines::new(None));
        let irq = IntxLine {
            lines: lines.clone(),
            gsi: GSI,
            slot: 6,
        };
        let mut ehci = Ehci::new(irq, false);
        let mut devices: Vec<Option<PacketDevice>> = (0..PORTS).map(|_| None).collect();
        for (i, k) in kinds.iter().enumerate() {
            let mut d = PacketDevice::new(*k);
            ehci.attach(i, &mut d);
            devices[i] = Some(d);
        }
        Driver {
            mem,
            lines,
            ehci,
            devices,
            t0: Instant::now(),
            ms: 0,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.ms)
    }

    fn read(&self, off: u64) -> u32 {
        self.ehci.read(off, self.now())
    }

    fn write(&mut self, off: u64, v: u32) {
        let now = self.now();
        self.ehci.write(off, v, now, &mut self.devices);
    }

    /// Lets `ms` milliseconds pass and runs what is due.
    fn wait(&mut self, ms: u64) {
        self.ms += ms;
        let now = self.now();
        self.ehci.run(now, &self.mem, &mut self.devices);
    }

    fn put(&self, addr: u32, dwords: &[u32]) {
        testing::put(&self.mem, addr, dwords);
    }

    fn get(&self, addr: u32) -> u32 {
        testing::get(&self.mem, addr)
    }

    /// A queue head for endpoint `ep` of device `address` whose overlay
    /// leads to `first`.
    fn qh(&self, at: u32, next: u32, address: u32, ep: u32, smask: u32, first: u32) {
        let dtc = if ep == 0 { endpoint::DTC } else { 0 };
        let chars = address | ep << 8 | 2 << 12 | dtc | 64 << 16;
        self.put(
            at,
            &[next, chars, 1 << 30 | smask, 0, first, T, 0, 0, 0, 0, 0, 0],
        );
    }

    /// A qTD: PID (0 OUT, 1 IN, 2 SETUP), length, token `flags` (toggle,
    /// IOC), buffer.
    fn qtd(&self, at: u32, next: u32, pid: u32, len: u32, flags: u32, buf: u32) {
        let t = len << 16 | pid << 8 | token::ACTIVE | 3 << 10 | flags;
        self.put(at, &[next, T, t, buf, (buf & !0xfff) + 0x1000, 0, 0, 0]);
    }

    fn setup_packet(&self, at: u32, rt: u8, req: u8, value: u16, len: u16) {
        let s = testing::setup(rt, req, value, len).to_u64();
        self.put(at, &[s as u32, (s >> 32) as u32]);
    }

    /// Resets, points the schedules at the structures, runs, routes the
    /// ports, enables interrupts.
    fn start(&mut self) {
        self.write(OP + USBCMD, CMD_HCRESET);
        // The reset disconnected the ports; the devices come back (the
        // set in usb/ich9.rs does this for the VMM).
        for (i, d) in self.devices.iter_mut().enumerate() {
            if let Some(d) = d {
                self.ehci.attach(i, d);
            }
        }
        // The head of the asynchronous ring: a halted dummy QH.
        self.put(
            HEAD_QH,
            &[
                HEAD_QH | 2,
                1 << 15,
                0,
                0,
                T,
                T,
                token::HALTED,
                0,
                0,
                0,
                0,
                0,
            ],
        );
        for i in 0..1024 {
            self.put(FRAME_LIST + 4 * i, &[T]);
        }
        self.write(OP + PERIODICLISTBASE, FRAME_LIST);
        self.write(OP + ASYNCLISTADDR, HEAD_QH);
        self.write(OP + USBINTR, STS_CAUSES);
        self.write(OP + USBCMD, 8 << 16 | CMD_RUN | CMD_ASE | CMD_PSE);
        self.write(OP + CONFIGFLAG, 1);
    }

    /// Resets port `i` as SeaBIOS does.
    fn reset_port(&mut self, i: u64) {
        let v = self.read(portsc_reg(i));
        self.write(portsc_reg(i), (v & !portsc::PED) | portsc::RESET);
        let v = self.read(portsc_reg(i));
        self.write(portsc_reg(i), v & !portsc::RESET);
    }

    /// A control transfer to `address` through the asynchronous
    /// schedule: SETUP, an IN data stage of `len` (if any), status.
    /// Returns the qTD tokens.
    fn control_in(&mut self, address: u32, rt: u8, req: u8, value: u16, len: u16) -> Vec<u32> {
        self.setup_packet(BUFFER, rt, req, value, len);
        let (setup, data, status) = (QTDS, QTDS + 0x20, QTDS + 0x40);
        let after_setup = if len > 0 { data } else { status };
        self.qtd(setup, after_setup, 2, 8, 0, BUFFER);
        self.qtd(
            data,
            status,
            1,
            u32::from(len),
            token::TOGGLE,
            BUFFER + 0x100,
        );
        let status_pid = if len > 0 { 0 } else { 1 };
        self.qtd(status, T, status_pid, 0, token::TOGGLE | token::IOC, 0);
        self.qh(CONTROL_QH, HEAD_QH | 2, address, 0, 0, setup);
        self.put(HEAD_QH, &[CONTROL_QH | 2]);
        self.wait(1);
        let tokens = vec![
            self.get(setup + 8),
            self.get(data + 8),
            self.get(status + 8),
        ];
        // Unlink it again.
        self.put(HEAD_QH, &[HEAD_QH | 2]);
        tokens
    }
}

#[test]
fn registers_after_reset() {
    let mut d = Driver::new(&[]);
    assert_eq!(d.read(0) & 0xff, 0x20, "CAPLENGTH");
    assert_eq!(d.read(0) >> 16, 0x100, "HCIVERSION");
    assert_eq!(d.read(4) & 0xf, 6, "N_PORTS");
    assert_eq!(d.read(OP + USBCMD), 8 << 16, "ITC 8 microframes");
    assert_eq!(d.read(OP + USBSTS), STS_HALTED);
    assert_eq!(d.read(portsc_reg(0)), portsc::POWER);
    // FRINDEX counts microframes while running only.
    d.write(OP + USBCMD, 8 << 16 | CMD_RUN);
    assert_eq!(d.read(OP + USBSTS) & STS_HALTED, 0);
    d.ms += 3;
    assert_eq!(d.read(OP + FRINDEX), 24);
    d.write(OP + USBCMD, 8 << 16);
    d.ms += 50;
    assert_eq!(d.read(OP + FRINDEX), 24);
    assert_ne!(d.read(OP + USBSTS) & STS_HALTED, 0);
    // Writes to unknown, read-only and capability registers do nothing.
    d.write(0, 0xffff_ffff);
    d.write(OP + CTRLDSSEGMENT, 0xffff_ffff);
    assert_eq!(d.read(0), 0x0100_0020);
    assert_eq!(d.read(OP + CTRLDSSEGMENT), 0);
    d.write(OP + PERIODICLISTBASE, 0x1234_5678);
    assert_eq!(d.read(OP + PERIODICLISTBASE), 0x1234_5000);
    // HCRESET.
    d.write(OP + USBCMD, CMD_HCRESET);
    assert_eq!(d.read(OP + USBCMD), 8 << 16);
    assert_eq!(d.read(OP + PERIODICLISTBASE), 0);
}

#[test]
fn control_transfers_address_and_describe_the_device() {
    let mut d = Driver::new(&[HidKind::Keyboard]);
    d.start();
    assert_eq!(d.read(OP + USBSTS) & (STS_PSS | STS_ASS), STS_PSS | STS_ASS);
    assert_ne!(d.read(OP + USBSTS) & STS_PCD, 0, "the device connected");
    d.write(OP + USBSTS, STS_CAUSES);
    d.reset_port(0);
    assert_eq!(
        d.read(portsc_reg(0)) & (portsc::CONNECT | portsc::PED | portsc::CSC),
        portsc::CONNECT | portsc::PED
    );
    // GET_DESCRIPTOR(device) at address 0: high-speed descriptor.
    let tokens = d.control_in(0, 0x80, 6, 0x0100, 18);
    for t in &tokens {
        assert_eq!(t & (token::ACTIVE | token::HALTED), 0, "{t:#x}");
        assert_eq!(t & token::BYTES_MASK, 0);
    }
    let mut desc = [0u8; 18];
    d.mem
        .read_slice(&mut desc, GuestAddress(u64::from(BUFFER + 0x100)))
        .unwrap();
    assert_eq!(&desc[..4], &[18, 1, 0x00, 0x02]);
    assert_eq!(desc[7], 64);
    assert_ne!(d.read(OP + USBSTS) & STS_INT, 0, "IOC on the status stage");
    assert!(d.lines.level(GSI));
    d.write(OP + USBSTS, STS_INT);
    assert!(!d.lines.level(GSI));
    // SET_ADDRESS 5, then the configuration at the new address.
    let tokens = d.control_in(0, 0, 5, 5, 0);
    assert_eq!(tokens[2] & token::ACTIVE, 0);
    let tokens = d.control_in(5, 0x80, 6, 0x0200, 34);
    assert_eq!(tokens[1] & (token::ACTIVE | token::HALTED), 0);
    assert_eq!(
        d.get(BUFFER + 0x100) & 0xff,
        9,
        "a configuration descriptor"
    );
    // Nobody is at address 0 any more: a transaction error halts.
    let tokens = d.control_in(0, 0x80, 6, 0x0100, 18);
    assert_eq!(
        tokens[0] & (token::HALTED | token::XACTERR),
        token::HALTED | token::XACTERR
    );
    assert_ne!(d.read(OP + USBSTS) & STS_ERRINT, 0);
}

#[test]
fn a_short_read_leaves_bytes_and_interrupts() {
    let mut d = Driver::new(&[HidKind::Tablet]);
    d.start();
    d.reset_port(0);
    d.write(OP + USBSTS, STS_CAUSES);
    let tokens = d.control_in(0, 0x80, 6, 0x0100, 64);
    // 18 of 64 bytes came: 46 left, toggle flipped once, USBINT.
    assert_eq!((tokens[1] & token::BYTES_MASK) >> 16, 46);
    assert_eq!(tokens[1] & token::TOGGLE, 0, "one packet from DATA1");
    assert_eq!(tokens[2] & token::ACTIVE, 0, "the status stage ran");
    // The buffer offset moved past the data.
    assert_eq!(d.get(QTDS + 0x20 + 12), BUFFER + 0x100 + 18);
    assert_ne!(d.read(OP + USBSTS) & STS_INT, 0);
}

#[test]
fn a_stall_halts_the_queue() {
    let mut d = Driver::new(&[HidKind::Mouse]);
    d.start();
    d.reset_port(0);
    d.write(OP + USBSTS, STS_CAUSES);
    // An unknown descriptor type: a read runs at its SETUP, which the
    // device stalls (as QEMU's devices do).
    let tokens = d.control_in(0, 0x80, 6, 0x0900, 9);
    assert_eq!(tokens[0] & (token::HALTED | token::ACTIVE), token::HALTED);
    assert_eq!(
        tokens[0] & token::XACTERR,
        0,
        "a STALL is no transaction error"
    );
    assert_ne!(tokens[1] & token::ACTIVE, 0, "the data stage never ran");
    assert_ne!(d.read(OP + USBSTS) & STS_ERRINT, 0);
    // The QH overlay is halted: later passes leave the queue alone.
    let overlay_token = d.get(CONTROL_QH + 24);
    assert_ne!(overlay_token & token::HALTED, 0);
}

#[test]
fn interrupt_reports_through_the_periodic_schedule() {
    let mut d = Driver::new(&[HidKind::Keyboard]);
    d.start();
    d.reset_port(0);
    d.control_in(0, 0, 5, 2, 0);
    d.write(OP + USBSTS, STS_CAUSES);
    // An interrupt QH for endpoint 1 in every 8th frame, with a qTD
    // for one 8-byte report.
    d.qh(INTERRUPT_QH, T, 2, 1, 0x01, QTDS + 0x80);
    d.qtd(QTDS + 0x80, T, 1, 8, token::IOC, REPORT);
    for i in (0..1024).step_by(8) {
        d.put(FRAME_LIST + 4 * i, &[INTERRUPT_QH | 2]);
    }
    d.wait(10);
    assert_ne!(d.get(QTDS + 0x88) & token::ACTIVE, 0, "NAKed: no input");
    assert_eq!(d.read(OP + USBSTS) & STS_INT, 0);
    // A key press completes it within a period.
    d.devices[0]
        .as_mut()
        .unwrap()
        .hid_mut()
        .key_usage(0x04, true);
    d.wait(8);
    let t = d.get(QTDS + 0x88);
    assert_eq!(t & (token::ACTIVE | token::HALTED | token::BYTES_MASK), 0);
    assert_ne!(t & token::TOGGLE, 0, "DATA1 next (the QH keeps the toggle)");
    assert_eq!(d.get(REPORT) >> 16 & 0xff, 0x04, "the A key");
    assert_ne!(d.read(OP + USBSTS) & STS_INT, 0);
    assert!(d.lines.level(GSI));
    // Turning the periodic schedule off (and the rollover interrupt):
    // the worker may sleep.
    d.write(OP + USBINTR, STS_CAUSES & !STS_FLR);
    let now = d.now();
    assert!(d.ehci.next_wakeup(now).is_some());
    d.write(OP + USBCMD, 8 << 16 | CMD_RUN);
    assert_eq!(d.ehci.next_wakeup(now), None);
}

#[test]
fn the_doorbell_and_frame_list_rollover() {
    let mut d = Driver::new(&[]);
    d.start();
    d.write(OP + USBSTS, STS_CAUSES);
    let cmd = d.read(OP + USBCMD);
    d.write(OP + USBCMD, cmd | CMD_IAAD);
    assert_ne!(d.read(OP + USBSTS) & STS_IAA, 0);
    assert_eq!(d.read(OP + USBCMD) & CMD_IAAD, 0);
    // 1024 frames later the frame list rolled over.
    d.write(OP + USBSTS, STS_CAUSES);
    d.wait(1030);
    assert_ne!(d.read(OP + USBSTS) & STS_FLR, 0);
    // With only FLR wanted, the worker sleeps until the next rollover.
    d.write(OP + USBCMD, 8 << 16 | CMD_RUN);
    let now = d.now();
    let sleep = d.ehci.next_wakeup(now).unwrap();
    assert!(sleep > Duration::from_millis(900), "{sleep:?}");
}

#[test]
fn garbage_schedules_end_with_host_system_error_or_are_bounded() {
    // The asynchronous list outside guest memory.
    let mut d = Driver::new(&[HidKind::Tablet]);
    d.start();
    d.write(OP + ASYNCLISTADDR, 0x8000_0000);
    d.wait(1);
    let sts = d.read(OP + USBSTS);
    assert_eq!(sts & (STS_HSE | STS_HALTED), STS_HSE | STS_HALTED);
    assert_eq!(d.read(OP + USBCMD) & CMD_RUN, 0);
    assert!(d.lines.level(GSI), "HSE interrupts");

    // A qTD buffer outside memory.
    let mut d = Driver::new(&[HidKind::Tablet]);
    d.start();
    d.reset_port(0);
    d.setup_packet(BUFFER, 0x80, 6, 0x0100, 18);
    d.qtd(QTDS, QTDS + 0x20, 2, 8, 0, BUFFER);
    d.qtd(QTDS + 0x20, T, 1, 18, token::TOGGLE, 0xfff0_0000);
    d.qh(CONTROL_QH, HEAD_QH | 2, 0, 0, 0, QTDS);
    d.put(HEAD_QH, &[CONTROL_QH | 2]);
    d.wait(1);
    assert_ne!(d.read(OP + USBSTS) & STS_HSE, 0);

    // Loops: a qTD pointing to itself that keeps NAKing, a ring of QHs
    // not through the head, a frame list entry of iTDs pointing to
    // each other, a periodic QH pointing to itself. Every pass ends.
    let mut d = Driver::new(&[HidKind::Keyboard]);
    d.start();
    d.reset_port(0);
    d.qh(CONTROL_QH, INTERRUPT_QH | 2, 0, 1, 1, QTDS);
    d.qtd(QTDS, QTDS, 1, 8, 0, REPORT);
    d.qh(INTERRUPT_QH, CONTROL_QH | 2, 0, 1, 1, QTDS);
    d.put(HEAD_QH, &[CONTROL_QH | 2]);
    d.put(FRAME_LIST + 8, &[0x6000]);
    d.put(0x6000, &[0x6040]);
    d.put(0x6040, &[0x6000]);
    d.put(FRAME_LIST + 4, &[INTERRUPT_QH | 2]);
    d.wait(5);
    assert_eq!(d.read(OP + USBSTS) & STS_HSE, 0);
    assert_ne!(d.get(QTDS + 8) & token::ACTIVE, 0, "still waiting");

    // A qTD asking for more than its five pages: a buffer error halts it.
    let mut d = Driver::new(&[HidKind::Keyboard]);
    d.start();
    d.reset_port(0);
    d.qtd(QTDS, T, 1, 0x5001, 0, BUFFER);
    d.qh(CONTROL_QH, HEAD_QH | 2, 0, 0, 0, QTDS);
    d.put(HEAD_QH, &[CONTROL_QH | 2]);
    d.wait(1);
    let t = d.get(QTDS + 8);
    assert_eq!(
        t & (token::HALTED | token::DBERR | token::ACTIVE),
        token::HALTED | token::DBERR
    );
    assert_ne!(d.read(OP + USBSTS) & STS_ERRINT, 0);
    assert_eq!(d.read(OP + USBSTS) & STS_HSE, 0);
}

#[test]
fn a_suspended_port_resumes_on_input() {
    let mut d = Driver::new(&[HidKind::Keyboard]);
    d.start();
    d.reset_port(0);
    d.control_in(0, 0, 3, 1, 0); // SET_FEATURE(remote wakeup)
    d.write(OP + USBSTS, STS_CAUSES);
    let v = d.read(portsc_reg(0));
    d.write(portsc_reg(0), v | portsc::SUSPEND);
    d.devices[0]
        .as_mut()
        .unwrap()
        .hid_mut()
        .key_usage(0x04, true);
    d.ehci.remote_wakeup(0);
    assert_ne!(d.read(portsc_reg(0)) & portsc::FPR, 0);
    assert_ne!(d.read(OP + USBSTS) & STS_PCD, 0);
}
