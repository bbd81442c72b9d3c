//! PCI hotplug of a running, confined VMM: `device-add` of a disk, a NIC
//! and an rng reaches the test guest through the GED and the ACPI hotplug
//! registers, which rescans and runs its driver checks on the new device
//! (the disk's pattern, UDP echo through the NIC); `device-del` asks it to
//! release one, and its eject ends in `device-deleted` with the device's
//! host resources gone. Bad requests change nothing.

mod vmm_common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use vmm_common::wire::{self, GUEST_IP};
use vmm_common::{Control, Guest, kvm_available, scratch, testos};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A raw disk with the test guest's pattern.
fn pattern_disk(path: &Path) {
    let ok = Command::new("python3")
        .arg(repo().join("compat-tests/guest/make-pattern-disk.py"))
        .arg("write")
        .arg(path)
        .arg("16384")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "make-pattern-disk.py failed");
}

fn cmdline() -> String {
    format!(
        "oxtest.pci=1 oxtest.then=hotplug oxtest.ip={} oxtest.netudp=1 oxtest.nettime=60000",
        GUEST_IP.map(|b| b.to_string()).join(".")
    )
}

fn start(tag: &str) -> (Guest, Control) {
    start_with(tag, "")
}

/// [`start`], the guest's command line extended by `extra`.
fn start_with(tag: &str, extra: &str) -> (Guest, Control) {
    let elf = testos().expect("test guest");
    let control = format!("@oxvirt-vmm-hotplug-{}-{tag}", std::process::id());
    let mut g = Guest::start(
        &elf,
        1,
        256,
        &format!("{} {extra}", cmdline()),
        &["--rng", "slot=3", "--control-socket", &control],
    );
    let c = g.connect();
    wait_line(&mut g, "INFO hotplug ready", 1);
    (g, c)
}

/// Waits until the guest has printed `line` `n` times (whole lines).
fn wait_line(g: &mut Guest, line: &str, n: usize) {
    let ok = g.wait_log(Duration::from_secs(120), |log| {
        log.split_inclusive('\n')
            .filter(|l| l.ends_with('\n') && l.starts_with(line))
            .count()
            >= n
    });
    assert!(ok, "no '{line}' (x{n}) from the guest:\n{}", g.log());
}

fn add_disk(c: &mut Control, disk: &Path) -> Value {
    let image = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(disk)
        .unwrap();
    c.execute_with_fd(
        "device-add",
        json!({ "device": { "type": "block", "path": disk, "format": "raw" } }),
        image,
    )
}

fn slot_of(reply: &Value) -> u64 {
    reply["return"]["slot"]
        .as_u64()
        .unwrap_or_else(|| panic!("device-add failed: {reply}"))
}

/// Asks for `slot`'s device back and waits for the guest's eject (its
/// `nth` of that slot).
fn del(g: &mut Guest, c: &mut Control, slot: u64, nth: usize) {
    let r = c.execute_args("device-del", json!({ "slot": slot }));
    assert_eq!(r["return"], json!({}), "{r}");
    let e = c
        .wait_event("device-deleted")
        .expect("no device-deleted event");
    assert_eq!(e["slot"], json!(slot), "{e}");
    wait_line(g, &format!("INFO hotplug {slot:02x} ejected"), nth);
}

fn failures(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("FAIL")).collect()
}

/// Whether the other end closes `s` (within 10 s), past what it still
/// had in flight.
fn closed_by_peer(s: &mut UnixStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

/// The VMM's open descriptors and threads.
fn resources(pid: u32) -> (usize, usize) {
    let count = |d: String| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);
    (
        count(format!("/proc/{pid}/fd")),
        count(format!("/proc/{pid}/task")),
    )
}

