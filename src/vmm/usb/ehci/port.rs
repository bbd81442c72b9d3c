//! One root port's PORTSC (EHCI 1.0 section 2.3.9): connect, enable,
//! reset, suspend and port owner, with write-1-to-clear change bits.
//! The port does not hold the device: the controller attaches and
//! detaches it as ownership moves between the EHCI and its companion.

use super::regs::portsc::*;

/// A root port.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Port {
    portsc: u32,
    /// Whether a companion controller can take the port.
    companion: bool,
}

impl Port {
    /// A port after power-on or HCRESET: powered (no port power
    /// control), owned by its companion when it has one, and empty until
    /// a device is attached.
    pub fn new(companion: bool) -> Port {
        let owner = if companion { OWNER } else { 0 };
        Port {
            portsc: POWER | owner,
            companion,
        }
    }

    pub fn read(&self) -> u32 {
        self.portsc
    }

    pub fn connected(&self) -> bool {
        self.portsc & CONNECT != 0
    }

    /// Connected and enabled: packets reach the device.
    pub fn enabled(&self) -> bool {
        self.portsc & (CONNECT | PED) == CONNECT | PED
    }

    pub fn suspended(&self) -> bool {
        self.portsc & SUSPEND != 0
    }

    pub fn owned_by_companion(&self) -> bool {
        self.portsc & OWNER != 0
    }

    /// Hands the port to the companion (or back).
    pub fn set_owner(&mut self, companion: bool) {
        if self.companion {
            self.portsc = (self.portsc & !OWNER) | if companion { OWNER } else { 0 };
        }
    }

    /// A device connects; true when that is news for the driver.
    pub fn attach(&mut self) -> bool {
        if self.connected() {
            return false;
        }
        self.portsc |= CONNECT | CSC;
        true
    }

    /// The device goes (to the companion); true when that is news.
    pub fn detach(&mut self) -> bool {
        if !self.connected() {
            return false;
        }
        self.portsc &= !(CONNECT | PED | SUSPEND);
        self.portsc |= CSC;
        true
    }

    /// A remote wakeup from the device of a suspended port: it resumes
    /// (Force Port Resume); true when the driver should hear of it.
    pub fn wakeup(&mut self) -> bool {
        if !self.suspended() || self.portsc & FPR != 0 {
            return false;
        }
        self.portsc |= FPR;
        true
    }

    /// A driver write. Returns true when a port reset ended on a
    /// connected port: the device is reset and the port enabled, since
    /// every device here is high-speed (a full-speed one would stay
    /// disabled for the driver to hand to the companion).
    pub fn write(&mut self, v: u32) -> bool {
        let old = self.portsc;
        self.portsc &= !(v & CHANGES);
        // The driver may clear PED, never set it.
        if v & PED == 0 {
            self.portsc &= !PED;
        }
        if self.companion {
            self.portsc = (self.portsc & !OWNER) | (v & OWNER);
        }
        let mut stored = v & STORED;
        let mut reset_done = false;
        if stored & RESET != 0 && old & RESET == 0 {
            // Reset begins: the port is disabled until it ends.
            self.portsc &= !PED;
        }
        if stored & RESET == 0 && old & RESET != 0 && self.connected() {
            self.portsc = (self.portsc & !CSC) | PED;
            reset_done = true;
        }
        if stored & FPR == 0 && old & FPR != 0 {
            // Resume ends.
            stored &= !SUSPEND;
        }
        if !self.connected() {
            stored &= !SUSPEND;
        }
        self.portsc = (self.portsc & !STORED) | stored;
        reset_done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_enables_a_connected_port() {
        let mut p = Port::new(true);
        assert_eq!(p.read(), POWER | OWNER);
        p.set_owner(false);
        assert!(p.attach());
        assert!(!p.attach());
        assert_eq!(p.read() & (CONNECT | CSC | PED), CONNECT | CSC);
        // SeaBIOS: the value read, PED cleared, PR set; then PR cleared.
        let v = p.read();
        assert!(!p.write((v & !PED) | RESET));
        assert_eq!(p.read() & (RESET | PED), RESET);
        let v = p.read();
        assert!(p.write(v & !RESET));
        assert_eq!(p.read() & (RESET | PED | CSC), PED);
        assert!(p.enabled());
        // Writing the value back keeps it; clearing PED disables.
        p.write(p.read());
        assert!(p.enabled());
        p.write(p.read() & !PED);
        assert!(!p.enabled() && p.connected());
    }

    #[test]
    fn owner_change_bits_and_suspend() {
        let mut p = Port::new(true);
        p.write(POWER);
        assert!(!p.owned_by_companion());
        p.attach();
        p.write(p.read() | CSC);
        assert_eq!(p.read() & CSC, 0, "write 1 to clear");
        p.write(p.read() | SUSPEND);
        assert!(p.suspended());
        assert!(p.wakeup());
        assert!(!p.wakeup());
        p.write(p.read() & !FPR);
        assert!(!p.suspended(), "resume ends with FPR cleared");
        p.write(p.read() | OWNER);
        assert!(p.owned_by_companion());
        assert!(p.detach());
        assert_eq!(p.read() & (CONNECT | CSC), CSC);
        // Without a companion the owner bit stays clear.
        let mut solo = Port::new(false);
        solo.write(OWNER | POWER);
        assert!(!solo.owned_by_companion());
    }
}
