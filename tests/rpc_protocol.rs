//! Wire-level tests of oxvirtd's libvirt RPC socket with raw frames: the
//! handshake, keepalive, pipelined calls, error payloads, the read-only
//! socket, and bad input (garbage, truncated and oversized frames,
//! unknown programs) that must close only the offending connection.

mod ci_common;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon under test; `OXVIRTD` overrides cargo's path (useful when
/// several worktrees share one target directory).
fn oxvirtd() -> String {
    std::env::var("OXVIRTD").unwrap_or_else(|_| env!("CARGO_BIN_EXE_oxvirtd").to_string())
}
const REMOTE: u32 = 0x2000_8086;
const KEEPALIVE: u32 = 0x6b65_6570;

struct Env {
    root: PathBuf,
    /// Dropped after the daemon is stopped.
    _bus: ci_common::PrivateBus,
    daemon: Option<Child>,
}

impl Env {
    fn start(tag: &str) -> Env {
        Env::start_with(tag, |_| {})
    }

    /// Starts the daemon after `prepare` ran on the fresh state dir.
    fn start_with(tag: &str, prepare: impl FnOnce(&Path)) -> Env {
        let root = std::env::temp_dir().join(format!("oxvirt-rpc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        prepare(&root);
        let bus = ci_common::PrivateBus::start().expect("dbus-daemon must be installed");
        let addr = bus.address.clone();
        let mut env = Env {
            root,
            _bus: bus,
            daemon: None,
        };
        env.daemon = Some(env.spawn_daemon(&addr));
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(env.sock()).is_err() {
            assert!(Instant::now() < deadline, "oxvirtd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        env
    }

    fn spawn_daemon(&self, addr: &str) -> Child {
        Command::new(oxvirtd())
            .arg("--bus-address")
            .arg(addr)
            .arg("--config-dir")
            .arg(self.root.join("config"))
            .arg("--run-dir")
            .arg(self.root.join("run"))
            .arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--rpc-socket")
            .arg(self.sock())
            .arg("--rpc-socket-ro")
            .arg(self.sock_ro())
            // A test's own settings, when it wrote some.
            .args(
                Some(self.root.join("oxvirtd.conf"))
                    .filter(|c| c.exists())
                    .map(|c| vec!["--config".into(), c.into_os_string()])
                    .unwrap_or_default(),
            )
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    fn sock(&self) -> PathBuf {
        self.root.join("sock")
    }

    fn sock_ro(&self) -> PathBuf {
        self.root.join("sock-ro")
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(d) = &mut self.daemon {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn frame(prog: u32, proc_: i32, mtype: u32, serial: u32, status: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((28 + payload.len()) as u32).to_be_bytes());
    for w in [prog, 1, proc_ as u32, mtype, serial, status] {
        m.extend_from_slice(&w.to_be_bytes());
    }
    m.extend_from_slice(payload);
    m
}

#[derive(Debug)]
struct Msg {
    prog: u32,
    proc_: i32,
    mtype: u32,
    serial: u32,
    status: u32,
    payload: Vec<u8>,
}

fn read_msg(s: &mut UnixStream) -> Option<Msg> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let len = u32::from_be_bytes(len) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).ok()?;
    let w = |i: usize| u32::from_be_bytes([body[i], body[i + 1], body[i + 2], body[i + 3]]);
    Some(Msg {
        prog: w(0),
        proc_: w(8) as i32,
        mtype: w(12),
        serial: w(16),
        status: w(20),
        payload: body[24..].to_vec(),
    })
}

fn be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

fn xdr_string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v.resize(v.len().div_ceil(4) * 4, 0);
    v
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// AUTH_LIST + CONNECT_OPEN("qemu:///system").
fn open(s: &mut UnixStream) {
    s.write_all(&frame(REMOTE, 66, 0, 0, 0, &[])).unwrap();
    let m = read_msg(s).unwrap();
    assert_eq!((m.proc_, m.mtype, m.status), (66, 1, 0));
    assert_eq!(m.payload, be(&[1, 0]));
    let mut args = be(&[1]);
    args.extend(xdr_string("qemu:///system"));
    args.extend(be(&[0]));
    s.write_all(&frame(REMOTE, 1, 0, 1, 0, &args)).unwrap();
    let m = read_msg(s).unwrap();
    assert_eq!((m.proc_, m.serial, m.status), (1, 1, 0), "{m:?}");
}

/// CONNECT_GET_TYPE → "QEMU".
fn get_type_works(s: &mut UnixStream, serial: u32) {
    s.write_all(&frame(REMOTE, 3, 0, serial, 0, &[])).unwrap();
    let m = read_msg(s).unwrap();
    assert_eq!((m.proc_, m.serial, m.status), (3, serial, 0));
    assert_eq!(m.payload, xdr_string("QEMU"));
}

fn closed_by_server(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            // Unread input makes the close a reset.
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn handshake_keepalive_pipelining_and_errors() {
    let env = Env::start("basic");
    let mut s = connect(&env.sock());
    open(&mut s);

    // Keepalive PING is answered with PONG.
    s.write_all(&frame(KEEPALIVE, 1, 2, 0, 0, &[])).unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.prog, m.proc_, m.mtype), (KEEPALIVE, 2, 2));

    // Three pipelined calls, each answered once with its serial.
    let mut batch = frame(REMOTE, 3, 0, 10, 0, &[]);
    batch.extend(frame(REMOTE, 59, 0, 11, 0, &[]));
    batch.extend(frame(REMOTE, 60, 0, 12, 0, &be(&[10])));
    s.write_all(&batch).unwrap();
    let mut serials: Vec<u32> = (0..3).map(|_| read_msg(&mut s).unwrap().serial).collect();
    serials.sort();
    assert_eq!(serials, [10, 11, 12]);

    // A missing domain: REPLY, status ERROR, code 42, domain 10, message.
    s.write_all(&frame(REMOTE, 23, 0, 13, 0, &xdr_string("nosuch")))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.mtype, m.serial, m.status), (1, 13, 1));
    assert_eq!(&m.payload[..12], &be(&[42, 10, 1])[..]);
    let text = String::from_utf8_lossy(&m.payload);
    assert!(text.contains("Domain not found: no domain with matching name 'nosuch'"));

    // An unknown procedure is refused, the connection stays usable.
    s.write_all(&frame(REMOTE, 9999, 0, 14, 0, &[])).unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (14, 1));
    assert_eq!(&m.payload[..4], &be(&[39])[..]);
    // A procedure libvirt has but oxvirt does not serve: NO_SUPPORT.
    s.write_all(&frame(REMOTE, 337, 0, 15, 0, &be(&[1, 0])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (15, 1));
    assert_eq!(&m.payload[..4], &be(&[3])[..]);
    s.write_all(&frame(REMOTE, 75, 0, 150, 0, &[])).unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (150, 1));
    assert_eq!(
        error_message(&m),
        "this function is not supported by the connection driver: virConnectFindStoragePoolSources"
    );
    // An event message is no call: unknown procedure.
    s.write_all(&frame(REMOTE, 107, 0, 151, 0, &[])).unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (151, 1));
    assert_eq!(error_message(&m), "unknown procedure: 107");
    // Undecodable arguments are an error reply, not a crash.
    s.write_all(&frame(REMOTE, 23, 0, 16, 0, &be(&[0xffff_ffff])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (16, 1));
    get_type_works(&mut s, 17);
}

#[test]
fn calls_before_open_are_refused() {
    let env = Env::start("preopen");
    let mut s = connect(&env.sock());
    s.write_all(&frame(REMOTE, 273, 0, 0, 0, &be(&[1, 0])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!(m.status, 1);
    open(&mut s);
    s.write_all(&frame(REMOTE, 273, 0, 5, 0, &be(&[1, 3])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.status, m.payload.clone()), (0, be(&[0, 0])));
}

#[test]
fn read_only_socket_refuses_changes() {
    let env = Env::start("ro");
    let mut s = connect(&env.sock_ro());
    open(&mut s);
    get_type_works(&mut s, 2);
    let xml =
        "<domain type='kvm'><name>x</name><memory>65536</memory><os><type>hvm</type></os></domain>";
    s.write_all(&frame(REMOTE, 11, 0, 3, 0, &xdr_string(xml)))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (3, 1));
    assert_eq!(&m.payload[..8], &be(&[29, 20])[..]);
    assert_eq!(
        error_message(&m),
        "operation forbidden: read only access prevents virDomainDefineXML"
    );
    // Refused before its arguments are read, as libvirt's API does.
    s.write_all(&frame(REMOTE, 337, 0, 4, 0, &[])).unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status), (4, 1));
    assert_eq!(
        error_message(&m),
        "operation forbidden: read only access prevents virDomainGetTime"
    );
    // Host counters are reads: nparams 0 asks for the number of fields.
    s.write_all(&frame(REMOTE, 227, 0, 5, 0, &be(&[u32::MAX, 0, 0])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status, m.payload), (5, 0, be(&[0, 4])));
    s.write_all(&frame(REMOTE, 228, 0, 6, 0, &be(&[0, u32::MAX, 0])))
        .unwrap();
    let m = read_msg(&mut s).unwrap();
    assert_eq!((m.serial, m.status, m.payload), (6, 0, be(&[0, 4])));
}

