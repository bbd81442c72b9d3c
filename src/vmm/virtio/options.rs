//! Direct command-line options for devices (`--disk`, `--net`, `--rng`,
//! `--console`, `--balloon`, `--vsock`, `--scsi-cdrom`, `--sata-cdrom`):
//! `key=value` lists turned into [`DeviceConfig`]s.

use crate::vmm::cli::parse_serial;
use crate::vmm::config::{
    BalloonConfig, BlockConfig, CdromConfig, ConsoleConfig, DeviceConfig, DiskFormat, NetConfig,
    RngConfig, SataConfig, ScsiConfig, VsockConfig,
};
use crate::vmm::error::{Error, Result};

/// Values of the device options, as given.
#[derive(Debug, Default)]
pub struct DeviceArgs<'a> {
    pub disks: &'a [String],
    pub nets: &'a [String],
    pub rngs: &'a [String],
    pub consoles: &'a [String],
    pub balloons: &'a [String],
    pub vsocks: &'a [String],
    pub scsi_cdroms: &'a [String],
    pub sata_cdroms: &'a [String],
}

struct Kv<'a> {
    opt: &'a str,
    items: Vec<(&'a str, &'a str)>,
}

impl<'a> Kv<'a> {
    fn parse(opt: &'a str, s: &'a str, known: &[&str]) -> Result<Self> {
        let mut items = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            if !known.contains(&k) {
                return Err(Error::Config(format!("--{opt}: unknown key '{k}'")));
            }
            items.push((k, v));
        }
        Ok(Kv { opt, items })
    }

    fn get(&self, k: &str) -> Option<&'a str> {
        self.items
            .iter()
            .rev()
            .find(|(x, _)| *x == k)
            .map(|(_, v)| *v)
    }

    fn num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>> {
        self.get(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| Error::Config(format!("--{}: bad {k} '{v}'", self.opt)))
            })
            .transpose()
    }

    fn flag(&self, k: &str) -> Result<bool> {
        match self.get(k) {
            None | Some("off") | Some("false") | Some("0") => Ok(false),
            Some("on") | Some("true") | Some("1") | Some("") => Ok(true),
            Some(v) => Err(Error::Config(format!("--{}: bad {k} '{v}'", self.opt))),
        }
    }
}

/// Drives of one controller kind, grouped by the slot their options
/// name (no slot: one controller at a free slot). `unit_key` is the
/// option naming the drive's unit (`target`, `port`); without it a drive
/// takes the controller's first free unit.
fn cdroms(
    opt: &str,
    unit_key: &str,
    specs: &[String],
) -> Result<Vec<(Option<u8>, Vec<CdromConfig>)>> {
    let mut controllers: Vec<(Option<u8>, Vec<CdromConfig>)> = Vec::new();
    for s in specs {
        let kv = Kv::parse(opt, s, &["path", unit_key, "boot", "slot", "id"])?;
        let slot = kv.num("slot")?;
        let at = match controllers.iter().position(|(s, _)| *s == slot) {
            Some(i) => i,
            None => {
                controllers.push((slot, Vec::new()));
                controllers.len() - 1
            }
        };
        let list = &mut controllers[at].1;
        let unit = match kv.num(unit_key)? {
            Some(u) => u,
            None => (0..=u16::MAX)
                .find(|u| !list.iter().any(|c| c.unit == *u))
                .unwrap_or(u16::MAX),
        };
        list.push(CdromConfig {
            unit,
            path: kv.get("path").filter(|p| !p.is_empty()).map(Into::into),
            boot_index: kv.num("boot")?,
            id: kv.get("id").map(str::to_string),
        });
    }
    Ok(controllers)
}

