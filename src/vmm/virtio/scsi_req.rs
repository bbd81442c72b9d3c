//! virtio-scsi requests (virtio 1.2, 5.6.6): command requests on the
//! request queue and task management / asynchronous notification
//! requests on the control queue, parsed from their chains and answered
//! for the controller's CD-ROM targets. Every length comes from the
//! chain and is checked; a chain too short for its response is completed
//! with length 0.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_scsi::{
    VIRTIO_SCSI_S_BAD_TARGET, VIRTIO_SCSI_S_FAILURE, VIRTIO_SCSI_S_FUNCTION_REJECTED,
    VIRTIO_SCSI_S_INCORRECT_LUN, VIRTIO_SCSI_S_OK, VIRTIO_SCSI_S_OVERRUN, VIRTIO_SCSI_T_AN_QUERY,
    VIRTIO_SCSI_T_AN_SUBSCRIBE, VIRTIO_SCSI_T_TMF, VIRTIO_SCSI_T_TMF_ABORT_TASK,
    VIRTIO_SCSI_T_TMF_ABORT_TASK_SET, VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET,
    VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
    VIRTIO_SCSI_T_TMF_QUERY_TASK, VIRTIO_SCSI_T_TMF_QUERY_TASK_SET,
};
use virtio_queue::DescriptorChain;

use super::iov::{self, Slice};
use crate::vmm::memory::GuestMemory;
use crate::vmm::storage::cdrom::{self, Cdrom, Completion, DataIn};
use crate::vmm::storage::mmc;
use crate::vmm::storage::sense::{self, Sense};

/// Bytes of a command request before its CDB: LUN, tag, task
/// attribute, priority, CRN.
const CMD_HEADER: usize = 19;
/// Bytes of a command response before its sense data: sense length,
/// residual, status qualifier, status, response.
const RESP_HEADER: usize = 12;
/// A task management request: type, subtype, LUN, tag.
const TMF_LEN: usize = 24;
/// An asynchronous notification request: type, LUN, events.
const AN_LEN: usize = 16;
/// An asynchronous notification response: events, response.
const AN_RESP_LEN: usize = 5;

/// One CD-ROM drive on the controller, at LUN 0 of its target.
pub struct Target {
    pub target: u16,
    pub unit: Arc<Mutex<Cdrom>>,
}

/// The CDB and sense sizes the driver uses (configuration space).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sizes {
    pub cdb: usize,
    pub sense: usize,
}

/// A response code as the one byte it is on the wire (`virtio_bindings`
/// types them `u32`).
fn code(c: u32) -> u8 {
    c as u8
}

/// What a request's 8-byte LUN field names.
enum Address<'a> {
    /// LUN 0 of a configured target: the drive.
    Unit(&'a Target),
    /// Another LUN of a configured target: nothing there.
    NoUnit(&'a Target),
    /// No such target, or a LUN format the device does not use.
    BadTarget,
}

/// Decodes the LUN field: byte 0 is 1, byte 1 the target, bytes 2..4
/// the LUN in flat (0x40) or peripheral (0x00) addressing.
fn address<'a>(lun: &[u8], targets: &'a [Target]) -> Address<'a> {
    let byte = |i: usize| lun.get(i).copied().unwrap_or(0);
    if byte(0) != 1 || !(byte(2) == 0 || (0x40..0x80).contains(&byte(2))) {
        return Address::BadTarget;
    }
    let Some(t) = targets.iter().find(|t| t.target == u16::from(byte(1))) else {
        return Address::BadTarget;
    };
    if (u16::from(byte(2)) << 8 | u16::from(byte(3))) & 0x3fff == 0 {
        Address::Unit(t)
    } else {
        Address::NoUnit(t)
    }
}

fn lock(unit: &Mutex<Cdrom>) -> std::sync::MutexGuard<'_, Cdrom> {
    unit.lock().unwrap_or_else(|p| p.into_inner())
}

/// The data-in part of a chain as a command's output buffer.
struct SliceIn<'a> {
    slices: Vec<Slice<'a>>,
    capacity: usize,
}

impl DataIn for SliceIn<'_> {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let n = data.len().min(self.capacity.saturating_sub(offset));
        match iov::range(&self.slices, offset, n) {
            Some(dst) => iov::write_from(&dst, &data[..n]),
            None => 0,
        }
    }
}

/// Commands to a LUN other than 0 of a drive's target: INQUIRY says no
/// unit is there, REPORT LUNS lists LUN 0, the rest fail.
fn no_unit(cdb: &[u8], out: &mut dyn DataIn) -> Completion {
    let op = cdb.first().copied().unwrap_or(0);
    let data = match op {
        0x12 => Some(mmc::inquiry_no_unit()),
        cdrom::REPORT_LUNS => Some(mmc::report_luns()),
        _ => None,
    };
    match data {
        Some(d) => {
            let n = d.len().min(out.capacity());
            Completion {
                status: sense::GOOD,
                len: out.write_at(0, &d[..n]),
                wanted: d.len() as u64,
                sense: None,
            }
        }
        None => Completion {
            status: sense::CHECK_CONDITION,
            len: 0,
            wanted: 0,
            sense: Some(Sense::LUN_NOT_SUPPORTED),
        },
    }
}

