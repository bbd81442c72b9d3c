//! The host's end of a NIC's `stream` backend (frames each after its
//! length, 4 bytes big-endian): UDP datagrams to the test guest's echo
//! port and its answers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

pub const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x6f, 0x78, 0x08];
pub const HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
pub const GUEST_IP: [u8; 4] = [10, 0, 2, 15];
pub const HOST_IP: [u8; 4] = [10, 0, 2, 2];

/// Sends a UDP datagram to the guest's echo port (again every 500 ms)
/// until its echo comes back or `time` passes. `wire` needs a read
/// timeout.
pub fn udp_echo(wire: &mut UnixStream, payload: &[u8], time: Duration) -> bool {
    let frame = udp_frame(payload);
    let mut sent = Vec::with_capacity(frame.len() + 4);
    sent.extend_from_slice(&(frame.len() as u32).to_be_bytes());
    sent.extend_from_slice(&frame);
    let end = Instant::now() + time;
    while Instant::now() < end {
        if wire.write_all(&sent).is_err() {
            return false;
        }
        let resend = Instant::now() + Duration::from_millis(500);
        while Instant::now() < resend {
            let Some(f) = read_frame(wire) else {
                continue;
            };
            if echoed_payload(&f) == Some(payload) {
                return true;
            }
        }
    }
    false
}

/// An Ethernet frame carrying an IPv4 UDP datagram from the host to the
/// guest's port 7.
pub fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&HOST_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&HOST_IP);
    ip.extend_from_slice(&GUEST_IP);
    let sum = !ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .fold(0u32, |s, w| {
            let s = s + w;
            (s & 0xffff) + (s >> 16)
        }) as u16;
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&7u16.to_be_bytes());
    f.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// The payload of a UDP datagram from the guest's port 7, if `f` is one.
pub fn echoed_payload(f: &[u8]) -> Option<&[u8]> {
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return None;
    }
    let ihl = usize::from(f[14] & 0xf) * 4;
    let udp = f.get(14 + ihl..)?;
    if udp.len() < 8 || udp[0..2] != 7u16.to_be_bytes() {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    udp.get(8..len)
}

pub fn read_frame(s: &mut UnixStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut f).ok()?;
    Some(f)
}
