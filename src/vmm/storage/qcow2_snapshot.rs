//! Internal snapshots inside a qcow2 image, done on the image's metadata
//! while nobody else uses it (what `qemu-img snapshot -c/-a/-d` does): by
//! the daemon for a shut off domain, by the VMM between two requests of a
//! running one. A snapshot is a copy of the L1 table plus one reference more
//! on every L2 table and data cluster it reaches, listed in the image's
//! snapshot table; the active image then copies a cluster before writing
//! it (its COPIED flags cleared). Applying one points the active L1 table
//! at the snapshot's tree; deleting one drops its references.
//!
//! Refused: images with compressed clusters, extended L2 entries, an
//! external data file, a refcount width other than 16 bits, or marked
//! dirty or corrupt; and growth past the refcount table's current size.
//! New metadata goes at the end of the file; the header is written last.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

const MAGIC: u32 = 0x5146_49fb;
const COPIED: u64 = 1 << 63;
const COMPRESSED: u64 = 1 << 62;
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Incompatible features that stop this code: dirty, corrupt, external
/// data file, extended L2 entries.
const INCOMPAT_REFUSED: u64 = 1 | 2 | 4 | 16;
/// Extra data of a version 3 snapshot entry: the large VM state size and
/// the disk size.
const EXTRA_LEN: usize = 16;

fn invalid(m: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m.into())
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b[..8].try_into().unwrap_or_default())
}

/// One entry of the snapshot table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub l1_offset: u64,
    pub l1_size: u32,
    pub id: String,
    pub name: String,
    pub date_sec: u32,
    pub date_nsec: u32,
    pub vm_clock_nsec: u64,
    pub vm_state_size: u32,
    pub extra: Vec<u8>,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.l1_offset.to_be_bytes());
        b.extend_from_slice(&self.l1_size.to_be_bytes());
        b.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
        b.extend_from_slice(&(self.name.len() as u16).to_be_bytes());
        b.extend_from_slice(&self.date_sec.to_be_bytes());
        b.extend_from_slice(&self.date_nsec.to_be_bytes());
        b.extend_from_slice(&self.vm_clock_nsec.to_be_bytes());
        b.extend_from_slice(&self.vm_state_size.to_be_bytes());
        b.extend_from_slice(&(self.extra.len() as u32).to_be_bytes());
        b.extend_from_slice(&self.extra);
        b.extend_from_slice(self.id.as_bytes());
        b.extend_from_slice(self.name.as_bytes());
        while b.len() % 8 != 0 {
            b.push(0);
        }
        b
    }
}

/// An image open for snapshot work: its header fields, refcount table
/// and the refcount blocks touched so far.
struct Image {
    f: File,
    cluster_bits: u32,
    size: u64,
    l1_size: u32,
    l1_offset: u64,
    rt_offset: u64,
    nb_snapshots: u32,
    snapshots_offset: u64,
    rt: Vec<u64>,
    blocks: BTreeMap<usize, Vec<u16>>,
    dirty: BTreeSet<usize>,
    rt_dirty: bool,
    /// Where the next new cluster goes.
    end: u64,
}

