//! Early boot of a stock Debian kernel under oxvirt-vmm: the banner, the
//! e820 map, the ACPI tables and the CPU count must reach the serial log.
//! The VMM gives the guest two virtio-pci devices (a read-only disk at
//! 00:03.0 and an rng at 00:04.0); once the kernel enumerates PCI its
//! `pci 0000:00:03.0: [1af4:1042]` and `pci 0000:00:04.0: [1af4:1044]`
//! lines must be there. The PVH boot waits for them until the kernel gets
//! past enumeration (then they are required), the VMM stops, or
//! `OXVIRT_DEBIAN_PCI_TIMEOUT` (seconds, default 240) passes. On a host
//! whose KVM emulates guest ring 0 (no VMX/SVM, as this project's PVM
//! hosts), the VMM finishes the instructions the emulator lacks
//! (`cmpxchg16b`, `int3`, `popcnt`, `clac`, ...) and the kernel is told
//! `noxsave clearcpuid=ssse3` (what the VMM cannot finish there; see
//! `src/vmm/README.md`), so it gets past enumeration there too; if it is
//! stopped before, the PCI part is reported as skipped with the VMM's
//! error.
//!
//! The guest comes from `compat-tests`' reference recipe (vmlinuz, vmlinux,
//! initramfs.cpio.gz, cmdline) in `$OXVIRT_DEBIAN_GUEST` or
//! `/var/lib/oxvirt/guest-debian`. On this project's hosts `/dev/kvm` is
//! paravirtualised and runs guest kernel code by instruction emulation:
//! the bzImage's decompressor alone takes minutes there, so its bound is
//! longer (`OXVIRT_DEBIAN_BZIMAGE_TIMEOUT`, seconds, default 480). The PVH
//! ELF (vmlinux) skips the decompressor: alone on an idle host it shows
//! every line within ~10 s, but on a busy 2-core host it needs far more,
//! so its bound is 180 s (`OXVIRT_DEBIAN_TIMEOUT`). The two boots run one
//! after the other so they do not starve each other.

mod vmm_common;

use std::path::PathBuf;
use std::time::Duration;

use vmm_common::{Guest, host_emulates_ring0, kvm_available};

/// The devices' enumeration lines (vendor 1af4, modern device ids).
const PCI_LINES: &[&str] = &[
    "pci 0000:00:03.0: [1af4:1042]",
    "pci 0000:00:04.0: [1af4:1044]",
];

/// Lines a kernel prints only after PCI enumeration.
const PAST_PCI: &[&str] = &["Run /init", "Freeing unused kernel", "OXVIRT-INIT-OK"];

const MARKERS: &[&str] = &[
    "Linux version",
    "BIOS-provided physical RAM map",
    "BIOS-e820:",
    "ACPI: FACP",
    "ACPI: APIC",
    "ACPI: DSDT",
    "ACPI: MCFG",
];

fn guest_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OXVIRT_DEBIAN_GUEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/oxvirt/guest-debian"));
    if dir.join("vmlinuz").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: no Debian guest in {} (build one with \
             compat-tests/guest/build-debian-guest.sh DIR or set OXVIRT_DEBIAN_GUEST)",
            dir.display()
        );
        None
    }
}

fn timeout(var: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default),
    )
}

