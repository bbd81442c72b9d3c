//! An MMC CD-ROM logical unit over an optional image file (2048-byte
//! blocks, read-only). It executes one CDB at a time with its data-in
//! going to the transport's buffer and answers GOOD or CHECK CONDITION
//! with fixed-format sense, as SeaBIOS, Linux's `sr`/`cdrom` drivers and
//! libata's ATAPI code expect of a drive. The same unit sits behind
//! virtio-scsi and behind an AHCI port (ATAPI).
//!
//! Media change: the host's change always wins (a guest's lock is
//! ignored, as QEMU's forced change does). The guest then sees a unit
//! attention "medium not present", and "medium may have changed" when a
//! new medium went in, in that order, so that guests which only look at
//! unit attentions notice the tray cycle; GET EVENT STATUS NOTIFICATION
//! reports the matching media event.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use super::mmc::{self, Cdb};
use super::sense::{self, Sense};

/// Logical block size.
pub const BLOCK_SIZE: u64 = 2048;
/// Blocks of an 80-minute CD; larger images are reported as DVDs.
const CD_MAX_BLOCKS: u64 = 80 * 60 * 75;
/// Largest piece read from the image at once.
const READ_CHUNK: usize = 128 << 10;

const TEST_UNIT_READY: u8 = 0x00;
const REQUEST_SENSE: u8 = 0x03;
const INQUIRY: u8 = 0x12;
const MODE_SENSE_6: u8 = 0x1a;
const START_STOP_UNIT: u8 = 0x1b;
const PREVENT_ALLOW_REMOVAL: u8 = 0x1e;
const READ_CAPACITY_10: u8 = 0x25;
const READ_10: u8 = 0x28;
const READ_TOC: u8 = 0x43;
const GET_CONFIGURATION: u8 = 0x46;
const GET_EVENT_STATUS: u8 = 0x4a;
const READ_DISC_INFORMATION: u8 = 0x51;
const MODE_SENSE_10: u8 = 0x5a;
/// REPORT LUNS (the opcode transports look for too).
pub const REPORT_LUNS: u8 = 0xa0;
const READ_12: u8 = 0xa8;
const SET_CD_SPEED: u8 = 0xbb;
const MECHANISM_STATUS: u8 = 0xbd;

/// Where a command's data goes: the transport's buffers (guest memory).
pub trait DataIn {
    /// Bytes the buffers hold.
    fn capacity(&self) -> usize;
    /// Copies `data` to `offset`; returns the bytes copied.
    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize;
}

/// A plain buffer of fixed length (its `len`), as tests and bounce
/// buffers use.
impl DataIn for Vec<u8> {
    fn capacity(&self) -> usize {
        self.len()
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let Some(dst) = self.as_mut_slice().get_mut(offset..) else {
            return 0;
        };
        let n = dst.len().min(data.len());
        dst[..n].copy_from_slice(&data[..n]);
        n
    }
}

/// A loaded disc image.
pub struct Media {
    file: File,
    blocks: u64,
}

impl Media {
    /// Takes an open image (a file or a block device); its size is
    /// rounded down to whole blocks. An image without one whole block
    /// (an empty file, as management tools create for "no disc yet") is
    /// held, and the drive answers as if empty, as QEMU's does.
    pub fn new(file: File) -> io::Result<Media> {
        let size = (&file).seek(SeekFrom::End(0))?;
        Ok(Media {
            file,
            blocks: size / BLOCK_SIZE,
        })
    }