impl Image {
    fn open(f: &File) -> io::Result<Image> {
        let f = f.try_clone()?;
        let mut h = [0u8; 104];
        let got = f.read_at(&mut h, 0)?;
        if got < 72 || be32(&h[0..]) != MAGIC {
            return Err(invalid("not a qcow2 image"));
        }
        let version = be32(&h[4..]);
        if version >= 3 {
            if got < 104 {
                return Err(invalid("short qcow2 header"));
            }
            let incompat = be64(&h[72..]);
            if incompat & INCOMPAT_REFUSED != 0 || incompat >> 5 != 0 {
                return Err(invalid(format!(
                    "the image has incompatible features 0x{incompat:x} (dirty, corrupt, \
                     external data or extended L2 entries)"
                )));
            }
            if be32(&h[96..]) != 4 {
                return Err(invalid("only 16-bit refcounts are supported"));
            }
        }
        if be32(&h[32..]) != 0 {
            return Err(invalid("encrypted images are not supported"));
        }
        let cluster_bits = be32(&h[20..]);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid("bad cluster size"));
        }
        let cs = 1u64 << cluster_bits;
        let rt_offset = be64(&h[48..]);
        let rt_clusters = be32(&h[56..]) as u64;
        let mut raw = vec![0u8; (rt_clusters * cs) as usize];
        f.read_exact_at(&mut raw, rt_offset)?;
        let rt = raw.chunks_exact(8).map(be64).collect();
        let len = f.metadata()?.len();
        Ok(Image {
            cluster_bits,
            size: be64(&h[24..]),
            l1_size: be32(&h[36..]),
            l1_offset: be64(&h[40..]),
            rt_offset,
            nb_snapshots: be32(&h[60..]),
            snapshots_offset: be64(&h[64..]),
            rt,
            blocks: BTreeMap::new(),
            dirty: BTreeSet::new(),
            rt_dirty: false,
            end: len.div_ceil(cs) * cs,
            f,
        })
    }

    fn cs(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn per_block(&self) -> usize {
        (self.cs() / 2) as usize
    }

    /// The refcount block of `block` (loaded, or made when `make`).
    fn block(&mut self, block: usize, make: bool) -> io::Result<Option<&mut Vec<u16>>> {
        if !self.blocks.contains_key(&block) {
            let at = *self
                .rt
                .get(block)
                .ok_or_else(|| invalid("the refcount table would have to grow"))?;
            if at == 0 {
                if !make {
                    return Ok(None);
                }
                let new = self.end;
                self.end += self.cs();
                self.rt[block] = new;
                self.rt_dirty = true;
                self.blocks.insert(block, vec![0; self.per_block()]);
                self.dirty.insert(block);
                self.add(new, 1)?;
            } else {
                let mut raw = vec![0u8; self.cs() as usize];
                self.f.read_exact_at(&mut raw, at & OFFSET_MASK)?;
                let b = raw.chunks_exact(2).map(be16).collect();
                self.blocks.insert(block, b);
            }
        }
        Ok(self.blocks.get_mut(&block))
    }

    fn refcount(&mut self, offset: u64) -> io::Result<u16> {
        let idx = (offset >> self.cluster_bits) as usize;
        let per = self.per_block();
        Ok(self.block(idx / per, false)?.map_or(0, |b| b[idx % per]))
    }

    /// Adds `delta` to the refcount of the cluster at `offset`.
    fn add(&mut self, offset: u64, delta: i32) -> io::Result<()> {
        let idx = (offset >> self.cluster_bits) as usize;
        let per = self.per_block();
        let block = idx / per;
        let b = self
            .block(block, true)?
            .ok_or_else(|| invalid("refcount block missing"))?;
        let now = i32::from(b[idx % per]) + delta;
        b[idx % per] = u16::try_from(now)
            .map_err(|_| invalid(format!("refcount of cluster 0x{offset:x} out of range")))?;
        self.dirty.insert(block);
        Ok(())
    }

    /// New clusters at the end of the file for `bytes`, referenced once.
    fn alloc(&mut self, bytes: u64) -> io::Result<u64> {
        let n = bytes.max(1).div_ceil(self.cs());
        let at = self.end;
        self.end += n * self.cs();
        for i in 0..n {
            self.add(at + i * self.cs(), 1)?;
        }
        Ok(at)
    }

    fn free(&mut self, at: u64, bytes: u64) -> io::Result<()> {
        for i in 0..bytes.max(1).div_ceil(self.cs()) {
            self.add(at + i * self.cs(), -1)?;
        }
        Ok(())
    }

    fn read_table(&self, at: u64, n: usize) -> io::Result<Vec<u64>> {
        let mut raw = vec![0u8; n * 8];
        self.f.read_exact_at(&mut raw, at)?;
        Ok(raw.chunks_exact(8).map(be64).collect())
    }

    fn write_table(&self, at: u64, t: &[u64]) -> io::Result<()> {
        let raw: Vec<u8> = t.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.f.write_all_at(&raw, at)
    }

    fn l2_entries(&self) -> usize {
        (self.cs() / 8) as usize
    }

    /// Adds `delta` to every L2 table and data cluster `l1` reaches.
    fn update_tree(&mut self, l1: &[u64], delta: i32) -> io::Result<()> {
        for &e in l1 {
            let l2 = e & OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            self.add(l2, delta)?;
            for d in self.read_table(l2, self.l2_entries())? {
                if d & COMPRESSED != 0 {
                    return Err(invalid("images with compressed clusters are not supported"));
                }
                let data = d & OFFSET_MASK;
                if data != 0 {
                    self.add(data, delta)?;
                }
            }
        }
        Ok(())
    }

    /// Sets the active tree's COPIED flags from the refcounts: set where
    /// the active image alone holds a cluster, clear where it shares it.
    fn fix_copied(&mut self) -> io::Result<()> {
        let mut l1 = self.read_table(self.l1_offset, self.l1_size as usize)?;
        for e in l1.iter_mut() {
            let l2 = *e & OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            let own = self.refcount(l2)? == 1;
            *e = if own { l2 | COPIED } else { l2 };
            // A shared table's clusters are all shared too: the pass
            // clears their flags, which the snapshot's tree needs as well.
            let mut t = self.read_table(l2, self.l2_entries())?;
            let before = t.clone();
            for d in t.iter_mut() {
                let data = *d & OFFSET_MASK;
                if data == 0 {
                    continue;
                }
                if self.refcount(data)? == 1 {
                    *d |= COPIED;
                } else {
                    *d &= !COPIED;
                }
            }
            if t != before {
                self.write_table(l2, &t)?;
            }
        }
        self.write_table(self.l1_offset, &l1)
    }

    fn snapshots(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let mut at = self.snapshots_offset;
        for _ in 0..self.nb_snapshots {
            let mut h = [0u8; 40];
            self.f.read_exact_at(&mut h, at)?;
            let (id_len, name_len) = (be16(&h[12..]) as usize, be16(&h[14..]) as usize);
            let extra_len = be32(&h[36..]) as usize;
            if extra_len > 1024 {
                return Err(invalid("bad snapshot table"));
            }
            let mut rest = vec![0u8; extra_len + id_len + name_len];
            self.f.read_exact_at(&mut rest, at + 40)?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push(Entry {
                l1_offset: be64(&h[0..]),
                l1_size: be32(&h[8..]),
                date_sec: be32(&h[16..]),
                date_nsec: be32(&h[20..]),
                vm_clock_nsec: be64(&h[24..]),
                vm_state_size: be32(&h[32..]),
                extra: rest[..extra_len].to_vec(),
                id: text(&rest[extra_len..extra_len + id_len]),
                name: text(&rest[extra_len + id_len..]),
            });
            at += (40 + rest.len()).div_ceil(8) as u64 * 8;
        }
        Ok(out)
    }

    /// Writes `entries` as a new snapshot table, frees the old one, and
    /// writes out the refcounts and then the header: the commit point.
    fn commit(&mut self, entries: &[Entry]) -> io::Result<()> {
        let old = (self.snapshots_offset, self.table_len(&self.snapshots()?));
        let raw: Vec<u8> = entries.iter().flat_map(Entry::encode).collect();
        let at = if raw.is_empty() {
            0
        } else {
            let at = self.alloc(raw.len() as u64)?;
            self.f.write_all_at(&raw, at)?;
            at
        };
        if old.0 != 0 && old.1 > 0 {
            self.free(old.0, old.1)?;
        }
        self.flush_refcounts()?;
        let mut h = [0u8; 12];
        h[..4].copy_from_slice(&(entries.len() as u32).to_be_bytes());
        h[4..].copy_from_slice(&at.to_be_bytes());
        self.f.write_all_at(&h, 60)?;
        self.nb_snapshots = entries.len() as u32;
        self.snapshots_offset = at;
        self.f.sync_data()
    }

    fn table_len(&self, entries: &[Entry]) -> u64 {
        entries.iter().map(|e| e.encode().len() as u64).sum()
    }

    fn flush_refcounts(&mut self) -> io::Result<()> {
        // The file reaches every cluster handed out.
        if self.f.metadata()?.len() < self.end {
            self.f.set_len(self.end)?;
        }
        for b in std::mem::take(&mut self.dirty) {
            let raw: Vec<u8> = self.blocks[&b]
                .iter()
                .flat_map(|r| r.to_be_bytes())
                .collect();
            self.f.write_all_at(&raw, self.rt[b] & OFFSET_MASK)?;
        }
        if std::mem::take(&mut self.rt_dirty) {
            let rt = self.rt.clone();
            self.write_table(self.rt_offset, &rt)?;
        }
        Ok(())
    }
}

