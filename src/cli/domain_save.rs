//! save, restore, managedsave, managedsave-remove, save-image-dumpxml,
//! save-image-define: virsh's words around libvirt-dbus's methods.

use super::bus::{Bus, DOMAIN};
use super::domain::lookup;
use super::domain_lifecycle::read_file;
use super::error::{CliError, Result};

/// `VIR_DOMAIN_SAVE_*`.
const BYPASS_CACHE: u32 = 1;
const RUNNING: u32 = 2;
const PAUSED: u32 = 4;

/// The flags of `--bypass-cache`, `--running`, `--paused`; both of the
/// last two fail as libvirt's client library fails them (virsh's context
/// is added by the caller).
pub fn flags(bypass_cache: bool, running: bool, paused: bool) -> Result<u32> {
    if running && paused {
        return Err(CliError::msg(
            "Flags 'VIR_DOMAIN_SAVE_RUNNING' and 'VIR_DOMAIN_SAVE_PAUSED' are mutually exclusive",
        ));
    }
    let bit = |on: bool, flag: u32| if on { flag } else { 0 };
    Ok(bit(bypass_cache, BYPASS_CACHE) | bit(running, RUNNING) | bit(paused, PAUSED))
}

/// What `--bypass-cache`, `--running` and `--paused` ask for.
#[derive(Clone, Copy, Debug, Default)]
pub struct SaveFlags {
    pub bypass_cache: bool,
    pub running: bool,
    pub paused: bool,
}

impl SaveFlags {
    fn bits(self) -> Result<u32> {
        flags(self.bypass_cache, self.running, self.paused)
    }
}

/// An absolute path, as libvirt's client library hands paths on.
fn absolute(file: &str) -> String {
    std::path::absolute(file)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| file.to_string())
}

pub fn save(bus: &Bus, name: &str, file: &str, xml: Option<&str>, f: SaveFlags) -> Result<String> {
    let d = lookup(bus, name)?;
    let xml = xml.map(read_file).transpose()?.unwrap_or_default();
    let ctx = format!("Failed to save domain '{}' to {file}", d.name);
    let flags = f.bits().map_err(|e| e.with_ctx(&ctx))?;
    d.act(bus, "Save", &(absolute(file), xml, flags))
        .map_err(|e| e.with_ctx(ctx))?;
    Ok(format!("\nDomain '{}' saved to {file}\n", d.name))
}

pub fn restore(bus: &Bus, file: &str, xml: Option<&str>, f: SaveFlags) -> Result<String> {
    let xml = xml.map(read_file).transpose()?.unwrap_or_default();
    let ctx = format!("Failed to restore domain from {file}");
    let flags = f.bits().map_err(|e| e.with_ctx(&ctx))?;
    bus.connect::<_, ()>("DomainRestore", &(absolute(file), xml, flags))
        .map_err(|e| e.with_ctx(ctx))?;
    Ok(format!("Domain restored from {file}\n"))
}

pub fn managedsave(bus: &Bus, name: &str, f: SaveFlags) -> Result<String> {
    let d = lookup(bus, name)?;
    let ctx = format!("Failed to save domain '{}' state", d.name);
    let flags = f.bits().map_err(|e| e.with_ctx(&ctx))?;
    d.act(bus, "ManagedSave", &(flags,))
        .map_err(|e| e.with_ctx(ctx))?;
    Ok(format!("\nDomain '{}' state saved by libvirt\n", d.name))
}

pub fn managedsave_remove(bus: &Bus, name: &str) -> Result<String> {
    let d = lookup(bus, name)?;
    let has: bool = bus
        .call(&d.path, DOMAIN, "HasManagedSaveImage", &(0u32,))
        .map_err(|e| e.with_ctx("Failed to determine if domain has managed save image"))?;
    if !has {
        return Ok(format!(
            "Domain '{}' has no manage save image; removal skipped",
            d.name
        ));
    }
    d.act(bus, "ManagedSaveRemove", &(0u32,)).map_err(|e| {
        e.with_ctx(format!(
            "Failed to remove managed save image for domain '{}'",
            d.name
        ))
    })?;
    Ok(format!("Removed managedsave image for domain '{}'", d.name))
}

pub fn save_image_dumpxml(bus: &Bus, file: &str, security_info: bool) -> Result<String> {
    let xml: String = bus
        .connect(
            "DomainSaveImageGetXMLDesc",
            &(absolute(file), u32::from(security_info)),
        )
        .map_err(|e| e.with_ctx(format!("Failed to read XML from {file}")))?;
    Ok(xml)
}

pub fn save_image_define(bus: &Bus, file: &str, xml_file: &str, f: SaveFlags) -> Result<String> {
    let xml = read_file(xml_file)?;
    let ctx = format!("Failed to update {file}");
    let flags = f.bits().map_err(|e| e.with_ctx(&ctx))?;
    bus.connect::<_, ()>("DomainSaveImageDefineXML", &(absolute(file), xml, flags))
        .map_err(|e| e.with_ctx(ctx))?;
    Ok(format!("State file {file} updated.\n"))
}
