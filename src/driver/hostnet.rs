//! The host side of a domain's `<interface>`s: the taps a start makes
//! (or opens by name), held by the driver while the domain runs so that
//! a new VMM after a reboot gets them again, and removed when it stops.
//!
//! Taps are made without `TUNSETPERSIST`: the kernel removes one when
//! the last fd on it closes, so a VMM that dies while the daemon is
//! down takes its taps with it. The driver still deletes the taps it
//! made when a domain stops, in case some other process kept one open.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vmm::config::{DeviceConfig, VmConfig};
use crate::xml::mac::MacAddr;

use super::netdev;
use super::passt::{self, PasstRes};

/// Prefix of the tap names the driver makes up, as libvirt's.
const GENERATED_PREFIX: &str = "vnet";

/// An interface as resolution plans it.
#[derive(Clone, Debug)]
pub struct NetPlan {
    /// Position among the domain's `<interface>`s.
    pub index: usize,
    /// Position of its device in `VmConfig.devices`.
    pub device: usize,
    /// `<target dev>`, if the definition names the tap.
    pub ifname: Option<String>,
    pub mac: MacAddr,
    /// The bridge to join (`type='bridge'`, or a network's).
    pub bridge: Option<String>,
    /// The virtual network it is on (`type='network'`).
    pub network: Option<String>,
    /// User-mode networking through passt (`type='user'`).
    pub passt: bool,
    /// The driver makes and removes the tap (all but `type='ethernet'`
    /// with `managed='no'`, whose tap must exist).
    pub managed: bool,
    pub slot: u8,
    /// Queue pairs: one tap queue (fd) each, `IFF_MULTI_QUEUE` when > 1.
    pub queues: u16,
}

fn one() -> u16 {
    1
}

fn is_one(q: &u16) -> bool {
    *q == 1
}

/// An interface of a running domain, as its status file records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRes {
    /// Position among the domain's `<interface>`s.
    pub index: usize,
    /// Position of its device in `VmConfig.devices`.
    pub device: usize,
    pub ifname: String,
    pub mac: String,
    pub bridge: Option<String>,
    /// The virtual network it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The passt serving a `type='user'` interface (no tap then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passt: Option<PasstRes>,
    /// Made for this domain (removed when it stops).
    pub created: bool,
    pub slot: u8,
    /// Tap queues held (a multi-queue tap when > 1).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub queues: u16,
}

/// Hands out `vnetN` names, never twice while the daemon runs.
#[derive(Default)]
pub struct TapNames {
    next: AtomicU32,
}

impl TapNames {
    fn take(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        format!("{GENERATED_PREFIX}{n}")
    }

    /// Notes a name in use, so that later names come after it.
    pub fn reserve(&self, name: &str) {
        if let Some(n) = name
            .strip_prefix(GENERATED_PREFIX)
            .and_then(|d| d.parse::<u32>().ok())
        {
            self.next.fetch_max(n.saturating_add(1), Ordering::SeqCst);
        }
    }
}

/// The taps a domain holds. Dropping them closes the driver's fds and
/// removes the taps made for the domain that no process holds any more.
#[derive(Default)]
pub struct Taps {
    /// Each interface with one fd per tap queue.
    taps: Vec<(NetRes, Vec<OwnedFd>)>,
}

impl Taps {
    /// What the status file records of them.
    pub fn records(&self) -> Vec<NetRes> {
        self.taps.iter().map(|(r, _)| r.clone()).collect()
    }

    /// The fds a VMM must inherit.
    pub fn fds(&self) -> Vec<RawFd> {
        self.taps
            .iter()
            .flat_map(|(_, fds)| fds.iter().map(AsRawFd::as_raw_fd))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.taps.is_empty()
    }

