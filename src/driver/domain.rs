//! One domain as the driver holds it: its definitions, state and, while
//! it runs, the VMM that runs it.
//!
//! Two locks: `data`, a short lock over the fields (never held across an
//! await), and `job`, held for the whole of a state-changing operation
//! (start, stop, ...) so that those run one at a time per domain, as
//! libvirt's domain job does. Readers take only `data`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::Domain;

use super::hostnet::Taps;
use super::runtime::HostResources;
use super::state::DomainState;
use super::vmm::Vmm;

/// How long an operation waits for another one on the same domain.
const JOB_WAIT: Duration = Duration::from_secs(30);

/// A running instance.
pub struct Live {
    pub id: i32,
    /// The live definition (with id and device aliases).
    pub def: Domain,
    pub vmm: Arc<Vmm>,
    /// Identifies this VMM process among the domain's successive ones.
    pub generation: u64,
    /// The next VMM exit is a reset asked for by the host: start again.
    pub restart_requested: bool,
    /// A power-button press was sent by the host.
    pub shutdown_requested: bool,
    /// Disks, taps and vsock CID, as the status file records them.
    pub host: HostResources,
    /// The driver's fds on the taps (none after a daemon restart).
    pub taps: Taps,
    /// The serial port's pty master, which the driver keeps so that the
    /// terminal (and a console on it) outlives the VMMs of a reset; none
    /// after a daemon restart.
    pub serial_pty: Option<std::os::fd::OwnedFd>,
    /// The guest's cgroup, when the host has controllers.
    pub cgroup: Option<super::cgroup::GuestCgroup>,
    /// The VNC server's listening sockets, which the VMMs of the guest's
    /// reboots inherit in turn (none after a daemon restart until the
    /// next reboot binds them again).
    pub vnc: Option<super::graphics::VncSockets>,
}

/// Fields guarded by the short lock.
pub struct DomainData {
    pub name: String,
    /// The persistent definition; `None` for a transient domain.
    pub persistent: Option<Domain>,
    pub live: Option<Live>,
    pub autostart: bool,
    pub state: DomainState,
    pub reason: i32,
    /// Set once the domain left the registry; later calls see "not found".
    pub removed: bool,
    /// A transient domain's definition while its start runs (`create`, a
    /// restore), before it has a live one: it is listed and looked up
    /// meanwhile, as libvirt's is.
    pub starting: Option<Domain>,
}

impl DomainData {
    /// A transient domain not started yet (`virDomainCreateXML`, a
    /// restore of a domain nobody defined).
    pub fn transient(def: &Domain) -> DomainData {
        DomainData {
            name: def.name.clone(),
            starting: Some(def.clone()),
            persistent: None,
            live: None,
            autostart: false,
            state: DomainState::Shutoff,
            reason: super::state::shutoff::UNKNOWN,
            removed: false,
        }
    }

    pub fn is_active(&self) -> bool {
        self.live.is_some()
    }

    /// The definition that describes the domain now: live if running.
    pub fn current_def(&self) -> Option<&Domain> {
        self.live
            .as_ref()
            .map(|l| &l.def)
            .or(self.persistent.as_ref())
            .or(self.starting.as_ref())
    }
}

/// A registry entry.
pub struct DomainObj {
    pub uuid: Uuid,
    data: Mutex<DomainData>,
    job: tokio::sync::Mutex<()>,
    /// The save running under the job lock, for `virDomainGetJobInfo`.
    progress: Mutex<Option<super::save::JobProgress>>,
}

impl DomainObj {
    pub fn new(uuid: Uuid, data: DomainData) -> Arc<Self> {
        Arc::new(DomainObj {
            uuid,
            data: Mutex::new(data),
            job: tokio::sync::Mutex::new(()),
            progress: Mutex::new(None),
        })
    }

    /// The progress of the running save, if one runs.
    pub fn progress(&self) -> MutexGuard<'_, Option<super::save::JobProgress>> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The short lock; a poisoned lock still yields its data.
    pub fn data(&self) -> MutexGuard<'_, DomainData> {
        match self.data.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The job lock, waited for at most [`JOB_WAIT`].
    pub async fn begin_job(&self) -> Result<tokio::sync::MutexGuard<'_, ()>> {
        match tokio::time::timeout(JOB_WAIT, self.job.lock()).await {
            Ok(g) => Ok(g),
            Err(_) => Err(Error::new(
                ErrorCode::OperationTimeout,
                ErrorDomain::Qemu,
                "cannot acquire state change lock",
            )),
        }
    }

    /// The job lock without a time limit (used by the VMM monitor, which
    /// must eventually handle the exit it saw).
    pub async fn begin_job_unbounded(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.job.lock().await
    }

    pub fn name(&self) -> String {
        self.data().name.clone()
    }
}

/// A snapshot of what front ends show about a domain.
#[derive(Clone, Debug)]
pub struct DomainInfo {
    pub uuid: Uuid,
    pub name: String,
    pub id: Option<i32>,
    pub state: DomainState,
    pub reason: i32,
    pub persistent: bool,
    pub autostart: bool,
    pub os_type: String,
    pub max_memory_kib: u64,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub max_vcpus: u32,
}

impl DomainObj {
    /// Runs `f` on the running domain's state under the short lock;
    /// libvirt's errors for a removed or inactive domain.
    pub fn with_live<T>(&self, f: impl FnOnce(&Live) -> T) -> Result<T> {
        let d = self.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&self.uuid.to_string()));
        }
        let live = d
            .live
            .as_ref()
            .ok_or_else(|| Error::operation_invalid("domain is not running"))?;
        Ok(f(live))
    }

    /// Everything [`DomainInfo`] holds, read under the short lock.
    pub fn info(&self) -> Result<DomainInfo> {
        let d = self.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&self.uuid.to_string()));
        }
        let def = d
            .current_def()
            .ok_or_else(|| Error::internal("domain without a definition"))?;
        Ok(DomainInfo {
            uuid: self.uuid,
            name: d.name.clone(),
            id: d.live.as_ref().map(|l| l.id),
            state: d.state,
            reason: d.reason,
            persistent: d.persistent.is_some(),
            autostart: d.autostart,
            os_type: def.os.os_type.to_string(),
            max_memory_kib: def.memory_kib,
            memory_kib: if def.current_memory_kib > 0 {
                def.current_memory_kib
            } else {
                def.memory_kib
            },
            vcpus: def.vcpu.online(),
            max_vcpus: def.vcpu.max,
        })
    }
}
