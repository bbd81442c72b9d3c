//! A guest's screen as libvirt's QEMU driver sets it up: the display
//! adapter, and a VNC server on the address (127.0.0.1 unless the XML
//! says otherwise) or Unix socket the definition names, its port the
//! first free one from 5900 (websockets from 5700) when automatic.
//!
//! The daemon binds the sockets and the VMM inherits them, so a confined
//! VMM needs no network access, a port is never raced for between
//! choosing it and listening on it, and the port stays the guest's across
//! the VMMs of its reboots.

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::vmm::config::{
    DeviceConfig, GpuConfig, VgaConfig, VmConfig, VncConfig, VncListenerConfig, VncSharePolicy,
};
use crate::xml::model::Domain;
use crate::xml::model::display::{Graphics, GraphicsType, Listen, Video, VideoModel};

use super::devices::{SlotMap, not_supported};
use super::fsutil::system_error;

/// libvirt's `remote_display_port_min`/`max` (qemu.conf).
const VNC_PORTS: std::ops::RangeInclusive<u16> = 5900..=65535;
/// libvirt's `remote_websocket_port_min`/`max`.
const WEBSOCKET_PORTS: std::ops::RangeInclusive<u16> = 5700..=65535;
/// libvirt's `vnc_listen` default.
pub const DEFAULT_VNC_LISTEN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// The host's VNC settings (libvirt's `qemu.conf`: `vnc_listen`, the
/// address of servers whose XML names none, and `vnc_password`, the
/// password of those whose XML sets none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphicsDefaults {
    pub vnc_listen: IpAddr,
    pub vnc_password: Option<String>,
}

impl Default for GraphicsDefaults {
    fn default() -> Self {
        GraphicsDefaults {
            vnc_listen: DEFAULT_VNC_LISTEN,
            vnc_password: None,
        }
    }
}

/// Where a VNC server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VncListen {
    /// A TCP address; `from_config` when the XML named none.
    Address { ip: IpAddr, from_config: bool },
    /// A Unix socket; `generated` when the XML named no path.
    Socket { path: PathBuf, generated: bool },
    /// No listener: clients only through a passed fd (none here).
    None,
}

/// What a start opens for a guest's VNC server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VncPlan {
    pub listen: VncListen,
    /// A fixed port, or none for the first free one.
    pub port: Option<u16>,
    /// No websocket, or one on a fixed port (`Some(Some)`) or the first
    /// free one (`Some(None)`, libvirt's `websocket='-1'`).
    pub websocket: Option<Option<u16>>,
    pub password: Option<String>,
    pub share_policy: VncSharePolicy,
    /// `keymap`: the layout clients' plain key events are typed on.
    pub keymap: Option<String>,
}

/// The display adapter of `def` as the VMM builds it.
pub fn video(def: &Domain, slots: &mut SlotMap) -> Result<Option<DeviceConfig>> {
    let Some(v) = def.devices.videos.first() else {
        return Ok(None);
    };
    match v.model {
        Some(VideoModel::None) => Ok(None),
        Some(VideoModel::Vga) | None => Ok(Some(DeviceConfig::Vga(VgaConfig {
            pci_slot: Some(slots.slot(v.address.as_ref(), "video")?),
            vram_kib: vram_kib(v)?,
        }))),
        // virtio-gpu without QEMU's VGA compatibility (virtio-vga): the
        // guest's driver draws; firmware has no text screen on it.
        Some(VideoModel::Virtio) => Ok(Some(DeviceConfig::Gpu(GpuConfig {
            pci_slot: Some(slots.slot(v.address.as_ref(), "video")?),
            xres: GpuConfig::default_xres(),
            yres: GpuConfig::default_yres(),
            max_hostmem_mib: GpuConfig::default_max_hostmem_mib(),
            edid: GpuConfig::default_edid(),
        }))),
        Some(other) => Err(not_supported("video model", other)),
    }
}

/// The framebuffer size: a power of two from 1 MiB (QEMU rounds up and
/// refuses more than 256 MiB for the standard VGA).
fn vram_kib(v: &Video) -> Result<u32> {
    let kib = v.vram.unwrap_or(VgaConfig::default_vram_kib());
    if kib > 256 * 1024 {
        return Err(Error::unsupported(format!(
            "video vram {kib} KiB is more than the 262144 KiB the adapter can have"
        )));
    }
    Ok(kib.max(1024).next_power_of_two())
}

