//! Guest RAM (or a device's memory) in a state image: the pages that are
//! not all zero, as runs of `(address, length)` followed by their bytes,
//! ended by a run of length zero. Fresh memory is zero, so a restore only
//! reads what was written.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;

use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::super::memory::GuestMemory;

const PAGE: usize = 4096;
/// Runs are cut at this length so that progress moves and no single
/// write is huge.
const MAX_RUN: usize = 8 << 20;
/// The address of the closing run.
const END: u64 = u64::MAX;

fn zero(page: &[u8]) -> bool {
    page.chunks_exact(16)
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
}

/// One guest memory region as bytes.
///
/// Only called while nothing else touches guest memory (vCPUs parked,
/// device workers stopped, or before either exists).
fn region_bytes(start: *mut u8, len: usize) -> &'static mut [u8] {
    // SAFETY: `start`/`len` describe a live mapping owned by the VM's
    // GuestMemory, which outlives every save and restore; no vCPU or device
    // worker runs while the slice is used (see the callers).
    unsafe { std::slice::from_raw_parts_mut(start, len) }
}

/// `/proc/self/pagemap` entry bits: the page is in RAM, or in swap.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;
/// Pagemap entries read at a time (512 KiB).
const PM_CHUNK: usize = 64 << 10;

/// Which pages of a region the guest ever touched, from the process's
/// page map: a page neither in RAM nor in swap reads as zero, and is not
/// even read (reading it would fault in the zero page, a few hundred
/// nanoseconds each over all of RAM). Without the page map every page is
/// looked at.
fn touched(pagemap: Option<&std::fs::File>, start: *mut u8, pages: usize) -> Vec<bool> {
    let Some(pm) = pagemap else {
        return vec![true; pages];
    };
    let mut out = Vec::with_capacity(pages);
    let first = start as u64 / PAGE as u64;
    let mut buf = vec![0u8; PM_CHUNK * 8];
    while out.len() < pages {
        let n = (pages - out.len()).min(PM_CHUNK);
        let at = (first + out.len() as u64) * 8;
        if pm.read_exact_at(&mut buf[..n * 8], at).is_err() {
            out.resize(pages, true);
            break;
        }
        out.extend(buf[..n * 8].chunks_exact(8).map(|e| {
            let v = u64::from_le_bytes(e.try_into().unwrap_or([0xff; 8]));
            v & (PM_PRESENT | PM_SWAPPED) != 0
        }));
    }
    out
}

/// One stretch of memory in the image: where it starts in the address
/// space its runs name, and where it is mapped in the VMM.
#[derive(Clone, Copy)]
pub struct Block {
    pub base: u64,
    pub host: *mut u8,
    pub len: usize,
}

/// Guest RAM as blocks.
pub fn ram_blocks(mem: &GuestMemory) -> Vec<Block> {
    mem.iter()
        .map(|r| Block {
            base: r.start_addr().0,
            host: r.as_ptr(),
            len: r.len() as usize,
        })
        .collect()
}

/// Writes every non-zero page of guest RAM; returns the bytes of page
/// data written. `pagemap` is this process's `/proc/self/pagemap`, if
/// open.
pub fn write(
    mem: &GuestMemory,
    pagemap: Option<&std::fs::File>,
    out: &mut impl Write,
) -> io::Result<u64> {
    write_blocks(&ram_blocks(mem), pagemap, out)
}

/// Writes every non-zero page of `blocks`, then the closing run.
pub fn write_blocks(
    blocks: &[Block],
    pagemap: Option<&std::fs::File>,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut written = 0u64;
    for block in blocks {
        let base = block.base;
        let bytes = region_bytes(block.host, block.len);
        let mut page = 0;
        let pages = bytes.len() / PAGE;
        let used = touched(pagemap, block.host, pages);
        let data = |p: usize| used[p] && !zero(&bytes[p * PAGE..(p + 1) * PAGE]);
        while page < pages {
            if !data(page) {
                page += 1;
                continue;
            }
            let first = page;
            while page < pages && data(page) && (page - first) * PAGE < MAX_RUN {
                page += 1;
            }
            let run = &bytes[first * PAGE..page * PAGE];
            out.write_all(&(base + (first * PAGE) as u64).to_le_bytes())?;
            out.write_all(&(run.len() as u64).to_le_bytes())?;
            out.write_all(run)?;
            written += run.len() as u64;
        }
    }
    out.write_all(&END.to_le_bytes())?;
    out.write_all(&0u64.to_le_bytes())?;
    Ok(written)
}

