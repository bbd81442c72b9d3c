//! The CD-ROM drives a VM has, by the name the control socket knows them
//! by, and the `change-media` command that ejects or inserts a medium:
//!
//! ```text
//! → {"execute":"change-media","arguments":{"device":"scsi0-0-1-0","path":"/isos/b.iso"}}
//! → {"execute":"change-media","arguments":{"device":"sata0-0-2","path":null}}   (eject)
//! → {"execute":"change-media","arguments":{"device":"sata0-0-2","fd":true}}   (+ SCM_RIGHTS)
//! ```
//!
//! A path is opened by the main thread when the command arrives, which
//! needs the `open` a seccomp-confined VMM no longer has: such a VMM
//! refuses paths (ejecting still works). A confined VMM takes the image as
//! a descriptor sent with the request (`"fd": true`), as the daemon does.

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::cdrom::Cdrom;
use crate::vmm::config::DeviceConfig;

/// A drive reachable from the control socket.
pub struct Drive {
    pub id: String,
    pub unit: Arc<Mutex<Cdrom>>,
}

/// The default name of a virtio-scsi drive: controller, bus, target,
/// LUN, as libvirt names such a disk.
pub fn scsi_id(controller: usize, target: u16) -> String {
    format!("scsi{controller}-0-{target}-0")
}

/// The default name of a SATA drive: controller, bus, port.
pub fn sata_id(controller: usize, port: u16) -> String {
    format!("sata{controller}-0-{port}")
}

/// The names of every device's drives, in device order (empty for
/// devices without drives); a configured `id` wins over the default.
pub fn drive_ids(devices: &[DeviceConfig]) -> Vec<Vec<String>> {
    let (mut scsi, mut sata) = (0, 0);
    devices
        .iter()
        .map(|d| {
            let (drives, n, name): (_, usize, fn(usize, u16) -> String) = match d {
                DeviceConfig::Scsi(c) => {
                    scsi += 1;
                    (&c.cdroms, scsi - 1, scsi_id)
                }
                DeviceConfig::Sata(c) => {
                    sata += 1;
                    (&c.cdroms, sata - 1, sata_id)
                }
                _ => return Vec::new(),
            };
            drives
                .iter()
                .map(|c| c.id.clone().unwrap_or_else(|| name(n, c.unit)))
                .collect()
        })
        .collect()
}

/// What goes into the drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaSource {
    /// Nothing: the medium is ejected.
    Eject,
    /// The image at this path, opened read-only.
    Path(PathBuf),
    /// The descriptor sent with the request.
    Passed,
}

/// A parsed `change-media` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRequest {
    pub device: String,
    pub source: MediaSource,
}

impl MediaRequest {
    /// What a `change-media` command asks: `path` an image or `null` to
    /// eject, or `fd` for the descriptor that came with it.
    pub fn from_command(c: crate::vmm::protocol::ChangeMedia) -> Result<MediaRequest, String> {
        let usage =
            "change-media needs device (a drive's id) and path (an image, or null to eject)";
        let source = match (c.path, c.fd) {
            (None, true) => MediaSource::Passed,
            (Some(None), false) => MediaSource::Eject,
            (Some(Some(p)), false) if !p.is_empty() => MediaSource::Path(p.into()),
            _ => return Err(usage.into()),
        };
        Ok(MediaRequest {
            device: c.device,
            source,
        })
    }

    /// Opens the source. `can_open` is false in a VMM whose seccomp
    /// filter forbids opening files.
    pub fn open(
        &self,
        can_open: bool,
        passed: Option<std::os::fd::OwnedFd>,
    ) -> Result<Option<File>, String> {
        let path = match &self.source {
            MediaSource::Eject => return Ok(None),
            MediaSource::Passed => {
                let fd = passed.ok_or("change-media: no descriptor came with the request")?;
                return Ok(Some(File::from(fd)));
            }
            MediaSource::Path(p) => p,
        };
        if !can_open {
            return Err(format!(
                "cannot open {}: this VMM is confined (seccomp) and opens no files once the \
                 guest runs",
                path.display()
            ));
        }
        let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let kind = file
            .metadata()
            .map_err(|e| format!("cannot inspect {}: {e}", path.display()))?
            .file_type();
        if !(kind.is_file() || kind.is_block_device()) {
            return Err(format!(
                "{} is neither a file nor a block device",
                path.display()
            ));
        }
        Ok(Some(file))
    }
}

