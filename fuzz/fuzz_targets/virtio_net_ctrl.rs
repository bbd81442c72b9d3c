//! The virtio-net control-queue parser on arbitrary requests (see
//! `oxvirt::vmm::virtio::fuzz::net_ctrl_input`): unknown classes, bad
//! lengths and out-of-range pair counts are refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxvirt::vmm::virtio::fuzz::net_ctrl_input(data);
});
