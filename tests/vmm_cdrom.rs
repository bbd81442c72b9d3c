//! CD-ROM drives under oxvirt-vmm: SeaBIOS (Debian's build) boots the El
//! Torito ISO of `compat-tests/guest/build-boot-images.sh` from a
//! virtio-scsi drive and from a SATA (AHCI) drive, and GRUB on it boots
//! the test guest, which passes its platform checks. Media change over the
//! control socket: an ISO put into an empty drive before the firmware
//! reaches it boots; an ejected one does not; a confined VMM refuses paths
//! but still ejects.

mod vmm_common;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use vmm_common::{Control, Guest, boot_images, kvm_available, scratch, system_firmware};

/// The test guest's checks, as `vmm_firmware.rs` builds the images (one
/// set of images for both): platform, PCI with a disk in slot 3 and an
/// RNG in slot 4.
const DONE: &str = "DONE passed=8 failed=0";
const BIOS_PC: &str = "/usr/share/seabios/bios-256k.bin";

/// The ISO, SeaBIOS, and the small disk and RNG the test guest expects in
/// slots 3 and 4 (as `--disk`/`--rng` arguments).
struct Setup {
    iso: PathBuf,
    bios: PathBuf,
    platform: Vec<String>,
}

fn setup() -> Option<Setup> {
    if !kvm_available() {
        return None;
    }
    let iso = boot_images()?.join("boot.iso");
    let bios = system_firmware(BIOS_PC)?;
    let disk = scratch("cd-disk").join("blank.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let platform = vec![
        "--disk".to_string(),
        format!("path={},ro=on,slot=3", disk.display()),
        "--rng".to_string(),
        "slot=4".to_string(),
    ];
    Some(Setup {
        iso,
        bios,
        platform,
    })
}

impl Setup {
    fn start(&self, extra: &[String]) -> Guest {
        let args: Vec<&str> = self
            .platform
            .iter()
            .chain(extra)
            .map(String::as_str)
            .collect();
        Guest::start_firmware("bios", &self.bios, 1, 256, &args)
    }
}

/// Waits for the guest to boot from the CD, pass its checks and power off.
fn boots_from_the_cd(mut g: Guest) {
    let st = g.wait(Duration::from_secs(300));
    let log = g.log();
    assert!(log.contains("Booting from DVD/CD"), "{log}\n{}", g.stderr());
    assert!(log.contains(DONE), "{log}\n{}", g.stderr());
    assert_eq!(st.and_then(|s| s.code()), Some(0), "{log}");
}

fn control_name(tag: &str) -> String {
    format!("@oxvirt-cdrom-test-{}-{tag}", std::process::id())
}

fn change_media(c: &mut Control, id: u64, device: &str, path: Value) -> Value {
    let line = json!({"id": id, "execute": "change-media",
                      "arguments": {"device": device, "path": path}});
    c.raw(&line.to_string(), id)
}

#[test]
fn seabios_boots_the_iso_from_virtio_scsi() {
    let Some(s) = setup() else { return };
    let cd = format!("path={},boot=1,slot=5", s.iso.display());
    boots_from_the_cd(s.start(&["--scsi-cdrom".into(), cd]));
}

#[test]
fn seabios_boots_the_iso_from_sata() {
    let Some(s) = setup() else { return };
    let cd = format!("path={},port=2,boot=1,slot=6", s.iso.display());
    boots_from_the_cd(s.start(&["--sata-cdrom".into(), cd]));
}

/// An empty drive first in the boot order; the ISO goes in over the
/// control socket while SeaBIOS starts (it reaches the CD seconds later)
/// and the guest boots from it, the medium change reported to the
/// firmware as unit attentions it steps over.
#[test]
fn an_inserted_iso_boots() {
    let Some(s) = setup() else { return };
    let name = control_name("insert");
    let g = s.start(&[
        "--sandbox".into(),
        "none".into(),
        "--control-socket".into(),
        name,
        "--scsi-cdrom".into(),
        "boot=1,slot=5".into(),
    ]);
    let mut c = g.connect();
    let r = change_media(&mut c, 1, "scsi0-0-9-0", json!(s.iso));
    assert!(
        r["error"]["desc"]
            .as_str()
            .unwrap()
            .contains("no CD-ROM drive"),
        "{r}"
    );
    let r = change_media(&mut c, 2, "scsi0-0-0-0", json!("/nonexistent.iso"));
    assert!(
        r["error"]["desc"].as_str().unwrap().contains("cannot open"),
        "{r}"
    );
    let r = change_media(&mut c, 3, "scsi0-0-0-0", json!(s.iso));
    assert_eq!(r["return"], json!({}), "{r}");
    boots_from_the_cd(g);
}

/// A confined VMM (seccomp, as the daemon runs it) cannot open a new
/// image, says so and keeps running; ejecting works, and SeaBIOS then
/// finds no medium in the SATA drive.
#[test]
fn a_confined_vmm_ejects_but_opens_nothing() {
    let Some(s) = setup() else { return };
    let name = control_name("eject");
    let cd = format!("path={},boot=1,slot=6", s.iso.display());
    let mut g = s.start(&["--control-socket".into(), name, "--sata-cdrom".into(), cd]);
    let mut c = g.connect();
    let r = change_media(&mut c, 1, "sata0-0-0", json!(s.iso));
    assert!(
        r["error"]["desc"].as_str().unwrap().contains("confined"),
        "{r}"
    );
    let r = change_media(&mut c, 2, "sata0-0-0", Value::Null);
    assert_eq!(r["return"], json!({}), "{r}");
    let failed = g.wait_log(Duration::from_secs(120), |l| {
        l.contains("Boot failed: Could not read from CDROM")
    });
    let log = g.log();
    assert!(failed, "{log}\n{}", g.stderr());
    assert!(!log.contains("GRUB"), "{log}");
    assert_eq!(c.execute("query-status")["return"]["running"], true);
}
