//! PCI configuration space: mechanism #1 (0xCF8/0xCFC) and ECAM, with a
//! host bridge at 00:00.0 and the functions plugged into bus 0: up to
//! eight per slot, function 0's header type saying so (multi-function)
//! when a slot has more. Absent functions read as all ones.

use std::sync::{Arc, Mutex};

use crate::vmm::bus::BusDevice;

/// The host bridge's identity: the one Cloud Hypervisor presents, which
/// edk2's CloudHv firmware requires at 00:00.0 to recognise the platform.
const VENDOR_INTEL: u16 = 0x8086;
const DEVICE_HOST_BRIDGE: u16 = 0x0d57;
/// Subsystem "QEMU virtual machine": SeaBIOS then takes the platform for
/// the virtual one it is (its debug port, CD-ROM media probing).
const SUBSYSTEM_QEMU: u32 = 0x1100 << 16 | 0x1af4;
const CLASS_HOST_BRIDGE: u32 = 0x0600_0000;

/// A function on bus 0: its configuration space and its memory BARs.
pub trait PciFunction: Send {
    /// Reads the dword at `reg` (a multiple of 4, below 4096).
    fn read_config(&self, reg: u16) -> u32;
    /// Writes the dword at `reg` (already merged with the old value).
    fn write_config(&mut self, reg: u16, value: u32);
    /// If `addr` falls into one of this function's decoded memory BARs,
    /// the BAR index and the offset inside it.
    fn bar_at(&self, addr: u64) -> Option<(usize, u64)>;
    /// The same for I/O port `port` and the function's I/O BARs (most
    /// functions have none).
    fn io_bar_at(&self, _port: u64) -> Option<(usize, u64)> {
        None
    }
    /// Access to a BAR (MMIO or port I/O, as the BAR is).
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The configuration registers a state image keeps, for functions
    /// whose device state is kept elsewhere (`None`: nothing here).
    fn config_state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Loads what [`PciFunction::config_state`] gave.
    fn restore_config_state(&mut self, _state: &serde_json::Value) -> Result<(), String> {
        Ok(())
    }
}

/// Shared handle to a plugged function.
pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

/// Functions per slot.
pub const FUNCTIONS: usize = 8;
/// The header type byte's multi-function bit, in the dword at 0x0C.
const HEADER_MULTI_FUNCTION: u32 = 0x80 << 16;

/// The root complex's configuration space.
pub struct PciRoot {
    host_bridge: [u32; 16],
    slots: [[Option<SharedFunction>; FUNCTIONS]; 32],
}

impl Default for PciRoot {
    fn default() -> Self {
        let mut h = [0u32; 16];
        h[0] = u32::from(DEVICE_HOST_BRIDGE) << 16 | u32::from(VENDOR_INTEL);
        // Command: memory + I/O decode; status: 0.
        h[1] = 0x0000_0003;
        h[2] = CLASS_HOST_BRIDGE;
        h[11] = SUBSYSTEM_QEMU;
        PciRoot {
            host_bridge: h,
            slots: std::array::from_fn(|_| std::array::from_fn(|_| None)),
        }
    }
}

impl PciRoot {
    /// Reads a dword of configuration space.
    pub fn read_dword(&self, bus: u8, dev: u8, func: u8, reg: u16) -> u32 {
        if bus == 0 && dev == 0 && func == 0 {
            let i = usize::from(reg / 4);
            self.host_bridge.get(i).copied().unwrap_or(0)
        } else if let Some(f) = self.function(bus, dev, func) {
            let v = lock(&f).read_config(reg & 0xffc);
            if func == 0 && reg & 0xffc == 0x0c && self.multi_function(dev) {
                v | HEADER_MULTI_FUNCTION
            } else {
                v
            }
        } else {
            0xffff_ffff
        }
    }

    /// Writes to configuration space; the host bridge ignores writes.
    pub fn write_dword(&mut self, bus: u8, dev: u8, func: u8, reg: u16, v: u32) {
        if let Some(f) = self.function(bus, dev, func) {
            lock(&f).write_config(reg & 0xffc, v);
        }
    }

