//! Parameter data of the SPC/MMC commands a CD-ROM drive answers: the
//! byte layouts only, built from the drive's state by `cdrom.rs`.

use super::sense::Sense;

/// Identity strings of standard INQUIRY data.
pub const VENDOR: &str = "OXVIRT";
pub const PRODUCT: &str = "CD-ROM";
pub const REVISION: &str = "1.0";

/// MMC profiles (GET CONFIGURATION).
pub const PROFILE_NONE: u16 = 0x0000;
pub const PROFILE_CD_ROM: u16 = 0x0008;
pub const PROFILE_DVD_ROM: u16 = 0x0010;

/// Physical interface standards of the core feature.
pub const INTERFACE_SCSI: u32 = 1;
pub const INTERFACE_ATAPI: u32 = 2;

/// Mode pages.
const PAGE_ERROR_RECOVERY: u8 = 0x01;
const PAGE_CAPABILITIES: u8 = 0x2a;
const PAGE_ALL: u8 = 0x3f;

/// Read speed reported in the capabilities page: 32x (176 kB/s each).
const READ_SPEED_KBS: u16 = 32 * 176;

/// A command descriptor block, zero-extended to 16 bytes so that every
/// field read is in bounds whatever the transport delivered.
pub struct Cdb([u8; 16]);

impl Cdb {
    pub fn new(bytes: &[u8]) -> Cdb {
        let mut c = [0u8; 16];
        let n = bytes.len().min(c.len());
        c[..n].copy_from_slice(&bytes[..n]);
        Cdb(c)
    }

    pub fn op(&self) -> u8 {
        self.0[0]
    }

    pub fn byte(&self, at: usize) -> u8 {
        self.0.get(at).copied().unwrap_or(0)
    }

    pub fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.byte(at), self.byte(at + 1)])
    }

    pub fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.byte(at),
            self.byte(at + 1),
            self.byte(at + 2),
            self.byte(at + 3),
        ])
    }
}

/// `text` padded with spaces (or cut) to `len` bytes.
fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = text.bytes().take(len).collect();
    v.resize(len, b' ');
    v
}

/// Standard INQUIRY data (36 bytes): a removable CD/DVD device.
pub fn inquiry() -> Vec<u8> {
    let mut b = vec![0u8; 36];
    b[0] = 0x05; // peripheral device type: CD/DVD
    b[1] = 0x80; // removable medium
    b[2] = 0x05; // SPC-3
    b[3] = 0x02; // response data format 2
    b[4] = 36 - 5; // additional length
    b[8..16].copy_from_slice(&padded(VENDOR, 8));
    b[16..32].copy_from_slice(&padded(PRODUCT, 16));
    b[32..36].copy_from_slice(&padded(REVISION, 4));
    b
}

/// INQUIRY data of a logical unit that does not exist (peripheral
/// qualifier 3, type 0x1f), for any LUN but 0 of a drive's target.
pub fn inquiry_no_unit() -> Vec<u8> {
    let mut b = vec![0u8; 36];
    b[0] = 0x7f;
    b[2] = 0x05;
    b[3] = 0x02;
    b[4] = 36 - 5;
    b
}

