//! oxvirt's save image: a header, the domain's XML with room to grow, and
//! the VMM's guest state stream (`crate::vmm::snapshot`) from a page
//! boundary on.
//!
//! ```text
//! 0   magic[16]      "OxvirtSaveImage\0" ("OxvirtSavePart\0\0" while written)
//! 16  u32 version    1
//! 20  u32 xml_len    bytes of XML at 64
//! 24  u32 was_running
//! 28  u32 reserved
//! 32  u64 state_offset   where the VMM's stream starts
//! 40  reserved up to 64
//! 64  XML, then zeros up to state_offset
//! ```
//!
//! Integers are little-endian. The XML area has 64 KiB to spare, so that
//! `save-image-define` rewrites it in place. Errors are libvirt's words
//! for its own image ("image magic is incorrect", ...).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::fsutil::system_error;

const MAGIC: &[u8; 16] = b"OxvirtSaveImage\0";
const PARTIAL: &[u8; 16] = b"OxvirtSavePart\0\0";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 64;
/// Room left after the XML for a bigger one.
const XML_SPARE: u64 = 64 << 10;
const PAGE: u64 = 4096;
/// No domain XML is this large.
const MAX_XML: u32 = 16 << 20;

/// libvirt's "operation failed: ..." of the QEMU driver.
pub(super) fn failed(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::OperationFailed, ErrorDomain::Qemu, detail)
}

/// What the head of an image says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub xml: String,
    pub was_running: bool,
    pub state_offset: u64,
}

fn encode(magic: &[u8; 16], xml_len: u32, was_running: bool, state_offset: u64) -> [u8; 64] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..16].copy_from_slice(magic);
    h[16..20].copy_from_slice(&VERSION.to_le_bytes());
    h[20..24].copy_from_slice(&xml_len.to_le_bytes());
    h[24..28].copy_from_slice(&u32::from(was_running).to_le_bytes());
    h[32..40].copy_from_slice(&state_offset.to_le_bytes());
    h
}

/// Creates (or truncates) the image at `path` and writes its head marked
/// partial. Returns the file, positioned where the VMM's stream goes.
pub fn create(path: &Path, xml: &str, was_running: bool, bypass_cache: bool) -> Result<File> {
    let cant =
        |e: &std::io::Error| system_error(format!("Failed to create file '{}'", path.display()), e);
    let mut flags = libc::O_CLOEXEC;
    if bypass_cache {
        // Not O_DIRECT (the VMM writes unaligned runs): the pages are
        // dropped from the cache once written instead.
        flags |= libc::O_NOATIME;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| cant(&e))?;
    let len = u32::try_from(xml.len()).map_err(|_| failed("domain XML too large"))?;
    let state_offset = (HEADER_LEN + u64::from(len) + XML_SPARE).div_ceil(PAGE) * PAGE;
    let head = encode(PARTIAL, len, was_running, state_offset);
    let written = f
        .write_all(&head)
        .and_then(|()| f.write_all(xml.as_bytes()))
        .and_then(|()| f.set_len(state_offset))
        .and_then(|()| f.seek(SeekFrom::Start(state_offset)).map(|_| ()));
    written.map_err(|e| {
        system_error(
            format!("failed to write header to '{}'", path.display()),
            &e,
        )
    })?;
    Ok(f)
}

/// Marks a fully written image complete. As libvirt, the data then goes
/// to disk with the page cache's writeback; with `bypass_cache` it is on
/// disk (and out of the cache) before the image is marked complete.
pub fn complete(f: &File, path: &Path, bypass_cache: bool) -> Result<()> {
    let fail =
        |e: &std::io::Error| system_error(format!("failed to write '{}'", path.display()), e);
    if bypass_cache {
        f.sync_data().map_err(|e| fail(&e))?;
    }
    f.write_all_at(MAGIC, 0).map_err(|e| fail(&e))?;
    if bypass_cache {
        f.sync_data().map_err(|e| fail(&e))?;
        // SAFETY: posix_fadvise only advises the kernel about this open fd.
        unsafe {
            libc::posix_fadvise(
                std::os::fd::AsRawFd::as_raw_fd(f),
                0,
                0,
                libc::POSIX_FADV_DONTNEED,
            )
        };
    }
    Ok(())
}

/// Opens an image and reads its head; the file is left positioned at the
/// VMM's stream.
pub fn open(path: &Path) -> Result<(File, Head)> {
    let mut f = File::open(path)
        .map_err(|e| system_error(format!("Failed to open file '{}'", path.display()), &e))?;
    let head = read_head(&mut f)?;
    f.seek(SeekFrom::Start(head.state_offset))
        .map_err(|e| system_error(format!("cannot seek in '{}'", path.display()), &e))?;
    Ok((f, head))
}

