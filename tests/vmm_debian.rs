//! Early boot of a stock Debian kernel under oxvirt-vmm: the banner, the
//! e820 map, the ACPI tables and the CPU count must reach the serial log.
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

use vmm_common::{Guest, kvm_available};

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
             /work/shared/reference/anchor-recipes/build-guest.sh or set OXVIRT_DEBIAN_GUEST)",
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

fn early_boot(kernel_file: &str, bound: Duration, tag: &str) {
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
    let kept: Vec<&str> = base.split_whitespace().filter(|w| *w != "quiet").collect();
    let cmdline = format!("{} earlyprintk=ttyS0 loglevel=7", kept.join(" "));
    let cpus = 2;
    let name = format!("@oxvirt-vmm-test-{}-debian-{tag}", std::process::id());
    let initrd = dir.join("initramfs.cpio.gz");
    let initrd_s = initrd.display().to_string();
    let mut extra = vec!["--control-socket", name.as_str()];
    if initrd.exists() {
        extra.extend(["--initrd", initrd_s.as_str()]);
    }
    let mut g = Guest::start(&kernel, cpus, 512, &cmdline, &extra);
    let want_smp = format!("smpboot: Allowing {cpus} CPUs");
    let done = |l: &str| MARKERS.iter().all(|m| l.contains(m)) && l.contains(&want_smp);
    let ok = g.wait_log(bound, done);
    let log = g.log();
    if let Ok(None) = g.child.try_wait() {
        let mut c = g.connect();
        c.execute("quit");
        g.wait(Duration::from_secs(10));
    }
    let missing: Vec<&str> = MARKERS
        .iter()
        .copied()
        .chain(std::iter::once(want_smp.as_str()))
        .filter(|m| !log.contains(m))
        .collect();
    assert!(
        ok,
        "{kernel_file}: missing {missing:?} after {bound:?}; stderr: {}\nserial log:\n{log}",
        g.stderr()
    );
}

#[test]
fn debian_vmlinux_pvh_early_boot() {
    early_boot("vmlinux", timeout("OXVIRT_DEBIAN_TIMEOUT", 180), "pvh");
}

#[test]
fn debian_bzimage_early_boot() {
    early_boot(
        "vmlinuz",
        timeout("OXVIRT_DEBIAN_BZIMAGE_TIMEOUT", 480),
        "bzimage",
    );
}
