use super::*;

/// Ethernet + IPv4 (20 bytes) + TCP (20 bytes) or UDP (8 bytes) with
/// `payload`; checksums zero, as a driver hands them over.
fn ipv4_packet(tcp: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[6..12].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let l4_len = if tcp { 20 } else { 8 } + payload.len();
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = if tcp { 6 } else { 17 };
    ip[12..16].copy_from_slice(&[10, 0, 2, 15]);
    ip[16..20].copy_from_slice(&[10, 0, 2, 2]);
    f.extend_from_slice(&ip);
    if tcp {
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&80u16.to_be_bytes());
        t[4..8].copy_from_slice(&1000u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = TCP_PSH | TCP_FIN | 0x10;
        f.extend_from_slice(&t);
    } else {
        let mut u = [0u8; 8];
        u[0..2].copy_from_slice(&5000u16.to_be_bytes());
        u[2..4].copy_from_slice(&7u16.to_be_bytes());
        u[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&u);
    }
    f.extend_from_slice(payload);
    f
}

/// Sum of the IPv4 pseudo header for `frame` with L4 length `len` (0:
/// the length a TSO driver leaves out).
fn pseudo_sum(frame: &[u8], len: usize) -> u32 {
    let mut p = Vec::new();
    p.extend_from_slice(&frame[26..34]);
    p.extend_from_slice(&[0, frame[23]]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    sum16(&p)
}

fn ip_ok(frame: &[u8]) -> bool {
    ones_complement_add(sum16(&frame[14..34]), 0) == 0xffff
}

fn l4_ok(frame: &[u8]) -> bool {
    let len = frame.len() - 34;
    ones_complement_add(sum16(&frame[34..]), pseudo_sum(frame, len)) == 0xffff
}

fn ctx(tcp: bool) -> Context {
    Context {
        ipcss: 14,
        ipcso: 24,
        ipcse: 33,
        tucss: 34,
        tucso: if tcp { 50 } else { 40 },
        tucse: 0,
        ipv4: true,
        tcp,
        ..Context::default()
    }
}

#[test]
fn context_descriptor_fields() {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&[14, 24, 33, 0, 34, 50, 0, 0]);
    d[8..12].copy_from_slice(&(0x2f00_0000u32 | 4000).to_le_bytes());
    d[13] = 54;
    d[14..16].copy_from_slice(&1448u16.to_le_bytes());
    let c = Context::parse(&d);
    assert_eq!((c.ipcss, c.ipcso, c.ipcse), (14, 24, 33));
    assert_eq!((c.tucss, c.tucso, c.tucse), (34, 50, 0));
    assert_eq!((c.paylen, c.hdr_len, c.mss), (4000, 54, 1448));
    assert!(c.ipv4 && c.tcp);
}

#[test]
fn tcp_and_ip_checksums_on_the_pseudo_header_seed() {
    let mut f = ipv4_packet(true, b"hello, e1000");
    let len = f.len() - 34;
    let seed = ones_complement_add(pseudo_sum(&f, len), 0);
    f[50..52].copy_from_slice(&seed.to_be_bytes());
    checksum(&mut f, &ctx(true), POPTS_TXSM | POPTS_IXSM).unwrap();
    assert!(ip_ok(&f), "IP header checksum");
    assert!(l4_ok(&f), "TCP checksum");
}

#[test]
fn udp_checksum_and_odd_length() {
    let mut f = ipv4_packet(false, b"odd");
    let len = f.len() - 34;
    let seed = ones_complement_add(pseudo_sum(&f, len), 0);
    f[40..42].copy_from_slice(&seed.to_be_bytes());
    checksum(&mut f, &ctx(false), POPTS_TXSM).unwrap();
    assert!(l4_ok(&f));
    assert_ne!(u16::from_be_bytes([f[40], f[41]]), 0);
    // The IP header was not asked for.
    assert_eq!(&f[24..26], &[0, 0]);
}

#[test]
fn checksum_end_and_bad_offsets() {
    let mut f = vec![0x12u8, 0x34, 0, 0, 0x56, 0x78, 0xff];
    // Sum of bytes 0..=5 only.
    insert_checksum(&mut f, 0, 2, 5).unwrap();
    assert_eq!(u16::from_be_bytes([f[2], f[3]]), !(0x1234u16 + 0x5678));
    assert_eq!(
        insert_checksum(&mut f, 0, 6, 0),
        Err(OffloadError::BadOffsets)
    );
    assert_eq!(
        insert_checksum(&mut f, 9, 2, 0),
        Err(OffloadError::BadOffsets)
    );
    let big = Context {
        tucss: 200,
        tucso: 210,
        ..Context::default()
    };
    assert_eq!(
        checksum(&mut f, &big, POPTS_TXSM),
        Err(OffloadError::BadOffsets)
    );
}

#[test]
fn tso_segments_a_tcp_packet() {
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let mut p = ipv4_packet(true, &payload);
    // As Linux's driver prepares TSO: no total length, no IP checksum,
    // the pseudo-header sum without a length.
    p[16..18].copy_from_slice(&[0, 0]);
    let seed = ones_complement_add(pseudo_sum(&p, 0), 0);
    p[50..52].copy_from_slice(&seed.to_be_bytes());
    let c = Context {
        hdr_len: 54,
        mss: 1448,
        paylen: 3000,
        ..ctx(true)
    };
    let mut frames = Vec::new();
    let mut seg = Vec::new();
    segment(&p, &c, POPTS_TXSM | POPTS_IXSM, &mut seg, &mut |f| {
        frames.push(f.to_vec())
    })
    .unwrap();
    assert_eq!(frames.len(), 3);
    let mut got = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            usize::from(u16::from_be_bytes([f[16], f[17]])),
            f.len() - 14
        );
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 0x1234 + i as u16);
        let seq = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
        assert_eq!(seq, 1000 + 1448 * i as u32);
        let last = i == 2;
        assert_eq!(f[47] & (TCP_PSH | TCP_FIN) != 0, last, "flags of {i}");
        assert!(ip_ok(f), "IP checksum of {i}");
        assert!(l4_ok(f), "TCP checksum of {i}");
        got.extend_from_slice(&f[54..]);
    }
    assert_eq!(frames[0].len(), 54 + 1448);
    assert_eq!(frames[2].len(), 54 + 3000 - 2 * 1448);
    assert_eq!(got, payload);
}

#[test]
fn tso_refuses_nonsense() {
    let p = ipv4_packet(true, &[0; 100]);
    let mut seg = Vec::new();
    let mut none = |_: &[u8]| panic!("nothing may be sent");
    let zero_mss = Context {
        hdr_len: 54,
        ..ctx(true)
    };
    assert_eq!(
        segment(&p, &zero_mss, 0, &mut seg, &mut none),
        Err(OffloadError::BadSegmentation)
    );
    let long_header = Context {
        hdr_len: 255,
        mss: 100,
        ..ctx(true)
    };
    assert_eq!(
        segment(&p[..100], &long_header, 0, &mut seg, &mut none),
        Err(OffloadError::BadSegmentation)
    );
    let outside = Context {
        hdr_len: 20,
        mss: 100,
        tucss: 200,
        ..ctx(true)
    };
    assert_eq!(
        segment(&p, &outside, 0, &mut seg, &mut none),
        Err(OffloadError::BadOffsets)
    );
}
