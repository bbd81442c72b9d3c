//! Guest physical address map and I/O port assignments.
//!
//! ```text
//! 0x0000_0000 ─ 0x0009_FBFF  RAM (boot structures live here)
//! 0x0009_FC00 ─ 0x000F_FFFF  reserved: EBDA, BIOS area, ACPI tables at 0xE0000
//! 0x0010_0000 ─ min(RAM, 3 GiB)  RAM
//! 0xC000_0000 ─ 0xDFFF_FFFF  32-bit PCI MMIO window (the VMM and edk2
//!                            place BARs from its bottom up)
//! 0xE000_0000 ─ 0xE00F_FFFF  PCI ECAM (bus 0)
//! 0xE010_0000 ─ 0xFEBF_FFFF  32-bit PCI MMIO window, upper part (SeaBIOS
//!                            places BARs top-down from 0xFEC0_0000)
//! 0xFEC0_0000               IOAPIC
//! 0xFEE0_0000               local APIC
//! 0xFEF0_0000               Generic Event Device register
//! 4 GiB - ROM size ─ 4 GiB  firmware ROM (BIOS boot only), its last
//!                            128 KiB also copied to 0xE0000
//! 0x1_0000_0000 ─           RAM above 4 GiB, then the 64-bit PCI window
//! ```

/// Zero page (Linux `boot_params`) or PVH `hvm_start_info`.
pub const BOOT_INFO_START: u64 = 0x7000;
/// PVH memory map table / module list area.
pub const PVH_MEMMAP_START: u64 = 0x7800;
/// PVH module list.
pub const PVH_MODLIST_START: u64 = 0x7f00;
/// Initial stack pointer for the boot CPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// PML4 of the identity-mapped boot page tables.
pub const PML4_START: u64 = 0x9000;
/// First PDPT.
pub const PDPTE_START: u64 = 0xa000;
/// First page directory (four follow, mapping 4 GiB with 2 MiB pages).
pub const PDE_START: u64 = 0xb000;
/// Boot GDT.
pub const GDT_START: u64 = 0x500;
/// Boot IDT (empty).
pub const IDT_START: u64 = 0x520;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x20000;
/// Largest command line accepted (Linux x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the EBDA; RAM below it is usable.
pub const EBDA_START: u64 = 0x9fc00;
/// RSDP and the rest of the ACPI tables.
pub const ACPI_START: u64 = 0xe0000;
/// End of the BIOS area.
pub const BIOS_END: u64 = 0x10_0000;
/// Where kernels and high memory start.
pub const HIGH_RAM_START: u64 = 0x10_0000;

/// Start of the 32-bit MMIO hole; RAM below 4 GiB ends here at most.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
/// 32-bit PCI memory window.
pub const PCI_MMIO32_START: u64 = 0xc000_0000;
pub const PCI_MMIO32_SIZE: u64 = PCI_ECAM_START - PCI_MMIO32_START;
/// The part of the 32-bit window above the ECAM.
pub const PCI_MMIO32_HIGH_START: u64 = PCI_ECAM_START + PCI_ECAM_SIZE;
pub const PCI_MMIO32_HIGH_SIZE: u64 = IOAPIC_START - PCI_MMIO32_HIGH_START;
/// Both 32-bit windows: `(start, size)`.
pub const PCI_MMIO32_WINDOWS: [(u64, u64); 2] = [
    (PCI_MMIO32_START, PCI_MMIO32_SIZE),
    (PCI_MMIO32_HIGH_START, PCI_MMIO32_HIGH_SIZE),
];
/// ECAM for bus 0 only.
pub const PCI_ECAM_START: u64 = 0xe000_0000;
pub const PCI_ECAM_SIZE: u64 = 0x10_0000;
/// Highest and lowest PCI bus numbers of the root bridge.
pub const PCI_BUS_MIN: u8 = 0;
pub const PCI_BUS_MAX: u8 = 0;
/// Generic Event Device: one byte of pending event bits, read-to-clear.
pub const GED_START: u64 = 0xfef0_0000;
pub const GED_SIZE: u64 = 0x10;
/// PCI hotplug registers (`devices/pci_hotplug.rs`), right after the GED.
pub const PCI_HOTPLUG_START: u64 = GED_START + GED_SIZE;
/// CPU hotplug registers (`devices/cpu_hotplug.rs`), after those.
pub const CPU_HOTPLUG_START: u64 = PCI_HOTPLUG_START + 0x20;
/// IOAPIC and local APIC.
pub const IOAPIC_START: u64 = 0xfec0_0000;
pub const LAPIC_START: u64 = 0xfee0_0000;
/// RAM above the hole starts at 4 GiB.
pub const RAM_64BIT_START: u64 = 0x1_0000_0000;
/// The least room the 64-bit PCI window has after the top of RAM.
pub const PCI_MMIO64_SIZE: u64 = 0x4_0000_0000;
/// Identity map set up by `KVM_SET_TSS_ADDR` (three pages below the IOAPIC... for VMX only).
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;

/// I/O ports.
pub const COM1_PORT: u16 = 0x3f8;
pub const COM1_IRQ: u32 = 4;
pub const I8042_DATA_PORT: u16 = 0x60;
pub const I8042_CMD_PORT: u16 = 0x64;
/// The KVM memory slot of the display adapter's video memory (guest RAM
/// takes the first few).
pub const VGA_VRAM_SLOT: u32 = 16;
/// The i8042's keyboard and mouse (aux) interrupts.
pub const I8042_KBD_IRQ: u32 = 1;
pub const I8042_AUX_IRQ: u32 = 12;
pub const CMOS_PORT: u16 = 0x70;
/// ACPI hardware-reduced registers: sleep control, sleep status, reset.
pub const ACPI_SLEEP_CTL_PORT: u16 = 0x600;
pub const ACPI_SLEEP_STS_PORT: u16 = 0x601;
pub const ACPI_RESET_PORT: u16 = 0x604;
/// ACPI PM timer (3.579545 MHz, 32-bit).
pub const ACPI_PM_TIMER_PORT: u16 = 0x608;
/// Value the guest writes to the reset register.
pub const ACPI_RESET_VALUE: u8 = 0x1;
/// PCI configuration mechanism #1.
pub const PCI_CONFIG_PORT: u16 = 0xcf8;
/// PCI I/O window handed to the root bridge.
pub const PCI_IO_START: u16 = 0x1000;
pub const PCI_IO_END: u16 = 0xffff;
/// Where the VMM places I/O BARs (where SeaBIOS would: from 0xC000).
pub const PCI_IO_BAR_START: u64 = 0xc000;
pub const PCI_IO_BAR_SIZE: u64 = 0x4000;
/// Interrupt of the Generic Event Device (GSI, edge, active high). Above
/// the ISA range, so it reaches only the IOAPIC and never the 8259, whose
/// unprogrammed vector base would turn it into an exception vector in a
/// guest that leaves the PIC alone.
pub const GED_IRQ: u32 = 16;
/// GSI of PCI slot `slot`'s interrupt pin `pin` (0 = INTA): GSIs 17..=23
/// round robin, as the DSDT's `_PRT` says (16 is the GED's).
pub fn pci_intx_gsi(slot: u8, pin: u8) -> u32 {
    17 + (u32::from(slot) + u32::from(pin)) % 7
}
/// `_S5_` sleep type written with SLP_EN for power off.
pub const S5_SLEEP_TYPE: u8 = 5;

/// Aligns `v` up to `align` (a power of two), or `None` on overflow.
pub fn align_up(v: u64, align: u64) -> Option<u64> {
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}
