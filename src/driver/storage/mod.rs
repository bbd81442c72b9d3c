//! The storage sub-driver: libvirt's storage pools and volumes, with one
//! entry point per libvirt public function (named after it, flags checked
//! here as libvirt's storage driver checks them). Directory pools are
//! served; volumes are raw or qcow2 files (qcow2 made through imago).
//!
//! Locking: one short mutex over every pool, never held across volume I/O
//! (only stopping a filesystem pool unmounts it under the lock, so that
//! nothing starts on the pool meanwhile). Long operations (creating,
//! copying, wiping, streaming a volume) mark the pool busy and the volume
//! in use while they run unlocked, so that a concurrent destroy, delete or
//! undefine is refused as libvirt refuses it.

pub mod dir;
pub mod flags;
mod fs;
pub mod probe;
mod store;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::storage::pool::sanitize_path;
use crate::xml::storage::{PoolDef, PoolType, VolDef, VolFormat, parse_pool, parse_volume};

use store::PoolStore;

/// A pool as clients name it (`virStoragePoolPtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRef {
    pub name: String,
    pub uuid: Uuid,
}

/// A volume as clients name it (`virStorageVolPtr`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolRef {
    pub pool: String,
    pub name: String,
    pub key: String,
}

/// `virStoragePoolGetInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    pub state: i32,
    pub capacity: u64,
    pub allocation: u64,
    pub available: u64,
}

/// `virStorageVolGetInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolInfo {
    pub vol_type: i32,
    pub capacity: u64,
    pub allocation: u64,
}

/// A storage pool event (`virConnectStoragePoolEventRegisterAny`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolEventKind {
    Lifecycle { event: i32, detail: i32 },
    Refresh,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolEvent {
    pub pool: PoolRef,
    pub kind: PoolEventKind,
}

struct Volume {
    def: VolDef,
    /// Streams, copies and wipes using it.
    in_use: u32,
    /// Being created.
    building: bool,
}

impl Volume {
    /// libvirt's refusal to use a volume still being created.
    fn check_built(&self) -> Result<()> {
        if self.building {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("volume '{}' is still being allocated.", self.def.name),
            ));
        }
        Ok(())
    }
}

struct Pool {
    def: PoolDef,
    /// A persistent definition given while the pool was active, applied
    /// when it stops (libvirt's `newDef`).
    new_def: Option<PoolDef>,
    active: bool,
    persistent: bool,
    autostart: bool,
    volumes: Vec<Volume>,
    /// Operations running unlocked on its volumes.
    jobs: u32,
}

impl Pool {
    /// A pool not yet started, with no volumes known.
    fn new(def: PoolDef, persistent: bool) -> Pool {
        Pool {
            def,
            new_def: None,
            active: false,
            persistent,
            autostart: false,
            volumes: Vec::new(),
            jobs: 0,
        }
    }

    fn pref(&self) -> PoolRef {
        PoolRef {
            name: self.def.name.clone(),
            uuid: self.def.uuid,
        }
    }

    fn vref(&self, v: &VolDef) -> VolRef {
        VolRef {
            pool: self.def.name.clone(),
            name: v.name.clone(),
            key: v.key.clone().unwrap_or_default(),
        }
    }

    /// libvirt's refusal to change a pool while operations run on its
    /// volumes.
    fn check_no_jobs(&self) -> Result<()> {
        if self.jobs > 0 {
            return Err(err(
                ErrorCode::InternalError,
                format!("pool '{}' has asynchronous jobs running.", self.def.name),
            ));
        }
        Ok(())
    }

    /// libvirt's refusal of a call that needs the pool active.
    fn check_active(&self) -> Result<()> {
        if !self.active {
            return Err(not_active(&self.def.name));
        }
        Ok(())
    }

    /// libvirt's refusal to undefine or delete a running pool.
    fn check_inactive(&self) -> Result<()> {
        if self.active {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("storage pool '{}' is still active", self.def.name),
            ));
        }
        Ok(())
    }

    fn persistent_def(&self) -> &PoolDef {
        self.new_def.as_ref().unwrap_or(&self.def)
    }

    fn vol(&self, name: &str) -> Option<&Volume> {
        self.volumes.iter().find(|v| v.def.name == name)
    }
}

struct Inner {
    store: PoolStore,
    pools: Mutex<Vec<Pool>>,
    events: broadcast::Sender<PoolEvent>,
}

/// The storage sub-driver; cheap to clone.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

fn err(code: ErrorCode, detail: impl AsRef<str>) -> Error {
    Error::new(code, ErrorDomain::Storage, detail)
}

fn check_flags(flags: u32, allowed: u32, function: &str) -> Result<()> {
    crate::driver::check_flags_in(ErrorDomain::Storage, flags, allowed, function)
}

fn exclusive(flags: u32, a: (u32, &str), b: (u32, &str)) -> Result<()> {
    crate::driver::exclusive_flags_in(ErrorDomain::Storage, flags, a, b)
}

/// The flags of `virStoragePoolCreate` and `virStoragePoolCreateXML`.
fn check_create_flags(flags: u32, function: &str) -> Result<()> {
    use flags::create::*;
    check_flags(
        flags,
        WITH_BUILD | WITH_BUILD_OVERWRITE | WITH_BUILD_NO_OVERWRITE,
        function,
    )?;
    exclusive(
        flags,
        (WITH_BUILD_OVERWRITE, "VIR_STORAGE_POOL_BUILD_OVERWRITE"),
        (
            WITH_BUILD_NO_OVERWRITE,
            "VIR_STORAGE_POOL_BUILD_NO_OVERWRITE",
        ),
    )
}

fn not_active(name: &str) -> Error {
    err(
        ErrorCode::OperationInvalid,
        format!("storage pool '{name}' is not active"),
    )
}

fn no_vol_name(name: &str) -> Error {
    err(
        ErrorCode::NoStorageVol,
        format!("no storage vol with matching name '{name}'"),
    )
}

fn missing_backend(t: PoolType) -> Error {
    err(
        ErrorCode::InternalError,
        format!(
            "missing backend for pool type {} ({})",
            t as i32,
            t.as_str()
        ),
    )
}

