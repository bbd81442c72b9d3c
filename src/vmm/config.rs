//! `VmConfig`: the versioned description of one guest that the daemon
//! hands to the VMM (as JSON, through a file or an inherited fd).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// The only configuration format version this VMM understands.
pub const CONFIG_VERSION: u32 = 1;

/// Most vCPUs a guest may have (the MADT uses 8-bit APIC IDs).
pub const MAX_VCPUS: u32 = 254;

/// A complete guest description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// Format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Guest name, used in logs.
    pub name: String,
    /// Guest UUID (informational for now).
    #[serde(default)]
    pub uuid: Option<String>,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// vCPU count and topology.
    pub cpus: CpuConfig,
    /// What to boot.
    pub boot: BootConfig,
    /// Where COM1 goes.
    #[serde(default)]
    pub serial: SerialConfig,
    /// Extra devices (virtio devices are added here by later work).
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// What to do when the guest reboots.
    #[serde(default)]
    pub on_reboot: RebootPolicy,
    /// How the VMM confines itself before the guest runs.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// The VNC server showing the display adapter, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnc: Option<VncConfig>,
}

/// A guest's VNC server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VncConfig {
    /// Where it accepts clients.
    pub listeners: Vec<VncListenerConfig>,
    /// VNC authentication with this password; none: no authentication.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub share_policy: VncSharePolicy,
    /// The keyboard layout of clients' plain key events (QEMU's `-k`
    /// names: `de`, `fr`, `en-us`, ...); none: US.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keymap: Option<String>,
}

/// One listening socket of the VNC server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum VncListenerConfig {
    /// A socket bound and listening already, inherited from the daemon.
    Fd {
        fd: i32,
        #[serde(default)]
        websocket: bool,
    },
    /// A TCP address the VMM binds itself (standalone use).
    Tcp {
        address: std::net::SocketAddr,
        #[serde(default)]
        websocket: bool,
    },
    /// A Unix socket path the VMM binds itself (standalone use).
    Unix { path: PathBuf },
}

/// libvirt's `sharePolicy` of a VNC output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VncSharePolicy {
    /// A client asking for exclusive access disconnects the others.
    #[default]
    AllowExclusive,
    /// Every client shares the screen whatever it asks.
    ForceShared,
    /// The client's wish is ignored: always shared.
    Ignore,
}

/// The standard VGA adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VgaConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    /// Framebuffer size in KiB (libvirt's `vram`).
    #[serde(default = "VgaConfig::default_vram_kib")]
    pub vram_kib: u32,
}

impl VgaConfig {
    pub const fn default_vram_kib() -> u32 {
        16 * 1024
    }
}

/// A virtio-gpu device (2D), libvirt's `<video><model type='virtio'/>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    /// The mode the device reports as preferred (display information,
    /// EDID).
    #[serde(default = "GpuConfig::default_xres")]
    pub xres: u32,
    #[serde(default = "GpuConfig::default_yres")]
    pub yres: u32,
    /// Most host memory the guest's resources may take, in MiB.
    #[serde(default = "GpuConfig::default_max_hostmem_mib")]
    pub max_hostmem_mib: u64,
    /// Offer VIRTIO_GPU_F_EDID.
    #[serde(default = "GpuConfig::default_edid")]
    pub edid: bool,
}

impl GpuConfig {
    /// Largest preferred width or height.
    pub const MAX_DIM: u32 = 16384;

    pub const fn default_xres() -> u32 {
        1024
    }
    pub const fn default_yres() -> u32 {
        768
    }
    pub const fn default_max_hostmem_mib() -> u64 {
        256
    }
    pub const fn default_edid() -> bool {
        true
    }

    /// A device with every default.
    pub fn with_defaults() -> Self {
        GpuConfig {
            pci_slot: None,
            xres: Self::default_xres(),
            yres: Self::default_yres(),
            max_hostmem_mib: Self::default_max_hostmem_mib(),
            edid: Self::default_edid(),
        }
    }