/// The VNC server of `def`, if it has one. `socket_dir` is where a
/// generated Unix socket goes.
pub fn plan(def: &Domain, socket_dir: &Path, host: &GraphicsDefaults) -> Result<Option<VncPlan>> {
    let Some(g) = def
        .devices
        .graphics
        .iter()
        .find(|g| g.graphics_type == GraphicsType::Vnc)
    else {
        return Ok(None);
    };
    let listen = match g.listens()?.into_iter().next() {
        Some(Listen::Address(Some(a))) => VncListen::Address {
            ip: parse_ip(&a)?,
            from_config: false,
        },
        Some(Listen::Address(None)) | None => VncListen::Address {
            ip: host.vnc_listen,
            from_config: true,
        },
        Some(Listen::Socket(Some(p))) => VncListen::Socket {
            path: PathBuf::from(p),
            generated: false,
        },
        Some(Listen::Socket(None)) => VncListen::Socket {
            path: socket_dir.join(format!("{}.vnc", def.uuid)),
            generated: true,
        },
        Some(Listen::None) => VncListen::None,
        Some(Listen::Network(_)) => return Err(not_supported("graphics listen type", "network")),
    };
    let autoport = g.attr("autoport") != Some("no");
    let port = match (autoport, int_attr(g, "port")?) {
        (false, Some(p)) if p > 0 => Some(port_number(p, "port")?),
        (false, _) if matches!(listen, VncListen::Address { .. }) => {
            return Err(Error::unsupported("vnc port must be in range [5900,65535]"));
        }
        _ => None,
    };
    let websocket = match int_attr(g, "websocket")? {
        None | Some(0) => None,
        Some(-1) => Some(None),
        Some(p) => Some(Some(port_number(p, "websocket")?)),
    };
    let share_policy = match g.attr("sharePolicy") {
        None | Some("allow-exclusive") => VncSharePolicy::AllowExclusive,
        Some("force-shared") => VncSharePolicy::ForceShared,
        Some("ignore") => VncSharePolicy::Ignore,
        Some(other) => {
            return Err(Error::xml(format!(
                "unknown vnc display sharing policy '{other}'"
            )));
        }
    };
    // QEMU reads `-k NAME` from its keymap files when it starts; so a
    // name it has none for fails the start with its words.
    let keymap = g.attr("keymap").map(str::to_string);
    if let Some(k) = &keymap
        && crate::keymap::Layout::named(k).is_none()
    {
        return Err(Error::internal(format!(
            "could not read keymap file: '{k}'"
        )));
    }
    Ok(Some(VncPlan {
        listen,
        port,
        websocket,
        password: g.passwd.clone().or_else(|| host.vnc_password.clone()),
        share_policy,
        keymap,
    }))
}

fn parse_ip(a: &str) -> Result<IpAddr> {
    a.parse()
        .map_err(|_| Error::unsupported(format!("cannot listen on '{a}': not an IP address")))
}

fn int_attr(g: &Graphics, name: &str) -> Result<Option<i32>> {
    g.attr(name)
        .map(|v| {
            v.parse::<i32>()
                .map_err(|_| Error::xml(format!("invalid value for attribute '{name}': '{v}'")))
        })
        .transpose()
}

fn port_number(p: i32, what: &str) -> Result<u16> {
    u16::try_from(p)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| Error::unsupported(format!("vnc {what} {p} is out of range")))
}

/// The sockets a running guest's VNC server accepts on, held by the
/// driver for as long as the guest runs.
#[derive(Debug)]
pub struct VncSockets {
    listeners: Vec<(OwnedFd, bool)>,
    /// The TCP port and websocket port chosen.
    pub port: Option<u16>,
    pub websocket: Option<u16>,
    /// A socket file this start made, removed when the guest stops.
    made_socket: Option<PathBuf>,
}

