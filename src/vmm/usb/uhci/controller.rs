//! A UHCI controller's registers, its two root ports and its interrupt
//! line. The frame list is in `schedule.rs`.

use std::time::{Duration, Instant};

use super::regs::portsc::*;
use super::regs::*;
use crate::vmm::usb::Speed;
use crate::vmm::usb::frame_clock::FrameClock;
use crate::vmm::usb::packet::PacketDevice;
use crate::vmm::virtio::interrupt::IntxLine;

const FRAME: Duration = Duration::from_millis(1);

/// A UHCI's registers, ports and frame counter, as a state image keeps
/// them.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UhciState {
    usbcmd: u16,
    usbsts: u16,
    usbint_causes: u8,
    usbintr: u16,
    frame_list: u32,
    sofmod: u8,
    ports: Vec<u16>,
    clock: crate::vmm::usb::frame_clock::FrameClockState,
    done_frame: u64,
}

pub struct Uhci {
    irq: IntxLine,
    pub(super) usbcmd: u16,
    pub(super) usbsts: u16,
    /// Why USBINT is set: an IOC (bit 0) or a short packet (bit 1),
    /// which USBINTR enables apart.
    pub(super) usbint_causes: u8,
    usbintr: u16,
    pub(super) frame_list: u32,
    sofmod: u8,
    pub(super) ports: [u16; PORTS],
    pub(super) clock: FrameClock,
    /// The frame up to which the schedule has been run.
    pub(super) done_frame: u64,
}

pub const CAUSE_IOC: u8 = 1;
pub const CAUSE_SHORT: u8 = 2;

impl Uhci {
    pub fn new(irq: IntxLine) -> Uhci {
        Uhci {
            irq,
            usbcmd: 0,
            usbsts: STS_HALTED,
            usbint_causes: 0,
            usbintr: 0,
            frame_list: 0,
            sofmod: DEFAULT_SOFMOD,
            ports: [ALWAYS; PORTS],
            clock: FrameClock::new(FRAME),
            done_frame: 0,
        }
    }

    pub fn state(&self, now: std::time::Instant) -> UhciState {
        UhciState {
            usbcmd: self.usbcmd,
            usbsts: self.usbsts,
            usbint_causes: self.usbint_causes,
            usbintr: self.usbintr,
            frame_list: self.frame_list,
            sofmod: self.sofmod,
            ports: self.ports.to_vec(),
            clock: self.clock.state(now),
            done_frame: self.done_frame,
        }
    }

    pub fn restore(&mut self, s: &UhciState, now: std::time::Instant) -> Result<(), String> {
        self.ports = s
            .ports
            .as_slice()
            .try_into()
            .map_err(|_| "the saved UHCI has another number of ports".to_string())?;
        self.usbcmd = s.usbcmd;
        self.usbsts = s.usbsts;
        self.usbint_causes = s.usbint_causes;
        self.usbintr = s.usbintr;
        self.frame_list = s.frame_list;
        self.sofmod = s.sofmod;
        self.clock.restore(s.clock, now);
        self.done_frame = s.done_frame;
        Ok(())
    }

    pub fn running(&self) -> bool {
        self.usbcmd & CMD_RUN != 0
    }

    /// Whether packets reach port `i`'s device.
    pub fn port_enabled(&self, i: usize) -> bool {
        self.ports
            .get(i)
            .is_some_and(|p| p & (CCS | PE) == CCS | PE && p & SUSPEND == 0)
    }

    pub fn connected(&self, i: usize) -> bool {
        self.ports.get(i).is_some_and(|p| p & CCS != 0)
    }

    /// Reads `size` bytes (1, 2 or 4) at `off` of the I/O space: 16-bit
    /// registers, a dword read being two of them.
    pub fn read(&self, off: u64, size: usize, now: Instant) -> u32 {
        let word = |o: u64| u32::from(self.read_word(o & !1, now));
        match size {
            4 => word(off) | word(off + 2) << 16,
            2 => word(off),
            _ => (word(off) >> (8 * (off & 1))) & 0xff,
        }
    }

    fn read_word(&self, off: u64, now: Instant) -> u16 {
        match off {
            USBCMD => self.usbcmd,
            USBSTS => self.usbsts,
            USBINTR => self.usbintr,
            FRNUM => self.clock.at(now) as u16 & FRNUM_MASK,
            FLBASEADD => self.frame_list as u16,
            FLBASEADD_HIGH => (self.frame_list >> 16) as u16,
            SOFMOD => u16::from(self.sofmod),
            o if (PORTSC1..PORT_AREA_END).contains(&o) => self
                .ports
                .get(((o - PORTSC1) / 2) as usize)
                .copied()
                .unwrap_or(ABSENT_PORT),
            _ => 0,
        }
    }

