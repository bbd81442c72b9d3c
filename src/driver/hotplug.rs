//! Devices plugged into and released by a running guest: the live half of
//! `virDomainAttachDeviceFlags` and `virDomainDetachDeviceFlags` as
//! libvirt's QEMU driver applies them. Virtio disks, NICs, rngs and
//! consoles go through the VMM's PCI hotplug (`device-add`,
//! `device-del`); a console is the function on its virtio-serial
//! controller's slot.
//!
//! An attach prepares everything the device needs on the host (the image
//! opened and labelled for the guest's user, the tap made and plugged into
//! its bridge), has the VMM plug it, and only then records it: in the live
//! definition (with its alias and PCI address), the host resources and the
//! VMM's configuration (which a reboot starts from); `DEVICE_ADDED`
//! follows. Whatever fails on the way undoes what was prepared.
//!
//! A detach asks the guest to release the device and waits up to five
//! seconds for it, as libvirt does; the release itself, asked for or not,
//! arrives as the VMM's `device-deleted` event, which frees the device's
//! host resources, drops it from the live definition and emits
//! `DEVICE_REMOVED` ([`device_released`]). A guest that does not release
//! it in time keeps it, and the detach still succeeds: the release may
//! come later.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::{DeviceConfig, SerialConfig};
use crate::xml::Domain;
use crate::xml::model::address::Address;
use crate::xml::model::chardev::Chardev;
use crate::xml::model::controller::ControllerType;
use crate::xml::model::devices::{Devices, insert_disk};
use crate::xml::model::disk::{DiskBus, dev_name_index};
use crate::xml::model::interface::InterfaceType;

use super::Inner;
use super::console_host::ConsoleHost;
use super::device_config::Action;
use super::devices::{self, is_virtio_console};
use super::domain::{DomainObj, Live};
use super::hostnet::{self, Taps};
use super::lifecycle::not_running;
use super::resolve::DiskRes;
use super::security_dac::{self, Labels};
use super::state::EventKind;
use super::supervise;
use super::vmm::{Release, Vmm};

/// How long a detach waits for the guest to release the device
/// (libvirt's `QEMU_UNPLUG_TIMEOUT`).
pub(super) const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// The one device of an attach or detach request that a running guest
/// can gain or lose.
pub(super) enum LiveDevice {
    Disk(crate::xml::model::disk::Disk),
    Interface(crate::xml::model::interface::Interface),
    Rng(crate::xml::model::virtio_misc::Rng),
    Console(Chardev),
}

impl LiveDevice {
    /// The device `new` holds, if it is one a running guest can gain or
    /// lose: a virtio disk (not a CD-ROM), a NIC, an rng, a virtio console.
    pub(super) fn from_devices(mut new: Devices) -> Option<LiveDevice> {
        if let Some(d) = new.disks.pop() {
            let plain = d.device == crate::xml::model::disk::DiskDevice::Disk;
            return (plain && d.bus() == DiskBus::Virtio).then_some(LiveDevice::Disk(d));
        }
        if let Some(i) = new.interfaces.pop() {
            return Some(LiveDevice::Interface(i));
        }
        if let Some(c) = new.consoles.pop() {
            return is_virtio_console(&c).then_some(LiveDevice::Console(c));
        }
        new.rngs.pop().map(LiveDevice::Rng)
    }
}

/// The PCI slot of a device's address on bus 0.
fn slot_of(address: Option<&Address>) -> Option<u8> {
    address
        .and_then(Address::pci)
        .filter(|p| p.domain == 0 && p.bus == 0)
        .map(|p| p.slot)
}

/// libvirt's alias for a device plugged in: `prefix` and the number after
/// the highest one in use.
fn next_alias<'a>(prefix: &str, used: impl Iterator<Item = &'a Option<String>>) -> String {
    format!("{prefix}{}", next_index(&[prefix], used))
}

/// The number after the highest one of the aliases `used` that start
/// with one of `prefixes`.
fn next_index<'a>(prefixes: &[&str], used: impl Iterator<Item = &'a Option<String>>) -> u32 {
    used.filter_map(|a| {
        let a = a.as_deref()?;
        prefixes
            .iter()
            .find_map(|p| a.strip_prefix(p)?.parse::<u32>().ok())
    })
    .map(|n| n + 1)
    .max()
    .unwrap_or(0)
}

