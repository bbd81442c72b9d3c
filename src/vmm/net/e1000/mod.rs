//! The Intel 82540EM gigabit NIC ("e1000") as QEMU's `-device e1000`
//! presents it: PCI 8086:100E, revision 3, subsystem 1AF4:1100, class
//! 0x020000; BAR 0 the 128 KiB register space (MMIO), BAR 1 a 64-byte
//! I/O window onto it (IOADDR at 0, IODATA at 4; Linux resets the
//! 82540EM through it); interrupt pin A, a level INTx line high while
//! ICR & IMS is not zero. No option ROM, no capabilities.
//!
//! | file | job |
//! | --- | --- |
//! | `device.rs` | the registers' behaviour, interrupts, reset, ring geometry |
//! | `register_file.rs` | where register values live |
//! | `regs.rs` | offsets and bits |
//! | `eeprom.rs` | the EEPROM: MAC, checksum, Microwire (EECD) and EERD |
//! | `phy.rs` | the PHY behind MDIC |
//! | `filter.rs` | receive address and VLAN filtering |
//! | `tx.rs`, `offload.rs` | the transmit ring; checksum insertion and TSO |
//! | `rx.rs` | the receive ring |
//! | `worker.rs` | the thread that moves frames between the rings and the tap |
//!
//! vCPUs only touch registers; a write that gives the worker something
//! to do kicks it through an eventfd. The worker starts with the first
//! such write.

mod device;
mod eeprom;
mod filter;
mod offload;
mod phy;
#[cfg(test)]
mod random_tests;
mod register_file;
mod regs;
mod rx;
#[cfg(test)]
mod test_rig;
mod tx;
mod worker;

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use device::Device;
use worker::NicWorker;

use crate::vmm::devices::pci::PciFunction;
use crate::vmm::memory::GuestMemory;
use crate::vmm::sandbox::ThreadKind;
use crate::vmm::virtio::interrupt::IntxLine;
use crate::vmm::virtio::stats::NetStats;
use crate::vmm::virtio::tap::Tap;
use crate::vmm::virtio::worker::{Home, LazyWorker, Lent, reclaim};

const VENDOR_INTEL: u32 = 0x8086;
/// 82540EM (desktop).
pub const DEVICE_ID: u16 = 0x100e;
/// Network controller, Ethernet; revision 3.
const CLASS_REVISION: u32 = 0x0200_0003;
/// Subsystem as QEMU's PCI devices report it.
const SUBSYSTEM: u32 = 0x1100_1af4;

/// Size of BAR 0 (registers) and BAR 1 (the I/O window).
pub const MMIO_BAR_SIZE: u64 = 0x20000;
pub const IO_BAR_SIZE: u64 = 0x40;
const BAR0_REG: u16 = 0x10;
const BAR1_REG: u16 = 0x14;
const BAR_IO_SPACE: u32 = 1;

const PCI_CMD_IO: u16 = 1 << 0;
const PCI_CMD_MEMORY: u16 = 1 << 1;
/// I/O, memory, bus master, memory write and invalidate, INTx disable.
const PCI_CMD_MASK: u32 = 0x0417;
const PCI_STATUS_INTERRUPT: u32 = 1 << 3;
/// QEMU's cache line size for the e1000 (dwords).
const CACHE_LINE: u8 = 0x10;

/// Offsets in the I/O window.
const IOADDR: u64 = 0;
const IODATA: u64 = 4;
/// IOADDR's register address bits.
const IOADDR_MASK: u32 = 0x1_fffc;

/// Where the VMM put the BARs (firmware or the guest may move them).
pub struct Placement {
    pub mmio: u32,
    pub io: u16,
}

/// The NIC's state, as a state image keeps it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct E1000State {
    device: device::DeviceState,
    bar0: u32,
    bar1: u32,
    command: u16,
    cache_line: u8,
    latency: u8,
    irq_line: u8,
    ioaddr: u32,
}

/// The PCI function.
pub struct E1000 {
    dev: Arc<Mutex<Device>>,
    mem: GuestMemory,
    bar0: u32,
    bar1: u32,
    command: u16,
    cache_line: u8,
    latency: u8,
    irq_line: u8,
    /// IOADDR: the register IODATA reaches.
    ioaddr: u32,
    /// The tap, until the worker takes it.
    tap: Option<Tap>,
    home: Home<Tap>,
    /// Started with the first register write that gives it work.
    worker: LazyWorker,
}

