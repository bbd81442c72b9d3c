//! The ATA side of an ATAPI CD-ROM: command codes, status and error
//! bits, the packet-device signature and IDENTIFY PACKET DEVICE data.

use super::mmc;

/// ATA commands an ATAPI device answers.
pub const CMD_NOP: u8 = 0x00;
pub const CMD_DEVICE_RESET: u8 = 0x08;
pub const CMD_PACKET: u8 = 0xa0;
pub const CMD_IDENTIFY_PACKET_DEVICE: u8 = 0xa1;
pub const CMD_IDLE_IMMEDIATE: u8 = 0xe1;
pub const CMD_STANDBY_IMMEDIATE: u8 = 0xe0;
pub const CMD_CHECK_POWER_MODE: u8 = 0xe5;
pub const CMD_IDENTIFY_DEVICE: u8 = 0xec;
pub const CMD_SET_FEATURES: u8 = 0xef;

/// Status register bits.
pub const STATUS_ERR: u8 = 0x01;
pub const STATUS_DRQ: u8 = 0x08;
pub const STATUS_DSC: u8 = 0x10;
pub const STATUS_DRDY: u8 = 0x40;
pub const STATUS_BSY: u8 = 0x80;
/// A command that ended well.
pub const STATUS_OK: u8 = STATUS_DRDY | STATUS_DSC;
/// A command that failed (the error register says how).
pub const STATUS_FAILED: u8 = STATUS_DRDY | STATUS_ERR;

/// Error register: the command was aborted.
pub const ERROR_ABRT: u8 = 0x04;
/// Error register after a reset: diagnostics passed.
pub const ERROR_DIAG_OK: u8 = 0x01;

/// The signature a packet device leaves after a reset (LBA high, LBA
/// mid, LBA low, sector count), as AHCI's PxSIG shows it.
pub const SIGNATURE: u32 = 0xeb14_0101;

/// Length of the IDENTIFY data.
pub const IDENTIFY_LEN: usize = 512;

/// Puts `text` into IDENTIFY words as ATA strings are stored: padded
/// with spaces, the two characters of each word swapped.
pub(crate) fn ata_string(words: &mut [u16], text: &str) {
    let mut bytes: Vec<u8> = text.bytes().take(words.len() * 2).collect();
    bytes.resize(words.len() * 2, b' ');
    for (w, pair) in words.iter_mut().zip(bytes.chunks(2)) {
        *w = u16::from(pair[0]) << 8 | u16::from(pair[1]);
    }
}

/// IDENTIFY PACKET DEVICE data: a removable CD-ROM with 12-byte packets,
/// DMA and LBA, `serial` as its serial number.
pub fn identify(serial: &str) -> [u8; IDENTIFY_LEN] {
    let mut w = [0u16; IDENTIFY_LEN / 2];
    // ATAPI, CD-ROM, removable, DRQ within 50 us, 12-byte packets.
    w[0] = 2 << 14 | 5 << 8 | 1 << 7 | 2 << 5;
    ata_string(&mut w[10..20], serial);
    ata_string(&mut w[23..27], mmc::REVISION);
    ata_string(&mut w[27..47], &format!("{} {}", mmc::VENDOR, mmc::PRODUCT));
    w[49] = 1 << 9 | 1 << 8; // LBA, DMA
    w[53] = 0x0006; // words 64-70 and 88 valid
    w[63] = 0x0007; // multiword DMA 0-2
    w[64] = 0x0003; // PIO 3-4
    w[65] = 120;
    w[66] = 120;
    w[67] = 120;
    w[68] = 120;
    w[80] = 0x007e; // ATA/ATAPI-1 to -6
    w[82] = 1 << 4; // PACKET feature set
    w[83] = 1 << 14;
    w[84] = 1 << 14;
    w[85] = 1 << 4;
    w[87] = 1 << 14;
    w[88] = 0x3f | 1 << 13; // UDMA 0-5, UDMA 5 selected
    let mut out = [0u8; IDENTIFY_LEN];
    for (b, word) in out.chunks_mut(2).zip(w) {
        b.copy_from_slice(&word.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identify_packet_device_data() {
        let id = identify("sata0-0-1");
        let word = |i: usize| u16::from_le_bytes([id[2 * i], id[2 * i + 1]]);
        assert_eq!(word(0), 0x85c0);
        assert_eq!((word(0) >> 8) & 0x1f, 5, "CD-ROM, as SeaBIOS checks");
        assert_eq!(word(0) & 3, 0, "12-byte packets");
        // Strings: "sa" stored as 's' in the high byte.
        assert_eq!(&id[20..24], b"asat");
        let model: Vec<u8> = id[54..94].chunks(2).flat_map(|p| [p[1], p[0]]).collect();
        assert!(model.starts_with(b"OXVIRT CD-ROM  "));
        assert_eq!(word(49) & 0x0300, 0x0300);
    }
}
