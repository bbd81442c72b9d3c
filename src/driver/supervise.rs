//! Supervision of the VMM processes that run domains: launching one with
//! the taps and files its start made, watching it through its pidfd and
//! the events of its control socket, applying `on_poweroff`, `on_reboot`
//! and `on_crash` when it exits, booting the guest again in a fresh VMM
//! after a reset, and re-attaching to the VMMs that outlived a daemon
//! restart.
//!
//! `lifecycle.rs` comes in through [`launch`], [`terminate`] and
//! [`reattach_all`]; the monitor and what happens on an exit are private.
//! [`launch`] and [`terminate`] run with the domain's job lock held by
//! their caller; the monitor takes the job lock itself before it handles
//! an exit. `vmm.rs` is the process and control-socket wrapper underneath.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use crate::error::{Error, Result};
use crate::vmm::config::VmConfig;
use crate::vmm::protocol::{self, RunStatus};
use crate::xml::model::chardev::CharSourceType;
use crate::xml::model::lifecycle::{CrashAction, LifecycleAction};
use crate::xml::{Domain, FormatFlags, assign_aliases, parse_domain};

use super::Inner;
use super::domain::{DomainObj, Live};
use super::graphics;
use super::hostnet::{self, Taps};
use super::pidfd::ExitStatus;
use super::resolve::{self, Plan};
use super::runtime::{self, HostResources, Status};
use super::security_dac;
use super::state::{DomainState, EventKind, EventType, detail, paused, running, shutoff};
use super::vmm::{self, Vmm, VmmPaths, VmmWatch};
use super::{cgroup, tuning};

/// Runs `def` in a new VMM as `plan` resolved it: makes the taps, spawns
/// the VMM with their fds and waits until the guest runs, sets the
/// balloon, then leaves the domain running with the next id, its live
/// definition (aliases, pty paths, tap names, vsock CID) and a status
/// file, watched until its VMM exits. Whatever fails removes the taps and
/// files made so far and kills the VMM. The caller holds the job lock and
/// emits the STARTED event.
pub(super) async fn launch(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    def: Domain,
    plan: Plan,
    start: Launch,
) -> Result<()> {
    let name = obj.name();
    // From here on, whatever fails drops `taps`, which removes them.
    let taps = hostnet::acquire(&plan.nets, &inner.tap_names)?;
    let mut config = plan.config;
    config.sandbox = inner.cfg.confinement.sandbox(&inner.cfg.run_dir);
    // Undone on drop, as the taps are, until the guest runs.
    let labels = match &inner.cfg.confinement.user {
        Some(user) => security_dac::label(
            user,
            inner.cfg.confinement.dynamic_ownership,
            &security_dac::guest_files(&config),
        )?,
        None => security_dac::Labels::default(),
    };
    taps.bind(&mut config);
    let serial_pty = serial_pty(&mut config)?;
    let mut fds = taps.fds();
    // Closed (and a socket file removed) on drop, until the guest runs.
    let vnc = match &plan.vnc {
        Some(p) => {
            let sockets = graphics::VncSockets::open(p)?;
            sockets.bind(p, &mut config);
            fds.extend(sockets.fds());
            Some(sockets)
        }
        None => None,
    };
    fds.extend(serial_pty.as_ref().map(|m| m.as_raw_fd()));
    // Removed on drop, until the guest runs.
    let cgroup = make_cgroup(inner, &name, &def)?;
    let p = paths(inner, &name, &obj.uuid);
    let (vmm, watch, status) = spawn_checked(
        inner,
        &p,
        config,
        &fds,
        cgroup.as_ref().map(|c| (c.get(), &def)),
        start.from,
    )
    .await?;
    if let Some(kib) = plan.balloon_target_kib
        && let Err(e) = vmm.balloon_to(kib).await
    {
        tracing::warn!(domain = name, "cannot set the balloon: {e}");
    }
    inner.note_network_ports(&taps.records(), true);
    let host = HostResources {
        disks: plan.disks,
        nets: taps.records(),
        vsock_cid: plan.vsock_cid,
        owners: labels.keep(),
    };
    let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
    let mut live_def = def;
    live_def.id = Some(id);
    assign_aliases(&mut live_def);
    apply_status(&mut live_def, &status);
    apply_host(&mut live_def, &host);
    if let (Some(sockets), Some(p)) = (&vnc, &plan.vnc) {
        sockets.apply_live(p, &mut live_def);
    }
    let generation = inner.generation.fetch_add(1, Ordering::SeqCst);
    let vmm = Arc::new(vmm);
    {
        let mut d = obj.data();
        d.starting = None;
        d.live = Some(Live {
            id,
            def: live_def,
            vmm: vmm.clone(),
            generation,
            restart_requested: false,
            shutdown_requested: false,
            host,
            taps,
            serial_pty,
            cgroup: cgroup.map(cgroup::Pending::keep),
            vnc,
        });
        if start.from.paused {
            d.state = DomainState::Paused;
            d.reason = start.paused_reason;
        } else {
            d.state = DomainState::Running;
            d.reason = start.running_reason;
        }
    }
    write_status(inner, obj);
    spawn_monitor(inner.clone(), obj.clone(), vmm, watch, generation);
    Ok(())
}

