//! The daemon's core, shared by every front end: the domain registry,
//! persistence, lifecycle, VMM supervision and lifecycle events.
//!
//! Front ends call [`Driver`]'s methods and relay its errors and events;
//! they hold no domain logic of their own.

pub mod block_resize;
pub mod boot;
pub mod cgroup;
pub mod console;
mod console_host;
pub mod control;
mod definitions;
mod device_config;
pub mod devices;
pub mod domain;
pub mod drives;
pub mod fsutil;
pub mod graphics;
pub mod host;
pub mod hostnet;
mod hotplug;
pub mod image;
pub mod interfaces;
mod lifecycle;
mod media;
pub mod metadata;
pub mod netdev;
pub mod network;
pub mod nodedev;
pub mod objects;
pub mod passt;
pub mod pidfd;
pub mod queries;
pub mod registry;
pub mod resolve;
pub mod runtime;
pub mod save;
pub mod save_image;
pub mod security_dac;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod storage;
pub mod store;
mod supervise;
pub mod tuning;
pub mod usb;
pub mod vcpus;
pub mod virtio_input;
pub mod vmm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

pub use domain::{DomainInfo, DomainObj};
pub use state::{DomainEvent, DomainState, EventKind, EventType};

use domain::DomainData;
use registry::Registry;
use state::{list_flags, shutoff};
use store::ConfigStore;

/// Where the driver keeps things, and which VMM it runs.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Persistent definitions (`/etc/oxvirt/qemu`).
    pub config_dir: PathBuf,
    /// Runtime status, control sockets (`/run/oxvirt/qemu`).
    pub run_dir: PathBuf,
    /// Persistent state such as VMM logs (`/var/lib/oxvirt/qemu`).
    pub state_dir: PathBuf,
    /// The `oxvirt-vmm` binary.
    pub vmm_path: PathBuf,
    /// How guests' VMMs are confined.
    pub confinement: Confinement,
    /// The cgroup hierarchies guests go in (none: no cgroups).
    pub cgroups: cgroup::Cgroups,
    /// The partition guests go to unless their `<resource>` names one.
    pub cgroup_partition: String,
    /// Firmware images for guests without a kernel.
    pub firmware: boot::Firmwares,
    /// VNC listen address and password of guests whose XML names none.
    pub graphics: graphics::GraphicsDefaults,
}

/// How each guest's VMM is confined (`oxvirtd.conf`: `user`, `group`,
/// `dynamic_ownership`, `seccomp_sandbox`, as in libvirt's `qemu.conf`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confinement {
    /// The identity VMMs take; None leaves them the daemon's uid.
    pub user: Option<crate::vmm::config::Identity>,
    /// Give disks, kernels and initrds to `user` while guests run.
    pub dynamic_ownership: bool,
    /// Per-thread seccomp filters.
    pub seccomp: bool,
    /// A private, empty mount namespace (needs a root daemon).
    pub jail: bool,
}

impl Confinement {
    /// The sandbox section of a VMM's configuration.
    pub fn sandbox(&self, run_dir: &Path) -> crate::vmm::config::SandboxConfig {
        crate::vmm::config::SandboxConfig {
            seccomp: self.seccomp,
            user: self.user.clone(),
            jail: self.jail.then(|| jail_dir(run_dir)),
        }
    }
}

/// The empty directory each VMM mounts its private root on (in its own
/// mount namespace, so it stays empty on the host): beside the runtime
/// directory, `/run/oxvirt/qemu-jail` for the system daemon.
fn jail_dir(run_dir: &Path) -> PathBuf {
    let mut name = run_dir.file_name().unwrap_or_default().to_os_string();
    name.push("-jail");
    run_dir.with_file_name(name)
}

