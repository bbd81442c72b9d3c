//! Snapshot procedures, served on the generated protocol structures; the
//! semantics are the driver's (`driver/snapshot/`). A snapshot travels as
//! its name and its domain.

use std::sync::Arc;

use uuid::Uuid;

use crate::driver::{DomainObj, Driver};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};

use super::codec::{args, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};

fn wire_domain(obj: &DomainObj) -> Result<g::NonnullDomain> {
    let i = obj.info()?;
    Ok(g::NonnullDomain {
        name: i.name,
        uuid: *i.uuid.as_bytes(),
        id: i.id.unwrap_or(-1),
    })
}

fn wire_snapshot(obj: &DomainObj, name: String) -> Result<g::NonnullDomainSnapshot> {
    Ok(g::NonnullDomainSnapshot {
        name,
        dom: wire_domain(obj)?,
    })
}

/// The most names a list procedure returns, as the protocol bounds it.
fn max_names(n: i32) -> Result<usize> {
    if !(0..=g::REMOTE_DOMAIN_SNAPSHOT_LIST_MAX as i32).contains(&n) {
        return Err(Error::new(
            ErrorCode::Rpc,
            ErrorDomain::Rpc,
            format!("maxnames > REMOTE_DOMAIN_SNAPSHOT_LIST_MAX ({n})"),
        ));
    }
    Ok(n as usize)
}

