//! Persistent definitions on disk, in libvirt's layout: `<dir>/<name>.xml`
//! per domain and an `autostart/<name>.xml` symlink for each domain that
//! starts with the daemon.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::xml::{Domain, FormatFlags, parse_domain};

use super::fsutil::{Durability, ensure_dir, set_autostart_link, system_error, write_atomic};

/// The directory of persistent definitions.
#[derive(Clone, Debug)]
pub struct ConfigStore {
    dir: PathBuf,
}

/// One definition read back at start.
pub struct Loaded {
    pub def: Domain,
    pub autostart: bool,
}

impl ConfigStore {
    pub fn new(dir: PathBuf) -> Self {
        ConfigStore { dir }
    }

    fn xml_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.xml"))
    }

    fn autostart_dir(&self) -> PathBuf {
        self.dir.join("autostart")
    }

    fn autostart_link(&self, name: &str) -> PathBuf {
        self.autostart_dir().join(format!("{name}.xml"))
    }

    /// Writes the inactive XML of `def` atomically and durably. The
    /// directory is made again only if it went away.
    pub fn save(&self, def: &Domain) -> Result<()> {
        let path = self.xml_path(&def.name);
        let xml = def.to_xml(FormatFlags {
            secure: true,
            inactive: true,
            ..FormatFlags::default()
        });
        let write = || write_atomic(&path, xml.as_bytes(), Durability::Persistent);
        let written = match write() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                ensure_dir(&self.dir)?;
                write()
            }
            other => other,
        };
        written.map_err(|e| system_error(format!("cannot write file '{}'", path.display()), &e))
    }

    /// Removes the definition and its autostart link.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _ = self.set_autostart(name, false);
        let path = self.xml_path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(system_error(
                format!("cannot remove config {}", path.display()),
                &e,
            )),
        }
    }

    /// Creates or removes the autostart link of `name`.
    pub fn set_autostart(&self, name: &str, on: bool) -> Result<()> {
        set_autostart_link(&self.autostart_link(name), &self.xml_path(name), on)
    }

    fn is_autostart(&self, name: &str) -> bool {
        fs::symlink_metadata(self.autostart_link(name)).is_ok()
    }

    /// Reads every `*.xml` in the directory. A file that does not parse, or
    /// whose name does not match its `<name>`, is logged and skipped.
    pub fn load_all(&self) -> Vec<Loaded> {
        super::fsutil::remove_stale_temps(&self.dir);
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(dir = %self.dir.display(), "cannot read config dir: {e}");
                }
                return out;
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "xml") && p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            match load_one(&path) {
                Ok(def) => {
                    let autostart = self.is_autostart(&def.name);
                    out.push(Loaded { def, autostart });
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), "skipping domain config: {e}");
                }
            }
        }
        out
    }
}

fn load_one(path: &Path) -> Result<Domain> {
    let text = fs::read_to_string(path)
        .map_err(|e| system_error(format!("cannot read file '{}'", path.display()), &e))?;
    let def = parse_domain(&text)?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if stem != def.name {
        return Err(Error::internal(format!(
            "file name '{stem}' does not match domain name '{}'",
            def.name
        )));
    }
    Ok(def)
}