impl DriverConfig {
    /// libvirt-like system paths, with the VMM next to the running binary.
    pub fn system_default() -> Self {
        let vmm_path = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("oxvirt-vmm")))
            .unwrap_or_else(|| PathBuf::from("/usr/libexec/oxvirt-vmm"));
        DriverConfig {
            config_dir: PathBuf::from("/etc/oxvirt/qemu"),
            run_dir: PathBuf::from("/run/oxvirt/qemu"),
            state_dir: PathBuf::from("/var/lib/oxvirt/qemu"),
            vmm_path,
            confinement: Confinement::default(),
            cgroups: cgroup::Cgroups::default(),
            cgroup_partition: cgroup::DEFAULT_PARTITION.to_string(),
            firmware: boot::Firmwares::default(),
            graphics: graphics::GraphicsDefaults::default(),
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }

    /// Where the storage driver keeps pool definitions and active-pool
    /// state: beside `qemu/` as libvirt does (`/etc/oxvirt/storage`,
    /// `/run/oxvirt/storage`), or inside a directory named otherwise.
    pub fn storage_dirs(&self) -> (PathBuf, PathBuf) {
        (
            beside_qemu(&self.config_dir, "storage"),
            beside_qemu(&self.run_dir, "storage"),
        )
    }
}

impl DriverConfig {
    /// Where the network driver keeps definitions (`qemu/networks`, as
    /// libvirt), state (`network` beside `qemu/` in the run directory)
    /// and dnsmasq's files (`dnsmasq` beside `qemu/` in the state
    /// directory).
    pub fn network_dirs(&self) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.config_dir.join("networks"),
            beside_qemu(&self.run_dir, "network"),
            beside_qemu(&self.state_dir, "dnsmasq"),
        )
    }
}

/// `dir/../name` when `dir` is libvirt's per-driver `qemu` directory,
/// otherwise `dir/name`.
fn beside_qemu(dir: &std::path::Path, name: &str) -> PathBuf {
    match (dir.file_name(), dir.parent()) {
        (Some(f), Some(parent)) if f == "qemu" => parent.join(name),
        _ => dir.join(name),
    }
}

pub(crate) struct Inner {
    pub cfg: DriverConfig,
    pub store: ConfigStore,
    pub registry: Registry,
    pub next_id: AtomicI32,
    pub generation: AtomicU64,
    pub autostarted: std::sync::atomic::AtomicBool,
    pub events: broadcast::Sender<DomainEvent>,
    /// Names for the taps the driver makes.
    pub tap_names: hostnet::TapNames,
    /// What `oxvirt-vmm --probe-host` said, asked once.
    pub host_probe: std::sync::OnceLock<Option<crate::vmm::probe::HostProbe>>,
    /// The storage sub-driver (pools and volumes).
    pub storage: storage::Storage,
    /// The node-device sub-driver (the host's devices, read-only).
    pub nodedev: nodedev::NodeDev,
    /// The network sub-driver (virtual networks).
    pub networks: network::Networks,
}

impl Inner {
    fn host_probe(&self) -> Option<crate::vmm::probe::HostProbe> {
        *self
            .host_probe
            .get_or_init(|| host::probe_kvm(&self.cfg.vmm_path))
    }

    /// Tells the network sub-driver which guest taps are on its networks
    /// (`attached`) or have left them.
    pub fn note_network_ports(&self, nets: &[hostnet::NetRes], attached: bool) {
        for r in nets {
            if let Some(n) = &r.network {
                if attached {
                    self.networks.port_attached(n, &r.ifname);
                } else {
                    self.networks.port_detached(n, &r.ifname);
                }
            }
        }
    }

    /// Broadcasts a lifecycle event.
    pub fn emit(&self, uuid: Uuid, name: &str, event: EventType, detail: i32) {
        self.emit_kind(uuid, name, EventKind::Lifecycle { event, detail });
    }

    /// Broadcasts any domain event.
    pub fn emit_kind(&self, uuid: Uuid, name: &str, kind: EventKind) {
        tracing::info!(domain = name, ?kind, "domain event");
        let _ = self.events.send(DomainEvent {
            uuid,
            name: name.to_string(),
            kind,
        });
    }
}

/// The driver: cheap to clone, shared by every front end.
#[derive(Clone)]
pub struct Driver {
    pub(crate) inner: Arc<Inner>,
}

/// libvirt's `virCheckFlags` for a domain function: an error naming
/// `function` for any flag outside `allowed`. Every entry point that takes
/// flags checks them in the driver, never in a front end.
pub fn check_flags(flags: u32, allowed: u32, function: &str) -> Result<()> {
    check_flags_in(ErrorDomain::Domain, flags, allowed, function)
}

