//! The test RFB client (tests/vnc_common) and the test guest's display and
//! input modes, proven together against QEMU's own VNC server and standard
//! VGA: the screen equals the guest's pattern pixel for pixel, keys and
//! pointer moves reach the guest's i8042, a mode change reaches the client,
//! VNC authentication accepts the right password and refuses a wrong one.

// vmm_common keeps its own copy private; this test needs `skip` too.
#[allow(clippy::duplicate_mod)]
mod ci_common;
mod vmm_common;
mod vnc_common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vnc_common::{
    VncClient, VncError, checksum_of, encoding, expect_pattern, testos_checksum, testos_pattern,
    whole_line,
};

/// A QEMU process with its serial log and VNC socket in a scratch directory.
struct Qemu {
    child: Child,
    dir: PathBuf,
    serial: PathBuf,
    vnc: PathBuf,
}

impl Qemu {
    /// Boots the test guest on q35 with a standard VGA and a VNC server on a
    /// Unix socket; `None` (through `skip`) when that cannot run here.
    fn start(append: &str, vnc_options: &str, extra: &[&str]) -> Option<Qemu> {
        if !vmm_common::kvm_available() {
            return None;
        }
        let elf = vmm_common::testos()?;
        let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
        let dir = vmm_common::scratch("vnc-qemu");
        let serial = dir.join("serial.log");
        let vnc = dir.join("vnc.sock");
        let spawned = Command::new(&qemu)
            .args([
                "-enable-kvm",
                "-M",
                "q35",
                "-cpu",
                "host,-arch-capabilities",
            ])
            .args(["-smp", "1", "-m", "256", "-nodefaults", "-no-user-config"])
            .args(["-display", "none", "-device", "VGA", "-no-reboot"])
            .arg("-vnc")
            .arg(format!("unix:{}{vnc_options}", vnc.display()))
            .arg("-serial")
            .arg(format!("file:{}", serial.display()))
            .args(extra)
            .arg("-kernel")
            .arg(&elf)
            .arg("-append")
            .arg(append)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(child) => Some(Qemu {
                child,
                dir,
                serial,
                vnc,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                ci_common::skip(&format!("cannot run {qemu} ({e}); install qemu-system-x86"));
                None
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the serial log has a line starting with `prefix` at or
    /// after line `from`; returns that line. Panics (with the log and QEMU's
    /// errors) after `timeout` or if QEMU exits.
    fn wait_line(&mut self, from: usize, prefix: &str, timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let log = self.log();
            if let Some(l) = whole_line(&log, from, prefix) {
                return l.to_string();
            }
            let exited = matches!(self.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > end {
                let _ = self.child.kill();
                let mut err = String::new();
                if let Some(e) = self.child.stderr.as_mut() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                panic!("no line \"{prefix}\" (QEMU exited: {exited}); serial:\n{log}\n{err}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> usize {
        self.log().lines().count()
    }

    fn connect(&self, password: Option<&str>) -> Result<VncClient, VncError> {
        VncClient::connect_with(
            std::os::unix::net::UnixStream::connect(&self.vnc)?,
            password,
        )
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn qemu_vnc_shows_the_pattern_and_carries_keys_pointer_and_resize() {
    let append = "oxtest.checks=display oxtest.then=input oxtest.display=640x480 \
                  oxtest.display.resize=800x600";
    let Some(mut q) = Qemu::start(append, "", &[]) else {
        return;
    };
    let pass = q.wait_line(0, "PASS display 640x480x32", Duration::from_secs(60));
    q.wait_line(0, "INFO input ready", Duration::from_secs(20));

    let mut c = q.connect(None).expect("VNC connect");
    c.set_encodings(&encoding::ALL).unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, 640, 480);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&pass), "{pass}");
    assert!(c.has_qemu_ext_key(), "QEMU announces extended key events");
    // ZRLE (asked for first) carried it: far fewer bytes than raw pixels.
    let after_first_frame = c.bytes_received();
    println!("first 640x480 frame in {after_first_frame} bytes");
    assert!(after_first_frame > 0 && after_first_frame < 640 * 480);

    // QEMU extended key event: 'a' is XT scan code 0x1e. The first make
    // code makes the guest switch to 800x600.
    let from = q.lines();
    c.qemu_key(0x61, 0x1e, true).unwrap();
    c.qemu_key(0x61, 0x1e, false).unwrap();
    q.wait_line(from, "INFO key make 0x1e", Duration::from_secs(10));
    q.wait_line(from, "INFO key break 0x1e", Duration::from_secs(10));
    let resized = q.wait_line(
        from,
        "PASS display resized 800x600x32",
        Duration::from_secs(20),
    );
    expect_pattern(&mut c, 800, 600);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&resized));
    assert!(c.bytes_received() > after_first_frame);

    // An extended (0xe0) key: right control, QEMU number 0x9d.
    let from = q.lines();
    c.qemu_key(0xffe4, 0x9d, true).unwrap();
    c.qemu_key(0xffe4, 0x9d, false).unwrap();
    q.wait_line(from, "INFO key make 0xe01d", Duration::from_secs(10));
    q.wait_line(from, "INFO key break 0xe01d", Duration::from_secs(10));

    // A plain key event: QEMU maps the keysym 'b' to scan code 0x30.
    let from = q.lines();
    c.key(0x62, true).unwrap();
    c.key(0x62, false).unwrap();
    q.wait_line(from, "INFO key make 0x30", Duration::from_secs(10));
    q.wait_line(from, "INFO key break 0x30", Duration::from_secs(10));

    // The PS/2 mouse is relative: QEMU sends the difference between pointer
    // positions; the left button shows as bit 0.
    let from = q.lines();
    c.pointer(100, 100, 0).unwrap();
    c.pointer(120, 100, 0).unwrap();
    c.pointer(120, 100, 1).unwrap();
    c.pointer(120, 100, 0).unwrap();
    let moved = q.wait_line(from, "INFO mouse dx=", Duration::from_secs(10));
    q.wait_line(
        from,
        "INFO mouse dx=0 dy=0 buttons=1",
        Duration::from_secs(10),
    );
    let log = q.log();
    let mouse: Vec<&str> = log
        .lines()
        .skip(from)
        .filter(|l| l.starts_with("INFO mouse"))
        .collect();
    assert!(
        mouse.iter().any(|l| !l.starts_with("INFO mouse dx=0 ")),
        "no movement in {mouse:?} (first {moved})"
    );
    println!("{}", mouse.join("\n"));
    assert!(!log.contains("FAIL"), "{log}");
}

#[test]
fn qemu_vnc_password_is_checked() {
    let Some(mut q) = Qemu::start(
        "oxtest.checks=display oxtest.then=halt",
        ",password-secret=vncpw",
        &["-object", "secret,id=vncpw,data=sesame"],
    ) else {
        return;
    };
    q.wait_line(0, "PASS display 640x480x32", Duration::from_secs(60));
    match q.connect(Some("wrong")) {
        Err(VncError::Refused(reason)) => assert!(!reason.is_empty(), "empty reason"),
        Err(e) => panic!("wrong password: {e}"),
        Ok(_) => panic!("wrong password accepted"),
    }
    match q.connect(None) {
        Err(VncError::Protocol(m)) => assert!(m.contains("security types"), "{m}"),
        Err(e) => panic!("no password: {e}"),
        Ok(_) => panic!("connected without the password"),
    }
    // This time Raw only: every pixel on the wire.
    let mut c = q.connect(Some("sesame")).expect("right password");
    c.set_encodings(&[encoding::RAW, encoding::DESKTOP_SIZE])
        .unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, 640, 480);
    assert!(c.bytes_received() >= 640 * 480 * 4);
}

/// The `display-loop` mode seen through QEMU's VNC server: the guest's
/// frame counter and the updates the client receives (printed, for
/// comparison with oxvirt-vmm's server).
#[test]
fn qemu_vnc_follows_the_display_loop() {
    let Some(mut q) = Qemu::start("oxtest.checks=display oxtest.then=display-loop", "", &[]) else {
        return;
    };
    q.wait_line(0, "INFO display-loop", Duration::from_secs(60));
    let mut c = q.connect(None).expect("VNC connect");
    c.set_encodings(&encoding::ALL).unwrap();
    c.request_update(false).unwrap();
    let frames_at = |log: &str| -> u64 {
        log.lines()
            .filter_map(|l| l.strip_prefix("INFO frames "))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .next_back()
            .unwrap_or(0)
    };
    let start = Instant::now();
    let (f0, b0) = (frames_at(&q.log()), c.bytes_received());
    let mut updates = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        c.read_update(Duration::from_secs(5)).expect("update");
        c.request_update(true).unwrap();
        updates += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let frames = frames_at(&q.log()) - f0;
    let bytes = c.bytes_received() - b0;
    println!(
        "display-loop under QEMU: guest {:.0} frames/s, client {:.1} updates/s, {:.1} MiB/s received",
        frames as f64 / secs,
        f64::from(updates) / secs,
        bytes as f64 / secs / (1 << 20) as f64
    );
    assert!(frames > 0, "the guest drew no frames");
    assert!(updates >= 3, "only {updates} updates in {secs:.1} s");
    assert_eq!(c.size(), (640, 480));
    // The first row shows the pattern, shifted: the guest redraws while
    // QEMU sends the 16-pixel blocks that changed, so each block may come
    // from a different frame, but each is a piece of a shifted row.
    let row0 = &c.frame()[..640];
    let pattern = testos_pattern(640, 480);
    for block in (0..640).step_by(16) {
        assert!(
            (0..640).any(|s| (block..block + 16).all(|x| row0[x] == pattern[(x + s) % 640])),
            "pixels {block}..{} of the first row are no piece of a shifted pattern row",
            block + 16
        );
    }
}
