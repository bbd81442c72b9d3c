//! Model-specific registers written before the first KVM_RUN.

use kvm_bindings::{Msrs, kvm_msr_entry};

const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// IA32_ARCH_CAPABILITIES: never written (see `cpuid`).
pub const MSR_IA32_ARCH_CAPABILITIES: u32 = 0x10a;

/// The boot MSR values, limited to the MSRs KVM lists as supported.
pub fn boot_msrs(supported: &[u32]) -> std::result::Result<Msrs, String> {
    let wanted: [(u32, u64); 10] = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
    ];
    let entries: Vec<kvm_msr_entry> = wanted
        .iter()
        .filter(|(i, _)| supported.contains(i) && *i != MSR_IA32_ARCH_CAPABILITIES)
        .map(|&(index, data)| kvm_msr_entry {
            index,
            data,
            ..Default::default()
        })
        .collect();
    Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_supported_msrs() {
        let m = boot_msrs(&[MSR_STAR, MSR_IA32_MISC_ENABLE, MSR_IA32_ARCH_CAPABILITIES]).unwrap();
        let idx: Vec<u32> = m.as_slice().iter().map(|e| e.index).collect();
        assert_eq!(idx, vec![MSR_STAR, MSR_IA32_MISC_ENABLE]);
    }
}
