//! Every kind of device the test guest drives on each tick carries on after
//! a save and a restore into a new VMM process: the console (each tick's
//! line arrives once, none lost or repeated, and input still reaches the
//! guest), vsock (a connection per tick; the restored guest is told of the
//! transport reset and connects again), the NIC (UDP echo; its link set
//! down and up, and kept down across the restore), the balloon (its size
//! kept, and a new target followed) besides the rng and the disk.

mod vmm_common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmm_common::wire::{self, GUEST_IP};
use vmm_common::{Control, Guest, kvm_available, scratch, testos, ticks};

const VSOCK_PORT: u32 = 1234;

fn cmdline() -> String {
    format!(
        "oxtest.pci=1 oxtest.then=ticker oxtest.tickmem=16 oxtest.tickdev=1 \
         oxtest.ip={} oxtest.vsockport={VSOCK_PORT} oxtest.timeout=2000",
        GUEST_IP.map(|b| b.to_string()).join(".")
    )
}

/// The host's side of one VMM's devices.
struct Host {
    /// Our end of the NIC's `stream` socket.
    wire: UnixStream,
    /// The VMM's end, inherited by it and closed here once it runs.
    vmm_wire: Option<OwnedFd>,
    console_path: PathBuf,
    vsock_path: PathBuf,
    /// vsock connections that echoed.
    vsock_echoes: Arc<AtomicUsize>,
}

