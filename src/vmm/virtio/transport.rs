//! The virtio-pci modern transport: one PCI function with a 64-bit memory
//! BAR 0 holding the common configuration, ISR, device configuration and
//! notification regions, each announced by a vendor capability.
//!
//! BAR 0 layout (32 KiB):
//!
//! ```text
//! 0x0000  common configuration (0x38 bytes)
//! 0x1000  ISR status (1 byte, read to clear)
//! 0x2000  device configuration
//! 0x3000  notify: queue N at 0x3000 + 4 * N (16-bit writes)
//! 0x4000  MSI-X table (one vector per queue plus one for configuration)
//! 0x5000  MSI-X PBA
//! ```

use std::sync::Arc;

use kvm_ioctls::{IoEventAddress, NoDatamatch, VmFd};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_ids::{
    VIRTIO_ID_BLOCK, VIRTIO_ID_CONSOLE, VIRTIO_ID_GPU, VIRTIO_ID_INPUT, VIRTIO_ID_NET,
    VIRTIO_ID_SCSI, VIRTIO_ID_VSOCK,
};
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::interrupt::{InterruptState, NO_VECTOR};
use super::msix::MsixTable;
use super::{Activation, F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, Interrupt, VirtioDevice};
use crate::vmm::devices::pci::PciFunction;
use crate::vmm::memory::GuestMemory;

pub const VENDOR_VIRTIO: u16 = 0x1af4;
const DEVICE_ID_BASE: u16 = 0x1040;

/// Size of BAR 0.
pub const BAR_SIZE: u64 = 0x8000;
const MSIX_TABLE_OFF: u64 = 0x4000;
const MSIX_PBA_OFF: u64 = 0x5000;
const MSIX_CAP: usize = 0x84;
const COMMON_OFF: u64 = 0x0000;
const COMMON_LEN: u64 = 0x38;
const ISR_OFF: u64 = 0x1000;
const DEVICE_OFF: u64 = 0x2000;
const NOTIFY_OFF: u64 = 0x3000;
const NOTIFY_MULT: u64 = 4;
const REGION_LEN: u64 = 0x1000;

/// PCI command register bits honoured.
const CMD_MEMORY: u16 = 1 << 1;
const CMD_MASK: u16 = 0x0407;
/// Status: capability list present.
const STATUS_CAPS: u32 = 1 << 4;

/// Device status bits (`VIRTIO_CONFIG_S_*`, a byte here, `u32` in
/// `virtio_bindings`).
const S_FEATURES_OK: u8 = VIRTIO_CONFIG_S_FEATURES_OK as u8;
const S_DRIVER_OK: u8 = VIRTIO_CONFIG_S_DRIVER_OK as u8;
const S_NEEDS_RESET: u8 = VIRTIO_CONFIG_S_NEEDS_RESET as u8;

/// virtio vendor capability types.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;

const CONFIG_WORDS: usize = 64;

#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueRegs {
    size: u16,
    vector: u16,
    enable: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

/// A function's transport state and its device's own, for a state image.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtioPciState {
    pub device_type: u32,
    pub config: Vec<u32>,
    pub bar: u64,
    pub queue_select: u16,
    pub dfeature_select: u32,
    pub gfeature_select: u32,
    pub driver_features: u64,
    pub status: u8,
    pub generation: u8,
    pub msix_control: u16,
    pub config_vector: u16,
    pub queues: Vec<QueueRegs>,
    pub msix: Vec<[u32; 4]>,
    pub interrupt: InterruptState,
    pub device: serde_json::Value,
}

/// Where a function sits: its BAR's first address, the interrupt line
/// reported in configuration space, and the windows BARs may occupy.
pub struct Placement {
    pub bar: u64,
    pub irq_line: u8,
    pub windows: Vec<(u64, u64)>,
}

/// A virtio device plugged into the PCI root.
pub struct VirtioPci {
    dev: Box<dyn VirtioDevice>,
    vm: Arc<VmFd>,
    mem: GuestMemory,
    interrupt: Arc<Interrupt>,
    config: [u32; CONFIG_WORDS],
    bar: u64,
    /// Where the notify ioeventfds are registered (a BAR address).
    ioevent_base: Option<u64>,
    /// Windows the BAR may sit in (ioeventfds only go there).
    windows: Vec<(u64, u64)>,
    max_sizes: Vec<u16>,
    notify: Vec<EventFd>,
    queues: Vec<QueueRegs>,
    queue_select: u16,
    dfeature_select: u32,
    gfeature_select: u32,
    driver_features: u64,
    status: u8,
    generation: u8,
    active: bool,
    /// Stopped for a state image while the driver had it running.
    quiesced: bool,
    msix: Option<MsixTable>,
    msix_control: u16,
    config_vector: u16,
}