/// Runs blocking host I/O off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        err(
            ErrorCode::InternalError,
            format!("storage task failed: {e}"),
        )
    })?
}

/// Unmarks a volume operation when it ends, however it ends.
struct VolJob {
    storage: Storage,
    pool: String,
    vols: Vec<String>,
}

impl Drop for VolJob {
    fn drop(&mut self) {
        let mut pools = self.storage.lock();
        if let Some(p) = pools.iter_mut().find(|p| p.def.name == self.pool) {
            p.jobs = p.jobs.saturating_sub(1);
            for name in &self.vols {
                if let Some(v) = p.volumes.iter_mut().find(|v| &v.def.name == name) {
                    v.in_use = v.in_use.saturating_sub(1);
                }
            }
        }
    }
}

/// A volume's file opened for a stream, with the job that keeps the
/// volume from being deleted meanwhile.
pub struct VolStream {
    file: File,
    /// Bytes to transfer (0: up to the end).
    length: u64,
    job: VolJob,
}

/// Keeps a volume in use until dropped.
pub struct VolInUse {
    _job: VolJob,
}

impl VolStream {
    /// The open file, the byte count (0: to the end) and the guard that
    /// keeps the volume in use while the stream runs.
    pub fn into_parts(self) -> (File, u64, VolInUse) {
        (self.file, self.length, VolInUse { _job: self.job })
    }
}

