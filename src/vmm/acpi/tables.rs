//! RSDP, XSDT, FADT (hardware-reduced), MADT, MCFG and the DSDT.

use acpi_tables::Aml;
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::madt::{EnabledStatus, IoApic, ProcessorLocalApic};
use acpi_tables::mcfg::MCFG;
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;

use super::{AcpiParams, dsdt};
use crate::vmm::cpu;
use crate::vmm::error::{Error, Result};
use crate::vmm::layout;

const OEM_ID: [u8; 6] = *b"OXVIRT";
const OEM_TABLE_ID: [u8; 8] = *b"OXVMM   ";
const OEM_REVISION: u32 = 1;

/// MADT interrupt source override: ISA IRQ 0 (PIT) arrives on GSI 2.
const MADT_TYPE_ISO: u8 = 2;
const MADT_TYPE_LAPIC_NMI: u8 = 4;
/// MADT flags: a dual 8259 is present too.
const MADT_PCAT_COMPAT: u32 = 1;

fn aml_bytes(t: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    t.to_aml_bytes(&mut v);
    v
}

/// The MADT: one Local APIC entry per vCPU the machine has (those absent
/// at boot "online capable", for CPU hotplug), the IOAPIC, the IRQ0 → GSI2
/// override and LINT1 as NMI on every CPU.
pub fn madt(params: &AcpiParams) -> Vec<u8> {
    let mut t = Sdt::new(*b"APIC", 44, 5, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.write_u32(36, layout::LAPIC_START as u32);
    t.write_u32(40, MADT_PCAT_COMPAT);
    for i in 0..params.max_vcpus {
        let id = cpu::apic_id(&params.topology, i);
        let status = match i < params.vcpus {
            true => EnabledStatus::Enabled,
            false => EnabledStatus::DisabledOnlineCapable,
        };
        t.append_slice(&aml_bytes(&ProcessorLocalApic::new(
            i as u8, id as u8, status,
        )));
    }
    t.append_slice(&aml_bytes(&IoApic::new(0, layout::IOAPIC_START as u32, 0)));
    // Type, length, bus 0 (ISA), source IRQ 0, GSI 2, flags 0 (conforming).
    t.append_slice(&[MADT_TYPE_ISO, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    // Type, length, all processors (0xff), flags 0, LINT1.
    t.append_slice(&[MADT_TYPE_LAPIC_NMI, 6, 0xff, 0, 0, 1]);
    t.update_checksum();
    t.as_slice().to_vec()
}

/// The hardware-reduced FADT pointing at the DSDT.
pub fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut b = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::ResetRegSup)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton);
    let io8 = |port: u16| {
        GAS::new(
            AddressSpace::SystemIo,
            8,
            0,
            AccessSize::ByteAccess,
            port.into(),
        )
    };
    b.sleep_control_reg = io8(layout::ACPI_SLEEP_CTL_PORT);
    b.sleep_status_reg = io8(layout::ACPI_SLEEP_STS_PORT);
    b.reset_reg = io8(layout::ACPI_RESET_PORT);
    b.reset_value = layout::ACPI_RESET_VALUE;
    b.hypervisor_vendor_identity = u64::from_le_bytes(*b"OXVIRT\0\0").into();
    aml_bytes(&b.finalize())
}

/// MCFG with one ECAM region for segment 0.
pub fn mcfg() -> Vec<u8> {
    let mut t = MCFG::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.add_ecam(
        layout::PCI_ECAM_START,
        0,
        layout::PCI_BUS_MIN,
        layout::PCI_BUS_MAX,
    );
    aml_bytes(&t)
}

/// The DSDT.
pub fn dsdt(params: &AcpiParams) -> Vec<u8> {
    let mut t = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.append_slice(&dsdt::body(params));
    t.update_checksum();
    t.as_slice().to_vec()
}

fn align8(v: u64) -> u64 {
    (v + 7) & !7
}

/// Where the pointer fields live, for firmware that relocates the tables.
const FADT_X_DSDT_OFFSET: u64 = 140;
const SDT_HEADER_LEN: u64 = 36;
const SDT_CHECKSUM_OFFSET: u32 = 9;
const RSDP_XSDT_OFFSET: u32 = 24;
const RSDP_EXT_CHECKSUM_OFFSET: u32 = 32;
const RSDP_LEN: u32 = 36;

