//! The periodic and asynchronous schedules (EHCI 1.0 chapter 4): the
//! frame list walked once per frame, the circular list of queue heads
//! walked once per pass, the qTDs of each queue head executed against
//! the devices.
//!
//! Devices answer at once, so a qTD either completes (or halts) in the
//! pass that finds it, or is NAKed and found again in a later pass; the
//! controller keeps nothing of a queue head between passes. Every walk
//! is bounded (queue heads, links and qTDs per pass), so a looping or
//! garbage schedule costs a bounded amount of work; memory the
//! controller cannot reach stops it with Host System Error.
//!
//! Isochronous transfers are not supported: iTDs and siTDs in the frame
//! list are passed over untouched (their Active bits stay set), as are
//! FSTNs (split-transaction bookkeeping for full-speed devices behind
//! hubs, which do not exist here).

use std::time::Instant;

use vm_memory::{Bytes, GuestAddress};

use super::controller::Ehci;
use super::queue::{Fault, Link, Qh, Qtd, read_u32, token, write_u32};
use super::regs::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::usb::packet::{self, Handshake, PacketDevice, Pid};

/// Frames run in one pass at most; older ones are skipped (the worker
/// was not scheduled for that long).
const FRAMES_PER_PASS: u64 = 16;
/// Elements followed from one frame list entry.
const PERIODIC_LINKS: usize = 64;
/// Queue heads visited in one pass over the asynchronous schedule.
const ASYNC_QHS: usize = 64;
/// qTDs executed in one pass over the asynchronous schedule, and in one
/// frame of the periodic schedule.
const QTD_BUDGET: usize = 256;

/// What became of the qTD in the overlay.
enum Step {
    /// Completed or halted: the queue moves on (or stops if halted).
    Done,
    /// NAKed: it stays active for the next pass.
    Nak,
}

impl Ehci {
    /// Runs what is due at `now`: the periodic schedule for each frame
    /// that began since the last run, then one pass over the
    /// asynchronous schedule.
    pub fn run(&mut self, now: Instant, mem: &GuestMemory, devices: &mut [Option<PacketDevice>]) {
        if !self.running() {
            return;
        }
        let now_uframe = self.clock.at(now);
        let before = self.done_uframe;
        if now_uframe / FRAME_LIST_ROLLOVER > before / FRAME_LIST_ROLLOVER {
            self.raise(STS_FLR);
        }
        let first_frame =
            (before / 8 + 1).max((now_uframe / 8).saturating_sub(FRAMES_PER_PASS - 1));
        self.done_uframe = now_uframe;
        let result = (|| {
            if self.usbcmd & CMD_PSE != 0 {
                for frame in first_frame..=now_uframe / 8 {
                    self.periodic_frame(frame, mem, devices)?;
                }
            }
            if self.usbcmd & CMD_ASE != 0 {
                self.async_pass(mem, devices)?;
            }
            Ok(())
        })();
        if let Err(Fault(addr)) = result {
            self.host_system_error(now, &format!("guest memory at {addr:#x} is out of reach"));
        }
    }

    /// The periodic schedule of one frame: the frame list entry's queue
    /// heads (interrupt endpoints, those with an S-mask).
    fn periodic_frame(
        &mut self,
        frame: u64,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
    ) -> Result<(), Fault> {
        let index = (frame % u64::from(FRAME_LIST_ENTRIES)) as u32;
        let mut link = Link::decode(read_u32(mem, self.periodic_base + 4 * index)?);
        let mut seen = Vec::new();
        let mut budget = QTD_BUDGET;
        for _ in 0..PERIODIC_LINKS {
            link = match link {
                Link::End => break,
                // Not supported: passed over by their next links.
                Link::Itd(a) | Link::Sitd(a) | Link::Fstn(a) => Link::decode(read_u32(mem, a)?),
                Link::Qh(a) => {
                    if seen.contains(&a) {
                        break;
                    }
                    seen.push(a);
                    let qh = Qh::read(mem, a)?;
                    if qh.smask() != 0 {
                        let packets = qh.smask().count_ones() * qh.mult();
                        self.service_qh(a, packets as usize, mem, devices, &mut budget)?;
                    }
                    Link::decode(qh.next)
                }
            };
        }
        Ok(())
    }

    /// One pass around the asynchronous schedule's ring of queue heads,
    /// from ASYNCLISTADDR back to it.
    fn async_pass(
        &mut self,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
    ) -> Result<(), Fault> {
        let head = self.async_address;
        if head == 0 {
            return Ok(());
        }
        let mut budget = QTD_BUDGET;
        let mut at = head;
        let mut seen = Vec::new();
        for _ in 0..ASYNC_QHS {
            if seen.contains(&at) || !self.running() {
                break;
            }
            seen.push(at);
            self.service_qh(at, usize::MAX, mem, devices, &mut budget)?;
            // Only queue heads belong on this list.
            match Link::decode(Qh::read(mem, at)?.next) {
                Link::Qh(next) if next != head => at = next,
                _ => break,
            }
        }
        Ok(())
    }

