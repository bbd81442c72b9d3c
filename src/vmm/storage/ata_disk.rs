//! An ATA hard disk on an AHCI port: 512-byte sectors over a disk image
//! (raw or qcow2, through virtio-blk's backends in `virtio/disk.rs`), its
//! IDENTIFY DEVICE data, and the commands a BIOS and Linux's libata send
//! to a disk. Data moves between the image and the guest memory the PRDT
//! names, with no bounce buffer. Every address and count comes from the
//! guest and is checked against the disk and the PRDT before the image is
//! touched.

use super::ahci_cmd::{Outcome, Prdt, Registers};
use super::atapi::{self, ata_string};
use super::cdrom::DataIn;
use crate::vmm::virtio::disk::Disk;

/// The signature a disk leaves after a reset (LBA high, LBA mid, LBA low,
/// sector count), as AHCI's PxSIG shows it.
pub const SIGNATURE: u32 = 0x0000_0101;
/// Bytes per sector.
pub const SECTOR: u64 = 512;
/// IDENTIFY DEVICE model number.
pub const MODEL: &str = "OXVIRT HARDDISK";
/// IDENTIFY DEVICE firmware revision.
const REVISION: &str = "1.0";
/// Serial numbers are 20 characters.
pub const SERIAL_LEN: usize = 20;

/// Error register: the address was not found, or the data could not be
/// read (uncorrectable).
const ERROR_UNC: u8 = 0x40;
/// Device register: the address is an LBA (else cylinder, head, sector).
const DEVICE_LBA: u8 = 0x40;

/// Sectors per block of READ/WRITE MULTIPLE at most.
const MAX_MULTIPLE: u8 = 16;
/// The largest LBA28 capacity IDENTIFY reports in words 60-61.
const LBA28_CAPACITY_MAX: u64 = 0x0fff_ffff;
/// Addresses are 48 bits.
const LBA48_CAPACITY_MAX: u64 = (1 << 48) - 1;

/// ATA commands a disk answers.
pub mod cmd {
    pub const READ_SECTORS: u8 = 0x20;
    /// READ SECTORS without retries (obsolete alias).
    pub const READ_SECTORS_NR: u8 = 0x21;
    pub const READ_SECTORS_EXT: u8 = 0x24;
    pub const READ_DMA_EXT: u8 = 0x25;
    pub const READ_MULTIPLE_EXT: u8 = 0x29;
    pub const WRITE_SECTORS: u8 = 0x30;
    pub const WRITE_SECTORS_NR: u8 = 0x31;
    pub const WRITE_SECTORS_EXT: u8 = 0x34;
    pub const WRITE_DMA_EXT: u8 = 0x35;
    pub const WRITE_MULTIPLE_EXT: u8 = 0x39;
    pub const READ_VERIFY: u8 = 0x40;
    pub const READ_VERIFY_NR: u8 = 0x41;
    pub const READ_VERIFY_EXT: u8 = 0x42;
    pub const EXECUTE_DEVICE_DIAGNOSTIC: u8 = 0x90;
    pub const INITIALIZE_DEVICE_PARAMETERS: u8 = 0x91;
    pub const READ_MULTIPLE: u8 = 0xc4;
    pub const WRITE_MULTIPLE: u8 = 0xc5;
    pub const SET_MULTIPLE: u8 = 0xc6;
    pub const READ_DMA: u8 = 0xc8;
    pub const READ_DMA_NR: u8 = 0xc9;
    pub const WRITE_DMA: u8 = 0xca;
    pub const WRITE_DMA_NR: u8 = 0xcb;
    pub const STANDBY_IMMEDIATE: u8 = 0xe0;
    pub const IDLE_IMMEDIATE: u8 = 0xe1;
    pub const STANDBY: u8 = 0xe2;
    pub const IDLE: u8 = 0xe3;
    pub const CHECK_POWER_MODE: u8 = 0xe5;
    pub const FLUSH_CACHE: u8 = 0xe7;
    pub const FLUSH_CACHE_EXT: u8 = 0xea;
    pub const IDENTIFY_DEVICE: u8 = 0xec;
    pub const SET_FEATURES: u8 = 0xef;
}

