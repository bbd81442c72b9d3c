//! Pools on disk, in libvirt's layout: `<config>/<name>.xml` for each
//! persistent pool with `autostart/<name>.xml` links, and
//! `<state>/<name>.xml` (`<poolstate>`) for each active pool, so that a
//! restarted daemon knows which pools were running, transient ones too.

use std::fs;
use std::path::{Path, PathBuf};

use crate::driver::fsutil::{Durability, ensure_dir, set_autostart_link, write_atomic};
use crate::error::Result;
use crate::xml::storage::{PoolDef, parse_pool};

use super::dir::sys;

#[derive(Clone, Debug)]
pub struct PoolStore {
    config_dir: PathBuf,
    state_dir: PathBuf,
}

/// A pool read back at daemon start.
pub struct LoadedPool {
    pub def: PoolDef,
    pub persistent: bool,
    pub autostart: bool,
    /// A state file says it was active.
    pub was_active: bool,
    /// The persistent definition when it differs from the active one.
    pub new_def: Option<PoolDef>,
}

fn xml_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "xml") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read_def(path: &Path, state: bool) -> Option<PoolDef> {
    let text = fs::read_to_string(path).ok()?;
    let xml = if state {
        let start = text.find("<pool")?;
        let end = text.rfind("</pool>")? + "</pool>".len();
        text[start..end].to_string()
    } else {
        text
    };
    match parse_pool(&xml) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::error!(file = %path.display(), "skipping storage pool: {e}");
            None
        }
    }
}

impl PoolStore {
    pub fn new(config_dir: PathBuf, state_dir: PathBuf) -> Self {
        PoolStore {
            config_dir,
            state_dir,
        }
    }

    pub fn ensure_dirs(&self) -> Result<()> {
        ensure_dir(&self.config_dir)?;
        ensure_dir(&self.state_dir)
    }

    fn config_path(&self, name: &str) -> PathBuf {
        self.config_dir.join(format!("{name}.xml"))
    }

    fn autostart_dir(&self) -> PathBuf {
        self.config_dir.join("autostart")
    }

    fn autostart_link(&self, name: &str) -> PathBuf {
        self.autostart_dir().join(format!("{name}.xml"))
    }

    fn state_path(&self, name: &str) -> PathBuf {
        self.state_dir.join(format!("{name}.xml"))
    }

    /// Writes a persistent definition (sizes are not part of it).
    pub fn save_config(&self, def: &PoolDef) -> Result<()> {
        let mut clean = def.clone();
        clean.capacity = 0;
        clean.allocation = 0;
        clean.available = 0;
        let path = self.config_path(&def.name);
        ensure_dir(&self.config_dir)?;
        write_atomic(&path, clean.to_xml().as_bytes(), Durability::Persistent)
            .map_err(|e| sys(format!("cannot write file '{}'", path.display()), &e))
    }

    /// Removes a persistent definition and its autostart link.
    pub fn remove_config(&self, name: &str) -> Result<()> {
        let _ = self.set_autostart(name, false);
        let path = self.config_path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(sys(format!("cannot remove config for {name}"), &e))
            }
            _ => Ok(()),
        }
    }

    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        set_autostart_link(&self.autostart_link(name), &self.config_path(name), on)
    }

    /// Records that a pool is active, with its live definition.
    pub fn save_state(&self, def: &PoolDef) -> Result<()> {
        let path = self.state_path(&def.name);
        let body: String = def.to_xml().lines().map(|l| format!("  {l}\n")).collect();
        let xml = format!("<poolstate>\n{body}</poolstate>\n");
        ensure_dir(&self.state_dir)?;
        write_atomic(&path, xml.as_bytes(), Durability::Runtime)
            .map_err(|e| sys(format!("cannot write file '{}'", path.display()), &e))
    }

    pub fn remove_state(&self, name: &str) {
        let _ = fs::remove_file(self.state_path(name));
    }

    /// Every pool on disk: persistent definitions, then active transient
    /// pools known only from their state files.
    pub fn load_all(&self) -> Vec<LoadedPool> {
        for d in [&self.config_dir, &self.state_dir] {
            crate::driver::fsutil::remove_stale_temps(d);
        }
        let mut out: Vec<LoadedPool> = Vec::new();
        for path in xml_files(&self.config_dir) {
            let Some(def) = read_def(&path, false) else {
                continue;
            };
            if path.file_stem().and_then(|s| s.to_str()) != Some(def.name.as_str()) {
                tracing::error!(file = %path.display(), "pool config file name does not match pool name '{}'", def.name);
                continue;
            }
            let autostart = fs::symlink_metadata(self.autostart_link(&def.name)).is_ok();
            out.push(LoadedPool {
                def,
                persistent: true,
                autostart,
                was_active: false,
                new_def: None,
            });
        }
        for path in xml_files(&self.state_dir) {
            let Some(def) = read_def(&path, true) else {
                continue;
            };
            match out.iter_mut().find(|p| p.def.uuid == def.uuid) {
                Some(p) => {
                    p.was_active = true;
                    let config = std::mem::replace(&mut p.def, def);
                    let mut live = p.def.clone();
                    (live.capacity, live.allocation, live.available) = (0, 0, 0);
                    if config != live {
                        p.new_def = Some(config);
                    }
                }
                None => out.push(LoadedPool {
                    def,
                    persistent: false,
                    autostart: false,
                    was_active: true,
                    new_def: None,
                }),
            }
        }
        out
    }
}
