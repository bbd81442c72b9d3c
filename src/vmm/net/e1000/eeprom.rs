//! The 64-word serial EEPROM: its contents (the MAC in words 0-2, the
//! device id, a checksum word making all words sum to 0xBABA) and its two
//! ways in: bit-banged Microwire through EECD (what Linux's driver uses
//! on the 82540EM) and the EERD read register (iPXE, Windows).

/// Words of the EEPROM.
pub const WORDS: usize = 64;
/// The word that makes the sum of all words [`CHECKSUM_SUM`].
pub const CHECKSUM_WORD: usize = 0x3f;
pub const CHECKSUM_SUM: u16 = 0xbaba;

// EECD bits.
pub const EECD_SK: u32 = 1 << 0;
pub const EECD_CS: u32 = 1 << 1;
pub const EECD_DI: u32 = 1 << 2;
pub const EECD_DO: u32 = 1 << 3;
pub const EECD_FWE_MASK: u32 = 3 << 4;
pub const EECD_REQ: u32 = 1 << 6;
pub const EECD_GNT: u32 = 1 << 7;
pub const EECD_PRES: u32 = 1 << 8;

// EERD fields.
pub const EERD_START: u32 = 1 << 0;
pub const EERD_DONE: u32 = 1 << 4;
pub const EERD_ADDR_SHIFT: u32 = 8;
pub const EERD_DATA_SHIFT: u32 = 16;

/// Microwire READ: start bit and opcode 10.
const OPCODE_READ: u32 = 0b110;
/// Start bit, opcode and six address bits.
const COMMAND_BITS: u32 = 9;

/// The image QEMU's 82540EM carries (Intel's table of EEPROM words),
/// before the MAC, device id and checksum are filled in.
const TEMPLATE: [u16; WORDS] = [
    0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000, //
    0x3000, 0x1000, 0x6403, 0x0000, 0x8086, 0x0000, 0x8086, 0x3040, //
    0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700, //
    0x6cc9, 0x3150, 0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706, //
    0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff, 0xffff, //
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, //
    0x0100, 0x4000, 0x121c, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, //
    0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000, //
];
/// Words holding the PCI device id.
const DEVICE_ID_WORDS: [usize; 2] = [0x0b, 0x0d];

/// Where a Microwire transaction is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Wire {
    /// SK, CS, DI, FWE and REQ as last written.
    pins: u32,
    /// Bits shifted in since CS went high.
    shifted: u32,
    bits_in: u32,
    /// While reading: the bit now on DO, counted over the whole image
    /// (word * 16 + bit, most significant bit first).
    out_bit: Option<usize>,
}

pub struct Eeprom {
    words: [u16; WORDS],
    wire: Wire,
}

/// The EEPROM as a state image keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EepromState {
    words: Vec<u16>,
    wire: Wire,
}

impl Eeprom {
    pub fn state(&self) -> EepromState {
        EepromState {
            words: self.words.to_vec(),
            wire: self.wire,
        }
    }

    pub fn restore(&mut self, s: &EepromState) -> Result<(), String> {
        self.words = s
            .words
            .as_slice()
            .try_into()
            .map_err(|_| "e1000 state: EEPROM of the wrong size".to_string())?;
        self.wire = s.wire;
        Ok(())
    }
}

impl Eeprom {
    /// The image for `mac` and PCI device `device_id`.
    pub fn new(mac: [u8; 6], device_id: u16) -> Eeprom {
        let mut words = TEMPLATE;
        for (w, pair) in words.iter_mut().zip(mac.chunks(2)) {
            *w = u16::from_le_bytes([pair[0], pair[1]]);
        }
        for i in DEVICE_ID_WORDS {
            words[i] = device_id;
        }
        let sum = words[..CHECKSUM_WORD]
            .iter()
            .fold(0u16, |s, w| s.wrapping_add(*w));
        words[CHECKSUM_WORD] = CHECKSUM_SUM.wrapping_sub(sum);
        Eeprom {
            words,
            wire: Wire::default(),
        }
    }

    /// Word `i`, if the EEPROM has it.
    pub fn word(&self, i: usize) -> Option<u16> {
        self.words.get(i).copied()
    }

    /// Forgets a transaction in progress (device reset).
    pub fn reset_wire(&mut self) {
        self.wire = Wire::default();
    }

    /// EECD as read: present, access always granted, the pins as written
    /// and DO, which idles high and carries data bits while reading.
    pub fn eecd_read(&self) -> u32 {
        let data_out = match self.wire.out_bit {
            Some(b) => {
                let word = self.words[(b / 16) % WORDS];
                (word >> (15 - b % 16)) & 1 == 1
            }
            None => true,
        };
        EECD_PRES | EECD_GNT | self.wire.pins | if data_out { EECD_DO } else { 0 }
    }