/// Parses every device option.
pub fn devices(a: &DeviceArgs) -> Result<Vec<DeviceConfig>> {
    let mut out = Vec::new();
    for s in a.disks {
        let kv = Kv::parse(
            "disk",
            s,
            &["path", "ro", "readonly", "serial", "format", "slot", "boot"],
        )?;
        let path = kv
            .get("path")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Config("--disk needs path=".into()))?;
        let format = match kv.get("format") {
            None | Some("raw") => DiskFormat::Raw,
            Some("qcow2") => DiskFormat::Qcow2,
            Some(f) => return Err(Error::Config(format!("--disk: unknown format '{f}'"))),
        };
        out.push(DeviceConfig::Block(BlockConfig {
            path: path.into(),
            readonly: kv.flag("ro")? || kv.flag("readonly")?,
            serial: kv.get("serial").map(str::to_string),
            format,
            pci_slot: kv.num("slot")?,
            boot_index: kv.num("boot")?,
        }));
    }
    for s in a.nets {
        let kv = Kv::parse(
            "net",
            s,
            &["tap", "fd", "fds", "mac", "slot", "queues", "stream"],
        )?;
        let tap_fds = match kv.get("fds") {
            None => Vec::new(),
            Some(v) => v
                .split(':')
                .map(|f| {
                    f.parse()
                        .map_err(|_| Error::Config(format!("--net: bad fds '{v}'")))
                })
                .collect::<Result<Vec<i32>>>()?,
        };
        out.push(DeviceConfig::Net(NetConfig {
            tap_fd: kv.num("fd")?,
            tap_fds,
            tap_name: kv.get("tap").map(str::to_string),
            mac: kv.get("mac").map(str::to_string),
            pci_slot: kv.num("slot")?,
            queues: kv.num("queues")?,
            stream_fd: kv.num("stream")?,
        }));
    }
    for s in a.rngs {
        let kv = Kv::parse("rng", s, &["slot"])?;
        out.push(DeviceConfig::Rng(RngConfig {
            pci_slot: kv.num("slot")?,
        }));
    }
    for s in a.consoles {
        // BACKEND[,slot=N]
        let (backend, rest) = match s.rsplit_once(",slot=") {
            Some((b, n)) => (b, Some(n)),
            None => (s.as_str(), None),
        };
        let pci_slot = rest
            .map(|n| {
                n.parse()
                    .map_err(|_| Error::Config(format!("--console: bad slot '{n}'")))
            })
            .transpose()?;
        out.push(DeviceConfig::Console(ConsoleConfig {
            backend: parse_serial(backend)?,
            pci_slot,
        }));
    }
    for s in a.balloons {
        let kv = Kv::parse("balloon", s, &["slot", "period"])?;
        out.push(DeviceConfig::Balloon(BalloonConfig {
            pci_slot: kv.num("slot")?,
            stats_period: kv.num("period")?,
        }));
    }
    for s in a.vsocks {
        let kv = Kv::parse("vsock", s, &["cid", "path", "slot"])?;
        let cid = kv
            .num("cid")?
            .ok_or_else(|| Error::Config("--vsock needs cid=".into()))?;
        let path = kv
            .get("path")
            .filter(|p| !p.is_empty())
            .ok_or_else(|| Error::Config("--vsock needs path=".into()))?;
        out.push(DeviceConfig::Vsock(VsockConfig {
            cid,
            uds_path: path.into(),
            pci_slot: kv.num("slot")?,
        }));
    }
    for (pci_slot, cdroms) in cdroms("scsi-cdrom", "target", a.scsi_cdroms)? {
        out.push(DeviceConfig::Scsi(ScsiConfig { pci_slot, cdroms }));
    }
    for (pci_slot, cdroms) in cdroms("sata-cdrom", "port", a.sata_cdroms)? {
        out.push(DeviceConfig::Sata(SataConfig { pci_slot, cdroms }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_options() {
        let disks = ["path=/d.qcow2,ro=on,serial=S1,format=qcow2,slot=3".to_string()];
        let nets = ["tap=t0,mac=52:54:00:00:00:01".to_string()];
        let rngs = [String::new()];
        let consoles = ["unix:/tmp/c.sock,slot=7".to_string()];
        let vsocks = ["cid=3,path=/tmp/v.sock".to_string()];
        let a = DeviceArgs {
            disks: &disks,
            nets: &nets,
            rngs: &rngs,
            consoles: &consoles,
            balloons: &[],
            vsocks: &vsocks,
            ..Default::default()
        };
        let d = devices(&a).unwrap();
        assert_eq!(d.len(), 5);
        match &d[0] {
            DeviceConfig::Block(b) => {
                assert!(b.readonly);
                assert_eq!(b.format, DiskFormat::Qcow2);
                assert_eq!(b.pci_slot, Some(3));
            }
            _ => panic!("not a disk"),
        }
        assert_eq!(d[3].pci_slot(), Some(7));
        let bad = ["path=/x,bogus=1".to_string()];
        assert!(
            devices(&DeviceArgs {
                disks: &bad,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn cdrom_options_group_by_slot() {
        let scsi = [
            "path=/a.iso,boot=1".to_string(),
            "target=4".to_string(),
            "path=/b.iso,slot=9,id=cd9".to_string(),
            "path=/c.iso".to_string(),
        ];
        let sata = ["path=/d.iso,port=2,slot=31".to_string()];
        let d = devices(&DeviceArgs {
            scsi_cdroms: &scsi,
            sata_cdroms: &sata,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(d.len(), 3);
        let DeviceConfig::Scsi(first) = &d[0] else {
            panic!("not scsi")
        };
        assert_eq!(first.pci_slot, None);
        let units: Vec<u16> = first.cdroms.iter().map(|c| c.unit).collect();
        assert_eq!(units, vec![0, 4, 1]);
        assert_eq!(first.cdroms[0].boot_index, Some(1));
        assert_eq!(first.cdroms[1].path, None);
        let DeviceConfig::Scsi(second) = &d[1] else {
            panic!("not scsi")
        };
        assert_eq!(
            (second.pci_slot, second.cdroms[0].id.as_deref()),
            (Some(9), Some("cd9"))
        );
        let DeviceConfig::Sata(s) = &d[2] else {
            panic!("not sata")
        };
        assert_eq!((s.pci_slot, s.cdroms[0].unit), (Some(31), 2));
        let bad = ["path=/a.iso,lun=1".to_string()];
        assert!(
            devices(&DeviceArgs {
                scsi_cdroms: &bad,
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn json_devices_and_validation() {
        use crate::vmm::config::VmConfig;
        let base = |devs: &str| {
            format!(
                r#"{{"version":1,"name":"g","memory_mib":64,"cpus":{{"count":1}},
                    "boot":{{"type":"kernel","kernel":"/k"}},"devices":[{devs}]}}"#
            )
        };
        let ok = base(
            r#"{"type":"block","path":"/d","format":"qcow2","pci_slot":3},
               {"type":"net","tap_name":"t0","mac":"52:54:00:00:00:01"},
               {"type":"net","tap_name":"t1","queues":4},
               {"type":"net","tap_fds":[5,6],"queues":2},
               {"type":"rng"},{"type":"console","backend":{"type":"pty"}},
               {"type":"balloon","stats_period":2},
               {"type":"vsock","cid":3,"uds_path":"/v"},
               {"type":"scsi","cdroms":[{"unit":0,"path":"/a.iso","boot_index":1},{"unit":255}]},
               {"type":"sata","pci_slot":31,"cdroms":[{"unit":5,"id":"x"}]}"#,
        );
        assert_eq!(VmConfig::from_json(&ok).unwrap().devices.len(), 10);
        for bad in [
            r#"{"type":"rng","pci_slot":3},{"type":"rng","pci_slot":3}"#,
            r#"{"type":"rng","pci_slot":0}"#,
            r#"{"type":"rng","pci_slot":32}"#,
            r#"{"type":"net","tap_name":"t0","tap_fd":3}"#,
            r#"{"type":"net"}"#,
            r#"{"type":"net","tap_name":"t0","mac":"zz"}"#,
            r#"{"type":"net","tap_name":"t0","queues":0}"#,
            r#"{"type":"net","tap_name":"t0","queues":128}"#,
            r#"{"type":"net","tap_fd":3,"queues":2}"#,
            r#"{"type":"net","tap_fds":[3,4],"queues":3}"#,
            r#"{"type":"net","tap_fds":[3],"tap_name":"t0"}"#,
            r#"{"type":"vsock","cid":2,"uds_path":"/v"}"#,
            r#"{"type":"block","path":"/d","bogus":1}"#,
            r#"{"type":"scsi","cdroms":[{"unit":256}]}"#,
            r#"{"type":"scsi","cdroms":[{"unit":1},{"unit":1}]}"#,
            r#"{"type":"scsi","cdroms":[{"unit":1,"path":""}]}"#,
            r#"{"type":"scsi","cdroms":[{"unit":1,"lun":0}]}"#,
            r#"{"type":"sata","cdroms":[{"unit":6}]}"#,
            r#"{"type":"scsi","cdroms":[{"id":"a"}]},{"type":"sata","cdroms":[{"id":"a"}]}"#,
            r#"{"type":"floppy"}"#,
        ] {
            assert!(VmConfig::from_json(&base(bad)).is_err(), "{bad}");
        }
    }
}
