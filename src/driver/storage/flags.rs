//! Flag and enum numbers of libvirt's storage API (its ABI).

/// `virConnectListAllStoragePoolsFlags`.
pub mod list {
    pub const INACTIVE: u32 = 1 << 0;
    pub const ACTIVE: u32 = 1 << 1;
    pub const PERSISTENT: u32 = 1 << 2;
    pub const TRANSIENT: u32 = 1 << 3;
    pub const AUTOSTART: u32 = 1 << 4;
    pub const NO_AUTOSTART: u32 = 1 << 5;
    /// The first pool-type bit (`VIR_CONNECT_LIST_STORAGE_POOLS_DIR`).
    pub const TYPE_DIR: u32 = 1 << 6;
    /// Every flag libvirt 9.0 knows: the six above and fourteen type bits.
    pub const ALL: u32 = (1 << 20) - 1;
}

/// `virStoragePoolBuildFlags`.
pub mod build {
    pub const NO_OVERWRITE: u32 = 1 << 2;
    pub const OVERWRITE: u32 = 1 << 3;
}

/// `virStoragePoolCreateFlags`.
pub mod create {
    pub const WITH_BUILD: u32 = 1 << 0;
    pub const WITH_BUILD_OVERWRITE: u32 = 1 << 1;
    pub const WITH_BUILD_NO_OVERWRITE: u32 = 1 << 2;
}

/// `virStoragePoolDefineFlags`: validate against the schema.
pub const DEFINE_VALIDATE: u32 = 1;
/// `virStorageXMLFlags`: the persistent definition.
pub const XML_INACTIVE: u32 = 1;
/// `virStoragePoolDeleteFlags`: zero the data first.
pub const DELETE_ZEROED: u32 = 1;

/// `virStorageVolCreateFlags`.
pub mod vol_create {
    pub const PREALLOC_METADATA: u32 = 1 << 0;
    pub const REFLINK: u32 = 1 << 1;
    pub const VALIDATE: u32 = 1 << 2;
}

/// `virStorageVolDeleteFlags`.
pub mod vol_delete {
    pub const ZEROED: u32 = 1 << 0;
    pub const WITH_SNAPSHOTS: u32 = 1 << 1;
}

/// `virStorageVolResizeFlags`.
pub mod resize {
    pub const ALLOCATE: u32 = 1 << 0;
    pub const DELTA: u32 = 1 << 1;
    pub const SHRINK: u32 = 1 << 2;
}

/// `virStorageVolInfoFlags`: report the physical size as allocation.
pub const VOL_GET_PHYSICAL: u32 = 1;
/// `virStorageVolDownloadFlags` / `UploadFlags`: sparse streams.
pub const VOL_SPARSE_STREAM: u32 = 1;

/// `virStoragePoolState`.
pub mod pool_state {
    pub const INACTIVE: i32 = 0;
    pub const RUNNING: i32 = 2;
}

/// `virStorageVolType`, by name.
pub fn vol_type_number(name: &str) -> i32 {
    crate::xml::storage::volume::VOL_TYPES
        .iter()
        .position(|t| *t == name)
        .map_or(0, |i| i as i32)
}

/// `virStorageVolWipeAlgorithm`: only zeroing is served.
pub const WIPE_ALG_ZERO: u32 = 0;
/// The number of wiping algorithms libvirt 9.0 names.
pub const WIPE_ALG_LAST: u32 = 10;

/// `virStoragePoolEventLifecycleType`.
pub mod event {
    pub const DEFINED: i32 = 0;
    pub const UNDEFINED: i32 = 1;
    pub const STARTED: i32 = 2;
    pub const STOPPED: i32 = 3;
    pub const CREATED: i32 = 4;
    pub const DELETED: i32 = 5;
}
