//! Firmware boot under oxvirt-vmm: SeaBIOS (Debian's builds) boots GRUB
//! from raw and qcow2 disks built by `compat-tests/guest/build-boot-images.sh`,
//! and GRUB boots the test guest through multiboot2, which then passes its
//! platform checks on the tables and memory map the firmware handed on;
//! boot order and a disk nothing boots from behave as with QEMU; UEFI
//! (edk2's CloudHv build) starts.

mod vmm_common;
mod vnc_common;

use std::path::PathBuf;
use std::time::Duration;

use vmm_common::{Guest, boot_images, kvm_available, scratch, system_firmware};
use vnc_common::parse_ppm;

/// What the test guest in the images checks: the platform (memory map from
/// the firmware, ACPI tables through fw_cfg's loader, SMP, RTC) and PCI with
/// the BARs the firmware placed (the boot disk in slot 3, an RNG in 4).
/// The six checks, plus one line for each device under `pci`.
const CHECKS: usize = 8;

const BIOS_PC: &str = "/usr/share/seabios/bios-256k.bin";
const BIOS_MICROVM: &str = "/usr/share/seabios/bios-microvm.bin";

fn image(name: &str) -> Option<PathBuf> {
    if !kvm_available() {
        return None;
    }
    boot_images().map(|d| d.join(name))
}

fn disk(path: &std::path::Path, extra: &str) -> String {
    format!("path={}{extra}", path.display())
}

/// Boots `firmware` from `disks` (with an RNG after them) and expects every
/// check to pass and the guest to power off.
fn boots_testos(kind: &str, firmware: &std::path::Path, disks: &[String]) -> String {
    let mut args: Vec<&str> = Vec::new();
    for d in disks {
        args.extend(["--disk", d.as_str()]);
    }
    args.push("--rng");
    args.push("slot=4");
    let mut g = Guest::start_firmware(kind, firmware, 2, 256, &args);
    let st = g.wait(Duration::from_secs(300));
    let log = g.log();
    let done = format!("DONE passed={CHECKS} failed=0");
    assert!(
        log.contains(&done),
        "{kind} boot did not pass every check:\n{log}\n{}",
        g.stderr()
    );
    assert!(log.contains("INFO boot multiboot2"), "{log}");
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{log}");
    log
}

#[test]
fn seabios_boots_grub_and_the_test_guest_from_a_raw_disk() {
    let (Some(img), Some(bios)) = (image("bios.raw"), system_firmware(BIOS_PC)) else {
        return;
    };
    let log = boots_testos("bios", &bios, &[disk(&img, ",slot=3,boot=1")]);
    assert!(log.contains("SeaBIOS"), "{log}");
    assert!(log.contains("Booting from Hard Disk"), "{log}");
}

#[test]
fn seabios_boots_from_a_qcow2_disk() {
    let (Some(img), Some(bios)) = (image("bios.qcow2"), system_firmware(BIOS_PC)) else {
        return;
    };
    boots_testos("bios", &bios, &[disk(&img, ",format=qcow2,slot=3,boot=1")]);
}

#[test]
fn microvm_seabios_boots_too() {
    let (Some(img), Some(bios)) = (image("bios.raw"), system_firmware(BIOS_MICROVM)) else {
        return;
    };
    boots_testos("bios", &bios, &[disk(&img, ",slot=3,boot=1")]);
}

/// The boot order, not the slot order, decides which disk the firmware
/// boots as its first hard disk.
#[test]
fn boot_order_picks_the_disk() {
    let (Some(img), Some(bios)) = (image("bios.raw"), system_firmware(BIOS_PC)) else {
        return;
    };
    let empty = scratch("fw-order").join("empty.raw");
    std::fs::write(&empty, vec![0u8; 1 << 20]).unwrap();
    let log = boots_testos(
        "bios",
        &bios,
        &[disk(&empty, ",slot=2,boot=2"), disk(&img, ",slot=3,boot=1")],
    );
    assert!(!log.contains("Boot failed"), "{log}");
}

/// An empty disk first in the boot order: SeaBIOS, as under QEMU, boots
/// only the first hard disk, says it is not bootable and, with a strict
/// order, stops with its message on the console.
#[test]
fn an_empty_first_disk_fails_the_boot() {
    let (Some(img), Some(bios)) = (image("bios.raw"), system_firmware(BIOS_PC)) else {
        return;
    };
    let empty = scratch("fw-first").join("empty.raw");
    std::fs::write(&empty, vec![0u8; 1 << 20]).unwrap();
    let (a, b) = (disk(&empty, ",boot=1"), disk(&img, ",boot=2"));
    let mut g = Guest::start_firmware("bios", &bios, 1, 128, &["--disk", &a, "--disk", &b]);
    let said = g.wait_log(Duration::from_secs(120), |l| {
        l.contains("No bootable device")
    });
    let log = g.log();
    let _ = g.child.kill();
    let _ = g.child.wait();
    assert!(said, "{log}");
    assert!(log.contains("Boot failed: not a bootable disk"), "{log}");
    assert!(!log.contains("GRUB"), "{log}");
}

