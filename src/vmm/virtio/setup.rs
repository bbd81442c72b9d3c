//! Turning `VmConfig.devices` into virtio-pci functions on bus 0: slots,
//! BARs from the 32-bit window, INTx lines, and the per-device handles
//! kept for statistics and control commands.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard};

use kvm_ioctls::VmFd;
use vm_allocator::{AddressAllocator, AllocPolicy};

use crate::vmm::config::{InputKind, NetConfig, NetModel, UsbDeviceConfig, UsbDeviceKind};
use crate::vmm::display::InputSink;
use crate::vmm::display::vga::{self, GuestMapper, Vga, VgaBars};
use crate::vmm::usb::hid::HidKind;
use crate::vmm::usb::ich9::{self, Usb2Shared};
use crate::vmm::usb::xhci::{self, AttachedDevice, Xhci};
use vmm_sys_util::eventfd::EventFd;

use super::balloon::{Balloon, BalloonState};
use super::blk::{Blk, BlkCore};
use super::console::Console;
use super::disk::{Disk, Qcow2Disk, RawDisk};
use super::gpu::Gpu;
use super::input::{Input, VirtioInputHandle};
use super::interrupt::{IntxLine, IntxLines};
use super::msix::{GsiRouter, MsixTable};
use super::net::{Net, NetLink};
use super::rng::Rng;
use super::scsi::Scsi;
use super::scsi_req::Target;
use super::stats::{BlkStats, NetStats};
use super::transport::{self, VirtioPci};
use super::vsock::Vsock;
use super::{Interrupt, VirtioDevice};
use crate::vmm::config::{
    CdromConfig, DeviceConfig, DiskFormat, EhciConfig, SataConfig, SataDiskConfig,
};
use crate::vmm::devices::pci::PciRoot;
use crate::vmm::error::{Error, Result};
use crate::vmm::layout;
use crate::vmm::memory::GuestMemory;
use crate::vmm::net::e1000::{self, E1000};
use crate::vmm::storage::ahci::{self, Ahci, Hba};
use crate::vmm::storage::ahci_port::PortDrive;
use crate::vmm::storage::ata_disk::{self, AtaDisk};
use crate::vmm::storage::cdrom::{Cdrom, Media};
use crate::vmm::storage::media_change::{self, Drive, MediaRequest};
use crate::vmm::storage::mmc;

/// First slot handed out to devices without an explicit one.
const FIRST_AUTO_SLOT: u8 = 3;

/// Checks the device list without touching the host.
pub fn validate(devices: &[DeviceConfig]) -> Result<()> {
    let mut used = [false; 32];
    for d in devices {
        if let Some(s) = d.pci_slot() {
            if s == 0 || s > 31 {
                return Err(Error::Config(format!(
                    "PCI slot {s} is out of range 1..=31"
                )));
            }
            if std::mem::replace(&mut used[usize::from(s)], true) {
                return Err(Error::Config(format!("PCI slot {s} is used twice")));
            }
        }
        match d {
            DeviceConfig::Net(n) => super::net::validate(n)?,
            DeviceConfig::Vsock(v) if v.cid < 3 || v.cid > u64::from(u32::MAX) => {
                return Err(Error::Config(format!("vsock cid {} is invalid", v.cid)));
            }
            DeviceConfig::Block(b) if b.path.as_os_str().is_empty() => {
                return Err(Error::Config("block device path is empty".into()));
            }
            DeviceConfig::Scsi(c) => validate_cdroms("virtio-scsi target", &c.cdroms, 255)?,
            DeviceConfig::Sata(c) => validate_sata(c)?,
            DeviceConfig::Gpu(g) => g.validate()?,
            _ => {}
        }
    }
    let mut ids: Vec<String> = media_change::drive_ids(devices).concat();
    ids.extend(sata_disk_ids(devices).concat());
    ids.sort();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::Config(format!("drive id '{}' is used twice", w[0])));
    }
    if devices.len() > 31 {
        return Err(Error::Config("more than 31 PCI devices".into()));
    }
    Ok(())
}

/// Checks the drives of one controller: units in range and distinct,
/// image paths not empty.
fn validate_cdroms(what: &str, cdroms: &[CdromConfig], max: u16) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for c in cdroms {
        if c.unit > max {
            return Err(Error::Config(format!(
                "{what} {} is out of range 0..={max}",
                c.unit
            )));
        }
        if !seen.insert(c.unit) {
            return Err(Error::Config(format!("{what} {} is used twice", c.unit)));
        }
        if c.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(Error::Config("CD-ROM image path is empty".into()));
        }
    }
    Ok(())
}

/// Checks a SATA controller's drives: ports in range and distinct across
/// its disks and CD-ROM drives, image paths not empty, serial numbers
/// IDENTIFY DEVICE can carry.
fn validate_sata(c: &SataConfig) -> Result<()> {
    let max = ahci::PORTS as u16 - 1;
    validate_cdroms("SATA port", &c.cdroms, max)?;
    let mut seen: std::collections::BTreeSet<u16> = c.cdroms.iter().map(|cd| cd.unit).collect();
    for d in &c.disks {
        if d.unit > max {
            return Err(Error::Config(format!(
                "SATA port {} is out of range 0..={max}",
                d.unit
            )));
        }
        if !seen.insert(d.unit) {
            return Err(Error::Config(format!("SATA port {} is used twice", d.unit)));
        }
        if d.path.as_os_str().is_empty() {
            return Err(Error::Config("SATA disk image path is empty".into()));
        }
        if let Some(s) = &d.serial
            && (s.len() > ata_disk::SERIAL_LEN || !s.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            return Err(Error::Config(format!(
                "SATA disk serial '{s}' is not at most {} printable ASCII characters",
                ata_disk::SERIAL_LEN
            )));
        }
    }
    Ok(())
}

