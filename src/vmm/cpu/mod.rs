//! Per-vCPU architectural setup: CPUID, MSRs, registers, local APIC.

pub mod cpuid;
pub mod lapic;
pub mod msr;
pub mod regs;

pub use cpuid::apic_id;
