//! The control socket: status, pause/resume, power button, reset, quit,
//! stats, events, and what `kill -9` leaves behind.

mod vmm_common;

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use vmm_common::{Guest, guest_cmdline, kvm_available, testos, ticks};

fn abstract_name(tag: &str) -> String {
    format!("@oxvirt-vmm-test-{}-{tag}", std::process::id())
}

fn ticker(tag: &str) -> Option<(Guest, String)> {
    if !kvm_available() {
        return None;
    }
    let elf = testos()?;
    let name = abstract_name(tag);
    let mut g = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        &["--control-socket", &name],
    );
    assert!(
        g.wait_log(Duration::from_secs(30), |l| ticks(l).len() >= 2),
        "no TICK lines:\n{}",
        g.log()
    );
    Some((g, name))
}

#[test]
fn status_stats_and_unknown_commands() {
    let Some((mut g, _)) = ticker("status") else {
        return;
    };
    let mut c = g.connect();
    let st = c.execute("query-status");
    assert_eq!(st["return"]["status"], "running", "{st}");
    assert_eq!(st["return"]["vcpus"], 1);
    let stats = c.execute("query-stats");
    let vcpus = stats["return"]["vcpus"].as_array().expect("vcpus array");
    assert_eq!(vcpus.len(), 1);
    assert!(vcpus[0]["tid"].as_i64().unwrap_or(0) > 0, "{stats}");
    assert_eq!(stats["return"]["memory"]["guest-bytes"], 128u64 << 20);
    let bad = c.execute("no-such-command");
    assert_eq!(bad["error"]["class"], "CommandNotFound", "{bad}");
    let garbage = c.raw(r#"{"id":99,"exec":"x"}"#, 99);
    assert!(garbage.get("error").is_some(), "{garbage}");
    assert_eq!(c.execute("quit")["return"], serde_json::json!({}));
    let ev = c.wait_event("shutdown").expect("shutdown event");
    assert_eq!(ev["reason"], "quit");
    assert_eq!(
        g.wait(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(5)
    );
}

#[test]
fn pause_stops_ticks_and_resume_continues_them() {
    let Some((mut g, _)) = ticker("pause") else {
        return;
    };
    let mut c = g.connect();
    assert!(c.execute("pause").get("return").is_some());
    assert!(c.wait_event("paused").is_some());
    assert_eq!(c.execute("query-status")["return"]["status"], "paused");
    let before = ticks(&g.log());
    std::thread::sleep(Duration::from_millis(800));
    let during = ticks(&g.log());
    assert_eq!(before, during, "TICK lines appeared while paused");
    assert!(c.execute("resume").get("return").is_some());
    assert!(c.wait_event("resumed").is_some());
    let n = during.len();
    assert!(
        g.wait_log(Duration::from_secs(10), |l| ticks(l).len() >= n + 3),
        "no TICK after resume:\n{}",
        g.log()
    );
    let all = ticks(&g.log());
    for w in all.windows(2) {
        assert_eq!(w[1], w[0] + 1, "TICK numbers not consecutive: {all:?}");
    }
    c.execute("quit");
    g.wait(Duration::from_secs(10));
}

#[test]
fn powerdown_makes_the_guest_power_off() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let name = abstract_name("powerdown");
    let mut g = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "powerbutton"),
        &["--control-socket", &name],
    );
    assert!(
        g.wait_log(Duration::from_secs(30), |l| l
            .contains("waiting for power button")),
        "{}",
        g.log()
    );
    let mut c = g.connect();
    assert!(c.execute("powerdown").get("return").is_some());
    let ev = c.wait_event("shutdown").expect("shutdown event");
    assert_eq!(ev["reason"], "poweroff");
    let st = g.wait(Duration::from_secs(10)).expect("VMM did not exit");
    assert_eq!(st.code(), Some(0));
    assert!(g.log().contains("PASS powerbutton"), "{}", g.log());
}

