//! Boot register state: general registers, segments, boot GDT and the
//! identity-mapped page tables for 64-bit entry, FPU.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};

use crate::vmm::boot::{BootEntry, EntryMode};
use crate::vmm::layout;
use crate::vmm::memory::GuestMemory;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PAGE_PRESENT_RW: u64 = 0x3;
const PAGE_PS: u64 = 0x80;

/// Selectors Linux expects for the 64-bit boot protocol (__BOOT_CS/__BOOT_DS);
/// PVH uses the same slots with a 32-bit code segment.
const CODE_SELECTOR: u16 = 0x10;
const DATA_SELECTOR: u16 = 0x18;
const TSS_SELECTOR: u16 = 0x20;

/// Segment descriptor flags (access byte plus the G/DB/L nibble).
const FLAGS_CODE64: u16 = 0xa09b;
const FLAGS_CODE32: u16 = 0xc09b;
const FLAGS_DATA: u16 = 0xc093;
const FLAGS_TSS: u16 = 0x808b;

/// Encodes a GDT descriptor.
pub fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = u64::from(base);
    let limit = u64::from(limit);
    let flags = u64::from(flags);
    ((base & 0xff00_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
        | ((limit & 0xf_0000) << 32)
        | ((flags & 0xf0ff) << 40)
}

/// Decodes a descriptor into the form KVM takes.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = (entry & 0xffff) | ((entry >> 32) & 0xf_0000);
    let access = (entry >> 40) & 0xff;
    let flags = (entry >> 52) & 0xf;
    let g = (flags >> 3) & 1;
    let limit = if g == 1 {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    kvm_segment {
        base,
        limit: limit as u32,
        selector,
        type_: (access & 0xf) as u8,
        present: ((access >> 7) & 1) as u8,
        dpl: ((access >> 5) & 3) as u8,
        db: ((flags >> 2) & 1) as u8,
        s: ((access >> 4) & 1) as u8,
        l: ((flags >> 1) & 1) as u8,
        g: g as u8,
        avl: (flags & 1) as u8,
        unusable: u8::from((access >> 7) & 1 == 0),
        padding: 0,
    }
}

/// Boot GDT for the given entry mode.
pub fn gdt(mode: &EntryMode) -> [u64; 5] {
    let code = match mode {
        EntryMode::Linux64 { .. } => FLAGS_CODE64,
        EntryMode::Pvh { .. } => FLAGS_CODE32,
    };
    [
        0,
        0,
        gdt_entry(code, 0, 0xfffff),
        gdt_entry(FLAGS_DATA, 0, 0xfffff),
        gdt_entry(FLAGS_TSS, 0, 0xfffff),
    ]
}

/// Writes GDT, IDT and (for 64-bit entry) page tables, and fills `sregs`.
pub fn setup_sregs(
    mem: &GuestMemory,
    boot: &BootEntry,
    sregs: &mut kvm_sregs,
) -> std::result::Result<(), String> {
    let table = gdt(&boot.mode);
    for (i, e) in table.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(layout::GDT_START + (i as u64) * 8))
            .map_err(|e| format!("GDT: {e}"))?;
    }
    mem.write_obj(0u64, GuestAddress(layout::IDT_START))
        .map_err(|e| format!("IDT: {e}"))?;
    sregs.gdt.base = layout::GDT_START;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = layout::IDT_START;
    sregs.idt.limit = 7;

    let code = segment_from_gdt(table[2], CODE_SELECTOR);
    let data = segment_from_gdt(table[3], DATA_SELECTOR);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = segment_from_gdt(table[4], TSS_SELECTOR);

    match boot.mode {
        EntryMode::Linux64 { .. } => {
            write_page_tables(mem)?;
            sregs.cr3 = layout::PML4_START;
            sregs.cr4 |= CR4_PAE;
            sregs.cr0 |= CR0_PE | CR0_PG | CR0_ET;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
        EntryMode::Pvh { .. } => {
            sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & !CR0_PG;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    Ok(())
}

/// The architectural state after RESET, for firmware boot: real mode with
/// CS based at 0xFFFF0000 and IP 0xFFF0, so the first fetch is the reset
/// vector 16 bytes below 4 GiB. Written out in full rather than trusting
/// what a new vCPU happens to hold.
pub fn reset_sregs(sregs: &mut kvm_sregs) {
    let seg = |selector: u16, base: u64, type_: u8| kvm_segment {
        base,
        limit: 0xffff,
        selector,
        type_,
        present: 1,
        s: 1,
        ..Default::default()
    };
    sregs.cs = seg(0xf000, 0xffff_0000, 0xb);
    for s in [
        &mut sregs.ds,
        &mut sregs.es,
        &mut sregs.fs,
        &mut sregs.gs,
        &mut sregs.ss,
    ] {
        *s = seg(0, 0, 0x3);
    }
    sregs.ldt = kvm_segment {
        limit: 0xffff,
        type_: 0x2,
        present: 1,
        ..Default::default()
    };
    sregs.tr = kvm_segment {
        limit: 0xffff,
        type_: 0xb,
        present: 1,
        ..Default::default()
    };
    sregs.gdt.base = 0;
    sregs.gdt.limit = 0xffff;
    sregs.idt.base = 0;
    sregs.idt.limit = 0xffff;
    sregs.cr0 = CR0_ET | CR0_CD | CR0_NW;
    sregs.cr2 = 0;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
}

/// General registers after RESET.
pub fn reset_regs() -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: 0xfff0,
        ..Default::default()
    }
}

