//! Helpers shared by the daemon tests whose guests have disks and a NIC:
//! a private network namespace with a bridge (the daemon runs inside it,
//! so every tap it makes stays there), the test guest's pattern disks,
//! and the domain XML that uses them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The guest's address on the bridge, and the host's.
pub const GUEST_IP: &str = "10.0.2.15";
pub const HOST_IP: &str = "10.0.2.2";
pub const GUEST_MAC: &str = "52:54:00:6f:78:05";
pub const BRIDGE: &str = "br0";
/// Memory of the device guest, KiB.
pub const MEMORY_KIB: u64 = 131072;
/// What the guest's balloon check inflates (`oxtest.balloonpages`), KiB.
pub const BALLOON_KIB: u64 = 64;

const PYTHON: &str = "/usr/bin/python3";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A network namespace with an IPv4-only bridge, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `None` (with the reason printed) when not root or without `ip`.
    pub fn create(tag: &str) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: needs root for a network namespace");
            return None;
        }
        let name = format!("oxd{tag}{}", std::process::id());
        if !quiet(Command::new("ip").args(["netns", "add", &name])) {
            eprintln!("skipping: cannot create a network namespace");
            return None;
        }
        let ns = Netns { name };
        // No IPv6: nothing but the test's own traffic crosses the taps.
        let ok = ns.ip(&["link", "set", "lo", "up"])
            && quiet(ns.exec("sysctl").args([
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]))
            && ns.ip(&["link", "add", BRIDGE, "type", "bridge"])
            && ns.ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", BRIDGE])
            && ns.ip(&["link", "set", BRIDGE, "up"]);
        assert!(ok, "cannot set up the bridge in {}", ns.name);
        Some(ns)
    }

    /// `ip -n NS ARGS` succeeded.
    pub fn ip(&self, args: &[&str]) -> bool {
        quiet(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `program` run inside the namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Names of the interfaces in the namespace.
    pub fn links(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link", "show"])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .collect()
    }

    /// The taps in the namespace (every link but `lo` and the bridge).
    pub fn taps(&self) -> Vec<String> {
        self.links()
            .into_iter()
            .filter(|l| l != "lo" && l != BRIDGE)
            .collect()
    }

    /// `ip link show NAME` output.
    pub fn link(&self, name: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "link", "show", name])
            .output()
            .expect("ip link");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends a datagram to the guest until the host's neighbour table
    /// has its MAC (the guest answers ARP while it serves the network).
    pub fn resolve_guest(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let send = format!(
            "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.sendto(b'x',('{GUEST_IP}',9))\ntime.sleep(0.2)"
        );
        loop {
            let _ = self.exec(PYTHON).args(["-c", &send]).output();
            let arp = self.exec("cat").arg("/proc/net/arp").output().expect("arp");
            let arp = String::from_utf8_lossy(&arp.stdout);
            if arp
                .lines()
                .any(|l| l.starts_with(&format!("{GUEST_IP} ")) && l.contains(GUEST_MAC))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "guest never answered ARP:\n{arp}"
            );
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // What a failed test left running in the namespace (a network's
        // dnsmasq outlives its daemon by design) goes with it.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: a signal to a process inside this test's own
                // namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `DIR/disk.raw` and `DIR/disk.qcow2`, both holding the guest's disk
/// pattern; `None` (with the reason printed) without python3/qemu-img.
pub fn make_disks(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let raw = dir.join("disk.raw");
    let base = dir.join("base.raw");
    let qcow2 = dir.join("disk.qcow2");
    let pattern = repo().join("compat-tests/guest/make-pattern-disk.py");
    let ok = quiet(
        Command::new(PYTHON)
            .arg(&pattern)
            .arg("write")
            .arg(&raw)
            .arg("16384"),
    ) && quiet(
        Command::new(PYTHON)
            .arg(&pattern)
            .arg("write")
            .arg(&base)
            .arg("16384"),
    ) && quiet(
        Command::new("qemu-img")
            .args(["convert", "-O", "qcow2"])
            .arg(&base)
            .arg(&qcow2),
    );
    if !ok {
        eprintln!("skipping: cannot make the test disks (python3, qemu-img)");
        return None;
    }
    Some((raw, qcow2))
}

/// A test-guest domain with a raw disk (slot 3, `vda`), a qcow2 disk
/// (slot 4, `vdb`), a NIC on the bridge (slot 5), a balloon (slot 6) and
/// its serial port in a file. The guest checks all of them, inflates
/// its balloon by [`BALLOON_KIB`] once asked to, then does `then`.
pub fn devices_xml(
    name: &str,
    uuid: &str,
    kernel: &Path,
    serial: &Path,
    disks: &(PathBuf, PathBuf),
    then: &str,
) -> String {
    let balloon = if then == "net-serve" {
        ",06:balloon oxtest.balloonpages=16 oxtest.balloonwait=60000"
    } else {
        ",06:balloon oxtest.balloonwait=1"
    };
    let checks = if then == "net-serve" {
        "pci,blk,net,balloon"
    } else {
        "pci,blk,net"
    };
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>\
         <memory unit='KiB'>{MEMORY_KIB}</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64'>hvm</type><kernel>{kernel}</kernel>\
         <cmdline>oxtest.checks={checks} oxtest.devs=03:blk,04:blk,05:net{balloon} \
         oxtest.ip={GUEST_IP} oxtest.netsend=4 oxtest.then={then} oxtest.netserve=120</cmdline></os>\
         <devices>\
         <disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='{raw}'/>\
         <target dev='vda' bus='virtio'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/></disk>\
         <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{qcow2}'/>\
         <target dev='vdb' bus='virtio'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></disk>\
         <interface type='bridge'><mac address='{GUEST_MAC}'/><source bridge='{BRIDGE}'/>\
         <model type='virtio'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></interface>\
         <serial type='file'><source path='{serial}'/></serial>\
         <memballoon model='virtio'><stats period='1'/>\
         <address type='pci' domain='0x0000' bus='0x00' slot='0x06' function='0x0'/></memballoon>\
         </devices></domain>",
        kernel = kernel.display(),
        raw = disks.0.display(),
        qcow2 = disks.1.display(),
        serial = serial.display(),
    )
}

/// Whether `log` has a complete (newline-terminated) line containing
/// `what`: the guest may be half way through writing the last one.
pub fn has_whole_line(log: &str, what: &str) -> bool {
    log.split_inclusive('\n')
        .any(|l| l.ends_with('\n') && l.contains(what))
}

/// Waits until the serial log has a line containing `what`.
pub fn wait_serial(serial: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if has_whole_line(&log, what) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no '{what}' from the guest:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
