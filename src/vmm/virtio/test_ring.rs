//! Writing a split virtqueue's descriptors and available ring into guest
//! memory by hand, for tests that play the driver (at the fuzz harness's
//! DESC/AVAIL addresses).

use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress};

use super::fuzz::{AVAIL, DESC};
use crate::vmm::memory::GuestMemory;

/// Descriptor flags (`VRING_DESC_F_*`, `u32` in `virtio_bindings`).
pub const NEXT: u16 = VRING_DESC_F_NEXT as u16;
pub const WRITE: u16 = VRING_DESC_F_WRITE as u16;
pub const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

/// Writes entry `i` of the descriptor table at `table`.
pub fn desc_at(mem: &GuestMemory, table: u64, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let base = table + u64::from(i) * 16;
    mem.write_obj(addr, GuestAddress(base)).unwrap();
    mem.write_obj(len, GuestAddress(base + 8)).unwrap();
    mem.write_obj(flags, GuestAddress(base + 12)).unwrap();
    mem.write_obj(next, GuestAddress(base + 14)).unwrap();
}

/// Writes entry `i` of the queue's own descriptor table.
pub fn desc(mem: &GuestMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
    desc_at(mem, DESC, i, addr, len, flags, next);
}

/// Makes `heads` the available ring's entries, in order.
pub fn publish(mem: &GuestMemory, heads: &[u16]) {
    for (i, h) in heads.iter().enumerate() {
        mem.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * i as u64))
            .unwrap();
    }
    mem.write_obj(heads.len() as u16, GuestAddress(AVAIL + 2))
        .unwrap();
}
