//! End-to-end tests of `oxvirtd` on a private D-Bus bus: interface
//! compatibility with libvirt-dbus, bad input, a Cockpit-like lifecycle
//! with real guests, daemon restarts and VMM crashes.
//!
//! Tests that boot guests need /dev/kvm and the test guest
//! (`make -C compat-tests/guest/testos`); without them they print why and
//! return early.

mod ci_common;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Type, Value};
use zbus::{Connection, MatchRule, MessageStream};

use ci_common::PrivateBus as Bus;

mod netns_common;

const CONNECT: &str = "/org/libvirt/QEMU";
const OXVIRTD: &str = env!("CARGO_BIN_EXE_oxvirtd");
const VMM: &str = env!("CARGO_BIN_EXE_oxvirt-vmm");

// ---- harness ---------------------------------------------------------

struct Dirs {
    root: PathBuf,
}

impl Dirs {
    fn new(tag: &str) -> Dirs {
        let root = std::env::temp_dir().join(format!(
            "oxvirtd-test-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Dirs { root }
    }
    fn config(&self) -> PathBuf {
        self.root.join("config")
    }
    fn run(&self) -> PathBuf {
        self.root.join("run")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        // Stop any VMM this test left running (pids from status files).
        for pid in vmm_pids(&self.run()) {
            // SAFETY: kill with a pid read from our own status file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn vmm_pids(run: &Path) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir(run) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter_map(|v| v.get("pid").and_then(|p| p.as_i64()))
        .map(|p| p as i32)
        .collect()
}

struct Daemon {
    child: Child,
}

impl Daemon {
    async fn start(bus: &Bus, dirs: &Dirs, conn: &Connection) -> Daemon {
        Daemon::start_in(bus, dirs, conn, None).await
    }

    /// The daemon, inside the network namespace `netns` if given.
    async fn start_in(
        bus: &Bus,
        dirs: &Dirs,
        conn: &Connection,
        netns: Option<&netns_common::Netns>,
    ) -> Daemon {
        let mut cmd = match netns {
            Some(ns) => ns.exec(OXVIRTD),
            None => Command::new(OXVIRTD),
        };
        let child = cmd
            .arg("--bus-address")
            .arg(&bus.address)
            .arg("--config-dir")
            .arg(dirs.config())
            .arg("--run-dir")
            .arg(dirs.run())
            .arg("--state-dir")
            .arg(dirs.state())
            .arg("--vmm")
            .arg(VMM)
            // The D-Bus tests run in parallel: none may take libvirt's socket.
            .arg("--no-rpc")
            .env("RUST_LOG", "info,zbus=error")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dirs.root.join(format!(
                    "oxvirtd-{}.log",
                    Instant::now().elapsed().as_nanos()
                )))
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .expect("spawn oxvirtd");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let owned: bool = conn
                .call_method(
                    Some("org.freedesktop.DBus"),
                    "/org/freedesktop/DBus",
                    Some("org.freedesktop.DBus"),
                    "NameHasOwner",
                    &("org.libvirt",),
                )
                .await
                .and_then(|m| m.body().deserialize::<bool>())
                .unwrap_or(false);
            if owned {
                break;
            }
            assert!(Instant::now() < deadline, "oxvirtd did not take its name");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Daemon { child }
    }

    /// SIGTERM; returns whether the daemon exited with status 0.
    fn terminate(mut self) -> bool {
        // SAFETY: kill on the pid of a child this test spawned.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().is_ok_and(|s| s.success())
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn client(bus: &Bus) -> Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap()
}

/// A method call's outcome: the decoded reply, or (error name, message).
async fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> Result<R, (String, String)>
where
    B: serde::Serialize + DynamicType,
    R: DeserializeOwned + Type,
{
    match conn
        .call_method(Some("org.libvirt"), path, Some(iface), method, body)
        .await
    {
        Ok(m) => m
            .body()
            .deserialize::<R>()
            .map_err(|e| ("decode".to_string(), e.to_string())),
        Err(zbus::Error::MethodError(name, text, _)) => {
            Err((name.to_string(), text.unwrap_or_default()))
        }
        Err(e) => Err(("zbus".to_string(), e.to_string())),
    }
}

async fn dom_call<B: serde::Serialize + DynamicType>(
    conn: &Connection,
    path: &str,
    method: &str,
    body: &B,
) -> Result<(), (String, String)> {
    call::<B, ()>(conn, path, "org.libvirt.Domain", method, body).await
}

/// `Connect.DomainDefineXML`: the new domain's path, or the error.
async fn try_define(conn: &Connection, xml: &str) -> Result<OwnedObjectPath, (String, String)> {
    call(
        conn,
        CONNECT,
        "org.libvirt.Connect",
        "DomainDefineXML",
        &(xml,),
    )
    .await
}

/// `Connect.DomainDefineXML`, which must succeed.
async fn define(conn: &Connection, xml: &str) -> OwnedObjectPath {
    try_define(conn, xml).await.expect("DomainDefineXML")
}

/// Sets the `Autostart` property of the domain at `path`.
async fn set_autostart(conn: &Connection, path: &str, on: bool) {
    conn.call_method(
        Some("org.libvirt"),
        path,
        Some("org.freedesktop.DBus.Properties"),
        "Set",
        &("org.libvirt.Domain", "Autostart", Value::from(on)),
    )
    .await
    .expect("set Autostart");
}

async fn state(conn: &Connection, path: &str) -> (i32, i32) {
    call(conn, path, "org.libvirt.Domain", "GetState", &(0u32,))
        .await
        .expect("GetState")
}

async fn wait_state(conn: &Connection, path: &str, want: (i32, i32), secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = state(conn, path).await;
        if s == want {
            return;
        }
        assert!(Instant::now() < deadline, "state {s:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a watcher took from the signals it saw, in arrival order.
type Recorded<T> = Arc<Mutex<Vec<T>>>;

/// Records what `take` finds in each message matching `rule`.
async fn record_signals<T: Send + 'static>(
    conn: &Connection,
    rule: MatchRule<'static>,
    take: impl Fn(&zbus::Message) -> Option<T> + Send + 'static,
) -> Recorded<T> {
    let mut stream = MessageStream::for_match_rule(rule, conn, None)
        .await
        .unwrap();
    let recorded: Recorded<T> = Arc::default();
    let sink = recorded.clone();
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let Some(v) = take(&m) {
                sink.lock().unwrap().push(v);
            }
        }
    });
    recorded
}

/// Waits until at least `n` recorded items satisfy `want`; fails after
/// `limit` with `missing` and what was seen.
async fn wait_recorded<T: std::fmt::Debug>(
    recorded: &Recorded<T>,
    limit: Duration,
    n: usize,
    want: impl Fn(&T) -> bool,
    missing: impl Fn() -> String,
) {
    let deadline = Instant::now() + limit;
    loop {
        if recorded.lock().unwrap().iter().filter(|x| want(x)).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}; saw {:?}",
            missing(),
            recorded.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

type Events = Recorded<(String, i32, i32)>;
type IfaceAddrs = (String, String, Vec<(i32, String, u32)>);

async fn watch_events(conn: &Connection) -> Events {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.libvirt.Connect")
        .unwrap()
        .member("DomainEvent")
        .unwrap()
        .build();
    record_signals(conn, rule, |m| {
        let (p, e, d) = m.body().deserialize::<(OwnedObjectPath, i32, i32)>().ok()?;
        Some((p.to_string(), e, d))
    })
    .await
}

async fn wait_event(events: &Events, path: &str, ev: i32, detail: i32) {
    wait_recorded(
        events,
        Duration::from_secs(10),
        1,
        |(p, e, d)| p == path && *e == ev && *d == detail,
        || format!("no event ({ev},{detail}) for {path}"),
    )
    .await
}

fn guest_kernel() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/guest/out/testos.elf");
    if !Path::new("/dev/kvm").exists() {
        ci_common::skip("/dev/kvm is not available");
        return None;
    }
    if !p.exists() {
        ci_common::skip("test guest missing; build it with `make -C compat-tests/guest/testos`");
        return None;
    }
    Some(p)
}

fn domain_xml(name: &str, uuid: &str, kernel: &Path, then: &str, serial: &Path) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64'>hvm</type><kernel>{}</kernel>\
         <cmdline>oxtest.then={then}</cmdline></os>\
         <devices><serial type='file'><source path='{}'/></serial></devices></domain>",
        kernel.display(),
        serial.display()
    )
}

fn dpath(uuid: &str) -> String {
    format!("{CONNECT}/domain/_{}", uuid.replace('-', "_"))
}

fn pool_path(uuid: &str) -> String {
    format!("{CONNECT}/storagepool/_{}", uuid.replace('-', "_"))
}

/// A volume's path: its key with libvirt-dbus's byte rule.
fn vol_path(key: &str) -> String {
    let mut p = format!("{CONNECT}/storagevol/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("_{b:02x}"));
        }
    }
    p
}

// ---- interface compatibility -----------------------------------------

/// Members of one interface: methods with named in/out args, properties
/// with type and access, signals with named args.
#[derive(Debug, Default, PartialEq, Eq)]
struct Members {
    methods: BTreeMap<String, Vec<(String, String, String)>>,
    properties: BTreeMap<String, (String, String)>,
    signals: BTreeMap<String, Vec<(String, String)>>,
}