impl VncSockets {
    /// Binds what `plan` asks for: the given ports, or the first free
    /// ones of libvirt's ranges.
    pub fn open(plan: &VncPlan) -> Result<VncSockets> {
        let mut out = VncSockets {
            listeners: Vec::new(),
            port: None,
            websocket: None,
            made_socket: None,
        };
        match &plan.listen {
            VncListen::Address { ip, .. } => {
                let (l, port) = bind_tcp(*ip, plan.port, VNC_PORTS)?;
                out.listeners.push((l, false));
                out.port = Some(port);
                if let Some(ws) = plan.websocket {
                    let (l, port) = bind_tcp(*ip, ws, WEBSOCKET_PORTS)?;
                    out.listeners.push((l, true));
                    out.websocket = Some(port);
                }
            }
            VncListen::Socket { path, .. } => {
                // A socket file left by a guest that is gone is replaced.
                if std::fs::symlink_metadata(path)
                    .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
                {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|e| {
                    system_error(
                        format!("unable to bind to UNIX socket path '{}'", path.display()),
                        &e,
                    )
                })?;
                out.made_socket = Some(path.clone());
                out.listeners.push((OwnedFd::from(l), false));
            }
            VncListen::None => {}
        }
        Ok(out)
    }

    /// Binds the ports the live definition of a running guest records,
    /// for a new VMM after a daemon restart (the old one is gone).
    pub fn reopen(plan: &VncPlan, live: &Domain) -> Result<VncSockets> {
        let mut fixed = plan.clone();
        if let Some(g) = live.devices.graphics.first() {
            if let Some(p) = int_attr(g, "port")?.filter(|p| *p > 0) {
                fixed.port = Some(port_number(p, "port")?);
            }
            if let Some(p) = int_attr(g, "websocket")?.filter(|p| *p > 0) {
                fixed.websocket = Some(Some(port_number(p, "websocket")?));
            }
        }
        Self::open(&fixed)
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.listeners
            .iter()
            .map(|(fd, _)| fd.as_raw_fd())
            .collect()
    }

    /// Gives the VMM's configuration the server with these sockets.
    pub fn bind(&self, plan: &VncPlan, cfg: &mut VmConfig) {
        cfg.vnc = Some(VncConfig {
            listeners: self
                .listeners
                .iter()
                .map(|(fd, websocket)| VncListenerConfig::Fd {
                    fd: fd.as_raw_fd(),
                    websocket: *websocket,
                })
                .collect(),
            password: plan.password.clone(),
            share_policy: plan.share_policy,
            keymap: plan.keymap.clone(),
        });
    }

    /// Shows the ports and address in use in the live definition, as
    /// libvirt's live XML does.
    pub fn apply_live(&self, plan: &VncPlan, def: &mut Domain) {
        let Some(g) = def
            .devices
            .graphics
            .iter_mut()
            .find(|g| g.graphics_type == GraphicsType::Vnc)
        else {
            return;
        };
        if let Some(p) = self.port {
            g.set_attr("port", p);
        }
        if let Some(p) = self.websocket {
            g.set_attr("websocket", p);
        }
        if let VncListen::Address { ip, .. } = &plan.listen {
            g.set_attr("listen", ip);
            if let Some(l) = g.first_listen_mut()
                && l.attr("address").is_none()
            {
                l.attrs.push(("address".into(), ip.to_string()));
            }
        }
        if let VncListen::Socket { path, .. } = &plan.listen {
            g.set_attr("socket", path.display());
            if let Some(l) = g.first_listen_mut()
                && l.attr("socket").is_none()
            {
                l.attrs.push(("socket".into(), path.display().to_string()));
            }
        }
    }
}

