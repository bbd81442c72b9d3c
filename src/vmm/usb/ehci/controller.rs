//! The EHCI host controller's state: operational registers, root ports,
//! FRINDEX and the interrupt line. The schedules are in `schedule.rs`.

use std::time::{Duration, Instant};

use super::port::Port;
use super::regs::*;
use crate::vmm::usb::Speed;
use crate::vmm::usb::frame_clock::FrameClock;
use crate::vmm::usb::packet::PacketDevice;
use crate::vmm::virtio::interrupt::IntxLine;

const MICROFRAME: Duration = Duration::from_micros(125);
/// Interrupt threshold after reset: 8 microframes.
const DEFAULT_ITC: u32 = 8;

/// The controller's registers, ports and frame counter, as a state image
/// keeps them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhciState {
    usbcmd: u32,
    usbsts: u32,
    usbintr: u32,
    periodic_base: u32,
    async_address: u32,
    configflag: u32,
    ports: Vec<Port>,
    clock: crate::vmm::usb::frame_clock::FrameClockState,
    done_uframe: u64,
}

pub struct Ehci {
    irq: IntxLine,
    companions: bool,
    pub(super) usbcmd: u32,
    /// The interrupt causes and HSE; the state bits are derived.
    pub(super) usbsts: u32,
    usbintr: u32,
    pub(super) periodic_base: u32,
    pub(super) async_address: u32,
    configflag: u32,
    pub(super) ports: [Port; PORTS],
    pub(super) clock: FrameClock,
    /// The microframe up to which the schedules have been run.
    pub(super) done_uframe: u64,
}

impl Ehci {
    /// A halted controller; `companions`: whether UHCI companions take
    /// the ports it does not own.
    pub fn new(irq: IntxLine, companions: bool) -> Ehci {
        Ehci {
            irq,
            companions,
            usbcmd: DEFAULT_ITC << CMD_ITC_SHIFT,
            usbsts: 0,
            usbintr: 0,
            periodic_base: 0,
            async_address: 0,
            configflag: 0,
            ports: [Port::new(companions); PORTS],
            clock: FrameClock::new(MICROFRAME),
            done_uframe: 0,
        }
    }

    pub fn state(&self, now: std::time::Instant) -> EhciState {
        EhciState {
            usbcmd: self.usbcmd,
            usbsts: self.usbsts,
            usbintr: self.usbintr,
            periodic_base: self.periodic_base,
            async_address: self.async_address,
            configflag: self.configflag,
            ports: self.ports.to_vec(),
            clock: self.clock.state(now),
            done_uframe: self.done_uframe,
        }
    }

    pub fn restore(&mut self, s: &EhciState, now: std::time::Instant) -> Result<(), String> {
        self.ports = s
            .ports
            .as_slice()
            .try_into()
            .map_err(|_| "the saved EHCI has another number of ports".to_string())?;
        self.usbcmd = s.usbcmd;
        self.usbsts = s.usbsts;
        self.usbintr = s.usbintr;
        self.periodic_base = s.periodic_base;
        self.async_address = s.async_address;
        self.configflag = s.configflag;
        self.clock.restore(s.clock, now);
        self.done_uframe = s.done_uframe;
        Ok(())
    }

    pub fn has_companions(&self) -> bool {
        self.companions
    }

    pub fn running(&self) -> bool {
        self.usbcmd & CMD_RUN != 0
    }

    pub fn port(&self, i: usize) -> Option<&Port> {
        self.ports.get(i)
    }

    /// USBSTS as read: the causes plus the state of the controller and
    /// its schedules (which follow their enables at once here).
    fn status(&self) -> u32 {
        let mut v = self.usbsts;
        if self.running() {
            if self.usbcmd & CMD_PSE != 0 {
                v |= STS_PSS;
            }
            if self.usbcmd & CMD_ASE != 0 {
                v |= STS_ASS;
            }
        } else {
            v |= STS_HALTED;
        }
        v
    }

    /// Reads the register dword at `off` of BAR 0.
    pub fn read(&self, off: u64, now: Instant) -> u32 {
        if off < CAP_LENGTH {
            return capability(off, self.companions);
        }
        match off - CAP_LENGTH {
            USBCMD => self.usbcmd,
            USBSTS => self.status(),
            USBINTR => self.usbintr,
            FRINDEX => self.clock.at(now) as u32 & FRINDEX_MASK,
            PERIODICLISTBASE => self.periodic_base,
            ASYNCLISTADDR => self.async_address,
            CONFIGFLAG => self.configflag,
            r if r >= PORTSC0 => port_index(r)
                .and_then(|i| self.ports.get(i))
                .map_or(0, Port::read),
            // CTRLDSSEGMENT reads 0 without 64-bit addressing.
            _ => 0,
        }
    }

