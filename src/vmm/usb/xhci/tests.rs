//! The controller driven as a driver drives it: registers through BAR 0,
//! rings and contexts in a small guest memory.

use std::sync::Arc;

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::rings::{CHAIN, CYCLE, IDT, IOC, ISP, LINK_TOGGLE, Trb, completion, trb_type};
use super::*;
use crate::vmm::usb::hid::HidKind;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};

const MEM_SIZE: usize = 0x10_0000;
const DCBAA: u64 = 0x1000;
const COMMAND_RING: u64 = 0x2000;
const COMMAND_TRBS: u64 = 32;
const ERST: u64 = 0x3000;
const EVENT_RING: u64 = 0x4000;
const EVENT_TRBS: u64 = 64;
const DEVICE_CONTEXT: u64 = 0x10000;
const INPUT_CONTEXT: u64 = 0x20000;
const EP0_RING: u64 = 0x30000;
const EP_IN_RING: u64 = 0x31000;
const BUFFER: u64 = 0x40000;
const GSI: u32 = 20;

const USBCMD: u64 = 0x40;
const USBSTS: u64 = 0x44;
const CRCR: u64 = 0x58;
const DCBAAP: u64 = 0x70;
const CONFIG: u64 = 0x78;
const IMAN: u64 = 0x1020;
const ERSTSZ: u64 = 0x1028;
const ERSTBA: u64 = 0x1030;
const ERDP: u64 = 0x1038;

fn portsc(port: u64) -> u64 {
    0x440 + 0x10 * (port - 1)
}

/// A driver for tests: its rings' producer/consumer positions.
struct Driver {
    mem: GuestMemory,
    lines: Arc<IntxLines>,
    xhci: Xhci,
    command_index: u64,
    command_cycle: bool,
    event_index: u64,
    event_cycle: bool,
    ep0_index: u64,
    in_index: u64,
    /// Other events that came before a command's completion.
    early: Vec<Trb>,
}

impl Driver {
    fn new(devices: &[AttachedDevice]) -> Driver {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let lines = Arc::new(IntxLines::new(None));
        let irq = Arc::new(Interrupt::new(
            IntxLine {
                lines: lines.clone(),
                gsi: GSI,
                slot: 4,
            },
            Vec::new(),
        ));
        let xhci = Xhci::new(devices, mem.clone(), irq, None, 0xfe00_0000, 11).unwrap();
        Driver {
            mem,
            lines,
            xhci,
            command_index: 0,
            command_cycle: true,
            event_index: 0,
            event_cycle: true,
            ep0_index: 0,
            in_index: 0,
            early: Vec::new(),
        }
    }

    fn read(&mut self, off: u64) -> u32 {
        let mut b = [0u8; 4];
        self.xhci.bar_read(0, off, &mut b);
        u32::from_le_bytes(b)
    }

    fn write(&mut self, off: u64, v: u32) {
        self.xhci.bar_write(0, off, &v.to_le_bytes());
    }

    fn write64(&mut self, off: u64, v: u64) {
        self.xhci.bar_write(0, off, &v.to_le_bytes());
    }

    fn put(&self, addr: u64, trb: Trb) {
        trb.write(&self.mem, addr).unwrap();
    }

    /// Reset and start, the way Linux's xhci_init/xhci_run do.
    fn start(&mut self) {
        self.write(USBCMD, 2);
        assert_eq!(self.read(USBCMD) & 2, 0, "HCRST completes at once");
        assert_eq!(self.read(USBSTS) & (1 << 11 | 1), 1, "halted, CNR clear");
        self.write(CONFIG, 8);
        self.write64(DCBAAP, DCBAA);
        // The command ring ends in a link back to its start.
        self.put(
            COMMAND_RING + (COMMAND_TRBS - 1) * 16,
            Trb {
                parameter: COMMAND_RING,
                status: 0,
                control: u32::from(trb_type::LINK) << 10 | LINK_TOGGLE,
            },
        );
        self.write64(CRCR, COMMAND_RING | 1);
        self.put(
            ERST,
            Trb {
                parameter: EVENT_RING,
                status: EVENT_TRBS as u32,
                control: 0,
            },
        );
        self.write(ERSTSZ, 1);
        self.write64(ERDP, EVENT_RING);
        self.write64(ERSTBA, ERST);
        self.write(IMAN, 2);
        self.write(USBCMD, 1 | 4);
        assert_eq!(self.read(USBSTS) & 1, 0, "running");
    }

