//! The daemon's core, shared by every front end: the domain registry,
//! persistence, lifecycle, VMM supervision and lifecycle events.
//!
//! Front ends call [`Driver`]'s methods and relay its errors and events;
//! they hold no domain logic of their own.

pub mod control;
pub mod domain;
pub mod fsutil;
pub mod host;
mod lifecycle;
pub mod pidfd;
pub mod registry;
pub mod resolve;
pub mod runtime;
pub mod state;
pub mod stats;
pub mod store;
pub mod vmm;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::xml::{Domain, FormatFlags, check_supported, parse_domain};

pub use domain::{DomainInfo, DomainObj};
pub use state::{DomainState, EventType, LifecycleEvent};

use domain::DomainData;
use registry::Registry;
use state::{detail, list_flags, shutoff};
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
        }
    }

    fn log_dir(&self) -> PathBuf {
        self.state_dir.join("log")
    }
}

pub(crate) struct Inner {
    pub cfg: DriverConfig,
    pub store: ConfigStore,
    pub registry: Registry,
    pub next_id: AtomicI32,
    pub generation: AtomicU64,
    pub events: broadcast::Sender<LifecycleEvent>,
}

impl Inner {
    pub fn emit(&self, uuid: Uuid, name: &str, event: EventType, detail: i32) {
        tracing::info!(domain = name, ?event, detail, "lifecycle event");
        let _ = self.events.send(LifecycleEvent {
            uuid,
            name: name.to_string(),
            event,
            detail,
        });
    }
}

/// The driver: cheap to clone, shared by every front end.
#[derive(Clone)]
pub struct Driver {
    pub(crate) inner: Arc<Inner>,
}

/// `VIR_DOMAIN_START_PAUSED`.
const START_PAUSED: u32 = 1;

/// `virDomainUndefineFlags` flags oxvirt accepts (nothing to remove for them).
const UNDEFINE_KNOWN: u32 = 1 | 2 | 4 | 8 | 16 | 32 | 64;

