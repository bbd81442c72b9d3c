//! SCSI status bytes and sense data (fixed format, SPC-4 4.5.3): what a
//! logical unit reports when a command fails.

/// Status byte: the command completed.
pub const GOOD: u8 = 0x00;
/// Status byte: the command failed; the sense data says why.
pub const CHECK_CONDITION: u8 = 0x02;

/// Length of fixed-format sense data with no extra bytes.
pub const FIXED_LEN: usize = 18;

/// Sense key, additional sense code and qualifier of one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

const fn sense(key: u8, asc: u8, ascq: u8) -> Sense {
    Sense { key, asc, ascq }
}

/// Sense keys.
pub const KEY_NO_SENSE: u8 = 0x0;
pub const KEY_NOT_READY: u8 = 0x2;
pub const KEY_MEDIUM_ERROR: u8 = 0x3;
pub const KEY_ILLEGAL_REQUEST: u8 = 0x5;
pub const KEY_UNIT_ATTENTION: u8 = 0x6;
pub const KEY_DATA_PROTECT: u8 = 0x7;

impl Sense {
    pub const NO_SENSE: Sense = sense(KEY_NO_SENSE, 0x00, 0x00);
    /// MEDIUM NOT PRESENT - TRAY CLOSED.
    pub const NO_MEDIUM_TRAY_CLOSED: Sense = sense(KEY_NOT_READY, 0x3a, 0x01);
    /// MEDIUM NOT PRESENT - TRAY OPEN.
    pub const NO_MEDIUM_TRAY_OPEN: Sense = sense(KEY_NOT_READY, 0x3a, 0x02);
    /// MEDIUM REMOVAL PREVENTED, while no medium is loaded.
    pub const NOT_READY_REMOVAL_PREVENTED: Sense = sense(KEY_NOT_READY, 0x53, 0x02);
    /// UNRECOVERED READ ERROR: the image could not be read.
    pub const READ_ERROR: Sense = sense(KEY_MEDIUM_ERROR, 0x11, 0x00);
    pub const INVALID_OPCODE: Sense = sense(KEY_ILLEGAL_REQUEST, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = sense(KEY_ILLEGAL_REQUEST, 0x21, 0x00);
    pub const INVALID_FIELD: Sense = sense(KEY_ILLEGAL_REQUEST, 0x24, 0x00);
    pub const LUN_NOT_SUPPORTED: Sense = sense(KEY_ILLEGAL_REQUEST, 0x25, 0x00);
    pub const SAVING_NOT_SUPPORTED: Sense = sense(KEY_ILLEGAL_REQUEST, 0x39, 0x00);
    /// MEDIUM REMOVAL PREVENTED (the guest locked the tray).
    pub const REMOVAL_PREVENTED: Sense = sense(KEY_ILLEGAL_REQUEST, 0x53, 0x02);
    /// NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
    pub const MEDIUM_CHANGED: Sense = sense(KEY_UNIT_ATTENTION, 0x28, 0x00);
    /// POWER ON, RESET, OR BUS DEVICE RESET OCCURRED.
    pub const RESET: Sense = sense(KEY_UNIT_ATTENTION, 0x29, 0x00);
    /// A unit attention saying the medium went away.
    pub const NO_MEDIUM_ATTENTION: Sense = sense(KEY_UNIT_ATTENTION, 0x3a, 0x00);
    /// WRITE PROTECTED: the unit takes no data from the initiator.
    pub const WRITE_PROTECTED: Sense = sense(KEY_DATA_PROTECT, 0x27, 0x00);

    /// Fixed-format sense data (response code 0x70, current error).
    pub fn fixed(&self) -> [u8; FIXED_LEN] {
        let mut b = [0u8; FIXED_LEN];
        b[0] = 0x70;
        b[2] = self.key & 0x0f;
        // Additional sense length: the bytes after byte 7.
        b[7] = (FIXED_LEN - 8) as u8;
        b[12] = self.asc;
        b[13] = self.ascq;
        b
    }

    /// ATAPI's error register for this condition: the sense key in the
    /// upper nibble, ABRT (bit 2) for anything but a medium error.
    pub fn atapi_error(&self) -> u8 {
        let abort = if self.key == KEY_MEDIUM_ERROR {
            0
        } else {
            0x04
        };
        (self.key << 4) | abort
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_format_layout() {
        let b = Sense::LBA_OUT_OF_RANGE.fixed();
        assert_eq!(b[0], 0x70);
        assert_eq!(b[2], KEY_ILLEGAL_REQUEST);
        assert_eq!(b[7], 10);
        assert_eq!((b[12], b[13]), (0x21, 0x00));
        assert_eq!(Sense::MEDIUM_CHANGED.atapi_error(), 0x64);
        assert_eq!(Sense::READ_ERROR.atapi_error(), 0x30);
    }
}