fn cap(cfg: &mut [u32; CONFIG_WORDS], at: usize, next: u8, kind: u8, len: u8, off: u64, size: u64) {
    let w = at / 4;
    cfg[w] = 0x09 | u32::from(next) << 8 | u32::from(len) << 16 | u32::from(kind) << 24;
    // BAR 0, id 0, padding.
    cfg[w + 1] = 0;
    cfg[w + 2] = off as u32;
    cfg[w + 3] = size as u32;
}

impl VirtioPci {
    /// Wraps `dev` at `place`, with an MSI-X table if given.
    pub fn new(
        dev: Box<dyn VirtioDevice>,
        vm: Arc<VmFd>,
        mem: GuestMemory,
        interrupt: Arc<Interrupt>,
        place: Placement,
        msix: Option<MsixTable>,
    ) -> std::io::Result<Self> {
        let Placement {
            bar,
            irq_line,
            windows,
        } = place;
        let ty = dev.device_type();
        let max_sizes = dev.queue_max_sizes();
        let mut c = [0u32; CONFIG_WORDS];
        c[0] = u32::from(DEVICE_ID_BASE + ty as u16) << 16 | u32::from(VENDOR_VIRTIO);
        c[1] = STATUS_CAPS << 16;
        // The classes QEMU gives its virtio-*-pci devices, as guests'
        // tools show them (lspci: "SCSI storage controller" for virtio-blk).
        let class: u32 = match ty {
            VIRTIO_ID_NET => 0x02_00_00,
            VIRTIO_ID_BLOCK | VIRTIO_ID_SCSI => 0x01_00_00,
            VIRTIO_ID_CONSOLE | VIRTIO_ID_VSOCK => 0x07_80_00,
            VIRTIO_ID_GPU => 0x03_80_00,
            VIRTIO_ID_INPUT => 0x09_80_00,
            // rng, balloon: "unclassified".
            _ => 0xff_00_00,
        };
        c[2] = class << 8 | 1;
        c[4] = (bar as u32) | 0x4;
        c[5] = (bar >> 32) as u32;
        c[11] = 0x1100 << 16 | u32::from(VENDOR_VIRTIO);
        c[13] = 0x40;
        c[15] = 1 << 8 | u32::from(irq_line);
        cap(&mut c, 0x40, 0x50, CAP_COMMON, 16, COMMON_OFF, COMMON_LEN);
        cap(&mut c, 0x50, 0x60, CAP_ISR, 16, ISR_OFF, REGION_LEN);
        cap(&mut c, 0x60, 0x70, CAP_DEVICE, 16, DEVICE_OFF, REGION_LEN);
        let after_notify = if msix.is_some() { MSIX_CAP as u8 } else { 0 };
        cap(
            &mut c,
            0x70,
            after_notify,
            CAP_NOTIFY,
            20,
            NOTIFY_OFF,
            REGION_LEN,
        );
        c[0x80 / 4] = NOTIFY_MULT as u32;
        if msix.is_some() {
            c[MSIX_CAP / 4 + 1] = MSIX_TABLE_OFF as u32;
            c[MSIX_CAP / 4 + 2] = MSIX_PBA_OFF as u32;
        }
        let notify = max_sizes
            .iter()
            .map(|_| EventFd::new(libc::EFD_NONBLOCK))
            .collect::<std::io::Result<Vec<_>>>()?;
        let queues = max_sizes
            .iter()
            .map(|&m| QueueRegs {
                size: m,
                vector: NO_VECTOR,
                ..Default::default()
            })
            .collect();
        let mut t = VirtioPci {
            dev,
            vm,
            mem,
            interrupt,
            config: c,
            bar: 0,
            ioevent_base: None,
            windows,
            max_sizes,
            notify,
            queues,
            queue_select: 0,
            dfeature_select: 0,
            gfeature_select: 0,
            driver_features: 0,
            status: 0,
            generation: 0,
            active: false,
            quiesced: false,
            msix,
            msix_control: 0,
            config_vector: NO_VECTOR,
        };
        t.bar = bar;
        // The VMM assigns the BAR and turns decoding on, so the device
        // works for a guest that does not program PCI itself.
        t.config[1] |= u32::from(CMD_MEMORY) | 4;
        t.update_ioevents();
        Ok(t)
    }

