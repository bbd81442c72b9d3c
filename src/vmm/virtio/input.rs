//! virtio-input (virtio 1.2 section 5.8): a keyboard, mouse or tablet
//! that speaks Linux evdev. Queue 0 (eventq) carries `virtio_input_event`s
//! to the driver, queue 1 (statusq) carries the driver's LED changes back.
//! The configuration space answers what the driver selects with
//! `select`/`subsel`: names, ids and the event bitmaps of the kind, with
//! QEMU's names and ids so that guests see the devices they know.
//!
//! Console input arrives through a [`VirtioInputHandle`] on the VNC
//! threads: it turns keys and pointer moves into evdev reports (events
//! ending with SYN_REPORT), queues them and kicks the device's worker,
//! which copies them into the buffers the driver has posted.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_ids::VIRTIO_ID_INPUT;
use virtio_bindings::virtio_input::{
    virtio_input_config_select_VIRTIO_INPUT_CFG_ABS_INFO as CFG_ABS_INFO,
    virtio_input_config_select_VIRTIO_INPUT_CFG_EV_BITS as CFG_EV_BITS,
    virtio_input_config_select_VIRTIO_INPUT_CFG_ID_DEVIDS as CFG_ID_DEVIDS,
    virtio_input_config_select_VIRTIO_INPUT_CFG_ID_NAME as CFG_ID_NAME,
    virtio_input_config_select_VIRTIO_INPUT_CFG_ID_SERIAL as CFG_ID_SERIAL,
    virtio_input_config_select_VIRTIO_INPUT_CFG_PROP_BITS as CFG_PROP_BITS,
};
use virtio_queue::QueueT;
use vmm_sys_util::eventfd::EventFd;

use super::worker::{Handler, Poll, WorkQueue, Worker, chain_complete};
use super::{Activation, Interrupt, VirtioDevice};
use crate::keymap;
use crate::vmm::config::InputKind;
use crate::vmm::display::{Buttons, InputSink};
use crate::vmm::memory::GuestMemory;

// Linux input event types and codes (<linux/input-event-codes.h>).
pub const EV_SYN: u16 = 0x00;
pub const EV_KEY: u16 = 0x01;
pub const EV_REL: u16 = 0x02;
pub const EV_ABS: u16 = 0x03;
pub const EV_LED: u16 = 0x11;
pub const EV_REP: u16 = 0x14;
pub const SYN_REPORT: u16 = 0;
pub const REL_X: u16 = 0x00;
pub const REL_Y: u16 = 0x01;
pub const REL_WHEEL: u16 = 0x08;
pub const ABS_X: u16 = 0x00;
pub const ABS_Y: u16 = 0x01;
pub const BTN_LEFT: u16 = 0x110;
pub const BTN_RIGHT: u16 = 0x111;
pub const BTN_MIDDLE: u16 = 0x112;
const KEY_MAX: u16 = 0x2ff;
/// The button codes (`BTN_MISC` up to `KEY_OK`), kept off the keyboard
/// so that the guest does not take it for a mouse or joystick.
const BUTTON_CODES: std::ops::Range<u16> = 0x100..0x160;
const LED_NUML: u16 = 0;
const LED_CAPSL: u16 = 1;
const LED_SCROLLL: u16 = 2;
const BUS_VIRTUAL: u16 = 0x06;
/// QEMU's vendor id for its emulated input devices.
const VENDOR: u16 = 0x0627;
/// Largest absolute coordinate of the tablet (QEMU's range).
pub const ABS_MAX: u32 = 0x7fff;

/// Reports kept while the driver has no buffers; older ones are dropped.
pub const MAX_REPORTS: usize = 64;
/// Size of each queue (QEMU's).
const QUEUE_SIZE: u16 = 64;
/// `virtio_input_config`: select, subsel, size, 5 reserved, 128 of data.
const CONFIG_LEN: usize = 8 + 128;
const EVENT_LEN: usize = 8;

const EVENTQ: u64 = 0;
const STATUSQ: u64 = 1;
const KICK: u64 = 2;

