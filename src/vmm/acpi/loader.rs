//! The table-loader script of QEMU's firmware interface (`etc/table-loader`):
//! 128-byte commands telling the firmware to place fw_cfg files in guest
//! memory, patch pointers between them and fix checksums.

const ENTRY_LEN: usize = 128;
const NAME_LEN: usize = 56;

const CMD_ALLOCATE: u32 = 1;
const CMD_ADD_POINTER: u32 = 2;
const CMD_ADD_CHECKSUM: u32 = 3;

/// Where an allocation may go.
#[derive(Clone, Copy, Debug)]
pub enum Zone {
    /// Anywhere in RAM below 4 GiB.
    High = 1,
    /// The F segment (0xF0000–0xFFFFF), where the RSDP must be found.
    FSeg = 2,
}

#[derive(Default)]
pub struct Loader {
    bytes: Vec<u8>,
}

fn name(field: &mut [u8], file: &str) {
    let n = file.len().min(NAME_LEN - 1);
    field[..n].copy_from_slice(&file.as_bytes()[..n]);
}

impl Loader {
    fn entry(&mut self, command: u32) -> &mut [u8] {
        let at = self.bytes.len();
        self.bytes.resize(at + ENTRY_LEN, 0);
        let e = &mut self.bytes[at..];
        e[0..4].copy_from_slice(&command.to_le_bytes());
        e
    }

    /// Places `file` in guest memory, aligned to `align`.
    pub fn allocate(&mut self, file: &str, align: u32, zone: Zone) {
        let e = self.entry(CMD_ALLOCATE);
        name(&mut e[4..4 + NAME_LEN], file);
        e[60..64].copy_from_slice(&align.to_le_bytes());
        e[64] = zone as u8;
    }

    /// Adds the address of `src` to the `size`-byte value at `offset` in `dest`.
    pub fn add_pointer(&mut self, dest: &str, src: &str, offset: u32, size: u8) {
        let e = self.entry(CMD_ADD_POINTER);
        name(&mut e[4..4 + NAME_LEN], dest);
        name(&mut e[60..60 + NAME_LEN], src);
        e[116..120].copy_from_slice(&offset.to_le_bytes());
        e[120] = size;
    }

    /// Makes the bytes `start..start + len` of `file` sum to zero by
    /// adjusting the byte at `result`.
    pub fn add_checksum(&mut self, file: &str, result: u32, start: u32, len: u32) {
        let e = self.entry(CMD_ADD_CHECKSUM);
        name(&mut e[4..4 + NAME_LEN], file);
        e[60..64].copy_from_slice(&result.to_le_bytes());
        e[64..68].copy_from_slice(&start.to_le_bytes());
        e[68..72].copy_from_slice(&len.to_le_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