    /// Checks the mode and the memory bound.
    pub fn validate(&self) -> Result<()> {
        let dims = 1..=Self::MAX_DIM;
        if !dims.contains(&self.xres) || !dims.contains(&self.yres) {
            return Err(Error::Config(format!(
                "virtio-gpu mode {}x{} is out of range 1..={}",
                self.xres,
                self.yres,
                Self::MAX_DIM
            )));
        }
        if self.max_hostmem_mib == 0 || self.max_hostmem_mib > 64 * 1024 {
            return Err(Error::Config(format!(
                "virtio-gpu max_hostmem_mib {} is out of range 1..=65536",
                self.max_hostmem_mib
            )));
        }
        Ok(())
    }
}

/// The confinement a VMM enters once its machine is built and before
/// any guest code runs (everything off when absent). See
/// `src/vmm/README.md` (Sandbox).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// Install a seccomp filter on every thread.
    #[serde(default)]
    pub seccomp: bool,
    /// Take this identity; without it the VMM stays uid 0, still
    /// without capabilities once confined.
    #[serde(default)]
    pub user: Option<Identity>,
    /// An existing empty directory to mount the VMM's private root on,
    /// in a mount namespace of its own; none keeps the host's mounts.
    #[serde(default)]
    pub jail: Option<PathBuf>,
}

impl SandboxConfig {
    /// Whether any confinement is asked for (privileges are given up
    /// whenever it is).
    pub fn enabled(&self) -> bool {
        self.seccomp || self.user.is_some() || self.jail.is_some()
    }
}

/// A user and group to run as, with its supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub groups: Vec<u32>,
}

/// vCPU count and how they are arranged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuConfig {
    /// vCPUs present at boot.
    pub count: u32,
    /// vCPUs the guest may have while it runs (ACPI CPU hotplug): the
    /// machine is built with this many, those past `count` absent until
    /// plugged in. Absent: `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(default)]
    pub topology: Option<Topology>,
}

/// Sockets × cores × threads; their product must equal the vCPU count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

impl CpuConfig {
    /// The number of vCPUs the machine is built with.
    pub fn max(&self) -> u32 {
        self.max.unwrap_or(self.count)
    }

    /// The topology in force: the configured one, or one socket holding
    /// `max` single-threaded cores.
    pub fn topology(&self) -> Topology {
        self.topology.unwrap_or(Topology {
            sockets: 1,
            cores: self.max(),
            threads: 1,
        })
    }
}

/// What the boot vCPU runs first, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BootConfig {
    /// Direct kernel boot.
    Kernel(KernelBoot),
    /// A BIOS ROM (SeaBIOS) started at the reset vector; it finds the
    /// machine through fw_cfg and boots from the disks.
    Bios(FirmwareBoot),
    /// UEFI: edk2's CloudHv image, an ELF entered through PVH like a
    /// kernel; it reads the VMM's ACPI tables and tries every disk (the
    /// boot order and menu settings do not apply).
    Uefi(FirmwareBoot),
}

/// Direct kernel boot. The kernel format (bzImage or ELF with a PVH note)
/// is detected from the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelBoot {
    pub kernel: PathBuf,
    #[serde(default)]
    pub initrd: Option<PathBuf>,
    #[serde(default)]
    pub cmdline: String,
}

/// Firmware boot: the image and what the firmware is told about booting.
/// Which disks it tries first comes from the devices' `boot_index`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareBoot {
    pub firmware: PathBuf,
    /// Show the boot menu, waiting this many milliseconds for a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub menu_timeout_ms: Option<u32>,
    /// After no device booted, wait this long and try again; absent or
    /// negative: never retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_timeout_ms: Option<i32>,
    /// Only the devices with a `boot_index` may boot.
    #[serde(default)]
    pub strict: bool,
}

