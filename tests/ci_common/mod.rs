//! What a test does when a prerequisite is missing: on a developer's
//! machine it says so and passes; under CI (`CI=true`) it fails, so that
//! no check passes without being run. Also the private bus tests run on.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reports a missing prerequisite; panics under CI.
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "prerequisite missing under CI: {reason}"
    );
    eprintln!("skipping: {reason}");
}

/// A private bus's configuration: a session bus that activates no
/// services, so that nothing installed on the host (libvirt-dbus's own
/// `org.libvirt` activation file, say) can take the daemon's name before
/// the daemon under test does.
fn private_bus_config() -> std::path::PathBuf {
    // One file per bus: parallel tests never rewrite a file being read.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "oxvirt-test-bus-{}-{}.conf",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let conf = "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
        \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
        <busconfig>\n  <type>session</type>\n  <listen>unix:tmpdir=/tmp</listen>\n  \
        <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
        <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    <allow eavesdrop=\"true\"/>\n    \
        <allow own=\"*\"/>\n  </policy>\n</busconfig>\n";
    std::fs::write(&path, conf).expect("write the bus configuration");
    path
}

/// Starts a private bus: the dbus-daemon and its address, or `None`
/// (reported through `skip`) when dbus-daemon cannot run.
pub fn start_private_bus() -> Option<(Child, String)> {
    let config = private_bus_config();
    let spawned = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--print-address=1", "--nofork"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&config);
            skip(&format!(
                "cannot run dbus-daemon ({e}); install package dbus-daemon"
            ));
            return None;
        }
    };
    let mut address = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut address)
        .expect("bus address");
    // The daemon read its configuration before it printed its address.
    let _ = std::fs::remove_file(&config);
    Some((child, address.trim().to_string()))
}