    /// The next event, consumed (ERDP written with EHB, as Linux does).
    fn event(&mut self) -> Option<Trb> {
        let addr = EVENT_RING + self.event_index * 16;
        let trb = Trb::read(&self.mem, addr).unwrap();
        if trb.cycle() != self.event_cycle {
            return None;
        }
        self.event_index += 1;
        if self.event_index == EVENT_TRBS {
            self.event_index = 0;
            self.event_cycle = !self.event_cycle;
        }
        self.write64(ERDP, (EVENT_RING + self.event_index * 16) | 8);
        Some(trb)
    }

    fn command(&mut self, parameter: u64, control: u32) -> Trb {
        let addr = COMMAND_RING + self.command_index * 16;
        self.put(
            addr,
            Trb {
                parameter,
                status: 0,
                control: control | u32::from(self.command_cycle),
            },
        );
        self.command_index += 1;
        if self.command_index == COMMAND_TRBS - 1 {
            // Hand the link over, then wrap.
            let link = COMMAND_RING + (COMMAND_TRBS - 1) * 16;
            let mut l = Trb::read(&self.mem, link).unwrap();
            l.control = (l.control & !CYCLE) | u32::from(self.command_cycle);
            self.put(link, l);
            self.command_index = 0;
            self.command_cycle = !self.command_cycle;
        }
        self.write(0x2000, 0);
        let ev = loop {
            let ev = self.event().expect("a command completion");
            if ev.kind() == trb_type::COMMAND_COMPLETION {
                break ev;
            }
            self.early.push(ev);
        };
        assert_eq!(ev.parameter, addr);
        ev
    }

    fn queue(&mut self, ring: u64, index: &mut u64, mut trb: Trb) -> u64 {
        let addr = ring + *index * 16;
        trb.control |= CYCLE;
        self.put(addr, trb);
        *index += 1;
        addr
    }

    /// A control transfer on EP0 of `slot`; the IN data stage (if any)
    /// lands in BUFFER.
    fn control(&mut self, slot: u8, setup: SetupPacket, out: &[u8]) -> Vec<Trb> {
        let mut i = self.ep0_index;
        let trt = if setup.length == 0 {
            0
        } else if setup.is_in() {
            3
        } else {
            2
        };
        self.queue(
            EP0_RING,
            &mut i,
            Trb {
                parameter: setup.to_u64(),
                status: 8,
                control: u32::from(trb_type::SETUP) << 10 | IDT | trt << 16,
            },
        );
        if setup.length > 0 {
            if !setup.is_in() {
                self.mem.write_slice(out, GuestAddress(BUFFER)).unwrap();
            }
            let dir = u32::from(setup.is_in()) << 16;
            self.queue(
                EP0_RING,
                &mut i,
                Trb {
                    parameter: BUFFER,
                    status: u32::from(setup.length),
                    control: u32::from(trb_type::DATA) << 10 | ISP | dir,
                },
            );
        }
        let status_dir = u32::from(!setup.is_in() || setup.length == 0) << 16;
        self.queue(
            EP0_RING,
            &mut i,
            Trb {
                parameter: 0,
                status: 0,
                control: u32::from(trb_type::STATUS) << 10 | IOC | status_dir,
            },
        );
        self.ep0_index = i;
        self.write(0x2000 + 4 * u64::from(slot), 1);
        std::iter::from_fn(|| self.event()).collect()
    }

    fn buffer(&self, len: usize) -> Vec<u8> {
        let mut b = vec![0; len];
        self.mem.read_slice(&mut b, GuestAddress(BUFFER)).unwrap();
        b
    }

    fn ctx(&self, addr: u64) -> [u32; 8] {
        context::read(&self.mem, addr).unwrap()
    }

    fn write_ctx(&self, addr: u64, c: [u32; 8]) {
        context::write(&self.mem, addr, &c).unwrap();
    }

