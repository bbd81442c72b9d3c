//! Save, restore and managed save procedures, and the job a save is:
//! served on the generated protocol structures; semantics are the
//! driver's (`driver/save.rs`).

use std::sync::Arc;

use uuid::Uuid;

use crate::driver::{DomainObj, Driver};
use crate::error::Result;

use super::codec::{args, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};
use super::protocol::JobInfoRet;

/// Runs one of these procedures; `None` when `proc_` is not one.
pub async fn call(drv: &Driver, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let dom = |d: &g::NonnullDomain| -> Result<Arc<DomainObj>> {
        drv.lookup_by_uuid(&Uuid::from_bytes(d.uuid))
    };
    let r = match proc_ {
        procs::DOMAIN_SAVE => {
            async {
                let a: g::DomainSaveArgs = args(p)?;
                drv.save(&dom(&a.dom)?, &a.to, None, 0).await?;
                void()
            }
            .await
        }
        procs::DOMAIN_SAVE_FLAGS => {
            async {
                let a: g::DomainSaveFlagsArgs = args(p)?;
                drv.save(&dom(&a.dom)?, &a.to, a.dxml.as_deref(), a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::DOMAIN_RESTORE => {
            async {
                let a: g::DomainRestoreArgs = args(p)?;
                drv.restore(&a.from, None, 0).await?;
                void()
            }
            .await
        }
        procs::DOMAIN_RESTORE_FLAGS => {
            async {
                let a: g::DomainRestoreFlagsArgs = args(p)?;
                drv.restore(&a.from, a.dxml.as_deref(), a.flags).await?;
                void()
            }
            .await
        }
        procs::DOMAIN_SAVE_IMAGE_GET_XML_DESC => (|| {
            let a: g::DomainSaveImageGetXmlDescArgs = args(p)?;
            let xml = drv.save_image_xml(&a.file, a.flags)?;
            reply(&g::DomainSaveImageGetXmlDescRet { xml })
        })(),
        procs::DOMAIN_SAVE_IMAGE_DEFINE_XML => (|| {
            let a: g::DomainSaveImageDefineXmlArgs = args(p)?;
            drv.save_image_define(&a.file, &a.dxml, a.flags)?;
            void()
        })(),
        procs::DOMAIN_MANAGED_SAVE => {
            async {
                let a: g::DomainManagedSaveArgs = args(p)?;
                drv.managed_save(&dom(&a.dom)?, a.flags).await?;
                void()
            }
            .await
        }
        procs::DOMAIN_MANAGED_SAVE_REMOVE => (|| {
            let a: g::DomainManagedSaveRemoveArgs = args(p)?;
            drv.managed_save_remove(&*dom(&a.dom)?, a.flags)?;
            void()
        })(),
        procs::DOMAIN_MANAGED_SAVE_GET_XML_DESC => (|| {
            let a: g::DomainManagedSaveGetXmlDescArgs = args(p)?;
            let xml = drv.managed_save_xml(&*dom(&a.dom)?, a.flags)?;
            reply(&g::DomainManagedSaveGetXmlDescRet { xml })
        })(),
        procs::DOMAIN_MANAGED_SAVE_DEFINE_XML => (|| {
            let a: g::DomainManagedSaveDefineXmlArgs = args(p)?;
            let Some(dxml) = a.dxml else {
                return Err(crate::error::Error::invalid_arg(
                    "dxml in virDomainManagedSaveDefineXML must not be NULL",
                ));
            };
            drv.managed_save_define(&*dom(&a.dom)?, &dxml, a.flags)?;
            void()
        })(),
        procs::DOMAIN_GET_JOB_INFO => (|| {
            let a: g::DomainGetJobInfoArgs = args(p)?;
            let j = drv.job_info(&*dom(&a.dom)?)?;
            reply(&JobInfoRet {
                job_type: j.job_type,
                time_elapsed: j.elapsed_ms,
                data_total: j.data_total,
                data_processed: j.data_processed,
                data_remaining: j.data_remaining,
                mem_total: j.data_total,
                mem_processed: j.data_processed,
                mem_remaining: j.data_remaining,
                ..Default::default()
            })
        })(),
        procs::DOMAIN_GET_JOB_STATS => (|| {
            let a: g::DomainGetJobStatsArgs = args(p)?;
            let (r#type, params) = drv.job_stats(&*dom(&a.dom)?, a.flags)?;
            reply(&g::DomainGetJobStatsRet {
                r#type,
                params: super::domain_queries::typed(params),
            })
        })(),
        procs::DOMAIN_ABORT_JOB => (|| {
            let a: g::DomainAbortJobArgs = args(p)?;
            drv.abort_job(&*dom(&a.dom)?)?;
            void()
        })(),
        _ => return None,
    };
    Some(r)
}
