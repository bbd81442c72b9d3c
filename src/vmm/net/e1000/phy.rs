//! The PHY behind MDIC: a Marvell 88E1011 (id 0x01410C20, which Linux's
//! driver requires of an 82540EM) whose link is up at 1000 Mb/s full
//! duplex with auto-negotiation complete. A restart of auto-negotiation
//! completes at once.

// Registers.
pub const PHY_CTRL: usize = 0x00;
pub const PHY_STATUS: usize = 0x01;
pub const PHY_ID1: usize = 0x02;
pub const PHY_ID2: usize = 0x03;
pub const PHY_AUTONEG_ADV: usize = 0x04;
pub const PHY_LP_ABILITY: usize = 0x05;
pub const PHY_AUTONEG_EXP: usize = 0x06;
pub const PHY_1000T_CTRL: usize = 0x09;
pub const PHY_1000T_STATUS: usize = 0x0a;
pub const M88_PHY_SPEC_CTRL: usize = 0x10;
pub const M88_PHY_SPEC_STATUS: usize = 0x11;
pub const M88_EXT_PHY_SPEC_CTRL: usize = 0x14;
pub const M88_RX_ERR_CNTR: usize = 0x15;

// PHY_CTRL bits.
const CR_SPEED_MSB: u16 = 1 << 6;
const CR_FULL_DUPLEX: u16 = 1 << 8;
pub const CR_RESTART_AUTONEG: u16 = 1 << 9;
const CR_AUTONEG_EN: u16 = 1 << 12;
const CR_RESET: u16 = 1 << 15;

// PHY_STATUS bits.
const SR_EXTENDED_CAPS: u16 = 1 << 0;
pub const SR_LINK_STATUS: u16 = 1 << 2;
const SR_AUTONEG_CAPS: u16 = 1 << 3;
pub const SR_AUTONEG_COMPLETE: u16 = 1 << 5;
const SR_PREAMBLE_SUPPRESS: u16 = 1 << 6;
const SR_EXTENDED_STATUS: u16 = 1 << 8;
const SR_10T_HD: u16 = 1 << 11;
const SR_10T_FD: u16 = 1 << 12;
const SR_100X_HD: u16 = 1 << 13;
const SR_100X_FD: u16 = 1 << 14;
/// Link partner ability: acknowledged.
const LPAR_LPACK: u16 = 1 << 14;

/// The 82540EM's PHY identifier.
pub const PHY_ID: u32 = 0x0141_0c20;

const READ: u8 = 1;
const WRITE: u8 = 2;

/// What the driver may do with each register (the others answer with
/// MDIC's error bit).
fn access(reg: usize) -> u8 {
    match reg {
        PHY_CTRL | PHY_AUTONEG_ADV | PHY_1000T_CTRL | M88_PHY_SPEC_CTRL | M88_EXT_PHY_SPEC_CTRL => {
            READ | WRITE
        }
        PHY_STATUS | PHY_ID1 | PHY_ID2 | PHY_LP_ABILITY | PHY_AUTONEG_EXP | PHY_1000T_STATUS
        | M88_PHY_SPEC_STATUS | M88_RX_ERR_CNTR => READ,
        _ => 0,
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Phy {
    regs: [u16; 32],
}

impl Phy {
    /// The cable in or out: link status in the status register and the
    /// M88's specific status (its bit 10, "link up in real time").
    pub fn set_link(&mut self, up: bool) {
        let set = |v: u16, bit: u16| if up { v | bit } else { v & !bit };
        self.regs[PHY_STATUS] = set(self.regs[PHY_STATUS], SR_LINK_STATUS);
        self.regs[M88_PHY_SPEC_STATUS] = set(self.regs[M88_PHY_SPEC_STATUS], M88_REAL_TIME_LINK);
    }
}

/// The M88 PHY specific status register's real-time link bit.
const M88_REAL_TIME_LINK: u16 = 1 << 10;

/// What a register write did besides storing the value.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteEffect {
    None,
    /// Auto-negotiation restarted (and completed): the link changed.
    LinkRenegotiated,
}

impl Default for Phy {
    fn default() -> Self {
        let mut regs = [0u16; 32];
        regs[PHY_CTRL] = CR_SPEED_MSB | CR_FULL_DUPLEX | CR_AUTONEG_EN;
        regs[PHY_STATUS] = SR_EXTENDED_CAPS
            | SR_LINK_STATUS
            | SR_AUTONEG_CAPS
            | SR_AUTONEG_COMPLETE
            | SR_PREAMBLE_SUPPRESS
            | SR_EXTENDED_STATUS
            | SR_10T_HD
            | SR_10T_FD
            | SR_100X_HD
            | SR_100X_FD;
        regs[PHY_ID1] = (PHY_ID >> 16) as u16;
        regs[PHY_ID2] = PHY_ID as u16;
        regs[PHY_AUTONEG_ADV] = 0x0de1;
        regs[PHY_LP_ABILITY] = 0x01e0 | LPAR_LPACK;
        regs[PHY_1000T_CTRL] = 0x0e00;
        regs[PHY_1000T_STATUS] = 0x3c00;
        // 1000 Mb/s, full duplex, resolved, link up.
        regs[M88_PHY_SPEC_CTRL] = 0x0360;
        regs[M88_PHY_SPEC_STATUS] = 0xac00;
        regs[M88_EXT_PHY_SPEC_CTRL] = 0x0d60;
        Phy { regs }
    }
}

impl Phy {
    /// Reads `reg`; `None` if the PHY has no such register.
    pub fn read(&self, reg: usize) -> Option<u16> {
        (access(reg) & READ != 0).then(|| self.regs[reg])
    }

    /// Writes `reg`; `None` if it cannot be written.
    pub fn write(&mut self, reg: usize, v: u16) -> Option<WriteEffect> {
        if access(reg) & WRITE == 0 {
            return None;
        }
        if reg != PHY_CTRL {
            self.regs[reg] = v;
            return Some(WriteEffect::None);
        }
        // Reset and restart clear themselves; bits 0-5 are reserved.
        self.regs[reg] = v & !(0x3f | CR_RESET | CR_RESTART_AUTONEG);
        Some(if v & CR_RESTART_AUTONEG != 0 && v & CR_AUTONEG_EN != 0 {
            WriteEffect::LinkRenegotiated
        } else {
            WriteEffect::None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_link_and_access() {
        let mut p = Phy::default();
        let id = u32::from(p.read(PHY_ID1).unwrap()) << 16 | u32::from(p.read(PHY_ID2).unwrap());
        assert_eq!(id, PHY_ID);
        let st = p.read(PHY_STATUS).unwrap();
        assert_ne!(st & SR_LINK_STATUS, 0);
        assert_ne!(st & SR_AUTONEG_COMPLETE, 0);
        assert_eq!(p.read(0x1f), None);
        assert_eq!(p.write(PHY_STATUS, 0), None);
        assert_eq!(p.write(PHY_AUTONEG_ADV, 0x01e1), Some(WriteEffect::None));
        assert_eq!(p.read(PHY_AUTONEG_ADV), Some(0x01e1));
        let restart = CR_AUTONEG_EN | CR_RESTART_AUTONEG | CR_RESET;
        assert_eq!(
            p.write(PHY_CTRL, restart),
            Some(WriteEffect::LinkRenegotiated)
        );
        assert_eq!(p.read(PHY_CTRL), Some(CR_AUTONEG_EN));
    }
}
