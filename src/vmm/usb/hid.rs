//! USB HID devices as QEMU presents them: `usb-tablet` (absolute
//! pointer), `usb-mouse` (relative, boot protocol capable) and `usb-kbd`
//! (boot keyboard). Each answers control requests on endpoint 0 and
//! queues input reports for its interrupt IN endpoint (0x81).

use std::collections::VecDeque;

use super::descriptors::{self, DeviceDescriptor, HidConfiguration};
use super::{ControlOutcome, SetupPacket, Speed};

/// Which HID device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HidKind {
    Tablet,
    Mouse,
    Keyboard,
}

/// The interrupt IN endpoint's address.
pub const INTERRUPT_ENDPOINT: u8 = 0x81;
/// Reports kept for a guest that does not poll; newer input is folded
/// into the last one.
const QUEUE_LIMIT: usize = 16;
/// The tablet's coordinate range, 0..=0x7fff on both axes.
const TABLET_MAX: u32 = 0x7fff;

// Standard requests (bRequest).
const GET_STATUS: u8 = 0;
const CLEAR_FEATURE: u8 = 1;
const SET_FEATURE: u8 = 3;
const SET_ADDRESS: u8 = 5;
const GET_DESCRIPTOR: u8 = 6;
const GET_CONFIGURATION: u8 = 8;
const SET_CONFIGURATION: u8 = 9;
const GET_INTERFACE: u8 = 10;
const SET_INTERFACE: u8 = 11;
// HID class requests.
const HID_GET_REPORT: u8 = 1;
const HID_GET_IDLE: u8 = 2;
const HID_GET_PROTOCOL: u8 = 3;
const HID_SET_REPORT: u8 = 9;
const HID_SET_IDLE: u8 = 10;
const HID_SET_PROTOCOL: u8 = 11;
/// bmRequestType values: direction, type (standard/class), recipient.
const RT_DEVICE_IN: u8 = 0x80;
const RT_DEVICE_OUT: u8 = 0x00;
const RT_INTERFACE_IN: u8 = 0x81;
const RT_INTERFACE_OUT: u8 = 0x01;
const RT_ENDPOINT_IN: u8 = 0x82;
const RT_ENDPOINT_OUT: u8 = 0x02;
const RT_CLASS_INTERFACE_IN: u8 = 0xa1;
const RT_CLASS_INTERFACE_OUT: u8 = 0x21;
/// Feature selector for remote wakeup.
const FEATURE_REMOTE_WAKEUP: u16 = 1;
/// HID protocols (SET_PROTOCOL's wValue).
const PROTOCOL_BOOT: u8 = 0;
const PROTOCOL_REPORT: u8 = 1;

/// String descriptor indices.
const STR_MANUFACTURER: u8 = 1;
const STR_PRODUCT: u8 = 2;
const STR_SERIAL: u8 = 3;
const STR_CONFIGURATION: u8 = 4;

/// Report descriptor of the tablet: three buttons and five bits of
/// padding, X and Y as absolute 16-bit values 0..=0x7fff, a relative
/// 8-bit wheel.
const TABLET_REPORT_DESCRIPTOR: [u8; 74] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, // desktop page, mouse, application
    0x09, 0x01, 0xa1, 0x00, // pointer, physical
    0x05, 0x09, 0x19, 0x01, 0x29, 0x03, // buttons 1..3
    0x15, 0x00, 0x25, 0x01, 0x95, 0x03, 0x75, 0x01, 0x81, 0x02, // 3 x 1 bit
    0x95, 0x01, 0x75, 0x05, 0x81, 0x01, // padding
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, // X, Y
    0x15, 0x00, 0x26, 0xff, 0x7f, 0x35, 0x00, 0x46, 0xff, 0x7f, // 0..0x7fff
    0x75, 0x10, 0x95, 0x02, 0x81, 0x02, // 2 x 16 bits, absolute
    0x05, 0x01, 0x09, 0x38, // wheel
    0x15, 0x81, 0x25, 0x7f, 0x35, 0x00, 0x45, 0x00, // -127..127
    0x75, 0x08, 0x95, 0x01, 0x81, 0x06, // 8 bits, relative
    0xc0, 0xc0,
];