fn read_u64(input: &mut impl Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads runs into guest RAM (which must be fresh: zero everywhere else)
/// until the closing run.
pub fn read(mem: &GuestMemory, input: &mut impl Read) -> io::Result<u64> {
    read_blocks(&ram_blocks(mem), "guest RAM", input)
}

/// Reads runs into `blocks` until the closing run; a run outside them is
/// an error naming `what`.
pub fn read_blocks(blocks: &[Block], what: &str, input: &mut impl Read) -> io::Result<u64> {
    let mut read = 0u64;
    loop {
        let gpa = read_u64(input)?;
        let len = read_u64(input)?;
        if gpa == END && len == 0 {
            return Ok(read);
        }
        let block = blocks
            .iter()
            .find(|b| {
                gpa >= b.base
                    && gpa
                        .checked_add(len)
                        .is_some_and(|e| e <= b.base + b.len as u64)
            })
            .ok_or_else(|| bad(format!("memory run {gpa:#x}+{len:#x} is not in {what}")))?;
        let off = (gpa - block.base) as usize;
        let bytes = region_bytes(block.host, block.len);
        input.read_exact(&mut bytes[off..off + len as usize])?;
        read += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress};

    #[test]
    fn only_non_zero_pages_are_written_and_read_back() {
        let mem = crate::vmm::memory::create(8 << 20, &[]).unwrap();
        mem.write_obj(0x1234_5678_u32, GuestAddress(0x3000))
            .unwrap();
        mem.write_slice(&[7u8; 3 * PAGE], GuestAddress(0x10_0000))
            .unwrap();
        let mut image = Vec::new();
        let data = write(&mem, None, &mut image).unwrap();
        let pagemap = std::fs::File::open("/proc/self/pagemap").unwrap();
        let mut mapped = Vec::new();
        assert_eq!(write(&mem, Some(&pagemap), &mut mapped).unwrap(), data);
        assert_eq!(mapped, image);
        assert_eq!(data, 4 * PAGE as u64);
        // Two runs (one page, three pages) and the end record.
        assert_eq!(image.len(), 4 * PAGE + 3 * 16);

        let fresh = crate::vmm::memory::create(8 << 20, &[]).unwrap();
        assert_eq!(read(&fresh, &mut image.as_slice()).unwrap(), data);
        let v: u32 = fresh.read_obj(GuestAddress(0x3000)).unwrap();
        assert_eq!(v, 0x1234_5678);
        let b: u8 = fresh
            .read_obj(GuestAddress(0x10_0000 + 3 * PAGE as u64 - 1))
            .unwrap();
        assert_eq!(b, 7);
    }

    #[test]
    fn truncated_and_misplaced_runs_are_errors() {
        let mem = crate::vmm::memory::create(8 << 20, &[]).unwrap();
        mem.write_slice(&[1u8; PAGE], GuestAddress(0)).unwrap();
        let mut image = Vec::new();
        write(&mem, None, &mut image).unwrap();
        let fresh = crate::vmm::memory::create(8 << 20, &[]).unwrap();
        let cut = &image[..image.len() - 20];
        assert!(read(&fresh, &mut &cut[..]).is_err());

        let mut outside = Vec::new();
        outside.extend_from_slice(&(64u64 << 20).to_le_bytes());
        outside.extend_from_slice(&(PAGE as u64).to_le_bytes());
        outside.extend_from_slice(&[0u8; PAGE]);
        let e = read(&fresh, &mut outside.as_slice()).unwrap_err();
        assert!(e.to_string().contains("not in guest RAM"), "{e}");
    }
}
