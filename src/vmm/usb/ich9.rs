//! ICH9's USB 2 set as libvirt and QEMU build it for `ich9-ehci1` with
//! `ich9-uhci1..3`: one PCI slot holding the EHCI at function 7 and its
//! three UHCI companions at functions 0-2, six root ports between them.
//!
//! A device sits on one root port; the EHCI's PORT_OWNER bit (and
//! CONFIGFLAG, which sets or clears it on every port) says which
//! controller has it: the EHCI at high speed, or the companion whose
//! ports start at its `master startport` (ports 2k and 2k+1 are UHCI k's
//! 1 and 2) at full speed. One lock holds all four controllers and the
//! devices, so a handover is never half done.
//!
//! The schedules run on a worker thread started when a controller first
//! runs: every millisecond while a UHCI runs or an EHCI schedule is
//! enabled, asleep otherwise (FRINDEX and FRNUM are computed from the
//! clock when read). Register writes wake it.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::EventFd;

pub use super::AttachedDevice;
use super::ehci::pci::{EhciConfigSpace, INTERRUPT_PIN as EHCI_PIN};
use super::ehci::regs::{PORTS, PORTS_PER_COMPANION};
use super::ehci::{self, Ehci};
use super::packet::PacketDevice;
use super::uhci::pci::{ICH9_COMPANIONS, UhciConfigSpace};
use super::uhci::{self, Uhci};
use crate::keymap::{self, Codeset};
use crate::vmm::devices::pci::{PciFunction, SharedFunction};
use crate::vmm::display::{Buttons, InputSink};
use crate::vmm::layout;
use crate::vmm::memory::GuestMemory;
use crate::vmm::sandbox::ThreadKind;
use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};
use crate::vmm::virtio::worker::{Handler, LazyWorker, Poll};

/// The EHCI's function number; the companions are 0, 1, 2.
pub const EHCI_FUNCTION: u8 = 7;

/// The controllers and the devices on their ports.
pub struct Usb2Set {
    mem: GuestMemory,
    ehci: Ehci,
    /// The companions, empty for an EHCI on its own.
    uhci: Vec<Uhci>,
    devices: Vec<Option<PacketDevice>>,
}

impl Usb2Set {
    fn new(
        mem: GuestMemory,
        ehci: Ehci,
        uhci: Vec<Uhci>,
        devices: Vec<Option<PacketDevice>>,
    ) -> Usb2Set {
        let mut set = Usb2Set {
            mem,
            ehci,
            uhci,
            devices,
        };
        set.route_ports();
        set
    }

    /// Puts each device where its port's owner says.
    fn route_ports(&mut self) {
        for i in 0..PORTS {
            let Some(Some(device)) = self.devices.get_mut(i) else {
                continue;
            };
            let to_companion = self.ehci.port(i).is_some_and(|p| p.owned_by_companion());
            let companion = self
                .uhci
                .get_mut(i / PORTS_PER_COMPANION)
                .map(|u| (u, i % PORTS_PER_COMPANION));
            match companion {
                Some((u, j)) if to_companion => {
                    self.ehci.detach(i);
                    u.attach(j, device);
                }
                Some((u, j)) => {
                    u.detach(j);
                    self.ehci.attach(i, device);
                }
                None => self.ehci.attach(i, device),
            }
        }
    }

    fn ehci_read(&self, off: u64, now: Instant) -> u32 {
        self.ehci.read(off, now)
    }

    fn ehci_write(&mut self, off: u64, v: u32, now: Instant) {
        self.ehci.write(off, v, now, &mut self.devices);
        self.route_ports();
    }

    fn companion_ports(
        devices: &mut [Option<PacketDevice>],
        k: usize,
    ) -> &mut [Option<PacketDevice>] {
        let start = (k * PORTS_PER_COMPANION).min(devices.len());
        let end = (start + PORTS_PER_COMPANION).min(devices.len());
        &mut devices[start..end]
    }

