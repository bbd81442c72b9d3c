//! The one way tunables change: checked on copies of the definitions the
//! flags name, put into the running guest's cgroup, then kept (the
//! persistent definition saved, the live one in the status file).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::xml::model::Domain;

use super::super::Driver;
use super::super::cgroup::GuestCgroup;
use super::super::domain::DomainObj;

impl Driver {
    /// Applies `edit` to the definitions `flags` name (told whether it is
    /// the live one); for the live one, `live` first puts the new values
    /// into the running guest (its cgroup, its VMM's pid).
    pub(super) async fn change_tunables(
        &self,
        obj: &Arc<DomainObj>,
        flags: u32,
        edit: impl Fn(&mut Domain, bool) -> Result<()>,
        live: impl FnOnce(&GuestCgroup, &Domain, i32) -> Result<()>,
    ) -> Result<()> {
        let _job = obj.begin_job().await?;
        let (new_live, new_config, cgroup, pid) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live_on, config_on) = super::super::metadata::targets(&d, flags)?;
            let new_live = match d.live.as_ref().filter(|_| live_on) {
                Some(l) => {
                    let mut def = l.def.clone();
                    edit(&mut def, true)?;
                    Some(def)
                }
                None => None,
            };
            let new_config = match d.persistent.as_ref().filter(|_| config_on) {
                Some(p) => {
                    let mut def = p.clone();
                    edit(&mut def, false)?;
                    Some(def)
                }
                None => None,
            };
            let cgroup = d.live.as_ref().and_then(|l| l.cgroup.clone());
            let pid = d.live.as_ref().map_or(0, |l| l.vmm.pid);
            (new_live, new_config, cgroup, pid)
        };
        if let Some(def) = &new_live {
            live(&cgroup.unwrap_or_default(), def, pid)?;
        }
        if let Some(def) = &new_config {
            self.inner.store.save(def)?;
        }
        let mut d = obj.data();
        if let Some(def) = new_config {
            d.persistent = Some(def);
        }
        let changed_live = new_live.is_some();
        if let (Some(def), Some(l)) = (new_live, d.live.as_mut()) {
            l.def = def;
        }
        drop(d);
        if changed_live {
            super::super::supervise::write_status(&self.inner, obj);
        }
        Ok(())
    }
}