    /// Runs the qTDs of the queue head at `addr`, at most `packets`
    /// (the periodic schedule's allowance per frame) and `budget`.
    fn service_qh(
        &mut self,
        addr: u32,
        packets: usize,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
        budget: &mut usize,
    ) -> Result<(), Fault> {
        let mut qh = Qh::read(mem, addr)?;
        for _ in 0..packets {
            if *budget == 0 || qh.overlay.token & token::HALTED != 0 || !self.running() {
                break;
            }
            // The overlay's qTD while it is active, else the next one.
            let qtd_addr = if qh.overlay.token & token::ACTIVE != 0 {
                qh.current & super::queue::LINK_ADDRESS
            } else {
                match qh.next_qtd() {
                    Some(a) => a,
                    None => break,
                }
            };
            if qtd_addr == 0 {
                break;
            }
            let qtd = Qtd::read(mem, qtd_addr)?;
            if qtd.token & token::ACTIVE == 0 {
                break;
            }
            *budget -= 1;
            qh.load(qtd_addr, &qtd);
            match self.execute(&mut qh, mem, devices)? {
                Step::Nak => {
                    qh.write_overlay(mem, addr)?;
                    break;
                }
                Step::Done => {
                    // The qTD gets its offset and token back, the token
                    // (Active cleared) last.
                    write_u32(mem, qtd_addr + 12, qh.overlay.buffers[0])?;
                    write_u32(mem, qtd_addr + 8, qh.overlay.token)?;
                    qh.write_overlay(mem, addr)?;
                }
            }
        }
        Ok(())
    }

    /// Executes the transfer in the overlay against its device.
    fn execute(
        &mut self,
        qh: &mut Qh,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
    ) -> Result<Step, Fault> {
        let o = &mut qh.overlay;
        let pid = match o.pid() {
            0 => Pid::Out,
            1 => Pid::In,
            2 => Pid::Setup,
            _ => return Ok(self.finish_error(o, token::XACTERR)),
        };
        let Some(segments) = o.segments().filter(|_| o.bytes() <= token::MAX_BYTES) else {
            // More data than the five buffer pages hold.
            return Ok(self.finish_error(o, token::DBERR));
        };
        let total = o.bytes() as usize;
        let ports = &self.ports;
        let address = qh.device_address();
        // Full- and low-speed endpoints would sit behind a hub's
        // transaction translator; there is none, so nothing answers.
        let device = if qh.high_speed() {
            packet::find(devices, address, |i| {
                ports.get(i).is_some_and(|p| p.enabled() && !p.suspended())
            })
        } else {
            None
        };
        let Some(device) = device else {
            return Ok(self.finish_error(&mut qh.overlay, token::XACTERR));
        };
        let out = match pid {
            Pid::In => Vec::new(),
            _ => read_segments(mem, &segments, total)?,
        };
        let handshake = device.packet(pid, qh.endpoint(), &out, total);
        let max_packet = qh.max_packet().max(1);
        let o = &mut qh.overlay;
        match handshake {
            Handshake::Nak => Ok(Step::Nak),
            Handshake::Stall => Ok(self.finish_error(o, 0)),
            Handshake::Ack(data) => {
                let moved = match pid {
                    Pid::In => write_segments(mem, &segments, &data)?,
                    _ => total,
                } as u32;
                o.set_bytes((total as u32).saturating_sub(moved));
                o.advance(moved);
                // The toggle flips with every packet (a zero-length
                // packet is one too).
                if moved.div_ceil(max_packet).max(1) % 2 == 1 {
                    o.token ^= token::TOGGLE;
                }
                o.token &= !token::ACTIVE;
                let short = pid == Pid::In && (moved as usize) < total;
                if o.token & token::IOC != 0 || short {
                    self.raise(STS_INT);
                }
                Ok(Step::Done)
            }
        }
    }

    /// Halts the qTD in the overlay: a STALL (`error` 0), or a
    /// transaction or buffer error (`error` names it; the error counter
    /// runs out). USBERRINT, and USBINT too if the qTD asked for it.
    fn finish_error(&mut self, o: &mut Qtd, error: u32) -> Step {
        o.token &= !token::ACTIVE;
        o.token |= token::HALTED | error;
        if error != 0 {
            o.token &= !token::CERR_MASK;
        }
        let ioc = if o.token & token::IOC != 0 {
            STS_INT
        } else {
            0
        };
        self.raise(STS_ERRINT | ioc);
        Step::Done
    }
}

/// Reads the OUT or SETUP data from its buffer pieces.
fn read_segments(
    mem: &GuestMemory,
    segments: &[(u32, u32)],
    total: usize,
) -> Result<Vec<u8>, Fault> {
    let mut out = vec![0u8; total];
    let mut at = 0usize;
    for &(addr, len) in segments {
        let end = at + len as usize;
        let Some(dst) = out.get_mut(at..end) else {
            break;
        };
        mem.read_slice(dst, GuestAddress(u64::from(addr)))
            .map_err(|_| Fault(addr))?;
        at = end;
    }
    Ok(out)
}

/// Writes IN data into the buffer pieces; the bytes written.
fn write_segments(mem: &GuestMemory, segments: &[(u32, u32)], data: &[u8]) -> Result<usize, Fault> {
    let mut at = 0usize;
    for &(addr, len) in segments {
        let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) else {
            break;
        };
        let n = rest.len().min(len as usize);
        mem.write_slice(&rest[..n], GuestAddress(u64::from(addr)))
            .map_err(|_| Fault(addr))?;
        at += n;
    }
    Ok(at)
}
