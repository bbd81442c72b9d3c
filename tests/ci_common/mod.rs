//! What a test does when a prerequisite is missing: on a developer's
//! machine it says so and passes; under CI (`CI=true`) it fails, so that
//! no check passes without being run. Also the private bus tests run on.

// Each test crate uses the part it needs.
#![allow(dead_code)]

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
pub fn private_bus_config() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("oxvirt-test-bus-{}.conf", std::process::id()));
    let conf = "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
        \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
        <busconfig>\n  <type>session</type>\n  <listen>unix:tmpdir=/tmp</listen>\n  \
        <auth>EXTERNAL</auth>\n  <policy context=\"default\">\n    \
        <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    <allow eavesdrop=\"true\"/>\n    \
        <allow own=\"*\"/>\n  </policy>\n</busconfig>\n";
    std::fs::write(&path, conf).expect("write the bus configuration");
    path
}
