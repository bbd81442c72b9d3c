//! The host controller's state: operational and runtime registers, the
//! command ring and its commands, device slots, and event delivery
//! through interrupter 0. Transfers are in `transfer.rs`.

use std::sync::Arc;
use std::time::Instant;

use vm_memory::{Bytes, GuestAddress};

use super::context::{self, Context};
use super::port::Port;
use super::regs::*;
use super::rings::{
    ERDP_EHB, Fetch, IMAN_IE, IMAN_IP, Interrupter, Produce, Ring, Trb, completion, trb_type,
};
use crate::vmm::memory::GuestMemory;
use crate::vmm::usb::hid::HidDevice;
use crate::vmm::virtio::Interrupt;

/// Commands run per doorbell before the controller yields the vCPU.
const COMMAND_LIMIT: usize = 256;
/// Endpoint contexts per slot (DCI 1..=31).
pub const ENDPOINTS: usize = 31;

/// An endpoint's state and transfer ring, as the controller keeps them
/// (and mirrors into the output endpoint context).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub state: u32,
    pub ring: Ring,
}

/// A device slot.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    pub enabled: bool,
    pub state: u32,
    /// Root hub port (1-based) once addressed.
    pub port: u8,
    /// The output device context (from the DCBAA).
    pub context: u64,
    pub endpoints: [Endpoint; ENDPOINTS],
}

impl Slot {
    pub fn endpoint(&self, dci: u8) -> Option<&Endpoint> {
        self.endpoints.get(usize::from(dci).checked_sub(1)?)
    }

    pub fn endpoint_mut(&mut self, dci: u8) -> Option<&mut Endpoint> {
        self.endpoints.get_mut(usize::from(dci).checked_sub(1)?)
    }
}

/// The controller's registers, ports, slots and event ring, as a state
/// image keeps them.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControllerState {
    usbcmd: u32,
    usbsts: u32,
    dnctrl: u32,
    command_ring: Ring,
    command_ring_running: bool,
    dcbaap: u64,
    config: u32,
    ports: Vec<Port>,
    slots: Vec<Slot>,
    interrupter: Interrupter,
    /// Microseconds the controller had run (MFINDEX), if it runs.
    running_us: Option<u64>,
}

/// The controller.
pub struct Controller {
    pub(super) mem: GuestMemory,
    irq: Arc<Interrupt>,
    usbcmd: u32,
    usbsts: u32,
    dnctrl: u32,
    command_ring: Ring,
    command_ring_running: bool,
    dcbaap: u64,
    config: u32,
    pub(super) ports: Vec<Port>,
    pub(super) slots: Vec<Slot>,
    pub(super) interrupter: Interrupter,
    started: Option<Instant>,
}

impl Controller {
    /// A halted controller with `devices` on the USB 2 ports (index 0 is
    /// port 1); `irq` is the function's interrupt (MSI-X vector 0 or
    /// INTx).
    pub fn new(devices: Vec<Option<HidDevice>>, mem: GuestMemory, irq: Arc<Interrupt>) -> Self {
        irq.route().queue_vectors = vec![0];
        let mut devices = devices.into_iter();
        let ports = (0..PORTS)
            .map(|i| {
                let usb3 = i >= USB2_PORTS;
                let dev = if usb3 { None } else { devices.next().flatten() };
                Port::new(usb3, dev)
            })
            .collect();
        Controller {
            mem,
            irq,
            usbcmd: 0,
            usbsts: STS_HCH,
            dnctrl: 0,
            command_ring: Ring::default(),
            command_ring_running: false,
            dcbaap: 0,
            config: 0,
            ports,
            slots: vec![Slot::default(); MAX_SLOTS],
            interrupter: Interrupter::new(),
            started: None,
        }
    }

