//! Facts about the host: CPUs, memory, capabilities XML, sysinfo. Read
//! from /proc and /sys on each call; what only KVM knows comes once from
//! `oxvirt-vmm --probe-host`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::vmm::probe::HostProbe;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// The hypervisor version every front end reports (`virConnectGetVersion`),
/// in libvirt's `major * 1_000_000 + minor * 1000 + micro` form. Clients
/// such as virt-install gate features on the QEMU version behind the
/// `qemu:///` URI, so this is the QEMU level whose features oxvirt's XML
/// handling matches, not oxvirt's own version.
pub const HYPERVISOR_VERSION: u64 = 7_002_000;

/// The libvirt API level both front ends match (`virConnectGetLibVersion`).
pub const LIB_VERSION: u64 = 9_000_000;

/// The host's hostname.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Number of online host CPUs.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Which CPUs are online, indexed by CPU number.
/// `virNodeGetCPUMap`: which host CPUs are online.
pub fn node_get_cpu_map(flags: u32) -> Result<Vec<bool>> {
    super::check_flags(flags, 0, "virNodeGetCPUMap")?;
    Ok(cpu_map())
}

/// `virNodeGetCPUStats` of `cpu` (-1: all), nanoseconds.
pub fn node_get_cpu_stats(cpu: i32, flags: u32) -> Result<BTreeMap<String, u64>> {
    super::check_flags(flags, 0, "virNodeGetCPUStats")?;
    cpu_stats(cpu)
}

/// `virNodeGetMemoryStats` of `cell` (-1: all), KiB.
pub fn node_get_memory_stats(cell: i32, flags: u32) -> Result<BTreeMap<String, u64>> {
    super::check_flags(flags, 0, "virNodeGetMemoryStats")?;
    memory_stats(cell)
}

/// `virConnectGetSysinfo`.
pub fn connect_get_sysinfo(flags: u32) -> Result<String> {
    super::check_flags(flags, 0, "virConnectGetSysinfo")?;
    Ok(sysinfo_xml())
}

pub fn cpu_map() -> Vec<bool> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut online = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok(), b.parse::<usize>().ok()),
            None => (part.parse().ok(), part.parse().ok()),
        };
        if let (Some(a), Some(b)) = (a, b) {
            if b >= online.len() && b < 65536 {
                online.resize(b + 1, false);
            }
            for cpu in a..=b.min(65535) {
                if let Some(slot) = online.get_mut(cpu) {
                    *slot = true;
                }
            }
        }
    }
    if online.is_empty() {
        online = vec![true; cpu_count()];
    }
    online
}

/// `/proc/meminfo` in KiB, by field name.
fn meminfo() -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let n = v.split_whitespace().next()?.parse().ok()?;
            Some((k.trim().to_string(), n))
        })
        .collect()
}

/// `virNodeGetMemoryStats` for the whole host (cell -1), in KiB.
pub fn memory_stats(cell: i32) -> Result<BTreeMap<String, u64>> {
    if cell != -1 && cell != 0 {
        return Err(Error::invalid_arg(format!(
            "cell number {cell} out of range"
        )));
    }
    let m = meminfo();
    let get = |k: &str| m.get(k).copied().unwrap_or(0);
    let mut out = BTreeMap::new();
    out.insert("total".to_string(), get("MemTotal"));
    out.insert("free".to_string(), get("MemFree"));
    out.insert("buffers".to_string(), get("Buffers"));
    out.insert("cached".to_string(), get("Cached"));
    Ok(out)
}

/// Total host memory in KiB.
pub fn total_memory_kib() -> u64 {
    meminfo().get("MemTotal").copied().unwrap_or(0)
}

/// The first CPU's clock in MHz from /proc/cpuinfo (0 if unknown), as
/// `virNodeGetInfo` reports it.
pub fn cpu_mhz() -> u32 {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "cpu MHz")
        .and_then(|(_, v)| v.trim().parse::<f64>().ok())
        .map(|m| m as u32)
        .unwrap_or(0)
}

/// `virNodeGetFreeMemory`, in bytes.
pub fn free_memory_bytes() -> u64 {
    meminfo().get("MemFree").copied().unwrap_or(0) * 1024
}

/// `virNodeGetCPUStats` (cpu -1 for the total), in nanoseconds.
pub fn cpu_stats(cpu: i32) -> Result<BTreeMap<String, u64>> {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let want = if cpu < 0 {
        "cpu".to_string()
    } else {
        format!("cpu{cpu}")
    };
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let to_ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if f.next() != Some(want.as_str()) {
            continue;
        }
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let mut out = BTreeMap::new();
        out.insert("kernel".to_string(), to_ns(at(2)));
        out.insert("user".to_string(), to_ns(at(0) + at(1)));
        out.insert("idle".to_string(), to_ns(at(3)));
        out.insert("iowait".to_string(), to_ns(at(4)));
        return Ok(out);
    }
    Err(Error::invalid_arg(format!(
        "Invalid cpuNum in virNodeGetCPUStats: {cpu}"
    )))
}

