//! One `oxvirt-vmm` process: spawning it, connecting to its control
//! socket, re-attaching to it after a daemon restart, setting its balloon,
//! stopping it. `supervise.rs` decides when; this is the mechanism.

use crate::vmm::protocol::{
    self, BalloonSet, ChangeMedia, SendKey, SetVncPassword, Status, VncAddClient, WithFd,
};
use std::fs::OpenOptions;
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::vmm::config::VmConfig;

use super::control::{ControlClient, VmmEvent};
use super::fsutil::{Durability, system_error, write_atomic};
use super::pidfd::{ExitStatus, PidFd};

/// How long a new VMM has to answer on its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// How the guest answered a request to release a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// It ejected the device (`device-deleted`).
    Ejected,
    /// It refused, through the slot's `_OST` (`device-unplug-guest-error`).
    Refused,
}

/// A VMM process the driver supervises.
pub struct Vmm {
    pub pid: i32,
    pub pidfd: PidFd,
    pub control: ControlClient,
    pub socket: PathBuf,
    pub config_file: PathBuf,
    /// The configuration it runs: what it started with, and the devices
    /// plugged in or released since (a reboot's VMM starts from it).
    pub config: Mutex<VmConfig>,
    /// Slots whose device the guest released (`device-deleted`), for a
    /// detach waiting on it.
    pub released: tokio::sync::broadcast::Sender<(u8, Release)>,
    /// vCPUs the guest ejected (`vcpu-removed`), by index.
    pub vcpus_removed: tokio::sync::broadcast::Sender<u32>,
    /// Becomes `Some` once the process has exited.
    pub exited: watch::Receiver<Option<ExitStatus>>,
    /// The reason of the last `shutdown` event seen.
    pub last_reason: Mutex<Option<String>>,
}

/// What a caller needs to watch a VMM: the exit notifier to fill and the
/// control socket's event stream.
pub struct VmmWatch {
    pub exited_tx: watch::Sender<Option<ExitStatus>>,
    pub events: mpsc::UnboundedReceiver<VmmEvent>,
}

/// How a new VMM begins: booting the guest, or from a saved state read
/// from `restore_fd`; with `paused`, no guest instruction runs until `cont`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartFrom {
    pub restore_fd: Option<RawFd>,
    pub paused: bool,
}

/// Where one domain's runtime files go.
pub struct VmmPaths {
    pub socket: PathBuf,
    pub config_file: PathBuf,
    pub log_file: PathBuf,
}

/// The next of a VMM's announcements (`released`, `vcpus_removed`) that
/// `pick` takes; `pick(None)` is asked when some were missed (the receiver
/// lagged), so that the caller can look at the state again. The channel
/// lives as long as the VMM: once closed, nothing more comes.
pub async fn next_announcement<T: Clone, R>(
    rx: &mut tokio::sync::broadcast::Receiver<T>,
    mut pick: impl FnMut(Option<T>) -> Option<R>,
) -> R {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let seen = match rx.recv().await {
            Ok(m) => Some(m),
            Err(RecvError::Lagged(_)) => None,
            Err(RecvError::Closed) => std::future::pending().await,
        };
        if let Some(r) = pick(seen) {
            return r;
        }
    }
}

fn tail_of_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    lines[start..].join("\n")
}