/// The response header and sense data of a command.
fn command_response(sizes: Sizes, response: u8, c: Option<(&Completion, usize)>) -> Vec<u8> {
    let mut r = vec![0u8; RESP_HEADER + sizes.sense];
    r[11] = response;
    if let Some((c, capacity)) = c {
        let resid = u32::try_from(capacity.saturating_sub(c.len)).unwrap_or(u32::MAX);
        r[4..8].copy_from_slice(&resid.to_le_bytes());
        r[10] = c.status;
        if let Some(s) = c.sense {
            let fixed = s.fixed();
            let n = fixed.len().min(sizes.sense);
            r[RESP_HEADER..RESP_HEADER + n].copy_from_slice(&fixed[..n]);
            r[0..4].copy_from_slice(&(n as u32).to_le_bytes());
        }
    }
    r
}

/// Serves one request-queue chain; returns the bytes written.
pub fn command(
    mem: &GuestMemory,
    chain: DescriptorChain<&GuestMemory>,
    sizes: Sizes,
    targets: &[Target],
) -> u32 {
    let Some(b) = iov::chain_buffers(mem, chain) else {
        return 0;
    };
    let resp_len = RESP_HEADER + sizes.sense;
    let Some(resp_at) = iov::range(&b.writable, 0, resp_len) else {
        return 0;
    };
    let req_len = CMD_HEADER + sizes.cdb;
    let mut req = vec![0u8; req_len];
    let answer = |resp: Vec<u8>, data: usize| {
        iov::write_from(&resp_at, &resp);
        u32::try_from(resp_len + data).unwrap_or(u32::MAX)
    };
    if iov::read_into(&b.readable, &mut req) < req_len {
        return answer(
            command_response(sizes, code(VIRTIO_SCSI_S_FAILURE), None),
            0,
        );
    }
    let cdb = &req[CMD_HEADER..];
    let data_out = iov::total(&b.readable) - req_len;
    let wlen = iov::total(&b.writable);
    let mut out = SliceIn {
        slices: iov::range(&b.writable, resp_len, wlen - resp_len).unwrap_or_default(),
        capacity: wlen - resp_len,
    };
    let c = match address(&req[0..8], targets) {
        Address::BadTarget => {
            return answer(
                command_response(sizes, code(VIRTIO_SCSI_S_BAD_TARGET), None),
                0,
            );
        }
        // The unit is read-only: nothing takes data from the driver.
        Address::Unit(_) | Address::NoUnit(_) if data_out > 0 => Completion {
            status: sense::CHECK_CONDITION,
            len: 0,
            wanted: 0,
            sense: Some(Sense::WRITE_PROTECTED),
        },
        Address::Unit(t) => lock(&t.unit).execute(cdb, &mut out),
        Address::NoUnit(_) => no_unit(cdb, &mut out),
    };
    let response = if c.wanted > out.capacity as u64 {
        code(VIRTIO_SCSI_S_OVERRUN)
    } else {
        code(VIRTIO_SCSI_S_OK)
    };
    answer(
        command_response(sizes, response, Some((&c, out.capacity))),
        c.len,
    )
}

/// Serves one control-queue chain; returns the bytes written.
pub fn control(mem: &GuestMemory, chain: DescriptorChain<&GuestMemory>, targets: &[Target]) -> u32 {
    let Some(b) = iov::chain_buffers(mem, chain) else {
        return 0;
    };
    let mut req = [0u8; TMF_LEN];
    let got = iov::read_into(&b.readable, &mut req);
    let word = |at: usize| u32::from_le_bytes([req[at], req[at + 1], req[at + 2], req[at + 3]]);
    let reply = |resp: &[u8]| match iov::range(&b.writable, 0, resp.len()) {
        Some(at) => iov::write_from(&at, resp) as u32,
        None => 0,
    };
    let ty = word(0);
    if ty == VIRTIO_SCSI_T_TMF && got >= TMF_LEN {
        reply(&[task_management(word(4), &req[8..16], targets)])
    } else if (ty == VIRTIO_SCSI_T_AN_QUERY || ty == VIRTIO_SCSI_T_AN_SUBSCRIBE) && got >= AN_LEN {
        // No asynchronous events are supported: none is granted.
        let mut resp = [0u8; AN_RESP_LEN];
        resp[4] = code(VIRTIO_SCSI_S_OK);
        reply(&resp)
    } else {
        reply(&[code(VIRTIO_SCSI_S_FAILURE)])
    }
}

/// A task management function. Commands complete before the next one is
/// taken, so there is never a task to abort or find: those functions
/// complete at once; resets reset the unit.
fn task_management(subtype: u32, lun: &[u8], targets: &[Target]) -> u8 {
    let t = match address(lun, targets) {
        Address::BadTarget => return code(VIRTIO_SCSI_S_BAD_TARGET),
        Address::Unit(t) => t,
        Address::NoUnit(t) if subtype == VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET => t,
        Address::NoUnit(_) => return code(VIRTIO_SCSI_S_INCORRECT_LUN),
    };
    match subtype {
        VIRTIO_SCSI_T_TMF_ABORT_TASK
        | VIRTIO_SCSI_T_TMF_ABORT_TASK_SET
        | VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET
        | VIRTIO_SCSI_T_TMF_QUERY_TASK
        | VIRTIO_SCSI_T_TMF_QUERY_TASK_SET => code(VIRTIO_SCSI_S_OK),
        VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET | VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET => {
            lock(&t.unit).reset();
            code(VIRTIO_SCSI_S_OK)
        }
        _ => code(VIRTIO_SCSI_S_FUNCTION_REJECTED),
    }
}

#[cfg(test)]
#[path = "scsi_req_tests.rs"]
mod tests;
