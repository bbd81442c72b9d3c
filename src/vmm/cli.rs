//! Command line of `oxvirt-vmm`: a configuration from the daemon
//! (`--config PATH` / `--config-fd N`) or one built from direct options.

use std::io::Read;
use std::os::fd::FromRawFd;
use std::path::PathBuf;

use clap::Parser;

use super::config::{
    BootConfig, CONFIG_VERSION, CpuConfig, DeviceConfig, EhciConfig, FirmwareBoot, GpuConfig,
    Identity, InputConfig, InputKind, KernelBoot, SandboxConfig, SerialConfig, UsbDeviceConfig,
    UsbDeviceKind, VgaConfig, VmConfig, VncConfig, VncListenerConfig, XhciConfig,
};
use super::error::{Error, Result};

/// Arguments.
#[derive(Debug, Parser)]
#[command(
    name = "oxvirt-vmm",
    version,
    about = "Runs one KVM guest (the per-guest process of oxvirt)",
    after_help = "Exit status: 0 poweroff, 1 error, 2 reboot, 3 triple fault or crash, \
                  4 KVM internal error, 5 stopped by quit or a signal."
)]
pub struct Args {
    /// Print what KVM reports about the host (TSC frequency) as JSON and exit.
    #[arg(long, exclusive = true)]
    pub probe_host: bool,
    /// Read the VmConfig (JSON) from this file.
    #[arg(long, conflicts_with_all = ["config_fd", "kernel", "bios", "uefi"])]
    pub config: Option<PathBuf>,
    /// Read the VmConfig (JSON) from this inherited file descriptor.
    #[arg(long, conflicts_with_all = ["kernel", "bios", "uefi"])]
    pub config_fd: Option<i32>,
    /// Boot through this BIOS ROM (SeaBIOS) from the disks (`boot=N` orders them).
    #[arg(long, conflicts_with = "kernel")]
    pub bios: Option<PathBuf>,
    /// Boot through this UEFI firmware (edk2 CloudHv, an ELF with a PVH entry).
    #[arg(long, conflicts_with_all = ["kernel", "bios"])]
    pub uefi: Option<PathBuf>,
    /// Start from the guest state read from this file (see `save`): the
    /// machine is built from the configuration as usual, then every vCPU,
    /// device and RAM page is loaded from it before anything runs.
    #[arg(long, conflicts_with = "restore_fd")]
    pub restore: Option<PathBuf>,
    /// The same, from this inherited file descriptor (read from its offset).
    #[arg(long)]
    pub restore_fd: Option<i32>,
    /// Start with the vCPUs paused (`cont` runs them); the guest runs no
    /// instruction before.
    #[arg(long)]
    pub paused: bool,
    /// Control socket: a path, or @name for the abstract namespace.
    #[arg(long)]
    pub control_socket: Option<String>,
    /// Kernel to boot (bzImage, or ELF with a PVH note).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk.
    #[arg(long, requires = "kernel")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = "", requires = "kernel")]
    pub cmdline: String,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u64,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// vCPUs the guest may be given while it runs (CPU hotplug).
    #[arg(long)]
    pub max_cpus: Option<u32>,
    /// Guest name.
    #[arg(long, default_value = "guest")]
    pub name: String,
    /// COM1 backend: stdio, file:PATH, pty, unix:PATH or null.
    #[arg(long, default_value = "stdio")]
    pub serial: String,
    /// virtio-blk: path=P[,ro=on][,serial=S][,format=raw|qcow2][,slot=N] (repeatable).
    #[arg(long)]
    pub disk: Vec<String>,
    /// NIC: tap=NAME|fd=N|fds=N:M:...|stream=N[,model=virtio|e1000][,queues=Q][,mac=M][,slot=N][,link=down]
    /// (repeatable). model=e1000 is an Intel 82540EM with one queue; the
    /// default is virtio-net.
    #[arg(long)]
    pub net: Vec<String>,
    /// virtio-rng: [slot=N].
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub rng: Vec<String>,
    /// virtio-console: BACKEND[,slot=N], BACKEND as for --serial.
    #[arg(long)]
    pub console: Vec<String>,
    /// virtio-balloon: [period=SECONDS][,slot=N].
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub balloon: Vec<String>,
    /// virtio-vsock: cid=N,path=UDS[,slot=N].
    #[arg(long)]
    pub vsock: Vec<String>,
    /// virtio-scsi CD-ROM: [path=ISO][,target=N][,boot=N][,slot=N][,id=NAME] (repeatable;
    /// drives with the same slot share a controller).
    #[arg(long)]
    pub scsi_cdrom: Vec<String>,
    /// SATA (AHCI) CD-ROM: [path=ISO][,port=N][,boot=N][,slot=N][,id=NAME] (repeatable).
    #[arg(long)]
    pub sata_cdrom: Vec<String>,
    /// SATA (AHCI) hard disk: path=IMG[,format=raw|qcow2][,ro=on][,port=N][,boot=N][,slot=N]
    /// [,serial=S][,id=NAME] (repeatable; shares controllers with --sata-cdrom by slot).
    #[arg(long)]
    pub sata_disk: Vec<String>,
    /// Confinement once the guest is built: seccomp[,user=UID:GID][,jail=DIR], or none.
    #[arg(long)]
    pub sandbox: Option<String>,
    /// The standard VGA adapter: [vram=KiB][,slot=N].
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub vga: Option<String>,
    /// A virtio-gpu device: [xres=W][,yres=H][,mem=MIB][,edid=on|off][,slot=N].
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    pub gpu: Option<String>,
    /// A VNC server on HOST:PORT or unix:PATH, or ws:HOST:PORT for a
    /// websocket (repeatable); implies --vga unless --gpu is given.
    #[arg(long)]
    pub vnc: Vec<String>,
    /// VNC authentication with this password.
    #[arg(long, requires = "vnc")]
    pub vnc_password: Option<String>,
    /// The keyboard layout of VNC clients' plain key events (de, fr,
    /// en-gb, ... as QEMU's -k names them); US without it.
    #[arg(long, requires = "vnc")]
    pub vnc_keymap: Option<String>,
    /// Firmware shows its boot menu, waiting this many milliseconds.
    #[arg(long)]
    pub boot_menu: Option<u32>,
    /// An xHCI controller with these USB input devices, in port order:
    /// tablet, mouse or keyboard, comma-separated.
    #[arg(long)]
    pub xhci: Option<String>,
    /// ICH9's EHCI with its three UHCI companions and these USB input
    /// devices, in port order (as --xhci).
    #[arg(long)]
    pub ehci: Option<String>,
    /// A virtio-input device: keyboard, mouse or tablet[,slot=N] (repeatable).
    #[arg(long)]
    pub virtio_input: Vec<String>,
}

