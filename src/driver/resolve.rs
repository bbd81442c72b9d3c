//! Host resolution: from a domain definition to the `VmConfig` the VMM
//! runs, with every host resource checked first (files exist and can be
//! read, backing chains are complete) so that a start fails before
//! anything is made. Taps are only planned here; `hostnet` makes them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::vmm::config::{
    CONFIG_VERSION, CpuConfig, DeviceConfig, DiskFormat, SerialConfig, Topology, VmConfig,
};
use crate::xml::Domain;
use crate::xml::model::InterfaceType;
use crate::xml::model::chardev::{CharSourceType, Chardev};

use super::boot;
use super::devices::{self, SlotMap};
use super::drives::{self, Drives};
use super::fsutil::os_text;
use super::hostnet::NetPlan;

/// A disk of a running domain: where its counters come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRes {
    /// `<target dev>`.
    pub target: String,
    pub path: PathBuf,
    pub format: DiskFormat,
    /// PCI slot of its virtio-blk function.
    pub slot: u8,
}

/// What a start resolved, beyond the VMM's configuration.
pub struct Plan {
    pub config: VmConfig,
    pub disks: Vec<DiskRes>,
    /// One per `<interface>`, in order; their devices in `config` get
    /// tap fds once the taps exist.
    pub nets: Vec<NetPlan>,
    /// The vsock CID given to the guest.
    pub vsock_cid: Option<u32>,
    /// Memory (KiB) the balloon leaves the guest after boot, when the
    /// current memory is below the maximum.
    pub balloon_target_kib: Option<u64>,
    /// The VNC server, whose sockets the start opens.
    pub vnc: Option<super::graphics::VncPlan>,
}

/// What resolution needs to know about the host.
pub struct Context<'a> {
    /// Where the domain's runtime sockets go.
    pub run_dir: &'a Path,
    /// vsock CIDs other running guests have.
    pub cids_in_use: &'a [u32],
    /// Where `<disk type='volume'>` sources are found.
    pub storage: &'a super::storage::Storage,
    /// Where `<interface type='network'>` attaches.
    pub networks: &'a super::network::Networks,
    /// Firmware for guests without a kernel.
    pub firmware: &'a boot::Firmwares,
    /// The host's VNC listen address and password.
    pub graphics: &'a super::graphics::GraphicsDefaults,
}

/// A `<disk type='volume'>` as the file its storage volume is, the way
/// libvirt translates a pool source before it starts a guest; other disks
/// are returned as they are.
pub(super) fn translate_volume<'d>(
    disk: &'d crate::xml::model::disk::Disk,
    storage: &super::storage::Storage,
) -> Result<std::borrow::Cow<'d, crate::xml::model::disk::Disk>> {
    use crate::xml::model::disk::{DiskDriver, DiskType};
    if disk.disk_type != DiskType::Volume {
        return Ok(std::borrow::Cow::Borrowed(disk));
    }
    let src = disk.source.as_ref();
    let (Some(pool), Some(volume)) = (
        src.and_then(|s| s.pool.as_deref()),
        src.and_then(|s| s.volume.as_deref()),
    ) else {
        return Err(Error::xml(format!(
            "missing pool or volume of disk '{}'",
            disk.target.dev
        )));
    };
    let (path, format, vol_type) = storage.volume_source(pool, volume)?;
    let mut file = disk.clone();
    file.disk_type = if vol_type == "dir" {
        DiskType::Dir
    } else {
        DiskType::File
    };
    if let Some(s) = file.source.as_mut() {
        s.path = Some(path);
    }
    let driver = file.driver.get_or_insert_with(DiskDriver::default);
    if driver.format.is_none() {
        driver.format = Some(format);
    }
    Ok(std::borrow::Cow::Owned(file))
}

/// Checks that `path` can be opened for reading, worded as libvirt words it.
pub fn check_readable(path: &str, storage: bool) -> Result<()> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| access_error(path, storage, &e))
}