    pub fn state(&self) -> ControllerState {
        ControllerState {
            usbcmd: self.usbcmd,
            usbsts: self.usbsts,
            dnctrl: self.dnctrl,
            command_ring: self.command_ring,
            command_ring_running: self.command_ring_running,
            dcbaap: self.dcbaap,
            config: self.config,
            ports: self.ports.clone(),
            slots: self.slots.clone(),
            interrupter: self.interrupter.clone(),
            running_us: self.started.map(|t| t.elapsed().as_micros() as u64),
        }
    }

    /// Loads a saved state into a controller with the same ports.
    pub fn restore(&mut self, s: &ControllerState) -> Result<(), String> {
        if s.ports.len() != self.ports.len() || s.slots.len() != self.slots.len() {
            return Err("the saved USB controller has other ports or slots".into());
        }
        self.usbcmd = s.usbcmd;
        self.usbsts = s.usbsts;
        self.dnctrl = s.dnctrl;
        self.command_ring = s.command_ring;
        self.command_ring_running = s.command_ring_running;
        self.dcbaap = s.dcbaap;
        self.config = s.config;
        self.ports = s.ports.clone();
        self.slots = s.slots.clone();
        self.interrupter = s.interrupter.clone();
        self.started = s.running_us.map(|us| {
            let ran = std::time::Duration::from_micros(us);
            Instant::now().checked_sub(ran).unwrap_or_else(Instant::now)
        });
        Ok(())
    }

    /// HCRST: everything back to the power-on state.
    fn reset(&mut self) {
        self.usbcmd = 0;
        self.usbsts = STS_HCH;
        self.dnctrl = 0;
        self.command_ring = Ring::default();
        self.command_ring_running = false;
        self.dcbaap = 0;
        self.config = 0;
        for p in &mut self.ports {
            p.power_on();
        }
        self.slots.fill(Slot::default());
        self.interrupter = Interrupter::new();
        self.started = None;
        self.update_irq(false);
    }

    pub(super) fn running(&self) -> bool {
        self.usbcmd & CMD_RUN != 0
    }

    /// A DMA failure: the controller stops (USBSTS.HSE, HCH).
    pub(super) fn host_system_error(&mut self, what: &str) {
        tracing::warn!("xHCI: host system error: {what}; controller halted");
        self.usbsts |= STS_HSE | STS_HCH;
        self.usbcmd &= !CMD_RUN;
        self.command_ring_running = false;
    }

    /// Reads the register dword at `off` of BAR 0.
    pub fn read(&self, off: u64) -> u32 {
        match off {
            _ if off < CAP_LENGTH => capability(off),
            _ if off < PORT_REGISTERS => self.read_operational(off - OPERATIONAL),
            _ if off < RUNTIME => match port_register(off) {
                Some((p, 0)) => self.ports[p].read(),
                Some((p, 4)) => self.ports[p].pmsc,
                _ => 0,
            },
            _ if off == RUNTIME => self.mfindex(),
            _ if (INTERRUPTER0..INTERRUPTER0 + 0x20).contains(&off) => {
                self.read_interrupter(off - INTERRUPTER0)
            }
            _ => 0,
        }
    }

    fn read_operational(&self, reg: u64) -> u32 {
        match reg {
            USBCMD => self.usbcmd,
            USBSTS => self.usbsts,
            // 4 KiB pages only.
            PAGESIZE => 1,
            DNCTRL => self.dnctrl,
            CRCR_LO if self.command_ring_running => CRCR_CRR,
            DCBAAP_LO => self.dcbaap as u32,
            DCBAAP_HI => (self.dcbaap >> 32) as u32,
            CONFIG => self.config,
            _ => 0,
        }
    }

    fn read_interrupter(&self, reg: u64) -> u32 {
        let i = &self.interrupter;
        match reg {
            IMAN => i.iman,
            IMOD => i.imod,
            ERSTSZ => i.erstsz,
            ERSTBA_LO => i.erstba as u32,
            ERSTBA_HI => (i.erstba >> 32) as u32,
            ERDP_LO => i.erdp as u32,
            ERDP_HI => (i.erdp >> 32) as u32,
            _ => 0,
        }
    }

