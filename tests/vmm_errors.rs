//! Bad input to oxvirt-vmm: a clear error on stderr, exit status 1, no
//! panic, nothing left behind.

mod vmm_common;

use std::process::{Command, Stdio};

use vmm_common::{scratch, vmm};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(vmm())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run oxvirt-vmm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clean_error(args: &[&str], needle: &str) {
    let (code, err) = run(args);
    assert_eq!(code, 1, "args {args:?}: stderr {err}");
    assert!(err.contains("oxvirt-vmm: error: "), "{err}");
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_kernel() {
    assert_clean_error(
        &["--kernel", "/nonexistent/kernel", "--serial", "null"],
        "cannot open kernel /nonexistent/kernel",
    );
}

#[test]
fn not_a_kernel() {
    let d = scratch("notkernel");
    let f = d.join("junk");
    std::fs::write(&f, vec![0x55u8; 4096]).unwrap();
    assert_clean_error(
        &["--kernel", f.to_str().unwrap(), "--serial", "null"],
        "cannot load kernel",
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn too_much_memory() {
    assert_clean_error(
        &[
            "--kernel",
            "/bin/true",
            "--memory",
            "100000000",
            "--serial",
            "null",
        ],
        "MiB",
    );
}

#[test]
fn nothing_to_run() {
    assert_clean_error(&[], "nothing to run");
}

#[test]
fn bad_serial_spec() {
    assert_clean_error(
        &["--kernel", "/bin/true", "--serial", "tcp:1234"],
        "unknown serial backend",
    );
}

#[test]
fn zero_cpus() {
    assert_clean_error(&["--kernel", "/bin/true", "--cpus", "0"], "vCPU count");
}

#[test]
fn bad_config_files() {
    let d = scratch("badcfg");
    let cases = [
        (
            "notjson",
            "{ this is not json",
            "cannot parse configuration",
        ),
        (
            "version",
            r#"{"version":9,"name":"x","memory_mib":64,"cpus":{"count":1},"boot":{"type":"kernel","kernel":"/k"}}"#,
            "unsupported version",
        ),
        (
            "topology",
            r#"{"version":1,"name":"x","memory_mib":64,"cpus":{"count":4,"topology":{"sockets":3,"cores":1,"threads":1}},"boot":{"type":"kernel","kernel":"/k"}}"#,
            "topology",
        ),
        (
            "unknownfield",
            r#"{"version":1,"name":"x","memory_mib":64,"cpus":{"count":1},"boot":{"type":"kernel","kernel":"/k"},"bogus":1}"#,
            "unknown field",
        ),
    ];
    for (name, text, needle) in cases {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        assert_clean_error(&["--config", p.to_str().unwrap()], needle);
    }
    assert_clean_error(
        &["--config", "/nonexistent.json"],
        "cannot read configuration",
    );
    assert_clean_error(&["--config-fd", "999"], "fd 999");
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn control_socket_removed_when_build_fails() {
    let d = scratch("ctlfail");
    let sock = d.join("c.sock");
    assert_clean_error(
        &[
            "--kernel",
            "/nonexistent/kernel",
            "--serial",
            "null",
            "--control-socket",
            sock.to_str().unwrap(),
        ],
        "cannot open kernel",
    );
    assert!(!sock.exists());
    let _ = std::fs::remove_dir_all(d);
}