/// What an attach prepared on the host, undone on drop until recorded.
struct Prepared {
    device: DeviceConfig,
    image: Option<std::fs::File>,
    taps: Taps,
    labels: Labels,
    disk: Option<DiskRes>,
    console: Option<ConsoleHost>,
}

impl Prepared {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds: Vec<BorrowedFd<'_>> = self.image.iter().map(AsFd::as_fd).collect();
        fds.extend(self.taps.borrowed_fds());
        fds.extend(
            self.console
                .iter()
                .filter_map(|c| c.fd.as_ref().map(AsFd::as_fd)),
        );
        fds
    }
}

impl super::Driver {
    /// Plugs `device` into the running guest `obj` (the caller holds its
    /// job and has checked the flags). The live definition gains it as a
    /// define would add it (`add` puts it into a definition): its PCI
    /// address, a generated MAC, then its live alias.
    pub(super) async fn attach_live(
        &self,
        obj: &Arc<DomainObj>,
        device: LiveDevice,
        add: impl FnOnce(&mut Domain) -> Result<()>,
    ) -> Result<()> {
        let (vmm, live_def) = {
            let d = obj.data();
            let live = d.live.as_ref().ok_or_else(not_running)?;
            (live.vmm.clone(), live.def.clone())
        };
        // The device as a define places it: added to a copy of the live
        // definition that then goes through parsing and defaults.
        let mut probe = live_def.clone();
        add(&mut probe)?;
        let defined = super::device_config::as_defined(&probe)?.devices;
        let missing = || Error::internal("the attached device is not in the definition");
        let mut device = match device {
            LiveDevice::Disk(d) => LiveDevice::Disk(
                defined
                    .disks
                    .into_iter()
                    .find(|x| x.target.dev == d.target.dev)
                    .ok_or_else(missing)?,
            ),
            LiveDevice::Interface(_) => {
                LiveDevice::Interface(defined.interfaces.into_iter().last().ok_or_else(missing)?)
            }
            LiveDevice::Rng(_) => {
                LiveDevice::Rng(defined.rngs.into_iter().last().ok_or_else(missing)?)
            }
            LiveDevice::Console(_) => LiveDevice::Console(
                defined
                    .consoles
                    .into_iter()
                    .rfind(is_virtio_console)
                    .ok_or_else(missing)?,
            ),
        };
        let position = vmm.config().devices.len();
        let prepared = self.prepare(&live_def, &mut device, position).await?;
        let slot = vmm
            .device_add(prepared.device.clone(), &prepared.fds())
            .await?;
        if Some(slot) != prepared.device.pci_slot() {
            // Never expected: the slot was free in the live definition.
            let _ = vmm.device_del(slot).await;
            return Err(Error::internal(format!(
                "the device went to PCI slot {slot}, not the one it was given"
            )));
        }
        let alias = self.record_attached(obj, &vmm, device, prepared);
        supervise::write_status(&self.inner, obj);
        self.inner
            .emit_kind(obj.uuid, &obj.name(), EventKind::DeviceAdded { alias });
        Ok(())
    }