    /// The microframe index: 125 us ticks while running.
    fn mfindex(&self) -> u32 {
        match self.started {
            Some(t) if self.running() => ((t.elapsed().as_micros() / 125) & 0x3fff) as u32,
            _ => 0,
        }
    }

    /// Writes the register dword at `off` of BAR 0.
    pub fn write(&mut self, off: u64, v: u32) {
        match off {
            _ if off < CAP_LENGTH => {}
            _ if off < PORT_REGISTERS => self.write_operational(off - OPERATIONAL, v),
            _ if off < RUNTIME => match port_register(off) {
                Some((p, 0)) => self.write_port(p, v),
                Some((p, 4)) => self.ports[p].pmsc = v,
                _ => {}
            },
            _ if (INTERRUPTER0..INTERRUPTER0 + 0x20).contains(&off) => {
                self.write_interrupter(off - INTERRUPTER0, v)
            }
            _ if (DOORBELLS..DOORBELLS + 4 * (MAX_SLOTS as u64 + 1)).contains(&off) => {
                self.doorbell(((off - DOORBELLS) / 4) as usize, v)
            }
            _ => {}
        }
    }

    fn write_port(&mut self, p: usize, v: u32) {
        if self.ports[p].write(v) {
            self.port_changed(p);
        }
    }

    fn write_operational(&mut self, reg: u64, v: u32) {
        match reg {
            USBCMD => self.write_usbcmd(v),
            USBSTS => {
                self.usbsts &= !(v & STS_WRITE_CLEAR);
                self.update_irq(false);
            }
            DNCTRL => self.dnctrl = v & 0xffff,
            CRCR_LO => {
                if self.command_ring_running {
                    if v & (CRCR_CS | CRCR_CA) != 0 {
                        self.command_ring_running = false;
                        let ev = command_completion(
                            self.command_ring.dequeue,
                            completion::COMMAND_RING_STOPPED,
                            0,
                        );
                        self.post(ev, true);
                    }
                } else {
                    let high = self.command_ring.dequeue & !0xffff_ffff;
                    self.command_ring = Ring::new(high | u64::from(v & !0x3f), v & CRCR_RCS != 0);
                }
            }
            CRCR_HI if !self.command_ring_running => {
                let low = self.command_ring.dequeue & 0xffff_ffff;
                self.command_ring.dequeue = low | u64::from(v) << 32;
            }
            DCBAAP_LO => self.dcbaap = (self.dcbaap & !0xffff_ffff) | u64::from(v & !0x3f),
            DCBAAP_HI => self.dcbaap = (self.dcbaap & 0xffff_ffff) | u64::from(v) << 32,
            CONFIG => self.config = (v & 0x300) | (v & 0xff).min(MAX_SLOTS as u32),
            _ => {}
        }
    }

    fn write_usbcmd(&mut self, v: u32) {
        if v & CMD_HCRST != 0 {
            self.reset();
            return;
        }
        let was_running = self.running();
        self.usbcmd = v & CMD_STORED;
        match (was_running, self.running()) {
            (false, true) if self.usbsts & STS_HSE == 0 => {
                self.usbsts &= !STS_HCH;
                self.started = Some(Instant::now());
                // Connections made while halted are announced now.
                for p in 0..self.ports.len() {
                    if self.ports[p].has_changes() {
                        self.port_changed(p);
                    }
                }
            }
            (false, true) => self.usbcmd &= !CMD_RUN,
            (true, false) => {
                self.usbsts |= STS_HCH;
                self.command_ring_running = false;
            }
            _ => {}
        }
        self.update_irq(false);
    }