fn now() -> (u32, u32) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as u32, d.subsec_nanos())
}

/// What to do in a qcow2 image's snapshot table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Apply,
    Delete,
}

/// Runs `op` for snapshot `name` on the image open as `f`.
pub fn run(f: &File, op: Op, name: &str) -> io::Result<()> {
    match op {
        Op::Create => create(f, name),
        Op::Apply => apply(f, name),
        Op::Delete => delete(f, name),
    }
}

/// The names of the image's internal snapshots.
pub fn list(f: &File) -> io::Result<Vec<String>> {
    Ok(Image::open(f)?
        .snapshots()?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

/// Takes internal snapshot `name` of the image as it is now.
pub fn create(f: &File, name: &str) -> io::Result<()> {
    let mut img = Image::open(f)?;
    let mut entries = img.snapshots()?;
    if entries.iter().any(|e| e.name == name) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("the image already has a snapshot named '{name}'"),
        ));
    }
    let l1 = img.read_table(img.l1_offset, img.l1_size as usize)?;
    img.update_tree(&l1, 1)?;
    let copy: Vec<u64> = l1.iter().map(|e| e & !COPIED).collect();
    let l1_at = img.alloc(copy.len() as u64 * 8)?;
    img.write_table(l1_at, &copy)?;
    let id = entries
        .iter()
        .filter_map(|e| e.id.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let (date_sec, date_nsec) = now();
    let mut extra = vec![0u8; EXTRA_LEN];
    extra[8..].copy_from_slice(&img.size.to_be_bytes());
    entries.push(Entry {
        l1_offset: l1_at,
        l1_size: img.l1_size,
        id: id.to_string(),
        name: name.to_string(),
        date_sec,
        date_nsec,
        vm_clock_nsec: 0,
        vm_state_size: 0,
        extra,
    });
    img.commit(&entries)?;
    img.fix_copied()?;
    img.f.sync_data()
}