/// Nothing bootable: the firmware's message on the console, the VMM still
/// running (SeaBIOS waits, as libvirt's default `rebootTimeout` asks).
#[test]
fn no_bootable_device_is_reported_on_the_console() {
    let Some(bios) = system_firmware(BIOS_PC) else {
        return;
    };
    if !kvm_available() {
        return;
    }
    let empty = scratch("fw-none").join("empty.raw");
    std::fs::write(&empty, vec![0u8; 1 << 20]).unwrap();
    let d = disk(&empty, ",boot=1");
    let mut g = Guest::start_firmware("bios", &bios, 1, 128, &["--disk", &d]);
    let said = g.wait_log(Duration::from_secs(120), |l| {
        l.contains("No bootable device")
    });
    let log = g.log();
    assert!(said, "{log}\n{}", g.stderr());
    assert!(log.contains("Boot failed: not a bootable disk"), "{log}");
    assert!(
        g.child.try_wait().unwrap().is_none(),
        "the VMM stopped:\n{log}"
    );
    let _ = g.child.kill();
    let _ = g.child.wait();
}

/// A firmware file that cannot be a BIOS image is refused before anything
/// runs, with the reason.
#[test]
fn a_bad_bios_image_is_refused() {
    if !kvm_available() {
        return;
    }
    let bad = scratch("fw-bad").join("bios.bin");
    std::fs::write(&bad, vec![0u8; 1000]).unwrap();
    let mut g = Guest::start_firmware("bios", &bad, 1, 64, &[]);
    let st = g
        .wait(Duration::from_secs(30))
        .expect("the VMM did not exit");
    let err = g.stderr();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("a BIOS image is 64, 128, 192 or 256 KiB"),
        "{err}"
    );
    let mut g = Guest::start_firmware("bios", &bad.with_extension("missing"), 1, 64, &[]);
    let st = g
        .wait(Duration::from_secs(30))
        .expect("the VMM did not exit");
    let err = g.stderr();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains("cannot open firmware"), "{err}");
}

/// UEFI: edk2's CloudHv build (`packaging/firmware/build-cloudhv.sh`,
/// found through `OXVIRT_UEFI_FIRMWARE` or its cache) boots GRUB from the
/// EFI system partition of a GPT disk, and GRUB the test guest, whose
/// checks pass on the tables and memory map UEFI handed on. The machine
/// has the standard VGA adapter: the firmware's display driver sets a
/// graphics mode on it and its console draws what GRUB prints, seen in a
/// screendump. All of UEFI runs in guest ring 0, which this kind of host
/// emulates: about five minutes here.
#[test]
fn uefi_boots_grub_and_the_test_guest_from_a_gpt_disk() {
    let Some(mut g) = start_uefi(&["--vga", "slot=5"]) else {
        return;
    };
    expect_uefi_console(&mut g);
    let st = g.wait(Duration::from_secs(1500));
    let log = g.log();
    let done = format!("DONE passed={CHECKS} failed=0");
    assert!(log.contains("BdsDxe: starting"), "{log}\n{}", g.stderr());
    assert!(log.contains(&done), "{log}\n{}", g.stderr());
    assert!(log.contains("found through the EFI system table"), "{log}");
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{log}");
}

/// The same firmware draws on a virtio-gpu (edk2's VirtioGpuDxe), the
/// only adapter of this guest; its console is seen up to GRUB.
#[test]
fn uefi_draws_its_console_on_a_virtio_gpu() {
    let Some(mut g) = start_uefi(&["--gpu", "slot=5"]) else {
        return;
    };
    expect_uefi_console(&mut g);
}

/// Boots the UEFI image with the test guest's disk and RNG, a control
/// socket and `display` (the adapter's options).
fn start_uefi(display: &[&str]) -> Option<Guest> {
    let img = image("uefi.raw")?;
    let fw = std::env::var("OXVIRT_UEFI_FIRMWARE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from("/var/cache/oxvirt/firmware/CLOUDHV.fd"));
    let fw = system_firmware(&fw.display().to_string())?;
    let control = scratch("uefi-control").join("control.sock");
    let disk = disk(&img, ",slot=3");
    let control = control.display().to_string();
    let mut args = vec![
        "--disk",
        &disk,
        "--rng",
        "slot=4",
        "--control-socket",
        &control,
    ];
    args.extend(display);
    Some(Guest::start_firmware("uefi", &fw, 2, 512, &args))
}

/// Waits for GRUB's line on the serial port (the firmware's console
/// sends it to the screen as well) and expects the screen in a graphics
/// mode with text on it.
fn expect_uefi_console(g: &mut Guest) {
    assert!(
        g.wait_log(Duration::from_secs(1500), |l| l.contains("oxboot: testos")),
        "GRUB never ran:\n{}\n{}",
        g.log(),
        g.stderr()
    );
    let (w, h, lit) = uefi_screen(g);
    println!("UEFI screen: {w}x{h}, {lit} pixels lit");
    assert!(
        w >= 640 && h >= 480 && (w, h) != (720, 400),
        "the firmware left the adapter in {w}x{h}, not a graphics mode"
    );
    assert!(
        lit >= 100,
        "{w}x{h} screen with {lit} lit pixels: the console drew nothing"
    );
}

/// Screendumps the running guest until its screen shows something (or
/// ten seconds pass); returns the size and the number of pixels that are
/// not black.
fn uefi_screen(g: &mut Guest) -> (u32, u32, usize) {
    let mut ctl = g.connect();
    let path = g.dir.join("screen.ppm");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let file = std::fs::File::create(&path).unwrap();
        let reply = ctl.execute_with_fd("screendump", serde_json::json!({ "fd": true }), file);
        assert!(reply.get("return").is_some(), "screendump: {reply}");
        let (w, h, pixels) = parse_ppm(&std::fs::read(&path).unwrap());
        let lit = pixels.iter().filter(|&&p| p != 0).count();
        if lit > 0 || std::time::Instant::now() > end {
            return (w, h, lit);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