/// Report descriptor of the mouse: five buttons, X, Y and wheel as
/// relative bytes (its first three bytes are the boot mouse report).
const MOUSE_REPORT_DESCRIPTOR: [u8; 52] = [
    0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, // desktop page, mouse, application
    0x09, 0x01, 0xa1, 0x00, // pointer, physical
    0x05, 0x09, 0x19, 0x01, 0x29, 0x05, // buttons 1..5
    0x15, 0x00, 0x25, 0x01, 0x95, 0x05, 0x75, 0x01, 0x81, 0x02, // 5 x 1 bit
    0x95, 0x01, 0x75, 0x03, 0x81, 0x01, // padding
    0x05, 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, // X, Y, wheel
    0x15, 0x81, 0x25, 0x7f, 0x75, 0x08, 0x95, 0x03, 0x81, 0x06, // 3 x 8 bits, relative
    0xc0, 0xc0,
];

/// Report descriptor of the keyboard, the boot keyboard layout:
/// modifiers, a reserved byte, five LEDs out, six key usages.
const KEYBOARD_REPORT_DESCRIPTOR: [u8; 63] = [
    0x05, 0x01, 0x09, 0x06, 0xa1, 0x01, // desktop page, keyboard, application
    0x75, 0x01, 0x95, 0x08, 0x05, 0x07, 0x19, 0xe0, 0x29, 0xe7, // modifiers
    0x15, 0x00, 0x25, 0x01, 0x81, 0x02, //
    0x95, 0x01, 0x75, 0x08, 0x81, 0x01, // reserved byte
    0x95, 0x05, 0x75, 0x01, 0x05, 0x08, 0x19, 0x01, 0x29, 0x05, 0x91, 0x02, // LEDs
    0x95, 0x01, 0x75, 0x03, 0x91, 0x01, // LED padding
    0x95, 0x06, 0x75, 0x08, 0x15, 0x00, 0x25, 0xff, // six key slots
    0x05, 0x07, 0x19, 0x00, 0x29, 0xff, 0x81, 0x00, //
    0xc0,
];

/// Keyboard usages 0xe0..=0xe7 are the modifiers, a bit each.
const FIRST_MODIFIER: u8 = 0xe0;
/// Reported in every key slot when more keys are down than fit.
const ERROR_ROLLOVER: u8 = 0x01;
/// Keys remembered as held; more are ignored.
const HELD_LIMIT: usize = 32;

/// One pointer report waiting for the guest: HID button bits and either
/// an absolute position (tablet) or motion still to report (mouse).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct PointerReport {
    buttons: u8,
    x: i32,
    y: i32,
    wheel: i32,
}

/// A HID device on a root port.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HidDevice {
    kind: HidKind,
    /// The speed of the port it is attached at, which picks its
    /// descriptors (QEMU's full-speed and high-speed variants).
    speed: Speed,
    configuration: u8,
    protocol: u8,
    idle: u8,
    remote_wakeup: bool,
    leds: u8,
    pointer_queue: VecDeque<PointerReport>,
    /// The last position seen, in picture coordinates (the mouse moves by
    /// differences) and the last RFB button mask (wheel edges).
    last_position: Option<(u32, u32)>,
    last_rfb_buttons: u8,
    /// The tablet's current position, for GET_REPORT.
    position: (i32, i32),
    modifiers: u8,
    held: Vec<u8>,
    key_queue: VecDeque<[u8; 8]>,
}

impl HidDevice {
    pub fn new(kind: HidKind) -> HidDevice {
        HidDevice {
            kind,
            speed: Speed::High,
            configuration: 0,
            protocol: PROTOCOL_REPORT,
            idle: 0,
            remote_wakeup: false,
            leds: 0,
            pointer_queue: VecDeque::new(),
            last_position: None,
            last_rfb_buttons: 0,
            position: (0, 0),
            modifiers: 0,
            held: Vec::new(),
            key_queue: VecDeque::new(),
        }
    }

    pub fn kind(&self) -> HidKind {
        self.kind
    }

    /// Attaches the device at `speed`: full speed behind a USB 1.1
    /// controller (UHCI), high speed otherwise. Low speed is not a
    /// speed these devices have; it is taken as full speed.
    pub fn set_speed(&mut self, speed: Speed) {
        self.speed = match speed {
            Speed::Low => Speed::Full,
            other => other,
        };
    }