/// RFB button bits and the buttons they are.
const RFB_BUTTONS: [(u8, u16); 3] = [(0x01, BTN_LEFT), (0x02, BTN_MIDDLE), (0x04, BTN_RIGHT)];
const RFB_WHEEL_UP: u8 = 0x08;
const RFB_WHEEL_DOWN: u8 = 0x10;

/// One `virtio_input_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: u32,
}

impl InputEvent {
    pub const fn new(kind: u16, code: u16, value: u32) -> Self {
        InputEvent { kind, code, value }
    }

    /// The little-endian wire form.
    pub fn to_bytes(self) -> [u8; EVENT_LEN] {
        let mut b = [0u8; EVENT_LEN];
        b[0..2].copy_from_slice(&self.kind.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }

    pub fn from_bytes(b: [u8; EVENT_LEN]) -> Self {
        InputEvent {
            kind: u16::from_le_bytes([b[0], b[1]]),
            code: u16::from_le_bytes([b[2], b[3]]),
            value: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

const SYN: InputEvent = InputEvent::new(EV_SYN, SYN_REPORT, 0);

/// Reports waiting for driver buffers. The front report may be partly
/// delivered (`sent` of its events); it is never the one dropped.
#[derive(Debug, Default)]
struct Pending {
    reports: VecDeque<Vec<InputEvent>>,
    sent: usize,
}

impl Pending {
    fn push(&mut self, report: Vec<InputEvent>) {
        if report.is_empty() {
            return;
        }
        if self.reports.len() >= MAX_REPORTS {
            let oldest_whole = usize::from(self.sent > 0);
            self.reports.remove(oldest_whole);
        }
        self.reports.push_back(report);
    }

    fn next(&self) -> Option<InputEvent> {
        self.reports.front().and_then(|r| r.get(self.sent)).copied()
    }

    fn advance(&mut self) {
        self.sent += 1;
        if self.reports.front().is_none_or(|r| self.sent >= r.len()) {
            self.reports.pop_front();
            self.sent = 0;
        }
    }

    fn clear(&mut self) {
        self.reports.clear();
        self.sent = 0;
    }
}

/// What the console side and the worker share.
struct Shared {
    kind: InputKind,
    /// The keys the keyboard reports (EV_KEY bitmap).
    keys: Vec<u8>,
    state: Mutex<State>,
    /// Set while the driver has the device running.
    active: AtomicBool,
    /// The LEDs the driver last set: bit 0 Num, 1 Caps, 2 Scroll Lock.
    leds: AtomicU8,
    /// Wakes the worker when reports are queued.
    kick: EventFd,
}

#[derive(Default)]
struct State {
    pending: Pending,
    /// RFB buttons of the last pointer event.
    buttons: Buttons,
    /// Position of the last pointer event (the mouse reports motion).
    position: Option<(u32, u32)>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_key(&self, code: u16) -> bool {
        bit_set(&self.keys, code)
    }

    fn queue(&self, report: Vec<InputEvent>) {
        if report.is_empty() || !self.active.load(Ordering::Acquire) {
            return;
        }
        self.state().pending.push(report);
        let _ = self.kick.write(1);
    }
}

fn bit_set(bitmap: &[u8], bit: u16) -> bool {
    bitmap
        .get(usize::from(bit / 8))
        .is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

/// A bitmap with `bits` set, as long as its last non-zero byte.
fn bitmap(bits: impl IntoIterator<Item = u16>) -> Vec<u8> {
    let mut map = Vec::new();
    for bit in bits {
        let byte = usize::from(bit / 8);
        if map.len() <= byte {
            map.resize(byte + 1, 0);
        }
        if let Some(b) = map.get_mut(byte) {
            *b |= 1 << (bit % 8);
        }
    }
    map
}

/// Every key code up to KEY_MAX the keymap names, buttons left out.
fn keyboard_keys() -> Vec<u8> {
    bitmap((1..=KEY_MAX).filter(|&c| !BUTTON_CODES.contains(&c) && keymap::linux_name(c).is_some()))
}

/// The tablet's coordinate for `v` in a picture `size` pixels across.
fn scale(v: u32, size: u32) -> u32 {
    let span = u64::from(size.saturating_sub(1).max(1));
    (u64::from(v).min(span) * u64::from(ABS_MAX) / span) as u32
}

/// The event a report carries for a difference `now - before`, as the
/// two's complement value evdev expects of a relative axis.
fn relative(code: u16, now: u32, before: u32) -> Option<InputEvent> {
    let d = (i64::from(now) - i64::from(before)).clamp(i32::MIN.into(), i32::MAX.into()) as i32;
    (d != 0).then(|| InputEvent::new(EV_REL, code, d as u32))
}

/// Turns console input into evdev reports for the device's kind.
fn key_report(shared: &Shared, code: u16, down: bool) -> Vec<InputEvent> {
    if shared.kind != InputKind::Keyboard || !shared.has_key(code) {
        return Vec::new();
    }
    vec![InputEvent::new(EV_KEY, code, u32::from(down)), SYN]
}

fn pointer_report(
    kind: InputKind,
    st: &mut State,
    (x, y, width, height): (u32, u32, u32, u32),
    buttons: Buttons,
) -> Vec<InputEvent> {
    if kind == InputKind::Keyboard {
        return Vec::new();
    }
    let mut r = Vec::new();
    match kind {
        InputKind::Tablet => {
            r.push(InputEvent::new(EV_ABS, ABS_X, scale(x, width)));
            r.push(InputEvent::new(EV_ABS, ABS_Y, scale(y, height)));
        }
        _ => {
            if let Some((lx, ly)) = st.position {
                r.extend(relative(REL_X, x, lx));
                r.extend(relative(REL_Y, y, ly));
            }
        }
    }
    st.position = Some((x, y));
    let changed = buttons ^ st.buttons;
    for (bit, code) in RFB_BUTTONS {
        if changed & bit != 0 {
            r.push(InputEvent::new(EV_KEY, code, u32::from(buttons & bit != 0)));
        }
    }
    // The wheel turns one notch per press of its RFB button.
    let pressed = buttons & !st.buttons;
    if pressed & RFB_WHEEL_UP != 0 {
        r.push(InputEvent::new(EV_REL, REL_WHEEL, 1));
    }
    if pressed & RFB_WHEEL_DOWN != 0 {
        r.push(InputEvent::new(EV_REL, REL_WHEEL, (-1i32) as u32));
    }
    st.buttons = buttons;
    if r.is_empty() {
        return r;
    }
    r.push(SYN);
    r
}

/// The console's way into one virtio-input device. Events are dropped
/// while the guest's driver has not started the device.
#[derive(Clone)]
pub struct VirtioInputHandle {
    shared: Arc<Shared>,
}

impl VirtioInputHandle {
    pub fn kind(&self) -> InputKind {
        self.shared.kind
    }

    /// Whether the guest's driver has the device running.
    pub fn is_active(&self) -> bool {
        self.shared.active.load(Ordering::Acquire)
    }

    /// The keyboard LEDs the driver last set: bit 0 Num, 1 Caps, 2 Scroll
    /// Lock.
    pub fn leds(&self) -> u8 {
        self.shared.leds.load(Ordering::Acquire)
    }
}

impl InputSink for VirtioInputHandle {
    fn key(&self, code: u16, down: bool) {
        self.shared.queue(key_report(&self.shared, code, down));
    }

    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        let report = {
            let mut st = self.shared.state();
            pointer_report(self.shared.kind, &mut st, (x, y, width, height), buttons)
        };
        self.shared.queue(report);
    }
}

/// Input to a virtio-input device while its driver runs it, else to
/// `otherwise` (firmware and boot loaders have no virtio-input driver,
/// as QEMU only hands input to a virtio device its driver has started).
pub struct WhenActive {
    pub device: VirtioInputHandle,
    pub otherwise: Arc<dyn InputSink>,
}

impl WhenActive {
    fn target(&self) -> &dyn InputSink {
        if self.device.is_active() {
            &self.device
        } else {
            self.otherwise.as_ref()
        }
    }
}

impl InputSink for WhenActive {
    fn key(&self, code: u16, down: bool) {
        self.target().key(code, down);
    }

    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        self.target().pointer(x, y, width, height, buttons);
    }
}

/// A virtio-input device.
pub struct Input {
    shared: Arc<Shared>,
    select: u8,
    subsel: u8,
    worker: Option<Worker>,
}

impl Input {
    pub fn new(kind: InputKind) -> std::io::Result<Self> {
        let keys = match kind {
            InputKind::Keyboard => keyboard_keys(),
            InputKind::Mouse | InputKind::Tablet => bitmap([BTN_LEFT, BTN_RIGHT, BTN_MIDDLE]),
        };
        Ok(Input {
            shared: Arc::new(Shared {
                kind,
                keys,
                state: Mutex::new(State::default()),
                active: AtomicBool::new(false),
                leds: AtomicU8::new(0),
                kick: EventFd::new(libc::EFD_NONBLOCK)?,
            }),
            select: 0,
            subsel: 0,
            worker: None,
        })
    }

    pub fn handle(&self) -> VirtioInputHandle {
        VirtioInputHandle {
            shared: self.shared.clone(),
        }
    }

    /// The data of the current `select`/`subsel` (empty: size 0).
    fn answer(&self) -> Vec<u8> {
        let kind = self.shared.kind;
        let sel = u32::from(self.select);
        let sub = u16::from(self.subsel);
        match sel {
            CFG_ID_NAME => {
                let name = match kind {
                    InputKind::Keyboard => "QEMU Virtio Keyboard",
                    InputKind::Mouse => "QEMU Virtio Mouse",
                    InputKind::Tablet => "QEMU Virtio Tablet",
                };
                // With the terminating NUL, as QEMU sizes it.
                let mut v = name.as_bytes().to_vec();
                v.push(0);
                v
            }
            // No serial number is configured.
            CFG_ID_SERIAL | CFG_PROP_BITS => Vec::new(),
            CFG_ID_DEVIDS => {
                let (product, version) = match kind {
                    InputKind::Keyboard => (1u16, 1u16),
                    // QEMU's mouse and tablet with the wheel axis.
                    InputKind::Mouse => (2, 2),
                    InputKind::Tablet => (3, 2),
                };
                [BUS_VIRTUAL, VENDOR, product, version]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            CFG_EV_BITS => match (sub, kind) {
                (EV_SYN, _) => bitmap([SYN_REPORT]),
                (EV_KEY, _) => self.shared.keys.clone(),
                (EV_REL, InputKind::Mouse) => bitmap([REL_X, REL_Y, REL_WHEEL]),
                (EV_REL, InputKind::Tablet) => bitmap([REL_WHEEL]),
                (EV_ABS, InputKind::Tablet) => bitmap([ABS_X, ABS_Y]),
                (EV_LED, InputKind::Keyboard) => bitmap([LED_NUML, LED_CAPSL, LED_SCROLLL]),
                // Autorepeat is the guest's; QEMU offers EV_REP empty.
                (EV_REP, InputKind::Keyboard) => vec![0],
                _ => Vec::new(),
            },
            CFG_ABS_INFO if kind == InputKind::Tablet && (sub == ABS_X || sub == ABS_Y) => {
                // min, max, fuzz, flat, res
                [0, ABS_MAX, 0, 0, 0]
                    .iter()
                    .flat_map(|v: &u32| v.to_le_bytes())
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    fn config_image(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        let data = self.answer();
        let n = data.len().min(CONFIG_LEN - 8);
        c[0] = self.select;
        c[1] = self.subsel;
        c[2] = n as u8;
        c[8..8 + n].copy_from_slice(&data[..n]);
        c
    }
}

struct InputWorker {
    mem: GuestMemory,
    eventq: WorkQueue,
    statusq: WorkQueue,
    irq: Arc<Interrupt>,
    shared: Arc<Shared>,
}

/// Copies queued events into the driver's buffers, one event each;
/// returns whether any buffer was used.
fn deliver(pending: &mut Pending, q: &mut WorkQueue, mem: &GuestMemory) -> bool {
    let mut used = false;
    while let Some(ev) = pending.next() {
        let Some(chain) = q.pop(mem) else { break };
        let head = chain.head_index();
        let mut len = 0;
        if chain_complete(&chain)
            && let Ok(mut w) = chain.writer(mem)
            && w.write_all(&ev.to_bytes()).is_ok()
        {
            len = EVENT_LEN as u32;
        }
        // A buffer too small loses its event rather than stalling the rest.
        pending.advance();
        q.complete(mem, head, len);
        used = true;
    }
    used
}

/// Takes the driver's status events, remembering the LEDs it sets.
fn consume_status(q: &mut WorkQueue, mem: &GuestMemory, irq: &Interrupt, leds: &AtomicU8) {
    q.process(mem, irq, |chain| {
        let Ok(mut r) = chain.reader(mem) else {
            return 0;
        };
        let mut b = [0u8; EVENT_LEN];
        while r.read_exact(&mut b).is_ok() {
            let ev = InputEvent::from_bytes(b);
            if ev.kind == EV_LED && ev.code <= LED_SCROLLL {
                let bit = 1u8 << ev.code;
                if ev.value != 0 {
                    leds.fetch_or(bit, Ordering::AcqRel);
                } else {
                    leds.fetch_and(!bit, Ordering::AcqRel);
                }
            }
        }
        0
    });
}

impl InputWorker {
    fn deliver(&mut self) {
        if !self.eventq.queue.ready() {
            return;
        }
        let used = {
            let mut st = self.shared.state();
            deliver(&mut st.pending, &mut self.eventq, &self.mem)
        };
        if used {
            self.eventq.notify(&self.mem, &self.irq);
        }
    }
}

impl Handler for InputWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.eventq.event.as_raw_fd(), EVENTQ)?;
        poll.add(self.statusq.event.as_raw_fd(), STATUSQ)?;
        poll.add(self.shared.kick.as_raw_fd(), KICK)
    }

    fn event(&mut self, token: u64, _poll: &Poll) {
        match token {
            EVENTQ => {
                self.eventq.ack();
                self.deliver();
            }
            STATUSQ => {
                self.statusq.ack();
                if self.statusq.queue.ready() {
                    consume_status(&mut self.statusq, &self.mem, &self.irq, &self.shared.leds);
                }
            }
            _ => {
                let _ = self.shared.kick.read();
                self.deliver();
            }
        }
    }
}

impl VirtioDevice for Input {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_INPUT
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE, QUEUE_SIZE]
    }
    fn features(&self) -> u64 {
        0
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config_image(), offset, data);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        // Only select (byte 0) and subsel (byte 1) are writable.
        for (i, b) in data.iter().enumerate() {
            match offset.checked_add(i as u64) {
                Some(0) => self.select = *b,
                Some(1) => self.subsel = *b,
                _ => {}
            }
        }
    }
    fn activate(&mut self, act: Activation) -> Result<(), String> {
        let mut qs = act.queues.into_iter();
        let (eq, ee) = qs.next().ok_or("no event queue")?;
        let (sq, se) = qs.next().ok_or("no status queue")?;
        let w = InputWorker {
            mem: act.mem,
            eventq: WorkQueue::new(0, eq, ee),
            statusq: WorkQueue::new(1, sq, se),
            irq: act.interrupt,
            shared: self.shared.clone(),
        };
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::Input, "virtio-input", w)
                .map_err(|e| e.to_string())?,
        );
        self.shared.active.store(true, Ordering::Release);
        Ok(())
    }
    fn quiesce(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }
    fn reset(&mut self) {
        self.shared.active.store(false, Ordering::Release);
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        let mut st = self.shared.state();
        st.pending.clear();
        st.buttons = 0;
        st.position = None;
        drop(st);
        self.shared.leds.store(0, Ordering::Release);
        self.select = 0;
        self.subsel = 0;
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::{Bytes, GuestAddress};

    use super::super::fuzz::{self, USED};
    use super::super::interrupt::{IntxLine, IntxLines};
    use super::super::test_ring::{WRITE, desc, publish};
    use super::*;

    fn select(dev: &mut Input, sel: u32, sub: u16) -> Vec<u8> {
        dev.write_config(0, &[sel as u8]);
        dev.write_config(1, &[sub as u8]);
        let mut size = [0u8];
        dev.read_config(2, &mut size);
        let mut data = vec![0u8; usize::from(size[0])];
        dev.read_config(8, &mut data);
        data
    }

    fn active(kind: InputKind) -> (Input, VirtioInputHandle) {
        let dev = Input::new(kind).unwrap();
        dev.shared.active.store(true, Ordering::Release);
        let h = dev.handle();
        (dev, h)
    }

    fn taken(h: &VirtioInputHandle) -> Vec<Vec<InputEvent>> {
        let mut st = h.shared.state();
        std::mem::take(&mut st.pending.reports).into()
    }

    fn key(code: u16, v: u32) -> InputEvent {
        InputEvent::new(EV_KEY, code, v)
    }

    #[test]
    fn config_space_answers_each_select() {
        let mut k = Input::new(InputKind::Keyboard).unwrap();
        assert_eq!(select(&mut k, CFG_ID_NAME, 0), b"QEMU Virtio Keyboard\0");
        assert_eq!(select(&mut k, CFG_ID_SERIAL, 0), b"");
        assert_eq!(
            select(&mut k, CFG_ID_DEVIDS, 0),
            [0x06, 0, 0x27, 0x06, 1, 0, 1, 0]
        );
        assert_eq!(select(&mut k, CFG_PROP_BITS, 0), b"");
        let keys = select(&mut k, CFG_EV_BITS, EV_KEY);
        assert!(bit_set(&keys, 30) && bit_set(&keys, 1) && bit_set(&keys, 0x160));
        assert!(!bit_set(&keys, 0) && !bit_set(&keys, BTN_LEFT));
        assert_eq!(select(&mut k, CFG_EV_BITS, EV_SYN), [1]);
        assert_eq!(select(&mut k, CFG_EV_BITS, EV_LED), [7]);
        assert_eq!(select(&mut k, CFG_EV_BITS, EV_REP), [0]);
        assert_eq!(select(&mut k, CFG_EV_BITS, EV_REL), b"");
        assert_eq!(select(&mut k, CFG_ABS_INFO, ABS_X), b"");
        assert_eq!(select(&mut k, 0, 0), b"");
        assert_eq!(select(&mut k, 0x55, 0), b"");
        // Writes past subsel change nothing.
        k.write_config(2, &[9, 9]);
        let mut head = [0u8; 3];
        k.read_config(0, &mut head);
        assert_eq!(head, [0x55, 0, 0]);

        let mut m = Input::new(InputKind::Mouse).unwrap();
        assert_eq!(select(&mut m, CFG_ID_NAME, 0), b"QEMU Virtio Mouse\0");
        assert_eq!(select(&mut m, CFG_ID_DEVIDS, 0)[4..], [2, 0, 2, 0]);
        let mut buttons = vec![0u8; 35];
        buttons[34] = 0x07;
        assert_eq!(select(&mut m, CFG_EV_BITS, EV_KEY), buttons);
        assert_eq!(select(&mut m, CFG_EV_BITS, EV_REL), [0x03, 0x01]);
        assert_eq!(select(&mut m, CFG_EV_BITS, EV_ABS), b"");
        assert_eq!(select(&mut m, CFG_EV_BITS, EV_LED), b"");

        let mut t = Input::new(InputKind::Tablet).unwrap();
        assert_eq!(select(&mut t, CFG_ID_NAME, 0), b"QEMU Virtio Tablet\0");
        assert_eq!(select(&mut t, CFG_ID_DEVIDS, 0)[4..], [3, 0, 2, 0]);
        assert_eq!(select(&mut t, CFG_EV_BITS, EV_KEY), buttons);
        assert_eq!(select(&mut t, CFG_EV_BITS, EV_REL), [0x00, 0x01]);
        assert_eq!(select(&mut t, CFG_EV_BITS, EV_ABS), [0x03]);
        let info = select(&mut t, CFG_ABS_INFO, ABS_Y);
        assert_eq!(info.len(), 20);
        assert_eq!(info[0..8], [0, 0, 0, 0, 0xff, 0x7f, 0, 0]);
        assert_eq!(select(&mut t, CFG_ABS_INFO, 2), b"");
        t.reset();
        assert_eq!(select(&mut t, 0, 0), b"");
    }

    #[test]
    fn events_encode_little_endian() {
        assert_eq!(key(30, 1).to_bytes(), [1, 0, 30, 0, 1, 0, 0, 0]);
        let wheel = InputEvent::new(EV_REL, REL_WHEEL, (-1i32) as u32);
        assert_eq!(wheel.to_bytes(), [2, 0, 8, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(InputEvent::from_bytes(wheel.to_bytes()), wheel);
        assert_eq!(SYN.to_bytes(), [0; 8]);
    }

    #[test]
    fn keyboard_reports_known_keys_only() {
        let (_d, h) = active(InputKind::Keyboard);
        h.key(30, true);
        h.key(30, false);
        h.key(BTN_LEFT, true);
        h.key(0x2ff, true);
        h.pointer(1, 1, 10, 10, 1);
        assert_eq!(taken(&h), [vec![key(30, 1), SYN], vec![key(30, 0), SYN]]);
        // Not running: nothing queued.
        let d = Input::new(InputKind::Keyboard).unwrap();
        d.handle().key(30, true);
        assert!(taken(&d.handle()).is_empty());
    }

    #[test]
    fn mouse_reports_motion_buttons_and_wheel() {
        let (_d, h) = active(InputKind::Mouse);
        h.key(30, true);
        h.pointer(100, 100, 800, 600, 0);
        h.pointer(90, 103, 800, 600, 0x01);
        h.pointer(90, 103, 800, 600, 0x01 | 0x08);
        h.pointer(90, 103, 800, 600, 0x01);
        h.pointer(90, 103, 800, 600, 0x04 | 0x10);
        h.pointer(90, 103, 800, 600, 0x04 | 0x10);
        let rel = |c, v: i32| InputEvent::new(EV_REL, c, v as u32);
        assert_eq!(
            taken(&h),
            [
                vec![rel(REL_X, -10), rel(REL_Y, 3), key(BTN_LEFT, 1), SYN],
                vec![rel(REL_WHEEL, 1), SYN],
                vec![key(BTN_LEFT, 0), key(BTN_RIGHT, 1), rel(REL_WHEEL, -1), SYN],
            ]
        );
    }

    #[test]
    fn tablet_scales_to_its_range() {
        let (_d, h) = active(InputKind::Tablet);
        h.pointer(799, 0, 800, 600, 0x02);
        h.pointer(5000, 300, 800, 600, 0x02);
        let abs = |c, v| InputEvent::new(EV_ABS, c, v);
        assert_eq!(
            taken(&h),
            [
                vec![abs(ABS_X, 0x7fff), abs(ABS_Y, 0), key(BTN_MIDDLE, 1), SYN],
                vec![abs(ABS_X, 0x7fff), abs(ABS_Y, 300 * 0x7fff / 599), SYN],
            ]
        );
    }

    #[test]
    fn pending_keeps_the_newest_reports() {
        let mut p = Pending::default();
        for i in 0..(MAX_REPORTS as u16 + 6) {
            p.push(vec![key(i, 1), SYN]);
        }
        assert_eq!(p.reports.len(), MAX_REPORTS);
        assert_eq!(p.next(), Some(key(6, 1)));
        // A report half delivered stays; the next oldest goes.
        p.advance();
        p.push(vec![key(500, 1), SYN]);
        assert_eq!(p.reports.len(), MAX_REPORTS);
        assert_eq!(p.next(), Some(SYN));
        p.advance();
        assert_eq!(p.next(), Some(key(8, 1)));
        assert_eq!(p.reports.back(), Some(&vec![key(500, 1), SYN]));
        p.push(Vec::new());
        assert_eq!(p.reports.len(), MAX_REPORTS - 1);
    }

    fn used(mem: &GuestMemory) -> Vec<(u32, u32)> {
        let idx: u16 = mem.read_obj(GuestAddress(USED + 2)).unwrap();
        (0..u64::from(idx))
            .map(|i| {
                let at = USED + 4 + 8 * i;
                (
                    mem.read_obj(GuestAddress(at)).unwrap(),
                    mem.read_obj(GuestAddress(at + 4)).unwrap(),
                )
            })
            .collect()
    }

    fn irq() -> Interrupt {
        let line = IntxLine {
            lines: Arc::new(IntxLines::new(None)),
            gsi: 5,
            slot: 3,
        };
        Interrupt::new(line, Vec::new())
    }

    const BUF: u64 = 0x8000;

    #[test]
    fn events_wait_for_buffers() {
        let mem = fuzz::guest();
        let ev = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut q = WorkQueue::new(0, fuzz::blk_queue(&mem), ev);
        let mut p = Pending::default();
        assert!(!deliver(&mut p, &mut q, &mem));
        p.push(vec![key(30, 1), SYN]);
        p.push(vec![key(30, 0), SYN]);
        for i in 0..3u16 {
            desc(&mem, i, BUF + 16 * u64::from(i), 8, WRITE, 0);
        }
        // A buffer too small for an event loses that event.
        desc(&mem, 3, BUF + 0x100, 4, WRITE, 0);
        publish(&mem, &[0, 1, 2]);
        assert!(deliver(&mut p, &mut q, &mem));
        assert_eq!(used(&mem), [(0, 8), (1, 8), (2, 8)]);
        let got: Vec<InputEvent> = (0..3)
            .map(|i| InputEvent::from_bytes(mem.read_obj(GuestAddress(BUF + 16 * i)).unwrap()))
            .collect();
        assert_eq!(got, [key(30, 1), SYN, key(30, 0)]);
        assert_eq!(p.next(), Some(SYN));
        publish(&mem, &[0, 1, 2, 0]);
        assert!(deliver(&mut p, &mut q, &mem));
        assert_eq!(used(&mem).last(), Some(&(0, 8)));
        assert_eq!(p.next(), None);
        publish(&mem, &[0, 1, 2, 0, 3]);
        p.push(vec![key(31, 1), SYN]);
        assert!(deliver(&mut p, &mut q, &mem));
        assert_eq!(used(&mem).len(), 5);
        assert_eq!(used(&mem).last(), Some(&(3, 0)));
        assert_eq!(p.next(), Some(SYN));
    }

    #[test]
    fn led_status_is_consumed_and_recorded() {
        let mem = fuzz::guest();
        let ev = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let mut q = WorkQueue::new(1, fuzz::blk_queue(&mem), ev);
        let leds = AtomicU8::new(0);
        let caps = InputEvent::new(EV_LED, LED_CAPSL, 1).to_bytes();
        let num = InputEvent::new(EV_LED, LED_NUML, 1).to_bytes();
        let caps_off = InputEvent::new(EV_LED, LED_CAPSL, 0).to_bytes();
        let odd = InputEvent::new(EV_LED, 9, 1).to_bytes();
        mem.write_slice(&caps, GuestAddress(BUF)).unwrap();
        mem.write_slice(&num, GuestAddress(BUF + 8)).unwrap();
        mem.write_slice(&odd, GuestAddress(BUF + 16)).unwrap();
        desc(&mem, 0, BUF, 8, 0, 0);
        desc(&mem, 1, BUF + 8, 16, 0, 0);
        publish(&mem, &[0, 1]);
        consume_status(&mut q, &mem, &irq(), &leds);
        assert_eq!(leds.load(Ordering::Acquire), 0b011);
        assert_eq!(used(&mem), [(0, 0), (1, 0)]);
        mem.write_slice(&caps_off, GuestAddress(BUF)).unwrap();
        publish(&mem, &[0, 1, 0]);
        consume_status(&mut q, &mem, &irq(), &leds);
        assert_eq!(leds.load(Ordering::Acquire), 0b001);
        assert_eq!(used(&mem).len(), 3);
    }
}
