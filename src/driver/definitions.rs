//! Definitions: define, create, undefine, rename, autostart, XML and
//! persistent settings of [`Driver`].

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::xml::{Domain, FormatFlags, check_supported, parse_domain};

use super::domain::{DomainData, DomainObj};
use super::state::{DomainState, EventType, detail, shutoff};
use super::{
    Driver, START_PAUSED, UNDEFINE_KNOWN, UNDEFINE_MANAGED_SAVE, UNDEFINE_SNAPSHOTS_METADATA,
    lifecycle,
};

impl Driver {
    // ---- definitions --------------------------------------------------

    /// `virDomainDefineXML`: a new domain, or a new definition of an
    /// existing one (a running domain keeps its live definition).
    /// `virDomainDefineXMLFlags`; `VIR_DOMAIN_DEFINE_VALIDATE` changes
    /// nothing: every definition is validated.
    pub async fn define_xml_flags(&self, xml: &str, flags: u32) -> Result<Arc<DomainObj>> {
        super::check_flags(flags, 1, "virDomainDefineXMLFlags")?;
        self.define_xml(xml).await
    }

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
                starting: None,
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
        let obj = DomainObj::new(def.uuid, DomainData::transient(&def));
        self.inner.registry.insert(obj.clone())?;
        let job = obj.begin_job().await?;
        // Boxed: a start's future is large, and every front end's dispatch
        // future would otherwise carry its size for every call.
        let start = super::supervise::Launch::boot(flags & START_PAUSED != 0);
        let r = Box::pin(lifecycle::start_locked(&self.inner, &obj, Some(def), start)).await;
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
        if !active && super::save::has_managed_image(&self.inner, &name) {
            if flags & UNDEFINE_MANAGED_SAVE == 0 {
                return Err(Error::operation_invalid(
                    "Refusing to undefine while domain managed save image exists",
                ));
            }
            std::fs::remove_file(super::save::managed_path(&self.inner, &name)).map_err(|e| {
                super::fsutil::system_error("Failed to remove domain managed save image", &e)
            })?;
        }
        let snapshots = self.snapshot_count(&name);
        if snapshots > 0 && !active {
            if flags & UNDEFINE_SNAPSHOTS_METADATA == 0 {
                return Err(Error::operation_invalid(format!(
                    "cannot delete inactive domain with {snapshots} snapshots"
                )));
            }
            super::snapshot::remove_all(&self.inner, &name);
        }
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
            if self.snapshot_count(&d.name) > 0 {
                return Err(Error::operation_invalid(
                    "cannot rename domain with snapshots",
                ));
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

    /// `virDomainSetMemoryFlags`. A running guest's memory changes
    /// through its balloon: the VMM asks the guest, and the live
    /// definition follows when the guest's balloon driver answers (with a
    /// balloon-change event), as with libvirt's QEMU driver.
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
        let (name, live_vmm, config_def) = {
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
            let config_def = if config {
                Some(d.persistent.clone().ok_or_else(|| {
                    Error::operation_invalid("transient domains do not have any persistent config")
                })?)
            } else {
                None
            };
            let live_vmm = match d.live.as_ref().filter(|_| live) {
                None => None,
                Some(l) => {
                    if flags & MAXIMUM != 0 {
                        return Err(Error::operation_invalid(
                            "cannot resize the maximum memory on an active domain",
                        ));
                    }
                    if kib > l.def.memory_kib {
                        return Err(Error::invalid_arg(
                            "cannot set memory higher than max memory",
                        ));
                    }
                    let balloon = l
                        .def
                        .devices
                        .memballoon
                        .as_ref()
                        .is_some_and(super::devices::balloon_is_virtio);
                    if !balloon {
                        return Err(Error::operation_invalid(
                            "Unable to change memory of active domain without the balloon device and guest OS balloon driver",
                        ));
                    }
                    Some(l.vmm.clone())
                }
            };
            (d.name.clone(), live_vmm, config_def)
        };
        if kib == 0 {
            return Err(Error::invalid_arg("memory size must be greater than zero"));
        }
        let config_def = match config_def {
            None => None,
            Some(mut def) => {
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
                Some(def)
            }
        };
        if let Some(vmm) = live_vmm {
            vmm.balloon_to(kib).await?;
            tracing::info!(domain = name, kib, "balloon target set");
        }
        if let Some(def) = config_def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
            tracing::info!(
                domain = name,
                kib,
                "memory of the persistent definition changed"
            );
        }
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

    /// `virDomainGetVcpusFlags`: current or maximum vCPUs of the live or
    /// persistent definition.
    pub fn vcpu_count(&self, obj: &DomainObj, flags: u32) -> Result<u32> {
        const LIVE: u32 = 1;
        const CONFIG: u32 = 2;
        const MAXIMUM: u32 = 4;
        const GUEST: u32 = 8;
        if flags & !(LIVE | CONFIG | MAXIMUM | GUEST) != 0 {
            return Err(Error::invalid_arg(format!(
                "unsupported flags (0x{:x}) in function virDomainGetVcpusFlags",
                flags & !(LIVE | CONFIG | MAXIMUM | GUEST)
            )));
        }
        if flags & LIVE != 0 && flags & CONFIG != 0 {
            return Err(Error::invalid_arg(
                "Flags 'live' and 'config' are mutually exclusive",
            ));
        }
        let d = obj.data();
        if d.removed {
            return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
        }
        if flags & GUEST != 0 {
            return Err(Error::new(
                crate::error::ErrorCode::AgentUnresponsive,
                crate::error::ErrorDomain::Qemu,
                "QEMU guest agent is not connected",
            ));
        }
        let def = if flags & LIVE != 0 {
            d.live
                .as_ref()
                .map(|l| &l.def)
                .ok_or_else(|| Error::operation_invalid("domain is not running"))?
        } else if flags & CONFIG != 0 {
            d.persistent.as_ref().ok_or_else(|| {
                Error::operation_invalid("transient domains do not have any persistent config")
            })?
        } else {
            d.current_def()
                .ok_or_else(|| Error::internal("domain without a definition"))?
        };
        Ok(if flags & MAXIMUM != 0 {
            def.vcpu.max
        } else {
            def.vcpu.online()
        })
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
}
