//! Host network devices for guests, through the kernel's ioctls: taps
//! (created, opened by name, deleted), link settings, bridge ports; and
//! what the host sees of them: counters from `/proc/net/dev` and the IPv4
//! neighbour table from `/proc/net/arp`. Everything acts in the network
//! namespace the daemon runs in. Errors are worded as libvirt's.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

use libc::{
    ARPHRD_ETHER, SIOCGIFFLAGS, SIOCGIFMTU, SIOCSIFFLAGS, SIOCSIFHWADDR, SIOCSIFMTU, TUNSETIFF,
    TUNSETPERSIST,
};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::mac::MacAddr;

use super::fsutil::os_text;

const TUN_PATH: &str = "/dev/net/tun";

/// Not in libc for this target.
const SIOCBRADDIF: libc::c_ulong = 0x89a2;

pub use crate::vmm::ifreq::MAX_NAME;
use crate::vmm::ifreq::{
    IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TAP, IFF_TUN_EXCL, IFF_UP, IFF_VNET_HDR, IfReq,
};

/// A libvirt system error ("detail: strerror"), from the host-network
/// code (`VIR_FROM_NONE`).
fn net_error(what: impl AsRef<str>, err: &io::Error) -> Error {
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::None,
        format!("{}: {}", what.as_ref(), os_text(err)),
    )
}

/// A socket to send interface ioctls through (`virNetDevSetupControl`).
fn control() -> io::Result<UnixDatagram> {
    UnixDatagram::unbound()
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME || name.contains(['/', ' ', ':']) {
        return Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::None,
            format!("invalid interface name '{name}'"),
        ));
    }
    Ok(())
}

/// Whether an interface called `name` exists.
pub fn exists(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    unsafe { libc::if_nametoindex(c.as_ptr()) != 0 }
}

fn index(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: if_nametoindex reads a NUL-terminated string we own.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        Err(io::Error::last_os_error())
    } else {
        i32::try_from(i).map_err(|_| io::Error::from_raw_os_error(libc::ERANGE))
    }
}

fn open_tun() -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_PATH)
        .map_err(|e| {
            net_error(
                format!("Unable to open {TUN_PATH}, is tun module loaded?"),
                &e,
            )
        })
}

/// Creates the tap `name` (IFF_TAP, no packet info, virtio-net headers),
/// or with `attach_existing` also takes over an existing one that no
/// process holds. With `multi_queue` the tap is (or must be) an
/// `IFF_MULTI_QUEUE` one and the fd is one of its queues; further queues
/// are opened with `attach_existing`. The tap is not persistent: it goes
/// away when the last fd on it closes.
pub fn open_tap(name: &str, attach_existing: bool, multi_queue: bool) -> Result<OwnedFd> {
    check_name(name)?;
    let file = open_tun()?;
    tun_set_iff(&file, name, attach_existing, multi_queue)
        .map_err(|e| net_error(format!("Unable to create tap device {name}"), &e))?;
    Ok(OwnedFd::from(file))
}

/// [`open_tap`] for a new tap whose name may be taken: `Ok(None)` when
/// an interface of that name exists already.
pub fn try_create_tap(name: &str, multi_queue: bool) -> Result<Option<OwnedFd>> {
    check_name(name)?;
    let file = open_tun()?;
    match tun_set_iff(&file, name, false, multi_queue) {
        Ok(()) => Ok(Some(OwnedFd::from(file))),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(None),
        Err(e) => Err(net_error(format!("Unable to create tap device {name}"), &e)),
    }
}

fn tun_set_iff(
    file: &File,
    name: &str,
    attach_existing: bool,
    multi_queue: bool,
) -> io::Result<()> {
    let mut ifr = IfReq::new(name);
    let mut flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if !attach_existing {
        flags |= IFF_TUN_EXCL;
    }
    if multi_queue {
        flags |= IFF_MULTI_QUEUE;
    }
    ifr.set_flags(flags);
    ifr.ioctl(file.as_raw_fd(), TUNSETIFF)
}

/// Deletes the tap `name` unless some process still holds it
/// (`virNetDevTapDelete`). Returns whether it is gone.
pub fn delete_tap(name: &str) -> bool {
    if check_name(name).is_err() || !exists(name) {
        return true;
    }
    let Ok(file) = open_tun() else { return false };
    let attach = |flags: u16| {
        let mut ifr = IfReq::new(name);
        ifr.set_flags(flags);
        ifr.ioctl(file.as_raw_fd(), TUNSETIFF)
    };
    let attached = match attach(IFF_TAP | IFF_NO_PI) {
        // EINVAL: a multi-queue tap (or not a tap at all).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            attach(IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE)
        }
        r => r,
    };
    if attached.is_err() {
        // EBUSY: a VMM still has it; EINVAL: not a tap.
        return false;
    }
    // SAFETY: TUNSETPERSIST takes an integer argument, not a pointer.
    unsafe { libc::ioctl(file.as_raw_fd(), TUNSETPERSIST, 0 as libc::c_ulong) };
    drop(file);
    !exists(name)
}

/// Sets the MAC address of `name`.
pub fn set_mac(name: &str, mac: &MacAddr) -> Result<()> {
    let s = control().map_err(|e| net_error("Cannot open network interface control socket", &e))?;
    let mut ifr = IfReq::new(name);
    ifr.set_hwaddr(ARPHRD_ETHER, &mac.0);
    ifr.ioctl(s.as_raw_fd(), SIOCSIFHWADDR)
        .map_err(|e| net_error(format!("Cannot set interface MAC on '{name}'"), &e))
}

