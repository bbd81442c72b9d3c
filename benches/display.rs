//! The graphical console side by side: oxvirt-vmm and QEMU 7.2, the same
//! test guest (compat-tests/guest/testos), the same device (standard VGA),
//! the same RFB client (tests/vnc_common), in the same run:
//!
//! 1. frame rate and bytes on the wire while the guest redraws the whole
//!    screen in a loop (`oxtest.then=display-loop`) and the client asks for
//!    incremental updates back to back (one request outstanding, the next
//!    sent as soon as an update has been applied), ZRLE and Raw;
//! 2. key latency: a QEMU extended key event sent by the client until the
//!    guest's `INFO key make` line arrives on the monitor's standard output
//!    (a pipe read by a thread that stamps each line as it arrives);
//! 3. RSS beyond guest RAM with a 1920x1080 display, after the guest drew
//!    its frame and a client received it, minus that of the same monitor
//!    without the display.
//!
//! Reports medians and the targets; asserts nothing about time.
//! Driven by compat-tests/bench/display.sh through the environment:
//! VMM, QEMU, ELF (required), RUNS (3), STREAM_SECONDS (10), PRESSES (50),
//! MODES (1920x1080,1024x768), MEMORY (256), SANDBOX (1: also run
//! oxvirt-vmm confined), ONLY (a comma list of vmm, vmm-sandbox, qemu).

// Its unit tests are built here too, without cfg(test).
#[allow(unused_imports)]
#[path = "../tests/vnc_common/mod.rs"]
mod vnc_common;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vnc_common::{Update, VncClient, encoding};

/// Which monitor runs the guest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Monitor {
    Vmm,
    VmmSandbox,
    Qemu,
}

impl Monitor {
    fn label(self) -> &'static str {
        match self {
            Monitor::Vmm => "oxvirt-vmm",
            Monitor::VmmSandbox => "oxvirt-vmm --sandbox",
            Monitor::Qemu => "qemu 7.2 q35 -device VGA",
        }
    }
}

