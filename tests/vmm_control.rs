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
    let g = Guest::start(
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
        &["--control-socket", &sock_s],
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
        &["--control-socket", &sock_s],
    );
    let _ = g.connect();
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    let mut g2 = Guest::start(
        &elf,
        1,
        128,
        &guest_cmdline(1, 128, "ticker"),
        &["--control-socket", &sock_s],
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
