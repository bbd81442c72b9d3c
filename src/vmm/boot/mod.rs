//! Loading a kernel and preparing what its boot protocol expects.
//!
//! Two kinds of kernel are accepted, told apart by the file itself:
//! a bzImage is entered at its 64-bit entry (`startup_64`, load address +
//! 0x200) with a zero page in %rsi; an ELF kernel with a PVH note
//! (`XEN_ELFNOTE_PHYS32_ENTRY`) is entered in 32-bit protected mode with
//! `hvm_start_info` in %ebx.

pub mod bzimage;
pub mod initrd;
pub mod pvh;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use linux_loader::cmdline::Cmdline;
use vm_memory::GuestAddress;

use super::config::KernelBoot;
use super::error::{Error, Result};
use super::layout;
use super::memory::GuestMemory;

/// How the boot vCPU enters the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryMode {
    /// 64-bit long mode, zero page address in %rsi.
    Linux64 { zero_page: u64 },
    /// 32-bit protected mode without paging, `hvm_start_info` in %ebx.
    Pvh { start_info: u64 },
}

/// Result of loading: where to start and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootEntry {
    pub entry: u64,
    pub mode: EntryMode,
}

/// Kernel file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelKind {
    BzImage,
    Elf,
}

/// Tells an ELF from anything else by its magic number.
pub fn detect(file: &mut File) -> std::io::Result<KernelKind> {
    let mut magic = [0u8; 4];
    file.seek(SeekFrom::Start(0))?;
    let n = file.read(&mut magic)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(if n == 4 && magic == *b"\x7fELF" {
        KernelKind::Elf
    } else {
        KernelKind::BzImage
    })
}

/// Builds the command line structure, with the length limit checked.
pub fn cmdline(text: &str) -> Result<Cmdline> {
    let mut cl = Cmdline::new(layout::CMDLINE_MAX_SIZE)
        .map_err(|e| Error::Boot(format!("command line: {e}")))?;
    if !text.is_empty() {
        cl.insert_str(text)
            .map_err(|e| Error::Boot(format!("command line: {e}")))?;
    }
    Ok(cl)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|source| Error::KernelOpen {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads kernel, initrd and command line into guest memory and writes the
/// boot information block. `rsdp` is the ACPI RSDP address.
pub fn load(mem: &GuestMemory, mem_bytes: u64, boot: &KernelBoot, rsdp: u64) -> Result<BootEntry> {
    let mut kernel = open(&boot.kernel)?;
    if kernel
        .metadata()
        .map(|m| !m.is_file())
        .map_err(Error::io(format!("stat {}", boot.kernel.display())))?
    {
        return Err(Error::KernelLoad {
            path: boot.kernel.clone(),
            reason: "not a regular file".into(),
        });
    }
    let kind = detect(&mut kernel).map_err(Error::io(format!("read {}", boot.kernel.display())))?;
    let cl = cmdline(&boot.cmdline)?;
    linux_loader::loader::load_cmdline(mem, GuestAddress(layout::CMDLINE_START), &cl)
        .map_err(|e| Error::Boot(format!("cannot write the command line: {e}")))?;
    let cmdline_len = boot.cmdline.len() as u32;
    match kind {
        KernelKind::BzImage => bzimage::load(
            mem,
            mem_bytes,
            &boot.kernel,
            &mut kernel,
            boot,
            cmdline_len,
            rsdp,
        ),
        KernelKind::Elf => pvh::load(mem, mem_bytes, &boot.kernel, &mut kernel, boot, rsdp),
    }
}