/// SET FEATURES subcommands (features register).
const FEATURE_WRITE_CACHE_ON: u8 = 0x02;
const FEATURE_TRANSFER_MODE: u8 = 0x03;
const FEATURE_LOOK_AHEAD_OFF: u8 = 0x55;
const FEATURE_DEFAULTS_KEPT: u8 = 0x66;
const FEATURE_WRITE_CACHE_OFF: u8 = 0x82;
const FEATURE_LOOK_AHEAD_ON: u8 = 0xaa;
const FEATURE_DEFAULTS_RESTORED: u8 = 0xcc;

/// Transfer modes of SET FEATURES 0x03 (count register): class in bits
/// 7:3, mode in 2:0.
const MODE_PIO_DEFAULT: u8 = 0x00;
const MODE_PIO_DEFAULT_NO_IORDY: u8 = 0x01;
const MODE_PIO: u8 = 0x08;
const MODE_MWDMA: u8 = 0x20;
const MODE_UDMA: u8 = 0x40;
/// The DMA mode selected at power-on: UDMA 5.
const MODE_DMA_DEFAULT: u8 = MODE_UDMA | 5;

/// The task file of a command, as the host-to-device register FIS
/// carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taskfile {
    pub command: u8,
    /// Features register (7:0).
    pub features: u8,
    /// LBA low, mid, high, then their "previous" (48-bit) halves.
    pub lba: [u8; 6],
    pub device: u8,
    /// Sector count (15:0).
    pub count: u16,
}

/// How a data command moves its data.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Dma,
    Pio,
}

/// Cylinders, heads, sectors per track.
type Geometry = (u16, u16, u16);

/// A hard disk.
/// What a state image keeps of a disk (its image is the configuration's).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtaDiskState {
    write_cache: bool,
    multiple: u8,
    dma_mode: u8,
    standby: bool,
    heads: u16,
    sectors_per_track: u16,
}

pub struct AtaDisk {
    disk: Box<dyn Disk>,
    readonly: bool,
    serial: String,
    /// Capacity in sectors (a partial last sector of the image is not used).
    sectors: u64,
    /// Writes complete before they reach stable storage; FLUSH CACHE
    /// makes them stable. Off: every write is flushed at once.
    write_cache: bool,
    /// Sectors per DRQ block of READ/WRITE MULTIPLE; 0: not set.
    multiple: u8,
    /// Selected DMA transfer mode (SET FEATURES value).
    dma_mode: u8,
    /// In the Standby power mode (until the next media access).
    standby: bool,
    /// Translation for CHS addressing, as INITIALIZE DEVICE PARAMETERS set it.
    heads: u16,
    sectors_per_track: u16,
}

/// Cylinders, heads and sectors per track of the default translation: 16
/// heads of 63 sectors, at most 16383 cylinders.
fn default_geometry(sectors: u64) -> Geometry {
    let cylinders = (sectors / (16 * 63)).clamp(1, 16383) as u16;
    (cylinders, 16, 63)
}

impl AtaDisk {
    pub fn state(&self) -> AtaDiskState {
        AtaDiskState {
            write_cache: self.write_cache,
            multiple: self.multiple,
            dma_mode: self.dma_mode,
            standby: self.standby,
            heads: self.heads,
            sectors_per_track: self.sectors_per_track,
        }
    }

    pub fn restore(&mut self, s: &AtaDiskState) {
        self.write_cache = s.write_cache;
        self.multiple = s.multiple;
        self.dma_mode = s.dma_mode;
        self.standby = s.standby;
        self.heads = s.heads;
        self.sectors_per_track = s.sectors_per_track;
    }

    /// A disk over `disk` (at least one sector); `serial` for IDENTIFY
    /// (20 characters kept, any but printable ASCII as `_`).
    pub fn new(disk: Box<dyn Disk>, readonly: bool, serial: &str) -> AtaDisk {
        let sectors = (disk.size() / SECTOR).min(LBA48_CAPACITY_MAX);
        let (_, heads, sectors_per_track) = default_geometry(sectors);
        AtaDisk {
            disk,
            readonly,
            serial: serial
                .chars()
                .map(|c| {
                    if c == ' ' || c.is_ascii_graphic() {
                        c
                    } else {
                        '_'
                    }
                })
                .take(SERIAL_LEN)
                .collect(),
            sectors,
            write_cache: true,
            multiple: 0,
            dma_mode: MODE_DMA_DEFAULT,
            standby: false,
            heads,
            sectors_per_track,
        }
    }

