//! The virtio-blk request parser on arbitrary guest memory: byte 0 picks a
//! read-only or writable disk, the rest becomes the descriptor table, the
//! avail ring, buffers and request headers (see
//! `oxvirt::vmm::virtio::fuzz::blk_input`). Loops, nested or out-of-range
//! indirect tables, huge lengths and addresses outside guest memory must be
//! rejected without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxvirt::vmm::virtio::fuzz::blk_input(data);
});