    /// Writes the register dword at `off` of BAR 0. `devices` are the
    /// root ports' devices, for the port resets the write may end.
    pub fn write(&mut self, off: u64, v: u32, now: Instant, devices: &mut [Option<PacketDevice>]) {
        let Some(reg) = off.checked_sub(CAP_LENGTH) else {
            return;
        };
        match reg {
            USBCMD => self.write_usbcmd(v, now),
            USBSTS => self.usbsts &= !(v & STS_CAUSES),
            USBINTR => self.usbintr = v & STS_CAUSES,
            FRINDEX => {
                let at = u64::from(v & FRINDEX_MASK);
                self.clock.set(at, now);
                self.done_uframe = at;
            }
            PERIODICLISTBASE => self.periodic_base = v & !0xfff,
            ASYNCLISTADDR => self.async_address = v & !0x1f,
            CONFIGFLAG => {
                // Set: every port is the EHCI's; cleared: every port
                // goes to the companions (section 4.2).
                let v = v & 1;
                if v != self.configflag {
                    for p in &mut self.ports {
                        p.set_owner(v == 0);
                    }
                }
                self.configflag = v;
            }
            r if r >= PORTSC0 => {
                if let Some(i) = port_index(r)
                    && let Some(p) = self.ports.get_mut(i)
                    && p.write(v)
                    && let Some(Some(d)) = devices.get_mut(i)
                {
                    d.reset();
                }
            }
            _ => {}
        }
        self.update_irq();
    }

    fn write_usbcmd(&mut self, v: u32, now: Instant) {
        if v & CMD_HCRESET != 0 {
            self.reset();
            return;
        }
        let was_running = self.running();
        self.usbcmd = v & CMD_STORED;
        match (was_running, self.running()) {
            (false, true) => {
                self.clock.start(now);
                self.done_uframe = self.clock.at(now);
            }
            (true, false) => self.clock.stop(now),
            _ => {}
        }
        // The controller caches no queue head between its passes over
        // the schedule, so the doorbell is answered at once.
        if v & CMD_IAAD != 0 && self.running() {
            self.usbsts |= STS_IAA;
        }
    }

    /// HCRESET: registers to their defaults, ports back to the
    /// companions (the caller attaches the devices again).
    fn reset(&mut self) {
        self.usbcmd = DEFAULT_ITC << CMD_ITC_SHIFT;
        self.usbsts = 0;
        self.usbintr = 0;
        self.periodic_base = 0;
        self.async_address = 0;
        self.configflag = 0;
        self.ports = [Port::new(self.companions); PORTS];
        self.clock = FrameClock::new(MICROFRAME);
        self.done_uframe = 0;
    }

    /// Sets interrupt causes; the line follows.
    pub(super) fn raise(&mut self, causes: u32) {
        self.usbsts |= causes & STS_CAUSES;
        self.update_irq();
    }

    /// A DMA failure: the controller stops (USBSTS.HSE, HCHalted).
    pub(super) fn host_system_error(&mut self, now: Instant, what: &str) {
        tracing::warn!("EHCI: host system error: {what}; controller halted");
        self.usbcmd &= !CMD_RUN;
        self.clock.stop(now);
        self.raise(STS_HSE);
    }

    /// The INTx level: an enabled cause is set.
    pub fn update_irq(&self) {
        self.irq.set(self.usbsts & self.usbintr & STS_CAUSES != 0);
    }

    /// Connects the device of port `i` to the EHCI (at high speed).
    pub fn attach(&mut self, i: usize, device: &mut PacketDevice) {
        if let Some(p) = self.ports.get_mut(i)
            && p.attach()
        {
            device.attach(Speed::High);
            self.raise(STS_PCD);
        }
    }

    /// Disconnects port `i`'s device (it goes to the companion).
    pub fn detach(&mut self, i: usize) {
        if let Some(p) = self.ports.get_mut(i)
            && p.detach()
        {
            self.raise(STS_PCD);
        }
    }

    /// Input for a device whose port is suspended: it resumes the port
    /// if the guest let it wake the bus.
    pub fn remote_wakeup(&mut self, i: usize) {
        if let Some(p) = self.ports.get_mut(i)
            && p.connected()
            && p.wakeup()
        {
            self.raise(STS_PCD);
        }
    }

    /// How long the worker may sleep: a frame while a schedule runs, up
    /// to the next frame list rollover when only its interrupt is
    /// wanted, indefinitely otherwise.
    pub fn next_wakeup(&self, now: Instant) -> Option<Duration> {
        if !self.running() {
            return None;
        }
        if self.usbcmd & (CMD_PSE | CMD_ASE) != 0 {
            return Some(Duration::from_millis(1));
        }
        if self.usbintr & STS_FLR != 0 {
            let next = (self.done_uframe / FRAME_LIST_ROLLOVER + 1) * FRAME_LIST_ROLLOVER;
            return self.clock.when(next, now);
        }
        None
    }
}

/// The port of a PORTSC register offset (from CAP_LENGTH).
fn port_index(reg: u64) -> Option<usize> {
    let rel = reg.checked_sub(PORTSC0)?;
    (rel.is_multiple_of(4)).then_some((rel / 4) as usize)
}
