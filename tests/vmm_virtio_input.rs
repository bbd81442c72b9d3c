//! oxvirt-vmm's virtio-input devices: the test guest drives the first
//! one (`oxtest.then=vinput`) and prints every event it receives; a VNC
//! client's keys reach a virtio keyboard and its pointer a virtio tablet
//! as evdev events, each report ending with SYN_REPORT.

#[allow(clippy::duplicate_mod)]
mod ci_common;
mod vmm_common;
mod vnc_common;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use vmm_common::Guest;
use vnc_common::VncClient;

struct Screen {
    guest: Guest,
    vnc: PathBuf,
}

impl Screen {
    /// A guest with a VNC server and one virtio-input device of `kind`,
    /// its driver running.
    fn start(kind: &str) -> Option<Screen> {
        if !vmm_common::kvm_available() {
            return None;
        }
        let elf = vmm_common::testos()?;
        let dir = vmm_common::scratch("vinput");
        let vnc = dir.join("vnc.sock");
        let vnc_arg = format!("unix:{}", vnc.display());
        let guest = Guest::start(
            &elf,
            1,
            256,
            "oxtest.then=vinput",
            &["--vnc", &vnc_arg, "--virtio-input", kind],
        );
        let mut s = Screen { guest, vnc };
        s.wait_line(0, "INFO vinput ready");
        Some(s)
    }

    fn lines(&self) -> usize {
        self.guest.log().lines().count()
    }

    fn wait_line(&mut self, from: usize, line: &str) -> usize {
        let found = self.guest.wait_log(Duration::from_secs(60), |log| {
            log.lines().skip(from).any(|l| l == line)
        });
        let log = self.guest.log();
        if !found {
            // The VMM's stderr ends once it is gone.
            self.guest.wait(Duration::ZERO);
            let err = self.guest.stderr();
            panic!("no line \"{line}\"; serial:\n{log}\nstderr:\n{err}");
        }
        from + log.lines().skip(from).position(|l| l == line).unwrap_or(0) + 1
    }

    /// Waits for `lines` in this order, each after the one before.
    fn wait_sequence(&mut self, from: usize, lines: &[&str]) {
        let mut at = from;
        for l in lines {
            at = self.wait_line(at, l);
        }
    }

    fn connect(&self) -> VncClient {
        VncClient::connect_with(UnixStream::connect(&self.vnc).expect("VNC socket"), None)
            .expect("VNC connect")
    }
}

#[test]
fn vnc_keys_reach_a_virtio_keyboard() {
    let Some(mut s) = Screen::start("keyboard") else {
        return;
    };
    let log = s.guest.log();
    assert!(
        log.contains("\"QEMU Virtio Keyboard\""),
        "the guest reads the device's name:\n{log}"
    );
    let mut c = s.connect();
    let from = s.lines();
    // Keysym 'a' is KEY_A (30).
    c.key(0x61, true).unwrap();
    c.key(0x61, false).unwrap();
    s.wait_sequence(
        from,
        &[
            "INFO vinput type=1 code=30 value=1",
            "INFO vinput type=0 code=0 value=0",
            "INFO vinput type=1 code=30 value=0",
            "INFO vinput type=0 code=0 value=0",
        ],
    );
    // More events than the guest posts buffers at once (16) all arrive.
    let from = s.lines();
    for _ in 0..12 {
        c.key(0x62, true).unwrap();
        c.key(0x62, false).unwrap();
    }
    let want: Vec<&str> = (0..12)
        .flat_map(|_| {
            [
                "INFO vinput type=1 code=48 value=1",
                "INFO vinput type=0 code=0 value=0",
                "INFO vinput type=1 code=48 value=0",
                "INFO vinput type=0 code=0 value=0",
            ]
        })
        .collect();
    s.wait_sequence(from, &want);
}

#[test]
fn vnc_pointer_reaches_a_virtio_tablet() {
    let Some(mut s) = Screen::start("tablet") else {
        return;
    };
    assert!(s.guest.log().contains("\"QEMU Virtio Tablet\""));
    let mut c = s.connect();
    // The screen without a mode set is 640x480: (639, 0) is the right edge.
    let from = s.lines();
    c.pointer(639, 0, 0).unwrap();
    c.pointer(639, 0, 1).unwrap();
    s.wait_sequence(
        from,
        &[
            "INFO vinput type=3 code=0 value=32767",
            "INFO vinput type=3 code=1 value=0",
            "INFO vinput type=0 code=0 value=0",
            "INFO vinput type=3 code=0 value=32767",
            "INFO vinput type=3 code=1 value=0",
            "INFO vinput type=1 code=272 value=1",
            "INFO vinput type=0 code=0 value=0",
        ],
    );
    // The wheel: one notch down.
    let from = s.lines();
    c.pointer(639, 0, 0x10).unwrap();
    s.wait_sequence(
        from,
        &[
            "INFO vinput type=1 code=272 value=0",
            "INFO vinput type=2 code=8 value=-1",
            "INFO vinput type=0 code=0 value=0",
        ],
    );
}