/// libvirt's error for a file (`storage`: a disk's) that cannot be opened.
pub fn access_error(path: &str, storage: bool, e: &std::io::Error) -> Error {
    let what = if storage {
        format!("Cannot access storage file '{path}'")
    } else {
        format!("Cannot access file '{path}'")
    };
    Error::new(
        ErrorCode::SystemError,
        ErrorDomain::Qemu,
        format!("{what}: {}", os_text(e)),
    )
}

/// The VMM backend of a character device.
pub fn char_backend(dev: &Chardev) -> Result<SerialConfig> {
    let path = dev.sources.first().and_then(|s| s.path.clone());
    Ok(match dev.source_type {
        CharSourceType::Pty => SerialConfig::Pty,
        CharSourceType::Null => SerialConfig::Null,
        CharSourceType::File => SerialConfig::File {
            path: PathBuf::from(
                path.ok_or_else(|| Error::xml("Missing source path attribute for char device"))?,
            ),
        },
        CharSourceType::Unix => SerialConfig::Unix {
            path: PathBuf::from(
                path.ok_or_else(|| Error::xml("Missing source path attribute for char device"))?,
            ),
        },
        other => {
            return Err(Error::unsupported(format!(
                "{} backend '{other}' is not supported by the VMM yet",
                dev.kind
            )));
        }
    })
}

fn has_balloon(def: &Domain) -> bool {
    def.devices
        .memballoon
        .as_ref()
        .is_some_and(devices::balloon_is_virtio)
}

/// Builds the VMM configuration of `def`, checking host files.
pub fn resolve(def: &Domain, ctx: &Context<'_>) -> Result<Plan> {
    let boot = boot::boot_config(def, ctx.firmware)?;
    for file in boot.files() {
        check_readable(&file.to_string_lossy(), false)?;
    }
    let serial = match def.devices.serials.first() {
        Some(s) => char_backend(s)?,
        None => SerialConfig::Null,
    };
    // vCPUs past the current count are there to be plugged in later.
    let max = def.vcpu.max.max(1);
    let count = def.vcpu.current.unwrap_or(max).clamp(1, max);
    let topology = def
        .cpu
        .as_ref()
        .and_then(|c| c.topology.as_ref())
        .filter(|t| t.dies <= 1)
        .map(|t| Topology {
            sockets: t.sockets,
            cores: t.cores,
            threads: t.threads,
        })
        .filter(|t| {
            u64::from(t.sockets) * u64::from(t.cores) * u64::from(t.threads) == u64::from(max)
        });
    let current_kib = if def.current_memory_kib > 0 {
        def.current_memory_kib
    } else {
        def.memory_kib
    };
    // With a balloon the guest gets its maximum and gives the rest back
    // through the balloon, as libvirt does with QEMU; without one it
    // simply has its current memory.
    let (memory_kib, balloon_target_kib) = if has_balloon(def) {
        (
            def.memory_kib,
            (current_kib < def.memory_kib).then_some(current_kib),
        )
    } else {
        (current_kib, None)
    };

    let mut slots = SlotMap::new(def);
    let mut dev_configs: Vec<DeviceConfig> = Vec::new();
    let mut disks = Vec::new();
    let boot_indices = boot::disk_boot_indices(def, &def.devices.disks);
    let mut drives = Drives::default();
    for (disk, boot_index) in def.devices.disks.iter().zip(boot_indices) {
        let disk = translate_volume(disk, ctx.storage)?;
        if drives::on_controller(&disk) {
            drives.add(&disk, boot_index)?;
            continue;
        }
        let (mut cfg, res) = devices::disk(&disk, &mut slots)?;
        cfg.boot_index = boot_index;
        dev_configs.push(DeviceConfig::Block(cfg));
        disks.push(res);
    }
    dev_configs.extend(drives.into_devices(def, &mut slots)?);
    let mut nets = Vec::new();
    for (index, iface) in def.devices.interfaces.iter().enumerate() {
        let target = match iface.iface_type {
            InterfaceType::Network => {
                let name = iface.source.as_ref().and_then(|s| s.network.as_deref());
                Some(ctx.networks.port_target(name.unwrap_or_default())?)
            }
            _ => None,
        };
        let (cfg, mut plan) = devices::interface(iface, index, target.as_ref(), &mut slots)?;
        plan.device = dev_configs.len();
        dev_configs.push(DeviceConfig::Net(cfg));
        nets.push(plan);
    }
    dev_configs.extend(devices::console(def, &mut slots)?);
    if let Some(b) = def.devices.memballoon.as_ref() {
        dev_configs.extend(devices::balloon(b, &mut slots)?);
    }
    for rng in &def.devices.rngs {
        dev_configs.push(devices::rng(rng, &mut slots)?);
    }
    dev_configs.extend(super::graphics::video(def, &mut slots)?);
    dev_configs.extend(super::usb::controller(def, &mut slots)?);
    dev_configs.extend(super::virtio_input::devices(def, &mut slots)?);
    let vnc = super::graphics::plan(def, ctx.run_dir, ctx.graphics)?;
    let mut vsock_cid = None;
    if let Some(v) = def.devices.vsock.as_ref() {
        let uds = ctx.run_dir.join(format!("{}.vsock", def.uuid));
        let (cfg, cid) = devices::vsock(v, uds, ctx.cids_in_use, &mut slots)?;
        vsock_cid = Some(cid);
        dev_configs.push(cfg);
    }

    let cfg = VmConfig {
        version: CONFIG_VERSION,
        name: def.name.clone(),
        uuid: Some(def.uuid.to_string()),
        memory_mib: memory_kib.div_ceil(1024).max(1),
        cpus: CpuConfig {
            count,
            max: (max > count).then_some(max),
            topology,
        },
        boot,
        serial,
        devices: dev_configs,
        on_reboot: Default::default(),
        sandbox: Default::default(),
        vnc: None,
    };
    // Taps are bound later; validate with placeholders so the rest is checked now.
    let mut check = cfg.clone();
    for d in &mut check.devices {
        if let DeviceConfig::Net(n) = d {
            n.tap_name = Some("tap".into());
        }
    }
    check
        .validate()
        .map_err(|e| Error::unsupported(e.to_string()))?;
    Ok(Plan {
        config: cfg,
        disks,
        nets,
        vsock_cid,
        balloon_target_kib,
        vnc,
    })
}