    /// EECD written: CS rising starts a transaction; DI is sampled on
    /// SK's rising edges; while reading, each falling edge moves DO to
    /// the next bit (on into the next word, for sequential reads).
    pub fn eecd_write(&mut self, v: u32) {
        let before = self.wire.pins;
        self.wire.pins = v & (EECD_SK | EECD_CS | EECD_DI | EECD_FWE_MASK | EECD_REQ);
        if v & EECD_CS == 0 {
            return;
        }
        if before & EECD_CS == 0 {
            self.wire = Wire {
                pins: self.wire.pins,
                ..Wire::default()
            };
        }
        if (v ^ before) & EECD_SK == 0 {
            return;
        }
        if v & EECD_SK == 0 {
            if let Some(b) = self.wire.out_bit.as_mut() {
                *b = (*b + 1) % (WORDS * 16);
            }
            return;
        }
        self.wire.shifted = self.wire.shifted << 1 | u32::from(v & EECD_DI != 0);
        self.wire.bits_in = self.wire.bits_in.saturating_add(1);
        if self.wire.bits_in == COMMAND_BITS
            && self.wire.out_bit.is_none()
            && (self.wire.shifted >> 6) & 7 == OPCODE_READ
        {
            // The first data bit appears after the next falling edge.
            let addr = (self.wire.shifted & 0x3f) as usize;
            self.wire.out_bit = Some((addr * 16 + WORDS * 16 - 1) % (WORDS * 16));
        }
    }

    /// EERD as read, given the value last written: with START set, the
    /// word at the address with DONE (an address past the EEPROM reads
    /// DONE and no data); without it, what was written.
    pub fn eerd_read(&self, written: u32) -> u32 {
        if written & EERD_START == 0 {
            return written;
        }
        let addr = (written >> EERD_ADDR_SHIFT) & 0xff;
        let data = self.word(addr as usize).map_or(0, u32::from);
        data << EERD_DATA_SHIFT | EERD_DONE | addr << EERD_ADDR_SHIFT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    #[test]
    fn image_holds_mac_device_id_and_checksum() {
        let e = Eeprom::new(MAC, 0x100e);
        assert_eq!(e.word(0), Some(0x5452));
        assert_eq!(e.word(1), Some(0x1200));
        assert_eq!(e.word(2), Some(0x5634));
        assert_eq!(e.word(0x0b), Some(0x100e));
        assert_eq!(e.word(0x0d), Some(0x100e));
        let sum = (0..WORDS).fold(0u16, |s, i| s.wrapping_add(e.word(i).unwrap()));
        assert_eq!(sum, CHECKSUM_SUM);
        assert_eq!(e.word(WORDS), None);
    }

    #[test]
    fn eerd_reads_words() {
        let e = Eeprom::new(MAC, 0x100e);
        let v = e.eerd_read(EERD_START | 2 << EERD_ADDR_SHIFT);
        assert_eq!(v & EERD_DONE, EERD_DONE);
        assert_eq!(v >> EERD_DATA_SHIFT, 0x5634);
        // Past the end: done, no data.
        assert_eq!(e.eerd_read(EERD_START | 0x80 << EERD_ADDR_SHIFT) >> 16, 0);
        assert_eq!(e.eerd_read(0x1234_0000), 0x1234_0000);
    }

    /// Reads `n` words from `addr` the way Linux's e1000 driver clocks
    /// the Microwire EEPROM.
    fn microwire_read(e: &mut Eeprom, addr: u32, n: usize) -> Vec<u16> {
        let mut pins = EECD_REQ;
        e.eecd_write(pins);
        assert_ne!(e.eecd_read() & EECD_GNT, 0);
        pins |= EECD_CS;
        e.eecd_write(pins);
        let command = OPCODE_READ << 6 | addr;
        for i in (0..COMMAND_BITS).rev() {
            let di = if command >> i & 1 == 1 { EECD_DI } else { 0 };
            pins = (pins & !EECD_DI) | di;
            e.eecd_write(pins);
            e.eecd_write(pins | EECD_SK);
            e.eecd_write(pins);
        }
        pins &= !EECD_DI;
        let mut out = Vec::new();
        for _ in 0..n {
            let mut w = 0u16;
            for _ in 0..16 {
                e.eecd_write(pins | EECD_SK);
                w = w << 1 | u16::from(e.eecd_read() & EECD_DO != 0);
                e.eecd_write(pins);
            }
            out.push(w);
        }
        e.eecd_write(pins & !EECD_CS);
        out
    }

    #[test]
    fn microwire_reads_words_in_sequence() {
        let mut e = Eeprom::new(MAC, 0x100e);
        // Idle: DO high.
        assert_ne!(e.eecd_read() & EECD_DO, 0);
        assert_eq!(microwire_read(&mut e, 0, 3), vec![0x5452, 0x1200, 0x5634]);
        // A new transaction starts over; the last word wraps to word 0.
        let last = e.word(CHECKSUM_WORD).unwrap();
        assert_eq!(microwire_read(&mut e, 0x3f, 2), vec![last, 0x5452]);
        // A reset forgets the transaction.
        e.reset_wire();
        assert_ne!(e.eecd_read() & EECD_DO, 0);
    }
}