/// Identity map of the first 4 GiB with 2 MiB pages.
fn write_page_tables(mem: &GuestMemory) -> std::result::Result<(), String> {
    let w = |v: u64, a: u64| {
        mem.write_obj(v, GuestAddress(a))
            .map_err(|e| format!("page tables: {e}"))
    };
    w(layout::PDPTE_START | PAGE_PRESENT_RW, layout::PML4_START)?;
    for i in 0..4u64 {
        w(
            (layout::PDE_START + i * 0x1000) | PAGE_PRESENT_RW,
            layout::PDPTE_START + i * 8,
        )?;
    }
    for i in 0..2048u64 {
        w(
            (i << 21) | PAGE_PRESENT_RW | PAGE_PS,
            layout::PDE_START + i * 8,
        )?;
    }
    Ok(())
}

/// General registers at entry.
pub fn boot_regs(boot: &BootEntry) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        rip: boot.entry,
        ..Default::default()
    };
    match boot.mode {
        EntryMode::Linux64 { zero_page } => {
            regs.rsp = layout::BOOT_STACK_POINTER;
            regs.rbp = layout::BOOT_STACK_POINTER;
            regs.rsi = zero_page;
        }
        EntryMode::Pvh { start_info } => {
            regs.rbx = start_info;
        }
    }
    regs
}

/// FPU at entry: default control word and MXCSR.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gdt_round_trip() {
        let e = gdt_entry(FLAGS_CODE64, 0, 0xfffff);
        assert_eq!(e, 0x00af_9b00_0000_ffff);
        let s = segment_from_gdt(e, CODE_SELECTOR);
        assert_eq!(s.l, 1);
        assert_eq!(s.db, 0);
        assert_eq!(s.limit, 0xffff_ffff);
        assert_eq!(s.type_, 0xb);
        assert_eq!(s.present, 1);
        let c32 = segment_from_gdt(gdt_entry(FLAGS_CODE32, 0, 0xfffff), CODE_SELECTOR);
        assert_eq!((c32.l, c32.db), (0, 1));
    }

    #[test]
    fn entry_registers() {
        let b = BootEntry {
            entry: 0x100200,
            mode: EntryMode::Linux64 { zero_page: 0x7000 },
        };
        let r = boot_regs(&b);
        assert_eq!((r.rip, r.rsi, r.rflags), (0x100200, 0x7000, 2));
        let p = BootEntry {
            entry: 0x100000,
            mode: EntryMode::Pvh { start_info: 0x7000 },
        };
        assert_eq!(boot_regs(&p).rbx, 0x7000);
    }
}