/// Runs one of these procedures; `None` when `proc_` is not one.
pub async fn call(drv: &Driver, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let dom = |d: &g::NonnullDomain| -> Result<Arc<DomainObj>> {
        drv.lookup_by_uuid(&Uuid::from_bytes(d.uuid))
    };
    let snap = |s: &g::NonnullDomainSnapshot| -> Result<(Arc<DomainObj>, String)> {
        Ok((dom(&s.dom)?, s.name.clone()))
    };
    let list = |obj: &DomainObj,
                names: Vec<String>,
                need: i32|
     -> Result<(Vec<g::NonnullDomainSnapshot>, i32)> {
        let ret = names.len() as i32;
        let mut out = Vec::new();
        if need != 0 {
            for n in names {
                out.push(wire_snapshot(obj, n)?);
            }
        }
        Ok((out, ret))
    };
    let r = match proc_ {
        procs::DOMAIN_SNAPSHOT_CREATE_XML => {
            async {
                let a: g::DomainSnapshotCreateXmlArgs = args(p)?;
                let obj = dom(&a.dom)?;
                let name = drv.snapshot_create(&obj, &a.xml_desc, a.flags).await?;
                reply(&g::DomainSnapshotCreateXmlRet {
                    snap: wire_snapshot(&obj, name)?,
                })
            }
            .await
        }
        procs::DOMAIN_SNAPSHOT_GET_XML_DESC => (|| {
            let a: g::DomainSnapshotGetXmlDescArgs = args(p)?;
            let (obj, name) = snap(&a.snap)?;
            reply(&g::DomainSnapshotGetXmlDescRet {
                xml: drv.snapshot_xml(&obj, &name, a.flags)?,
            })
        })(),
        procs::DOMAIN_SNAPSHOT_NUM => (|| {
            let a: g::DomainSnapshotNumArgs = args(p)?;
            let n = drv.snapshot_list(&*dom(&a.dom)?, a.flags)?.len();
            reply(&g::DomainSnapshotNumRet { num: n as i32 })
        })(),
        procs::DOMAIN_SNAPSHOT_LIST_NAMES => (|| {
            let a: g::DomainSnapshotListNamesArgs = args(p)?;
            let max = max_names(a.maxnames)?;
            let mut names = drv.snapshot_list(&*dom(&a.dom)?, a.flags)?;
            names.truncate(max);
            reply(&g::DomainSnapshotListNamesRet { names })
        })(),
        procs::DOMAIN_LIST_ALL_SNAPSHOTS => (|| {
            let a: g::DomainListAllSnapshotsArgs = args(p)?;
            let obj = dom(&a.dom)?;
            let names = drv.snapshot_list(&obj, a.flags)?;
            let (snapshots, ret) = list(&obj, names, a.need_results)?;
            reply(&g::DomainListAllSnapshotsRet { snapshots, ret })
        })(),
        procs::DOMAIN_SNAPSHOT_NUM_CHILDREN => (|| {
            let a: g::DomainSnapshotNumChildrenArgs = args(p)?;
            let (obj, name) = snap(&a.snap)?;
            let n = drv.snapshot_children(&obj, &name, a.flags)?.len();
            reply(&g::DomainSnapshotNumChildrenRet { num: n as i32 })
        })(),
        procs::DOMAIN_SNAPSHOT_LIST_CHILDREN_NAMES => (|| {
            let a: g::DomainSnapshotListChildrenNamesArgs = args(p)?;
            let max = max_names(a.maxnames)?;
            let (obj, name) = snap(&a.snap)?;
            let mut names = drv.snapshot_children(&obj, &name, a.flags)?;
            names.truncate(max);
            reply(&g::DomainSnapshotListChildrenNamesRet { names })
        })(),
        procs::DOMAIN_SNAPSHOT_LIST_ALL_CHILDREN => (|| {
            let a: g::DomainSnapshotListAllChildrenArgs = args(p)?;
            let (obj, name) = snap(&a.snapshot)?;
            let names = drv.snapshot_children(&obj, &name, a.flags)?;
            let (snapshots, ret) = list(&obj, names, a.need_results)?;
            reply(&g::DomainSnapshotListAllChildrenRet { snapshots, ret })
        })(),
        procs::DOMAIN_SNAPSHOT_LOOKUP_BY_NAME => (|| {
            let a: g::DomainSnapshotLookupByNameArgs = args(p)?;
            let obj = dom(&a.dom)?;
            let name = drv.snapshot_lookup(&obj, &a.name, a.flags)?;
            reply(&g::DomainSnapshotLookupByNameRet {
                snap: wire_snapshot(&obj, name)?,
            })
        })(),
        procs::DOMAIN_HAS_CURRENT_SNAPSHOT => (|| {
            let a: g::DomainHasCurrentSnapshotArgs = args(p)?;
            let has = drv.snapshot_has_current(&*dom(&a.dom)?, a.flags)?;
            reply(&g::DomainHasCurrentSnapshotRet {
                result: i32::from(has),
            })
        })(),
        procs::DOMAIN_SNAPSHOT_CURRENT => (|| {
            let a: g::DomainSnapshotCurrentArgs = args(p)?;
            let obj = dom(&a.dom)?;
            let name = drv.snapshot_current(&obj, a.flags)?;
            reply(&g::DomainSnapshotCurrentRet {
                snap: wire_snapshot(&obj, name)?,
            })
        })(),
        procs::DOMAIN_SNAPSHOT_GET_PARENT => (|| {
            let a: g::DomainSnapshotGetParentArgs = args(p)?;
            let (obj, name) = snap(&a.snap)?;
            let parent = drv.snapshot_parent(&obj, &name, a.flags)?;
            reply(&g::DomainSnapshotGetParentRet {
                snap: wire_snapshot(&obj, parent)?,
            })
        })(),
        procs::DOMAIN_SNAPSHOT_IS_CURRENT => (|| {
            let a: g::DomainSnapshotIsCurrentArgs = args(p)?;
            let (obj, name) = snap(&a.snap)?;
            let current = drv.snapshot_is_current(&obj, &name, a.flags)?;
            reply(&g::DomainSnapshotIsCurrentRet {
                current: i32::from(current),
            })
        })(),
        procs::DOMAIN_SNAPSHOT_HAS_METADATA => (|| {
            let a: g::DomainSnapshotHasMetadataArgs = args(p)?;
            let (obj, name) = snap(&a.snap)?;
            let metadata = drv.snapshot_has_metadata(&obj, &name, a.flags)?;
            reply(&g::DomainSnapshotHasMetadataRet {
                metadata: i32::from(metadata),
            })
        })(),
        procs::DOMAIN_REVERT_TO_SNAPSHOT => {
            async {
                let a: g::DomainRevertToSnapshotArgs = args(p)?;
                let (obj, name) = snap(&a.snap)?;
                drv.snapshot_revert(&obj, &name, a.flags).await?;
                void()
            }
            .await
        }
        procs::DOMAIN_SNAPSHOT_DELETE => {
            async {
                let a: g::DomainSnapshotDeleteArgs = args(p)?;
                let (obj, name) = snap(&a.snap)?;
                drv.snapshot_delete(&obj, &name, a.flags).await?;
                void()
            }
            .await
        }
        _ => return None,
    };
    Some(r)
}