    fn function(&self, bus: u8, dev: u8, func: u8) -> Option<SharedFunction> {
        if bus != 0 {
            return None;
        }
        self.slots
            .get(usize::from(dev))?
            .get(usize::from(func))?
            .clone()
    }

    /// Whether slot `dev` holds functions besides function 0.
    fn multi_function(&self, dev: u8) -> bool {
        self.slots
            .get(usize::from(dev))
            .is_some_and(|s| s.iter().skip(1).any(Option::is_some))
    }

    /// Plugs a single-function device into slot `dev` (1..=31) of bus 0.
    pub fn plug(&mut self, dev: u8, f: SharedFunction) -> Result<(), String> {
        if self.occupied(dev) {
            return Err(format!("PCI slot {dev} is already in use"));
        }
        self.plug_function(dev, 0, f)
    }

    /// Plugs function `func` (0..=7) into slot `dev` (1..=31) of bus 0.
    pub fn plug_function(&mut self, dev: u8, func: u8, f: SharedFunction) -> Result<(), String> {
        if dev == 0 || usize::from(dev) >= self.slots.len() {
            return Err(format!("PCI slot {dev} is out of range 1..=31"));
        }
        match self.slots[usize::from(dev)].get_mut(usize::from(func)) {
            Some(s @ None) => {
                *s = Some(f);
                Ok(())
            }
            Some(Some(_)) => Err(format!("PCI address {dev:02x}.{func} is already in use")),
            None => Err(format!("PCI function {func} is out of range 0..=7")),
        }
    }

    /// Whether slot `dev` holds a function.
    pub fn occupied(&self, dev: u8) -> bool {
        self.slots
            .get(usize::from(dev))
            .is_some_and(|s| s.iter().any(Option::is_some))
    }

    /// Takes slot `dev`'s functions off the bus (hot unplug): from now on
    /// its configuration space reads as absent and its BARs decode nothing.
    pub fn unplug(&mut self, dev: u8) -> Vec<SharedFunction> {
        match (dev, self.slots.get_mut(usize::from(dev))) {
            (1.., Some(s)) => s.iter_mut().filter_map(Option::take).collect(),
            _ => Vec::new(),
        }
    }

    /// Every plugged function with its slot and function number.
    pub fn functions(&self) -> Vec<(u8, u8, SharedFunction)> {
        let mut out = Vec::new();
        for (slot, fs) in self.slots.iter().enumerate() {
            for (func, f) in fs.iter().enumerate() {
                if let Some(f) = f {
                    out.push((slot as u8, func as u8, f.clone()));
                }
            }
        }
        out
    }

