//! A driver gone wild: random register writes (the rings' registers,
//! controls, interrupt causes, the EEPROM and PHY interfaces, any
//! offset), random descriptors pointing anywhere, random frames. The
//! device must never panic, and a reset must bring it back.

use vm_memory::{Bytes, GuestAddress};

use super::regs::*;
use super::rx::deliver;
use super::test_rig::{MAC, MEM, RX_RING, TX_RING, rig};
use super::tx::{Outbox, process};

/// Registers a driver touches most.
const HOT: [u32; 22] = [
    CTRL,
    EECD,
    EERD,
    MDIC,
    ICR,
    ICS,
    IMS,
    IMC,
    RCTL,
    TCTL,
    RDBAL,
    RDBAH,
    RDLEN,
    RDH,
    RDT,
    TDBAL,
    TDBAH,
    TDLEN,
    TDH,
    TDT,
    RA + 4,
    VET,
];

#[test]
fn random_registers_descriptors_and_frames_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    // A 64-bit LCG, high bits out: reproducible, enough for this.
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 16
    };
    for _ in 0..1000 {
        let mut r = rig();
        r.tx_ring(8);
        r.rx_ring(8, RCTL_BAM | RCTL_UPE);
        // Descriptors: half pointing into guest memory, half anywhere.
        for ring in [TX_RING, RX_RING] {
            for i in 0..8u64 {
                let mut d = [0u8; 16];
                for b in d.iter_mut() {
                    *b = next() as u8;
                }
                let addr = if next() % 2 == 0 {
                    next() % MEM
                } else {
                    next()
                };
                d[..8].copy_from_slice(&addr.to_le_bytes());
                r.mem.write_slice(&d, GuestAddress(ring + 16 * i)).unwrap();
            }
        }
        let mut out = Outbox::default();
        let mut scratch = Vec::new();
        for _ in 0..128 {
            match next() % 5 {
                0 => {
                    let off = HOT[(next() % HOT.len() as u64) as usize];
                    let v = if next() % 2 == 0 { next() % 32 } else { next() };
                    r.dev.write(off, v as u32);
                }
                1 => {
                    let off = (next() % u64::from(PBM_END + 0x100)) as u32 & !3;
                    r.dev.write(off, next() as u32);
                }
                2 => {
                    out.clear();
                    process(&mut r.dev, &r.mem, &mut out, 64);
                }
                3 => {
                    let len = (next() % 3000) as usize;
                    let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                    if len >= 6 && next() % 2 == 0 {
                        f[..6].copy_from_slice(&MAC);
                    }
                    deliver(&mut r.dev, &r.mem, &f, &mut scratch);
                }
                _ => {
                    let off = HOT[(next() % HOT.len() as u64) as usize];
                    r.dev.read(off);
                }
            }
        }
        // Still a device: a reset brings the link back.
        r.dev.write(CTRL, CTRL_RST);
        assert_ne!(r.dev.read(STATUS) & STATUS_LU, 0);
    }
}