impl Storage {
    /// Loads pool definitions and state, re-activates the pools that were
    /// active (their directories still there) and starts autostart pools.
    pub fn open(config_dir: PathBuf, state_dir: PathBuf) -> Result<Storage> {
        let store = PoolStore::new(config_dir, state_dir);
        store.ensure_dirs()?;
        let (events, _) = broadcast::channel(256);
        let mut pools = Vec::new();
        for l in store.load_all() {
            let mut pool = Pool {
                new_def: l.new_def,
                autostart: l.autostart,
                ..Pool::new(l.def, l.persistent)
            };
            if l.was_active || l.autostart {
                match activate(&mut pool, 0) {
                    Ok(()) => store.save_state(&pool.def)?,
                    Err(e) => {
                        tracing::error!(pool = pool.def.name, "cannot start storage pool: {e}");
                        store.remove_state(&pool.def.name);
                    }
                }
            }
            if pool.active || pool.persistent {
                pools.push(pool);
            }
        }
        Ok(Storage {
            inner: Arc::new(Inner {
                store,
                pools: Mutex::new(pools),
                events,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Pool>> {
        self.inner.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of every pool event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, pool: PoolRef, kind: PoolEventKind) {
        tracing::info!(pool = pool.name, ?kind, "storage pool event");
        let _ = self.inner.events.send(PoolEvent { pool, kind });
    }

    fn lifecycle(&self, pool: PoolRef, event: i32) {
        self.emit(pool, PoolEventKind::Lifecycle { event, detail: 0 });
    }

    /// Runs `f` on the pool `p` names (by UUID, as libvirt finds a pool
    /// from its handle).
    fn with_pool<T>(&self, p: &PoolRef, f: impl FnOnce(&mut Pool) -> Result<T>) -> Result<T> {
        let mut pools = self.lock();
        let pool = pools
            .iter_mut()
            .find(|x| x.def.uuid == p.uuid)
            .ok_or_else(|| no_pool_uuid(p))?;
        f(pool)
    }

    /// Runs `f` on the active pool holding volume `v` and the volume.
    fn with_vol<T>(&self, v: &VolRef, f: impl FnOnce(&mut Pool, usize) -> Result<T>) -> Result<T> {
        let mut pools = self.lock();
        let pool = pools
            .iter_mut()
            .find(|x| x.def.name == v.pool)
            .ok_or_else(|| no_pool_name(&v.pool))?;
        pool.check_active()?;
        let i = pool
            .volumes
            .iter()
            .position(|x| x.def.name == v.name)
            .ok_or_else(|| no_vol_name(&v.name))?;
        f(pool, i)
    }

    // ---- connection-level ---------------------------------------------

    /// `virConnectListAllStoragePools`.
    pub fn connect_list_all_storage_pools(&self, flags: u32) -> Result<Vec<PoolRef>> {
        check_flags(flags, flags::list::ALL, "storageConnectListAllStoragePools")?;
        use flags::list::*;
        let pools = self.lock();
        let mut out: Vec<PoolRef> = pools
            .iter()
            .filter(|p| {
                let pair = |yes: u32, no: u32, v: bool| {
                    crate::driver::list_pair_matches(flags, yes, no, v)
                };
                let types = flags & !(TYPE_DIR - 1);
                pair(ACTIVE, INACTIVE, p.active)
                    && pair(PERSISTENT, TRANSIENT, p.persistent)
                    && pair(AUTOSTART, NO_AUTOSTART, p.autostart)
                    && (types == 0 || types & type_flag(p.def.pool_type) != 0)
            })
            .map(Pool::pref)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `virConnectNumOfStoragePools` / `virConnectNumOfDefinedStoragePools`.
    pub fn connect_num_of_storage_pools(&self, active: bool) -> i32 {
        self.lock().iter().filter(|p| p.active == active).count() as i32
    }

    /// `virConnectListStoragePools` / `virConnectListDefinedStoragePools`.
    pub fn connect_list_storage_pools(&self, active: bool, max: i32) -> Vec<String> {
        let mut names: Vec<String> = self
            .lock()
            .iter()
            .filter(|p| p.active == active)
            .map(|p| p.def.name.clone())
            .collect();
        names.sort();
        names.truncate(max.max(0) as usize);
        names
    }

    // ---- pool lookups ---------------------------------------------------

    /// `virStoragePoolLookupByName`.
    pub fn storage_pool_lookup_by_name(&self, name: &str) -> Result<PoolRef> {
        self.lock()
            .iter()
            .find(|p| p.def.name == name)
            .map(Pool::pref)
            .ok_or_else(|| no_pool_name(name))
    }

    /// `virStoragePoolLookupByUUID`.
    pub fn storage_pool_lookup_by_uuid(&self, uuid: &Uuid) -> Result<PoolRef> {
        self.lock()
            .iter()
            .find(|p| p.def.uuid == *uuid)
            .map(Pool::pref)
            .ok_or_else(|| {
                err(
                    ErrorCode::NoStoragePool,
                    format!("no storage pool with matching uuid '{uuid}'"),
                )
            })
    }

    /// `virStoragePoolLookupByUUIDString`: the UUID read with libvirt's
    /// leniency (dashes anywhere, any case, blanks around).
    pub fn storage_pool_lookup_by_uuid_string(&self, text: &str) -> Result<PoolRef> {
        let uuid = crate::xml::uuid_text::parse_uuid(text).ok_or_else(|| {
            err(
                ErrorCode::InvalidArg,
                "uuidstr in virStoragePoolLookupByUUIDString must be a valid UUID",
            )
        })?;
        self.storage_pool_lookup_by_uuid(&uuid)
    }

    /// `virStoragePoolLookupByVolume`.
    pub fn storage_pool_lookup_by_volume(&self, v: &VolRef) -> Result<PoolRef> {
        self.lock()
            .iter()
            .find(|p| p.def.name == v.pool)
            .map(Pool::pref)
            .ok_or_else(|| no_pool_name(&v.pool))
    }

    /// `virStoragePoolLookupByTargetPath`.
    pub fn storage_pool_lookup_by_target_path(&self, path: &str) -> Result<PoolRef> {
        let want = sanitize_path(path);
        self.lock()
            .iter()
            .find(|p| p.active && p.def.target_path == want)
            .map(Pool::pref)
            .ok_or_else(|| {
                err(
                    ErrorCode::NoStoragePool,
                    format!("no storage pool with matching target path '{path}'"),
                )
            })
    }

    // ---- pool definition and lifecycle --------------------------------

    /// Refuses a definition that clashes with another pool by UUID, name
    /// or target directory; returns the index of the pool it redefines.
    fn check_duplicate(pools: &[Pool], def: &PoolDef, check_active: bool) -> Result<Option<usize>> {
        if let Some(i) = pools.iter().position(|p| p.def.uuid == def.uuid) {
            let p = &pools[i];
            if p.def.name != def.name {
                return Err(err(
                    ErrorCode::OperationFailed,
                    format!(
                        "pool '{}' is already defined with uuid {}",
                        p.def.name, p.def.uuid
                    ),
                ));
            }
            if check_active && p.active {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    format!("pool is already active as '{}'", p.def.name),
                ));
            }
            return Ok(Some(i));
        }
        if let Some(p) = pools.iter().find(|p| p.def.name == def.name) {
            return Err(err(
                ErrorCode::OperationFailed,
                format!(
                    "pool '{}' already exists with uuid {}",
                    def.name, p.def.uuid
                ),
            ));
        }
        if let Some(p) = pools.iter().find(|p| {
            p.def.pool_type == def.pool_type
                && (p.def.target_path == def.target_path
                    || (def.pool_type == PoolType::Fs
                        && p.def
                            .source_devices
                            .iter()
                            .any(|d| def.source_devices.contains(d))))
        }) {
            return Err(err(
                ErrorCode::OperationFailed,
                format!("Storage source conflict with pool: '{}'", p.def.name),
            ));
        }
        Ok(None)
    }

    fn parse_served(xml: &str) -> Result<PoolDef> {
        let def = parse_pool(xml)?;
        if def.name.contains('\n') {
            return Err(err(
                ErrorCode::XmlDetail,
                "name 'name' contains illegal character '\n'",
            ));
        }
        if !matches!(def.pool_type, PoolType::Dir | PoolType::Fs) {
            return Err(missing_backend(def.pool_type));
        }
        Ok(def)
    }

    /// `virStoragePoolDefineXML`.
    pub fn storage_pool_define_xml(&self, xml: &str, flags: u32) -> Result<PoolRef> {
        check_flags(flags, flags::DEFINE_VALIDATE, "storagePoolDefineXML")?;
        let def = Self::parse_served(xml)?;
        let mut pools = self.lock();
        let existing = Self::check_duplicate(&pools, &def, false)?;
        self.inner.store.save_config(&def)?;
        let pref = PoolRef {
            name: def.name.clone(),
            uuid: def.uuid,
        };
        match existing {
            Some(i) => {
                let p = &mut pools[i];
                p.persistent = true;
                if p.active {
                    p.new_def = Some(def);
                } else {
                    p.def = def;
                }
            }
            None => pools.push(Pool::new(def, true)),
        }
        drop(pools);
        self.lifecycle(pref.clone(), flags::event::DEFINED);
        Ok(pref)
    }

    /// `virStoragePoolCreateXML`: a transient pool, started.
    pub async fn storage_pool_create_xml(&self, xml: &str, flags: u32) -> Result<PoolRef> {
        check_create_flags(flags, "storagePoolCreateXML")?;
        let def = Self::parse_served(xml)?;
        // A match by name and UUID with an inactive persistent pool is
        // allowed: libvirt starts that pool with the given definition.
        Self::check_duplicate(&self.lock(), &def, true)?;
        let mut pool = Pool::new(def, false);
        let pool = blocking(move || {
            activate(&mut pool, flags)?;
            Ok(pool)
        })
        .await?;
        let pref = pool.pref();
        {
            let mut pools = self.lock();
            // Another call may have taken the name meanwhile.
            if let Some(i) = Self::check_duplicate(&pools, &pool.def, true)? {
                let old = &mut pools[i];
                old.new_def = Some(std::mem::replace(&mut old.def, pool.def));
                old.active = true;
                old.volumes = pool.volumes;
                self.inner.store.save_state(&old.def)?;
            } else {
                self.inner.store.save_state(&pool.def)?;
                pools.push(pool);
            }
        }
        self.lifecycle(pref.clone(), flags::event::STARTED);
        Ok(pref)
    }

    /// `virStoragePoolUndefine`.
    pub fn storage_pool_undefine(&self, p: &PoolRef) -> Result<()> {
        let pref = {
            let mut pools = self.lock();
            let i = pools
                .iter()
                .position(|x| x.def.uuid == p.uuid)
                .ok_or_else(|| no_pool_uuid(p))?;
            let pool = &mut pools[i];
            pool.check_inactive()?;
            pool.check_no_jobs()?;
            if !pool.persistent {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    "cannot undefine transient storage pool",
                ));
            }
            self.inner.store.remove_config(&pool.def.name)?;
            let pref = pool.pref();
            pools.remove(i);
            pref
        };
        self.lifecycle(pref, flags::event::UNDEFINED);
        Ok(())
    }

    /// `virStoragePoolCreate`: starts a defined pool.
    pub async fn storage_pool_create(&self, p: &PoolRef, flags: u32) -> Result<()> {
        check_create_flags(flags, "storagePoolCreate")?;
        let def = self.with_pool(p, |pool| {
            if pool.active {
                return Err(already_active(&pool.def.name));
            }
            Ok(pool.def.clone())
        })?;
        let mut scratch = Pool::new(def, true);
        let scratch = blocking(move || {
            activate(&mut scratch, flags)?;
            Ok(scratch)
        })
        .await?;
        self.with_pool(p, |pool| {
            if pool.active {
                return Err(already_active(&pool.def.name));
            }
            pool.def = scratch.def;
            pool.volumes = scratch.volumes;
            pool.active = true;
            self.inner.store.save_state(&pool.def)
        })?;
        self.lifecycle(p.clone(), flags::event::STARTED);
        Ok(())
    }

    /// `virStoragePoolBuild`.
    pub async fn storage_pool_build(&self, p: &PoolRef, flags: u32) -> Result<()> {
        use flags::build::*;
        check_flags(flags, OVERWRITE | NO_OVERWRITE, "storagePoolBuild")?;
        exclusive(
            flags,
            (OVERWRITE, "VIR_STORAGE_POOL_BUILD_OVERWRITE"),
            (NO_OVERWRITE, "VIR_STORAGE_POOL_BUILD_NO_OVERWRITE"),
        )?;
        let def = self.with_pool(p, |pool| {
            if pool.active {
                return Err(already_active(&pool.def.name));
            }
            Ok(pool.def.clone())
        })?;
        if flags & (OVERWRITE | NO_OVERWRITE) != 0 && def.pool_type != PoolType::Fs {
            // Only pools on a source device can be formatted.
            return Err(err(
                ErrorCode::OperationInvalid,
                format!(
                    "No source device specified when formatting pool '{}'",
                    def.name
                ),
            ));
        }
        blocking(move || {
            dir::build(&def)?;
            if flags & (OVERWRITE | NO_OVERWRITE) != 0 {
                fs::make_filesystem(&def, flags & OVERWRITE != 0)?;
            }
            Ok(())
        })
        .await?;
        self.lifecycle(p.clone(), flags::event::CREATED);
        Ok(())
    }

    /// `virStoragePoolDestroy`: stops the pool (its files stay).
    pub fn storage_pool_destroy(&self, p: &PoolRef) -> Result<()> {
        {
            let mut pools = self.lock();
            let i = pools
                .iter()
                .position(|x| x.def.uuid == p.uuid)
                .ok_or_else(|| no_pool_uuid(p))?;
            let pool = &mut pools[i];
            pool.check_active()?;
            pool.check_no_jobs()?;
            if pool.def.pool_type == PoolType::Fs {
                fs::unmount(&pool.def)?;
            }
            pool.active = false;
            pool.volumes.clear();
            self.inner.store.remove_state(&pool.def.name);
            if let Some(d) = pool.new_def.take() {
                pool.def = d;
            }
            if !pool.persistent {
                pools.remove(i);
            }
        }
        self.lifecycle(p.clone(), flags::event::STOPPED);
        Ok(())
    }

    /// `virStoragePoolDelete`: removes the pool's directory.
    pub async fn storage_pool_delete(&self, p: &PoolRef, flags: u32) -> Result<()> {
        check_flags(flags, flags::DELETE_ZEROED, "storagePoolDelete")?;
        let def = self.with_pool(p, |pool| {
            pool.check_inactive()?;
            pool.check_no_jobs()?;
            Ok(pool.def.clone())
        })?;
        if flags & flags::DELETE_ZEROED != 0 {
            return Err(err(
                ErrorCode::NoSupport,
                "pool does not support pool deletion with zeroing",
            ));
        }
        blocking(move || dir::delete(&def)).await?;
        self.lifecycle(p.clone(), flags::event::DELETED);
        Ok(())
    }

    /// `virStoragePoolRefresh`.
    pub async fn storage_pool_refresh(&self, p: &PoolRef, flags: u32) -> Result<()> {
        check_flags(flags, 0, "storagePoolRefresh")?;
        let def = self.with_pool(p, |pool| {
            pool.check_active()?;
            pool.check_no_jobs()?;
            Ok(pool.def.clone())
        })?;
        let scanned = blocking(move || dir::scan(&def)).await;
        match scanned {
            Ok(scan) => {
                self.with_pool(p, |pool| {
                    apply_scan(pool, scan);
                    Ok(())
                })?;
                self.emit(p.clone(), PoolEventKind::Refresh);
                Ok(())
            }
            Err(e) => {
                // As libvirt: a pool whose refresh fails is stopped.
                let _ = self.storage_pool_destroy(p);
                Err(e)
            }
        }
    }

    /// `virStoragePoolGetInfo`.
    pub fn storage_pool_get_info(&self, p: &PoolRef) -> Result<PoolInfo> {
        self.with_pool(p, |pool| {
            Ok(if pool.active {
                PoolInfo {
                    state: flags::pool_state::RUNNING,
                    capacity: pool.def.capacity,
                    allocation: pool.def.allocation,
                    available: pool.def.available,
                }
            } else {
                PoolInfo {
                    state: flags::pool_state::INACTIVE,
                    capacity: 0,
                    allocation: 0,
                    available: 0,
                }
            })
        })
    }

    /// `virStoragePoolGetXMLDesc`.
    pub fn storage_pool_get_xml_desc(&self, p: &PoolRef, flags: u32) -> Result<String> {
        check_flags(flags, flags::XML_INACTIVE, "storagePoolGetXMLDesc")?;
        self.with_pool(p, |pool| {
            Ok(if flags & flags::XML_INACTIVE != 0 {
                pool.persistent_def().to_xml()
            } else {
                pool.def.to_xml()
            })
        })
    }

    /// `virStoragePoolGetAutostart`.
    pub fn storage_pool_get_autostart(&self, p: &PoolRef) -> Result<bool> {
        self.with_pool(p, |pool| Ok(pool.autostart))
    }

    /// `virStoragePoolSetAutostart`.
    pub fn storage_pool_set_autostart(&self, p: &PoolRef, on: bool) -> Result<()> {
        self.with_pool(p, |pool| {
            if !pool.persistent {
                return Err(err(ErrorCode::InternalError, "pool has no config file"));
            }
            if pool.autostart != on {
                self.inner.store.set_autostart(&pool.def.name, on)?;
                pool.autostart = on;
            }
            Ok(())
        })
    }

    /// `virStoragePoolIsActive`.
    pub fn storage_pool_is_active(&self, p: &PoolRef) -> Result<bool> {
        self.with_pool(p, |pool| Ok(pool.active))
    }

    /// `virStoragePoolIsPersistent`.
    pub fn storage_pool_is_persistent(&self, p: &PoolRef) -> Result<bool> {
        self.with_pool(p, |pool| Ok(pool.persistent))
    }

    /// `virStoragePoolNumOfVolumes`.
    pub fn storage_pool_num_of_volumes(&self, p: &PoolRef) -> Result<i32> {
        self.with_pool(p, |pool| {
            pool.check_active()?;
            Ok(pool.volumes.iter().filter(|v| !v.building).count() as i32)
        })
    }

    /// `virStoragePoolListVolumes`.
    pub fn storage_pool_list_volumes(&self, p: &PoolRef, max: i32) -> Result<Vec<String>> {
        self.with_pool(p, |pool| {
            pool.check_active()?;
            Ok(pool
                .volumes
                .iter()
                .filter(|v| !v.building)
                .take(max.max(0) as usize)
                .map(|v| v.def.name.clone())
                .collect())
        })
    }

    /// `virStoragePoolListAllVolumes`.
    pub fn storage_pool_list_all_volumes(&self, p: &PoolRef, flags: u32) -> Result<Vec<VolRef>> {
        check_flags(flags, 0, "storagePoolListAllVolumes")?;
        self.with_pool(p, |pool| {
            pool.check_active()?;
            Ok(pool
                .volumes
                .iter()
                .filter(|v| !v.building)
                .map(|v| pool.vref(&v.def))
                .collect())
        })
    }

    // ---- volume lookups -----------------------------------------------

    /// `virStorageVolLookupByName`.
    pub fn storage_vol_lookup_by_name(&self, p: &PoolRef, name: &str) -> Result<VolRef> {
        self.with_pool(p, |pool| {
            pool.check_active()?;
            pool.vol(name)
                .map(|v| pool.vref(&v.def))
                .ok_or_else(|| no_vol_name(name))
        })
    }

    /// `virStorageVolLookupByKey`.
    pub fn storage_vol_lookup_by_key(&self, key: &str) -> Result<VolRef> {
        let pools = self.lock();
        pools
            .iter()
            .filter(|p| p.active)
            .find_map(|p| {
                p.volumes
                    .iter()
                    .find(|v| v.def.key.as_deref() == Some(key))
                    .map(|v| p.vref(&v.def))
            })
            .ok_or_else(|| {
                err(
                    ErrorCode::NoStorageVol,
                    format!("no storage vol with matching key {key}"),
                )
            })
    }

    /// `virStorageVolLookupByPath`.
    pub fn storage_vol_lookup_by_path(&self, path: &str) -> Result<VolRef> {
        let canon = std::fs::canonicalize(path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| sanitize_path(path));
        let pools = self.lock();
        pools
            .iter()
            .filter(|p| p.active)
            .find_map(|p| {
                p.volumes
                    .iter()
                    .find(|v| {
                        v.def.path.as_deref() == Some(canon.as_str())
                            || v.def.path.as_deref() == Some(path)
                    })
                    .map(|v| p.vref(&v.def))
            })
            .ok_or_else(|| {
                err(
                    ErrorCode::NoStorageVol,
                    format!("no storage vol with matching path '{path}'"),
                )
            })
    }

    // ---- volumes --------------------------------------------------------

    /// Checks a new volume's definition against its pool and reserves its
    /// name; returns the pool definition and the volume's path.
    fn reserve(&self, p: &PoolRef, vol: &VolDef) -> Result<(PoolDef, PathBuf, VolJob)> {
        let mut pools = self.lock();
        let pool = pools
            .iter_mut()
            .find(|x| x.def.uuid == p.uuid)
            .ok_or_else(|| no_pool_uuid(p))?;
        pool.check_active()?;
        if pool.vol(&vol.name).is_some() {
            return Err(vol_exists(&vol.name));
        }
        if vol.name.contains('/') || vol.name.is_empty() || vol.name == "." || vol.name == ".." {
            return Err(err(
                ErrorCode::OperationInvalid,
                format!("volume name '{}' cannot contain '/'", vol.name),
            ));
        }
        if vol.encryption {
            return Err(err(
                ErrorCode::ConfigUnsupported,
                "storage pool does not support encrypted volumes",
            ));
        }
        let path = dir::vol_path(&pool.def, &vol.name);
        if path.exists() {
            return Err(vol_exists(&vol.name));
        }
        let mut placeholder = vol.clone();
        placeholder.key = Some(path.to_string_lossy().into_owned());
        placeholder.path = placeholder.key.clone();
        pool.volumes.push(Volume {
            def: placeholder,
            in_use: 1,
            building: true,
        });
        pool.jobs += 1;
        let job = VolJob {
            storage: self.clone(),
            pool: pool.def.name.clone(),
            vols: vec![vol.name.clone()],
        };
        Ok((pool.def.clone(), path, job))
    }

    /// Ends a volume build: the new file is described, or the placeholder
    /// goes away.
    fn finish_build(&self, pool: &PoolDef, name: &str, path: &Path, ok: bool) -> Option<VolRef> {
        // The file is read before the lock is taken.
        let described = ok.then(|| probe::describe(name, path).ok()).flatten();
        let sizes = described.as_ref().and_then(|_| pool_sizes(pool).ok());
        let mut pools = self.lock();
        let p = pools.iter_mut().find(|p| p.def.name == pool.name)?;
        let i = p.volumes.iter().position(|v| v.def.name == name)?;
        let Some(def) = described else {
            p.volumes.remove(i);
            return None;
        };
        p.volumes[i].def = def;
        p.volumes[i].building = false;
        p.volumes.sort_by(|a, b| a.def.name.cmp(&b.def.name));
        if let Some((c, a, av)) = sizes {
            (p.def.capacity, p.def.allocation, p.def.available) = (c, a, av);
        }
        let v = p.vol(name)?;
        Some(p.vref(&v.def))
    }

    fn vol_def_for_create(xml: &str) -> Result<VolDef> {
        let vol = parse_volume(xml)?;
        check_creatable_format(&vol)?;
        if vol.backing.is_some() && vol.format != VolFormat::QCOW2 {
            return Err(err(
                ErrorCode::ConfigUnsupported,
                "backing storage not supported for raw volumes",
            ));
        }
        Ok(vol)
    }

    /// `virStorageVolCreateXML`.
    pub async fn storage_vol_create_xml(
        &self,
        p: &PoolRef,
        xml: &str,
        flags: u32,
    ) -> Result<VolRef> {
        use flags::vol_create::*;
        check_flags(flags, PREALLOC_METADATA | VALIDATE, "storageVolCreateXML")?;
        let vol = Self::vol_def_for_create(xml)?;
        let backing_capacity = match &vol.backing {
            Some(b) => {
                let meta = std::fs::metadata(&b.path).map_err(|e| {
                    dir::sys(format!("Cannot access backing file '{}'", b.path), &e)
                })?;
                Some(
                    probe::describe("", Path::new(&b.path))
                        .map(|d| d.capacity)
                        .unwrap_or(meta.len()),
                )
            }
            None => None,
        };
        let (pool_def, path, job) = self.reserve(p, &vol)?;
        let (pv, pp) = (vol.clone(), path.clone());
        let prealloc = flags & PREALLOC_METADATA != 0;
        let made = blocking(move || dir::create_volume(&pp, &pv, backing_capacity, prealloc)).await;
        let vref = self.finish_build(&pool_def, &vol.name, &path, made.is_ok());
        drop(job);
        made?;
        vref.ok_or_else(|| no_vol_name(&vol.name))
    }

    /// `virStorageVolCreateXMLFrom`: a new volume with `src`'s content.
    pub async fn storage_vol_create_xml_from(
        &self,
        p: &PoolRef,
        xml: &str,
        src: &VolRef,
        flags: u32,
    ) -> Result<VolRef> {
        use flags::vol_create::*;
        check_flags(
            flags,
            PREALLOC_METADATA | REFLINK | VALIDATE,
            "storageVolCreateXMLFrom",
        )?;
        let mut vol = parse_volume(xml)?;
        let src_def = self.with_vol(src, |pool, i| {
            let v = &mut pool.volumes[i];
            v.check_built()?;
            Ok(v.def.clone())
        })?;
        check_creatable_format(&vol)?;
        if src_def.format != VolFormat::RAW && src_def.format != VolFormat::QCOW2 {
            return Err(err(
                ErrorCode::OperationUnsupported,
                format!(
                    "copying volumes of format '{}' is not supported",
                    src_def.format.as_str()
                ),
            ));
        }
        vol.backing = None;
        let (pool_def, path, mut job) = self.reserve(p, &vol)?;
        // The source stays in use (no delete) while it is copied.
        self.with_vol(src, |pool, i| {
            pool.volumes[i].in_use += 1;
            Ok(())
        })?;
        if src.pool == pool_def.name {
            job.vols.push(src.name.clone());
        } else {
            self.with_vol(src, |pool, _| {
                pool.jobs += 1;
                Ok(())
            })?;
        }
        let src_job = (src.pool != pool_def.name).then(|| VolJob {
            storage: self.clone(),
            pool: src.pool.clone(),
            vols: vec![src.name.clone()],
        });
        let (sv, dv, dp) = (src_def.clone(), vol.clone(), path.clone());
        let made = blocking(move || dir::clone_volume(&sv, &dp, &dv)).await;
        let vref = self.finish_build(&pool_def, &vol.name, &path, made.is_ok());
        drop(job);
        drop(src_job);
        made?;
        vref.ok_or_else(|| no_vol_name(&vol.name))
    }

    /// `virStorageVolDelete`.
    pub async fn storage_vol_delete(&self, v: &VolRef, flags: u32) -> Result<()> {
        use flags::vol_delete::*;
        check_flags(flags, ZEROED | WITH_SNAPSHOTS, "storageVolDelete")?;
        let def = self.with_vol(v, |pool, i| {
            let vol = &pool.volumes[i];
            vol.check_built()?;
            if vol.in_use > 0 {
                return Err(err(
                    ErrorCode::OperationInvalid,
                    format!("volume '{}' is still in use.", vol.def.name),
                ));
            }
            // Gone from the pool at once, so a second delete finds nothing.
            Ok(pool.volumes.remove(i).def)
        })?;
        let d = def.clone();
        let removed = blocking(move || {
            if flags & ZEROED != 0 {
                dir::wipe_volume(&d)?;
            }
            dir::delete_volume(&d)
        })
        .await;
        if removed.is_err() {
            // Still there: put it back.
            let mut pools = self.lock();
            if let Some(p) = pools.iter_mut().find(|p| p.def.name == v.pool)
                && p.vol(&def.name).is_none()
                && Path::new(def.path.as_deref().unwrap_or_default()).exists()
            {
                p.volumes.push(Volume {
                    def,
                    in_use: 0,
                    building: false,
                });
                p.volumes.sort_by(|a, b| a.def.name.cmp(&b.def.name));
            }
        }
        removed
    }

    /// Marks a volume in use for a long operation.
    fn start_vol_job(&self, v: &VolRef) -> Result<(VolDef, PoolDef, VolJob)> {
        self.with_vol(v, |pool, i| {
            let vol = &mut pool.volumes[i];
            vol.check_built()?;
            vol.in_use += 1;
            let def = vol.def.clone();
            pool.jobs += 1;
            Ok((
                def,
                pool.def.clone(),
                VolJob {
                    storage: self.clone(),
                    pool: pool.def.name.clone(),
                    vols: vec![v.name.clone()],
                },
            ))
        })
    }

    /// Describes a volume again after its file changed.
    fn reprobe(&self, v: &VolRef) {
        let Some((pool_def, path)) = self.lock().iter().find(|p| p.def.name == v.pool).map(|p| {
            let path = p.vol(&v.name).and_then(|x| x.def.path.clone());
            (p.def.clone(), path)
        }) else {
            return;
        };
        // The file and the filesystem are read without the lock.
        let described = path.and_then(|path| probe::describe(&v.name, Path::new(&path)).ok());
        let sizes = pool_sizes(&pool_def).ok();
        let mut pools = self.lock();
        if let Some(p) = pools.iter_mut().find(|p| p.def.name == v.pool) {
            if let Some(d) = described
                && let Some(vol) = p.volumes.iter_mut().find(|x| x.def.name == v.name)
            {
                vol.def = d;
            }
            if let Some((c, a, av)) = sizes {
                (p.def.capacity, p.def.allocation, p.def.available) = (c, a, av);
            }
        }
    }

    /// `virStorageVolWipe` / `virStorageVolWipePattern`.
    pub async fn storage_vol_wipe_pattern(
        &self,
        v: &VolRef,
        algorithm: u32,
        flags: u32,
    ) -> Result<()> {
        check_flags(flags, 0, "storageVolWipePattern")?;
        if algorithm >= flags::WIPE_ALG_LAST {
            return Err(err(
                ErrorCode::InvalidArg,
                format!("wiping algorithm {algorithm} not supported"),
            ));
        }
        let (def, _, job) = self.start_vol_job(v)?;
        if algorithm != flags::WIPE_ALG_ZERO {
            return Err(err(
                ErrorCode::OperationUnsupported,
                format!("wiping algorithm {algorithm} is not supported: only zeroing is"),
            ));
        }
        let d = def.clone();
        let r = blocking(move || dir::wipe_volume(&d)).await;
        drop(job);
        self.reprobe(v);
        r
    }

    /// `virStorageVolGetInfo` / `virStorageVolGetInfoFlags`.
    pub fn storage_vol_get_info_flags(&self, v: &VolRef, flags: u32) -> Result<VolInfo> {
        check_flags(flags, flags::VOL_GET_PHYSICAL, "storageVolGetInfoFlags")?;
        self.reprobe(v);
        self.with_vol(v, |pool, i| {
            let d = &pool.volumes[i].def;
            Ok(VolInfo {
                vol_type: flags::vol_type_number(d.vol_type),
                capacity: d.capacity,
                allocation: if flags & flags::VOL_GET_PHYSICAL != 0 {
                    d.physical
                } else {
                    d.allocation
                },
            })
        })
    }

    /// `virStorageVolGetXMLDesc`.
    pub fn storage_vol_get_xml_desc(&self, v: &VolRef, flags: u32) -> Result<String> {
        check_flags(flags, 0, "storageVolGetXMLDesc")?;
        self.reprobe(v);
        self.with_vol(v, |pool, i| Ok(pool.volumes[i].def.to_xml()))
    }

    /// `virStorageVolGetPath`.
    pub fn storage_vol_get_path(&self, v: &VolRef) -> Result<String> {
        self.with_vol(v, |pool, i| {
            Ok(pool.volumes[i].def.path.clone().unwrap_or_default())
        })
    }

    /// `virStorageVolResize`.
    pub async fn storage_vol_resize(&self, v: &VolRef, capacity: u64, flags: u32) -> Result<()> {
        use flags::resize::*;
        check_flags(flags, ALLOCATE | DELTA | SHRINK, "storageVolResize")?;
        let (def, pool_def, job) = self.start_vol_job(v)?;
        let new = if flags & DELTA != 0 {
            if flags & SHRINK != 0 {
                def.capacity.checked_sub(capacity)
            } else {
                def.capacity.checked_add(capacity)
            }
            .ok_or_else(|| {
                err(
                    ErrorCode::InvalidArg,
                    "can't shrink capacity below existing allocation",
                )
            })?
        } else {
            capacity
        };
        if new < def.allocation {
            return Err(err(
                ErrorCode::InvalidArg,
                "can't shrink capacity below existing allocation",
            ));
        }
        if new < def.capacity && flags & SHRINK == 0 {
            return Err(err(
                ErrorCode::InvalidArg,
                "Can't shrink capacity below current capacity unless shrink flag explicitly specified",
            ));
        }
        if new < def.capacity && def.format == VolFormat::QCOW2 {
            return Err(err(
                ErrorCode::OperationUnsupported,
                "shrinking a qcow2 volume is not supported",
            ));
        }
        if flags & ALLOCATE != 0 && new > def.capacity {
            let avail = dir::available(&pool_def)?;
            if new - def.capacity > avail {
                return Err(err(
                    ErrorCode::InvalidArg,
                    "Not enough space left in storage pool",
                ));
            }
        }
        let d = def.clone();
        let r = blocking(move || dir::resize_volume(&d, new, flags & ALLOCATE != 0)).await;
        drop(job);
        self.reprobe(v);
        r
    }

    /// `virStorageVolDownload`: the file opened at `offset` for reading.
    pub fn storage_vol_download(
        &self,
        v: &VolRef,
        offset: u64,
        length: u64,
        flags: u32,
    ) -> Result<VolStream> {
        check_flags(flags, flags::VOL_SPARSE_STREAM, "storageVolDownload")?;
        let (def, _, job) = self.start_vol_job(v)?;
        let file = open_at(&def, offset, false)?;
        Ok(VolStream { file, length, job })
    }

    /// `virStorageVolUpload`: the file opened at `offset` for writing.
    pub fn storage_vol_upload(
        &self,
        v: &VolRef,
        offset: u64,
        length: u64,
        flags: u32,
    ) -> Result<VolStream> {
        check_flags(flags, flags::VOL_SPARSE_STREAM, "storageVolUpload")?;
        let (def, _, job) = self.start_vol_job(v)?;
        let file = open_at(&def, offset, true)?;
        Ok(VolStream { file, length, job })
    }

    /// Describes a volume again once an upload ended, with a refresh
    /// event as libvirt sends.
    pub fn storage_vol_upload_done(&self, v: &VolRef) {
        self.reprobe(v);
        if let Ok(p) = self.storage_pool_lookup_by_volume(v) {
            self.emit(p, PoolEventKind::Refresh);
        }
    }

    /// What a domain disk `<source pool= volume=>` uses: the volume's
    /// path, format and volume type.
    pub fn volume_source(
        &self,
        pool: &str,
        volume: &str,
    ) -> Result<(String, String, &'static str)> {
        let p = self.storage_pool_lookup_by_name(pool)?;
        let v = self.storage_vol_lookup_by_name(&p, volume)?;
        self.with_vol(&v, |pool, i| {
            let d = &pool.volumes[i].def;
            Ok((
                d.path.clone().unwrap_or_default(),
                d.format.as_str().to_string(),
                d.vol_type,
            ))
        })
    }
}

fn open_at(def: &VolDef, offset: u64, write: bool) -> Result<File> {
    use std::io::{Seek, SeekFrom};
    let path = def.path.clone().unwrap_or_default();
    let mut f = std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .open(&path)
        .map_err(|e| dir::sys(format!("Unable to open '{path}'"), &e))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| dir::sys(format!("Unable to seek {path} to {offset}"), &e))?;
    Ok(f)
}

fn no_pool_uuid(p: &PoolRef) -> Error {
    err(
        ErrorCode::NoStoragePool,
        format!(
            "no storage pool with matching uuid '{}' ({})",
            p.uuid, p.name
        ),
    )
}

/// Volumes are created as raw files or qcow2 images only.
fn check_creatable_format(vol: &VolDef) -> Result<()> {
    if vol.format != VolFormat::RAW && vol.format != VolFormat::QCOW2 {
        return Err(err(
            ErrorCode::OperationUnsupported,
            format!(
                "creating volumes of format '{}' is not supported",
                vol.format.as_str()
            ),
        ));
    }
    Ok(())
}

fn vol_exists(name: &str) -> Error {
    Error::with_message(
        ErrorCode::StorageVolExist,
        ErrorDomain::Storage,
        format!("storage volume '{name}' exists already"),
    )
}

fn no_pool_name(name: &str) -> Error {
    err(
        ErrorCode::NoStoragePool,
        format!("no storage pool with matching name '{name}'"),
    )
}

fn already_active(name: &str) -> Error {
    err(
        ErrorCode::OperationInvalid,
        format!("storage pool '{name}' is already active"),
    )
}

fn type_flag(t: PoolType) -> u32 {
    // The listing flags give the types in another order than the enum.
    let bit = match t {
        PoolType::Dir => 0,
        PoolType::Fs => 1,
        PoolType::Netfs => 2,
        PoolType::Logical => 3,
        PoolType::Disk => 4,
        PoolType::Iscsi => 5,
        PoolType::Scsi => 6,
        PoolType::Mpath => 7,
        PoolType::Rbd => 8,
        PoolType::Sheepdog => 9,
        PoolType::Gluster => 10,
        PoolType::Zfs => 11,
        PoolType::Vstorage => 12,
        PoolType::IscsiDirect => 13,
    };
    flags::list::TYPE_DIR << bit
}

fn pool_sizes(def: &PoolDef) -> Result<(u64, u64, u64)> {
    dir::fs_sizes(Path::new(&def.target_path))
}

fn apply_scan(pool: &mut Pool, scan: dir::Scan) {
    pool.def.target_perms = scan.perms;
    pool.def.capacity = scan.capacity;
    pool.def.allocation = scan.allocation;
    pool.def.available = scan.available;
    // Keep volumes being built (not on disk yet in full) as they are.
    let building: Vec<Volume> = pool
        .volumes
        .drain(..)
        .filter(|v| v.building || v.in_use > 0)
        .collect();
    let mut vols: Vec<Volume> = scan
        .volumes
        .into_iter()
        .filter(|d| !building.iter().any(|b| b.def.name == d.name))
        .map(|def| Volume {
            def,
            in_use: 0,
            building: false,
        })
        .collect();
    vols.extend(building);
    vols.sort_by(|a, b| a.def.name.cmp(&b.def.name));
    pool.volumes = vols;
}

/// Starts a pool on the host: build first if asked, then the refresh that
/// finds its volumes (a missing directory fails here, as with libvirt).
fn activate(pool: &mut Pool, create_flags: u32) -> Result<()> {
    use flags::create::*;
    if create_flags & (WITH_BUILD | WITH_BUILD_OVERWRITE | WITH_BUILD_NO_OVERWRITE) != 0 {
        dir::build(&pool.def)?;
        if pool.def.pool_type == PoolType::Fs
            && create_flags & (WITH_BUILD_OVERWRITE | WITH_BUILD_NO_OVERWRITE) != 0
        {
            fs::make_filesystem(&pool.def, create_flags & WITH_BUILD_OVERWRITE != 0)?;
        }
    }
    if pool.def.pool_type == PoolType::Fs {
        fs::mount(&pool.def)?;
    }
    let scan = match dir::scan(&pool.def) {
        Ok(s) => s,
        Err(e) => {
            if pool.def.pool_type == PoolType::Fs {
                let _ = fs::unmount(&pool.def);
            }
            return Err(e);
        }
    };
    apply_scan(pool, scan);
    pool.active = true;
    Ok(())
}
