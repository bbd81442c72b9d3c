//! Which received frames the guest gets: VLAN filtering (RCTL.VFE with
//! the VFTA), promiscuous modes (RCTL.UPE, RCTL.MPE), broadcast
//! (RCTL.BAM), the exact receive addresses (RAL/RAH with AV) and the
//! multicast hash table (MTA, its 12 hash bits chosen by RCTL.MO).

use super::register_file::RegisterFile;
use super::regs::{
    MTA, RA, RA_END, RAH_AV, RCTL, RCTL_BAM, RCTL_MO_SHIFT, RCTL_MPE, RCTL_UPE, RCTL_VFE, VET, VFTA,
};

/// How an accepted frame was addressed (for the statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cast {
    Unicast,
    Multicast,
    Broadcast,
}

fn cast_of(dst: &[u8]) -> Cast {
    if dst.iter().all(|b| *b == 0xff) {
        Cast::Broadcast
    } else if dst[0] & 1 == 1 {
        Cast::Multicast
    } else {
        Cast::Unicast
    }
}

/// The VLAN id of an 802.1Q frame (ether type VET), if it is one.
pub fn vlan_id(regs: &RegisterFile, frame: &[u8]) -> Option<u16> {
    let ether_type = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if u32::from(ether_type) != regs.get(VET) & 0xffff {
        return None;
    }
    Some(u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]) & 0x0fff)
}

fn matches_receive_address(regs: &RegisterFile, dst: &[u8]) -> bool {
    (RA..RA_END).step_by(8).any(|ral| {
        let high = regs.get(ral + 4);
        if high & RAH_AV == 0 {
            return false;
        }
        let mut addr = [0u8; 6];
        addr[..4].copy_from_slice(&regs.get(ral).to_le_bytes());
        addr[4..].copy_from_slice(&high.to_le_bytes()[..2]);
        addr == dst
    })
}

/// The multicast table bit of `dst`: 12 bits of its last two bytes,
/// shifted by 4, 3, 2 or 0 as RCTL.MO says.
fn mta_bit(rctl: u32, dst: &[u8]) -> u32 {
    let shift = [4, 3, 2, 0][((rctl >> RCTL_MO_SHIFT) & 3) as usize];
    (u32::from(u16::from_le_bytes([dst[4], dst[5]])) >> shift) & 0xfff
}

/// Whether the guest takes `frame` (at least 14 bytes), and how it was
/// addressed.
pub fn accept(regs: &RegisterFile, frame: &[u8]) -> Option<Cast> {
    let dst = frame.get(..6)?;
    let rctl = regs.get(RCTL);
    if rctl & RCTL_VFE != 0
        && let Some(id) = vlan_id(regs, frame)
    {
        let word = regs.get(VFTA + 4 * u32::from(id >> 5));
        if word & (1 << (id & 31)) == 0 {
            return None;
        }
    }
    let cast = cast_of(dst);
    let accepted = match cast {
        Cast::Unicast => rctl & RCTL_UPE != 0 || matches_receive_address(regs, dst),
        Cast::Broadcast => rctl & RCTL_BAM != 0 || matches_receive_address(regs, dst),
        Cast::Multicast => {
            let bit = mta_bit(rctl, dst);
            rctl & RCTL_MPE != 0
                || matches_receive_address(regs, dst)
                || regs.get(MTA + 4 * (bit >> 5)) & (1 << (bit & 31)) != 0
        }
    };
    accepted.then_some(cast)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

    fn frame(dst: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    fn regs() -> RegisterFile {
        let mut r = RegisterFile::default();
        r.set(RA, u32::from_le_bytes([OURS[0], OURS[1], OURS[2], OURS[3]]));
        r.set(
            RA + 4,
            RAH_AV | u32::from(u16::from_le_bytes([OURS[4], OURS[5]])),
        );
        r.set(VET, 0x8100);
        r
    }

    #[test]
    fn unicast_exact_and_promiscuous() {
        let mut r = regs();
        assert_eq!(accept(&r, &frame(OURS)), Some(Cast::Unicast));
        let other = [0x52, 0x54, 0, 0, 0, 9];
        assert_eq!(accept(&r, &frame(other)), None);
        r.set(RCTL, RCTL_UPE);
        assert_eq!(accept(&r, &frame(other)), Some(Cast::Unicast));
        // Without AV the address no longer matches.
        r.set(RCTL, 0);
        r.set(RA + 4, r.get(RA + 4) & !RAH_AV);
        assert_eq!(accept(&r, &frame(OURS)), None);
        // A second receive address.
        r.set(RA + 8, u32::from_le_bytes([0x52, 0x54, 0, 0]));
        r.set(RA + 12, RAH_AV | 0x0900);
        assert_eq!(accept(&r, &frame(other)), Some(Cast::Unicast));
    }

    #[test]
    fn broadcast_needs_bam() {
        let mut r = regs();
        assert_eq!(accept(&r, &frame([0xff; 6])), None);
        r.set(RCTL, RCTL_BAM);
        assert_eq!(accept(&r, &frame([0xff; 6])), Some(Cast::Broadcast));
    }

    #[test]
    fn multicast_hash_and_promiscuous() {
        let mut r = regs();
        let group = [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb];
        assert_eq!(accept(&r, &frame(group)), None);
        // MO = 0: bits 47:36, i.e. (0xfb00 >> 4) & 0xfff = 0xfb0.
        let bit = 0xfb0u32;
        r.set(MTA + 4 * (bit >> 5), 1 << (bit & 31));
        assert_eq!(accept(&r, &frame(group)), Some(Cast::Multicast));
        // MO = 3 takes bits 43:32: another bit.
        r.set(RCTL, 3 << RCTL_MO_SHIFT);
        assert_eq!(accept(&r, &frame(group)), None);
        r.set(RCTL, 3 << RCTL_MO_SHIFT | RCTL_MPE);
        assert_eq!(accept(&r, &frame(group)), Some(Cast::Multicast));
    }

    #[test]
    fn vlan_filter() {
        let mut r = regs();
        let mut f = frame(OURS);
        f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
        assert_eq!(vlan_id(&r, &f), Some(5));
        assert_eq!(accept(&r, &f), Some(Cast::Unicast));
        r.set(RCTL, RCTL_VFE);
        assert_eq!(accept(&r, &f), None);
        r.set(VFTA, 1 << 5);
        assert_eq!(accept(&r, &f), Some(Cast::Unicast));
        // Untagged frames pass the VLAN filter.
        assert_eq!(accept(&r, &frame(OURS)), Some(Cast::Unicast));
    }
}