    fn uhci_read(&self, k: usize, off: u64, size: usize, now: Instant) -> u32 {
        self.uhci.get(k).map_or(0, |u| u.read(off, size, now))
    }

    fn uhci_write(&mut self, k: usize, off: u64, size: usize, v: u32, now: Instant) {
        if let Some(u) = self.uhci.get_mut(k) {
            let ports = Self::companion_ports(&mut self.devices, k);
            u.write(off, size, v, now, ports);
        }
    }

    /// Runs the schedules due at `now`.
    pub fn run(&mut self, now: Instant) {
        self.ehci.run(now, &self.mem, &mut self.devices);
        for (k, u) in self.uhci.iter_mut().enumerate() {
            u.run(now, &self.mem, Self::companion_ports(&mut self.devices, k));
        }
    }

    /// How long the worker may sleep (None: until woken).
    pub fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        self.uhci
            .iter()
            .filter_map(Uhci::next_wakeup)
            .chain(self.ehci.next_wakeup(now))
            .min()
    }

    /// After input: a device that may wake the bus resumes its
    /// suspended port.
    fn input_arrived(&mut self) {
        for i in 0..PORTS {
            let wakes = self
                .devices
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|d| d.hid().has_report() && d.hid().remote_wakeup());
            if !wakes {
                continue;
            }
            match self.uhci.get_mut(i / PORTS_PER_COMPANION) {
                Some(u) if u.connected(i % PORTS_PER_COMPANION) => {
                    u.remote_wakeup(i % PORTS_PER_COMPANION)
                }
                _ => self.ehci.remote_wakeup(i),
            }
        }
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The set's controllers and devices, as a state image keeps them (the
/// functions' configuration registers are kept with the PCI functions).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usb2State {
    ehci: ehci::EhciState,
    uhci: Vec<super::uhci::UhciState>,
    devices: Vec<Option<PacketDevice>>,
}

/// The set and its worker, shared by its PCI functions.
pub struct Usb2Shared {
    set: Mutex<Usb2Set>,
    worker: Mutex<LazyWorker>,
}

impl Usb2Shared {
    fn with<R>(&self, f: impl FnOnce(&mut Usb2Set) -> R) -> R {
        f(&mut lock(&self.set))
    }

    /// Wakes the worker (starting it the first time).
    fn wake(self: &Arc<Self>) {
        let usb = self.clone();
        lock(&self.worker).kick(|kick| Some(FrameWorker { usb, kick }));
    }

    /// Stops the worker (at VMM exit, and for a state image).
    pub fn stop(&self) {
        lock(&self.worker).stop();
    }

    /// The controllers' and devices' state; the worker is stopped.
    pub fn state(&self) -> Usb2State {
        let now = Instant::now();
        let set = lock(&self.set);
        Usb2State {
            ehci: set.ehci.state(now),
            uhci: set.uhci.iter().map(|u| u.state(now)).collect(),
            devices: set.devices.clone(),
        }
    }

    /// Loads a saved state into a set built from the same configuration;
    /// its worker runs again if a controller runs.
    pub fn restore(self: &Arc<Self>, s: &Usb2State) -> Result<(), String> {
        let now = Instant::now();
        {
            let mut set = lock(&self.set);
            if s.uhci.len() != set.uhci.len() || s.devices.len() != set.devices.len() {
                return Err("the saved USB 2 controllers differ".into());
            }
            set.ehci.restore(&s.ehci, now)?;
            for (u, st) in set.uhci.iter_mut().zip(&s.uhci) {
                u.restore(st, now)?;
            }
            set.devices = s.devices.clone();
        }
        self.resume();
        Ok(())
    }

    /// Starts the worker again if a controller runs.
    pub fn resume(self: &Arc<Self>) {
        let running = {
            let set = lock(&self.set);
            set.ehci.running() || set.uhci.iter().any(Uhci::running)
        };
        if running {
            self.wake();
        }
    }
}