    fn write_interrupter(&mut self, reg: u64, v: u32) {
        let i = &mut self.interrupter;
        match reg {
            IMAN => {
                i.iman = (i.iman & !(v & IMAN_IP) & !IMAN_IE) | (v & IMAN_IE);
                self.update_irq(false);
            }
            IMOD => i.imod = v,
            ERSTSZ => i.erstsz = v & 0xffff,
            ERSTBA_LO | ERSTBA_HI => {
                i.erstba = if reg == ERSTBA_LO {
                    (i.erstba & !0xffff_ffff) | u64::from(v & !0x3f)
                } else {
                    (i.erstba & 0xffff_ffff) | u64::from(v) << 32
                };
                i.load_segments(&self.mem);
            }
            ERDP_LO => {
                let busy = if v & ERDP_EHB as u32 != 0 {
                    0
                } else {
                    i.erdp & ERDP_EHB
                };
                i.erdp = (i.erdp & !0xffff_ffff) | u64::from(v & !0xf | v & 7) | busy;
                i.dequeue_moved();
                // Events that came while the handler was busy.
                if busy == 0 && i.has_pending() && self.running() {
                    self.assert_interrupt();
                }
            }
            ERDP_HI => {
                i.erdp = (i.erdp & 0xffff_ffff) | u64::from(v) << 32;
                i.dequeue_moved();
            }
            _ => {}
        }
    }

    /// Port `p` (0-based) has a new change bit: PCD and an event.
    pub(super) fn port_changed(&mut self, p: usize) {
        self.usbsts |= STS_PCD;
        if self.running() {
            let port_id = (p as u64 + 1) << 24;
            let ev = Trb {
                parameter: port_id,
                status: u32::from(completion::SUCCESS) << 24,
                control: u32::from(trb_type::PORT_STATUS_CHANGE) << 10,
            };
            self.post(ev, true);
        }
    }

    /// Puts an event on the event ring; `interrupt` unless the TRB asked
    /// to block it (BEI).
    pub(super) fn post(&mut self, event: Trb, interrupt: bool) {
        match self.interrupter.produce(&self.mem, event) {
            Produce::Written | Produce::Dropped => {
                self.usbsts |= STS_EINT;
                if interrupt {
                    self.assert_interrupt();
                }
            }
            Produce::Failed => self.host_system_error("no usable event ring"),
        }
    }

    /// Raises interrupter 0 unless its handler is still busy (EHB).
    fn assert_interrupt(&mut self) {
        if self.interrupter.erdp & ERDP_EHB != 0 {
            return;
        }
        self.interrupter.erdp |= ERDP_EHB;
        self.interrupter.iman |= IMAN_IP;
        self.usbsts |= STS_EINT;
        self.update_irq(true);
    }

    /// MSI-X: a message when the interrupter fires (`edge`), after which
    /// IP clears by itself. INTx: the line follows IP.
    fn update_irq(&mut self, edge: bool) {
        let enabled = self.interrupter.iman & IMAN_IE != 0 && self.usbcmd & CMD_INTE != 0;
        let msix = self.irq.route().enabled;
        if msix {
            if edge && enabled {
                self.irq.signal_queue(0);
                self.interrupter.iman &= !IMAN_IP;
            }
        } else if enabled && self.interrupter.iman & IMAN_IP != 0 {
            self.irq.signal_queue(0);
        } else {
            self.irq.take_isr();
        }
    }

    fn doorbell(&mut self, target: usize, v: u32) {
        if !self.running() {
            return;
        }
        if target == 0 {
            if v & 0xff == 0 {
                self.command_ring_running = true;
                self.run_commands();
            }
            return;
        }
        let dci = (v & 0xff) as u8;
        if let Ok(slot_id) = u8::try_from(target) {
            self.kick_endpoint(slot_id, dci);
        }
    }

    fn run_commands(&mut self) {
        for _ in 0..COMMAND_LIMIT {
            if !self.command_ring_running || !self.running() {
                return;
            }
            match self.command_ring.peek(&self.mem) {
                Fetch::Empty => return,
                Fetch::Broken => {
                    self.host_system_error("command ring unreadable or looping");
                    return;
                }
                Fetch::Trb(addr, trb) => {
                    self.command_ring.advance();
                    let (code, slot) = self.command(&trb);
                    self.post(command_completion(addr, code, slot), true);
                }
            }
        }
    }