fn read_head(f: &mut File) -> Result<Head> {
    let mut h = [0u8; HEADER_LEN as usize];
    f.read_exact(&mut h)
        .map_err(|_| failed("failed to read save image header"))?;
    if &h[..16] == PARTIAL {
        return Err(failed("save image is incomplete"));
    }
    if &h[..16] != MAGIC {
        return Err(failed("image magic is incorrect"));
    }
    let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let version = word(16);
    if version != VERSION {
        return Err(failed(format!(
            "image version is not supported ({version} > {VERSION})"
        )));
    }
    let xml_len = word(20);
    if xml_len == 0 || xml_len > MAX_XML {
        return Err(failed(format!("invalid header data length: {xml_len}")));
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&h[32..40]);
    let state_offset = u64::from_le_bytes(off);
    if state_offset < HEADER_LEN + u64::from(xml_len) {
        return Err(failed("invalid header data length"));
    }
    let mut xml = vec![0u8; xml_len as usize];
    f.read_exact(&mut xml)
        .map_err(|_| failed("failed to read domain XML"))?;
    let xml = String::from_utf8(xml).map_err(|_| failed("failed to read domain XML"))?;
    Ok(Head {
        xml,
        was_running: word(24) != 0,
        state_offset,
    })
}

/// Rewrites an image's XML and running flag in place
/// (`virDomainSaveImageDefineXML`).
pub fn rewrite(path: &Path, xml: &str, was_running: bool) -> Result<()> {
    let (f, head) = open(path)?;
    drop(f);
    let len = u32::try_from(xml.len()).map_err(|_| failed("new xml too large to fit in file"))?;
    if HEADER_LEN + u64::from(len) > head.state_offset {
        return Err(failed("new xml too large to fit in file"));
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| system_error(format!("Failed to open file '{}'", path.display()), &e))?;
    let mut area = xml.as_bytes().to_vec();
    area.resize((head.state_offset - HEADER_LEN) as usize, 0);
    let fail =
        |e: std::io::Error| system_error(format!("failed to write '{}'", path.display()), &e);
    // Partial first: a crash in between leaves an image that says so.
    f.write_all_at(&encode(PARTIAL, len, was_running, head.state_offset), 0)
        .map_err(fail)?;
    f.write_all_at(&area, HEADER_LEN).map_err(fail)?;
    f.sync_data().map_err(fail)?;
    f.write_all_at(MAGIC, 0).map_err(fail)?;
    f.sync_data().map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("oxvirt-save-image-{}-{tag}", std::process::id()))
    }

    #[test]
    fn head_round_trips_and_defines_in_place() {
        let p = tmp("roundtrip");
        let mut f = create(&p, "<domain/>", true, false).unwrap();
        f.write_all(b"STATE").unwrap();
        let open_partial = open(&p).unwrap_err();
        assert_eq!(
            open_partial.message,
            "operation failed: save image is incomplete"
        );
        complete(&f, &p, false).unwrap();
        let (mut f, head) = open(&p).unwrap();
        assert_eq!(head.xml, "<domain/>");
        assert!(head.was_running);
        assert_eq!(head.state_offset % PAGE, 0);
        let mut state = String::new();
        f.read_to_string(&mut state).unwrap();
        assert_eq!(state, "STATE");

        rewrite(&p, "<domain><name>x</name></domain>", false).unwrap();
        let (mut f, head2) = open(&p).unwrap();
        assert_eq!(head2.xml, "<domain><name>x</name></domain>");
        assert!(!head2.was_running);
        let mut state = String::new();
        f.read_to_string(&mut state).unwrap();
        assert_eq!(state, "STATE");
        let big = "x".repeat(200 << 10);
        assert_eq!(
            rewrite(&p, &big, false).unwrap_err().message,
            "operation failed: new xml too large to fit in file"
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn foreign_and_damaged_files_are_refused_in_libvirts_words() {
        let p = tmp("bad");
        std::fs::write(&p, [b"LibvirtQemudSave".as_slice(), &[0u8; 80]].concat()).unwrap();
        assert_eq!(
            open(&p).unwrap_err().message,
            "operation failed: image magic is incorrect"
        );
        std::fs::write(&p, b"short").unwrap();
        assert_eq!(
            open(&p).unwrap_err().message,
            "operation failed: failed to read save image header"
        );
        let mut h = encode(MAGIC, 100, false, 8192).to_vec();
        h.extend_from_slice(b"<domain");
        std::fs::write(&p, &h).unwrap();
        assert_eq!(
            open(&p).unwrap_err().message,
            "operation failed: failed to read domain XML"
        );
        let mut v = encode(MAGIC, 9, false, 8192);
        v[16] = 7;
        std::fs::write(&p, v).unwrap();
        assert_eq!(
            open(&p).unwrap_err().message,
            "operation failed: image version is not supported (7 > 1)"
        );
        let _ = std::fs::remove_file(&p);
    }
}
