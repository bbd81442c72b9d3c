//! The storage driver with the real clients (virsh pool-*/vol-*,
//! virt-install, virt-clone, python3-libvirt streams) against oxvirtd:
//! runs `compat-tests/storage/run.sh` and fails if any of its checks
//! fails. A missing prerequisite skips the test, except under CI
//! (`CI=true`), where it fails.

mod ci_common;
use std::path::Path;
use std::process::Command;

#[test]
fn storage_with_real_clients() {
    let top = Path::new(env!("CARGO_MANIFEST_DIR"));
    let daemon =
        std::env::var("OXVIRTD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxvirtd").to_string());
    let out = Command::new("bash")
        .arg(top.join("compat-tests/storage/run.sh"))
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
    assert!(out.status.success(), "storage client checks failed");
}
