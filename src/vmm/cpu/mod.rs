//! Per-vCPU architectural setup: CPUID, MSRs, registers, local APIC; and
//! the instructions the host's KVM could not emulate, finished here.

pub mod cpuid;
pub mod finish;
pub mod lapic;
pub mod msr;
pub mod regs;

pub use cpuid::apic_id;
