//! The 82540EM's state behind its registers, shared by the vCPUs (which
//! read and write registers) and the worker (which moves frames): what
//! each register does on access, the interrupt causes and the INTx
//! level, reset, and the descriptor rings' geometry.

use std::sync::Arc;

use super::eeprom::Eeprom;
use super::phy::{Phy, WriteEffect};
use super::register_file::RegisterFile;
use super::regs::*;
use super::tx::TxState;
use crate::vmm::virtio::interrupt::IntxLine;
use crate::vmm::virtio::stats::NetStats;

/// PCI command register bits the device itself looks at.
pub const PCI_CMD_BUS_MASTER: u16 = 1 << 2;
pub const PCI_CMD_INTX_DISABLE: u16 = 1 << 10;

/// Descriptors are 16 bytes in both rings.
pub const DESCRIPTOR: u64 = 16;

/// A descriptor ring as its registers describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub base: u64,
    pub count: u32,
    pub head: u32,
    pub tail: u32,
}

impl Ring {
    /// Guest address of descriptor `i` (`None` if it would wrap).
    pub fn descriptor(&self, i: u32) -> Option<u64> {
        self.base.checked_add(u64::from(i) * DESCRIPTOR)
    }

    pub fn next(&self, i: u32) -> u32 {
        (i + 1) % self.count
    }

    /// Descriptors between head and tail (the guest's, for a receive
    /// ring; the ones to send, for a transmit ring).
    pub fn pending(&self) -> u32 {
        (self.tail + self.count - self.head) % self.count
    }
}

/// Registers that hold what the guest writes and nothing more, with the
/// bits they keep.
fn plain_mask(off: u32) -> Option<u32> {
    let mask = match off {
        RDLEN | TDLEN => 0x000f_ff80,
        RDH | TDH | RDTR | RADV | TIDV | TADV | ITR => 0xffff,
        CTRL_EXT | FCAL | FCAH | FCT | VET | FCTTV | TXCW | RXCW | TIPG | AIT | LEDCTL | PBA
        | FCRTL | FCRTH | RDBAL | RDBAH | RXDCTL | RSRPD | TXDMAC | TDBAL | TDBAH | TXDCTL
        | TSPMT | RXCSUM | WUC | WUFC | WUS | MANC | IPAV | WUPL | SWSM => u32::MAX,
        RDFH..=RDFPC | TDFH..=TDFPC => 0x1fff,
        MTA..MTA_END | RA..RA_END | VFTA..VFTA_END => u32::MAX,
        IP4AT..IP6AT_END | WUPM..WUPM_END | FFLT..FFLT_END | FFMT..FFVT_END => u32::MAX,
        PBM..PBM_END => u32::MAX,
        _ => return None,
    };
    Some(mask)
}

/// The 64-bit statistics whose high half's read clears both halves.
const STAT_PAIRS: [(u32, u32); 4] = [(GORCL, GORCH), (GOTCL, GOTCH), (TORL, TORH), (TOTL, TOTH)];

/// The MAC's state, as a state image keeps it (counters of the host side
/// are not part of it).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    regs: Vec<u32>,
    eeprom: super::eeprom::EepromState,
    phy: Phy,
    tx: TxState,
    command: u16,
    generation: u64,
    rx_starved: bool,
    #[serde(default)]
    link_down: bool,
}

pub struct Device {
    pub regs: RegisterFile,
    eeprom: Eeprom,
    phy: Phy,
    mac: [u8; 6],
    pub tx: TxState,
    irq: Option<IntxLine>,
    /// The function's PCI command register.
    command: u16,
    /// Counts resets, so that the worker drops a frame it held across one.
    pub generation: u64,
    /// The receive ring was found full (RXO raised) and RDT has not moved
    /// since.
    pub rx_starved: bool,
    /// The cable is out (see [`Device::set_link`]).
    link_down: bool,
    /// Host-side counters: frames through the tap, and frames or
    /// descriptors the guest got wrong.
    pub stats: Arc<NetStats>,
}

impl Device {
    pub fn state(&self) -> DeviceState {
        DeviceState {
            regs: self.regs.words(),
            eeprom: self.eeprom.state(),
            phy: self.phy.clone(),
            tx: self.tx.clone(),
            command: self.command,
            generation: self.generation,
            rx_starved: self.rx_starved,
            link_down: self.link_down,
        }
    }

    pub fn restore(&mut self, s: &DeviceState) -> Result<(), String> {
        self.regs = RegisterFile::from_words(&s.regs)?;
        self.eeprom.restore(&s.eeprom)?;
        self.phy = s.phy.clone();
        self.tx = s.tx.clone();
        self.command = s.command;
        self.generation = s.generation;
        self.rx_starved = s.rx_starved;
        self.link_down = s.link_down;
        Ok(())
    }