    /// Stops the device's worker (at VMM exit).
    pub fn stop(&mut self) {
        self.dev.reset();
        self.active = false;
    }

    /// Takes the function out of service for good (hot unplug, after it
    /// left the bus): the device stops and KVM forgets its notify
    /// ioeventfds, its irqfds and their GSIs' routes.
    pub fn release(&mut self) {
        self.stop();
        self.unregister_ioevents();
        let gsis = self
            .msix
            .as_ref()
            .map(|t| t.gsis().to_vec())
            .unwrap_or_default();
        self.interrupt.detach(&self.vm, &gsis);
        if let Some(t) = &self.msix {
            t.release();
        }
    }

    /// Stops the device's worker for a state image, keeping every
    /// register: each request the worker took is finished first, so the
    /// used ring holds all that was done.
    pub fn quiesce(&mut self) {
        if self.active {
            self.dev.quiesce();
            self.active = false;
            self.quiesced = true;
        }
    }

    /// Starts a quiesced device again where its rings stand.
    pub fn resume(&mut self) {
        if std::mem::take(&mut self.quiesced)
            && let Err(e) = self.activate(true)
        {
            tracing::warn!("virtio device type {}: {e}", self.dev.device_type());
            self.status |= S_NEEDS_RESET;
        }
    }

    /// The device's disk image changed ([`VirtioDevice::change_disk`])
    /// between requests: the worker stops after the one it runs and starts
    /// again on the changed image where the rings stand.
    pub fn change_disk(&mut self, change: super::DiskChange<'_>) -> Result<(), String> {
        let was_active = self.active;
        self.quiesce();
        let r = self.dev.change_disk(change);
        if was_active {
            self.resume();
        }
        if r.as_ref().is_ok_and(|changed| *changed) {
            // A new capacity: a new configuration generation, announced.
            self.generation = self.generation.wrapping_add(1);
            self.interrupt.signal_config();
        }
        r.map(|_| ())
    }

    /// The state a [`VirtioPci::restore`] rebuilds (taken while quiesced).
    pub fn state(&self) -> VirtioPciState {
        VirtioPciState {
            device_type: self.dev.device_type(),
            config: self.config.to_vec(),
            bar: self.bar,
            queue_select: self.queue_select,
            dfeature_select: self.dfeature_select,
            gfeature_select: self.gfeature_select,
            driver_features: self.driver_features,
            status: self.status,
            generation: self.generation,
            msix_control: self.msix_control,
            config_vector: self.config_vector,
            queues: self.queues.clone(),
            msix: self
                .msix
                .as_ref()
                .map(|t| t.entries().to_vec())
                .unwrap_or_default(),
            interrupt: self.interrupt.state(),
            device: self.dev.save_state(),
        }
    }

    /// Loads a saved state into a function of a fresh machine built from
    /// the same configuration, and starts the device if the driver had.
    pub fn restore(&mut self, s: &VirtioPciState) -> Result<(), String> {
        let ty = self.dev.device_type();
        if s.device_type != ty || s.queues.len() != self.queues.len() {
            return Err(format!(
                "saved virtio device type {} with {} queues does not match type {ty} with {}",
                s.device_type,
                s.queues.len(),
                self.queues.len()
            ));
        }
        self.config = s
            .config
            .as_slice()
            .try_into()
            .map_err(|_| "virtio configuration space of the wrong size".to_string())?;
        if s.driver_features & !self.offered() != 0 {
            return Err(format!(
                "saved virtio device type {ty} uses features {:#x} this device does not offer",
                s.driver_features & !self.offered()
            ));
        }
        self.dev.restore_state(&s.device, &self.mem)?;
        self.bar = s.bar;
        self.queue_select = s.queue_select;
        self.dfeature_select = s.dfeature_select;
        self.gfeature_select = s.gfeature_select;
        self.driver_features = s.driver_features;
        self.status = s.status;
        self.generation = s.generation;
        self.config_vector = s.config_vector;
        self.queues = s.queues.clone();
        {
            let mut r = self.interrupt.route();
            r.config_vector = s.config_vector;
            r.queue_vectors = s.queues.iter().map(|q| q.vector).collect();
        }
        super::msix::restore_function(
            &self.interrupt,
            self.msix.as_mut(),
            &s.interrupt,
            &s.msix,
            s.msix_control,
        )?;
        self.msix_control = s.msix_control;
        self.update_ioevents();
        let running = S_FEATURES_OK | S_DRIVER_OK;
        if self.status & running == running && self.status & S_NEEDS_RESET == 0 {
            self.activate(true)?;
        }
        Ok(())
    }

