//! oxvirt-vmm's display: the test guest sets a mode on the standard VGA
//! adapter and draws its pattern; a VNC client sees it pixel for pixel,
//! its keys and pointer moves reach the guest's PS/2 devices, a mode
//! change reaches it, passwords are checked, a screendump over the
//! control socket gives the same pixels, and send-key presses keys.
//! The same client and guest run against QEMU in vnc_client_qemu.rs.

#[allow(clippy::duplicate_mod)]
mod ci_common;
mod vmm_common;
mod vnc_common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use vmm_common::Guest;
use vnc_common::{
    VncClient, VncError, checksum_of, encoding, expect_pattern, parse_ppm, testos_checksum,
    testos_pattern, whole_line,
};

/// A guest with a VGA adapter and a VNC server on a Unix socket.
struct Screen {
    guest: Guest,
    vnc: PathBuf,
}

impl Screen {
    fn start(append: &str, extra: &[&str]) -> Option<Screen> {
        if !vmm_common::kvm_available() {
            return None;
        }
        let elf = vmm_common::testos()?;
        let dir = vmm_common::scratch("display");
        let vnc = dir.join("vnc.sock");
        let control = dir.join("control.sock");
        let mut args = vec![
            "--vnc".to_string(),
            format!("unix:{}", vnc.display()),
            "--control-socket".to_string(),
            control.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let guest = Guest::start(&elf, 1, 256, append, &refs);
        Some(Screen { guest, vnc })
    }

    fn lines(&self) -> usize {
        self.guest.log().lines().count()
    }

    fn wait_line(&mut self, from: usize, prefix: &str, timeout: Duration) -> String {
        let found = self
            .guest
            .wait_log(timeout, |log| whole_line(log, from, prefix).is_some());
        let log = self.guest.log();
        if !found {
            let err = self.guest.stderr();
            panic!("no line \"{prefix}\"; serial:\n{log}\nstderr:\n{err}");
        }
        whole_line(&log, from, prefix)
            .unwrap_or_default()
            .to_string()
    }

    fn connect(&self, password: Option<&str>) -> Result<VncClient, VncError> {
        VncClient::connect_with(UnixStream::connect(&self.vnc)?, password)
    }
}

#[test]
fn vnc_shows_the_pattern_and_carries_keys_pointer_and_resize() {
    let append = "oxtest.checks=display oxtest.then=input oxtest.display=640x480 \
                  oxtest.display.resize=800x600";
    let Some(mut s) = Screen::start(append, &[]) else {
        return;
    };
    let pass = s.wait_line(0, "PASS display 640x480x32", Duration::from_secs(120));
    s.wait_line(0, "INFO input ready", Duration::from_secs(60));

    let mut c = s.connect(None).expect("VNC connect");
    c.set_encodings(&encoding::ALL).unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, 640, 480);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&pass), "{pass}");
    assert!(
        c.has_qemu_ext_key(),
        "the server announces extended key events"
    );
    let first = c.bytes_received();
    println!("first 640x480 frame in {first} bytes");
    assert!(first > 0 && first < 640 * 480, "ZRLE compresses the frame");

    // An extended key event ('a', XT 0x1e); its make code makes the guest
    // switch to 800x600.
    let from = s.lines();
    c.qemu_key(0x61, 0x1e, true).unwrap();
    c.qemu_key(0x61, 0x1e, false).unwrap();
    s.wait_line(from, "INFO key make 0x1e", Duration::from_secs(30));
    s.wait_line(from, "INFO key break 0x1e", Duration::from_secs(30));
    let resized = s.wait_line(
        from,
        "PASS display resized 800x600x32",
        Duration::from_secs(60),
    );
    expect_pattern(&mut c, 800, 600);
    assert_eq!(testos_checksum(c.frame()), checksum_of(&resized));

    // A plain key event (keysym 'b') and an extended one with a prefix
    // (right Ctrl).
    let from = s.lines();
    c.key(0x62, true).unwrap();
    c.key(0x62, false).unwrap();
    s.wait_line(from, "INFO key make 0x30", Duration::from_secs(30));
    c.qemu_key(0xffe4, 0x9d, true).unwrap();
    c.qemu_key(0xffe4, 0x9d, false).unwrap();
    s.wait_line(from, "INFO key make 0xe01d", Duration::from_secs(30));

    // The pointer: a move, then a click.
    let from = s.lines();
    c.pointer(100, 100, 0).unwrap();
    c.pointer(120, 100, 0).unwrap();
    c.pointer(120, 100, 1).unwrap();
    s.wait_line(from, "INFO mouse dx=20 dy=0", Duration::from_secs(30));
    s.wait_line(
        from,
        "INFO mouse dx=0 dy=0 buttons=1",
        Duration::from_secs(30),
    );

    // A second client at the same time sees the same screen.
    let mut other = s.connect(None).expect("second client");
    other.set_encodings(&[encoding::RAW]).unwrap();
    other.request_update(false).unwrap();
    expect_pattern(&mut other, 800, 600);

    // The control socket: a screendump is the same picture, send-key
    // presses and releases keys.
    let mut ctl = s.guest.connect();
    let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
    let reply = ctl.execute_with_fd("screendump", serde_json::json!({ "fd": true }), writer);
    assert!(reply.get("error").is_some(), "a socket is refused: {reply}");
    drop(reader);
    let path = s.vnc.with_file_name("screen.ppm");
    let file = std::fs::File::create(&path).unwrap();
    let reply = ctl.execute_with_fd("screendump", serde_json::json!({ "fd": true }), file);
    assert!(reply.get("return").is_some(), "{reply}");
    let ppm = std::fs::read(&path).unwrap();
    let (w, h, pixels) = parse_ppm(&ppm);
    assert_eq!((w, h), (800, 600));
    assert_eq!(pixels, testos_pattern(800, 600));
    let from = s.lines();
    let reply = ctl.execute_args(
        "send-key",
        serde_json::json!({ "keys": [29, 56, 111], "hold-ms": 50 }),
    );
    assert!(reply.get("return").is_some(), "{reply}");
    // Ctrl, Alt, Delete in set 1, then their releases in reverse order.
    s.wait_line(from, "INFO key make 0x1d", Duration::from_secs(30));
    s.wait_line(from, "INFO key make 0x38", Duration::from_secs(30));
    s.wait_line(from, "INFO key make 0xe053", Duration::from_secs(30));
    s.wait_line(from, "INFO key break 0xe053", Duration::from_secs(30));
    s.wait_line(from, "INFO key break 0x1d", Duration::from_secs(30));
    let log = s.guest.log();
    let tail: Vec<&str> = log
        .lines()
        .skip(from)
        .filter(|l| l.starts_with("INFO key"))
        .collect();
    assert_eq!(
        tail,
        [
            "INFO key make 0x1d",
            "INFO key make 0x38",
            "INFO key make 0xe053",
            "INFO key break 0xe053",
            "INFO key break 0x38",
            "INFO key break 0x1d"
        ]
    );
}