    /// Port reset, Enable Slot, Address Device for the device on `port`.
    fn address(&mut self, port: u8) -> u8 {
        let reg = portsc(u64::from(port));
        let v = self.read(reg);
        self.write(reg, (v & !2) | 1 << 4);
        assert_ne!(self.read(reg) & 2, 0, "enabled after reset");
        let ev = self.event().expect("port status change for the reset");
        assert_eq!(ev.kind(), trb_type::PORT_STATUS_CHANGE);
        let v = self.read(reg);
        self.write(reg, v & !2);
        let ev = self.command(0, u32::from(trb_type::ENABLE_SLOT) << 10);
        assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
        let slot = ev.slot_id();
        assert!(slot >= 1);
        let out = DEVICE_CONTEXT + u64::from(slot) * 0x1000;
        self.mem
            .write_obj(out, GuestAddress(DCBAA + 8 * u64::from(slot)))
            .unwrap();
        let mut ictl = [0u32; 8];
        ictl[1] = 3;
        self.write_ctx(INPUT_CONTEXT, ictl);
        let mut sl = [0u32; 8];
        sl[0] = 1 << 27 | 3 << 20;
        sl[1] = u32::from(port) << 16;
        self.write_ctx(INPUT_CONTEXT + 32, sl);
        let mut ep0 = [0u32; 8];
        ep0[1] = 3 << 1 | 4 << 3 | 64 << 16;
        ep0[2] = EP0_RING as u32 | 1;
        self.write_ctx(INPUT_CONTEXT + 64, ep0);
        self.ep0_index = 0;
        let ev = self.command(
            INPUT_CONTEXT,
            u32::from(trb_type::ADDRESS_DEVICE) << 10 | u32::from(slot) << 24,
        );
        assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
        let out_slot = self.ctx(out);
        assert_eq!(out_slot[3] >> 27, 2, "addressed");
        assert_eq!(out_slot[3] & 0xff, u32::from(slot));
        assert_eq!(self.ctx(out + 32)[0] & 7, 1, "EP0 running");
        slot
    }

    /// SET_CONFIGURATION and Configure Endpoint for the interrupt IN
    /// endpoint (DCI 3).
    fn configure(&mut self, slot: u8) {
        let events = self.control(slot, setup(0x00, 9, 1, 0), &[]);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status >> 24, u32::from(completion::SUCCESS));
        let mut ictl = [0u32; 8];
        ictl[1] = 1 | 1 << 3;
        self.write_ctx(INPUT_CONTEXT, ictl);
        let mut sl = [0u32; 8];
        sl[0] = 3 << 27;
        self.write_ctx(INPUT_CONTEXT + 32, sl);
        let mut ep = [0u32; 8];
        ep[0] = 3 << 16;
        ep[1] = 3 << 1 | 7 << 3 | 8 << 16;
        ep[2] = EP_IN_RING as u32 | 1;
        self.write_ctx(INPUT_CONTEXT + 32 * 4, ep);
        self.in_index = 0;
        let ev = self.command(
            INPUT_CONTEXT,
            u32::from(trb_type::CONFIGURE_ENDPOINT) << 10 | u32::from(slot) << 24,
        );
        assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
        let out = DEVICE_CONTEXT + u64::from(slot) * 0x1000;
        assert_eq!(self.ctx(out)[3] >> 27, 3, "configured");
        assert_eq!(self.ctx(out + 3 * 32)[0] & 7, 1, "interrupt IN running");
    }

    /// Queues an 8-byte interrupt IN poll and rings its doorbell.
    fn poll(&mut self, slot: u8, buf: u64) -> u64 {
        let mut i = self.in_index;
        let addr = self.queue(
            EP_IN_RING,
            &mut i,
            Trb {
                parameter: buf,
                status: 8,
                control: u32::from(trb_type::NORMAL) << 10 | ISP | IOC,
            },
        );
        self.in_index = i;
        self.write(0x2000 + 4 * u64::from(slot), 3);
        addr
    }
}

use crate::vmm::usb::SetupPacket;
use crate::vmm::usb::testing::setup;

fn tablet_and_keyboard() -> Vec<AttachedDevice> {
    vec![
        AttachedDevice {
            port: None,
            kind: HidKind::Tablet,
        },
        AttachedDevice {
            port: None,
            kind: HidKind::Keyboard,
        },
    ]
}