    /// Writes `size` bytes at `off`. As on QEMU, an access narrower than
    /// a register writes the whole register with the other byte zero.
    pub fn write(
        &mut self,
        off: u64,
        size: usize,
        v: u32,
        now: Instant,
        devices: &mut [Option<PacketDevice>],
    ) {
        match size {
            4 => {
                self.write_word(off & !1, v as u16, now, devices);
                self.write_word((off & !1) + 2, (v >> 16) as u16, now, devices);
            }
            2 => self.write_word(off & !1, v as u16, now, devices),
            _ => self.write_word(
                off & !1,
                ((v & 0xff) << (8 * (off & 1))) as u16,
                now,
                devices,
            ),
        }
        self.update_irq();
    }

    fn write_word(&mut self, off: u64, v: u16, now: Instant, devices: &mut [Option<PacketDevice>]) {
        match off {
            USBCMD => self.write_usbcmd(v, now, devices),
            USBSTS => {
                self.usbsts &= !(v & STS_WRITE_CLEAR);
                if v & STS_USBINT != 0 {
                    self.usbint_causes = 0;
                }
            }
            USBINTR => self.usbintr = v & 0xf,
            // The frame number is set while halted.
            FRNUM if !self.running() => {
                let f = u64::from(v & FRNUM_MASK);
                self.clock.set(f, now);
                self.done_frame = f;
            }
            FLBASEADD => self.frame_list = (self.frame_list & 0xffff_0000) | u32::from(v & !0xfff),
            FLBASEADD_HIGH => self.frame_list = (self.frame_list & 0xffff) | u32::from(v) << 16,
            SOFMOD => self.sofmod = v as u8 & 0x7f,
            o if (PORTSC1..PORTSC1 + 2 * PORTS as u64).contains(&o) => {
                let i = ((o - PORTSC1) / 2) as usize;
                self.write_port(i, v, devices.get_mut(i).and_then(Option::as_mut));
            }
            _ => {}
        }
    }

    fn write_usbcmd(&mut self, v: u16, now: Instant, devices: &mut [Option<PacketDevice>]) {
        if v & (CMD_GRESET | CMD_HCRESET) != 0 {
            self.reset(devices);
            return;
        }
        let was_running = self.running();
        self.usbcmd = v & 0xff;
        match (was_running, self.running()) {
            (false, true) => {
                self.usbsts &= !STS_HALTED;
                self.clock.start(now);
                self.done_frame = self.clock.at(now);
            }
            (true, false) => {
                self.usbsts |= STS_HALTED;
                self.clock.stop(now);
            }
            _ => {}
        }
    }

    /// HCRESET (or a global reset): registers to their defaults; a
    /// device still connected shows as newly connected, reset.
    fn reset(&mut self, devices: &mut [Option<PacketDevice>]) {
        self.usbcmd = 0;
        self.usbsts = STS_HALTED;
        self.usbint_causes = 0;
        self.usbintr = 0;
        self.frame_list = 0;
        self.sofmod = DEFAULT_SOFMOD;
        self.clock = FrameClock::new(FRAME);
        self.done_frame = 0;
        for (i, p) in self.ports.iter_mut().enumerate() {
            let connected = *p & CCS != 0;
            *p = ALWAYS;
            if connected {
                *p |= CCS | CSC;
                if let Some(Some(d)) = devices.get_mut(i) {
                    d.reset();
                }
            }
        }
    }

    fn write_port(&mut self, i: usize, v: u16, device: Option<&mut PacketDevice>) {
        let Some(p) = self.ports.get_mut(i) else {
            return;
        };
        if v & RESET != 0 && *p & RESET == 0 && *p & CCS != 0 {
            // The reset signalling starts: the device is reset.
            if let Some(d) = device {
                d.reset();
            }
        }
        let mut v = v;
        // A port is enabled only with a device on it.
        if *p & CCS == 0 {
            v &= !PE;
        }
        *p = (*p & READ_ONLY) | (v & !READ_ONLY);
        *p &= !(v & WRITE_CLEAR);
    }

    /// Connects port `i`'s device (at full speed).
    pub fn attach(&mut self, i: usize, device: &mut PacketDevice) {
        if let Some(p) = self.ports.get_mut(i)
            && *p & CCS == 0
        {
            *p |= CCS | CSC;
            device.attach(Speed::Full);
            self.resume_detected();
        }
    }

    /// Disconnects port `i`'s device (it went to the EHCI).
    pub fn detach(&mut self, i: usize) {
        if let Some(p) = self.ports.get_mut(i)
            && *p & CCS != 0
        {
            *p = (*p & !CCS) | CSC;
            if *p & PE != 0 {
                *p = (*p & !PE) | PEC;
            }
            self.resume_detected();
        }
    }

    /// Input for port `i`'s device: a suspended port signals resume.
    pub fn remote_wakeup(&mut self, i: usize) {
        if let Some(p) = self.ports.get_mut(i)
            && *p & (CCS | SUSPEND) == CCS | SUSPEND
            && *p & RESUME_DETECT == 0
        {
            *p |= RESUME_DETECT;
            self.resume_detected();
        }
    }

    /// A connect change or wakeup while the bus is globally suspended:
    /// resume signalling (UHCI 1.1 section 2.1.1, FGR).
    fn resume_detected(&mut self) {
        if self.usbcmd & CMD_EGSM != 0 {
            self.usbcmd |= CMD_FGR;
            self.usbsts |= STS_RESUME;
            self.update_irq();
        }
    }