    /// The fds, to hand to a running VMM.
    pub fn borrowed_fds(&self) -> Vec<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.taps
            .iter()
            .flat_map(|(_, fds)| fds.iter().map(AsFd::as_fd))
            .collect()
    }

    /// Takes over `other`'s taps (a NIC plugged into the running guest).
    pub fn extend(&mut self, mut other: Taps) {
        self.taps.append(&mut other.taps);
    }

    /// Takes out the taps of the NIC in PCI `slot` (released by the
    /// guest); dropping them removes them.
    pub fn take_slot(&mut self, slot: u8) -> Taps {
        let (gone, kept) = std::mem::take(&mut self.taps)
            .into_iter()
            .partition(|(r, _)| r.slot == slot);
        self.taps = kept;
        Taps { taps: gone }
    }

    /// The VMM's device at `position` of its list is gone: those after
    /// it moved up one place.
    pub fn device_removed(&mut self, position: usize) {
        for (r, _) in &mut self.taps {
            if r.device > position {
                r.device -= 1;
            }
        }
    }

    /// Points the net devices of `cfg` at the inherited tap fds.
    pub fn bind(&self, cfg: &mut VmConfig) {
        for (res, fds) in &self.taps {
            if let Some(DeviceConfig::Net(n)) = cfg.devices.get_mut(res.device) {
                let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
                n.tap_name = None;
                if res.passt.is_some() {
                    n.stream_fd = raw.first().copied();
                    n.tap_fd = None;
                    n.tap_fds = Vec::new();
                    n.queues = None;
                } else if let [fd] = raw[..] {
                    n.tap_fd = Some(fd);
                    n.tap_fds = Vec::new();
                    n.queues = None;
                } else {
                    n.tap_fd = None;
                    n.queues = u16::try_from(raw.len()).ok();
                    n.tap_fds = raw;
                }
            }
        }
    }
}

impl Drop for Taps {
    fn drop(&mut self) {
        let taps = std::mem::take(&mut self.taps);
        let (records, fds): (Vec<NetRes>, Vec<Vec<OwnedFd>>) = taps.into_iter().unzip();
        drop(fds);
        release(&records);
    }
}

/// The MAC a tap gets: the guest's with the first byte 0xFE (0xFA if it
/// already is 0xFE), so that a bridge never takes the tap's MAC as its
/// own address and the guest's stays unique (libvirt's rule).
fn tap_mac(guest: &MacAddr) -> MacAddr {
    let mut m = *guest;
    m.0[0] = if m.0[0] == 0xFE { 0xFA } else { 0xFE };
    m
}

/// MAC, MTU and bridge port of a tap made for a guest, then link up.
fn configure(name: &str, mac: &MacAddr, bridge: Option<&str>) -> Result<()> {
    netdev::set_mac(name, &tap_mac(mac))?;
    if let Some(br) = bridge {
        // The tap takes the bridge's MTU so that joining never lowers it.
        let mtu = netdev::mtu(br)?;
        netdev::set_mtu(name, mtu)?;
        netdev::bridge_add_port(br, name)?;
    }
    netdev::set_online(name)
}

/// A new tap, named `wanted` or `vnetN` (its first queue).
fn create(wanted: Option<&str>, names: &TapNames, mq: bool) -> Result<(String, OwnedFd)> {
    if let Some(name) = wanted {
        return Ok((name.to_string(), netdev::open_tap(name, false, mq)?));
    }
    // Names other programs took are skipped.
    for _ in 0..1024 {
        let name = names.take();
        if netdev::exists(&name) {
            continue;
        }
        if let Some(fd) = netdev::try_create_tap(&name, mq)? {
            return Ok((name, fd));
        }
    }
    Err(Error::internal("no free tap device name"))
}

