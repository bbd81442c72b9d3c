//! `<devices>`: every device list, in libvirt's formatting order.

use crate::error::{Error, Result};
use crate::xml::tree::Element;

use super::address::{Address, alias_is_persistent};
use super::chardev::{Chardev, ChardevKind};
use super::controller::{Controller, ControllerType};
use super::disk::{Disk, DiskSource, dev_name_index};
use super::display::{Graphics, Video};
use super::input::Input;
use super::interface::Interface;
use super::virtio_misc::{Memballoon, Rng, Vsock, Watchdog};

/// Device kinds oxvirt keeps as written, by element name, in the order
/// libvirt formats them relative to each other. The position of each
/// among the typed devices is fixed in [`Devices::to_element`].
pub const KEPT_DEVICE_NAMES: &[&str] = &[
    "lease",
    "filesystem",
    "smartcard",
    "tpm",
    "sound",
    "audio",
    "hostdev",
    "redirdev",
    "redirfilter",
    "hub",
    "nvram",
    "panic",
    "shmem",
    "memory",
    "iommu",
    "crypto",
];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Devices {
    pub emulator: Option<String>,
    pub disks: Vec<Disk>,
    pub controllers: Vec<Controller>,
    pub interfaces: Vec<Interface>,
    pub serials: Vec<Chardev>,
    pub parallels: Vec<Chardev>,
    pub consoles: Vec<Chardev>,
    pub channels: Vec<Chardev>,
    pub inputs: Vec<Input>,
    pub graphics: Vec<Graphics>,
    pub videos: Vec<Video>,
    pub watchdogs: Vec<Watchdog>,
    pub memballoon: Option<Memballoon>,
    pub rngs: Vec<Rng>,
    pub vsock: Option<Vsock>,
    /// Devices of the kinds in [`KEPT_DEVICE_NAMES`], kept as written.
    pub kept: Vec<Element>,
}

/// Insert `disk` where libvirt puts it: grouped with disks of the same
/// bus, ordered by the index its target name encodes.
pub fn insert_disk(disks: &mut Vec<Disk>, disk: Disk) {
    let bus = disk.bus();
    let index = dev_name_index(&disk.target.dev);
    let mut insert_at: Option<usize> = None;
    for (i, d) in disks.iter().enumerate().rev() {
        if d.bus() != bus {
            continue;
        }
        if dev_name_index(&d.target.dev) > index {
            insert_at = Some(i);
        } else if insert_at.is_none() {
            insert_at = Some(i + 1);
        }
    }
    match insert_at {
        Some(i) if i <= disks.len() => disks.insert(i, disk),
        _ => disks.push(disk),
    }
}

fn describe(src: &Option<DiskSource>) -> String {
    src.as_ref()
        .map(DiskSource::describe)
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "<null>".to_string())
}

impl Devices {
    pub fn parse(devices: &Element) -> Result<Devices> {
        let mut d = Devices::default();
        for child in &devices.children {
            match child.name.as_str() {
                "emulator" => d.emulator = Some(child.text.trim().to_string()),
                "disk" => {
                    let disk = Disk::parse(child)?;
                    insert_disk(&mut d.disks, disk);
                }
                "controller" => d.controllers.push(Controller::parse(child)?),
                "interface" => d.interfaces.push(Interface::parse(child)?),
                "serial" => d.serials.push(Chardev::parse(child, ChardevKind::Serial)?),
                "parallel" => d
                    .parallels
                    .push(Chardev::parse(child, ChardevKind::Parallel)?),
                "console" => d
                    .consoles
                    .push(Chardev::parse(child, ChardevKind::Console)?),
                "channel" => d
                    .channels
                    .push(Chardev::parse(child, ChardevKind::Channel)?),
                "input" => d.inputs.push(Input::parse(child)?),
                "graphics" => d.graphics.push(Graphics::parse(child)?),
                "video" => d.videos.push(Video::parse(child)?),
                "watchdog" => {
                    if !d.watchdogs.is_empty() {
                        return Err(Error::internal(
                            "only a single watchdog device is supported",
                        ));
                    }
                    d.watchdogs.push(Watchdog::parse(child)?);
                }
                "memballoon" => {
                    if d.memballoon.is_some() {
                        return Err(Error::internal(
                            "only a single memory balloon device is supported",
                        ));
                    }
                    d.memballoon = Some(Memballoon::parse(child)?);
                }
                "rng" => d.rngs.push(Rng::parse(child)?),
                "vsock" => {
                    if d.vsock.is_some() {
                        return Err(Error::xml("only a single vsock device is supported"));
                    }
                    d.vsock = Some(Vsock::parse(child)?);
                }
                name if KEPT_DEVICE_NAMES.contains(&name) => {
                    // Validate the address now so a bad one fails define.
                    kept_address(child)?;
                    validate_kept(child)?;
                    d.kept.push(child.clone());
                }
                // libvirt ignores elements it does not know.
                _ => {}
            }
        }
        Ok(d)
    }

