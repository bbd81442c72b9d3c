//! The configuration space of ICH9's UHCI1-3 functions as QEMU's
//! `ich9-usb-uhci1..3` present them: 8086:2934/2935/2936 revision 3,
//! class 0x0C0300, subsystem 1af4:1100, the 32 bytes of registers in I/O
//! BAR 4, interrupt pins A/B/C; SBRN 0x10 at 0x60, the USB clock bit at
//! 0x6A, USBLEGSUP at 0xC0 (UHCI 1.1 section 5.2.1).

use super::regs::IO_SIZE;

const VENDOR_INTEL: u32 = 0x8086;
const CLASS_REVISION: u32 = 0x0c03_0003;
const SUBSYSTEM: u32 = 0x1100 << 16 | 0x1af4;
const BAR4: u16 = 0x20;
const BAR_IO: u32 = 1;
const SBRN: u16 = 0x60;
const USB_RELEASE_1: u32 = 0x10;
/// The USB clock selection QEMU sets (ICH-specific, byte 0x6A).
const USB_CLOCK: u16 = 0x68;
const USB_CLOCK_VALUE: u32 = 0x01 << 16;
const USBLEGSUP: u16 = 0xc0;
/// PIRQ enable, as after a reset.
const LEGSUP_DEFAULT: u16 = 0x2000;
/// Read-only, and write-1-to-clear status bits (which never get set: no
/// SMI is raised).
const LEGSUP_READ_ONLY: u16 = 0x5040;
const LEGSUP_WRITE_CLEAR: u16 = 0x8f00;
const CMD_IO: u32 = 1 << 0;
const CMD_MASK: u32 = 0x0547;

/// The three companions of ICH9's EHCI1: device IDs and interrupt pins.
pub const ICH9_COMPANIONS: [(u16, u8); 3] = [(0x2934, 1), (0x2935, 2), (0x2936, 3)];

/// One UHCI function's configuration registers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UhciConfigSpace {
    device: u16,
    pin: u8,
    command: u32,
    /// All 32 bits are writable, as on QEMU, so that sizing reads back
    /// the mask; the BAR decodes ports only below 64 KiB.
    io_base: u32,
    irq_line: u8,
    legsup: u16,
}

impl UhciConfigSpace {
    /// Device `device` with interrupt pin `pin` (1 = A), registers at
    /// I/O port `io_base` with decoding on (the VMM places the BAR).
    pub fn new(device: u16, pin: u8, io_base: u16, irq_line: u8) -> UhciConfigSpace {
        UhciConfigSpace {
            device,
            pin,
            command: CMD_IO | 1 << 2,
            io_base: u32::from(io_base) & !(IO_SIZE as u32 - 1),
            irq_line,
            legsup: LEGSUP_DEFAULT,
        }
    }

    pub fn read(&self, reg: u16) -> u32 {
        match reg {
            0x00 => u32::from(self.device) << 16 | VENDOR_INTEL,
            0x04 => self.command,
            0x08 => CLASS_REVISION,
            BAR4 => self.io_base | BAR_IO,
            0x2c => SUBSYSTEM,
            0x3c => u32::from(self.pin) << 8 | u32::from(self.irq_line),
            SBRN => USB_RELEASE_1,
            USB_CLOCK => USB_CLOCK_VALUE,
            USBLEGSUP => u32::from(self.legsup),
            _ => 0,
        }
    }

    pub fn write(&mut self, reg: u16, v: u32) {
        match reg {
            0x04 => self.command = v & CMD_MASK,
            BAR4 => self.io_base = v & !(IO_SIZE as u32 - 1),
            0x3c => self.irq_line = v as u8,
            USBLEGSUP => {
                let writable = !(LEGSUP_READ_ONLY | LEGSUP_WRITE_CLEAR);
                self.legsup = (self.legsup & !writable) | (v as u16 & writable);
            }
            _ => {}
        }
    }

    /// The offset in the I/O BAR of port `port`, if the BAR decodes it.
    pub fn io_offset(&self, port: u64) -> Option<u64> {
        let off = port.checked_sub(u64::from(self.io_base))?;
        let placed = self.io_base != 0 && self.io_base <= 0xffff;
        (self.command & CMD_IO != 0 && placed && off < IO_SIZE).then_some(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_bar_and_legsup() {
        let (device, pin) = ICH9_COMPANIONS[1];
        let mut c = UhciConfigSpace::new(device, pin, 0xc020, 18);
        assert_eq!(c.read(0), 0x2935_8086);
        assert_eq!(c.read(8) >> 8, 0x0c0300);
        assert_eq!(c.read(0x20), 0xc021);
        assert_eq!(c.read(0x3c), 0x0212);
        assert_eq!(c.read(0x60) & 0xff, 0x10);
        assert_eq!(c.read(0xc0), 0x2000);
        c.write(0x20, 0xffff_ffff);
        assert_eq!(c.read(0x20), 0xffff_ffe1, "32 bytes of I/O");
        assert_eq!(c.io_offset(0xffff_ffe0), None, "beyond the I/O space");
        c.write(0x20, 0xc040);
        assert_eq!(c.io_offset(0xc052), Some(0x12));
        assert_eq!(c.io_offset(0xc060), None);
        // SeaBIOS and Linux write the status bits to clear them.
        c.write(0xc0, 0x8f00);
        assert_eq!(c.read(0xc0), 0);
        c.write(0xc0, 0x2000);
        assert_eq!(c.read(0xc0), 0x2000);
        c.write(4, 0);
        assert_eq!(c.io_offset(0xc052), None, "I/O decoding off");
    }
}
