//! What the USB controllers' tests share: a small guest memory with
//! dword access, and SETUP packets.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::SetupPacket;
use crate::vmm::memory::GuestMemory;

/// 1 MiB of guest memory from address 0.
pub fn memory() -> GuestMemory {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
}

/// Writes little-endian dwords at `addr`.
pub fn put(mem: &GuestMemory, addr: u32, dwords: &[u32]) {
    for (i, d) in dwords.iter().enumerate() {
        mem.write_obj(d.to_le(), GuestAddress(u64::from(addr) + 4 * i as u64))
            .unwrap();
    }
}

pub fn get(mem: &GuestMemory, addr: u32) -> u32 {
    u32::from_le(mem.read_obj(GuestAddress(u64::from(addr))).unwrap())
}

/// A standard or class request to interface or device 0.
pub fn setup(request_type: u8, request: u8, value: u16, length: u16) -> SetupPacket {
    SetupPacket {
        request_type,
        request,
        value,
        index: 0,
        length,
    }
}