    /// The function whose memory BAR (or, with `io`, I/O BAR) holds
    /// `addr`.
    pub fn bar_owner(&self, addr: u64, io: bool) -> Option<(SharedFunction, usize, u64)> {
        self.slots.iter().flatten().flatten().find_map(|f| {
            let func = lock(f);
            let (bar, off) = if io {
                func.io_bar_at(addr)?
            } else {
                func.bar_at(addr)?
            };
            Some((f.clone(), bar, off))
        })
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The PCI memory windows (and the I/O window): forwards accesses to
/// whichever BAR the guest placed there. `base` is where this range
/// starts in guest physical (or port) space.
pub struct PciBarSpace {
    root: Arc<Mutex<PciRoot>>,
    base: u64,
    io: bool,
}

impl PciBarSpace {
    /// A memory window.
    pub fn new(root: Arc<Mutex<PciRoot>>, base: u64) -> Self {
        PciBarSpace {
            root,
            base,
            io: false,
        }
    }

    /// The I/O port window.
    pub fn io(root: Arc<Mutex<PciRoot>>, base: u64) -> Self {
        PciBarSpace {
            root,
            base,
            io: true,
        }
    }

    fn owner(&self, offset: u64) -> Option<(SharedFunction, usize, u64)> {
        lock(&self.root).bar_owner(self.base.checked_add(offset)?, self.io)
    }
}

impl BusDevice for PciBarSpace {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match self.owner(offset) {
            Some((f, bar, off)) => lock(&f).bar_read(bar, off, data),
            None => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some((f, bar, off)) = self.owner(offset) {
            lock(&f).bar_write(bar, off, data);
        }
    }
}

fn extract(dword: u32, byte_off: u64, data: &mut [u8]) {
    let bytes = dword.to_le_bytes();
    for (i, b) in data.iter_mut().enumerate() {
        *b = bytes.get(byte_off as usize + i).copied().unwrap_or(0xff);
    }
}

/// Port 0xCF8..0xCFF: address register and data window.
pub struct PciConfigIo {
    root: Arc<Mutex<PciRoot>>,
    address: u32,
    /// The reset control register at 0xCF9 (a byte between the two
    /// configuration registers), which firmware writes to reset the
    /// machine: SeaBIOS and edk2 both do.
    reset: Option<Arc<crate::vmm::exit::ExitSignal>>,
}

/// 0xCF9: reset the CPU.
const RESET_CONTROL_OFFSET: u64 = 1;
const RESET_CONTROL_RST_CPU: u8 = 1 << 2;

impl PciConfigIo {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciConfigIo {
            root,
            address: 0,
            reset: None,
        }
    }

    /// Also decodes the reset control register, asking for a reboot.
    pub fn with_reset_control(mut self, exit: Arc<crate::vmm::exit::ExitSignal>) -> Self {
        self.reset = Some(exit);
        self
    }

    /// The address register (0xCF8), which a state image keeps.
    pub fn address(&self) -> u32 {
        self.address
    }

    pub fn set_address(&mut self, address: u32) {
        self.address = address;
    }

    fn target(&self) -> Option<(u8, u8, u8, u16)> {
        let a = self.address;
        (a & 0x8000_0000 != 0).then_some({
            (
                (a >> 16) as u8,
                ((a >> 11) & 0x1f) as u8,
                ((a >> 8) & 0x7) as u8,
                (a & 0xfc) as u16,
            )
        })
    }
}

impl BusDevice for PciConfigIo {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match offset {
            0..=3 => extract(self.address, offset, data),
            4..=7 => {
                let v = match (self.target(), self.root.lock()) {
                    (Some((b, d, f, r)), Ok(root)) => root.read_dword(b, d, f, r),
                    _ => 0xffff_ffff,
                };
                extract(v, offset - 4, data);
            }
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset == RESET_CONTROL_OFFSET
            && let [v] = data
            && v & RESET_CONTROL_RST_CPU != 0
            && let Some(exit) = &self.reset
        {
            tracing::info!("guest wrote the reset control register");
            exit.request(crate::vmm::exit::ExitReason::Reboot);
        } else if offset == 0 && data.len() == 4 {
            self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        } else if (4..=7).contains(&offset)
            && let (Some((b, d, f, r)), Ok(mut root)) = (self.target(), self.root.lock())
        {
            let mut v = root.read_dword(b, d, f, r).to_le_bytes();
            for (i, x) in data.iter().enumerate() {
                if let Some(slot) = v.get_mut((offset - 4) as usize + i) {
                    *slot = *x;
                }
            }
            root.write_dword(b, d, f, r, u32::from_le_bytes(v));
        }
    }
}

/// ECAM window: bus << 20 | device << 15 | function << 12 | register.
pub struct PciEcam {
    root: Arc<Mutex<PciRoot>>,
}

impl PciEcam {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciEcam { root }
    }
}

fn ecam_decode(offset: u64) -> (u8, u8, u8, u16) {
    (
        ((offset >> 20) & 0xff) as u8,
        ((offset >> 15) & 0x1f) as u8,
        ((offset >> 12) & 0x7) as u8,
        (offset & 0xffc) as u16,
    )
}

