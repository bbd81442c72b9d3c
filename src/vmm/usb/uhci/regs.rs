//! The 32 bytes of a UHCI controller's I/O space (UHCI 1.1 chapter 2)
//! and the bits of its registers.

/// BAR 4's size.
pub const IO_SIZE: u64 = 0x20;
/// Root ports.
pub const PORTS: usize = 2;

pub const USBCMD: u64 = 0x00;
pub const USBSTS: u64 = 0x02;
pub const USBINTR: u64 = 0x04;
pub const FRNUM: u64 = 0x06;
pub const FLBASEADD: u64 = 0x08;
pub const FLBASEADD_HIGH: u64 = 0x0a;
pub const SOFMOD: u64 = 0x0c;
pub const PORTSC1: u64 = 0x10;
/// Where port registers would be; those past the last port read as a
/// port that is not there (bit 7 clear), which is how drivers count.
pub const PORT_AREA_END: u64 = 0x20;
pub const ABSENT_PORT: u16 = 0xff7f;

pub const CMD_RUN: u16 = 1 << 0;
pub const CMD_HCRESET: u16 = 1 << 1;
pub const CMD_GRESET: u16 = 1 << 2;
pub const CMD_EGSM: u16 = 1 << 3;
pub const CMD_FGR: u16 = 1 << 4;

pub const STS_USBINT: u16 = 1 << 0;
pub const STS_ERROR: u16 = 1 << 1;
pub const STS_RESUME: u16 = 1 << 2;
pub const STS_HOST_ERROR: u16 = 1 << 3;
pub const STS_PROCESS_ERROR: u16 = 1 << 4;
pub const STS_HALTED: u16 = 1 << 5;
/// Write 1 to clear.
pub const STS_WRITE_CLEAR: u16 = 0x3f;

pub const INTR_TIMEOUT_CRC: u16 = 1 << 0;
pub const INTR_RESUME: u16 = 1 << 1;
pub const INTR_IOC: u16 = 1 << 2;
pub const INTR_SHORT: u16 = 1 << 3;

pub const FRNUM_MASK: u16 = 0x7ff;
pub const FRAME_LIST_ENTRIES: u64 = 1024;
pub const DEFAULT_SOFMOD: u8 = 64;

/// Port status and control.
pub mod portsc {
    pub const CCS: u16 = 1 << 0;
    pub const CSC: u16 = 1 << 1;
    pub const PE: u16 = 1 << 2;
    pub const PEC: u16 = 1 << 3;
    pub const RESUME_DETECT: u16 = 1 << 6;
    /// Reserved, always reads 1.
    pub const ALWAYS: u16 = 1 << 7;
    pub const RESET: u16 = 1 << 9;
    pub const SUSPEND: u16 = 1 << 12;
    /// Bits the driver cannot write: connect status and change, enable
    /// change, line status, bit 7, low-speed device attached.
    pub const READ_ONLY: u16 = 0x1bb;
    pub const WRITE_CLEAR: u16 = CSC | PEC;
}
