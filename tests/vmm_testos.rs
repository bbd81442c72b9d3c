//! The test guest under oxvirt-vmm: every platform check with 1, 2 and 4
//! vCPUs, and each way the guest can stop.

mod vmm_common;

use std::time::Duration;

use vmm_common::{Guest, guest_cmdline, host_emulates_ring0, kvm_available, testos};

fn run_checks(cpus: u32) {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let mem = 512;
    let mut g = Guest::start(&elf, cpus, mem, &guest_cmdline(cpus, mem, "poweroff"), &[]);
    let st = g
        .wait(Duration::from_secs(60))
        .expect("guest did not power off");
    let log = g.log();
    assert!(
        log.contains("DONE passed=4 failed=0"),
        "checks failed with {cpus} vCPUs:\n{log}"
    );
    assert!(!log.contains("FAIL"), "{log}");
    assert_eq!(st.code(), Some(0), "poweroff exit status; log:\n{log}");
}

#[test]
fn all_checks_pass_with_1_vcpu() {
    run_checks(1);
}

#[test]
fn all_checks_pass_with_2_vcpus() {
    run_checks(2);
}

#[test]
fn all_checks_pass_with_4_vcpus() {
    run_checks(4);
}

fn exit_code_for(then: &str) -> Option<(i32, String)> {
    if !kvm_available() {
        return None;
    }
    let elf = testos()?;
    let mut g = Guest::start(&elf, 1, 128, &guest_cmdline(1, 128, then), &[]);
    let st = g.wait(Duration::from_secs(60)).expect("guest did not stop");
    Some((st.code().unwrap_or(-1), g.log()))
}

#[test]
fn poweroff_exits_0() {
    if let Some((code, log)) = exit_code_for("poweroff") {
        assert_eq!(code, 0, "{log}");
    }
}

#[test]
fn acpi_reset_register_exits_2() {
    if let Some((code, log)) = exit_code_for("reset") {
        assert_eq!(code, 2, "{log}");
    }
}

#[test]
fn i8042_reset_exits_2() {
    if let Some((code, log)) = exit_code_for("i8042-reset") {
        assert_eq!(code, 2, "{log}");
    }
}

/// A triple fault resets the machine (QEMU's `guest-reset`), so the
/// daemon boots the guest again unless `<on_reboot>` says otherwise.
#[test]
fn triple_fault_exits_2_as_a_reset() {
    if let Some((code, log)) = exit_code_for("triple-fault") {
        assert_eq!(code, 2, "{log}");
    }
}

fn config_json(kernel: &std::path::Path, serial: &std::path::Path, cmdline: &str) -> String {
    serde_json::json!({
        "version": 1,
        "name": "testos",
        "uuid": "6f1c1a52-7a43-4b43-9a57-0c1f7a4e9b10",
        "memory_mib": 256,
        "cpus": { "count": 4, "topology": { "sockets": 2, "cores": 2, "threads": 1 } },
        "boot": { "type": "kernel", "kernel": kernel, "cmdline": cmdline },
        "serial": { "type": "file", "path": serial },
        "devices": [],
        "on_reboot": "exit"
    })
    .to_string()
}

#[test]
fn boots_from_config_file_with_topology() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let dir = vmm_common::scratch("cfgfile");
    let serial = dir.join("serial.log");
    let cfg = dir.join("vm.json");
    std::fs::write(
        &cfg,
        config_json(&elf, &serial, &guest_cmdline(4, 256, "poweroff")),
    )
    .unwrap();
    let st = std::process::Command::new(vmm_common::vmm())
        .arg("--config")
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    let log = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(log.contains("DONE passed=4 failed=0"), "{log}");
    assert_eq!(st.code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn boots_from_config_fd() {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let dir = vmm_common::scratch("cfgfd");
    let serial = dir.join("serial.log");
    let text = config_json(&elf, &serial, &guest_cmdline(4, 256, "poweroff"));
    let mut fds = [0i32; 2];
    // SAFETY: fds is valid for two ints; a plain pipe (inheritable read end).
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both fds were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut wf = std::fs::File::from(w);
    wf.write_all(text.as_bytes()).unwrap();
    drop(wf);
    let st = std::process::Command::new(vmm_common::vmm())
        .arg("--config-fd")
        .arg(r.as_raw_fd().to_string())
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    let log = std::fs::read_to_string(&serial).unwrap_or_default();
    assert!(log.contains("DONE passed=4 failed=0"), "{log}");
    assert_eq!(st.code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn guest_with_ram_above_4g() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let mem = 5120;
    let mut g = Guest::start(&elf, 2, mem, &guest_cmdline(2, mem, "poweroff"), &[]);
    let st = g
        .wait(Duration::from_secs(60))
        .expect("guest did not power off");
    let log = g.log();
    assert!(
        log.contains("0x0000000100000000-0x000000017fffffff ram"),
        "{log}"
    );
    assert!(log.contains("DONE passed=4 failed=0"), "{log}");
    assert_eq!(st.code(), Some(0));
}

/// cmpxchg16b, int3, int n, popcnt, stac/clac, fwait and rdrand in guest
/// ring 0 give the CPU's results; where the host's KVM cannot emulate
/// them, the VMM finished them (its counts say so), under the sandbox's
/// seccomp filters.
#[test]
fn instructions_the_host_cannot_emulate_are_finished() {
    if !kvm_available() {
        return;
    }
    let Some(elf) = testos() else { return };
    let cmdline = "oxtest.checks=finish oxtest.then=halt";
    let control = format!("@oxvirt-vmm-test-{}-finish", std::process::id());
    let mut g = Guest::start(&elf, 1, 128, cmdline, &["--control-socket", &control]);
    assert!(
        g.wait_log(Duration::from_secs(60), |l| l.contains("DONE ")),
        "the check did not finish:\n{}",
        g.log()
    );
    let log = g.log();
    assert!(log.contains("PASS finish"), "{log}");
    let stats = g.connect().execute("query-stats");
    let finished = &stats["return"]["finished-instructions"];
    let count = |k: &str| finished[k].as_u64().unwrap_or(0);
    eprintln!("finished by the VMM: {finished}");
    if host_emulates_ring0() {
        assert_eq!(count("cmpxchg16b"), 2, "{stats}");
        assert_eq!((count("int3"), count("int")), (1, 1), "{stats}");
        assert!(count("bit-count") >= 2, "{stats}");
        assert_eq!(count("fwait"), 1, "{stats}");
    } else {
        // The CPU ran them all.
        assert_eq!(
            count("cmpxchg16b") + count("int3") + count("int"),
            0,
            "{stats}"
        );
    }
}
