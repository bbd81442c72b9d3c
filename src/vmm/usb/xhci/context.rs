//! Device, slot, endpoint and input contexts (xHCI 1.2 section 6.2), 32
//! bytes each (HCCPARAMS1.CSZ = 0), read and written as eight dwords.

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::memory::GuestMemory;

/// Bytes per context.
pub const CONTEXT_SIZE: u64 = 32;

/// Slot states (slot context dword 3, bits 31:27).
pub const SLOT_ENABLED: u32 = 0;
pub const SLOT_DEFAULT: u32 = 1;
pub const SLOT_ADDRESSED: u32 = 2;
pub const SLOT_CONFIGURED: u32 = 3;

/// Endpoint states (endpoint context dword 0, bits 2:0).
pub const EP_DISABLED: u32 = 0;
pub const EP_RUNNING: u32 = 1;
pub const EP_HALTED: u32 = 2;
pub const EP_STOPPED: u32 = 3;

/// One context.
pub type Context = [u32; 8];

pub fn read(mem: &GuestMemory, addr: u64) -> Option<Context> {
    let mut b = [0u8; 32];
    mem.read_slice(&mut b, GuestAddress(addr)).ok()?;
    let mut c = [0u32; 8];
    for (dw, chunk) in c.iter_mut().zip(b.chunks_exact(4)) {
        *dw = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(c)
}

pub fn write(mem: &GuestMemory, addr: u64, c: &Context) -> Option<()> {
    let mut b = [0u8; 32];
    for (chunk, dw) in b.chunks_exact_mut(4).zip(c) {
        chunk.copy_from_slice(&dw.to_le_bytes());
    }
    mem.write_slice(&b, GuestAddress(addr)).ok()
}

/// The address of context `index` (0 = slot, DCI for endpoints) of a
/// device context at `base`; an input context's are one further.
pub fn at(base: u64, index: u8) -> Option<u64> {
    base.checked_add(u64::from(index) * CONTEXT_SIZE)
}

/// Input control context: drop and add flags.
pub fn input_flags(mem: &GuestMemory, input: u64) -> Option<(u32, u32)> {
    let c = read(mem, input)?;
    Some((c[0], c[1]))
}

/// Slot context: the root hub port (dword 1, bits 23:16).
pub fn root_port(slot: &Context) -> u8 {
    (slot[1] >> 16) as u8
}

/// Slot context: state and USB device address (dword 3).
pub fn set_slot_state(slot: &mut Context, state: u32, address: u8) {
    slot[3] = (slot[3] & 0x07ff_ff00) | state << 27 | u32::from(address);
}

/// Slot context: Context Entries (dword 0, bits 31:27).
pub fn set_context_entries(slot: &mut Context, entries: u32) {
    slot[0] = (slot[0] & 0x07ff_ffff) | (entries & 0x1f) << 27;
}

/// Endpoint context: the state bits (dword 0, bits 2:0).
pub fn set_endpoint_state(ep: &mut Context, state: u32) {
    ep[0] = (ep[0] & !7) | state;
}

/// Endpoint context: TR Dequeue Pointer and its cycle state.
pub fn dequeue(ep: &Context) -> (u64, bool) {
    let raw = u64::from(ep[2]) | u64::from(ep[3]) << 32;
    (raw & !0xf, raw & 1 != 0)
}

pub fn set_dequeue(ep: &mut Context, addr: u64, cycle: bool) {
    let raw = (addr & !0xf) | u64::from(cycle);
    ep[2] = raw as u32;
    ep[3] = (raw >> 32) as u32;
}

/// Endpoint context: the type (dword 1, bits 5:3); 0 is not valid.
pub fn endpoint_type(ep: &Context) -> u32 {
    (ep[1] >> 3) & 7
}

/// Endpoint context: Max Packet Size (dword 1, bits 31:16).
pub fn set_max_packet_size(ep: &mut Context, from: &Context) {
    ep[1] = (ep[1] & 0xffff) | (from[1] & 0xffff_0000);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut slot = [0u32; 8];
        slot[1] = 3 << 16;
        set_slot_state(&mut slot, SLOT_ADDRESSED, 5);
        set_context_entries(&mut slot, 3);
        assert_eq!(root_port(&slot), 3);
        assert_eq!(slot[3], 2 << 27 | 5);
        assert_eq!(slot[0] >> 27, 3);
        let mut ep = [0u32; 8];
        set_dequeue(&mut ep, 0x1_2345_6780, true);
        assert_eq!(dequeue(&ep), (0x1_2345_6780, true));
        set_endpoint_state(&mut ep, EP_HALTED);
        assert_eq!(ep[0] & 7, EP_HALTED);
    }
}