/// The MTU of `name`.
pub fn mtu(name: &str) -> Result<u32> {
    let s = control().map_err(|e| net_error("Cannot open network interface control socket", &e))?;
    let mut ifr = IfReq::new(name);
    ifr.ioctl(s.as_raw_fd(), SIOCGIFMTU)
        .map_err(|e| net_error(format!("Cannot get interface MTU on '{name}'"), &e))?;
    Ok(ifr.int().max(0) as u32)
}

/// Sets the MTU of `name`.
pub fn set_mtu(name: &str, mtu: u32) -> Result<()> {
    let s = control().map_err(|e| net_error("Cannot open network interface control socket", &e))?;
    let mut ifr = IfReq::new(name);
    ifr.set_int(i32::try_from(mtu).unwrap_or(i32::MAX));
    ifr.ioctl(s.as_raw_fd(), SIOCSIFMTU)
        .map_err(|e| net_error(format!("Cannot set interface MTU on '{name}'"), &e))
}

/// Brings `name` up.
pub fn set_online(name: &str) -> Result<()> {
    let s = control().map_err(|e| net_error("Cannot open network interface control socket", &e))?;
    let mut ifr = IfReq::new(name);
    ifr.ioctl(s.as_raw_fd(), SIOCGIFFLAGS)
        .map_err(|e| net_error(format!("Cannot get interface flags on '{name}'"), &e))?;
    let flags = ifr.flags() | IFF_UP;
    ifr.set_flags(flags);
    ifr.ioctl(s.as_raw_fd(), SIOCSIFFLAGS)
        .map_err(|e| net_error(format!("Cannot set interface flags on '{name}'"), &e))
}

/// Makes `port` a port of the bridge `bridge`.
pub fn bridge_add_port(bridge: &str, port: &str) -> Result<()> {
    let what = || format!("Unable to add bridge {bridge} port {port}");
    let s = control().map_err(|e| net_error("Cannot open network interface control socket", &e))?;
    let idx = index(port)
        .map_err(|e| net_error(format!("Unable to get interface index for {port}"), &e))?;
    let mut ifr = IfReq::new(bridge);
    ifr.set_int(idx);
    ifr.ioctl(s.as_raw_fd(), SIOCBRADDIF)
        .map_err(|e| net_error(what(), &e))
}

/// Interface counters as the host sees them (`/proc/net/dev`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errs: u64,
    pub rx_drop: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errs: u64,
    pub tx_drop: u64,
}

impl Counters {
    /// The guest's view of a tap: what the host received, the guest sent.
    pub fn swapped(self) -> Counters {
        Counters {
            rx_bytes: self.tx_bytes,
            rx_packets: self.tx_packets,
            rx_errs: self.tx_errs,
            rx_drop: self.tx_drop,
            tx_bytes: self.rx_bytes,
            tx_packets: self.rx_packets,
            tx_errs: self.rx_errs,
            tx_drop: self.rx_drop,
        }
    }
}

/// The counters of `name` in a `/proc/net/dev` text.
pub fn parse_net_dev(text: &str, name: &str) -> Option<Counters> {
    for line in text.lines().skip(2) {
        let Some((iface, rest)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() != name {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        if v.len() < 12 {
            return None;
        }
        return Some(Counters {
            rx_bytes: v[0],
            rx_packets: v[1],
            rx_errs: v[2],
            rx_drop: v[3],
            tx_bytes: v[8],
            tx_packets: v[9],
            tx_errs: v[10],
            tx_drop: v[11],
        });
    }
    None
}

/// The host-side counters of `name`.
pub fn counters(name: &str) -> Option<Counters> {
    let text = std::fs::read_to_string("/proc/net/dev").ok()?;
    parse_net_dev(&text, name)
}

/// Complete IPv4 neighbour entries (address, link-layer address) in a
/// `/proc/net/arp` text.
pub fn parse_arp(text: &str) -> Vec<(String, MacAddr)> {
    const ATF_COM: u32 = 0x2;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            continue;
        }
        let flags = u32::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap_or(0);
        if flags & ATF_COM == 0 {
            continue;
        }
        if let Ok(mac) = MacAddr::parse(f[3]) {
            out.push((f[0].to_string(), mac));
        }
    }
    out
}

/// The host's IPv4 neighbour table (libvirt's ARP address source).
pub fn neighbours() -> Vec<(String, MacAddr)> {
    std::fs::read_to_string("/proc/net/arp")
        .map(|t| parse_arp(&t))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n \
            vnet0: 1000 10 1 2 0 0 0 0 5000 50 3 4 0 0 0 0\n";
        let c = parse_net_dev(text, "vnet0").unwrap();
        assert_eq!(
            (c.rx_bytes, c.rx_packets, c.rx_errs, c.rx_drop),
            (1000, 10, 1, 2)
        );
        assert_eq!(
            (c.tx_bytes, c.tx_packets, c.tx_errs, c.tx_drop),
            (5000, 50, 3, 4)
        );
        let g = c.swapped();
        assert_eq!((g.rx_bytes, g.tx_packets), (5000, 10));
        assert!(parse_net_dev(text, "vnet1").is_none());
    }

    #[test]
    fn reads_complete_arp_entries() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
            10.0.2.15        0x1         0x2         52:54:00:6f:78:08     *        br0\n\
            10.0.2.16        0x1         0x0         00:00:00:00:00:00     *        br0\n";
        let n = parse_arp(text);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].0, "10.0.2.15");
        assert_eq!(n[0].1.to_string(), "52:54:00:6f:78:08");
    }

    #[test]
    fn refuses_bad_names() {
        assert!(open_tap("", false, false).is_err());
        assert!(open_tap("a-name-that-is-far-too-long", false, true).is_err());
        assert!(delete_tap("no/such"));
    }
}
