//! A root hub port's PORTSC register (xHCI 1.2 section 5.4.8): connect,
//! enable, reset and link state, with write-1-to-clear change bits.

use crate::vmm::usb::Speed;
use crate::vmm::usb::hid::HidDevice;

pub const CCS: u32 = 1 << 0;
pub const PED: u32 = 1 << 1;
pub const PR: u32 = 1 << 4;
const PLS_SHIFT: u32 = 5;
const PLS_MASK: u32 = 0xf << PLS_SHIFT;
pub const PP: u32 = 1 << 9;
const SPEED_SHIFT: u32 = 10;
pub const LWS: u32 = 1 << 16;
pub const CSC: u32 = 1 << 17;
pub const PEC: u32 = 1 << 18;
pub const WRC: u32 = 1 << 19;
pub const OCC: u32 = 1 << 20;
pub const PRC: u32 = 1 << 21;
pub const PLC: u32 = 1 << 22;
pub const CEC: u32 = 1 << 23;
/// Wake on connect, disconnect, over-current: kept as written.
const WAKE_BITS: u32 = 0x7 << 25;
/// Port indicator control: kept as written.
const PIC_BITS: u32 = 0x3 << 14;
pub const WPR: u32 = 1 << 31;
pub const CHANGE_BITS: u32 = CSC | PEC | WRC | OCC | PRC | PLC | CEC;

/// Port link states.
pub const PLS_U0: u32 = 0;
pub const PLS_U3: u32 = 3;
pub const PLS_DISABLED: u32 = 4;
pub const PLS_RX_DETECT: u32 = 5;
pub const PLS_POLLING: u32 = 7;
pub const PLS_RESUME: u32 = 15;

/// One root hub port and what is plugged into it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    usb3: bool,
    portsc: u32,
    /// PORTPMSC, kept as written (no link power management).
    pub pmsc: u32,
    pub device: Option<HidDevice>,
}

impl Port {
    pub fn new(usb3: bool, device: Option<HidDevice>) -> Port {
        let mut p = Port {
            usb3,
            portsc: 0,
            pmsc: 0,
            device,
        };
        p.power_on();
        p
    }

    /// The state after a controller reset: a device is connected (and a
    /// USB 2 port waits in Polling for the driver to reset it).
    pub fn power_on(&mut self) {
        self.pmsc = 0;
        self.portsc = PP;
        match &mut self.device {
            Some(d) => {
                d.reset();
                // The HID devices are high-speed; a USB 3 port would hold
                // a SuperSpeed device enabled and in U0 at once.
                let speed = if self.usb3 { Speed::Super } else { Speed::High };
                self.portsc |= CCS | CSC | (speed as u32) << SPEED_SHIFT;
                if self.usb3 {
                    self.portsc |= PED;
                    self.set_link(PLS_U0);
                } else {
                    self.set_link(PLS_POLLING);
                }
            }
            None => self.set_link(PLS_RX_DETECT),
        }
    }

    pub fn read(&self) -> u32 {
        self.portsc
    }

    pub fn link(&self) -> u32 {
        (self.portsc & PLS_MASK) >> PLS_SHIFT
    }

    fn set_link(&mut self, pls: u32) {
        self.portsc = (self.portsc & !PLS_MASK) | (pls << PLS_SHIFT & PLS_MASK);
    }

    /// Sets change bits; whether one of them is new (an event is due).
    fn change(&mut self, bits: u32) -> bool {
        let new = bits & !self.portsc != 0;
        self.portsc |= bits;
        new
    }

    pub fn enabled(&self) -> bool {
        self.portsc & PED != 0
    }

    /// Whether change bits are waiting for the driver.
    pub fn has_changes(&self) -> bool {
        self.portsc & CHANGE_BITS != 0
    }

    /// A driver write; true when a Port Status Change event is due.
    pub fn write(&mut self, v: u32) -> bool {
        if v & (PR | WPR) != 0 {
            return self.reset(v & WPR != 0 && self.usb3);
        }
        let mut event = false;
        self.portsc &= !(v & CHANGE_BITS);
        if v & PED != 0 && self.enabled() {
            // Writing PED disables the port.
            self.portsc &= !PED;
            if !self.usb3 {
                self.set_link(PLS_DISABLED);
            }
        }
        if v & LWS != 0 && self.portsc & CCS != 0 {
            let old = self.link();
            match (v & PLS_MASK) >> PLS_SHIFT {
                PLS_U0 if old != PLS_U0 => {
                    self.set_link(PLS_U0);
                    event = self.change(PLC);
                }
                PLS_U3 if old < PLS_U3 => self.set_link(PLS_U3),
                PLS_RESUME if old == PLS_U3 => self.set_link(PLS_RESUME),
                _ => {}
            }
        }
        self.portsc = (self.portsc & !(WAKE_BITS | PIC_BITS)) | (v & (WAKE_BITS | PIC_BITS));
        event
    }

    /// Port reset: the device is reset and the port enabled in U0.
    fn reset(&mut self, warm: bool) -> bool {
        let Some(d) = &mut self.device else {
            return false;
        };
        d.reset();
        self.portsc = (self.portsc & !PR) | PED;
        self.set_link(PLS_U0);
        let bits = if warm { PRC | WRC } else { PRC };
        self.change(bits)
    }

    /// The device asks to wake a suspended link (remote wakeup): true
    /// when an event is due.
    pub fn wakeup(&mut self) -> bool {
        if self.link() != PLS_U3 {
            return false;
        }
        self.set_link(PLS_RESUME);
        self.change(PLC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::usb::hid::HidKind;

    #[test]
    fn usb2_connect_reset_and_clear() {
        let mut p = Port::new(false, Some(HidDevice::new(HidKind::Tablet)));
        let v = p.read();
        assert_eq!(v & (CCS | PED | CSC | PP), CCS | CSC | PP);
        assert_eq!(p.link(), PLS_POLLING);
        assert_eq!((v >> 10) & 0xf, Speed::High as u32);
        // SeaBIOS' way: the read value back with PR.
        assert!(p.write(v | PR));
        let v = p.read();
        assert_eq!(v & (PED | PR | PRC), PED | PRC);
        assert_eq!(p.link(), PLS_U0);
        // Writing the value back (PED masked) clears only the change bits.
        assert!(!p.write(v & !PED));
        assert_eq!(p.read() & CHANGE_BITS, 0);
        assert!(p.enabled());
        // Suspend, then remote wakeup.
        p.write(LWS | PLS_U3 << 5);
        assert_eq!(p.link(), PLS_U3);
        assert!(p.wakeup());
        assert_eq!(p.link(), PLS_RESUME);
        assert!(p.write(LWS | PLS_U0 << 5 | PLC) || p.read() & PLC != 0);
        assert_eq!(p.link(), PLS_U0);
    }

    #[test]
    fn empty_ports_stay_empty() {
        let mut p = Port::new(true, None);
        assert_eq!(p.read() & (CCS | PED), 0);
        assert_eq!(p.link(), PLS_RX_DETECT);
        assert!(!p.write(PR));
        assert!(!p.write(LWS));
        assert_eq!(p.read() & (CCS | PED | CHANGE_BITS), 0);
    }
}
