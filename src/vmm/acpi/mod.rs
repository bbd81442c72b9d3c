//! ACPI tables: built in memory, then written to the BIOS area with the
//! RSDP at [`layout::ACPI_START`] (direct kernel boot), or handed to the
//! firmware through fw_cfg with a loader script (firmware boot).

pub mod dsdt;
pub mod loader;
pub mod tables;

use vm_memory::{Bytes, GuestAddress};

use super::config::Topology;
use super::error::{Error, Result};
use super::layout;
use super::memory::GuestMemory;

/// Inputs the tables depend on.
pub struct AcpiParams {
    /// vCPUs present at boot.
    pub vcpus: u32,
    /// vCPUs the machine has, present or not.
    pub max_vcpus: u32,
    pub topology: Topology,
    pub pci_mmio64_start: u64,
    pub pci_mmio64_size: u64,
}

/// Builds every table, writes them to guest memory and returns the RSDP
/// address.
pub fn write(mem: &GuestMemory, params: &AcpiParams) -> Result<u64> {
    let blobs = tables::build(params, layout::ACPI_START)?;
    for (addr, bytes) in &blobs {
        if addr + bytes.len() as u64 > layout::BIOS_END {
            return Err(Error::Acpi("tables do not fit in the BIOS area".into()));
        }
        mem.write_slice(bytes, GuestAddress(*addr))
            .map_err(|e| Error::Acpi(format!("cannot write to guest memory: {e}")))?;
    }
    Ok(layout::ACPI_START)
}