fn cpu_model_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "model name").then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
}

/// Runs `VMM --probe-host` (bounded to a few seconds); `None` if the VMM
/// cannot tell, in which case the capabilities leave the TSC out as
/// libvirt does when KVM gives no answer.
pub fn probe_kvm(vmm: &Path) -> Option<HostProbe> {
    let mut child = Command::new(vmm)
        .arg("--probe-host")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// `sockets dies cores threads` of the host, from the CPU topology in sysfs.
fn cpu_topology(cpus: usize) -> (usize, usize, usize) {
    let read = |cpu: usize, leaf: &str| -> Option<String> {
        std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{cpu}/topology/{leaf}"))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let mut packages = std::collections::BTreeSet::new();
    let mut cores = std::collections::BTreeSet::new();
    for cpu in 0..cpus {
        let pkg = read(cpu, "physical_package_id").unwrap_or_default();
        cores.insert((pkg.clone(), read(cpu, "core_id").unwrap_or_default()));
        packages.insert(pkg);
    }
    let sockets = packages.len().max(1);
    let cores_per_socket = (cores.len() / sockets).max(1);
    let threads = (cpus / (sockets * cores_per_socket)).max(1);
    (sockets, cores_per_socket, threads)
}

/// `virConnectGetCapabilities`.
pub fn capabilities_xml(host_uuid: &str, kvm: Option<HostProbe>) -> String {
    let cpus = cpu_count();
    let (sockets, cores, threads) = cpu_topology(cpus);
    let counter = kvm
        .filter(|k| k.tsc_khz > 0)
        .map(|k| {
            format!(
                "      <counter name='tsc' frequency='{}' scaling='{}'/>\n",
                u64::from(k.tsc_khz) * 1000,
                if k.tsc_scaling { "yes" } else { "no" }
            )
        })
        .unwrap_or_default();
    let mem = total_memory_kib();
    let mut cpu_list = String::new();
    for i in 0..cpus {
        cpu_list.push_str(&format!(
            "            <cpu id='{i}' socket_id='0' die_id='0' core_id='{i}' siblings='{i}'/>\n"
        ));
    }
    format!(
        "<capabilities>\n\n  <host>\n    <uuid>{host_uuid}</uuid>\n    <cpu>\n      <arch>x86_64</arch>\n{counter}      <topology sockets='{sockets}' dies='1' cores='{cores}' threads='{threads}'/>\n    </cpu>\n    <power_management/>\n    <iommu support='no'/>\n    <migration_features>\n      <live/>\n    </migration_features>\n    <topology>\n      <cells num='1'>\n        <cell id='0'>\n          <memory unit='KiB'>{mem}</memory>\n          <cpus num='{cpus}'>\n{cpu_list}          </cpus>\n        </cell>\n      </cells>\n    </topology>\n  </host>\n\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='i686'>\n      <wordsize>32</wordsize>\n      <emulator>/usr/libexec/oxvirt-vmm</emulator>\n      <machine maxCpus='254'>pc-i440fx-7.2</machine>\n      <machine canonical='pc-i440fx-7.2' maxCpus='254'>pc</machine>\n      <machine maxCpus='254'>pc-q35-7.2</machine>\n      <machine canonical='pc-q35-7.2' maxCpus='254'>q35</machine>\n      <domain type='kvm'/>\n    </arch>\n    <features>\n      <acpi default='on' toggle='yes'/>\n      <apic default='on' toggle='no'/>\n      <pae/>\n      <nonpae/>\n    </features>\n  </guest>\n\n  <guest>\n    <os_type>hvm</os_type>\n    <arch name='x86_64'>\n      <wordsize>64</wordsize>\n      <emulator>/usr/libexec/oxvirt-vmm</emulator>\n      <machine maxCpus='254'>pc-i440fx-7.2</machine>\n      <machine canonical='pc-i440fx-7.2' maxCpus='254'>pc</machine>\n      <machine maxCpus='254'>pc-q35-7.2</machine>\n      <machine canonical='pc-q35-7.2' maxCpus='254'>q35</machine>\n      <domain type='kvm'/>\n    </arch>\n    <features>\n      <acpi default='on' toggle='yes'/>\n      <apic default='on' toggle='no'/>\n    </features>\n  </guest>\n\n</capabilities>\n"
    )
}

/// The `<os>` element of the domain capabilities: BIOS always, UEFI when
/// its image is installed. Like libvirt, `<loader>` lists the UEFI images
/// (volatile variables: there is no `<nvram>` template to copy).
fn os_capabilities(firmwares: &super::boot::Firmwares) -> String {
    let uefi = firmwares.uefi_available();
    let mut s = String::from(
        "  <os supported='yes'>\n    <enum name='firmware'>\n      <value>bios</value>\n",
    );
    if uefi {
        s.push_str("      <value>efi</value>\n");
    }
    s.push_str("    </enum>\n    <loader supported='yes'>\n");
    if uefi {
        s.push_str(&format!(
            "      <value>{}</value>\n",
            xml_escape(&firmwares.uefi.display().to_string())
        ));
    }
    s.push_str("      <enum name='type'>\n        <value>rom</value>\n");
    if uefi {
        s.push_str("        <value>pflash</value>\n");
    }
    s.push_str("      </enum>\n      <enum name='readonly'>\n        <value>yes</value>\n      </enum>\n      <enum name='secure'>\n        <value>no</value>\n      </enum>\n    </loader>\n  </os>\n");
    s
}

/// `virConnectGetDomainCapabilities` (empty strings mean "default").
///
/// Guests boot a kernel directly or through SeaBIOS (`<loader>` lists it).
/// Cockpit 288 reads the `readonly` enum and the first `<value>` below
/// each loader without checking that they exist.
pub fn domain_capabilities_xml(
    flags: u32,
    emulator: &str,
    arch: &str,
    machine: &str,
    virttype: &str,
    firmwares: &super::boot::Firmwares,
) -> Result<String> {
    super::check_flags(flags, 0, "virConnectGetDomainCapabilities")?;
    let arch = if arch.is_empty() { "x86_64" } else { arch };
    if arch != "x86_64" && arch != "i686" {
        return Err(Error::new(
            crate::error::ErrorCode::InvalidArg,
            crate::error::ErrorDomain::Qemu,
            format!("KVM is not supported on this host for architecture '{arch}'"),
        ));
    }
    let virttype = if virttype.is_empty() { "kvm" } else { virttype };
    if virttype != "kvm" {
        return Err(Error::unsupported(format!(
            "virttype '{virttype}' is not supported"
        )));
    }
    let machine = crate::xml::defaults::canonical_machine((!machine.is_empty()).then_some(machine));
    let emulator = if emulator.is_empty() {
        "/usr/libexec/oxvirt-vmm"
    } else {
        emulator
    };
    Ok(format!(
        "<domainCapabilities>\n  <path>{}</path>\n  <domain>kvm</domain>\n  <machine>{}</machine>\n  <arch>{}</arch>\n  <vcpu max='254'/>\n  <iothreads supported='no'/>\n{}  <cpu>\n    <mode name='host-passthrough' supported='yes'>\n      <enum name='hostPassthroughMigratable'>\n        <value>off</value>\n      </enum>\n    </mode>\n    <mode name='maximum' supported='no'/>\n    <mode name='host-model' supported='no'/>\n    <mode name='custom' supported='no'/>\n  </cpu>\n  <devices>\n    <disk supported='yes'>\n      <enum name='diskDevice'>\n        <value>disk</value>\n        <value>cdrom</value>\n      </enum>\n      <enum name='bus'>\n        <value>ide</value>\n        <value>scsi</value>\n        <value>virtio</value>\n        <value>sata</value>\n      </enum>\n      <enum name='model'/>\n    </disk>\n    <graphics supported='yes'>\n      <enum name='type'>\n        <value>vnc</value>\n      </enum>\n    </graphics>\n    <video supported='yes'>\n      <enum name='modelType'>\n        <value>vga</value>\n        <value>none</value>\n      </enum>\n    </video>\n    <hostdev supported='no'/>\n    <rng supported='yes'>\n      <enum name='model'>\n        <value>virtio</value>\n      </enum>\n      <enum name='backendModel'>\n        <value>random</value>\n      </enum>\n    </rng>\n  </devices>\n  <features>\n    <gic supported='no'/>\n    <vmcoreinfo supported='no'/>\n    <genid supported='no'/>\n    <sev supported='no'/>\n  </features>\n</domainCapabilities>\n",
        xml_escape(emulator),
        xml_escape(machine),
        arch,
        os_capabilities(firmwares)
    ))
}

/// `virConnectGetSysinfo`: the host's SMBIOS data as far as /sys shows it.
pub fn sysinfo_xml() -> String {
    let dmi = |f: &str| {
        std::fs::read_to_string(format!("/sys/class/dmi/id/{f}"))
            .map(|s| xml_escape(s.trim()))
            .unwrap_or_default()
    };
    let mut out = String::from("<sysinfo type='smbios'>\n");
    out.push_str(&format!(
        "  <bios>\n    <entry name='vendor'>{}</entry>\n    <entry name='version'>{}</entry>\n    <entry name='date'>{}</entry>\n  </bios>\n",
        dmi("bios_vendor"),
        dmi("bios_version"),
        dmi("bios_date")
    ));
    out.push_str(&format!(
        "  <system>\n    <entry name='manufacturer'>{}</entry>\n    <entry name='product'>{}</entry>\n    <entry name='version'>{}</entry>\n  </system>\n",
        dmi("sys_vendor"),
        dmi("product_name"),
        dmi("product_version")
    ));
    out.push_str(&format!(
        "  <processor>\n    <entry name='version'>{}</entry>\n  </processor>\n",
        xml_escape(&cpu_model_name())
    ));
    out.push_str("</sysinfo>\n");
    out
}

/// A stable host UUID: the machine id when there is one.
pub fn host_uuid() -> String {
    let id = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let id = id.trim();
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "00000000-0000-0000-0000-000000000000".to_string())
}

/// libvirt 9.0's x86 CPU model names, in the order of its CPU map
/// (`virsh cpu-models x86_64`).
const X86_CPU_MODELS: [&str; 58] = [
    "486",
    "pentium",
    "pentium2",
    "pentium3",
    "pentiumpro",
    "coreduo",
    "n270",
    "core2duo",
    "qemu32",
    "kvm32",
    "cpu64-rhel5",
    "cpu64-rhel6",
    "qemu64",
    "kvm64",
    "Conroe",
    "Penryn",
    "Nehalem",
    "Nehalem-IBRS",
    "Westmere",
    "Westmere-IBRS",
    "SandyBridge",
    "SandyBridge-IBRS",
    "IvyBridge",
    "IvyBridge-IBRS",
    "Haswell-noTSX",
    "Haswell-noTSX-IBRS",
    "Haswell",
    "Haswell-IBRS",
    "Broadwell-noTSX",
    "Broadwell-noTSX-IBRS",
    "Broadwell",
    "Broadwell-IBRS",
    "Skylake-Client",
    "Skylake-Client-IBRS",
    "Skylake-Client-noTSX-IBRS",
    "Skylake-Server",
    "Skylake-Server-IBRS",
    "Skylake-Server-noTSX-IBRS",
    "Cascadelake-Server",
    "Cascadelake-Server-noTSX",
    "Icelake-Client",
    "Icelake-Client-noTSX",
    "Icelake-Server",
    "Icelake-Server-noTSX",
    "Cooperlake",
    "Snowridge",
    "athlon",
    "phenom",
    "Opteron_G1",
    "Opteron_G2",
    "Opteron_G3",
    "Opteron_G4",
    "Opteron_G5",
    "EPYC",
    "EPYC-IBPB",
    "EPYC-Rome",
    "EPYC-Milan",
    "Dhyana",
];

/// `virConnectGetCPUModelNames`.
pub fn cpu_model_names(arch: &str, flags: u32) -> Result<Vec<String>> {
    if flags != 0 {
        return Err(Error::invalid_arg(format!(
            "unsupported flags (0x{flags:x}) in function qemuConnectGetCPUModelNames"
        )));
    }
    match arch {
        "x86_64" | "i686" => Ok(X86_CPU_MODELS.iter().map(|m| m.to_string()).collect()),
        other => Err(Error::new(
            ErrorCode::InvalidArg,
            ErrorDomain::Cpu,
            format!("cannot find architecture {other}"),
        )),
    }
}

/// `virNodeGetCellsFreeMemory`: one NUMA cell (the whole host) here.
pub fn cells_free_memory(start_cell: i32, max_cells: i32) -> Result<Vec<u64>> {
    if start_cell != 0 {
        return Err(Error::new(
            ErrorCode::InternalError,
            ErrorDomain::None,
            format!("start cell {start_cell} out of range (0-0)"),
        ));
    }
    Ok(if max_cells > 0 {
        vec![free_memory_bytes()]
    } else {
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_capabilities_list_vnc_and_vga_in_libvirts_order() {
        let xml =
            domain_capabilities_xml(0, "", "", "", "", &super::super::boot::Firmwares::default())
                .unwrap();
        let graphics = "    <graphics supported='yes'>\n      <enum name='type'>\n        <value>vnc</value>\n      </enum>\n    </graphics>\n";
        let video = "    <video supported='yes'>\n      <enum name='modelType'>\n        <value>vga</value>\n        <value>none</value>\n      </enum>\n    </video>\n";
        let at = |s: &str| {
            xml.find(s)
                .unwrap_or_else(|| panic!("{s} missing from {xml}"))
        };
        // disk, graphics, video, hostdev, rng: libvirt's element order.
        assert!(at("</disk>") < at(graphics));
        assert!(at(graphics) < at(video));
        assert!(at(video) < at("<hostdev"));
        assert!(at("<hostdev") < at("<rng"));
        // libvirt 9.0 has no <input> in domain capabilities.
        assert!(!xml.contains("<input"));
    }
}
