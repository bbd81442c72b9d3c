//! Direct command-line options for devices (`--disk`, `--net`, `--rng`,
//! `--console`, `--balloon`, `--vsock`, `--scsi-cdrom`, `--sata-cdrom`,
//! `--sata-disk`): `key=value` lists turned into [`DeviceConfig`]s.

use crate::vmm::cli::parse_serial;
use crate::vmm::config::{
    BalloonConfig, BlockConfig, CdromConfig, ConsoleConfig, DeviceConfig, DiskFormat, NetConfig,
    NetModel, RngConfig, SataConfig, SataDiskConfig, ScsiConfig, VsockConfig,
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
    pub sata_disks: &'a [String],
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

/// A drive option: the controller slot and unit it names (if any) and
/// the drive.
type Placed<T> = (Option<u8>, Option<u16>, T);

/// A controller: the slot its drives name (if any) and the drives with
/// their units.
type Controller<U, T> = (Option<u8>, Vec<(U, T)>);

/// Drives grouped by the slot their options name (no slot: one
/// controller at a free slot), controllers in the order they first
/// appear. A drive without a unit takes the first unit of its controller
/// that no drive names, in option order.
fn group<T>(drives: Vec<Placed<T>>) -> Vec<Controller<u16, T>> {
    let mut controllers: Vec<Controller<Option<u16>, T>> = Vec::new();
    for (slot, unit, d) in drives {
        match controllers.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, list)) => list.push((unit, d)),
            None => controllers.push((slot, vec![(unit, d)])),
        }
    }
    controllers
        .into_iter()
        .map(|(slot, list)| {
            let mut taken: std::collections::BTreeSet<u16> =
                list.iter().filter_map(|(u, _)| *u).collect();
            let list = list
                .into_iter()
                .map(|(unit, d)| {
                    let unit = unit.unwrap_or_else(|| {
                        let free = (0..=u16::MAX)
                            .find(|u| !taken.contains(u))
                            .unwrap_or(u16::MAX);
                        taken.insert(free);
                        free
                    });
                    (unit, d)
                })
                .collect();
            (slot, list)
        })
        .collect()
}

/// CD-ROM drive options; `unit_key` is the option naming the drive's
/// unit (`target`, `port`).
fn cdroms(opt: &str, unit_key: &str, specs: &[String]) -> Result<Vec<Placed<CdromConfig>>> {
    specs
        .iter()
        .map(|s| {
            let kv = Kv::parse(opt, s, &["path", unit_key, "boot", "slot", "id"])?;
            Ok((
                kv.num("slot")?,
                kv.num(unit_key)?,
                CdromConfig {
                    unit: 0,
                    path: kv.get("path").filter(|p| !p.is_empty()).map(Into::into),
                    boot_index: kv.num("boot")?,
                    id: kv.get("id").map(str::to_string),
                },
            ))
        })
        .collect()
}

/// A disk image's `format`.
fn disk_format(opt: &str, kv: &Kv) -> Result<DiskFormat> {
    match kv.get("format") {
        None | Some("raw") => Ok(DiskFormat::Raw),
        Some("qcow2") => Ok(DiskFormat::Qcow2),
        Some(f) => Err(Error::Config(format!("--{opt}: unknown format '{f}'"))),
    }
}

/// `--sata-disk` options.
fn sata_disks(specs: &[String]) -> Result<Vec<Placed<SataDiskConfig>>> {
    let keys = [
        "path", "format", "ro", "readonly", "port", "boot", "slot", "serial", "id",
    ];
    specs
        .iter()
        .map(|s| {
            let kv = Kv::parse("sata-disk", s, &keys)?;
            let path = kv
                .get("path")
                .filter(|p| !p.is_empty())
                .ok_or_else(|| Error::Config("--sata-disk needs path=".into()))?;
            Ok((
                kv.num("slot")?,
                kv.num("port")?,
                SataDiskConfig {
                    unit: 0,
                    path: path.into(),
                    format: disk_format("sata-disk", &kv)?,
                    readonly: kv.flag("ro")? || kv.flag("readonly")?,
                    serial: kv.get("serial").map(str::to_string),
                    boot_index: kv.num("boot")?,
                    id: kv.get("id").map(str::to_string),
                },
            ))
        })
        .collect()
}

