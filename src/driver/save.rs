//! A running domain's state in a file and back: `virDomainSave*`,
//! `virDomainRestore*`, `virDomainManagedSave*` (and the restore a `start`
//! does from it), the save image XML calls, and the job a save is
//! (`virDomainGetJobInfo`, `virDomainGetJobStats`). The file format is
//! `save_image.rs`; the VMM writes and reads the guest's state itself.

use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::vmm::protocol::{Command, Save};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::{Domain, FormatFlags, check_supported, parse_domain};

use super::domain::{DomainData, DomainObj};
use super::lifecycle;
use super::save_image::{self, failed};
use super::state::{DomainState, EventType, detail, paused, running};
use super::supervise::{self, Launch};
use super::vmm::{StartFrom, Vmm};
use super::{Driver, Inner, check_flags};

/// `virDomainSaveRestoreFlags`.
pub const SAVE_BYPASS_CACHE: u32 = 1;
pub const SAVE_RUNNING: u32 = 2;
pub const SAVE_PAUSED: u32 = 4;
pub const SAVE_RESET_NVRAM: u32 = 8;
/// `virDomainCreateFlags`: boot, discarding a managed save image.
pub const START_FORCE_BOOT: u32 = 8;
/// `virDomainJobType`.
const JOB_NONE: i32 = 0;
const JOB_UNBOUNDED: i32 = 2;
/// `virDomainJobOperation`.
const JOB_OPERATION_START: i32 = 1;
const JOB_OPERATION_SAVE: i32 = 2;
const JOB_OPERATION_RESTORE: i32 = 3;
/// How long the VMM may take to write a guest's state.
const SAVE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A save or restore in progress, as `virDomainGetJobInfo` reports it.
pub struct JobProgress {
    started: Instant,
    job: Job,
}

enum Job {
    Save {
        /// Guest RAM: what the image holds at most.
        total: u64,
        /// The image, whose growing size is the data processed.
        file: std::fs::File,
        start_len: u64,
        /// The VMM stops the save once this pipe has something to read.
        abort: std::io::PipeWriter,
        aborted: bool,
    },
    Restore {
        /// `virsh restore`'s, or `start`'s from a managed save image.
        operation: i32,
        /// The image as the VMM reads it: the same open file, so its
        /// offset is how far the VMM got.
        file: std::fs::File,
        start: u64,
        total: u64,
    },
}

/// `virDomainGetJobInfo`'s answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobInfo {
    pub job_type: i32,
    pub operation: i32,
    pub elapsed_ms: u64,
    pub data_total: u64,
    pub data_processed: u64,
    pub data_remaining: u64,
}

impl JobProgress {
    /// The restore of the image `file` reads from its current offset on.
    fn restore(file: &std::fs::File, operation: i32) -> Option<Self> {
        use std::io::Seek;
        let mut file = file.try_clone().ok()?;
        let start = file.stream_position().ok()?;
        let total = file.metadata().ok()?.len().saturating_sub(start);
        Some(JobProgress {
            started: Instant::now(),
            job: Job::Restore {
                operation,
                file,
                start,
                total,
            },
        })
    }

    fn info(&self) -> JobInfo {
        let (operation, total, done) = match &self.job {
            Job::Save {
                total,
                file,
                start_len,
                ..
            } => {
                let written = file
                    .metadata()
                    .map(|m| m.len().saturating_sub(*start_len))
                    .unwrap_or(0);
                (JOB_OPERATION_SAVE, *total, written)
            }
            Job::Restore {
                operation,
                file,
                start,
                total,
            } => {
                use std::io::Seek;
                let read = (&*file)
                    .stream_position()
                    .map(|p| p.saturating_sub(*start))
                    .unwrap_or(0);
                (*operation, *total, read)
            }
        };
        // Zero pages are not written: a save can finish short of RAM.
        let processed = done.min(total);
        JobInfo {
            job_type: JOB_UNBOUNDED,
            operation,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            data_total: total,
            data_processed: processed,
            data_remaining: total - processed,
        }
    }
}

