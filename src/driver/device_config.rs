//! `virDomainAttachDeviceFlags`, `virDomainDetachDeviceFlags` and
//! `virDomainDetachDeviceAlias` (and the flagless forms, which mean the
//! running guest): a device added to or removed from a domain's persistent
//! definition as libvirt's QEMU driver does it, with its checks and errors.
//! The changed definition goes through the same parsing, defaults
//! (addresses, MAC) and validation as a `define`, and is saved only when
//! all of that passes. A running guest's devices cannot be changed yet: a
//! request for the live guest gets libvirt's "not supported" error first,
//! so `--live --config` changes nothing either; a NIC's link state is the
//! one thing that changes live (`virDomainUpdateDeviceFlags`).

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::model::address::Address;
use crate::xml::model::devices::Devices;
use crate::xml::model::interface::Interface;
use crate::xml::tree::{self, Element};
use crate::xml::{Domain, FormatFlags, check_supported, parse_domain};

use super::Driver;
use super::domain::DomainObj;
use super::vcpus::{AFFECT_CONFIG, AFFECT_LIVE};

/// What a request does to a definition.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Attach,
    Detach,
    Update,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Attach => "attach",
            Action::Detach => "detach",
            Action::Update => "update",
        }
    }
}

/// libvirt's name for the kind of device an element describes
/// (`virDomainDeviceType`), as its errors print it.
fn device_type(element: &str) -> Result<&'static str> {
    Ok(match element {
        "disk" => "disk",
        "lease" => "lease",
        "filesystem" => "filesystem",
        "interface" => "net",
        "input" => "input",
        "sound" => "sound",
        "video" => "video",
        "hostdev" => "hostdev",
        "watchdog" => "watchdog",
        "controller" => "controller",
        "graphics" => "graphics",
        "hub" => "hub",
        "redirdev" => "redirdev",
        "smartcard" => "smartcard",
        "serial" | "parallel" | "console" | "channel" => "chr",
        "memballoon" => "memballoon",
        "nvram" => "nvram",
        "rng" => "rng",
        "shmem" => "shmem",
        "tpm" => "tpm",
        "panic" => "panic",
        "memory" => "memory",
        "iommu" => "iommu",
        "vsock" => "vsock",
        "audio" => "audio",
        other => {
            return Err(Error::xml(format!("unknown device type '{other}'")));
        }
    })
}

/// Kinds libvirt's QEMU driver cannot add to or remove from a persistent
/// definition.
fn persistent_change_supported(kind: &str) -> bool {
    !matches!(
        kind,
        "video"
            | "graphics"
            | "hub"
            | "smartcard"
            | "memballoon"
            | "nvram"
            | "tpm"
            | "panic"
            | "iommu"
            | "audio"
    )
}

fn missing(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::DeviceMissing, ErrorDomain::Domain, detail)
}

fn pci_text(a: &Option<Address>) -> Option<String> {
    match a {
        Some(Address::Pci { addr, .. }) => Some(format!(
            "{:04x}:{:02x}:{:02x}.{}",
            addr.domain, addr.bus, addr.slot, addr.function
        )),
        _ => None,
    }
}

/// The one element of a device document, parsed as the definition's
/// `<devices>` would hold it.
fn parse_device(xml: &str) -> Result<(&'static str, Devices)> {
    let elem = tree::parse_document(xml)?;
    let kind = device_type(&elem.name)?;
    let devices = Devices::parse(&Element::new("devices").with_child(elem))?;
    Ok((kind, devices))
}