/// Parses a `--virtio-input` value.
fn parse_virtio_input(s: &str) -> Result<InputConfig> {
    let bad = || Error::Config(format!("bad --virtio-input '{s}'"));
    let mut items = s.split(',');
    let kind = match items.next() {
        Some("keyboard") => InputKind::Keyboard,
        Some("mouse") => InputKind::Mouse,
        Some("tablet") => InputKind::Tablet,
        _ => return Err(bad()),
    };
    let mut pci_slot = None;
    for item in items {
        match item.split_once('=') {
            Some(("slot", v)) => pci_slot = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    Ok(InputConfig { pci_slot, kind })
}

/// Parses the USB devices of an `--xhci` or `--ehci` value.
fn parse_usb_devices(option: &str, s: &str) -> Result<Vec<UsbDeviceConfig>> {
    s.split(',')
        .filter(|i| !i.is_empty())
        .map(|item| {
            let kind = match item {
                "tablet" => UsbDeviceKind::Tablet,
                "mouse" => UsbDeviceKind::Mouse,
                "keyboard" => UsbDeviceKind::Keyboard,
                _ => return Err(Error::Config(format!("bad --{option} device '{item}'"))),
            };
            Ok(UsbDeviceConfig { kind, port: None })
        })
        .collect()
}

/// Parses a `--vga` value.
fn parse_vga(s: &str) -> Result<VgaConfig> {
    let mut cfg = VgaConfig {
        pci_slot: None,
        vram_kib: VgaConfig::default_vram_kib(),
    };
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let bad = || Error::Config(format!("bad --vga item '{item}'"));
        match item.split_once('=') {
            Some(("vram", v)) => cfg.vram_kib = v.parse().map_err(|_| bad())?,
            Some(("slot", v)) => cfg.pci_slot = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    Ok(cfg)
}

/// Parses a `--gpu` value.
fn parse_gpu(s: &str) -> Result<GpuConfig> {
    let mut cfg = GpuConfig::with_defaults();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let bad = || Error::Config(format!("bad --gpu item '{item}'"));
        match item.split_once('=') {
            Some(("xres", v)) => cfg.xres = v.parse().map_err(|_| bad())?,
            Some(("yres", v)) => cfg.yres = v.parse().map_err(|_| bad())?,
            Some(("mem", v)) => cfg.max_hostmem_mib = v.parse().map_err(|_| bad())?,
            Some(("edid", "on")) => cfg.edid = true,
            Some(("edid", "off")) => cfg.edid = false,
            Some(("slot", v)) => cfg.pci_slot = Some(v.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        }
    }
    Ok(cfg)
}

/// Parses a `--vnc` value.
fn parse_vnc_listener(s: &str) -> Result<VncListenerConfig> {
    let bad = || Error::Config(format!("bad --vnc address '{s}'"));
    if let Some(path) = s.strip_prefix("unix:") {
        return Ok(VncListenerConfig::Unix { path: path.into() });
    }
    let (websocket, addr) = match s.strip_prefix("ws:") {
        Some(a) => (true, a),
        None => (false, s),
    };
    Ok(VncListenerConfig::Tcp {
        address: addr.parse().map_err(|_| bad())?,
        websocket,
    })
}

/// Parses a `--sandbox` value.
pub fn parse_sandbox(s: &str) -> Result<SandboxConfig> {
    let mut cfg = SandboxConfig::default();
    for item in s.split(',').filter(|i| !i.is_empty()) {
        let bad = || Error::Config(format!("bad --sandbox item '{item}'"));
        match item.split_once('=') {
            None if item == "seccomp" => cfg.seccomp = true,
            None if item == "none" => cfg = SandboxConfig::default(),
            Some(("user", v)) => {
                let (u, g) = v.split_once(':').ok_or_else(bad)?;
                cfg.user = Some(Identity {
                    uid: u.parse().map_err(|_| bad())?,
                    gid: g.parse().map_err(|_| bad())?,
                    groups: Vec::new(),
                });
            }
            Some(("jail", v)) if !v.is_empty() => cfg.jail = Some(v.into()),
            _ => return Err(bad()),
        }
    }
    Ok(cfg)
}

/// Parses a `--serial` value.
pub fn parse_serial(s: &str) -> Result<SerialConfig> {
    Ok(match s {
        "stdio" => SerialConfig::Stdio,
        "pty" => SerialConfig::Pty,
        "null" | "none" => SerialConfig::Null,
        _ => {
            if let Some(p) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
                SerialConfig::File { path: p.into() }
            } else if let Some(p) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
                SerialConfig::Unix { path: p.into() }
            } else {
                return Err(Error::Config(format!(
                    "unknown serial backend '{s}' (use stdio, file:PATH, pty, unix:PATH or null)"
                )));
            }
        }
    })
}

impl Args {
    /// The configuration these arguments describe.
    /// The state file to start from, opened (or taken over from the fd).
    pub fn restore_source(&self) -> Result<Option<std::fs::File>> {
        if let Some(path) = &self.restore {
            return std::fs::File::open(path)
                .map(Some)
                .map_err(|source| Error::ConfigRead {
                    what: path.display().to_string(),
                    source,
                });
        }
        let Some(fd) = self.restore_fd else {
            return Ok(None);
        };
        // SAFETY: fcntl(F_GETFD) only checks that the fd is open.
        if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(Error::Config(format!("--restore-fd {fd} is not open")));
        }
        // SAFETY: the fd is open (checked above) and was handed to this
        // process to be consumed; nothing else in the process uses it.
        Ok(Some(unsafe { std::fs::File::from_raw_fd(fd) }))
    }

    pub fn to_config(&self) -> Result<VmConfig> {
        let text = if let Some(path) = &self.config {
            std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
                what: path.display().to_string(),
                source,
            })?
        } else if let Some(fd) = self.config_fd {
            if fd < 0 {
                return Err(Error::Config(format!("bad fd {fd}")));
            }
            // SAFETY: fcntl(F_GETFD) only checks that the fd is open.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(Error::ConfigRead {
                    what: format!("fd {fd}"),
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: the fd is open (checked above) and was handed to this
            // process to be consumed; nothing else in the process uses it.
            let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
            let mut s = String::new();
            f.read_to_string(&mut s)
                .map_err(|source| Error::ConfigRead {
                    what: format!("fd {fd}"),
                    source,
                })?;
            s
        } else if self.kernel.is_some() || self.bios.is_some() || self.uefi.is_some() {
            let firmware = |path: &PathBuf| FirmwareBoot {
                firmware: path.clone(),
                menu_timeout_ms: self.boot_menu,
                reboot_timeout_ms: None,
                strict: false,
            };
            let boot = match (&self.kernel, &self.uefi) {
                (Some(kernel), _) => BootConfig::Kernel(KernelBoot {
                    kernel: kernel.clone(),
                    initrd: self.initrd.clone(),
                    cmdline: self.cmdline.clone(),
                }),
                (None, Some(uefi)) => BootConfig::Uefi(firmware(uefi)),
                (None, None) => BootConfig::Bios(firmware(&self.bios.clone().unwrap_or_default())),
            };
            let cfg = VmConfig {
                version: CONFIG_VERSION,
                name: self.name.clone(),
                uuid: None,
                memory_mib: self.memory,
                cpus: CpuConfig {
                    count: self.cpus,
                    max: self.max_cpus,
                    topology: None,
                },
                boot,
                serial: parse_serial(&self.serial)?,
                devices: crate::vmm::virtio::options::devices(
                    &crate::vmm::virtio::options::DeviceArgs {
                        disks: &self.disk,
                        nets: &self.net,
                        rngs: &self.rng,
                        consoles: &self.console,
                        balloons: &self.balloon,
                        vsocks: &self.vsock,
                        scsi_cdroms: &self.scsi_cdrom,
                        sata_cdroms: &self.sata_cdrom,
                        sata_disks: &self.sata_disk,
                    },
                )?,
                on_reboot: Default::default(),
                sandbox: self
                    .sandbox
                    .as_deref()
                    .map(parse_sandbox)
                    .transpose()?
                    .unwrap_or_default(),
                vnc: None,
            };
            let mut cfg = cfg;
            if self.vga.is_some() || (!self.vnc.is_empty() && self.gpu.is_none()) {
                cfg.devices.push(DeviceConfig::Vga(parse_vga(
                    self.vga.as_deref().unwrap_or(""),
                )?));
            }
            if let Some(g) = &self.gpu {
                cfg.devices.push(DeviceConfig::Gpu(parse_gpu(g)?));
            }
            if let Some(x) = &self.xhci {
                cfg.devices.push(DeviceConfig::Xhci(XhciConfig {
                    pci_slot: None,
                    devices: parse_usb_devices("xhci", x)?,
                }));
            }
            if let Some(x) = &self.ehci {
                cfg.devices.push(DeviceConfig::Ehci(EhciConfig {
                    pci_slot: None,
                    companions: true,
                    devices: parse_usb_devices("ehci", x)?,
                }));
            }
            for v in &self.virtio_input {
                cfg.devices
                    .push(DeviceConfig::Input(parse_virtio_input(v)?));
            }
            if !self.vnc.is_empty() {
                cfg.vnc = Some(VncConfig {
                    listeners: self
                        .vnc
                        .iter()
                        .map(|v| parse_vnc_listener(v))
                        .collect::<Result<_>>()?,
                    password: self.vnc_password.clone(),
                    share_policy: Default::default(),
                    keymap: self.vnc_keymap.clone(),
                });
            }
            cfg.validate()?;
            return Ok(cfg);
        } else {
            return Err(Error::Config(
                "nothing to run: give --config, --config-fd, --kernel, --bios or --uefi".into(),
            ));
        };
        let mut cfg = VmConfig::from_json(&text)?;
        if let Some(s) = &self.sandbox {
            cfg.sandbox = parse_sandbox(s)?;
            cfg.validate()?;
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_specs() {
        assert_eq!(parse_serial("pty").unwrap(), SerialConfig::Pty);
        assert_eq!(
            parse_serial("file:/x").unwrap(),
            SerialConfig::File { path: "/x".into() }
        );
        assert!(parse_serial("file:").is_err());
        assert!(parse_serial("tcp:1").is_err());
    }

    #[test]
    fn direct_options_build_a_config() {
        let a = Args::parse_from([
            "oxvirt-vmm",
            "--kernel",
            "/k",
            "--cpus",
            "2",
            "--serial",
            "null",
        ]);
        let c = a.to_config().unwrap();
        assert_eq!(c.cpus.count, 2);
        assert_eq!(c.serial, SerialConfig::Null);
        let none = Args::parse_from(["oxvirt-vmm"]);
        assert!(none.to_config().is_err());
        let inputs = Args::parse_from([
            "oxvirt-vmm",
            "--kernel",
            "/k",
            "--virtio-input",
            "keyboard",
            "--virtio-input",
            "tablet,slot=9",
        ]);
        let devices = inputs.to_config().unwrap().devices;
        assert_eq!(
            devices,
            [
                DeviceConfig::Input(InputConfig {
                    pci_slot: None,
                    kind: InputKind::Keyboard
                }),
                DeviceConfig::Input(InputConfig {
                    pci_slot: Some(9),
                    kind: InputKind::Tablet
                }),
            ]
        );
        assert!(parse_virtio_input("joystick").is_err());
        assert!(parse_virtio_input("mouse,port=1").is_err());
        let none = Args::parse_from(["oxvirt-vmm"]);
        assert!(none.to_config().is_err());
    }

    #[test]
    fn gpu_option_replaces_the_implied_vga() {
        let base = ["oxvirt-vmm", "--kernel", "/k", "--vnc", "unix:/v"];
        let kinds = |extra: &[&str]| {
            let a = Args::parse_from(base.iter().chain(extra));
            a.to_config()
                .unwrap()
                .devices
                .into_iter()
                .map(|d| match d {
                    DeviceConfig::Vga(_) => "vga".to_string(),
                    DeviceConfig::Gpu(g) => format!("gpu {}x{} {}", g.xres, g.yres, g.edid),
                    _ => "other".to_string(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&[]), ["vga"]);
        assert_eq!(kinds(&["--gpu"]), ["gpu 1024x768 true"]);
        assert_eq!(
            kinds(&["--gpu", "xres=800,yres=600,edid=off,mem=32"]),
            ["gpu 800x600 false"]
        );
        assert_eq!(kinds(&["--gpu", "--vga"]), ["vga", "gpu 1024x768 true"]);
        assert!(parse_gpu("xres=wide").is_err());
        assert!(parse_gpu("edid=maybe").is_err());
        assert_eq!(parse_gpu("slot=7").unwrap().pci_slot, Some(7));
    }
}
