//! Transfer rings: control transfers on endpoint 0 and interrupt IN
//! transfers that carry HID reports. A TD is read whole before it runs;
//! an interrupt IN TD stays on the ring (not consumed) until its device
//! has a report, and input kicks the endpoint again.

use vm_memory::{Bytes, GuestAddress};

use super::context;
use super::controller::{Controller, transfer_event};
use super::port::PLS_U3;
use super::rings::{BEI, CHAIN, Fetch, IDT, IOC, ISP, Ring, Trb, completion, trb_type};
use crate::vmm::usb::hid::{HidDevice, INTERRUPT_ENDPOINT};
use crate::vmm::usb::{ControlOutcome, SetupPacket};

/// TDs run per doorbell (or input event) before yielding.
const TD_LIMIT: usize = 64;
/// TRBs in one TD; longer ones are refused.
const TD_TRB_LIMIT: usize = 64;
/// The DCI of the HID devices' interrupt IN endpoint.
const INTERRUPT_DCI: u8 = (INTERRUPT_ENDPOINT & 0xf) * 2 + 1;

type Td = Vec<(u64, Trb)>;

enum Gathered {
    Td(Td),
    /// The driver has not finished producing it.
    Incomplete,
    TooLong(u64),
    Broken,
}

/// What became of a TD.
enum Step {
    /// Consumed.
    Done,
    /// Left on the ring until the device has data.
    Wait,
    /// The endpoint halts with the TD on the ring.
    Halt,
    /// Guest memory failed.
    Broken,
}

/// Reads the TD at the ring's dequeue pointer, moving `ring` past it. A
/// control TD runs from its Setup TRB to the end of its Status stage.
fn gather(mem: &crate::vmm::memory::GuestMemory, ring: &mut Ring, control: bool) -> Gathered {
    let mut td = Td::new();
    let mut status_seen = false;
    while td.len() < TD_TRB_LIMIT {
        let (addr, trb) = match ring.peek(mem) {
            Fetch::Trb(a, t) => (a, t),
            Fetch::Empty => return Gathered::Incomplete,
            Fetch::Broken => return Gathered::Broken,
        };
        ring.advance();
        let kind = trb.kind();
        status_seen |= kind == trb_type::STATUS;
        let starts_control = td.is_empty() && kind == trb_type::SETUP;
        td.push((addr, trb));
        let control_td = control && td.first().is_some_and(|(_, t)| t.kind() == trb_type::SETUP);
        let ends = if control_td {
            !starts_control && status_seen && !trb.has(CHAIN)
        } else {
            !trb.has(CHAIN)
        };
        if ends {
            return Gathered::Td(td);
        }
    }
    Gathered::TooLong(td.first().map_or(0, |(a, _)| *a))
}

fn is_data(trb: &Trb) -> bool {
    matches!(
        trb.kind(),
        trb_type::NORMAL | trb_type::DATA | trb_type::ISOCH
    )
}

impl Controller {
    fn device_on(&mut self, port: u8) -> Option<&mut HidDevice> {
        let p = usize::from(port).checked_sub(1)?;
        self.ports.get_mut(p)?.device.as_mut()
    }

    /// Runs what is on the transfer ring of endpoint `dci` of slot `id`
    /// (a doorbell, or input for an armed endpoint).
    pub(super) fn kick_endpoint(&mut self, id: u8, dci: u8) {
        let Some(slot) = self.slot(id) else {
            return;
        };
        let port = slot.port;
        match slot.endpoint(dci).map(|e| e.state) {
            Some(context::EP_RUNNING) => {}
            Some(context::EP_STOPPED) => {
                if let Some(ep) = self.endpoint_mut(id, dci) {
                    ep.state = context::EP_RUNNING;
                }
            }
            _ => return,
        }
        for _ in 0..TD_LIMIT {
            if !self.running() {
                break;
            }
            let Some(mut ring) = self.slot(id).and_then(|s| s.endpoint(dci)).map(|e| e.ring) else {
                break;
            };
            let td = match gather(&self.mem, &mut ring, dci == 1) {
                Gathered::Td(td) => td,
                Gathered::Incomplete => break,
                Gathered::TooLong(first) => {
                    let ev = transfer_event(first, completion::TRB_ERROR, 0, id, dci, false);
                    self.post(ev, true);
                    self.halt_endpoint(id, dci);
                    break;
                }
                Gathered::Broken => {
                    self.host_system_error("transfer ring unreadable or looping");
                    return;
                }
            };
            let step = if dci == 1 && td[0].1.kind() == trb_type::SETUP {
                self.control_td(id, port, &td)
            } else if !td.iter().any(|(_, t)| is_data(t)) {
                self.plain_td(id, dci, &td)
            } else if dci == INTERRUPT_DCI {
                self.interrupt_in_td(id, port, &td)
            } else {
                // No such endpoint on the device.
                self.post_report(id, dci, &td, 0, completion::STALL);
                Step::Halt
            };
            match step {
                Step::Done => {
                    if let Some(ep) = self.endpoint_mut(id, dci) {
                        ep.ring = ring;
                    }
                }
                Step::Wait => break,
                Step::Halt => {
                    self.halt_endpoint(id, dci);
                    break;
                }
                Step::Broken => {
                    self.host_system_error("transfer buffer outside guest memory");
                    return;
                }
            }
        }
        self.store_endpoint(id, dci);
    }

