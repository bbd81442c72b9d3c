//! Helpers shared by the oxvirt-vmm integration tests: building the test
//! guest, running the VMM, reading its serial log, talking to its control
//! socket.

#![allow(dead_code)]

pub mod wire;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const VMM: &str = env!("CARGO_BIN_EXE_oxvirt-vmm");

/// The VMM binary to run: `OXVIRT_VMM` if set (a copy taken right after
/// the build, when several worktrees share one target directory), else
/// the one cargo built.
pub fn vmm() -> String {
    std::env::var("OXVIRT_VMM").unwrap_or_else(|_| VMM.to_string())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[path = "../ci_common/mod.rs"]
mod ci_common;

/// Builds the test guest once; `None` (with the reason printed) when it
/// cannot be built here.
pub fn testos() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = repo().join("compat-tests/guest/testos");
            if !dir.join("Makefile").exists() {
                ci_common::skip(&format!(
                    "test guest sources not present at {}",
                    dir.display()
                ));
                return None;
            }
            let out = Command::new("make").arg("-s").arg("-C").arg(&dir).output();
            match out {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    ci_common::skip(&format!(
                        "building the test guest failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    ));
                    return None;
                }
                Err(e) => {
                    ci_common::skip(&format!("cannot run make: {e}"));
                    return None;
                }
            }
            let elf = repo().join("compat-tests/guest/out/testos.elf");
            elf.exists().then_some(elf)
        })
        .clone()
}

/// The firmware-bootable images of `compat-tests/guest/build-boot-images.sh`
/// (GRUB menus booting the test guest with the script's default arguments),
/// built once into
/// `compat-tests/guest/out/boot-images`; `None` (through `skip`) when they
/// cannot be built here.
pub fn boot_images() -> Option<PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            testos()?;
            let out = repo().join("compat-tests/guest/out/boot-images");
            let script = repo().join("compat-tests/guest/build-boot-images.sh");
            let run = Command::new("bash")
                .arg(&script)
                .arg(&out)
                .env_remove("OXVIRT_TESTOS_ARGS")
                .output();
            match run {
                Ok(o) if o.status.success() => Some(out),
                Ok(o) => {
                    ci_common::skip(&format!(
                        "building the boot images failed: {}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ));
                    None
                }
                Err(e) => {
                    ci_common::skip(&format!("cannot run {}: {e}", script.display()));
                    None
                }
            }
        })
        .clone()
}

/// A firmware image the system provides (SeaBIOS from Debian's `seabios`
/// package), or `None` through `skip`.
pub fn system_firmware(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Some(p)
    } else {
        ci_common::skip(&format!("firmware {path} is not installed"));
        None
    }
}

/// True when /dev/kvm is usable; prints why not otherwise.
pub fn kvm_available() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => true,
        Err(e) => {
            ci_common::skip(&format!("/dev/kvm unavailable: {e}"));
            false
        }
    }
}

/// A unique scratch directory.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "oxvirt-vmm-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Whether this host's KVM emulates guest ring 0: its CPU shows neither
/// VMX nor SVM (a paravirtualised KVM such as PVM).
pub fn host_emulates_ring0() -> bool {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    !info.split_whitespace().any(|w| w == "vmx" || w == "svm")
}

/// The test guest's command line.
pub fn guest_cmdline(cpus: u32, mem: u64, then: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "oxtest.checks=e820,acpi,smp,rtc oxtest.cpus={cpus} oxtest.mem={mem} \
         oxtest.epoch={now} oxtest.pci=1 oxtest.then={then}"
    )
}

/// A running VMM with its serial log in a file.
pub struct Guest {
    pub child: Child,
    pub serial: PathBuf,
    pub dir: PathBuf,
    pub control: Option<String>,
}

impl Guest {
    /// Starts oxvirt-vmm on `kernel` with direct options plus `extra`.
    pub fn start(kernel: &Path, cpus: u32, mem: u64, cmdline: &str, extra: &[&str]) -> Guest {
        let boot = [
            "--kernel".to_string(),
            kernel.display().to_string(),
            "--cmdline".to_string(),
            cmdline.to_string(),
        ];
        Guest::spawn(&boot, cpus, mem, extra)
    }

    /// Starts oxvirt-vmm booting `firmware` (`--bios` or `--uefi`).
    pub fn start_firmware(
        kind: &str,
        firmware: &Path,
        cpus: u32,
        mem: u64,
        extra: &[&str],
    ) -> Guest {
        let boot = [format!("--{kind}"), firmware.display().to_string()];
        Guest::spawn(&boot, cpus, mem, extra)
    }