    /// Capacity in sectors.
    pub fn sectors(&self) -> u64 {
        self.sectors
    }

    /// Makes written data stable (at VMM exit).
    pub fn flush(&self) -> std::io::Result<()> {
        if self.readonly {
            return Ok(());
        }
        self.disk.flush()
    }

    /// The current translation: cylinders for the heads and sectors per
    /// track set, at most 65535.
    fn current_geometry(&self) -> Geometry {
        let per_cylinder = u64::from(self.heads) * u64::from(self.sectors_per_track);
        let cylinders = (self.sectors / per_cylinder.max(1)).min(u64::from(u16::MAX)) as u16;
        (cylinders, self.heads, self.sectors_per_track)
    }

    /// IDENTIFY DEVICE data: a fixed disk with LBA48, DMA up to UDMA 5,
    /// a write cache and FLUSH CACHE (EXT); no NCQ, no logs, no SMART.
    pub fn identify(&self) -> [u8; atapi::IDENTIFY_LEN] {
        let mut w = [0u16; atapi::IDENTIFY_LEN / 2];
        let (cylinders, heads, spt) = default_geometry(self.sectors);
        w[0] = 1 << 6; // ATA device, fixed
        w[1] = cylinders;
        w[3] = heads;
        w[6] = spt;
        ata_string(&mut w[10..20], &self.serial);
        ata_string(&mut w[23..27], REVISION);
        ata_string(&mut w[27..47], MODEL);
        w[47] = 0x8000 | u16::from(MAX_MULTIPLE);
        w[49] = 1 << 11 | 1 << 9 | 1 << 8; // IORDY, LBA, DMA
        w[50] = 1 << 14;
        w[53] = 0x0007; // words 54-58, 64-70 and 88 valid
        let (c, h, s) = self.current_geometry();
        w[54] = c;
        w[55] = h;
        w[56] = s;
        let chs_capacity = u32::from(c) * u32::from(h) * u32::from(s);
        w[57] = chs_capacity as u16;
        w[58] = (chs_capacity >> 16) as u16;
        if self.multiple != 0 {
            w[59] = 1 << 8 | u16::from(self.multiple);
        }
        let lba28 = self.sectors.min(LBA28_CAPACITY_MAX) as u32;
        w[60] = lba28 as u16;
        w[61] = (lba28 >> 16) as u16;
        w[63] = 0x0007; // multiword DMA 0-2
        w[64] = 0x0003; // PIO 3-4
        w[65] = 120;
        w[66] = 120;
        w[67] = 120;
        w[68] = 120;
        w[76] = 1 << 1; // SATA 1.5 Gb/s
        w[80] = 0x00f0; // ATA/ATAPI-4 to -7
        // Supported: NOP, write cache, power management; FLUSH CACHE
        // (EXT), 48-bit addresses.
        w[82] = 1 << 14 | 1 << 5 | 1 << 3;
        w[83] = 1 << 14 | 1 << 13 | 1 << 12 | 1 << 10;
        w[84] = 1 << 14;
        // Enabled: the same, the write cache as set.
        w[85] = 1 << 14 | u16::from(self.write_cache) << 5 | 1 << 3;
        w[86] = 1 << 13 | 1 << 12 | 1 << 10;
        w[87] = 1 << 14;
        w[88] = 0x003f; // UDMA 0-5
        let mode = self.dma_mode & 7;
        match self.dma_mode & !7 {
            MODE_MWDMA => w[63] |= 1 << (8 + mode),
            MODE_UDMA => w[88] |= 1 << (8 + mode),
            _ => {}
        }
        for (i, word) in w[100..104].iter_mut().enumerate() {
            *word = (self.sectors >> (16 * i)) as u16;
        }
        let mut out = [0u8; atapi::IDENTIFY_LEN];
        for (b, word) in out.chunks_mut(2).zip(w) {
            b.copy_from_slice(&word.to_le_bytes());
        }
        // Integrity word: signature 0xA5, then the byte that makes the
        // sum of all 512 bytes zero.
        out[510] = 0xa5;
        let sum = out[..511].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        out[511] = sum.wrapping_neg();
        out
    }