struct Settings {
    vmm: PathBuf,
    qemu: String,
    elf: PathBuf,
    runs: usize,
    seconds: f64,
    presses: usize,
    modes: Vec<(u32, u32)>,
    memory: u64,
    monitors: Vec<Monitor>,
    tmp: PathBuf,
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parse_mode(s: &str) -> Option<(u32, u32)> {
    let (w, h) = s.trim().split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

impl Settings {
    fn from_env() -> Settings {
        let need = |n: &str| {
            std::env::var(n).unwrap_or_else(|_| {
                eprintln!("display bench: set {n} (compat-tests/bench/display.sh does)");
                std::process::exit(2)
            })
        };
        let sandbox = env_or("SANDBOX", "1") != "0";
        let mut monitors = vec![Monitor::Vmm, Monitor::Qemu];
        if sandbox {
            monitors.insert(1, Monitor::VmmSandbox);
        }
        if let Ok(only) = std::env::var("ONLY") {
            let names: Vec<&str> = only.split(',').collect();
            monitors.retain(|m| {
                names.contains(&match m {
                    Monitor::Vmm => "vmm",
                    Monitor::VmmSandbox => "vmm-sandbox",
                    Monitor::Qemu => "qemu",
                })
            });
        }
        let tmp = std::env::temp_dir().join(format!("oxvirt-display-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).expect("scratch directory");
        Settings {
            vmm: need("VMM").into(),
            qemu: env_or("QEMU", "qemu-system-x86_64"),
            elf: need("ELF").into(),
            runs: env_or("RUNS", "3").parse().unwrap_or(3),
            seconds: env_or("STREAM_SECONDS", "10").parse().unwrap_or(10.0),
            presses: env_or("PRESSES", "50").parse().unwrap_or(50),
            modes: env_or("MODES", "1920x1080,1024x768")
                .split(',')
                .filter_map(parse_mode)
                .collect(),
            memory: env_or("MEMORY", "256").parse().unwrap_or(256),
            monitors,
            tmp,
        }
    }
}

/// Serial lines as they arrive, each with the time it was read.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<(Instant, String)>>,
    /// The monitor closed its standard output (it exited).
    closed: std::sync::atomic::AtomicBool,
    arrived: Condvar,
}

impl Lines {
    fn count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// The first line at or after index `from` for which `pred` holds.
    fn wait(
        &self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let end = Instant::now() + timeout;
        let mut seen = from;
        let mut g = self.lines.lock().unwrap();
        loop {
            if let Some(found) = g.iter().skip(seen).find(|(_, l)| pred(l)) {
                return Some(found.clone());
            }
            seen = g.len().max(from);
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() || self.closed.load(std::sync::atomic::Ordering::SeqCst) {
                return None;
            }
            g = self.arrived.wait_timeout(g, left).unwrap().0;
        }
    }

    fn since(&self, t: Instant) -> Vec<(Instant, String)> {
        let g = self.lines.lock().unwrap();
        g.iter().filter(|(at, _)| *at >= t).cloned().collect()
    }
}

/// A guest running under one monitor, its COM1 on our pipe.
struct Running {
    child: Child,
    dir: PathBuf,
    vnc: Option<PathBuf>,
    serial: Arc<Lines>,
}

impl Running {
    fn start(s: &Settings, m: Monitor, cmdline: &str, display: bool, tag: &str) -> Running {
        let dir = s.tmp.join(format!("{tag}-{:?}-{}", m, rand_suffix()));
        std::fs::create_dir_all(&dir).expect("run directory");
        let vnc = dir.join("vnc.sock");
        let mut cmd = match m {
            Monitor::Vmm | Monitor::VmmSandbox => {
                let mut c = Command::new(&s.vmm);
                c.arg("--kernel")
                    .arg(&s.elf)
                    .args(["--cmdline", cmdline])
                    .args(["--memory", &s.memory.to_string(), "--cpus", "1"])
                    .args(["--serial", "stdio"]);
                if display {
                    c.arg("--vga")
                        .arg("--vnc")
                        .arg(format!("unix:{}", vnc.display()));
                }
                if m == Monitor::VmmSandbox {
                    let jail = dir.join("jail");
                    std::fs::create_dir_all(&jail).expect("jail");
                    c.arg("--sandbox")
                        .arg(format!("seccomp,user=65534:65534,jail={}", jail.display()));
                }
                c
            }
            Monitor::Qemu => {
                let mut c = Command::new(&s.qemu);
                c.args([
                    "-enable-kvm",
                    "-M",
                    "q35",
                    "-cpu",
                    "host,-arch-capabilities",
                ])
                .args(["-smp", "1", "-m", &s.memory.to_string()])
                .args(["-nodefaults", "-no-user-config", "-display", "none"])
                .args(["-serial", "stdio", "-monitor", "none", "-no-reboot"])
                .arg("-kernel")
                .arg(&s.elf)
                .args(["-append", cmdline]);
                if display {
                    c.args(["-device", "VGA", "-vnc"])
                        .arg(format!("unix:{}", vnc.display()));
                }
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {m:?}: {e}"));
        let serial = Arc::new(Lines::default());
        let out = child.stdout.take().expect("stdout pipe");
        let sink = serial.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => {
                        let _g = sink.lines.lock().unwrap();
                        sink.closed.store(true, std::sync::atomic::Ordering::SeqCst);
                        sink.arrived.notify_all();
                        break;
                    }
                    Ok(_) => {
                        let at = Instant::now();
                        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
                        sink.lines.lock().unwrap().push((at, line));
                        sink.arrived.notify_all();
                    }
                }
            }
        });
        Running {
            child,
            dir,
            vnc: display.then_some(vnc),
            serial,
        }
    }

    fn wait_line(&self, from: usize, prefix: &str, timeout: Duration) -> io::Result<Instant> {
        self.serial
            .wait(from, timeout, |l| l.starts_with(prefix))
            .map(|(t, _)| t)
            .ok_or_else(|| {
                let tail: Vec<String> = self
                    .serial
                    .since(Instant::now() - Duration::from_secs(3600))
                    .into_iter()
                    .rev()
                    .take(8)
                    .map(|(_, l)| l)
                    .collect();
                io::Error::other(format!(
                    "no line \"{prefix}\"; last lines (newest first): {tail:?}"
                ))
            })
    }

    /// Connects a client once the server's socket exists.
    fn connect(&self) -> io::Result<VncClient> {
        let path = self
            .vnc
            .as_ref()
            .ok_or_else(|| io::Error::other("no display"))?;
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match UnixStream::connect(path) {
                Ok(s) => return Ok(VncClient::connect_with(s, None)?),
                Err(e) if Instant::now() > end => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Pixels an update painted (Raw, CopyRect, ZRLE rectangles).
fn painted(up: &Update) -> u64 {
    up.rects
        .iter()
        .filter(|r| {
            matches!(
                r.encoding,
                encoding::RAW | encoding::COPY_RECT | encoding::ZRLE
            )
        })
        .map(|r| u64::from(r.w) * u64::from(r.h))
        .sum()
}

/// Reads updates (asking again after each) until one at `w`x`h` paints the
/// whole screen.
fn first_full_frame(c: &mut VncClient, w: u32, h: u32) -> io::Result<()> {
    let end = Instant::now() + Duration::from_secs(60);
    c.request_update(false)?;
    loop {
        let up = c.read_update(Duration::from_secs(30))?;
        if c.size() == (w, h) && painted(&up) >= u64::from(w) * u64::from(h) {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(io::Error::other(format!(
                "no full {w}x{h} frame; client at {:?}",
                c.size()
            )));
        }
        // after a resize the client asks for the whole new screen
        c.request_update(!up.resized)?;
    }
}

/// One stream measurement.
struct Stream {
    /// Updates that painted the whole screen, per second.
    full_per_s: f64,
    updates_per_s: f64,
    /// Bytes received per update and per screenful of painted pixels.
    bytes_per_update: f64,
    bytes_per_screen: f64,
    /// Frames the guest drew per second meanwhile (its `INFO frames` lines).
    guest_fps: Option<f64>,
}

fn stream(r: &Running, w: u32, h: u32, encodings: &[i32], secs: f64) -> io::Result<Stream> {
    let mut c = r.connect()?;
    c.set_encodings(encodings)?;
    first_full_frame(&mut c, w, h)?;
    let screen = u64::from(w) * u64::from(h);
    let b0 = c.bytes_received();
    let start = Instant::now();
    let limit = Duration::from_secs_f64(secs);
    let (mut updates, mut full, mut area) = (0u64, 0u64, 0u64);
    c.request_update(true)?;
    while start.elapsed() < limit {
        let up = c.read_update(Duration::from_secs(10))?;
        let at = start.elapsed();
        if at >= limit {
            break; // arrived after the window: the bytes count, so must it
        }
        c.request_update(true)?;
        let p = painted(&up);
        updates += 1;
        area += p;
        full += u64::from(p >= screen);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let bytes = (c.bytes_received() - b0) as f64;
    let guest_fps = frames_rate(&r.serial.since(start));
    Ok(Stream {
        full_per_s: full as f64 / elapsed,
        updates_per_s: updates as f64 / elapsed,
        bytes_per_update: if updates > 0 {
            bytes / updates as f64
        } else {
            f64::NAN
        },
        bytes_per_screen: if area > 0 {
            bytes * screen as f64 / area as f64
        } else {
            f64::NAN
        },
        guest_fps,
    })
}

/// Frames per second from the guest's `INFO frames N ms=T` lines.
fn frames_rate(lines: &[(Instant, String)]) -> Option<f64> {
    let points: Vec<(f64, f64)> = lines
        .iter()
        .filter_map(|(_, l)| {
            let rest = l.strip_prefix("INFO frames ")?;
            let mut it = rest.split_whitespace();
            let n: f64 = it.next()?.parse().ok()?;
            let ms: f64 = it.next()?.strip_prefix("ms=")?.parse().ok()?;
            Some((n, ms))
        })
        .collect();
    let (first, last) = (points.first()?, points.last()?);
    (last.1 > first.1).then(|| (last.0 - first.0) * 1000.0 / (last.1 - first.1))
}

fn display_loop(s: &Settings, m: Monitor, (w, h): (u32, u32)) -> io::Result<(Stream, Stream)> {
    let cmdline = format!("oxtest.checks=display oxtest.display={w}x{h} oxtest.then=display-loop");
    let r = Running::start(s, m, &cmdline, true, "loop");
    r.wait_line(0, "INFO display-loop", Duration::from_secs(120))?;
    let zrle = stream(
        &r,
        w,
        h,
        &[
            encoding::ZRLE,
            encoding::DESKTOP_SIZE,
            encoding::EXT_DESKTOP_SIZE,
        ],
        s.seconds,
    )?;
    let raw = stream(
        &r,
        w,
        h,
        &[
            encoding::RAW,
            encoding::DESKTOP_SIZE,
            encoding::EXT_DESKTOP_SIZE,
        ],
        s.seconds,
    )?;
    Ok((zrle, raw))
}

/// Key press to `INFO key make` line, `presses` times.
fn key_latency(s: &Settings, m: Monitor) -> io::Result<Vec<f64>> {
    let r = Running::start(
        s,
        m,
        "oxtest.checks=display oxtest.then=input",
        true,
        "keys",
    );
    r.wait_line(0, "INFO input ready", Duration::from_secs(120))?;
    let mut c = r.connect()?;
    c.set_encodings(&[
        encoding::ZRLE,
        encoding::RAW,
        encoding::DESKTOP_SIZE,
        encoding::EXT_DESKTOP_SIZE,
        encoding::QEMU_EXT_KEY,
    ])?;
    c.request_update(false)?;
    c.update_until(Duration::from_secs(30), |c| c.has_qemu_ext_key())?;
    let mut out = Vec::with_capacity(s.presses);
    for _ in 0..s.presses {
        let from = r.serial.count();
        let t0 = Instant::now();
        c.qemu_key(0x61, 0x1e, true)?;
        let t1 = r.wait_line(from, "INFO key make 0x1e", Duration::from_secs(10))?;
        out.push(t1.duration_since(t0).as_secs_f64() * 1000.0);
        c.qemu_key(0x61, 0x1e, false)?;
        r.wait_line(from, "INFO key break 0x1e", Duration::from_secs(10))?;
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(out)
}

/// RSS of `pid` in KiB: all of it, and that of mappings of guest RAM's
/// size or larger.
fn rss_kib(pid: u32, ram_bytes: u64) -> io::Result<(u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps"))?;
    let (mut total, mut ram) = (0u64, 0u64);
    let mut size = 0u64;
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && !first.ends_with(':')
        {
            let lo = u64::from_str_radix(lo, 16).unwrap_or(0);
            let hi = u64::from_str_radix(hi, 16).unwrap_or(0);
            size = hi.saturating_sub(lo);
        } else if first == "Rss:" {
            let kb: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            total += kb;
            if size >= ram_bytes {
                ram += kb;
            }
        }
    }
    Ok((total, ram))
}

/// RSS beyond guest RAM (MiB) once the guest drew a 1920x1080 frame (and,
/// with the display, a client received it).
fn rss_beyond_ram(s: &Settings, m: Monitor, display: bool) -> io::Result<f64> {
    let cmdline = "oxtest.checks=display oxtest.display=1920x1080 oxtest.then=halt";
    let r = Running::start(s, m, cmdline, display, "rss");
    r.wait_line(0, "DONE", Duration::from_secs(120))?;
    if display {
        let mut c = r.connect()?;
        c.set_encodings(&[
            encoding::ZRLE,
            encoding::DESKTOP_SIZE,
            encoding::EXT_DESKTOP_SIZE,
        ])?;
        first_full_frame(&mut c, 1920, 1080)?;
        std::thread::sleep(Duration::from_millis(500));
        let (total, ram) = rss_kib(r.pid(), s.memory << 20)?;
        if std::env::var_os("SMAPS_DUMP").is_some() {
            let dump = std::fs::read_to_string(format!("/proc/{}/smaps", r.pid()))?;
            let to = s.tmp.with_extension(format!("{m:?}.smaps"));
            std::fs::write(&to, dump)?;
            eprintln!("smaps of {} saved to {}", m.label(), to.display());
        }
        drop(c);
        return Ok((total - ram) as f64 / 1024.0);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (total, ram) = rss_kib(r.pid(), s.memory << 20)?;
    Ok((total - ram) as f64 / 1024.0)
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i).copied()
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    v.map_or("n/a".into(), |x| format!("{x:.prec$}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    }
}

/// Results of one kind, by monitor: values over runs.
type Samples = HashMap<(Monitor, String), Vec<f64>>;

fn push(map: &mut Samples, m: Monitor, key: &str, v: f64) {
    map.entry((m, key.to_string())).or_default().push(v);
}

fn get(map: &Samples, m: Monitor, key: &str) -> Option<f64> {
    map.get(&(m, key.to_string())).and_then(|v| median(v))
}

fn count(map: &Samples, m: Monitor, key: &str) -> usize {
    map.get(&(m, key.to_string())).map_or(0, Vec::len)
}

fn main() {
    // `cargo test --all-targets` runs bench targets too, without
    // `--bench`: there is nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("display bench: run it with compat-tests/bench/display.sh (cargo bench)");
        return;
    }
    let s = Settings::from_env();
    let ms = s.monitors.clone();
    let mut stream_samples = Samples::new();
    // 1. the display loop
    for run in 0..s.runs {
        for &mode in &s.modes {
            for &m in &ms {
                let key = format!("{}x{}", mode.0, mode.1);
                match display_loop(&s, m, mode) {
                    Ok((z, r)) => {
                        eprintln!(
                            "run {run} {key} {}: zrle {:.1} full/s {:.1} upd/s {:.0} B/upd guest {} fps; raw {:.1} full/s {:.0} B/upd guest {} fps",
                            m.label(),
                            z.full_per_s,
                            z.updates_per_s,
                            z.bytes_per_update,
                            fmt(z.guest_fps, 0),
                            r.full_per_s,
                            r.bytes_per_update,
                            fmt(r.guest_fps, 0)
                        );
                        for (enc, st) in [("zrle", &z), ("raw", &r)] {
                            push(
                                &mut stream_samples,
                                m,
                                &format!("{key} {enc} full"),
                                st.full_per_s,
                            );
                            push(
                                &mut stream_samples,
                                m,
                                &format!("{key} {enc} upd"),
                                st.updates_per_s,
                            );
                            push(
                                &mut stream_samples,
                                m,
                                &format!("{key} {enc} bpu"),
                                st.bytes_per_update,
                            );
                            push(
                                &mut stream_samples,
                                m,
                                &format!("{key} {enc} bps"),
                                st.bytes_per_screen,
                            );
                            if let Some(g) = st.guest_fps {
                                push(&mut stream_samples, m, &format!("{key} {enc} guest"), g);
                            }
                        }
                    }
                    Err(e) => eprintln!("run {run} {key} {}: {e}", m.label()),
                }
            }
        }
    }
    // 2. key latency
    let mut keys: HashMap<Monitor, Vec<f64>> = HashMap::new();
    for &m in &ms {
        for run in 0..s.runs {
            match key_latency(&s, m) {
                Ok(v) => {
                    eprintln!(
                        "run {run} keys {}: median {} ms",
                        m.label(),
                        fmt(median(&v), 2)
                    );
                    keys.entry(m).or_default().extend(v);
                }
                Err(e) => eprintln!("run {run} keys {}: {e}", m.label()),
            }
        }
    }
    // 3. RSS
    let mut rss = Samples::new();
    for run in 0..s.runs {
        for &m in &ms {
            for (display, key) in [(false, "plain"), (true, "display")] {
                match rss_beyond_ram(&s, m, display) {
                    Ok(v) => {
                        eprintln!("run {run} rss {} {key}: {v:.1} MiB", m.label());
                        push(&mut rss, m, key, v);
                    }
                    Err(e) => eprintln!("run {run} rss {} {key}: {e}", m.label()),
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&s.tmp);

    // The report.
    let has_qemu = ms.contains(&Monitor::Qemu);
    let vs_qemu = |v: Option<f64>, q: Option<f64>| {
        if has_qemu { ratio(v, q) } else { "n/a".into() }
    };
    println!();
    println!(
        "display bench: {} runs, {} s per stream, {} key presses a run, {} MiB guest, client tests/vnc_common (one update request outstanding)",
        s.runs, s.seconds, s.presses, s.memory
    );
    println!("guest {}", s.elf.display());
    println!();
    println!(
        "(1) display-loop: full-screen updates/s (fps), all updates/s, KiB received per update and per screenful, guest frames/s"
    );
    println!(
        "{:<20} {:<26} {:>7} {:>8} {:>10} {:>10} {:>8} {:>5} {:>10} {:>10}",
        "mode/encoding",
        "monitor",
        "fps",
        "upd/s",
        "KiB/upd",
        "KiB/scr",
        "guest",
        "n",
        "fps/qemu",
        "scr/qemu"
    );
    for &(w, h) in &s.modes {
        for enc in ["zrle", "raw"] {
            let key = format!("{w}x{h} {enc}");
            for &m in &ms {
                let fps = get(&stream_samples, m, &format!("{key} full"));
                let bpu = get(&stream_samples, m, &format!("{key} bpu"));
                let q_fps = get(&stream_samples, Monitor::Qemu, &format!("{key} full"));
                let bps = get(&stream_samples, m, &format!("{key} bps"));
                let q_bps = get(&stream_samples, Monitor::Qemu, &format!("{key} bps"));
                let (rf, rb) = if m == Monitor::Qemu {
                    (String::new(), String::new())
                } else {
                    (vs_qemu(fps, q_fps), vs_qemu(bps, q_bps))
                };
                println!(
                    "{:<20} {:<26} {:>7} {:>8} {:>10} {:>10} {:>8} {:>5} {:>10} {:>10}",
                    key,
                    m.label(),
                    fmt(fps, 1),
                    fmt(get(&stream_samples, m, &format!("{key} upd")), 1),
                    fmt(bpu.map(|b| b / 1024.0), 1),
                    fmt(bps.map(|b| b / 1024.0), 1),
                    fmt(get(&stream_samples, m, &format!("{key} guest")), 0),
                    count(&stream_samples, m, &format!("{key} full")),
                    rf,
                    rb
                );
            }
        }
    }
    println!(
        "    targets: fps/qemu >= 1.00, scr/qemu (bytes per screenful, i.e. per full frame) <= 1.00"
    );
    println!();
    println!(
        "(2) key latency: QEMU extended key event sent -> \"INFO key make\" read from the monitor's stdout pipe"
    );
    println!(
        "{:<26} {:>10} {:>10} {:>10} {:>6} {:>10}",
        "monitor", "median ms", "p10 ms", "p90 ms", "n", "vs qemu"
    );
    for &m in &ms {
        let v = keys.get(&m).cloned().unwrap_or_default();
        let q = keys.get(&Monitor::Qemu).and_then(|v| median(v));
        println!(
            "{:<26} {:>10} {:>10} {:>10} {:>6} {:>10}",
            m.label(),
            fmt(median(&v), 3),
            fmt(percentile(&v, 0.1), 3),
            fmt(percentile(&v, 0.9), 3),
            v.len(),
            if m == Monitor::Qemu {
                String::new()
            } else {
                vs_qemu(median(&v), q)
            }
        );
    }
    println!();
    let fb = 1920.0 * 1080.0 * 4.0 / (1 << 20) as f64;
    println!(
        "(3) RSS beyond guest RAM (smaps, mappings >= guest RAM left out), 1920x1080 frame drawn and sent once; framebuffer {fb:.1} MiB"
    );
    println!(
        "{:<26} {:>12} {:>12} {:>12} {:>10} {:>5}",
        "monitor", "no display", "display", "added", "added/fb", "n"
    );
    for &m in &ms {
        let plain = get(&rss, m, "plain");
        let disp = get(&rss, m, "display");
        let added = match (plain, disp) {
            (Some(p), Some(d)) => Some(d - p),
            _ => None,
        };
        println!(
            "{:<26} {:>12} {:>12} {:>12} {:>10} {:>5}",
            m.label(),
            fmt(plain, 1),
            fmt(disp, 1),
            fmt(added, 1),
            ratio(added, Some(fb)),
            count(&rss, m, "display")
        );
    }
    println!("    target: added/fb <= 2.00 (MiB; medians over runs)");
}