#[test]
fn pci_identity_and_bar_sizing() {
    let mut d = Driver::new(&tablet_and_keyboard());
    assert_eq!(d.xhci.read_config(0), 0x000d_1b36);
    assert_eq!(d.xhci.read_config(8) >> 8, 0x0c0330);
    assert_eq!(d.xhci.bar_at(0xfe00_0040), Some((0, 0x40)));
    d.xhci.write_config(0x10, 0xffff_ffff);
    d.xhci.write_config(0x14, 0xffff_ffff);
    let low = d.xhci.read_config(0x10);
    assert_eq!(low, !(BAR_SIZE as u32 - 1) | 4);
    assert_eq!(d.xhci.read_config(0x14), 0xffff_ffff);
    // CAPLENGTH as a byte read (SeaBIOS reads it so).
    d.xhci.write_config(0x10, 0xfe00_0000);
    d.xhci.write_config(0x14, 0);
    let mut b = [0u8; 1];
    d.xhci.bar_read(0, 0, &mut b);
    assert_eq!(b[0], 0x40);
    let mut b = [0u8; 2];
    d.xhci.bar_read(0, 2, &mut b);
    assert_eq!(u16::from_le_bytes(b), 0x100);
}

#[test]
fn enumerate_tablet_and_read_a_report() {
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    // Connected ports announce themselves when the controller runs.
    let v1 = d.read(portsc(1));
    assert_eq!(v1 & (1 | 1 << 17), 1 | 1 << 17, "connected, CSC");
    assert_eq!((v1 >> 10) & 0xf, 3, "high speed");
    assert_ne!(d.read(portsc(2)) & 1, 0);
    assert_eq!(d.read(portsc(3)) & 1, 0);
    assert_eq!(d.read(portsc(5)) & 1, 0);
    let ev = d.event().unwrap();
    assert_eq!(ev.kind(), trb_type::PORT_STATUS_CHANGE);
    assert_eq!(ev.parameter >> 24, 1);
    // INTx is up (IE and INTE set) until the driver clears IP.
    assert!(d.lines.level(GSI));
    assert_ne!(d.read(USBSTS) & (1 << 3 | 1 << 4), 0, "EINT, PCD");
    d.write(IMAN, 3);
    assert!(!d.lines.level(GSI));
    // The event for port 2 came while the handler was busy: it raises
    // the interrupt again once ERDP clears EHB (done in event()).
    let ev = d.event().unwrap();
    assert_eq!(ev.parameter >> 24, 2);
    assert!(d.event().is_none());
    d.write(IMAN, 3);
    // Clear CSC on both ports.
    for p in 1..=2 {
        let v = d.read(portsc(p));
        d.write(portsc(p), v & !2);
        assert_eq!(d.read(portsc(p)) & (1 << 17), 0);
    }

    let slot = d.address(1);
    // GET_DESCRIPTOR(device), 18 bytes.
    let events = d.control(slot, setup(0x80, 6, 0x0100, 18), &[]);
    assert_eq!(events.len(), 1, "only the status stage has IOC");
    assert_eq!(events[0].status >> 24, u32::from(completion::SUCCESS));
    assert_eq!(events[0].slot_id(), slot);
    assert_eq!((events[0].control >> 16) & 0x1f, 1);
    let dev = d.buffer(18);
    assert_eq!(&dev[..8], &[18, 1, 0, 2, 0, 0, 0, 64]);
    assert_eq!(&dev[8..12], &[0x27, 0x06, 0x01, 0x00]);
    // GET_DESCRIPTOR(configuration), 255 bytes asked: a short packet.
    let events = d.control(slot, setup(0x80, 6, 0x0200, 255), &[]);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].status >> 24, u32::from(completion::SHORT_PACKET));
    assert_eq!(events[0].status & 0xff_ffff, 255 - 34);
    assert_eq!(events[1].status >> 24, u32::from(completion::SUCCESS));
    let cfg = d.buffer(34);
    assert_eq!(&cfg[..2], &[9, 2]);
    assert_eq!(&cfg[9..16], &[9, 4, 0, 0, 1, 3, 0]);
    assert_eq!(&cfg[27..31], &[7, 5, 0x81, 3]);
    // The product string.
    d.control(slot, setup(0x80, 6, 0x0302, 255), &[]);
    let s = d.buffer(32);
    let text: String = s[2..usize::from(s[0])]
        .chunks(2)
        .map(|c| char::from(c[0]))
        .collect();
    assert_eq!(text, "QEMU USB Tablet");
    // The HID report descriptor.
    d.control(
        slot,
        SetupPacket {
            request_type: 0x81,
            request: 6,
            value: 0x2200,
            index: 0,
            length: 74,
        },
        &[],
    );
    assert_eq!(&d.buffer(4), &[0x05, 0x01, 0x09, 0x02]);

    d.configure(slot);
    // A poll waits for input.
    let poll = d.poll(slot, BUFFER + 0x100);
    assert!(d.event().is_none());
    d.xhci.input().pointer(400, 300, 801, 601, 1);
    let ev = d.event().expect("a transfer event for the report");
    assert_eq!(ev.kind(), trb_type::TRANSFER_EVENT);
    assert_eq!(ev.parameter, poll);
    assert_eq!((ev.control >> 16) & 0x1f, 3);
    assert_eq!(ev.status >> 24, u32::from(completion::SHORT_PACKET));
    assert_eq!(ev.status & 0xff_ffff, 2, "6 of 8 bytes");
    let mut r = [0u8; 6];
    d.mem
        .read_slice(&mut r, GuestAddress(BUFFER + 0x100))
        .unwrap();
    assert_eq!(r, [1, 0xff, 0x3f, 0xff, 0x3f, 0]);
    // Input before the next poll waits in the device.
    d.xhci.input().pointer(0, 0, 801, 601, 0);
    assert!(d.event().is_none());
    d.poll(slot, BUFFER + 0x200);
    let ev = d.event().expect("the queued report");
    assert_eq!(ev.status >> 24, u32::from(completion::SHORT_PACKET));
    let mut r = [0u8; 6];
    d.mem
        .read_slice(&mut r, GuestAddress(BUFFER + 0x200))
        .unwrap();
    assert_eq!(r, [0; 6]);
}