impl Driver {
    /// Loads persistent definitions, re-attaches to running VMMs and
    /// starts autostart domains.
    pub async fn open(cfg: DriverConfig) -> Result<Driver> {
        for d in [
            &cfg.config_dir,
            &cfg.run_dir,
            &cfg.state_dir,
            &cfg.log_dir(),
        ] {
            fsutil::ensure_dir(d)?;
        }
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            store: ConfigStore::new(cfg.config_dir.clone()),
            cfg,
            registry: Registry::default(),
            next_id: AtomicI32::new(1),
            generation: AtomicU64::new(1),
            events,
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
                },
            );
            if let Err(e) = drv.inner.registry.insert(obj) {
                tracing::error!(domain = name, "skipping domain config: {e}");
            }
        }
        lifecycle::reattach_all(&drv.inner).await;
        let next = drv.inner.registry.max_id() + 1;
        drv.inner.next_id.store(next, Ordering::SeqCst);
        lifecycle::autostart_all(&drv.inner);
        Ok(drv)
    }

    /// A receiver of every lifecycle event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LifecycleEvent> {
        self.inner.events.subscribe()
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
        let mut out = Vec::new();
        for obj in self.inner.registry.all() {
            let Ok(info) = obj.info() else { continue };
            if list_matches(&info, flags) {
                out.push(obj);
            }
        }
        Ok(out)
    }

    // ---- definitions --------------------------------------------------

    /// `virDomainDefineXML`: a new domain, or a new definition of an
    /// existing one (a running domain keeps its live definition).
    pub async fn define_xml(&self, xml: &str) -> Result<Arc<DomainObj>> {
        let def = parse_domain(xml)?;
        check_supported(&def)?;
        if let Some(obj) = self.inner.registry.by_uuid(&def.uuid) {
            let job = obj.begin_job().await?;
            {
                let d = obj.data();
                if d.removed {
                    return Err(Error::no_domain_uuid(&def.uuid.to_string()));
                }
                if d.name != def.name {
                    return Err(Error::new(
                        crate::error::ErrorCode::OperationFailed,
                        crate::error::ErrorDomain::Qemu,
                        format!(
                            "domain '{}' is already defined with uuid {}",
                            d.name, obj.uuid
                        ),
                    ));
                }
            }
            self.inner.store.save(&def)?;
            let name = def.name.clone();
            obj.data().persistent = Some(def);
            self.inner
                .emit(obj.uuid, &name, EventType::Defined, detail::DEFINED_UPDATED);
            drop(job);
            return Ok(obj);
        }
        if let Some(other) = self.inner.registry.by_name(&def.name) {
            return Err(Error::new(
                crate::error::ErrorCode::OperationFailed,
                crate::error::ErrorDomain::Qemu,
                format!(
                    "domain '{}' already exists with uuid {}",
                    def.name, other.uuid
                ),
            ));
        }
        let name = def.name.clone();
        let uuid = def.uuid;
        let saved = def.clone();
        let obj = DomainObj::new(
            uuid,
            DomainData {
                name: name.clone(),
                persistent: Some(def),
                live: None,
                autostart: false,
                state: DomainState::Shutoff,
                reason: shutoff::UNKNOWN,
                removed: false,
            },
        );
        // Membership first (the registry checks name and UUID atomically),
        // then the file: a losing concurrent define never touches the
        // winner's file.
        self.inner.registry.insert(obj.clone())?;
        if let Err(e) = self.inner.store.save(&saved) {
            self.inner.registry.remove(&obj);
            return Err(e);
        }
        self.inner
            .emit(uuid, &name, EventType::Defined, detail::DEFINED_ADDED);
        Ok(obj)
    }

    /// `virDomainCreateXML`: a transient domain, started at once.
    pub async fn create_xml(&self, xml: &str, flags: u32) -> Result<Arc<DomainObj>> {
        // START_PAUSED 1, AUTODESTROY 2, BYPASS_CACHE 4, FORCE_BOOT 8, VALIDATE 16, RESET_NVRAM 32
        if flags & !(START_PAUSED | 2 | 4 | 8 | 16 | 32) != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function virDomainCreateXML"
            )));
        }
        let def = parse_domain(xml)?;
        check_supported(&def)?;
        if let Some(obj) = self
            .inner
            .registry
            .by_uuid(&def.uuid)
            .or_else(|| self.inner.registry.by_name(&def.name))
        {
            let d = obj.data();
            if d.is_active() {
                return Err(Error::operation_invalid(format!(
                    "domain '{}' is already active",
                    d.name
                )));
            }
            return Err(Error::new(
                crate::error::ErrorCode::OperationFailed,
                crate::error::ErrorDomain::Qemu,
                format!("domain '{}' already exists with uuid {}", d.name, obj.uuid),
            ));
        }
        let obj = DomainObj::new(
            def.uuid,
            DomainData {
                name: def.name.clone(),
                persistent: None,
                live: None,
                autostart: false,
                state: DomainState::Shutoff,
                reason: shutoff::UNKNOWN,
                removed: false,
            },
        );
        self.inner.registry.insert(obj.clone())?;
        let job = obj.begin_job().await?;
        let mut r = lifecycle::start_locked(&self.inner, &obj, Some(def)).await;
        if r.is_ok() && flags & START_PAUSED != 0 {
            r = lifecycle::pause_locked(&self.inner, &obj, true).await;
            if r.is_err() {
                let _ = lifecycle::destroy_locked(&self.inner, &obj).await;
            }
        }
        drop(job);
        if let Err(e) = r {
            self.inner.registry.remove(&obj);
            return Err(e);
        }
        Ok(obj)
    }

    /// `virDomainUndefineFlags`.
    pub async fn undefine(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        if flags & !UNDEFINE_KNOWN != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function virDomainUndefineFlags"
            )));
        }
        let _job = obj.begin_job().await?;
        let (name, active) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            if d.persistent.is_none() {
                return Err(Error::operation_invalid("cannot undefine transient domain"));
            }
            (d.name.clone(), d.is_active())
        };
        self.inner.store.remove(&name)?;
        {
            let mut d = obj.data();
            d.persistent = None;
            d.autostart = false;
        }
        if !active {
            self.inner.registry.remove(obj);
        }
        self.inner.emit(
            obj.uuid,
            &name,
            EventType::Undefined,
            detail::UNDEFINED_REMOVED,
        );
        Ok(())
    }

    /// `virDomainRename`: an inactive persistent domain gets a new name.
    pub async fn rename(&self, obj: &Arc<DomainObj>, new_name: &str, flags: u32) -> Result<()> {
        if flags != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{flags:x}) in function virDomainRename"
            )));
        }
        if new_name.is_empty() {
            return Err(Error::invalid_arg("new domain name must not be empty"));
        }
        if new_name.contains('/') {
            return Err(Error::xml(format!("name {new_name} cannot contain '/'")));
        }
        let _job = obj.begin_job().await?;
        let (old_name, mut def, autostart) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            if d.is_active() {
                return Err(Error::operation_invalid("cannot rename active domain"));
            }
            let Some(def) = d.persistent.clone() else {
                return Err(Error::operation_invalid("cannot rename a transient domain"));
            };
            (d.name.clone(), def, d.autostart)
        };
        if old_name == new_name {
            return Ok(());
        }
        self.inner.registry.rename(obj, new_name)?;
        def.name = new_name.to_string();
        let written = self.inner.store.save(&def).and_then(|()| {
            if autostart {
                self.inner.store.set_autostart(new_name, true)
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            let _ = self.inner.store.remove(new_name);
            if let Err(back) = self.inner.registry.rename(obj, &old_name) {
                tracing::error!("cannot restore the name '{old_name}': {back}");
            }
            return Err(e);
        }
        if let Err(e) = self.inner.store.remove(&old_name) {
            tracing::warn!("cannot remove the old definition of '{old_name}': {e}");
        }
        obj.data().persistent = Some(def);
        self.inner.emit(
            obj.uuid,
            &old_name,
            EventType::Undefined,
            detail::UNDEFINED_RENAMED,
        );
        self.inner.emit(
            obj.uuid,
            new_name,
            EventType::Defined,
            detail::DEFINED_RENAMED,
        );
        Ok(())
    }

    /// `virDomainSetMemoryFlags`. The persistent definition can change;
    /// a running guest cannot, as the VMM has no balloon device yet.
    pub async fn set_memory(&self, obj: &Arc<DomainObj>, kib: u64, flags: u32) -> Result<()> {
        const LIVE: u32 = 1;
        const CONFIG: u32 = 2;
        const MAXIMUM: u32 = 4;
        if flags & !(LIVE | CONFIG | MAXIMUM) != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{:x}) in function virDomainSetMemoryFlags",
                flags & !(LIVE | CONFIG | MAXIMUM)
            )));
        }
        let _job = obj.begin_job().await?;
        let (name, mut def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live, config) = match flags & (LIVE | CONFIG) {
                0 => (d.is_active(), !d.is_active()),
                f => (f & LIVE != 0, f & CONFIG != 0),
            };
            if live && !d.is_active() {
                return Err(Error::operation_invalid("domain is not running"));
            }
            if live {
                return Err(Error::operation_invalid(
                    "Unable to change memory of active domain without the balloon device and guest OS balloon driver",
                ));
            }
            if !config {
                return Ok(());
            }
            let Some(def) = d.persistent.clone() else {
                return Err(Error::operation_invalid(
                    "transient domains do not have any persistent config",
                ));
            };
            (d.name.clone(), def)
        };
        if kib == 0 {
            return Err(Error::invalid_arg("memory size must be greater than zero"));
        }
        if flags & MAXIMUM != 0 {
            def.memory_kib = kib;
            if def.current_memory_kib > kib {
                def.current_memory_kib = kib;
            }
        } else {
            if kib > def.memory_kib {
                return Err(Error::invalid_arg(
                    "cannot set memory higher than max memory",
                ));
            }
            def.current_memory_kib = kib;
        }
        self.inner.store.save(&def)?;
        obj.data().persistent = Some(def);
        tracing::info!(
            domain = name,
            kib,
            "memory of the persistent definition changed"
        );
        Ok(())
    }

    /// `virDomainSetAutostart`.
    pub async fn set_autostart(&self, obj: &Arc<DomainObj>, on: bool) -> Result<()> {
        let _job = obj.begin_job().await?;
        let name = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            if d.persistent.is_none() {
                return Err(Error::operation_invalid(
                    "cannot set autostart for transient domain",
                ));
            }
            d.name.clone()
        };
        self.inner.store.set_autostart(&name, on)?;
        obj.data().autostart = on;
        Ok(())
    }

    /// `virDomainGetXMLDesc`.
    pub fn xml_desc(&self, obj: &DomainObj, flags: u32) -> Result<String> {
        if flags & !15 != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{:x}) in function virDomainGetXMLDesc",
                flags & !15
            )));
        }
        let f = FormatFlags::from_bits(flags);
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        let def: &Domain = if f.inactive {
            d.persistent.as_ref().or(d.live.as_ref().map(|l| &l.def))
        } else {
            d.current_def()
        }
        .ok_or_else(|| Error::internal("domain without a definition"))?;
        Ok(def.to_xml(f))
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
        lifecycle::start_locked(&self.inner, obj, None).await?;
        if flags & START_PAUSED != 0
            && let Err(e) = lifecycle::pause_locked(&self.inner, obj, true).await
        {
            let _ = lifecycle::destroy_locked(&self.inner, obj).await;
            return Err(e);
        }
        Ok(())
    }

    /// `virDomainShutdownFlags`: presses the ACPI power button.
    pub async fn shutdown(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::shutdown_locked(obj).await
    }

    /// `virDomainDestroyFlags`.
    pub async fn destroy(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::destroy_locked(&self.inner, obj).await
    }

    /// `virDomainReboot`: the VMM resets the guest (a fresh VMM boots it
    /// again); oxvirt has no ACPI reboot request, so the guest is not asked.
    pub async fn reboot(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::reset_locked(obj).await
    }

    /// `virDomainReset`.
    pub async fn reset(&self, obj: &Arc<DomainObj>) -> Result<()> {
        let _job = obj.begin_job().await?;
        lifecycle::reset_locked(obj).await
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
    pub fn console_pty(&self, obj: &DomainObj, dev_name: Option<&str>) -> Result<String> {
        use crate::xml::model::chardev::CharSourceType;
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

    /// Per-domain statistics (see [`stats`]).
    pub async fn stats(&self, obj: &Arc<DomainObj>) -> Result<stats::DomainStats> {
        stats::collect(obj).await
    }
}

fn list_matches(info: &DomainInfo, flags: u32) -> bool {
    use list_flags::*;
    let active = info.id.is_some();
    let pair = |yes: u32, no: u32, v: bool| {
        let (y, n) = (flags & yes != 0, flags & no != 0);
        !(y || n) || (y && v) || (n && !v)
    };
    if !pair(ACTIVE, INACTIVE, active) || !pair(PERSISTENT, TRANSIENT, info.persistent) {
        return false;
    }
    if !pair(AUTOSTART, NO_AUTOSTART, info.autostart) {
        return false;
    }
    if flags & HAS_SNAPSHOT != 0 && flags & NO_SNAPSHOT == 0 {
        return false;
    }
    if flags & MANAGEDSAVE != 0 && flags & NO_MANAGEDSAVE == 0 {
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

    fn info(active: bool, persistent: bool, state: DomainState) -> DomainInfo {
        DomainInfo {
            uuid: Uuid::nil(),
            name: "x".into(),
            id: active.then_some(1),
            state,
            reason: 0,
            persistent,
            autostart: false,
            os_type: "hvm".into(),
            max_memory_kib: 1,
            memory_kib: 1,
            vcpus: 1,
            max_vcpus: 1,
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
        };
        let drv = Driver::open(cfg.clone()).await.unwrap();
        let mut events = drv.subscribe();
        let xml = "<domain type='kvm'><name>a</name><memory>65536</memory>\
                   <os><type>hvm</type><kernel>/nonexistent</kernel></os></domain>";
        let obj = drv.define_xml(xml).await.unwrap();
        let ev = events.recv().await.unwrap();
        assert_eq!(
            (ev.event, ev.detail),
            (EventType::Defined, detail::DEFINED_ADDED)
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