    /// Whether the driver turned receive or transmit on (its worker must
    /// run).
    pub fn enabled(&self) -> bool {
        self.regs.get(RCTL) & RCTL_EN != 0 || self.regs.get(TCTL) & TCTL_EN != 0
    }

    /// A device with MAC `mac` whose INTx pin is `irq` (`None`: no line,
    /// for tests), just after power-on.
    pub fn new(mac: [u8; 6], irq: Option<IntxLine>, stats: Arc<NetStats>) -> Device {
        let mut d = Device {
            regs: RegisterFile::default(),
            eeprom: Eeprom::new(mac, super::DEVICE_ID),
            phy: Phy::default(),
            mac,
            tx: TxState::default(),
            irq,
            command: 0,
            generation: 0,
            rx_starved: false,
            link_down: false,
            stats,
        };
        d.reset();
        d
    }

    /// CTRL.RST: every register back to its power-on value, the PHY too,
    /// any packet half gathered dropped. PCI configuration is kept.
    pub fn reset(&mut self) {
        self.regs = RegisterFile::default();
        let r = &mut self.regs;
        r.set(CTRL, CTRL_SWDPIN2 | CTRL_SWDPIN0 | CTRL_SPD_1000 | CTRL_SLU);
        r.set(
            STATUS,
            STATUS_BIT31
                | STATUS_GIO_MASTER_ENABLE
                | STATUS_ASDV
                | STATUS_MTXCKOK
                | STATUS_SPEED_1000
                | STATUS_FD
                | STATUS_LU,
        );
        r.set(PBA, 0x0010_0030);
        r.set(LEDCTL, 0x0602);
        r.set(
            MANC,
            MANC_EN_MNG2HOST | MANC_RCV_TCO_EN | MANC_ARP_EN | MANC_0298_EN | MANC_RMCP_EN,
        );
        r.set(VET, ETH_P_8021Q);
        let m = self.mac;
        r.set(RA, u32::from_le_bytes([m[0], m[1], m[2], m[3]]));
        r.set(RA + 4, RAH_AV | u32::from(u16::from_le_bytes([m[4], m[5]])));
        self.phy = Phy::default();
        self.apply_link();
        self.eeprom.reset_wire();
        self.tx = TxState::default();
        self.generation = self.generation.wrapping_add(1);
        self.rx_starved = false;
        self.update_irq();
    }

    /// The PCI command register changed.
    pub fn set_command(&mut self, command: u16) {
        self.command = command;
        self.update_irq();
    }

    /// DMA is allowed.
    pub fn bus_master(&self) -> bool {
        self.command & PCI_CMD_BUS_MASTER != 0
    }

    /// Causes pending and enabled: what the INTx level (and the PCI
    /// status register's interrupt bit) show.
    pub fn interrupt_pending(&self) -> bool {
        self.regs.get(ICR) & self.regs.get(IMS) != 0
    }

    fn update_irq(&self) {
        let high = self.interrupt_pending() && self.command & PCI_CMD_INTX_DISABLE == 0;
        if let Some(l) = &self.irq {
            l.set(high);
        }
    }

    /// Sets interrupt causes (ICS, or the device's own events).
    pub fn raise(&mut self, causes: u32) {
        self.regs.or(ICR, causes);
        self.update_irq();
    }

    pub fn link_up(&self) -> bool {
        self.regs.get(STATUS) & STATUS_LU != 0
    }

    /// The cable plugged in or pulled (`domif-setlink`): STATUS.LU and
    /// the PHY follow, and the driver gets a link status change. A reset
    /// keeps it; while it is out nothing is sent or received.
    pub fn set_link(&mut self, up: bool) {
        self.link_down = !up;
        self.apply_link();
        self.raise(ICR_LSC);
    }

    fn apply_link(&mut self) {
        if self.link_down {
            let v = self.regs.get(STATUS) & !STATUS_LU;
            self.regs.set(STATUS, v);
        } else {
            self.regs.or(STATUS, STATUS_LU);
        }
        self.phy.set_link(!self.link_down);
    }

    /// Frames may be put in the receive ring.
    pub fn rx_enabled(&self) -> bool {
        self.link_up() && self.regs.get(RCTL) & RCTL_EN != 0 && self.bus_master()
    }

    /// Descriptors may be taken from the transmit ring.
    pub fn tx_enabled(&self) -> bool {
        self.regs.get(TCTL) & TCTL_EN != 0 && self.bus_master()
    }