    /// Runs one command; data goes through `data`.
    pub fn execute(&mut self, tf: &Taskfile, data: &mut Prdt<'_>) -> Outcome {
        use cmd::*;
        match tf.command {
            IDENTIFY_DEVICE => {
                let id = self.identify();
                let n = id.len().min(data.capacity());
                let written = data.write_at(0, &id[..n]);
                done(Registers::ok(), written, true)
            }
            READ_DMA | READ_DMA_NR => self.transfer(tf, false, false, Protocol::Dma, data),
            READ_DMA_EXT => self.transfer(tf, true, false, Protocol::Dma, data),
            WRITE_DMA | WRITE_DMA_NR => self.transfer(tf, false, true, Protocol::Dma, data),
            WRITE_DMA_EXT => self.transfer(tf, true, true, Protocol::Dma, data),
            READ_SECTORS | READ_SECTORS_NR => self.transfer(tf, false, false, Protocol::Pio, data),
            READ_SECTORS_EXT => self.transfer(tf, true, false, Protocol::Pio, data),
            WRITE_SECTORS | WRITE_SECTORS_NR => self.transfer(tf, false, true, Protocol::Pio, data),
            WRITE_SECTORS_EXT => self.transfer(tf, true, true, Protocol::Pio, data),
            // The multiple commands work once SET MULTIPLE chose a block size.
            READ_MULTIPLE | READ_MULTIPLE_EXT | WRITE_MULTIPLE | WRITE_MULTIPLE_EXT
                if self.multiple == 0 =>
            {
                aborted()
            }
            READ_MULTIPLE => self.transfer(tf, false, false, Protocol::Pio, data),
            READ_MULTIPLE_EXT => self.transfer(tf, true, false, Protocol::Pio, data),
            WRITE_MULTIPLE => self.transfer(tf, false, true, Protocol::Pio, data),
            WRITE_MULTIPLE_EXT => self.transfer(tf, true, true, Protocol::Pio, data),
            READ_VERIFY | READ_VERIFY_NR | READ_VERIFY_EXT => {
                match self.range(tf, tf.command == READ_VERIFY_EXT) {
                    Some(_) => {
                        self.standby = false;
                        done(Registers::ok(), 0, false)
                    }
                    None => aborted(),
                }
            }
            FLUSH_CACHE | FLUSH_CACHE_EXT => match self.flush() {
                Ok(()) => done(Registers::ok(), 0, false),
                Err(e) => {
                    tracing::debug!("ATA disk: flush failed: {e}");
                    aborted()
                }
            },
            SET_FEATURES => self.set_features(tf),
            STANDBY_IMMEDIATE | STANDBY => {
                self.standby = true;
                done(Registers::ok(), 0, false)
            }
            IDLE_IMMEDIATE | IDLE => {
                self.standby = false;
                done(Registers::ok(), 0, false)
            }
            CHECK_POWER_MODE => {
                let mut regs = Registers::ok();
                regs.count = if self.standby { 0x00 } else { 0xff };
                done(regs, 0, false)
            }
            SET_MULTIPLE => {
                let n = tf.count as u8;
                if n > MAX_MULTIPLE || !(n == 0 || n.is_power_of_two()) {
                    return aborted();
                }
                self.multiple = n;
                done(Registers::ok(), 0, false)
            }
            INITIALIZE_DEVICE_PARAMETERS => {
                let spt = tf.count as u8;
                if spt == 0 {
                    return aborted();
                }
                self.sectors_per_track = u16::from(spt);
                self.heads = u16::from(tf.device & 0x0f) + 1;
                done(Registers::ok(), 0, false)
            }
            // Shows the signature again, as after a reset.
            EXECUTE_DEVICE_DIAGNOSTIC => Outcome::Reset,
            // NOP, the packet commands, DEVICE RESET, anything else.
            _ => aborted(),
        }
    }

