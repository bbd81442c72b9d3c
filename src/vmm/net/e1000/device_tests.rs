//! The register file as drivers see it.

use super::super::eeprom::{EERD_ADDR_SHIFT, EERD_DATA_SHIFT, EERD_DONE, EERD_START};
use super::super::test_rig::{MAC, rig};
use super::*;

#[test]
fn state_after_reset() {
    let mut r = rig();
    let d = &mut r.dev;
    let status = d.read(STATUS);
    assert_eq!(
        status & (STATUS_LU | STATUS_FD | STATUS_SPEED_1000),
        STATUS_LU | STATUS_FD | STATUS_SPEED_1000
    );
    assert_ne!(d.read(CTRL) & CTRL_SLU, 0);
    assert_eq!(
        d.read(RA),
        u32::from_le_bytes([MAC[0], MAC[1], MAC[2], MAC[3]])
    );
    assert_eq!(d.read(RA + 4), RAH_AV | 0x5634);
    assert_eq!(d.read(VET), 0x8100);
    assert_eq!(d.read(PBA), 0x0010_0030);
    // The MAC through EERD, word by word.
    for (w, want) in [0x5452u32, 0x1200, 0x5634].into_iter().enumerate() {
        d.write(EERD, EERD_START | (w as u32) << EERD_ADDR_SHIFT);
        let v = d.read(EERD);
        assert_ne!(v & EERD_DONE, 0);
        assert_eq!(v >> EERD_DATA_SHIFT, want);
    }
    assert_eq!(d.read(IMS), 0);
    assert!(!r.irq());
}

#[test]
fn interrupt_level_follows_icr_and_ims() {
    let mut r = rig();
    r.dev.write(ICS, ICR_TXDW);
    assert!(!r.irq(), "masked");
    r.dev.write(IMS, ICR_TXDW | ICR_RXT0);
    assert!(r.irq());
    assert!(r.dev.interrupt_pending());
    // ICS reads as ICR without clearing it.
    assert_eq!(r.dev.read(ICS), ICR_TXDW);
    assert!(r.irq());
    // ICR reads clear it.
    assert_eq!(r.dev.read(ICR), ICR_TXDW);
    assert!(!r.irq());
    assert_eq!(r.dev.read(ICR), 0);
    // Write one to clear, IMC masks.
    r.dev.write(ICS, ICR_RXT0 | ICR_LSC);
    assert!(r.irq());
    r.dev.write(ICR, ICR_RXT0);
    assert!(!r.irq(), "LSC is not enabled");
    r.dev.write(IMS, ICR_LSC);
    assert!(r.irq());
    r.dev.write(IMC, ICR_LSC);
    assert!(!r.irq());
    assert_eq!(r.dev.read(IMS), ICR_TXDW | ICR_RXT0);
    // INTx disabled in PCI command: pending, but the line stays low.
    r.dev.write(ICS, ICR_TXDW);
    assert!(r.irq());
    r.dev.set_command(PCI_CMD_BUS_MASTER | PCI_CMD_INTX_DISABLE);
    assert!(!r.irq());
    assert!(r.dev.interrupt_pending());
    r.dev.set_command(PCI_CMD_BUS_MASTER);
    assert!(r.irq());
}

#[test]
fn reset_clears_registers_and_the_line() {
    let mut r = rig();
    r.dev.write(IMS, ICR_TXDW);
    r.dev.write(ICS, ICR_TXDW);
    r.dev.write(RCTL, RCTL_EN | RCTL_BAM);
    r.dev.write(RA + 8, 0x1234);
    let generation = r.dev.generation;
    assert!(r.irq());
    assert!(r.dev.write(CTRL, CTRL_SLU | CTRL_RST));
    assert!(!r.irq());
    assert_eq!(r.dev.read(RCTL), 0);
    assert_eq!(r.dev.read(IMS), 0);
    assert_eq!(r.dev.read(RA + 8), 0);
    assert_eq!(r.dev.read(CTRL) & CTRL_RST, 0, "RST clears itself");
    assert_eq!(r.dev.generation, generation + 1);
    // The receive address is the MAC again.
    assert_eq!(r.dev.read(RA + 4), RAH_AV | 0x5634);
}

#[test]
fn statistics_clear_on_read() {
    let mut r = rig();
    r.dev.regs.count(GPRC, 3);
    r.dev.regs.count64(GORCL, 0x1_0000_0005);
    assert_eq!(r.dev.read(GPRC), 3);
    assert_eq!(r.dev.read(GPRC), 0);
    // The low half reads without clearing; the high half clears both.
    assert_eq!(r.dev.read(GORCL), 5);
    assert_eq!(r.dev.read(GORCL), 5);
    assert_eq!(r.dev.read(GORCH), 1);
    assert_eq!((r.dev.read(GORCL), r.dev.read(GORCH)), (0, 0));
    // Other counters read zero; writes do not set them.
    r.dev.write(MPRC, 7);
    assert_eq!(r.dev.read(MPRC), 0);
    assert_eq!(r.dev.read(0x4004), 0);
    r.dev.regs.count(TPT, u32::MAX);
    r.dev.regs.count(TPT, 1);
    assert_eq!(r.dev.read(TPT), u32::MAX, "counters stop at their maximum");
}