#[test]
fn reset_command_reports_reboot() {
    let Some((mut g, _)) = ticker("reset") else {
        return;
    };
    let mut c = g.connect();
    assert!(c.execute("reset").get("return").is_some());
    let ev = c.wait_event("shutdown").expect("shutdown event");
    assert_eq!(ev["reason"], "reboot");
    assert_eq!(
        g.wait(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(2)
    );
}

#[test]
fn path_socket_is_removed_on_exit_and_replaced_when_stale() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let dir = vmm_common::scratch("sock");
    let sock = dir.join("control.sock");
    let sock_s = sock.display().to_string();
    let mut g = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        // The VMM's own removal of its socket is tested unconfined (a
        // confined VMM leaves that to the daemon).
        &["--control-socket", &sock_s, "--sandbox", "none"],
    );
    let mut c = g.connect();
    assert!(sock.exists());
    c.execute("quit");
    g.wait(Duration::from_secs(10)).expect("exit");
    assert!(!sock.exists(), "control socket left behind after quit");

    // kill -9 leaves the path behind; the next VMM replaces the stale socket.
    let mut g = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        // The VMM's own removal of its socket is tested unconfined (a
        // confined VMM leaves that to the daemon).
        &["--control-socket", &sock_s, "--sandbox", "none"],
    );
    let _ = g.connect();
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    let mut g2 = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        // The VMM's own removal of its socket is tested unconfined (a
        // confined VMM leaves that to the daemon).
        &["--control-socket", &sock_s, "--sandbox", "none"],
    );
    let mut c2 = g2.connect();
    assert_eq!(c2.execute("query-status")["return"]["status"], "running");
    c2.execute("quit");
    g2.wait(Duration::from_secs(10));
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kill_9_leaves_no_file_or_process() {
    let Some((mut g, name)) = ticker("kill9") else {
        return;
    };
    let pid = g.child.id();
    let _c = g.connect();
    // SAFETY: sending SIGKILL to our own child process.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    let st = g.wait(Duration::from_secs(10)).expect("VMM did not die");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process still present"
    );
    // Nothing on disk: the abstract name is free again, and nobody answers.
    let addr = oxvirt::vmm::control::ControlAddr::parse(&name).unwrap();
    assert!(
        addr.connect().is_err(),
        "socket still answers after kill -9"
    );
    // No child processes or helper threads survive: the VMM spawns none.
    let children = std::fs::read_to_string(format!(
        "/proc/{}/task/{}/children",
        std::process::id(),
        std::process::id()
    ))
    .unwrap_or_default();
    assert!(!children.split_whitespace().any(|p| p == pid.to_string()));
}

fn spawn_raw(args: &[&str]) -> std::process::Child {
    std::process::Command::new(vmm_common::vmm())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn oxvirt-vmm")
}

fn wait_exit(child: &mut std::process::Child, secs: u64) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn pty_backend_is_reported_on_stderr_and_in_status() {
    use std::io::{BufRead, BufReader, Read};
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let name = abstract_name("pty");
    let cmdline = guest_cmdline(1, 128, "ticker");
    let mut child = spawn_raw(&[
        "--kernel",
        elf.to_str().unwrap(),
        "--cmdline",
        &cmdline,
        "--memory",
        "128",
        "--serial",
        "pty",
        "--control-socket",
        &name,
    ]);
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    let pty = first
        .strip_prefix("char device redirected to ")
        .and_then(|r| r.strip_suffix(" (label serial0)\n"))
        .unwrap_or_else(|| panic!("unexpected stderr line: {first:?}"))
        .to_string();
    assert!(pty.starts_with("/dev/pts/"), "{pty}");
    let mut c = vmm_common::Control::connect(&name, Duration::from_secs(10));
    let st = c.execute("query-status");
    assert_eq!(st["return"]["serial-pty"], pty.as_str(), "{st}");
    // The guest's output comes out of the pty.
    let mut f = std::fs::File::open(&pty).unwrap();
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 256];
    while std::time::Instant::now() < end && !String::from_utf8_lossy(&got).contains("TICK") {
        let n = f.read(&mut buf).unwrap_or(0);
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("TICK"));
    c.execute("quit");
    assert_eq!(wait_exit(&mut child, 10).and_then(|s| s.code()), Some(5));
}

#[test]
fn unix_serial_backend_serves_the_console_and_is_removed() {
    use std::io::Read;
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let dir = vmm_common::scratch("unixserial");
    let sock = dir.join("console.sock");
    let serial = format!("unix:{}", sock.display());
    let cmdline = guest_cmdline(1, 128, "ticker");
    let mut child = spawn_raw(&[
        "--kernel",
        elf.to_str().unwrap(),
        "--cmdline",
        &cmdline,
        "--memory",
        "128",
        "--serial",
        &serial,
    ]);
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match std::os::unix::net::UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(e) if std::time::Instant::now() > end => panic!("connect: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 256];
    while !got.contains("TICK") {
        let n = stream.read(&mut buf).expect("console output");
        assert!(n > 0, "console closed");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    // SIGTERM stops the guest with status 5 and removes the socket file.
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(wait_exit(&mut child, 10).and_then(|s| s.code()), Some(5));
    assert!(!sock.exists(), "console socket left behind");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn early_client_sees_running_event() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let name = abstract_name("early");
    let mut g = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        &["--control-socket", &name],
    );
    let mut c = g.connect();
    // Connected before or just after the vCPUs started: either the event
    // arrives, or the status already says running.
    let st = c.execute("query-status");
    assert_eq!(st["return"]["status"], "running", "{st}");
    c.execute("quit");
    assert_eq!(
        g.wait(Duration::from_secs(10)).and_then(|s| s.code()),
        Some(5)
    );
}