/// `virDomainNetFindIdx`: the interface `new` names by MAC, PCI address
/// and alias, whichever it gives; exactly one must match.
fn find_interface(def: &Domain, new: &Interface) -> Result<usize> {
    let pci = pci_text(&new.address);
    let mut found = None;
    for (i, iface) in def.devices.interfaces.iter().enumerate() {
        if new.mac.is_some() && iface.mac != new.mac {
            continue;
        }
        if pci.is_some() && pci_text(&iface.address) != pci {
            continue;
        }
        if let (Some(a), Some(b)) = (&new.alias, &iface.alias)
            && a != b
        {
            continue;
        }
        if found.is_some() {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Domain,
                match &new.mac {
                    Some(m) => format!("multiple devices matching MAC address {m} found"),
                    None => "multiple matching devices found".into(),
                },
            ));
        }
        found = Some(i);
    }
    found.ok_or_else(|| {
        let null = || "(<null>)".to_string();
        missing(format!(
            "no device found at address '{}' matching MAC address '{}' and alias '{}'",
            pci.unwrap_or_else(null),
            new.mac.as_ref().map_or_else(null, |m| m.to_string()),
            new.alias.clone().unwrap_or_else(null),
        ))
    })
}

/// Adds what `new` holds (one device) to `def`, with libvirt's checks.
fn attach(def: &mut Domain, kind: &str, new: Devices) -> Result<()> {
    let d = &mut def.devices;
    for disk in new.disks {
        if d.disks.iter().any(|x| x.target.dev == disk.target.dev) {
            return Err(Error::operation_invalid(format!(
                "target {} already exists",
                disk.target.dev
            )));
        }
        crate::xml::model::devices::insert_disk(&mut d.disks, disk);
    }
    d.interfaces.extend(new.interfaces);
    for c in new.controllers {
        if let Some(index) = c.index
            && d.controllers
                .iter()
                .any(|x| x.ctrl_type == c.ctrl_type && x.index == Some(index))
        {
            return Err(Error::operation_invalid(format!(
                "controller index='{index}' already exists"
            )));
        }
        d.controllers.push(c);
    }
    for rng in new.rngs {
        if rng.address.is_some() && d.rngs.iter().any(|x| x.address == rng.address) {
            return Err(Error::new(
                ErrorCode::ConfigUnsupported,
                ErrorDomain::Domain,
                "a device with the same address already exists ",
            ));
        }
        d.rngs.push(rng);
    }
    if let Some(w) = new.watchdogs.into_iter().next() {
        if !d.watchdogs.is_empty() {
            return Err(Error::operation_invalid("domain already has a watchdog"));
        }
        d.watchdogs.push(w);
    }
    if let Some(v) = new.vsock {
        if d.vsock.is_some() {
            return Err(Error::operation_invalid(
                "domain already has a vsock device",
            ));
        }
        d.vsock = Some(v);
    }
    d.inputs.extend(new.inputs);
    d.serials.extend(new.serials);
    d.parallels.extend(new.parallels);
    d.consoles.extend(new.consoles);
    d.channels.extend(new.channels);
    if !persistent_change_supported(kind) {
        return Err(unsupported("persistent", Action::Attach, kind));
    }
    d.kept.extend(new.kept);
    Ok(())
}