/// Carries out `req` on the drive it names.
pub fn change_media(
    drives: &[&Drive],
    req: &MediaRequest,
    can_open: bool,
    passed: Option<std::os::fd::OwnedFd>,
) -> Result<(), String> {
    let drive = drives
        .iter()
        .find(|d| d.id == req.device)
        .ok_or_else(|| format!("no CD-ROM drive '{}'", req.device))?;
    let file = req.open(can_open, passed)?;
    let mut unit = drive.unit.lock().unwrap_or_else(|p| p.into_inner());
    unit.change_media(file)
        .map_err(|e| format!("cannot load the image into {}: {e}", req.device))?;
    tracing::info!(
        "{}: {}",
        req.device,
        match &req.source {
            MediaSource::Eject => "medium ejected".to_string(),
            MediaSource::Path(p) => format!("{} inserted", p.display()),
            MediaSource::Passed => "medium inserted".to_string(),
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::config::{CdromConfig, RngConfig, SataConfig, ScsiConfig};
    use crate::vmm::storage::mmc::INTERFACE_SCSI;
    use serde_json::{Value, json};

    fn cd(unit: u16, id: Option<&str>) -> CdromConfig {
        CdromConfig {
            unit,
            id: id.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn ids_follow_libvirt_unless_given() {
        let devs = [
            DeviceConfig::Scsi(ScsiConfig {
                pci_slot: None,
                cdroms: vec![cd(0, None), cd(3, Some("ide-cd"))],
            }),
            DeviceConfig::Rng(RngConfig::default()),
            DeviceConfig::Sata(SataConfig {
                pci_slot: None,
                cdroms: vec![cd(2, None)],
                ..Default::default()
            }),
            DeviceConfig::Scsi(ScsiConfig {
                pci_slot: None,
                cdroms: vec![cd(1, None)],
            }),
        ];
        assert_eq!(
            drive_ids(&devs),
            vec![
                vec!["scsi0-0-0-0".to_string(), "ide-cd".into()],
                vec![],
                vec!["sata0-0-2".into()],
                vec!["scsi1-0-1-0".into()],
            ]
        );
    }

    /// A request as the VMM gets it off the wire.
    fn parse(v: Option<&Value>) -> Result<MediaRequest, String> {
        use crate::vmm::protocol::{Command, ParseError};
        match Command::parse("change-media", v.cloned()) {
            Ok(Command::ChangeMedia(c)) => MediaRequest::from_command(c),
            Ok(other) => Err(format!("{other:?}")),
            Err(ParseError::BadArguments(e) | ParseError::UnknownCommand(e)) => Err(e),
        }
    }

    #[test]
    fn requests_parse_and_open() {
        let passed = parse(Some(&json!({"device": "d", "fd": true}))).unwrap();
        assert_eq!(passed.source, MediaSource::Passed);
        assert!(passed.open(false, None).is_err());
        let f = File::open("/proc/self/exe").unwrap();
        assert!(passed.open(false, Some(f.into())).unwrap().is_some());
        assert!(parse(Some(&json!({"device": "d", "fd": true, "path": "/x"}))).is_err());
        let r = parse(Some(&json!({"device": "d", "path": null}))).unwrap();
        assert_eq!(r.source, MediaSource::Eject);
        assert_eq!(r.open(false, None).unwrap().map(|_| ()), None);
        let r = parse(Some(&json!({"device": "d", "path": "/nonexistent"}))).unwrap();
        assert!(r.open(false, None).unwrap_err().contains("confined"));
        assert!(r.open(true, None).unwrap_err().contains("cannot open"));
        let dir = parse(Some(&json!({"device": "d", "path": "/"}))).unwrap();
        assert!(dir.open(true, None).unwrap_err().contains("neither"));
        for bad in [
            json!({"device": "d"}),
            json!({"path": null}),
            json!({"device": 1, "path": null}),
            json!({"device": "d", "path": ""}),
            json!({"device": "d", "path": 5}),
        ] {
            assert!(parse(Some(&bad)).is_err(), "{bad}");
        }
        assert!(parse(None).is_err());
    }

    #[test]
    fn change_media_finds_the_drive() {
        let unit = Arc::new(Mutex::new(Cdrom::new("x", INTERFACE_SCSI, None)));
        let d = Drive {
            id: "sata0-0-1".into(),
            unit: unit.clone(),
        };
        let eject = |id: &str| MediaRequest {
            device: id.into(),
            source: MediaSource::Eject,
        };
        assert!(change_media(&[&d], &eject("nope"), true, None).is_err());
        change_media(&[&d], &eject("sata0-0-1"), false, None).unwrap();
        assert!(!unit.lock().unwrap().has_media());
    }
}