/// The message of an error reply (`remote_error`: code, domain, message).
fn error_message(m: &Msg) -> String {
    let p = &m.payload;
    assert_eq!(&p[8..12], &be(&[1])[..], "message present");
    let len = u32::from_be_bytes([p[12], p[13], p[14], p[15]]) as usize;
    String::from_utf8(p[16..16 + len].to_vec()).unwrap()
}

#[test]
fn bad_frames_close_only_their_connection() {
    let env = Env::start("bad");
    let mut good = connect(&env.sock());
    open(&mut good);

    let bad_inputs: Vec<Vec<u8>> = vec![
        // Length below the header size.
        be(&[8, 0]),
        // Length above 32 MiB + 4.
        be(&[32 * 1024 * 1024 + 5, 0, 0, 0, 0, 0, 0]),
        be(&[u32::MAX]),
        // Unknown program.
        frame(0x1234_5678, 1, 0, 0, 0, &[]),
        // Wrong version.
        {
            let mut f = frame(REMOTE, 66, 0, 0, 0, &[]);
            f[11] = 9;
            f
        },
        // Reply type sent by a client.
        frame(REMOTE, 66, 1, 0, 0, &[]),
        // A well-sized frame of garbage.
        {
            let mut g: Vec<u8> = (0..200u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
                .collect();
            g[..4].copy_from_slice(&200u32.to_be_bytes());
            g
        },
    ];
    for (i, bad) in bad_inputs.iter().enumerate() {
        let mut s = connect(&env.sock());
        s.write_all(bad).unwrap();
        assert!(closed_by_server(&mut s), "input {i} did not close");
        get_type_works(&mut good, 100 + i as u32);
    }

    // A truncated frame followed by the client hanging up.
    {
        let mut s = connect(&env.sock());
        let f = frame(REMOTE, 66, 0, 0, 0, &[]);
        s.write_all(&f[..f.len() - 3]).unwrap();
    }
    // A client that declares a large message and stops sending.
    let mut stall = connect(&env.sock());
    stall.write_all(&be(&[1024 * 1024])).unwrap();
    get_type_works(&mut good, 200);
    drop(stall);
    get_type_works(&mut good, 201);

    // A second daemon on the same socket refuses to start.
    let out = Command::new(oxvirtd())
        .arg("--bus-address")
        .arg("unix:path=/nonexistent")
        .arg("--config-dir")
        .arg(env.root.join("c2"))
        .arg("--run-dir")
        .arg(env.root.join("r2"))
        .arg("--state-dir")
        .arg(env.root.join("s2"))
        .arg("--rpc-socket")
        .arg(env.sock())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serving"), "{err}");
    get_type_works(&mut good, 202);
}

#[test]
fn stale_sockets_are_replaced() {
    let env = Env::start_with("stale", |root| {
        // Sockets whose listeners are gone, as a crashed daemon leaves them.
        for name in ["sock", "virtqemud-sock"] {
            drop(std::os::unix::net::UnixListener::bind(root.join(name)).unwrap());
        }
    });
    assert!(!env.root.join("virtqemud-sock").exists());
    let mut s = connect(&env.sock());
    open(&mut s);
    get_type_works(&mut s, 2);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.sock_ro())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o666);
}