    /// A bus reset: unconfigured, report protocol, nothing queued.
    pub fn reset(&mut self) {
        self.configuration = 0;
        self.protocol = PROTOCOL_REPORT;
        self.idle = 0;
        self.remote_wakeup = false;
        self.pointer_queue.clear();
        self.key_queue.clear();
    }

    /// The keyboard LEDs the guest set (bit 0 Num Lock, 1 Caps Lock,
    /// 2 Scroll Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// Whether the guest enabled remote wakeup (it may suspend the port).
    pub fn remote_wakeup(&self) -> bool {
        self.remote_wakeup
    }

    fn full_speed(&self) -> bool {
        self.speed == Speed::Full
    }

    /// USB 1.0 with 8-byte control packets at full speed, USB 2.0 with
    /// 64-byte ones at high speed, as QEMU's devices describe themselves.
    fn device_descriptor(&self) -> DeviceDescriptor {
        let (bcd_usb, max_packet_size0) = if self.full_speed() {
            (0x0100, 8)
        } else {
            (0x0200, 64)
        };
        DeviceDescriptor {
            bcd_usb,
            max_packet_size0,
            vendor: 0x0627,
            product: 0x0001,
            bcd_device: 0,
            manufacturer: STR_MANUFACTURER,
            product_string: STR_PRODUCT,
            serial: STR_SERIAL,
        }
    }