/// Where a domain's managed save image lives (libvirt's
/// `/var/lib/libvirt/qemu/save/NAME.save`).
pub(super) fn managed_path(inner: &Inner, name: &str) -> PathBuf {
    inner
        .cfg
        .state_dir
        .join("save")
        .join(format!("{name}.save"))
}

pub(crate) fn has_managed_image(inner: &Inner, name: &str) -> bool {
    managed_path(inner, name).exists()
}

/// libvirt's ABI stability check, for what a save image's XML may change:
/// the machine must stay the same.
fn check_same_machine(src: &Domain, dst: &Domain) -> Result<()> {
    let differs = |what: &str, d: String, s: String| {
        Err(Error::unsupported(format!(
            "Target domain {what} {d} does not match source {s}"
        )))
    };
    if src.name != dst.name {
        return differs("name", format!("'{}'", dst.name), format!("'{}'", src.name));
    }
    if src.uuid != dst.uuid {
        return differs("uuid", dst.uuid.to_string(), src.uuid.to_string());
    }
    if src.memory_kib != dst.memory_kib {
        return differs(
            "max memory",
            dst.memory_kib.to_string(),
            src.memory_kib.to_string(),
        );
    }
    if src.vcpu.max != dst.vcpu.max {
        return differs(
            "vCPU max",
            dst.vcpu.max.to_string(),
            src.vcpu.max.to_string(),
        );
    }
    let (sd, dd) = (src.devices.disks.len(), dst.devices.disks.len());
    if sd != dd {
        return differs("disk count", dd.to_string(), sd.to_string());
    }
    let (si, di) = (src.devices.interfaces.len(), dst.devices.interfaces.len());
    if si != di {
        return differs("net card count", di.to_string(), si.to_string());
    }
    Ok(())
}

/// The XML a save image keeps: the definition the guest runs with, as a
/// definition (no id, no live state), secrets included.
fn image_xml(def: &Domain) -> String {
    def.to_xml(FormatFlags {
        secure: true,
        inactive: true,
        migratable: true,
        update_cpu: false,
    })
}

/// The client library's check, repeated for callers that skip it.
fn check_running_paused(flags: u32) -> Result<()> {
    super::exclusive_flags(
        flags,
        (SAVE_RUNNING, "VIR_DOMAIN_SAVE_RUNNING"),
        (SAVE_PAUSED, "VIR_DOMAIN_SAVE_PAUSED"),
    )
}

/// Has the VMM write the guest's state into a new save image at `path`
/// holding `def`; the guest is left paused. With `job`, the save is that
/// domain's job: `virDomainGetJobInfo` follows it and `virDomainAbortJob`
/// stops it. The image is complete afterwards, or removed.
pub(super) async fn write_image(
    vmm: &Vmm,
    path: &Path,
    def: &Domain,
    was_running: bool,
    bypass: bool,
    job: Option<&DomainObj>,
) -> Result<()> {
    let file = save_image::create(path, &image_xml(def), was_running, bypass)?;
    let start_len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (abort_read, abort) =
        std::io::pipe().map_err(|e| super::fsutil::system_error("cannot make a pipe", &e))?;
    if let Some(obj) = job {
        *obj.progress() = file.try_clone().ok().map(|f| JobProgress {
            started: Instant::now(),
            job: Job::Save {
                total: vmm.config().memory_mib << 20,
                file: f,
                start_len,
                abort,
                aborted: false,
            },
        });
    }
    let save = Command::Save(Save {
        resume: false,
        cancel: true,
    });
    let written = vmm
        .control
        .run_with_fds(
            &save,
            &[file.as_fd(), abort_read.as_fd()],
            Some(SAVE_TIMEOUT),
        )
        .await;
    let aborted = job.is_some_and(|obj| {
        obj.progress()
            .take()
            .is_some_and(|p| matches!(p.job, Job::Save { aborted: true, .. }))
    });
    let written = match written {
        Err(_) if aborted => Err(Error::new(
            ErrorCode::OperationAborted,
            ErrorDomain::Qemu,
            "job 'domain save' canceled by client",
        )),
        other => other,
    };
    let finished = written.and_then(|_| save_image::complete(&file, path, bypass));
    if finished.is_err() {
        let _ = std::fs::remove_file(path);
    }
    finished
}

