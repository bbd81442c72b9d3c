//! The libvirt operations that change a domain's state: start, shutdown,
//! destroy, reset, pause and resume, autostart. Every function here runs
//! with the domain's job lock held by its caller. The VMM processes
//! themselves (spawn, monitor, exit handling and `on_*` actions, restart
//! after a reset, re-attach) are supervised by `supervise.rs`.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::vmm::protocol::Command;
use crate::xml::{Domain, check_supported};

use super::Inner;
use super::domain::DomainObj;
use super::resolve::{Context, resolve};
use super::state::{DomainState, EventType, detail, paused, running};
use super::supervise;
use super::vmm::Vmm;

pub(super) fn not_running() -> Error {
    Error::operation_invalid("domain is not running")
}

/// vsock CIDs of the running guests other than `except`.
fn cids_in_use(inner: &Inner, except: &uuid::Uuid) -> Vec<u32> {
    inner
        .registry
        .all()
        .iter()
        .filter(|o| o.uuid != *except)
        .filter_map(|o| o.data().live.as_ref().and_then(|l| l.host.vsock_cid))
        .collect()
}

/// Starts the domain: `transient_def` for a new transient domain, else
/// its persistent definition.
pub(super) async fn start_locked(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    transient_def: Option<Domain>,
    start: supervise::Launch,
) -> Result<()> {
    let (name, def) = {
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        if d.is_active() {
            return Err(Error::operation_invalid("domain is already running"));
        }
        let def = match transient_def {
            Some(def) => def,
            None => d
                .persistent
                .clone()
                .ok_or_else(|| Error::internal("domain without a definition"))?,
        };
        (d.name.clone(), def)
    };
    check_supported(&def)?;
    if let Some(e) = def
        .devices
        .emulator
        .as_deref()
        .filter(|e| !e.ends_with("oxvirt-vmm"))
    {
        tracing::warn!(
            domain = name,
            emulator = e,
            "<emulator> names another program; the guest runs in oxvirt-vmm"
        );
    }
    let cids = cids_in_use(inner, &obj.uuid);
    let plan = resolve(
        &def,
        &Context {
            run_dir: &inner.cfg.run_dir,
            cids_in_use: &cids,
            storage: &inner.storage,
            networks: &inner.networks,
            firmware: &inner.cfg.firmware,
            graphics: &inner.cfg.graphics,
        },
    )?;
    let restored = start.from.restore_fd.is_some();
    let paused_start = start.from.paused;
    supervise::launch(inner, obj, def, plan, start).await?;
    if restored {
        inner.emit(
            obj.uuid,
            &name,
            EventType::Started,
            detail::STARTED_RESTORED,
        );
        // As libvirt, whose restored guest starts paused and then runs.
        let (event, why) = if paused_start {
            (EventType::Suspended, detail::SUSPENDED_RESTORED)
        } else {
            (EventType::Resumed, detail::RESUMED_FROM_SNAPSHOT)
        };
        inner.emit(obj.uuid, &name, event, why);
    } else {
        inner.emit(obj.uuid, &name, EventType::Started, detail::STARTED_BOOTED);
        if paused_start {
            inner.emit(
                obj.uuid,
                &name,
                EventType::Suspended,
                detail::SUSPENDED_PAUSED,
            );
        }
    }
    Ok(())
}

fn live_vmm(obj: &DomainObj) -> Result<Arc<Vmm>> {
    let d = obj.data();
    if d.removed {
        return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
    }
    d.live
        .as_ref()
        .map(|l| l.vmm.clone())
        .ok_or_else(not_running)
}

pub(super) async fn shutdown_locked(obj: &Arc<DomainObj>) -> Result<()> {
    let vmm = live_vmm(obj)?;
    if obj.data().state != DomainState::Running {
        return Err(Error::operation_invalid("domain is not running"));
    }
    vmm.control.run(&Command::Powerdown).await?;
    if let Some(l) = obj.data().live.as_mut() {
        l.shutdown_requested = true;
    }
    Ok(())
}