/// Spawns the VMM for `config` and waits until it reports the guest
/// running. The VMM inherits `fds` (tap fds the config names) under the
/// same numbers, and enters the cgroups whose `cgroup.procs` files
/// `cgroup_procs` names before it runs. Returns its `query-status`
/// answer along with the handle.
pub async fn spawn(
    vmm_path: &Path,
    paths: &VmmPaths,
    config: VmConfig,
    fds: &[RawFd],
    cgroup_procs: Vec<std::ffi::CString>,
    start: StartFrom,
) -> Result<(Vmm, VmmWatch, Status)> {
    let json = serde_json::to_vec_pretty(&config)
        .map_err(|e| Error::internal(format!("cannot serialise the VMM config: {e}")))?;
    write_atomic(&paths.config_file, &json, Durability::Runtime).map_err(|e| {
        system_error(
            format!("cannot write file '{}'", paths.config_file.display()),
            &e,
        )
    })?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(super::fsutil::PRIVATE_FILE)
        .open(&paths.log_file)
        .map_err(|e| {
            system_error(
                format!("cannot open log file '{}'", paths.log_file.display()),
                &e,
            )
        })?;
    let log2 = log
        .try_clone()
        .map_err(|e| system_error("cannot duplicate the log fd", &e))?;
    let _ = std::fs::remove_file(&paths.socket);
    let mut cmd = Command::new(vmm_path);
    let inherit: Vec<RawFd> = fds.iter().copied().chain(start.restore_fd).collect();
    if let Some(fd) = start.restore_fd {
        cmd.arg("--restore-fd").arg(fd.to_string());
    }
    if start.paused {
        cmd.arg("--paused");
    }
    // SAFETY: the closure runs in the child between fork and exec and
    // only calls fcntl, open, write and close, which are
    // async-signal-safe, on fds the parent holds open for the whole spawn
    // and on paths allocated before the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // "0" moves the writer: the VMM is in its cgroups, charged
            // for its memory and time, before its first instruction.
            for procs in &cgroup_procs {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if written != 1 {
                    return Err(err);
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .arg("--config")
        .arg(&paths.config_file)
        .arg("--control-socket")
        .arg(&paths.socket)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Its own process group: signals meant for the daemon's group
        // (a terminal's Ctrl-C, a service manager) leave guests running.
        .process_group(0)
        .spawn()
        .map_err(|e| system_error(format!("cannot execute binary {}", vmm_path.display()), &e))?;
    let pid = i32::try_from(child.id()).map_err(|_| Error::internal("pid out of range"))?;
    // The std handle is dropped without waiting: the pidfd watcher reaps.
    drop(child);
    let pidfd =
        PidFd::open(pid).map_err(|e| system_error("cannot open a pidfd for the VMM", &e))?;
    let result = connect_new(pidfd, pid, paths, config).await;
    if result.is_err() {
        let _ = std::fs::remove_file(&paths.config_file);
        let _ = std::fs::remove_file(&paths.socket);
    }
    result
}

async fn connect_new(
    pidfd: PidFd,
    pid: i32,
    paths: &VmmPaths,
    config: VmConfig,
) -> Result<(Vmm, VmmWatch, Status)> {
    let started = tokio::time::Instant::now();
    let deadline = started + START_TIMEOUT;
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let control = loop {
        if pidfd.has_exited() {
            let status = pidfd.wait().await;
            tracing::warn!(pid, ?status, "VMM exited during start");
            return Err(Error::internal(format!(
                "process exited while connecting to monitor: {}",
                tail_of_log(&paths.log_file)
            )));
        }
        if paths.socket.exists()
            && let Ok(c) = ControlClient::connect(&paths.socket, ev_tx.clone()).await
        {
            break c;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = pidfd.kill(libc::SIGKILL);
            let _ = pidfd.wait().await;
            return Err(Error::internal(
                "the VMM did not open its control socket in time",
            ));
        }
        tokio::time::sleep(connect_retry(started.elapsed())).await;
    };
    let status = match control.status().await {
        Ok(s) => s,
        Err(e) => {
            let _ = pidfd.kill(libc::SIGKILL);
            let _ = pidfd.wait().await;
            return Err(Error::internal(format!(
                "process exited while connecting to monitor: {} {}",
                e.message,
                tail_of_log(&paths.log_file)
            )));
        }
    };
    tracing::debug!(pid, ?status, "VMM is up");
    let (exited_tx, exited) = watch::channel(None);
    Ok((
        Vmm {
            pid,
            pidfd,
            control,
            socket: paths.socket.clone(),
            config_file: paths.config_file.clone(),
            config: Mutex::new(config),
            released: tokio::sync::broadcast::channel(16).0,
            vcpus_removed: tokio::sync::broadcast::channel(16).0,
            exited,
            last_reason: Mutex::new(None),
        },
        VmmWatch {
            exited_tx,
            events: ev_rx,
        },
        status,
    ))
}

/// How long to wait before looking for a new VMM's control socket again.
/// The VMM binds it a few milliseconds after exec, before it builds the
/// machine, so the first 100 ms are polled every millisecond (a start
/// returns as soon as the guest runs); a slow start is polled less often.
fn connect_retry(elapsed: Duration) -> Duration {
    if elapsed < Duration::from_millis(100) {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(20)
    }
}

/// Re-attaches to a VMM that outlived a daemon restart. Returns its
/// `query-status` answer along with the handle.
pub async fn attach(
    pid: i32,
    socket: &Path,
    config_file: &Path,
    config: VmConfig,
) -> Result<(Vmm, VmmWatch, Status)> {
    let pidfd = PidFd::open(pid).map_err(|e| system_error(format!("VMM pid {pid} is gone"), &e))?;
    if !cmdline_mentions(pid, socket) {
        return Err(Error::internal(format!(
            "pid {pid} is not the VMM of control socket '{}'",
            socket.display()
        )));
    }
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let control = ControlClient::connect(socket, ev_tx).await?;
    let status = control.status().await?;
    let (exited_tx, exited) = watch::channel(None);
    Ok((
        Vmm {
            pid,
            pidfd,
            control,
            socket: socket.to_path_buf(),
            config_file: config_file.to_path_buf(),
            config: Mutex::new(config),
            released: tokio::sync::broadcast::channel(16).0,
            vcpus_removed: tokio::sync::broadcast::channel(16).0,
            exited,
            last_reason: Mutex::new(None),
        },
        VmmWatch {
            exited_tx,
            events: ev_rx,
        },
        status,
    ))
}

fn cmdline_mentions(pid: i32, socket: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = socket.as_os_str().as_encoded_bytes();
    raw.split(|&b| b == 0).any(|arg| arg == want)
}

impl Vmm {
    /// Waits until the process has exited, at most `limit`.
    pub async fn wait_exit(&self, limit: Duration) -> bool {
        let mut rx = self.exited.clone();
        let waited = tokio::time::timeout(limit, rx.wait_for(|s| s.is_some())).await;
        matches!(waited, Ok(Ok(_)))
    }

    /// Stops the process: SIGTERM, then SIGKILL if it lingers.
    pub async fn terminate(&self) -> Result<()> {
        let _ = self.pidfd.kill(libc::SIGTERM);
        if self.wait_exit(Duration::from_secs(3)).await {
            return Ok(());
        }
        tracing::warn!(pid = self.pid, "VMM ignored SIGTERM, killing it");
        let _ = self.pidfd.kill(libc::SIGKILL);
        if self.wait_exit(Duration::from_secs(5)).await {
            Ok(())
        } else {
            Err(Error::new(
                crate::error::ErrorCode::SystemError,
                crate::error::ErrorDomain::Qemu,
                format!(
                    "Failed to terminate process {} with SIGKILL: Device or resource busy",
                    self.pid
                ),
            ))
        }
    }

    /// A copy of the configuration it runs.
    pub fn config(&self) -> VmConfig {
        self.config_mut().clone()
    }

    /// The configuration it runs, to change as devices come and go.
    pub fn config_mut(&self) -> std::sync::MutexGuard<'_, VmConfig> {
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plugs `device` into the running guest (`fds`: a disk's image, a
    /// NIC's taps); the PCI slot it went to.
    pub async fn device_add(
        &self,
        device: crate::vmm::config::DeviceConfig,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<u8> {
        let command = protocol::Command::DeviceAdd(Box::new(protocol::DeviceAdd { device }));
        let reply = self.control.run_with_fds(&command, fds, None).await?;
        serde_json::from_value::<protocol::DeviceAdded>(reply)
            .map(|a| a.slot)
            .map_err(|e| Error::internal(format!("unexpected device-add reply: {e}")))
    }

    /// Asks the guest to release the device in PCI slot `slot`.
    pub async fn device_del(&self, slot: u8) -> Result<()> {
        self.control
            .run(&protocol::Command::DeviceDel(protocol::DeviceDel { slot }))
            .await
            .map(|_| ())
    }

    /// Asks the guest's balloon for `kib` of memory (the VMM's size in
    /// pages minus what it should keep).
    pub async fn balloon_to(&self, kib: u64) -> Result<()> {
        let vmm_kib = self.config().memory_mib.saturating_mul(1024);
        let pages = vmm_kib.saturating_sub(kib) / 4;
        let set = BalloonSet {
            num_pages: Some(pages),
            target_mib: None,
        };
        self.control
            .run(&protocol::Command::BalloonSet(set))
            .await
            .map(|_| ())
    }

    /// Ejects the medium of CD-ROM drive `id` or, with `image`, inserts it
    /// (handed over as a descriptor: the VMM opens no files).
    /// `disk-reopen`: the virtio disk in `slot` goes on with the image
    /// `layers` open, the image first and its backing chain after it.
    pub async fn disk_reopen(
        &self,
        slot: u8,
        layers: &[(std::fs::File, crate::vmm::config::DiskFormat)],
        internal: Option<protocol::InternalSnapshot>,
    ) -> Result<()> {
        self.reopen(slot, layers, internal, false).await
    }

    /// The virtio disk in PCI slot `slot` goes on with its image `image`
    /// (raw) at the size it has now; the guest is told of the change.
    pub async fn disk_resized(&self, slot: u8, image: std::fs::File) -> Result<()> {
        let layers = [(image, crate::vmm::config::DiskFormat::Raw)];
        self.reopen(slot, &layers, None, true).await
    }

    /// The guest's vCPU count: vCPUs plugged in at once, or asked to go
    /// (each leaves with the event `vcpu-removed`).
    pub async fn set_vcpus(&self, count: u32) -> Result<()> {
        self.control
            .run(&protocol::Command::SetVcpus(protocol::SetVcpus { count }))
            .await
            .map(|_| ())
    }

    /// The open (qcow2) image of the virtio disk in PCI slot `slot` given
    /// the virtual size `size`, the guest told.
    pub async fn disk_resize(&self, slot: u8, size: u64) -> Result<()> {
        self.control
            .run(&protocol::Command::DiskResize(protocol::DiskResize {
                slot,
                size,
            }))
            .await
            .map(|_| ())
    }

    async fn reopen(
        &self,
        slot: u8,
        layers: &[(std::fs::File, crate::vmm::config::DiskFormat)],
        internal: Option<protocol::InternalSnapshot>,
        resize: bool,
    ) -> Result<()> {
        use std::os::fd::AsFd;
        let command = protocol::Command::DiskReopen(protocol::DiskReopen {
            slot,
            formats: layers.iter().map(|(_, f)| *f).collect(),
            internal,
            resize,
        });
        let fds: Vec<_> = layers.iter().map(|(f, _)| f.as_fd()).collect();
        self.control
            .run_with_fds(&command, &fds, None)
            .await
            .map(|_| ())
    }

    /// The link of the virtio NIC in PCI slot `slot`.
    pub async fn set_link(&self, slot: u8, up: bool) -> Result<()> {
        self.control
            .run(&protocol::Command::SetLink(protocol::SetLink { slot, up }))
            .await
            .map(|_| ())
    }

    pub async fn change_media(&self, id: &str, image: Option<&std::fs::File>) -> Result<()> {
        use std::os::fd::AsFd;
        match image {
            None => {
                let eject = ChangeMedia {
                    device: id.to_string(),
                    path: Some(None),
                    fd: false,
                };
                self.control
                    .run(&protocol::Command::ChangeMedia(eject))
                    .await
                    .map(|_| ())
            }
            Some(f) => {
                let insert = ChangeMedia {
                    device: id.to_string(),
                    path: None,
                    fd: true,
                };
                self.control
                    .run_with_fd(&protocol::Command::ChangeMedia(insert), f.as_fd(), None)
                    .await
                    .map(|_| ())
            }
        }
    }

    /// Has the VMM write the screen as a PPM image into `out`.
    pub async fn screendump(&self, out: &std::fs::File) -> Result<()> {
        use std::os::fd::AsFd;
        self.control
            .run_with_fd(
                &protocol::Command::Screendump(WithFd { fd: true }),
                out.as_fd(),
                None,
            )
            .await
            .map(|_| ())
    }

    /// Presses `keys` (Linux key codes) in order, holds them `hold_ms`
    /// and releases them in reverse order.
    pub async fn send_key(&self, keys: &[u16], hold_ms: u32) -> Result<()> {
        let keys = SendKey {
            keys: keys.to_vec(),
            hold_ms: u64::from(hold_ms),
        };
        self.control
            .run(&protocol::Command::SendKey(keys))
            .await
            .map(|_| ())
    }

    /// Hands the VNC server a connected socket to serve as a client.
    pub async fn vnc_add_client(&self, fd: std::os::fd::OwnedFd, skip_auth: bool) -> Result<()> {
        use std::os::fd::AsFd;
        let add = VncAddClient {
            fd: true,
            skipauth: skip_auth,
        };
        self.control
            .run_with_fd(&protocol::Command::VncAddClient(add), fd.as_fd(), None)
            .await
            .map(|_| ())
    }

    /// Sets (or with none, removes) the VNC server's password.
    pub async fn set_vnc_password(&self, password: Option<&str>) -> Result<()> {
        let set = SetVncPassword {
            password: password.map(str::to_string),
        };
        self.control
            .run(&protocol::Command::SetVncPassword(set))
            .await
            .map(|_| ())
    }

    /// The memory a guest has when its balloon holds `pages` 4 KiB pages.
    pub fn ballooned_kib(&self, max_kib: u64, pages: u64) -> u64 {
        let vmm_kib = self.config().memory_mib.saturating_mul(1024);
        vmm_kib.saturating_sub(pages.saturating_mul(4)).min(max_kib)
    }

    /// Removes the files this VMM's start created.
    pub fn remove_files(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(&self.config_file);
        for p in super::resolve::created_files(&self.config()) {
            let _ = std::fs::remove_file(p);
        }
    }
}