/// How [`launch`] starts the guest and the state it records.
pub(super) struct Launch {
    pub from: vmm::StartFrom,
    /// `virDomainRunningReason` when it runs.
    pub running_reason: i32,
    /// `virDomainPausedReason` when it starts paused.
    pub paused_reason: i32,
}

impl Launch {
    /// A boot, running or paused.
    pub fn boot(paused: bool) -> Launch {
        Launch {
            from: vmm::StartFrom {
                restore_fd: None,
                paused,
            },
            running_reason: running::BOOTED,
            paused_reason: paused::USER,
        }
    }
}

/// For a serial port on a pty, opens the terminal here and hands the VMM
/// its master: the driver keeps one too, so that the terminal, and a
/// console connected to it, outlive the VMM.
fn serial_pty(config: &mut VmConfig) -> Result<Option<std::os::fd::OwnedFd>> {
    if config.serial != crate::vmm::config::SerialConfig::Pty {
        return Ok(None);
    }
    let (master, path) = crate::vmm::serial_backend::open_pty()
        .map_err(|e| super::fsutil::system_error("cannot open a pty for the serial port", &e))?;
    config.serial = crate::vmm::config::SerialConfig::PtyFd {
        fd: master.as_raw_fd(),
        path,
    };
    Ok(Some(master))
}

/// Ends the VMM of a guest whose state was just saved, leaving the domain
/// shut off as saved. The caller holds the job lock and emits the event.
pub(super) async fn stop_saved(inner: &Arc<Inner>, obj: &Arc<DomainObj>, vmm: &Vmm) -> Result<()> {
    stop_as(inner, obj, vmm, shutoff::SAVED).await
}

/// Ends the domain's VMM and leaves it shut off for `reason`. The caller
/// holds the job lock and emits the event.
pub(super) async fn stop_as(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    vmm: &Vmm,
    reason: i32,
) -> Result<()> {
    vmm.terminate().await?;
    finish_stop(inner, obj, reason);
    Ok(())
}

/// Ends the domain's VMM (SIGTERM, then SIGKILL) and leaves the domain
/// shut off as destroyed, its taps and runtime files removed (a transient
/// domain is forgotten). The caller holds the job lock and emits the event.
pub(super) async fn terminate(inner: &Arc<Inner>, obj: &Arc<DomainObj>, vmm: &Vmm) -> Result<()> {
    vmm.terminate().await?;
    finish_stop(inner, obj, shutoff::DESTROYED);
    Ok(())
}

/// Re-attaches to every VMM named by a status file that still runs.
pub(super) async fn reattach_all(inner: &Arc<Inner>) {
    for st in runtime::load_all(&inner.cfg.run_dir) {
        if let Err(e) = reattach_one(inner, &st).await {
            tracing::warn!(domain = st.name, "not re-attaching: {e}");
            runtime::remove(&inner.cfg.run_dir, &st.name);
            let _ = std::fs::remove_file(&st.config_file);
            let _ = std::fs::remove_file(&st.control_socket);
            for f in resolve::created_files(&st.config) {
                let _ = std::fs::remove_file(f);
            }
            hostnet::release(&st.host.nets);
            inner.note_network_ports(&st.host.nets, false);
            security_dac::restore(&st.host.owners, |p| file_in_use(inner, None, p));
            if let Ok(Some(cg)) =
                parse_domain(&st.live_xml).and_then(|def| cgroup_of(inner, &st.name, &def))
            {
                cg.remove();
            }
        }
    }
}