    fn report_descriptor(&self) -> &'static [u8] {
        match self.kind {
            HidKind::Tablet => &TABLET_REPORT_DESCRIPTOR,
            HidKind::Mouse => &MOUSE_REPORT_DESCRIPTOR,
            HidKind::Keyboard => &KEYBOARD_REPORT_DESCRIPTOR,
        }
    }

    /// The configuration QEMU gives these devices. The interrupt
    /// endpoint's interval is 10 frames at full speed; at high speed it
    /// counts 2^(n-1) microframes: 1 ms for the tablet, 8 ms otherwise.
    fn configuration(&self) -> HidConfiguration {
        let (subclass, protocol, max_packet_size, high_speed_interval) = match self.kind {
            HidKind::Tablet => (0, 0, 8, 4),
            HidKind::Mouse => (1, 2, 4, 7),
            HidKind::Keyboard => (1, 1, 8, 7),
        };
        let interval = if self.full_speed() {
            10
        } else {
            high_speed_interval
        };
        HidConfiguration {
            configuration_string: STR_CONFIGURATION,
            attributes: descriptors::CONFIG_ATTR_ONE | descriptors::CONFIG_ATTR_REMOTE_WAKEUP,
            max_power: 50,
            subclass,
            protocol,
            report_descriptor_len: self.report_descriptor().len() as u16,
            endpoint_address: INTERRUPT_ENDPOINT,
            max_packet_size,
            interval,
        }
    }

    fn string(&self, index: u8) -> Option<Vec<u8>> {
        let (product, serial, config) = match self.kind {
            HidKind::Tablet => ("QEMU USB Tablet", "28754", "HID Tablet"),
            HidKind::Mouse => ("QEMU USB Mouse", "89126", "HID Mouse"),
            HidKind::Keyboard => ("QEMU USB Keyboard", "68284", "HID Keyboard"),
        };
        let text = match index {
            0 => return Some(descriptors::languages()),
            STR_MANUFACTURER => "QEMU",
            STR_PRODUCT => product,
            STR_SERIAL => serial,
            STR_CONFIGURATION => config,
            _ => return None,
        };
        Some(descriptors::string(text))
    }

    /// Answers a control request; `out` is the OUT data stage.
    pub fn control(&mut self, setup: &SetupPacket, out: &[u8]) -> ControlOutcome {
        let reply = self.answer(setup, out);
        match reply {
            Some(mut data) => {
                data.truncate(usize::from(setup.length));
                ControlOutcome::Done(data)
            }
            None => ControlOutcome::Stall,
        }
    }

    fn answer(&mut self, s: &SetupPacket, out: &[u8]) -> Option<Vec<u8>> {
        let [value_lo, value_hi] = s.value.to_le_bytes();
        let none = Some(Vec::new());
        let boot_capable = matches!(self.kind, HidKind::Keyboard | HidKind::Mouse);
        match (s.request_type, s.request) {
            (RT_DEVICE_IN, GET_DESCRIPTOR) => match value_hi {
                descriptors::DT_DEVICE => Some(self.device_descriptor().bytes().to_vec()),
                descriptors::DT_CONFIGURATION if value_lo == 0 => {
                    Some(self.configuration().bytes())
                }
                descriptors::DT_STRING => self.string(value_lo),
                _ => None,
            },
            (RT_INTERFACE_IN, GET_DESCRIPTOR) if s.index == 0 => match value_hi {
                descriptors::DT_HID => Some(self.configuration().hid_descriptor()),
                descriptors::DT_HID_REPORT => Some(self.report_descriptor().to_vec()),
                _ => None,
            },
            // The controller assigns the address (Address Device); a
            // driver that still sends the request is humoured.
            (RT_DEVICE_OUT, SET_ADDRESS) => none,
            (RT_DEVICE_IN, GET_CONFIGURATION) => Some(vec![self.configuration]),
            (RT_DEVICE_OUT, SET_CONFIGURATION) if s.value <= 1 => {
                self.configuration = value_lo;
                none
            }
            (RT_DEVICE_IN, GET_STATUS) => Some(vec![u8::from(self.remote_wakeup) << 1, 0]),
            (RT_INTERFACE_IN | RT_ENDPOINT_IN, GET_STATUS) => Some(vec![0, 0]),
            (RT_DEVICE_OUT, SET_FEATURE | CLEAR_FEATURE) if s.value == FEATURE_REMOTE_WAKEUP => {
                self.remote_wakeup = s.request == SET_FEATURE;
                none
            }
            // ENDPOINT_HALT on the interrupt endpoint: nothing to do.
            (RT_ENDPOINT_OUT, SET_FEATURE | CLEAR_FEATURE) if s.value == 0 => none,
            (RT_INTERFACE_IN, GET_INTERFACE) if s.index == 0 => Some(vec![0]),
            (RT_INTERFACE_OUT, SET_INTERFACE) if s.index == 0 && s.value == 0 => none,
            (RT_CLASS_INTERFACE_IN, HID_GET_REPORT) => Some(self.current_report()),
            (RT_CLASS_INTERFACE_OUT, HID_SET_REPORT) if self.kind == HidKind::Keyboard => {
                if let Some(&leds) = out.first() {
                    self.leds = leds;
                }
                none
            }
            (RT_CLASS_INTERFACE_IN, HID_GET_IDLE) => Some(vec![self.idle]),
            (RT_CLASS_INTERFACE_OUT, HID_SET_IDLE) => {
                self.idle = value_hi;
                none
            }
            (RT_CLASS_INTERFACE_IN, HID_GET_PROTOCOL) if boot_capable => Some(vec![self.protocol]),
            (RT_CLASS_INTERFACE_OUT, HID_SET_PROTOCOL) if boot_capable && s.value <= 1 => {
                self.protocol = value_lo;
                none
            }
            _ => None,
        }
    }

    /// The next input report for the interrupt endpoint, if input came.
    pub fn take_report(&mut self) -> Option<Vec<u8>> {
        match self.kind {
            HidKind::Keyboard => self.key_queue.pop_front().map(|r| r.to_vec()),
            HidKind::Tablet => {
                let p = self.pointer_queue.pop_front()?;
                Some(self.tablet_report(&p))
            }
            HidKind::Mouse => {
                let front = self.pointer_queue.front_mut()?;
                // Motion beyond a byte is reported over several reports.
                let dx = front.x.clamp(-127, 127);
                let dy = front.y.clamp(-127, 127);
                let dw = front.wheel.clamp(-127, 127);
                front.x -= dx;
                front.y -= dy;
                front.wheel -= dw;
                let buttons = front.buttons;
                if (front.x, front.y, front.wheel) == (0, 0, 0) {
                    self.pointer_queue.pop_front();
                }
                Some(self.mouse_report(buttons, dx, dy, dw))
            }
        }
    }

    /// Whether a report is waiting.
    pub fn has_report(&self) -> bool {
        match self.kind {
            HidKind::Keyboard => !self.key_queue.is_empty(),
            _ => !self.pointer_queue.is_empty(),
        }
    }

    /// The state as GET_REPORT returns it (no motion for the mouse).
    fn current_report(&self) -> Vec<u8> {
        match self.kind {
            HidKind::Keyboard => self.keyboard_report().to_vec(),
            HidKind::Tablet => self.tablet_report(&PointerReport {
                buttons: hid_buttons(self.last_rfb_buttons),
                x: self.position.0,
                y: self.position.1,
                wheel: 0,
            }),
            HidKind::Mouse => self.mouse_report(hid_buttons(self.last_rfb_buttons), 0, 0, 0),
        }
    }

    fn tablet_report(&self, p: &PointerReport) -> Vec<u8> {
        let [xl, xh] = (p.x as u16).to_le_bytes();
        let [yl, yh] = (p.y as u16).to_le_bytes();
        vec![
            p.buttons,
            xl,
            xh,
            yl,
            yh,
            p.wheel.clamp(-127, 127) as i8 as u8,
        ]
    }

    fn mouse_report(&self, buttons: u8, dx: i32, dy: i32, wheel: i32) -> Vec<u8> {
        let mut r = vec![buttons, dx as i8 as u8, dy as i8 as u8, wheel as i8 as u8];
        if self.protocol == PROTOCOL_BOOT {
            r.truncate(3);
        }
        r
    }

    fn keyboard_report(&self) -> [u8; 8] {
        let mut r = [0u8; 8];
        r[0] = self.modifiers;
        if self.held.len() > 6 {
            r[2..].fill(ERROR_ROLLOVER);
        } else {
            for (slot, key) in r[2..].iter_mut().zip(&self.held) {
                *slot = *key;
            }
        }
        r
    }

    /// A key, as a HID keyboard usage (page 7), pressed or released.
    /// Only the keyboard reacts.
    pub fn key_usage(&mut self, usage: u8, down: bool) {
        if self.kind != HidKind::Keyboard || usage == 0 {
            return;
        }
        let before = self.keyboard_report();
        if usage >= FIRST_MODIFIER {
            let bit = 1u8 << (usage - FIRST_MODIFIER).min(7);
            if down {
                self.modifiers |= bit;
            } else {
                self.modifiers &= !bit;
            }
        } else if down {
            if !self.held.contains(&usage) && self.held.len() < HELD_LIMIT {
                self.held.push(usage);
            }
        } else {
            self.held.retain(|k| *k != usage);
        }
        let after = self.keyboard_report();
        if after == before {
            return;
        }
        if self.key_queue.len() >= QUEUE_LIMIT {
            self.key_queue.pop_back();
        }
        self.key_queue.push_back(after);
    }

    /// The pointer at (`x`, `y`) in a `width` x `height` picture with RFB
    /// `buttons`. The tablet scales it to its range, the mouse reports the
    /// motion since the last event; the keyboard ignores it.
    pub fn pointer(&mut self, x: u32, y: u32, width: u32, height: u32, buttons: u8) {
        if self.kind == HidKind::Keyboard {
            return;
        }
        // Wheel buttons count on the press.
        let pressed = buttons & !self.last_rfb_buttons;
        let wheel = i32::from(pressed & 0x08 != 0) - i32::from(pressed & 0x10 != 0);
        self.last_rfb_buttons = buttons;
        let hid = hid_buttons(buttons);
        let entry = match self.kind {
            HidKind::Tablet => {
                let sx = scale(x, width);
                let sy = scale(y, height);
                self.position = (sx, sy);
                PointerReport {
                    buttons: hid,
                    x: sx,
                    y: sy,
                    wheel,
                }
            }
            _ => {
                let (dx, dy) = match self.last_position {
                    Some((lx, ly)) => (delta(x, lx), delta(y, ly)),
                    None => (0, 0),
                };
                PointerReport {
                    buttons: hid,
                    x: dx,
                    y: dy,
                    wheel,
                }
            }
        };
        self.last_position = Some((x, y));
        self.queue_pointer(entry);
    }

    fn queue_pointer(&mut self, entry: PointerReport) {
        let absolute = self.kind == HidKind::Tablet;
        let full = self.pointer_queue.len() >= QUEUE_LIMIT;
        if let Some(last) = self.pointer_queue.back_mut()
            && (last.buttons == entry.buttons || full)
        {
            // Same buttons (or no room): fold into the last report.
            if absolute {
                last.x = entry.x;
                last.y = entry.y;
            } else {
                last.x = last.x.saturating_add(entry.x);
                last.y = last.y.saturating_add(entry.y);
            }
            last.buttons = entry.buttons;
            last.wheel = last.wheel.saturating_add(entry.wheel);
            return;
        }
        if !absolute && self.pointer_queue.is_empty() && entry == PointerReport::default() {
            // Nothing moved, nothing pressed, nothing to say.
            return;
        }
        self.pointer_queue.push_back(entry);
    }
}