    /// Runs one command: its completion code and the slot it concerns.
    fn command(&mut self, trb: &Trb) -> (u8, u8) {
        let slot = trb.slot_id();
        let code = match trb.kind() {
            trb_type::ENABLE_SLOT => return self.enable_slot(),
            trb_type::DISABLE_SLOT => self.disable_slot(slot),
            trb_type::ADDRESS_DEVICE => self.address_device(slot, trb),
            trb_type::CONFIGURE_ENDPOINT => self.configure_endpoint(slot, trb),
            trb_type::EVALUATE_CONTEXT => self.evaluate_context(slot, trb.parameter),
            trb_type::RESET_ENDPOINT => {
                self.endpoint_transition(slot, trb.endpoint_id(), context::EP_HALTED)
            }
            trb_type::STOP_ENDPOINT => self.stop_endpoint(slot, trb.endpoint_id()),
            trb_type::SET_TR_DEQUEUE => self.set_dequeue(slot, trb),
            trb_type::RESET_DEVICE => self.reset_device(slot),
            trb_type::NOOP_COMMAND => completion::SUCCESS,
            other => {
                tracing::debug!("xHCI: unsupported command TRB type {other}");
                completion::TRB_ERROR
            }
        };
        (code, slot)
    }

    /// The enabled slot `id`, if it is one.
    pub(super) fn slot(&self, id: u8) -> Option<&Slot> {
        let s = self.slots.get(usize::from(id).checked_sub(1)?)?;
        s.enabled.then_some(s)
    }

    fn slot_mut(&mut self, id: u8) -> Option<&mut Slot> {
        let s = self.slots.get_mut(usize::from(id).checked_sub(1)?)?;
        s.enabled.then_some(s)
    }

    fn enable_slot(&mut self) -> (u8, u8) {
        let limit = (self.config & 0xff) as usize;
        match self.slots.iter().take(limit).position(|s| !s.enabled) {
            Some(i) => {
                self.slots[i] = Slot {
                    enabled: true,
                    ..Default::default()
                };
                (completion::SUCCESS, i as u8 + 1)
            }
            None => (completion::NO_SLOTS, 0),
        }
    }

    fn disable_slot(&mut self, id: u8) -> u8 {
        match self.slot_mut(id) {
            Some(s) => {
                *s = Slot::default();
                completion::SUCCESS
            }
            None => completion::SLOT_NOT_ENABLED,
        }
    }