fn lock(d: &Mutex<Device>) -> MutexGuard<'_, Device> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

impl E1000 {
    /// A NIC with MAC `mac` on `tap`, its INTx pin on `irq` (whose GSI
    /// the interrupt line register names), BARs at `at` with decoding on,
    /// as the VMM places every function.
    pub fn new(
        mac: [u8; 6],
        tap: Tap,
        mem: GuestMemory,
        irq: IntxLine,
        at: Placement,
        stats: Arc<NetStats>,
        label: String,
    ) -> io::Result<E1000> {
        let irq_line = irq.gsi as u8;
        let command = PCI_CMD_IO | PCI_CMD_MEMORY | device::PCI_CMD_BUS_MASTER;
        let mut dev = Device::new(mac, Some(irq), stats);
        dev.set_command(command);
        Ok(E1000 {
            dev: Arc::new(Mutex::new(dev)),
            mem,
            bar0: at.mmio & !(MMIO_BAR_SIZE as u32 - 1),
            bar1: u32::from(at.io) & !(IO_BAR_SIZE as u32 - 1),
            command,
            cache_line: CACHE_LINE,
            latency: 0,
            irq_line,
            ioaddr: 0,
            tap: Some(tap),
            home: Arc::new(Mutex::new(None)),
            worker: LazyWorker::new(ThreadKind::Net, label)?,
        })
    }

    /// Stops the worker (at VMM exit, and for a state image; the tap
    /// comes back to the function).
    pub fn stop(&mut self) {
        self.worker.stop();
        reclaim(&mut self.tap, &self.home);
    }

    /// The NIC's state; the worker is stopped.
    pub fn state(&self) -> E1000State {
        E1000State {
            device: lock(&self.dev).state(),
            bar0: self.bar0,
            bar1: self.bar1,
            command: self.command,
            cache_line: self.cache_line,
            latency: self.latency,
            irq_line: self.irq_line,
            ioaddr: self.ioaddr,
        }
    }

    /// Loads a saved state; the worker starts if the driver had the NIC
    /// on.
    pub fn restore(&mut self, s: &E1000State) -> Result<(), String> {
        lock(&self.dev).restore(&s.device)?;
        self.bar0 = s.bar0;
        self.bar1 = s.bar1;
        self.command = s.command;
        self.cache_line = s.cache_line;
        self.latency = s.latency;
        self.irq_line = s.irq_line;
        self.ioaddr = s.ioaddr;
        lock(&self.dev).set_command(s.command);
        self.resume();
        Ok(())
    }

    /// The cable plugged in or pulled (see [`Device::set_link`]).
    pub fn set_link(&mut self, up: bool) {
        let enabled = {
            let mut dev = lock(&self.dev);
            dev.set_link(up);
            dev.enabled()
        };
        // A frame held back while the link was down goes in now.
        if up && enabled {
            self.kick_worker();
        }
    }

    /// Starts the worker again after a state image was taken.
    pub fn resume(&mut self) {
        if lock(&self.dev).enabled() {
            self.kick_worker();
        }
    }

    /// Wakes the worker, starting it the first time.
    fn kick_worker(&mut self) {
        let (dev, mem, home) = (self.dev.clone(), self.mem.clone(), self.home.clone());
        let tap = &mut self.tap;
        self.worker.kick(|kick| {
            let tap = Lent::new(tap.take()?, home);
            Some(NicWorker::new(dev, mem, tap, kick))
        });
        // A worker that could not start gave the tap back.
        reclaim(&mut self.tap, &self.home);
    }

    fn read_register(&self, off: u64) -> u32 {
        lock(&self.dev).read(off as u32)
    }

    /// Writes a register; kicks the worker if that gives it work.
    fn write_register(&mut self, off: u64, v: u32) {
        let work = lock(&self.dev).write(off as u32, v);
        if work {
            self.kick_worker();
        }
    }

    fn io_read(&self, off: u64) -> u32 {
        match off {
            IOADDR => self.ioaddr,
            IODATA => self.read_register(u64::from(self.ioaddr)),
            _ => 0,
        }
    }