/// The names of every device's SATA disks, in device order (empty for
/// other devices): the configured `id`, else `sataC-0-P` as for CD-ROM
/// drives (C counting the SATA controllers from 0).
pub fn sata_disk_ids(devices: &[DeviceConfig]) -> Vec<Vec<String>> {
    let mut controllers = 0;
    devices
        .iter()
        .map(|d| match d {
            DeviceConfig::Sata(c) => {
                controllers += 1;
                c.disks
                    .iter()
                    .map(|k| {
                        k.id.clone()
                            .unwrap_or_else(|| media_change::sata_id(controllers - 1, k.unit))
                    })
                    .collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

/// Opens a SATA disk's image and makes the disk; its serial number is
/// the configured one, else its id.
fn open_sata_disk(d: &SataDiskConfig, id: &str) -> Result<Arc<Mutex<AtaDisk>>> {
    let image = open_image(&d.path, d.format, d.readonly)?;
    if image.size() < ata_disk::SECTOR {
        return Err(Error::Config(format!(
            "SATA disk image {} is smaller than one sector",
            d.path.display()
        )));
    }
    let serial = d.serial.as_deref().unwrap_or(id);
    Ok(Arc::new(Mutex::new(AtaDisk::new(
        image, d.readonly, serial,
    ))))
}

/// Opens a drive's image (if any) and makes the drive; its unit serial
/// number is its id.
fn open_cdrom(c: &CdromConfig, id: &str, interface: u32) -> Result<Arc<Mutex<Cdrom>>> {
    let media = match &c.path {
        Some(p) => {
            let what = || format!("opening CD-ROM image {}", p.display());
            let f = std::fs::File::open(p).map_err(Error::io(what()))?;
            Some(Media::new(f).map_err(Error::io(what()))?)
        }
        None => None,
    };
    Ok(Arc::new(Mutex::new(Cdrom::new(id, interface, media))))
}

/// An AHCI controller with its drives on their ports, BAR 5 from the
/// 32-bit window, INTx on its slot's GSI.
fn build_ahci(
    c: &SataConfig,
    ids: &[String],
    disk_ids: &[String],
    slot: u8,
    mem: &GuestMemory,
    intx: IntxLine,
    alloc: &mut AddressAllocator,
) -> Result<(Arc<Mutex<Ahci>>, Vec<Drive>)> {
    let mut ports: Vec<Option<PortDrive>> = vec![None; ahci::PORTS];
    let mut drives = Vec::new();
    for (cd, id) in c.cdroms.iter().zip(ids) {
        let unit = open_cdrom(cd, id, mmc::INTERFACE_ATAPI)?;
        if let Some(p) = ports.get_mut(usize::from(cd.unit)) {
            *p = Some(PortDrive::Cdrom {
                unit: unit.clone(),
                serial: id.clone(),
            });
        }
        drives.push(Drive {
            id: id.clone(),
            unit,
        });
    }
    for (d, id) in c.disks.iter().zip(disk_ids) {
        let disk = open_sata_disk(d, id)?;
        if let Some(p) = ports.get_mut(usize::from(d.unit)) {
            *p = Some(PortDrive::Disk(disk));
        }
    }
    let bar = alloc
        .allocate(ahci::BAR_SIZE, ahci::BAR_SIZE, AllocPolicy::FirstMatch)
        .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?
        .start();
    let irq_line = intx.gsi as u8;
    let irq = Arc::new(Interrupt::new(intx, Vec::new()));
    let hba = Hba::new(ports, mem.clone(), irq);
    let bar = u32::try_from(bar).map_err(|_| Error::Boot("AHCI BAR above 4 GiB".into()))?;
    let f = Ahci::new(hba, mem.clone(), bar, irq_line, format!("ahci-{slot}"))
        .map_err(Error::io("creating an AHCI controller"))?;
    Ok((Arc::new(Mutex::new(f)), drives))
}

/// An e1000 NIC on its tap, BAR 0 from the 32-bit window, BAR 1 from
/// the I/O window, INTx on its slot's GSI.
fn build_e1000(
    n: &NetConfig,
    slot: u8,
    mem: &GuestMemory,
    intx: IntxLine,
    alloc: &mut AddressAllocator,
    io_alloc: &mut AddressAllocator,
) -> Result<(Arc<Mutex<E1000>>, Arc<NetStats>)> {
    let mac = super::net::mac_of(n)?;
    let tap = super::net::open_taps(n)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Config("net device without a tap".into()))?;
    let mmio = alloc
        .allocate(
            e1000::MMIO_BAR_SIZE,
            e1000::MMIO_BAR_SIZE,
            AllocPolicy::FirstMatch,
        )
        .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?
        .start();
    let io = io_alloc
        .allocate(
            e1000::IO_BAR_SIZE,
            e1000::IO_BAR_SIZE,
            AllocPolicy::FirstMatch,
        )
        .map_err(|e| Error::Boot(format!("no room for an I/O BAR: {e}")))?
        .start();
    let at = e1000::Placement {
        mmio: u32::try_from(mmio).map_err(|_| Error::Boot("e1000 BAR above 4 GiB".into()))?,
        io: u16::try_from(io).map_err(|_| Error::Boot("e1000 I/O BAR above 64 KiB".into()))?,
    };
    let stats = Arc::new(NetStats::default());
    let f = E1000::new(
        mac,
        tap,
        mem.clone(),
        intx,
        at,
        stats.clone(),
        format!("e1000-{slot}"),
    )
    .map_err(Error::io("creating an e1000 NIC"))?;
    Ok((Arc::new(Mutex::new(f)), stats))
}

fn hid_kind(k: UsbDeviceKind) -> HidKind {
    match k {
        UsbDeviceKind::Tablet => HidKind::Tablet,
        UsbDeviceKind::Mouse => HidKind::Mouse,
        UsbDeviceKind::Keyboard => HidKind::Keyboard,
    }
}

fn usb_kinds(devices: &[UsbDeviceConfig]) -> Vec<UsbDeviceKind> {
    devices.iter().map(|u| u.kind).collect()
}

/// ICH9's EHCI with its companions in one slot: the EHCI's BAR 0 from
/// the 32-bit window, the companions' I/O BARs from the I/O window.
fn build_usb2(
    c: &EhciConfig,
    slot: u8,
    mem: &GuestMemory,
    lines: &Arc<IntxLines>,
    alloc: &mut AddressAllocator,
    io_alloc: &mut AddressAllocator,
) -> Result<ich9::Usb2Functions> {
    let bar = alloc
        .allocate(
            crate::vmm::usb::ehci::BAR_SIZE,
            crate::vmm::usb::ehci::BAR_SIZE,
            AllocPolicy::FirstMatch,
        )
        .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?
        .start();
    let io = io_alloc
        .allocate(ich9::COMPANION_IO_SIZE, 0x20, AllocPolicy::FirstMatch)
        .map_err(|e| Error::Boot(format!("no room for an I/O BAR: {e}")))?
        .start();
    let at = ich9::Placement {
        slot,
        ehci_bar: u32::try_from(bar).map_err(|_| Error::Boot("EHCI BAR above 4 GiB".into()))?,
        uhci_io: u16::try_from(io).map_err(|_| Error::Boot("UHCI I/O BAR above 64 KiB".into()))?,
    };
    let devices: Vec<ich9::AttachedDevice> = c
        .devices
        .iter()
        .map(|u| ich9::AttachedDevice {
            port: u.port,
            kind: hid_kind(u.kind),
        })
        .collect();
    ich9::build(&devices, c.companions, mem.clone(), lines, at).map_err(Error::Config)
}

/// The KVM memory slot of the display adapter's video memory.
struct VramSlot {
    vm: Arc<VmFd>,
}

impl VramSlot {
    fn region(gpa: u64, host_addr: u64, len: u64) -> kvm_bindings::kvm_userspace_memory_region {
        kvm_bindings::kvm_userspace_memory_region {
            slot: layout::VGA_VRAM_SLOT,
            flags: 0,
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: host_addr,
        }
    }
}

impl GuestMapper for VramSlot {
    fn map(&self, gpa: u64, host_addr: *mut u8, len: u64) -> std::result::Result<(), String> {
        let r = Self::region(gpa, host_addr as u64, len);
        // SAFETY: the adapter keeps `host_addr..+len` mapped until it has
        // called `unmap` (GuestMapper's contract), so KVM never sees the
        // slot's memory go away while it is in use.
        unsafe { self.vm.set_user_memory_region(r) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION (video memory): {e}"))
    }

    fn unmap(&self) -> std::result::Result<(), String> {
        // SAFETY: a zero-sized region deletes the slot; no memory is named.
        unsafe { self.vm.set_user_memory_region(Self::region(0, 0, 0)) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION (video memory): {e}"))
    }
}

/// The standard VGA adapter, its BARs placed in the 32-bit window (where
/// firmware may move them) and its video memory mapped into the guest.
fn build_vga(
    c: &crate::vmm::config::VgaConfig,
    vm: &Arc<VmFd>,
    mem: &GuestMemory,
    alloc: &mut AddressAllocator,
) -> Result<Vga> {
    let vram = vga::vram_bytes_from_kib(u64::from(c.vram_kib));
    let mut bar = |size: u64| -> Result<u32> {
        let at = alloc
            .allocate(size, size, AllocPolicy::FirstMatch)
            .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?
            .start();
        u32::try_from(at).map_err(|_| Error::Boot("VGA BAR above 4 GiB".into()))
    };
    let bars = VgaBars {
        framebuffer: bar(vram)?,
        mmio: bar(vga::MMIO_BAR_SIZE)?,
    };
    Vga::new(
        vram,
        mem.clone(),
        Some(Box::new(VramSlot { vm: vm.clone() })),
        Some(bars),
    )
    .map_err(Error::Config)
}

/// What the VMM keeps of each device after plugging it.
pub enum Handle {
    Block {
        slot: u8,
        stats: Arc<BlkStats>,
    },
    /// A NIC; `link` for a virtio one (an e1000's is the device's own).
    Net {
        slot: u8,
        stats: Arc<NetStats>,
        link: Option<Arc<NetLink>>,
    },
    Balloon {
        slot: u8,
        state: Arc<BalloonState>,
    },
    Console {
        slot: u8,
        pty: Option<String>,
    },
    Cdroms {
        slot: u8,
        drives: Vec<Drive>,
    },
    Other {
        slot: u8,
    },
}

impl Handle {
    /// The PCI slot of the device.
    pub fn slot(&self) -> u8 {
        match self {
            Handle::Block { slot, .. }
            | Handle::Net { slot, .. }
            | Handle::Balloon { slot, .. }
            | Handle::Console { slot, .. }
            | Handle::Cdroms { slot, .. }
            | Handle::Other { slot } => *slot,
        }
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// All virtio devices of a VM.
#[derive(Default)]
pub struct Devices {
    pub handles: Vec<Handle>,
    /// Socket files to remove on exit.
    pub cleanup: Vec<std::path::PathBuf>,
    /// The virtio functions by PCI slot, to stop their workers (and
    /// flush disks) on exit.
    pub functions: Vec<(u8, Arc<Mutex<VirtioPci>>)>,
    /// The virtio disks' functions by PCI slot, for `disk-reopen`.
    pub disks: Vec<(u8, Arc<Mutex<VirtioPci>>)>,
    /// The AHCI controllers, to stop their workers on exit.
    pub ahci: Vec<Arc<Mutex<Ahci>>>,
    /// The e1000 NICs by PCI slot, to stop their workers on exit.
    pub e1000: Vec<(u8, Arc<Mutex<E1000>>)>,
    /// The display adapter, whose ports and screen the VM wires up.
    pub vga: Option<Vga>,
    /// The virtio-gpu's scanout, shown when there is no display adapter.
    pub gpu_display: Option<Arc<dyn crate::vmm::display::DisplaySource>>,
    /// The USB input devices, when the guest has a USB controller.
    pub usb_input: Option<(Arc<dyn InputSink>, Vec<UsbDeviceKind>)>,
    /// The xHCI controllers, for their state.
    pub xhci: Vec<Arc<Mutex<crate::vmm::usb::xhci::Xhci>>>,
    /// The USB 2 sets (EHCI and companions), to stop their workers.
    pub usb2: Vec<Arc<Usb2Shared>>,
    /// The virtio-input devices, in configuration order.
    pub virtio_inputs: Vec<(InputKind, VirtioInputHandle)>,
    /// What plugging more virtio functions into the running machine uses.
    pub plugger: Option<Plugger>,
    /// The virtio functions' BARs by slot, given back on unplug.
    bars: Vec<(u8, PlacedBar)>,
}

/// Whether a running guest may gain the device (`device-add`).
/// (Devices that would create sockets, a console's or vsock's, are not:
/// a confined VMM may not.)
fn hotpluggable(d: &DeviceConfig) -> std::result::Result<(), String> {
    match d {
        DeviceConfig::Block(_) | DeviceConfig::Rng(_) | DeviceConfig::Console(_) => Ok(()),
        DeviceConfig::Net(n) if n.model == NetModel::Virtio => Ok(()),
        DeviceConfig::Net(_) => Err("hotplug of an e1000 NIC is not supported".into()),
        other => Err(format!(
            "hotplug of a {} device is not supported",
            other.kind()
        )),
    }
}

impl Devices {
    fn add_function(&mut self, slot: u8, f: Arc<Mutex<VirtioPci>>, handle: Handle) {
        if matches!(handle, Handle::Block { .. }) {
            self.disks.push((slot, f.clone()));
        }
        self.functions.push((slot, f));
        self.handles.push(handle);
    }

    /// The virtio functions in slot order (as a state image keeps them).
    pub fn functions_by_slot(&self) -> Vec<Arc<Mutex<VirtioPci>>> {
        let mut f = self.functions.clone();
        f.sort_by_key(|(slot, _)| *slot);
        f.into_iter().map(|(_, f)| f).collect()
    }

    /// The slots whose device a guest may release (virtio functions).
    pub fn removable_slots(&self) -> Vec<u8> {
        self.functions.iter().map(|(s, _)| *s).collect()
    }

    /// Hotplug: builds the device `d` describes (`given`: what the daemon
    /// opened for it, a virtio disk's image or a console's backend) and
    /// plugs it into its slot, or the first free one; the slot. On error
    /// nothing is left registered.
    pub fn hotplug(
        &mut self,
        d: &DeviceConfig,
        root: &Mutex<PciRoot>,
        given: Option<OwnedFd>,
    ) -> std::result::Result<u8, String> {
        hotpluggable(d)?;
        validate(std::slice::from_ref(d)).map_err(|e| e.to_string())?;
        match d {
            DeviceConfig::Block(_) if given.is_none() => {
                return Err("device-add of a disk needs its image's file descriptor".into());
            }
            DeviceConfig::Console(c)
                if given.is_none() && c.backend != crate::vmm::config::SerialConfig::Null =>
            {
                return Err("device-add of a console needs its backend's file descriptor".into());
            }
            _ => {}
        }
        let slot = {
            let r = root.lock().map_err(|_| "PCI root lock poisoned")?;
            match d.pci_slot() {
                Some(s) if r.occupied(s) => return Err(format!("PCI slot {s} is already in use")),
                Some(s) => s,
                None => (FIRST_AUTO_SLOT..32)
                    .chain(1..FIRST_AUTO_SLOT)
                    .find(|&s| !r.occupied(s))
                    .ok_or("no free PCI slot")?,
            }
        };
        let (dev, handle) = make_virtio(d, slot, &[], self, given).map_err(|e| e.to_string())?;
        let plugger = self
            .plugger
            .as_mut()
            .ok_or("the machine cannot gain devices")?;
        let (f, bar) = plugger
            .plug_virtio(dev, slot, root)
            .map_err(|e| e.to_string())?;
        self.bars.push((slot, bar));
        self.add_function(slot, f, handle);
        Ok(slot)
    }

    /// After the guest ejected `slot` (its functions already off the
    /// bus): stops its virtio function for good, frees its BAR, GSIs and
    /// host resources (image, tap) and forgets it. Whether it had one.
    pub fn unplugged(&mut self, slot: u8) -> bool {
        let Some(i) = self.functions.iter().position(|(s, _)| *s == slot) else {
            return false;
        };
        let (_, f) = self.functions.remove(i);
        lock(&f).release();
        self.disks.retain(|(s, _)| *s != slot);
        self.handles.retain(|h| h.slot() != slot);
        if let Some(i) = self.bars.iter().position(|(s, _)| *s == slot) {
            let (_, bar) = self.bars.remove(i);
            if let Some(p) = self.plugger.as_mut() {
                p.free_bar(&bar);
            }
        }
        true
    }

    /// Per-device counters for `query-stats`.
    pub fn stats(&self) -> crate::vmm::protocol::DeviceStats {
        let mut out = crate::vmm::protocol::DeviceStats::default();
        for h in &self.handles {
            match h {
                Handle::Block { slot, stats } => out.block.push(stats.counters(*slot)),
                Handle::Net { slot, stats, .. } => out.net.push(stats.counters(*slot)),
                Handle::Balloon { state, .. } => out.balloon = state.json(),
                Handle::Console { .. } | Handle::Cdroms { .. } | Handle::Other { .. } => {}
            }
        }
        out
    }

    /// The pty of each virtio console that has one.
    pub fn console_ptys(&self) -> Vec<crate::vmm::protocol::ConsolePty> {
        self.handles
            .iter()
            .filter_map(|h| match h {
                Handle::Console { slot, pty: Some(p) } => Some(crate::vmm::protocol::ConsolePty {
                    slot: *slot,
                    path: p.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The balloon's state, if there is one.
    pub fn balloon(&self) -> Option<&Arc<BalloonState>> {
        self.handles.iter().find_map(|h| match h {
            Handle::Balloon { state, .. } => Some(state),
            _ => None,
        })
    }

    /// `balloon-set`: `target-mib` (memory the guest keeps) or
    /// `num-pages` (4 KiB pages it gives up).
    pub fn balloon_set(
        &self,
        args: &crate::vmm::protocol::BalloonSet,
        memory_mib: u64,
    ) -> std::result::Result<(), String> {
        let b = self.balloon().ok_or("no balloon device")?;
        let pages = match (args.target_mib, args.num_pages) {
            (Some(m), _) if m <= memory_mib => (memory_mib - m) * 256,
            (None, Some(p)) if p <= memory_mib * 256 => p,
            _ => {
                return Err(
                    "balloon-set needs target-mib (at most the guest memory) or num-pages".into(),
                );
            }
        };
        b.set_target_pages(u32::try_from(pages).unwrap_or(u32::MAX));
        Ok(())
    }

    /// `set-link`: the link of the NIC in PCI slot `slot`.
    pub fn set_link(&self, slot: u8, up: bool) -> std::result::Result<(), String> {
        let link = self
            .handles
            .iter()
            .find_map(|h| match h {
                Handle::Net { slot: s, link, .. } if *s == slot => Some(link),
                _ => None,
            })
            .ok_or_else(|| format!("no NIC in slot {slot}"))?;
        match link {
            Some(l) => l.set(up),
            None => {
                let (_, nic) = self
                    .e1000
                    .iter()
                    .find(|(s, _)| *s == slot)
                    .ok_or_else(|| format!("no NIC in slot {slot}"))?;
                lock(nic).set_link(up);
            }
        }
        Ok(())
    }

    /// `change-media`: ejects or inserts a CD-ROM drive's medium.
    /// `can_open` is false once seccomp forbids opening files.
    pub fn change_media(
        &self,
        args: crate::vmm::protocol::ChangeMedia,
        can_open: bool,
        passed: Option<std::os::fd::OwnedFd>,
    ) -> std::result::Result<(), String> {
        let req = MediaRequest::from_command(args)?;
        let drives: Vec<&Drive> = self
            .handles
            .iter()
            .flat_map(|h| match h {
                Handle::Cdroms { drives, .. } => drives.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        media_change::change_media(&drives, &req, can_open, passed)
    }

    /// `disk-reopen`: the virtio disk in PCI slot `slot` goes on with the
    /// image `layers` open (see [`super::disk::open_chain`]).
    pub fn reopen_disk(
        &self,
        slot: u8,
        layers: Vec<(std::fs::File, DiskFormat)>,
        internal: Option<crate::vmm::protocol::InternalSnapshot>,
        resize: bool,
    ) -> std::result::Result<(), String> {
        self.disk_function(slot)?
            .change_disk(super::DiskChange::Replace {
                open: Box::new(move || {
                    if let (Some(s), Some((top, _))) = (&internal, layers.first()) {
                        crate::vmm::storage::qcow2_snapshot::run(top, s.op, &s.name)?;
                    }
                    super::disk::open_chain(layers)
                }),
                resize,
            })
    }

    /// The virtio disk in `slot` given the virtual size `size` (bytes).
    pub fn resize_disk(&self, slot: u8, size: u64) -> std::result::Result<(), String> {
        self.disk_function(slot)?
            .change_disk(super::DiskChange::Resize(size))
    }

    fn disk_function(&self, slot: u8) -> std::result::Result<MutexGuard<'_, VirtioPci>, String> {
        self.disks
            .iter()
            .find_map(|(s, f)| (*s == slot).then_some(f))
            .map(|f| lock(f))
            .ok_or_else(|| format!("no virtio disk in slot {slot}"))
    }

    /// Stops every device's worker for a state image, keeping what the
    /// guest's drivers set up; each finishes the request it runs first.
    pub fn quiesce(&self) {
        for (_, f) in &self.functions {
            lock(f).quiesce();
        }
        for a in &self.ahci {
            lock(a).stop();
        }
        for (_, n) in &self.e1000 {
            lock(n).stop();
        }
        for u in &self.usb2 {
            u.stop();
        }
    }

    /// Starts again the workers [`Devices::quiesce`] stopped, where their
    /// drivers had them running.
    pub fn resume(&self) {
        for (_, f) in &self.functions {
            lock(f).resume();
        }
        for a in &self.ahci {
            lock(a).resume();
        }
        for (_, n) in &self.e1000 {
            lock(n).resume();
        }
        for u in &self.usb2 {
            u.resume();
        }
    }

    /// Stops every device (disks are flushed) and, when asked, removes
    /// the socket files the devices created (a confined VMM cannot).
    pub fn shutdown(&self, remove_sockets: bool) {
        for (_, f) in &self.functions {
            lock(f).stop();
        }
        for a in &self.ahci {
            lock(a).stop();
        }
        for (_, n) in &self.e1000 {
            lock(n).stop();
        }
        for u in &self.usb2 {
            u.stop();
        }
        if remove_sockets {
            for p in &self.cleanup {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// The GSI of a slot's INTA.
pub fn intx_gsi(slot: u8) -> u32 {
    layout::pci_intx_gsi(slot, 0)
}

pub fn assign_slots(devices: &[DeviceConfig]) -> Vec<u8> {
    let mut used = [false; 32];
    used[0] = true;
    for d in devices {
        if let Some(s) = d.pci_slot() {
            used[usize::from(s)] = true;
        }
    }
    devices
        .iter()
        .map(|d| {
            d.pci_slot().unwrap_or_else(|| {
                let s = (FIRST_AUTO_SLOT..32)
                    .chain(1..FIRST_AUTO_SLOT)
                    .find(|&s| !used[usize::from(s)])
                    .unwrap_or(31);
                used[usize::from(s)] = true;
                s
            })
        })
        .collect()
}

/// Opens a disk image (virtio-blk's, a SATA disk's) in its format.
fn open_image(path: &std::path::Path, format: DiskFormat, readonly: bool) -> Result<Box<dyn Disk>> {
    let what = || format!("opening disk {}", path.display());
    Ok(match format {
        DiskFormat::Raw => Box::new(RawDisk::open(path, readonly).map_err(Error::io(what()))?),
        DiskFormat::Qcow2 => Box::new(Qcow2Disk::open(path, readonly).map_err(Error::io(what()))?),
    })
}

fn serial_id(s: Option<&str>) -> [u8; 20] {
    let mut id = [0u8; 20];
    if let Some(s) = s {
        for (d, c) in id.iter_mut().zip(s.bytes()) {
            *d = c;
        }
    }
    id
}

/// What plugging a virtio function needs: the VM, guest memory, the
/// 32-bit BAR window's allocator, the interrupt routing. Kept after the
/// machine is built, for hotplug.
pub struct Plugger {
    vm: Arc<VmFd>,
    mem: GuestMemory,
    alloc: AddressAllocator,
    io_alloc: AddressAllocator,
    windows: Vec<(u64, u64)>,
    router: Arc<GsiRouter>,
    lines: Arc<IntxLines>,
}

/// Where a plugged virtio function's BAR came from, to give it back.
pub struct PlacedBar(vm_allocator::RangeInclusive);

impl Plugger {
    fn new(vm: &Arc<VmFd>, mem: &GuestMemory, mmio64: (u64, u64)) -> Result<Self> {
        Ok(Plugger {
            vm: vm.clone(),
            mem: mem.clone(),
            alloc: AddressAllocator::new(layout::PCI_MMIO32_START, layout::PCI_MMIO32_SIZE)
                .map_err(|e| Error::Boot(format!("BAR allocator: {e}")))?,
            io_alloc: AddressAllocator::new(layout::PCI_IO_BAR_START, layout::PCI_IO_BAR_SIZE)
                .map_err(|e| Error::Boot(format!("I/O BAR allocator: {e}")))?,
            windows: layout::PCI_MMIO32_WINDOWS
                .into_iter()
                .chain([mmio64])
                .collect(),
            router: Arc::new(GsiRouter::new(vm.clone())),
            lines: Arc::new(IntxLines::new(Some(vm.clone()))),
        })
    }

    fn intx(&self, slot: u8) -> IntxLine {
        IntxLine {
            lines: self.lines.clone(),
            gsi: intx_gsi(slot),
            slot,
        }
    }

    /// Wraps `dev` in a virtio-pci function with a BAR from the 32-bit
    /// window, INTx on its slot's GSI and one MSI-X vector per queue plus
    /// one for configuration changes, and plugs it into `slot`. On error
    /// nothing stays registered.
    fn plug_virtio(
        &mut self,
        dev: Box<dyn VirtioDevice>,
        slot: u8,
        root: &Mutex<PciRoot>,
    ) -> Result<(Arc<Mutex<VirtioPci>>, PlacedBar)> {
        let range = self
            .alloc
            .allocate(
                transport::BAR_SIZE,
                transport::BAR_SIZE,
                AllocPolicy::FirstMatch,
            )
            .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?;
        let bar = range.start();
        let nvec = dev.queue_max_sizes().len() + 1;
        let mut gsis = Vec::with_capacity(nvec);
        let mut fds = Vec::with_capacity(nvec);
        let undo = |this: &mut Self, gsis: &[u32], fds: &[EventFd]| {
            for (fd, &g) in fds.iter().zip(gsis) {
                let _ = this.vm.unregister_irqfd(fd, g);
            }
            this.router.release(gsis);
            let _ = this.alloc.free(&range);
        };
        for _ in 0..nvec {
            let g = self.router.alloc();
            let registered = EventFd::new(libc::EFD_NONBLOCK)
                .map_err(Error::io("eventfd"))
                .and_then(|fd| {
                    self.vm
                        .register_irqfd(&fd, g)
                        .map_err(Error::kvm("KVM_IRQFD (MSI-X)"))?;
                    Ok(fd)
                });
            match registered {
                Ok(fd) => {
                    gsis.push(g);
                    fds.push(fd);
                }
                Err(e) => {
                    self.router.release(&[g]);
                    undo(self, &gsis, &fds);
                    return Err(e);
                }
            }
        }
        let gsi = intx_gsi(slot);
        let irq = Arc::new(Interrupt::new(self.intx(slot), fds));
        let table = MsixTable::new(self.router.clone(), gsis.clone());
        let function = VirtioPci::new(
            dev,
            self.vm.clone(),
            self.mem.clone(),
            irq.clone(),
            transport::Placement {
                bar,
                irq_line: gsi as u8,
                windows: self.windows.clone(),
            },
            Some(table),
        );
        let f = match function {
            Ok(f) => Arc::new(Mutex::new(f)),
            Err(e) => {
                irq.detach(&self.vm, &gsis);
                self.router.release(&gsis);
                let _ = self.alloc.free(&range);
                return Err(Error::io("creating a virtio-pci function")(e));
            }
        };
        let plugged = root
            .lock()
            .map_err(|_| Error::Boot("PCI root lock poisoned".into()))
            .and_then(|mut r| r.plug(slot, f.clone()).map_err(Error::Config));
        if let Err(e) = plugged {
            lock(&f).release();
            let _ = self.alloc.free(&range);
            return Err(e);
        }
        Ok((f, PlacedBar(range)))
    }

    /// Gives back the BAR of an unplugged function.
    fn free_bar(&mut self, bar: &PlacedBar) {
        if let Err(e) = self.alloc.free(&bar.0) {
            tracing::warn!("freeing BAR {:#x}: {e}", bar.0.start());
        }
    }
}

/// The virtio device a configuration entry describes, and what the VMM
/// keeps of it. `given`: what the daemon opened for it on a hotplug (a
/// virtio disk's image, a console's backend), else the VMM opens it.
fn make_virtio(
    d: &DeviceConfig,
    slot: u8,
    drive_ids: &[String],
    out: &mut Devices,
    given: Option<OwnedFd>,
) -> Result<(Box<dyn VirtioDevice>, Handle)> {
    Ok(match d {
        DeviceConfig::Block(b) => {
            let stats = Arc::new(BlkStats::default());
            let image = match given {
                Some(f) => super::disk::open_chain(vec![(std::fs::File::from(f), b.format)])
                    .map_err(Error::io(format!("opening disk {}", b.path.display())))?,
                None => open_image(&b.path, b.format, b.readonly)?,
            };
            let core = BlkCore {
                disk: image,
                readonly: b.readonly,
                writethrough: false,
                serial: serial_id(b.serial.as_deref()),
                stats: stats.clone(),
            };
            (
                Box::new(Blk::new(core, format!("virtio-blk-{slot}"))),
                Handle::Block { slot, stats },
            )
        }
        DeviceConfig::Rng(_) => (Box::new(Rng::default()), Handle::Other { slot }),
        DeviceConfig::Gpu(c) => {
            let gpu = Gpu::new(c);
            out.gpu_display.get_or_insert_with(|| gpu.display());
            (Box::new(gpu), Handle::Other { slot })
        }
        DeviceConfig::Console(c) => {
            let con = match given {
                Some(fd) => Console::adopt(&c.backend, fd)?,
                None => Console::new(&c.backend)?,
            };
            if let Some(p) = con.socket_path() {
                out.cleanup.push(p);
            }
            let pty = con.pty_path();
            (Box::new(con), Handle::Console { slot, pty })
        }
        DeviceConfig::Balloon(c) => {
            let state = Arc::new(BalloonState::new(c.stats_period.unwrap_or(0)));
            (
                Box::new(Balloon::new(state.clone())),
                Handle::Balloon { slot, state },
            )
        }
        DeviceConfig::Net(n) => {
            let stats = Arc::new(NetStats::default());
            let link = Arc::new(NetLink::default());
            link.set(!n.link_down);
            (
                Box::new(Net::new(n, stats.clone(), link.clone())?),
                Handle::Net {
                    slot,
                    stats,
                    link: Some(link),
                },
            )
        }
        DeviceConfig::Vsock(v) => {
            let vs = Vsock::new(v)?;
            out.cleanup.push(vs.listener_path());
            (Box::new(vs), Handle::Other { slot })
        }
        DeviceConfig::Scsi(c) => {
            let mut targets = Vec::new();
            let mut drives = Vec::new();
            for (cd, id) in c.cdroms.iter().zip(drive_ids) {
                let unit = open_cdrom(cd, id, mmc::INTERFACE_SCSI)?;
                targets.push(Target {
                    target: cd.unit,
                    unit: unit.clone(),
                });
                drives.push(Drive {
                    id: id.clone(),
                    unit,
                });
            }
            (
                Box::new(Scsi::new(targets, format!("virtio-scsi-{slot}"))),
                Handle::Cdroms { slot, drives },
            )
        }
        DeviceConfig::Input(c) => {
            let dev = Input::new(c.kind).map_err(Error::io("creating a virtio-input device"))?;
            out.virtio_inputs.push((c.kind, dev.handle()));
            (Box::new(dev), Handle::Other { slot })
        }
        DeviceConfig::Sata(_)
        | DeviceConfig::Vga(_)
        | DeviceConfig::Xhci(_)
        | DeviceConfig::Ehci(_) => {
            unreachable!("SATA and USB controllers and the VGA adapter are built apart")
        }
    })
}

/// Creates every configured device and plugs it into `root`.
pub fn build(
    devices: &[DeviceConfig],
    vm: &Arc<VmFd>,
    mem: &GuestMemory,
    root: &Mutex<PciRoot>,
    mmio64: (u64, u64),
) -> Result<Devices> {
    let mut out = Devices::default();
    let mut plugger = Plugger::new(vm, mem, mmio64)?;
    let slots = assign_slots(devices);
    let drive_ids = media_change::drive_ids(devices);
    let disk_ids = sata_disk_ids(devices);
    for (((d, &slot), ids), disk_ids) in devices.iter().zip(&slots).zip(&drive_ids).zip(&disk_ids) {
        let p = &mut plugger;
        if let DeviceConfig::Sata(c) = d {
            let intx = p.intx(slot);
            let (f, drives) = build_ahci(c, ids, disk_ids, slot, mem, intx, &mut p.alloc)?;
            root.lock()
                .map_err(|_| Error::Boot("PCI root lock poisoned".into()))?
                .plug(slot, f.clone())
                .map_err(Error::Config)?;
            out.ahci.push(f);
            out.handles.push(Handle::Cdroms { slot, drives });
            continue;
        }
        if let DeviceConfig::Net(n) = d
            && n.model == NetModel::E1000
        {
            let intx = p.intx(slot);
            let (f, stats) = build_e1000(n, slot, mem, intx, &mut p.alloc, &mut p.io_alloc)?;
            root.lock()
                .map_err(|_| Error::Boot("PCI root lock poisoned".into()))?
                .plug(slot, f.clone())
                .map_err(Error::Config)?;
            out.e1000.push((slot, f));
            out.handles.push(Handle::Net {
                slot,
                stats,
                link: None,
            });
            continue;
        }
        if let DeviceConfig::Xhci(c) = d {
            let bar = p
                .alloc
                .allocate(xhci::BAR_SIZE, xhci::BAR_SIZE, AllocPolicy::FirstMatch)
                .map_err(|e| Error::Boot(format!("no room for a BAR: {e}")))?
                .start();
            let gsi = intx_gsi(slot);
            let fd = EventFd::new(libc::EFD_NONBLOCK).map_err(Error::io("eventfd"))?;
            let g = p.router.alloc();
            vm.register_irqfd(&fd, g)
                .map_err(Error::kvm("KVM_IRQFD (MSI-X)"))?;
            let irq = Arc::new(Interrupt::new(p.intx(slot), vec![fd]));
            let table = MsixTable::new(p.router.clone(), vec![g]);
            let attached: Vec<AttachedDevice> = c
                .devices
                .iter()
                .map(|u| AttachedDevice {
                    port: u.port,
                    kind: hid_kind(u.kind),
                })
                .collect();
            let f = Xhci::new(&attached, mem.clone(), irq, Some(table), bar, gsi as u8)
                .map_err(Error::Config)?;
            out.usb_input = Some((Arc::new(f.input()), usb_kinds(&c.devices)));
            let f = Arc::new(Mutex::new(f));
            out.xhci.push(f.clone());
            root.lock()
                .map_err(|_| Error::Boot("PCI root lock poisoned".into()))?
                .plug(slot, f)
                .map_err(Error::Config)?;
            continue;
        }
        if let DeviceConfig::Ehci(c) = d {
            let set = build_usb2(c, slot, mem, &p.lines, &mut p.alloc, &mut p.io_alloc)?;
            let mut root = root
                .lock()
                .map_err(|_| Error::Boot("PCI root lock poisoned".into()))?;
            for (function, f) in set.functions {
                root.plug_function(slot, function, f)
                    .map_err(Error::Config)?;
            }
            out.usb_input = Some((Arc::new(set.input), usb_kinds(&c.devices)));
            out.usb2.push(set.shared);
            continue;
        }
        if let DeviceConfig::Vga(c) = d {
            let vga = build_vga(c, vm, mem, &mut p.alloc)?;
            root.lock()
                .map_err(|_| Error::Boot("PCI root lock poisoned".into()))?
                .plug(slot, vga.pci.clone())
                .map_err(Error::Config)?;
            out.vga = Some(vga);
            continue;
        }
        let (dev, handle) = make_virtio(d, slot, ids, &mut out, None)?;
        let (f, bar) = p.plug_virtio(dev, slot, root)?;
        out.bars.push((slot, bar));
        out.add_function(slot, f, handle);
    }
    out.plugger = Some(plugger);
    Ok(out)
}