impl Drop for VncSockets {
    fn drop(&mut self) {
        if let Some(p) = &self.made_socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A listening TCP socket on `ip` at `port`, or at the first free port
/// of `range`.
fn bind_tcp(
    ip: IpAddr,
    port: Option<u16>,
    range: std::ops::RangeInclusive<u16>,
) -> Result<(OwnedFd, u16)> {
    let bind = |p: u16| TcpListener::bind(SocketAddr::new(ip, p));
    match port {
        Some(p) => bind(p)
            .map(|l| (OwnedFd::from(l), p))
            .map_err(|e| system_error(format!("Failed to bind socket to {ip}:{p}"), &e)),
        None => {
            for p in range {
                match bind(p) {
                    Ok(l) => return Ok((OwnedFd::from(l), p)),
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) => {
                        return Err(system_error(
                            format!("Failed to bind socket to {ip}:{p}"),
                            &e,
                        ));
                    }
                }
            }
            Err(Error::internal(
                "Unable to find an unused port in range 'display' (5900-65535)",
            ))
        }
    }
}

impl super::Driver {
    /// `virDomainUpdateDeviceFlags` of a `<graphics>`: a new VNC password
    /// (or none), live and/or in the definition. Anything else of the
    /// output cannot change while it exists, as in libvirt.
    pub(super) async fn update_graphics(
        &self,
        obj: &std::sync::Arc<super::domain::DomainObj>,
        elem: &crate::xml::tree::Element,
        flags: u32,
    ) -> Result<()> {
        let new = Graphics::parse(elem)?;
        if new.graphics_type != GraphicsType::Vnc {
            return Err(not_supported("graphics type", new.graphics_type));
        }
        let (vmm, live_def, config_def) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live, config) = super::metadata::targets(&d, flags)?;
            let live = match d.live.as_ref().filter(|_| live) {
                Some(l) => {
                    let mut def = l.def.clone();
                    set_password(&mut def, &new)?;
                    Some((l.vmm.clone(), def))
                }
                None => None,
            };
            let config_def = match config {
                true => {
                    let mut def = d
                        .persistent
                        .clone()
                        .ok_or_else(|| Error::internal("no persistent definition"))?;
                    set_password(&mut def, &new)?;
                    Some(def)
                }
                false => None,
            };
            let (vmm, live_def) = live.unzip();
            (vmm, live_def, config_def)
        };
        if let (Some(vmm), Some(def)) = (vmm, live_def) {
            vmm.set_vnc_password(new.passwd.as_deref()).await?;
            if let Some(l) = obj.data().live.as_mut() {
                l.def = def;
            }
            super::supervise::write_status(&self.inner, obj);
        }
        if let Some(def) = config_def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
        }
        Ok(())
    }
}