/// Removes the device `new` describes from `def`, found as libvirt finds
/// each kind.
fn detach(def: &mut Domain, kind: &str, new: Devices) -> Result<()> {
    if let Some(iface) = new.interfaces.first() {
        let i = find_interface(def, iface)?;
        def.devices.interfaces.remove(i);
        return Ok(());
    }
    let d = &mut def.devices;
    if let Some(disk) = new.disks.first() {
        let i = d
            .disks
            .iter()
            .position(|x| x.target.dev == disk.target.dev)
            .ok_or_else(|| missing(format!("no target device {}", disk.target.dev)))?;
        d.disks.remove(i);
    } else if let Some(c) = new.controllers.first() {
        let i = d
            .controllers
            .iter()
            .position(|x| x.ctrl_type == c.ctrl_type && (c.index.is_none() || x.index == c.index))
            .ok_or_else(|| missing("device not present in domain configuration"))?;
        d.controllers.remove(i);
    } else if let Some(rng) = new.rngs.first() {
        let i = d
            .rngs
            .iter()
            .position(|x| {
                x.model == rng.model
                    && x.backend == rng.backend
                    && (rng.backend_path.is_none() || x.backend_path == rng.backend_path)
                    && (rng.address.is_none() || x.address == rng.address)
                    && (rng.alias.is_none() || x.alias == rng.alias)
            })
            .ok_or_else(|| missing("no matching RNG device was found"))?;
        d.rngs.remove(i);
    } else if !new.watchdogs.is_empty() {
        if d.watchdogs.is_empty() {
            return Err(missing("domain has no watchdog"));
        }
        d.watchdogs.clear();
    } else if let Some(v) = &new.vsock {
        let same = d.vsock.as_ref().is_some_and(|x| {
            x.model == v.model
                && (v.cid.is_none() || x.cid == v.cid)
                && (v.cid_auto.is_none() || x.cid_auto == v.cid_auto)
        });
        if !same {
            return Err(Error::new(
                ErrorCode::OperationFailed,
                ErrorDomain::Domain,
                "matching vsock device not found",
            ));
        }
        d.vsock = None;
    } else if let Some(input) = new.inputs.first() {
        let i = d
            .inputs
            .iter()
            .position(|x| {
                x.input_type == input.input_type && (input.bus.is_none() || x.bus == input.bus)
            })
            .ok_or_else(|| missing("matching input device not found"))?;
        d.inputs.remove(i);
    } else if kind == "chr" {
        let (list, chr) = [
            (&mut d.serials, new.serials.first()),
            (&mut d.parallels, new.parallels.first()),
            (&mut d.consoles, new.consoles.first()),
            (&mut d.channels, new.channels.first()),
        ]
        .into_iter()
        .find_map(|(list, c)| c.map(|c| (list, c)))
        .ok_or_else(|| missing("device not present in domain configuration"))?;
        let i = list
            .iter()
            .position(|x| {
                x.source_type == chr.source_type
                    && (chr.target.port.is_none() || x.target.port == chr.target.port)
                    && (chr.target.name.is_none() || x.target.name == chr.target.name)
                    && (chr.target.target_type.is_none()
                        || x.target.target_type == chr.target.target_type)
            })
            .ok_or_else(|| missing("device not present in domain configuration"))?;
        list.remove(i);
    } else if !persistent_change_supported(kind) {
        return Err(unsupported("persistent", Action::Detach, kind));
    } else {
        let want = new.kept.first().map(without_placement);
        let i = d
            .kept
            .iter()
            .position(|x| Some(without_placement(x)) == want)
            .ok_or_else(|| missing("device not present in domain configuration"))?;
        d.kept.remove(i);
    }
    Ok(())
}

/// A kept device element without what the definition adds to it (its
/// alias and address), for matching what a user wrote.
fn without_placement(e: &Element) -> Element {
    let mut e = e.clone();
    e.children
        .retain(|c| c.name != "alias" && c.name != "address");
    e
}

/// The device of `def` with user alias `alias`, removed.
fn detach_alias(def: &mut Domain, alias: &str) -> Result<()> {
    let d = &mut def.devices;
    let is = |a: &Option<String>| a.as_deref() == Some(alias);
    let removed = if let Some(i) = d.disks.iter().position(|x| is(&x.alias)) {
        d.disks.remove(i);
        true
    } else if let Some(i) = d.interfaces.iter().position(|x| is(&x.alias)) {
        d.interfaces.remove(i);
        true
    } else if let Some(i) = d.rngs.iter().position(|x| is(&x.alias)) {
        d.rngs.remove(i);
        true
    } else if let Some(i) = d.inputs.iter().position(|x| is(&x.alias)) {
        d.inputs.remove(i);
        true
    } else if d.vsock.as_ref().is_some_and(|v| is(&v.alias)) {
        d.vsock = None;
        true
    } else if let Some(i) = d.watchdogs.iter().position(|x| is(&x.alias)) {
        d.watchdogs.remove(i);
        true
    } else {
        let mut found = false;
        for list in [
            &mut d.serials,
            &mut d.parallels,
            &mut d.consoles,
            &mut d.channels,
        ] {
            if let Some(i) = list.iter().position(|x| is(&x.alias)) {
                list.remove(i);
                found = true;
                break;
            }
        }
        found
    };
    if !removed {
        return Err(missing(format!("no device found with alias {alias}")));
    }
    Ok(())
}