/// Appends the daemon's word on a guest's end to the guest's log.
fn note_in_log(log: &Path, line: &str) {
    use std::io::Write;
    let opened = std::fs::OpenOptions::new().append(true).open(log);
    if let Ok(mut f) = opened {
        let _ = writeln!(f, "oxvirtd: {line}");
    }
}

/// Whether a running guest other than `except` opens `path`.
pub(super) fn file_in_use(inner: &Inner, except: Option<&Uuid>, path: &Path) -> bool {
    inner
        .registry
        .all()
        .iter()
        .filter(|o| Some(&o.uuid) != except)
        .any(|o| {
            o.data().live.as_ref().is_some_and(|l| {
                security_dac::guest_files(&l.vmm.config())
                    .iter()
                    .any(|(p, _)| p == path)
            })
        })
}

async fn reattach_one(inner: &Arc<Inner>, st: &Status) -> Result<()> {
    let mut live_def = parse_domain(&st.live_xml)?;
    live_def.id = Some(st.id);
    // The parser drops generated tap names; the records keep them.
    apply_host(&mut live_def, &st.host);
    for n in &st.host.nets {
        inner.tap_names.reserve(&n.ifname);
    }
    let (vmm, watch, status) = vmm::attach(
        st.pid,
        &st.control_socket,
        &st.config_file,
        st.config.clone(),
    )
    .await?;
    let is_paused = status.status == RunStatus::Paused;
    inner.note_network_ports(&st.host.nets, true);
    let vmm = Arc::new(vmm);
    let generation = inner.generation.fetch_add(1, Ordering::SeqCst);
    let live = Live {
        id: st.id,
        def: live_def.clone(),
        vmm: vmm.clone(),
        generation,
        restart_requested: false,
        shutdown_requested: false,
        host: st.host.clone(),
        taps: Taps::default(),
        serial_pty: None,
        // The group it was started in, if it was.
        cgroup: cgroup_of(inner, &st.name, &live_def)
            .ok()
            .flatten()
            .filter(|c| c.exists()),
        vnc: None,
    };
    let (state, reason) = if is_paused {
        (DomainState::Paused, paused::USER)
    } else {
        (DomainState::Running, running::BOOTED)
    };
    let obj = match inner.registry.by_uuid(&live_def.uuid) {
        Some(obj) => obj,
        None => {
            let obj = DomainObj::new(
                live_def.uuid,
                super::domain::DomainData {
                    name: live_def.name.clone(),
                    persistent: None,
                    live: None,
                    autostart: false,
                    state,
                    reason,
                    removed: false,
                    starting: None,
                },
            );
            if let Err(e) = inner.registry.insert(obj.clone()) {
                // Nobody could manage this guest: stop it rather than
                // leave an unwatched VMM behind.
                tracing::error!(
                    domain = st.name,
                    "cannot take back the guest, stopping it: {e}"
                );
                let _ = vmm.pidfd.kill(libc::SIGKILL);
                return Err(e);
            }
            obj
        }
    };
    {
        let mut d = obj.data();
        d.live = Some(live);
        d.state = state;
        d.reason = reason;
    }
    tracing::info!(domain = st.name, pid = st.pid, "re-attached to running VMM");
    spawn_monitor(inner.clone(), obj, vmm, watch, generation);
    Ok(())
}

/// Where the VMM of domain `name` keeps its socket, config and log.
fn paths(inner: &Inner, name: &str, uuid: &Uuid) -> VmmPaths {
    VmmPaths {
        socket: inner.cfg.run_dir.join(format!("{uuid}.ctl")),
        config_file: inner.cfg.run_dir.join(format!("{uuid}.vmconfig")),
        log_file: inner.cfg.log_dir().join(format!("{name}.log")),
    }
}

