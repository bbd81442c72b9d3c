//! The real clients (virsh, python3-libvirt, `virsh console` on a pty)
//! against oxvirtd's RPC socket: runs `compat-tests/rpc/run.sh` (with
//! real guests) and `compat-tests/rpc/nodedev.sh` (the host's devices),
//! and fails if any of their checks fails. A missing prerequisite skips
//! the test, except under CI (`CI=true`), where it fails.

mod ci_common;

#[test]
fn real_clients_against_oxvirtd() {
    ci_common::run_compat_script("compat-tests/rpc/run.sh", "RPC client");
}

/// The node-device driver through the real virsh: lists, trees, XML and
/// errors, byte for byte against libvirt's recorded output on the host it
/// was recorded on.
#[test]
fn node_devices_through_virsh() {
    ci_common::run_compat_script("compat-tests/rpc/nodedev.sh", "node device");
}

/// An unprivileged user floods the read-only socket: root's virsh still
/// answers, connections beyond max_clients wait in the queue and the
/// daemon's memory stays bounded.
#[test]
fn a_local_user_cannot_lock_root_out() {
    ci_common::run_compat_script("compat-tests/rpc/flood.sh", "client flood");
}
