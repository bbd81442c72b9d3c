//! The e1000 NIC (Intel 82540EM) of oxvirt-vmm, checked by the test
//! guest's `e1000` mode on a tap in a private network namespace: under
//! oxvirt-vmm confined as the daemon runs it (the frames, pings and
//! interrupts of the exchange, the statistics over the control socket);
//! the same guest mode under QEMU 7.2's `-device e1000`, which proves the
//! guest's driver on its own; and a guest feeding the NIC garbage
//! descriptors while the host sends, which must leave the VMM running
//! with the errors counted. A guest answering pings through the e1000,
//! and through virtio-net, saved and restored on the same tap, answers
//! again.

#[allow(clippy::duplicate_mod)]
mod ci_common;
mod netns_common;
mod vmm_common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use netns_common::{BRIDGE, GUEST_IP, Netns};
use vmm_common::Control;

const GUEST_MAC: &str = "52:54:00:6f:78:08";
const TAP: &str = "oxtap0";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test guest and a namespace with a tap on its bridge; `None`
/// (through `skip`) when KVM, the guest, root or namespaces are missing.
fn setup(tag: &str) -> Option<(PathBuf, Netns)> {
    if !vmm_common::kvm_available() {
        return None;
    }
    let elf = vmm_common::testos()?;
    let Some(ns) = Netns::create(tag) else {
        ci_common::skip("needs root and ip netns for a network namespace");
        return None;
    };
    assert!(ns.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"]));
    assert!(ns.ip(&["link", "set", TAP, "master", BRIDGE, "up"]));
    Some((elf, ns))
}

/// The guest's command line for the e1000 check and net-serve.
fn exchange_cmdline(extra: &str) -> String {
    format!(
        "oxtest.checks=pci,e1000 oxtest.ip={GUEST_IP} oxtest.netsend=4 oxtest.netrecv=4 \
         oxtest.netping=3 oxtest.nettime=15000 oxtest.then=net-serve oxtest.netserve=3 {extra}"
    )
}

/// A scratch directory for a run and its (empty) serial log, which the
/// host side watches from the start.
fn scratch_log(tag: &str) -> (PathBuf, PathBuf) {
    let dir = vmm_common::scratch(tag);
    let serial = dir.join("serial.log");
    std::fs::write(&serial, "").unwrap();
    (dir, serial)
}

/// The end of an exchange: the VMM's exit status and stderr, the host
/// side's output, the guest's log.
struct Finished {
    status: Option<i32>,
    err: String,
    host_log: String,
    log: String,
}

fn finish(
    vmm: &mut Child,
    host: &mut Child,
    host_out: &mut BufReader<ChildStdout>,
    serial: &Path,
) -> Finished {
    let status = wait_exit(vmm, 120);
    let _ = wait_exit(host, 30);
    let mut host_log = String::new();
    let _ = host_out.read_to_string(&mut host_log);
    let mut err = String::new();
    if let Some(e) = vmm.stderr.as_mut() {
        let _ = e.read_to_string(&mut err);
    }
    Finished {
        status,
        err,
        host_log,
        log: std::fs::read_to_string(serial).unwrap_or_default(),
    }
}

impl Finished {
    /// The guest passed `wanted`, served the network and powered off;
    /// the host got its test frames and echo replies.
    fn assert_exchange(&self, wanted: &[&str]) {
        let (log, host_log) = (&self.log, &self.host_log);
        assert_passes(log, wanted);
        assert!(log.contains("INFO net-serve done"), "{log}");
        assert_eq!(self.status, Some(0), "{log}\n{}", self.err);
        assert!(
            host_log.contains("received 4 test frames"),
            "{host_log}\n{log}"
        );
        assert!(host_log.matches("echo reply").count() >= 5, "{host_log}");
    }
}

/// `net-host.py` in the namespace, once it listens on the bridge.
fn host_side(ns: &Netns, serial: &Path) -> (Child, BufReader<ChildStdout>) {
    let mut host = ns
        .exec("python3")
        .arg(repo().join("compat-tests/guest/testos/net-host.py"))
        .arg(serial)
        .args([BRIDGE, GUEST_IP, "4", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("net-host.py");
    let mut out = BufReader::new(host.stdout.take().expect("net-host.py stdout"));
    let mut first = String::new();
    let _ = out.read_line(&mut first);
    assert_eq!(first.trim(), "listening", "net-host.py did not start");
    (host, out)
}

/// Waits for `child` to exit (killing it after `secs`); its status code.
fn wait_exit(child: &mut Child, secs: u64) -> Option<i32> {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn wait_for(serial: &Path, what: &str, secs: u64) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if netns_common::has_whole_line(&log, what) || Instant::now() > end {
            return log;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_passes(log: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(
            log.lines().any(|l| l == format!("PASS {w}")),
            "no PASS {w}:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with("DONE") && l.ends_with("failed=0")),
        "{log}"
    );
}

/// What every run of the exchange must show, under either VMM.
const EXCHANGE: &[&str] = &[
    "pci",
    "e1000-08-pci",
    "e1000-08-reset",
    "e1000-08-eeprom",
    "e1000-08-link",
    "e1000-08-intx",
    "e1000-08-tx",
    "e1000-08-rx",
    "e1000-08-ping",
    "e1000-08-irq",
];

/// oxvirt-vmm confined as the daemon runs it, on the namespace's tap.
fn start_vmm(ns: &Netns, elf: &Path, dir: &Path, cmdline: &str, control: &str) -> Child {
    start_vmm_with(ns, elf, dir, cmdline, control, "e1000", &[])
}

/// The same with `extra` options.
fn start_vmm_with(
    ns: &Netns,
    elf: &Path,
    dir: &Path,
    cmdline: &str,
    control: &str,
    model: &str,
    extra: &[&str],
) -> Child {
    let jail = dir.join("jail");
    std::fs::create_dir_all(&jail).unwrap();
    ns.exec(&vmm_common::vmm())
        .arg("--sandbox")
        .arg(format!("seccomp,user=65534:65534,jail={}", jail.display()))
        .arg("--kernel")
        .arg(elf)
        .args(["--memory", "256", "--serial"])
        .arg(format!("file:{}", dir.join("serial.log").display()))
        .args([
            "--net",
            &format!("tap={TAP},mac={GUEST_MAC},slot=8,model={model}"),
            "--control-socket",
            control,
            "--cmdline",
            cmdline,
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn oxvirt-vmm")
}

/// The e1000's counters in `query-stats` (the NIC at slot 8).
fn nic_stats(control: &mut Control) -> serde_json::Value {
    let stats = control.execute("query-stats");
    let net = &stats["return"]["devices"]["net"];
    net.as_array()
        .and_then(|a| a.iter().find(|n| n["slot"] == 8))
        .cloned()
        .unwrap_or_else(|| panic!("no NIC at slot 8 in {stats}"))
}

#[test]
fn e1000_exchange_under_oxvirt_vmm() {
    let Some((elf, ns)) = setup("e1k") else {
        return;
    };
    let (dir, serial) = scratch_log("e1000");
    let (mut host, mut host_out) = host_side(&ns, &serial);
    // A path: an abstract name would live in the VMM's network namespace.
    let control = dir.join("ctl.sock").display().to_string();
    let mut vmm = start_vmm(&ns, &elf, &dir, &exchange_cmdline(""), &control);
    wait_for(&serial, "INFO net-serve for", 120);
    let mut c = Control::connect(&control, Duration::from_secs(10));
    let stats = nic_stats(&mut c);
    drop(c);
    let run = finish(&mut vmm, &mut host, &mut host_out, &serial);
    let mut wanted = EXCHANGE.to_vec();
    // The VMM places BAR 1, so the guest checks the I/O window too.
    wanted.push("e1000-08-io");
    run.assert_exchange(&wanted);
    // The frames went through the tap and were counted.
    assert!(stats["tx-packets"].as_u64().unwrap_or(0) >= 9, "{stats}");
    assert!(stats["rx-packets"].as_u64().unwrap_or(0) >= 8, "{stats}");
    assert_eq!(stats["tx-drops"], 0, "{stats}");
    let _ = std::fs::remove_dir_all(dir);
}

/// QEMU 7.2's e1000 on microvm (whose PCIe host routes slot 8's INTA to
/// GSI 16 and whose BARs nobody places but the guest): the guest's
/// driver passes there too, so its checks stand on their own.
#[test]
fn same_guest_mode_passes_under_qemu() {
    let Some((elf, ns)) = setup("e1q") else {
        return;
    };
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into());
    if Command::new(&qemu).arg("--version").output().is_err() {
        ci_common::skip(&format!("cannot run {qemu}; install qemu-system-x86"));
        return;
    }
    let (dir, serial) = scratch_log("e1000-qemu");
    let (mut host, mut host_out) = host_side(&ns, &serial);
    let mut q = ns
        .exec(&qemu)
        .args([
            "-enable-kvm",
            "-M",
            "microvm,acpi=on,pcie=on,rtc=on,isa-serial=on",
        ])
        .args(["-cpu", "host,-arch-capabilities", "-smp", "1", "-m", "256"])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-kernel")
        .arg(&elf)
        .args([
            "-netdev",
            &format!("tap,id=n0,ifname={TAP},script=no,downscript=no"),
            "-device",
            &format!("e1000,netdev=n0,addr=0x8,mac={GUEST_MAC},romfile="),
        ])
        .arg("-append")
        .arg(exchange_cmdline("oxtest.e820=lax oxtest.intxgsi=16"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn QEMU");
    let run = finish(&mut q, &mut host, &mut host_out, &serial);
    run.assert_exchange(EXCHANGE);
    assert!(
        run.log.contains("the I/O window is not checked"),
        "{}",
        run.log
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Broadcast test frames from the host every 10 ms, for the garbage
/// phase's receive rings to get something.
fn flood(ns: &Netns) -> Child {
    let script = format!(
        "import socket,time\n\
         s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
         s.bind(('{BRIDGE}',0))\n\
         mac=s.getsockname()[4]\n\
         end=time.time()+120\n\
         n=0\n\
         while time.time()<end:\n\
         \x20   n+=1\n\
         \x20   s.send(b'\\xff'*6+mac+b'\\x88\\xb5'+(b'OXNET flood %d'%n).ljust(46,b'\\0'))\n\
         \x20   time.sleep(0.01)\n"
    );
    ns.exec("python3")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("flood")
}

#[test]
fn garbage_descriptors_leave_the_vmm_running() {
    let Some((elf, ns)) = setup("e1g") else {
        return;
    };
    let dir = vmm_common::scratch("e1000-garbage");
    let serial = dir.join("serial.log");
    let mut frames = flood(&ns);
    let control = dir.join("ctl.sock").display().to_string();
    let cmdline = format!(
        "oxtest.checks=pci,e1000 oxtest.e1000garbage=1 oxtest.ip={GUEST_IP} \
         oxtest.netsend=1 oxtest.netrecv=3 oxtest.nettime=10000 oxtest.then=halt"
    );
    let mut vmm = start_vmm(&ns, &elf, &dir, &cmdline, &control);
    let log = wait_for(&serial, "DONE", 120);
    let _ = frames.kill();
    let _ = frames.wait();
    let mut c = Control::connect(&control, Duration::from_secs(10));
    assert_eq!(
        c.execute("query-status")["return"]["status"],
        "running",
        "{log}"
    );
    let stats = nic_stats(&mut c);
    let _ = c.execute("quit");
    let status = wait_exit(&mut vmm, 30);
    assert_passes(
        &log,
        &[
            "e1000-08-garbage",
            "e1000-08-intx",
            "e1000-08-tx",
            "e1000-08-rx",
        ],
    );
    assert!(log.contains("garbage taken"), "{log}");
    // Every bad packet and unreachable descriptor counted, nothing else.
    assert!(stats["tx-drops"].as_u64().unwrap_or(0) >= 4, "{stats}");
    assert!(stats["rx-drops"].as_u64().unwrap_or(0) >= 1, "{stats}");
    assert!(stats["rx-packets"].as_u64().unwrap_or(0) >= 3, "{stats}");
    assert_eq!(status, Some(5), "stopped by quit: {log}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Sends `argv[2]` ICMP echo requests to `argv[1]`; fails unless each is
/// answered within 2 s.
const PING: &str = r#"
import os, socket, struct, sys
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    return ~(s + (s >> 16)) & 0xffff
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
ident = os.getpid() & 0xffff
for seq in range(int(sys.argv[2])):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"oxvirt-ping-data"
    body = body[:2] + struct.pack("!H", csum(body)) + body[4:]
    s.sendto(body, (sys.argv[1], 0))
    while True:
        data, _ = s.recvfrom(2048)
        t, _, _, i, q = struct.unpack("!BBHHH", data[20:28])
        if t == 0 and i == ident and q == seq:
            break
"#;

/// A guest answering pings through the e1000 (`net-serve`), saved and
/// restored into a new VMM on the same tap: it answers pings again, the
/// NIC's registers, descriptor rings and EEPROM carried over.
#[test]
fn e1000_answers_pings_after_restore() {
    answers_pings_after_restore("e1s", "e1000", "pci,e1000");
}

/// The same through virtio-net (the test guest's `net-serve` sets it up
/// itself): its queues carry on where they stood.
#[test]
fn virtio_net_answers_pings_after_restore() {
    answers_pings_after_restore("vns", "virtio", "pci");
}

fn answers_pings_after_restore(tag: &str, model: &str, checks: &str) {
    let Some((elf, ns)) = setup(tag) else {
        return;
    };
    let (dir, serial) = scratch_log(&format!("{model}-save"));
    let control = dir.join("ctl.sock").display().to_string();
    let cmdline = format!(
        "oxtest.checks={checks} oxtest.ip={GUEST_IP} oxtest.netsend=0 oxtest.netrecv=0 \
         oxtest.netping=0 oxtest.then=net-serve oxtest.netserve=300"
    );
    // ICMP echo from the namespace (no ping(8) needed): N requests, each
    // answered within 2 s.
    let ping = |n: &str| {
        ns.exec("python3")
            .args(["-c", PING, GUEST_IP, n])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut vmm = start_vmm_with(&ns, &elf, &dir, &cmdline, &control, model, &[]);
    let log = wait_for(&serial, "INFO net-serve for", 120);
    assert!(log.contains("INFO net-serve for"), "{log}");
    assert!(ping("3"), "no echo replies before the save:\n{log}");
    let image = dir.join("state.img");
    let file = std::fs::File::create(&image).unwrap();
    let mut c = Control::connect(&control, Duration::from_secs(10));
    let reply = c.execute_with_fd("save", serde_json::json!({ "resume": false }), file);
    assert!(reply.get("return").is_some(), "{reply}");
    drop(c);
    let _ = vmm.kill();
    let _ = vmm.wait();
    let _ = std::fs::remove_file(&control);

    let mut restored = start_vmm_with(
        &ns,
        &elf,
        &dir,
        &cmdline,
        &control,
        model,
        &["--restore", &image.display().to_string()],
    );
    assert!(
        ping("5"),
        "no echo replies after the restore:\n{}",
        std::fs::read_to_string(&serial).unwrap_or_default()
    );
    let _ = restored.kill();
    let _ = restored.wait();
    let _ = std::fs::remove_dir_all(dir);
}