    /// The host side of a device about to be plugged in: its VMM
    /// configuration (at `position` among the VMM's devices) and what it
    /// holds open.
    async fn prepare(
        &self,
        live_def: &Domain,
        device: &mut LiveDevice,
        position: usize,
    ) -> Result<Prepared> {
        let mut slots = devices::SlotMap::new(live_def);
        let mut prepared = Prepared {
            device: DeviceConfig::Rng(Default::default()),
            image: None,
            taps: Taps::default(),
            labels: Labels::default(),
            disk: None,
            console: None,
        };
        match device {
            LiveDevice::Disk(disk) => {
                let disk = super::resolve::translate_volume(disk, &self.inner.storage)?;
                let (cfg, res) = devices::disk(&disk, &mut slots)?;
                let image = std::fs::OpenOptions::new()
                    .read(true)
                    .write(!cfg.readonly)
                    .open(&cfg.path)
                    .map_err(|e| {
                        super::resolve::access_error(&cfg.path.to_string_lossy(), true, &e)
                    })?;
                // Labelled as at start, so that a reboot's VMM opens it too.
                if let Some(user) = &self.inner.cfg.confinement.user {
                    prepared.labels = security_dac::label(
                        user,
                        self.inner.cfg.confinement.dynamic_ownership,
                        &[(cfg.path.clone(), !cfg.readonly)],
                    )?;
                }
                prepared.image = Some(image);
                prepared.disk = Some(res);
                prepared.device = DeviceConfig::Block(cfg);
            }
            LiveDevice::Interface(iface) => {
                let target = match iface.iface_type {
                    InterfaceType::Network => {
                        let name = iface.source.as_ref().and_then(|s| s.network.as_deref());
                        Some(self.inner.networks.port_target(name.unwrap_or_default())?)
                    }
                    _ => None,
                };
                let index = live_def.devices.interfaces.len();
                let (cfg, mut plan) =
                    devices::interface(iface, index, target.as_ref(), &mut slots)?;
                if cfg.model != crate::vmm::config::NetModel::Virtio {
                    return Err(Error::unsupported(format!(
                        "live attach of an interface of model '{}' is not supported",
                        iface.model.as_deref().unwrap_or_default()
                    )));
                }
                plan.device = position;
                if iface.mac.is_none() {
                    iface.mac = Some(plan.mac);
                }
                prepared.taps =
                    hostnet::acquire(std::slice::from_ref(&plan), &self.inner.tap_names)?;
                let mut cfg = cfg;
                if prepared.taps.records().iter().any(|r| r.passt.is_some()) {
                    // Any value: the one descriptor is a stream backend.
                    cfg.stream_fd = Some(0);
                }
                prepared.device = DeviceConfig::Net(cfg);
            }
            LiveDevice::Rng(rng) => {
                prepared.device = devices::rng(rng, &mut slots)?;
            }
            LiveDevice::Console(con) => {
                // libvirt puts the port on a controller the guest has.
                let controllers = &live_def.devices.controllers;
                if !controllers
                    .iter()
                    .any(|c| c.ctrl_type == ControllerType::VirtioSerial)
                {
                    return Err(Error::internal(
                        "no virtio-serial controllers are available",
                    ));
                }
                let mut with = live_def.clone();
                with.devices.consoles.push(con.clone());
                let Some(DeviceConfig::Console(mut cfg)) = devices::console(&with, &mut slots)?
                else {
                    return Err(Error::internal("the console has no virtio device"));
                };
                let host = ConsoleHost::open(&cfg.backend)?;
                if let Some(pty) = &host.pty {
                    supervise::set_pty(con, pty);
                }
                cfg.backend = host.sent.clone();
                prepared.console = Some(host);
                prepared.device = DeviceConfig::Console(cfg);
            }
        }
        Ok(prepared)
    }

    /// Records a device the VMM plugged in; its alias.
    fn record_attached(
        &self,
        obj: &Arc<DomainObj>,
        vmm: &Vmm,
        device: LiveDevice,
        prepared: Prepared,
    ) -> String {
        let Prepared {
            device: mut cfg,
            image,
            taps,
            labels,
            disk,
            console,
        } = prepared;
        // The VMM holds the image now.
        drop(image);
        let records = taps.records();
        let owners = labels.keep();
        let mut d = obj.data();
        let Some(live) = d.live.as_mut() else {
            // Stopped meanwhile: what was prepared goes with it.
            drop(d);
            hostnet::release(&records);
            security_dac::restore(&owners, |_| false);
            return String::new();
        };
        if let Some(mut c) = console {
            // The VMM holds the backend now; a socket stays until released.
            c.keep();
        }
        let devs = &mut live.def.devices;
        let alias = match device {
            LiveDevice::Disk(mut disk) => {
                let alias = format!(
                    "virtio-disk{}",
                    dev_name_index(&disk.target.dev).unwrap_or(0)
                );
                disk.alias = Some(alias.clone());
                insert_disk(&mut devs.disks, disk);
                alias
            }
            LiveDevice::Interface(mut iface) => {
                let alias = next_alias("net", devs.interfaces.iter().map(|i| &i.alias));
                iface.alias = Some(alias.clone());
                if let Some(r) = records.first().filter(|r| !r.ifname.is_empty()) {
                    iface.target_dev = Some(r.ifname.clone());
                }
                devs.interfaces.push(iface);
                alias
            }
            LiveDevice::Rng(mut rng) => {
                let alias = next_alias("rng", devs.rngs.iter().map(|r| &r.alias));
                rng.alias = Some(alias.clone());
                devs.rngs.push(rng);
                alias
            }
            LiveDevice::Console(mut con) => {
                // The serial port's console alias ("serial0") counts.
                let n = next_index(
                    &["console", "serial"],
                    devs.consoles.iter().map(|c| &c.alias),
                );
                let alias = format!("console{n}");
                con.alias = Some(alias.clone());
                devs.consoles.push(con);
                alias
            }
        };
        live.host.disks.extend(disk);
        live.host.nets.extend(records.iter().cloned());
        live.host.owners.extend(owners);
        live.taps.extend(taps);
        cfg.forget_descriptors();
        vmm.config_mut().devices.push(cfg);
        drop(d);
        self.inner.note_network_ports(&records, true);
        alias
    }

