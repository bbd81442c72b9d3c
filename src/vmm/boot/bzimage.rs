//! Linux x86 boot protocol: bzImage loading and the zero page.

use std::fs::File;
use std::path::Path;

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use linux_loader::loader::{KernelLoader, bzimage::BzImage};
use vm_memory::GuestAddress;

use super::{BootEntry, EntryMode, initrd};
use crate::vmm::config::KernelBoot;
use crate::vmm::error::{Error, Result};
use crate::vmm::layout;
use crate::vmm::memory::{self, GuestMemory};

/// Lowest boot protocol version accepted (64-bit entry, cmdline_size).
const MIN_PROTOCOL: u16 = 0x0206;
/// `xloadflags` bit: the kernel has a 64-bit entry at load address + 0x200.
const XLF_KERNEL_64: u16 = 1 << 0;
/// `loadflags` bit: the heap_end_ptr field is valid.
const CAN_USE_HEAP: u8 = 1 << 7;
/// type_of_loader for a loader without an assigned ID.
const LOADER_UNDEFINED: u8 = 0xff;
/// Offset of the 64-bit entry point from the protected-mode load address.
const STARTUP_64_OFFSET: u64 = 0x200;
/// Highest initrd end for protocols older than 2.03.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x37ff_ffff;

/// Loads the bzImage and writes the zero page.
pub fn load(
    mem: &GuestMemory,
    mem_bytes: u64,
    path: &Path,
    kernel: &mut File,
    boot: &KernelBoot,
    cmdline_len: u32,
    rsdp: u64,
) -> Result<BootEntry> {
    let fail = |reason: String| Error::KernelLoad {
        path: path.to_path_buf(),
        reason,
    };
    let loaded = BzImage::load(
        mem,
        None,
        kernel,
        Some(GuestAddress(layout::HIGH_RAM_START)),
    )
    .map_err(|e| fail(format!("not a usable bzImage or ELF kernel: {e}")))?;
    let hdr = loaded
        .setup_header
        .ok_or_else(|| fail("bzImage without a setup header".into()))?;
    check_header(&hdr).map_err(fail)?;

    let mut params = boot_params {
        hdr,
        ..Default::default()
    };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.loadflags |= CAN_USE_HEAP;
    params.hdr.heap_end_ptr = 0xfe00;
    params.hdr.cmd_line_ptr = layout::CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len;
    params.acpi_rsdp_addr = rsdp;

    if let Some(initrd_path) = &boot.initrd {
        let addr_max = if hdr.version >= 0x0203 {
            u64::from(hdr.initrd_addr_max)
        } else {
            DEFAULT_INITRD_ADDR_MAX
        };
        let low_ram_end = memory::ram_regions(mem_bytes)[0].1;
        let max_end = low_ram_end.min(addr_max.saturating_add(1));
        let (addr, size) = initrd::load(mem, initrd_path, loaded.kernel_end, max_end)?;
        params.hdr.ramdisk_image = addr as u32;
        params.hdr.ramdisk_size = size as u32;
    }

    fill_e820(&mut params, mem_bytes)?;

    let bp = BootParams::new(&params, GuestAddress(layout::BOOT_INFO_START));
    LinuxBootConfigurator::write_bootparams(&bp, mem)
        .map_err(|e| Error::Boot(format!("cannot write the zero page: {e}")))?;

    Ok(BootEntry {
        entry: loaded.kernel_load.0 + STARTUP_64_OFFSET,
        mode: EntryMode::Linux64 {
            zero_page: layout::BOOT_INFO_START,
        },
    })
}

/// Checks the parts of the setup header this loader relies on.
pub fn check_header(hdr: &setup_header) -> std::result::Result<(), String> {
    let version = hdr.version;
    if version < MIN_PROTOCOL {
        return Err(format!(
            "boot protocol {}.{:02} is too old (2.06 or later needed)",
            version >> 8,
            version & 0xff
        ));
    }
    let xload = hdr.xloadflags;
    if xload & XLF_KERNEL_64 == 0 {
        return Err("kernel has no 64-bit entry point (XLF_KERNEL_64 unset)".into());
    }
    Ok(())
}

/// Copies the e820 map into the zero page.
pub fn fill_e820(params: &mut boot_params, mem_bytes: u64) -> Result<()> {
    let map = memory::e820_map(mem_bytes);
    if map.len() > params.e820_table.len() {
        return Err(Error::Boot("e820 map too long for the zero page".into()));
    }
    for (slot, e) in params.e820_table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            r#type: e.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        let mut hdr = setup_header {
            version: 0x020f,
            xloadflags: 1,
            ..Default::default()
        };
        assert!(check_header(&hdr).is_ok());
        hdr.xloadflags = 0;
        assert!(check_header(&hdr).is_err());
        hdr.xloadflags = 1;
        hdr.version = 0x0204;
        assert!(check_header(&hdr).is_err());
    }

    #[test]
    fn zero_page_e820() {
        let mut p = boot_params::default();
        fill_e820(&mut p, 512 << 20).unwrap();
        let n = p.e820_entries as usize;
        assert!(n >= 3);
        let ram: u64 = p.e820_table[..n]
            .iter()
            .filter(|e| e.r#type == memory::E820_RAM)
            .map(|e| e.size)
            .sum();
        assert!(ram > (511 << 20) && ram <= 512 << 20);
    }
}