pub(super) fn set_pty(dev: &mut crate::xml::model::chardev::Chardev, pty: &str) {
    if dev.source_type == CharSourceType::Pty {
        if dev.sources.is_empty() {
            dev.sources.push(Default::default());
        }
        dev.sources[0].path = Some(pty.to_string());
    }
}

/// Fills what the VMM reported into the live definition (pty paths).
fn apply_status(def: &mut Domain, status: &protocol::Status) {
    let d = &mut def.devices;
    if let Some(pty) = status.serial_pty.as_deref() {
        for dev in d.serials.iter_mut().take(1).chain(
            d.consoles
                .iter_mut()
                .take(1)
                .filter(|c| !super::devices::is_virtio_console(c)),
        ) {
            set_pty(dev, pty);
        }
    }
    // One virtio console at most (the resolver says so).
    let virtio_pty = status.console_ptys.first().map(|c| c.path.as_str());
    if let Some(pty) = virtio_pty
        && let Some(dev) = d
            .consoles
            .iter_mut()
            .find(|c| super::devices::is_virtio_console(c))
    {
        set_pty(dev, pty);
    }
}

/// Fills the host resources a start made into the live definition: tap
/// names and the vsock CID.
fn apply_host(def: &mut Domain, host: &HostResources) {
    for n in &host.nets {
        if let Some(i) = def.devices.interfaces.get_mut(n.index) {
            i.target_dev = Some(n.ifname.clone());
        }
    }
    if let (Some(v), Some(cid)) = (def.devices.vsock.as_mut(), host.vsock_cid) {
        v.cid = Some(cid);
        if v.cid_auto.is_none() {
            v.cid_auto = Some(false);
        }
    }
}

/// Writes the domain's runtime status file (what a re-attach reads back).
pub(super) fn write_status(inner: &Inner, obj: &DomainObj) {
    let d = obj.data();
    let Some(live) = d.live.as_ref() else { return };
    let st = Status {
        version: runtime::STATUS_VERSION,
        name: d.name.clone(),
        uuid: obj.uuid.to_string(),
        id: live.id,
        pid: live.vmm.pid,
        control_socket: live.vmm.socket.clone(),
        config_file: live.vmm.config_file.clone(),
        config: live.vmm.config(),
        live_xml: live.def.to_xml(FormatFlags {
            secure: true,
            ..FormatFlags::default()
        }),
        transient: d.persistent.is_none(),
        host: live.host.clone(),
    };
    drop(d);
    runtime::save(&inner.cfg.run_dir, &st);
}

/// Spawns the VMM, or fails as libvirt does when its binary is missing.
/// The guest's cgroup under its partition (`<resource><partition>` or the
/// daemon's), made and given the tunables that hold before the VMM runs;
/// None when the host offers no controller.
fn make_cgroup(inner: &Inner, name: &str, def: &Domain) -> Result<Option<cgroup::Pending>> {
    let Some(cg) = cgroup_of(inner, name, def)? else {
        return Ok(None);
    };
    let cg = cgroup::Pending::new(cg);
    cg.get().create()?;
    tuning::apply::before_start(cg.get(), def)?;
    Ok(Some(cg))
}

/// Where the guest's cgroup is (nothing is made).
fn cgroup_of(inner: &Inner, name: &str, def: &Domain) -> Result<Option<cgroup::GuestCgroup>> {
    if inner.cfg.cgroups.is_empty() {
        return Ok(None);
    }
    let partition = match def
        .kept
        .iter()
        .find(|e| e.name == "resource")
        .and_then(|r| r.child_text("partition"))
    {
        Some(p) => {
            cgroup::check_partition(p)?;
            p.to_string()
        }
        None => inner.cfg.cgroup_partition.clone(),
    };
    Ok(Some(cgroup::GuestCgroup::new(
        &inner.cfg.cgroups,
        &partition,
        name,
    )))
}

