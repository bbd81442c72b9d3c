//! The storage driver with the real clients (virsh pool-*/vol-*,
//! virt-install, virt-clone, python3-libvirt streams) against oxvirtd:
//! runs `compat-tests/storage/run.sh` and fails if any of its checks
//! fails. A missing prerequisite skips the test, except under CI
//! (`CI=true`), where it fails.

mod ci_common;

#[test]
fn storage_with_real_clients() {
    ci_common::run_compat_script("compat-tests/storage/run.sh", "storage client");
}