/// Gives the VNC output of `def` the password of `new`, which must name
/// the same output otherwise.
fn set_password(def: &mut Domain, new: &Graphics) -> Result<()> {
    let g = def
        .devices
        .graphics
        .iter_mut()
        .find(|g| g.graphics_type == GraphicsType::Vnc)
        .ok_or_else(|| {
            Error::operation_invalid("cannot find existing graphics device to modify")
        })?;
    let fixed = |g: &Graphics, name: &str| g.attr(name).map(str::to_string);
    for name in ["port", "websocket", "keymap", "sharePolicy"] {
        if let Some(v) = fixed(new, name)
            && v != "-1"
            && fixed(g, name).is_some_and(|old| old != v)
        {
            return Err(Error::new(
                crate::error::ErrorCode::OperationUnsupported,
                crate::error::ErrorDomain::Qemu,
                format!("cannot change {name} settings on vnc graphics"),
            ));
        }
    }
    g.passwd = new.passwd.clone();
    for name in ["passwdValidTo", "connected"] {
        match new.attr(name) {
            Some(v) => g.set_attr(name, v),
            None => g.remove_attr(name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse_domain;

    fn def(g: &str) -> Domain {
        parse_domain(&format!(
            "<domain type='kvm'><name>g</name><uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid><memory>65536</memory><os><type>hvm</type></os><devices>{g}</devices></domain>"
        ))
        .unwrap()
    }

    #[test]
    fn keymap_names_a_layout_or_fails_the_start_as_qemu_does() {
        let planned = |k: &str| {
            plan(
                &def(&format!("<graphics type='vnc' keymap='{k}'/>")),
                Path::new("/"),
                &GraphicsDefaults::default(),
            )
        };
        assert_eq!(
            planned("de").unwrap().unwrap().keymap.as_deref(),
            Some("de")
        );
        let e = planned("xx").unwrap_err();
        assert_eq!(
            e.to_string(),
            "internal error: could not read keymap file: 'xx'"
        );
    }

    #[test]
    fn plans_what_the_xml_asks_for() {
        let p = plan(
            &def("<graphics type='vnc'/>"),
            Path::new("/run/x"),
            &GraphicsDefaults::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.listen,
            VncListen::Address {
                ip: DEFAULT_VNC_LISTEN,
                from_config: true
            }
        );
        assert_eq!((p.port, p.websocket), (None, None));
        let p = plan(
            &def("<graphics type='vnc' port='5907' autoport='no' websocket='-1' passwd='pw' sharePolicy='force-shared' listen='::1'/>"),
            Path::new("/run/x"),
            &GraphicsDefaults::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.port, Some(5907));
        assert_eq!(p.websocket, Some(None));
        assert_eq!(p.password.as_deref(), Some("pw"));
        assert_eq!(p.share_policy, VncSharePolicy::ForceShared);
        let p = plan(
            &def("<graphics type='vnc'><listen type='socket'/></graphics>"),
            Path::new("/run/x"),
            &GraphicsDefaults::default(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p.listen,
            VncListen::Socket {
                path: PathBuf::from("/run/x/c7a5fdbd-edaf-9455-926a-d65c16db1809.vnc"),
                generated: true
            }
        );
        assert!(
            plan(
                &def("<graphics type='vnc' listen='not-an-ip'/>"),
                Path::new("/"),
                &GraphicsDefaults::default()
            )
            .is_err()
        );
    }

    #[test]
    fn the_hosts_listen_address_and_password_fill_what_the_xml_leaves_out() {
        let host = GraphicsDefaults {
            vnc_listen: "0.0.0.0".parse().unwrap(),
            vnc_password: Some("hostpw".into()),
        };
        let p = plan(&def("<graphics type='vnc'/>"), Path::new("/"), &host)
            .unwrap()
            .unwrap();
        assert_eq!(
            p.listen,
            VncListen::Address {
                ip: host.vnc_listen,
                from_config: true
            }
        );
        assert_eq!(p.password.as_deref(), Some("hostpw"));
        let p = plan(
            &def("<graphics type='vnc' passwd='own' listen='127.0.0.1'/>"),
            Path::new("/"),
            &host,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.password.as_deref(), Some("own"));
        assert!(matches!(
            p.listen,
            VncListen::Address {
                from_config: false,
                ..
            }
        ));
    }

    #[test]
    fn automatic_ports_skip_ports_in_use_and_show_in_the_live_xml() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let (fd, port) =
            bind_tcp(DEFAULT_VNC_LISTEN, None, busy..=busy.saturating_add(50)).unwrap();
        assert_ne!(port, busy);
        drop(fd);
        let d = def("<graphics type='vnc'/>");
        let p = plan(&d, Path::new("/"), &GraphicsDefaults::default())
            .unwrap()
            .unwrap();
        let s = VncSockets::open(&p).unwrap();
        let port = s.port.unwrap();
        assert!(port >= 5900);
        let mut live = d.clone();
        s.apply_live(&p, &mut live);
        let g = &live.devices.graphics[0];
        assert_eq!(g.attr("port"), Some(port.to_string().as_str()));
        assert_eq!(g.attr("listen"), Some("127.0.0.1"));
        let mut cfg = crate::vmm::config::VmConfig {
            version: 1,
            name: "g".into(),
            uuid: None,
            memory_mib: 1,
            cpus: crate::vmm::config::CpuConfig {
                count: 1,
                max: None,
                topology: None,
            },
            boot: crate::vmm::config::BootConfig::Kernel(crate::vmm::config::KernelBoot {
                kernel: "/k".into(),
                initrd: None,
                cmdline: String::new(),
            }),
            serial: Default::default(),
            devices: Vec::new(),
            on_reboot: Default::default(),
            sandbox: Default::default(),
            vnc: None,
        };
        s.bind(&p, &mut cfg);
        assert_eq!(cfg.vnc.unwrap().listeners.len(), 1);
        // A second guest asking for the same fixed port fails cleanly.
        let mut fixed = p.clone();
        fixed.port = Some(port);
        assert!(VncSockets::open(&fixed).is_err());
    }

    #[test]
    fn a_made_socket_file_goes_with_the_sockets() {
        let dir = std::env::temp_dir().join(format!("oxvirt-vnc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = def("<graphics type='vnc'><listen type='socket'/></graphics>");
        let p = plan(&d, &dir, &GraphicsDefaults::default())
            .unwrap()
            .unwrap();
        let s = VncSockets::open(&p).unwrap();
        let VncListen::Socket { path, .. } = &p.listen else {
            panic!()
        };
        assert!(path.exists());
        drop(s);
        assert!(!path.exists());
        let _ = std::fs::remove_dir(&dir);
    }
}
