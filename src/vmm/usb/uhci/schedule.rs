//! The UHCI schedule (UHCI 1.1 chapter 3 and section 4.2): each frame
//! the controller reads the frame list entry for FRNUM and follows its
//! links through queue heads and transfer descriptors, one packet per
//! TD, depth-first or breadth-first as each link says, the way QEMU's
//! controller walks it.
//!
//! Devices answer at once, so a TD completes, fails or is NAKed in the
//! frame that reaches it. A frame follows at most `FRAME_LINKS` links
//! and stops going round in circles through queue heads when nothing
//! moved since it last saw one (drivers build such rings on purpose for
//! bandwidth reclamation); memory the controller cannot reach halts it
//! with Host System Error, a TD with an unknown PID with Host Controller
//! Process Error.

use std::time::Instant;

use vm_memory::{Bytes, GuestAddress};

use super::controller::{CAUSE_IOC, CAUSE_SHORT, Uhci};
use super::regs::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::usb::packet::{self, Handshake, PacketDevice, Pid};

/// Frames run in one pass at most; older ones are skipped.
const FRAMES_PER_PASS: u64 = 16;
/// Links followed in one frame (QEMU's FRAME_MAX_LOOPS).
const FRAME_LINKS: usize = 256;
/// Queue heads remembered per frame to notice a ring.
const QH_RING_LIMIT: usize = 128;

pub(super) const LINK_TERMINATE: u32 = 1 << 0;
pub(super) const LINK_QH: u32 = 1 << 1;
pub(super) const LINK_DEPTH_FIRST: u32 = 1 << 2;
const LINK_ADDRESS: u32 = !0xf;

/// TD control and status.
const TD_ACTUAL_MASK: u32 = 0x7ff;
pub(super) const TD_TIMEOUT: u32 = 1 << 18;
pub(super) const TD_NAK: u32 = 1 << 19;
pub(super) const TD_STALLED: u32 = 1 << 22;
pub(super) const TD_ACTIVE: u32 = 1 << 23;
pub(super) const TD_IOC: u32 = 1 << 24;
pub(super) const TD_ERROR_COUNT: u32 = 3 << 27;
const TD_SPD: u32 = 1 << 29;

/// PIDs in the TD token.
pub(super) const PID_IN: u32 = 0x69;
pub(super) const PID_OUT: u32 = 0xe1;
pub(super) const PID_SETUP: u32 = 0x2d;

/// A transfer descriptor.
#[derive(Clone, Copy, Debug)]
struct Td {
    link: u32,
    control: u32,
    token: u32,
    buffer: u32,
}

impl Td {
    /// The packet's maximum length (0x7ff encodes a null packet).
    fn max_len(&self) -> usize {
        (((self.token >> 21) + 1) & 0x7ff) as usize
    }

    fn address(&self) -> u8 {
        ((self.token >> 8) & 0x7f) as u8
    }

    fn endpoint(&self) -> u8 {
        ((self.token >> 15) & 0xf) as u8
    }
}

/// What the walk does after a TD.
enum Next {
    /// The TD completed: go on to its link (depth-first) or the next QH.
    Completed,
    /// Leave this queue for the next one (NAK, error, short packet,
    /// inactive TD).
    NextQueue,
}

/// Memory out of reach, or a TD the controller cannot run.
enum Stop {
    Fault(u32),
    BadPid(u32),
}

fn read_u32(mem: &GuestMemory, addr: u32) -> Result<u32, Stop> {
    mem.read_obj::<u32>(GuestAddress(u64::from(addr)))
        .map(u32::from_le)
        .map_err(|_| Stop::Fault(addr))
}

fn write_u32(mem: &GuestMemory, addr: u32, v: u32) -> Result<(), Stop> {
    mem.write_obj(v.to_le(), GuestAddress(u64::from(addr)))
        .map_err(|_| Stop::Fault(addr))
}

impl Uhci {
    /// Runs the frames that began since the last run.
    pub fn run(&mut self, now: Instant, mem: &GuestMemory, devices: &mut [Option<PacketDevice>]) {
        if !self.running() {
            return;
        }
        let current = self.clock.at(now);
        let first = (self.done_frame + 1).max(current.saturating_sub(FRAMES_PER_PASS - 1));
        self.done_frame = current;
        let mut causes = 0;
        for frame in first..=current {
            match self.frame(frame, mem, devices, &mut causes) {
                Ok(()) => {}
                Err(Stop::Fault(addr)) => {
                    let what = format!("guest memory at {addr:#x} is out of reach");
                    self.halt_with(STS_HOST_ERROR, now, &what);
                    break;
                }
                Err(Stop::BadPid(addr)) => {
                    let what = format!("the TD at {addr:#x} has no valid PID");
                    self.halt_with(STS_PROCESS_ERROR, now, &what);
                    break;
                }
            }
        }
        // Interrupts of the frames are posted at their end.
        if causes != 0 {
            self.usbint_causes |= causes;
            self.usbsts |= STS_USBINT;
        }
        self.update_irq();
    }

