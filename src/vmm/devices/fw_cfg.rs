//! QEMU's firmware configuration device (`fw_cfg`), the way firmware such
//! as SeaBIOS learns about the machine: numbered items and named files,
//! read byte by byte through I/O ports or in one go through the DMA
//! interface.
//!
//! Ports (x86): 0x510 selector (16-bit write), 0x511 data (8-bit read),
//! 0x514/0x518 the big-endian high/low halves of a DMA descriptor's guest
//! address; writing the low half runs the descriptor. Reading 0x514 gives
//! the DMA signature "QEMU CFG".

use std::collections::BTreeMap;

use vm_memory::{Bytes, GuestAddress};

use crate::vmm::bus::BusDevice;
use crate::vmm::memory::GuestMemory;

/// First port; the device decodes [`PORT_COUNT`] of them.
pub const PORT_BASE: u16 = 0x510;
pub const PORT_COUNT: u64 = 12;

/// Well-known item keys.
pub const KEY_SIGNATURE: u16 = 0x00;
pub const KEY_ID: u16 = 0x01;
pub const KEY_UUID: u16 = 0x02;
pub const KEY_RAM_SIZE: u16 = 0x03;
pub const KEY_NOGRAPHIC: u16 = 0x04;
pub const KEY_NB_CPUS: u16 = 0x05;
pub const KEY_BOOT_MENU: u16 = 0x0e;
pub const KEY_MAX_CPUS: u16 = 0x0f;
pub const KEY_FILE_DIR: u16 = 0x19;
/// Files are numbered from here in the order they are added.
const FIRST_FILE_KEY: u16 = 0x20;
/// File names are NUL-terminated in a 56-byte field.
pub const MAX_NAME_LEN: usize = 55;

/// `KEY_ID` feature bits: the port interface and the DMA interface.
const FEATURE_TRADITIONAL: u32 = 1;
const FEATURE_DMA: u32 = 2;

/// DMA descriptor control bits.
const DMA_ERROR: u32 = 1;
const DMA_READ: u32 = 2;
const DMA_SKIP: u32 = 4;
const DMA_SELECT: u32 = 8;
const DMA_WRITE: u32 = 0x10;
/// Size of a DMA descriptor: be32 control, be32 length, be64 address.
const DMA_DESCRIPTOR_LEN: usize = 16;

const DMA_SIGNATURE: [u8; 8] = *b"QEMU CFG";

/// The device and what it serves.
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    files: Vec<(String, u16)>,
    selected: u16,
    offset: usize,
    dma_high: u32,
    mem: GuestMemory,
}

impl FwCfg {
    /// A device serving only its signature and feature bits.
    pub fn new(mem: GuestMemory) -> Self {
        let mut d = FwCfg {
            items: BTreeMap::new(),
            files: Vec::new(),
            selected: 0,
            offset: 0,
            dma_high: 0,
            mem,
        };
        d.items.insert(KEY_SIGNATURE, b"QEMU".to_vec());
        d.items.insert(
            KEY_ID,
            (FEATURE_TRADITIONAL | FEATURE_DMA).to_le_bytes().to_vec(),
        );
        d.rebuild_directory();
        d
    }

    /// Serves `bytes` under a numbered key.
    pub fn add_item(&mut self, key: u16, bytes: Vec<u8>) {
        self.items.insert(key, bytes);
    }

    /// Serves `bytes` as the file `name`.
    pub fn add_file(&mut self, name: &str, bytes: Vec<u8>) -> Result<(), String> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
            return Err(format!("fw_cfg file name {name:?} is not valid"));
        }
        if self.files.iter().any(|(n, _)| n == name) {
            return Err(format!("fw_cfg file {name} added twice"));
        }
        let key = FIRST_FILE_KEY + self.files.len() as u16;
        self.files.push((name.to_string(), key));
        self.items.insert(key, bytes);
        self.rebuild_directory();
        Ok(())
    }

    /// The file directory: be32 count, then per file be32 size, be16 key,
    /// be16 reserved and the name in 56 bytes, sorted by name.
    fn rebuild_directory(&mut self) {
        let mut files = self.files.clone();
        files.sort();
        let mut dir = (files.len() as u32).to_be_bytes().to_vec();
        for (name, key) in &files {
            let size = self.items.get(key).map_or(0, Vec::len) as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&key.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut field = [0u8; MAX_NAME_LEN + 1];
            field[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&field);
        }
        self.items.insert(KEY_FILE_DIR, dir);
    }

    fn select(&mut self, key: u16) {
        self.selected = key;
        self.offset = 0;
    }

    fn current(&self) -> &[u8] {
        self.items.get(&self.selected).map_or(&[], Vec::as_slice)
    }

    fn read_byte(&mut self) -> u8 {
        let b = self.current().get(self.offset).copied().unwrap_or(0);
        self.offset = self.offset.saturating_add(1);
        b
    }

    /// Runs the DMA descriptor at `addr` and writes back its control word:
    /// zero on success, the error bit otherwise.
    fn run_dma(&mut self, addr: u64) {
        let mut desc = [0u8; DMA_DESCRIPTOR_LEN];
        if self.mem.read_slice(&mut desc, GuestAddress(addr)).is_err() {
            tracing::debug!("fw_cfg: DMA descriptor at {addr:#x} is outside RAM");
            return;
        }
        let word = |i: usize| u32::from_be_bytes([desc[i], desc[i + 1], desc[i + 2], desc[i + 3]]);
        let control = word(0);
        let length = word(4) as usize;
        let target = u64::from_be_bytes(desc[8..16].try_into().unwrap_or_default());
        if control & DMA_SELECT != 0 {
            self.select((control >> 16) as u16);
        }
        let ok = if control & DMA_WRITE != 0 {
            // Items are read-only.
            false
        } else if control & DMA_READ != 0 {
            let data = self.current();
            let start = self.offset.min(data.len());
            let end = self.offset.saturating_add(length).min(data.len());
            let mut out = data[start..end].to_vec();
            // Past the end of an item the device reads as zeros.
            out.resize(length, 0);
            self.offset = self.offset.saturating_add(length);
            self.mem.write_slice(&out, GuestAddress(target)).is_ok()
        } else {
            if control & DMA_SKIP != 0 {
                self.offset = self.offset.saturating_add(length);
            }
            true
        };
        let status: u32 = if ok { 0 } else { DMA_ERROR };
        let _ = self
            .mem
            .write_slice(&status.to_be_bytes(), GuestAddress(addr));
    }
}

