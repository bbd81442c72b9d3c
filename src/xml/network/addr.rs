//! IP address arithmetic of network definitions, as libvirt's socket
//! address helpers do it: prefixes from netmasks or address classes,
//! subnet membership and DHCP range checks with libvirt's messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// The prefix length a netmask stands for, if its bits are contiguous.
pub fn netmask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let bits = u32::from(mask);
    let ones = bits.leading_ones();
    (bits.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The IPv4 netmask of a prefix length.
pub fn prefix_netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// `virNetworkIPDefPrefix`: the given prefix, else the netmask's, else
/// the address class's (A: 8, B: 16, C: 24) for IPv4 and 64 for IPv6.
pub fn effective_prefix(address: IpAddr, netmask: Option<Ipv4Addr>, prefix: Option<u8>) -> u8 {
    if let Some(p) = prefix.filter(|p| *p > 0) {
        return p;
    }
    if let Some(m) = netmask {
        return netmask_prefix(m).unwrap_or(0);
    }
    match address {
        IpAddr::V4(a) => match a.octets()[0] {
            0..=127 => 8,
            128..=191 => 16,
            192..=223 => 24,
            _ => 0,
        },
        IpAddr::V6(_) => 64,
    }
}

/// The address with every bit past `prefix` cleared.
pub fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a) & u32::from(prefix_netmask(prefix)),
        )),
        IpAddr::V6(a) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Whether `addr` lies in the subnet `net/prefix`.
pub fn in_subnet(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    addr.is_ipv4() == net.is_ipv4() && network_of(addr, prefix) == network_of(net, prefix)
}

/// The IPv4 broadcast address of `net/prefix`.
pub fn broadcast(net: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) | !u32::from(prefix_netmask(prefix)))
}

fn range_error(detail: String) -> Error {
    Error::new(ErrorCode::InternalError, ErrorDomain::None, detail)
}

/// `virSocketAddrGetRange`: checks a DHCP range against its network and
/// returns how many addresses it holds.
pub fn range_size(start: IpAddr, end: IpAddr, net: IpAddr, prefix: u8) -> Result<u32> {
    if start.is_ipv4() != end.is_ipv4() {
        return Err(range_error(format!(
            "mismatch of address family in range {start} - {end}"
        )));
    }
    if start.is_ipv4() != net.is_ipv4() {
        return Err(range_error(format!(
            "mismatch of address family in range {start} - {end} for network {net}"
        )));
    }
    if !in_subnet(start, net, prefix) || !in_subnet(end, net, prefix) {
        return Err(range_error(format!(
            "range {start} - {end} is not entirely within network {net}/{prefix}"
        )));
    }
    match (start, end, net) {
        (IpAddr::V4(s), IpAddr::V4(e), IpAddr::V4(n)) => {
            let netaddr = network_of(net, prefix);
            if IpAddr::V4(s) == netaddr {
                return Err(range_error(format!(
                    "start of range {start} - {end} in network {net}/{prefix} is the network address"
                )));
            }
            if e == broadcast(n, prefix) {
                return Err(range_error(format!(
                    "end of range {start} - {end} in network {net}/{prefix} is the broadcast address"
                )));
            }
            let (so, eo) = (s.octets(), e.octets());
            if so[..2] != eo[..2] {
                return Err(range_error(format!(
                    "range {start} - {end} is too large (> 65535)"
                )));
            }
            let size =
                (i32::from(eo[2]) - i32::from(so[2])) * 256 + i32::from(eo[3]) - i32::from(so[3]);
            if size < 0 {
                return Err(range_error(format!("range {start} - {end} is reversed ")));
            }
            Ok(size as u32 + 1)
        }
        (IpAddr::V6(s), IpAddr::V6(e), _) => {
            let (ss, es) = (s.segments(), e.segments());
            if ss[..7] != es[..7] {
                return Err(range_error(format!(
                    "range {start} - {end} is too large (> 65535)"
                )));
            }
            if es[7] < ss[7] {
                return Err(range_error(format!(
                    "range {start} - {end} start larger than end"
                )));
            }
            Ok(u32::from(es[7] - ss[7]) + 1)
        }
        _ => unreachable!("families checked above"),
    }
}

/// Parses an address as libvirt's `virSocketAddrParse` reads the
/// numeric forms it accepts.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_and_ranges() {
        assert_eq!(netmask_prefix("255.255.255.0".parse().unwrap()), Some(24));
        assert_eq!(netmask_prefix("255.0.255.0".parse().unwrap()), None);
        assert_eq!(prefix_netmask(20).to_string(), "255.255.240.0");
        assert_eq!(effective_prefix(ip("10.1.2.3"), None, None), 8);
        assert_eq!(effective_prefix(ip("172.16.0.1"), None, None), 16);
        assert_eq!(effective_prefix(ip("2001:db8::1"), None, None), 64);
        let net = ip("192.168.122.1");
        assert_eq!(
            range_size(ip("192.168.122.2"), ip("192.168.122.254"), net, 24).unwrap(),
            253
        );
        assert_eq!(
            range_size(ip("192.168.122.0"), ip("192.168.122.4"), net, 24)
                .unwrap_err()
                .message,
            "internal error: start of range 192.168.122.0 - 192.168.122.4 in network 192.168.122.1/24 is the network address"
        );
        assert_eq!(
            range_size(ip("192.168.122.9"), ip("192.168.122.4"), net, 24)
                .unwrap_err()
                .message,
            "internal error: range 192.168.122.9 - 192.168.122.4 is reversed "
        );
        assert_eq!(
            range_size(ip("192.168.123.2"), ip("192.168.123.4"), net, 24)
                .unwrap_err()
                .message,
            "internal error: range 192.168.123.2 - 192.168.123.4 is not entirely within network 192.168.122.1/24"
        );
        let v6 = ip("2001:db8:ac10:fd01::1");
        assert_eq!(
            range_size(
                ip("2001:db8:ac10:fd01::1:10"),
                ip("2001:db8:ac10:fd01::1:ff"),
                v6,
                64
            )
            .unwrap(),
            240
        );
    }
}
