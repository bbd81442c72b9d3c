//! How a domain boots: its `<os><kernel>` directly, or through firmware
//! that tries the disks in the order `<os><boot dev>` or the devices'
//! `<boot order>` give.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::vmm::config::{BootConfig, FirmwareBoot, KernelBoot};
use crate::xml::Domain;
use crate::xml::model::disk::{Disk, DiskDevice};
use crate::xml::model::os::{BootDev, Firmware, LoaderType};

/// The BIOS used when `<loader>` names none: Debian's SeaBIOS build for
/// PC machines (the one QEMU's `pc` and `q35` load).
pub const DEFAULT_BIOS: &str = "/usr/share/seabios/bios-256k.bin";
/// The UEFI firmware the package installs: edk2's CloudHv platform
/// (`packaging/firmware/build-cloudhv.sh`).
pub const DEFAULT_UEFI: &str = "/usr/share/oxvirt/firmware/CLOUDHV.fd";

/// The firmware images guests boot without `<kernel>` (`oxvirtd.conf`:
/// `bios_firmware`, `uefi_firmware`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firmwares {
    pub bios: PathBuf,
    pub uefi: PathBuf,
}

impl Default for Firmwares {
    fn default() -> Self {
        Firmwares {
            bios: PathBuf::from(DEFAULT_BIOS),
            uefi: PathBuf::from(DEFAULT_UEFI),
        }
    }
}

impl Firmwares {
    /// Whether UEFI guests can be started (the image is installed).
    pub fn uefi_available(&self) -> bool {
        self.uefi.is_file()
    }
}

/// SeaBIOS's wait for a boot-menu key when `<bootmenu>` gives no timeout.
const DEFAULT_MENU_WAIT_MS: u32 = 2500;

/// What the VMM boots for `def`.
pub fn boot_config(def: &Domain, firmwares: &Firmwares) -> Result<BootConfig> {
    let os = &def.os;
    if let Some(kernel) = os.kernel.as_deref() {
        return Ok(BootConfig::Kernel(KernelBoot {
            kernel: PathBuf::from(kernel),
            initrd: os.initrd.as_deref().map(PathBuf::from),
            cmdline: os.cmdline.clone().unwrap_or_default(),
        }));
    }
    let loader = os.loader.as_ref();
    let efi = os.firmware == Some(Firmware::Efi)
        || loader.and_then(|l| l.loader_type) == Some(LoaderType::Pflash);
    let named = loader.and_then(|l| l.path.as_deref()).map(PathBuf::from);
    let firmware = match (efi, named) {
        (_, Some(path)) => path,
        (true, None) if !firmwares.uefi_available() => {
            return Err(Error::unsupported(format!(
                "Unable to find any firmware to satisfy 'efi' ({} is not installed)",
                firmwares.uefi.display()
            )));
        }
        (true, None) => firmwares.uefi.clone(),
        (false, None) => firmwares.bios.clone(),
    };
    let menu = os.bootmenu.as_ref().filter(|m| m.enable == Some(true));
    let boot = FirmwareBoot {
        firmware,
        menu_timeout_ms: menu.map(|m| m.timeout.unwrap_or(DEFAULT_MENU_WAIT_MS)),
        reboot_timeout_ms: os
            .bios
            .as_ref()
            .and_then(|b| b.reboot_timeout)
            .map(|t| t.clamp(-1, i64::from(u16::MAX)) as i32),
        // libvirt starts QEMU with `-boot strict=on`: only the devices in
        // the boot order may boot.
        strict: true,
    };
    Ok(if efi {
        BootConfig::Uefi(boot)
    } else {
        BootConfig::Bios(boot)
    })
}

/// Boot positions of the disks, in `disks` order: the devices' own
/// `<boot order>` when any has one, else every disk of each `<os><boot
/// dev>` kind in turn (`hd` the disks, `cdrom` the CD-ROMs). Network and
/// floppy entries name devices the firmware cannot boot here.
pub fn disk_boot_indices(def: &Domain, disks: &[Disk]) -> Vec<Option<u16>> {
    if disks.iter().any(|d| d.boot_order.is_some()) {
        return disks
            .iter()
            .map(|d| d.boot_order.map(|o| o.min(u32::from(u16::MAX)) as u16))
            .collect();
    }
    let mut out = vec![None; disks.len()];
    let mut next = 1u16;
    for dev in &def.os.boot_devs {
        let kind = match dev {
            BootDev::Hd => DiskDevice::Disk,
            BootDev::Cdrom => DiskDevice::Cdrom,
            BootDev::Fd | BootDev::Network => continue,
        };
        for (slot, d) in out.iter_mut().zip(disks) {
            if d.device == kind && slot.is_none() {
                *slot = Some(next);
                next = next.saturating_add(1);
            }
        }
    }
    out
}