/// `virCheckFlags` as the sub-driver of `domain` reports it.
pub fn check_flags_in(domain: ErrorDomain, flags: u32, allowed: u32, function: &str) -> Result<()> {
    let extra = flags & !allowed;
    if extra != 0 {
        return Err(Error::new(
            ErrorCode::InvalidArg,
            domain,
            format!("unsupported flags (0x{extra:x}) in function {function}"),
        ));
    }
    Ok(())
}

/// `VIR_EXCLUSIVE_FLAGS_RET`: refuses flags `a` and `b` (each its bit and
/// libvirt's name for it) given together.
pub fn exclusive_flags(flags: u32, a: (u32, &str), b: (u32, &str)) -> Result<()> {
    exclusive_flags_in(ErrorDomain::Domain, flags, a, b)
}

/// [`exclusive_flags`] as the sub-driver of `domain` reports it.
pub fn exclusive_flags_in(
    domain: ErrorDomain,
    flags: u32,
    a: (u32, &str),
    b: (u32, &str),
) -> Result<()> {
    if flags & a.0 != 0 && flags & b.0 != 0 {
        return Err(Error::new(
            ErrorCode::InvalidArg,
            domain,
            format!("Flags '{}' and '{}' are mutually exclusive", a.1, b.1),
        ));
    }
    Ok(())
}

/// `VIR_DOMAIN_START_PAUSED`.
pub(crate) const START_PAUSED: u32 = 1;