    /// Rules across devices, checked once defaults are filled: unique
    /// disk targets and one panic device per model.
    pub fn validate(&self) -> Result<()> {
        for (i, disk) in self.disks.iter().enumerate() {
            if let Some(other) = self
                .disks
                .iter()
                .skip(i + 1)
                .find(|o| o.target.dev == disk.target.dev)
            {
                return Err(Error::xml(format!(
                    "target '{}' duplicated for disk sources '{}' and '{}'",
                    disk.target.dev,
                    describe(&disk.source),
                    describe(&other.source)
                )));
            }
        }
        let audio_ids: Vec<&str> = self
            .kept
            .iter()
            .filter(|e| e.name == "audio")
            .filter_map(|e| e.attr("id"))
            .collect();
        for (i, id) in audio_ids.iter().enumerate() {
            if audio_ids.iter().skip(i + 1).any(|o| o == id) {
                return Err(Error::xml(format!("audio ID {id} is used multiple times")));
            }
        }
        let panics: Vec<&str> = self
            .kept
            .iter()
            .filter(|e| e.name == "panic")
            .map(|e| e.attr("model").unwrap_or("default"))
            .collect();
        for (i, model) in panics.iter().enumerate() {
            if panics.iter().skip(i + 1).any(|m| m == model) {
                return Err(Error::xml(format!(
                    "Multiple panic devices with model '{model}'"
                )));
            }
        }
        Ok(())
    }

    fn kept_named<'a>(
        &'a self,
        name: &'a str,
        inactive: bool,
    ) -> impl Iterator<Item = Element> + 'a {
        self.kept
            .iter()
            .filter(move |e| e.name == name)
            .map(move |e| kept_for_output(e, inactive))
    }

    pub fn to_element(&self, inactive: bool, secure: bool) -> Element {
        let mut out = Element::new("devices");
        let c = &mut out.children;
        if let Some(e) = &self.emulator {
            c.push(Element::new("emulator").with_text(e.clone()));
        }
        c.extend(self.disks.iter().map(|d| d.to_element(inactive)));
        c.extend(self.controllers.iter().map(|d| d.to_element(inactive)));
        c.extend(self.kept_named("lease", inactive));
        c.extend(self.kept_named("filesystem", inactive));
        c.extend(self.interfaces.iter().map(|d| d.to_element(inactive)));
        c.extend(self.kept_named("smartcard", inactive));
        c.extend(self.serials.iter().map(|d| d.to_element(inactive)));
        c.extend(self.parallels.iter().map(|d| d.to_element(inactive)));
        c.extend(self.consoles.iter().map(|d| d.to_element(inactive)));
        c.extend(self.channels.iter().map(|d| d.to_element(inactive)));
        c.extend(self.inputs.iter().map(|d| d.to_element(inactive)));
        c.extend(self.kept_named("tpm", inactive));
        c.extend(self.graphics.iter().map(|d| d.to_element(secure)));
        c.extend(self.kept_named("sound", inactive));
        c.extend(self.kept_named("audio", inactive));
        c.extend(self.videos.iter().map(|d| d.to_element(inactive)));
        for name in ["hostdev", "redirdev", "redirfilter", "hub"] {
            c.extend(self.kept_named(name, inactive));
        }
        c.extend(self.watchdogs.iter().map(|d| d.to_element(inactive)));
        c.extend(self.memballoon.iter().map(|d| d.to_element(inactive)));
        c.extend(self.rngs.iter().map(|d| d.to_element(inactive)));
        for name in ["nvram", "panic", "shmem", "memory", "iommu"] {
            c.extend(self.kept_named(name, inactive));
        }
        c.extend(self.vsock.iter().map(|d| d.to_element(inactive)));
        c.extend(self.kept_named("crypto", inactive));
        out
    }
}

const PANIC_MODELS: &[&str] = &["default", "isa", "pseries", "hyperv", "s390", "pvpanic"];