/// `def` through the whole of a define: defaults (addresses, MAC) for
/// what was added, and every check.
pub(super) fn as_defined(def: &Domain) -> Result<Domain> {
    let xml = def.to_xml(FormatFlags {
        secure: true,
        inactive: true,
        ..Default::default()
    });
    let def = parse_domain(&xml)?;
    check_supported(&def)?;
    Ok(def)
}

/// `new` (a NIC as an update names it) with what it leaves out taken from
/// `old`, the NIC it updates: its MAC and address.
fn updated_interface(old: &Interface, mut new: Interface) -> Interface {
    if new.mac.is_none() {
        new.mac = old.mac;
    }
    if new.address.is_none() {
        new.address = old.address.clone();
    }
    new
}

/// Whether a running guest's NIC `old` becomes `new` by its link state
/// alone (what can change live): the rest as it is, or left out.
fn only_link_changes(old: &Interface, new: &Interface) -> bool {
    let same = |a: &Option<String>, b: &Option<String>| a.is_none() || a == b;
    new.iface_type == old.iface_type
        && match (&new.source, &old.source) {
            (None, _) => true,
            (Some(n), Some(o)) => n.network == o.network && n.bridge == o.bridge && n.dev == o.dev,
            (Some(_), None) => false,
        }
        && same(&new.model, &old.model)
        && same(&new.target_dev, &old.target_dev)
        && same(&new.alias, &old.alias)
        && same(&new.driver_name, &old.driver_name)
        && new
            .driver_queues
            .is_none_or(|q| Some(q) == old.driver_queues)
}

pub(super) fn unsupported(scope: &str, action: Action, kind: &str) -> Error {
    Error::new(
        ErrorCode::OperationUnsupported,
        ErrorDomain::Domain,
        format!(
            "{scope} {} of device '{kind}' is not supported",
            action.verb()
        ),
    )
}

impl Driver {
    /// `virDomainAttachDevice`: to the running guest.
    pub async fn attach_device(&self, obj: &Arc<DomainObj>, xml: &str) -> Result<()> {
        self.attach_device_flags(obj, xml, AFFECT_LIVE).await
    }

    /// `virDomainDetachDevice`: from the running guest.
    pub async fn detach_device(&self, obj: &Arc<DomainObj>, xml: &str) -> Result<()> {
        self.detach_device_flags(obj, xml, AFFECT_LIVE).await
    }

    /// `virDomainAttachDeviceFlags` (`virDomainAttachDevice`: flags
    /// `VIR_DOMAIN_AFFECT_LIVE`).
    pub async fn attach_device_flags(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        self.device_xml(obj, xml, flags, Action::Attach).await
    }

    /// `virDomainDetachDeviceFlags` (`virDomainDetachDevice`: flags
    /// `VIR_DOMAIN_AFFECT_LIVE`).
    pub async fn detach_device_flags(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        self.device_xml(obj, xml, flags, Action::Detach).await
    }

    async fn device_xml(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
        action: Action,
    ) -> Result<()> {
        let function = match action {
            Action::Attach => "qemuDomainAttachDeviceFlags",
            _ => "qemuDomainDetachDeviceFlags",
        };
        super::check_flags(flags, AFFECT_LIVE | AFFECT_CONFIG, function)?;
        let (kind, new) = parse_device(xml)?;
        let live_new = new.clone();
        let live = async move |driver: &Driver, obj: &Arc<DomainObj>| {
            let device = super::hotplug::LiveDevice::from_devices(live_new.clone())
                .ok_or_else(|| unsupported("live", action, kind))?;
            match action {
                Action::Attach => {
                    driver
                        .attach_live(obj, device, |def| attach(def, kind, live_new))
                        .await
                }
                _ => {
                    driver
                        .detach_live(obj, kind, move |def| {
                            let mut without = def.clone();
                            detach(&mut without, kind, live_new)?;
                            Ok(without)
                        })
                        .await
                }
            }
        };
        self.change_config(
            obj,
            flags,
            |def| match action {
                Action::Attach => attach(def, kind, new),
                _ => detach(def, kind, new),
            },
            live,
        )
        .await
    }