impl BusDevice for FwCfg {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            1 => {
                for b in data.iter_mut() {
                    *b = self.read_byte();
                }
            }
            4..=11 => {
                for (i, b) in data.iter_mut().enumerate() {
                    *b = DMA_SIGNATURE
                        .get(offset as usize - 4 + i)
                        .copied()
                        .unwrap_or(0);
                }
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (0, 2) => self.select(u16::from_le_bytes([data[0], data[1]])),
            (4, 4) => self.dma_high = u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
            (8, 4) => {
                let low = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                let addr = u64::from(self.dma_high) << 32 | u64::from(low);
                self.dma_high = 0;
                self.run_dma(addr);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemory {
        GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap()
    }

    fn read_item(d: &mut FwCfg, key: u16, len: usize) -> Vec<u8> {
        d.write(0, &key.to_le_bytes());
        (0..len)
            .map(|_| {
                let mut b = [0u8];
                d.read(1, &mut b);
                b[0]
            })
            .collect()
    }

    #[test]
    fn signature_id_and_directory() {
        let mut d = FwCfg::new(mem());
        d.add_file("etc/b", vec![1, 2, 3]).unwrap();
        d.add_file("bootorder", b"/pci@i0cf8/*@3\n".to_vec())
            .unwrap();
        assert_eq!(read_item(&mut d, KEY_SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&mut d, KEY_ID, 4), 3u32.to_le_bytes());
        let dir = read_item(&mut d, KEY_FILE_DIR, 4 + 2 * 64);
        assert_eq!(&dir[0..4], &2u32.to_be_bytes());
        // Sorted by name: "bootorder" (key 0x21) before "etc/b" (0x20).
        assert_eq!(&dir[4..8], &15u32.to_be_bytes());
        assert_eq!(&dir[8..10], &0x21u16.to_be_bytes());
        assert_eq!(&dir[12..21], b"bootorder");
        assert_eq!(&dir[72..74], &0x20u16.to_be_bytes());
        // Reading past the end gives zeros.
        assert_eq!(read_item(&mut d, 0x20, 5), vec![1, 2, 3, 0, 0]);
        assert!(d.add_file("etc/b", vec![]).is_err());
        assert!(d.add_file(&"x".repeat(56), vec![]).is_err());
    }

    #[test]
    fn dma_select_skip_and_read() {
        let mut d = FwCfg::new(mem());
        d.add_file("etc/x", (0u8..100).collect()).unwrap();
        let desc = 0x1000u64;
        let control = (0x20u32 << 16) | DMA_SELECT | DMA_SKIP;
        let mut bytes = control.to_be_bytes().to_vec();
        bytes.extend_from_slice(&10u32.to_be_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        d.mem.write_slice(&bytes, GuestAddress(desc)).unwrap();
        d.write(4, &0u32.to_be_bytes());
        d.write(8, &(desc as u32).to_be_bytes());
        let mut status = [0xffu8; 4];
        d.mem.read_slice(&mut status, GuestAddress(desc)).unwrap();
        assert_eq!(status, [0; 4]);
        // Now read 95 bytes from offset 10: 90 of data then 5 zeros.
        let mut bytes = DMA_READ.to_be_bytes().to_vec();
        bytes.extend_from_slice(&95u32.to_be_bytes());
        bytes.extend_from_slice(&0x2000u64.to_be_bytes());
        d.mem.write_slice(&bytes, GuestAddress(desc)).unwrap();
        d.write(8, &(desc as u32).to_be_bytes());
        let mut out = [0xffu8; 95];
        d.mem.read_slice(&mut out, GuestAddress(0x2000)).unwrap();
        assert_eq!(out[0], 10);
        assert_eq!(out[89], 99);
        assert_eq!(&out[90..], &[0; 5]);
        // Writes are refused with the error bit.
        let bytes = [DMA_WRITE.to_be_bytes(), 1u32.to_be_bytes()].concat();
        d.mem.write_slice(&bytes, GuestAddress(desc)).unwrap();
        d.write(8, &(desc as u32).to_be_bytes());
        d.mem.read_slice(&mut status, GuestAddress(desc)).unwrap();
        assert_eq!(u32::from_be_bytes(status), DMA_ERROR);
        // The DMA register reads as the signature.
        let mut sig = [0u8; 4];
        d.read(4, &mut sig);
        assert_eq!(&sig, b"QEMU");
    }
}
