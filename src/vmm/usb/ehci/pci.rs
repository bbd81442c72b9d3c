//! The configuration space of ICH9's EHCI1 function as QEMU's
//! `ich9-usb-ehci1` presents it: 8086:293A revision 3, class 0x0C0320,
//! subsystem 1af4:1100, BAR 0 a 32-bit 4 KiB memory BAR, interrupt pin
//! D, no capability list (no MSI); SBRN 0x20 and FLADJ 0x20 at 0x60,
//! and the USB legacy support extended capability at EECP 0x68 with
//! the BIOS owning nothing.

use super::regs::{BAR_SIZE, EECP};

const ID: u32 = 0x293a << 16 | 0x8086;
const CLASS_REVISION: u32 = 0x0c03_2003;
const SUBSYSTEM: u32 = 0x1100 << 16 | 0x1af4;
const BAR0: u16 = 0x10;
/// Interrupt pin D.
pub const INTERRUPT_PIN: u8 = 4;
/// Serial bus release (USB 2.0), frame length adjustment, port wake
/// capability.
const SBRN_FLADJ: u16 = 0x60;
const SBRN: u32 = 0x20;
const DEFAULT_FLADJ: u8 = 0x20;
/// USBLEGSUP (capability ID 1, BIOS and OS owned semaphores) and
/// USBLEGCTLSTS (SMI enables and status; the SMI-on-BAR and
/// SMI-on-PCI-command status bits QEMU leaves set).
const USBLEGSUP: u16 = EECP as u16;
const USBLEGCTLSTS: u16 = EECP as u16 + 4;
const LEGSUP_CAP: u32 = 0x01;
const LEGSUP_SEMAPHORES: u32 = 1 << 16 | 1 << 24;
const LEGCTLSTS_RESET: u32 = 0xc000_0000;
const CMD_MEMORY: u32 = 1 << 1;
/// I/O, memory, bus master, SERR, interrupt disable.
const CMD_MASK: u32 = 0x0547;

/// The function's configuration registers.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhciConfigSpace {
    command: u32,
    bar: u32,
    irq_line: u8,
    fladj: u8,
    legsup: u32,
    legctlsts: u32,
}

impl EhciConfigSpace {
    /// BAR 0 at `bar` with decoding on (the VMM places it), INTx line
    /// `irq_line`.
    pub fn new(bar: u32, irq_line: u8) -> EhciConfigSpace {
        EhciConfigSpace {
            command: CMD_MEMORY | 1 << 2,
            bar: bar & !(BAR_SIZE as u32 - 1),
            irq_line,
            fladj: DEFAULT_FLADJ,
            legsup: LEGSUP_CAP,
            legctlsts: LEGCTLSTS_RESET,
        }
    }

    pub fn read(&self, reg: u16) -> u32 {
        match reg {
            0x00 => ID,
            0x04 => self.command,
            0x08 => CLASS_REVISION,
            BAR0 => self.bar,
            0x2c => SUBSYSTEM,
            0x3c => u32::from(INTERRUPT_PIN) << 8 | u32::from(self.irq_line),
            SBRN_FLADJ => u32::from(self.fladj) << 8 | SBRN,
            USBLEGSUP => self.legsup,
            USBLEGCTLSTS => self.legctlsts,
            _ => 0,
        }
    }

    pub fn write(&mut self, reg: u16, v: u32) {
        match reg {
            0x04 => self.command = v & CMD_MASK,
            BAR0 => self.bar = v & !(BAR_SIZE as u32 - 1),
            0x3c => self.irq_line = v as u8,
            SBRN_FLADJ => self.fladj = (v >> 8) as u8 & 0x3f,
            USBLEGSUP => self.legsup = LEGSUP_CAP | (v & LEGSUP_SEMAPHORES),
            // SMI enables are kept (no SMI is ever raised); the status
            // bits clear when written with 1.
            USBLEGCTLSTS => {
                self.legctlsts = (self.legctlsts & !(v & 0xe000_0000)) & 0xe000_0000 | (v & 0xffff)
            }
            _ => {}
        }
    }

    /// The offset in BAR 0 of `addr`, if the BAR decodes it.
    pub fn bar_offset(&self, addr: u64) -> Option<u64> {
        let off = addr.checked_sub(u64::from(self.bar))?;
        (self.command & CMD_MEMORY != 0 && self.bar != 0 && off < BAR_SIZE).then_some(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_and_registers() {
        let mut c = EhciConfigSpace::new(0xc000_1000, 19);
        assert_eq!(c.read(0), 0x293a_8086);
        assert_eq!(c.read(8) >> 8, 0x0c0320);
        assert_eq!(c.read(0x2c), 0x1100_1af4);
        assert_eq!(c.read(0x3c), 0x0413);
        assert_eq!(c.read(0x60) & 0xffff, 0x2020);
        assert_eq!(c.read(0x68), 1);
        assert_eq!(c.read(0x34), 0, "no capability list");
        // BAR sizing.
        c.write(0x10, 0xffff_ffff);
        assert_eq!(c.read(0x10), 0xffff_f000);
        c.write(0x10, 0xc000_2000);
        assert_eq!(c.bar_offset(0xc000_2024), Some(0x24));
        assert_eq!(c.bar_offset(0xc000_3000), None);
        c.write(4, 0);
        assert_eq!(c.bar_offset(0xc000_2024), None, "memory decoding off");
        // The OS takes ownership.
        c.write(0x68, 1 << 24);
        assert_eq!(c.read(0x68), 1 << 24 | 1);
        c.write(0x6c, 0xc000_0000);
        assert_eq!(c.read(0x6c), 0);
    }
}