impl Host {
    fn new(dir: &Path, tag: &str) -> Host {
        let (wire, theirs) = UnixStream::pair().unwrap();
        let theirs = OwnedFd::from(theirs);
        // SAFETY: clears FD_CLOEXEC on a descriptor we own, so that the
        // VMM inherits it.
        assert_eq!(
            unsafe { libc::fcntl(theirs.as_raw_fd(), libc::F_SETFD, 0) },
            0
        );
        wire.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let vsock_path = dir.join(format!("vsock-{tag}.sock"));
        let port_path = format!("{}_{VSOCK_PORT}", vsock_path.display());
        let listener = UnixListener::bind(&port_path).unwrap();
        // The VMM runs as an unprivileged user.
        std::fs::set_permissions(
            &port_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let vsock_echoes = Arc::new(AtomicUsize::new(0));
        let count = vsock_echoes.clone();
        // One thread per connection: a connection the guest gave up on (a
        // request in flight at the save, answered by the new VMM) never
        // sends anything and must not hold up the next.
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                let count = count.clone();
                std::thread::spawn(move || {
                    let mut b = [0u8; 256];
                    if let Ok(n) = s.read(&mut b)
                        && n > 0
                        && s.write_all(&b[..n]).is_ok()
                    {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Host {
            wire,
            vmm_wire: Some(theirs),
            console_path: dir.join(format!("console-{tag}.sock")),
            vsock_path,
            vsock_echoes,
        }
    }

    fn vmm_args(&self, disk: &Path) -> Vec<String> {
        let wire = self.vmm_wire.as_ref().unwrap().as_raw_fd();
        vec![
            "--disk".into(),
            format!("path={},slot=3", disk.display()),
            "--rng".into(),
            "slot=4".into(),
            "--console".into(),
            format!("unix:{},slot=6", self.console_path.display()),
            "--balloon".into(),
            "slot=7".into(),
            "--net".into(),
            format!("stream={wire},mac=52:54:00:6f:78:08,slot=8"),
            "--vsock".into(),
            format!("cid=3,path={},slot=9", self.vsock_path.display()),
        ]
    }

    /// Sends a UDP datagram to the guest's echo port until its echo comes
    /// back (or 15 s pass).
    fn udp_echo(&mut self, payload: &[u8]) -> bool {
        self.udp_echo_within(payload, Duration::from_secs(15))
    }

    fn udp_echo_within(&mut self, payload: &[u8], time: Duration) -> bool {
        wire::udp_echo(&mut self.wire, payload, time)
    }
}

/// A client of the VMM's console socket: what it receives is collected.
struct ConsoleClient {
    stream: UnixStream,
    got: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ConsoleClient {
    fn connect(path: &Path) -> ConsoleClient {
        let end = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() > end => panic!("console {}: {e}", path.display()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let got = Arc::new(Mutex::new(Vec::new()));
        let (mut r, into) = (stream.try_clone().unwrap(), got.clone());
        let reader = std::thread::spawn(move || {
            let mut b = [0u8; 4096];
            while let Ok(n) = r.read(&mut b) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&b[..n]);
            }
        });
        ConsoleClient {
            stream,
            got,
            reader: Some(reader),
        }
    }

    /// Everything received until the VMM closed the console.
    fn finish(mut self) -> String {
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        String::from_utf8_lossy(&self.got.lock().unwrap()).into_owned()
    }
}

/// The numbers of the guest's `CON n` console lines, in order.
fn console_ticks(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.strip_prefix("CON ")?.trim().parse().ok())
        .collect()
}

fn balloon_actual(c: &mut Control) -> u64 {
    let st = c.execute("query-stats");
    st["return"]["balloon"]["actual-pages"]
        .as_u64()
        .unwrap_or_else(|| panic!("no balloon in {st}"))
}

/// Sets the balloon's target and waits until the guest reports it and the
/// VMM's statistics show it.
fn balloon_to(g: &mut Guest, c: &mut Control, pages: u64) {
    let r = c.execute_args("balloon-set", serde_json::json!({ "num-pages": pages }));
    assert!(r.get("return").is_some(), "{r}");
    let line = format!("INFO balloon actual {pages} at tick");
    assert!(
        g.wait_log(Duration::from_secs(30), |l| l.contains(&line)),
        "the guest did not follow the balloon to {pages}:\n{}",
        g.log()
    );
    let end = Instant::now() + Duration::from_secs(10);
    while balloon_actual(c) != pages && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(balloon_actual(c), pages);
}

/// Starts a VMM paused with `host`'s devices (and `extra`), connects the
/// console, then lets the guest run: no console output can go unread.
fn start(
    tag: &str,
    host: &mut Host,
    disk: &Path,
    extra: &[&str],
) -> (Guest, Control, ConsoleClient) {
    let elf = testos().expect("test guest");
    let control = format!("@oxvirt-vmm-savedev-{}-{tag}", std::process::id());
    let mut args = host.vmm_args(disk);
    args.extend(["--control-socket".into(), control, "--paused".into()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let g = Guest::start(&elf, 1, 256, &cmdline(), &args);
    host.vmm_wire = None;
    let mut c = g.connect();
    let console = ConsoleClient::connect(&host.console_path);
    assert_eq!(c.execute("cont")["return"], serde_json::json!({}));
    (g, c, console)
}

fn say(console: &mut ConsoleClient, g: &mut Guest, what: &str) {
    console
        .stream
        .write_all(format!("{what}\n").as_bytes())
        .unwrap();
    let line = format!("INFO console rx \"{what}\"");
    assert!(
        g.wait_log(Duration::from_secs(20), |l| l.contains(&line)),
        "console input {what} did not reach the guest:\n{}",
        g.log()
    );
}

/// Sets the NIC's link and waits for the guest to see it.
fn link(g: &mut Guest, c: &mut Control, up: bool, nth: usize) {
    let r = c.execute_args("set-link", serde_json::json!({ "slot": 8, "up": up }));
    assert!(r.get("return").is_some(), "{r}");
    let line = format!("INFO net link {}", if up { "up" } else { "down" });
    assert!(
        g.wait_log(Duration::from_secs(20), |l| l.matches(&line).count() >= nth),
        "the guest did not see the link {}:\n{}",
        if up { "up" } else { "down" },
        g.log()
    );
}

fn failures(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.starts_with("FAIL")).collect()
}

#[test]
fn every_device_carries_on_after_restore() {
    if !kvm_available() || testos().is_none() {
        return;
    }
    let dir = scratch("save-devices");
    let disk = dir.join("disk.img");
    let bytes: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&disk, bytes).unwrap();

    // Before: every device in use, the balloon at 8 pages.
    let mut ha = Host::new(&dir, "a");
    let (mut a, mut ca, mut con_a) = start("a", &mut ha, &disk, &[]);
    assert!(
        a.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 5),
        "no ticks:\n{}",
        a.log()
    );
    let log = a.log();
    assert!(log.contains("PASS tickdev"), "{log}");
    assert!(
        log.contains("INFO tickdev rng blk console vsock net balloon"),
        "{log}"
    );
    balloon_to(&mut a, &mut ca, 8);
    assert!(ha.udp_echo(b"before save"), "no UDP echo:\n{}", a.log());
    // The link down: nothing comes back; up again: echoes again.
    link(&mut a, &mut ca, false, 1);
    assert!(
        !ha.udp_echo_within(b"link down", Duration::from_secs(2)),
        "an echo through a link that is down"
    );
    link(&mut a, &mut ca, true, 1);
    assert!(ha.udp_echo(b"link up"), "no UDP echo:\n{}", a.log());
    // Saved with the link down: it stays down in the new VMM.
    link(&mut a, &mut ca, false, 2);
    say(&mut con_a, &mut a, "HELLO-A");
    assert!(ha.vsock_echoes.load(Ordering::SeqCst) > 0, "{}", a.log());

    let image = dir.join("state.img");
    let file = std::fs::File::create(&image).unwrap();
    let reply = ca.execute_with_fd("save", serde_json::json!({ "resume": false }), file);
    assert_eq!(reply["return"]["paused"], true, "{reply}");
    let before = a.log();
    let last = *ticks(&before).last().unwrap();
    drop(ca);
    drop(a);
    let out_a = con_a.finish();

    // After: the same devices on new host ends, in a new VMM.
    let mut hb = Host::new(&dir, "b");
    let image_arg = image.display().to_string();
    let (mut b, mut cb, mut con_b) = start("b", &mut hb, &disk, &["--restore", &image_arg]);
    assert!(
        b.wait_log(Duration::from_secs(60), |l| ticks(l).len() >= 10),
        "the restored guest does not tick:\n{}\n{}",
        b.log(),
        b.stderr()
    );
    assert_eq!(ticks(&b.log()).first(), Some(&(last + 1)), "{}", b.log());
    assert_eq!(balloon_actual(&mut cb), 8, "the balloon's size was lost");
    balloon_to(&mut b, &mut cb, 16);
    assert!(
        !hb.udp_echo_within(b"still down", Duration::from_secs(2)),
        "the link came back up by itself"
    );
    link(&mut b, &mut cb, true, 1);
    assert!(hb.udp_echo(b"after restore"), "no UDP echo:\n{}", b.log());
    say(&mut con_b, &mut b, "HELLO-B");
    assert!(hb.vsock_echoes.load(Ordering::SeqCst) > 0, "{}", b.log());
    let after = b.log();
    assert!(failures(&before).is_empty(), "{before}");
    assert!(failures(&after).is_empty(), "{after}");
    assert!(cb.execute("quit").get("return").is_some());
    drop(cb);
    let _ = b.wait(Duration::from_secs(10));
    let out_b = con_b.finish();

    // Each tick's console line arrived exactly once, across the restore.
    let lines: Vec<u64> = console_ticks(&out_a)
        .into_iter()
        .chain(console_ticks(&out_b))
        .collect();
    assert_eq!(lines.first(), Some(&1), "{out_a}");
    let expected: Vec<u64> = (1..=lines.len() as u64).collect();
    assert_eq!(lines, expected, "before:\n{out_a}\nafter:\n{out_b}");
    assert!(*lines.last().unwrap() > last + 5);
    eprintln!(
        "console lines 1..={} (saved after tick {last}); vsock echoes {} before, {} after; {}",
        lines.len(),
        ha.vsock_echoes.load(Ordering::SeqCst),
        hb.vsock_echoes.load(Ordering::SeqCst),
        after
            .lines()
            .filter(|l| l.contains("transport reset") || l.contains("balloon actual"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