/// The daemon's resident memory, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A connection attempt that does not wait: `Some` when the socket took
/// it (served or queued), `None` when its queue is full.
fn connect_nowait(path: &Path) -> Option<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a new socket; the address is a zeroed sockaddr_un filled
    // with a path shorter than sun_path (asserted), its length passed.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
        assert!(fd >= 0);
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        assert!(bytes.len() < addr.sun_path.len());
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        let r = libc::connect(fd, (&raw const addr).cast(), len);
        let s = UnixStream::from_raw_fd(fd);
        if r < 0 {
            let e = std::io::Error::last_os_error();
            assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
            return None;
        }
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Some(s)
    }
}

/// Whether `s` got no answer within half a second.
fn unanswered(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 4];
    let quiet = matches!(
        s.read(&mut b),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
    );
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    quiet
}

#[test]
fn a_flood_of_read_only_clients_never_locks_root_out() {
    let env = Env::start_with("flood", |root| {
        std::fs::write(
            root.join("oxvirtd.conf"),
            "max_clients = 8\nmax_anonymous_clients = 8\nmax_client_requests = 2\nmax_queued_clients = 4\n",
        )
        .unwrap();
    });
    let pid = env.daemon.as_ref().unwrap().id();
    let before = rss_kib(pid);
    // Read-only clients up to max_clients are served ...
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = connect(&env.sock_ro());
        open(&mut s);
        held.push(s);
    }
    // ... the next ones wait in the socket's queue, unanswered, and
    // beyond max_queued_clients the kernel refuses them.
    let mut queued = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        match connect_nowait(&env.sock_ro()) {
            Some(mut s) => {
                s.write_all(&frame(REMOTE, 66, 0, 0, 0, &[])).unwrap();
                queued.push(s);
            }
            None => refused += 1,
        }
    }
    eprintln!("{} queued, {refused} refused", queued.len());
    // Linux lets one more than the queue length wait.
    assert!((4..=5).contains(&queued.len()), "{} queued", queued.len());
    assert_eq!(refused, 40 - queued.len());
    assert!(unanswered(&mut queued[0]));
    // Root's socket still answers, calls pipelined past
    // max_client_requests included.
    let mut root = connect(&env.sock());
    open(&mut root);
    for serial in 10..16 {
        root.write_all(&frame(REMOTE, 3, 0, serial, 0, &[]))
            .unwrap();
    }
    for _ in 10..16 {
        let m = read_msg(&mut root).unwrap();
        assert_eq!((m.proc_, m.status), (3, 0));
    }
    get_type_works(&mut held[0], 5);
    let after = rss_kib(pid);
    eprintln!("daemon RSS: {before} KiB before the flood, {after} KiB with it");
    // A read-only place frees when a client leaves (root's connection
    // holds one of the eight too): the first queued client is served.
    drop(root);
    drop(held.pop());
    let m = read_msg(&mut queued[0]).expect("a queued client is served once a place frees");
    assert_eq!((m.proc_, m.status), (66, 0));
}