    fn address_device(&mut self, id: u8, trb: &Trb) -> u8 {
        const BLOCK_SET_ADDRESS: u32 = 1 << 9;
        let Some(slot) = self.slot(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        let bsr = trb.control & BLOCK_SET_ADDRESS != 0;
        if slot.state >= context::SLOT_ADDRESSED || (slot.state == context::SLOT_DEFAULT && bsr) {
            return completion::CONTEXT_STATE_ERROR;
        }
        let input = trb.parameter & !0xf;
        let Some((drop, add)) = context::input_flags(&self.mem, input) else {
            return completion::PARAMETER_ERROR;
        };
        if drop != 0 || add & 3 != 3 {
            return completion::TRB_ERROR;
        }
        let (Some(mut slot_ctx), Some(mut ep0)) = (
            context::at(input, 1).and_then(|a| context::read(&self.mem, a)),
            context::at(input, 2).and_then(|a| context::read(&self.mem, a)),
        ) else {
            return completion::PARAMETER_ERROR;
        };
        let port = context::root_port(&slot_ctx);
        let connected = usize::from(port)
            .checked_sub(1)
            .and_then(|p| self.ports.get(p))
            .is_some_and(|p| p.device.is_some() && p.enabled());
        if !connected {
            return completion::USB_TRANSACTION_ERROR;
        }
        let Some(output) = self.device_context(id) else {
            return completion::PARAMETER_ERROR;
        };
        let (state, address) = if bsr {
            (context::SLOT_DEFAULT, 0)
        } else {
            (context::SLOT_ADDRESSED, id)
        };
        context::set_slot_state(&mut slot_ctx, state, address);
        context::set_endpoint_state(&mut ep0, context::EP_RUNNING);
        let (dequeue, cycle) = context::dequeue(&ep0);
        if self.write_context(output, 0, &slot_ctx).is_none()
            || self.write_context(output, 1, &ep0).is_none()
        {
            return completion::PARAMETER_ERROR;
        }
        if let Some(s) = self.slot_mut(id) {
            s.state = state;
            s.port = port;
            s.context = output;
            s.endpoints[0] = Endpoint {
                state: context::EP_RUNNING,
                ring: Ring::new(dequeue, cycle),
            };
        }
        completion::SUCCESS
    }

    /// The output device context of slot `id`, from the DCBAA.
    fn device_context(&self, id: u8) -> Option<u64> {
        let entry = self.dcbaap.checked_add(8 * u64::from(id))?;
        let addr: u64 = self.mem.read_obj(GuestAddress(entry)).ok()?;
        let addr = addr & !0x3f;
        // The whole context must be guest memory.
        let end = addr.checked_add(32 * context::CONTEXT_SIZE - 1)?;
        (addr != 0 && self.mem.read_obj::<u8>(GuestAddress(end)).is_ok()).then_some(addr)
    }

    fn write_context(&self, base: u64, index: u8, c: &Context) -> Option<()> {
        context::write(&self.mem, context::at(base, index)?, c)
    }

    fn read_context(&self, base: u64, index: u8) -> Option<Context> {
        context::read(&self.mem, context::at(base, index)?)
    }

    /// Mirrors the slot's state and an endpoint's state and dequeue
    /// pointer into the output context.
    pub(super) fn store_endpoint(&self, id: u8, dci: u8) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        let Some(ep) = slot.endpoint(dci) else {
            return;
        };
        let Some(mut c) = self.read_context(slot.context, dci) else {
            return;
        };
        context::set_endpoint_state(&mut c, ep.state);
        context::set_dequeue(&mut c, ep.ring.dequeue, ep.ring.cycle);
        if self.write_context(slot.context, dci, &c).is_none() {
            tracing::debug!("xHCI: slot {id} endpoint context not writable");
        }
    }