fn find(entries: &[Entry], name: &str) -> io::Result<usize> {
    entries.iter().position(|e| e.name == name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("the image has no snapshot named '{name}'"),
        )
    })
}

/// Makes the image read as it did when snapshot `name` was taken.
pub fn apply(f: &File, name: &str) -> io::Result<()> {
    let mut img = Image::open(f)?;
    let entries = img.snapshots()?;
    let snap = entries[find(&entries, name)?].clone();
    if snap.l1_size > img.l1_size {
        return Err(invalid(
            "the snapshot's L1 table is larger than the image's",
        ));
    }
    let theirs = img.read_table(snap.l1_offset, snap.l1_size as usize)?;
    let ours = img.read_table(img.l1_offset, img.l1_size as usize)?;
    img.update_tree(&theirs, 1)?;
    img.update_tree(&ours, -1)?;
    let mut l1: Vec<u64> = theirs.iter().map(|e| e & !COPIED).collect();
    l1.resize(img.l1_size as usize, 0);
    img.write_table(img.l1_offset, &l1)?;
    img.commit(&entries)?;
    img.fix_copied()?;
    img.f.sync_data()
}

/// Deletes snapshot `name`, dropping its references.
pub fn delete(f: &File, name: &str) -> io::Result<()> {
    let mut img = Image::open(f)?;
    let mut entries = img.snapshots()?;
    let snap = entries.remove(find(&entries, name)?);
    let theirs = img.read_table(snap.l1_offset, snap.l1_size as usize)?;
    img.update_tree(&theirs, -1)?;
    img.free(snap.l1_offset, u64::from(snap.l1_size) * 8)?;
    img.commit(&entries)?;
    img.fix_copied()?;
    img.f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn rw(p: &Path) -> File {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .unwrap()
    }

    fn qemu_img(args: &[&str]) -> Option<String> {
        let out = Command::new("qemu-img").args(args).output().ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }

    /// A qcow2 image made by imago, written through imago.
    fn image(path: &Path, writes: &[(u64, u8)]) {
        use imago::FormatCreateBuilder;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .unwrap();
        let storage = imago::file::File::try_from(f).unwrap();
        let b = imago::qcow2::Qcow2::<imago::file::File>::create_builder(storage).size(8 << 20);
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(b.create())
            .unwrap();
        write(path, writes);
    }

    fn open(path: &Path) -> imago::SyncFormatAccess<imago::file::File> {
        use imago::{FormatDriverBuilder, PermissiveImplicitOpenGate};
        let q = imago::qcow2::Qcow2::<imago::file::File>::builder_path(path)
            .write(true)
            .open_sync(PermissiveImplicitOpenGate::default())
            .unwrap();
        imago::SyncFormatAccess::new(q).unwrap()
    }

    fn write(path: &Path, writes: &[(u64, u8)]) {
        let img = open(path);
        for &(off, v) in writes {
            img.write(&vec![v; 4096][..], off).unwrap();
        }
        img.flush().unwrap();
    }

    fn read(path: &Path, off: u64) -> u8 {
        let img = open(path);
        let mut b = vec![0u8; 4096];
        img.read(imago::io_buffers::IoVectorMut::from(&mut b[..]), off)
            .unwrap();
        b[0]
    }

    #[test]
    fn snapshots_freeze_apply_and_delete_cleanly() {
        let dir = std::env::temp_dir().join(format!("oxvirt-qcow2-int-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.qcow2");
        image(&p, &[(0, 1), (1 << 20, 2)]);
        create(&rw(&p), "a").unwrap();
        write(&p, &[(0, 3), (4 << 20, 4)]);
        assert_eq!(
            (read(&p, 0), read(&p, 1 << 20), read(&p, 4 << 20)),
            (3, 2, 4)
        );
        create(&rw(&p), "b").unwrap();
        assert_eq!(list(&rw(&p)).unwrap(), ["a", "b"]);
        assert_eq!(
            create(&rw(&p), "a").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        apply(&rw(&p), "a").unwrap();
        assert_eq!(
            (read(&p, 0), read(&p, 1 << 20), read(&p, 4 << 20)),
            (1, 2, 0)
        );
        write(&p, &[(0, 5)]);
        apply(&rw(&p), "b").unwrap();
        assert_eq!((read(&p, 0), read(&p, 4 << 20)), (3, 4));
        delete(&rw(&p), "a").unwrap();
        assert_eq!(list(&rw(&p)).unwrap(), ["b"]);
        assert_eq!((read(&p, 0), read(&p, 1 << 20)), (3, 2));
        // qemu-img agrees: no leak, no error, the snapshots it lists.
        if let Some(out) = qemu_img(&["check", p.to_str().unwrap()]) {
            assert!(
                out.contains("No errors were found") && !out.contains("leaked"),
                "{out}"
            );
            let l = qemu_img(&["snapshot", "-l", p.to_str().unwrap()]).unwrap();
            assert!(l.contains(" b ") && !l.contains(" a "), "{l}");
        } else if std::env::var("CI").as_deref() == Ok("true") {
            panic!("qemu-img is missing");
        }
        delete(&rw(&p), "b").unwrap();
        if let Some(out) = qemu_img(&["check", p.to_str().unwrap()]) {
            assert!(
                out.contains("No errors were found") && !out.contains("leaked"),
                "{out}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
