//! Video memory: an anonymous host mapping owned by the adapter. The VMM
//! maps it into the guest at BAR 0 (see [`super::GuestMapper`]), so the
//! guest's framebuffer writes never exit; the renderer reads it from here.
//! The guest writes it concurrently, so every access is volatile.

use vm_memory::{MmapRegion, VolatileMemory, VolatileSlice};

/// Smallest and largest video memory, as QEMU bounds `vgamem_mb`.
pub const VRAM_MIN: u64 = 1 << 20;
pub const VRAM_MAX: u64 = 512 << 20;
/// libvirt's default `vram` for the `vga` model: 16 MiB.
pub const VRAM_DEFAULT_KIB: u64 = 16 * 1024;

/// Video memory size from libvirt's `vram` attribute (KiB): whole MiB,
/// clamped to 1..=512 MiB and rounded up to a power of two, as QEMU does.
pub fn vram_bytes_from_kib(kib: u64) -> u64 {
    let mib = (kib / 1024).clamp(VRAM_MIN >> 20, VRAM_MAX >> 20);
    mib.next_power_of_two() << 20
}

pub struct Vram {
    region: MmapRegion<()>,
}

impl Vram {
    /// Maps `size` bytes of zeroed anonymous memory.
    pub fn new(size: u64) -> Result<Self, String> {
        let len = usize::try_from(size).map_err(|_| format!("vram size {size:#x}"))?;
        let region = MmapRegion::new(len).map_err(|e| format!("mapping video memory: {e}"))?;
        Ok(Vram { region })
    }

    pub fn len(&self) -> u64 {
        self.region.size() as u64
    }

    /// Where the mapping starts in the VMM's address space.
    pub fn host_addr(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    /// `len` bytes at `offset`, if they lie inside the memory.
    pub fn slice(&self, offset: usize, len: usize) -> Option<VolatileSlice<'_, ()>> {
        self.region.get_slice(offset, len).ok()
    }

    /// Reads at `offset`; bytes past the end read as 0xff.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        let Ok(off) = usize::try_from(offset) else {
            return;
        };
        let avail = (self.region.size().saturating_sub(off)).min(data.len());
        if let (Some(s), Some(dst)) = (self.slice(off, avail), data.get_mut(..avail)) {
            s.copy_to(dst);
        }
    }

    /// Writes at `offset`; bytes past the end are dropped.
    pub fn write(&self, offset: u64, data: &[u8]) {
        let Ok(off) = usize::try_from(offset) else {
            return;
        };
        let avail = (self.region.size().saturating_sub(off)).min(data.len());
        if let (Some(s), Some(src)) = (self.slice(off, avail), data.get(..avail)) {
            s.copy_from(src);
        }
    }

    /// Zeroes the first `len` bytes (at most all of it).
    pub fn clear(&self, len: u64) {
        const CHUNK: usize = 64 * 1024;
        let zeros = [0u8; CHUNK];
        let end = len.min(self.len());
        let mut off = 0;
        while off < end {
            let n = (end - off).min(CHUNK as u64) as usize;
            self.write(off, &zeros[..n]);
            off += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_qemu() {
        assert_eq!(vram_bytes_from_kib(VRAM_DEFAULT_KIB), 16 << 20);
        assert_eq!(vram_bytes_from_kib(0), 1 << 20);
        assert_eq!(vram_bytes_from_kib(3 * 1024), 4 << 20);
        assert_eq!(vram_bytes_from_kib(9000 * 1024), 512 << 20);
    }

    #[test]
    fn bounded_access_and_clear() {
        let v = Vram::new(1 << 20).unwrap();
        v.write(0x100, &[1, 2, 3, 4]);
        let mut b = [0u8; 4];
        v.read(0x100, &mut b);
        assert_eq!(b, [1, 2, 3, 4]);
        v.write((1 << 20) - 2, &[9, 9, 9, 9]);
        v.read((1 << 20) - 2, &mut b);
        assert_eq!(b, [9, 9, 0xff, 0xff]);
        v.read(u64::MAX, &mut b);
        assert_eq!(b, [0xff; 4]);
        v.clear(0x102);
        v.read(0x100, &mut b);
        assert_eq!(b, [0, 0, 3, 4]);
    }
}