fn parse_interface(xml: &str, want: &str) -> Members {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut m = Members::default();
    let mut in_iface = false;
    let mut current: Option<(bool, String)> = None; // (is_method, name)
    let attr = |e: &quick_xml::events::BytesStart, k: &str| -> String {
        e.attributes()
            .filter_map(|a| a.ok())
            .find(|a| a.key.as_ref() == k.as_bytes())
            .map(|a| String::from_utf8_lossy(&a.value).into_owned())
            .unwrap_or_default()
    };
    loop {
        let ev = r.read_event().expect("xml");
        let (e, empty) = match &ev {
            Event::Start(e) => (e.clone(), false),
            Event::Empty(e) => (e.clone(), true),
            Event::End(e) => {
                match e.name().as_ref() {
                    b"interface" => in_iface = false,
                    b"method" | b"signal" => current = None,
                    _ => {}
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        match e.name().as_ref() {
            b"interface" => in_iface = attr(&e, "name") == want && !empty,
            b"method" if in_iface => {
                let n = attr(&e, "name");
                m.methods.insert(n.clone(), Vec::new());
                if !empty {
                    current = Some((true, n));
                }
            }
            b"signal" if in_iface => {
                let n = attr(&e, "name");
                m.signals.insert(n.clone(), Vec::new());
                if !empty {
                    current = Some((false, n));
                }
            }
            b"property" if in_iface => {
                m.properties
                    .insert(attr(&e, "name"), (attr(&e, "type"), attr(&e, "access")));
            }
            b"arg" if in_iface => match &current {
                Some((true, n)) => {
                    let dir = match attr(&e, "direction").as_str() {
                        "" => "in".to_string(),
                        d => d.to_string(),
                    };
                    if let Some(v) = m.methods.get_mut(n) {
                        v.push((attr(&e, "name"), attr(&e, "type"), dir));
                    }
                }
                Some((false, n)) => {
                    if let Some(v) = m.signals.get_mut(n) {
                        v.push((attr(&e, "name"), attr(&e, "type")));
                    }
                }
                None => {}
            },
            _ => {}
        }
    }
    m
}

async fn introspect(conn: &Connection, path: &str) -> String {
    conn.call_method(
        Some("org.libvirt"),
        path,
        Some("org.freedesktop.DBus.Introspectable"),
        "Introspect",
        &(),
    )
    .await
    .unwrap()
    .body()
    .deserialize::<String>()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interfaces_match_libvirt_dbus() {
    let dir = Path::new("/usr/share/dbus-1/interfaces");
    if !dir.join("org.libvirt.Connect.xml").exists() {
        ci_common::skip("libvirt-dbus interface XML is not installed");
        return;
    }
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("iface");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let missing_domain = dpath("00000000-1111-2222-3333-444444444444");
    // Objects that do not exist: introspection is the interface all the same.
    let missing_pool = pool_path("00000000-1111-2222-3333-444444444444");
    let missing_vol = format!("{CONNECT}/storagevol/_2fno_2fsuch_2fvol");
    for (name, path) in [
        ("Connect", CONNECT.to_string()),
        ("Domain", missing_domain),
        ("StoragePool", missing_pool),
        ("StorageVol", missing_vol),
        // The collection nodes carry the interface too.
        ("StoragePool", format!("{CONNECT}/storagepool")),
        ("StorageVol", format!("{CONNECT}/storagevol")),
        (
            "DomainSnapshot",
            format!("{CONNECT}/domainsnapshot/_00000000_1111_2222_3333_444444444444_s"),
        ),
    ] {
        let iface = format!("org.libvirt.{name}");
        let theirs_xml = std::fs::read_to_string(dir.join(format!("{iface}.xml"))).unwrap();
        let theirs = parse_interface(&theirs_xml, &iface);
        let ours = parse_interface(&introspect(&conn, &path).await, &iface);
        assert!(!theirs.methods.is_empty());
        for (k, v) in &theirs.methods {
            assert_eq!(ours.methods.get(k), Some(v), "{iface}.{k}");
        }
        for (k, v) in &theirs.properties {
            assert_eq!(ours.properties.get(k), Some(v), "{iface} property {k}");
        }
        for (k, v) in &theirs.signals {
            assert_eq!(ours.signals.get(k), Some(v), "{iface} signal {k}");
        }
        assert_eq!(ours, theirs, "{iface}: extra members");
        eprintln!(
            "{iface}: {} methods, {} properties, {} signals match",
            ours.methods.len(),
            ours.properties.len(),
            ours.signals.len()
        );
    }
    // Every method answers: no UnknownMethod for any member of the spec.
    let theirs_xml = std::fs::read_to_string(dir.join("org.libvirt.Connect.xml")).unwrap();
    let theirs = parse_interface(&theirs_xml, "org.libvirt.Connect");
    for (name, args) in &theirs.methods {
        let sig: String = args
            .iter()
            .filter(|a| a.2 == "in")
            .map(|a| a.1.clone())
            .collect();
        if !sig.is_empty() {
            continue; // argument-less calls are enough to show dispatch
        }
        let r = conn
            .call_method(
                Some("org.libvirt"),
                CONNECT,
                Some("org.libvirt.Connect"),
                name.as_str(),
                &(),
            )
            .await;
        if let Err(zbus::Error::MethodError(n, _, _)) = &r {
            assert_eq!(n.as_str(), "org.libvirt.Error", "{name}");
        }
    }
}

// ---- bad input -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("bad");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let lib = "org.libvirt.Error".to_string();

    let v: OwnedValue = conn
        .call_method(
            Some("org.libvirt"),
            CONNECT,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.libvirt.Connect", "LibVersion"),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    assert_eq!(u64::try_from(v).unwrap(), 9_000_000);

    let e = try_define(&conn, "<domain").await.unwrap_err();
    assert_eq!(e.0, lib);
    let e = try_define(&conn, "<domain type='kvm'><memory>1024</memory></domain>")
        .await
        .unwrap_err();
    assert_eq!(e.0, lib);
    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListDomains",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(list.is_empty());

    let e = call::<_, OwnedObjectPath>(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "DomainLookupByName",
        &("nope",),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            "Domain not found: no domain with matching name 'nope'".to_string()
        )
    );

    let missing = dpath("00000000-1111-2222-3333-444444444444");
    let e = dom_call(&conn, &missing, "Create", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Domain not found"), "{e:?}");
    let e = dom_call(&conn, &missing, "SnapshotCreateXML", &("x", 0u32))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Domain not found"), "{e:?}");
    let all: HashMap<String, OwnedValue> = conn
        .call_method(
            Some("org.libvirt"),
            missing.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &("org.libvirt.Domain",),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    assert!(all.is_empty());
    let e = dom_call(
        &conn,
        &format!("{CONNECT}/domain/garbage"),
        "GetState",
        &(0u32,),
    )
    .await
    .unwrap_err();
    assert_eq!(e, (lib.clone(), "Invalid UUID".to_string()));

    // No networks, host interfaces, secrets, filters or node devices: empty
    // lists, after the flag check of libvirt's driver for each.
    for (method, flags, bad, function) in [
        (
            "ListNetworks",
            0x3fu32,
            0x40u32,
            "networkConnectListAllNetworks",
        ),
        ("ListInterfaces", 3, 4, "udevConnectListAllInterfaces"),
        ("ListSecrets", 0xf, 0x10, "secretConnectListAllSecrets"),
        ("ListNWFilters", 0, 1, "nwfilterConnectListAllNWFilters"),
    ] {
        let list: Vec<OwnedObjectPath> =
            call(&conn, CONNECT, "org.libvirt.Connect", method, &(flags,))
                .await
                .unwrap();
        // Host interfaces are the host's (the loopback at least).
        if method == "ListInterfaces" {
            assert!(
                list.iter().any(|p| p
                    .as_str()
                    .ends_with("/interface/00_3a00_3a00_3a00_3a00_3a00")),
                "{list:?}"
            );
        } else {
            assert!(list.is_empty(), "{method}");
        }
        let e =
            call::<_, Vec<OwnedObjectPath>>(&conn, CONNECT, "org.libvirt.Connect", method, &(bad,))
                .await
                .unwrap_err();
        assert_eq!(
            e,
            (
                lib.clone(),
                format!("invalid argument: unsupported flags (0x{bad:x}) in function {function}")
            ),
            "{method}"
        );
    }
    // Node devices are the host's, as libvirt's udev driver lists them.
    let devs: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListNodeDevices",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(
        devs.iter()
            .any(|p| p.as_str() == "/org/libvirt/QEMU/nodedev/computer"),
        "{devs:?}"
    );
    let e = call::<_, Vec<OwnedObjectPath>>(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListNodeDevices",
        &(1u32 << 22,),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            "invalid argument: unsupported flags (0x400000) in function nodeConnectListAllNodeDevices"
                .to_string()
        )
    );
    let e = call::<_, (i32, i32)>(&conn, &missing, "org.libvirt.Domain", "GetState", &("s",))
        .await
        .unwrap_err();
    assert_eq!(e.0, "org.freedesktop.DBus.Error.InvalidArgs");

    // A domain whose kernel is missing: define works, start fails cleanly.
    let uuid = "aaaaaaaa-1111-2222-3333-444444444444";
    let xml = domain_xml(
        "nokernel",
        uuid,
        Path::new("/nonexistent/kernel"),
        "halt",
        &dirs.root.join("s.log"),
    );
    let p = define(&conn, xml.as_str()).await;
    assert_eq!(p.as_str(), dpath(uuid));
    assert!(dirs.config().join("nokernel.xml").exists());
    let e = dom_call(&conn, &dpath(uuid), "Create", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            "Cannot access file '/nonexistent/kernel': No such file or directory".to_string()
        )
    );
    assert_eq!(state(&conn, &dpath(uuid)).await, (5, 0));
    // Nothing beside the storage and network drivers' own state
    // directories.
    let leftovers: Vec<_> = std::fs::read_dir(dirs.run())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "storage" && e.file_name() != "network")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let e = dom_call(&conn, &dpath(uuid), "Destroy", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: domain is not running"
    );

    // Same name, other UUID: refused.
    let xml2 = domain_xml(
        "nokernel",
        "bbbbbbbb-1111-2222-3333-444444444444",
        Path::new("/k"),
        "halt",
        Path::new("/tmp/x"),
    );
    let e = try_define(&conn, xml2.as_str()).await.unwrap_err();
    assert_eq!(
        e.1,
        format!("operation failed: domain 'nokernel' already exists with uuid {uuid}")
    );
    dom_call(&conn, &dpath(uuid), "SetMemory", &(32768u64, 2u32))
        .await
        .unwrap();
    let inactive: String = call(
        &conn,
        &dpath(uuid),
        "org.libvirt.Domain",
        "GetXMLDesc",
        &(2u32,),
    )
    .await
    .unwrap();
    assert!(
        inactive.contains("<currentMemory unit='KiB'>32768</currentMemory>"),
        "{inactive}"
    );
    let e = dom_call(&conn, &dpath(uuid), "SetMemory", &(1u64 << 40, 2u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: cannot set memory higher than max memory"
    );
    let e = dom_call(&conn, &dpath(uuid), "SetMemory", &(32768u64, 1u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: domain is not running"
    );
    // vCPUs of the definition: a new maximum, then a count within it; a
    // count of 0, one above the maximum and unknown flags change nothing.
    dom_call(&conn, &dpath(uuid), "SetVcpus", &(4u32, 2u32 | 4))
        .await
        .unwrap();
    dom_call(&conn, &dpath(uuid), "SetVcpus", &(3u32, 2u32))
        .await
        .unwrap();
    for (n, flags, err) in [
        (
            0u32,
            2u32,
            "invalid argument: nvcpus in virDomainSetVcpusFlags must not be zero",
        ),
        (
            5,
            2,
            "invalid argument: requested vcpus is greater than max allowable vcpus for the persistent domain: 5 > 4",
        ),
        (
            2,
            1 << 7,
            "invalid argument: unsupported flags (0x80) in function qemuDomainSetVcpusFlags",
        ),
        (
            2,
            1,
            "Requested operation is not valid: domain is not running",
        ),
    ] {
        let e = dom_call(&conn, &dpath(uuid), "SetVcpus", &(n, flags))
            .await
            .unwrap_err();
        assert_eq!(e.1, err);
    }
    let stored = std::fs::read_to_string(dirs.config().join("nokernel.xml")).unwrap();
    assert!(
        stored.contains("<vcpu placement='static' current='3'>4</vcpu>"),
        "{stored}"
    );
    dom_call(&conn, &dpath(uuid), "Rename", &("renamed", 0u32))
        .await
        .unwrap();
    assert!(dirs.config().join("renamed.xml").exists());
    assert!(!dirs.config().join("nokernel.xml").exists());
    let p: OwnedObjectPath = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "DomainLookupByName",
        &("renamed",),
    )
    .await
    .unwrap();
    assert_eq!(p.as_str(), dpath(uuid));
    let e = dom_call(&conn, &dpath(uuid), "Rename", &("a/b", 0u32))
        .await
        .unwrap_err();
    assert_eq!(e.1, "XML error: name a/b cannot contain '/'");
    dom_call(&conn, &dpath(uuid), "Undefine", &(0u32,))
        .await
        .unwrap();
    assert!(!dirs.config().join("renamed.xml").exists());
    let e = dom_call(&conn, &dpath(uuid), "GetXMLDesc", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Domain not found"));
}

// ---- storage pools and volumes ----------------------------------------

const POOL_UUID: &str = "480e39f3-571a-4ec9-bab1-9ddf97b33884";

/// Storage signals seen: (object path the signal is about, member, args
/// of `StoragePoolEvent`). For `Refresh` the path is the signal's own.
type PoolSignals = Recorded<(String, String, Option<(i32, i32)>)>;

async fn watch_pool_signals(conn: &Connection) -> PoolSignals {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender("org.libvirt")
        .unwrap()
        .build();
    record_signals(conn, rule, |m| {
        let h = m.header();
        let iface = h.interface().map(|i| i.to_string()).unwrap_or_default();
        let member = h.member().map(|p| p.to_string()).unwrap_or_default();
        let path = h.path().map(|p| p.to_string()).unwrap_or_default();
        match (iface.as_str(), member.as_str()) {
            ("org.libvirt.Connect", "StoragePoolEvent") => {
                let (p, e, d) = m.body().deserialize::<(OwnedObjectPath, i32, i32)>().ok()?;
                Some((p.to_string(), member, Some((e, d))))
            }
            ("org.libvirt.StoragePool", _) => Some((path, member, None)),
            _ => None,
        }
    })
    .await
}

/// Waits until `n` signals `member` with `args` were seen for `path`.
async fn wait_pool_signal(
    signals: &PoolSignals,
    path: &str,
    member: &str,
    args: Option<(i32, i32)>,
    n: usize,
) {
    wait_recorded(
        signals,
        Duration::from_secs(10),
        n,
        |(p, m, a)| p == path && m == member && *a == args,
        || format!("no {member}{args:?} for {path}"),
    )
    .await
}

async fn pool_call<B, R>(
    conn: &Connection,
    path: &str,
    method: &str,
    body: &B,
) -> Result<R, (String, String)>
where
    B: serde::Serialize + DynamicType,
    R: DeserializeOwned + Type,
{
    call(conn, path, "org.libvirt.StoragePool", method, body).await
}

async fn vol_call<B, R>(
    conn: &Connection,
    path: &str,
    method: &str,
    body: &B,
) -> Result<R, (String, String)>
where
    B: serde::Serialize + DynamicType,
    R: DeserializeOwned + Type,
{
    call(conn, path, "org.libvirt.StorageVol", method, body).await
}

async fn get_all(conn: &Connection, path: &str, iface: &str) -> HashMap<String, OwnedValue> {
    conn.call_method(
        Some("org.libvirt"),
        path,
        Some("org.freedesktop.DBus.Properties"),
        "GetAll",
        &(iface,),
    )
    .await
    .unwrap()
    .body()
    .deserialize()
    .unwrap()
}

/// A `GetAll` value, which must be double-wrapped as libvirt-dbus sends it.
fn all_bool(all: &HashMap<String, OwnedValue>, key: &str) -> bool {
    let v = all
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {all:?}"));
    assert!(
        matches!(&**v, Value::Value(_)),
        "{key} is not double-wrapped"
    );
    matches!(unwrapped(v), Value::Bool(true))
}

async fn get_prop(conn: &Connection, path: &str, iface: &str, name: &str) -> OwnedValue {
    call(
        conn,
        path,
        "org.freedesktop.DBus.Properties",
        "Get",
        &(iface, name),
    )
    .await
    .unwrap()
}

/// The pool definitions stored in the daemon's configuration directory.
fn stored_pools(dirs: &Dirs) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dirs.config().join("storage"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_pools_and_volumes() {
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("storage");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let signals = watch_pool_signals(&conn).await;
    let lib = "org.libvirt.Error".to_string();
    let target = dirs.root.join("pool");
    let pool_xml = format!(
        "<pool type='dir'><name>p1</name><uuid>{POOL_UUID}</uuid>\
         <target><path>{}</path></target></pool>",
        target.display()
    );
    let pool = pool_path(POOL_UUID);
    let connect = |method: &'static str| {
        let conn = conn.clone();
        move |body: (String, u32)| {
            let conn = conn.clone();
            async move {
                call::<_, OwnedObjectPath>(&conn, CONNECT, "org.libvirt.Connect", method, &body)
                    .await
            }
        }
    };
    let define = connect("StoragePoolDefineXML");
    let create_xml = connect("StoragePoolCreateXML");

    // Bad input is refused with libvirt's messages and creates nothing.
    let e = define(("<pool type='dir'><name>bad</name>".into(), 0))
        .await
        .unwrap_err();
    assert_eq!(e.0, lib);
    assert!(
        e.1.starts_with("(storage_pool_definition):1: Premature end of data"),
        "{e:?}"
    );
    let e = create_xml(("<pool type='dir'><name>bad</name>".into(), 0))
        .await
        .unwrap_err();
    assert!(
        e.1.starts_with("(storage_pool_definition):1: Premature end of data"),
        "{e:?}"
    );
    let e = define(("<pool type='dir'><name>bad</name></pool>".into(), 0))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            "XML error: missing storage pool target path".into()
        )
    );
    let e = define((pool_xml.clone(), 8)).await.unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: unsupported flags (0x8) in function storagePoolDefineXML"
    );
    let e = pool_call::<_, String>(&conn, &pool, "GetXMLDesc", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            format!("Storage pool not found: no storage pool with matching uuid '{POOL_UUID}'")
        )
    );
    let e = pool_call::<_, ()>(&conn, &pool, "Create", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Storage pool not found"), "{e:?}");
    let e = pool_call::<_, (i32, u64, u64, u64)>(
        &conn,
        &format!("{CONNECT}/storagepool/garbage"),
        "GetInfo",
        &(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: uuidstr in virStoragePoolLookupByUUIDString must be a valid UUID"
    );
    assert!(
        get_all(&conn, &pool, "org.libvirt.StoragePool")
            .await
            .is_empty()
    );
    let e = call::<_, OwnedObjectPath>(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "StoragePoolLookupByName",
        &("nosuch",),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.1,
        "Storage pool not found: no storage pool with matching name 'nosuch'"
    );
    let e = call::<_, OwnedObjectPath>(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "StorageVolLookupByPath",
        &("/no/such",),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.1,
        "Storage volume not found: no storage vol with matching path '/no/such'"
    );
    let e = vol_call::<_, ()>(&conn, &vol_path("/no/such/vol"), "Delete", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e,
        (
            lib.clone(),
            "Storage volume not found: no storage vol with matching key /no/such/vol".into()
        )
    );
    let e = pool_call::<_, ()>(&conn, &pool, "Refresh", &("s",))
        .await
        .unwrap_err();
    assert_eq!(e.0, "org.freedesktop.DBus.Error.InvalidArgs");
    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListStoragePools",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(list.is_empty());
    assert!(stored_pools(&dirs).is_empty());
    assert!(!target.exists());

    // Define, build, start: DEFINED, CREATED, STARTED.
    let p = define((pool_xml.clone(), 0)).await.unwrap();
    assert_eq!(p.as_str(), pool);
    assert_eq!(stored_pools(&dirs), ["p1.xml"]);
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((0, 0)), 1).await;
    let all = get_all(&conn, &pool, "org.libvirt.StoragePool").await;
    assert!(!all_bool(&all, "Active"));
    assert!(all_bool(&all, "Persistent"));
    assert!(!all_bool(&all, "Autostart"));
    let info: (i32, u64, u64, u64) = pool_call(&conn, &pool, "GetInfo", &()).await.unwrap();
    assert_eq!(info, (0, 0, 0, 0));
    let e = pool_call::<_, ()>(&conn, &pool, "Create", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        format!(
            "cannot open directory '{}': No such file or directory",
            target.display()
        )
    );
    pool_call::<_, ()>(&conn, &pool, "Build", &(0u32,))
        .await
        .unwrap();
    assert!(target.is_dir());
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((4, 0)), 1).await;
    pool_call::<_, ()>(&conn, &pool, "Create", &(0u32,))
        .await
        .unwrap();
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((2, 0)), 1).await;
    let active: bool = get_prop(&conn, &pool, "org.libvirt.StoragePool", "Active")
        .await
        .try_into()
        .unwrap();
    assert!(active);
    let name: String = get_prop(&conn, &pool, "org.libvirt.StoragePool", "Name")
        .await
        .try_into()
        .unwrap();
    assert_eq!(name, "p1");
    let info: (i32, u64, u64, u64) = pool_call(&conn, &pool, "GetInfo", &()).await.unwrap();
    assert_eq!(info.0, 2);
    assert!(info.1 > 0 && info.1 >= info.2, "{info:?}");
    let xml: String = pool_call(&conn, &pool, "GetXMLDesc", &(0u32,))
        .await
        .unwrap();
    assert!(
        xml.starts_with("<pool type='dir'>\n  <name>p1</name>\n"),
        "{xml}"
    );
    assert!(
        xml.contains(&format!("<path>{}</path>", target.display())),
        "{xml}"
    );
    let e = pool_call::<_, String>(&conn, &pool, "GetXMLDesc", &(2u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: unsupported flags (0x2) in function storagePoolGetXMLDesc"
    );
    for (method, uuid_or_name) in [
        ("StoragePoolLookupByName", "p1"),
        ("StoragePoolLookupByUUID", POOL_UUID),
        (
            "StoragePoolLookupByUUID",
            "480E39F3571A4EC9BAB19DDF97B33884",
        ),
    ] {
        let p: OwnedObjectPath = call(
            &conn,
            CONNECT,
            "org.libvirt.Connect",
            method,
            &(uuid_or_name,),
        )
        .await
        .unwrap();
        assert_eq!(p.as_str(), pool, "{method}({uuid_or_name})");
    }
    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListStoragePools",
        &(0u32,),
    )
    .await
    .unwrap();
    assert_eq!(list.len(), 1);
    // Introspecting the collection lists the pool.
    let node = introspect(&conn, &format!("{CONNECT}/storagepool")).await;
    assert!(
        node.contains(&format!(
            "<node name=\"_{}\"/>",
            POOL_UUID.replace('-', "_")
        )),
        "{node}"
    );

    // Volumes: a sparse raw one and a qcow2 one.
    let raw_file = target.join("r1.img");
    let qcow_file = target.join("q1.qcow2");
    let raw = vol_path(&raw_file.display().to_string());
    let qcow = vol_path(&qcow_file.display().to_string());
    let v: OwnedObjectPath = pool_call(
        &conn,
        &pool,
        "StorageVolCreateXML",
        &(
            "<volume><name>r1.img</name><capacity unit='MiB'>1</capacity>\
             <allocation>0</allocation></volume>",
            0u32,
        ),
    )
    .await
    .unwrap();
    assert_eq!(v.as_str(), raw);
    let v: OwnedObjectPath = pool_call(
        &conn,
        &pool,
        "StorageVolCreateXML",
        &(
            "<volume><name>q1.qcow2</name><capacity unit='MiB'>10</capacity>\
             <target><format type='qcow2'/></target></volume>",
            0u32,
        ),
    )
    .await
    .unwrap();
    assert_eq!(v.as_str(), qcow);
    assert_eq!(std::fs::metadata(&raw_file).unwrap().len(), 1 << 20);
    let head = std::fs::read(&qcow_file).unwrap();
    assert_eq!(&head[..4], b"QFI\xfb");
    // Bad volumes: refused, no file left behind.
    for (xml, err) in [
        (
            "<volume><name>bv</name><capacity>1024</capacity>",
            "(storage_volume_definition):1: Premature end of data",
        ),
        (
            "<volume><name>bv</name></volume>",
            "XML error: missing capacity element",
        ),
        (
            "<volume><name>a/b</name><capacity>1024</capacity></volume>",
            "Requested operation is not valid: volume name 'a/b' cannot contain '/'",
        ),
        (
            "<volume><name>r1.img</name><capacity>1024</capacity></volume>",
            "storage volume 'r1.img' exists already",
        ),
    ] {
        let e = pool_call::<_, OwnedObjectPath>(&conn, &pool, "StorageVolCreateXML", &(xml, 0u32))
            .await
            .unwrap_err();
        assert_eq!(e.0, lib);
        assert!(e.1.starts_with(err), "{xml}: {e:?}");
    }
    assert!(!target.join("bv").exists());
    let listed: Vec<OwnedObjectPath> = pool_call(&conn, &pool, "ListStorageVolumes", &(0u32,))
        .await
        .unwrap();
    let mut listed: Vec<String> = listed.iter().map(|p| p.to_string()).collect();
    listed.sort();
    let mut want = vec![raw.clone(), qcow.clone()];
    want.sort();
    assert_eq!(listed, want);
    let info: (i32, u64, u64) = vol_call(&conn, &raw, "GetInfo", &(0u32,)).await.unwrap();
    assert_eq!((info.0, info.1), (0, 1 << 20));
    assert!(info.2 < 1 << 20, "sparse: {info:?}");
    let info: (i32, u64, u64) = vol_call(&conn, &qcow, "GetInfo", &(0u32,)).await.unwrap();
    assert_eq!((info.0, info.1), (0, 10 << 20));
    let xml: String = vol_call(&conn, &qcow, "GetXMLDesc", &(0u32,))
        .await
        .unwrap();
    assert!(
        xml.starts_with("<volume type='file'>\n  <name>q1.qcow2</name>\n"),
        "{xml}"
    );
    assert!(xml.contains("<format type='qcow2'/>"), "{xml}");
    assert!(
        xml.contains(&format!("<key>{}</key>", qcow_file.display())),
        "{xml}"
    );
    for (prop, want) in [
        ("Name", "r1.img".to_string()),
        ("Key", raw_file.display().to_string()),
        ("Path", raw_file.display().to_string()),
    ] {
        let v: String = get_prop(&conn, &raw, "org.libvirt.StorageVol", prop)
            .await
            .try_into()
            .unwrap();
        assert_eq!(v, want, "{prop}");
    }
    for (method, arg) in [
        ("StorageVolLookupByPath", raw_file.display().to_string()),
        ("StorageVolLookupByKey", raw_file.display().to_string()),
    ] {
        let p: OwnedObjectPath = call(
            &conn,
            CONNECT,
            "org.libvirt.Connect",
            method,
            &(arg.as_str(),),
        )
        .await
        .unwrap();
        assert_eq!(p.as_str(), raw, "{method}");
    }
    let p: OwnedObjectPath = pool_call(&conn, &pool, "StorageVolLookupByName", &("q1.qcow2",))
        .await
        .unwrap();
    assert_eq!(p.as_str(), qcow);
    let node = introspect(&conn, &format!("{CONNECT}/storagevol")).await;
    assert!(
        node.contains(&format!(
            "<node name=\"{}\"/>",
            &qcow[qcow.rfind('/').unwrap() + 1..]
        )),
        "{node}"
    );

    // A clone of the raw volume by its key; resize and wipe.
    let raw2_file = target.join("r2.img");
    let raw2: OwnedObjectPath = pool_call(
        &conn,
        &pool,
        "StorageVolCreateXMLFrom",
        &(
            "<volume><name>r2.img</name><capacity>1048576</capacity></volume>",
            raw_file.display().to_string(),
            0u32,
        ),
    )
    .await
    .unwrap();
    assert_eq!(raw2.as_str(), vol_path(&raw2_file.display().to_string()));
    assert_eq!(std::fs::metadata(&raw2_file).unwrap().len(), 1 << 20);
    let e = pool_call::<_, OwnedObjectPath>(
        &conn,
        &pool,
        "StorageVolCreateXMLFrom",
        &(
            "<volume><name>r3.img</name><capacity>1048576</capacity></volume>",
            "/no/such",
            0u32,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.1,
        "Storage volume not found: no storage vol with matching key /no/such"
    );
    vol_call::<_, ()>(&conn, &raw, "Resize", &(2u64 << 20, 0u32))
        .await
        .unwrap();
    let info: (i32, u64, u64) = vol_call(&conn, &raw, "GetInfo", &(0u32,)).await.unwrap();
    assert_eq!(info.1, 2 << 20);
    let e = vol_call::<_, ()>(&conn, &raw, "Resize", &(1u64 << 20, 0u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: Can't shrink capacity below current capacity unless shrink flag explicitly specified"
    );
    vol_call::<_, ()>(&conn, &raw2, "Wipe", &(0u32, 0u32))
        .await
        .unwrap();
    let e = vol_call::<_, ()>(&conn, &raw2, "Wipe", &(0u32, 1u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: unsupported flags (0x1) in function storageVolWipePattern"
    );

    // A file made behind the pool's back shows after Refresh, and the
    // pool's Refresh signal arrives (Cockpit waits for it).
    let extern_file = target.join("extern.img");
    std::fs::write(&extern_file, vec![0u8; 4096]).unwrap();
    pool_call::<_, ()>(&conn, &pool, "Refresh", &(0u32,))
        .await
        .unwrap();
    wait_pool_signal(&signals, &pool, "Refresh", None, 1).await;
    let listed: Vec<OwnedObjectPath> = pool_call(&conn, &pool, "ListStorageVolumes", &(0u32,))
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
    assert!(
        listed
            .iter()
            .any(|p| p.as_str() == vol_path(&extern_file.display().to_string()))
    );

    // Autostart is the one writable property.
    conn.call_method(
        Some("org.libvirt"),
        pool.as_str(),
        Some("org.freedesktop.DBus.Properties"),
        "Set",
        &("org.libvirt.StoragePool", "Autostart", Value::from(true)),
    )
    .await
    .unwrap();
    assert!(all_bool(
        &get_all(&conn, &pool, "org.libvirt.StoragePool").await,
        "Autostart"
    ));
    let e = conn
        .call_method(
            Some("org.libvirt"),
            pool.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Set",
            &("org.libvirt.StoragePool", "Name", Value::from("x")),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, zbus::Error::MethodError(n, _, _) if n.as_str() == "org.freedesktop.DBus.Error.InvalidArgs"),
        "{e:?}"
    );

    // Active pools are neither undefined nor deleted.
    let e = pool_call::<_, ()>(&conn, &pool, "Undefine", &())
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: storage pool 'p1' is still active"
    );
    let e = pool_call::<_, ()>(&conn, &pool, "Delete", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: storage pool 'p1' is still active"
    );

    // Delete every volume; a deleted volume is not found any more.
    for (path, file) in [
        (raw.clone(), raw_file.clone()),
        (raw2.to_string(), raw2_file.clone()),
        (qcow.clone(), qcow_file.clone()),
        (
            vol_path(&extern_file.display().to_string()),
            extern_file.clone(),
        ),
    ] {
        vol_call::<_, ()>(&conn, &path, "Delete", &(0u32,))
            .await
            .unwrap();
        assert!(!file.exists(), "{}", file.display());
    }
    let e = vol_call::<_, (i32, u64, u64)>(&conn, &raw, "GetInfo", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        format!(
            "Storage volume not found: no storage vol with matching key {}",
            raw_file.display()
        )
    );

    // Destroy, delete the directory, undefine: STOPPED, DELETED, UNDEFINED.
    pool_call::<_, ()>(&conn, &pool, "Destroy", &())
        .await
        .unwrap();
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((3, 0)), 1).await;
    let e = pool_call::<_, ()>(&conn, &pool, "Destroy", &())
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: storage pool 'p1' is not active"
    );
    let e = pool_call::<_, Vec<OwnedObjectPath>>(&conn, &pool, "ListStorageVolumes", &(0u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: storage pool 'p1' is not active"
    );
    pool_call::<_, ()>(&conn, &pool, "Delete", &(0u32,))
        .await
        .unwrap();
    assert!(!target.exists());
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((5, 0)), 1).await;
    pool_call::<_, ()>(&conn, &pool, "Undefine", &())
        .await
        .unwrap();
    wait_pool_signal(&signals, &pool, "StoragePoolEvent", Some((1, 0)), 1).await;
    assert!(stored_pools(&dirs).is_empty());
    let e = pool_call::<_, (i32, u64, u64, u64)>(&conn, &pool, "GetInfo", &())
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Storage pool not found"), "{e:?}");
    // The lifecycle events came in the order of the calls.
    let order: Vec<i32> = signals
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, m, _)| p == &pool && m == "StoragePoolEvent")
        .filter_map(|(_, _, a)| a.map(|(e, _)| e))
        .collect();
    assert_eq!(order, [0, 4, 2, 3, 5, 1]);

    // A transient pool, built as it starts: STARTED, then gone once stopped.
    let t_uuid = "580e39f3-571a-4ec9-bab1-9ddf97b33884";
    let t_target = dirs.root.join("transient");
    let t = create_xml((
        format!(
            "<pool type='dir'><name>t1</name><uuid>{t_uuid}</uuid>\
             <target><path>{}</path></target></pool>",
            t_target.display()
        ),
        1,
    ))
    .await
    .unwrap();
    assert_eq!(t.as_str(), pool_path(t_uuid));
    assert!(t_target.is_dir());
    wait_pool_signal(&signals, t.as_str(), "StoragePoolEvent", Some((2, 0)), 1).await;
    let all = get_all(&conn, t.as_str(), "org.libvirt.StoragePool").await;
    assert!(all_bool(&all, "Active"));
    assert!(!all_bool(&all, "Persistent"));
    assert!(stored_pools(&dirs).is_empty());
    pool_call::<_, ()>(&conn, t.as_str(), "Destroy", &())
        .await
        .unwrap();
    wait_pool_signal(&signals, t.as_str(), "StoragePoolEvent", Some((3, 0)), 1).await;
    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListStoragePools",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(list.is_empty());
}

