//! virtio-scsi requests played through a real ring: addressing, data-in,
//! sense, overrun, refused data-out, short or hostile chains, and the
//! control queue.

use std::fs::File;
use std::sync::{Arc, Mutex};

use virtio_queue::QueueOwnedT;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::vmm::memory::GuestMemory;
use crate::vmm::storage::cdrom::Media;
use crate::vmm::storage::mmc::INTERFACE_SCSI;
use crate::vmm::virtio::fuzz::{blk_queue, guest};
use crate::vmm::virtio::test_ring::{NEXT, WRITE, desc, publish};

const READABLE: u64 = 0x10000;
const WRITABLE: u64 = 0x40000;
const SIZES: Sizes = Sizes { cdb: 32, sense: 96 };
const RESP: usize = RESP_HEADER + 96;

/// A drive at target 0 holding a 16-block image (block N filled with N),
/// and an empty one at target 2.
fn targets() -> (Vec<Target>, std::path::PathBuf) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("oxvirt-scsi-{}-{n}.iso", std::process::id()));
    let bytes: Vec<u8> = (0..16u8)
        .flat_map(|b| std::iter::repeat_n(b, 2048))
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let media = Media::new(File::open(&path).unwrap()).unwrap();
    let t = vec![
        Target {
            target: 0,
            unit: Arc::new(Mutex::new(Cdrom::new("a", INTERFACE_SCSI, Some(media)))),
        },
        Target {
            target: 2,
            unit: Arc::new(Mutex::new(Cdrom::new("b", INTERFACE_SCSI, None))),
        },
    ];
    (t, path)
}

/// Puts one chain (readable buffers, then writable ones of the given
/// lengths) on a fresh queue and serves it with `serve`; returns the used
/// length and the writable buffers' contents.
fn exchange(
    mem: &GuestMemory,
    readable: &[Vec<u8>],
    writable: &[u32],
    serve: &dyn Fn(&GuestMemory, DescriptorChain<&GuestMemory>) -> u32,
) -> (u32, Vec<Vec<u8>>) {
    let mut q = blk_queue(mem);
    let total = readable.len() + writable.len();
    let mut i = 0u16;
    for (n, r) in readable.iter().enumerate() {
        let at = READABLE + n as u64 * 0x4000;
        mem.write_slice(r, GuestAddress(at)).unwrap();
        let flags = if usize::from(i) + 1 < total { NEXT } else { 0 };
        desc(mem, i, at, r.len() as u32, flags, i + 1);
        i += 1;
    }
    for (n, &len) in writable.iter().enumerate() {
        let at = WRITABLE + n as u64 * 0x10000;
        mem.write_slice(&vec![0xee; len as usize], GuestAddress(at))
            .unwrap();
        let flags = WRITE | if usize::from(i) + 1 < total { NEXT } else { 0 };
        desc(mem, i, at, len, flags, i + 1);
        i += 1;
    }
    publish(mem, &[0]);
    let chain = q.iter(mem).unwrap().next().unwrap();
    let used = serve(mem, chain);
    let out = writable
        .iter()
        .enumerate()
        .map(|(n, &len)| {
            let mut b = vec![0u8; len as usize];
            mem.read_slice(&mut b, GuestAddress(WRITABLE + n as u64 * 0x10000))
                .unwrap();
            b
        })
        .collect();
    (used, out)
}

/// A command request header for `target`/`lun` with `cdb`.
fn request(target: u8, lun: u16, cdb: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; CMD_HEADER + 32];
    r[0] = 1;
    r[1] = target;
    r[2] = (lun >> 8) as u8 | if lun > 0 { 0x40 } else { 0 };
    r[3] = lun as u8;
    r[CMD_HEADER..CMD_HEADER + cdb.len()].copy_from_slice(cdb);
    r
}

struct Resp {
    sense_len: u32,
    resid: u32,
    status: u8,
    response: u8,
    sense: Vec<u8>,
}

fn resp(b: &[u8]) -> Resp {
    let word = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    Resp {
        sense_len: word(0),
        resid: word(4),
        status: b[10],
        response: b[11],
        sense: b[RESP_HEADER..].to_vec(),
    }
}