/// Writes the running domain to `path` and stops it (shut off, saved).
/// On failure the image is removed and the guest runs on as it was.
async fn save_locked(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    path: &Path,
    dxml: Option<&str>,
    flags: u32,
) -> Result<()> {
    let (vmm, state, live_def, name) = {
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        let live = d
            .live
            .as_ref()
            .ok_or_else(|| Error::operation_invalid("domain is not running"))?;
        (live.vmm.clone(), d.state, live.def.clone(), d.name.clone())
    };
    let mut def = live_def;
    if let Some(x) = dxml {
        let new = parse_domain(x)?;
        check_same_machine(&def, &new)?;
        def = new;
    }
    let was_running = runs_after(flags, state == DomainState::Running);
    let bypass = flags & SAVE_BYPASS_CACHE != 0;
    let finished = write_image(&vmm, path, &def, was_running, bypass, Some(obj)).await;
    if let Err(e) = finished {
        // The VMM resumes a guest it paused when its own part fails; when
        // the daemon's part failed, the guest is paused there still.
        if state == DomainState::Running {
            let _ = vmm.control.run(&Command::Resume).await;
        }
        return Err(e);
    }
    supervise::stop_saved(inner, obj, &vmm).await?;
    inner.emit(obj.uuid, &name, EventType::Stopped, detail::STOPPED_SAVED);
    Ok(())
}

/// What restoring an image makes of the domain it names: the defined
/// domain of that name and UUID, or a new transient one; libvirt's errors
/// for a clash.
fn restore_target(inner: &Inner, def: &Domain) -> Result<(Arc<DomainObj>, bool)> {
    if let Some(obj) = inner.registry.by_uuid(&def.uuid) {
        let d = obj.data();
        if d.name != def.name {
            return Err(failed(format!(
                "domain '{}' is already defined with uuid {}",
                d.name, obj.uuid
            )));
        }
        if d.is_active() {
            return Err(Error::operation_invalid(format!(
                "domain '{}' is already active",
                d.name
            )));
        }
        drop(d);
        return Ok((obj, false));
    }
    if let Some(obj) = inner.registry.by_name(&def.name) {
        return Err(failed(format!(
            "domain '{}' already exists with uuid {}",
            def.name, obj.uuid
        )));
    }
    let obj = DomainObj::new(def.uuid, DomainData::transient(def));
    inner.registry.insert(obj.clone())?;
    Ok((obj, true))
}

/// Starts `obj` from the image at `path` (its head already read), as
/// the job `operation` (`virDomainJobOperation`).
async fn restore_locked(
    inner: &Arc<Inner>,
    obj: &Arc<DomainObj>,
    file: std::fs::File,
    def: Domain,
    paused_start: bool,
    operation: i32,
) -> Result<()> {
    check_supported(&def)?;
    // The restore is the domain's job while the VMM reads the image.
    *obj.progress() = JobProgress::restore(&file, operation);
    let start = Launch {
        from: StartFrom {
            restore_fd: Some(file.as_raw_fd()),
            paused: paused_start,
        },
        running_reason: running::RESTORED,
        // What libvirt's restored-but-not-resumed guest reports.
        paused_reason: paused::MIGRATION,
    };
    let r = Box::pin(lifecycle::start_locked(inner, obj, Some(def), start)).await;
    obj.progress().take();
    drop(file);
    r
}

/// Whether the guest runs after a restore: as `VIR_DOMAIN_SAVE_RUNNING`
/// or `_PAUSED` say, else as `otherwise` (how it was, or how the image
/// says it was).
fn runs_after(flags: u32, otherwise: bool) -> bool {
    if flags & SAVE_RUNNING != 0 {
        true
    } else if flags & SAVE_PAUSED != 0 {
        false
    } else {
        otherwise
    }
}