impl BootConfig {
    /// Files the VMM opens to boot (the daemon grants access to them).
    pub fn files(&self) -> Vec<&std::path::Path> {
        match self {
            BootConfig::Kernel(k) => std::iter::once(k.kernel.as_path())
                .chain(k.initrd.as_deref())
                .collect(),
            BootConfig::Bios(f) | BootConfig::Uefi(f) => vec![f.firmware.as_path()],
        }
    }
}

/// Backend of the COM1 16550 UART.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SerialConfig {
    /// Output appended to a file; no input.
    File { path: PathBuf },
    /// A new pseudo-terminal; its path is reported in `query-status`.
    Pty,
    /// The master of a pseudo-terminal the VMM inherits as descriptor
    /// `fd` (its slave is `path`): the daemon keeps the terminal across
    /// the VMMs a guest reset goes through, so a console stays connected.
    PtyFd { fd: i32, path: String },
    /// A listening unix socket; one client at a time gets the console.
    Unix { path: PathBuf },
    /// The VMM's own stdin/stdout.
    Stdio,
    /// Output discarded.
    #[default]
    Null,
}

/// A device beyond the fixed platform, tagged by `type`. Every device
/// is a PCI function (virtio-pci, or AHCI for `sata`) on bus 0 at
/// `pci_slot` (1..=31), or at the first free slot from 3 when the slot
/// is not given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DeviceConfig {
    Block(BlockConfig),
    Net(NetConfig),
    Rng(RngConfig),
    Console(ConsoleConfig),
    Balloon(BalloonConfig),
    Vsock(VsockConfig),
    /// virtio-scsi controller with CD-ROM drives.
    Scsi(ScsiConfig),
    /// AHCI (SATA) controller with ATA hard disks and ATAPI CD-ROM
    /// drives; not virtio.
    Sata(SataConfig),
    /// The standard VGA display adapter.
    Vga(VgaConfig),
    /// A virtio-gpu device (2D).
    Gpu(GpuConfig),
    /// A USB 3 (xHCI) controller with USB input devices.
    Xhci(XhciConfig),
    /// A USB 2 (EHCI) controller, with its USB 1.1 (UHCI) companions,
    /// and USB input devices.
    Ehci(EhciConfig),
    /// A virtio-input keyboard, mouse or tablet.
    Input(InputConfig),
}

/// A virtio-input device (virtio 1.2 section 5.8) of one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    pub kind: InputKind,
}

/// What a virtio-input device presents itself as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    Keyboard,
    Mouse,
    Tablet,
}

/// An xHCI controller and the HID devices on its ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XhciConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    #[serde(default)]
    pub devices: Vec<UsbDeviceConfig>,
}

/// ICH9's EHCI at function 7 of its slot and (with `companions`) the
/// three UHCIs at functions 0-2, with the HID devices on its ports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EhciConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    #[serde(default = "EhciConfig::default_companions")]
    pub companions: bool,
    #[serde(default)]
    pub devices: Vec<UsbDeviceConfig>,
}

impl EhciConfig {
    fn default_companions() -> bool {
        true
    }
}

/// A USB input device: its kind and port (1-4 on the xHCI, 1-6 on the
/// EHCI; the first free when none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsbDeviceConfig {
    pub kind: UsbDeviceKind,
    #[serde(default)]
    pub port: Option<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsbDeviceKind {
    Tablet,
    Mouse,
    Keyboard,
}

/// Image format of a disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFormat {
    #[default]
    Raw,
    Qcow2,
}

/// virtio-blk over a file or block device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub readonly: bool,
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub format: DiskFormat,
    #[serde(default)]
    pub pci_slot: Option<u8>,
    /// Position in the firmware's boot order (lowest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<u16>,
}

