//! Guest RAM: where it goes in the address map, allocating it, and the
//! e820 map that describes it to the guest.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::error::{Error, Result};
use super::layout;

/// Guest memory type used throughout the VMM.
pub type GuestMemory = GuestMemoryMmap<()>;

/// e820 entry types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

/// One e820 entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The RAM regions of a guest: `(start, size)`, below and above the hole.
pub fn ram_regions(mem_bytes: u64) -> Vec<(u64, u64)> {
    if mem_bytes <= layout::MMIO_HOLE_START {
        vec![(0, mem_bytes)]
    } else {
        vec![
            (0, layout::MMIO_HOLE_START),
            (layout::RAM_64BIT_START, mem_bytes - layout::MMIO_HOLE_START),
        ]
    }
}

/// First guest physical address after RAM.
pub fn ram_end(mem_bytes: u64) -> u64 {
    ram_regions(mem_bytes)
        .last()
        .map(|(s, l)| s + l)
        .unwrap_or(0)
}

/// Where the 64-bit PCI window starts: the first 1 GiB boundary after RAM
/// (and never below 4 GiB).
pub fn pci_mmio64_start(mem_bytes: u64) -> u64 {
    let end = ram_end(mem_bytes).max(layout::RAM_64BIT_START);
    layout::align_up(end, 1 << 30).unwrap_or(end)
}

/// The 64-bit PCI window: from [`pci_mmio64_start`] to the end of the
/// guest's physical address space (its width is the host's, through
/// CPUID). Firmware places 64-bit BARs at either end of it: SeaBIOS just
/// above RAM, edk2's CloudHv in the top eighth of the address space.
pub fn pci_mmio64_window(mem_bytes: u64) -> (u64, u64) {
    let start = pci_mmio64_start(mem_bytes);
    let end = 1u64 << host_phys_bits().min(63);
    (
        start,
        end.saturating_sub(start).max(layout::PCI_MMIO64_SIZE),
    )
}

/// Host physical address width, which bounds what the guest can address.
pub fn host_phys_bits() -> u32 {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    if max_ext >= 0x8000_0008 {
        let bits = core::arch::x86_64::__cpuid(0x8000_0008).eax & 0xff;
        if bits >= 32 {
            return bits;
        }
    }
    36
}

/// Host RAM in bytes from /proc/meminfo, if readable.
pub fn host_ram_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Checks that `memory_mib` can be given to a guest on this host.
pub fn check_size(memory_mib: u64) -> Result<u64> {
    let bytes = memory_mib
        .checked_mul(1 << 20)
        .ok_or_else(|| Error::Memory(format!("{memory_mib} MiB does not fit in 64 bits")))?;
    // Far beyond any host; also keeps the address arithmetic below in range.
    if bytes > 1 << 46 {
        return Err(Error::Memory(format!(
            "{memory_mib} MiB is more than the 64 TiB a guest can have"
        )));
    }
    if bytes < 16 << 20 {
        return Err(Error::Memory(format!(
            "{memory_mib} MiB is too little; at least 16 MiB are needed"
        )));
    }
    if let Some(host) = host_ram_bytes()
        && bytes > host
    {
        return Err(Error::Memory(format!(
            "{memory_mib} MiB requested but the host has only {} MiB of RAM",
            host >> 20
        )));
    }
    let limit = 1u64 << host_phys_bits().min(46);
    if pci_mmio64_start(bytes) + layout::PCI_MMIO64_SIZE > limit {
        return Err(Error::Memory(format!(
            "{memory_mib} MiB does not fit in the guest physical address space ({} bits)",
            host_phys_bits()
        )));
    }
    Ok(bytes)
}

/// Allocates guest RAM, plus `extra` regions (a firmware ROM) that are
/// guest memory but not RAM.
pub fn create(mem_bytes: u64, extra: &[(u64, u64)]) -> Result<GuestMemory> {
    let ranges: Vec<(GuestAddress, usize)> = ram_regions(mem_bytes)
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(s, l)| {
            usize::try_from(l)
                .map(|l| (GuestAddress(s), l))
                .map_err(|_| Error::Memory("region larger than the host address space".into()))
        })
        .collect::<Result<_>>()?;
    GuestMemoryMmap::from_ranges(&ranges)
        .map_err(|e| Error::Memory(format!("cannot allocate {} MiB: {e}", mem_bytes >> 20)))
}

/// The e820 map handed to the guest (zero page or PVH memmap).
pub fn e820_map(mem_bytes: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: layout::EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: layout::EBDA_START,
            size: layout::BIOS_END - layout::EBDA_START,
            kind: E820_RESERVED,
        },
    ];
    for (start, size) in ram_regions(mem_bytes) {
        let (start, size) = if start == 0 {
            (layout::HIGH_RAM_START, size - layout::HIGH_RAM_START)
        } else {
            (start, size)
        };
        map.push(E820Entry {
            addr: start,
            size,
            kind: E820_RAM,
        });
    }
    map.push(E820Entry {
        addr: layout::PCI_ECAM_START,
        size: layout::PCI_ECAM_SIZE,
        kind: E820_RESERVED,
    });
    map.sort_by_key(|e| e.addr);
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_guest_has_one_region() {
        assert_eq!(ram_regions(256 << 20), vec![(0, 256 << 20)]);
        let map = e820_map(256 << 20);
        let ram: u64 = map
            .iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.size)
            .sum();
        assert_eq!(ram, (256 << 20) - (layout::BIOS_END - layout::EBDA_START));
        assert!(map.windows(2).all(|w| w[0].addr + w[0].size <= w[1].addr));
    }

    #[test]
    fn large_guest_splits_around_hole() {
        let mem = 4u64 << 30;
        let r = ram_regions(mem);
        assert_eq!(r[0], (0, layout::MMIO_HOLE_START));
        assert_eq!(r[1], (layout::RAM_64BIT_START, 1 << 30));
        assert_eq!(ram_end(mem), 5 << 30);
        assert_eq!(pci_mmio64_start(mem), 5 << 30);
        let map = e820_map(mem);
        assert!(
            map.iter()
                .any(|e| e.addr == layout::RAM_64BIT_START && e.kind == E820_RAM)
        );
    }

    #[test]
    fn rejects_absurd_sizes() {
        assert!(check_size(1).is_err());
        assert!(check_size(u64::MAX).is_err());
        assert!(check_size(1 << 40).is_err());
        assert!(check_size(64).is_ok());
    }
}