/// `virDomainUndefineFlags` flags oxvirt accepts (nothing to remove for them).
const UNDEFINE_KNOWN: u32 = 1 | 2 | 4 | 8 | 16 | 32 | 64;
/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE`: remove the managed save image too.
const UNDEFINE_MANAGED_SAVE: u32 = 1;
/// `VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA`: forget the snapshots too.
const UNDEFINE_SNAPSHOTS_METADATA: u32 = 2;

impl Driver {
    /// Loads persistent definitions and re-attaches to running VMMs
    /// (autostart follows with [`Driver::autostart`]).
    pub async fn open(cfg: DriverConfig) -> Result<Driver> {
        for d in [
            &cfg.config_dir,
            &cfg.run_dir,
            &cfg.state_dir,
            &cfg.log_dir(),
        ] {
            fsutil::ensure_dir(d)?;
        }
        if cfg.confinement.jail {
            fsutil::ensure_dir_mode(&jail_dir(&cfg.run_dir), 0o755)?;
        }
        let (events, _) = broadcast::channel(1024);
        let (storage_config, storage_run) = cfg.storage_dirs();
        let storage = storage::Storage::open(storage_config, storage_run)?;
        let (net_config, net_run, net_dnsmasq) = cfg.network_dirs();
        let networks = network::Networks::open(net_config, net_run, net_dnsmasq)?;
        let inner = Arc::new(Inner {
            store: ConfigStore::new(cfg.config_dir.clone()),
            cfg,
            registry: Registry::default(),
            next_id: AtomicI32::new(1),
            generation: AtomicU64::new(1),
            autostarted: std::sync::atomic::AtomicBool::new(false),
            events,
            tap_names: hostnet::TapNames::default(),
            host_probe: std::sync::OnceLock::new(),
            storage,
            nodedev: nodedev::NodeDev::system(),
            networks,
        });
        let drv = Driver { inner };
        for loaded in drv.inner.store.load_all() {
            let name = loaded.def.name.clone();
            let obj = DomainObj::new(
                loaded.def.uuid,
                DomainData {
                    name: name.clone(),
                    persistent: Some(loaded.def),
                    live: None,
                    autostart: loaded.autostart,
                    state: DomainState::Shutoff,
                    reason: shutoff::UNKNOWN,
                    removed: false,
                    starting: None,
                },
            );
            if let Err(e) = drv.inner.registry.insert(obj) {
                tracing::error!(domain = name, "skipping domain config: {e}");
            }
        }
        supervise::reattach_all(&drv.inner).await;
        let next = drv.inner.registry.max_id() + 1;
        drv.inner.next_id.store(next, Ordering::SeqCst);
        // Ask KVM about the host in the background, so the first
        // capabilities request finds the answer ready.
        let probing = drv.inner.clone();
        tokio::task::spawn_blocking(move || probing.host_probe());
        Ok(drv)
    }

    /// `virConnectOpen(Auth)` on the daemon's side: `name` is the URI the
    /// client opened (empty: the default). Returns whether the connection
    /// is read-only from now on (`VIR_CONNECT_RO`).
    pub fn connect_open(&self, name: &str, flags: u32) -> Result<bool> {
        const RO: u32 = 1;
        const NO_ALIASES: u32 = 2;
        check_flags(flags, RO | NO_ALIASES, "virConnectOpen")?;
        let served = ["", "qemu:///system", "qemu:///", "qemu://", "qemu"];
        if !served.contains(&name) {
            return Err(Error::new(
                crate::error::ErrorCode::NoConnect,
                crate::error::ErrorDomain::None,
                format!("no connection driver available for {name}"),
            ));
        }
        Ok(flags & RO != 0)
    }

    /// `virConnectGetCapabilities`.
    /// `virConnectGetDomainCapabilities` (empty strings mean "default").
    pub fn domain_capabilities_xml(
        &self,
        flags: u32,
        emulator: &str,
        arch: &str,
        machine: &str,
        virttype: &str,
    ) -> Result<String> {
        host::domain_capabilities_xml(
            flags,
            emulator,
            arch,
            machine,
            virttype,
            &self.inner.cfg.firmware,
        )
    }

    pub fn capabilities_xml(&self) -> String {
        host::capabilities_xml(&host::host_uuid(), self.inner.host_probe())
    }

    /// Starts the domains marked autostart, once per daemon run. Front
    /// ends call it when they are ready to relay the events it causes.
    pub fn autostart(&self) {
        if !self.inner.autostarted.swap(true, Ordering::SeqCst) {
            lifecycle::autostart_all(&self.inner);
        }
    }

    /// A receiver of every domain event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<DomainEvent> {
        self.inner.events.subscribe()
    }

    /// The network sub-driver.
    pub fn networks(&self) -> &network::Networks {
        &self.inner.networks
    }

    /// The storage sub-driver.
    pub fn storage(&self) -> &storage::Storage {
        &self.inner.storage
    }

    /// The node-device sub-driver.
    pub fn nodedev(&self) -> &nodedev::NodeDev {
        &self.inner.nodedev
    }

    pub fn config(&self) -> &DriverConfig {
        &self.inner.cfg
    }

    // ---- lookup -------------------------------------------------------

    pub fn lookup_by_name(&self, name: &str) -> Result<Arc<DomainObj>> {
        self.inner
            .registry
            .by_name(name)
            .ok_or_else(|| Error::no_domain_name(name))
    }

    pub fn lookup_by_uuid(&self, uuid: &Uuid) -> Result<Arc<DomainObj>> {
        self.inner
            .registry
            .by_uuid(uuid)
            .ok_or_else(|| Error::no_domain_uuid(&uuid.to_string()))
    }

    /// Lookup by UUID text, with libvirt's error for a malformed one.
    pub fn lookup_by_uuid_str(&self, text: &str) -> Result<Arc<DomainObj>> {
        let uuid = Uuid::parse_str(text.trim())
            .map_err(|_| Error::invalid_arg(format!("uuid '{text}' is invalid")))?;
        self.lookup_by_uuid(&uuid)
    }

    pub fn lookup_by_id(&self, id: i32) -> Result<Arc<DomainObj>> {
        self.inner
            .registry
            .by_id(id)
            .ok_or_else(|| Error::no_domain_id(id))
    }

    /// `virConnectListAllDomains` with its filter flags.
    pub fn list(&self, flags: u32) -> Result<Vec<Arc<DomainObj>>> {
        if flags & !list_flags::ALL != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{:x}) in function virConnectListAllDomains",
                flags & !list_flags::ALL
            )));
        }
        let mut all = self.inner.registry.all();
        all.retain(|obj| {
            let d = obj.data();
            !d.removed
                && d.current_def().is_some()
                && list_matches(
                    &ListKey {
                        active: d.is_active(),
                        persistent: d.persistent.is_some(),
                        autostart: d.autostart,
                        state: d.state,
                        managed_save: flags
                            & (list_flags::MANAGEDSAVE | list_flags::NO_MANAGEDSAVE)
                            != 0
                            && save::has_managed_image(&self.inner, &d.name),
                        snapshots: flags & (list_flags::HAS_SNAPSHOT | list_flags::NO_SNAPSHOT)
                            != 0
                            && self.snapshot_count(&d.name) > 0,
                    },
                    flags,
                )
        });
        Ok(all)
    }

    // ---- lifecycle ----------------------------------------------------

    /// `virDomainCreateWithFlags`.
    pub async fn start(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        if flags & !(START_PAUSED | 2 | 4 | 8 | 16 | 32) != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function virDomainCreateWithFlags"
            )));
        }
        let _job = obj.begin_job().await?;
        // Boxed: see `create_xml`.
        Box::pin(self.start_from_managed_or_boot(obj, flags)).await
    }

    /// `virDomainShutdownFlags`: presses the ACPI power button, the only
    /// way (`VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN`) oxvirt shuts down.
    pub async fn shutdown(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        check_flags(flags, 1, "virDomainShutdownFlags")?;
        let _job = obj.begin_job().await?;
        lifecycle::shutdown_locked(obj).await
    }

    /// `virDomainDestroyFlags` (`VIR_DOMAIN_DESTROY_GRACEFUL` accepted).
    pub async fn destroy(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        check_flags(flags, 1, "virDomainDestroyFlags")?;
        let _job = obj.begin_job().await?;
        lifecycle::destroy_locked(&self.inner, obj).await
    }

    /// `virDomainReboot`: the VMM resets the guest (a fresh VMM boots it
    /// again); oxvirt has no ACPI reboot request, so the guest is not asked.
    pub async fn reboot(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        check_flags(flags, 1, "virDomainReboot")?;
        let before = {
            let _job = obj.begin_job().await?;
            lifecycle::reset_locked(obj).await?
        };
        lifecycle::wait_replaced(obj, before).await;
        Ok(())
    }

    /// `virDomainReset`.
    pub async fn reset(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        check_flags(flags, 0, "virDomainReset")?;
        let before = {
            let _job = obj.begin_job().await?;
            lifecycle::reset_locked(obj).await?
        };
        lifecycle::wait_replaced(obj, before).await;
        Ok(())
    }

    /// `virDomainSuspend`.
    pub async fn suspend(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::pause_locked(&self.inner, obj, true).await
    }

    /// `virDomainResume`.
    pub async fn resume(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::pause_locked(&self.inner, obj, false).await
    }

    /// The host pty backing a running domain's console: the first serial
    /// or console device, or the one whose alias is `dev_name`
    /// (`virDomainOpenConsole`). Errors are worded as libvirt's.
    pub fn console_pty(
        &self,
        obj: &DomainObj,
        dev_name: Option<&str>,
        flags: u32,
    ) -> Result<String> {
        use crate::xml::model::chardev::CharSourceType;
        // VIR_DOMAIN_CONSOLE_FORCE, VIR_DOMAIN_CONSOLE_SAFE.
        check_flags(flags, 1 | 2, "virDomainOpenConsole")?;
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        let Some(live) = d.live.as_ref() else {
            return Err(Error::operation_invalid("domain is not running"));
        };
        let devs = &live.def.devices;
        let chosen = match dev_name {
            None => devs.consoles.first().or(devs.serials.first()),
            Some(n) => devs.consoles.iter().chain(devs.serials.iter()).find(|c| {
                c.alias.as_deref() == Some(n) || c.alias.as_deref() == n.strip_prefix("ua-")
            }),
        };
        let Some(dev) = chosen else {
            return Err(Error::new(
                crate::error::ErrorCode::InternalError,
                crate::error::ErrorDomain::Qemu,
                format!(
                    "cannot find character device {}",
                    dev_name.unwrap_or("<null>")
                ),
            ));
        };
        if dev.source_type != CharSourceType::Pty {
            return Err(Error::new(
                crate::error::ErrorCode::OperationUnsupported,
                crate::error::ErrorDomain::Qemu,
                format!(
                    "character device {} is not using a PTY",
                    dev_name.or(dev.alias.as_deref()).unwrap_or("serial0")
                ),
            ));
        }
        dev.sources
            .first()
            .and_then(|s| s.path.clone())
            .ok_or_else(|| Error::operation_invalid("console is not available for this domain"))
    }

    /// `virDomainGetState`: the state and its reason.
    pub fn get_state(&self, obj: &DomainObj, flags: u32) -> Result<(DomainState, i32)> {
        check_flags(flags, 0, "virDomainGetState")?;
        let i = obj.info()?;
        Ok((i.state, i.reason))
    }

    /// `virDomainMemoryStats`: (tag, value) pairs, at most `max`: the
    /// balloon's actual size (6) and the VMM's resident memory (7), KiB.
    pub async fn memory_stats(
        &self,
        obj: &Arc<DomainObj>,
        max: u32,
        flags: u32,
    ) -> Result<Vec<(i32, u64)>> {
        check_flags(flags, 0, "virDomainMemoryStats")?;
        const ACTUAL_BALLOON: i32 = 6;
        const RSS: i32 = 7;
        let s = self.stats(obj).await?;
        if s.info.id.is_none() {
            return Err(Error::operation_invalid("domain is not running"));
        }
        let mut out = vec![(ACTUAL_BALLOON, s.info.memory_kib)];
        if let Some(rss) = s.rss_kib {
            out.push((RSS, rss));
        }
        out.truncate(max as usize);
        Ok(out)
    }

    /// `virConnectGetAllDomainStats` and `virDomainListGetStats`: the
    /// domains' statistics records for the `stats` groups. `doms` None
    /// means every domain the list flags select.
    pub async fn get_all_domain_stats(
        &self,
        doms: Option<Vec<Arc<DomainObj>>>,
        stats: u32,
        flags: u32,
    ) -> Result<Vec<(Arc<DomainObj>, Vec<(String, stats::StatValue)>)>> {
        // List filters (ACTIVE ... OTHER); NOWAIT, BACKING and
        // ENFORCE_STATS change nothing here.
        check_flags(flags, 0xff | 7 << 29, "virConnectGetAllDomainStats")?;
        let objs = match doms {
            Some(d) => d,
            None => self.list(flags & 0xff)?,
        };
        let mut out = Vec::new();
        for obj in objs {
            // A domain that went away meanwhile is left out.
            if let Ok(s) = self.stats(&obj).await {
                out.push((obj, stats::record(&s, stats)));
            }
        }
        Ok(out)
    }

    /// `virDomainGetControlInfo`: the VMM answers its control socket.
    pub fn get_control_info(&self, obj: &DomainObj, flags: u32) -> Result<(u32, u32, u64)> {
        check_flags(flags, 0, "virDomainGetControlInfo")?;
        if obj.info()?.id.is_none() {
            return Err(Error::operation_invalid("domain is not running"));
        }
        // VIR_DOMAIN_CONTROL_OK, no details, no time in that state.
        Ok((0, 0, 0))
    }

    /// Per-domain statistics (see [`stats`]).
    pub async fn stats(&self, obj: &Arc<DomainObj>) -> Result<stats::DomainStats> {
        stats::collect(obj).await
    }
}

/// What the list filters look at.
struct ListKey {
    active: bool,
    persistent: bool,
    autostart: bool,
    state: DomainState,
    /// Only looked up when a flag asks about it.
    managed_save: bool,
    /// Whether it has snapshots, looked up likewise.
    snapshots: bool,
}

/// One pair of libvirt's listing filter flags (ACTIVE/INACTIVE,
/// PERSISTENT/TRANSIENT, ...): an object with property `v` passes when
/// neither flag is given, or the one that matches `v` is.
pub(crate) fn list_pair_matches(flags: u32, yes: u32, no: u32, v: bool) -> bool {
    let (y, n) = (flags & yes != 0, flags & no != 0);
    !(y || n) || (y && v) || (n && !v)
}

fn list_matches(info: &ListKey, flags: u32) -> bool {
    use list_flags::*;
    let active = info.active;
    let pair = |yes: u32, no: u32, v: bool| list_pair_matches(flags, yes, no, v);
    if !pair(ACTIVE, INACTIVE, active) || !pair(PERSISTENT, TRANSIENT, info.persistent) {
        return false;
    }
    if !pair(AUTOSTART, NO_AUTOSTART, info.autostart) {
        return false;
    }
    if !pair(HAS_SNAPSHOT, NO_SNAPSHOT, info.snapshots) {
        return false;
    }
    if !pair(MANAGEDSAVE, NO_MANAGEDSAVE, info.managed_save) {
        return false;
    }
    if flags & HAS_CHECKPOINT != 0 && flags & NO_CHECKPOINT == 0 {
        return false;
    }
    let state_mask = RUNNING | PAUSED | SHUTOFF | OTHER;
    if flags & state_mask != 0 {
        let bit = match info.state {
            DomainState::Running => RUNNING,
            DomainState::Paused => PAUSED,
            DomainState::Shutoff => SHUTOFF,
            _ => OTHER,
        };
        if flags & bit == 0 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::state::detail;

    fn info(active: bool, persistent: bool, state: DomainState) -> ListKey {
        ListKey {
            active,
            persistent,
            autostart: false,
            state,
            managed_save: false,
            snapshots: false,
        }
    }

    #[test]
    fn list_flags_filter_as_libvirt() {
        use list_flags::*;
        let running = info(true, true, DomainState::Running);
        let off = info(false, true, DomainState::Shutoff);
        let transient = info(true, false, DomainState::Paused);
        assert!(list_matches(&running, 0));
        assert!(list_matches(&running, ACTIVE));
        assert!(!list_matches(&off, ACTIVE));
        assert!(list_matches(&off, INACTIVE | PERSISTENT));
        assert!(list_matches(&transient, TRANSIENT | PAUSED));
        assert!(!list_matches(&transient, PERSISTENT));
        assert!(!list_matches(&running, SHUTOFF));
        assert!(list_matches(&off, ACTIVE | INACTIVE));
        assert!(list_matches(&off, NO_AUTOSTART));
        assert!(!list_matches(&off, AUTOSTART));
    }

    #[tokio::test]
    async fn define_persists_and_bad_files_are_skipped() {
        let root = std::env::temp_dir().join(format!("oxvirt-driver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let cfg = DriverConfig {
            config_dir: root.join("etc"),
            run_dir: root.join("run"),
            state_dir: root.join("lib"),
            vmm_path: root.join("no-vmm"),
            confinement: Confinement::default(),
            cgroups: cgroup::Cgroups::default(),
            cgroup_partition: cgroup::DEFAULT_PARTITION.to_string(),
            firmware: boot::Firmwares::default(),
            graphics: graphics::GraphicsDefaults::default(),
        };
        let drv = Driver::open(cfg.clone()).await.unwrap();
        let mut events = drv.subscribe();
        let xml = "<domain type='kvm'><name>a</name><memory>65536</memory>\
                   <os><type>hvm</type><kernel>/nonexistent</kernel></os></domain>";
        let obj = drv.define_xml(xml).await.unwrap();
        let ev = events.recv().await.unwrap();
        assert_eq!(
            ev.kind,
            EventKind::Lifecycle {
                event: EventType::Defined,
                detail: detail::DEFINED_ADDED
            }
        );
        assert!(drv.define_xml("<domain").await.is_err());
        assert!(drv.start(&obj, 0).await.is_err());
        assert_eq!(obj.info().unwrap().state, DomainState::Shutoff);
        std::fs::write(cfg.config_dir.join("b.xml"), "not xml").unwrap();
        std::fs::write(cfg.config_dir.join("c.xml"), xml).unwrap();
        drop(drv);
        let drv = Driver::open(cfg).await.unwrap();
        let names: Vec<String> = drv.list(0).unwrap().iter().map(|d| d.name()).collect();
        assert_eq!(names, vec!["a".to_string()]);
        assert!(drv.lookup_by_name("a").is_ok());
        assert_eq!(
            drv.lookup_by_name("b").err().unwrap().message,
            "Domain not found: no domain with matching name 'b'"
        );
        assert!(drv.lookup_by_uuid_str("zz").is_err());
        assert!(drv.lookup_by_id(7).is_err());
        let _ = std::fs::remove_dir_all(&root);
    }
}