/// A NIC on a tap: an inherited fd, one inherited fd per queue pair
/// of a multi-queue tap, or a tap name to open (`queues` times).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// What the guest sees: virtio-net (the default) or an e1000.
    #[serde(default, skip_serializing_if = "NetModel::is_virtio")]
    pub model: NetModel,
    #[serde(default)]
    pub tap_fd: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tap_fds: Vec<i32>,
    #[serde(default)]
    pub tap_name: Option<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub pci_slot: Option<u8>,
    /// Queue pairs (1 when absent); with `tap_fds`, one fd each.
    #[serde(default)]
    pub queues: Option<u16>,
    /// Instead of a tap: a connected unix stream socket carrying frames,
    /// each after its length as 4 bytes big-endian (passt, QEMU's
    /// `stream` netdev).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_fd: Option<i32>,
    /// The link starts down (`<link state='down'/>`); virtio only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub link_down: bool,
}

/// The NIC a [`NetConfig`] gives the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetModel {
    /// virtio-net (PCI 1af4:1041).
    #[default]
    Virtio,
    /// The Intel 82540EM (PCI 8086:100e), QEMU's `e1000`: one queue.
    E1000,
}

impl NetModel {
    pub fn is_virtio(&self) -> bool {
        *self == NetModel::Virtio
    }
}

/// virtio-rng fed by getrandom(2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
}

/// virtio-console (one port) with a backend like COM1's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    #[serde(default)]
    pub backend: SerialConfig,
    #[serde(default)]
    pub pci_slot: Option<u8>,
}

/// virtio-balloon with the statistics queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    /// Seconds between statistics requests; 0 turns polling off.
    #[serde(default)]
    pub stats_period: Option<u32>,
}

/// virtio-vsock bridged to unix sockets (hybrid scheme).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VsockConfig {
    pub cid: u64,
    pub uds_path: PathBuf,
    #[serde(default)]
    pub pci_slot: Option<u8>,
}

/// A virtio-scsi controller; each CD-ROM drive is one target (its
/// `unit`, 0..=255) with a single LUN 0.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScsiConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    #[serde(default)]
    pub cdroms: Vec<CdromConfig>,
}

/// An ICH9-compatible AHCI controller (8086:2922, six ports); each hard
/// disk and CD-ROM drive sits on one port (its `unit`, 0..=5, distinct
/// across both lists).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SataConfig {
    #[serde(default)]
    pub pci_slot: Option<u8>,
    #[serde(default)]
    pub cdroms: Vec<CdromConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<SataDiskConfig>,
}

/// An ATA hard disk on a SATA port: 512-byte sectors over a raw or qcow2
/// image, as virtio-blk opens them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SataDiskConfig {
    /// The port, 0..=5.
    #[serde(default)]
    pub unit: u16,
    pub path: PathBuf,
    #[serde(default)]
    pub format: DiskFormat,
    /// Writes fail (the image is opened read-only).
    #[serde(default)]
    pub readonly: bool,
    /// IDENTIFY DEVICE serial number: up to 20 printable ASCII
    /// characters; by default the drive's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Position in the firmware's boot order (lowest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<u16>,
    /// The drive's name; by default `sataC-0-P` as for CD-ROM drives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A CD-ROM drive (read-only, 2048-byte blocks).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdromConfig {
    /// SCSI target on a virtio-scsi controller, port on a SATA one.
    #[serde(default)]
    pub unit: u16,
    /// The image in the drive; none: the drive is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Position in the firmware's boot order (lowest first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_index: Option<u16>,
    /// The name `change-media` uses; by default `scsiC-0-T-0` or
    /// `sataC-0-P` (C counts the controllers of that kind from 0), as
    /// libvirt names the disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// `$body` on the configuration inside any [`DeviceConfig`], bound to `$c`.
macro_rules! each_device_config {
    ($d:expr, $c:ident => $body:expr) => {
        match $d {
            DeviceConfig::Block($c) => $body,
            DeviceConfig::Net($c) => $body,
            DeviceConfig::Rng($c) => $body,
            DeviceConfig::Console($c) => $body,
            DeviceConfig::Balloon($c) => $body,
            DeviceConfig::Vsock($c) => $body,
            DeviceConfig::Scsi($c) => $body,
            DeviceConfig::Sata($c) => $body,
            DeviceConfig::Vga($c) => $body,
            DeviceConfig::Gpu($c) => $body,
            DeviceConfig::Xhci($c) => $body,
            DeviceConfig::Ehci($c) => $body,
            DeviceConfig::Input($c) => $body,
        }
    };
}

