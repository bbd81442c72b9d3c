//! Transmit offloads done for the guest: Internet checksums at the
//! offsets a context (or legacy) descriptor names, and TCP segmentation
//! (TSO) of a packet into frames of at most MSS payload bytes. Pure
//! functions on frame bytes; a packet whose offsets do not fit is
//! refused, never indexed out of bounds.

/// POPTS bits of a data descriptor: insert the IP / TCP-UDP checksum.
pub const POPTS_IXSM: u8 = 1 << 0;
pub const POPTS_TXSM: u8 = 1 << 1;

/// A context descriptor's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Context {
    pub ipcss: u8,
    pub ipcso: u8,
    pub ipcse: u16,
    pub tucss: u8,
    pub tucso: u8,
    pub tucse: u16,
    pub paylen: u32,
    pub hdr_len: u8,
    pub mss: u16,
    /// TUCMD.IP: the packet is IPv4 (else IPv6).
    pub ipv4: bool,
    /// TUCMD.TCP: the L4 protocol is TCP (else UDP).
    pub tcp: bool,
}

/// TUCMD bits in a context descriptor's third dword.
const TUCMD_TCP: u32 = 1 << 24;
const TUCMD_IP: u32 = 1 << 25;

impl Context {
    /// Reads a context descriptor.
    pub fn parse(d: &[u8; 16]) -> Context {
        let cmd = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        Context {
            ipcss: d[0],
            ipcso: d[1],
            ipcse: u16::from_le_bytes([d[2], d[3]]),
            tucss: d[4],
            tucso: d[5],
            tucse: u16::from_le_bytes([d[6], d[7]]),
            paylen: cmd & 0xf_ffff,
            hdr_len: d[13],
            mss: u16::from_le_bytes([d[14], d[15]]),
            ipv4: cmd & TUCMD_IP != 0,
            tcp: cmd & TUCMD_TCP != 0,
        }
    }
}

/// Why a packet could not be sent as asked.
#[derive(Debug, PartialEq, Eq)]
pub enum OffloadError {
    /// A checksum, length or header field lies outside the packet.
    BadOffsets,
    /// TSO with no header or a zero MSS.
    BadSegmentation,
}

fn get16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

fn put16(buf: &mut [u8], at: usize, v: u16) -> Result<(), OffloadError> {
    buf.get_mut(at..at + 2)
        .ok_or(OffloadError::BadOffsets)?
        .copy_from_slice(&v.to_be_bytes());
    Ok(())
}

fn ones_complement_add(a: u32, b: u32) -> u16 {
    let mut s = a + b;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Sum of `data` as big-endian 16-bit words (an odd byte padded).
fn sum16(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut s: u64 = chunks
        .by_ref()
        .map(|c| u64::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u64::from(*last) << 8;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u32
}

/// Writes at `at` the Internet checksum of `frame[start..=end]` (`end` 0
/// or past the frame: to its end), the field's present value (a
/// pseudo-header sum the driver seeded) included. A result of 0 is
/// written as 0xFFFF, which UDP needs and TCP and IP accept.
pub fn insert_checksum(
    frame: &mut [u8],
    start: usize,
    at: usize,
    end: usize,
) -> Result<(), OffloadError> {
    let stop = if end != 0 && end < frame.len() {
        end + 1
    } else {
        frame.len()
    };
    if start >= stop || at + 2 > stop || at < start {
        return Err(OffloadError::BadOffsets);
    }
    let c = !ones_complement_add(sum16(&frame[start..stop]), 0);
    put16(frame, at, if c == 0 { 0xffff } else { c })
}

/// The checksums a non-TSO packet asks for (`popts` of its first data
/// descriptor).
pub fn checksum(frame: &mut [u8], ctx: &Context, popts: u8) -> Result<(), OffloadError> {
    if popts & POPTS_TXSM != 0 {
        let (s, o, e) = (ctx.tucss, ctx.tucso, ctx.tucse);
        insert_checksum(frame, s.into(), o.into(), e.into())?;
    }
    if popts & POPTS_IXSM != 0 {
        let (s, o, e) = (ctx.ipcss, ctx.ipcso, ctx.ipcse);
        insert_checksum(frame, s.into(), o.into(), e.into())?;
    }
    Ok(())
}

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const IPV6_HEADER: usize = 40;

/// Splits a TSO packet (`ctx.hdr_len` header bytes, then the payload)
/// into frames of the header and at most `ctx.mss` payload bytes. In
/// each: the IPv4 total length and id (+ segment number) or the IPv6
/// payload length; the TCP sequence number (+ bytes before it), FIN and
/// PSH only in the last; or the UDP length; then the checksums `popts`
/// asks for, the L4 one on the driver's pseudo-header sum plus the
/// segment's L4 length. Each frame goes to `out`.
pub fn segment(
    packet: &[u8],
    ctx: &Context,
    popts: u8,
    seg: &mut Vec<u8>,
    out: &mut dyn FnMut(&[u8]),
) -> Result<(), OffloadError> {
    let hdr = usize::from(ctx.hdr_len);
    let mss = usize::from(ctx.mss);
    if hdr == 0 || mss == 0 || hdr > packet.len() {
        return Err(OffloadError::BadSegmentation);
    }
    let (header, payload) = packet.split_at(hdr);
    let (ip, l4) = (usize::from(ctx.ipcss), usize::from(ctx.tucss));
    let bad = || OffloadError::BadOffsets;
    let seed = get16(header, usize::from(ctx.tucso));
    let id = get16(header, ip + 4).ok_or_else(bad)?;
    let seq = match header.get(l4 + 4..l4 + 8) {
        Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        None if !ctx.tcp => 0,
        None => return Err(bad()),
    };
    let chunks = payload.chunks(mss).count().max(1);
    let empty: &[u8] = &[];
    let pieces = payload
        .chunks(mss)
        .chain((payload.is_empty()).then_some(empty));
    for (i, chunk) in pieces.enumerate() {
        seg.clear();
        seg.extend_from_slice(header);
        seg.extend_from_slice(chunk);
        let len = seg.len();
        if ctx.ipv4 {
            put16(seg, ip + 2, (len - ip) as u16)?;
            put16(seg, ip + 4, id.wrapping_add(i as u16))?;
        } else {
            let payload_len = len.checked_sub(ip + IPV6_HEADER);
            put16(seg, ip + 4, payload_len.ok_or_else(bad)? as u16)?;
        }
        let l4_len = len.checked_sub(l4).ok_or_else(bad)?;
        if ctx.tcp {
            let s = seq.wrapping_add((i * mss) as u32);
            seg.get_mut(l4 + 4..l4 + 8)
                .ok_or_else(bad)?
                .copy_from_slice(&s.to_be_bytes());
            if i + 1 < chunks {
                let flags = seg.get_mut(l4 + 13).ok_or_else(bad)?;
                *flags &= !(TCP_FIN | TCP_PSH);
            }
        } else {
            put16(seg, l4 + 4, l4_len as u16)?;
        }
        if popts & POPTS_TXSM != 0 {
            let seed = seed.ok_or_else(bad)?;
            let at = usize::from(ctx.tucso);
            put16(seg, at, ones_complement_add(seed.into(), l4_len as u32))?;
        }
        checksum(seg, ctx, popts)?;
        out(seg);
    }
    Ok(())
}

#[cfg(test)]
#[path = "offload_tests.rs"]
mod tests;