/// A vital product data page: supported pages (0x00), unit serial
/// number (0x80), device identification (0x83); `None` for others.
pub fn vpd_page(page: u8, serial: &str) -> Option<Vec<u8>> {
    let mut b = vec![0x05, page, 0, 0];
    match page {
        0x00 => b.extend_from_slice(&[0x00, 0x80, 0x83]),
        0x80 => b.extend(serial.bytes().take(64)),
        0x83 => {
            // One designator: T10 vendor ID based, ASCII, for the unit.
            let id: Vec<u8> = padded(VENDOR, 8)
                .into_iter()
                .chain(serial.bytes().take(64))
                .collect();
            b.extend_from_slice(&[0x02, 0x01, 0x00, id.len() as u8]);
            b.extend(id);
        }
        _ => return None,
    }
    let len = b.len() - 4;
    b[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    Some(b)
}

/// READ CAPACITY(10): the last block's address and the block size.
pub fn read_capacity(blocks: u64, block_size: u32) -> Vec<u8> {
    let last = u32::try_from(blocks.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut b = last.to_be_bytes().to_vec();
    b.extend_from_slice(&block_size.to_be_bytes());
    b
}

/// The MSF address (minute, second, frame) of `lba`: 75 frames a second,
/// two seconds of lead-in before block 0.
pub fn lba_to_msf(lba: u64) -> [u8; 3] {
    let f = lba.saturating_add(150);
    let minutes = (f / 75 / 60).min(u64::from(u8::MAX));
    [minutes as u8, (f / 75 % 60) as u8, (f % 75) as u8]
}

fn address(lba: u64, msf: bool) -> [u8; 4] {
    if msf {
        let [m, s, f] = lba_to_msf(lba);
        [0, m, s, f]
    } else {
        u32::try_from(lba).unwrap_or(u32::MAX).to_be_bytes()
    }
}

/// READ TOC/PMA/ATIP of a single-track data disc of `blocks` blocks:
/// format 0 (TOC from `start_track`) or 1 (session information).
pub fn read_toc(format: u8, msf: bool, start_track: u8, blocks: u64) -> Result<Vec<u8>, Sense> {
    let mut b = vec![0, 0, 1, 1];
    match format {
        0 => {
            if start_track > 1 && start_track != 0xaa {
                return Err(Sense::INVALID_FIELD);
            }
            if start_track <= 1 {
                // Track 1: data, starting at block 0.
                b.extend_from_slice(&[0, 0x14, 1, 0]);
                b.extend_from_slice(&address(0, msf));
            }
            // The lead-out.
            b.extend_from_slice(&[0, 0x16, 0xaa, 0]);
            b.extend_from_slice(&address(blocks, msf));
        }
        1 => {
            // One complete session; its first track starts at block 0.
            b.extend_from_slice(&[0, 0x14, 1, 0]);
            b.extend_from_slice(&address(0, msf));
        }
        _ => return Err(Sense::INVALID_FIELD),
    }
    let len = (b.len() - 2) as u16;
    b[0..2].copy_from_slice(&len.to_be_bytes());
    Ok(b)
}

/// The mode pages of one page code, with their two-byte headers.
/// `changeable`: the mask of changeable values (all zero: nothing is).
fn mode_page(page: u8, changeable: bool, locked: bool) -> Option<Vec<u8>> {
    let mut p = match page {
        PAGE_ERROR_RECOVERY => {
            let mut p = vec![0u8; 12];
            p[3] = 0x20; // read retry count
            p
        }
        PAGE_CAPABILITIES => {
            let mut p = vec![0u8; 22];
            p[2] = 0x3b; // reads CD-R, CD-RW, DVD-ROM, DVD-R, DVD-RAM
            p[4] = 0x70; // mode 2 form 1 and 2, multi-session
            // Tray loading, eject, lock, and whether it is locked.
            p[6] = 0x29 | if locked { 0x02 } else { 0 };
            p[8..10].copy_from_slice(&READ_SPEED_KBS.to_be_bytes());
            p[12..14].copy_from_slice(&2048u16.to_be_bytes()); // buffer, KiB
            p[14..16].copy_from_slice(&READ_SPEED_KBS.to_be_bytes());
            p
        }
        _ => return None,
    };
    if changeable {
        p.iter_mut().skip(2).for_each(|b| *b = 0);
    }
    p[0] = page;
    p[1] = (p.len() - 2) as u8;
    Some(p)
}

/// MODE SENSE(6) (`ten` false) or MODE SENSE(10): header, no block
/// descriptors (MMC devices have none), then the page(s).
pub fn mode_sense(ten: bool, page: u8, control: u8, locked: bool) -> Result<Vec<u8>, Sense> {
    if control == 3 {
        return Err(Sense::SAVING_NOT_SUPPORTED);
    }
    let changeable = control == 1;
    let pages: Vec<u8> = if page == PAGE_ALL {
        [PAGE_ERROR_RECOVERY, PAGE_CAPABILITIES]
            .iter()
            .filter_map(|&p| mode_page(p, changeable, locked))
            .flatten()
            .collect()
    } else {
        mode_page(page, changeable, locked).ok_or(Sense::INVALID_FIELD)?
    };
    let header = if ten { 8 } else { 4 };
    let mut b = vec![0u8; header];
    b.extend(pages);
    if ten {
        let len = (b.len() - 2) as u16;
        b[0..2].copy_from_slice(&len.to_be_bytes());
    } else {
        b[0] = (b.len() - 1) as u8;
    }
    Ok(b)
}

/// What GET CONFIGURATION describes.
pub struct Configuration {
    /// Current profile; [`PROFILE_NONE`] without a medium.
    pub profile: u16,
    /// Physical interface standard (SCSI or ATAPI).
    pub interface: u32,
}

impl Configuration {
    /// Features 0 (profile list), 1 (core), 3 (removable medium) and
    /// 0x10 (random readable), each with its header.
    fn features(&self) -> Vec<(u16, bool, Vec<u8>)> {
        let media = self.profile != PROFILE_NONE;
        let mut profiles = vec![0x00, 0x00, 0x03, 8];
        for p in [PROFILE_DVD_ROM, PROFILE_CD_ROM] {
            profiles.extend_from_slice(&p.to_be_bytes());
            profiles.extend_from_slice(&[u8::from(p == self.profile), 0]);
        }
        let mut core = vec![0x00, 0x01, 0x0b, 8];
        core.extend_from_slice(&self.interface.to_be_bytes());
        core.extend_from_slice(&[0x01, 0, 0, 0]); // DBE
        // Tray loading, load, eject, lock.
        let removable = vec![0x00, 0x03, 0x0b, 4, 0x39, 0, 0, 0];
        let mut random = vec![0x00, 0x10, u8::from(media), 8];
        random.extend_from_slice(&2048u32.to_be_bytes());
        random.extend_from_slice(&[0, 1, 0, 0]); // blocking 1
        vec![
            (0x0000, true, profiles),
            (0x0001, true, core),
            (0x0003, true, removable),
            (0x0010, media, random),
        ]
    }

    /// The response for request type `rt` from feature `start` on.
    pub fn response(&self, rt: u8, start: u16) -> Result<Vec<u8>, Sense> {
        let chosen = self
            .features()
            .into_iter()
            .filter(|(code, current, _)| match rt {
                0 => *code >= start,
                1 => *code >= start && *current,
                2 => *code == start,
                _ => false,
            })
            .flat_map(|(_, _, bytes)| bytes);
        if rt > 2 {
            return Err(Sense::INVALID_FIELD);
        }
        let mut b = vec![0u8; 8];
        b[6..8].copy_from_slice(&self.profile.to_be_bytes());
        b.extend(chosen);
        let len = (b.len() - 4) as u32;
        b[0..4].copy_from_slice(&len.to_be_bytes());
        Ok(b)
    }
}

/// GET EVENT STATUS NOTIFICATION media event codes.
pub const EVENT_NONE: u8 = 0;
pub const EVENT_NEW_MEDIA: u8 = 2;
pub const EVENT_MEDIA_REMOVAL: u8 = 3;
/// The media class, the only one reported.
const CLASS_MEDIA: u8 = 4;

/// GET EVENT STATUS NOTIFICATION (polled): the media event `event` and
/// the tray/medium state when the media class is asked for, else "no
/// event available".
pub fn event_status(class_request: u8, event: u8, tray_open: bool, present: bool) -> Vec<u8> {
    let mut b = vec![0, 0, 0x80, 1 << CLASS_MEDIA];
    if class_request & (1 << CLASS_MEDIA) != 0 {
        b[2] = CLASS_MEDIA;
        let status = u8::from(tray_open) | (u8::from(present) << 1);
        b.extend_from_slice(&[event, status, 0, 0]);
    }
    // The length counts the event descriptor after the 4-byte header.
    let len = (b.len() - 4) as u16;
    b[0..2].copy_from_slice(&len.to_be_bytes());
    b
}

/// READ DISC INFORMATION (standard type): a finalized single-session,
/// single-track disc.
pub fn disc_information() -> Vec<u8> {
    let mut b = vec![0u8; 34];
    b[1] = 32; // length after this field
    b[2] = 0x0e; // last session complete, disc complete
    b[3] = 1; // first track
    b[4] = 1; // sessions
    b[5] = 1; // first track of the last session
    b[6] = 1; // last track of the last session
    b[7] = 0x20; // unrestricted use
    b
}

/// MECHANISM STATUS: no changer, the door state.
pub fn mechanism_status(tray_open: bool) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    b[1] = if tray_open { 0x10 } else { 0 };
    b
}

/// REPORT LUNS: LUN 0 only.
pub fn report_luns() -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[3] = 8; // one 8-byte entry
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inquiry_identity() {
        let b = inquiry();
        assert_eq!(b.len(), 36);
        assert_eq!(&b[8..16], b"OXVIRT  ");
        assert_eq!(&b[16..32], b"CD-ROM          ");
        assert_eq!(inquiry_no_unit()[0], 0x7f);
    }

    #[test]
    fn vpd_pages() {
        assert_eq!(vpd_page(0, "s").unwrap(), vec![5, 0, 0, 3, 0, 0x80, 0x83]);
        assert_eq!(vpd_page(0x80, "cd0").unwrap(), b"\x05\x80\x00\x03cd0");
        let id = vpd_page(0x83, "cd0").unwrap();
        assert_eq!(id[3] as usize, id.len() - 4);
        assert_eq!(id[7], 11);
        assert_eq!(&id[8..19], b"OXVIRT  cd0");
        assert!(vpd_page(0xb0, "s").is_none());
    }

    #[test]
    fn capacity_and_msf() {
        assert_eq!(read_capacity(100, 2048), vec![0, 0, 0, 99, 0, 0, 8, 0]);
        assert_eq!(read_capacity(1 << 40, 2048)[..4], [0xff; 4]);
        assert_eq!(lba_to_msf(0), [0, 2, 0]);
        assert_eq!(lba_to_msf(75 * 60 - 150), [1, 0, 0]);
        assert_eq!(lba_to_msf(u64::MAX)[0], 255);
    }

    #[test]
    fn toc_formats() {
        let t = read_toc(0, false, 0, 1000).unwrap();
        assert_eq!(t.len(), 20);
        assert_eq!(u16::from_be_bytes([t[0], t[1]]), 18);
        assert_eq!(t[6], 1);
        assert_eq!(t[14], 0xaa);
        assert_eq!(u32::from_be_bytes(t[16..20].try_into().unwrap()), 1000);
        let m = read_toc(0, true, 1, 1000).unwrap();
        assert_eq!(&m[8..12], &[0, 0, 2, 0]);
        assert_eq!(&m[16..20], &[0, 0, 15, 25]); // 1150 frames
        let lead_out = read_toc(0, false, 0xaa, 1000).unwrap();
        assert_eq!(lead_out.len(), 12);
        assert_eq!(read_toc(0, false, 2, 1000), Err(Sense::INVALID_FIELD));
        let s = read_toc(1, false, 0, 1000).unwrap();
        assert_eq!(s, vec![0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
        assert_eq!(read_toc(2, false, 0, 1000), Err(Sense::INVALID_FIELD));
    }

    #[test]
    fn mode_pages() {
        let six = mode_sense(false, 0x2a, 0, true).unwrap();
        assert_eq!(six[0] as usize, six.len() - 1);
        assert_eq!(six[3], 0, "no block descriptors");
        assert_eq!((six[4], six[5]), (0x2a, 20));
        assert_eq!(six[4 + 6], 0x2b, "locked");
        let ten = mode_sense(true, 0x3f, 0, false).unwrap();
        assert_eq!(u16::from_be_bytes([ten[0], ten[1]]) as usize, ten.len() - 2);
        assert_eq!(ten[8], 0x01);
        assert_eq!(ten[8 + 12], 0x2a);
        let mask = mode_sense(true, 0x2a, 1, false).unwrap();
        assert!(mask[10..].iter().all(|&b| b == 0));
        assert_eq!(
            mode_sense(false, 0x2a, 3, false),
            Err(Sense::SAVING_NOT_SUPPORTED)
        );
        assert_eq!(mode_sense(false, 0x05, 0, false), Err(Sense::INVALID_FIELD));
    }

    #[test]
    fn configuration_features() {
        let c = Configuration {
            profile: PROFILE_CD_ROM,
            interface: INTERFACE_SCSI,
        };
        let all = c.response(0, 0).unwrap();
        assert_eq!(
            u32::from_be_bytes(all[0..4].try_into().unwrap()) as usize,
            all.len() - 4
        );
        assert_eq!(u16::from_be_bytes([all[6], all[7]]), PROFILE_CD_ROM);
        // Profile list: DVD-ROM not current, CD-ROM current.
        assert_eq!(&all[12..20], &[0, 0x10, 0, 0, 0, 0x08, 1, 0]);
        let one = c.response(2, 3).unwrap();
        assert_eq!(one.len(), 16);
        assert_eq!(u16::from_be_bytes([one[8], one[9]]), 3);
        assert_eq!(c.response(2, 0x28).unwrap().len(), 8);
        let empty = Configuration {
            profile: PROFILE_NONE,
            interface: INTERFACE_ATAPI,
        };
        let cur = empty.response(1, 0).unwrap();
        assert_eq!(cur.len(), 8 + 12 + 12 + 8, "random readable not current");
        assert_eq!(c.response(3, 0), Err(Sense::INVALID_FIELD));
    }

    #[test]
    fn event_status_media_class() {
        let e = event_status(1 << 4, EVENT_NEW_MEDIA, false, true);
        assert_eq!(e, vec![0, 4, 4, 0x10, 2, 2, 0, 0]);
        let none = event_status(0x02, EVENT_NONE, false, true);
        assert_eq!(none, vec![0, 0, 0x80, 0x10]);
        assert_eq!(event_status(0x10, EVENT_NONE, true, false)[5], 1);
    }

    #[test]
    fn cdb_reads_are_bounded() {
        let c = Cdb::new(&[0x28, 0, 0, 0, 0, 1, 0, 0, 4]);
        assert_eq!(c.be32(2), 1);
        assert_eq!(c.be16(7), 4);
        assert_eq!(c.be32(14), 0);
        assert_eq!(c.byte(100), 0);
        assert_eq!(Cdb::new(&[0xff; 64]).byte(15), 0xff);
    }
}