#[test]
fn disk_and_nic_plugged_checked_and_released() {
    if !kvm_available() || testos().is_none() {
        return;
    }
    let dir = scratch("hotplug");
    let disk = dir.join("disk.raw");
    pattern_disk(&disk);
    let (mut g, mut c) = start("devices");

    // A disk: the guest finds it in the first free slot and reads its pattern.
    let slot = slot_of(&add_disk(&mut c, &disk));
    assert_eq!(slot, 4, "the first free slot after the rng's");
    wait_line(&mut g, "INFO hotplug 04 added", 1);
    let log = g.log();
    assert!(log.contains("PASS blk-04"), "{log}");

    // A NIC on a stream backend: UDP echo through it.
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let r = c.execute_with_fd(
        "device-add",
        json!({ "device": { "type": "net", "stream_fd": 0, "mac": "52:54:00:6f:78:08" } }),
        theirs,
    );
    assert_eq!(slot_of(&r), 5);
    assert!(
        wire::udp_echo(
            &mut ours,
            b"through a hotplugged NIC",
            Duration::from_secs(90)
        ),
        "no UDP echo:\n{}",
        g.log()
    );
    wait_line(&mut g, "INFO hotplug 05 added", 1);

    // Bad requests: an error, and the guest sees nothing.
    let busy = add_disk_at(&mut c, &disk, 3);
    assert!(
        busy["error"]["desc"]
            .as_str()
            .is_some_and(|d| d.contains("PCI slot 3 is already in use")),
        "{busy}"
    );
    let none = c.execute_args("device-del", json!({ "slot": 9 }));
    assert!(
        none["error"]["desc"]
            .as_str()
            .is_some_and(|d| d.contains("no device in PCI slot 9")),
        "{none}"
    );
    let no_fd = c.execute_args(
        "device-add",
        json!({ "device": { "type": "block", "path": disk, "format": "raw" } }),
    );
    assert!(no_fd.get("error").is_some(), "{no_fd}");

    // Both go back; the NIC's backend is closed once the VMM let it go.
    del(&mut g, &mut c, 5, 1);
    assert!(
        closed_by_peer(&mut ours),
        "the NIC's stream stayed open after its unplug"
    );
    del(&mut g, &mut c, 4, 1);

    // Twenty more cycles of the disk leave no descriptor or thread behind.
    let pid = g.child.id();
    let before = resources(pid);
    for i in 0..20 {
        let slot = slot_of(&add_disk(&mut c, &disk));
        assert_eq!(slot, 4);
        wait_line(&mut g, "INFO hotplug 04 added", i + 2);
        del(&mut g, &mut c, slot, i + 2);
    }
    let after = resources(pid);
    assert_eq!(before, after, "(fds, threads) before and after 20 cycles");
    let log = g.log();
    assert!(log.matches("PASS blk-04-read").count() >= 21, "{log}");
    assert!(failures(&log).is_empty(), "{log}");
    let _ = c.execute("quit");
    let _ = g.wait(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(dir);
}

fn add_disk_at(c: &mut Control, disk: &Path, slot: u8) -> Value {
    let image = std::fs::File::open(disk).unwrap();
    c.execute_with_fd(
        "device-add",
        json!({ "device": { "type": "block", "path": disk, "pci_slot": slot } }),
        image,
    )
}

/// A device present from the start is released like a plugged one, and
/// its slot serves the next device, which is released in turn.
#[test]
fn a_boot_device_released_and_its_slot_reused() {
    if !kvm_available() || testos().is_none() {
        return;
    }
    let dir = scratch("hotplug-reuse");
    let disk = dir.join("disk.raw");
    pattern_disk(&disk);
    let (mut g, mut c) = start("reuse");
    del(&mut g, &mut c, 3, 1);
    for n in 1..=2 {
        let slot = slot_of(&add_disk(&mut c, &disk));
        assert_eq!(slot, 3, "the rng's slot, free again");
        wait_line(&mut g, "INFO hotplug 03 added", n);
        del(&mut g, &mut c, slot, n + 1);
    }
    let log = g.log();
    assert!(failures(&log).is_empty(), "{log}");
    let _ = c.execute("quit");
    let _ = g.wait(Duration::from_secs(20));
    let _ = std::fs::remove_dir_all(dir);
}

/// A guest that cannot release a device says so through the slot's
/// `_OST`: `device-unplug-guest-error`, the device stays and a later
/// request is served.
#[test]
fn a_refused_removal_is_reported_and_the_device_stays() {
    if !kvm_available() || testos().is_none() {
        return;
    }
    let (mut g, mut c) = start_with("refuse", "oxtest.hprefuse=3");
    let r = c.execute_args("device-del", json!({ "slot": 3 }));
    assert_eq!(r["return"], json!({}), "{r}");
    let e = c
        .wait_event("device-unplug-guest-error")
        .expect("no device-unplug-guest-error event");
    assert_eq!(e["slot"], json!(3), "{e}");
    wait_line(&mut g, "INFO hotplug 03 refused", 1);
    assert!(!g.log().contains("INFO hotplug 03 ejected"));
    del(&mut g, &mut c, 3, 1);
    let log = g.log();
    assert!(failures(&log).is_empty(), "{log}");
    let _ = c.execute("quit");
    let _ = g.wait(Duration::from_secs(20));
}

/// CPU hotplug: a machine of three vCPUs booted with one. `set-vcpus` plugs
/// the other two in, and the guest starts each (INIT, SIPI) and runs a
/// task on it; back down to one, the guest ejects both (highest first),
/// each ending in `vcpu-removed`; one plugged in again starts again. Counts
/// out of range change nothing.
#[test]
fn vcpus_plugged_started_and_ejected() {
    if !kvm_available() || testos().is_none() {
        return;
    }
    let elf = testos().expect("test guest");
    let control = format!("@oxvirt-vmm-cpuhp-{}", std::process::id());
    let mut g = Guest::start(
        &elf,
        1,
        128,
        "oxtest.then=hotplug",
        &["--max-cpus", "3", "--control-socket", &control],
    );
    let mut c = g.connect();
    wait_line(&mut g, "INFO hotplug ready", 1);
    let vcpus = |c: &mut Control| c.execute("query-status")["return"]["vcpus"].clone();
    assert_eq!(vcpus(&mut c), json!(1));

    let r = c.execute_args("set-vcpus", json!({ "count": 3 }));
    assert_eq!(r["return"], json!({}), "{r}");
    wait_line(&mut g, "INFO cpuhp 1 online", 1);
    wait_line(&mut g, "INFO cpuhp 2 online", 1);
    assert_eq!(vcpus(&mut c), json!(3));

    for bad in [0, 4] {
        let r = c.execute_args("set-vcpus", json!({ "count": bad }));
        assert!(
            r["error"]["desc"]
                .as_str()
                .is_some_and(|d| d.contains("out of range 1..=3")),
            "{r}"
        );
    }

    let r = c.execute_args("set-vcpus", json!({ "count": 1 }));
    assert_eq!(r["return"], json!({}), "{r}");
    for want in [2, 1] {
        let e = c.wait_event("vcpu-removed").expect("no vcpu-removed event");
        assert_eq!(e["index"], json!(want), "{e}");
    }
    wait_line(&mut g, "INFO cpuhp 1 ejected", 1);
    assert_eq!(vcpus(&mut c), json!(1));
    let log = g.log();
    let (two, one) = (
        log.find("INFO cpuhp 2 ejected").unwrap(),
        log.find("INFO cpuhp 1 ejected").unwrap(),
    );
    assert!(two < one, "ejected lowest first:\n{log}");

    let r = c.execute_args("set-vcpus", json!({ "count": 2 }));
    assert_eq!(r["return"], json!({}), "{r}");
    wait_line(&mut g, "INFO cpuhp 1 online", 2);
    assert_eq!(vcpus(&mut c), json!(2));
    let log = g.log();
    assert!(failures(&log).is_empty(), "{log}");
    let _ = c.execute("quit");
    let _ = g.wait(Duration::from_secs(20));
}