    fn store_slot_state(&self, id: u8, entries: Option<u32>) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        let Some(mut c) = self.read_context(slot.context, 0) else {
            return;
        };
        let address = if slot.state >= context::SLOT_ADDRESSED {
            id
        } else {
            0
        };
        context::set_slot_state(&mut c, slot.state, address);
        if let Some(n) = entries {
            context::set_context_entries(&mut c, n);
        }
        let _ = self.write_context(slot.context, 0, &c);
    }

    fn configure_endpoint(&mut self, id: u8, trb: &Trb) -> u8 {
        const DECONFIGURE: u32 = 1 << 9;
        let Some(slot) = self.slot(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        if slot.state < context::SLOT_ADDRESSED {
            return completion::CONTEXT_STATE_ERROR;
        }
        let output = slot.context;
        if trb.control & DECONFIGURE != 0 {
            for dci in 2..=ENDPOINTS as u8 {
                self.disable_endpoint(id, dci);
            }
            if let Some(s) = self.slot_mut(id) {
                s.state = context::SLOT_ADDRESSED;
            }
            self.store_slot_state(id, Some(1));
            return completion::SUCCESS;
        }
        let input = trb.parameter & !0xf;
        let Some((drop, add)) = context::input_flags(&self.mem, input) else {
            return completion::PARAMETER_ERROR;
        };
        // Read every added context first: a bad one changes nothing.
        let mut added = Vec::new();
        for dci in 2..=ENDPOINTS as u8 {
            if add & 1 << dci == 0 {
                continue;
            }
            match context::at(input, dci + 1).and_then(|a| context::read(&self.mem, a)) {
                Some(c) if context::endpoint_type(&c) != 0 => added.push((dci, c)),
                _ => return completion::PARAMETER_ERROR,
            }
        }
        let input_slot = if add & 1 != 0 {
            match context::at(input, 1).and_then(|a| context::read(&self.mem, a)) {
                Some(c) => Some(c),
                None => return completion::PARAMETER_ERROR,
            }
        } else {
            None
        };
        for dci in 2..=ENDPOINTS as u8 {
            if drop & 1 << dci != 0 {
                self.disable_endpoint(id, dci);
            }
        }
        for (dci, mut c) in added {
            context::set_endpoint_state(&mut c, context::EP_RUNNING);
            let (dequeue, cycle) = context::dequeue(&c);
            if self.write_context(output, dci, &c).is_none() {
                return completion::PARAMETER_ERROR;
            }
            if let Some(ep) = self.slot_mut(id).and_then(|s| s.endpoint_mut(dci)) {
                *ep = Endpoint {
                    state: context::EP_RUNNING,
                    ring: Ring::new(dequeue, cycle),
                };
            }
        }
        if let Some(s) = self.slot_mut(id) {
            let any = s.endpoints[1..]
                .iter()
                .any(|e| e.state != context::EP_DISABLED);
            s.state = if any {
                context::SLOT_CONFIGURED
            } else {
                context::SLOT_ADDRESSED
            };
        }
        let entries = input_slot.map(|c| c[0] >> 27);
        self.store_slot_state(id, entries);
        completion::SUCCESS
    }

    fn disable_endpoint(&mut self, id: u8, dci: u8) {
        if let Some(ep) = self.slot_mut(id).and_then(|s| s.endpoint_mut(dci)) {
            if ep.state == context::EP_DISABLED {
                return;
            }
            ep.state = context::EP_DISABLED;
        }
        self.store_endpoint(id, dci);
    }

    fn evaluate_context(&mut self, id: u8, input: u64) -> u8 {
        let Some(slot) = self.slot(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        if slot.state == context::SLOT_ENABLED && slot.context == 0 {
            return completion::CONTEXT_STATE_ERROR;
        }
        let output = slot.context;
        let input = input & !0xf;
        let Some((_, add)) = context::input_flags(&self.mem, input) else {
            return completion::PARAMETER_ERROR;
        };
        if add & 1 != 0 {
            let (Some(from), Some(mut to)) = (
                context::at(input, 1).and_then(|a| context::read(&self.mem, a)),
                self.read_context(output, 0),
            ) else {
                return completion::PARAMETER_ERROR;
            };
            // Max Exit Latency and Interrupter Target.
            to[1] = (to[1] & !0xffff) | (from[1] & 0xffff);
            to[2] = (to[2] & 0x003f_ffff) | (from[2] & !0x003f_ffff);
            if self.write_context(output, 0, &to).is_none() {
                return completion::PARAMETER_ERROR;
            }
        }
        if add & 2 != 0 {
            let (Some(from), Some(mut to)) = (
                context::at(input, 2).and_then(|a| context::read(&self.mem, a)),
                self.read_context(output, 1),
            ) else {
                return completion::PARAMETER_ERROR;
            };
            context::set_max_packet_size(&mut to, &from);
            if self.write_context(output, 1, &to).is_none() {
                return completion::PARAMETER_ERROR;
            }
        }
        completion::SUCCESS
    }

    /// Reset Endpoint: a halted endpoint becomes stopped.
    fn endpoint_transition(&mut self, id: u8, dci: u8, from: u32) -> u8 {
        let Some(slot) = self.slot_mut(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        let Some(ep) = slot.endpoint_mut(dci) else {
            return completion::TRB_ERROR;
        };
        if ep.state == context::EP_DISABLED {
            return completion::ENDPOINT_NOT_ENABLED;
        }
        if ep.state != from {
            return completion::CONTEXT_STATE_ERROR;
        }
        ep.state = context::EP_STOPPED;
        self.store_endpoint(id, dci);
        completion::SUCCESS
    }

    fn stop_endpoint(&mut self, id: u8, dci: u8) -> u8 {
        let code = self.endpoint_transition(id, dci, context::EP_RUNNING);
        if code != completion::SUCCESS {
            return code;
        }
        // A TD waiting for data (an interrupt IN poll) stops untouched.
        let mem = self.mem.clone();
        if let Some(ep) = self.slot_mut(id).and_then(|s| s.endpoint_mut(dci))
            && let Fetch::Trb(addr, _) = ep.ring.peek(&mem)
        {
            self.store_endpoint(id, dci);
            let ev = transfer_event(addr, completion::STOPPED_LENGTH_INVALID, 0, id, dci, false);
            self.post(ev, true);
        }
        completion::SUCCESS
    }

    fn set_dequeue(&mut self, id: u8, trb: &Trb) -> u8 {
        let mem = self.mem.clone();
        let dci = trb.endpoint_id();
        let Some(slot) = self.slot_mut(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        let Some(ep) = slot.endpoint_mut(dci) else {
            return completion::TRB_ERROR;
        };
        match ep.state {
            context::EP_DISABLED => return completion::ENDPOINT_NOT_ENABLED,
            context::EP_STOPPED => {}
            _ => return completion::CONTEXT_STATE_ERROR,
        }
        let addr = trb.parameter & !0xf;
        if Trb::read(&mem, addr).is_none() {
            return completion::PARAMETER_ERROR;
        }
        ep.ring = Ring::new(addr, trb.parameter & 1 != 0);
        self.store_endpoint(id, dci);
        completion::SUCCESS
    }

    fn reset_device(&mut self, id: u8) -> u8 {
        let Some(slot) = self.slot(id) else {
            return completion::SLOT_NOT_ENABLED;
        };
        if slot.state < context::SLOT_DEFAULT {
            return completion::CONTEXT_STATE_ERROR;
        }
        let port = usize::from(slot.port);
        for dci in 2..=ENDPOINTS as u8 {
            self.disable_endpoint(id, dci);
        }
        if let Some(s) = self.slot_mut(id) {
            s.state = context::SLOT_DEFAULT;
        }
        self.store_slot_state(id, Some(1));
        if let Some(d) = port
            .checked_sub(1)
            .and_then(|p| self.ports.get_mut(p))
            .and_then(|p| p.device.as_mut())
        {
            d.reset();
        }
        completion::SUCCESS
    }
}

/// The port and register of an offset in the port register sets.
fn port_register(off: u64) -> Option<(usize, u64)> {
    let rel = off.checked_sub(PORT_REGISTERS)?;
    let port = usize::try_from(rel / PORT_STRIDE).ok()?;
    (port < PORTS).then_some((port, rel % PORT_STRIDE))
}

pub(super) fn command_completion(trb: u64, code: u8, slot: u8) -> Trb {
    Trb {
        parameter: trb,
        status: u32::from(code) << 24,
        control: u32::from(slot) << 24 | u32::from(trb_type::COMMAND_COMPLETION) << 10,
    }
}

/// A Transfer Event; `residual` is what was left of the TRB's length
/// (or, for Event Data, the bytes transferred).
pub(super) fn transfer_event(
    pointer: u64,
    code: u8,
    residual: u32,
    slot: u8,
    dci: u8,
    event_data: bool,
) -> Trb {
    Trb {
        parameter: pointer,
        status: u32::from(code) << 24 | (residual & 0xff_ffff),
        control: u32::from(slot) << 24
            | u32::from(dci) << 16
            | u32::from(trb_type::TRANSFER_EVENT) << 10
            | if event_data {
                super::rings::EVENT_DATA_FLAG
            } else {
                0
            },
    }
}
