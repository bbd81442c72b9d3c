//! Networks on disk, in libvirt's layout: `<config>/<name>.xml` for each
//! persistent network with `autostart/<name>.xml` links, and
//! `<state>/<name>.json` for each active one: its live definition and
//! every change it made to the host, written before the change is made,
//! so that a restarted daemon can take the network back or undo it.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::driver::fsutil::{
    Durability, ensure_dir, set_autostart_link, system_error, write_atomic,
};
use crate::error::Result;
use crate::xml::network::{NetworkDef, parse_network};

use super::host::HostRecord;

#[derive(Clone, Debug)]
pub struct NetStore {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

/// The state file of an active network.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// The live definition's XML.
    pub xml: String,
    pub host: HostRecord,
}

/// A network read back at daemon start.
pub struct Loaded {
    pub def: NetworkDef,
    /// Its file had no UUID or MAC (as the packaged `default` network):
    /// those just made up must be written back.
    pub incomplete: bool,
    pub persistent: bool,
    pub autostart: bool,
    /// What the state file says, if it was active.
    pub status: Option<(NetworkDef, HostRecord)>,
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == ext) && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl NetStore {
    pub fn new(config_dir: PathBuf, state_dir: PathBuf) -> Self {
        NetStore {
            config_dir,
            state_dir,
        }
    }

    pub fn ensure_dirs(&self) -> Result<()> {
        ensure_dir(&self.config_dir)?;
        ensure_dir(&self.state_dir)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    fn autostart_link(&self, name: &str) -> PathBuf {
        self.config_dir
            .join("autostart")
            .join(format!("{name}.xml"))
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.json"))
    }

    pub fn save_config(&self, def: &NetworkDef) -> Result<()> {
        let path = self.config_path(&def.name);
        ensure_dir(&self.config_dir)?;
        write_atomic(
            &path,
            def.to_xml(true, 0).as_bytes(),
            Durability::Persistent,
        )
        .map_err(|e| system_error(format!("cannot write file '{}'", path.display()), &e))
    }

    pub fn remove_config(&self, name: &str) -> Result<()> {
        let _ = self.set_autostart(name, false);
        match fs::remove_file(self.config_path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(system_error(
                format!(
                    "cannot remove config file '{}'",
                    self.config_path(name).display()
                ),
                &e,
            )),
            _ => Ok(()),
        }
    }

    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        set_autostart_link(&self.autostart_link(name), &self.config_path(name), on)
    }

    /// Records an active (or starting) network and what it did to the host.
    pub fn save_state(&self, def: &NetworkDef, host: &HostRecord) -> Result<()> {
        let status = Status {
            xml: def.to_xml(false, 0),
            host: host.clone(),
        };
        let path = self.state_path(&def.name);
        ensure_dir(&self.state_dir)?;
        let text = serde_json::to_vec_pretty(&status).unwrap_or_default();
        write_atomic(&path, &text, Durability::Runtime)
            .map_err(|e| system_error(format!("cannot write file '{}'", path.display()), &e))
    }

    pub fn remove_state(&self, name: &str) {
        let _ = fs::remove_file(self.state_path(name));
    }

    fn read_status(path: &Path) -> Option<(NetworkDef, HostRecord)> {
        let text = fs::read_to_string(path).ok()?;
        let status: Status = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(file = %path.display(), "unreadable network state: {e}");
                return None;
            }
        };
        match parse_network(&status.xml) {
            Ok(def) => Some((def, status.host)),
            Err(e) => {
                tracing::error!(file = %path.display(), "unreadable network state: {e}");
                None
            }
        }
    }

    /// Every network on disk: persistent definitions, then active
    /// transient networks known only from their state files.
    pub fn load_all(&self) -> Vec<Loaded> {
        for d in [&self.config_dir, &self.state_dir] {
            crate::driver::fsutil::remove_stale_temps(d);
        }
        let mut out: Vec<Loaded> = Vec::new();
        for path in files_with(&self.config_dir, "xml") {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let incomplete = !text.contains("<uuid") || !text.contains("<mac ");
            let def = match parse_network(&text) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(file = %path.display(), "skipping network: {e}");
                    continue;
                }
            };
            if path.file_stem().and_then(|s| s.to_str()) != Some(def.name.as_str()) {
                tracing::error!(file = %path.display(), "Network config filename does not match network name '{}'", def.name);
                continue;
            }
            let autostart = fs::symlink_metadata(self.autostart_link(&def.name)).is_ok();
            out.push(Loaded {
                def,
                incomplete,
                persistent: true,
                autostart,
                status: None,
            });
        }
        for path in files_with(&self.state_dir, "json") {
            let Some((def, host)) = Self::read_status(&path) else {
                continue;
            };
            match out.iter_mut().find(|l| l.def.uuid == def.uuid) {
                Some(l) => l.status = Some((def, host)),
                None => out.push(Loaded {
                    def: def.clone(),
                    incomplete: false,
                    persistent: false,
                    autostart: false,
                    status: Some((def, host)),
                }),
            }
        }
        out
    }
}