/// Serialises the boots: each needs a whole host CPU.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn early_boot(kernel_file: &str, bound: Duration, tag: &str, pci_bound: Option<Duration>) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    if !kvm_available() {
        return;
    }
    let Some(dir) = guest_dir() else { return };
    let kernel = dir.join(kernel_file);
    if !kernel.exists() {
        eprintln!("SKIP: {} missing", kernel.display());
        return;
    }
    let base = std::fs::read_to_string(dir.join("cmdline"))
        .unwrap_or_else(|_| "console=ttyS0 panic=-1".into());
    // earlyprintk sends the early lines to COM1 before the console driver
    // is up, which is all this host gets to see; `quiet` would hide them.
    let mut kept: Vec<&str> = base.split_whitespace().filter(|w| *w != "quiet").collect();
    if host_emulates_ring0() {
        kept.extend(["noxsave", "clearcpuid=ssse3"]);
    }
    let cmdline = format!("{} earlyprintk=ttyS0 loglevel=7", kept.join(" "));
    let cpus = 2;
    let name = format!("@oxvirt-vmm-test-{}-debian-{tag}", std::process::id());
    let initrd = dir.join("initramfs.cpio.gz");
    let initrd_s = initrd.display().to_string();
    let disk = std::env::temp_dir().join(format!(
        "oxvirt-vmm-test-{}-debian-{tag}.raw",
        std::process::id()
    ));
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("scratch disk");
    let disk_arg = format!("path={},ro=on,slot=3", disk.display());
    let mut extra = vec![
        "--control-socket",
        name.as_str(),
        "--disk",
        disk_arg.as_str(),
        "--rng",
        "slot=4",
    ];
    if initrd.exists() {
        extra.extend(["--initrd", initrd_s.as_str()]);
    }
    let started = std::time::Instant::now();
    let mut g = Guest::start(&kernel, cpus, 512, &cmdline, &extra);
    let want_smp = format!("smpboot: Allowing {cpus} CPUs");
    let done = |l: &str| MARKERS.iter().all(|m| l.contains(m)) && l.contains(&want_smp);
    let ok = g.wait_log(bound, done);
    let pci = match pci_bound {
        Some(b) if ok => {
            let pci_done = |l: &str| {
                PCI_LINES.iter().all(|m| l.contains(m)) || PAST_PCI.iter().any(|m| l.contains(m))
            };
            g.wait_log(b.saturating_sub(started.elapsed()), pci_done);
            Some(g.log())
        }
        _ => None,
    };
    let log = g.log();
    let mut stopped = false;
    if let Ok(None) = g.child.try_wait() {
        let mut c = g.connect();
        c.execute("quit");
        g.wait(Duration::from_secs(10));
    } else {
        stopped = true;
    }
    let _ = std::fs::remove_file(&disk);
    let missing: Vec<&str> = MARKERS
        .iter()
        .copied()
        .chain(std::iter::once(want_smp.as_str()))
        .filter(|m| !log.contains(m))
        .collect();
    let stderr = g.stderr();
    assert!(
        ok,
        "{kernel_file}: missing {missing:?} after {bound:?}; stderr: {stderr}\nserial log:\n{log}"
    );
    let Some(pci_log) = pci else { return };
    let enumerated = PCI_LINES.iter().all(|m| pci_log.contains(m));
    let past = PAST_PCI.iter().any(|m| pci_log.contains(m)) || pci_log.contains("pci 0000:00:");
    if enumerated {
        eprintln!("{kernel_file}: the kernel enumerated {PCI_LINES:?}");
        return;
    }
    assert!(
        !past,
        "{kernel_file}: the kernel enumerated PCI without {PCI_LINES:?}:\n{pci_log}"
    );
    let why = if stopped {
        format!("the VMM stopped first: {}", stderr.trim())
    } else {
        format!("not reached within {:?}", pci_bound.unwrap_or_default())
    };
    eprintln!(
        "SKIP (PCI enumeration): {kernel_file} did not get as far as enumerating PCI; {why}; \
         last line: {}",
        pci_log.lines().last().unwrap_or("")
    );
}

#[test]
fn debian_vmlinux_pvh_early_boot() {
    early_boot(
        "vmlinux",
        timeout("OXVIRT_DEBIAN_TIMEOUT", 180),
        "pvh",
        Some(timeout("OXVIRT_DEBIAN_PCI_TIMEOUT", 240)),
    );
}

#[test]
fn debian_bzimage_early_boot() {
    early_boot(
        "vmlinuz",
        timeout("OXVIRT_DEBIAN_BZIMAGE_TIMEOUT", 480),
        "bzimage",
        None,
    );
}
