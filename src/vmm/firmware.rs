//! Booting through a BIOS ROM (SeaBIOS): the ROM image at the top of the
//! 32-bit address space and again in RAM just below 1 MiB, the vCPUs
//! left in their reset state, and the fw_cfg items the firmware reads to
//! learn the machine (memory map, ACPI tables, CPUs, boot order).

use std::path::Path;

use vm_memory::{Bytes, GuestAddress};

use super::acpi::{AcpiParams, tables};
use super::config::{CdromConfig, DeviceConfig, FirmwareBoot};
use super::devices::fw_cfg::{self, FwCfg};
use super::error::{Error, Result};
use super::layout;
use super::memory::{self, GuestMemory};

/// ROM images are whole 64 KiB blocks, at most 256 KiB: the three pages
/// of KVM's TSS sit just below 4 GiB - 256 KiB.
const ROM_BLOCK: u64 = 64 << 10;
const ROM_MAX: u64 = 256 << 10;

/// A firmware image read from disk.
pub struct Rom {
    bytes: Vec<u8>,
}

impl Rom {
    /// Reads and checks a ROM image.
    pub fn read(path: &Path) -> Result<Rom> {
        let bytes = std::fs::read(path).map_err(|source| Error::FirmwareOpen {
            path: path.to_path_buf(),
            source,
        })?;
        let len = bytes.len() as u64;
        if len == 0 || !len.is_multiple_of(ROM_BLOCK) || len > ROM_MAX {
            return Err(Error::Boot(format!(
                "firmware {} is {len} bytes; a BIOS image is 64, 128, 192 or 256 KiB",
                path.display()
            )));
        }
        Ok(Rom { bytes })
    }

    /// Where the image starts: it ends at 4 GiB, where the reset vector is.
    pub fn base(&self) -> u64 {
        layout::RAM_64BIT_START - self.bytes.len() as u64
    }

    /// The guest-memory region the image needs besides RAM.
    pub fn region(&self) -> (u64, u64) {
        (self.base(), self.bytes.len() as u64)
    }

    /// Copies the image to its region and again to RAM ending at 1 MiB.
    /// The second copy is the state after the firmware "shadowed" itself:
    /// a chipset with shadow-RAM control (i440FX, Q35 PAM registers) lets
    /// SeaBIOS copy its whole image below 1 MiB; a 256 KiB build runs part
    /// of its start-up code from there (0xC0000–0xDFFFF). oxvirt's platform
    /// has no such chipset, so the copy is made before the first instruction.
    pub fn install(&self, mem: &GuestMemory) -> Result<()> {
        let write = |bytes: &[u8], at: u64| {
            mem.write_slice(bytes, GuestAddress(at))
                .map_err(|e| Error::Boot(format!("cannot place the firmware at {at:#x}: {e}")))
        };
        write(&self.bytes, self.base())?;
        write(&self.bytes, layout::BIOS_END - self.bytes.len() as u64)
    }
}