/// The thread ids of the VMM's vCPUs, once every vCPU thread started.
async fn vcpu_tids(vmm: &Vmm) -> Result<Vec<i32>> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let stats = vmm.control.stats().await?;
        let tids: Vec<i32> = stats.vcpus.iter().map(|c| c.tid).collect();
        if !tids.is_empty() && tids.iter().all(|t| *t > 0) {
            return Ok(tids);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::internal("the VMM did not report its vCPU threads"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Spawns the VMM; with a cgroup, the VMM enters it before it runs and
/// its threads are then placed and bounded as the definition asks.
async fn spawn_checked(
    inner: &Inner,
    p: &VmmPaths,
    config: VmConfig,
    fds: &[std::os::fd::RawFd],
    cgroup: Option<(&cgroup::GuestCgroup, &Domain)>,
    start: vmm::StartFrom,
) -> Result<(Vmm, VmmWatch, protocol::Status)> {
    if !inner.cfg.vmm_path.exists() {
        return Err(Error::new(
            crate::error::ErrorCode::SystemError,
            crate::error::ErrorDomain::Qemu,
            format!(
                "Cannot find VMM binary {}: No such file or directory",
                inner.cfg.vmm_path.display()
            ),
        ));
    }
    let procs = cgroup.map(|(cg, _)| cg.procs_files()).unwrap_or_default();
    let (vmm, watch, status) =
        vmm::spawn(&inner.cfg.vmm_path, p, config, fds, procs, start).await?;
    if let Some((cg, def)) = cgroup {
        let placed = match vcpu_tids(&vmm).await {
            Ok(tids) => tuning::apply::after_start(cg, def, vmm.pid, &tids),
            Err(e) => Err(e),
        };
        if let Err(e) = placed {
            let _ = vmm.terminate().await;
            vmm.remove_files();
            return Err(e);
        }
    }
    Ok((vmm, watch, status))
}

/// Watches one VMM until it exits: keeps its last shutdown reason, follows
/// its balloon, then takes the domain's job lock and, if this is still the
/// domain's current VMM, handles the exit.
fn spawn_monitor(
    inner: Arc<Inner>,
    obj: Arc<DomainObj>,
    vmm: Arc<Vmm>,
    watch: VmmWatch,
    generation: u64,
) {
    tokio::spawn(async move {
        let VmmWatch {
            exited_tx,
            mut events,
        } = watch;
        let status = {
            let wait = vmm.pidfd.wait();
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    st = &mut wait => break st,
                    ev = events.recv() => match ev {
                        Some(ev) if ev.name == "shutdown" => {
                            if let Ok(mut r) = vmm.last_reason.lock() {
                                *r = ev.reason.clone();
                            }
                        }
                        Some(ev) if ev.name == "paused" || ev.name == "resumed" => {
                            tokio::spawn(sync_run_state(
                                inner.clone(),
                                obj.clone(),
                                vmm.clone(),
                                generation,
                            ));
                        }
                        Some(ev) if ev.name == "balloon-change" => {
                            let pages = ev.data.get("actual-pages").and_then(|p| p.as_u64());
                            if let Some(pages) = pages {
                                balloon_changed(&inner, &obj, &vmm, generation, pages);
                            }
                        }
                        Some(ev) if ev.name == "vcpu-removed" => {
                            let index = ev.data.get("index").and_then(|s| s.as_u64());
                            if let Some(index) = index.and_then(|i| u32::try_from(i).ok()) {
                                super::vcpus::vcpu_removed(
                                    &inner, &obj, &vmm, generation, index,
                                );
                            }
                        }
                        Some(ev) if ev.name == "device-unplug-guest-error" => {
                            let slot = ev.data.get("slot").and_then(|s| s.as_u64());
                            if let Some(slot) = slot.and_then(|s| u8::try_from(s).ok()) {
                                super::hotplug::removal_refused(
                                    &inner, &obj, &vmm, generation, slot,
                                );
                            }
                        }
                        Some(ev) if ev.name == "device-deleted" => {
                            let slot = ev.data.get("slot").and_then(|s| s.as_u64());
                            if let Some(slot) = slot.and_then(|s| u8::try_from(s).ok()) {
                                super::hotplug::device_released(
                                    &inner, &obj, &vmm, generation, slot,
                                );
                            }
                        }
                        Some(ev) => tracing::debug!(?ev, "VMM event"),
                        None => {
                            // Control socket closed: the exit follows.
                            let st = (&mut wait).await;
                            break st;
                        }
                    }
                }
            }
        };
        // Events still queued (the shutdown reason may arrive with the close).
        while let Ok(ev) = events.try_recv() {
            if ev.name == "shutdown"
                && let Ok(mut r) = vmm.last_reason.lock()
            {
                *r = ev.reason.clone();
            }
        }
        tracing::info!(pid = vmm.pid, ?status, "VMM exited");
        let _ = exited_tx.send(Some(status));
        let _job = obj.begin_job_unbounded().await;
        let current = obj
            .data()
            .live
            .as_ref()
            .is_some_and(|l| l.generation == generation);
        if current {
            handle_exit(&inner, &obj, &vmm, status).await;
        }
    });
}

