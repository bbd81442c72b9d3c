//! Merging of the reads and writes taken from the ring in one sweep, as
//! QEMU's `virtio_blk_submit_multireq` does: consecutive requests in the
//! same direction whose disk ranges follow each other become one vectored
//! call (one `preadv`/`pwritev`, or one imago `readv`/`writev`). Each
//! request keeps its own completion, status and counters.

use std::ops::Range;

/// Largest iovec count of one call (the kernel's UIO_MAXIOV).
pub const IOV_MAX: usize = 1024;
/// Largest merged call. A deep queue of large requests still makes several
/// calls per sweep: the requests of each call complete as soon as it ends,
/// so the driver refills the ring while the next ones run, and the raw
/// image's second thread gets a share.
pub const MAX_MERGE_BYTES: usize = 256 << 10;

/// What merging needs to know of one read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub write: bool,
    /// Disk offset in bytes.
    pub off: u64,
    /// Bytes.
    pub len: usize,
    /// Guest memory pieces (iovecs).
    pub segs: usize,
}

/// Splits `spans` (in ring order) into runs to serve with one call each:
/// consecutive spans in the same direction, each starting where the one
/// before ended, together at most `max_segs` pieces and `max_bytes` bytes.
/// A span beyond either bound on its own is a run of its own.
pub fn runs(spans: &[Span], max_segs: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    let (mut end, mut segs, mut bytes) = (0u64, 0usize, 0usize);
    for (i, s) in spans.iter().enumerate() {
        if let Some(r) = out.last_mut() {
            let prev = &spans[i - 1];
            let joins = s.write == prev.write
                && s.off == end
                && segs.saturating_add(s.segs) <= max_segs
                && bytes.saturating_add(s.len) <= max_bytes;
            if joins {
                r.end = i + 1;
                end = s.off.saturating_add(s.len as u64);
                segs += s.segs;
                bytes += s.len;
                continue;
            }
        }
        out.push(i..i + 1);
        end = s.off.saturating_add(s.len as u64);
        segs = s.segs;
        bytes = s.len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(off: u64, len: usize) -> Span {
        Span {
            write: false,
            off,
            len,
            segs: 1,
        }
    }

    fn wr(off: u64, len: usize) -> Span {
        Span {
            write: true,
            ..rd(off, len)
        }
    }

    #[test]
    fn adjacent_requests_merge() {
        let s: Vec<Span> = (0..32).map(|i| wr(i * 4096, 4096)).collect();
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES), vec![0..32]);
        assert!(runs(&[], IOV_MAX, MAX_MERGE_BYTES).is_empty());
        assert_eq!(runs(&[rd(512, 512)], IOV_MAX, MAX_MERGE_BYTES), vec![0..1]);
    }

    #[test]
    fn gaps_overlaps_and_backward_steps_split() {
        let s = [
            rd(0, 4096),
            rd(4096, 4096),
            rd(12288, 4096), // gap
            rd(12288, 4096), // same range again
            rd(8192, 4096),  // backwards
            rd(12288, 512),
        ];
        assert_eq!(
            runs(&s, IOV_MAX, MAX_MERGE_BYTES),
            vec![0..2, 2..3, 3..4, 4..6]
        );
    }

    #[test]
    fn direction_change_splits() {
        let s = [
            rd(0, 4096),
            rd(4096, 4096),
            wr(8192, 4096),
            wr(12288, 4096),
            rd(16384, 4096),
        ];
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES), vec![0..2, 2..4, 4..5]);
    }

    #[test]
    fn iov_max_bounds_a_run() {
        // 126 pieces each (SEG_MAX): 8 fit in 1024, the 9th starts a run.
        let s: Vec<Span> = (0..10)
            .map(|i| Span {
                segs: 126,
                ..rd(i * 4096, 4096)
            })
            .collect();
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES), vec![0..8, 8..10]);
        // Exactly at the bound still joins.
        let s = [
            Span {
                segs: 1000,
                ..rd(0, 512)
            },
            Span {
                segs: 24,
                ..rd(512, 512)
            },
            rd(1024, 512),
        ];
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES), vec![0..2, 2..3]);
        // A request over the bound alone is served alone.
        let s = [
            rd(0, 512),
            Span {
                segs: 2000,
                ..rd(512, 512)
            },
            rd(1024, 512),
        ];
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn byte_bound_splits() {
        let s: Vec<Span> = (0..32).map(|i| rd(i * 65536, 65536)).collect();
        assert_eq!(runs(&s, IOV_MAX, 1 << 20), vec![0..16, 16..32]);
        assert_eq!(runs(&s, IOV_MAX, MAX_MERGE_BYTES).len(), 8);
        let big = [rd(0, 4 << 20), rd(4 << 20, 4096)];
        assert_eq!(runs(&big, IOV_MAX, MAX_MERGE_BYTES), vec![0..1, 1..2]);
    }
}