/// Every table but the RSDP, laid out from `first`: the tables with their
/// addresses, and where the FADT and XSDT went.
struct Laid {
    tables: Vec<(u64, Vec<u8>)>,
    fadt: u64,
    xsdt: u64,
    xsdt_entries: usize,
}

fn lay_out(params: &AcpiParams, first: u64) -> Result<Laid> {
    if params.vcpus == 0 || params.vcpus > 255 {
        return Err(Error::Acpi(format!(
            "{} vCPUs cannot be described",
            params.vcpus
        )));
    }
    let mut tables = Vec::new();
    let mut cursor = first;
    let mut place = |bytes: Vec<u8>, out: &mut Vec<(u64, Vec<u8>)>| {
        let at = cursor;
        cursor = align8(cursor + bytes.len() as u64);
        out.push((at, bytes));
        at
    };
    let dsdt_addr = place(dsdt(params), &mut tables);
    let fadt_addr = place(fadt(dsdt_addr), &mut tables);
    let madt_addr = place(madt(params), &mut tables);
    let mcfg_addr = place(mcfg(), &mut tables);
    let entries = [fadt_addr, madt_addr, mcfg_addr];
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    for a in entries {
        xsdt.add_entry(a);
    }
    let xsdt_addr = place(aml_bytes(&xsdt), &mut tables);
    Ok(Laid {
        tables,
        fadt: fadt_addr,
        xsdt: xsdt_addr,
        xsdt_entries: entries.len(),
    })
}

/// Lays out every table starting at `base` (the RSDP first) and returns
/// `(address, bytes)` pairs.
pub fn build(params: &AcpiParams, base: u64) -> Result<Vec<(u64, Vec<u8>)>> {
    let laid = lay_out(params, align8(base + Rsdp::len() as u64))?;
    let mut out = laid.tables;
    out.push((base, aml_bytes(&Rsdp::new(OEM_ID, laid.xsdt))));
    Ok(out)
}

/// The tables as firmware loads them through fw_cfg: every table in one
/// blob at offsets from 0 (`etc/acpi/tables`), the RSDP on its own
/// (`etc/acpi/rsdp`), and the table-loader script (`etc/table-loader`)
/// that places both, turns the offsets into addresses and fixes the
/// checksums that changed.
pub struct FirmwareTables {
    pub tables: Vec<u8>,
    pub rsdp: Vec<u8>,
    pub loader: Vec<u8>,
}

pub const TABLES_FILE: &str = "etc/acpi/tables";
pub const RSDP_FILE: &str = "etc/acpi/rsdp";
pub const LOADER_FILE: &str = "etc/table-loader";

pub fn for_firmware(params: &AcpiParams) -> Result<FirmwareTables> {
    use super::loader::{Loader, Zone};
    let laid = lay_out(params, 0)?;
    let mut blob = Vec::new();
    for (at, bytes) in &laid.tables {
        blob.resize(*at as usize, 0);
        blob.extend_from_slice(bytes);
    }
    let len_of = |at: u64| {
        laid.tables
            .iter()
            .find(|(a, _)| *a == at)
            .map_or(0, |(_, b)| b.len() as u32)
    };
    let mut l = Loader::default();
    l.allocate(RSDP_FILE, 16, Zone::FSeg);
    l.allocate(TABLES_FILE, 64, Zone::High);
    l.add_pointer(
        TABLES_FILE,
        TABLES_FILE,
        (laid.fadt + FADT_X_DSDT_OFFSET) as u32,
        8,
    );
    l.add_checksum(
        TABLES_FILE,
        laid.fadt as u32 + SDT_CHECKSUM_OFFSET,
        laid.fadt as u32,
        len_of(laid.fadt),
    );
    for i in 0..laid.xsdt_entries as u64 {
        l.add_pointer(
            TABLES_FILE,
            TABLES_FILE,
            (laid.xsdt + SDT_HEADER_LEN + 8 * i) as u32,
            8,
        );
    }
    l.add_checksum(
        TABLES_FILE,
        laid.xsdt as u32 + SDT_CHECKSUM_OFFSET,
        laid.xsdt as u32,
        len_of(laid.xsdt),
    );
    l.add_pointer(RSDP_FILE, TABLES_FILE, RSDP_XSDT_OFFSET, 8);
    l.add_checksum(RSDP_FILE, RSDP_EXT_CHECKSUM_OFFSET, 0, RSDP_LEN);
    Ok(FirmwareTables {
        tables: blob,
        rsdp: aml_bytes(&Rsdp::new(OEM_ID, laid.xsdt)),
        loader: l.into_bytes(),
    })
}

