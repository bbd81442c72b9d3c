//! The DSDT: COM1, RTC, power button and PCI hotplug behind the Generic
//! Event Device, the PCI host bridge with its hotplug slots and the
//! `_S5_` sleep package.

use acpi_tables::Aml;
use acpi_tables::aml::{
    self, AddressSpace, AddressSpaceCacheable, Device, EISAName, FieldAccessType, FieldEntry,
    FieldLockRule, FieldUpdateRule, IO, Interrupt, Name, Package, Path, ResourceTemplate,
};

use super::AcpiParams;
use crate::vmm::cpu;
use crate::vmm::devices::{cpu_hotplug, ged, pci_hotplug};
use crate::vmm::layout;

/// AML already encoded, placed as it is among an object's children.
struct RawAml(Vec<u8>);

impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        sink.vec(&self.0);
    }
}

fn com1() -> Vec<u8> {
    let mut out = Vec::new();
    let io = IO::new(layout::COM1_PORT, layout::COM1_PORT, 1, 8);
    let irq = Interrupt::new(true, true, false, false, layout::COM1_IRQ);
    let crs = ResourceTemplate::new(vec![&io, &irq]);
    Device::new(
        "COM1".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0501")),
            &Name::new("_UID".into(), &0u8),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

fn rtc() -> Vec<u8> {
    let mut out = Vec::new();
    let io = IO::new(layout::CMOS_PORT, layout::CMOS_PORT, 1, 2);
    let crs = ResourceTemplate::new(vec![&io]);
    Device::new(
        "RTC_".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0B00")),
            &Name::new("_CRS".into(), &crs),
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

/// The i8042's keyboard and mouse, which firmware and Linux look for in
/// the DSDT before they touch the controller.
fn ps2() -> Vec<u8> {
    let mut out = Vec::new();
    let data = IO::new(layout::I8042_DATA_PORT, layout::I8042_DATA_PORT, 1, 1);
    let cmd = IO::new(layout::I8042_CMD_PORT, layout::I8042_CMD_PORT, 1, 1);
    let kbd_irq = Interrupt::new(true, true, false, false, layout::I8042_KBD_IRQ);
    let kbd_crs = ResourceTemplate::new(vec![&data, &cmd, &kbd_irq]);
    Device::new(
        "PS2K".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0303")),
            &Name::new("_CRS".into(), &kbd_crs),
        ],
    )
    .to_aml_bytes(&mut out);
    let aux_irq = Interrupt::new(true, true, false, false, layout::I8042_AUX_IRQ);
    let aux_crs = ResourceTemplate::new(vec![&aux_irq]);
    Device::new(
        "PS2M".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0F13")),
            &Name::new("_CRS".into(), &aux_crs),
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

fn power_button() -> Vec<u8> {
    let mut out = Vec::new();
    Device::new(
        "PWRB".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0C0C")),
            &Name::new("_UID".into(), &0u8),
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

fn ged() -> Vec<u8> {
    let mut out = Vec::new();
    let irq = Interrupt::new(true, true, false, false, layout::GED_IRQ);
    let crs = ResourceTemplate::new(vec![&irq]);
    let base = layout::GED_START as usize;
    let one = 1usize;
    let region = aml::OpRegion::new("GDST".into(), aml::OpRegionSpace::SystemMemory, &base, &one);
    let field = aml::Field::new(
        "GDST".into(),
        FieldAccessType::Byte,
        FieldLockRule::NoLock,
        FieldUpdateRule::Preserve,
        vec![FieldEntry::Named(*b"GDAT", 8)],
    );
    let gdat = Path::new("GDAT");
    let store = aml::Store::new(&aml::Local(0), &gdat);
    let and = aml::And::new(&aml::Local(1), &aml::Local(0), &1u8);
    let pwrb = Path::new("\\_SB_.PWRB");
    let notify = aml::Notify::new(&pwrb, &0x80u8);
    let test = aml::If::new(&aml::Local(1), vec![&notify]);
    let hotplug_bit = ged::EVENT_PCI_HOTPLUG;
    let and_hotplug = aml::And::new(&aml::Local(2), &aml::Local(0), &hotplug_bit);
    let pcnt = aml::MethodCall::new("\\_SB_.PCI0.PCNT".into(), vec![]);
    let test_hotplug = aml::If::new(&aml::Local(2), vec![&pcnt]);
    let cpu_bit = ged::EVENT_CPU_HOTPLUG;
    let and_cpu = aml::And::new(&aml::Local(3), &aml::Local(0), &cpu_bit);
    let cscn = aml::MethodCall::new("\\_SB_.CPUS.CSCN".into(), vec![]);
    let test_cpu = aml::If::new(&aml::Local(3), vec![&cscn]);
    let evt = aml::Method::new(
        "_EVT".into(),
        1,
        true,
        vec![
            &store,
            &and,
            &test,
            &and_hotplug,
            &test_hotplug,
            &and_cpu,
            &test_cpu,
        ],
    );
    Device::new(
        "GED0".into(),
        vec![
            &Name::new("_HID".into(), &"ACPI0013"),
            &Name::new("_UID".into(), &0u8),
            &Name::new("_CRS".into(), &crs),
            &region,
            &field,
            &evt,
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

/// The PCI hotplug registers (`devices/pci_hotplug.rs`) and `PCEJ`,
/// which ejects the slot given.
fn pci_hotplug_controller() -> Vec<u8> {
    let mut out = Vec::new();
    let base = layout::PCI_HOTPLUG_START as u32;
    let size = pci_hotplug::SIZE as u32;
    let mem = aml::Memory32Fixed::new(true, base, size);
    let crs = ResourceTemplate::new(vec![&mem]);
    let (base, size) = (base as usize, size as usize);
    let region = aml::OpRegion::new(
        "PCST".into(),
        aml::OpRegionSpace::SystemMemory,
        &base,
        &size,
    );
    let field = aml::Field::new(
        "PCST".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![
            FieldEntry::Named(*b"PCIU", 32),
            FieldEntry::Named(*b"PCID", 32),
            FieldEntry::Named(*b"B0EJ", 32),
            FieldEntry::Named(*b"PSEG", 32),
            FieldEntry::Named(*b"POST", 32),
        ],
    );
    let mutex = aml::Mutex::new("BLCK".into(), 0);
    let acquire = aml::Acquire::new("BLCK".into(), 0xffff);
    let one = 1u8;
    let shifted = aml::ShiftLeft::new(&aml::Local(0), &one, &aml::Arg(0));
    let b0ej = Path::new("B0EJ");
    let store = aml::Store::new(&b0ej, &aml::Local(0));
    let release = aml::Release::new("BLCK".into());
    let zero = 0u8;
    let ret = aml::Return::new(&zero);
    let pcej = aml::Method::new(
        "PCEJ".into(),
        1,
        true,
        vec![&acquire, &shifted, &store, &release, &ret],
    );
    // PCOS (slot, event, status): a slot's _OST, packed into POST.
    let (eight, sixteen) = (8u8, 16u8);
    let event = aml::ShiftLeft::new(&aml::Local(0), &aml::Arg(1), &eight);
    let status = aml::ShiftLeft::new(&aml::Local(1), &aml::Arg(2), &sixteen);
    let with_slot = aml::Or::new(&aml::Local(0), &aml::Local(0), &aml::Arg(0));
    let with_status = aml::Or::new(&aml::Local(0), &aml::Local(0), &aml::Local(1));
    let post = Path::new("POST");
    let store_ost = aml::Store::new(&post, &aml::Local(0));
    let pcos = aml::Method::new(
        "PCOS".into(),
        3,
        true,
        vec![
            &acquire,
            &event,
            &status,
            &with_slot,
            &with_status,
            &store_ost,
            &release,
        ],
    );
    Device::new(
        "PHPR".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0A06")),
            &Name::new("_UID".into(), &"PCI Hotplug Controller"),
            &Name::new("_CRS".into(), &crs),
            &mutex,
            &region,
            &field,
            &pcej,
            &pcos,
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

/// The AML name of a hotplug slot's device.
fn cpu_name(index: u32) -> String {
    format!("C{index:03X}")
}

/// `\_SB_.CPUS`, the processor container: one `ACPI0007` device per vCPU
/// the machine has (`_STA` from the hotplug registers, `_MAT` its MADT
/// entry, `_EJ0` the eject), and `CSCN`, run on the GED's CPU hotplug
/// event, which tells the OS of each vCPU plugged in (Device Check) and of
/// each the host wants back (Eject Request, highest first).
fn cpus(params: &AcpiParams) -> Vec<u8> {
    let max = params.max_vcpus;
    let mem = aml::Memory32Fixed::new(
        true,
        layout::CPU_HOTPLUG_START as u32,
        cpu_hotplug::SIZE as u32,
    );
    let crs = ResourceTemplate::new(vec![&mem]);
    let base = layout::CPU_HOTPLUG_START as usize;
    let size = cpu_hotplug::SIZE as usize;
    let region = aml::OpRegion::new(
        "CPST".into(),
        aml::OpRegionSpace::SystemMemory,
        &base,
        &size,
    );
    let field = aml::Field::new(
        "CPST".into(),
        FieldAccessType::DWord,
        FieldLockRule::NoLock,
        FieldUpdateRule::WriteAsZeroes,
        vec![
            FieldEntry::Named(*b"CSEL", 32),
            FieldEntry::Named(*b"CSTS", 32),
            FieldEntry::Named(*b"CMAX", 32),
        ],
    );
    let mutex = aml::Mutex::new("CPLK".into(), 0);
    let acquire = aml::Acquire::new("CPLK".into(), 0xffff);
    let release = aml::Release::new("CPLK".into());
    let (csel, csts) = (Path::new("CSEL"), Path::new("CSTS"));
    let (zero, one, sta_on) = (0u8, 1u8, 0xfu8);

    // CSTA (index): _STA of a vCPU.
    let select_arg = aml::Store::new(&csel, &aml::Arg(0));
    let present = aml::And::new(&aml::Local(0), &csts, &cpu_hotplug::STS_PRESENT);
    let ret_on = aml::Return::new(&sta_on);
    let if_present = aml::If::new(&aml::Local(0), vec![&ret_on]);
    let ret_off = aml::Return::new(&zero);
    let csta = aml::Method::new(
        "CSTA".into(),
        1,
        true,
        vec![
            &acquire,
            &select_arg,
            &present,
            &release,
            &if_present,
            &ret_off,
        ],
    );

    // CEJ0 (index): the eject.
    let eject = aml::Store::new(&csts, &cpu_hotplug::CTL_EJECT);
    let cej0 = aml::Method::new(
        "CEJ0".into(),
        1,
        true,
        vec![&acquire, &select_arg, &eject, &release],
    );

    // CTFY (index, event): Notify the vCPU's device.
    let names: Vec<(u32, Path)> = (0..max).map(|i| (i, Path::new(&cpu_name(i)))).collect();
    let notifies: Vec<aml::Notify> = names
        .iter()
        .map(|(_, n)| aml::Notify::new(n, &aml::Arg(1)))
        .collect();
    let equals: Vec<aml::Equal> = names
        .iter()
        .map(|(i, _)| aml::Equal::new(&aml::Arg(0), i))
        .collect();
    let ifs: Vec<aml::If> = equals
        .iter()
        .zip(&notifies)
        .map(|(e, n)| aml::If::new(e, vec![n]))
        .collect();
    let ctfy = aml::Method::new(
        "CTFY".into(),
        2,
        false,
        ifs.iter().map(|i| i as &dyn Aml).collect(),
    );

    // CSCN: insertions from the lowest index, removals from the highest.
    let (check, eject_request) = (1u8, 3u8);
    let start = aml::Store::new(&aml::Local(0), &zero);
    let select = aml::Store::new(&csel, &aml::Local(0));
    let status = aml::Store::new(&aml::Local(1), &csts);
    let inserted = aml::And::new(&aml::Local(2), &aml::Local(1), &cpu_hotplug::STS_INSERT);
    let clear = aml::Store::new(&csts, &cpu_hotplug::STS_INSERT);
    let tell_check = aml::MethodCall::new("CTFY".into(), vec![&aml::Local(0), &check]);
    let if_inserted = aml::If::new(&aml::Local(2), vec![&clear, &tell_check]);
    let next = aml::Add::new(&aml::Local(0), &aml::Local(0), &one);
    let below_max = aml::LessThan::new(&aml::Local(0), &max);
    let up = aml::While::new(
        &below_max,
        vec![&select, &status, &inserted, &if_inserted, &next],
    );
    let from_top = aml::Store::new(&aml::Local(0), &max);
    let above_zero = aml::GreaterThan::new(&aml::Local(0), &zero);
    let previous = aml::Subtract::new(&aml::Local(0), &aml::Local(0), &one);
    let removing = aml::And::new(&aml::Local(2), &aml::Local(1), &cpu_hotplug::STS_REMOVE);
    let tell_eject = aml::MethodCall::new("CTFY".into(), vec![&aml::Local(0), &eject_request]);
    let if_removing = aml::If::new(&aml::Local(2), vec![&tell_eject]);
    let down = aml::While::new(
        &above_zero,
        vec![&previous, &select, &status, &removing, &if_removing],
    );
    let cscn = aml::Method::new(
        "CSCN".into(),
        0,
        true,
        vec![&acquire, &start, &up, &from_top, &down, &release],
    );

    let mut devices = Vec::new();
    for i in 0..max {
        let apic_id = cpu::apic_id(&params.topology, i);
        let mut mat = Vec::new();
        acpi_tables::madt::ProcessorLocalApic::new(
            i as u8,
            apic_id as u8,
            acpi_tables::madt::EnabledStatus::Enabled,
        )
        .to_aml_bytes(&mut mat);
        let index = i;
        let sta_call = aml::MethodCall::new("CSTA".into(), vec![&index]);
        let sta_ret = aml::Return::new(&sta_call);
        let sta = aml::Method::new("_STA".into(), 0, false, vec![&sta_ret]);
        let ej_call = aml::MethodCall::new("CEJ0".into(), vec![&index]);
        let ej0 = aml::Method::new("_EJ0".into(), 1, false, vec![&ej_call]);
        let mat = aml::BufferData::new(mat);
        Device::new(
            cpu_name(i).as_str().into(),
            vec![
                &Name::new("_HID".into(), &"ACPI0007"),
                &Name::new("_UID".into(), &index),
                &sta,
                &Name::new("_MAT".into(), &mat),
                &ej0,
            ],
        )
        .to_aml_bytes(&mut devices);
    }
    let devices = RawAml(devices);
    let mut out = Vec::new();
    Device::new(
        "CPUS".into(),
        vec![
            &Name::new("_HID".into(), &"ACPI0010"),
            &Name::new("_CID".into(), &EISAName::new("PNP0A05")),
            &Name::new("_CRS".into(), &crs),
            &mutex,
            &region,
            &field,
            &csta,
            &cej0,
            &ctfy,
            &cscn,
            &devices,
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

fn slot_name(slot: u8) -> String {
    format!("S{slot:03X}")
}

/// One device object per slot of bus 0 with `_EJ0`, which makes it a
/// hotplug slot for the guest (Linux's acpiphp), and `_SUN`, its number
/// as guests show it.
fn hotplug_slots() -> Vec<u8> {
    let mut out = Vec::new();
    for slot in 1..32u8 {
        let adr = u32::from(slot) << 16;
        let sun = u32::from(slot);
        let pcej = aml::MethodCall::new("\\_SB_.PHPR.PCEJ".into(), vec![&sun]);
        let ej0 = aml::Method::new("_EJ0".into(), 1, false, vec![&pcej]);
        let pcos = aml::MethodCall::new(
            "\\_SB_.PHPR.PCOS".into(),
            vec![&sun, &aml::Arg(0), &aml::Arg(1)],
        );
        let ost = aml::Method::new("_OST".into(), 3, false, vec![&pcos]);
        Device::new(
            slot_name(slot).as_str().into(),
            vec![
                &Name::new("_ADR".into(), &adr),
                &Name::new("_SUN".into(), &sun),
                &ej0,
                &ost,
            ],
        )
        .to_aml_bytes(&mut out);
    }
    out
}

/// `PCNT`, run on the GED's hotplug event: reads which slots gained a
/// device (PCIU) and which the host wants back (PCID), and notifies
/// each slot's device object: Device Check (1) or Eject Request (3).
fn hotplug_notify_method() -> Vec<u8> {
    let mut out = Vec::new();
    let acquire = aml::Acquire::new("\\_SB_.PHPR.BLCK".into(), 0xffff);
    let (pciu, pcid) = (Path::new("\\_SB_.PHPR.PCIU"), Path::new("\\_SB_.PHPR.PCID"));
    let up = aml::Store::new(&aml::Local(0), &pciu);
    let down = aml::Store::new(&aml::Local(1), &pcid);
    let release = aml::Release::new("\\_SB_.PHPR.BLCK".into());
    let names: Vec<(u32, Path)> = (1..32u8)
        .map(|s| (1u32 << s, Path::new(&slot_name(s))))
        .collect();
    let (check, eject) = (1u8, 3u8);
    let ands: Vec<[aml::And; 2]> = names
        .iter()
        .map(|(bit, _)| {
            [
                aml::And::new(&aml::Local(2), &aml::Local(0), bit),
                aml::And::new(&aml::Local(3), &aml::Local(1), bit),
            ]
        })
        .collect();
    let notifies: Vec<[aml::Notify; 2]> = names
        .iter()
        .map(|(_, name)| {
            [
                aml::Notify::new(name, &check),
                aml::Notify::new(name, &eject),
            ]
        })
        .collect();
    let ifs: Vec<[aml::If; 2]> = notifies
        .iter()
        .map(|[c, e]| {
            [
                aml::If::new(&aml::Local(2), vec![c]),
                aml::If::new(&aml::Local(3), vec![e]),
            ]
        })
        .collect();
    let mut body: Vec<&dyn Aml> = vec![&acquire, &up, &down, &release];
    for ([and_up, and_down], [if_up, if_down]) in ands.iter().zip(&ifs) {
        body.extend([and_up as &dyn Aml, if_up, and_down, if_down]);
    }
    aml::Method::new("PCNT".into(), 0, true, body).to_aml_bytes(&mut out);
    out
}

fn pci_host_bridge(mmio64_start: u64, mmio64_size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let bus = AddressSpace::<u16>::new_bus_number(
        u16::from(layout::PCI_BUS_MIN),
        u16::from(layout::PCI_BUS_MAX),
    );
    let cfg_io = IO::new(layout::PCI_CONFIG_PORT, layout::PCI_CONFIG_PORT, 1, 8);
    let io_low = AddressSpace::<u16>::new_io(0x0000, layout::PCI_CONFIG_PORT - 1, None);
    let io_high = AddressSpace::<u16>::new_io(layout::PCI_IO_START, layout::PCI_IO_END, None);
    let [mmio32, mmio32_high] = layout::PCI_MMIO32_WINDOWS.map(|(start, size)| {
        AddressSpace::<u32>::new_memory(
            AddressSpaceCacheable::NotCacheable,
            true,
            start as u32,
            (start + size - 1) as u32,
            None,
        )
    });
    let mmio64 = AddressSpace::<u64>::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        mmio64_start,
        mmio64_start + mmio64_size - 1,
        None,
    );
    let crs = ResourceTemplate::new(vec![
        &bus,
        &cfg_io,
        &io_low,
        &io_high,
        &mmio32,
        &mmio32_high,
        &mmio64,
    ]);
    // Legacy INTx routing: every slot's pins A-D straight to IOAPIC GSIs.
    let routes: Vec<(u32, u8, u32)> = (1u8..32)
        .flat_map(|slot| {
            (0u8..4).map(move |pin| {
                (
                    u32::from(slot) << 16 | 0xffff,
                    pin,
                    layout::pci_intx_gsi(slot, pin),
                )
            })
        })
        .collect();
    let zero = 0u8;
    let entries: Vec<Package> = routes
        .iter()
        .map(|(addr, pin, gsi)| Package::new(vec![addr, pin, &zero, gsi]))
        .collect();
    let prt = Package::new(entries.iter().map(|e| e as &dyn Aml).collect());
    let slots = RawAml(hotplug_slots());
    let pcnt = RawAml(hotplug_notify_method());
    Device::new(
        "PCI0".into(),
        vec![
            &Name::new("_HID".into(), &EISAName::new("PNP0A08")),
            &Name::new("_CID".into(), &EISAName::new("PNP0A03")),
            &Name::new("_ADR".into(), &0u8),
            &Name::new("_SEG".into(), &0u8),
            &Name::new("_UID".into(), &0u8),
            &Name::new("_BBN".into(), &layout::PCI_BUS_MIN),
            &Name::new("_CRS".into(), &crs),
            &Name::new("_PRT".into(), &prt),
            &slots,
            &pcnt,
        ],
    )
    .to_aml_bytes(&mut out);
    out
}

/// AML body of the DSDT (everything after the table header).
pub fn body(params: &AcpiParams) -> Vec<u8> {
    let mut sb = Vec::new();
    sb.extend(cpus(params));
    sb.extend(com1());
    sb.extend(rtc());
    sb.extend(ps2());
    sb.extend(power_button());
    sb.extend(ged());
    sb.extend(pci_hotplug_controller());
    sb.extend(pci_host_bridge(
        params.pci_mmio64_start,
        params.pci_mmio64_size,
    ));
    let mut out = aml::Scope::raw("\\_SB_".into(), sb);
    let s5_type = layout::S5_SLEEP_TYPE;
    let zero = 0u8;
    Name::new("_S5_".into(), &Package::new(vec![&s5_type, &zero])).to_aml_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn has_devices_and_s5() {
        let b = body(&crate::vmm::acpi::tables::tests::params(2));
        // EisaId("PNP0501") as DWordConst.
        assert!(find(&b, &[0x0c, 0x41, 0xd0, 0x05, 0x01]).is_some());
        // EisaId("PNP0C0C").
        assert!(find(&b, &[0x0c, 0x41, 0xd0, 0x0c, 0x0c]).is_some());
        // EisaId("PNP0303") and EisaId("PNP0F13").
        assert!(find(&b, &[0x0c, 0x41, 0xd0, 0x03, 0x03]).is_some());
        assert!(find(&b, &[0x0c, 0x41, 0xd0, 0x0f, 0x13]).is_some());
        assert!(find(&b, b"ACPI0013").is_some());
        // Name(_S5_, Package(2) { 5, 0 }).
        let s5 = find(&b, b"_S5_").unwrap();
        assert_eq!(b[s5 - 1], 0x08);
        assert_eq!(b[s5 + 4], 0x12);
        // The GED's interrupt: Extended Interrupt descriptor with the GSI.
        let ged = find(&b, b"ACPI0013").unwrap();
        let irq = find(&b[ged..], &[0x89, 0x06, 0x00]).unwrap() + ged;
        assert_eq!(b[irq + 5], layout::GED_IRQ as u8);
    }
}