/// The VMM paused or resumed the guest. What the daemon asked for is
/// recorded by the job that asked; this catches the rest (a pause whose
/// reply came too late, a VMM stopped and continued from outside): once no
/// job runs, the VMM's own status is the truth, and a difference is
/// recorded and announced.
async fn sync_run_state(inner: Arc<Inner>, obj: Arc<DomainObj>, vmm: Arc<Vmm>, generation: u64) {
    let _job = obj.begin_job_unbounded().await;
    let Ok(status) = vmm.control.status().await else {
        return;
    };
    let vmm_paused = status.status == RunStatus::Paused;
    let differs = {
        let d = obj.data();
        let current = d.live.as_ref().is_some_and(|l| l.generation == generation);
        current && d.is_active() && (d.state == DomainState::Paused) != vmm_paused
    };
    if differs {
        tracing::warn!(
            domain = obj.name(),
            vmm_paused,
            "the VMM's run state changed on its own"
        );
        super::lifecycle::record_run_state(&inner, &obj, vmm_paused, paused::UNKNOWN);
        write_status(&inner, &obj);
    }
}

/// The guest changed its balloon: its live memory follows, with an event.
fn balloon_changed(inner: &Inner, obj: &Arc<DomainObj>, vmm: &Vmm, generation: u64, pages: u64) {
    let (name, kib) = {
        let mut d = obj.data();
        let name = d.name.clone();
        let Some(live) = d.live.as_mut().filter(|l| l.generation == generation) else {
            return;
        };
        let kib = vmm.ballooned_kib(live.def.memory_kib, pages);
        if live.def.current_memory_kib == kib {
            return;
        }
        live.def.current_memory_kib = kib;
        (name, kib)
    };
    write_status(inner, obj);
    inner.emit_kind(
        obj.uuid,
        &name,
        EventKind::BalloonChange { actual_kib: kib },
    );
}

/// Why a VMM stopped, from its last event and its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopCause {
    Poweroff,
    Reboot,
    Crash,
    Quit,
    Unexpected,
}

fn stop_cause(reason: Option<&str>, status: ExitStatus) -> StopCause {
    match reason {
        Some("poweroff") => return StopCause::Poweroff,
        // A triple fault resets the machine (QEMU's `guest-reset`).
        Some("reboot" | "triple-fault") => return StopCause::Reboot,
        Some("crash" | "internal-error") => return StopCause::Crash,
        Some("quit") => return StopCause::Quit,
        _ => {}
    }
    match status {
        ExitStatus::Code(0) => StopCause::Poweroff,
        ExitStatus::Code(2) => StopCause::Reboot,
        ExitStatus::Code(3 | 4) => StopCause::Crash,
        ExitStatus::Code(5) => StopCause::Quit,
        _ => StopCause::Unexpected,
    }
}