pub(super) async fn destroy_locked(inner: &Arc<Inner>, obj: &Arc<DomainObj>) -> Result<()> {
    let vmm = live_vmm(obj)?;
    let name = obj.name();
    supervise::terminate(inner, obj, &vmm).await?;
    inner.emit(
        obj.uuid,
        &name,
        EventType::Stopped,
        detail::STOPPED_DESTROYED,
    );
    Ok(())
}

/// Asks the VMM to reset the guest: it exits and the supervisor boots the
/// guest again in a fresh VMM once it holds the job lock. Returns the
/// generation of the VMM that is going away, for [`wait_replaced`].
pub(super) async fn reset_locked(obj: &Arc<DomainObj>) -> Result<u64> {
    let vmm = live_vmm(obj)?;
    let before = {
        let mut d = obj.data();
        let Some(l) = d.live.as_mut() else {
            return Err(Error::operation_invalid("domain is not running"));
        };
        l.restart_requested = true;
        l.generation
    };
    vmm.control.run(&Command::Reset).await?;
    Ok(before)
}

/// Waits, without the job lock (the supervisor needs it to restart the
/// guest), until the VMM of generation `before` was replaced or the
/// domain stopped, so that the next call reaches the new VMM and never
/// the control connection of the one that went away.
pub(super) async fn wait_replaced(obj: &Arc<DomainObj>, before: u64) {
    let deadline = tokio::time::Instant::now() + RESET_WAIT;
    loop {
        let replaced = obj
            .data()
            .live
            .as_ref()
            .is_none_or(|l| l.generation != before);
        if replaced {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(domain = obj.name(), "the reset guest has not come back yet");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// How long a reset waits for the new VMM.
const RESET_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

pub(super) async fn pause_locked(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    pause: bool,
) -> Result<()> {
    let vmm = live_vmm(obj)?;
    let state = obj.data().state;
    if pause {
        if state == DomainState::Paused {
            return Ok(());
        }
        vmm.control.run(&Command::Pause).await?;
    } else {
        if state != DomainState::Paused {
            return Err(Error::operation_invalid("domain is not paused"));
        }
        vmm.control.run(&Command::Resume).await?;
    }
    record_run_state(inner, obj, pause, paused::USER);
    Ok(())
}

/// Records the guest paused (with `paused_reason`) or running again, and
/// announces it.
pub(super) fn record_run_state(inner: &Inner, obj: &DomainObj, pause: bool, paused_reason: i32) {
    let name = {
        let mut d = obj.data();
        if pause {
            d.state = DomainState::Paused;
            d.reason = paused_reason;
        } else {
            d.state = DomainState::Running;
            d.reason = running::UNPAUSED;
        }
        d.name.clone()
    };
    let (event, why) = if pause {
        (EventType::Suspended, detail::SUSPENDED_PAUSED)
    } else {
        (EventType::Resumed, detail::RESUMED_UNPAUSED)
    };
    inner.emit(obj.uuid, &name, event, why);
}

/// Starts every inactive persistent domain marked autostart.
pub(super) fn autostart_all(inner: &Arc<Inner>) {
    // Networks first: autostart guests may be on them.
    let inner = inner.clone();
    tokio::spawn(async move {
        inner.networks.autostart().await;
        autostart_domains(&inner);
    });
}

fn autostart_domains(inner: &Arc<Inner>) {
    for obj in inner.registry.all() {
        let want = {
            let d = obj.data();
            d.autostart && d.persistent.is_some() && !d.is_active()
        };
        if !want {
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let Ok(_job) = obj.begin_job().await else {
                return;
            };
            if let Err(e) = start_locked(&inner, &obj, None, supervise::Launch::boot(false)).await {
                tracing::error!(domain = obj.name(), "autostart failed: {e}");
            }
        });
    }
}