    fn offered(&self) -> u64 {
        self.dev.features() | F_VERSION_1 | F_INDIRECT_DESC | F_EVENT_IDX
    }

    fn decoding(&self) -> bool {
        self.config[1] as u16 & CMD_MEMORY != 0
    }

    fn bar_in_window(&self) -> bool {
        self.windows
            .iter()
            .any(|&(s, l)| self.bar >= s && self.bar.saturating_add(BAR_SIZE) <= s + l)
    }

    /// Keeps the notify ioeventfds where the BAR currently decodes.
    fn update_ioevents(&mut self) {
        let want = (self.decoding() && self.bar_in_window()).then_some(self.bar);
        if want == self.ioevent_base {
            return;
        }
        self.unregister_ioevents();
        if let Some(base) = want {
            for (i, fd) in self.notify.iter().enumerate() {
                let a = IoEventAddress::Mmio(base + NOTIFY_OFF + NOTIFY_MULT * i as u64);
                if let Err(e) = self.vm.register_ioevent(fd, &a, NoDatamatch) {
                    tracing::warn!("ioeventfd at {base:#x}: {e}; notifies go through exits");
                }
            }
            self.ioevent_base = want;
        }
    }

    fn unregister_ioevents(&mut self) {
        if let Some(old) = self.ioevent_base.take() {
            for (i, fd) in self.notify.iter().enumerate() {
                let a = IoEventAddress::Mmio(old + NOTIFY_OFF + NOTIFY_MULT * i as u64);
                let _ = self.vm.unregister_ioevent(fd, &a, NoDatamatch);
            }
        }
    }

    fn reset(&mut self) {
        self.dev.reset();
        self.active = false;
        self.status = 0;
        self.driver_features = 0;
        self.queue_select = 0;
        self.dfeature_select = 0;
        self.gfeature_select = 0;
        for (q, &m) in self.queues.iter_mut().zip(&self.max_sizes) {
            *q = QueueRegs {
                size: m,
                vector: NO_VECTOR,
                ..Default::default()
            };
        }
        for fd in &self.notify {
            let _ = fd.read();
        }
        self.config_vector = NO_VECTOR;
        {
            let mut r = self.interrupt.route();
            r.config_vector = NO_VECTOR;
            r.queue_vectors = vec![NO_VECTOR; self.queues.len()];
        }
        self.interrupt.take_isr();
    }

    fn vector(&self, v: u16) -> u16 {
        match &self.msix {
            Some(t) if usize::from(v) < t.len() => v,
            _ => NO_VECTOR,
        }
    }

    fn set_status(&mut self, v: u8) {
        if v == 0 {
            self.reset();
            return;
        }
        let mut v = v;
        let newly = v & !self.status;
        if newly & S_FEATURES_OK != 0 {
            let ok = self.driver_features & !self.offered() == 0
                && self.driver_features & F_VERSION_1 != 0;
            if !ok {
                v &= !S_FEATURES_OK;
            }
        }
        self.status = v;
        if newly & S_DRIVER_OK != 0
            && v & S_FEATURES_OK != 0
            && !self.active
            && let Err(e) = self.activate(false)
        {
            tracing::warn!("virtio device type {}: {e}", self.dev.device_type());
            self.status |= S_NEEDS_RESET;
        }
    }