#[test]
fn vnc_password_is_checked_and_can_change() {
    let append = "oxtest.checks=display oxtest.then=input";
    let Some(mut s) = Screen::start(append, &["--vnc-password", "s3cret"]) else {
        return;
    };
    s.wait_line(0, "PASS display 640x480x32", Duration::from_secs(120));
    match s.connect(Some("wrong")) {
        Err(VncError::Refused(reason)) => println!("refused: {reason}"),
        Err(e) => panic!("wrong password: unexpected error {e:?}"),
        Ok(_) => panic!("a wrong password was accepted"),
    }
    assert!(s.connect(None).is_err(), "no password must be refused");
    let mut c = s.connect(Some("s3cret")).expect("right password");
    c.set_encodings(&[encoding::RAW]).unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, 640, 480);
    // A new password holds for new clients.
    let mut ctl = s.guest.connect();
    let reply = ctl.execute_args("set-vnc-password", serde_json::json!({ "password": "n3w" }));
    assert!(reply.get("return").is_some(), "{reply}");
    let start = Instant::now();
    assert!(s.connect(Some("s3cret")).is_err());
    // The failure delay applies (the server doubles it per failure).
    assert!(start.elapsed() >= Duration::from_millis(900));
    s.connect(Some("n3w")).expect("the new password");
}

#[test]
fn garbage_from_a_client_leaves_guest_and_server_running() {
    let append = "oxtest.checks=display oxtest.then=input";
    let Some(mut s) = Screen::start(append, &[]) else {
        return;
    };
    s.wait_line(0, "PASS display 640x480x32", Duration::from_secs(120));
    for junk in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"RFB 003.008\n\x01\x01\xff\xff\xff\xff\xff",
        b"RFB 003.008\n\x01\x01\x06\0\0\0\x7f\xff\xff\xff",
        &[0u8; 4096][..],
    ] {
        let mut raw = UnixStream::connect(&s.vnc).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = raw.write_all(junk);
        let mut sink = Vec::new();
        let _ = raw.read_to_end(&mut sink);
    }
    let mut c = s.connect(None).expect("VNC still serves");
    c.set_encodings(&[encoding::ZRLE]).unwrap();
    c.request_update(false).unwrap();
    expect_pattern(&mut c, 640, 480);
    assert!(s.guest.child.try_wait().unwrap().is_none(), "the VMM runs");
}