#[test]
fn keyboard_boot_protocol_leds_and_keys() {
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    let slot = d.address(2);
    let events = d.control(slot, setup(0x80, 6, 0x0200, 34), &[]);
    assert_eq!(events.len(), 1);
    assert_eq!(&d.buffer(18)[9..18], &[9, 4, 0, 0, 1, 3, 1, 1, 0]);
    d.configure(slot);
    // SeaBIOS: SET_PROTOCOL(boot), SET_IDLE(0).
    let ev = d.control(slot, setup(0x21, 0x0b, 0, 0), &[]);
    assert_eq!(ev[0].status >> 24, u32::from(completion::SUCCESS));
    let ev = d.control(slot, setup(0x21, 0x0a, 0, 0), &[]);
    assert_eq!(ev[0].status >> 24, u32::from(completion::SUCCESS));
    // SET_REPORT: Caps Lock on.
    let ev = d.control(slot, setup(0x21, 0x09, 0x0200, 1), &[0x02]);
    assert_eq!(ev[0].status >> 24, u32::from(completion::SUCCESS));
    {
        let c = lock(&d.xhci.controller);
        assert_eq!(c.ports[1].device.as_ref().unwrap().leds(), 2);
    }
    let poll = d.poll(slot, BUFFER + 0x300);
    d.xhci.input().key_usage(0x04, true);
    let ev = d.event().expect("key report");
    assert_eq!(ev.parameter, poll);
    assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
    let mut r = [0u8; 8];
    d.mem
        .read_slice(&mut r, GuestAddress(BUFFER + 0x300))
        .unwrap();
    assert_eq!(r, [0, 0, 4, 0, 0, 0, 0, 0]);
}

