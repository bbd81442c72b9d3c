//! libvirt's domain states, their reasons, and lifecycle event numbers
//! (`virDomainState`, `virDomain*Reason`, `virDomainEventType` and its
//! details). The numbers are libvirt's ABI and travel unchanged to clients.

/// `virDomainState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum DomainState {
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    Shutdown = 4,
    Shutoff = 5,
    Crashed = 6,
    PmSuspended = 7,
}

/// `virDomainRunningReason` values used here.
pub mod running {
    pub const BOOTED: i32 = 1;
    pub const RESTORED: i32 = 3;
    pub const FROM_SNAPSHOT: i32 = 4;
    pub const UNPAUSED: i32 = 5;
}

/// `virDomainPausedReason` values used here.
pub mod paused {
    pub const UNKNOWN: i32 = 0;
    pub const USER: i32 = 1;
    /// Started from a saved state and not resumed.
    pub const MIGRATION: i32 = 2;
    /// Paused while its state is written (`virsh save`).
    pub const SAVE: i32 = 3;
    pub const FROM_SNAPSHOT: i32 = 7;
    /// Paused while a snapshot is taken.
    pub const SNAPSHOT: i32 = 9;
}

/// `virDomainShutoffReason` values used here.
pub mod shutoff {
    pub const UNKNOWN: i32 = 0;
    pub const SHUTDOWN: i32 = 1;
    pub const DESTROYED: i32 = 2;
    pub const CRASHED: i32 = 3;
    pub const SAVED: i32 = 5;
    pub const FAILED: i32 = 6;
    pub const FROM_SNAPSHOT: i32 = 7;
}

/// `virDomainEventType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum EventType {
    Defined = 0,
    Undefined = 1,
    Started = 2,
    Suspended = 3,
    Resumed = 4,
    Stopped = 5,
    Shutdown = 6,
    PmSuspended = 7,
    Crashed = 8,
}

/// Detail numbers of each event type (`virDomainEvent*DetailType`).
pub mod detail {
    pub const DEFINED_ADDED: i32 = 0;
    pub const DEFINED_UPDATED: i32 = 1;
    pub const DEFINED_RENAMED: i32 = 2;
    pub const UNDEFINED_REMOVED: i32 = 0;
    pub const UNDEFINED_RENAMED: i32 = 1;
    pub const STARTED_BOOTED: i32 = 0;
    pub const STARTED_RESTORED: i32 = 2;
    pub const SUSPENDED_RESTORED: i32 = 4;
    pub const RESUMED_FROM_SNAPSHOT: i32 = 2;
    pub const DEFINED_FROM_SNAPSHOT: i32 = 3;
    pub const STARTED_FROM_SNAPSHOT: i32 = 3;
    pub const SUSPENDED_FROM_SNAPSHOT: i32 = 5;
    pub const STOPPED_FROM_SNAPSHOT: i32 = 6;
    pub const STOPPED_SAVED: i32 = 4;
    pub const SUSPENDED_PAUSED: i32 = 0;
    pub const RESUMED_UNPAUSED: i32 = 0;
    pub const STOPPED_SHUTDOWN: i32 = 0;
    pub const STOPPED_DESTROYED: i32 = 1;
    pub const STOPPED_CRASHED: i32 = 2;
    pub const STOPPED_FAILED: i32 = 5;
    pub const SHUTDOWN_FINISHED: i32 = 0;
    pub const SHUTDOWN_GUEST: i32 = 1;
    pub const SHUTDOWN_HOST: i32 = 2;
}

/// What happened, by libvirt's event ids (`virDomainEventID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`: an event type and its detail.
    Lifecycle { event: EventType, detail: i32 },
    /// `VIR_DOMAIN_EVENT_ID_REBOOT`: the guest was reset and boots again.
    Reboot,
    /// `VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE`: the memory the guest now
    /// has, in KiB.
    BalloonChange { actual_kib: u64 },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_ADDED`: a device plugged into the
    /// running guest, by its alias.
    DeviceAdded { alias: String },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED`: the guest released a device
    /// and it is gone from the live definition.
    DeviceRemoved { alias: String },
    /// `VIR_DOMAIN_EVENT_ID_DEVICE_REMOVAL_FAILED`: the guest refused to
    /// release a device, which stays.
    DeviceRemovalFailed { alias: String },
}

/// One domain event, as every front end relays it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainEvent {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub kind: EventKind,
}

/// `virConnectListAllDomains` filter flags.
pub mod list_flags {
    pub const ACTIVE: u32 = 1;
    pub const INACTIVE: u32 = 2;
    pub const PERSISTENT: u32 = 4;
    pub const TRANSIENT: u32 = 8;
    pub const RUNNING: u32 = 16;
    pub const PAUSED: u32 = 32;
    pub const SHUTOFF: u32 = 64;
    pub const OTHER: u32 = 128;
    pub const MANAGEDSAVE: u32 = 256;
    pub const NO_MANAGEDSAVE: u32 = 512;
    pub const AUTOSTART: u32 = 1024;
    pub const NO_AUTOSTART: u32 = 2048;
    pub const HAS_SNAPSHOT: u32 = 4096;
    pub const NO_SNAPSHOT: u32 = 8192;
    pub const HAS_CHECKPOINT: u32 = 16384;
    pub const NO_CHECKPOINT: u32 = 32768;
    /// Every flag libvirt knows.
    pub const ALL: u32 = 65535;
}
