//! Runtime status files: one `<run dir>/<name>.json` per running domain,
//! enough to re-attach to its VMM after a daemon restart.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::vmm::config::VmConfig;

use super::fsutil::{Durability, write_atomic};
use super::hostnet::NetRes;
use super::resolve::DiskRes;

/// Host resources a running domain holds beyond its VMM process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostResources {
    #[serde(default)]
    pub disks: Vec<DiskRes>,
    /// Its taps.
    #[serde(default)]
    pub nets: Vec<NetRes>,
    #[serde(default)]
    pub vsock_cid: Option<u32>,
    /// Owners of the files given to the guest's user, to give back.
    #[serde(default)]
    pub owners: Vec<super::security_dac::OwnerRecord>,
}

/// Format version of the status file.
pub const STATUS_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub name: String,
    pub uuid: String,
    pub id: i32,
    pub pid: i32,
    pub control_socket: PathBuf,
    pub config_file: PathBuf,
    pub config: VmConfig,
    /// The live XML (`virsh dumpxml` of the running domain).
    pub live_xml: String,
    /// Whether the domain had no persistent definition.
    pub transient: bool,
    /// Disks, taps and vsock CID of the guest.
    #[serde(default)]
    pub host: HostResources,
}

pub fn path(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.json"))
}

pub fn save(run_dir: &Path, st: &Status) {
    let p = path(run_dir, &st.name);
    match serde_json::to_vec_pretty(st) {
        Ok(data) => {
            if let Err(e) = write_atomic(&p, &data, Durability::Runtime) {
                tracing::error!(file = %p.display(), "cannot write status file: {e}");
            }
        }
        Err(e) => tracing::error!("cannot serialise status: {e}"),
    }
}

pub fn remove(run_dir: &Path, name: &str) {
    let _ = std::fs::remove_file(path(run_dir, name));
}

/// Every readable status file; broken ones are logged and removed.
pub fn load_all(run_dir: &Path) -> Vec<Status> {
    super::fsutil::remove_stale_temps(run_dir);
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let parsed = std::fs::read_to_string(&p)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Status>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(s) if s.version == STATUS_VERSION => out.push(s),
            Ok(s) => {
                tracing::warn!(file = %p.display(), version = s.version, "unknown status version")
            }
            Err(e) => {
                tracing::error!(file = %p.display(), "dropping unreadable status file: {e}");
                let _ = std::fs::remove_file(&p);
            }
        }
    }
    out
}
