//! Storage procedures: decode the arguments, call the storage sub-driver,
//! encode the reply. Volume uploads and downloads become streams here.

use uuid::Uuid;

use crate::driver::storage::{PoolRef, Storage, VolRef};
use crate::error::Result;

use super::codec::{args, check_max_names, reply, void};
use super::dispatch::Outcome;
use super::generated::{self as g, procs};

fn pool_of(p: &g::NonnullStoragePool) -> PoolRef {
    PoolRef {
        name: p.name.clone(),
        uuid: Uuid::from_bytes(p.uuid),
    }
}

fn wire_pool(p: &PoolRef) -> g::NonnullStoragePool {
    g::NonnullStoragePool {
        name: p.name.clone(),
        uuid: *p.uuid.as_bytes(),
    }
}

fn vol_of(v: &g::NonnullStorageVol) -> VolRef {
    VolRef {
        pool: v.pool.clone(),
        name: v.name.clone(),
        key: v.key.clone(),
    }
}

fn wire_vol(v: &VolRef) -> g::NonnullStorageVol {
    g::NonnullStorageVol {
        pool: v.pool.clone(),
        name: v.name.clone(),
        key: v.key.clone(),
    }
}

/// Runs a storage procedure; `None` when `proc_` is not one.
pub async fn call(st: &Storage, proc_: i32, p: &[u8]) -> Option<Result<Outcome>> {
    let r = match proc_ {
        procs::CONNECT_LIST_ALL_STORAGE_POOLS => (|| {
            let a: g::ConnectListAllStoragePoolsArgs = args(p)?;
            let list = st.connect_list_all_storage_pools(a.flags)?;
            let ret = list.len() as u32;
            let pools = if a.need_results != 0 {
                list.iter().map(wire_pool).collect()
            } else {
                Vec::new()
            };
            reply(&g::ConnectListAllStoragePoolsRet { pools, ret })
        })(),
        procs::CONNECT_NUM_OF_STORAGE_POOLS => reply(&g::ConnectNumOfStoragePoolsRet {
            num: st.connect_num_of_storage_pools(true),
        }),
        procs::CONNECT_NUM_OF_DEFINED_STORAGE_POOLS => {
            reply(&g::ConnectNumOfDefinedStoragePoolsRet {
                num: st.connect_num_of_storage_pools(false),
            })
        }
        procs::CONNECT_LIST_STORAGE_POOLS => (|| {
            let a: g::ConnectListStoragePoolsArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_STORAGE_POOL_LIST_MAX,
                "REMOTE_STORAGE_POOL_LIST_MAX",
            )?;
            reply(&g::ConnectListStoragePoolsRet {
                names: st.connect_list_storage_pools(true, a.maxnames),
            })
        })(),
        procs::CONNECT_LIST_DEFINED_STORAGE_POOLS => (|| {
            let a: g::ConnectListDefinedStoragePoolsArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_STORAGE_POOL_LIST_MAX,
                "REMOTE_STORAGE_POOL_LIST_MAX",
            )?;
            reply(&g::ConnectListDefinedStoragePoolsRet {
                names: st.connect_list_storage_pools(false, a.maxnames),
            })
        })(),
        procs::STORAGE_POOL_LOOKUP_BY_NAME => (|| {
            let a: g::StoragePoolLookupByNameArgs = args(p)?;
            let pool = wire_pool(&st.storage_pool_lookup_by_name(&a.name)?);
            reply(&g::StoragePoolLookupByNameRet { pool })
        })(),
        procs::STORAGE_POOL_LOOKUP_BY_UUID => (|| {
            let a: g::StoragePoolLookupByUuidArgs = args(p)?;
            let pool = wire_pool(&st.storage_pool_lookup_by_uuid(&Uuid::from_bytes(a.uuid))?);
            reply(&g::StoragePoolLookupByUuidRet { pool })
        })(),
        procs::STORAGE_POOL_LOOKUP_BY_VOLUME => (|| {
            let a: g::StoragePoolLookupByVolumeArgs = args(p)?;
            let pool = wire_pool(&st.storage_pool_lookup_by_volume(&vol_of(&a.vol))?);
            reply(&g::StoragePoolLookupByVolumeRet { pool })
        })(),
        procs::STORAGE_POOL_LOOKUP_BY_TARGET_PATH => (|| {
            let a: g::StoragePoolLookupByTargetPathArgs = args(p)?;
            let pool = wire_pool(&st.storage_pool_lookup_by_target_path(&a.path)?);
            reply(&g::StoragePoolLookupByTargetPathRet { pool })
        })(),
        procs::STORAGE_POOL_DEFINE_XML => (|| {
            let a: g::StoragePoolDefineXmlArgs = args(p)?;
            let pool = wire_pool(&st.storage_pool_define_xml(&a.xml, a.flags)?);
            reply(&g::StoragePoolDefineXmlRet { pool })
        })(),
        procs::STORAGE_POOL_CREATE_XML => {
            async {
                let a: g::StoragePoolCreateXmlArgs = args(p)?;
                let pool = wire_pool(&st.storage_pool_create_xml(&a.xml, a.flags).await?);
                reply(&g::StoragePoolCreateXmlRet { pool })
            }
            .await
        }
        procs::STORAGE_POOL_UNDEFINE => (|| {
            let a: g::StoragePoolUndefineArgs = args(p)?;
            st.storage_pool_undefine(&pool_of(&a.pool))?;
            void()
        })(),
        procs::STORAGE_POOL_CREATE => {
            async {
                let a: g::StoragePoolCreateArgs = args(p)?;
                st.storage_pool_create(&pool_of(&a.pool), a.flags).await?;
                void()
            }
            .await
        }
        procs::STORAGE_POOL_BUILD => {
            async {
                let a: g::StoragePoolBuildArgs = args(p)?;
                st.storage_pool_build(&pool_of(&a.pool), a.flags).await?;
                void()
            }
            .await
        }
        procs::STORAGE_POOL_DESTROY => (|| {
            let a: g::StoragePoolDestroyArgs = args(p)?;
            st.storage_pool_destroy(&pool_of(&a.pool))?;
            void()
        })(),
        procs::STORAGE_POOL_DELETE => {
            async {
                let a: g::StoragePoolDeleteArgs = args(p)?;
                st.storage_pool_delete(&pool_of(&a.pool), a.flags).await?;
                void()
            }
            .await
        }
        procs::STORAGE_POOL_REFRESH => {
            async {
                let a: g::StoragePoolRefreshArgs = args(p)?;
                st.storage_pool_refresh(&pool_of(&a.pool), a.flags).await?;
                void()
            }
            .await
        }
        procs::STORAGE_POOL_GET_XML_DESC => (|| {
            let a: g::StoragePoolGetXmlDescArgs = args(p)?;
            let xml = st.storage_pool_get_xml_desc(&pool_of(&a.pool), a.flags)?;
            reply(&g::StoragePoolGetXmlDescRet { xml })
        })(),
        procs::STORAGE_POOL_GET_INFO => (|| {
            let a: g::StoragePoolGetInfoArgs = args(p)?;
            let i = st.storage_pool_get_info(&pool_of(&a.pool))?;
            reply(&g::StoragePoolGetInfoRet {
                state: i.state as u32,
                capacity: i.capacity,
                allocation: i.allocation,
                available: i.available,
            })
        })(),
        procs::STORAGE_POOL_GET_AUTOSTART => (|| {
            let a: g::StoragePoolGetAutostartArgs = args(p)?;
            let on = st.storage_pool_get_autostart(&pool_of(&a.pool))?;
            reply(&g::StoragePoolGetAutostartRet {
                autostart: i32::from(on),
            })
        })(),
        procs::STORAGE_POOL_SET_AUTOSTART => (|| {
            let a: g::StoragePoolSetAutostartArgs = args(p)?;
            st.storage_pool_set_autostart(&pool_of(&a.pool), a.autostart != 0)?;
            void()
        })(),
        procs::STORAGE_POOL_IS_ACTIVE => (|| {
            let a: g::StoragePoolIsActiveArgs = args(p)?;
            let v = st.storage_pool_is_active(&pool_of(&a.pool))?;
            reply(&g::StoragePoolIsActiveRet {
                active: i32::from(v),
            })
        })(),
        procs::STORAGE_POOL_IS_PERSISTENT => (|| {
            let a: g::StoragePoolIsPersistentArgs = args(p)?;
            let v = st.storage_pool_is_persistent(&pool_of(&a.pool))?;
            reply(&g::StoragePoolIsPersistentRet {
                persistent: i32::from(v),
            })
        })(),
        procs::STORAGE_POOL_NUM_OF_VOLUMES => (|| {
            let a: g::StoragePoolNumOfVolumesArgs = args(p)?;
            let num = st.storage_pool_num_of_volumes(&pool_of(&a.pool))?;
            reply(&g::StoragePoolNumOfVolumesRet { num })
        })(),
        procs::STORAGE_POOL_LIST_VOLUMES => (|| {
            let a: g::StoragePoolListVolumesArgs = args(p)?;
            check_max_names(
                a.maxnames,
                g::REMOTE_STORAGE_VOL_LIST_MAX,
                "REMOTE_STORAGE_VOL_LIST_MAX",
            )?;
            let names = st.storage_pool_list_volumes(&pool_of(&a.pool), a.maxnames)?;
            reply(&g::StoragePoolListVolumesRet { names })
        })(),
        procs::STORAGE_POOL_LIST_ALL_VOLUMES => (|| {
            let a: g::StoragePoolListAllVolumesArgs = args(p)?;
            let list = st.storage_pool_list_all_volumes(&pool_of(&a.pool), a.flags)?;
            let ret = list.len() as u32;
            let vols = if a.need_results != 0 {
                list.iter().map(wire_vol).collect()
            } else {
                Vec::new()
            };
            reply(&g::StoragePoolListAllVolumesRet { vols, ret })
        })(),
        procs::STORAGE_VOL_LOOKUP_BY_NAME => (|| {
            let a: g::StorageVolLookupByNameArgs = args(p)?;
            let vol = wire_vol(&st.storage_vol_lookup_by_name(&pool_of(&a.pool), &a.name)?);
            reply(&g::StorageVolLookupByNameRet { vol })
        })(),
        procs::STORAGE_VOL_LOOKUP_BY_KEY => (|| {
            let a: g::StorageVolLookupByKeyArgs = args(p)?;
            let vol = wire_vol(&st.storage_vol_lookup_by_key(&a.key)?);
            reply(&g::StorageVolLookupByKeyRet { vol })
        })(),
        procs::STORAGE_VOL_LOOKUP_BY_PATH => (|| {
            let a: g::StorageVolLookupByPathArgs = args(p)?;
            let vol = wire_vol(&st.storage_vol_lookup_by_path(&a.path)?);
            reply(&g::StorageVolLookupByPathRet { vol })
        })(),
        procs::STORAGE_VOL_CREATE_XML => {
            async {
                let a: g::StorageVolCreateXmlArgs = args(p)?;
                let vol = st
                    .storage_vol_create_xml(&pool_of(&a.pool), &a.xml, a.flags)
                    .await?;
                reply(&g::StorageVolCreateXmlRet {
                    vol: wire_vol(&vol),
                })
            }
            .await
        }
        procs::STORAGE_VOL_CREATE_XML_FROM => {
            async {
                let a: g::StorageVolCreateXmlFromArgs = args(p)?;
                let vol = st
                    .storage_vol_create_xml_from(
                        &pool_of(&a.pool),
                        &a.xml,
                        &vol_of(&a.clonevol),
                        a.flags,
                    )
                    .await?;
                reply(&g::StorageVolCreateXmlFromRet {
                    vol: wire_vol(&vol),
                })
            }
            .await
        }
        procs::STORAGE_VOL_DELETE => {
            async {
                let a: g::StorageVolDeleteArgs = args(p)?;
                st.storage_vol_delete(&vol_of(&a.vol), a.flags).await?;
                void()
            }
            .await
        }
        procs::STORAGE_VOL_WIPE => {
            async {
                let a: g::StorageVolWipeArgs = args(p)?;
                st.storage_vol_wipe_pattern(&vol_of(&a.vol), 0, a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::STORAGE_VOL_WIPE_PATTERN => {
            async {
                let a: g::StorageVolWipePatternArgs = args(p)?;
                st.storage_vol_wipe_pattern(&vol_of(&a.vol), a.algorithm, a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::STORAGE_VOL_GET_XML_DESC => (|| {
            let a: g::StorageVolGetXmlDescArgs = args(p)?;
            let xml = st.storage_vol_get_xml_desc(&vol_of(&a.vol), a.flags)?;
            reply(&g::StorageVolGetXmlDescRet { xml })
        })(),
        procs::STORAGE_VOL_GET_INFO => (|| {
            let a: g::StorageVolGetInfoArgs = args(p)?;
            let i = st.storage_vol_get_info_flags(&vol_of(&a.vol), 0)?;
            reply(&g::StorageVolGetInfoRet {
                r#type: i.vol_type,
                capacity: i.capacity,
                allocation: i.allocation,
            })
        })(),
        procs::STORAGE_VOL_GET_INFO_FLAGS => (|| {
            let a: g::StorageVolGetInfoFlagsArgs = args(p)?;
            let i = st.storage_vol_get_info_flags(&vol_of(&a.vol), a.flags)?;
            reply(&g::StorageVolGetInfoFlagsRet {
                r#type: i.vol_type,
                capacity: i.capacity,
                allocation: i.allocation,
            })
        })(),
        procs::STORAGE_VOL_GET_PATH => (|| {
            let a: g::StorageVolGetPathArgs = args(p)?;
            let name = st.storage_vol_get_path(&vol_of(&a.vol))?;
            reply(&g::StorageVolGetPathRet { name })
        })(),
        procs::STORAGE_VOL_RESIZE => {
            async {
                let a: g::StorageVolResizeArgs = args(p)?;
                st.storage_vol_resize(&vol_of(&a.vol), a.capacity, a.flags)
                    .await?;
                void()
            }
            .await
        }
        procs::STORAGE_VOL_DOWNLOAD => (|| {
            let a: g::StorageVolDownloadArgs = args(p)?;
            let vol = vol_of(&a.vol);
            let s = st.storage_vol_download(&vol, a.offset, a.length, a.flags)?;
            Ok(Outcome::VolDownload(s))
        })(),
        procs::STORAGE_VOL_UPLOAD => (|| {
            let a: g::StorageVolUploadArgs = args(p)?;
            let vol = vol_of(&a.vol);
            let s = st.storage_vol_upload(&vol, a.offset, a.length, a.flags)?;
            Ok(Outcome::VolUpload(s, vol))
        })(),
        _ => return None,
    };
    Some(r)
}
