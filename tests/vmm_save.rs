//! Saving a running guest's whole state (`save` on the control socket)
//! and starting a new VMM process from it (`--restore`): the test guest's
//! ticks carry on where they stopped, the memory region it keeps
//! rewriting still adds up, and its virtio-rng and virtio-blk queues,
//! set up once before the save, keep serving requests after it.

mod vmm_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use vmm_common::{Guest, kvm_available, scratch, testos, ticks};

const MEM_MIB: u64 = 256;

fn abstract_name(tag: &str) -> String {
    format!("@oxvirt-vmm-save-{}-{tag}", std::process::id())
}

fn cmdline(cpus: u32, mem_mib: u64) -> String {
    format!(
        "oxtest.checks=e820 oxtest.cpus={cpus} oxtest.mem={mem_mib} oxtest.pci=1 \
         oxtest.then=ticker oxtest.tickmem=16 oxtest.tickdev=1"
    )
}

/// A scratch disk of random bytes for the guest's virtio-blk.
fn disk(dir: &Path) -> PathBuf {
    let p = dir.join("disk.img");
    let bytes: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Starts the ticker with a disk and an rng; `extra` adds VMM options.
fn start(tag: &str, cpus: u32, disk: &Path, extra: &[&str]) -> Option<Guest> {
    start_with(tag, cpus, MEM_MIB, disk, extra)
}

fn start_with(tag: &str, cpus: u32, mem_mib: u64, disk: &Path, extra: &[&str]) -> Option<Guest> {
    if !kvm_available() {
        return None;
    }
    let elf = testos()?;
    let name = abstract_name(tag);
    let disk_opt = format!("path={}", disk.display());
    let mut args: Vec<&str> = vec!["--control-socket", &name, "--disk", &disk_opt, "--rng"];
    args.extend_from_slice(extra);
    Some(Guest::start(
        &elf,
        cpus,
        mem_mib,
        &cmdline(cpus, mem_mib),
        &args,
    ))
}

fn failures(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("FAIL")).collect()
}

/// Saves `g` into `image`; returns the reply.
fn save(g: &Guest, image: &Path, resume: bool) -> serde_json::Value {
    let file = std::fs::File::create(image).unwrap();
    g.connect()
        .execute_with_fd("save", serde_json::json!({ "resume": resume }), file)
}

fn save_and_restore(cpus: u32) {
    save_and_restore_with(cpus, MEM_MIB)
}