/// Files a start creates for this configuration and a stop removes.
pub fn created_files(cfg: &VmConfig) -> Vec<&Path> {
    let mut out = Vec::new();
    if let SerialConfig::Unix { path } = &cfg.serial {
        out.push(path.as_path());
    }
    for d in &cfg.devices {
        match d {
            DeviceConfig::Console(c) => {
                if let SerialConfig::Unix { path } = &c.backend {
                    out.push(path.as_path());
                }
            }
            DeviceConfig::Vsock(v) => out.push(v.uds_path.as_path()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::config::NetModel;
    use crate::xml::parse_domain;

    fn plan(devs: &str) -> Result<Plan> {
        let def = parse_domain(&format!(
            "<domain type='kvm'><name>t</name><uuid>11111111-2222-3333-4444-555555555555</uuid>\
             <memory unit='MiB'>128</memory><currentMemory unit='MiB'>100</currentMemory>\
             <os><type>hvm</type><kernel>/proc/self/exe</kernel></os><devices>{devs}</devices></domain>"
        ))?;
        // A directory per call: the tests run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oxvirt-resolve-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let storage = crate::driver::storage::Storage::open(dir.join("c"), dir.join("r"))?;
        let networks =
            crate::driver::network::Networks::open(dir.join("nc"), dir.join("nr"), dir.join("nd"))?;
        let plan = resolve(
            &def,
            &Context {
                run_dir: Path::new("/run/x"),
                cids_in_use: &[3],
                storage: &storage,
                firmware: &boot::Firmwares::default(),
                graphics: &crate::driver::graphics::GraphicsDefaults::default(),
                networks: &networks,
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
        plan
    }

    #[tokio::test]
    async fn a_volume_disk_uses_its_volumes_file_and_format() {
        let dir = std::env::temp_dir().join(format!("oxvirt-resolve-vol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let storage = crate::driver::storage::Storage::open(dir.join("c"), dir.join("r")).unwrap();
        let networks =
            crate::driver::network::Networks::open(dir.join("nc"), dir.join("nr"), dir.join("nd"))
                .unwrap();
        let pool_dir = dir.join("pool");
        let pool = storage
            .storage_pool_create_xml(
                &format!(
                    "<pool type='dir'><name>p</name><target><path>{}</path></target></pool>",
                    pool_dir.display()
                ),
                1,
            )
            .await
            .unwrap();
        storage
            .storage_vol_create_xml(
                &pool,
                "<volume><name>d.qcow2</name><capacity>1048576</capacity>\
                 <target><format type='qcow2'/></target></volume>",
                0,
            )
            .await
            .unwrap();
        let def = parse_domain(
            "<domain type='kvm'><name>t</name><memory unit='MiB'>128</memory>\
             <os><type>hvm</type><kernel>/proc/self/exe</kernel></os><devices>\
             <disk type='volume'><source pool='p' volume='d.qcow2'/><target dev='vda' bus='virtio'/></disk>\
             </devices></domain>",
        )
        .unwrap();
        let p = resolve(
            &def,
            &Context {
                run_dir: Path::new("/run/x"),
                cids_in_use: &[],
                storage: &storage,
                firmware: &boot::Firmwares::default(),
                graphics: &crate::driver::graphics::GraphicsDefaults::default(),
                networks: &networks,
            },
        )
        .unwrap();
        assert_eq!(p.disks[0].path, pool_dir.join("d.qcow2"));
        assert_eq!(p.disks[0].format, DiskFormat::Qcow2);
        let missing = def
            .to_xml(crate::xml::FormatFlags::default())
            .replace("d.qcow2", "nope");
        let err = resolve(
            &parse_domain(&missing).unwrap(),
            &Context {
                run_dir: Path::new("/run/x"),
                cids_in_use: &[],
                storage: &storage,
                firmware: &boot::Firmwares::default(),
                graphics: &crate::driver::graphics::GraphicsDefaults::default(),
                networks: &networks,
            },
        )
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "Storage volume not found: no storage vol with matching name 'nope'"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn maps_devices_to_the_vmm() {
        let p = plan(
            "<disk type='file'><driver name='qemu' type='raw'/><source file='/proc/self/exe'/>\
             <target dev='vda' bus='virtio'/><serial>S1</serial><readonly/>\
             <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/></disk>\
             <interface type='bridge'><mac address='52:54:00:11:22:33'/><source bridge='br0'/>\
             <model type='virtio'/></interface>\
             <interface type='ethernet'><target dev='tap7' managed='no'/><model type='e1000'/>\
             <driver queues='4'/></interface>\
             <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\
             <memballoon model='virtio'><stats period='2'/></memballoon>\
             <vsock model='virtio'><cid auto='yes'/></vsock>\
             <console type='pty'><target type='virtio'/></console>",
        )
        .unwrap();
        let c = &p.config;
        assert_eq!(c.memory_mib, 128);
        assert_eq!(p.balloon_target_kib, Some(100 * 1024));
        let DeviceConfig::Block(b) = &c.devices[0] else {
            panic!("{:?}", c.devices)
        };
        assert_eq!(
            (b.readonly, b.serial.as_deref(), b.pci_slot, b.format),
            (true, Some("S1"), Some(5), DiskFormat::Raw)
        );
        assert_eq!(p.disks[0].target, "vda");
        assert_eq!(p.nets.len(), 2);
        assert_eq!(p.nets[0].bridge.as_deref(), Some("br0"));
        assert_eq!(p.nets[0].mac.to_string(), "52:54:00:11:22:33");
        assert!(p.nets[0].managed);
        assert_eq!(p.nets[1].ifname.as_deref(), Some("tap7"));
        assert!(!p.nets[1].managed);
        assert_eq!(p.nets[1].device, 2);
        // virtio-net's queues mean nothing to an e1000 (libvirt drops them).
        assert_eq!(p.nets[1].queues, 1);
        let models: Vec<NetModel> = c
            .devices
            .iter()
            .filter_map(|d| match d {
                DeviceConfig::Net(n) => Some(n.model),
                _ => None,
            })
            .collect();
        assert_eq!(models, [NetModel::Virtio, NetModel::E1000]);
        assert_eq!(p.vsock_cid, Some(4));
        let slots: Vec<Option<u8>> = c.devices.iter().map(|d| d.pci_slot()).collect();
        assert!(slots.iter().all(|s| s.is_some()), "{slots:?}");
        let mut unique = slots.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), slots.len());
        assert!(
            c.devices
                .iter()
                .any(|d| matches!(d, DeviceConfig::Balloon(b) if b.stats_period == Some(2)))
        );
        assert!(
            c.devices
                .iter()
                .any(|d| matches!(d, DeviceConfig::Console(c) if c.backend == SerialConfig::Pty))
        );
    }

    #[test]
    fn refuses_what_the_vmm_cannot_do() {
        let msg = |devs: &str| plan(devs).err().map(|e| e.message).unwrap_or_default();
        assert_eq!(
            msg(
                "<disk type='file'><source file='/nonexistent.img'/><target dev='vda' bus='virtio'/></disk>"
            ),
            "Cannot access storage file '/nonexistent.img': No such file or directory"
        );
        assert_eq!(
            msg(
                "<disk type='file' device='lun'><source file='/proc/self/exe'/><target dev='sda' bus='scsi'/></disk>"
            ),
            "unsupported configuration: disk 'sda': a lun on bus 'scsi' is not supported"
        );
        assert_eq!(
            msg(
                "<disk type='file'><driver name='qemu' type='vmdk'/><source file='/proc/self/exe'/><target dev='vda'/></disk>"
            ),
            "unsupported configuration: disk format 'vmdk' is not supported"
        );
        assert_eq!(
            msg("<interface type='network'><source network='default'/></interface>"),
            "Network not found: no network with matching name 'default'"
        );
        assert_eq!(
            msg("<interface type='mcast'><source address='230.0.0.1' port='5558'/></interface>"),
            "unsupported configuration: interface type 'mcast' is not supported"
        );
        assert_eq!(
            msg("<interface type='user'><model type='virtio'/><driver queues='2'/></interface>"),
            "unsupported configuration: multiple queues are not supported with interface type 'user'"
        );
        for model in ["rtl8139", "e1000e", "ne2k_pci", "pcnet"] {
            assert_eq!(
                msg(&format!(
                    "<interface type='bridge'><source bridge='br0'/><model type='{model}'/></interface>"
                )),
                format!("unsupported configuration: interface model '{model}' is not supported")
            );
        }
        assert_eq!(
            msg("<interface type='user'><model type='e1000'/><driver iommu='on'/></interface>"),
            "unsupported configuration: iommu driver option is only supported for virtio devices"
        );
        assert_eq!(
            msg(
                "<interface type='ethernet'><target dev='t0' managed='no'/><bandwidth/></interface>"
            ),
            "unsupported configuration: interface <bandwidth> is not supported"
        );
        assert_eq!(
            msg(
                "<interface type='ethernet'><target dev='t0' managed='no'/><model type='virtio'/>\
                 <address type='pci' domain='0x0000' bus='0x01' slot='0x01' function='0x0'/></interface>"
            ),
            "unsupported configuration: interface 'net0': only PCI addresses on bus 0, function 0 are supported"
        );
        assert_eq!(
            msg(
                "<rng model='virtio'><backend model='egd' type='tcp'><source mode='connect' host='h' service='1'/></backend></rng>"
            ),
            "unsupported configuration: rng backend 'egd' is not supported"
        );
        assert_eq!(
            msg("<vsock model='virtio'><cid auto='no' address='3'/></vsock>"),
            "operation failed: guest CID 3 is already in use"
        );
    }
}