    /// Asks the running guest to release the device of `new` (the caller
    /// holds the job and checked the flags) and waits a while for it.
    pub(super) async fn detach_live(
        &self,
        obj: &Arc<DomainObj>,
        kind: &str,
        without: impl FnOnce(&Domain) -> Result<Domain>,
    ) -> Result<()> {
        let (vmm, live_def) = {
            let d = obj.data();
            let live = d.live.as_ref().ok_or_else(not_running)?;
            (live.vmm.clone(), live.def.clone())
        };
        // The definition without it: the device that went is the one.
        let after = without(&live_def)?;
        let slot = gone_slot(&live_def, &after)
            .ok_or_else(|| super::device_config::unsupported("live", Action::Detach, kind))?;
        let mut released = vmm.released.subscribe();
        vmm.device_del(slot).await?;
        let wait = super::vmm::next_announcement(&mut released, |seen| match seen {
            Some((s, answer)) if s == slot => Some(answer),
            _ => None,
        });
        match tokio::time::timeout(RELEASE_WAIT, wait).await {
            Ok(Release::Ejected) => Ok(()),
            Ok(Release::Refused) => Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Qemu,
                "unplug of device was rejected by the guest",
            )),
            Err(_) => {
                // libvirt returns too: the removal may still come.
                tracing::info!(
                    domain = obj.name(),
                    slot,
                    "the guest has not released the device yet"
                );
                Ok(())
            }
        }
    }
}

/// The devices a running guest can lose (disks, NICs, rngs, virtio
/// consoles; no two share a slot): each one's PCI slot and alias.
fn pluggable(devs: &Devices) -> impl Iterator<Item = (u8, &Option<String>)> {
    let disks = devs
        .disks
        .iter()
        .map(|x| (slot_of(x.address.as_ref()), &x.alias));
    let nics = devs
        .interfaces
        .iter()
        .map(|x| (slot_of(x.address.as_ref()), &x.alias));
    let rngs = devs
        .rngs
        .iter()
        .map(|x| (slot_of(x.address.as_ref()), &x.alias));
    let consoles = devs
        .consoles
        .iter()
        .map(|c| (console_slot(devs, c), &c.alias));
    disks
        .chain(nics)
        .chain(rngs)
        .chain(consoles)
        .filter_map(|(slot, alias)| Some((slot?, alias)))
}

/// The PCI slot of a virtio console's function: its controller's.
fn console_slot(devs: &Devices, c: &Chardev) -> Option<u8> {
    if !is_virtio_console(c) {
        return None;
    }
    slot_of(devices::console_controller_address(devs, c))
}

/// The PCI slot of the device `before` has and `after` lacks.
fn gone_slot(before: &Domain, after: &Domain) -> Option<u8> {
    let left: Vec<u8> = pluggable(&after.devices).map(|(s, _)| s).collect();
    pluggable(&before.devices)
        .map(|(s, _)| s)
        .find(|s| !left.contains(s))
}