impl DeviceConfig {
    /// Its kind as the configuration names it (`"type"`: `block`, `net`, ...).
    pub fn kind(&self) -> String {
        let v = serde_json::to_value(self).unwrap_or_default();
        v.get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("device")
            .to_string()
    }

    /// The slot asked for, if any.
    pub fn pci_slot(&self) -> Option<u8> {
        each_device_config!(self, c => c.pci_slot)
    }

    /// The same, to set (the VMM pins auto-assigned slots before a hot
    /// unplug, so that the other devices keep theirs).
    pub fn pci_slot_mut(&mut self) -> &mut Option<u8> {
        each_device_config!(self, c => &mut c.pci_slot)
    }

    /// The device as a later VMM (a reboot's, a restore's) opens it: the
    /// descriptors it was handed on a hotplug mean nothing there, so a
    /// NIC's taps come anew and a console gets a new pty.
    pub fn forget_descriptors(&mut self) {
        match self {
            DeviceConfig::Net(n) => {
                n.tap_fds.clear();
                n.stream_fd = None;
            }
            DeviceConfig::Console(c) if matches!(c.backend, SerialConfig::PtyFd { .. }) => {
                c.backend = SerialConfig::Pty;
            }
            _ => {}
        }
    }
}

/// Policy on guest reboot. Only `exit` exists: the VMM reports the reboot
/// and exits, and the daemon decides whether to start the guest again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    #[default]
    Exit,
}