impl Driver {
    /// `virDomainSaveFlags` (and `virDomainSave`, flags 0).
    pub async fn save(
        &self,
        obj: &Arc<DomainObj>,
        to: &str,
        dxml: Option<&str>,
        flags: u32,
    ) -> Result<()> {
        check_flags(
            flags,
            SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED,
            "qemuDomainSaveFlags",
        )?;
        check_running_paused(flags)?;
        let _job = obj.begin_job().await?;
        save_locked(&self.inner, obj, Path::new(to), dxml, flags).await
    }

    /// `virDomainManagedSave`: saved where `start` finds it again.
    pub async fn managed_save(&self, obj: &Arc<DomainObj>, flags: u32) -> Result<()> {
        check_flags(
            flags,
            SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED,
            "qemuDomainManagedSave",
        )?;
        check_running_paused(flags)?;
        let _job = obj.begin_job().await?;
        let name = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            if !d.is_active() {
                return Err(Error::operation_invalid("domain is not running"));
            }
            if d.persistent.is_none() {
                return Err(Error::operation_invalid(
                    "cannot do managed save for transient domain",
                ));
            }
            d.name.clone()
        };
        let path = managed_path(&self.inner, &name);
        if let Some(dir) = path.parent() {
            super::fsutil::ensure_dir_mode(dir, 0o700)?;
        }
        save_locked(&self.inner, obj, &path, None, flags).await
    }

    /// `virDomainRestoreFlags` (and `virDomainRestore`, flags 0).
    pub async fn restore(&self, from: &str, dxml: Option<&str>, flags: u32) -> Result<()> {
        check_flags(
            flags,
            SAVE_BYPASS_CACHE | SAVE_RUNNING | SAVE_PAUSED | SAVE_RESET_NVRAM,
            "qemuDomainRestoreFlags",
        )?;
        check_running_paused(flags)?;
        let (file, head) = save_image::open(Path::new(from))?;
        let mut def = parse_domain(&head.xml)?;
        if let Some(x) = dxml {
            let new = parse_domain(x)?;
            check_same_machine(&def, &new)?;
            def = new;
        }
        let (obj, created) = restore_target(&self.inner, &def)?;
        let job = obj.begin_job().await?;
        let paused = !runs_after(flags, head.was_running);
        let r = restore_locked(&self.inner, &obj, file, def, paused, JOB_OPERATION_RESTORE).await;
        drop(job);
        if r.is_err() && created {
            self.inner.registry.remove(&obj);
        }
        r
    }

    /// `virDomainCreateWithFlags`: boots the domain, or resumes it from its
    /// managed save image (removed once the guest runs from it;
    /// `VIR_DOMAIN_START_FORCE_BOOT` discards it instead).
    pub(super) async fn start_from_managed_or_boot(
        &self,
        obj: &Arc<DomainObj>,
        flags: u32,
    ) -> Result<()> {
        let paused = flags & super::START_PAUSED != 0;
        let name = obj.name();
        let path = managed_path(&self.inner, &name);
        if path.exists() {
            if flags & START_FORCE_BOOT != 0 {
                std::fs::remove_file(&path).map_err(|e| {
                    super::fsutil::system_error(
                        format!("cannot remove managed save file {}", path.display()),
                        &e,
                    )
                })?;
            } else {
                match self.restore_managed_locked(obj, &path, paused).await {
                    Ok(()) => {
                        if let Err(e) = std::fs::remove_file(&path) {
                            tracing::warn!(domain = name, "cannot remove {}: {e}", path.display());
                        }
                        return Ok(());
                    }
                    Err(e) if e.message.contains("save image is incomplete") => {
                        tracing::warn!(domain = name, "removing a partial managed save image");
                        let _ = std::fs::remove_file(&path);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Box::pin(lifecycle::start_locked(
            &self.inner,
            obj,
            None,
            Launch::boot(paused),
        ))
        .await
    }

    async fn restore_managed_locked(
        &self,
        obj: &Arc<DomainObj>,
        path: &Path,
        paused: bool,
    ) -> Result<()> {
        let (file, head) = save_image::open(path)?;
        let def = parse_domain(&head.xml)?;
        let name = obj.name();
        if def.uuid != obj.uuid || def.name != name {
            return Err(failed(format!(
                "cannot restore domain '{name}' uuid {} from a file which belongs to domain \
                 '{}' uuid {}",
                obj.uuid, def.name, def.uuid
            )));
        }
        let paused = paused || !head.was_running;
        restore_locked(&self.inner, obj, file, def, paused, JOB_OPERATION_START).await
    }

    /// `virDomainHasManagedSaveImage`.
    pub fn has_managed_save_image(&self, obj: &DomainObj, flags: u32) -> Result<bool> {
        check_flags(flags, 0, "virDomainHasManagedSaveImage")?;
        let name = obj.info()?.name;
        Ok(has_managed_image(&self.inner, &name))
    }

    /// `virDomainManagedSaveRemove`.
    pub fn managed_save_remove(&self, obj: &DomainObj, flags: u32) -> Result<()> {
        check_flags(flags, 0, "virDomainManagedSaveRemove")?;
        let name = obj.info()?.name;
        let path = managed_path(&self.inner, &name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(super::fsutil::system_error(
                format!("Failed to remove managed save file '{}'", path.display()),
                &e,
            )),
        }
    }

    /// `virDomainSaveImageGetXMLDesc`.
    pub fn save_image_xml(&self, file: &str, flags: u32) -> Result<String> {
        check_flags(flags, 1, "qemuDomainSaveImageGetXMLDesc")?;
        let (_, head) = save_image::open(Path::new(file))?;
        let def = parse_domain(&head.xml)?;
        Ok(def.to_xml(FormatFlags {
            secure: flags & 1 != 0,
            inactive: true,
            migratable: true,
            update_cpu: false,
        }))
    }

    /// `virDomainSaveImageDefineXML`: a new XML (the same machine) and,
    /// with the flags, whether the guest runs after a restore.
    pub fn save_image_define(&self, file: &str, dxml: &str, flags: u32) -> Result<()> {
        check_flags(
            flags,
            SAVE_RUNNING | SAVE_PAUSED,
            "qemuDomainSaveImageDefineXML",
        )?;
        check_running_paused(flags)?;
        let path = Path::new(file);
        let (_, head) = save_image::open(path)?;
        let old = parse_domain(&head.xml)?;
        let new = parse_domain(dxml)?;
        check_same_machine(&old, &new)?;
        let was_running = runs_after(flags, head.was_running);
        save_image::rewrite(path, &image_xml(&new), was_running)
    }

    fn managed_image_of(&self, obj: &DomainObj) -> Result<PathBuf> {
        let name = obj.info()?.name;
        let path = managed_path(&self.inner, &name);
        if !path.exists() {
            return Err(Error::operation_invalid(
                "domain does not have managed save image",
            ));
        }
        Ok(path)
    }

    /// `virDomainManagedSaveGetXMLDesc`.
    pub fn managed_save_xml(&self, obj: &DomainObj, flags: u32) -> Result<String> {
        check_flags(flags, 1, "qemuDomainManagedSaveGetXMLDesc")?;
        let path = self.managed_image_of(obj)?;
        self.save_image_xml(&path.to_string_lossy(), flags)
    }

    /// `virDomainManagedSaveDefineXML`.
    pub fn managed_save_define(&self, obj: &DomainObj, dxml: &str, flags: u32) -> Result<()> {
        check_flags(
            flags,
            SAVE_RUNNING | SAVE_PAUSED,
            "qemuDomainManagedSaveDefineXML",
        )?;
        let path = self.managed_image_of(obj)?;
        self.save_image_define(&path.to_string_lossy(), dxml, flags)
    }

    /// `virDomainAbortJob`: the save in progress stops; the guest runs on
    /// as it was and no image is left. A restore is a start, which
    /// libvirt does not abort.
    pub fn abort_job(&self, obj: &DomainObj) -> Result<()> {
        use std::io::Write;
        let restoring = matches!(
            obj.progress().as_ref().map(|p| &p.job),
            Some(Job::Restore { .. })
        );
        if restoring {
            return Err(Error::operation_invalid(
                "cannot abort VM start; use virDomainDestroy instead",
            ));
        }
        if obj.info()?.id.is_none() {
            return Err(Error::operation_invalid("domain is not running"));
        }
        let mut progress = obj.progress();
        match progress.as_mut().map(|p| &mut p.job) {
            Some(Job::Save { abort, aborted, .. }) => {
                abort
                    .write_all(b"x")
                    .map_err(|e| super::fsutil::system_error("cannot abort the save", &e))?;
                *aborted = true;
                Ok(())
            }
            _ => Err(Error::operation_invalid("no job is active on the domain")),
        }
    }

    /// `virDomainGetJobStats`: [`Driver::job_info`] as typed parameters.
    pub fn job_stats(
        &self,
        obj: &DomainObj,
        flags: u32,
    ) -> Result<(i32, Vec<(String, super::stats::StatValue)>)> {
        use super::stats::StatValue::{Int, ULLong};
        // COMPLETED, KEEP_COMPLETED: no completed job is kept.
        check_flags(flags, 1 | 2, "qemuDomainGetJobStats")?;
        if flags & 1 != 0 {
            obj.info()?;
            return Ok((JOB_NONE, Vec::new()));
        }
        let j = self.job_info(obj)?;
        if j.job_type == JOB_NONE {
            return Ok((JOB_NONE, Vec::new()));
        }
        let p = |k: &str, v| (k.to_string(), v);
        Ok((
            j.job_type,
            vec![
                p("operation", Int(j.operation)),
                p("time_elapsed", ULLong(j.elapsed_ms)),
                p("data_total", ULLong(j.data_total)),
                p("data_processed", ULLong(j.data_processed)),
                p("data_remaining", ULLong(j.data_remaining)),
                p("memory_total", ULLong(j.data_total)),
                p("memory_processed", ULLong(j.data_processed)),
                p("memory_remaining", ULLong(j.data_remaining)),
            ],
        ))
    }

    /// `virDomainGetJobInfo`: the save or restore in progress (a
    /// restoring domain counts as running, as libvirt's does while QEMU
    /// reads the image), or no job.
    pub fn job_info(&self, obj: &DomainObj) -> Result<JobInfo> {
        let info = obj.info()?;
        if let Some(job) = obj.progress().as_ref() {
            return Ok(job.info());
        }
        if info.id.is_none() {
            return Err(Error::operation_invalid("domain is not running"));
        }
        Ok(JobInfo {
            job_type: JOB_NONE,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(name: &str, mem: u64) -> Domain {
        parse_domain(&format!(
            "<domain type='kvm'><name>{name}</name>\
             <uuid>11111111-2222-3333-4444-555555555555</uuid><memory>{mem}</memory>\
             <os><type>hvm</type></os></domain>"
        ))
        .unwrap()
    }

    #[test]
    fn the_machine_of_a_saved_guest_may_not_change() {
        assert!(check_same_machine(&dom("a", 65536), &dom("a", 65536)).is_ok());
        let e = check_same_machine(&dom("a", 65536), &dom("b", 65536)).unwrap_err();
        assert_eq!(
            e.message,
            "unsupported configuration: Target domain name 'b' does not match source 'a'"
        );
        let e = check_same_machine(&dom("a", 65536), &dom("a", 131072)).unwrap_err();
        assert_eq!(
            e.message,
            "unsupported configuration: Target domain max memory 131072 does not match \
             source 65536"
        );
    }

    #[test]
    fn restore_runs_as_saved_unless_told() {
        assert!(runs_after(0, true));
        assert!(!runs_after(0, false));
        assert!(!runs_after(SAVE_PAUSED, true));
        assert!(runs_after(SAVE_RUNNING, false));
    }
}