    fn endpoint_mut(&mut self, id: u8, dci: u8) -> Option<&mut super::controller::Endpoint> {
        let s = self.slots.get_mut(usize::from(id).checked_sub(1)?)?;
        if !s.enabled {
            return None;
        }
        s.endpoint_mut(dci)
    }

    fn halt_endpoint(&mut self, id: u8, dci: u8) {
        if let Some(ep) = self.endpoint_mut(id, dci) {
            ep.state = context::EP_HALTED;
        }
        self.store_endpoint(id, dci);
    }

    /// A TD without data (No Op TRBs, or TRBs that do not belong on a
    /// transfer ring).
    fn plain_td(&mut self, id: u8, dci: u8, td: &Td) -> Step {
        for (addr, trb) in td {
            let code = match trb.kind() {
                trb_type::NOOP | trb_type::EVENT_DATA | trb_type::STATUS => completion::SUCCESS,
                _ => completion::TRB_ERROR,
            };
            if trb.has(IOC) || code != completion::SUCCESS {
                let (ptr, ed) = if trb.kind() == trb_type::EVENT_DATA {
                    (trb.parameter, true)
                } else {
                    (*addr, false)
                };
                self.post(transfer_event(ptr, code, 0, id, dci, ed), !trb.has(BEI));
            }
        }
        Step::Done
    }

    /// A control transfer: the request goes to the device, the data stage
    /// moves through the Data (and Normal) TRBs.
    fn control_td(&mut self, id: u8, port: u8, td: &Td) -> Step {
        let setup = SetupPacket::from_u64(td[0].1.parameter);
        let data_trbs: Vec<(u64, Trb)> = td.iter().filter(|(_, t)| is_data(t)).copied().collect();
        let out = if setup.is_in() {
            Vec::new()
        } else {
            match self.read_out(&data_trbs, usize::from(setup.length)) {
                Some(d) => d,
                None => return Step::Broken,
            }
        };
        let outcome = match self.device_on(port) {
            Some(dev) => dev.control(&setup, &out),
            None => ControlOutcome::Stall,
        };
        match outcome {
            ControlOutcome::Stall => {
                self.post_report(id, 1, td, 0, completion::STALL);
                Step::Halt
            }
            ControlOutcome::Done(data) => {
                let moved = if setup.is_in() {
                    match self.write_in(&data_trbs, &data) {
                        Some(n) => n,
                        None => return Step::Broken,
                    }
                } else {
                    out.len()
                };
                self.post_report(id, 1, td, moved as u32, completion::SUCCESS);
                Step::Done
            }
        }
    }

    /// An interrupt IN TD: the device's next report, or wait for one.
    fn interrupt_in_td(&mut self, id: u8, port: u8, td: &Td) -> Step {
        let data_trbs: Vec<(u64, Trb)> = td.iter().filter(|(_, t)| is_data(t)).copied().collect();
        if data_trbs.iter().any(|(_, t)| t.has(IDT)) {
            // Immediate data makes no sense for IN.
            self.post_report(id, INTERRUPT_DCI, td, 0, completion::TRB_ERROR);
            return Step::Halt;
        }
        let Some(dev) = self.device_on(port) else {
            self.post_report(id, INTERRUPT_DCI, td, 0, completion::USB_TRANSACTION_ERROR);
            return Step::Halt;
        };
        let Some(report) = dev.take_report() else {
            return Step::Wait;
        };
        match self.write_in(&data_trbs, &report) {
            Some(n) => {
                self.post_report(id, INTERRUPT_DCI, td, n as u32, completion::SUCCESS);
                Step::Done
            }
            None => Step::Broken,
        }
    }

