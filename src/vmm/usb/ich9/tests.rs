//! The set through its PCI functions: identities and routing of the
//! functions, devices moving between the EHCI and its companions, input.

use std::time::Duration;

use super::*;
use crate::vmm::devices::pci::PciRoot;
use crate::vmm::usb::ehci::regs::{CAP_LENGTH, CONFIGFLAG, PORTSC0, USBCMD, USBSTS, portsc};
use crate::vmm::usb::hid::HidKind;
use crate::vmm::usb::uhci::regs::{self as uhci_regs, portsc as uhci_portsc};

const SLOT: u8 = 5;
const EHCI_BAR: u32 = 0xc000_0000;
const UHCI_IO: u16 = 0xc000;

struct Bench {
    root: PciRoot,
    lines: Arc<IntxLines>,
    set: Usb2Functions,
}

impl Bench {
    fn new(devices: &[AttachedDevice]) -> Bench {
        let mem = crate::vmm::usb::testing::memory();
        let lines = Arc::new(IntxLines::new(None));
        let at = Placement {
            slot: SLOT,
            ehci_bar: EHCI_BAR,
            uhci_io: UHCI_IO,
        };
        let set = build(devices, true, mem, &lines, at).unwrap();
        let mut root = PciRoot::default();
        for (f, func) in &set.functions {
            root.plug_function(SLOT, *f, func.clone()).unwrap();
        }
        Bench { root, lines, set }
    }

    fn function(&self, n: u8) -> SharedFunction {
        self.set
            .functions
            .iter()
            .find(|(f, _)| *f == n)
            .map(|(_, f)| f.clone())
            .unwrap()
    }

    fn ehci_read(&self, reg: u64) -> u32 {
        let mut b = [0u8; 4];
        lock(&self.function(7)).bar_read(0, CAP_LENGTH + reg, &mut b);
        u32::from_le_bytes(b)
    }

    fn ehci_write(&self, reg: u64, v: u32) {
        lock(&self.function(7)).bar_write(0, CAP_LENGTH + reg, &v.to_le_bytes());
    }

    fn uhci_read(&self, k: u8, reg: u64) -> u16 {
        let mut b = [0u8; 2];
        lock(&self.function(k)).bar_read(4, reg, &mut b);
        u16::from_le_bytes(b)
    }

    fn uhci_write(&self, k: u8, reg: u64, v: u16) {
        lock(&self.function(k)).bar_write(4, reg, &v.to_le_bytes());
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.set.shared.stop();
    }
}

fn tablet_on(port: u8) -> AttachedDevice {
    AttachedDevice {
        port: Some(port),
        kind: HidKind::Tablet,
    }
}

#[test]
fn four_functions_in_one_slot_with_their_pins() {
    let b = Bench::new(&[]);
    let ids: Vec<(u8, u32)> = [0u8, 1, 2, 7]
        .iter()
        .map(|&f| (f, b.root.read_dword(0, SLOT, f, 0)))
        .collect();
    assert_eq!(
        ids,
        vec![
            (0, 0x2934_8086),
            (1, 0x2935_8086),
            (2, 0x2936_8086),
            (7, 0x293a_8086)
        ]
    );
    assert_eq!(b.root.read_dword(0, SLOT, 0, 0xc) >> 16 & 0x80, 0x80);
    assert_eq!(b.root.read_dword(0, SLOT, 3, 0), 0xffff_ffff);
    // Pins A, B, C, D on the GSIs the _PRT gives the slot's pins.
    for (f, pin) in [(0u8, 1u8), (1, 2), (2, 3), (7, 4)] {
        let v = b.root.read_dword(0, SLOT, f, 0x3c);
        assert_eq!(v >> 8 & 0xff, u32::from(pin), "function {f}");
        assert_eq!(
            v & 0xff,
            layout::pci_intx_gsi(SLOT, pin - 1),
            "function {f}"
        );
    }
    // BARs where the VMM put them, decoded.
    assert_eq!(b.root.read_dword(0, SLOT, 7, 0x10), EHCI_BAR);
    assert_eq!(b.root.read_dword(0, SLOT, 2, 0x20), 0xc041);
    assert_eq!(
        b.root
            .bar_owner(u64::from(EHCI_BAR) + 0x24, false)
            .map(|o| (o.1, o.2)),
        Some((0, 0x24))
    );
    assert_eq!(
        b.root.bar_owner(0xc032, true).map(|o| (o.1, o.2)),
        Some((4, 0x12))
    );
    assert_eq!(lock(&b.function(7)).read_config(0x60) & 0xffff, 0x2020);
}