impl BusDevice for PciEcam {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let (b, d, f, r) = ecam_decode(offset);
        let v = match self.root.lock() {
            Ok(root) => root.read_dword(b, d, f, r),
            Err(_) => 0xffff_ffff,
        };
        extract(v, offset & 3, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (b, d, f, r) = ecam_decode(offset);
        if let Ok(mut root) = self.root.lock() {
            let mut v = root.read_dword(b, d, f, r).to_le_bytes();
            for (i, x) in data.iter().enumerate() {
                if let Some(slot) = v.get_mut((offset & 3) as usize + i) {
                    *slot = *x;
                }
            }
            root.write_dword(b, d, f, r, u32::from_le_bytes(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bridge_and_empty_slots() {
        let root = Arc::new(Mutex::new(PciRoot::default()));
        let mut io = PciConfigIo::new(root.clone());
        io.write(0, &0x8000_0000u32.to_le_bytes());
        let mut w = [0u8; 2];
        io.read(4, &mut w);
        assert_eq!(u16::from_le_bytes(w), VENDOR_INTEL);
        io.write(0, &(0x8000_0000u32 | 1 << 11).to_le_bytes());
        io.read(4, &mut w);
        assert_eq!(w, [0xff, 0xff]);
        let mut ecam = PciEcam::new(root);
        let mut d = [0u8; 4];
        ecam.read(8, &mut d);
        assert_eq!(u32::from_le_bytes(d) >> 8, CLASS_HOST_BRIDGE >> 8);
        ecam.read(1 << 15, &mut d);
        assert_eq!(d, [0xff; 4]);
    }

    /// A function with an ID and an I/O BAR of 32 ports.
    struct Fake {
        id: u32,
        io: u64,
        last: Option<(usize, u64)>,
    }

    impl PciFunction for Fake {
        fn read_config(&self, reg: u16) -> u32 {
            if reg == 0 { self.id } else { 0 }
        }
        fn write_config(&mut self, _reg: u16, _value: u32) {}
        fn bar_at(&self, _addr: u64) -> Option<(usize, u64)> {
            None
        }
        fn io_bar_at(&self, port: u64) -> Option<(usize, u64)> {
            let off = port.checked_sub(self.io)?;
            (off < 32).then_some((4, off))
        }
        fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
            data.fill(bar as u8 + offset as u8);
        }
        fn bar_write(&mut self, bar: usize, offset: u64, _data: &[u8]) {
            self.last = Some((bar, offset));
        }
    }

    fn fake(id: u32, io: u64) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake { id, io, last: None }))
    }

    #[test]
    fn functions_of_a_slot_and_the_multi_function_bit() {
        let mut root = PciRoot::default();
        root.plug(3, fake(0x1111_8086, 0)).unwrap();
        assert_eq!(root.read_dword(0, 3, 0, 0xc), 0, "single function");
        let f7 = fake(0x293a_8086, 0xc000);
        root.plug_function(4, 7, f7.clone()).unwrap();
        root.plug_function(4, 0, fake(0x2934_8086, 0xc020)).unwrap();
        assert_eq!(root.read_dword(0, 4, 0, 0), 0x2934_8086);
        assert_eq!(root.read_dword(0, 4, 7, 0), 0x293a_8086);
        assert_eq!(root.read_dword(0, 4, 0, 0xc), HEADER_MULTI_FUNCTION);
        assert_eq!(root.read_dword(0, 4, 7, 0xc), 0, "only function 0 says so");
        assert_eq!(root.read_dword(0, 4, 3, 0), 0xffff_ffff, "absent function");
        assert!(root.plug_function(4, 7, fake(0, 0)).is_err());
        assert!(root.plug(4, fake(0, 0)).is_err(), "slot taken");
        assert!(root.plug_function(4, 8, fake(0, 0)).is_err());
        assert!(root.plug_function(0, 1, fake(0, 0)).is_err());
        // I/O BARs of any function through the I/O window.
        let root = Arc::new(Mutex::new(root));
        let mut io = PciBarSpace::io(root, 0x1000);
        let mut b = [0u8; 2];
        io.read(0xc000 - 0x1000 + 2, &mut b);
        assert_eq!(b, [6, 6]);
        io.write(0xc000 - 0x1000 + 0x10, &[1]);
        assert_eq!(f7.lock().unwrap().last, Some((4, 0x10)));
        io.read(0xd000 - 0x1000, &mut b);
        assert_eq!(b, [0xff, 0xff], "no BAR there");
    }
}