// ---- persistence -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_survive_restart_and_broken_files_are_skipped() {
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("persist");
    let conn = client(&bus).await;
    let d = Daemon::start(&bus, &dirs, &conn).await;
    let uuid = "cccccccc-1111-2222-3333-444444444444";
    let xml = domain_xml("keep", uuid, Path::new("/k"), "halt", Path::new("/tmp/x"));
    define(&conn, xml.as_str()).await;
    set_autostart(&conn, dpath(uuid).as_str(), false).await;
    d.kill9();
    std::fs::write(dirs.config().join("broken.xml"), "<domain><name>broken").unwrap();
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListDomains",
        &(0u32,),
    )
    .await
    .unwrap();
    assert_eq!(
        list.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![dpath(uuid)]
    );
    let xml: String = call(
        &conn,
        &dpath(uuid),
        "org.libvirt.Domain",
        "GetXMLDesc",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(xml.contains("<name>keep</name>"), "{xml}");
}

// ---- lifecycle with real guests --------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cockpit_like_lifecycle() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("flow");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let events = watch_events(&conn).await;
    let uuid = "dddddddd-1111-2222-3333-444444444444";
    let p = dpath(uuid);
    let xml = domain_xml("flow", uuid, &kernel, "halt", &dirs.root.join("serial.log"));
    let got = define(&conn, xml.as_str()).await;
    assert_eq!(got.as_str(), p);
    wait_event(&events, &p, 0, 0).await;

    let list: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListDomains",
        &(0u32,),
    )
    .await
    .unwrap();
    assert_eq!(list.len(), 1);
    // GetAll wraps every value twice, as libvirt-dbus does.
    let reply = conn
        .call_method(
            Some("org.libvirt"),
            p.as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &("org.libvirt.Domain",),
        )
        .await
        .unwrap();
    let all: HashMap<String, OwnedValue> = reply.body().deserialize().unwrap();
    match &*all["Name"] {
        Value::Value(inner) => assert_eq!(**inner, Value::from("flow")),
        other => panic!("Name not double-wrapped: {other:?}"),
    }
    assert_eq!(all.len(), 9);
    let caps: String = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "GetDomainCapabilities",
        &("", "x86_64", "pc", "", 0u32),
    )
    .await
    .unwrap();
    assert!(caps.contains("<domainCapabilities>"));

    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();
    wait_event(&events, &p, 2, 0).await;
    assert_eq!(state(&conn, &p).await, (1, 1));
    let live: String = call(&conn, &p, "org.libvirt.Domain", "GetXMLDesc", &(0u32,))
        .await
        .unwrap();
    assert!(live.contains("id='1'"), "{live}");
    // Defining a running domain changes only its persistent definition.
    let bigger = domain_xml("flow", uuid, &kernel, "halt", &dirs.root.join("serial.log")).replace(
        "<memory unit='MiB'>64</memory>",
        "<memory unit='MiB'>96</memory>",
    );
    define(&conn, bigger.as_str()).await;
    wait_event(&events, &p, 0, 1).await;
    let live: String = call(&conn, &p, "org.libvirt.Domain", "GetXMLDesc", &(0u32,))
        .await
        .unwrap();
    assert!(live.contains("<memory unit='KiB'>65536</memory>"), "{live}");
    let inactive: String = call(&conn, &p, "org.libvirt.Domain", "GetXMLDesc", &(2u32,))
        .await
        .unwrap();
    assert!(
        inactive.contains("<memory unit='KiB'>98304</memory>"),
        "{inactive}"
    );
    let e = dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: domain is already running"
    );
    let stats: HashMap<String, OwnedValue> =
        call(&conn, &p, "org.libvirt.Domain", "GetStats", &(45u32, 0u32))
            .await
            .unwrap();
    match &*stats["state.state"] {
        Value::Value(inner) => assert_eq!(**inner, Value::I32(1)),
        other => panic!("state.state not double-wrapped: {other:?}"),
    }
    assert!(stats.contains_key("vcpu.0.time"));
    let all: Vec<(String, HashMap<String, OwnedValue>)> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "GetAllDomainStats",
        &(1u32, 0u32),
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, "flow");
    assert!(all[0].1.contains_key("state.state"));
    assert!(stats.contains_key("balloon.current"));

    let n: u32 = call(&conn, &p, "org.libvirt.Domain", "GetVcpus", &(4u32,))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let e = call::<_, u32>(&conn, &p, "org.libvirt.Domain", "GetVcpus", &(3u32,))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: Flags 'live' and 'config' are mutually exclusive"
    );
    let addrs: Vec<IfaceAddrs> = call(
        &conn,
        &p,
        "org.libvirt.Domain",
        "InterfaceAddresses",
        &(0u32, 0u32),
    )
    .await
    .unwrap();
    assert!(addrs.is_empty());
    let ctl: (u32, u32, u64) = call(&conn, &p, "org.libvirt.Domain", "GetControlInfo", &(0u32,))
        .await
        .unwrap();
    assert_eq!(ctl.0, 0);
    dom_call(&conn, &p, "Suspend", &()).await.unwrap();
    wait_event(&events, &p, 3, 0).await;
    assert_eq!(state(&conn, &p).await, (3, 1));
    dom_call(&conn, &p, "Resume", &()).await.unwrap();
    wait_event(&events, &p, 4, 0).await;
    assert_eq!(state(&conn, &p).await, (1, 5));

    // Reset: a new VMM boots the guest again; the domain stays running.
    let pid_before = vmm_pids(&dirs.run());
    dom_call(&conn, &p, "Reset", &(0u32,)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while vmm_pids(&dirs.run()) == pid_before || vmm_pids(&dirs.run()).is_empty() {
        assert!(Instant::now() < deadline, "no new VMM after Reset");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state(&conn, &p).await, (1, 1));

    let started = Instant::now();
    dom_call(&conn, &p, "Destroy", &(0u32,)).await.unwrap();
    eprintln!("Destroy took {:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_event(&events, &p, 5, 1).await;
    assert_eq!(state(&conn, &p).await, (5, 2));
    assert!(vmm_pids(&dirs.run()).is_empty());

    // A guest that powers itself off: shut off, reason shutdown.
    let xml = domain_xml(
        "flow",
        uuid,
        &kernel,
        "poweroff",
        &dirs.root.join("serial.log"),
    );
    define(&conn, xml.as_str()).await;
    wait_event(&events, &p, 0, 1).await;
    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();
    wait_event(&events, &p, 5, 0).await;
    wait_state(&conn, &p, (5, 1), 10).await;

    // A triple fault resets the machine, as under QEMU: with
    // <on_reboot>destroy</on_reboot> the guest is shut off as after a
    // reboot request (reason shutdown), not crashed.
    let xml = domain_xml(
        "flow",
        uuid,
        &kernel,
        "triple-fault",
        &dirs.root.join("serial.log"),
    )
    .replace("</os>", "</os><on_reboot>destroy</on_reboot>");
    define(&conn, xml.as_str()).await;
    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();
    wait_event(&events, &p, 5, 0).await;
    wait_state(&conn, &p, (5, 1), 10).await;

    dom_call(&conn, &p, "Undefine", &(0u32,)).await.unwrap();
    wait_event(&events, &p, 1, 0).await;
    assert!(!dirs.config().join("flow.xml").exists());

    // A transient domain disappears when it stops.
    let xml = domain_xml(
        "transient",
        uuid,
        &kernel,
        "halt",
        &dirs.root.join("serial.log"),
    );
    let got: OwnedObjectPath = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "DomainCreateXML",
        &(xml.as_str(), 1u32), // START_PAUSED
    )
    .await
    .unwrap();
    assert_eq!(state(&conn, got.as_str()).await, (3, 1));
    wait_event(&events, got.as_str(), 3, 0).await;
    dom_call(&conn, got.as_str(), "Destroy", &(0u32,))
        .await
        .unwrap();
    let e = dom_call(&conn, got.as_str(), "GetXMLDesc", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Domain not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_outlive_the_daemon_and_vmm_crashes_are_seen() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("restart");
    let conn = client(&bus).await;
    let d = Daemon::start(&bus, &dirs, &conn).await;
    let uuids = [
        "eeeeeeee-1111-2222-3333-444444444441",
        "eeeeeeee-1111-2222-3333-444444444442",
    ];
    for (i, u) in uuids.iter().enumerate() {
        let xml = domain_xml(
            &format!("g{i}"),
            u,
            &kernel,
            "halt",
            &dirs.root.join(format!("s{i}.log")),
        );
        define(&conn, xml.as_str()).await;
    }
    // Both start at once: no lock is shared between domains.
    let (p0, p1) = (dpath(uuids[0]), dpath(uuids[1]));
    let (a, b) = tokio::join!(
        dom_call(&conn, &p0, "Create", &(0u32,)),
        dom_call(&conn, &p1, "Create", &(0u32,))
    );
    a.unwrap();
    b.unwrap();
    // A third domain, inactive but marked autostart.
    let auto = "eeeeeeee-1111-2222-3333-444444444443";
    let xml = domain_xml("auto", auto, &kernel, "halt", &dirs.root.join("s3.log"));
    define(&conn, xml.as_str()).await;
    set_autostart(&conn, dpath(auto).as_str(), true).await;
    assert!(dirs.config().join("autostart/auto.xml").exists());
    d.kill9();
    let d2 = Daemon::start(&bus, &dirs, &conn).await;
    let events = watch_events(&conn).await;
    wait_state(&conn, &dpath(auto), (1, 1), 10).await;
    let active: Vec<OwnedObjectPath> = call(
        &conn,
        CONNECT,
        "org.libvirt.Connect",
        "ListDomains",
        &(1u32,),
    )
    .await
    .unwrap();
    let active: BTreeSet<String> = active.iter().map(|p| p.to_string()).collect();
    let want: BTreeSet<String> = uuids.iter().chain([&auto]).map(|u| dpath(u)).collect();
    assert_eq!(active, want);
    // Ids continue after the re-attached ones.
    let live: String = call(
        &conn,
        &dpath(auto),
        "org.libvirt.Domain",
        "GetXMLDesc",
        &(0u32,),
    )
    .await
    .unwrap();
    assert!(live.contains("id='3'"), "{live}");
    for u in &uuids {
        assert_eq!(state(&conn, &dpath(u)).await, (1, 1));
    }
    let mut by_id = BTreeSet::new();
    for id in [1i32, 2] {
        let p: OwnedObjectPath = call(
            &conn,
            CONNECT,
            "org.libvirt.Connect",
            "DomainLookupByID",
            &(id,),
        )
        .await
        .unwrap();
        by_id.insert(p.to_string());
    }
    assert_eq!(
        by_id,
        [dpath(uuids[0]), dpath(uuids[1])].into_iter().collect()
    );
    // Still controllable.
    dom_call(&conn, &dpath(uuids[0]), "Suspend", &())
        .await
        .unwrap();
    assert_eq!(state(&conn, &dpath(uuids[0])).await, (3, 1));
    dom_call(&conn, &dpath(uuids[0]), "Resume", &())
        .await
        .unwrap();

    // kill -9 one VMM: shut off, reason crashed, STOPPED/FAILED event.
    let status = std::fs::read_to_string(dirs.run().join("g1.json")).unwrap();
    let pid = serde_json::from_str::<serde_json::Value>(&status).unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    // SAFETY: pid of a VMM this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_event(&events, &dpath(uuids[1]), 5, 5).await;
    assert_eq!(state(&conn, &dpath(uuids[1])).await, (5, 3));
    assert!(!dirs.run().join("g1.json").exists());

    // Undefining a running domain makes it transient; it goes when it stops.
    dom_call(&conn, &dpath(uuids[0]), "Undefine", &(0u32,))
        .await
        .unwrap();
    assert!(!dirs.config().join("g0.xml").exists());
    let persistent: OwnedValue = conn
        .call_method(
            Some("org.libvirt"),
            dpath(uuids[0]).as_str(),
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &("org.libvirt.Domain", "Persistent"),
        )
        .await
        .unwrap()
        .body()
        .deserialize()
        .unwrap();
    assert_eq!(*persistent, Value::Bool(false));
    assert_eq!(state(&conn, &dpath(uuids[0])).await, (1, 5));
    dom_call(&conn, &dpath(uuids[0]), "Destroy", &(0u32,))
        .await
        .unwrap();
    wait_event(&events, &dpath(uuids[0]), 5, 1).await;
    let e = dom_call(&conn, &dpath(uuids[0]), "GetState", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.starts_with("Domain not found"));
    // SIGTERM: the daemon exits cleanly, the guest keeps running.
    assert!(d2.terminate(), "oxvirtd did not exit cleanly on SIGTERM");
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    assert_eq!(state(&conn, &dpath(auto)).await, (1, 1));
    dom_call(&conn, &dpath(auto), "Destroy", &(0u32,))
        .await
        .unwrap();
}

#[test]
fn shipped_introspection_files_are_current() {
    for name in [
        "Connect",
        "Domain",
        "DomainSnapshot",
        "Interface",
        "Network",
        "NodeDevice",
        "StoragePool",
        "StorageVol",
    ] {
        let out = Command::new(OXVIRTD)
            .args(["--print-introspection", name])
            .output()
            .unwrap();
        assert!(out.status.success());
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("dbus/interfaces/org.libvirt.{name}.xml"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&file).unwrap(),
            "{} is stale: regenerate it with oxvirtd --print-introspection {name}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_presses_the_power_button() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("shutdown");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let events = watch_events(&conn).await;
    let uuid = "ffffffff-1111-2222-3333-444444444444";
    let xml = domain_xml(
        "pb",
        uuid,
        &kernel,
        "powerbutton",
        &dirs.root.join("serial.log"),
    );
    define(&conn, xml.as_str()).await;
    dom_call(&conn, &dpath(uuid), "Create", &(0u32,))
        .await
        .unwrap();
    // The test guest arms its power-button handler after its checks.
    let serial = dirs.root.join("serial.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("waiting for power button")
    {
        assert!(
            Instant::now() < deadline,
            "guest never armed its power button"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dom_call(&conn, &dpath(uuid), "Shutdown", &(0u32,))
        .await
        .unwrap();
    wait_event(&events, &dpath(uuid), 5, 0).await;
    assert_eq!(state(&conn, &dpath(uuid)).await, (5, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dbus_python_client_session() {
    let Some(kernel) = guest_kernel() else { return };
    let python = "/usr/bin/python3";
    let has_dbus = Command::new(python)
        .args(["-c", "import dbus"])
        .current_dir("/")
        .status()
        .is_ok_and(|s| s.success());
    if !has_dbus {
        ci_common::skip("python3-dbus is not installed");
        return;
    }
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("python");
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/dbus/cockpit_flow.py");
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg(&bus.address)
        .arg(&kernel)
        .arg(dirs.root.join("serial.log"))
        .current_dir("/")
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "cockpit_flow.py failed");
    assert!(text.contains(" passed, 0 failed"));
}

// ---- devices: disks and a NIC on a bridge ------------------------------

type Signals = Recorded<(String, String, Option<u64>)>;

/// Records the per-domain signals of `org.libvirt.Domain`.
async fn watch_domain_signals(conn: &Connection) -> Signals {
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.libvirt.Domain")
        .unwrap()
        .build();
    record_signals(conn, rule, |m| {
        let h = m.header();
        let path = h.path().map(|p| p.to_string()).unwrap_or_default();
        let member = h.member().map(|p| p.to_string()).unwrap_or_default();
        let arg = m.body().deserialize::<(u64,)>().ok().map(|(v,)| v);
        Some((path, member, arg))
    })
    .await
}

async fn wait_signal(signals: &Signals, path: &str, member: &str, arg: Option<u64>) {
    wait_recorded(
        signals,
        Duration::from_secs(20),
        1,
        |(p, m, a)| p == path && m == member && *a == arg,
        || format!("no {member}({arg:?}) for {path}"),
    )
    .await
}

fn unwrapped(v: &Value<'_>) -> Value<'static> {
    match v {
        Value::Value(inner) => unwrapped(inner),
        other => other
            .try_to_owned()
            .map(Value::from)
            .unwrap_or(Value::Bool(false)),
    }
}

fn stat_u64(stats: &HashMap<String, OwnedValue>, key: &str) -> u64 {
    match unwrapped(
        stats
            .get(key)
            .unwrap_or_else(|| panic!("no {key}: {stats:?}")),
    ) {
        Value::U64(v) => v,
        Value::U32(v) => u64::from(v),
        other => panic!("{key} is {other:?}"),
    }
}

fn stat_str(stats: &HashMap<String, OwnedValue>, key: &str) -> String {
    match unwrapped(
        stats
            .get(key)
            .unwrap_or_else(|| panic!("no {key}: {stats:?}")),
    ) {
        Value::Str(v) => v.to_string(),
        other => panic!("{key} is {other:?}"),
    }
}

async fn get_stats(conn: &Connection, path: &str, groups: u32) -> HashMap<String, OwnedValue> {
    call(
        conn,
        path,
        "org.libvirt.Domain",
        "GetStats",
        &(groups, 0u32),
    )
    .await
    .expect("GetStats")
}

async fn live_xml(conn: &Connection, path: &str) -> String {
    call(conn, path, "org.libvirt.Domain", "GetXMLDesc", &(0u32,))
        .await
        .expect("GetXMLDesc")
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disks_and_a_nic_on_a_bridge() {
    use netns_common::*;
    let Some(kernel) = guest_kernel() else { return };
    let Some(ns) = Netns::create("dbus") else {
        return;
    };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("devices");
    let Some(disks) = make_disks(&dirs.root) else {
        return;
    };
    let conn = client(&bus).await;
    let d = Daemon::start_in(&bus, &dirs, &conn, Some(&ns)).await;
    let events = watch_events(&conn).await;
    let signals = watch_domain_signals(&conn).await;
    let uuid = "abababab-1111-2222-3333-444444444444";
    let p = dpath(uuid);
    let serial = dirs.root.join("serial.log");
    let xml = devices_xml("devs", uuid, &kernel, &serial, &disks, "net-serve");
    define(&conn, &xml).await;
    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();

    // The tap: made, named as libvirt names it, on the bridge, in the
    // live XML with the device aliases.
    assert_eq!(ns.taps(), vec!["vnet0".to_string()]);
    let link = ns.link("vnet0");
    assert!(link.contains("master br0") && link.contains("UP"), "{link}");
    assert!(link.contains("fe:54:00:6f:78:05"), "{link}");
    let live = live_xml(&conn, &p).await;
    for want in [
        "<target dev='vnet0'/>",
        "<alias name='net0'/>",
        "<alias name='virtio-disk0'/>",
        "<alias name='virtio-disk1'/>",
        "<alias name='balloon0'/>",
    ] {
        assert!(live.contains(want), "{want} missing from\n{live}");
    }
    let inactive: String = call(&conn, &p, "org.libvirt.Domain", "GetXMLDesc", &(2u32,))
        .await
        .unwrap();
    assert!(!inactive.contains("vnet0"), "{inactive}");

    // Block and interface statistics once the guest's checks ran.
    blocking(|| wait_serial(&serial, "stats requested by the device"));
    let st = get_stats(&conn, &p, 16 | 32).await;
    assert_eq!(stat_u64(&st, "block.count"), 2);
    assert_eq!(stat_str(&st, "block.0.name"), "vda");
    assert_eq!(stat_str(&st, "block.0.path"), disks.0.display().to_string());
    assert_eq!(stat_str(&st, "block.1.name"), "vdb");
    for i in 0..2 {
        // Three reads of 8 sectors and one 8-sector write with a flush.
        assert!(stat_u64(&st, &format!("block.{i}.rd.reqs")) >= 3);
        assert_eq!(stat_u64(&st, &format!("block.{i}.wr.reqs")), 1);
        assert_eq!(stat_u64(&st, &format!("block.{i}.wr.bytes")), 4096);
        assert_eq!(stat_u64(&st, &format!("block.{i}.fl.reqs")), 1);
        // Like libvirt's QEMU driver, no error count.
        assert!(!st.contains_key(&format!("block.{i}.errors")));
        assert_eq!(stat_u64(&st, &format!("block.{i}.capacity")), 16384 * 512);
    }
    assert_eq!(stat_u64(&st, "net.count"), 1);
    assert_eq!(stat_str(&st, "net.0.name"), "vnet0");
    // The guest broadcast its test frames: sent by the guest, as the
    // guest sees it (the host counters swapped, like libvirt).
    assert!(stat_u64(&st, "net.0.tx.pkts") >= 4, "{st:?}");
    assert_eq!(stat_u64(&st, "net.0.tx.errs"), 0);

    // Live memory through the balloon: the guest inflates, the domain
    // follows with BalloonChange.
    let e = dom_call(&conn, &p, "SetMemory", &(MEMORY_KIB * 2, 1u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "invalid argument: cannot set memory higher than max memory"
    );
    let e = dom_call(&conn, &p, "SetMemory", &(MEMORY_KIB, 5u32))
        .await
        .unwrap_err();
    assert_eq!(
        e.1,
        "Requested operation is not valid: cannot resize the maximum memory on an active domain"
    );
    let target = MEMORY_KIB - BALLOON_KIB;
    dom_call(&conn, &p, "SetMemory", &(target, 1u32))
        .await
        .unwrap();
    wait_signal(&signals, &p, "BalloonChange", Some(target)).await;
    let st = get_stats(&conn, &p, 4).await;
    assert_eq!(stat_u64(&st, "balloon.current"), target);
    assert_eq!(stat_u64(&st, "balloon.maximum"), MEMORY_KIB);
    let mem: HashMap<i32, u64> = call(&conn, &p, "org.libvirt.Domain", "MemoryStats", &(0u32,))
        .await
        .unwrap();
    assert_eq!(mem.get(&6), Some(&target));

    // Addresses from the host's neighbour table while the guest serves.
    blocking(|| wait_serial(&serial, "net-serve for"));
    blocking(|| ns.resolve_guest());
    // The lease source knows guests on virtual networks only, as
    // libvirt's; this one is on a host bridge.
    let leases: Vec<IfaceAddrs> = call(
        &conn,
        &p,
        "org.libvirt.Domain",
        "InterfaceAddresses",
        &(0u32, 0u32),
    )
    .await
    .unwrap();
    assert_eq!(leases, vec![]);
    for source in [2u32] {
        let addrs: Vec<IfaceAddrs> = call(
            &conn,
            &p,
            "org.libvirt.Domain",
            "InterfaceAddresses",
            &(source, 0u32),
        )
        .await
        .unwrap();
        assert_eq!(
            addrs,
            vec![(
                "vnet0".to_string(),
                GUEST_MAC.to_string(),
                vec![(0, GUEST_IP.to_string(), 0)]
            )]
        );
    }

    // A reset boots a new VMM on the same tap, with the Reboot signal.
    dom_call(&conn, &p, "Reset", &(0u32,)).await.unwrap();
    wait_signal(&signals, &p, "Reboot", None).await;
    assert_eq!(state(&conn, &p).await, (1, 1));
    assert_eq!(ns.taps(), vec!["vnet0".to_string()]);

    // The daemon goes and comes back: the guest keeps its tap, the
    // live XML its name, and stopping it removes the tap.
    d.kill9();
    assert_eq!(ns.taps(), vec!["vnet0".to_string()]);
    let d = Daemon::start_in(&bus, &dirs, &conn, Some(&ns)).await;
    let events2 = watch_events(&conn).await;
    assert!(live_xml(&conn, &p).await.contains("<target dev='vnet0'/>"));
    let st = get_stats(&conn, &p, 16).await;
    assert_eq!(stat_str(&st, "net.0.name"), "vnet0");
    dom_call(&conn, &p, "Destroy", &(0u32,)).await.unwrap();
    wait_event(&events2, &p, 5, 1).await;
    assert!(ns.taps().is_empty(), "{:?}", ns.taps());

    // A VMM that dies takes its tap along.
    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();
    assert_eq!(ns.taps().len(), 1);
    let pid = vmm_pids(&dirs.run())[0];
    // SAFETY: pid of a VMM this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_event(&events2, &p, 5, 5).await;
    assert!(ns.taps().is_empty(), "{:?}", ns.taps());
    drop(events);

    // Starts that fail after a tap was made leave none behind.
    let bad = [
        (
            "abababab-1111-2222-3333-444444444445",
            xml.replace(
                "</devices>",
                "<interface type='bridge'><source bridge='nobr0'/><model type='virtio'/></interface></devices>",
            ),
            "Cannot get interface MTU on 'nobr0': No such device".to_string(),
        ),
        (
            "abababab-1111-2222-3333-444444444446",
            xml.replace(
                "</devices>",
                "<interface type='ethernet'><target dev='notap0' managed='no'/><model type='virtio'/></interface></devices>",
            ),
            "internal error: target managed='no' but specified dev doesn't exist".to_string(),
        ),
    ];
    for (i, (u, x, want)) in bad.iter().enumerate() {
        let x = x
            .replace("<name>devs</name>", &format!("<name>bad{i}</name>"))
            .replace(uuid, u);
        define(&conn, &x).await;
        let e = dom_call(&conn, &dpath(u), "Create", &(0u32,))
            .await
            .unwrap_err();
        assert_eq!(&e.1, want);
        assert!(ns.taps().is_empty(), "{:?}", ns.taps());
        assert_eq!(state(&conn, &dpath(u)).await, (5, 0));
    }
    // The VMM itself fails (a disk that is not qcow2): the tap goes too.
    let garbage = dirs.root.join("garbage.qcow2");
    std::fs::write(&garbage, vec![0x5a; 65536]).unwrap();
    let u = "abababab-1111-2222-3333-444444444447";
    let x = xml
        .replace("<name>devs</name>", "<name>bad2</name>")
        .replace(uuid, u)
        .replace(
            &disks.1.display().to_string(),
            &garbage.display().to_string(),
        );
    define(&conn, &x).await;
    let e = dom_call(&conn, &dpath(u), "Create", &(0u32,))
        .await
        .unwrap_err();
    assert!(e.1.contains("Not a qcow2 file"), "{e:?}");
    assert!(ns.taps().is_empty(), "{:?}", ns.taps());
    // Nothing beside the storage and network drivers' own state
    // directories.
    let leftovers: Vec<_> = std::fs::read_dir(dirs.run())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "storage" && n != "network")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethernet_taps_vsock_rng_and_a_virtio_console() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(ns) = netns_common::Netns::create("eth") else {
        return;
    };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("ethernet");
    let conn = client(&bus).await;
    let _d = Daemon::start_in(&bus, &dirs, &conn, Some(&ns)).await;
    // A tap made beforehand, for managed='no'.
    assert!(ns.ip(&["tuntap", "add", "dev", "ext0", "mode", "tap"]));
    let uuid = "cdcdcdcd-1111-2222-3333-444444444444";
    let p = dpath(uuid);
    let xml = domain_xml("eth", uuid, &kernel, "halt", &dirs.root.join("s.log")).replace(
        "</devices>",
        "<interface type='ethernet'><target dev='ext0' managed='no'/><model type='virtio'/></interface>\
         <interface type='ethernet'><target dev='mine0'/><model type='virtio'/></interface>\
         <interface type='ethernet'><model type='virtio'/></interface>\
         <console type='pty'><target type='virtio'/></console>\
         <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
         <vsock model='virtio'><cid auto='yes'/></vsock></devices>",
    );
    define(&conn, &xml).await;
    dom_call(&conn, &p, "Create", &(0u32,)).await.unwrap();
    let mut taps = ns.taps();
    taps.sort();
    assert_eq!(taps, ["ext0", "mine0", "vnet0"]);
    assert!(ns.link("mine0").contains("UP"), "{}", ns.link("mine0"));
    assert!(!ns.link("mine0").contains("master"));
    let live = live_xml(&conn, &p).await;
    for want in [
        "<target dev='ext0' managed='no'/>",
        "<target dev='mine0'/>",
        "<target dev='vnet0'/>",
        "<alias name='net2'/>",
        "<cid auto='yes' address='3'/>",
        "<alias name='vsock0'/>",
        "<alias name='rng0'/>",
        "<alias name='console1'/>",
    ] {
        assert!(live.contains(want), "{want} missing from\n{live}");
    }
    // The virtio console's pty, as the live XML names it.
    let console = live
        .split("<console type='pty' tty='")
        .nth(1)
        .and_then(|c| c.split('\'').next())
        .unwrap_or_default();
    assert!(console.starts_with("/dev/pts/"), "{live}");
    assert!(
        live.contains(&format!(
            "<source path='{console}'/>\n      <target type='virtio' port='0'/>"
        )),
        "{live}"
    );
    let vsock = dirs.run().join(format!("{uuid}.vsock"));
    assert!(vsock.exists());
    dom_call(&conn, &p, "Destroy", &(0u32,)).await.unwrap();
    // The taps made for the guest go; the one it was given stays.
    assert_eq!(ns.taps(), ["ext0"]);
    assert!(!vsock.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_and_stale_temporaries_go() {
    use std::os::unix::fs::PermissionsExt;
    let Some(kernel) = guest_kernel() else { return };
    let Some(bus) = Bus::start() else { return };
    let dirs = Dirs::new("files");
    // What a daemon killed in the middle of a write leaves behind.
    std::fs::create_dir_all(dirs.config()).unwrap();
    let stale = dirs.config().join(".old.xml.tmp4242");
    std::fs::write(&stale, "<domain").unwrap();
    let conn = client(&bus).await;
    let _d = Daemon::start(&bus, &dirs, &conn).await;
    assert!(!stale.exists(), "the stale temporary file is still there");

    let uuid = "f11e5000-1111-2222-3333-444444444444";
    let serial = dirs.root.join("serial.log");
    define(
        &conn,
        domain_xml("private", uuid, &kernel, "powerbutton", &serial).as_str(),
    )
    .await;
    dom_call(&conn, &dpath(uuid), "Create", &(0u32,))
        .await
        .unwrap();
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    for f in [
        dirs.config().join("private.xml"),
        dirs.run().join("private.json"),
        dirs.state().join("log").join("private.log"),
    ] {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    for d in [dirs.run(), dirs.state().join("log")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    dom_call(&conn, &dpath(uuid), "Destroy", &(0u32,))
        .await
        .unwrap();

    // A guest the host cannot hold: the VMM's own words, not a timeout.
    let big = "f11e5000-1111-2222-3333-444444444445";
    let xml = domain_xml("huge", big, &kernel, "halt", &dirs.root.join("huge.log")).replace(
        "<memory unit='MiB'>64</memory>",
        "<memory unit='TiB'>64</memory>",
    );
    define(&conn, xml.as_str()).await;
    let e = dom_call(&conn, &dpath(big), "Create", &(0u32,))
        .await
        .unwrap_err();
    assert!(
        !e.1.contains("in time") && e.1.contains("process exited"),
        "{e:?}"
    );
}