fn save_and_restore_with(cpus: u32, mem_mib: u64) {
    let dir = scratch("save");
    let disk = disk(&dir);
    let Some(mut a) = start_with(&format!("a{cpus}-{mem_mib}"), cpus, mem_mib, &disk, &[]) else {
        return;
    };
    assert!(
        a.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 5),
        "no ticks:\n{}",
        a.log()
    );
    let image = dir.join("state.img");
    let reply = save(&a, &image, false);
    assert_eq!(reply["return"]["paused"], true, "{reply}");
    // Paused after the save: no tick comes.
    std::thread::sleep(Duration::from_millis(400));
    let before = a.log();
    let last = *ticks(&before).last().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        ticks(&a.log()).last(),
        Some(&last),
        "the guest ran on after save"
    );
    drop(a);

    let image_arg = image.display().to_string();
    let restore = ["--restore", image_arg.as_str()];
    let mut b = start_with(
        &format!("b{cpus}-{mem_mib}"),
        cpus,
        mem_mib,
        &disk,
        &restore,
    )
    .unwrap();
    assert!(
        b.wait_log(Duration::from_secs(30), |l| ticks(l).len() >= 5),
        "the restored guest does not tick:\n{}\n{}",
        b.log(),
        b.stderr()
    );
    let after = b.log();
    assert_eq!(
        ticks(&after).first(),
        Some(&(last + 1)),
        "ticks do not carry on:\nbefore:\n{before}\nafter:\n{after}"
    );
    // A restored guest does not boot again.
    assert!(!after.contains("INFO testos"), "{after}");
    assert!(before.contains("PASS tickdev"), "{before}");
    assert!(failures(&before).is_empty(), "{before}");
    assert!(failures(&after).is_empty(), "{after}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A machine whose RAM goes on above the 4 GiB boundary (after the PCI
/// hole): both regions are saved and laid out again.
#[test]
fn a_guest_with_ram_above_4_gib_carries_on_after_restore() {
    save_and_restore_with(2, 5 << 10);
}

#[test]
fn one_vcpu_carries_on_after_restore() {
    save_and_restore(1);
}

#[test]
fn two_vcpus_carry_on_after_restore() {
    save_and_restore(2);
}

#[test]
fn four_vcpus_carry_on_after_restore() {
    save_and_restore(4);
}

#[test]
fn restored_paused_the_guest_waits_for_cont() {
    let dir = scratch("save-paused");
    let disk = disk(&dir);
    let Some(mut a) = start("pa", 1, &disk, &[]) else {
        return;
    };
    assert!(a.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 3));
    let image = dir.join("state.img");
    let reply = save(&a, &image, false);
    assert!(reply.get("return").is_some(), "{reply}");
    let last = *ticks(&a.log()).last().unwrap();
    drop(a);

    let image_arg = image.display().to_string();
    let mut b = start("pb", 1, &disk, &["--restore", &image_arg, "--paused"]).unwrap();
    let mut c = b.connect();
    let st = c.execute("query-status");
    assert_eq!(st["return"]["status"], "paused", "{st}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(ticks(&b.log()).is_empty(), "ran while paused:\n{}", b.log());
    assert_eq!(c.execute("cont")["return"], serde_json::json!({}));
    assert!(b.wait_log(Duration::from_secs(30), |l| ticks(l).len() >= 2));
    assert_eq!(ticks(&b.log()).first(), Some(&(last + 1)));
    assert!(failures(&b.log()).is_empty(), "{}", b.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn save_with_resume_keeps_the_guest_running() {
    let dir = scratch("save-resume");
    let disk = disk(&dir);
    let Some(mut a) = start("resume", 1, &disk, &[]) else {
        return;
    };
    assert!(a.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 3));
    let reply = save(&a, &dir.join("state.img"), true);
    assert_eq!(reply["return"]["paused"], false, "{reply}");
    let n = ticks(&a.log()).len();
    assert!(
        a.wait_log(Duration::from_secs(10), |l| ticks(l).len() >= n + 5),
        "no ticks after the save:\n{}",
        a.log()
    );
    // The devices run again after their queues were handed back.
    assert!(failures(&a.log()).is_empty(), "{}", a.log());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A state that does not fit, or is damaged, stops the VMM with an error
/// before the guest runs.
#[test]
fn bad_images_are_refused() {
    let dir = scratch("save-bad");
    let disk = disk(&dir);
    let Some(mut a) = start("bad", 1, &disk, &[]) else {
        return;
    };
    assert!(a.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 2));
    let image = dir.join("state.img");
    assert!(save(&a, &image, false).get("return").is_some());
    drop(a);
    let good = std::fs::read(&image).unwrap();

    let cases: Vec<(&str, Vec<u8>, Vec<&str>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            vec![],
            "truncated",
        ),
        (
            "not-a-state",
            b"hello world, not a state".to_vec(),
            vec![],
            "bad magic",
        ),
        (
            "other-format",
            {
                let mut v = good.clone();
                v[8] = 99;
                v
            },
            vec![],
            "format 99",
        ),
        (
            "other-machine",
            good.clone(),
            vec!["--balloon"],
            "different machine",
        ),
    ];
    for (what, bytes, extra, want) in cases {
        let path = dir.join(format!("{what}.img"));
        std::fs::write(&path, &bytes).unwrap();
        let p = path.display().to_string();
        let mut args = vec!["--restore", p.as_str()];
        args.extend(extra);
        let mut g = start(what, 1, &disk, &args).unwrap();
        let status = g.wait(Duration::from_secs(30)).expect("VMM did not exit");
        assert_eq!(status.code(), Some(1), "{what}");
        let err = g.stderr();
        assert!(
            err.contains("cannot restore the guest state") && err.contains(want),
            "{what}: {err}"
        );
        assert!(ticks(&g.log()).is_empty(), "{what}: the guest ran");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The screen as the VMM shows it (a PPM).
fn screendump(g: &Guest, dir: &Path, tag: &str) -> Vec<u8> {
    let path = dir.join(format!("{tag}.ppm"));
    let file = std::fs::File::create(&path).unwrap();
    let reply = g
        .connect()
        .execute_with_fd("screendump", serde_json::json!({ "fd": true }), file);
    assert!(reply.get("return").is_some(), "{reply}");
    std::fs::read(&path).unwrap()
}

/// A display adapter's state comes back: the restored guest's screen is
/// the picture it drew before the save. `adapter` is the VMM option
/// (`--vga`, `--gpu`) and `check` the test guest's drawing check.
fn screen_comes_back(tag: &str, adapter: &[&str], check: &str) {
    let dir = scratch(tag);
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let append = format!("oxtest.checks={check} oxtest.display=800x600 oxtest.then=ticker");
    let name = abstract_name(&format!("{tag}-a"));
    let mut args = vec!["--control-socket", name.as_str()];
    args.extend_from_slice(adapter);
    let mut a = Guest::start(&elf, 1, MEM_MIB, &append, &args);
    assert!(
        a.wait_log(Duration::from_secs(120), |l| ticks(l).len() >= 2),
        "{}",
        a.log()
    );
    assert!(failures(&a.log()).is_empty(), "{}", a.log());
    let before = screendump(&a, &dir, "before");
    assert!(
        before[20..].iter().filter(|&&b| b != 0).count() > 10_000,
        "nothing on the screen to compare"
    );
    let image = dir.join("state.img");
    let reply = save(&a, &image, false);
    assert!(reply.get("return").is_some(), "{reply}");
    let last = *ticks(&a.log()).last().unwrap();
    drop(a);

    let image_arg = image.display().to_string();
    let name = abstract_name(&format!("{tag}-b"));
    let mut args = vec![
        "--control-socket",
        name.as_str(),
        "--restore",
        image_arg.as_str(),
    ];
    args.extend_from_slice(adapter);
    let mut b = Guest::start(&elf, 1, MEM_MIB, &append, &args);
    assert!(
        b.wait_log(Duration::from_secs(30), |l| ticks(l).len() >= 2),
        "{}\n{}",
        b.log(),
        b.stderr()
    );
    assert_eq!(ticks(&b.log()).first(), Some(&(last + 1)));
    let after = screendump(&b, &dir, "after");
    assert_eq!(before.len(), after.len());
    assert!(before == after, "the screen differs after the restore");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The VGA adapter's registers and video memory.
#[test]
fn the_vga_screen_comes_back() {
    screen_comes_back("save-vga", &["--vga"], "display");
}

/// virtio-gpu's resources, their images and backing, and the scanout.
#[test]
fn the_virtio_gpu_screen_comes_back() {
    screen_comes_back("save-gpu", &["--gpu", "xres=800,yres=600"], "pci,gpu");
}

/// SeaBIOS with `extra` options and a boot menu prompt of `menu_ms`, its
/// control socket called `name`, from the state at `restore` if given.
fn bios_guest(
    bios: &Path,
    name: &str,
    menu_ms: u32,
    extra: &[String],
    restore: Option<&Path>,
) -> Guest {
    let mut args = vec![
        "--control-socket".to_string(),
        abstract_name(name),
        "--boot-menu".to_string(),
        menu_ms.to_string(),
    ];
    args.extend_from_slice(extra);
    if let Some(p) = restore {
        args.extend(["--restore".to_string(), p.display().to_string()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Guest::start_firmware("bios", bios, 1, 256, &refs)
}

/// SeaBIOS waiting at its boot menu prompt on the VGA text screen, with a
/// USB keyboard on the controller `usb` (`--xhci`, `--ehci`) that it
/// drives: saved there and restored into a new VMM, the keyboard's Escape
/// still opens the menu (the controller's schedules or rings, its ports
/// and devices, the firmware's memory and the screen all came back).
fn seabios_takes_the_usb_keyboard_after_restore(tag: &str, usb: &str) {
    let Some(bios) = vmm_common::system_firmware("/usr/share/seabios/bios-256k.bin") else {
        return;
    };
    if !kvm_available() {
        return;
    }
    let dir = scratch(tag);
    let extra = [
        "--vga".to_string(),
        usb.to_string(),
        "tablet,keyboard".to_string(),
    ];
    let start = |side: &str, restore: Option<&Path>| {
        bios_guest(&bios, &format!("{tag}-{side}"), 60000, &extra, restore)
    };
    let mut a = start("a", None);
    let prompt = a.wait_log(Duration::from_secs(60), |l| {
        l.contains("Press ESC for boot menu")
    });
    assert!(prompt, "no boot menu prompt; serial:\n{}", a.log());
    let image = dir.join("state.img");
    let reply = save(&a, &image, false);
    assert!(reply.get("return").is_some(), "{reply}");
    drop(a);

    let mut b = start("b", Some(&image));
    let mut c = b.connect();
    // KEY_ESC, pressed and released by the VMM's console.
    let reply = c.execute_args(
        "send-key",
        serde_json::json!({ "keys": [1], "hold-ms": 100 }),
    );
    assert!(reply.get("return").is_some(), "{reply}");
    let menu = b.wait_log(Duration::from_secs(30), |l| {
        l.contains("Select boot device")
    });
    assert!(
        menu,
        "Escape did not open the menu after the restore; serial:\n{}\n{}",
        b.log(),
        b.stderr()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seabios_takes_the_xhci_keyboard_after_restore() {
    seabios_takes_the_usb_keyboard_after_restore("save-xhci", "--xhci");
}

#[test]
fn seabios_takes_the_ehci_keyboard_after_restore() {
    seabios_takes_the_usb_keyboard_after_restore("save-ehci", "--ehci");
}

/// SeaBIOS saved at its boot menu prompt, after it set up the storage
/// controller of `drive` and found its medium: the restored VMM's firmware
/// times the prompt out and boots it through the controller's restored
/// state (GRUB, then the test guest, which passes its checks and powers
/// off). `drive(dir, images)` gives the VMM options of the drive and what
/// SeaBIOS prints when it boots it.
fn seabios_boots_after_restore(tag: &str, drive: impl Fn(&Path) -> (Vec<String>, &'static str)) {
    let Some(bios) = vmm_common::system_firmware("/usr/share/seabios/bios-256k.bin") else {
        return;
    };
    let Some(images) = vmm_common::boot_images() else {
        return;
    };
    if !kvm_available() {
        return;
    }
    let dir = scratch(tag);
    let blank = dir.join("blank.raw");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let (drive_args, booting) = drive(&images);
    let mut extra = vec![
        "--disk".to_string(),
        format!("path={},ro=on,slot=3", blank.display()),
        "--rng".to_string(),
        "slot=4".to_string(),
    ];
    extra.extend(drive_args);
    let start = |side: &str, restore: Option<&Path>| {
        bios_guest(&bios, &format!("{tag}-{side}"), 4000, &extra, restore)
    };
    let mut a = start("a", None);
    let prompt = a.wait_log(Duration::from_secs(60), |l| {
        l.contains("Press ESC for boot menu")
    });
    assert!(prompt, "no boot menu prompt; serial:\n{}", a.log());
    let state = dir.join("state.img");
    let reply = save(&a, &state, false);
    assert!(reply.get("return").is_some(), "{reply}");
    assert!(
        !a.log().contains("Booting from"),
        "saved too late:\n{}",
        a.log()
    );
    drop(a);

    let mut b = start("b", Some(&state));
    let status = b.wait(Duration::from_secs(300));
    let log = b.log();
    assert!(log.contains(booting), "{log}\n{}", b.stderr());
    assert!(log.contains("DONE passed=8 failed=0"), "{log}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn seabios_boots_the_sata_disk_after_restore() {
    seabios_boots_after_restore("save-sata", |images| {
        let disk = format!(
            "path={},ro=on,port=0,boot=1,slot=6",
            images.join("bios.raw").display()
        );
        (vec!["--sata-disk".into(), disk], "Booting from Hard Disk")
    });
}

#[test]
fn seabios_boots_the_virtio_scsi_cd_after_restore() {
    seabios_boots_after_restore("save-scsi", |images| {
        let cd = format!("path={},boot=1,slot=5", images.join("boot.iso").display());
        (vec!["--scsi-cdrom".into(), cd], "Booting from DVD/CD")
    });
}
