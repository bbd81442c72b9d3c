//! The offload features `virNetDevGetFeatures` reports for an interface,
//! asked of the kernel through the legacy `SIOCETHTOOL` getters as libvirt
//! does (in the network namespace the daemon runs in).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;

use crate::vmm::ifreq::IfReq;

const SIOCETHTOOL: libc::c_ulong = 0x8946;

const ETHTOOL_GRXCSUM: u32 = 0x14;
const ETHTOOL_GTXCSUM: u32 = 0x16;
const ETHTOOL_GSG: u32 = 0x18;
const ETHTOOL_GTSO: u32 = 0x1e;
const ETHTOOL_GGSO: u32 = 0x23;
const ETHTOOL_GFLAGS: u32 = 0x25;
const ETHTOOL_GGRO: u32 = 0x2b;
const ETHTOOL_GFEATURES: u32 = 0x3a;

const ETH_FLAG_TXVLAN: u32 = 1 << 7;
const ETH_FLAG_RXVLAN: u32 = 1 << 8;
const ETH_FLAG_LRO: u32 = 1 << 15;
const ETH_FLAG_NTUPLE: u32 = 1 << 27;
const ETH_FLAG_RXHASH: u32 = 1 << 28;

/// The feature bits, numbered as `virNetDevFeature`.
pub mod bit {
    pub const RX: u32 = 1 << 0;
    pub const TX: u32 = 1 << 1;
    pub const SG: u32 = 1 << 2;
    pub const TSO: u32 = 1 << 3;
    pub const GSO: u32 = 1 << 4;
    pub const GRO: u32 = 1 << 5;
    pub const LRO: u32 = 1 << 6;
    pub const RXVLAN: u32 = 1 << 7;
    pub const TXVLAN: u32 = 1 << 8;
    pub const NTUPLE: u32 = 1 << 9;
    pub const RXHASH: u32 = 1 << 10;
    pub const RDMA: u32 = 1 << 11;
    pub const TXUDPTNL: u32 = 1 << 12;
}

/// `NETIF_F_GSO_UDP_TUNNEL`'s bit in `ETHTOOL_GFEATURES` (libvirt's `TX_UDP_TNL`).
const TX_UDP_TNL: usize = 25;

/// Issues one ethtool command whose buffer starts with its `cmd` word.
fn ethtool(sock: &UnixDatagram, ifname: &str, buf: &mut [u32]) -> bool {
    let mut ifr = IfReq::new(ifname);
    ifr.set_ptr(buf.as_mut_ptr().cast());
    ifr.ioctl(sock.as_raw_fd(), SIOCETHTOOL).is_ok()
}

/// `virNetDevGetEthtoolFeatures` and `virNetDevGetEthtoolGFeatures`:
/// a getter that fails (no such request, not supported) leaves its
/// feature unset.
pub fn features(ifname: &str) -> u32 {
    let Ok(sock) = UnixDatagram::unbound() else {
        return 0;
    };
    let mut out = 0;
    for (cmd, feat) in [
        (ETHTOOL_GRXCSUM, bit::RX),
        (ETHTOOL_GTXCSUM, bit::TX),
        (ETHTOOL_GSG, bit::SG),
        (ETHTOOL_GTSO, bit::TSO),
        (ETHTOOL_GGSO, bit::GSO),
        (ETHTOOL_GGRO, bit::GRO),
    ] {
        let mut v = [cmd, 0];
        if ethtool(&sock, ifname, &mut v) && v[1] > 0 {
            out |= feat;
        }
    }
    let mut v = [ETHTOOL_GFLAGS, 0];
    if ethtool(&sock, ifname, &mut v) && v[1] > 0 {
        for (flag, feat) in [
            (ETH_FLAG_LRO, bit::LRO),
            (ETH_FLAG_RXVLAN, bit::RXVLAN),
            (ETH_FLAG_TXVLAN, bit::TXVLAN),
            (ETH_FLAG_NTUPLE, bit::NTUPLE),
            (ETH_FLAG_RXHASH, bit::RXHASH),
        ] {
            if v[1] & flag != 0 {
                out |= feat;
            }
        }
    }
    // struct ethtool_gfeatures: cmd, size, then `size` blocks of
    // (available, requested, active, never_changed).
    const BLOCKS: usize = 2;
    let mut g = [0u32; 2 + 4 * BLOCKS];
    g[0] = ETHTOOL_GFEATURES;
    g[1] = BLOCKS as u32;
    if ethtool(&sock, ifname, &mut g) {
        let active = g[2 + 4 * (TX_UDP_TNL / 32) + 2];
        if active & (1 << (TX_UDP_TNL % 32)) != 0 {
            out |= bit::TXUDPTNL;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_answers_and_a_missing_interface_has_none() {
        // lo exists in every network namespace; whatever it offers, the
        // call must not fail or report a bit libvirt has no name for.
        let f = features("lo");
        assert_eq!(f & !((1 << 13) - 1), 0);
        assert_eq!(features("oxvirt-no-such0"), 0);
    }
}