async fn handle_exit(inner: &Arc<Inner>, obj: &Arc<DomainObj>, vmm: &Arc<Vmm>, status: ExitStatus) {
    let reason = vmm.last_reason.lock().ok().and_then(|r| r.clone());
    let cause = stop_cause(reason.as_deref(), status);
    let (name, restart_requested, shutdown_requested, on_poweroff, on_reboot, on_crash) = {
        let d = obj.data();
        let Some(live) = d.live.as_ref() else { return };
        (
            d.name.clone(),
            live.restart_requested,
            live.shutdown_requested,
            live.def.on_poweroff,
            live.def.on_reboot,
            live.def.on_crash,
        )
    };
    tracing::info!(domain = name, ?cause, "guest stopped");
    if status == ExitStatus::Signal(libc::SIGSYS) {
        let why = "the VMM was killed by SIGSYS: one of its threads made a system call \
                   its seccomp filter forbids";
        tracing::error!(domain = name, "{why}");
        note_in_log(&paths(inner, &name, &obj.uuid).log_file, why);
    }
    let restart = match cause {
        StopCause::Reboot => restart_requested || on_reboot != LifecycleAction::Destroy,
        StopCause::Poweroff => matches!(
            on_poweroff,
            LifecycleAction::Restart | LifecycleAction::RenameRestart
        ),
        StopCause::Crash => matches!(
            on_crash,
            CrashAction::Restart | CrashAction::RenameRestart | CrashAction::CoredumpRestart
        ),
        StopCause::Quit | StopCause::Unexpected => false,
    };
    vmm.remove_files();
    if restart && restart_vmm(inner, obj, vmm).await {
        if cause == StopCause::Reboot {
            inner.emit_kind(obj.uuid, &name, EventKind::Reboot);
        }
        return;
    }
    let (reason, ev_detail) = match cause {
        StopCause::Poweroff | StopCause::Reboot => {
            let d = if shutdown_requested {
                detail::SHUTDOWN_HOST
            } else {
                detail::SHUTDOWN_GUEST
            };
            inner.emit(obj.uuid, &name, EventType::Shutdown, d);
            (shutoff::SHUTDOWN, detail::STOPPED_SHUTDOWN)
        }
        StopCause::Crash => (shutoff::CRASHED, detail::STOPPED_CRASHED),
        StopCause::Quit => (shutoff::DESTROYED, detail::STOPPED_DESTROYED),
        StopCause::Unexpected => (shutoff::CRASHED, detail::STOPPED_FAILED),
    };
    finish_stop(inner, obj, reason);
    inner.emit(obj.uuid, &name, EventType::Stopped, ev_detail);
}

/// Boots the guest again in a new VMM with the same configuration (the
/// domain stays running, with the same id). Returns false on failure.
async fn restart_vmm(inner: &Arc<Inner>, obj: &Arc<DomainObj>, old: &Arc<Vmm>) -> bool {
    let name = obj.name();
    let p = paths(inner, &name, &obj.uuid);
    let mut config = old.config();
    // The taps: the driver's fds, or made again after a daemon restart.
    let restart = {
        let mut d = obj.data();
        let Some(live) = d.live.as_mut() else {
            return false;
        };
        if live.taps.is_empty() && !live.host.nets.is_empty() {
            match hostnet::reacquire(&live.host.nets) {
                Ok(t) => live.taps = t,
                Err(e) => {
                    tracing::error!(domain = name, "cannot restart the guest: {e}");
                    return false;
                }
            }
        }
        live.taps.bind(&mut config);
        super::drives::apply_media(&mut config, &live.def);
        // The same terminal again; after a daemon restart the driver has
        // none and the new VMM opens its own.
        let mut fds = live.taps.fds();
        // The same VNC sockets; after a daemon restart, the same ports.
        match reopen_vnc(inner, live) {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(domain = name, "cannot restart the guest: {e}");
                return false;
            }
        }
        config.vnc = None;
        if let (Some(sockets), Ok(Some(p))) = (
            &live.vnc,
            graphics::plan(&live.def, &inner.cfg.run_dir, &inner.cfg.graphics),
        ) {
            sockets.bind(&p, &mut config);
            fds.extend(sockets.fds());
        }
        match &live.serial_pty {
            Some(m) => fds.push(m.as_raw_fd()),
            None => {
                if matches!(
                    config.serial,
                    crate::vmm::config::SerialConfig::PtyFd { .. }
                ) {
                    config.serial = crate::vmm::config::SerialConfig::Pty;
                }
            }
        }
        let kib = live.def.current_memory_kib;
        let ballooned = live
            .def
            .devices
            .memballoon
            .as_ref()
            .is_some_and(super::devices::balloon_is_virtio)
            && kib > 0
            && kib < live.def.memory_kib;
        (
            fds,
            ballooned.then_some(kib),
            live.cgroup.clone(),
            live.def.clone(),
        )
    };
    let (fds, balloon_kib, cgroup, def) = restart;
    let cgroup = cgroup.as_ref().map(|c| (c, &def));
    match spawn_checked(inner, &p, config, &fds, cgroup, vmm::StartFrom::default()).await {
        Ok((vmm, watch, status)) => {
            if let Some(kib) = balloon_kib
                && let Err(e) = vmm.balloon_to(kib).await
            {
                tracing::warn!(domain = name, "cannot set the balloon: {e}");
            }
            let generation = inner.generation.fetch_add(1, Ordering::SeqCst);
            let vmm = Arc::new(vmm);
            {
                let mut d = obj.data();
                if let Some(live) = d.live.as_mut() {
                    live.vmm = vmm.clone();
                    live.generation = generation;
                    live.restart_requested = false;
                    live.shutdown_requested = false;
                    apply_status(&mut live.def, &status);
                }
                d.state = DomainState::Running;
                d.reason = running::BOOTED;
            }
            write_status(inner, obj);
            spawn_monitor(inner.clone(), obj.clone(), vmm, watch, generation);
            true
        }
        Err(e) => {
            tracing::error!(domain = name, "cannot restart the guest: {e}");
            false
        }
    }
}

