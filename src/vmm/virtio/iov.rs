//! The guest memory a descriptor chain names, as slices of the VMM's own
//! mapping, so that disk I/O goes straight between the file and guest
//! memory (one copy, done by the kernel) instead of through a bounce
//! buffer.

use virtio_queue::DescriptorChain;
use vm_memory::{GuestMemoryBackend, VolatileSlice};

use crate::vmm::memory::GuestMemory;

/// A piece of guest memory.
pub type Slice<'a> = VolatileSlice<'a, ()>;

/// The buffers of one chain: the device-readable ones, then the
/// device-writable ones, in chain order.
pub struct ChainBuffers<'a> {
    pub readable: Vec<Slice<'a>>,
    pub writable: Vec<Slice<'a>>,
}

/// Resolves every descriptor of `chain` (indirect tables included) to
/// guest memory. `None` for a chain cut short (a loop, longer than the
/// queue, a bad indirect table), a readable descriptor after a writable
/// one, or an address outside guest memory.
pub fn chain_buffers<'a>(
    mem: &'a GuestMemory,
    chain: DescriptorChain<&'a GuestMemory>,
) -> Option<ChainBuffers<'a>> {
    let mut out = ChainBuffers {
        readable: Vec::new(),
        writable: Vec::new(),
    };
    let mut last_has_next = true;
    for d in chain {
        last_has_next = d.has_next();
        let write = d.is_write_only();
        if !write && !out.writable.is_empty() {
            return None;
        }
        let list = if write {
            &mut out.writable
        } else {
            &mut out.readable
        };
        for s in GuestMemoryBackend::get_slices(mem, d.addr(), d.len() as usize) {
            list.push(s.ok()?);
        }
    }
    (!last_has_next).then_some(out)
}

/// Total length of `s`.
pub fn total(s: &[Slice<'_>]) -> usize {
    s.iter().map(|v| v.len()).sum()
}

/// The part `[start, start + len)` of `s`, or `None` if `s` is shorter.
pub fn range<'a>(s: &[Slice<'a>], start: usize, len: usize) -> Option<Vec<Slice<'a>>> {
    let end = start.checked_add(len)?;
    let mut out = Vec::new();
    let mut pos = 0usize;
    for v in s {
        let (lo, hi) = (pos, pos + v.len());
        pos = hi;
        if hi <= start || lo >= end {
            continue;
        }
        let from = start.max(lo) - lo;
        let to = end.min(hi) - lo;
        out.push(v.subslice(from, to - from).ok()?);
    }
    (pos >= end).then_some(out)
}

/// Copies the first bytes of `s` into `buf`; returns how many.
pub fn read_into(s: &[Slice<'_>], buf: &mut [u8]) -> usize {
    let mut done = 0;
    for v in s {
        if done == buf.len() {
            break;
        }
        done += v.copy_to(&mut buf[done..]);
    }
    done
}

/// Copies `data` to the start of `s`; returns how many bytes fitted.
pub fn write_from(s: &[Slice<'_>], data: &[u8]) -> usize {
    let mut done = 0;
    for v in s {
        if done == data.len() {
            break;
        }
        let n = v.len().min(data.len() - done);
        v.copy_from(&data[done..done + n]);
        done += n;
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

    #[test]
    fn ranges_across_slices() {
        let mem: GuestMemory = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x4000)]).unwrap();
        let s: Vec<Slice> = [(0x100u64, 16usize), (0x200, 8), (0x300, 4)]
            .iter()
            .map(|&(a, l)| mem.get_slice(GuestAddress(a), l).unwrap())
            .collect();
        assert_eq!(total(&s), 28);
        let r = range(&s, 14, 6).unwrap();
        assert_eq!(r.iter().map(|v| v.len()).collect::<Vec<_>>(), vec![2, 4]);
        assert_eq!(write_from(&r, &[1, 2, 3, 4, 5, 6, 7]), 6);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x10e)).unwrap(), 1);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(0x203)).unwrap(), 6);
        let mut b = [0u8; 3];
        assert_eq!(read_into(&s[1..], &mut b), 3);
        assert_eq!(b, [3, 4, 5]);
        assert!(range(&s, 20, 9).is_none());
        assert!(range(&s, usize::MAX, 2).is_none());
        assert_eq!(range(&s, 28, 0).unwrap().len(), 0);
    }
}