/// The worker: runs the schedules on wakeups and every frame they need.
struct FrameWorker {
    usb: Arc<Usb2Shared>,
    kick: EventFd,
}

impl Handler for FrameWorker {
    fn register(&mut self, poll: &Poll) -> io::Result<()> {
        poll.add(self.kick.as_raw_fd(), 0)
    }

    fn event(&mut self, _token: u64, _poll: &Poll) {
        let _ = self.kick.read();
        self.usb.with(|s| s.run(Instant::now()));
    }

    fn timeout_ms(&self) -> Option<i32> {
        let d = self.usb.with(|s| s.next_wakeup(Instant::now()))?;
        Some(i32::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i32::MAX))
    }

    fn tick(&mut self, _poll: &Poll) {
        self.usb.with(|s| s.run(Instant::now()));
    }
}

/// The EHCI function (7).
pub struct EhciFunction {
    usb: Arc<Usb2Shared>,
    config: EhciConfigSpace,
}

impl PciFunction for EhciFunction {
    fn read_config(&self, reg: u16) -> u32 {
        self.config.read(reg)
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        self.config.write(reg, value);
    }

    fn config_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.config).ok()
    }

    fn restore_config_state(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.config = serde_json::from_value(state.clone())
            .map_err(|e| format!("EHCI configuration state: {e}"))?;
        Ok(())
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        self.config.bar_offset(addr).map(|off| (0, off))
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        let aligned = offset & !3;
        let now = Instant::now();
        let bytes = self.usb.with(|s| {
            let mut b = s.ehci_read(aligned, now).to_le_bytes().to_vec();
            if (offset & 3) as usize + data.len() > 4 {
                b.extend_from_slice(&s.ehci_read(aligned + 4, now).to_le_bytes());
            }
            b
        });
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get((offset & 3) as usize + i).copied().unwrap_or(0);
        }
    }

    fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
        // The operational registers take aligned dwords.
        let Ok(word) = <[u8; 4]>::try_from(data) else {
            return;
        };
        if offset & 3 != 0 {
            return;
        }
        let v = u32::from_le_bytes(word);
        self.usb.with(|s| s.ehci_write(offset, v, Instant::now()));
        self.usb.wake();
    }
}

/// A UHCI companion function (0, 1 or 2).
pub struct UhciFunction {
    usb: Arc<Usb2Shared>,
    index: usize,
    config: UhciConfigSpace,
}

impl PciFunction for UhciFunction {
    fn read_config(&self, reg: u16) -> u32 {
        self.config.read(reg)
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        self.config.write(reg, value);
    }

    fn config_state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.config).ok()
    }

    fn restore_config_state(&mut self, state: &serde_json::Value) -> Result<(), String> {
        self.config = serde_json::from_value(state.clone())
            .map_err(|e| format!("UHCI configuration state: {e}"))?;
        Ok(())
    }

    fn bar_at(&self, _addr: u64) -> Option<(usize, u64)> {
        None
    }

    fn io_bar_at(&self, port: u64) -> Option<(usize, u64)> {
        self.config.io_offset(port).map(|off| (4, off))
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        let size = data.len().min(4);
        let v = self
            .usb
            .with(|s| s.uhci_read(self.index, offset, size, Instant::now()));
        for (i, b) in data.iter_mut().enumerate() {
            *b = v.to_le_bytes().get(i).copied().unwrap_or(0xff);
        }
    }

    fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
        let mut word = [0u8; 4];
        let size = data.len().min(4);
        word[..size].copy_from_slice(&data[..size]);
        let v = u32::from_le_bytes(word);
        let index = self.index;
        self.usb
            .with(|s| s.uhci_write(index, offset, size, v, Instant::now()));
        self.usb.wake();
    }
}

/// Feeds console input to the HID devices of the set.
#[derive(Clone)]
pub struct Usb2Input {
    usb: Arc<Usb2Shared>,
}