#[test]
fn stall_halts_and_the_driver_recovers() {
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    let slot = d.address(1);
    // An unknown descriptor type stalls.
    let events = d.control(slot, setup(0x80, 6, 0x0900, 16), &[]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].status >> 24, u32::from(completion::STALL));
    let out = DEVICE_CONTEXT + u64::from(slot) * 0x1000;
    assert_eq!(d.ctx(out + 32)[0] & 7, 2, "halted");
    // A doorbell on a halted endpoint does nothing.
    d.write(0x2000 + 4 * u64::from(slot), 1);
    assert!(d.event().is_none());
    // Reset Endpoint, then Set TR Dequeue past the stalled TD.
    let ev = d.command(
        0,
        u32::from(trb_type::RESET_ENDPOINT) << 10 | 1 << 16 | u32::from(slot) << 24,
    );
    assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
    assert_eq!(d.ctx(out + 32)[0] & 7, 3, "stopped");
    let next = EP0_RING + d.ep0_index * 16;
    let ev = d.command(
        next | 1,
        u32::from(trb_type::SET_TR_DEQUEUE) << 10 | 1 << 16 | u32::from(slot) << 24,
    );
    assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
    assert_eq!(context::dequeue(&d.ctx(out + 32)), (next, true));
    let events = d.control(slot, setup(0x80, 6, 0x0100, 18), &[]);
    assert_eq!(events[0].status >> 24, u32::from(completion::SUCCESS));
    assert_eq!(d.ctx(out + 32)[0] & 7, 1, "running again");
    // Stop Endpoint with a poll waiting reports it and leaves it queued.
    d.configure(slot);
    let poll = d.poll(slot, BUFFER);
    let ev = d.command(
        0,
        u32::from(trb_type::STOP_ENDPOINT) << 10 | 3 << 16 | u32::from(slot) << 24,
    );
    let stopped = d.early.pop().expect("stopped event for the waiting TD");
    assert_eq!(stopped.parameter, poll);
    assert_eq!(
        stopped.status >> 24,
        u32::from(completion::STOPPED_LENGTH_INVALID)
    );
    assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
    assert_eq!(context::dequeue(&d.ctx(out + 3 * 32)).0, poll);
    // Commands on slots that are not enabled.
    let ev = d.command(0, u32::from(trb_type::DISABLE_SLOT) << 10 | 9 << 24);
    assert_eq!(ev.status >> 24, u32::from(completion::SLOT_NOT_ENABLED));
    let ev = d.command(0, u32::from(trb_type::NOOP_COMMAND) << 10);
    assert_eq!(ev.status >> 24, u32::from(completion::SUCCESS));
}

#[test]
fn garbage_gets_errors_or_a_halt() {
    // A DCBAA outside guest memory: Address Device fails cleanly.
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    d.write64(DCBAAP, 0xffff_f000_0000);
    let v = d.read(portsc(1));
    d.write(portsc(1), v | 1 << 4);
    d.event();
    let ev = d.command(0, u32::from(trb_type::ENABLE_SLOT) << 10);
    let slot = ev.slot_id();
    let mut ictl = [0u32; 8];
    ictl[1] = 3;
    d.write_ctx(INPUT_CONTEXT, ictl);
    let mut sl = [0u32; 8];
    sl[1] = 1 << 16;
    d.write_ctx(INPUT_CONTEXT + 32, sl);
    let ev = d.command(
        INPUT_CONTEXT,
        u32::from(trb_type::ADDRESS_DEVICE) << 10 | u32::from(slot) << 24,
    );
    assert_eq!(ev.status >> 24, u32::from(completion::PARAMETER_ERROR));
    // Address Device on a port without a device.
    d.write64(DCBAAP, DCBAA);
    sl[1] = 3 << 16;
    d.write_ctx(INPUT_CONTEXT + 32, sl);
    let ev = d.command(
        INPUT_CONTEXT,
        u32::from(trb_type::ADDRESS_DEVICE) << 10 | u32::from(slot) << 24,
    );
    assert_eq!(
        ev.status >> 24,
        u32::from(completion::USB_TRANSACTION_ERROR)
    );
    // Configure Endpoint before the device has an address.
    let ev = d.command(
        0xffff_ffff_0000,
        u32::from(trb_type::CONFIGURE_ENDPOINT) << 10 | u32::from(slot) << 24,
    );
    assert_eq!(ev.status >> 24, u32::from(completion::CONTEXT_STATE_ERROR));

    // A command ring without a link runs into the end of memory.
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    d.write(USBCMD, 0);
    let tail = MEM_SIZE as u64 - 4 * 16;
    for i in 0..4 {
        d.put(
            tail + i * 16,
            Trb {
                parameter: 0,
                status: 0,
                control: u32::from(trb_type::NOOP_COMMAND) << 10 | CYCLE,
            },
        );
    }
    d.write64(CRCR, tail | 1);
    d.write(USBCMD, 5);
    d.write(0x2000, 0);
    let sts = d.read(USBSTS);
    assert_eq!(sts & (1 << 2 | 1), 1 << 2 | 1, "HSE and halted");
    let completions = std::iter::from_fn(|| d.event())
        .filter(|e| e.kind() == trb_type::COMMAND_COMPLETION)
        .count();
    assert_eq!(completions, 4);

    // A command ring that links to itself without end.
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    d.put(
        COMMAND_RING,
        Trb {
            parameter: COMMAND_RING,
            status: 0,
            control: u32::from(trb_type::LINK) << 10 | CYCLE,
        },
    );
    d.write(0x2000, 0);
    assert_ne!(d.read(USBSTS) & 1 << 2, 0);

    // A huge ERST at a bad address: no event ring, a halt, no panic.
    let mut d = Driver::new(&tablet_and_keyboard());
    d.write(ERSTSZ, 0xffff_ffff);
    d.write64(ERSTBA, 0xdead_beef_0000);
    d.write(USBCMD, 1);
    assert_ne!(
        d.read(USBSTS) & (1 << 2),
        0,
        "the port events had nowhere to go"
    );

    // A chained TD that never ends and a transfer ring loop.
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    let slot = d.address(1);
    d.configure(slot);
    for i in 0..100u64 {
        d.put(
            EP0_RING + i * 16,
            Trb {
                parameter: BUFFER,
                status: 8,
                control: u32::from(trb_type::NORMAL) << 10 | CHAIN | CYCLE,
            },
        );
    }
    d.write(0x2000 + 4 * u64::from(slot), 1);
    let ev = d.event().expect("TRB error");
    assert_eq!(ev.status >> 24, u32::from(completion::TRB_ERROR));
    d.put(
        EP_IN_RING,
        Trb {
            parameter: EP_IN_RING,
            status: 0,
            control: u32::from(trb_type::LINK) << 10 | CYCLE,
        },
    );
    d.write(0x2000 + 4 * u64::from(slot), 3);
    d.xhci.input().pointer(1, 1, 10, 10, 1);
    assert_ne!(d.read(USBSTS) & 1 << 2, 0, "looping ring: HSE");
}