/// A drive of a SATA controller.
enum SataDrive {
    Disk(SataDiskConfig),
    Cdrom(CdromConfig),
}

/// SATA controllers from `--sata-disk` and `--sata-cdrom`: disks take
/// the free ports before CD-ROM drives.
fn sata(disks: &[String], cds: &[String]) -> Result<Vec<SataConfig>> {
    let drives = sata_disks(disks)?
        .into_iter()
        .map(|(s, u, d)| (s, u, SataDrive::Disk(d)))
        .chain(
            cdroms("sata-cdrom", "port", cds)?
                .into_iter()
                .map(|(s, u, c)| (s, u, SataDrive::Cdrom(c))),
        )
        .collect();
    Ok(group(drives)
        .into_iter()
        .map(|(pci_slot, list)| {
            let mut c = SataConfig {
                pci_slot,
                ..Default::default()
            };
            for (unit, d) in list {
                match d {
                    SataDrive::Disk(d) => c.disks.push(SataDiskConfig { unit, ..d }),
                    SataDrive::Cdrom(cd) => c.cdroms.push(CdromConfig { unit, ..cd }),
                }
            }
            c
        })
        .collect())
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
        let format = disk_format("disk", &kv)?;
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
            &[
                "tap", "fd", "fds", "mac", "slot", "queues", "stream", "model", "link",
            ],
        )?;
        let model = match kv.get("model") {
            None | Some("virtio") => NetModel::Virtio,
            Some("e1000") => NetModel::E1000,
            Some(m) => return Err(Error::Config(format!("--net: unknown model '{m}'"))),
        };
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
            model,
            tap_fd: kv.num("fd")?,
            tap_fds,
            tap_name: kv.get("tap").map(str::to_string),
            mac: kv.get("mac").map(str::to_string),
            pci_slot: kv.num("slot")?,
            queues: kv.num("queues")?,
            stream_fd: kv.num("stream")?,
            link_down: match kv.get("link") {
                None | Some("up") => false,
                Some("down") => true,
                Some(l) => {
                    return Err(Error::Config(format!(
                        "--net: link '{l}' is not up or down"
                    )));
                }
            },
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
    for (pci_slot, list) in group(cdroms("scsi-cdrom", "target", a.scsi_cdroms)?) {
        let cdroms = list
            .into_iter()
            .map(|(unit, cd)| CdromConfig { unit, ..cd })
            .collect();
        out.push(DeviceConfig::Scsi(ScsiConfig { pci_slot, cdroms }));
    }
    for c in sata(a.sata_disks, a.sata_cdroms)? {
        out.push(DeviceConfig::Sata(c));
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
    fn net_model() {
        let nets = [
            "tap=t0,model=e1000,slot=4".to_string(),
            "tap=t1,model=virtio".to_string(),
            "tap=t2".to_string(),
        ];
        let d = devices(&DeviceArgs {
            nets: &nets,
            ..Default::default()
        })
        .unwrap();
        let models: Vec<NetModel> = d
            .iter()
            .map(|d| match d {
                DeviceConfig::Net(n) => n.model,
                _ => panic!("not a NIC"),
            })
            .collect();
        assert_eq!(
            models,
            [NetModel::E1000, NetModel::Virtio, NetModel::Virtio]
        );
        let bad = ["tap=t0,model=rtl8139".to_string()];
        let e = devices(&DeviceArgs {
            nets: &bad,
            ..Default::default()
        })
        .unwrap_err();
        assert!(e.to_string().contains("unknown model 'rtl8139'"), "{e}");
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
    fn sata_disks_share_controllers_with_cdroms() {
        let disks = [
            "path=/a.raw,boot=1,serial=S1".to_string(),
            "path=/b.qcow2,format=qcow2,ro=on,port=1,slot=9,id=b".to_string(),
            "path=/c.raw,slot=9".to_string(),
        ];
        // A CD-ROM drive naming port 0 of slot 9 keeps it: the disk without
        // a port gets 2 (0 and 1 are named).
        let cds = ["port=0,slot=9".to_string(), "path=/d.iso".to_string()];
        let d = devices(&DeviceArgs {
            sata_disks: &disks,
            sata_cdroms: &cds,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(d.len(), 2);
        let DeviceConfig::Sata(first) = &d[0] else {
            panic!("not sata")
        };
        assert_eq!(first.pci_slot, None);
        assert_eq!(first.disks[0].unit, 0);
        assert_eq!(first.disks[0].serial.as_deref(), Some("S1"));
        assert_eq!(first.disks[0].boot_index, Some(1));
        assert_eq!(first.cdroms[0].unit, 1, "disks take ports first");
        let DeviceConfig::Sata(second) = &d[1] else {
            panic!("not sata")
        };
        assert_eq!(second.pci_slot, Some(9));
        let b = &second.disks[0];
        assert_eq!((b.unit, b.readonly, b.format), (1, true, DiskFormat::Qcow2));
        assert_eq!(b.id.as_deref(), Some("b"));
        assert_eq!(second.disks[1].unit, 2);
        assert_eq!(second.cdroms[0].unit, 0);
        for bad in [
            "port=1",
            "path=/a,format=vmdk",
            "path=/a,lun=0",
            "path=/a,ro=maybe",
        ] {
            let bad = [bad.to_string()];
            assert!(
                devices(&DeviceArgs {
                    sata_disks: &bad,
                    ..Default::default()
                })
                .is_err(),
                "{bad:?}"
            );
        }
        // Two drives on one port fail validation, not parsing.
        let clash = ["path=/a,port=2".to_string()];
        let cd = ["port=2".to_string()];
        let d = devices(&DeviceArgs {
            sata_disks: &clash,
            sata_cdroms: &cd,
            ..Default::default()
        })
        .unwrap();
        assert!(crate::vmm::virtio::setup::validate(&d).is_err());
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
               {"type":"sata","pci_slot":31,"cdroms":[{"unit":5,"id":"x"}],
                "disks":[{"unit":0,"path":"/d.raw"},
                         {"unit":1,"path":"/e.qcow2","format":"qcow2","readonly":true,
                          "serial":"QM00001","boot_index":2,"id":"e"}]}"#,
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
            r#"{"type":"sata","disks":[{"unit":6,"path":"/d"}]}"#,
            r#"{"type":"sata","disks":[{"unit":1,"path":""}]}"#,
            r#"{"type":"sata","disks":[{"unit":1}]}"#,
            r#"{"type":"sata","disks":[{"unit":1,"path":"/d","lun":0}]}"#,
            r#"{"type":"sata","disks":[{"unit":1,"path":"/d"},{"unit":1,"path":"/e"}]}"#,
            r#"{"type":"sata","cdroms":[{"unit":3}],"disks":[{"unit":3,"path":"/d"}]}"#,
            r#"{"type":"sata","disks":[{"path":"/d","serial":"twenty-one-characters"}]}"#,
            r#"{"type":"sata","disks":[{"path":"/d","serial":"caf\u00e9"}]}"#,
            r#"{"type":"sata","cdroms":[{"unit":1}],"disks":[{"path":"/d","id":"sata0-0-1"}]}"#,
            r#"{"type":"scsi","cdroms":[{"id":"a"}]},{"type":"sata","cdroms":[{"id":"a"}]}"#,
            r#"{"type":"floppy"}"#,
        ] {
            assert!(VmConfig::from_json(&base(bad)).is_err(), "{bad}");
        }
    }
}