    pub fn blocks(&self) -> u64 {
        self.blocks
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// [`sense::GOOD`] or [`sense::CHECK_CONDITION`].
    pub status: u8,
    /// Bytes written to the data-in buffer.
    pub len: usize,
    /// Bytes the command had to transfer; more than `len` when the
    /// buffer was too short.
    pub wanted: u64,
    /// Why it failed (with CHECK CONDITION).
    pub sense: Option<Sense>,
}

impl Completion {
    pub fn is_good(&self) -> bool {
        self.status == sense::GOOD
    }
}

/// Data a successful command transferred.
struct Transfer {
    len: usize,
    wanted: u64,
}

const NOTHING: Transfer = Transfer { len: 0, wanted: 0 };

/// Copies parameter data, cut to the allocation length and the buffer.
fn reply(out: &mut dyn DataIn, data: &[u8], alloc: usize) -> Transfer {
    let wanted = data.len().min(alloc);
    let n = wanted.min(out.capacity());
    Transfer {
        len: out.write_at(0, &data[..n]),
        wanted: wanted as u64,
    }
}

/// Commands that neither report nor clear a pending unit attention.
fn ignores_attention(op: u8) -> bool {
    matches!(
        op,
        INQUIRY | REPORT_LUNS | GET_CONFIGURATION | GET_EVENT_STATUS | REQUEST_SENSE
    )
}

/// The drive: its medium, tray, lock and pending conditions.
/// What a state image keeps of a drive (its medium comes from the
/// configuration the restored machine is built from).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdromState {
    tray_open: bool,
    locked: bool,
    attention: Vec<Sense>,
    sense: Option<Sense>,
    event: u8,
}

pub struct Cdrom {
    /// Unit serial number (VPD page 0x80).
    serial: String,
    /// Physical interface of GET CONFIGURATION's core feature.
    interface: u32,
    media: Option<Media>,
    /// The guest opened the tray (START STOP UNIT); the medium stays in
    /// it but cannot be read until the tray closes.
    tray_open: bool,
    /// PREVENT ALLOW MEDIUM REMOVAL: the guest forbids ejecting.
    locked: bool,
    /// Unit attentions not yet reported, oldest first.
    attention: VecDeque<Sense>,
    /// Sense of the last command's CHECK CONDITION, for REQUEST SENSE.
    sense: Option<Sense>,
    /// Media event for GET EVENT STATUS NOTIFICATION.
    event: u8,
}

impl Cdrom {
    pub fn state(&self) -> CdromState {
        CdromState {
            tray_open: self.tray_open,
            locked: self.locked,
            attention: self.attention.iter().copied().collect(),
            sense: self.sense,
            event: self.event,
        }
    }

    pub fn restore(&mut self, s: &CdromState) {
        self.tray_open = s.tray_open;
        self.locked = s.locked;
        self.attention = s.attention.iter().copied().collect();
        self.sense = s.sense;
        self.event = s.event;
    }

    /// A drive, with `media` loaded or empty. `interface` is
    /// [`mmc::INTERFACE_SCSI`] or [`mmc::INTERFACE_ATAPI`].
    pub fn new(serial: impl Into<String>, interface: u32, media: Option<Media>) -> Cdrom {
        Cdrom {
            serial: serial.into(),
            interface,
            media,
            tray_open: false,
            locked: false,
            attention: VecDeque::new(),
            sense: None,
            event: mmc::EVENT_NONE,
        }
    }

    /// Whether a readable medium is in (loaded, tray closed).
    pub fn has_media(&self) -> bool {
        self.loaded().is_ok()
    }

    /// Whether the guest locked the tray.
    pub fn locked(&self) -> bool {
        self.locked
    }

    /// The host's eject (`None`) or insert: replaces the medium whatever
    /// the guest's lock, closes the tray and raises the unit attentions
    /// and media event. An image that cannot be used is refused with
    /// nothing changed.
    pub fn change_media(&mut self, file: Option<File>) -> io::Result<()> {
        self.media = file.map(Media::new).transpose()?;
        let inserted = self.disc().is_some();
        self.tray_open = false;
        self.locked = false;
        self.attention.clear();
        self.attention.push_back(Sense::NO_MEDIUM_ATTENTION);
        if inserted {
            self.attention.push_back(Sense::MEDIUM_CHANGED);
        }
        self.event = if inserted {
            mmc::EVENT_NEW_MEDIA
        } else {
            mmc::EVENT_MEDIA_REMOVAL
        };
        Ok(())
    }