/// Makes (or opens) the taps of `plans`. On failure nothing is left.
pub fn acquire(plans: &[NetPlan], names: &TapNames) -> Result<Taps> {
    let mut out = Taps::default();
    for p in plans {
        if p.passt {
            let (res, fd) = passt::start(&p.mac.to_string())?;
            out.taps.push((user_record(p, res), vec![fd]));
            continue;
        }
        let queues = p.queues.max(1);
        let mq = queues > 1;
        let (ifname, fd) = if p.managed {
            create(p.ifname.as_deref(), names, mq)?
        } else {
            let name = p.ifname.clone().unwrap_or_default();
            if !netdev::exists(&name) {
                return Err(Error::internal(
                    "target managed='no' but specified dev doesn't exist",
                ));
            }
            let fd = netdev::open_tap(&name, true, mq)?;
            (name, fd)
        };
        // Recorded before the other queues are opened and it is
        // configured, so that a failure removes it.
        out.taps.push((
            NetRes {
                index: p.index,
                device: p.device,
                ifname: ifname.clone(),
                mac: p.mac.to_string(),
                bridge: p.bridge.clone(),
                network: p.network.clone(),
                passt: None,
                created: p.managed,
                slot: p.slot,
                queues,
            },
            vec![fd],
        ));
        for _ in 1..queues {
            let fd = netdev::open_tap(&ifname, true, true)?;
            if let Some((_, fds)) = out.taps.last_mut() {
                fds.push(fd);
            }
        }
        if p.managed {
            configure(&ifname, &p.mac, p.bridge.as_deref())?;
        }
    }
    Ok(out)
}

/// The taps of a running domain once more, after the daemon restarted
/// (it held no fds then): made again where the old VMM took them along.
pub fn reacquire(records: &[NetRes]) -> Result<Taps> {
    let mut out = Taps::default();
    for r in records {
        if let Some(old) = &r.passt {
            // The old passt went with the old VMM's connection.
            passt::stop(old);
            let (res, fd) = passt::start(&r.mac)?;
            out.taps.push((
                NetRes {
                    passt: Some(res),
                    ..r.clone()
                },
                vec![fd],
            ));
            continue;
        }
        let fresh = !netdev::exists(&r.ifname);
        if fresh && !r.created {
            return Err(Error::internal(
                "target managed='no' but specified dev doesn't exist",
            ));
        }
        let queues = r.queues.max(1);
        let mut fds = Vec::with_capacity(usize::from(queues));
        for _ in 0..queues {
            fds.push(netdev::open_tap(&r.ifname, true, queues > 1)?);
        }
        out.taps.push((r.clone(), fds));
        if fresh {
            let mac = MacAddr::parse(&r.mac)?;
            configure(&r.ifname, &mac, r.bridge.as_deref())?;
        }
    }
    Ok(out)
}

/// The record of a `type='user'` interface served by passt.
fn user_record(p: &NetPlan, res: PasstRes) -> NetRes {
    NetRes {
        index: p.index,
        device: p.device,
        ifname: String::new(),
        mac: p.mac.to_string(),
        bridge: None,
        network: None,
        passt: Some(res),
        created: false,
        slot: p.slot,
        queues: 1,
    }
}

/// Removes the taps made for a domain, where no process holds them, and
/// stops its passt processes.
pub fn release(records: &[NetRes]) {
    for r in records.iter().filter_map(|r| r.passt.as_ref()) {
        passt::stop(r);
    }
    for r in records.iter().filter(|r| r.created) {
        if !netdev::delete_tap(&r.ifname) {
            tracing::warn!(tap = r.ifname, "tap still in use, not removed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs_follow_libvirt() {
        let names = TapNames::default();
        assert_eq!(names.take(), "vnet0");
        names.reserve("vnet7");
        names.reserve("eth0");
        assert_eq!(names.take(), "vnet8");
        let m = MacAddr::parse("52:54:00:01:02:03").unwrap();
        assert_eq!(tap_mac(&m).to_string(), "fe:54:00:01:02:03");
        let m = MacAddr::parse("fe:54:00:01:02:03").unwrap();
        assert_eq!(tap_mac(&m).to_string(), "fa:54:00:01:02:03");
    }

    #[test]
    fn status_records_keep_the_queue_count() {
        // Records written before multiqueue have no count: one queue.
        let old = r#"{"index":0,"device":1,"ifname":"vnet0","mac":"52:54:00:01:02:03",
            "bridge":"br0","created":true,"slot":5}"#;
        let r: NetRes = serde_json::from_str(old).unwrap();
        assert_eq!(r.queues, 1);
        assert!(!serde_json::to_string(&r).unwrap().contains("queues"));
        let r = NetRes { queues: 4, ..r };
        let back: NetRes = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