    fn ring(&self, bal: u32, len: u32, head: u32, tail: u32) -> Option<Ring> {
        let count = u32::try_from(u64::from(self.regs.get(len)) / DESCRIPTOR).ok()?;
        let ring = Ring {
            // The base is 16-byte aligned; the low bits are ignored.
            base: self.regs.get64(bal) & !0xf,
            count,
            head: self.regs.get(head),
            tail: self.regs.get(tail),
        };
        (count > 0 && ring.head < count && ring.tail < count).then_some(ring)
    }

    /// The receive ring, if its registers make sense.
    pub fn rx_ring(&self) -> Option<Ring> {
        self.ring(RDBAL, RDLEN, RDH, RDT)
    }

    /// The transmit ring, if its registers make sense.
    pub fn tx_ring(&self) -> Option<Ring> {
        self.ring(TDBAL, TDLEN, TDH, TDT)
    }

    /// Reads the register at byte offset `off` (a multiple of 4).
    pub fn read(&mut self, off: u32) -> u32 {
        match off {
            EECD => self.eeprom.eecd_read(),
            EERD => self.eeprom.eerd_read(self.regs.get(EERD)),
            ICR => {
                let v = self.regs.get(ICR);
                self.regs.set(ICR, 0);
                self.update_irq();
                v
            }
            // ICS reads as ICR does, without clearing it.
            ICS => self.regs.get(ICR),
            CTRL | STATUS | MDIC | IMS | RCTL | TCTL | RDT | TDT => self.regs.get(off),
            STATS_START..STATS_END => self.read_statistic(off),
            _ if plain_mask(off).is_some() => self.regs.get(off),
            _ => 0,
        }
    }

    /// Statistics clear when read; a 64-bit counter clears when its high
    /// half is read.
    fn read_statistic(&mut self, off: u32) -> u32 {
        let v = self.regs.get(off);
        if let Some((low, _)) = STAT_PAIRS.iter().find(|(_, high)| *high == off) {
            self.regs.set(*low, 0);
        } else if STAT_PAIRS.iter().any(|(low, _)| *low == off) {
            return v;
        }
        self.regs.set(off, 0);
        v
    }

    /// Writes the register at byte offset `off`; returns whether the
    /// worker has something to do (rings or their enables changed).
    pub fn write(&mut self, off: u32, v: u32) -> bool {
        match off {
            CTRL if v & CTRL_RST != 0 => {
                self.reset();
                return true;
            }
            CTRL => self.regs.set(CTRL, v),
            EECD => self.eeprom.eecd_write(v),
            EERD => self.regs.set(EERD, v),
            MDIC => self.write_mdic(v),
            ICR => {
                let v = self.regs.get(ICR) & !v;
                self.regs.set(ICR, v);
                self.update_irq();
            }
            ICS => self.raise(v),
            IMS => {
                self.regs.or(IMS, v);
                self.update_irq();
            }
            IMC => {
                self.regs.set(IMS, self.regs.get(IMS) & !v);
                self.update_irq();
            }
            RCTL | TCTL | TDT => {
                self.regs.set(off, if off == TDT { v & 0xffff } else { v });
                return true;
            }
            RDT => {
                self.regs.set(RDT, v & 0xffff);
                self.rx_starved = false;
                return true;
            }
            _ => {
                if let Some(mask) = plain_mask(off) {
                    self.regs.set(off, v & mask);
                }
            }
        }
        false
    }

    /// MDIC: one PHY read or write, done at once (READY set). A PHY
    /// address other than 1, or a register the PHY lacks, sets ERROR.
    fn write_mdic(&mut self, v: u32) {
        let reg = ((v >> MDIC_REG_SHIFT) & 0x1f) as usize;
        let phy_addr = (v >> MDIC_PHY_SHIFT) & 0x1f;
        let data = (v & MDIC_DATA_MASK) as u16;
        let mut link_changed = false;
        let done = match phy_addr {
            1 if v & MDIC_OP_READ != 0 => self
                .phy
                .read(reg)
                .map(|d| (v & !MDIC_DATA_MASK) | u32::from(d)),
            1 if v & MDIC_OP_WRITE != 0 => self.phy.write(reg, data).map(|effect| {
                link_changed = effect == WriteEffect::LinkRenegotiated;
                v
            }),
            _ => None,
        };
        let result = done.unwrap_or(v | MDIC_ERROR);
        self.regs.set(MDIC, result | MDIC_READY);
        let mut causes = 0;
        if link_changed {
            causes |= ICR_LSC;
        }
        if v & MDIC_INT_EN != 0 {
            causes |= ICR_MDAC;
        }
        if causes != 0 {
            self.raise(causes);
        }
    }
}

#[cfg(test)]
#[path = "device_tests.rs"]
mod tests;