fn mdic(phy: u32, reg: u32) -> u32 {
    phy << MDIC_PHY_SHIFT | reg << MDIC_REG_SHIFT
}

#[test]
fn phy_through_mdic() {
    let mut r = rig();
    let d = &mut r.dev;
    d.write(MDIC, mdic(1, 2) | MDIC_OP_READ);
    let v = d.read(MDIC);
    assert_ne!(v & MDIC_READY, 0);
    assert_eq!(v & (MDIC_ERROR | MDIC_DATA_MASK), 0x0141);
    d.write(MDIC, mdic(1, 3) | MDIC_OP_READ);
    assert_eq!(d.read(MDIC) & MDIC_DATA_MASK, 0x0c20);
    // Another PHY address, a register the PHY lacks.
    d.write(MDIC, mdic(2, 1) | MDIC_OP_READ);
    assert_ne!(d.read(MDIC) & MDIC_ERROR, 0);
    d.write(MDIC, mdic(1, 0x1e) | MDIC_OP_READ);
    assert_ne!(d.read(MDIC) & MDIC_ERROR, 0);
    // Restarting auto-negotiation reports a link change; MDIC's own
    // interrupt when asked.
    d.write(IMS, ICR_LSC | ICR_MDAC);
    d.write(MDIC, mdic(1, 0) | MDIC_OP_WRITE | 0x1200);
    assert_eq!(d.read(ICR), ICR_LSC);
    d.write(MDIC, mdic(1, 4) | MDIC_OP_WRITE | MDIC_INT_EN | 0x01e1);
    assert_eq!(d.read(ICR), ICR_MDAC);
    d.write(MDIC, mdic(1, 4) | MDIC_OP_READ);
    assert_eq!(d.read(MDIC) & MDIC_DATA_MASK, 0x01e1);
}

#[test]
fn masks_unknown_registers_and_kicks() {
    let mut r = rig();
    let d = &mut r.dev;
    d.write(0x0104, 0x1234);
    assert_eq!(d.read(0x0104), 0);
    assert!(!d.write(RDLEN, 0xffff_ffff));
    assert_eq!(d.read(RDLEN), 0x000f_ff80);
    assert!(d.write(TDT, 0x1_0005));
    assert_eq!(d.read(TDT), 5);
    assert!(d.write(RDT, 1));
    assert!(d.write(RCTL, 0));
    assert!(d.write(TCTL, 0));
    assert!(!d.write(TDBAL, 0x1000));
    // STATUS is read-only.
    d.write(STATUS, 0);
    assert_ne!(d.read(STATUS) & STATUS_LU, 0);
    // A ring with a head past its end is not used.
    d.write(TDLEN, 128);
    d.write(TDH, 9);
    assert_eq!(d.tx_ring(), None);
    d.write(TDH, 0);
    let ring = d.tx_ring().unwrap();
    assert_eq!((ring.base, ring.count, ring.tail), (0x1000, 8, 5));
    assert_eq!(ring.pending(), 5);
}

#[test]
fn a_pulled_cable_takes_the_link_down_until_plugged_again() {
    let mut r = rig();
    r.dev.write(IMS, ICR_LSC);
    r.dev.set_link(false);
    assert_eq!(r.dev.read(STATUS) & STATUS_LU, 0);
    assert!(r.irq(), "a link status change");
    assert_eq!(r.dev.read(ICR), ICR_LSC);
    assert!(!r.dev.rx_enabled());
    // The PHY's status register agrees.
    let read_phy_status = |d: &mut Device| {
        d.write(
            MDIC,
            mdic(1, super::super::phy::PHY_STATUS as u32) | MDIC_OP_READ,
        );
        d.read(MDIC) as u16
    };
    assert_eq!(
        read_phy_status(&mut r.dev) & super::super::phy::SR_LINK_STATUS,
        0
    );
    // A reset by the driver does not plug it in; a saved state keeps it.
    r.dev.write(CTRL, CTRL_RST);
    assert_eq!(r.dev.read(STATUS) & STATUS_LU, 0);
    let state = r.dev.state();
    let mut other = rig();
    other.dev.restore(&state).unwrap();
    assert_eq!(other.dev.read(STATUS) & STATUS_LU, 0);
    r.dev.set_link(true);
    assert_ne!(r.dev.read(STATUS) & STATUS_LU, 0);
    assert_ne!(
        read_phy_status(&mut r.dev) & super::super::phy::SR_LINK_STATUS,
        0
    );
}