fn cmd(t: &[Target], readable: &[Vec<u8>], writable: &[u32]) -> (u32, Vec<Vec<u8>>) {
    let mem = guest();
    exchange(&mem, readable, writable, &|m, c| command(m, c, SIZES, t))
}

#[test]
fn inquiry_and_reads_through_the_ring() {
    let (t, path) = targets();
    let (used, w) = cmd(
        &t,
        &[request(0, 0, &[0x12, 0, 0, 0, 96, 0])],
        &[RESP as u32, 96],
    );
    let r = resp(&w[0]);
    assert_eq!((r.response, r.status, r.resid), (0, 0, 60));
    assert_eq!(used as usize, RESP + 36);
    assert_eq!(&w[1][8..14], b"OXVIRT");
    // Response and data in one descriptor work too.
    let read = [0x28, 0, 0, 0, 0, 3, 0, 0, 2, 0];
    let (used, w) = cmd(&t, &[request(0, 0, &read)], &[(RESP + 4096) as u32]);
    assert_eq!(used as usize, RESP + 4096);
    assert_eq!(resp(&w[0]).resid, 0);
    assert_eq!((w[0][RESP], w[0][RESP + 2048]), (3, 4));
    // A buffer too short for the transfer: overrun.
    let (_, w) = cmd(&t, &[request(0, 0, &read)], &[RESP as u32, 2048]);
    assert_eq!(resp(&w[0]).response, VIRTIO_SCSI_S_OVERRUN as u8);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn sense_is_returned_with_check_condition() {
    let (t, path) = targets();
    let (used, w) = cmd(&t, &[request(2, 0, &[0; 6])], &[RESP as u32]);
    let r = resp(&w[0]);
    assert_eq!((r.response, r.status, r.sense_len), (0, 2, 18));
    assert_eq!((r.sense[2], r.sense[12]), (2, 0x3a));
    assert_eq!(used as usize, RESP);
    // A driver that set a smaller sense size gets that much.
    let small = Sizes { cdb: 16, sense: 8 };
    let mut req = request(2, 0, &[0; 6]);
    req.truncate(CMD_HEADER + 16);
    let mem = guest();
    let (_, w) = exchange(&mem, &[req], &[20], &|m, c| command(m, c, small, &t));
    assert_eq!(resp(&w[0]).sense_len, 8);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn addressing_targets_and_luns() {
    let (t, path) = targets();
    let bad = |req: Vec<u8>| resp(&cmd(&t, &[req], &[RESP as u32]).1[0]).response;
    assert_eq!(bad(request(1, 0, &[0; 6])), VIRTIO_SCSI_S_BAD_TARGET as u8);
    assert_eq!(
        bad(request(255, 0, &[0; 6])),
        VIRTIO_SCSI_S_BAD_TARGET as u8
    );
    let mut wrong_form = request(0, 0, &[0; 6]);
    wrong_form[0] = 2;
    assert_eq!(bad(wrong_form), VIRTIO_SCSI_S_BAD_TARGET as u8);
    let mut wrong_lun_form = request(0, 0, &[0; 6]);
    wrong_lun_form[2] = 0x80;
    assert_eq!(bad(wrong_lun_form), VIRTIO_SCSI_S_BAD_TARGET as u8);
    // LUN 1 of a drive's target: nothing there.
    let (_, w) = cmd(
        &t,
        &[request(0, 1, &[0x12, 0, 0, 0, 36, 0])],
        &[RESP as u32, 36],
    );
    assert_eq!((resp(&w[0]).status, w[1][0]), (0, 0x7f));
    let (_, w) = cmd(&t, &[request(0, 1, &[0; 6])], &[RESP as u32]);
    let r = resp(&w[0]);
    assert_eq!((r.status, r.sense[12]), (2, 0x25));
    let luns = [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0];
    let (_, w) = cmd(&t, &[request(0, 7, &luns)], &[RESP as u32, 16]);
    assert_eq!(w[1][3], 8);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn data_out_and_short_chains_are_refused() {
    let (t, path) = targets();
    let write = [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    let (_, w) = cmd(&t, &[request(0, 0, &write), vec![0; 2048]], &[RESP as u32]);
    let r = resp(&w[0]);
    assert_eq!((r.status, r.sense[2], r.sense[12]), (2, 7, 0x27));
    // A request header cut short: failure, nothing executed.
    let (used, w) = cmd(&t, &[vec![1, 0, 0, 0]], &[RESP as u32]);
    assert_eq!((used as usize, resp(&w[0]).response), (RESP, 9));
    // No room for the response: completed with length 0, untouched.
    let (used, w) = cmd(&t, &[request(0, 0, &[0; 6])], &[RESP as u32 - 1]);
    assert_eq!(used, 0);
    assert!(w[0].iter().all(|&b| b == 0xee));
    std::fs::remove_file(path).unwrap();
}

fn ctrl(t: &[Target], req: Vec<u8>, resp_len: u32) -> (u32, Vec<u8>) {
    let mem = guest();
    let (n, w) = exchange(&mem, &[req], &[resp_len], &|m, c| control(m, c, t));
    (n, w.into_iter().next().unwrap())
}

fn tmf(subtype: u32, target: u8, lun: u8) -> Vec<u8> {
    let mut r = vec![0u8; TMF_LEN];
    r[4..8].copy_from_slice(&subtype.to_le_bytes());
    r[8] = 1;
    r[9] = target;
    r[11] = lun;
    r
}

#[test]
fn control_queue_requests() {
    let (t, path) = targets();
    let (n, r) = ctrl(&t, tmf(VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET, 0, 0), 1);
    assert_eq!((n, r[0]), (1, 0));
    // The reset shows as a unit attention on the next command.
    let (_, w) = cmd(&t, &[request(0, 0, &[0; 6])], &[RESP as u32]);
    assert_eq!(resp(&w[0]).sense[12], 0x29);
    assert_eq!(ctrl(&t, tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 0), 1).1[0], 0);
    assert_eq!(
        ctrl(&t, tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 9, 0), 1).1[0],
        VIRTIO_SCSI_S_BAD_TARGET as u8
    );
    assert_eq!(
        ctrl(&t, tmf(VIRTIO_SCSI_T_TMF_ABORT_TASK, 0, 3), 1).1[0],
        VIRTIO_SCSI_S_INCORRECT_LUN as u8
    );
    assert_eq!(
        ctrl(&t, tmf(VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET, 2, 3), 1).1[0],
        0
    );
    assert_eq!(
        ctrl(&t, tmf(2, 0, 0), 1).1[0],
        VIRTIO_SCSI_S_FUNCTION_REJECTED as u8
    );
    let mut an = vec![0u8; AN_LEN];
    an[0] = VIRTIO_SCSI_T_AN_QUERY as u8;
    an[4] = 1;
    let (n, r) = ctrl(&t, an, 8);
    assert_eq!((n, &r[..5]), (5, &[0u8, 0, 0, 0, 0][..]));
    // Unknown type, short TMF: failure; no room at all: length 0.
    assert_eq!(
        ctrl(&t, vec![7, 0, 0, 0], 1).1[0],
        VIRTIO_SCSI_S_FAILURE as u8
    );
    assert_eq!(ctrl(&t, tmf(0, 0, 0)[..10].to_vec(), 1).1[0], 9);
    assert_eq!(ctrl(&t, tmf(0, 0, 0), 0).0, 0);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn random_requests_never_panic() {
    let (t, path) = targets();
    let mem = guest();
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for i in 0..3000 {
        let mut req: Vec<u8> = (0..(next() % 80) as usize).map(|_| next() as u8).collect();
        if i % 2 == 0 && req.len() > CMD_HEADER {
            // Mostly well-addressed, so commands reach the drive.
            req[0] = 1;
            req[1] = [0, 2][i % 4 / 2];
            req[2] = 0;
            req[3] = 0;
            req[CMD_HEADER] = [0x28, 0xa8, 0x12, 0x43, 0x46, 0x4a, 0x5a][i % 7];
        }
        let wlen = [(next() % 300) as u32, (next() % 9000) as u32];
        let (used, _) = exchange(&mem, &[req.clone()], &wlen, &|m, c| {
            command(m, c, SIZES, &t)
        });
        assert!(used <= wlen[0] + wlen[1]);
        let (used, _) = exchange(&mem, &[req], &wlen[..1], &|m, c| control(m, c, &t));
        assert!(used <= wlen[0]);
    }
    std::fs::remove_file(path).unwrap();
}
