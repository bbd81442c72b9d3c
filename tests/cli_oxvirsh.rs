//! `oxvirsh` end to end: a private D-Bus bus, `oxvirtd` in temp dirs,
//! real test guests. Where the daemon also serves libvirt's RPC and
//! `virsh` is installed, every query is run through both clients at the
//! same moment and their stdout, stderr and exit status must match byte
//! for byte; otherwise outputs are checked against virsh 9.0's layouts.
//!
//! Tests that boot guests need /dev/kvm and the test guest
//! (`make -C compat-tests/guest/testos`); without them they say why and
//! return early.

mod ci_common;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const OXVIRSH: &str = env!("CARGO_BIN_EXE_oxvirsh");
const OXVIRTD: &str = env!("CARGO_BIN_EXE_oxvirtd");
const VMM: &str = env!("CARGO_BIN_EXE_oxvirt-vmm");

mod netns_common;

struct Env {
    /// Dropped after the daemon is stopped.
    bus: ci_common::PrivateBus,
    daemon: Option<Child>,
    root: PathBuf,
    rpc: Option<PathBuf>,
    /// The network namespace the daemon runs in, if any.
    netns: Option<String>,
    /// The daemon's configuration file, if not the default.
    conf: Option<PathBuf>,
}

fn has_virsh() -> bool {
    Command::new("virsh")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Env {
    fn start(tag: &str) -> Option<Env> {
        Env::start_in(tag, None)
    }

    /// A daemon reading `conf` as its oxvirtd.conf.
    fn start_with_conf(tag: &str, conf: &str) -> Option<Env> {
        let mut env = Env::start_in(tag, None)?;
        env.stop_daemon();
        env.write("oxvirtd.conf", conf);
        env.conf = Some(env.root.join("oxvirtd.conf"));
        env.start_daemon();
        Some(env)
    }

    fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: signalling the daemon this test started.
            unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
            let _ = d.wait();
        }
    }

    /// The daemon inside the network namespace `netns`, if given.
    fn start_in(tag: &str, netns: Option<&netns_common::Netns>) -> Option<Env> {
        let bus = ci_common::PrivateBus::start()?;
        let root = std::env::temp_dir().join(format!(
            "oxvirsh-test-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).ok()?;
        let help = Command::new(OXVIRTD).arg("--help").output().ok()?;
        let rpc = String::from_utf8_lossy(&help.stdout)
            .contains("--rpc-socket")
            .then(|| root.join("rpc.sock"));
        let mut env = Env {
            bus,
            daemon: None,
            root,
            rpc,
            netns: netns.map(|n| n.name.clone()),
            conf: None,
        };
        env.start_daemon();
        Some(env)
    }

    fn start_daemon(&mut self) {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, OXVIRTD]);
                c
            }
            None => Command::new(OXVIRTD),
        };
        cmd.arg("--bus-address")
            .arg(&self.bus.address)
            .arg("--config-dir")
            .arg(self.root.join("config"))
            .arg("--run-dir")
            .arg(self.root.join("run"))
            .arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--vmm")
            .arg(VMM)
            .env("RUST_LOG", "info,zbus=error")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.root.join("oxvirtd.log"))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        if let Some(r) = &self.rpc {
            cmd.arg("--rpc-socket").arg(r);
        }
        if let Some(c) = &self.conf {
            cmd.arg("--config").arg(c);
        }
        self.daemon = Some(cmd.spawn().expect("spawn oxvirtd"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ox(&["list"]).status.success() {
            if Instant::now() >= deadline {
                let exited = self
                    .daemon
                    .as_mut()
                    .and_then(|d| d.try_wait().ok().flatten());
                let log =
                    std::fs::read_to_string(self.root.join("oxvirtd.log")).unwrap_or_default();
                panic!("oxvirtd did not come up (exit: {exited:?}); its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ox_cmd(&self) -> Command {
        let mut c = Command::new(OXVIRSH);
        c.arg("--bus-address").arg(&self.bus.address);
        c.env_remove("LIBVIRT_DEFAULT_URI");
        c
    }

    fn ox(&self, args: &[&str]) -> Output {
        self.ox_cmd()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run oxvirsh")
    }

    fn virsh(&self, args: &[&str]) -> Option<Output> {
        let rpc = self.rpc.as_ref()?;
        if !has_virsh() {
            return None;
        }
        let uri = format!("qemu:///system?socket={}", rpc.display());
        Command::new("virsh")
            .arg("-c")
            .arg(uri)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
    }

    /// Runs `args` through oxvirsh and, when possible, virsh; they must
    /// agree. Returns oxvirsh's stdout.
    fn same(&self, args: &[&str]) -> String {
        let ours = self.ox(args);
        if let Some(theirs) = self.virsh(args) {
            // libvirt's client may add a polkit notice on stderr.
            let their_err: String = String::from_utf8_lossy(&theirs.stderr)
                .lines()
                .filter(|l| !l.starts_with("Authorization not available"))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(
                steady(&String::from_utf8_lossy(&ours.stdout)),
                steady(&String::from_utf8_lossy(&theirs.stdout)),
                "stdout of {args:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&ours.stderr),
                their_err,
                "stderr of {args:?}"
            );
            assert_eq!(
                ours.status.code(),
                theirs.status.code(),
                "status of {args:?}"
            );
        }
        String::from_utf8_lossy(&ours.stdout).into_owned()
    }

    /// Runs an oxvirsh command that must succeed and print `want`.
    fn ok(&self, args: &[&str], want: &str) {
        let o = self.ox(args);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            want,
            "{args:?}: stderr {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{args:?}");
    }

    /// Runs an oxvirsh command that must fail with `err` on stderr.
    fn fails(&self, args: &[&str], err: &str) {
        let o = self.ox(args);
        assert_eq!(String::from_utf8_lossy(&o.stderr), err, "{args:?}");
        assert_eq!(String::from_utf8_lossy(&o.stdout), "\n", "{args:?}");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.root.join(name);
        std::fs::write(&p, text).expect("write file");
        p.display().to_string()
    }

    /// `oxvirsh event` on `dom`'s lifecycle for `secs` seconds, given a
    /// second to subscribe before it returns.
    fn lifecycle_events(&self, dom: &str, secs: u32) -> Child {
        let child = self
            .ox_cmd()
            .args([
                "event",
                "--domain",
                dom,
                "--event",
                "lifecycle",
                "--timeout",
            ])
            .arg(secs.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("event");
        std::thread::sleep(Duration::from_millis(1000));
        child
    }

    fn wait_state(&self, dom: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let o = self.ox(&["domstate", dom]);
            if String::from_utf8_lossy(&o.stdout) == format!("{want}\n\n") {
                return;
            }
            assert!(Instant::now() < deadline, "{dom} never became {want}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for d in ["g1", "g2", "t1", "d1"] {
            let _ = self.ox(&["destroy", d]);
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Output without the values that change between two runs a moment
/// apart: the CPU time of a running guest (virsh leaves the line out
/// while it is still 0).
fn steady(s: &str) -> String {
    // A vCPU's time and the host CPU it last ran on change from one call
    // to the next, and so may the VMM's resident memory by a page or two:
    // the RSS is compared as a number, not its value.
    s.lines()
        .filter(|l| !l.starts_with("CPU time:") && !l.starts_with("CPU: "))
        .map(|l| match l.strip_prefix("rss ") {
            Some(v) if v.parse::<u64>().is_ok() => "rss N".to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn guest_kernel() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat-tests/guest/out/testos.elf");
    if !Path::new("/dev/kvm").exists() {
        ci_common::skip("/dev/kvm is not available");
        return None;
    }
    if !p.exists() {
        ci_common::skip("build the test guest with `make -C compat-tests/guest/testos`");
        return None;
    }
    Some(p)
}

fn guest_xml(name: &str, uuid: &str, kernel: &Path, then: &str) -> String {
    format!(
        "<domain type='kvm'><name>{name}</name><uuid>{uuid}</uuid>\
         <memory unit='MiB'>64</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64'>hvm</type><kernel>{}</kernel>\
         <cmdline>oxtest.then={then}</cmdline></os>\
         <devices><serial type='pty'/><console type='pty'/></devices></domain>",
        kernel.display()
    )
}

const U1: &str = "11111111-2222-3333-4444-555555555555";
const U2: &str = "22222222-2222-3333-4444-555555555555";

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("compat-tests/cli")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn host_commands_and_errors() {
    let Some(env) = Env::start("host") else {
        return;
    };
    assert_eq!(
        env.same(&["list"]),
        " Id   Name   State\n--------------------\n\n"
    );
    env.same(&["list", "--all"]);
    env.same(&["list", "--name"]);
    env.same(&["hostname"]);
    env.same(&["capabilities"]);
    env.same(&["sysinfo"]);
    env.same(&["dominfo", "nosuch"]);
    env.same(&["domstate", "--domain", "nosuch"]);
    env.same(&["start", "nosuch"]);
    env.same(&["define", "/nonexistent/file.xml"]);
    let bad = env.write("bad.xml", "<domain");
    env.same(&["define", &bad]);
    env.same(&["create", &bad]);
    env.fails(
        &["dominfo", "nosuch"],
        "error: failed to get domain 'nosuch'\n",
    );
    // CPU frequency comes from the capabilities' TSC counter over D-Bus and
    // from /proc/cpuinfo over RPC, as with libvirt-dbus and virsh.
    let info = env.same(&["nodeinfo"]);
    assert!(info.starts_with("CPU model:           x86_64\n"), "{info}");
    assert!(!info.contains("CPU frequency:       0 MHz"), "{info}");
    let v = env.same(&["version"]);
    assert!(v.contains("\nRunning hypervisor: QEMU 7.2.0\n"), "{v}");
    env.ok(&["-c", "qemu:///system", "uri"], "qemu:///system\n\n");
    let o = env.ox(&["bogus"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "error: unknown command: 'bogus'\n"
    );
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn completions_manpage_and_shell() {
    let Some(env) = Env::start("shell") else {
        return;
    };
    for sh in ["bash", "zsh", "fish"] {
        let o = env.ox(&["completions", sh]);
        assert!(o.status.success());
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("dominfo"),
            "{sh}"
        );
    }
    let man = env.ox(&["manpage"]);
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH oxvirsh 1"));
    let mut child = env
        .ox_cmd()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shell");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"list --all; uri\ndominfo nosuch\nquit\nlist\n")
        .expect("write");
    let o = child.wait_with_output().expect("shell output");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("Welcome to oxvirsh, the virtualization interactive terminal.\n"));
    assert!(
        out.contains(" Id   Name   State\n--------------------\n\n"),
        "{out}"
    );
    assert_eq!(
        out.matches(" Id   Name").count(),
        1,
        "quit stops the shell: {out}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("error: failed to get domain 'nosuch'\n"));
    assert!(o.status.success());
}

#[test]
fn domain_commands_match_virsh() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(env) = Env::start("dom") else { return };
    let f1 = env.write("g1.xml", &guest_xml("g1", U1, &kernel, "halt"));
    let f2 = env.write("g2.xml", &guest_xml("g2", U2, &kernel, "powerbutton"));
    env.ok(
        &["define", &f1],
        &format!("Domain 'g1' defined from {f1}\n\n"),
    );
    env.ok(
        &["define", "--file", &f2],
        &format!("Domain 'g2' defined from {f2}\n\n"),
    );
    let list = env.same(&["list", "--all"]);
    assert_eq!(
        list,
        " Id   Name   State\n-----------------------\n -    g1     shut off\n -    g2     shut off\n\n"
    );
    for q in [
        &["dominfo", "g1"][..],
        &["domstate", "g1", "--reason"],
        &["domid", "g1"],
        &["domuuid", "g1"],
        &["domname", U1],
        &["dumpxml", "g1"],
        &["dumpxml", "g1", "--inactive"],
        &["dumpxml", "g1", "--xpath", "//serial"],
        &["dumpxml", "g1", "--xpath", "/domain/devices/*", "--wrap"],
        &["dumpxml", "g1", "--xpath", "//target/@port"],
        &["domblklist", "g1"],
        &["domiflist", "g1"],
        &["vcpuinfo", "g1"],
        &["list", "--inactive"],
        &["list", "--state-shutoff", "--name"],
        &["list", "--all", "--uuid"],
        &["reboot", "g1"],
        &["resume", "g1"],
        &["dommemstat", "g1"],
    ] {
        env.same(q);
    }
    assert_eq!(
        env.same(&["domstate", "g1", "--reason"]),
        "shut off (unknown)\n\n"
    );

    // vCPU counts of the definition; both clients apply each change, so
    // each one is idempotent or an error.
    for q in [
        &["setvcpus", "g1", "2", "--maximum", "--config"][..],
        &["vcpucount", "g1"],
        &["setvcpus", "g1", "2", "--config"],
        &["setvcpus", "g1", "1", "--current"],
        &["dumpxml", "g1", "--xpath", "//vcpu"],
        &["setvcpus", "g1", "3", "--config"],
        &["setvcpus", "g1", "0", "--config"],
        &["setvcpus", "g1", "1"],
        &["setvcpus", "g1", "1", "--guest"],
        &["setvcpus", "g1", "1", "--current", "--live"],
        &["setvcpus", "g1", "1", "--guest", "--config"],
        &["setvcpus", "g1", "two"],
        &["setmem", "g1", "64M", "--current", "--config"],
        &["setmem", "g1", "64M", "--current", "--live"],
    ] {
        env.same(q);
    }
    assert!(
        env.same(&["dumpxml", "g1", "--xpath", "//vcpu"])
            .contains("current=\"1\">2</vcpu>")
    );

    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    env.fails(&["start", "g1"], "error: Domain is already active\n");
    // A running guest keeps the vCPUs it booted with.
    for q in [
        &["setvcpus", "g1", "1"][..],
        &["setvcpus", "g1", "2", "--live"],
        &["setvcpus", "g1", "2", "--maximum", "--live"],
        &["setvcpus", "g1", "2", "--maximum", "--live", "--config"],
        &["setvcpus", "g1", "2", "--config"],
        &["vcpucount", "g1"],
        &["vcpucount", "g1", "--live"],
        &["vcpucount", "g1", "--config", "--maximum"],
        &["vcpucount", "g1", "--current"],
        &["vcpucount", "g1", "--maximum", "--current"],
        &["vcpucount", "g1", "--active", "--maximum"],
        &["vcpucount", "g1", "--guest"],
        &["setvcpus", "g1", "1", "--config"],
    ] {
        env.same(q);
    }
    env.ok(&["start", U2], "Domain 'g2' started\n\n");
    assert_eq!(
        env.same(&["domstate", "g1", "--reason"]),
        "running (booted)\n\n"
    );
    for q in [
        &["list"][..],
        &["list", "--all"],
        &["list", "--state-running"],
        &["dominfo", "g2"],
        &["domid", "g1"],
        &["vcpuinfo", "g2"],
        &["dommemstat", "g1"],
        &["domblkstat", "g1", "vda"],
        &["domifstat", "g1", "vnet0"],
        &["dumpxml", "g1", "--xpath", "//console"],
        &["start", "g1"],
    ] {
        env.same(q);
    }
    env.ok(&["suspend", "g1"], "Domain 'g1' suspended\n\n");
    assert_eq!(
        env.same(&["domstate", "g1", "--reason"]),
        "paused (user)\n\n"
    );
    env.same(&["list", "--state-paused"]);
    env.same(&["list", "--state-running"]);
    env.ok(&["resume", "g1"], "Domain 'g1' resumed\n\n");
    env.same(&["resume", "g1"]);
    assert_eq!(
        env.same(&["domstate", "g1", "--reason"]),
        "running (unpaused)\n\n"
    );
    env.ok(
        &["autostart", "g1"],
        "Domain 'g1' marked as autostarted\n\n",
    );
    env.same(&["dominfo", "g1"]);
    env.ok(
        &["autostart", "--disable", "g1"],
        "Domain 'g1' unmarked as autostarted\n\n",
    );
    env.ok(&["reboot", "g1"], "Domain 'g1' is being rebooted\n\n");
    // The daemon restarts the guest's VMM on reboot; let that finish.
    std::thread::sleep(Duration::from_secs(2));
    env.wait_state("g1", "running");
    env.ok(&["reset", "g1"], "Domain 'g1' was reset\n\n");
    env.wait_state("g1", "running");
    env.ok(&["shutdown", "g2"], "Domain 'g2' is being shutdown\n\n");
    env.wait_state("g2", "shut off");
    assert_eq!(
        env.same(&["domstate", "g2", "--reason"]),
        "shut off (shutdown)\n\n"
    );
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");
    assert_eq!(
        env.same(&["domstate", "g1", "--reason"]),
        "shut off (destroyed)\n\n"
    );
    env.same(&["destroy", "g1"]);

    let t = env.write(
        "t1.xml",
        &guest_xml(
            "t1",
            "33333333-2222-3333-4444-555555555555",
            &kernel,
            "halt",
        ),
    );
    env.ok(
        &["create", &t],
        &format!("Domain 't1' created from {t}\n\n"),
    );
    env.same(&["dominfo", "t1"]);
    env.same(&["list"]);
    env.ok(&["destroy", "t1"], "Domain 't1' destroyed\n\n");
    env.same(&["dominfo", "t1"]);

    env.ok(&["undefine", "g2"], "Domain 'g2' has been undefined\n\n");
    env.ok(
        &["undefine", "g1", "--remove-all-storage"],
        "Domain 'g1' has been undefined\n\n",
    );
    env.same(&["list", "--all"]);
}

#[test]
fn edit_with_scripted_editor() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(env) = Env::start("edit") else {
        return;
    };
    let f1 = env.write("g1.xml", &guest_xml("g1", U1, &kernel, "halt"));
    env.ok(
        &["define", &f1],
        &format!("Domain 'g1' defined from {f1}\n\n"),
    );
    let before = env.ox(&["dumpxml", "--inactive", "g1"]).stdout;

    let o = env
        .ox_cmd()
        .args(["edit", "g1"])
        .env("EDITOR", script("editor-invalid.sh"))
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .expect("edit");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(env.ox(&["dumpxml", "--inactive", "g1"]).stdout, before);

    let info = String::from_utf8_lossy(&env.ox(&["dominfo", "g1"]).stdout).into_owned();
    assert!(info.contains("Max memory:     65536 KiB\n"), "{info}");
    let o = env
        .ox_cmd()
        .args(["edit", "g1"])
        .env("EDITOR", script("editor-memory.sh"))
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .expect("edit");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Domain 'g1' XML configuration edited.\n\n"
    );
    assert!(o.status.success());
    let info = String::from_utf8_lossy(&env.ox(&["dominfo", "g1"]).stdout).into_owned();
    assert!(info.contains("Max memory:     32768 KiB\n"), "{info}");
    env.same(&["dominfo", "g1"]);

    let o = env
        .ox_cmd()
        .args(["edit", "g1"])
        .env("EDITOR", "true")
        .env_remove("VISUAL")
        .stdin(Stdio::null())
        .output()
        .expect("edit");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Domain 'g1' XML configuration not changed.\n\n"
    );
    env.ok(&["undefine", "g1"], "Domain 'g1' has been undefined\n\n");
}

#[test]
fn console_through_a_pty() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(env) = Env::start("console") else {
        return;
    };
    let f1 = env.write("g1.xml", &guest_xml("g1", U1, &kernel, "halt"));
    env.ok(
        &["define", &f1],
        &format!("Domain 'g1' defined from {f1}\n\n"),
    );
    env.fails(&["console", "g1"], "error: The domain is not running\n");
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    let o = Command::new("python3")
        .arg(script("console_pty.py"))
        .arg(OXVIRSH)
        .arg("--bus-address")
        .arg(&env.bus.address)
        .arg("console")
        .arg("g1")
        .output()
        .expect("python3");
    let report: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("console_pty.py report");
    let out = report["output"].as_str().unwrap_or_default();
    assert!(
        out.starts_with("Connected to domain 'g1'\r\nEscape character is ^] (Ctrl + ])\r\n"),
        "{out}"
    );
    assert!(
        out.contains("testos"),
        "guest output reaches the terminal: {out}"
    );
    assert_eq!(report["raw_while_attached"], true, "{report}");
    assert_eq!(report["restored"], true, "{report}");
    assert_eq!(report["status"], 0, "{report}");
    // The guest keeps running after the client detached.
    env.ok(&["domstate", "g1"], "running\n\n");
    env.fails(
        &["console", "g1", "--devname", "nosuch"],
        "error: internal error: cannot find character device nosuch\n",
    );
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");

    // A serial port written to a file has no console to attach to.
    let log = env.root.join("g2-serial.log");
    let f2 = env.write(
        "g2.xml",
        &guest_xml("g2", U2, &kernel, "halt").replace(
            "<serial type='pty'/><console type='pty'/>",
            &format!(
                "<serial type='file'><source path='{}'/></serial>",
                log.display()
            ),
        ),
    );
    env.ok(
        &["create", &f2],
        &format!("Domain 'g2' created from {f2}\n\n"),
    );
    env.fails(
        &["console", "g2"],
        "error: Operation not supported: character device serial0 is not using a PTY\n",
    );
    env.ok(&["destroy", "g2"], "Domain 'g2' destroyed\n\n");
}

#[test]
fn events_match_virsh() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(env) = Env::start("events") else {
        return;
    };
    let f1 = env.write("g1.xml", &guest_xml("g1", U1, &kernel, "halt"));
    let ours = env
        .ox_cmd()
        .args(["event", "--all", "--loop", "--timeout", "8"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("event");
    let theirs = match (&env.rpc, has_virsh()) {
        (Some(r), true) => Command::new("virsh")
            .arg("-c")
            .arg(format!("qemu:///system?socket={}", r.display()))
            .args(["event", "--all", "--loop", "--timeout", "8"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok(),
        _ => None,
    };
    std::thread::sleep(Duration::from_millis(1500));
    env.ok(
        &["define", &f1],
        &format!("Domain 'g1' defined from {f1}\n\n"),
    );
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    env.ok(&["suspend", "g1"], "Domain 'g1' suspended\n\n");
    env.ok(&["resume", "g1"], "Domain 'g1' resumed\n\n");
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");
    env.ok(&["undefine", "g1"], "Domain 'g1' has been undefined\n\n");
    let o = ours.wait_with_output().expect("event output");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(
        text,
        "event 'lifecycle' for domain 'g1': Defined Added\n\
         event 'lifecycle' for domain 'g1': Started Booted\n\
         event 'lifecycle' for domain 'g1': Suspended Paused\n\
         event 'lifecycle' for domain 'g1': Resumed Unpaused\n\
         event 'lifecycle' for domain 'g1': Stopped Destroyed\n\
         event 'lifecycle' for domain 'g1': Undefined Removed\n\
         event loop timed out\n\
         events received: 6\n\n"
    );
    if let Some(t) = theirs {
        let v = t.wait_with_output().expect("virsh event output");
        assert_eq!(text, String::from_utf8_lossy(&v.stdout));
    }
}

#[test]
fn device_stats_match_virsh() {
    use netns_common::*;
    let Some(kernel) = guest_kernel() else { return };
    let Some(ns) = Netns::create("cli") else {
        return;
    };
    let Some(env) = Env::start_in("devs", Some(&ns)) else {
        return;
    };
    let Some(disks) = make_disks(&env.root) else {
        return;
    };
    let serial = env.root.join("serial.log");
    let f = env.write(
        "d1.xml",
        &devices_xml(
            "d1",
            "44444444-2222-3333-4444-555555555555",
            &kernel,
            &serial,
            &disks,
            "halt",
        ),
    );
    env.ok(
        &["define", &f],
        &format!("Domain 'd1' defined from {f}\n\n"),
    );
    env.ok(&["start", "d1"], "Domain 'd1' started\n\n");
    // Once the guest halts, nothing moves: both clients see the same counters.
    wait_serial(&serial, "DONE");
    let vda = env.same(&["domblkstat", "d1", "vda"]);
    assert!(vda.starts_with("vda rd_req "), "{vda}");
    assert!(vda.contains("vda wr_bytes 4096\n"), "{vda}");
    assert!(vda.contains("vda flush_operations 1\n"), "{vda}");
    let all = env.same(&["domblkstat", "d1"]);
    assert!(all.contains(" wr_bytes 8192\n"), "{all}");
    let vnet = env.same(&["domifstat", "d1", "vnet0"]);
    assert!(vnet.starts_with("vnet0 rx_bytes "), "{vnet}");
    for q in [
        &["domblkstat", "d1", "vdb", "--human"][..],
        &["domblkstat", "d1", "--device", "vda"],
        &["domblkstat", "d1", &disks.0.display().to_string()],
        &["domblkstat", "d1", "vdx"],
        &["domifstat", "d1", GUEST_MAC],
        &["domifstat", "--interface", "vnet0", "d1"],
        &["domifstat", "d1", "vnet9"],
        &["domiflist", "d1"],
        &["domblklist", "d1", "--details"],
        &["dominfo", "d1"],
        &["dommemstat", "d1"],
        &["dumpxml", "d1"],
        &["setmem", "d1", "131008"],
        &["setmem", "d1", "1G", "--live"],
        &["setmem", "d1", "64M", "--live", "--config"],
        &["dominfo", "d1"],
    ] {
        env.same(q);
    }
    env.ok(&["destroy", "d1"], "Domain 'd1' destroyed\n\n");
    assert!(ns.taps().is_empty(), "{:?}", ns.taps());
    for q in [
        &["domblkstat", "d1", "vda"][..],
        &["domifstat", "d1", "vnet0"],
        &["domiflist", "d1"],
    ] {
        env.same(q);
    }
}

#[test]
fn storage_commands_match_virsh() {
    let Some(env) = Env::start("storage") else {
        return;
    };
    let dir = |name: &str| env.root.join(name).display().to_string();
    let t1 = dir("p1");
    let not_found = "error: failed to get pool 'nosuch'\n\
                     error: Storage pool not found: no storage pool with matching name 'nosuch'\n";

    // No pools yet; lookups fail as virsh's do.
    assert_eq!(
        env.same(&["pool-list"]),
        " Name   State   Autostart\n---------------------------\n\n"
    );
    for q in [
        &["pool-list", "--all", "--details"][..],
        &["pool-info", "nosuch"],
        &["pool-dumpxml", "nosuch"],
        &["pool-uuid", "nosuch"],
        &["pool-name", "nosuch"],
        &["pool-name", "480e39f3-571a-4ec9-bab1-9ddf97b33884"],
        &["vol-list", "nosuch"],
        &["vol-info", "nosuch"],
        &["vol-info", "/no/such/path"],
        &["vol-info", "v1", "--pool", "nosuch"],
        &["pool-define", "/nonexistent/pool.xml"],
    ] {
        env.same(q);
    }
    env.fails(&["pool-info", "nosuch"], not_found);
    env.fails(
        &["pool-name", "nosuch"],
        "error: failed to get pool 'nosuch'\n",
    );
    env.fails(
        &["vol-info", "nosuch"],
        "error: failed to get vol 'nosuch', specifying --pool might help\n\
         error: Storage volume not found: no storage vol with matching path 'nosuch'\n",
    );

    // Define, build, start.
    env.ok(
        &["pool-define-as", "p1", "dir", "--target", &t1],
        "Pool p1 defined\n\n",
    );
    assert_eq!(
        env.same(&[
            "pool-define-as",
            "p1",
            "dir",
            "--target",
            &t1,
            "--print-xml"
        ]),
        format!(
            "<pool type='dir'>\n  <name>p1</name>\n  <target>\n    <path>{t1}</path>\n  </target>\n</pool>\n\n"
        )
    );
    let info = env.same(&["pool-info", "p1"]);
    assert!(
        info.starts_with("Name:           p1\nUUID:           "),
        "{info}"
    );
    assert!(
        info.ends_with("State:          inactive\nPersistent:     yes\nAutostart:      no\n\n"),
        "{info}"
    );
    let uuid = env.same(&["pool-uuid", "p1"]);
    let uuid = uuid.trim();
    assert_eq!(uuid.len(), 36, "{uuid}");
    for q in [
        &["pool-define-as", "p1", "dir", "--target", &t1][..],
        &["pool-define-as", "p2", "dir", "--target", &t1],
        &["pool-dumpxml", "p1"],
        &["pool-dumpxml", "--inactive", "p1"],
        &["pool-list", "--all"],
        &["pool-list", "--inactive", "--details"],
        &["pool-name", uuid],
        &["pool-info", uuid],
        &["pool-start", "p1"],
        &["pool-build", "p1", "--overwrite"],
        &["vol-list", "p1"],
        &["vol-info", "v1", "--pool", "p1"],
        &["pool-destroy", "p1"],
    ] {
        env.same(q);
    }
    env.ok(&["pool-build", "p1"], "Pool p1 built\n\n");
    env.ok(&["pool-start", "--pool", "p1"], "Pool p1 started\n\n");
    let info = env.same(&["pool-info", "p1"]);
    assert!(info.contains("\nState:          running\n"), "{info}");
    assert!(info.contains("\nCapacity:       "), "{info}");
    for q in [
        &["pool-info", "p1", "--bytes"][..],
        &["pool-list"],
        &["pool-list", "--all", "--details"],
        &["pool-list", "--name", "--uuid"],
        &["pool-list", "--uuid"],
        &["pool-list", "--name"],
        &["pool-list", "--details", "--name"],
        &["pool-list", "--type", "dir,nosuch"],
        &["pool-list", "--type", "dir", "--persistent"],
        &["pool-list", "--transient"],
        &["pool-start", "p1"],
        &["pool-undefine", "p1"],
        &["pool-delete", "p1"],
        &["pool-dumpxml", "p1"],
    ] {
        env.same(q);
    }

    // Volumes: qcow2, fully allocated raw, a sparse raw, a backed qcow2.
    env.ok(
        &["vol-create-as", "p1", "v1", "10M", "--format", "qcow2"],
        "Vol v1 created\n\n",
    );
    env.ok(&["vol-create-as", "p1", "v2", "10M"], "Vol v2 created\n\n");
    env.ok(
        &[
            "vol-create-as",
            "--pool",
            "p1",
            "sp",
            "1M",
            "--allocation",
            "0",
        ],
        "Vol sp created\n\n",
    );
    env.ok(
        &[
            "vol-create-as",
            "p1",
            "v3",
            "10M",
            "--format",
            "qcow2",
            "--backing-vol",
            "v1",
            "--backing-vol-format",
            "qcow2",
        ],
        "Vol v3 created\n\n",
    );
    assert_eq!(
        env.same(&["vol-list", "p1"]),
        format!(
            " Name   Path\n{}\n sp     {t1}/sp\n v1     {t1}/v1\n v2     {t1}/v2\n v3     {t1}/v3\n\n",
            "-".repeat(t1.len() + 13)
        )
    );
    let v1 = format!("{t1}/v1");
    let v2 = format!("{t1}/v2");
    for q in [
        &["vol-list", "p1", "--details"][..],
        &["vol-list", "--pool", "p1"],
        &["vol-info", "v1", "--pool", "p1"],
        &["vol-info", "--vol", "v2", "--pool", "p1"],
        &["vol-info", &v2],
        &["vol-info", "sp", "--pool", "p1", "--bytes"],
        &["vol-info", "sp", "--pool", "p1", "--bytes", "--physical"],
        &["vol-info", "v1", "--pool", "p1", "--physical"],
        &["vol-info", "nosuch", "--pool", "p1"],
        &["vol-dumpxml", "v2", "--pool", "p1"],
        &["vol-dumpxml", &v1],
        &["vol-path", "v1", "--pool", "p1"],
        &["vol-key", "v1", "--pool", "p1"],
        &["vol-name", &v1],
        &["vol-name", "v1"],
        &["vol-pool", &v1],
        &["vol-pool", &v1, "--uuid"],
        &["vol-create-as", "p1", "v1", "10M", "--format", "qcow2"],
        &["vol-create-as", "p1", "v4", "10X"],
        &["vol-create-as", "p1", "v4", "ten"],
        &["vol-create-as", "p1", "v4", "20E"],
        &[
            "vol-create-as",
            "p1",
            "v4",
            "1M",
            "--backing-vol",
            "/no/such",
        ],
        &[
            "vol-create-as",
            "p1",
            "v4",
            "1M",
            "--allocation",
            "1K",
            "--print-xml",
        ],
        &["vol-create-as", "nosuch", "v4", "1M"],
    ] {
        env.same(q);
    }
    env.fails(
        &["vol-create-as", "p1", "v4", "10X"],
        "error: Malformed size 10X\nerror: invalid argument: unknown suffix 'X'\n",
    );
    let info = env.same(&["vol-info", "v2", "--pool", "p1"]);
    assert_eq!(
        info,
        "Name:           v2\nType:           file\nCapacity:       10.00 MiB\nAllocation:     10.00 MiB\n\n"
    );

    // Clone, resize, wipe.
    env.ok(
        &["vol-clone", "v1", "v1c", "--pool", "p1"],
        "Vol v1c cloned from v1\n\n",
    );
    env.ok(&["vol-clone", &v2, "v2c"], "Vol v2c cloned from v2\n\n");
    env.ok(
        &["vol-resize", "v2", "20M", "--pool", "p1"],
        "Size of volume 'v2' successfully changed to 20M\n\n",
    );
    env.ok(
        &["vol-resize", "v2", "1M", "--pool", "p1", "--delta"],
        "Size of volume 'v2' successfully changed by 1M\n\n",
    );
    env.ok(
        &["vol-resize", "sp", "-512K", "--pool", "p1", "--shrink"],
        "Size of volume 'sp' successfully changed by 512K\n\n",
    );
    env.ok(&["vol-wipe", "v2", "--pool", "p1"], "Vol v2 wiped\n\n");
    for q in [
        &["vol-clone", "v1", "v1c", "--pool", "p1"][..],
        &["vol-clone", "nosuch", "x", "--pool", "p1"],
        &["vol-resize", "v2", "5M", "--pool", "p1"],
        &["vol-resize", "v2", "-1M", "--pool", "p1"],
        &["vol-resize", "v2", "1X", "--pool", "p1"],
        &["vol-wipe", "v2", "--pool", "p1", "--algorithm", "nosuch"],
        &["vol-wipe", "v2", "--pool", "p1", "--algorithm", "dod"],
        &["vol-info", "v2", "--pool", "p1"],
        &["vol-info", "sp", "--pool", "p1"],
        &["vol-list", "p1", "--details"],
    ] {
        env.same(q);
    }

    // A file made behind the pool's back appears after pool-refresh.
    std::fs::write(env.root.join("p1/extern.img"), vec![0u8; 4096]).unwrap();
    assert!(!env.same(&["vol-list", "p1"]).contains("extern.img"));
    env.ok(&["pool-refresh", "p1"], "Pool p1 refreshed\n\n");
    assert!(env.same(&["vol-list", "p1"]).contains("extern.img"));
    env.same(&["pool-refresh", "nosuch"]);

    // Autostart.
    env.ok(
        &["pool-autostart", "p1"],
        "Pool p1 marked as autostarted\n\n",
    );
    assert!(
        env.same(&["pool-info", "p1"])
            .contains("\nAutostart:      yes\n")
    );
    env.same(&["pool-list", "--autostart"]);
    env.ok(
        &["pool-autostart", "p1", "--disable"],
        "Pool p1 unmarked as autostarted\n\n",
    );
    env.same(&["pool-list", "--no-autostart", "--details"]);

    // A transient pool, built as it is created.
    let tp = dir("pt");
    env.same(&[
        "pool-create-as",
        "pt",
        "dir",
        "--target",
        &tp,
        "--overwrite",
        "--no-overwrite",
    ]);
    env.ok(
        &["pool-create-as", "pt", "dir", "--target", &tp, "--build"],
        "Pool pt created\n\n",
    );
    for q in [
        &["pool-autostart", "pt"][..],
        &["pool-undefine", "pt"],
        &["pool-list", "--all", "--details"],
        &["pool-list", "--transient", "--name"],
        &["pool-info", "pt"],
    ] {
        env.same(q);
    }
    env.ok(&["pool-destroy", "pt"], "Pool pt destroyed\n\n");
    env.same(&["pool-info", "pt"]);

    // Pools and volumes from XML files.
    let t2 = dir("p2");
    std::fs::create_dir(&t2).unwrap();
    let p2 = env.write(
        "p2.xml",
        &format!("<pool type='dir'><name>p2</name><target><path>{t2}</path></target></pool>"),
    );
    let bad = env.write(
        "bad.xml",
        "<pool type='dir'><name>bad</name><target><path>/tmp/x</path></target>",
    );
    let vol = env.write(
        "vol.xml",
        "<volume><name>good</name><capacity>1024</capacity></volume>",
    );
    let vbad = env.write("vbad.xml", "<volume><name>bv</name>");
    for q in [
        &["pool-define", &bad][..],
        &["pool-create", &bad],
        &["pool-create", &p2, "--overwrite", "--no-overwrite"],
    ] {
        env.same(q);
    }
    env.ok(
        &["pool-define", &p2],
        &format!("Pool p2 defined from {p2}\n\n"),
    );
    env.same(&["vol-list", "p2"]);
    env.same(&["vol-info", "x", "--pool", "p2"]);
    env.ok(&["pool-start", "p2"], "Pool p2 started\n\n");
    env.ok(
        &["vol-create", "p2", &vol],
        &format!("Vol good created from {vol}\n\n"),
    );
    for q in [
        &["vol-create", "p2", &vol][..],
        &["vol-create", "p2", &vbad],
        &["vol-create", "p2", "/nonexistent/vol.xml"],
        &["vol-info", &v1, "--pool", "p2"],
        &["vol-list", "p2", "--details"],
    ] {
        env.same(q);
    }
    env.fails(
        &["vol-info", &v1, "--pool", "p2"],
        &format!("error: Requested volume '{v1}' is not in pool 'p2'\n"),
    );

    // Delete the volumes, then stop, delete and undefine the pools.
    env.ok(
        &["vol-delete", "v1c", "--pool", "p1"],
        "Vol v1c deleted\n\n",
    );
    env.same(&["vol-delete", "v1c", "--pool", "p1"]);
    let v2c = format!("{t1}/v2c");
    env.ok(&["vol-delete", &v2c], &format!("Vol {v2c} deleted\n\n"));
    for v in ["v3", "v1", "v2", "sp", "extern.img"] {
        env.ok(
            &["vol-delete", v, "--pool", "p1"],
            &format!("Vol {v} deleted\n\n"),
        );
    }
    env.ok(
        &["vol-delete", "good", "--pool", "p2"],
        "Vol good deleted\n\n",
    );
    assert_eq!(
        env.same(&["vol-list", "p1"]),
        " Name   Path\n--------------\n\n"
    );
    for p in ["p1", "p2"] {
        env.ok(&["pool-destroy", p], &format!("Pool {p} destroyed\n\n"));
        env.same(&["pool-destroy", p]);
        env.same(&["vol-list", p]);
        env.ok(&["pool-delete", p], &format!("Pool {p} deleted\n\n"));
        env.same(&["pool-delete", p]);
        env.ok(
            &["pool-undefine", p],
            &format!("Pool {p} has been undefined\n\n"),
        );
        env.same(&["pool-undefine", p]);
    }
    assert!(!Path::new(&t1).exists());
    assert_eq!(
        env.same(&["pool-list", "--all"]),
        " Name   State   Autostart\n---------------------------\n\n"
    );
}

/// nodedev-list (plain, tree, by capability) and nodedev-dumpxml: the
/// host's devices, printed as virsh prints them from the same daemon.
#[test]
fn node_device_commands_match_virsh() {
    let Some(env) = Env::start("nodedev") else {
        return;
    };
    let list = env.same(&["nodedev-list"]);
    assert!(list.lines().any(|l| l == "computer"), "{list}");
    for q in [
        &["nodedev-list", "--tree"][..],
        &["nodedev-list", "--cap", "pci"],
        &["nodedev-list", "--cap", "net,storage"],
        &["nodedev-list", "--all"],
        &["nodedev-dumpxml", "computer"],
        &["nodedev-dumpxml", "nosuch"],
        &["nodedev-list", "--tree", "--cap", "pci"],
        &["nodedev-list", "--cap", "bogus"],
    ] {
        env.same(q);
    }
    env.fails(
        &["nodedev-dumpxml", "nosuch"],
        "error: Could not find matching device 'nosuch'\n\
         error: Node device not found: no node device with matching name 'nosuch'\n",
    );
}

#[test]
fn network_commands_match_virsh() {
    let Some(ns) = netns_common::Netns::create("net") else {
        return;
    };
    let Some(env) = Env::start_in("net", Some(&ns)) else {
        return;
    };
    let not_found = "error: failed to get network 'nosuch'\n\
                     error: Network not found: no network with matching name 'nosuch'\n";
    assert_eq!(
        env.same(&["net-list", "--all"]),
        " Name   State   Autostart   Persistent\n----------------------------------------\n\n"
    );
    env.fails(&["net-info", "nosuch"], not_found);
    for q in [
        &["net-info", "nosuch"][..],
        &["net-dumpxml", "nosuch"],
        &["net-start", "nosuch"],
        &["net-uuid", "nosuch"],
        &["net-define", "/nonexistent/net.xml"],
    ] {
        env.same(q);
    }
    let file = env.write(
        "n1.xml",
        "<network><name>n1</name><uuid>6b0d4c5e-0f3a-4a57-9d0b-2b7f6d0c9a11</uuid>\
         <bridge name='oxbr7'/><forward mode='route'/>\
         <ip address='192.168.177.1' netmask='255.255.255.0'>\
         <dhcp><range start='192.168.177.2' end='192.168.177.20'/></dhcp></ip></network>",
    );
    env.ok(
        &["net-define", &file],
        &format!("Network n1 defined from {file}\n\n"),
    );
    for q in [
        &["net-define", &file][..],
        &["net-list", "--all"],
        &["net-list", "--inactive"],
        &["net-list", "--all", "--name"],
        &["net-list", "--all", "--uuid"],
        &["net-info", "n1"],
        &["net-info", "6b0d4c5e-0f3a-4a57-9d0b-2b7f6d0c9a11"],
        &["net-dumpxml", "n1"],
        &["net-uuid", "n1"],
        &["net-name", "6b0d4c5e-0f3a-4a57-9d0b-2b7f6d0c9a11"],
        &["net-destroy", "n1"],
        &["net-dhcp-leases", "n1"],
    ] {
        env.same(q);
    }
    env.ok(&["net-start", "n1"], "Network n1 started\n\n");
    for q in [
        &["net-start", "n1"][..],
        &["net-list"],
        &["net-info", "n1"],
        &["net-dumpxml", "n1"],
        &["net-dumpxml", "n1", "--inactive"],
        &["net-autostart", "n1"],
        &["net-list", "--autostart"],
        &["net-autostart", "n1", "--disable"],
        &["net-dhcp-leases", "n1", "--mac", "zz:zz"],
    ] {
        env.same(q);
    }
    env.ok(
        &[
            "net-update",
            "n1",
            "add",
            "ip-dhcp-host",
            "<host mac='52:54:00:00:00:07' name='h7' ip='192.168.177.7'/>",
            "--live",
            "--config",
        ],
        "Updated network n1 persistent config and live state\n\n",
    );
    for q in [
        &[
            "net-update",
            "n1",
            "add",
            "ip-dhcp-host",
            "<host mac='52:54:00:00:00:07' name='h7' ip='192.168.177.7'/>",
        ][..],
        &["net-dumpxml", "n1", "--inactive"],
        &[
            "net-update",
            "n1",
            "modify",
            "ip-dhcp-range",
            "<range start='192.168.177.2' end='192.168.177.20'/>",
        ],
        &["net-update", "n1", "add", "bridge", "<bridge name='x'/>"],
    ] {
        env.same(q);
    }
    let delete = [
        "net-update",
        "n1",
        "delete",
        "ip-dhcp-host",
        "<host mac='52:54:00:00:00:07'/>",
        "--live",
        "--config",
    ];
    env.ok(
        &delete,
        "Updated network n1 persistent config and live state\n\n",
    );
    env.same(&delete);
    // Host interfaces: the namespace's own devices, the network's bridge
    // among them while it runs.
    for q in [
        &["iface-list"][..],
        &["iface-list", "--all"],
        &["iface-list", "--inactive"],
        &["iface-dumpxml", "lo"],
        &["iface-dumpxml", "oxbr7"],
        &["iface-dumpxml", "nosuch"],
    ] {
        env.same(q);
    }
    env.ok(&["net-destroy", "n1"], "Network n1 destroyed\n\n");
    env.ok(&["net-undefine", "n1"], "Network n1 has been undefined\n\n");
    env.same(&["net-list", "--all"]);
}

/// A daemon whose guests run as nobody, with `extra` settings.
fn confined_env(tag: &str, extra: &str) -> Option<Env> {
    Env::start_with_conf(
        tag,
        &format!("user = \"+65534\"\ngroup = \"+65534\"\n{extra}"),
    )
}

/// A root daemon running guests as nobody (with `extra` settings), and
/// `g1` defined on root-only copies of the test kernel and a disk, which
/// are returned.
fn confined_guest(tag: &str, extra: &str) -> Option<(Env, PathBuf, PathBuf)> {
    let kernel = guest_kernel()?;
    if !is_root() {
        ci_common::skip("confinement needs a root daemon");
        return None;
    }
    let env = confined_env(tag, extra)?;
    let (k, d) = private_files(&env, &kernel);
    let f = env.write("g1.xml", &guest_with_disk_xml(&k, &d));
    env.ok(
        &["define", &f],
        &format!("Domain 'g1' defined from {f}\n\n"),
    );
    Some((env, k, d))
}

/// A guest of `kernel` with one raw disk.
fn guest_with_disk_xml(kernel: &Path, disk: &Path) -> String {
    format!(
        "<domain type='kvm'><name>g1</name><uuid>{U1}</uuid>\
         <memory unit='MiB'>64</memory><vcpu>2</vcpu>\
         <os><type arch='x86_64'>hvm</type><kernel>{}</kernel>\
         <cmdline>oxtest.then=halt</cmdline></os>\
         <devices><disk type='file' device='disk'><driver name='qemu' type='raw'/>\
         <source file='{}'/><target dev='vda' bus='virtio'/></disk>\
         <serial type='pty'/><console type='pty'/></devices></domain>",
        kernel.display(),
        disk.display()
    )
}

/// Root-only copies of the test kernel and a disk in the test's directory.
fn private_files(env: &Env, kernel: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let k = env.root.join("kernel.elf");
    std::fs::copy(kernel, &k).unwrap();
    let d = env.root.join("disk.raw");
    std::fs::write(&d, vec![0u8; 1 << 20]).unwrap();
    for f in [&k, &d] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The directory must let the guest's user reach its files.
    std::fs::set_permissions(&env.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    (k, d)
}

/// The running VMM's status file.
fn vmm_status(env: &Env, dom: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(env.root.join("run").join(format!("{dom}.json")))
        .expect("status file");
    serde_json::from_str(&text).unwrap()
}

fn proc_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Files in the daemon's runtime directory (status, sockets, configs).
fn runtime_files(env: &Env) -> Vec<String> {
    std::fs::read_dir(env.root.join("run"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn owner(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn guests_run_confined_as_their_user() {
    let Some((env, k, d)) = confined_guest("confined", "") else {
        return;
    };
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    // dynamic_ownership: the guest's files belong to its user while it runs.
    assert_eq!(owner(&d), (65534, 65534));
    assert_eq!(owner(&k), (65534, 65534));
    let pid = vmm_status(&env, "g1")["pid"].as_i64().unwrap();
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // The main thread, the launcher, the serial writer and two vCPUs at least.
    assert!(tasks.len() >= 5, "{tasks:?}");
    for t in &tasks {
        let status = std::fs::read_to_string(t.join("status")).unwrap_or_default();
        if status.is_empty() {
            continue; // a thread that ended meanwhile
        }
        let name = proc_field(&status, "Name");
        if name.starts_with("kvm-") {
            continue; // KVM's kernel worker attached to the process
        }
        assert_eq!(proc_field(&status, "Seccomp"), "2", "{name}");
        assert_eq!(proc_field(&status, "NoNewPrivs"), "1", "{name}");
        assert_eq!(proc_field(&status, "CapEff"), "0000000000000000", "{name}");
        assert_eq!(proc_field(&status, "CapPrm"), "0000000000000000", "{name}");
        assert_eq!(proc_field(&status, "CapBnd"), "0000000000000000", "{name}");
        assert_eq!(
            proc_field(&status, "Uid"),
            "65534 65534 65534 65534",
            "{name}"
        );
        assert_eq!(
            proc_field(&status, "Gid"),
            "65534 65534 65534 65534",
            "{name}"
        );
    }
    // Its mount namespace holds only its empty, read-only jail.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let lines: Vec<&str> = mounts.lines().collect();
    assert_eq!(lines.len(), 1, "{mounts}");
    assert!(lines[0].contains(" / / ro,nosuid,nodev,noexec"), "{mounts}");
    assert!(lines[0].contains(" - tmpfs "), "{mounts}");
    // The guest still works: stats come from the confined VMM.
    let st = env.ox(&["vcpuinfo", "g1"]);
    assert!(st.status.success());
    let text = String::from_utf8_lossy(&st.stdout);
    assert_eq!(text.matches("CPU time:").count(), 2, "{text}");
    let st = env.ox(&["domblkstat", "g1", "vda"]);
    assert!(st.status.success());
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("vda rd_req"), "{text}");
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");
    // The owners are given back, the modes untouched.
    assert_eq!(owner(&d), (0, 0));
    assert_eq!(owner(&k), (0, 0));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn without_dynamic_ownership_an_unreadable_disk_is_refused() {
    let Some((env, k, d)) = confined_guest("dac-off", "dynamic_ownership = 0\n") else {
        return;
    };
    // The kernel is readable by all; the disk only by root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&k, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.fails(
        &["start", "g1"],
        &format!(
            "error: Failed to start domain 'g1'\nerror: Cannot access storage file '{}' \
             (as uid:65534, gid:65534): Permission denied\n",
            d.display()
        ),
    );
    env.ok(&["domstate", "g1"], "shut off\n\n");
    // Nothing changed and nothing was left behind.
    assert_eq!(owner(&d), (0, 0));
    let run = runtime_files(&env);
    assert!(run.is_empty(), "{run:?}");
    // Readable by the guest's user, it starts.
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o666)).unwrap();
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    assert_eq!(owner(&d), (0, 0));
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");
}

#[test]
fn a_forbidden_syscall_kills_the_vmm_and_the_guest_crashes() {
    if !cfg!(feature = "test-hooks") {
        ci_common::skip("needs the test-hooks feature (cargo test --features test-hooks)");
        return;
    }
    let Some((env, _, d)) = confined_guest("sigsys", "") else {
        return;
    };
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    let events = env.lifecycle_events("g1", 15);
    let st = vmm_status(&env, "g1");
    let pid = st["pid"].as_i64().unwrap() as i32;
    let sock = st["control_socket"].as_str().unwrap().to_string();
    let mut c = std::os::unix::net::UnixStream::connect(&sock).expect("control socket");
    c.write_all(b"{\"execute\":\"x-oxvirt-forbidden-syscall\"}\n")
        .unwrap();
    env.wait_state("g1", "shut off");
    env.ok(&["domstate", "g1", "--reason"], "shut off (crashed)\n\n");
    let o = events.wait_with_output().expect("event output");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "event 'lifecycle' for domain 'g1': Stopped Failed\nevents received: 1\n\n"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    let run = runtime_files(&env);
    assert!(run.is_empty(), "{run:?}");
    assert_eq!(owner(&d), (0, 0));
    let log = std::fs::read_to_string(env.root.join("state/log/g1.log")).unwrap_or_default();
    assert!(log.contains("SIGSYS"), "{log}");
}

#[test]
fn a_pause_answered_too_late_is_still_followed() {
    let Some(kernel) = guest_kernel() else { return };
    let Some(env) = Env::start("late-pause") else {
        return;
    };
    let f = env.write("g1.xml", &guest_xml("g1", U1, &kernel, "halt"));
    env.ok(
        &["define", &f],
        &format!("Domain 'g1' defined from {f}\n\n"),
    );
    env.ok(&["start", "g1"], "Domain 'g1' started\n\n");
    let pid = vmm_status(&env, "g1")["pid"].as_i64().unwrap() as i32;
    // A VMM stopped from outside cannot answer: the pause times out and
    // the domain is still recorded running.
    // SAFETY: signalling the VMM this test's daemon started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let o = env.ox(&["suspend", "g1"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("did not answer"),
        "{o:?}"
    );
    env.ok(&["domstate", "g1"], "running\n\n");
    // Continued, the VMM carries out the pause it had queued: the daemon
    // learns of it and records it.
    let events = env.lifecycle_events("g1", 10);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    env.wait_state("g1", "paused");
    env.ok(&["domstate", "g1", "--reason"], "paused (unknown)\n\n");
    let o = events.wait_with_output().expect("event output");
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .starts_with("event 'lifecycle' for domain 'g1': Suspended Paused\n"),
        "{o:?}"
    );
    env.ok(&["resume", "g1"], "Domain 'g1' resumed\n\n");
    env.ok(&["domstate", "g1", "--reason"], "running (unpaused)\n\n");
    env.ok(&["destroy", "g1"], "Domain 'g1' destroyed\n\n");
}
