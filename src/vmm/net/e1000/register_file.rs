//! Storage for the 128 KiB register space: one dword per register
//! offset. What a register does on access is [`super::device`]'s job;
//! this is where the values live.

use super::regs::PBM_END;

const DWORDS: usize = (PBM_END / 4) as usize;

pub struct RegisterFile {
    words: Box<[u32]>,
}

impl RegisterFile {
    /// Every register, for a state image.
    pub fn words(&self) -> Vec<u32> {
        self.words.to_vec()
    }

    pub fn from_words(words: &[u32]) -> Result<RegisterFile, String> {
        if words.len() != DWORDS {
            return Err(format!(
                "e1000 state: {} registers, not {DWORDS}",
                words.len()
            ));
        }
        Ok(RegisterFile {
            words: words.into(),
        })
    }
}

impl Default for RegisterFile {
    fn default() -> Self {
        RegisterFile {
            words: vec![0; DWORDS].into_boxed_slice(),
        }
    }
}

impl RegisterFile {
    /// The dword at byte offset `off` (0 outside the register space).
    pub fn get(&self, off: u32) -> u32 {
        self.words.get((off / 4) as usize).copied().unwrap_or(0)
    }

    pub fn set(&mut self, off: u32, v: u32) {
        if let Some(w) = self.words.get_mut((off / 4) as usize) {
            *w = v;
        }
    }

    /// Sets the bits of `mask` in the register at `off`.
    pub fn or(&mut self, off: u32, mask: u32) {
        self.set(off, self.get(off) | mask);
    }

    /// Adds to a 32-bit statistics counter, which stops at its maximum.
    pub fn count(&mut self, off: u32, n: u32) {
        self.set(off, self.get(off).saturating_add(n));
    }

    /// Adds to a 64-bit statistics counter held in `low_off` and the next
    /// dword.
    pub fn count64(&mut self, low_off: u32, n: u64) {
        let v = u64::from(self.get(low_off)) | u64::from(self.get(low_off + 4)) << 32;
        let v = v.saturating_add(n);
        self.set(low_off, v as u32);
        self.set(low_off + 4, (v >> 32) as u32);
    }

    /// Counts a frame of `len` bytes (FCS included) in its size bucket
    /// of the group starting at `first` (PRC64 or PTC64): 64, 65-127,
    /// 128-255, 256-511, 512-1023 and 1024-1522 bytes.
    pub fn count_size(&mut self, first: u32, len: usize) {
        let bucket = match len {
            64 => 0,
            65..=127 => 1,
            128..=255 => 2,
            256..=511 => 3,
            512..=1023 => 4,
            1024..=1522 => 5,
            _ => return,
        };
        self.count(first + 4 * bucket, 1);
    }

    /// The 64-bit value of a register pair (a descriptor ring's base).
    pub fn get64(&self, low_off: u32) -> u64 {
        u64::from(self.get(low_off)) | u64::from(self.get(low_off + 4)) << 32
    }
}