    /// A DMA failure or a TD the controller cannot run: it stops.
    pub(super) fn halt_with(&mut self, status: u16, now: Instant, what: &str) {
        tracing::warn!("UHCI: {what}; controller halted");
        self.usbsts |= status | STS_HALTED;
        self.usbcmd &= !CMD_RUN;
        self.clock.stop(now);
        self.update_irq();
    }

    /// The INTx level (UHCI 1.1 section 2.1.3 with QEMU's split of
    /// USBINT into its IOC and short-packet causes).
    pub fn update_irq(&self) {
        let s = self.usbsts;
        let e = self.usbintr;
        let causes = self.usbint_causes;
        let level = (causes & CAUSE_IOC != 0 && e & INTR_IOC != 0)
            || (causes & CAUSE_SHORT != 0 && e & INTR_SHORT != 0)
            || (s & STS_ERROR != 0 && e & INTR_TIMEOUT_CRC != 0)
            || (s & STS_RESUME != 0 && e & INTR_RESUME != 0)
            || s & (STS_HOST_ERROR | STS_PROCESS_ERROR) != 0;
        self.irq.set(level);
    }

    /// A frame while running: the frame list is walked every millisecond.
    pub fn next_wakeup(&self) -> Option<Duration> {
        self.running().then_some(FRAME)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vmm::usb::hid::HidKind;
    use crate::vmm::virtio::interrupt::IntxLines;

    fn uhci() -> (Uhci, Arc<IntxLines>) {
        let lines = Arc::new(IntxLines::new(None));
        let irq = IntxLine {
            lines: lines.clone(),
            gsi: 20,
            slot: 5,
        };
        (Uhci::new(irq), lines)
    }

    #[test]
    fn registers_after_reset_and_frnum_counting() {
        let (mut u, _) = uhci();
        let t0 = Instant::now();
        let mut devs: Vec<Option<PacketDevice>> = vec![None, None];
        assert_eq!(u.read(USBSTS, 2, t0), u32::from(STS_HALTED));
        assert_eq!(u.read(SOFMOD, 1, t0), 64);
        assert_eq!(u.read(PORTSC1, 2, t0), 0x80);
        assert_eq!(u.read(PORTSC1 + 4, 2, t0), u32::from(ABSENT_PORT));
        u.write(FLBASEADD, 4, 0x1234_5fff, t0, &mut devs);
        assert_eq!(u.read(FLBASEADD, 4, t0), 0x1234_5000);
        u.write(FRNUM, 2, 0x7fe, t0, &mut devs);
        u.write(USBCMD, 2, u32::from(CMD_RUN), t0, &mut devs);
        assert_eq!(u.read(USBSTS, 2, t0) & u32::from(STS_HALTED), 0);
        let later = t0 + Duration::from_millis(5);
        assert_eq!(u.read(FRNUM, 2, later), 3, "wraps at 2048");
        u.write(FRNUM, 2, 0, later, &mut devs);
        assert_eq!(u.read(FRNUM, 2, later), 3, "not while running");
        u.write(USBCMD, 2, 0, later, &mut devs);
        assert_eq!(
            u.read(FRNUM, 2, later + Duration::from_secs(1)),
            3,
            "halted"
        );
        assert_ne!(u.read(USBSTS, 2, later) & u32::from(STS_HALTED), 0);
    }

    #[test]
    fn ports_connect_reset_enable_and_disconnect() {
        let (mut u, lines) = uhci();
        let t0 = Instant::now();
        let mut devs = vec![Some(PacketDevice::new(HidKind::Tablet)), None];
        let mut d = devs[0].take().unwrap();
        u.attach(0, &mut d);
        devs[0] = Some(d);
        assert_eq!(u.read(PORTSC1, 2, t0), u32::from(ALWAYS | CCS | CSC));
        // An empty port cannot be enabled.
        u.write(PORTSC1 + 2, 2, u32::from(PE), t0, &mut devs);
        assert!(!u.port_enabled(1));
        // SeaBIOS's sequence: reset, end of reset, enable.
        u.write(PORTSC1, 2, u32::from(RESET), t0, &mut devs);
        u.write(PORTSC1, 2, 0, t0, &mut devs);
        u.write(PORTSC1, 2, u32::from(PE | CSC), t0, &mut devs);
        assert_eq!(u.read(PORTSC1, 2, t0), u32::from(ALWAYS | CCS | PE));
        assert!(u.port_enabled(0));
        u.detach(0);
        assert_eq!(u.read(PORTSC1, 2, t0), u32::from(ALWAYS | CSC | PEC));
        // HCRESET keeps nothing but what is connected.
        assert!(!lines.level(20));
        u.write(USBCMD, 2, u32::from(CMD_HCRESET), t0, &mut devs);
        assert_eq!(u.read(PORTSC1, 2, t0), u32::from(ALWAYS));
    }
}
