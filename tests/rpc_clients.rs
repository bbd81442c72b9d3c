//! The real clients (virsh, python3-libvirt, `virsh console` on a pty)
//! against oxvirtd's RPC socket, with real guests: runs
//! `compat-tests/rpc/run.sh` and fails if any of its checks fails. Skips
//! (passes with a note) when a prerequisite is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn real_clients_against_oxvirtd() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let daemon =
        std::env::var("OXVIRTD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxvirtd").to_string());
    let out = Command::new("bash")
        .arg(top.join("compat-tests/rpc/run.sh"))
        .env("OXVIRTD", daemon)
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(77) {
        eprintln!("skipped: {}", text.trim());
        return;
    }
    assert!(out.status.success(), "RPC client checks failed");
}
