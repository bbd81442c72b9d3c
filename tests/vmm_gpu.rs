//! virtio-gpu: the test guest's `gpu` check finds the device, reads its
//! display information and EDID, creates a resource backed by its own
//! memory, draws the display pattern there and puts it on the scanout; a
//! VNC client then sees the pattern pixel for pixel, and (oxvirt-vmm) a
//! screendump over the control socket gives the same picture. The same
//! guest and client run against QEMU's virtio-gpu-pci.

#[allow(clippy::duplicate_mod)]
mod ci_common;
mod vmm_common;
mod vnc_common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vmm_common::Guest;
use vnc_common::{
    VncClient, checksum_of, encoding, expect_pattern, parse_ppm, testos_checksum, testos_pattern,
};

/// The first line of `log` from `prefix` on, if any.
fn line_with(log: &str, prefix: &str) -> Option<String> {
    log.lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
}

/// Connects to the VNC socket and updates until the client shows the
/// pattern for `w` x `h`; panics with the first differing pixel otherwise.
fn expect_pattern_over_vnc(socket: &Path, w: u32, h: u32) -> VncClient {
    let mut c = VncClient::connect_with(UnixStream::connect(socket).expect("VNC socket"), None)
        .expect("VNC connect");
    c.set_encodings(&[encoding::ZRLE, encoding::RAW, encoding::DESKTOP_SIZE])
        .unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, w, h);
    c
}

#[test]
fn vmm_gpu_scanout_reaches_the_vnc_client_and_the_screendump() {
    if !vmm_common::kvm_available() {
        return;
    }
    let Some(elf) = vmm_common::testos() else {
        return;
    };
    let dir = vmm_common::scratch("gpu");
    let vnc = dir.join("vnc.sock");
    let control = dir.join("control.sock");
    let (w, h) = (800, 600);
    let append = format!("oxtest.checks=pci,gpu oxtest.display={w}x{h} oxtest.then=halt");
    let vnc_arg = format!("unix:{}", vnc.display());
    let control_arg = control.display().to_string();
    let mut g = Guest::start(
        &elf,
        1,
        256,
        &append,
        &[
            "--gpu",
            "xres=1280,yres=800",
            "--vnc",
            &vnc_arg,
            "--control-socket",
            &control_arg,
        ],
    );
    let prefix = format!("PASS gpu {w}x{h} checksum=");
    let found = g.wait_log(Duration::from_secs(120), |l| l.contains("DONE passed="));
    let log = g.log();
    let pass = line_with(&log, &prefix);
    let Some(pass) = pass.filter(|_| found) else {
        let err = g.stderr();
        panic!("no \"{prefix}\"; serial:\n{log}\nstderr:\n{err}");
    };
    assert!(log.contains("DONE passed=2 failed=0"), "{log}");
    assert!(
        log.contains("display info: scanout 0 1280x800 at 0,0 enabled 1"),
        "{log}"
    );
    assert!(
        log.contains("EDID 128 bytes, version 1.4, preferred 1280x800"),
        "{log}"
    );

    let c = expect_pattern_over_vnc(&vnc, w, h);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&pass), "{pass}");

    let mut ctl = g.connect();
    let path = dir.join("screen.ppm");
    let file = std::fs::File::create(&path).unwrap();
    let reply = ctl.execute_with_fd("screendump", serde_json::json!({ "fd": true }), file);
    assert!(reply.get("return").is_some(), "{reply}");
    let (sw, sh, pixels) = parse_ppm(&std::fs::read(&path).unwrap());
    assert_eq!((sw, sh), (w, h));
    assert!(pixels == testos_pattern(w, h), "screendump differs");
    let _ = std::fs::remove_dir_all(&dir);
}

/// QEMU with virtio-gpu-pci (modern only) and a VNC server on a socket.
struct Qemu {
    child: Child,
    dir: PathBuf,
    serial: PathBuf,
    vnc: PathBuf,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn qemu_gpu_scanout_reaches_the_vnc_client() {
    if !vmm_common::kvm_available() {
        return;
    }
    let Some(elf) = vmm_common::testos() else {
        return;
    };
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    let dir = vmm_common::scratch("gpu-qemu");
    let serial = dir.join("serial.log");
    let vnc = dir.join("vnc.sock");
    let (w, h) = (640, 480);
    let spawned = Command::new(&qemu)
        .args([
            "-enable-kvm",
            "-M",
            "q35",
            "-cpu",
            "host,-arch-capabilities",
        ])
        .args(["-smp", "1", "-m", "256", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-no-reboot"])
        .args(["-device", "virtio-gpu-pci,disable-legacy=on"])
        .arg("-vnc")
        .arg(format!("unix:{}", vnc.display()))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(&elf)
        .arg("-append")
        .arg(format!(
            "oxtest.checks=gpu oxtest.display={w}x{h} oxtest.then=halt"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            ci_common::skip(&format!("cannot run {qemu} ({e}); install qemu-system-x86"));
            return;
        }
    };
    let mut q = Qemu {
        child,
        dir,
        serial,
        vnc,
    };
    let end = Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = std::fs::read_to_string(&q.serial).unwrap_or_default();
        let exited = matches!(q.child.try_wait(), Ok(Some(_)));
        if log.contains("DONE passed=") || exited || Instant::now() > end {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let prefix = format!("PASS gpu {w}x{h} checksum=");
    let pass = line_with(&log, &prefix).unwrap_or_else(|| panic!("no \"{prefix}\":\n{log}"));
    let c = expect_pattern_over_vnc(&q.vnc, w, h);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&pass), "{pass}");
}