    /// Hands the queues to the device. `resume`: the rings are already
    /// in use (a restored or quiesced device), so the device carries on
    /// from the used index in guest memory; every chain it took before
    /// was finished, so the next one to take is the next one used.
    fn activate(&mut self, resume: bool) -> Result<(), String> {
        let mut queues = Vec::with_capacity(self.queues.len());
        for (i, r) in self.queues.iter().enumerate() {
            let mut q = Queue::new(self.max_sizes[i]).map_err(|e| e.to_string())?;
            if r.enable {
                q.set_size(r.size);
                q.set_desc_table_address(Some(r.desc as u32), Some((r.desc >> 32) as u32));
                q.set_avail_ring_address(Some(r.driver as u32), Some((r.driver >> 32) as u32));
                q.set_used_ring_address(Some(r.device as u32), Some((r.device >> 32) as u32));
                q.set_event_idx(self.driver_features & F_EVENT_IDX != 0);
                q.set_ready(true);
                if !q.is_valid(&self.mem) {
                    return Err(format!("queue {i} set up with invalid addresses or size"));
                }
                if resume {
                    let used = q
                        .used_idx(&self.mem, std::sync::atomic::Ordering::Acquire)
                        .map_err(|e| format!("queue {i}: used index: {e}"))?;
                    q.set_next_avail(used.0);
                    q.set_next_used(used.0);
                }
            }
            let fd = self.notify[i].try_clone().map_err(|e| e.to_string())?;
            queues.push((q, fd));
        }
        {
            let mut route = self.interrupt.route();
            route.queue_vectors = self.queues.iter().map(|q| q.vector).collect();
        }
        self.dev.activate(Activation {
            mem: self.mem.clone(),
            queues,
            interrupt: self.interrupt.clone(),
            features: self.driver_features,
        })?;
        self.active = true;
        Ok(())
    }

    fn common_image(&self) -> [u8; COMMON_LEN as usize] {
        let mut b = [0u8; COMMON_LEN as usize];
        let put = |b: &mut [u8], off: usize, bytes: &[u8]| {
            b[off..off + bytes.len()].copy_from_slice(bytes)
        };
        let offered = self.offered();
        let df = match self.dfeature_select {
            0 => offered as u32,
            1 => (offered >> 32) as u32,
            _ => 0,
        };
        let gf = match self.gfeature_select {
            0 => self.driver_features as u32,
            1 => (self.driver_features >> 32) as u32,
            _ => 0,
        };
        put(&mut b, 0x00, &self.dfeature_select.to_le_bytes());
        put(&mut b, 0x04, &df.to_le_bytes());
        put(&mut b, 0x08, &self.gfeature_select.to_le_bytes());
        put(&mut b, 0x0c, &gf.to_le_bytes());
        put(&mut b, 0x10, &self.config_vector.to_le_bytes());
        put(&mut b, 0x12, &(self.queues.len() as u16).to_le_bytes());
        b[0x14] = self.status;
        b[0x15] = self.generation;
        put(&mut b, 0x16, &self.queue_select.to_le_bytes());
        if let Some(q) = self.queues.get(usize::from(self.queue_select)) {
            put(&mut b, 0x18, &q.size.to_le_bytes());
            put(&mut b, 0x1a, &q.vector.to_le_bytes());
            put(&mut b, 0x1c, &u16::from(q.enable).to_le_bytes());
            put(&mut b, 0x1e, &self.queue_select.to_le_bytes());
            put(&mut b, 0x20, &q.desc.to_le_bytes());
            put(&mut b, 0x28, &q.driver.to_le_bytes());
            put(&mut b, 0x30, &q.device.to_le_bytes());
        }
        b
    }