/// Reads messages until one that is not a keepalive ping; counts the pings.
fn read_past_pings(s: &mut UnixStream, pings: &mut u32) -> Option<Msg> {
    loop {
        let m = read_msg(s)?;
        if (m.prog, m.proc_, m.mtype) == (KEEPALIVE, 1, 2) {
            *pings += 1;
            continue;
        }
        return Some(m);
    }
}

/// CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE) → 1.
fn ask_for_keepalive(s: &mut UnixStream) {
    s.write_all(&frame(REMOTE, 60, 0, 7, 0, &be(&[10])))
        .unwrap();
    let m = read_msg(s).unwrap();
    assert_eq!((m.proc_, m.serial, m.status), (60, 7, 0));
    assert_eq!(m.payload, be(&[1]));
}

#[test]
fn keepalive_drops_clients_that_stop_answering() {
    let env = Env::start_with("keepalive", |root| {
        std::fs::write(
            root.join("oxvirtd.conf"),
            "keepalive_interval = 1\nkeepalive_count = 2\n",
        )
        .unwrap();
    });
    let mut dead = connect(&env.sock());
    open(&mut dead);
    ask_for_keepalive(&mut dead);
    let mut alive = connect(&env.sock());
    open(&mut alive);
    ask_for_keepalive(&mut alive);
    // Never asked: never pinged, never dropped.
    let mut plain = connect(&env.sock());
    open(&mut plain);

    // The live client answers every ping for four seconds.
    let responder = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(4);
        let mut pings = 0;
        alive
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while Instant::now() < until {
            if let Some(m) = read_msg(&mut alive) {
                assert_eq!((m.prog, m.proc_, m.mtype), (KEEPALIVE, 1, 2), "{m:?}");
                pings += 1;
                alive.write_all(&frame(KEEPALIVE, 2, 2, 0, 0, &[])).unwrap();
            }
        }
        alive
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (alive, pings)
    });

    // The silent one is pinged twice, then dropped about three intervals
    // after its last message.
    let started = Instant::now();
    let mut pings = 0;
    assert!(read_past_pings(&mut dead, &mut pings).is_none());
    let waited = started.elapsed();
    eprintln!("silent client: {pings} pings, dropped after {waited:?}");
    assert_eq!(pings, 2);

    let (mut alive, answered) = responder.join().unwrap();
    eprintln!("answering client: {answered} pings answered");
    assert!(answered >= 2);
    get_type_works(&mut alive, 30);
    let mut none = 0;
    plain.write_all(&frame(REMOTE, 3, 0, 31, 0, &[])).unwrap();
    let m = read_past_pings(&mut plain, &mut none).unwrap();
    assert_eq!((m.proc_, m.serial, m.status), (3, 31, 0));
    assert_eq!(none, 0);
}