#[cfg(test)]
pub(in crate::vmm::acpi) mod tests {
    use super::*;
    use crate::vmm::config::Topology;

    pub(in crate::vmm::acpi) fn params(n: u32) -> AcpiParams {
        AcpiParams {
            vcpus: n,
            max_vcpus: n,
            topology: Topology {
                sockets: 1,
                cores: n,
                threads: 1,
            },
            pci_mmio64_start: 1 << 32,
            pci_mmio64_size: 1 << 34,
        }
    }

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    /// ACPICA's disassembler reads the whole DSDT back without an error
    /// and finds the hotplug slots and methods where Linux looks for
    /// them.
    #[test]
    fn dsdt_disassembles_with_iasl() {
        let Some(iasl) = which_iasl() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "iasl (acpica-tools) is missing"
            );
            eprintln!("iasl missing: DSDT not disassembled");
            return;
        };
        let dir = std::env::temp_dir().join(format!("oxvirt-dsdt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let aml = dir.join("dsdt.aml");
        std::fs::write(&aml, dsdt(&params(2))).unwrap();
        let out = std::process::Command::new(iasl)
            .current_dir(&dir)
            .args(["-d", "dsdt.aml"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let dsl = std::fs::read_to_string(dir.join("dsdt.dsl")).unwrap_or_default();
        if std::env::var_os("OXVIRT_KEEP_DSDT").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        assert!(out.status.success(), "{log}");
        assert!(
            !log.contains("Error") && !dsl.contains("ACPI Error"),
            "{log}\n{dsl}"
        );
        for want in [
            "Device (S005)",
            "Name (_SUN, 0x05)",
            "Method (_EJ0, 1, NotSerialized)",
            "\\_SB.PHPR.PCEJ (0x05)",
            "Method (PCNT, 0, Serialized)",
            "Notify (S01F, 0x03)",
            "Method (PCEJ, 1, Serialized)",
            "\\_SB.PCI0.PCNT ()",
            "Field (PCST, DWordAcc, NoLock, WriteAsZeros)",
            "Name (_HID, \"ACPI0010\"",
            "Method (CSCN, 0, Serialized)",
            "Notify (C001, Arg1)",
            "Return (CSTA (One))",
            "CEJ0 (One)",
            "\\_SB.CPUS.CSCN ()",
            "Method (_OST, 3, NotSerialized)",
            "\\_SB.PHPR.PCOS (0x05, Arg0, Arg1)",
            "POST = Local0",
        ] {
            assert!(dsl.contains(want), "no '{want}' in\n{dsl}");
        }
    }

    fn which_iasl() -> Option<std::path::PathBuf> {
        ["/usr/bin/iasl", "/usr/local/bin/iasl"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
    }

    /// vCPUs absent at boot are listed "online capable" (flags bit 1), the
    /// others enabled (bit 0).
    #[test]
    fn madt_marks_hotpluggable_cpus_online_capable() {
        let mut p = params(4);
        p.vcpus = 1;
        let m = madt(&p);
        let mut flags = Vec::new();
        let mut off = 44;
        while off < m.len() {
            if m[off] == 0 {
                flags.push(m[off + 4]);
            }
            off += m[off + 1] as usize;
        }
        assert_eq!(flags, [1, 2, 2, 2]);
    }

    #[test]
    fn madt_lists_every_cpu() {
        let m = madt(&params(4));
        assert_eq!(&m[0..4], b"APIC");
        assert_eq!(sum(&m), 0);
        assert_eq!(
            u32::from_le_bytes([m[4], m[5], m[6], m[7]]) as usize,
            m.len()
        );
        let mut off = 44;
        let mut lapics = 0;
        let mut ioapics = 0;
        while off < m.len() {
            match m[off] {
                0 => lapics += 1,
                1 => ioapics += 1,
                _ => {}
            }
            off += m[off + 1] as usize;
        }
        assert_eq!((lapics, ioapics), (4, 1));
    }

    #[test]
    fn all_tables_checksum() {
        let blobs = build(&params(2), layout::ACPI_START).unwrap();
        for (_, b) in &blobs {
            if &b[0..8] == b"RSD PTR " {
                assert_eq!(sum(&b[0..20]), 0);
                assert_eq!(sum(b), 0);
            } else {
                assert_eq!(sum(b), 0, "{}", String::from_utf8_lossy(&b[0..4]));
            }
        }
        let fadt = blobs.iter().find(|(_, b)| &b[0..4] == b"FACP").unwrap();
        let dsdt = blobs.iter().find(|(_, b)| &b[0..4] == b"DSDT").unwrap();
        let x_dsdt = &fadt.1[FADT_X_DSDT_OFFSET as usize..][..8];
        assert_eq!(u64::from_le_bytes(x_dsdt.try_into().unwrap()), dsdt.0);
        let flags = u32::from_le_bytes([fadt.1[112], fadt.1[113], fadt.1[114], fadt.1[115]]);
        assert_ne!(flags & (1 << 20), 0);
        assert_ne!(flags & (1 << 10), 0);
    }

    /// Runs the loader script the way firmware does and checks that the
    /// result is the same set of valid tables, now at the chosen addresses.
    #[test]
    fn firmware_tables_relocate() {
        let fw = for_firmware(&params(2)).unwrap();
        let (tables_at, rsdp_at) = (0x7ff0_0000u64, 0xf5a0u64);
        let mut tables = fw.tables.clone();
        let mut rsdp = fw.rsdp.clone();
        for cmd in fw.loader.chunks(128) {
            let name = |at: usize| {
                let f = &cmd[at..at + 56];
                String::from_utf8_lossy(&f[..f.iter().position(|&b| b == 0).unwrap()]).into_owned()
            };
            let u32_at = |at: usize| u32::from_le_bytes(cmd[at..at + 4].try_into().unwrap());
            match u32_at(0) {
                1 => {}
                2 => {
                    let src = if name(60) == TABLES_FILE {
                        tables_at
                    } else {
                        rsdp_at
                    };
                    let dest = if name(4) == TABLES_FILE {
                        &mut tables
                    } else {
                        &mut rsdp
                    };
                    let off = u32_at(116) as usize;
                    assert_eq!(cmd[120], 8);
                    let v = u64::from_le_bytes(dest[off..off + 8].try_into().unwrap()) + src;
                    dest[off..off + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 => {
                    let f = if name(4) == TABLES_FILE {
                        &mut tables
                    } else {
                        &mut rsdp
                    };
                    let (res, start, len) = (u32_at(60), u32_at(64), u32_at(68));
                    let s = sum(&f[start as usize..(start + len) as usize]);
                    f[res as usize] = f[res as usize].wrapping_sub(s);
                }
                other => panic!("unexpected command {other}"),
            }
        }
        assert_eq!(sum(&rsdp[0..20]), 0);
        assert_eq!(sum(&rsdp[0..36]), 0);
        let xsdt = u64::from_le_bytes(rsdp[24..32].try_into().unwrap()) - tables_at;
        let xsdt = &tables[xsdt as usize..];
        let xlen = u32::from_le_bytes(xsdt[4..8].try_into().unwrap()) as usize;
        assert_eq!(sum(&xsdt[..xlen]), 0);
        for i in 0..3 {
            let a = u64::from_le_bytes(xsdt[36 + 8 * i..44 + 8 * i].try_into().unwrap());
            let t = &tables[(a - tables_at) as usize..];
            let tlen = u32::from_le_bytes(t[4..8].try_into().unwrap()) as usize;
            assert_eq!(sum(&t[..tlen]), 0, "{}", String::from_utf8_lossy(&t[0..4]));
            if &t[0..4] == b"FACP" {
                let d = u64::from_le_bytes(t[140..148].try_into().unwrap()) - tables_at;
                assert_eq!(&tables[d as usize..d as usize + 4], b"DSDT");
            }
        }
    }
}
