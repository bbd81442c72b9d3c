//! PCI configuration space (ports 0xCF8/0xCFC and ECAM) and the BARs of
//! two virtio-pci functions with MSI-X, driven by 14-byte access records
//! (see `oxvirt::vmm::virtio::fuzz::pci_input`). Needs /dev/kvm; no access
//! may panic, and the functions must still identify themselves afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    oxvirt::vmm::virtio::fuzz::pci_input(data);
});
