//! Confinement of the VMM. Once the machine is built (every file, device
//! and socket it needs is open) and before the first vCPU runs, the main
//! thread, still the only thread, calls [`lock_down`]:
//! - the jail: a mount namespace of its own whose root is an empty,
//!   read-only tmpfs (plus the vsock socket directories), see [`jail`];
//! - the identity from the configuration, no capabilities (bounding and
//!   ambient sets emptied too), `no_new_privs`;
//! - seccomp: every thread started from then on goes through one
//!   launcher thread and installs the filter of its [`ThreadKind`] before
//!   running anything else; the main thread installs its own with
//!   [`confine_current`] once it has started the others. See
//!   [`seccomp`] for the lists.
//!
//! Without a sandbox configuration, [`spawn`] is a plain thread spawn.

pub mod jail;
pub mod seccomp;

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use seccompiler::BpfProgram;

pub use seccomp::ThreadKind;

use super::config::SandboxConfig;
use super::exit::EXIT_ERROR;

/// The compiled filters, present once seccomp is armed.
static FILTERS: OnceLock<Vec<(ThreadKind, BpfProgram)>> = OnceLock::new();
/// Where thread starts go once seccomp is armed.
static LAUNCHER: OnceLock<Mutex<Sender<Launch>>> = OnceLock::new();

type Body = Box<dyn FnOnce() + Send + 'static>;

struct Launch {
    kind: ThreadKind,
    name: String,
    stack_size: Option<usize>,
    body: Body,
    started: Sender<io::Result<JoinHandle<()>>>,
}

/// Confines the process as `cfg` says. `runtime_dirs` are host
/// directories the VMM still reaches by path (they are bound into the
/// jail). Must run on the main thread while no other thread exists.
pub fn lock_down(cfg: &SandboxConfig, runtime_dirs: &[PathBuf]) -> io::Result<()> {
    if !cfg.enabled() {
        return Ok(());
    }
    let filters = if cfg.seccomp {
        let mut all = Vec::new();
        for kind in ThreadKind::ALL {
            let prog = seccomp::filter(kind)
                .map_err(|e| io::Error::other(format!("seccomp filter {kind:?}: {e}")))?;
            all.push((kind, prog));
        }
        Some(all)
    } else {
        None
    };
    fix_malloc_arena_limit();
    if let Some(root) = &cfg.jail {
        jail::enter(root, runtime_dirs)?;
    }
    jail::drop_privileges(cfg.user.as_ref())?;
    if let Some(filters) = filters {
        FILTERS
            .set(filters)
            .map_err(|_| io::Error::other("the sandbox was already set up"))?;
        start_launcher()?;
    }
    Ok(())
}

/// glibc sizes its malloc arena limit on a thread's first allocation by
/// reading `/sys/devices/system/cpu/online`, which a confined thread may
/// not open. Fixing the limit now, to glibc's own default of eight arenas
/// per CPU, leaves nothing to look up later.
fn fix_malloc_arena_limit() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let arenas = libc::c_int::try_from(cpus.saturating_mul(8)).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only changes a malloc tunable.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    // glibc reads /proc/sys/vm/overcommit_memory the first time it
    // shrinks a thread arena's heap, which a confined thread may not open
    // either. Large blocks (frames of the display) are kept out of the
    // arenas by pinning the mmap threshold (glibc raises it after each
    // free of an mmapped block otherwise), and a trim threshold of a whole
    // arena heap (64 MiB) means a thread arena is never shrunk.
    // SAFETY: as above.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Installs the filter of `kind` on the calling thread, if seccomp is
/// armed.
pub fn confine_current(kind: ThreadKind) -> io::Result<()> {
    let Some(filters) = FILTERS.get() else {
        return Ok(());
    };
    let prog = filters
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| p)
        .ok_or_else(|| io::Error::other(format!("no seccomp filter for {kind:?}")))?;
    seccompiler::apply_filter(prog)
        .map_err(|e| io::Error::other(format!("installing the {kind:?} seccomp filter: {e}")))
}

/// Starts a thread of `kind` called `name` running `body`, confined to
/// its filter from its first instruction on.
pub fn spawn<F>(
    kind: ThreadKind,
    name: &str,
    stack_size: Option<usize>,
    body: F,
) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    let Some(launcher) = LAUNCHER.get() else {
        return start_thread(kind, name.to_string(), stack_size, Box::new(body));
    };
    let (started, result) = channel();
    let request = Launch {
        kind,
        name: name.to_string(),
        stack_size,
        body: Box::new(body),
        started,
    };
    launcher
        .lock()
        .map_err(|_| io::Error::other("thread launcher lock poisoned"))?
        .send(request)
        .map_err(|_| io::Error::other("the thread launcher is gone"))?;
    result
        .recv()
        .map_err(|_| io::Error::other("the thread launcher is gone"))?
}

fn start_thread(
    kind: ThreadKind,
    name: String,
    stack_size: Option<usize>,
    body: Body,
) -> io::Result<JoinHandle<()>> {
    let mut b = std::thread::Builder::new().name(name);
    if let Some(s) = stack_size {
        b = b.stack_size(s);
    }
    b.spawn(move || {
        if let Err(e) = confine_current(kind) {
            // Running unconfined is never an option.
            eprintln!("oxvirt-vmm: error: {e}");
            std::process::exit(EXIT_ERROR);
        }
        body()
    })
}

fn start_launcher() -> io::Result<()> {
    let (tx, rx) = channel::<Launch>();
    std::thread::Builder::new()
        .name("launcher".into())
        .stack_size(64 * 1024)
        // The launcher keeps the main thread's signal mask (host signals
        // blocked, the vCPU kick open), which every thread inherits.
        .spawn(move || {
            if let Err(e) = confine_current(ThreadKind::Launcher) {
                eprintln!("oxvirt-vmm: error: {e}");
                std::process::exit(EXIT_ERROR);
            }
            for req in rx {
                let r = start_thread(req.kind, req.name, req.stack_size, req.body);
                let _ = req.started.send(r);
            }
        })?;
    LAUNCHER
        .set(Mutex::new(tx))
        .map_err(|_| io::Error::other("the thread launcher was already started"))
}