/// Binds the VNC sockets of a running guest again when the driver holds
/// none (after a daemon restart), on the ports its live XML shows.
fn reopen_vnc(inner: &Inner, live: &mut Live) -> Result<()> {
    if live.vnc.is_some() {
        return Ok(());
    }
    if let Some(p) = graphics::plan(&live.def, &inner.cfg.run_dir, &inner.cfg.graphics)? {
        live.vnc = Some(graphics::VncSockets::reopen(&p, &live.def)?);
    }
    Ok(())
}

/// Leaves the domain shut off with `reason`; a transient one is forgotten.
fn finish_stop(inner: &Inner, obj: &Arc<DomainObj>, reason: i32) {
    let (name, transient, live) = {
        let mut d = obj.data();
        let live = d.live.take();
        d.state = DomainState::Shutoff;
        d.reason = reason;
        (d.name.clone(), d.persistent.is_none(), live)
    };
    if let Some(live) = live {
        live.vmm.remove_files();
        let Live {
            taps, host, cgroup, ..
        } = live;
        if let Some(cg) = cgroup {
            cg.remove();
        }
        // Closing the driver's fds removes the taps; after a daemon
        // restart there are none, and the records say what to remove.
        drop(taps);
        hostnet::release(&host.nets);
        inner.note_network_ports(&host.nets, false);
        security_dac::restore(&host.owners, |p| file_in_use(inner, Some(&obj.uuid), p));
    }
    runtime::remove(&inner.cfg.run_dir, &name);
    if transient {
        inner.registry.remove(obj);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_cause_prefers_the_reported_reason() {
        assert_eq!(
            stop_cause(Some("poweroff"), ExitStatus::Code(5)),
            StopCause::Poweroff
        );
        assert_eq!(
            stop_cause(Some("triple-fault"), ExitStatus::Unknown),
            StopCause::Reboot
        );
        assert_eq!(
            stop_cause(Some("crash"), ExitStatus::Unknown),
            StopCause::Crash
        );
        assert_eq!(stop_cause(None, ExitStatus::Code(2)), StopCause::Reboot);
        assert_eq!(stop_cause(None, ExitStatus::Code(0)), StopCause::Poweroff);
        assert_eq!(stop_cause(None, ExitStatus::Code(5)), StopCause::Quit);
        assert_eq!(
            stop_cause(None, ExitStatus::Signal(9)),
            StopCause::Unexpected
        );
        assert_eq!(stop_cause(None, ExitStatus::Unknown), StopCause::Unexpected);
        assert_eq!(
            stop_cause(Some("bogus"), ExitStatus::Code(1)),
            StopCause::Unexpected
        );
    }
}