    /// `virDomainUpdateDeviceFlags` for an interface (what `virsh
    /// domif-setlink` and `update-device` send): the NIC found as libvirt
    /// finds NICs. In the running guest only its link state can change
    /// (through its VMM); in the definition it is replaced, keeping its MAC
    /// and address when the new one names none. Both are checked before
    /// either changes. The caller checked the flags.
    pub(super) async fn update_interface(
        &self,
        obj: &Arc<DomainObj>,
        xml: &str,
        flags: u32,
    ) -> Result<()> {
        let (kind, new) = parse_device(xml)?;
        let iface = new
            .interfaces
            .into_iter()
            .next()
            .ok_or_else(|| Error::internal("no interface in the device XML"))?;
        let _job = obj.begin_job().await?;
        let (live, config_def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live, config) = super::metadata::targets(&d, flags)?;
            let live = match d.live.as_ref().filter(|_| live) {
                None => None,
                Some(l) => {
                    let i = find_interface(&l.def, &iface)?;
                    let old = &l.def.devices.interfaces[i];
                    if !only_link_changes(old, &iface) {
                        return Err(unsupported("live", Action::Update, kind));
                    }
                    let slot = match &old.address {
                        Some(Address::Pci { addr, .. }) => addr.slot,
                        _ => return Err(Error::internal("the NIC has no PCI address")),
                    };
                    let up = iface.link_state.as_deref() != Some("down");
                    Some((l.vmm.clone(), old.mac, slot, up))
                }
            };
            let config_def = match d.persistent.as_ref().filter(|_| config) {
                None => None,
                Some(p) => {
                    let mut def = p.clone();
                    let i = find_interface(&def, &iface)?;
                    let nic = updated_interface(&def.devices.interfaces[i], iface.clone());
                    def.devices.interfaces[i] = nic;
                    Some(as_defined(&def)?)
                }
            };
            (live, config_def)
        };
        if let Some((vmm, mac, slot, up)) = live {
            vmm.set_link(slot, up).await?;
            if let Some(l) = obj.data().live.as_mut()
                && let Some(nic) = l.def.devices.interfaces.iter_mut().find(|n| n.mac == mac)
            {
                nic.link_state = iface.link_state.clone();
            }
            super::supervise::write_status(&self.inner, obj);
        }
        if let Some(def) = config_def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
        }
        Ok(())
    }

    /// `virDomainDetachDeviceAlias`.
    pub async fn detach_device_alias(
        &self,
        obj: &Arc<DomainObj>,
        alias: &str,
        flags: u32,
    ) -> Result<()> {
        super::check_flags(
            flags,
            AFFECT_LIVE | AFFECT_CONFIG,
            "qemuDomainDetachDeviceAlias",
        )?;
        let live = async |driver: &Driver, obj: &Arc<DomainObj>| {
            driver
                .detach_live(obj, "device", |def| {
                    let mut without = def.clone();
                    detach_alias(&mut without, alias)?;
                    Ok(without)
                })
                .await
        };
        self.change_config(obj, flags, |def| detach_alias(def, alias), live)
            .await
    }

    /// Applies a device change as `flags` select it: `change` to a copy of
    /// the persistent definition (parsed and validated as a definition),
    /// then `live` to the running guest, then the persistent definition
    /// saved. Nothing changes where a step fails before it.
    async fn change_config(
        &self,
        obj: &Arc<DomainObj>,
        flags: u32,
        change: impl FnOnce(&mut Domain) -> Result<()>,
        live: impl AsyncFnOnce(&Driver, &Arc<DomainObj>) -> Result<()>,
    ) -> Result<()> {
        let _job = obj.begin_job().await?;
        let (to_live, def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (to_live, config) = super::metadata::targets(&d, flags)?;
            let def = match config {
                false => None,
                true => Some(
                    d.persistent
                        .clone()
                        .ok_or_else(|| Error::internal("no persistent definition"))?,
                ),
            };
            (to_live, def)
        };
        let def = match def {
            Some(mut def) => {
                change(&mut def)?;
                Some(as_defined(&def)?)
            }
            None => None,
        };
        if to_live {
            live(self, obj).await?;
        }
        if let Some(def) = def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
        }
        Ok(())
    }
}