    fn io_write(&mut self, off: u64, v: u32) {
        match off {
            IOADDR => self.ioaddr = v & IOADDR_MASK,
            IODATA => self.write_register(u64::from(self.ioaddr), v),
            _ => {}
        }
    }
}

/// The bytes of an access of `data.len()` at `offset` from the dwords
/// `read` gives (registers are dwords; a read of a part reads the
/// whole, with its side effects).
fn read_dwords(offset: u64, data: &mut [u8], mut read: impl FnMut(u64) -> u32) {
    let aligned = offset & !3;
    let skip = (offset & 3) as usize;
    let mut bytes = Vec::with_capacity(8);
    while bytes.len() < skip + data.len() {
        bytes.extend_from_slice(&read(aligned + bytes.len() as u64).to_le_bytes());
    }
    data.copy_from_slice(&bytes[skip..skip + data.len()]);
}

/// The dwords a write of `data` at `offset` makes: a part of a dword is
/// written with the rest zero, as QEMU's 4-byte registers take it.
fn write_dwords(offset: u64, data: &[u8], mut write: impl FnMut(u64, u32)) {
    let aligned = offset & !3;
    let skip = (offset & 3) as usize;
    let mut bytes = vec![0u8; (skip + data.len()).div_ceil(4) * 4];
    bytes[skip..skip + data.len()].copy_from_slice(data);
    for (i, c) in bytes.chunks_exact(4).enumerate() {
        write(
            aligned + 4 * i as u64,
            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        );
    }
}

impl PciFunction for E1000 {
    fn read_config(&self, reg: u16) -> u32 {
        match reg {
            0x00 => u32::from(DEVICE_ID) << 16 | VENDOR_INTEL,
            0x04 => {
                let pending = lock(&self.dev).interrupt_pending();
                let status = if pending { PCI_STATUS_INTERRUPT } else { 0 };
                status << 16 | u32::from(self.command)
            }
            0x08 => CLASS_REVISION,
            0x0c => u32::from(self.latency) << 8 | u32::from(self.cache_line),
            BAR0_REG => self.bar0,
            BAR1_REG => self.bar1 | BAR_IO_SPACE,
            0x2c => SUBSYSTEM,
            0x3c => 1 << 8 | u32::from(self.irq_line),
            _ => 0,
        }
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        match reg {
            0x04 => {
                self.command = (value & PCI_CMD_MASK) as u16;
                lock(&self.dev).set_command(self.command);
                // Bus mastering may have just allowed DMA.
                if self.command & device::PCI_CMD_BUS_MASTER != 0 {
                    self.worker.wake();
                }
            }
            0x0c => {
                self.cache_line = value as u8;
                self.latency = (value >> 8) as u8;
            }
            // Sizing reads back the masks.
            BAR0_REG => self.bar0 = value & !(MMIO_BAR_SIZE as u32 - 1),
            BAR1_REG => self.bar1 = value & !(IO_BAR_SIZE as u32 - 1),
            0x3c => self.irq_line = value as u8,
            _ => {}
        }
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        let off = addr.checked_sub(u64::from(self.bar0))?;
        let decoding = self.command & PCI_CMD_MEMORY != 0;
        (decoding && self.bar0 != 0 && off < MMIO_BAR_SIZE).then_some((0, off))
    }

    fn io_bar_at(&self, port: u64) -> Option<(usize, u64)> {
        let off = port.checked_sub(u64::from(self.bar1))?;
        let decoding = self.command & PCI_CMD_IO != 0;
        // A BAR holding the sizing pattern (all ones) decodes nothing.
        let placed = self.bar1 != 0 && self.bar1 <= 0xffff;
        (decoding && placed && off < IO_BAR_SIZE).then_some((1, off))
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar == 0 {
            read_dwords(offset, data, |off| self.read_register(off));
        } else {
            read_dwords(offset, data, |off| self.io_read(off));
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar == 0 {
            write_dwords(offset, data, |off, v| self.write_register(off, v));
        } else {
            write_dwords(offset, data, |off, v| self.io_write(off, v));
        }
    }
}

impl Drop for E1000 {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[path = "pci_tests.rs"]
mod pci_tests;