impl VmConfig {
    /// Parses and validates a JSON configuration.
    pub fn from_json(text: &str) -> Result<Self> {
        let cfg: VmConfig = serde_json::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks everything that can be checked without touching the host.
    pub fn validate(&self) -> Result<()> {
        if self.version != CONFIG_VERSION {
            return Err(Error::Config(format!(
                "unsupported version {} (this VMM understands version {CONFIG_VERSION})",
                self.version
            )));
        }
        if self.memory_mib == 0 {
            return Err(Error::Config("memory_mib must be at least 1".into()));
        }
        let n = self.cpus.max();
        if n == 0 || n > MAX_VCPUS {
            return Err(Error::Config(format!(
                "vCPU count {n} is out of range 1..={MAX_VCPUS}"
            )));
        }
        if self.cpus.count == 0 || self.cpus.count > n {
            return Err(Error::Config(format!(
                "{} vCPUs present at boot, out of range 1..={n}",
                self.cpus.count
            )));
        }
        let t = self.cpus.topology();
        let product = u64::from(t.sockets) * u64::from(t.cores) * u64::from(t.threads);
        if t.sockets == 0 || t.cores == 0 || t.threads == 0 || product != u64::from(n) {
            return Err(Error::Config(format!(
                "topology {}x{}x{} (sockets x cores x threads) does not match {n} vCPUs",
                t.sockets, t.cores, t.threads
            )));
        }
        match &self.boot {
            BootConfig::Kernel(k) => {
                if k.kernel.as_os_str().is_empty() {
                    return Err(Error::Config("boot.kernel is empty".into()));
                }
                if k.cmdline.contains('\0') {
                    return Err(Error::Config("boot.cmdline contains a NUL byte".into()));
                }
            }
            BootConfig::Bios(f) | BootConfig::Uefi(f) => {
                if f.firmware.as_os_str().is_empty() {
                    return Err(Error::Config("boot.firmware is empty".into()));
                }
            }
        }
        if let Some(jail) = &self.sandbox.jail
            && !jail.is_absolute()
        {
            return Err(Error::Config(format!(
                "sandbox.jail '{}' is not an absolute path",
                jail.display()
            )));
        }
        crate::vmm::virtio::setup::validate(&self.devices)
    }

    /// Host directories the VMM reaches by path after it is jailed: those
    /// of vsock sockets, where host ports are `<uds_path>_<port>`.
    pub fn runtime_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .devices
            .iter()
            .filter_map(|d| match d {
                DeviceConfig::Vsock(v) => v.uds_path.parent().map(|p| p.to_path_buf()),
                _ => None,
            })
            .filter(|p| p.is_absolute())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> &'static str {
        r#"{"version":1,"name":"g","memory_mib":256,
            "cpus":{"count":4,"topology":{"sockets":2,"cores":2,"threads":1}},
            "boot":{"type":"kernel","kernel":"/k","cmdline":"console=ttyS0"},
            "serial":{"type":"file","path":"/tmp/s"}}"#
    }

    #[test]
    fn parses_and_round_trips() {
        let cfg = VmConfig::from_json(sample()).unwrap();
        assert_eq!(cfg.cpus.topology().sockets, 2);
        let again = VmConfig::from_json(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(VmConfig::from_json("{").is_err());
        let bad_topo = sample().replace("\"sockets\":2", "\"sockets\":3");
        assert!(VmConfig::from_json(&bad_topo).is_err());
        let bad_version = sample().replace("\"version\":1", "\"version\":2");
        assert!(VmConfig::from_json(&bad_version).is_err());
        let no_cpus = sample().replace("\"count\":4", "\"count\":0");
        assert!(VmConfig::from_json(&no_cpus).is_err());
    }

    #[test]
    fn a_gpu_takes_defaults_and_checks_its_mode() {
        let with = |dev: &str| {
            sample().replace("\"serial\":", &format!("\"devices\":[{dev}],\"serial\":"))
        };
        let cfg = VmConfig::from_json(&with(r#"{"type":"gpu","pci_slot":5}"#)).unwrap();
        let want = GpuConfig {
            pci_slot: Some(5),
            ..GpuConfig::with_defaults()
        };
        assert_eq!(cfg.devices, vec![DeviceConfig::Gpu(want)]);
        let mode =
            with(r#"{"type":"gpu","xres":1280,"yres":800,"max_hostmem_mib":64,"edid":false}"#);
        let DeviceConfig::Gpu(g) = &VmConfig::from_json(&mode).unwrap().devices[0] else {
            panic!("not a gpu");
        };
        assert_eq!(
            (g.xres, g.yres, g.max_hostmem_mib, g.edid),
            (1280, 800, 64, false)
        );
        assert!(VmConfig::from_json(&with(r#"{"type":"gpu","xres":0}"#)).is_err());
        assert!(VmConfig::from_json(&with(r#"{"type":"gpu","yres":16385}"#)).is_err());
        assert!(VmConfig::from_json(&with(r#"{"type":"gpu","max_hostmem_mib":0}"#)).is_err());
        assert!(VmConfig::from_json(&with(r#"{"type":"gpu","bogus":1}"#)).is_err());
    }

    #[test]
    fn a_nic_is_virtio_unless_its_model_says_e1000() {
        let nic = |json: &str| -> Option<NetConfig> {
            let dev: DeviceConfig = serde_json::from_str(json).ok()?;
            match dev {
                DeviceConfig::Net(n) => Some(n),
                _ => None,
            }
        };
        let e1000 = nic(r#"{"type":"net","model":"e1000","tap_fd":7}"#).unwrap();
        assert_eq!(e1000.model, NetModel::E1000);
        let virtio = nic(r#"{"type":"net","tap_fd":7}"#).unwrap();
        assert_eq!(virtio.model, NetModel::Virtio);
        // The default is left out, so older VMMs read what newer daemons write.
        let json = serde_json::to_string(&DeviceConfig::Net(virtio)).unwrap();
        assert!(!json.contains("model"), "{json}");
        assert!(nic(r#"{"type":"net","model":"rtl8139","tap_fd":7}"#).is_none());
    }
}