    /// The first sector and the sector count of a read, write or verify,
    /// if they lie on the disk. 28-bit commands address with the LBA bit
    /// of the device register set, or by cylinder, head and sector under
    /// the current translation; a count of 0 means 256 (65536 for 48-bit
    /// commands).
    fn range(&self, tf: &Taskfile, ext: bool) -> Option<(u64, u64)> {
        let l = tf.lba;
        let (start, count) = if ext {
            let lba = u64::from_le_bytes([l[0], l[1], l[2], l[3], l[4], l[5], 0, 0]);
            let count = match tf.count {
                0 => 65536,
                n => u64::from(n),
            };
            (lba, count)
        } else {
            let count = match tf.count as u8 {
                0 => 256,
                n => u64::from(n),
            };
            let lba = if tf.device & DEVICE_LBA != 0 {
                u64::from(l[0])
                    | u64::from(l[1]) << 8
                    | u64::from(l[2]) << 16
                    | u64::from(tf.device & 0x0f) << 24
            } else {
                let cylinder = u64::from(l[1]) | u64::from(l[2]) << 8;
                let head = u64::from(tf.device & 0x0f);
                let sector = u64::from(l[0]);
                let (heads, spt) = (u64::from(self.heads), u64::from(self.sectors_per_track));
                if sector == 0 || sector > spt || head >= heads {
                    return None;
                }
                (cylinder * heads + head) * spt + sector - 1
            };
            (lba, count)
        };
        let end = start.checked_add(count)?;
        (end <= self.sectors).then_some((start, count))
    }

    /// A read or write: range, write protection and PRDT checked first,
    /// then the image read into or written from guest memory.
    fn transfer(
        &mut self,
        tf: &Taskfile,
        ext: bool,
        write: bool,
        protocol: Protocol,
        data: &Prdt<'_>,
    ) -> Outcome {
        let Some((start, count)) = self.range(tf, ext) else {
            return aborted();
        };
        if write && self.readonly {
            return aborted();
        }
        // At most 65536 sectors: 32 MiB.
        let len = (count * SECTOR) as usize;
        let Some(bufs) = data.slices(len) else {
            return aborted();
        };
        self.standby = false;
        let off = start * SECTOR;
        let r = if write {
            self.disk.write_vectored(&bufs, off).and_then(|()| {
                if self.write_cache {
                    Ok(())
                } else {
                    self.disk.flush()
                }
            })
        } else {
            self.disk.read_vectored(&bufs, off)
        };
        match r {
            Ok(()) => done(Registers::ok(), len, protocol == Protocol::Pio && !write),
            Err(e) => {
                tracing::debug!(
                    "ATA disk: {} of {count} sectors at {start} failed: {e}",
                    if write { "write" } else { "read" }
                );
                let error = if write { atapi::ERROR_ABRT } else { ERROR_UNC };
                done(
                    Registers {
                        status: atapi::STATUS_FAILED,
                        error,
                        ..Default::default()
                    },
                    0,
                    false,
                )
            }
        }
    }

    fn set_features(&mut self, tf: &Taskfile) -> Outcome {
        match tf.features {
            FEATURE_WRITE_CACHE_ON => self.write_cache = true,
            FEATURE_WRITE_CACHE_OFF => {
                // What the cache held becomes stable first.
                if self.flush().is_err() {
                    return aborted();
                }
                self.write_cache = false;
            }
            FEATURE_TRANSFER_MODE => {
                let mode = tf.count as u8;
                match mode {
                    MODE_PIO_DEFAULT | MODE_PIO_DEFAULT_NO_IORDY => {}
                    m if m & !7 == MODE_PIO && m & 7 <= 4 => {}
                    m if m & !7 == MODE_MWDMA && m & 7 <= 2 => self.dma_mode = m,
                    m if m & !7 == MODE_UDMA && m & 7 <= 5 => self.dma_mode = m,
                    _ => return aborted(),
                }
            }
            // Read look-ahead and keeping settings over a reset: nothing
            // to change here.
            FEATURE_LOOK_AHEAD_OFF
            | FEATURE_LOOK_AHEAD_ON
            | FEATURE_DEFAULTS_KEPT
            | FEATURE_DEFAULTS_RESTORED => {}
            _ => return aborted(),
        }
        done(Registers::ok(), 0, false)
    }
}