    fn common_write(&mut self, off: u64, data: &[u8]) {
        if data.len() == 8 {
            self.common_write(off, &data[..4]);
            self.common_write(off + 4, &data[4..]);
            return;
        }
        let mut raw = [0u8; 4];
        let n = data.len().min(4);
        raw[..n].copy_from_slice(&data[..n]);
        let v = u32::from_le_bytes(raw);
        let qs = usize::from(self.queue_select);
        let live = self.status & S_DRIVER_OK != 0;
        match (off, data.len()) {
            (0x00, 4) => self.dfeature_select = v,
            (0x08, 4) => self.gfeature_select = v,
            (0x0c, 4) if self.status & S_FEATURES_OK == 0 => match self.gfeature_select {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
                1 => {
                    self.driver_features = (self.driver_features & 0xffff_ffff) | u64::from(v) << 32
                }
                _ => {}
            },
            (0x10, 2) => {
                self.config_vector = self.vector(v as u16);
                self.interrupt.route().config_vector = self.config_vector;
            }
            (0x14, 1) => self.set_status(v as u8),
            (0x16, 2) => self.queue_select = v as u16,
            _ if live => {}
            (0x18..=0x37, _) => {
                let max = self.max_sizes.get(qs).copied().unwrap_or(0);
                let vector = self.vector(v as u16);
                let nq = self.queues.len();
                let Some(q) = self.queues.get_mut(qs) else {
                    return;
                };
                let set_half = |field: &mut u64, hi: bool| {
                    if hi {
                        *field = (*field & 0xffff_ffff) | u64::from(v) << 32;
                    } else {
                        *field = (*field & !0xffff_ffff) | u64::from(v);
                    }
                };
                match (off, data.len()) {
                    (0x18, 2) => {
                        let s = v as u16;
                        if s != 0 && s <= max && s.is_power_of_two() {
                            q.size = s;
                        }
                    }
                    (0x1a, 2) => {
                        q.vector = vector;
                        let mut r = self.interrupt.route();
                        r.queue_vectors.resize(nq, NO_VECTOR);
                        r.queue_vectors[qs] = vector;
                    }
                    (0x1c, 2) => q.enable = v & 1 == 1,
                    (0x20, 4) => set_half(&mut q.desc, false),
                    (0x24, 4) => set_half(&mut q.desc, true),
                    (0x28, 4) => set_half(&mut q.driver, false),
                    (0x2c, 4) => set_half(&mut q.driver, true),
                    (0x30, 4) => set_half(&mut q.device, false),
                    (0x34, 4) => set_half(&mut q.device, true),
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

impl PciFunction for VirtioPci {
    fn read_config(&self, reg: u16) -> u32 {
        let w = usize::from(reg / 4);
        match w {
            4 => self.bar as u32 | 0x4,
            5 => (self.bar >> 32) as u32,
            _ if w == MSIX_CAP / 4 => match &self.msix {
                Some(t) => {
                    let ctl = self.msix_control | (t.len() as u16).saturating_sub(1);
                    0x11 | u32::from(ctl) << 16
                }
                None => 0,
            },
            _ => self.config.get(w).copied().unwrap_or(0),
        }
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        match reg {
            0x04 => {
                let cmd = value as u16 & CMD_MASK;
                self.config[1] = (self.config[1] & 0xffff_0000) | u32::from(cmd);
            }
            0x10 => {
                let low = u64::from(value & !(BAR_SIZE as u32 - 1) & 0xffff_fff0);
                self.bar = (self.bar & !0xffff_ffff) | low;
            }
            0x14 => self.bar = (self.bar & 0xffff_ffff) | u64::from(value) << 32,
            0x3c => self.config[15] = (self.config[15] & !0xff) | (value & 0xff),
            r if usize::from(r) == MSIX_CAP && self.msix.is_some() => {
                self.msix_control = (value >> 16) as u16 & 0xc000;
                self.interrupt.set_msix_control_word(self.msix_control);
                return;
            }
            _ => return,
        }
        self.update_ioevents();
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        let off = addr.checked_sub(self.bar)?;
        (self.decoding() && self.bar != 0 && off < BAR_SIZE).then_some((0, off))
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        data.fill(0);
        match offset {
            COMMON_OFF..0x1000 => {
                let img = self.common_image();
                super::read_config_bytes(&img, offset, data);
            }
            ISR_OFF..0x2000 => {
                if offset == ISR_OFF
                    && let Some(b) = data.first_mut()
                {
                    *b = self.interrupt.take_isr();
                }
            }
            DEVICE_OFF..0x3000 => self.dev.read_config(offset - DEVICE_OFF, data),
            MSIX_TABLE_OFF..MSIX_PBA_OFF => {
                if let Some(t) = &self.msix {
                    t.read(offset - MSIX_TABLE_OFF, data);
                }
            }
            MSIX_PBA_OFF..0x6000 => {
                let bits = self.interrupt.pending_bits().to_le_bytes();
                super::read_config_bytes(&bits, offset - MSIX_PBA_OFF, data);
            }
            _ => {}
        }
    }

    fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
        match offset {
            COMMON_OFF..0x1000 => self.common_write(offset, data),
            DEVICE_OFF..0x3000 => self.dev.write_config(offset - DEVICE_OFF, data),
            MSIX_TABLE_OFF..MSIX_PBA_OFF => {
                if let Some(t) = self.msix.as_mut() {
                    t.write(offset - MSIX_TABLE_OFF, data, &self.interrupt);
                }
            }
            NOTIFY_OFF..MSIX_TABLE_OFF => {
                let q = ((offset - NOTIFY_OFF) / NOTIFY_MULT) as usize;
                if let Some(fd) = self.notify.get(q) {
                    let _ = fd.write(1);
                }
            }
            _ => {}
        }
    }
}

impl Drop for VirtioPci {
    fn drop(&mut self) {
        self.dev.reset();
    }
}
