//! What a test does when a prerequisite is missing: on a developer's
//! machine it says so and passes; under CI (`CI=true`) it fails, so that
//! no check passes without being run. Also the private bus tests run on.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
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

/// A private session bus for one test, gone (daemon, socket and
/// configuration) when dropped. It activates no services, so that
/// nothing installed on the host (libvirt-dbus's own `org.libvirt`
/// activation file, say) can take the daemon's name before the daemon
/// under test does.
pub struct PrivateBus {
    child: Child,
    pub address: String,
    /// Holds the configuration and the bus socket.
    dir: PathBuf,
}

impl PrivateBus {
    /// Starts the bus, or returns `None` (reported through `skip`) when
    /// dbus-daemon cannot run.
    pub fn start() -> Option<PrivateBus> {
        // A directory per bus: parallel tests share nothing.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oxvirt-test-bus-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the bus directory");
        let config = dir.join("bus.conf");
        let conf = format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
            \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
            <busconfig>\n  <type>session</type>\n  <listen>unix:dir={}</listen>\n  \
            <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
            <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    <allow eavesdrop=\"true\"/>\n    \
            <allow own=\"*\"/>\n  </policy>\n</busconfig>\n",
            dir.display()
        );
        std::fs::write(&config, conf).expect("write the bus configuration");
        let spawned = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--print-address=1", "--nofork"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
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
        Some(PrivateBus {
            child,
            address: address.trim().to_string(),
            dir,
        })
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the compat-test script at `script` (relative to the source tree)
/// against the built daemon; its checks failing fails the test, its exit
/// code 77 (a missing prerequisite) goes to `skip`.
pub fn run_compat_script(script: &str, what: &str) {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let daemon =
        std::env::var("OXVIRTD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxvirtd").to_string());
    let out = Command::new("bash")
        .arg(top.join(script))
        .env("OXVIRTD", daemon)
        .output()
        .expect("bash");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    if out.status.code() == Some(77) {
        skip(text.trim());
        return;
    }
    assert!(out.status.success(), "{what} checks failed");
}