    fn frame(
        &mut self,
        frame: u64,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
        causes: &mut u8,
    ) -> Result<(), Stop> {
        let entry = self.frame_list + 4 * (frame % FRAME_LIST_ENTRIES) as u32;
        let mut link = read_u32(mem, entry)?;
        // The queue head whose elements are being run: its address and
        // head link.
        let mut queue: Option<(u32, u32)> = None;
        let mut seen_qhs: Vec<u32> = Vec::new();
        let mut completed_since_seen = 0usize;
        for _ in 0..FRAME_LINKS {
            if link & LINK_TERMINATE != 0 {
                break;
            }
            let addr = link & LINK_ADDRESS;
            if link & LINK_QH != 0 {
                if seen_qhs.contains(&addr) || seen_qhs.len() >= QH_RING_LIMIT {
                    // A ring: go round again only if something moved.
                    if completed_since_seen == 0 {
                        break;
                    }
                    completed_since_seen = 0;
                    seen_qhs.clear();
                }
                seen_qhs.push(addr);
                let head = read_u32(mem, addr)?;
                let element = read_u32(mem, addr + 4)?;
                if element & LINK_TERMINATE != 0 {
                    queue = None;
                    link = head;
                } else {
                    queue = Some((addr, head));
                    link = element;
                }
                continue;
            }
            let mut td = Td {
                link: read_u32(mem, addr)?,
                control: read_u32(mem, addr + 4)?,
                token: read_u32(mem, addr + 8)?,
                buffer: read_u32(mem, addr + 12)?,
            };
            let before = td.control;
            let next = self.run_td(&mut td, addr, mem, devices, causes)?;
            if td.control != before {
                write_u32(mem, addr + 4, td.control)?;
            }
            link = match (next, queue) {
                (Next::NextQueue, Some((_, head))) => head,
                (Next::NextQueue, None) | (Next::Completed, None) => td.link,
                (Next::Completed, Some((qh, head))) => {
                    completed_since_seen += 1;
                    // The queue's element moves past the TD.
                    write_u32(mem, qh + 4, td.link)?;
                    if td.link & LINK_DEPTH_FIRST != 0 {
                        td.link
                    } else {
                        queue = None;
                        head
                    }
                }
            };
        }
        Ok(())
    }

    /// Runs one TD against its device, updating its control word.
    fn run_td(
        &mut self,
        td: &mut Td,
        addr: u32,
        mem: &GuestMemory,
        devices: &mut [Option<PacketDevice>],
        causes: &mut u8,
    ) -> Result<Next, Stop> {
        if td.control & TD_ACTIVE == 0 {
            // An inactive TD with IOC still interrupts (UHCI 1.1 3.2.2).
            if td.control & TD_IOC != 0 {
                *causes |= CAUSE_IOC;
            }
            return Ok(Next::NextQueue);
        }
        let pid = match td.token & 0xff {
            PID_IN => Pid::In,
            PID_OUT => Pid::Out,
            PID_SETUP => Pid::Setup,
            _ => return Err(Stop::BadPid(addr)),
        };
        let max = td.max_len();
        let reachable = |i: usize| self.port_enabled(i);
        let Some(device) = packet::find(devices, td.address(), reachable) else {
            // Nobody answers: the transfer times out.
            return Ok(self.td_error(td, TD_TIMEOUT, causes));
        };
        let out = if pid == Pid::In {
            Vec::new()
        } else {
            let mut b = vec![0u8; max];
            mem.read_slice(&mut b, GuestAddress(u64::from(td.buffer)))
                .map_err(|_| Stop::Fault(td.buffer))?;
            b
        };
        let len = match device.packet(pid, td.endpoint(), &out, max) {
            Handshake::Nak => {
                td.control |= TD_NAK;
                return Ok(Next::NextQueue);
            }
            Handshake::Stall => return Ok(self.td_error(td, TD_STALLED, causes)),
            Handshake::Ack(data) if pid == Pid::In => {
                mem.write_slice(&data, GuestAddress(u64::from(td.buffer)))
                    .map_err(|_| Stop::Fault(td.buffer))?;
                data.len()
            }
            Handshake::Ack(_) => max,
        };
        // Actual length is n-1 (0x7ff for none), as max length is.
        td.control = (td.control & !(TD_ACTUAL_MASK | TD_ACTIVE | TD_NAK))
            | (len as u32).wrapping_sub(1) & TD_ACTUAL_MASK;
        if td.control & TD_IOC != 0 {
            *causes |= CAUSE_IOC;
        }
        if pid == Pid::In && len < max && td.control & TD_SPD != 0 {
            // A short packet ends the queue's transfer for this frame.
            *causes |= CAUSE_SHORT;
            return Ok(Next::NextQueue);
        }
        Ok(Next::Completed)
    }

    /// A stalled or timed-out TD: inactive, its error counter at 0 for
    /// a timeout, USBERRINT (and USBINT for IOC).
    fn td_error(&mut self, td: &mut Td, status: u32, causes: &mut u8) -> Next {
        td.control = (td.control & !TD_ACTIVE) | status;
        if status == TD_TIMEOUT {
            td.control &= !TD_ERROR_COUNT;
        }
        self.usbsts |= STS_ERROR;
        if td.control & TD_IOC != 0 {
            *causes |= CAUSE_IOC;
        }
        Next::NextQueue
    }
}
