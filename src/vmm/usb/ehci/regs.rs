//! BAR 0 of ICH9's EHCI (EHCI 1.0 chapter 2, with the values QEMU's
//! `ich9-usb-ehci1` gives): capability registers at 0, operational
//! registers at CAPLENGTH 0x20, the port registers from 0x64.

/// BAR 0's size.
pub const BAR_SIZE: u64 = 0x1000;
/// Root ports.
pub const PORTS: usize = 6;
/// Ports per companion controller, and the companions (UHCI1-3).
pub const PORTS_PER_COMPANION: usize = 2;
pub const COMPANIONS: usize = 3;

pub const CAP_LENGTH: u64 = 0x20;
/// Where the USB legacy support extended capability sits in PCI
/// configuration space (HCCPARAMS.EECP).
pub const EECP: u32 = 0x68;

/// Operational registers, as offsets from CAP_LENGTH.
pub const USBCMD: u64 = 0x00;
pub const USBSTS: u64 = 0x04;
pub const USBINTR: u64 = 0x08;
pub const FRINDEX: u64 = 0x0c;
pub const CTRLDSSEGMENT: u64 = 0x10;
pub const PERIODICLISTBASE: u64 = 0x14;
pub const ASYNCLISTADDR: u64 = 0x18;
pub const CONFIGFLAG: u64 = 0x40;
pub const PORTSC0: u64 = 0x44;

pub const CMD_RUN: u32 = 1 << 0;
pub const CMD_HCRESET: u32 = 1 << 1;
pub const CMD_PSE: u32 = 1 << 4;
pub const CMD_ASE: u32 = 1 << 5;
pub const CMD_IAAD: u32 = 1 << 6;
/// Interrupt threshold control: 8 microframes after reset.
pub const CMD_ITC_SHIFT: u32 = 16;
pub const CMD_ITC_MASK: u32 = 0xff << CMD_ITC_SHIFT;
/// What USBCMD keeps: RS, the schedule enables, the threshold. The frame
/// list size is fixed at 1024 (no programmable list), light reset and
/// asynchronous park are not offered.
pub const CMD_STORED: u32 = CMD_RUN | CMD_PSE | CMD_ASE | CMD_ITC_MASK;

pub const STS_INT: u32 = 1 << 0;
pub const STS_ERRINT: u32 = 1 << 1;
pub const STS_PCD: u32 = 1 << 2;
pub const STS_FLR: u32 = 1 << 3;
pub const STS_HSE: u32 = 1 << 4;
pub const STS_IAA: u32 = 1 << 5;
pub const STS_HALTED: u32 = 1 << 12;
pub const STS_PSS: u32 = 1 << 14;
pub const STS_ASS: u32 = 1 << 15;
/// The interrupt causes: write 1 to clear, enabled by the same USBINTR
/// bits.
pub const STS_CAUSES: u32 = 0x3f;

/// Microframes in FRINDEX (14 bits); its frame list index rolls over
/// every 1024 frames.
pub const FRINDEX_MASK: u32 = 0x3fff;
pub const FRAME_LIST_ROLLOVER: u64 = 0x2000;
pub const FRAME_LIST_ENTRIES: u32 = 1024;

/// A capability register dword. `companions`: whether UHCI companions
/// take the ports the EHCI gives up (N_CC 3 of N_PCC 2 ports each).
pub fn capability(off: u64, companions: bool) -> u32 {
    match off {
        // HCIVERSION 1.00, CAPLENGTH.
        0x00 => 0x0100 << 16 | CAP_LENGTH as u32,
        // HCSPARAMS: N_CC, N_PCC, no port power control, N_PORTS.
        0x04 if companions => {
            (COMPANIONS as u32) << 12 | (PORTS_PER_COMPANION as u32) << 8 | PORTS as u32
        }
        0x04 => PORTS as u32,
        // HCCPARAMS: EECP, an isochronous threshold of a whole frame;
        // 32-bit addressing, a fixed 1024-entry frame list, no park.
        0x08 => EECP << 8 | 0x80,
        // HCSP-PORTROUTE: ports go to companions in order.
        _ => 0,
    }
}

/// Port status and control (EHCI 1.0 section 2.3.9).
pub mod portsc {
    pub const CONNECT: u32 = 1 << 0;
    pub const CSC: u32 = 1 << 1;
    pub const PED: u32 = 1 << 2;
    pub const PEDC: u32 = 1 << 3;
    pub const OCC: u32 = 1 << 5;
    pub const FPR: u32 = 1 << 6;
    pub const SUSPEND: u32 = 1 << 7;
    pub const RESET: u32 = 1 << 8;
    pub const POWER: u32 = 1 << 12;
    pub const OWNER: u32 = 1 << 13;
    /// Write 1 to clear.
    pub const CHANGES: u32 = CSC | PEDC | OCC;
    /// Kept as written: resume, suspend, reset and the wake enables
    /// (connect, disconnect, over-current).
    pub const STORED: u32 = FPR | SUSPEND | RESET | 0x7 << 20;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_ich9s() {
        assert_eq!(capability(0, true), 0x0100_0020);
        assert_eq!(capability(4, true), 0x3206);
        assert_eq!(capability(4, false), 6);
        assert_eq!(capability(8, true), 0x6880);
        assert_eq!(capability(0xc, true), 0);
    }
}