impl Usb2Input {
    /// A key as a HID keyboard usage.
    pub fn key_usage(&self, usage: u8, down: bool) {
        self.usb.with(|s| {
            for d in s.devices.iter_mut().flatten() {
                d.hid_mut().key_usage(usage, down);
            }
            s.input_arrived();
        });
    }
}

impl InputSink for Usb2Input {
    fn key(&self, code: u16, down: bool) {
        let usage = keymap::from_linux(Codeset::Usb, code).and_then(|u| u8::try_from(u).ok());
        if let Some(u) = usage {
            self.key_usage(u, down);
        }
    }

    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        self.usb.with(|s| {
            for d in s.devices.iter_mut().flatten() {
                d.hid_mut().pointer(x, y, width, height, buttons);
            }
            s.input_arrived();
        });
    }
}

/// Where the VMM put the set: its slot, the EHCI's BAR 0 and the first
/// of the companions' I/O BARs (32 ports each, one after the other).
#[derive(Clone, Copy, Debug)]
pub struct Placement {
    pub slot: u8,
    pub ehci_bar: u32,
    pub uhci_io: u16,
}

/// A built set: the functions to plug, by function number.
pub struct Usb2Functions {
    pub functions: Vec<(u8, SharedFunction)>,
    pub input: Usb2Input,
    pub shared: Arc<Usb2Shared>,
}

/// Builds the set with `devices` on its ports; `companions` adds the
/// three UHCIs. INTx pins as on QEMU (UHCI k pin A+k, EHCI pin D), each
/// on the GSI the DSDT routes the slot's pin to.
pub fn build(
    devices: &[AttachedDevice],
    companions: bool,
    mem: GuestMemory,
    lines: &Arc<IntxLines>,
    at: Placement,
) -> Result<Usb2Functions, String> {
    let intx = |pin: u8| IntxLine {
        lines: lines.clone(),
        gsi: layout::pci_intx_gsi(at.slot, pin - 1),
        slot: at.slot,
    };
    let ports = super::place(devices, PORTS, PacketDevice::new)?;
    let ehci = Ehci::new(intx(EHCI_PIN), companions);
    let uhci: Vec<Uhci> = if companions {
        ICH9_COMPANIONS
            .iter()
            .map(|&(_, pin)| Uhci::new(intx(pin)))
            .collect()
    } else {
        Vec::new()
    };
    let worker = LazyWorker::new(ThreadKind::UsbHost, format!("usb2-{}", at.slot))
        .map_err(|e| format!("eventfd: {e}"))?;
    let shared = Arc::new(Usb2Shared {
        set: Mutex::new(Usb2Set::new(mem, ehci, uhci, ports)),
        worker: Mutex::new(worker),
    });
    let mut functions: Vec<(u8, SharedFunction)> = Vec::new();
    let gsi_of = |pin: u8| layout::pci_intx_gsi(at.slot, pin - 1) as u8;
    if companions {
        for (k, &(device, pin)) in ICH9_COMPANIONS.iter().enumerate() {
            let io = at.uhci_io + (k as u64 * uhci::IO_SIZE) as u16;
            let f = UhciFunction {
                usb: shared.clone(),
                index: k,
                config: UhciConfigSpace::new(device, pin, io, gsi_of(pin)),
            };
            functions.push((k as u8, Arc::new(Mutex::new(f))));
        }
    }
    let f = EhciFunction {
        usb: shared.clone(),
        config: EhciConfigSpace::new(at.ehci_bar, gsi_of(EHCI_PIN)),
    };
    functions.push((EHCI_FUNCTION, Arc::new(Mutex::new(f))));
    Ok(Usb2Functions {
        functions,
        input: Usb2Input {
            usb: shared.clone(),
        },
        shared,
    })
}

/// The size of the I/O range the companions need.
pub const COMPANION_IO_SIZE: u64 = ehci::regs::COMPANIONS as u64 * uhci::IO_SIZE;

#[cfg(test)]
mod tests;
