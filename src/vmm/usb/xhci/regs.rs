//! The register map of BAR 0, as QEMU's `qemu-xhci` lays it out:
//! capability registers and extended capabilities at 0, operational
//! registers at 0x40 (ports from 0x440), runtime registers at 0x1000,
//! doorbells at 0x2000, the MSI-X table at 0x3000 and its PBA at 0x3800.

use super::rings::ERST_MAX_LOG2;

/// BAR 0's size.
pub const BAR_SIZE: u64 = 0x4000;

/// USB 2 root ports (1..=4), then as many USB 3 ports (5..=8).
pub const USB2_PORTS: usize = 4;
pub const USB3_PORTS: usize = 4;
pub const PORTS: usize = USB2_PORTS + USB3_PORTS;
/// Device slots.
pub const MAX_SLOTS: usize = 64;
/// Interrupters.
pub const MAX_INTERRUPTERS: u32 = 1;

pub const CAP_LENGTH: u64 = 0x40;
pub const OPERATIONAL: u64 = CAP_LENGTH;
pub const PORT_REGISTERS: u64 = OPERATIONAL + 0x400;
pub const PORT_STRIDE: u64 = 0x10;
pub const RUNTIME: u64 = 0x1000;
pub const INTERRUPTER0: u64 = RUNTIME + 0x20;
pub const DOORBELLS: u64 = 0x2000;
pub const MSIX_TABLE: u64 = 0x3000;
pub const MSIX_PBA: u64 = 0x3800;

/// Operational registers (offsets from OPERATIONAL).
pub const USBCMD: u64 = 0x00;
pub const USBSTS: u64 = 0x04;
pub const PAGESIZE: u64 = 0x08;
pub const DNCTRL: u64 = 0x14;
pub const CRCR_LO: u64 = 0x18;
pub const CRCR_HI: u64 = 0x1c;
pub const DCBAAP_LO: u64 = 0x30;
pub const DCBAAP_HI: u64 = 0x34;
pub const CONFIG: u64 = 0x38;

/// Interrupter registers (offsets from INTERRUPTER0).
pub const IMAN: u64 = 0x00;
pub const IMOD: u64 = 0x04;
pub const ERSTSZ: u64 = 0x08;
pub const ERSTBA_LO: u64 = 0x10;
pub const ERSTBA_HI: u64 = 0x14;
pub const ERDP_LO: u64 = 0x18;
pub const ERDP_HI: u64 = 0x1c;

pub const CMD_RUN: u32 = 1 << 0;
pub const CMD_HCRST: u32 = 1 << 1;
pub const CMD_INTE: u32 = 1 << 2;
/// Bits of USBCMD kept as written: RS, INTE, HSEE, EWE, EU3S.
pub const CMD_STORED: u32 = CMD_RUN | CMD_INTE | 1 << 3 | 1 << 10 | 1 << 11;
pub const STS_HCH: u32 = 1 << 0;
pub const STS_HSE: u32 = 1 << 2;
pub const STS_EINT: u32 = 1 << 3;
pub const STS_PCD: u32 = 1 << 4;
pub const STS_SRE: u32 = 1 << 10;
/// USBSTS bits the driver clears by writing 1.
pub const STS_WRITE_CLEAR: u32 = STS_HSE | STS_EINT | STS_PCD | STS_SRE;

pub const CRCR_RCS: u32 = 1 << 0;
pub const CRCR_CS: u32 = 1 << 1;
pub const CRCR_CA: u32 = 1 << 2;
pub const CRCR_CRR: u32 = 1 << 3;

/// A capability register (or extended capability) dword.
pub fn capability(off: u64) -> u32 {
    const USB_NAME: u32 = u32::from_le_bytes(*b"USB ");
    match off {
        // HCIVERSION 1.0, CAPLENGTH.
        0x00 => 0x0100 << 16 | CAP_LENGTH as u32,
        // HCSPARAMS1: ports, interrupters, slots.
        0x04 => (PORTS as u32) << 24 | MAX_INTERRUPTERS << 8 | MAX_SLOTS as u32,
        // HCSPARAMS2: ERST Max, IST of 15 (frames); no scratchpads.
        0x08 => ERST_MAX_LOG2 << 4 | 0xf,
        // HCSPARAMS3: no U1/U2 exit latency.
        0x0c => 0,
        // HCCPARAMS1: 64-bit addressing, 32-byte contexts, no port
        // power switching, no streams, extended capabilities at 0x20.
        0x10 => (0x20 >> 2) << 16 | 1,
        0x14 => DOORBELLS as u32,
        0x18 => RUNTIME as u32,
        // HCCPARAMS2: nothing optional.
        0x1c => 0,
        // Supported Protocol: USB 2.0 on ports 1..=4, next capability
        // four dwords on.
        0x20 => 0x0200 << 16 | 4 << 8 | 2,
        0x24 => USB_NAME,
        0x28 => (USB2_PORTS as u32) << 8 | 1,
        // Supported Protocol: USB 3.0 on ports 5..=8, the last one.
        0x30 => 0x0300 << 16 | 2,
        0x34 => USB_NAME,
        0x38 => (USB3_PORTS as u32) << 8 | (USB2_PORTS as u32 + 1),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_describe_the_layout() {
        assert_eq!(capability(0) & 0xff, 0x40);
        assert_eq!(capability(0) >> 16, 0x100);
        let hcs1 = capability(4);
        assert_eq!((hcs1 & 0xff, (hcs1 >> 8) & 0x7ff, hcs1 >> 24), (64, 1, 8));
        let hcc1 = capability(0x10);
        assert_eq!(hcc1 & 1, 1, "64-bit addressing");
        assert_eq!(hcc1 & 4, 0, "32-byte contexts");
        // Walk the extended capability list as a driver does.
        let mut at = u64::from(hcc1 >> 16) << 2;
        let mut protocols = Vec::new();
        loop {
            let head = capability(at);
            assert_eq!(head & 0xff, 2);
            let ports = capability(at + 8);
            protocols.push((head >> 24, ports & 0xff, (ports >> 8) & 0xff));
            let next = u64::from((head >> 8) & 0xff);
            if next == 0 {
                break;
            }
            at += next << 2;
        }
        assert_eq!(protocols, vec![(2, 1, 4), (3, 5, 4)]);
        assert_eq!(capability(0x14), 0x2000);
        assert_eq!(capability(0x18), 0x1000);
    }
}
