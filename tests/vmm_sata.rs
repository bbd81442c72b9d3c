//! SATA hard disks under oxvirt-vmm: SeaBIOS (Debian's build) boots the
//! disk images of `compat-tests/guest/build-boot-images.sh` from a port
//! of the AHCI controller, raw and qcow2, and GRUB on them boots the test
//! guest, which passes its platform checks and finds the controller where
//! the VMM put it; with no virtio disk at all as well.

mod vmm_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmm_common::{Guest, boot_images, kvm_available, scratch, system_firmware};

/// The test guest's checks, as `vmm_firmware.rs` builds the images (one
/// set of images for all): platform, PCI with a disk in slot 3 and an
/// RNG in slot 4.
const DONE: &str = "DONE passed=8 failed=0";
const BIOS_PC: &str = "/usr/share/seabios/bios-256k.bin";
/// The AHCI controller as the test guest lists it, in slot 6.
const AHCI_IN_SLOT_6: &str = "INFO pci 00:06.0 8086:2922 class 010601";

/// SeaBIOS, a copy of boot image `name` (the disk may be written), and
/// the small virtio disk and RNG the test guest expects in slots 3 and 4.
struct Setup {
    image: PathBuf,
    bios: PathBuf,
    platform: Vec<String>,
}

fn setup(name: &str) -> Option<Setup> {
    if !kvm_available() {
        return None;
    }
    let built = boot_images()?.join(name);
    let bios = system_firmware(BIOS_PC)?;
    let dir = scratch("sata");
    let image = dir.join(name);
    std::fs::copy(&built, &image).unwrap();
    let blank = dir.join("blank.raw");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let platform = vec![
        "--disk".to_string(),
        format!("path={},ro=on,slot=3", blank.display()),
        "--rng".to_string(),
        "slot=4".to_string(),
    ];
    Some(Setup {
        image,
        bios,
        platform,
    })
}

/// Boots with the platform devices and `drives` (`--sata-*` options),
/// expects SeaBIOS to boot the hard disk, the test guest to pass every
/// check and power off; returns the serial log.
fn boots_from_the_sata_disk(s: &Setup, drives: &[String]) -> String {
    let args: Vec<&str> = s
        .platform
        .iter()
        .chain(drives)
        .map(String::as_str)
        .collect();
    let mut g = Guest::start_firmware("bios", &s.bios, 1, 256, &args);
    let st = g.wait(Duration::from_secs(300));
    let log = g.log();
    let err = g.stderr();
    assert!(log.contains("Booting from Hard Disk"), "{log}\n{err}");
    assert!(log.contains(DONE), "{log}\n{err}");
    assert!(log.contains(AHCI_IN_SLOT_6), "{log}");
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{log}\n{err}");
    log
}

/// `qemu-img check` on an image the VMM had open for writing, where
/// qemu-img is installed.
fn image_is_consistent(image: &Path) {
    match Command::new("qemu-img").arg("check").arg(image).output() {
        Ok(o) => assert!(
            o.status.success(),
            "qemu-img check {}: {}{}",
            image.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => eprintln!("qemu-img check not run: {e}"),
    }
}

#[test]
fn seabios_boots_the_test_guest_from_a_raw_sata_disk() {
    let Some(s) = setup("bios.raw") else { return };
    let disk = format!(
        "path={},ro=on,port=0,boot=1,slot=6,serial=OXSATA0",
        s.image.display()
    );
    boots_from_the_sata_disk(&s, &["--sata-disk".into(), disk]);
}

/// A writable qcow2 image on port 3 beside an empty CD-ROM drive on port
/// 1 of the same controller; the image is still a sound qcow2 after the
/// VMM flushed it at exit.
#[test]
fn seabios_boots_from_a_qcow2_sata_disk() {
    let Some(s) = setup("bios.qcow2") else { return };
    let disk = format!(
        "path={},format=qcow2,port=3,boot=1,slot=6",
        s.image.display()
    );
    boots_from_the_sata_disk(
        &s,
        &[
            "--sata-cdrom".into(),
            "port=1,slot=6".into(),
            "--sata-disk".into(),
            disk,
        ],
    );
    image_is_consistent(&s.image);
}

/// The SATA disk as the only disk, the controller in slot 3: the guest
/// passes every check but the one expecting virtio-blk in slot 3, where
/// it lists the AHCI controller instead.
#[test]
fn a_sata_disk_alone_boots() {
    let Some(s) = setup("bios.raw") else { return };
    let disk = format!("path={},boot=1,slot=3", s.image.display());
    let args = ["--sata-disk", disk.as_str(), "--rng", "slot=4"];
    let mut g = Guest::start_firmware("bios", &s.bios, 1, 256, &args);
    let st = g.wait(Duration::from_secs(300));
    let log = g.log();
    let err = g.stderr();
    assert!(log.contains("Booting from Hard Disk"), "{log}\n{err}");
    for pass in ["e820", "acpi", "smp", "rtc", "pci", "pci-04-rng", "rng-04"] {
        assert!(
            log.lines().any(|l| l.trim_end() == format!("PASS {pass}")),
            "no PASS {pass}:\n{log}"
        );
    }
    assert!(
        log.contains("INFO pci 00:03.0 8086:2922 class 010601 bar5="),
        "{log}"
    );
    let fails: Vec<&str> = log.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{log}");
    assert!(
        fails[0].starts_with("FAIL pci-03-blk: vendor 0x8086"),
        "{log}"
    );
    assert!(log.contains("DONE passed=7 failed=1"), "{log}");
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{log}\n{err}");
}