#[test]
fn command_ring_abort_and_remote_wakeup() {
    let mut d = Driver::new(&tablet_and_keyboard());
    d.start();
    while d.event().is_some() {}
    d.command(0, u32::from(trb_type::NOOP_COMMAND) << 10);
    assert_ne!(d.read(CRCR) & 8, 0, "CRR while running");
    d.write64(CRCR, 1 << 2);
    let ev = d.event().expect("command ring stopped");
    assert_eq!(ev.status >> 24, u32::from(completion::COMMAND_RING_STOPPED));
    assert_eq!(d.read(CRCR) & 8, 0);
    // Suspend the tablet's port; remote wakeup enabled, input resumes it.
    let slot = d.address(1);
    d.control(slot, setup(0x00, 3, 1, 0), &[]);
    d.configure(slot);
    d.write(portsc(1), 1 << 16 | 3 << 5);
    assert_eq!((d.read(portsc(1)) >> 5) & 0xf, 3);
    d.xhci.input().pointer(5, 5, 10, 10, 0);
    let ev = d.event().expect("port status change for the wakeup");
    assert_eq!(ev.kind(), trb_type::PORT_STATUS_CHANGE);
    assert_eq!((d.read(portsc(1)) >> 5) & 0xf, 15, "resume");
}

#[test]
fn placement_follows_the_configuration() {
    let devs = [
        AttachedDevice {
            port: Some(3),
            kind: HidKind::Mouse,
        },
        AttachedDevice {
            port: None,
            kind: HidKind::Tablet,
        },
    ];
    let place = |d: &[AttachedDevice]| crate::vmm::usb::place(d, USB2_PORTS, HidDevice::new);
    let p = place(&devs).unwrap();
    assert_eq!(p[0].as_ref().map(|d| d.kind()), Some(HidKind::Tablet));
    assert_eq!(p[2].as_ref().map(|d| d.kind()), Some(HidKind::Mouse));
    let clash = [devs[0], devs[0]];
    assert!(place(&clash).is_err());
    let bad = [AttachedDevice {
        port: Some(5),
        kind: HidKind::Keyboard,
    }];
    assert!(place(&bad).is_err());
    assert!(place(&[devs[1]; 5]).is_err());
}
