//! Placing the initrd where the kernel can reach it.

use std::fs::File;
use std::path::Path;

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::error::{Error, Result};
use crate::vmm::layout;
use crate::vmm::memory::GuestMemory;

/// Loads `path` at the highest page-aligned address that ends at or below
/// `max_end` (exclusive) and starts at or above `min_start`. Returns
/// `(address, size)`.
pub fn load(mem: &GuestMemory, path: &Path, min_start: u64, max_end: u64) -> Result<(u64, u64)> {
    let err = |reason: String| Error::Initrd {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|e| err(e.to_string()))?;
    let size = file.metadata().map_err(|e| err(e.to_string()))?.len();
    if size == 0 {
        return Err(err("file is empty".into()));
    }
    let addr = place(size, min_start, max_end).ok_or_else(|| {
        err(format!(
            "{size} bytes do not fit between {min_start:#x} and {max_end:#x}"
        ))
    })?;
    let len = usize::try_from(size).map_err(|_| err("too large".into()))?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut file, len)
        .map_err(|e| err(format!("cannot copy into guest memory: {e}")))?;
    Ok((addr, size))
}

/// Highest page-aligned start for `size` bytes inside `[min_start, max_end)`.
pub fn place(size: u64, min_start: u64, max_end: u64) -> Option<u64> {
    let start = max_end.checked_sub(size)? & !0xfff;
    let min = layout::align_up(min_start, 0x1000)?;
    (start >= min).then_some(start)
}

#[cfg(test)]
mod tests {
    use super::place;

    #[test]
    fn places_at_top_page_aligned() {
        assert_eq!(place(0x1800, 0x10_0000, 0x100_0000), Some(0xff_e000));
        assert_eq!(place(0x100_0000, 0x10_0000, 0x100_0000), None);
        assert_eq!(place(u64::MAX, 0, 10), None);
    }
}