    /// The OUT data stage, at most `limit` bytes.
    fn read_out(&self, trbs: &[(u64, Trb)], limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for (_, trb) in trbs {
            let want = (trb.transfer_length() as usize).min(limit - out.len());
            if trb.has(IDT) {
                let bytes = trb.parameter.to_le_bytes();
                out.extend_from_slice(bytes.get(..want.min(8))?);
            } else {
                let start = out.len();
                out.resize(start + want, 0);
                self.mem
                    .read_slice(out.get_mut(start..)?, GuestAddress(trb.parameter))
                    .ok()?;
            }
            if out.len() >= limit {
                break;
            }
        }
        Some(out)
    }

    /// Scatters IN data over the TRBs' buffers; the bytes written.
    fn write_in(&self, trbs: &[(u64, Trb)], data: &[u8]) -> Option<usize> {
        let mut done = 0;
        for (_, trb) in trbs {
            let rest = data.get(done..)?;
            if rest.is_empty() {
                break;
            }
            let n = (trb.transfer_length() as usize).min(rest.len());
            self.mem
                .write_slice(rest.get(..n)?, GuestAddress(trb.parameter))
                .ok()?;
            done += n;
        }
        Some(done)
    }

    /// Transfer Events for a TD that moved `moved` bytes: one for the
    /// first TRB of each stage that asks (IOC, or ISP after a short
    /// packet), Event Data TRBs reporting the bytes so far; an error is
    /// reported on the first TRB.
    fn post_report(&mut self, id: u8, dci: u8, td: &Td, moved: u32, code: u8) {
        let mut left = moved;
        let mut transferred = 0u32;
        let mut reported = false;
        let mut short = false;
        for (addr, trb) in td {
            let kind = trb.kind();
            let length = trb.transfer_length();
            let mut chunk = 0;
            match kind {
                trb_type::SETUP => chunk = length.min(8),
                trb_type::STATUS => {
                    reported = false;
                    short = false;
                }
                _ if is_data(trb) => {
                    chunk = length.min(left);
                    short |= length > left && code == completion::SUCCESS;
                    left -= chunk;
                    transferred = transferred.saturating_add(chunk);
                }
                _ => {}
            }
            let failed = code != completion::SUCCESS;
            if !reported && (trb.has(IOC) || (short && trb.has(ISP)) || failed) {
                let result = match (failed, short) {
                    (true, _) => code,
                    (false, true) => completion::SHORT_PACKET,
                    (false, false) => completion::SUCCESS,
                };
                let ev = if kind == trb_type::EVENT_DATA {
                    let ev = transfer_event(trb.parameter, result, transferred, id, dci, true);
                    transferred = 0;
                    ev
                } else {
                    transfer_event(*addr, result, length - chunk, id, dci, false)
                };
                self.post(ev, !trb.has(BEI));
                reported = true;
                if failed {
                    return;
                }
            }
            if kind == trb_type::SETUP {
                reported = false;
                short = false;
            }
        }
    }

    /// Input arrived: wake suspended links, complete armed interrupt
    /// endpoints.
    pub(super) fn deliver_input(&mut self) {
        for p in 0..self.ports.len() {
            let port = &self.ports[p];
            let Some(dev) = &port.device else {
                continue;
            };
            if !dev.has_report() || !port.enabled() {
                continue;
            }
            if port.link() == PLS_U3 {
                if dev.remote_wakeup() && self.ports[p].wakeup() {
                    self.port_changed(p);
                }
                continue;
            }
            let port_id = p as u8 + 1;
            let slot = self.slots.iter().position(|s| {
                s.enabled && s.port == port_id && s.state == context::SLOT_CONFIGURED
            });
            if let Some(i) = slot {
                self.kick_endpoint(i as u8 + 1, INTERRUPT_DCI);
            }
        }
    }
}