/// The guest released the device in PCI `slot` (the VMM's
/// `device-deleted`): it leaves the live definition and the VMM's
/// configuration, its tap goes, its image's owner comes back, and
/// `DEVICE_REMOVED` is emitted.
pub(super) fn device_released(
    inner: &Inner,
    obj: &Arc<DomainObj>,
    vmm: &Vmm,
    generation: u64,
    slot: u8,
) {
    let (name, alias, nets, owners, taps, gone) = {
        let mut d = obj.data();
        let name = d.name.clone();
        let Some(live) = d.live.as_mut().filter(|l| l.generation == generation) else {
            return;
        };
        let Some((alias, index)) = remove_device(live, slot) else {
            return;
        };
        let nets: Vec<_> = live
            .host
            .nets
            .iter()
            .filter(|r| r.slot == slot)
            .cloned()
            .collect();
        live.host.nets.retain(|r| r.slot != slot);
        for r in &mut live.host.nets {
            if let Some(i) = index
                && r.index > i
            {
                r.index -= 1;
            }
        }
        let paths: Vec<_> = live
            .host
            .disks
            .iter()
            .filter(|r| r.slot == slot)
            .map(|r| r.path.clone())
            .collect();
        live.host.disks.retain(|r| r.slot != slot);
        let (owners, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut live.host.owners)
            .into_iter()
            .partition(|o| paths.contains(&o.path));
        live.host.owners = kept;
        let taps = live.taps.take_slot(slot);
        let mut cfg = vmm.config_mut();
        let slots = crate::vmm::virtio::setup::assign_slots(&cfg.devices);
        let mut gone = None;
        if let Some(pos) = slots.iter().position(|s| *s == slot) {
            gone = Some(cfg.devices.remove(pos));
            // Devices after it moved up one place in the list.
            live.taps.device_removed(pos);
            for r in &mut live.host.nets {
                if r.device > pos {
                    r.device -= 1;
                }
            }
        }
        (name, alias, nets, owners, taps, gone)
    };
    // A console's socket goes with it, as the VMM's would at its exit.
    if let Some(DeviceConfig::Console(c)) = &gone
        && let SerialConfig::Unix { path } = &c.backend
    {
        let _ = std::fs::remove_file(path);
    }
    let _ = vmm.released.send((slot, Release::Ejected));
    drop(taps);
    hostnet::release(&nets);
    inner.note_network_ports(&nets, false);
    security_dac::restore(&owners, |p| {
        super::supervise::file_in_use(inner, Some(&obj.uuid), p)
    });
    supervise::write_status(inner, obj);
    inner.emit_kind(obj.uuid, &name, EventKind::DeviceRemoved { alias });
}

/// The guest refused to release the device in PCI `slot` (its `_OST`
/// answered the Eject Request with a failure): the device stays, a
/// waiting detach fails, and `DEVICE_REMOVAL_FAILED` is emitted.
pub(super) fn removal_refused(
    inner: &Inner,
    obj: &Arc<DomainObj>,
    vmm: &Vmm,
    generation: u64,
    slot: u8,
) {
    let (name, alias) = {
        let d = obj.data();
        let Some(live) = d.live.as_ref().filter(|l| l.generation == generation) else {
            return;
        };
        let alias = pluggable(&live.def.devices)
            .find(|(s, _)| *s == slot)
            .and_then(|(_, alias)| alias.clone());
        (d.name.clone(), alias)
    };
    let _ = vmm.released.send((slot, Release::Refused));
    if let Some(alias) = alias {
        tracing::info!(
            domain = name,
            alias,
            "the guest refused to release a device"
        );
        inner.emit_kind(obj.uuid, &name, EventKind::DeviceRemovalFailed { alias });
    }
}

/// Takes the device at PCI `slot` out of the live definition: its alias,
/// and its position among the NICs if it is one.
fn remove_device(live: &mut Live, slot: u8) -> Option<(String, Option<usize>)> {
    let devs = &mut live.def.devices;
    if let Some(i) = devs
        .disks
        .iter()
        .position(|d| slot_of(d.address.as_ref()) == Some(slot))
    {
        return Some((devs.disks.remove(i).alias.unwrap_or_default(), None));
    }
    if let Some(i) = devs
        .interfaces
        .iter()
        .position(|n| slot_of(n.address.as_ref()) == Some(slot))
    {
        return Some((devs.interfaces.remove(i).alias.unwrap_or_default(), Some(i)));
    }
    if let Some(i) = devs
        .rngs
        .iter()
        .position(|r| slot_of(r.address.as_ref()) == Some(slot))
    {
        return Some((devs.rngs.remove(i).alias.unwrap_or_default(), None));
    }
    if let Some(i) = devs
        .consoles
        .iter()
        .position(|c| console_slot(devs, c) == Some(slot))
    {
        return Some((devs.consoles.remove(i).alias.unwrap_or_default(), None));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_follow_the_highest_in_use() {
        let used = [Some("net0".to_string()), Some("net3".to_string()), None];
        assert_eq!(next_alias("net", used.iter()), "net4");
        assert_eq!(next_alias("rng", std::iter::empty()), "rng0");
        let user = [Some("ua-mine".to_string())];
        assert_eq!(next_alias("net", user.iter()), "net0");
        let consoles = [Some("serial0".to_string())];
        assert_eq!(next_index(&["console", "serial"], consoles.iter()), 1);
    }
}