/// One e820 entry as fw_cfg's `etc/e820` carries it: le64 address,
/// le64 length, le32 type.
fn e820_file(mem_bytes: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |addr: u64, len: u64, kind: u32| {
        out.extend_from_slice(&addr.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
    };
    // The firmware carves its own areas (EBDA, BIOS) out of plain RAM.
    for (start, len) in memory::ram_regions(mem_bytes) {
        push(start, len, memory::E820_RAM);
    }
    push(
        layout::PCI_ECAM_START,
        layout::PCI_ECAM_SIZE,
        memory::E820_RESERVED,
    );
    out
}

/// The `bootorder` file: one OpenFirmware device path per line, in boot
/// order, written as QEMU writes them; SeaBIOS matches its own globs
/// against them as prefixes: `/pci@i0cf8/*@SLOT` for a virtio disk,
/// `/pci@i0cf8/*@SLOT/*@0/*@TARGET,LUN` for a SCSI drive and
/// `/pci@i0cf8/*@SLOT/drive@PORT/disk@0` for an AHCI port, hard disk or
/// CD-ROM (numbers in hex).
pub fn boot_order(devices: &[DeviceConfig], slots: &[u8], strict: bool) -> String {
    let mut order: Vec<(u16, String)> = devices
        .iter()
        .zip(slots)
        .flat_map(|(d, &slot)| -> Vec<(u16, String)> {
            let cdroms = |c: &[CdromConfig], path: &dyn Fn(u16) -> String| {
                c.iter()
                    .filter_map(|cd| cd.boot_index.map(|i| (i, path(cd.unit))))
                    .collect()
            };
            match d {
                DeviceConfig::Block(b) => b
                    .boot_index
                    .map(|i| (i, format!("/pci@i0cf8/scsi@{slot:x}/disk@0,0")))
                    .into_iter()
                    .collect(),
                DeviceConfig::Scsi(c) => cdroms(&c.cdroms, &|t| {
                    format!("/pci@i0cf8/scsi@{slot:x}/channel@0/disk@{t:x},0")
                }),
                DeviceConfig::Sata(c) => {
                    let port =
                        |p: u16| format!("/pci@i0cf8/pci8086,2922@{slot:x}/drive@{p:x}/disk@0");
                    let mut v = cdroms(&c.cdroms, &port);
                    v.extend(
                        c.disks
                            .iter()
                            .filter_map(|d| d.boot_index.map(|i| (i, port(d.unit)))),
                    );
                    v
                }
                _ => Vec::new(),
            }
        })
        .collect();
    order.sort_by_key(|(i, _)| *i);
    let mut text: String = order.into_iter().map(|(_, p)| p + "\n").collect();
    if strict {
        text.push_str("HALT\n");
    }
    text
}

/// Parses a canonical UUID into its 16 bytes.
fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What the machine tells its firmware.
pub struct Machine<'a> {
    pub boot: &'a FirmwareBoot,
    pub mem_bytes: u64,
    pub vcpus: u32,
    /// With CPU hotplug, more than `vcpus`.
    pub max_vcpus: u32,
    pub uuid: Option<&'a str>,
    pub acpi: &'a AcpiParams,
    pub boot_order: String,
    /// Option ROMs of PCI devices, by the fw_cfg name SeaBIOS looks up
    /// (`pciVVVV,DDDD.rom`): the display adapter's VGA BIOS.
    pub option_roms: Vec<(&'static str, Vec<u8>)>,
}

/// Builds the fw_cfg device with every item SeaBIOS reads.
pub fn fw_cfg(mem: &GuestMemory, m: &Machine) -> Result<FwCfg> {
    let mut d = FwCfg::new(mem.clone());
    let file =
        |d: &mut FwCfg, name: &str, bytes: Vec<u8>| d.add_file(name, bytes).map_err(Error::Boot);
    d.add_item(fw_cfg::KEY_RAM_SIZE, m.mem_bytes.to_le_bytes().to_vec());
    // No display: the firmware mirrors its text screen on COM1.
    d.add_item(fw_cfg::KEY_NOGRAPHIC, 1u16.to_le_bytes().to_vec());
    d.add_item(fw_cfg::KEY_NB_CPUS, (m.vcpus as u16).to_le_bytes().to_vec());
    d.add_item(
        fw_cfg::KEY_MAX_CPUS,
        (m.max_vcpus as u16).to_le_bytes().to_vec(),
    );
    d.add_item(
        fw_cfg::KEY_BOOT_MENU,
        u16::from(m.boot.menu_timeout_ms.is_some())
            .to_le_bytes()
            .to_vec(),
    );
    if let Some(uuid) = m.uuid.and_then(uuid_bytes) {
        d.add_item(fw_cfg::KEY_UUID, uuid.to_vec());
    }
    file(&mut d, "etc/e820", e820_file(m.mem_bytes))?;
    let t = tables::for_firmware(m.acpi)?;
    file(&mut d, tables::TABLES_FILE, t.tables)?;
    file(&mut d, tables::RSDP_FILE, t.rsdp)?;
    file(&mut d, tables::LOADER_FILE, t.loader)?;
    if !m.boot_order.is_empty() {
        file(&mut d, "bootorder", m.boot_order.clone().into_bytes())?;
    }
    let retry = m.boot.reboot_timeout_ms.unwrap_or(-1);
    file(&mut d, "etc/boot-fail-wait", retry.to_le_bytes().to_vec())?;
    if let Some(ms) = m.boot.menu_timeout_ms {
        let ms = ms.min(u32::from(u16::MAX)) as u16;
        file(&mut d, "etc/boot-menu-wait", ms.to_le_bytes().to_vec())?;
    }
    for (name, rom) in &m.option_roms {
        file(&mut d, name, rom.clone())?;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::config::{BlockConfig, DiskFormat, RngConfig};

    fn disk(boot_index: Option<u16>) -> DeviceConfig {
        DeviceConfig::Block(BlockConfig {
            path: "/d".into(),
            readonly: false,
            serial: None,
            format: DiskFormat::Raw,
            pci_slot: None,
            boot_index,
        })
    }

    #[test]
    fn boot_order_follows_indices() {
        let devs = [
            disk(Some(2)),
            DeviceConfig::Rng(RngConfig::default()),
            disk(None),
            disk(Some(1)),
        ];
        let order = boot_order(&devs, &[3, 4, 5, 0x1a], false);
        assert_eq!(
            order,
            "/pci@i0cf8/scsi@1a/disk@0,0\n/pci@i0cf8/scsi@3/disk@0,0\n"
        );
        assert!(boot_order(&devs, &[3, 4, 5, 6], true).ends_with("HALT\n"));
        assert_eq!(boot_order(&devs[2..3], &[3], false), "");
    }

    #[test]
    fn boot_order_covers_cdroms() {
        use crate::vmm::config::{SataConfig, SataDiskConfig, ScsiConfig};
        let cd = |unit, boot_index| CdromConfig {
            unit,
            boot_index,
            ..Default::default()
        };
        let devs = [
            DeviceConfig::Scsi(ScsiConfig {
                pci_slot: None,
                cdroms: vec![cd(0, None), cd(10, Some(3))],
            }),
            DeviceConfig::Sata(SataConfig {
                pci_slot: None,
                cdroms: vec![cd(2, Some(1))],
                disks: vec![
                    SataDiskConfig {
                        unit: 0,
                        boot_index: Some(4),
                        ..Default::default()
                    },
                    SataDiskConfig {
                        unit: 5,
                        ..Default::default()
                    },
                ],
            }),
            disk(Some(2)),
        ];
        assert_eq!(
            boot_order(&devs, &[4, 0x1f, 6], false),
            "/pci@i0cf8/pci8086,2922@1f/drive@2/disk@0\n\
             /pci@i0cf8/scsi@6/disk@0,0\n\
             /pci@i0cf8/scsi@4/channel@0/disk@a,0\n\
             /pci@i0cf8/pci8086,2922@1f/drive@0/disk@0\n"
        );
    }

    #[test]
    fn e820_covers_ram_and_ecam() {
        let f = e820_file(5 << 30);
        assert_eq!(f.len(), 3 * 20);
        let entry = |i: usize| {
            let e = &f[i * 20..];
            (
                u64::from_le_bytes(e[0..8].try_into().unwrap()),
                u64::from_le_bytes(e[8..16].try_into().unwrap()),
                u32::from_le_bytes(e[16..20].try_into().unwrap()),
            )
        };
        assert_eq!(entry(0), (0, layout::MMIO_HOLE_START, 1));
        assert_eq!(entry(1).0, layout::RAM_64BIT_START);
        assert_eq!(entry(2).2, 2);
    }

    #[test]
    fn rom_sizes_and_uuid() {
        let dir = std::env::temp_dir().join(format!("oxvirt-rom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("rom");
        std::fs::write(&p, vec![0u8; 1000]).unwrap();
        assert!(Rom::read(&p).is_err());
        std::fs::write(&p, vec![0u8; 512 << 10]).unwrap();
        assert!(Rom::read(&p).is_err());
        std::fs::write(&p, vec![0u8; 128 << 10]).unwrap();
        assert_eq!(Rom::read(&p).unwrap().base(), 0xfffe_0000);
        assert!(Rom::read(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            uuid_bytes("00010203-0405-0607-0809-0a0b0c0d0e0f").unwrap()[15],
            15
        );
        assert!(uuid_bytes("nope").is_none());
    }
}