    /// A reset of the unit (logical unit or target reset): the lock and
    /// tray go back to their power-on state and a reset unit attention
    /// comes first.
    pub fn reset(&mut self) {
        self.locked = false;
        self.tray_open = false;
        self.sense = None;
        if self.attention.front() != Some(&Sense::RESET) {
            self.attention.push_front(Sense::RESET);
        }
    }

    /// The readable medium, or why there is none.
    fn loaded(&self) -> Result<&Media, Sense> {
        if self.tray_open {
            return Err(Sense::NO_MEDIUM_TRAY_OPEN);
        }
        self.disc().ok_or(Sense::NO_MEDIUM_TRAY_CLOSED)
    }

    /// The medium in the tray, if it has a block to read: an image shorter
    /// than one block is a drive without a disc.
    fn disc(&self) -> Option<&Media> {
        self.media.as_ref().filter(|m| m.blocks > 0)
    }

    fn profile(&self) -> u16 {
        match self.loaded() {
            Ok(m) if m.blocks > CD_MAX_BLOCKS => mmc::PROFILE_DVD_ROM,
            Ok(_) => mmc::PROFILE_CD_ROM,
            Err(_) => mmc::PROFILE_NONE,
        }
    }

    fn fail(&mut self, s: Sense) -> Completion {
        self.sense = Some(s);
        Completion {
            status: sense::CHECK_CONDITION,
            len: 0,
            wanted: 0,
            sense: Some(s),
        }
    }

    /// Executes one command. Every field of the CDB is checked; a CDB
    /// shorter than its command is read as if zero-extended.
    pub fn execute(&mut self, cdb: &[u8], out: &mut dyn DataIn) -> Completion {
        let c = Cdb::new(cdb);
        if c.op() != REQUEST_SENSE {
            self.sense = None;
        }
        if !ignores_attention(c.op())
            && let Some(ua) = self.attention.pop_front()
        {
            return self.fail(ua);
        }
        match self.dispatch(&c, out) {
            Ok(t) => Completion {
                status: sense::GOOD,
                len: t.len,
                wanted: t.wanted,
                sense: None,
            },
            Err(s) => self.fail(s),
        }
    }

