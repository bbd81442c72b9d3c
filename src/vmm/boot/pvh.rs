//! PVH boot: ELF kernels with a `XEN_ELFNOTE_PHYS32_ENTRY` note, entered
//! in 32-bit protected mode with `hvm_start_info` in %ebx.

use std::fs::File;
use std::path::Path;

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::{Elf, KernelLoader, elf::PvhBootCapability};
use vm_memory::GuestAddress;

use super::{BootEntry, EntryMode, initrd};
use crate::vmm::config::KernelBoot;
use crate::vmm::error::{Error, Result};
use crate::vmm::layout;
use crate::vmm::memory::{self, GuestMemory};

/// `hvm_start_info.magic`.
const XEN_HVM_START_MAGIC: u32 = 0x336e_c578;

/// Loads the ELF kernel and writes `hvm_start_info`, the memory map and
/// the module list (the initrd).
pub fn load(
    mem: &GuestMemory,
    mem_bytes: u64,
    path: &Path,
    kernel: &mut File,
    boot: &KernelBoot,
    rsdp: u64,
) -> Result<BootEntry> {
    let fail = |reason: String| Error::KernelLoad {
        path: path.to_path_buf(),
        reason,
    };
    let loaded = Elf::load(
        mem,
        None,
        kernel,
        Some(GuestAddress(layout::HIGH_RAM_START)),
    )
    .map_err(|e| fail(format!("cannot load ELF: {e}")))?;
    let entry = match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(addr) => addr.0,
        _ => return Err(fail("ELF kernel has no PVH entry note".into())),
    };

    let (info, memmap, modules) = start_info(mem, mem_bytes, boot, loaded.kernel_end, rsdp)?;
    let mut bp = BootParams::new(&info, GuestAddress(layout::BOOT_INFO_START));
    bp.set_sections(&memmap, GuestAddress(layout::PVH_MEMMAP_START));
    if !modules.is_empty() {
        bp.set_modules(&modules, GuestAddress(layout::PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams(&bp, mem)
        .map_err(|e| Error::Boot(format!("cannot write hvm_start_info: {e}")))?;

    Ok(BootEntry {
        entry,
        mode: EntryMode::Pvh {
            start_info: layout::BOOT_INFO_START,
        },
    })
}

type StartInfo = (
    hvm_start_info,
    Vec<hvm_memmap_table_entry>,
    Vec<hvm_modlist_entry>,
);

fn start_info(
    mem: &GuestMemory,
    mem_bytes: u64,
    boot: &KernelBoot,
    kernel_end: u64,
    rsdp: u64,
) -> Result<StartInfo> {
    let memmap = memmap(mem_bytes);
    let mut modules = Vec::new();
    if let Some(path) = &boot.initrd {
        let low_ram_end = memory::ram_regions(mem_bytes)[0].1;
        let (addr, size) = initrd::load(mem, path, kernel_end, low_ram_end)?;
        modules.push(hvm_modlist_entry {
            paddr: addr,
            size,
            ..Default::default()
        });
    }
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC,
        version: 1,
        cmdline_paddr: layout::CMDLINE_START,
        rsdp_paddr: rsdp,
        memmap_paddr: layout::PVH_MEMMAP_START,
        memmap_entries: memmap.len() as u32,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            layout::PVH_MODLIST_START
        },
        ..Default::default()
    };
    Ok((info, memmap, modules))
}

/// The e820 map in PVH form.
pub fn memmap(mem_bytes: u64) -> Vec<hvm_memmap_table_entry> {
    memory::e820_map(mem_bytes)
        .into_iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        })
        .collect()
}