const AUDIO_TYPES: &[&str] = &[
    "none",
    "alsa",
    "coreaudio",
    "jack",
    "oss",
    "pulseaudio",
    "sdl",
    "spice",
    "file",
    "dbus",
    "pipewire",
];

/// The few checks libvirt makes on devices oxvirt keeps as written.
fn validate_kept(dev: &Element) -> Result<()> {
    if dev.name == "audio" {
        crate::xml::props::req_attr(dev, "id")?;
        crate::xml::props::req_attr(dev, "type")?;
        crate::xml::props::uint_attr::<u32>(dev, "id")?;
        let t = dev.attr("type").unwrap_or_default();
        if !AUDIO_TYPES.contains(&t) {
            return Err(crate::xml::props::invalid_attr(dev, "type", t));
        }
    }
    if dev.name == "panic"
        && let Some(m) = dev.attr("model").filter(|m| !PANIC_MODELS.contains(m))
    {
        return Err(Error::unsupported(format!("unknown panic model '{m}'")));
    }
    Ok(())
}

/// Controller indexes are unique per type; the root bus is index 0. USB
/// companion controllers (ICH9's UHCIs) share their EHCI's index.
pub fn check_controller_indexes(ctrls: &[Controller]) -> Result<()> {
    for (i, c) in ctrls.iter().enumerate() {
        let Some(index) = c.index else { continue };
        let root = c.model_is("pci-root") || c.model_is("pcie-root");
        if root && index != 0 {
            return Err(Error::xml(
                "pci-root and pcie-root controllers should have index 0",
            ));
        }
        let twin = ctrls.iter().skip(i + 1).any(|o| {
            o.ctrl_type == c.ctrl_type
                && o.index == Some(index)
                && !c.is_ich9_companion()
                && !o.is_ich9_companion()
        });
        if twin && c.ctrl_type == ControllerType::Usb {
            return Err(Error::xml(format!(
                "Duplicate USB controllers with index {index}"
            )));
        }
        if twin {
            return Err(Error::xml(format!(
                "Multiple '{}' controllers with index '{index}'",
                c.ctrl_type
            )));
        }
    }
    Ok(())
}

/// The `<address>` of a kept device, validated.
pub fn kept_address(dev: &Element) -> Result<Option<Address>> {
    super::address::parse_device_address(dev)
}

/// Set the `<address>` of a kept device (it is formatted last).
pub fn set_kept_address(dev: &mut Element, addr: &Address) {
    dev.children.retain(|c| c.name != "address");
    dev.children.push(addr.to_element());
}

/// Set the `<alias>` of a kept device, just before its address.
pub fn set_kept_alias(dev: &mut Element, alias: &str) {
    dev.children.retain(|c| c.name != "alias");
    let alias = Element::new("alias").with_attr("name", alias);
    let pos = dev
        .children
        .iter()
        .position(|c| c.name == "address")
        .unwrap_or(dev.children.len());
    dev.children.insert(pos, alias);
}

fn kept_for_output(dev: &Element, inactive: bool) -> Element {
    let mut e = dev.clone();
    if inactive {
        e.children
            .retain(|c| c.name != "alias" || c.attr("name").is_some_and(alias_is_persistent));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::tree::parse_document;

    #[test]
    fn orders_disks_as_libvirt() {
        let e = parse_document(
            "<devices><disk><source file='/a'/><target dev='vdb'/></disk><disk><source file='/s'/><target dev='sdb'/></disk><disk><source file='/b'/><target dev='vda'/></disk><disk><source file='/t'/><target dev='sda'/></disk></devices>",
        )
        .unwrap();
        let d = Devices::parse(&e).unwrap();
        let names: Vec<_> = d.disks.iter().map(|d| d.target.dev.as_str()).collect();
        assert_eq!(names, ["vda", "vdb", "sda", "sdb"]);
    }

    #[test]
    fn rejects_duplicate_targets() {
        let e = parse_document(
            "<devices><disk><source file='/a'/><target dev='vda'/></disk><disk><source file='/b'/><target dev='vda'/></disk></devices>",
        )
        .unwrap();
        assert_eq!(
            Devices::parse(&e).unwrap().validate().unwrap_err().message,
            "XML error: target 'vda' duplicated for disk sources '/a' and '/b'"
        );
    }

    #[test]
    fn hides_generated_aliases_of_kept_devices_when_inactive() {
        let mut fs = Element::new("filesystem");
        set_kept_alias(&mut fs, "fs0");
        assert!(kept_for_output(&fs, true).children.is_empty());
        assert_eq!(kept_for_output(&fs, false).children.len(), 1);
    }
}