    fn dispatch(&mut self, c: &Cdb, out: &mut dyn DataIn) -> Result<Transfer, Sense> {
        let alloc16 = |at: usize| usize::from(c.be16(at));
        match c.op() {
            TEST_UNIT_READY => self.loaded().map(|_| NOTHING),
            REQUEST_SENSE => {
                let s = self
                    .sense
                    .take()
                    .or_else(|| self.attention.pop_front())
                    .unwrap_or(Sense::NO_SENSE);
                Ok(reply(out, &s.fixed(), usize::from(c.byte(4))))
            }
            INQUIRY => {
                let data = match (c.byte(1) & 1 != 0, c.byte(2)) {
                    (true, page) => mmc::vpd_page(page, &self.serial),
                    (false, 0) => Some(mmc::inquiry()),
                    (false, _) => None,
                };
                let data = data.ok_or(Sense::INVALID_FIELD)?;
                Ok(reply(out, &data, alloc16(3)))
            }
            MODE_SENSE_6 | MODE_SENSE_10 => {
                let ten = c.op() == MODE_SENSE_10;
                let data = mmc::mode_sense(ten, c.byte(2) & 0x3f, c.byte(2) >> 6, self.locked)?;
                let alloc = if ten {
                    alloc16(7)
                } else {
                    usize::from(c.byte(4))
                };
                Ok(reply(out, &data, alloc))
            }
            START_STOP_UNIT => self.start_stop(c.byte(4)).map(|_| NOTHING),
            PREVENT_ALLOW_REMOVAL => {
                self.locked = c.byte(4) & 1 != 0;
                Ok(NOTHING)
            }
            READ_CAPACITY_10 => {
                let blocks = self.loaded()?.blocks;
                Ok(reply(
                    out,
                    &mmc::read_capacity(blocks, BLOCK_SIZE as u32),
                    8,
                ))
            }
            READ_10 => self.read(u64::from(c.be32(2)), u64::from(c.be16(7)), out),
            READ_12 => self.read(u64::from(c.be32(2)), u64::from(c.be32(6)), out),
            READ_TOC => {
                let blocks = self.loaded()?.blocks;
                // ATAPI drives also take the format in byte 9's top bits.
                let format = match c.byte(2) & 0x0f {
                    0 => c.byte(9) >> 6,
                    f => f,
                };
                let data = mmc::read_toc(format, c.byte(1) & 2 != 0, c.byte(6), blocks)?;
                Ok(reply(out, &data, alloc16(7)))
            }
            GET_CONFIGURATION => {
                let conf = mmc::Configuration {
                    profile: self.profile(),
                    interface: self.interface,
                };
                let data = conf.response(c.byte(1) & 3, c.be16(2))?;
                Ok(reply(out, &data, alloc16(7)))
            }
            GET_EVENT_STATUS => {
                // Only polled operation exists.
                if c.byte(1) & 1 == 0 {
                    return Err(Sense::INVALID_FIELD);
                }
                let present = self.has_media();
                let data = mmc::event_status(c.byte(4), self.event, self.tray_open, present);
                if data.len() > 4 {
                    self.event = mmc::EVENT_NONE;
                }
                Ok(reply(out, &data, alloc16(7)))
            }
            READ_DISC_INFORMATION => {
                self.loaded()?;
                if c.byte(1) & 7 != 0 {
                    return Err(Sense::INVALID_FIELD);
                }
                Ok(reply(out, &mmc::disc_information(), alloc16(7)))
            }
            MECHANISM_STATUS => Ok(reply(
                out,
                &mmc::mechanism_status(self.tray_open),
                alloc16(8),
            )),
            SET_CD_SPEED => Ok(NOTHING),
            REPORT_LUNS => {
                let alloc = usize::try_from(c.be32(6)).unwrap_or(usize::MAX);
                if alloc < 16 || c.byte(2) > 2 {
                    return Err(Sense::INVALID_FIELD);
                }
                Ok(reply(out, &mmc::report_luns(), alloc))
            }
            _ => Err(Sense::INVALID_OPCODE),
        }
    }

    /// START STOP UNIT with LoEj: the guest opens or closes the tray.
    /// Opening is refused while the guest holds the lock.
    fn start_stop(&mut self, flags: u8) -> Result<(), Sense> {
        let (start, load_eject) = (flags & 1 != 0, flags & 2 != 0);
        // Power conditions other than 0 change nothing here.
        if flags & 0xf0 != 0 || !load_eject {
            return Ok(());
        }
        if !start && !self.tray_open && self.locked {
            return Err(if self.disc().is_some() {
                Sense::REMOVAL_PREVENTED
            } else {
                Sense::NOT_READY_REMOVAL_PREVENTED
            });
        }
        self.tray_open = !start;
        Ok(())
    }

    /// READ(10)/READ(12): `blocks` blocks from `lba`, as much as fits in
    /// the buffer. The range is checked against the medium first.
    fn read(&mut self, lba: u64, blocks: u64, out: &mut dyn DataIn) -> Result<Transfer, Sense> {
        let media = self.loaded()?;
        match lba.checked_add(blocks) {
            Some(end) if end <= media.blocks => {}
            _ => return Err(Sense::LBA_OUT_OF_RANGE),
        }
        let wanted = blocks * BLOCK_SIZE;
        let len = usize::try_from(wanted)
            .unwrap_or(usize::MAX)
            .min(out.capacity());
        let mut buf = vec![0u8; len.min(READ_CHUNK)];
        let mut done = 0usize;
        while done < len {
            let n = (len - done).min(buf.len());
            let at = lba * BLOCK_SIZE + done as u64;
            media
                .file
                .read_exact_at(&mut buf[..n], at)
                .map_err(|_| Sense::READ_ERROR)?;
            let copied = out.write_at(done, &buf[..n]);
            done += copied;
            if copied < n {
                break;
            }
        }
        Ok(Transfer { len: done, wanted })
    }
}

#[cfg(test)]
#[path = "cdrom_tests.rs"]
mod tests;