fn done(regs: Registers, bytes: usize, pio_in: bool) -> Outcome {
    Outcome::Done {
        regs,
        bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        pio_in,
    }
}

fn aborted() -> Outcome {
    done(Registers::aborted(), 0, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::virtio::disk::MemDisk;

    fn word(id: &[u8], i: usize) -> u16 {
        u16::from_le_bytes([id[2 * i], id[2 * i + 1]])
    }

    fn text(id: &[u8], words: std::ops::Range<usize>) -> String {
        let bytes: Vec<u8> = id[2 * words.start..2 * words.end]
            .chunks(2)
            .flat_map(|p| [p[1], p[0]])
            .collect();
        String::from_utf8(bytes).unwrap().trim_end().to_string()
    }

    #[test]
    fn identify_device_data() {
        // 200 GiB, more than 28-bit addresses reach (128 GiB); nothing
        // is read.
        struct Big;
        impl Disk for Big {
            fn size(&self) -> u64 {
                200 << 30
            }
            fn read_vectored(
                &mut self,
                _: &[crate::vmm::virtio::iov::Slice<'_>],
                _: u64,
            ) -> std::io::Result<()> {
                Ok(())
            }
            fn write_vectored(
                &mut self,
                _: &[crate::vmm::virtio::iov::Slice<'_>],
                _: u64,
            ) -> std::io::Result<()> {
                Ok(())
            }
            fn flush(&self) -> std::io::Result<()> {
                Ok(())
            }
            fn write_zeroes(&mut self, _: u64, _: u64) -> std::io::Result<()> {
                Ok(())
            }
            fn discard(&mut self, _: u64, _: u64) -> std::io::Result<()> {
                Ok(())
            }
        }
        let d = AtaDisk::new(Box::new(Big), false, "a-serial-longer-than-twenty");
        let id = d.identify();
        assert_eq!(word(&id, 0) & 0x8080, 0, "ATA, not removable");
        assert_eq!(text(&id, 27..47), "OXVIRT HARDDISK");
        assert_eq!(text(&id, 10..20), "a-serial-longer-than");
        assert_eq!(text(&id, 23..27), "1.0");
        assert_eq!((word(&id, 1), word(&id, 3), word(&id, 6)), (16383, 16, 63));
        assert_eq!(word(&id, 49) & 0x0300, 0x0300, "LBA and DMA");
        assert_eq!(
            u32::from(word(&id, 60)) | u32::from(word(&id, 61)) << 16,
            0x0fff_ffff
        );
        let lba48: u64 = (0..4)
            .map(|i| u64::from(word(&id, 100 + i)) << (16 * i))
            .sum();
        assert_eq!(lba48, 200 << 21);
        assert_ne!(word(&id, 83) & 1 << 10, 0, "LBA48");
        assert_ne!(word(&id, 83) & 1 << 13, 0, "FLUSH CACHE EXT");
        assert_ne!(word(&id, 85) & 1 << 5, 0, "write cache on");
        assert_eq!(word(&id, 88), 0x203f, "UDMA 0-5, 5 selected");
        assert_eq!(word(&id, 76) & 1 << 8, 0, "no NCQ");
        assert_eq!(word(&id, 84) & 1 << 5, 0, "no general purpose logs");
        assert_eq!(id[510], 0xa5);
        assert_eq!(id.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
    }

    #[test]
    fn small_disks_and_geometry() {
        let d = AtaDisk::new(Box::new(MemDisk(vec![0; 1000 * 512 + 100])), true, "dé\n");
        assert_eq!(d.sectors(), 1000);
        let id = d.identify();
        assert_eq!(word(&id, 1), 1, "at least one cylinder");
        assert_eq!(u32::from(word(&id, 60)), 1000);
        assert_eq!(text(&id, 10..20), "d__");
        assert_eq!(word(&id, 59), 0, "multiple not set");
    }
}