#[test]
fn devices_move_between_the_ehci_and_its_companions() {
    let b = Bench::new(&[tablet_on(1), tablet_on(4)]);
    // CONFIGFLAG is clear: port 1 is UHCI1's first, port 4 UHCI2's second.
    assert_eq!(
        b.ehci_read(PORTSC0) & (portsc::OWNER | portsc::CONNECT),
        portsc::OWNER
    );
    let p = b.uhci_read(0, uhci_regs::PORTSC1);
    assert_eq!(
        p & (uhci_portsc::CCS | uhci_portsc::CSC),
        uhci_portsc::CCS | uhci_portsc::CSC
    );
    assert_ne!(b.uhci_read(1, uhci_regs::PORTSC1 + 2) & uhci_portsc::CCS, 0);
    assert_eq!(b.uhci_read(2, uhci_regs::PORTSC1) & uhci_portsc::CCS, 0);
    // The EHCI driver takes every port.
    b.ehci_write(CONFIGFLAG, 1);
    let p0 = b.ehci_read(PORTSC0);
    assert_eq!(p0 & (portsc::OWNER | portsc::CONNECT), portsc::CONNECT);
    assert_ne!(b.ehci_read(USBSTS) & 1 << 2, 0, "PCD");
    let p = b.uhci_read(0, uhci_regs::PORTSC1);
    assert_eq!(p & (uhci_portsc::CCS | uhci_portsc::CSC), uhci_portsc::CSC);
    // It hands port 4 back (as for a full-speed device).
    let p3 = b.ehci_read(PORTSC0 + 12);
    b.ehci_write(PORTSC0 + 12, p3 | portsc::OWNER);
    assert_eq!(b.ehci_read(PORTSC0 + 12) & portsc::CONNECT, 0);
    assert_ne!(b.uhci_read(1, uhci_regs::PORTSC1 + 2) & uhci_portsc::CCS, 0);
    assert_ne!(b.ehci_read(PORTSC0) & portsc::CONNECT, 0, "port 1 stays");
    // HCRESET gives everything to the companions again.
    b.ehci_write(USBCMD, 2);
    assert_eq!(b.ehci_read(PORTSC0) & portsc::CONNECT, 0);
    assert_ne!(b.uhci_read(0, uhci_regs::PORTSC1) & uhci_portsc::CCS, 0);
    // Clearing CONFIGFLAG does too.
    b.ehci_write(CONFIGFLAG, 1);
    b.ehci_write(CONFIGFLAG, 0);
    assert_eq!(
        b.ehci_read(PORTSC0) & (portsc::OWNER | portsc::CONNECT),
        portsc::OWNER
    );
    assert_ne!(b.uhci_read(0, uhci_regs::PORTSC1) & uhci_portsc::CCS, 0);
}

#[test]
fn the_worker_sleeps_unless_a_controller_runs() {
    let b = Bench::new(&[tablet_on(1)]);
    let now = Instant::now();
    assert_eq!(b.set.shared.with(|s| s.next_wakeup(now)), None);
    b.uhci_write(0, uhci_regs::USBCMD, 1);
    assert_eq!(
        b.set.shared.with(|s| s.next_wakeup(now)),
        Some(Duration::from_millis(1))
    );
    b.uhci_write(0, uhci_regs::USBCMD, 0);
    b.ehci_write(USBCMD, 8 << 16 | 1);
    assert_eq!(
        b.set.shared.with(|s| s.next_wakeup(now)),
        None,
        "no schedule"
    );
    b.ehci_write(USBCMD, 8 << 16 | 1 | 1 << 4);
    assert!(b.set.shared.with(|s| s.next_wakeup(now)).is_some());
    b.set.shared.stop();
    assert!(!b.lines.level(layout::pci_intx_gsi(SLOT, 3)));
}

#[test]
fn input_reaches_the_devices() {
    let b = Bench::new(&[
        AttachedDevice {
            port: None,
            kind: HidKind::Keyboard,
        },
        tablet_on(3),
    ]);
    b.set.input.key(30, true); // KEY_A
    b.set.input.pointer(10, 10, 100, 100, 1);
    b.set.shared.with(|s| {
        let kbd = s.devices[0].as_ref().unwrap().hid();
        assert_eq!(kbd.kind(), HidKind::Keyboard);
        assert!(kbd.has_report());
        assert!(s.devices[2].as_ref().unwrap().hid().has_report());
        assert!(s.devices[1].is_none());
    });
    let two_on_one = build(
        &[tablet_on(2), tablet_on(2)],
        true,
        crate::vmm::usb::testing::memory(),
        &b.lines,
        Placement {
            slot: 6,
            ehci_bar: 0,
            uhci_io: 0,
        },
    );
    assert_eq!(two_on_one.err().unwrap(), "USB port 2 is already in use");
}
