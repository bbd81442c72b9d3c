//! Questions about a guest's devices that every front end asks the same
//! way: block and interface statistics, interface addresses, block info,
//! and the (empty) snapshot list.

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::mac::MacAddr;
use crate::xml::model::interface::InterfaceType;

use super::Driver;
use super::domain::DomainObj;
use super::netdev::{self, Counters};
use super::stats::{self, BlockIo};

/// `virDomainInterfaceAddresses` sources.
pub mod addr_source {
    pub const LEASE: u32 = 0;
    pub const AGENT: u32 = 1;
    pub const ARP: u32 = 2;
}

/// `VIR_IP_ADDR_TYPE_IPV4`.
const IP_ADDR_TYPE_IPV4: i32 = 0;

/// One interface with its addresses (`virDomainInterface`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceAddrs {
    pub name: String,
    pub hwaddr: String,
    /// (type, address, prefix).
    pub addrs: Vec<(i32, String, u32)>,
}

impl Driver {
    /// `virDomainBlockStats(Flags)`: one disk's counters (by target or
    /// source path), or every disk's summed for an empty `path`.
    pub async fn block_stats(
        &self,
        obj: &Arc<DomainObj>,
        path: &str,
        flags: u32,
    ) -> Result<BlockIo> {
        super::check_flags(
            flags,
            super::tuning::TYPED_PARAM_STRING_OKAY,
            "virDomainBlockStatsFlags",
        )?;
        let s = self.stats(obj).await?;
        stats::block_io(&s, path)
    }

    /// `virDomainInterfaceStats`: the counters of the interface whose
    /// tap is `device` (or whose MAC it is), as the guest sees them.
    pub fn interface_stats(&self, obj: &DomainObj, device: &str) -> Result<Counters> {
        let ifname = obj
            .with_live(|live| {
                let ifaces = &live.def.devices.interfaces;
                let found = match MacAddr::parse(device) {
                    Ok(mac) => ifaces.iter().find(|i| i.mac == Some(mac)),
                    Err(_) => ifaces
                        .iter()
                        .find(|i| i.target_dev.as_deref() == Some(device)),
                };
                found.and_then(|i| i.target_dev.clone())
            })?
            .ok_or_else(|| Error::invalid_arg(format!("'{device}' is not a known interface")))?;
        netdev::counters(&ifname)
            .map(Counters::swapped)
            .ok_or_else(|| {
                Error::new(
                    ErrorCode::InternalError,
                    ErrorDomain::None,
                    "/proc/net/dev: Interface not found",
                )
            })
    }

    /// `virDomainInterfaceAddresses`: from the DHCP leases of the
    /// interfaces' virtual networks (`LEASE`), or from the host's
    /// neighbour table (`ARP`).
    pub fn interface_addresses(
        &self,
        obj: &DomainObj,
        source: u32,
        flags: u32,
    ) -> Result<Vec<IfaceAddrs>> {
        if flags != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function virDomainInterfaceAddresses"
            )));
        }
        let nets: Vec<(String, MacAddr, Option<String>)> = obj.with_live(|live| {
            let ifaces = &live.def.devices.interfaces;
            ifaces
                .iter()
                .filter_map(|i| {
                    let network = (i.iface_type == InterfaceType::Network)
                        .then(|| i.source.as_ref().and_then(|s| s.network.clone()))
                        .flatten();
                    Some((i.target_dev.clone().unwrap_or_default(), i.mac?, network))
                })
                .collect()
        })?;
        let mut out = Vec::new();
        match source {
            addr_source::LEASE => {
                for (name, mac, network) in &nets {
                    let Some(network) = network else { continue };
                    let nets = self.networks();
                    let Ok(n) = nets.network_lookup_by_name(network) else {
                        continue;
                    };
                    let leases = nets.network_get_dhcp_leases(&n, Some(&mac.to_string()), 0)?;
                    if leases.is_empty() {
                        continue;
                    }
                    out.push(IfaceAddrs {
                        name: name.clone(),
                        hwaddr: mac.to_string(),
                        addrs: leases
                            .into_iter()
                            .map(|l| (l.ip_type, l.ipaddr, l.prefix))
                            .collect(),
                    });
                }
            }
            addr_source::ARP => {
                let table = netdev::neighbours();
                for (name, mac, _) in &nets {
                    for (ip, _) in table.iter().filter(|(_, m)| m == mac) {
                        out.push(IfaceAddrs {
                            name: name.clone(),
                            hwaddr: mac.to_string(),
                            addrs: vec![(IP_ADDR_TYPE_IPV4, ip.clone(), 0)],
                        });
                    }
                }
            }
            addr_source::AGENT => {
                return Err(Error::new(
                    ErrorCode::AgentUnresponsive,
                    ErrorDomain::Qemu,
                    "QEMU guest agent is not connected",
                ));
            }
            other => {
                return Err(Error::invalid_arg(format!(
                    "Unknown IP address data source {other}"
                )));
            }
        }
        Ok(out)
    }
}

impl Driver {
    /// `virDomainGetBlockInfo`: capacity, allocation and physical size of
    /// the disk whose target or source path is `disk`.
    pub fn get_block_info(
        &self,
        obj: &DomainObj,
        disk: &str,
        flags: u32,
    ) -> Result<crate::driver::image::Sizes> {
        if flags != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function qemuDomainGetBlockInfo"
            )));
        }
        let found = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let def = d
                .current_def()
                .ok_or_else(|| Error::internal("domain without a definition"))?;
            def.devices
                .disks
                .iter()
                .find(|x| {
                    x.target.dev == disk
                        || x.source.as_ref().and_then(|s| s.path.as_deref()) == Some(disk)
                })
                .cloned()
        };
        let not_assigned = || {
            Error::new(
                ErrorCode::InvalidArg,
                ErrorDomain::Qemu,
                format!("invalid path {disk} not assigned to domain"),
            )
        };
        let d = found.ok_or_else(not_assigned)?;
        let src = d.source.as_ref();
        let (path, format) = match (
            src.and_then(|s| s.pool.as_deref()),
            src.and_then(|s| s.volume.as_deref()),
        ) {
            (Some(pool), Some(vol)) if d.disk_type == crate::xml::model::disk::DiskType::Volume => {
                let (path, format, _) = self.storage().volume_source(pool, vol)?;
                (Some(path), Some(format))
            }
            _ => (
                src.and_then(|s| s.path.clone()),
                d.driver.as_ref().and_then(|x| x.format.clone()),
            ),
        };
        let path = path.ok_or_else(not_assigned)?;
        let format = match format.as_deref() {
            None | Some("raw") => crate::vmm::config::DiskFormat::Raw,
            Some("qcow2") => crate::vmm::config::DiskFormat::Qcow2,
            Some(other) => {
                return Err(Error::unsupported(format!(
                    "disk format '{other}' is not supported"
                )));
            }
        };
        crate::driver::image::sizes(std::path::Path::new(&path), format).ok_or_else(|| {
            Error::new(
                ErrorCode::SystemError,
                ErrorDomain::Qemu,
                format!("failed to stat file '{path}'"),
            )
        })
    }
}
