//! virtio-pci devices of oxvirt-vmm, checked by the test guest (testos):
//! disks (raw, qcow2 over a backing file, read-only), rng, console echo,
//! balloon statistics and inflation, vsock echo through a unix socket,
//! and virtio-net on a tap inside a private network namespace.

mod vmm_common;

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vmm_common::{Guest, kvm_available, testos};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pattern() -> PathBuf {
    repo().join("compat-tests/guest/make-pattern-disk.py")
}

/// Writes a raw pattern disk `d.raw` in `dir`; returns its `--disk`
/// argument at slot 3.
fn pattern_disk_at_slot3(dir: &std::path::Path) -> String {
    let raw = dir.join("d.raw");
    assert!(run_ok(
        Command::new("python3")
            .arg(pattern())
            .arg("write")
            .arg(&raw)
            .arg(SECTORS.to_string())
    ));
    format!("path={},slot=3", raw.display())
}

fn run_ok(cmd: &mut Command) -> bool {
    matches!(cmd.status(), Ok(s) if s.success())
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

const SECTORS: u64 = 16384;

/// Builds disk.raw, ro.raw, base.raw + top.qcow2 (pattern partly in the
/// backing file) and expect.raw, as the QEMU suite does.
fn make_disks(dir: &Path) -> bool {
    let p = pattern();
    let mid = SECTORS / 2;
    let d = |n: &str| dir.join(n);
    let py = |args: &[&str]| run_ok(Command::new("python3").arg(&p).args(args));
    let ok = py(&[
        "write",
        d("disk.raw").to_str().unwrap(),
        &SECTORS.to_string(),
    ]) && std::fs::copy(d("disk.raw"), d("ro.raw")).is_ok()
        && py(&[
            "write",
            d("base.raw").to_str().unwrap(),
            &SECTORS.to_string(),
            "--garbage",
            "4:2",
            "--garbage",
            &format!("{}:4", mid + 4),
        ])
        && run_ok(Command::new("qemu-img").args([
            "create",
            "-q",
            "-f",
            "qcow2",
            "-o",
            "cluster_size=512",
            "-b",
            d("base.raw").to_str().unwrap(),
            "-F",
            "raw",
            d("top.qcow2").to_str().unwrap(),
        ]));
    if !ok {
        return false;
    }
    for (name, first, count) in [("s1.bin", 4, 2), ("s2.bin", mid + 4, 4)] {
        let out = Command::new("python3")
            .arg(&p)
            .args(["sectors", &first.to_string(), &count.to_string()])
            .output();
        match out {
            Ok(o) if o.status.success() => std::fs::write(d(name), o.stdout).unwrap(),
            _ => return false,
        }
    }
    run_ok(Command::new("qemu-io").args([
        "-f",
        "qcow2",
        "-c",
        &format!("write -s {} {} 1024", d("s1.bin").display(), 4 * 512),
        "-c",
        &format!(
            "write -s {} {} 2048",
            d("s2.bin").display(),
            (mid + 4) * 512
        ),
        d("top.qcow2").to_str().unwrap(),
    ])) && py(&[
        "write",
        d("expect.raw").to_str().unwrap(),
        &SECTORS.to_string(),
        "--written",
        "64:8",
        "--zero",
        "128:8",
    ])
}

/// The guest's DONE line is complete (the serial log is read while the
/// guest writes it).
fn done(log: &str) -> bool {
    log.split("DONE").nth(1).is_some_and(|r| r.contains('\n'))
}

fn ready() -> Option<PathBuf> {
    if !kvm_available() {
        return None;
    }
    testos()
}

fn assert_passes(log: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(
            log.lines().any(|l| l.starts_with(&format!("PASS {w}"))),
            "no PASS {w}:\n{log}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with("DONE") && l.ends_with("failed=0")),
        "{log}"
    );
}

#[test]
fn disks_rng_and_stats() {
    let Some(elf) = ready() else { return };
    if !have("qemu-img") || !have("qemu-io") {
        eprintln!("SKIP: qemu-img/qemu-io missing");
        return;
    }
    let dir = vmm_common::scratch("blk");
    assert!(make_disks(&dir), "building disk images failed");
    let base_before = std::fs::read(dir.join("base.raw")).unwrap();
    let disk = |n: &str, extra: &str| format!("path={}{extra}", dir.join(n).display());
    let ctl = format!("@oxvirt-virtio-blk-{}", std::process::id());
    let args = [
        "--disk".to_string(),
        disk("disk.raw", ",serial=OXDISK3,slot=3"),
        "--disk".to_string(),
        disk("top.qcow2", ",format=qcow2,serial=OXQCOW4,slot=4"),
        "--disk".to_string(),
        disk("ro.raw", ",ro=on,serial=OXRO5,slot=5"),
        "--rng".to_string(),
        "slot=6".to_string(),
        "--control-socket".to_string(),
        ctl,
    ];
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut g = Guest::start(
        &elf,
        1,
        256,
        "oxtest.checks=pci,blk,rng oxtest.devs=03:blk,04:blk,05:blk:ro,06:rng \
         oxtest.blkwrite=64 oxtest.blkzero=128 oxtest.then=halt",
        &argv,
    );
    assert!(g.wait_log(Duration::from_secs(60), done));
    let log = g.log();
    assert_passes(
        &log,
        &[
            "pci-03-blk",
            "pci-04-blk",
            "pci-05-blk",
            "pci-06-rng",
            "blk-03-id",
            "blk-03-read",
            "blk-03-write",
            "blk-03-zeroes",
            "blk-04-read",
            "blk-04-write",
            "blk-04-zeroes",
            "blk-05-ro",
            "rng-06",
        ],
    );
    assert!(log.contains("serial \"OXDISK3\""), "{log}");
    let mut c = g.connect();
    let stats = c.raw(r#"{"id":1,"execute":"query-stats"}"#, 1);
    let blk = &stats["return"]["devices"]["block"];
    assert_eq!(blk[0]["slot"], 3, "{stats}");
    assert!(blk[0]["reads"].as_u64().unwrap() >= 3, "{stats}");
    assert!(blk[0]["writes"].as_u64().unwrap() >= 1, "{stats}");
    assert!(blk[0]["flushes"].as_u64().unwrap() >= 1, "{stats}");
    assert!(blk[2]["errors"].as_u64().unwrap() >= 1, "{stats}");
    // Time spent serving them.
    assert!(blk[0]["read-time-ns"].as_u64().unwrap() > 0, "{stats}");
    assert!(blk[0]["write-time-ns"].as_u64().unwrap() > 0, "{stats}");
    assert!(blk[0]["flush-time-ns"].as_u64().is_some(), "{stats}");
    c.raw(r#"{"id":2,"execute":"quit"}"#, 2);
    assert!(g.wait(Duration::from_secs(10)).is_some());

    let p = pattern();
    let verify = |f: &str, extra: &[&str]| {
        run_ok(
            Command::new("python3")
                .arg(&p)
                .arg("verify")
                .arg(dir.join(f))
                .args(extra),
        )
    };
    assert!(verify(
        "disk.raw",
        &["--written", "64:8", "--zero", "128:8"]
    ));
    assert!(verify("ro.raw", &[]));
    assert!(run_ok(
        Command::new("qemu-img")
            .args(["check", "-q"])
            .arg(dir.join("top.qcow2"))
    ));
    assert!(run_ok(
        Command::new("qemu-img")
            .args(["compare", "-q", "-f", "qcow2", "-F", "raw"])
            .arg(dir.join("top.qcow2"))
            .arg(dir.join("expect.raw"))
    ));
    assert_eq!(std::fs::read(dir.join("base.raw")).unwrap(), base_before);
    let _ = std::fs::remove_dir_all(dir);
}

fn echo_server(listener: UnixListener) {
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 4096];
                while let Ok(n) = s.read(&mut b) {
                    if n == 0 || s.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

#[test]
fn console_echo_and_balloon() {
    let Some(elf) = ready() else { return };
    let dir = vmm_common::scratch("conbal");
    let sock = dir.join("console.sock");
    let ctl = format!("@oxvirt-virtio-cb-{}", std::process::id());
    let con = format!("unix:{},slot=6", sock.display());
    let mut g = Guest::start(
        &elf,
        1,
        256,
        "oxtest.checks=pci,console,balloon oxtest.devs=06:console,07:balloon \
         oxtest.console=echo oxtest.balloonpages=16 oxtest.then=halt",
        &[
            "--console",
            &con,
            "--balloon",
            "period=1,slot=7",
            "--control-socket",
            &ctl,
        ],
    );
    // The console client: echoes what the guest sends.
    let mut s = None;
    for _ in 0..250 {
        if let Ok(c) = UnixStream::connect(&sock) {
            s = Some(c);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = s.expect("console socket");
    std::thread::spawn(move || {
        let mut b = [0u8; 256];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 || s.write_all(&b[..n]).is_err() {
                break;
            }
        }
    });
    let mut c = g.connect();
    c.raw(
        r#"{"id":1,"execute":"balloon-set","arguments":{"num-pages":16}}"#,
        1,
    );
    assert!(g.wait_log(Duration::from_secs(60), done));
    let log = g.log();
    assert_passes(
        &log,
        &[
            "pci-06-console",
            "pci-07-balloon",
            "console-06-tx",
            "console-06-echo",
            "balloon-07-stats",
            "balloon-07-inflate",
        ],
    );
    let st = c.raw(r#"{"id":2,"execute":"query-stats"}"#, 2);
    let b = &st["return"]["balloon"];
    assert_eq!(b["actual-pages"], 16, "{st}");
    // The guest's new `actual` was announced.
    let ev = c
        .wait_event("balloon-change")
        .expect("balloon-change event");
    assert_eq!(ev["actual-pages"], 16, "{ev}");
    assert!(b["stats"]["total-memory"].as_u64().unwrap() > 0, "{st}");
    c.raw(r#"{"id":3,"execute":"quit"}"#, 3);
    assert!(g.wait(Duration::from_secs(10)).is_some());
    // A confined VMM leaves its socket files to whoever started it (the
    // daemon's tests check that it removes them).
    assert!(sock.exists(), "a confined VMM cannot unlink its socket");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn vsock_echo_through_unix_socket() {
    let Some(elf) = ready() else { return };
    let dir = vmm_common::scratch("vsock");
    let uds = dir.join("vsock.sock");
    let port_path = format!("{}_1234", uds.display());
    let l = UnixListener::bind(&port_path).unwrap();
    // The VMM runs as an unprivileged user: a host service it connects
    // to must let that user in.
    std::fs::set_permissions(
        &port_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    echo_server(l);
    let vs = format!("cid=3,path={},slot=9", uds.display());
    let mut g = Guest::start(
        &elf,
        1,
        256,
        "oxtest.checks=pci,vsock oxtest.devs=09:vsock oxtest.vsockport=1234 oxtest.then=poweroff",
        &["--vsock", &vs],
    );
    let st = g.wait(Duration::from_secs(60));
    let log = g.log();
    assert_passes(&log, &["pci-09-vsock", "vsock-09-echo"]);
    assert!(log.contains("guest cid 3"), "{log}");
    assert_eq!(st.and_then(|s| s.code()), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

/// Deletes the namespace however the test ends.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn net_on_a_tap_in_a_namespace() {
    net_in_a_namespace(1);
}

/// Two queue pairs on a multi-queue tap: the guest enables both through
/// the control queue (and sees bad commands refused); UDP flows from the
/// host land on both tap queues by their hash and are echoed on the pair
/// they came in on; the guest's test frames go out on both pairs.
#[test]
fn net_two_queue_pairs_on_a_multi_queue_tap() {
    net_in_a_namespace(2);
}

fn net_in_a_namespace(queues: u16) {
    let Some(elf) = ready() else { return };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root for a network namespace");
        return;
    }
    let name = format!("oxvt{}q{queues}", std::process::id());
    if !run_ok(Command::new("ip").args(["netns", "add", &name])) {
        eprintln!("SKIP: cannot create a network namespace");
        return;
    }
    let _ns = Netns(name.clone());
    let ipn = |args: &[&str]| run_ok(Command::new("ip").arg("-n").arg(&name).args(args));
    assert!(ipn(&["link", "set", "lo", "up"]));
    let mq = queues > 1;
    let mut add = vec!["tuntap", "add", "dev", "oxtap0", "mode", "tap"];
    if mq {
        add.push("multi_queue");
    }
    assert!(ipn(&add));
    assert!(ipn(&["link", "set", "oxtap0", "up"]));
    assert!(ipn(&["addr", "add", "10.0.2.2/24", "dev", "oxtap0"]));
    let dir = vmm_common::scratch("net");
    let serial = dir.join("serial.log");
    std::fs::write(&serial, "").unwrap();
    let mut host = Command::new("ip")
        .args(["netns", "exec", &name, "python3"])
        .arg(repo().join("compat-tests/guest/testos/net-host.py"))
        .arg(&serial)
        .args(["oxtap0", "10.0.2.15", "4"])
        .arg(if mq { "8" } else { "4" })
        .arg(if mq { "32" } else { "0" })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("net-host.py");
    // Start the guest only once the host side listens on the tap.
    let mut host_out = std::io::BufReader::new(host.stdout.take().expect("net-host.py stdout"));
    let mut first = String::new();
    let _ = std::io::BufRead::read_line(&mut host_out, &mut first);
    assert_eq!(first.trim(), "listening", "net-host.py did not start");
    let mut vmm = Command::new("ip")
        .args(["netns", "exec", &name, &vmm_common::vmm()])
        .arg("--kernel")
        .arg(&elf)
        .args(["--memory", "256", "--serial"])
        .arg(format!("file:{}", serial.display()))
        .args([
            "--net",
            &format!("tap=oxtap0,mac=52:54:00:6f:78:08,slot=8,queues={queues}"),
            "--cmdline",
        ])
        .arg(format!(
            "oxtest.checks=pci,net oxtest.devs=08:net oxtest.ip=10.0.2.15 oxtest.netsend=4 \
             oxtest.netrecv=4 oxtest.netping=3 oxtest.netudp={} oxtest.nettime=15000 \
             oxtest.then=net-serve oxtest.netserve=3",
            if mq { 32 } else { 0 }
        ))
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("spawn oxvirt-vmm");
    let mut status = None;
    for _ in 0..1200 {
        if let Ok(Some(st)) = vmm.try_wait() {
            status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if status.is_none() {
        let _ = vmm.kill();
        let _ = vmm.wait();
    }
    let _ = host.kill();
    let mut host_log = String::new();
    let _ = host_out.read_to_string(&mut host_log);
    let _ = host.wait();
    let log = std::fs::read_to_string(&serial).unwrap_or_default();
    assert_passes(
        &log,
        &["pci-08-net", "net-08-tx", "net-08-rx", "net-08-ping"],
    );
    for l in log
        .lines()
        .filter(|l| l.contains("queue pair") || l.contains("pairs"))
    {
        eprintln!("{l}");
    }
    if mq {
        assert_passes(&log, &["net-08-mq", "net-08-udp", "net-08-pair1"]);
        assert!(log.contains("max_virtqueue_pairs 2, 2 in use"), "{log}");
        assert!(host_log.contains("udp echo 32 of 32"), "{host_log}\n{log}");
        assert!(host_log.contains("OXNET q1 tx 4"), "{host_log}\n{log}");
    } else {
        assert!(!log.contains("net-08-mq"), "{log}");
    }
    assert!(log.contains("INFO net-serve done"), "{log}");
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{log}");
    assert!(
        host_log.contains(if mq {
            "received 8 test frames"
        } else {
            "received 4 test frames"
        }),
        "{host_log}\n{log}"
    );
    assert!(host_log.matches("echo reply").count() >= 5, "{host_log}");
    // The tap lived only in the namespace.
    assert!(!run_ok(
        Command::new("ip")
            .args(["link", "show", "oxtap0"])
            .stderr(std::process::Stdio::null())
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn requests_survive_pause_and_resume() {
    let Some(elf) = ready() else { return };
    let dir = vmm_common::scratch("pause");
    let disk = pattern_disk_at_slot3(&dir);
    let ctl = format!("@oxvirt-virtio-pause-{}", std::process::id());
    let mut g = Guest::start(
        &elf,
        1,
        256,
        "oxtest.checks=pci,blk,rng oxtest.devs=03:blk,04:rng oxtest.then=halt",
        &["--disk", &disk, "--rng", "slot=4", "--control-socket", &ctl],
    );
    let mut c = g.connect();
    // Pause and resume repeatedly while the guest works through its
    // requests; every one of them must complete.
    let mut id = 1;
    while !done(&g.log()) && id < 400 {
        c.raw(&format!(r#"{{"id":{id},"execute":"pause"}}"#), id);
        std::thread::sleep(Duration::from_millis(5));
        c.raw(
            &format!(r#"{{"id":{},"execute":"resume"}}"#, id + 1),
            id + 1,
        );
        id += 2;
        std::thread::sleep(Duration::from_millis(15));
    }
    assert!(g.wait_log(Duration::from_secs(60), done));
    assert_passes(&g.log(), &["blk-03-read", "blk-03-write", "rng-04"]);
    assert!(id > 3, "the guest finished before any pause");
    c.raw(&format!(r#"{{"id":{id},"execute":"quit"}}"#), id);
    g.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
}

/// Boots the test guest on one raw pattern disk at slot 3 with `cmdline`
/// and returns its serial log once DONE is complete.
fn one_disk_guest(tag: &str, cmdline: &str) -> Option<String> {
    let elf = ready()?;
    let dir = vmm_common::scratch(tag);
    let disk = pattern_disk_at_slot3(&dir);
    let mut g = Guest::start(&elf, 1, 256, cmdline, &["--disk", &disk]);
    assert!(g.wait_log(Duration::from_secs(60), done), "{}", g.log());
    let log = g.log();
    let _ = g.child.kill();
    g.wait(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
    Some(log)
}

#[test]
fn blk_completions_by_msix_with_event_idx_and_indirect_descriptors() {
    let Some(log) = one_disk_guest(
        "msix",
        "oxtest.checks=pci,blk oxtest.devs=03:blk oxtest.irq=msix oxtest.eventidx=1 \
         oxtest.indirect=1 oxtest.then=halt",
    ) else {
        return;
    };
    assert_passes(
        &log,
        &["blk-03-id", "blk-03-read", "blk-03-write", "blk-03-msix"],
    );
    assert!(
        log.contains("INFO blk-03 ring features: event-idx indirect"),
        "{log}"
    );
    assert!(
        log.contains("8 of 8 completions announced by msix"),
        "{log}"
    );
}

#[test]
fn blk_completions_by_level_intx() {
    let Some(log) = one_disk_guest(
        "intx",
        "oxtest.checks=pci,blk oxtest.devs=03:blk oxtest.irq=intx oxtest.then=halt",
    ) else {
        return;
    };
    assert_passes(
        &log,
        &[
            "blk-03-read",
            "blk-03-write",
            "blk-03-intx",
            "blk-03-intx-level",
        ],
    );
}

#[test]
fn throughput_mode_completes_every_request() {
    // The benchmark's guest side (compat-tests/bench/io.sh), briefly:
    // every request completes with status 0; no figures are judged here.
    let Some(log) = one_disk_guest(
        "bench",
        "oxtest.checks=pci,blkbench oxtest.devs=03:blk oxtest.blkspan=4 \
         oxtest.blkbench=read:64k:1:50,read:4k:32:50,write:64k:32:50,write:4k:1:50 \
         oxtest.then=halt",
    ) else {
        return;
    };
    assert_passes(&log, &["blkbench-03"]);
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("BENCH")).collect();
    assert_eq!(lines.len(), 4, "{log}");
    assert!(lines.iter().all(|l| l.ends_with("errors=0")), "{log}");
}