/// `keymap` (`--vnc-keymap`): a client's plain key events are typed on
/// that layout, as QEMU's `-k` does: on a German layout 'z' is the key a
/// US keyboard calls Y, and '@' is AltGr+Q.
#[test]
fn plain_key_events_follow_the_keymap() {
    let append = "oxtest.checks=display oxtest.then=input";
    let Some(mut s) = Screen::start(append, &["--vnc-keymap", "de"]) else {
        return;
    };
    s.wait_line(0, "PASS display 640x480x32", Duration::from_secs(120));
    let mut c = s.connect(None).expect("VNC connect");
    let from = s.lines();
    c.key('z' as u32, true).unwrap();
    c.key('z' as u32, false).unwrap();
    s.wait_line(from, "INFO key make 0x15", Duration::from_secs(30));
    let from = s.lines();
    c.key('@' as u32, true).unwrap();
    c.key('@' as u32, false).unwrap();
    s.wait_line(from, "INFO key make 0xe038", Duration::from_secs(30));
    s.wait_line(from, "INFO key make 0x10", Duration::from_secs(30));
}

/// A guest with the adapter that powers off ends the VMM cleanly: taking
/// the video memory out of the guest at teardown is allowed to the
/// thread that tears the machine down (it was once killed by seccomp).
#[test]
fn a_guest_with_a_display_powers_off_cleanly() {
    let append = "oxtest.checks=display oxtest.then=poweroff";
    let Some(mut s) = Screen::start(append, &[]) else {
        return;
    };
    let st = s.guest.wait(Duration::from_secs(120));
    let log = s.guest.log();
    assert!(log.contains("PASS display 640x480x32"), "{log}");
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(0),
        "{log}\n{}",
        s.guest.stderr()
    );
}

/// SeaBIOS with its VGA BIOS on the adapter: the boot menu, opened with
/// Escape from a VNC client through `keyboard` (`usb` on the xHCI,
/// `ehci` on ICH9's EHCI with its UHCI companions, or the PS/2
/// keyboard), and the text screen of 720x400 it draws.
fn seabios_boot_menu_through(keyboard: &str) {
    let Some(bios) = vmm_common::system_firmware("/usr/share/seabios/bios-256k.bin") else {
        return;
    };
    if !vmm_common::kvm_available() {
        return;
    }
    let dir = vmm_common::scratch("display-bios");
    let vnc = dir.join("vnc.sock");
    let control = dir.join("control.sock");
    let vnc_arg = format!("unix:{}", vnc.display());
    let ctl_arg = control.display().to_string();
    let mut args = vec![
        "--vnc",
        vnc_arg.as_str(),
        "--control-socket",
        ctl_arg.as_str(),
        "--boot-menu",
        "20000",
    ];
    match keyboard {
        "usb" => args.extend(["--xhci", "tablet,keyboard"]),
        "ehci" => args.extend(["--ehci", "tablet,keyboard"]),
        _ => {}
    }
    let mut guest = Guest::start_firmware("bios", &bios, 1, 256, &args);
    let prompt = guest.wait_log(Duration::from_secs(60), |l| {
        l.contains("Press ESC for boot menu")
    });
    assert!(prompt, "no boot menu prompt; serial:\n{}", guest.log());
    let mut c = VncClient::connect_with(UnixStream::connect(&vnc).unwrap(), None).expect("VNC");
    c.set_encodings(&encoding::ALL).unwrap();
    c.request_update(false).unwrap();
    // Escape, as a plain key event.
    c.key(0xff1b, true).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.key(0xff1b, false).unwrap();
    let menu = guest.wait_log(Duration::from_secs(30), |l| {
        l.contains("Select boot device")
    });
    assert!(
        menu,
        "Escape through {keyboard} did not open the menu; serial:\n{}",
        guest.log()
    );
    // The text console: 80x25 cells of 9x16 pixels, some of them lit.
    let lit = c
        .update_until(Duration::from_secs(20), |c| {
            c.size() == (720, 400) && c.frame()[..720 * 16].iter().any(|p| *p != 0)
        })
        .expect("VNC updates");
    assert!(lit, "no text screen: {:?}", c.size());
}

#[test]
fn seabios_boot_menu_through_the_usb_keyboard() {
    seabios_boot_menu_through("usb");
}

#[test]
fn seabios_boot_menu_through_the_usb_keyboard_on_ehci() {
    seabios_boot_menu_through("ehci");
}

#[test]
fn seabios_boot_menu_through_the_ps2_keyboard() {
    seabios_boot_menu_through("ps2");
}