/// RFB buttons (left, middle, right) to HID buttons (left, right, middle).
fn hid_buttons(rfb: u8) -> u8 {
    (rfb & 1) | (rfb & 2) << 1 | (rfb & 4) >> 1
}

/// A coordinate in a picture of `size` pixels on the tablet's range.
fn scale(v: u32, size: u32) -> i32 {
    let span = u64::from(size.saturating_sub(1).max(1));
    let v = u64::from(v).min(span);
    (v * u64::from(TABLET_MAX) / span) as i32
}

fn delta(now: u32, before: u32) -> i32 {
    (i64::from(now) - i64::from(before)).clamp(i32::MIN.into(), i32::MAX.into()) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(dev: &mut HidDevice, rt: u8, req: u8, value: u16, len: u16) -> ControlOutcome {
        dev.control(&crate::vmm::usb::testing::setup(rt, req, value, len), &[])
    }

    fn data(o: ControlOutcome) -> Vec<u8> {
        match o {
            ControlOutcome::Done(d) => d,
            ControlOutcome::Stall => panic!("stalled"),
        }
    }

    #[test]
    fn descriptors_and_truncation() {
        let mut t = HidDevice::new(HidKind::Tablet);
        let d = data(get(&mut t, 0x80, GET_DESCRIPTOR, 0x0100, 64));
        assert_eq!(d.len(), 18);
        assert_eq!(data(get(&mut t, 0x80, GET_DESCRIPTOR, 0x0100, 8)).len(), 8);
        let c = data(get(&mut t, 0x80, GET_DESCRIPTOR, 0x0200, 255));
        assert_eq!(c.len(), 34);
        assert_eq!(&c[14..17], &[3, 0, 0], "the tablet is no boot device");
        let r = data(get(&mut t, 0x81, GET_DESCRIPTOR, 0x2200, 255));
        assert_eq!(r.len(), 74);
        assert_eq!(u16::from_le_bytes([c[25], c[26]]), 74);
        let s = data(get(&mut t, 0x80, GET_DESCRIPTOR, 0x0302, 255));
        assert_eq!(s[0] as usize, 2 + 2 * "QEMU USB Tablet".len());
        assert_eq!(
            get(&mut t, 0x80, GET_DESCRIPTOR, 0x0309, 255),
            ControlOutcome::Stall
        );
        // The tablet has no boot protocol; the keyboard does.
        assert_eq!(
            get(&mut t, 0x21, HID_SET_PROTOCOL, 0, 0),
            ControlOutcome::Stall
        );
        let mut k = HidDevice::new(HidKind::Keyboard);
        assert_eq!(
            get(&mut k, 0x21, HID_SET_PROTOCOL, 0, 0),
            ControlOutcome::Done(vec![])
        );
        assert_eq!(data(get(&mut k, 0xa1, HID_GET_PROTOCOL, 0, 1)), vec![0]);
        let c = data(get(&mut k, 0x80, GET_DESCRIPTOR, 0x0200, 255));
        assert_eq!(&c[14..17], &[3, 1, 1], "boot keyboard");
        assert_eq!(u16::from_le_bytes([c[25], c[26]]), 63);
    }

    #[test]
    fn full_speed_descriptors() {
        let mut k = HidDevice::new(HidKind::Keyboard);
        k.set_speed(Speed::Full);
        let d = data(get(&mut k, 0x80, GET_DESCRIPTOR, 0x0100, 18));
        assert_eq!((&d[2..4], d[7]), (&[0x00, 0x01][..], 8));
        let c = data(get(&mut k, 0x80, GET_DESCRIPTOR, 0x0200, 255));
        assert_eq!(c[33], 10, "interval in frames");
        k.set_speed(Speed::High);
        let d = data(get(&mut k, 0x80, GET_DESCRIPTOR, 0x0100, 18));
        assert_eq!((&d[2..4], d[7]), (&[0x00, 0x02][..], 64));
        let c = data(get(&mut k, 0x80, GET_DESCRIPTOR, 0x0200, 255));
        assert_eq!(c[33], 7, "2^(7-1) microframes");
    }

    #[test]
    fn keyboard_reports_modifiers_keys_and_leds() {
        let mut k = HidDevice::new(HidKind::Keyboard);
        k.key_usage(0xe1, true); // left shift
        k.key_usage(0x04, true); // a
        k.key_usage(0x04, true); // repeat: no new report
        k.key_usage(0x04, false);
        k.key_usage(0xe1, false);
        assert_eq!(k.take_report(), Some(vec![2, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(k.take_report(), Some(vec![2, 0, 4, 0, 0, 0, 0, 0]));
        assert_eq!(k.take_report(), Some(vec![2, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(k.take_report(), Some(vec![0; 8]));
        assert_eq!(k.take_report(), None);
        for usage in 4..11 {
            k.key_usage(usage, true);
        }
        assert_eq!(k.current_report()[2..], [ERROR_ROLLOVER; 6]);
        let s = SetupPacket {
            request_type: 0x21,
            request: HID_SET_REPORT,
            value: 0x0200,
            index: 0,
            length: 1,
        };
        assert_eq!(k.control(&s, &[0x02]), ControlOutcome::Done(vec![]));
        assert_eq!(k.leds(), 2);
    }

    #[test]
    fn tablet_scales_and_coalesces() {
        let mut t = HidDevice::new(HidKind::Tablet);
        t.pointer(0, 0, 800, 600, 0);
        t.pointer(799, 599, 800, 600, 0);
        t.pointer(799, 599, 800, 600, 1);
        t.pointer(799, 599, 800, 600, 0x4); // right button
        assert_eq!(t.take_report(), Some(vec![0, 0xff, 0x7f, 0xff, 0x7f, 0]));
        assert_eq!(t.take_report(), Some(vec![1, 0xff, 0x7f, 0xff, 0x7f, 0]));
        assert_eq!(t.take_report(), Some(vec![2, 0xff, 0x7f, 0xff, 0x7f, 0]));
        assert!(!t.has_report());
        // Wheel up: press and release give one notch.
        t.pointer(0, 0, 800, 600, 0x08);
        t.pointer(0, 0, 800, 600, 0);
        assert_eq!(t.take_report(), Some(vec![0, 0, 0, 0, 0, 1]));
        assert_eq!(t.take_report(), None);
        // A guest that never reads keeps a bounded queue.
        for i in 0..100 {
            t.pointer(0, 0, 800, 600, (i % 2) as u8);
        }
        assert!(t.pointer_queue.len() <= QUEUE_LIMIT);
    }

    #[test]
    fn mouse_splits_large_motion() {
        let mut m = HidDevice::new(HidKind::Mouse);
        m.pointer(10, 10, 800, 600, 0);
        assert!(!m.has_report(), "the first position only sets the origin");
        m.pointer(310, 5, 800, 600, 0);
        assert_eq!(m.take_report(), Some(vec![0, 127, (-5i8) as u8, 0]));
        assert_eq!(m.take_report(), Some(vec![0, 127, 0, 0]));
        assert_eq!(m.take_report(), Some(vec![0, 46, 0, 0]));
        assert_eq!(m.take_report(), None);
        // Boot protocol: three bytes.
        get(&mut m, 0x21, HID_SET_PROTOCOL, 0, 0);
        m.pointer(311, 5, 800, 600, 2); // middle
        assert_eq!(m.take_report(), Some(vec![4, 1, 0]));
    }
}