    fn spawn(boot: &[String], cpus: u32, mem: u64, extra: &[&str]) -> Guest {
        let dir = scratch("guest");
        let serial = dir.join("serial.log");
        let mut cmd = Command::new(vmm());
        if !extra.contains(&"--sandbox") {
            // Guests run confined as the daemon runs them: filtered,
            // unprivileged, jailed.
            let jail = dir.join("jail");
            std::fs::create_dir_all(&jail).expect("jail dir");
            cmd.arg("--sandbox")
                .arg(format!("seccomp,user=65534:65534,jail={}", jail.display()));
        }
        cmd.args(boot)
            .arg("--memory")
            .arg(mem.to_string())
            .arg("--cpus")
            .arg(cpus.to_string())
            .arg("--serial")
            .arg(format!("file:{}", serial.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let control = extra
            .iter()
            .position(|a| *a == "--control-socket")
            .and_then(|i| extra.get(i + 1))
            .map(|s| s.to_string());
        let child = cmd.spawn().expect("spawn oxvirt-vmm");
        Guest {
            child,
            serial,
            dir,
            control,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.serial).unwrap_or_default()
    }

    /// Waits until the serial log satisfies `pred`, the VMM exits, or
    /// `timeout` passes.
    pub fn wait_log(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if pred(&self.log()) {
                return true;
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(&self.log())
    }

    /// Waits for exit; kills the VMM after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.stderr.as_mut() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Connects to the control socket, retrying while the VMM starts.
    pub fn connect(&self) -> Control {
        let name = self
            .control
            .clone()
            .expect("guest started without a control socket");
        Control::connect(&name, Duration::from_secs(10))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A control-socket client.
pub struct Control {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
    /// Events seen while waiting for replies.
    pub events: Vec<serde_json::Value>,
}

impl Control {
    pub fn connect(name: &str, timeout: Duration) -> Control {
        let addr = oxvirt::vmm::control::ControlAddr::parse(name).unwrap();
        let end = Instant::now() + timeout;
        loop {
            match addr.connect() {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let reader = BufReader::new(s.try_clone().unwrap());
                    return Control {
                        stream: s,
                        reader,
                        next_id: 1,
                        events: Vec::new(),
                    };
                }
                Err(e) if Instant::now() > end => panic!("cannot connect to {name}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Reads the next JSON line.
    pub fn read(&mut self) -> Option<serde_json::Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => serde_json::from_str(&line).ok(),
        }
    }

    /// Sends a raw line and returns the reply carrying `id`.
    pub fn raw(&mut self, line: &str, id: u64) -> serde_json::Value {
        self.stream.write_all(line.as_bytes()).unwrap();
        self.stream.write_all(b"\n").unwrap();
        loop {
            let v = self.read().expect("control socket closed before the reply");
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if v["id"] == id {
                return v;
            }
        }
    }

    /// Executes a command and returns the reply.
    pub fn execute(&mut self, cmd: &str) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        self.raw(
            &serde_json::json!({"id": id, "execute": cmd}).to_string(),
            id,
        )
    }

    /// Executes a command with arguments and returns the reply.
    pub fn execute_args(&mut self, cmd: &str, arguments: serde_json::Value) -> serde_json::Value {
        let id = self.next_id;
        self.next_id += 1;
        self.raw(
            &serde_json::json!({"id": id, "execute": cmd, "arguments": arguments}).to_string(),
            id,
        )
    }

    /// Executes a command that takes a descriptor (sent with the line as
    /// SCM_RIGHTS) and returns the reply.
    pub fn execute_with_fd(
        &mut self,
        cmd: &str,
        arguments: serde_json::Value,
        fd: impl std::os::fd::AsRawFd,
    ) -> serde_json::Value {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let id = self.next_id;
        self.next_id += 1;
        let line = serde_json::json!({"id": id, "execute": cmd, "arguments": arguments})
            .to_string()
            + "\n";
        let fds = [fd.as_raw_fd()];
        let iov = [std::io::IoSlice::new(line.as_bytes())];
        sendmsg::<()>(
            self.stream.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .expect("sendmsg");
        drop(fd);
        loop {
            let v = self.read().expect("control socket closed before the reply");
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if v["id"] == id {
                return v;
            }
        }
    }

    /// Waits for an event named `name`.
    pub fn wait_event(&mut self, name: &str) -> Option<serde_json::Value> {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return Some(self.events.remove(i));
        }
        while let Some(v) = self.read() {
            if v["event"] == name {
                return Some(v);
            }
        }
        None
    }
}

/// Numbers of the `TICK n` lines in a log (`TICK n sum=...` with
/// `oxtest.tickmem`).
pub fn ticks(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("TICK "))
        .filter_map(|n| n.split_whitespace().next()?.parse().ok())
        .collect()
}
