//! The real clients (virsh, python3-libvirt, `virsh console` on a pty)
//! against oxvirtd's RPC socket: runs `compat-tests/rpc/run.sh` (with
//! real guests) and `compat-tests/rpc/nodedev.sh` (the host's devices),
//! and fails if any of their checks fails. Skips (passes with a note)
//! when a prerequisite is missing.

mod ci_common;
use std::path::Path;
use std::process::Command;

/// Runs `compat-tests/rpc/<script>` against the built daemon.
fn run_script(script: &str, what: &str) {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let daemon =
        std::env::var("OXVIRTD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxvirtd").to_string());
    let out = Command::new("bash")
        .arg(top.join("compat-tests/rpc").join(script))
        .env("OXVIRTD", daemon)
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(77) {
        ci_common::skip(text.trim());
        return;
    }
    assert!(out.status.success(), "{what} checks failed");
}

#[test]
fn real_clients_against_oxvirtd() {
    run_script("run.sh", "RPC client");
}

/// The node-device driver through the real virsh: lists, trees, XML and
/// errors, byte for byte against libvirt's recorded output on the host it
/// was recorded on.
#[test]
fn node_devices_through_virsh() {
    run_script("nodedev.sh", "node device");
}
