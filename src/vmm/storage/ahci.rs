//! An ICH9-compatible AHCI controller (PCI 8086:2922, class 0x010601,
//! ABAR in BAR 5, six ports) whose ports hold ATA hard disks and ATAPI
//! CD-ROM drives.
//!
//! vCPUs only touch registers: issuing a command (PxCI) wakes the
//! controller's worker thread, which reads the command from guest
//! memory, runs it on the drive (images are read and written there,
//! never on a vCPU), moves the data through the PRDT and posts the
//! result FIS. The interrupt is level INTx on the slot's GSI (no MSI):
//! high while GHC.IE is set and some port has an enabled PxIS bit.
//! SeaBIOS polls instead.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::ahci_cmd;
use super::ahci_port::{self, Port, PortDrive};
use super::ata_disk::AtaDisk;
use crate::vmm::devices::pci::PciFunction;
use crate::vmm::memory::GuestMemory;
use crate::vmm::sandbox::ThreadKind;
use crate::vmm::virtio::Interrupt;
use crate::vmm::virtio::worker::{Handler, LazyWorker, Poll};

/// Ports of the controller.
pub const PORTS: usize = 6;
/// Size of the ABAR (BAR 5).
pub const BAR_SIZE: u64 = 0x1000;

const VENDOR_INTEL: u32 = 0x8086;
const DEVICE_ICH9_AHCI: u32 = 0x2922;
/// Mass storage, SATA, AHCI 1.0; revision 2.
const CLASS_REVISION: u32 = 0x0106_0102;
/// Subsystem as QEMU's PCI devices report it.
const SUBSYSTEM: u32 = 0x1100_1af4;
const BAR5_REG: u16 = 0x24;

/// PCI command register bits honoured: I/O, memory, bus master, INTx
/// disable.
const PCI_CMD_MEMORY: u32 = 1 << 1;
const PCI_CMD_MASK: u32 = 0x0407;

/// Generic host control registers.
const HOST_CAP: u64 = 0x00;
const HOST_GHC: u64 = 0x04;
const HOST_IS: u64 = 0x08;
const HOST_PI: u64 = 0x0c;
const HOST_VS: u64 = 0x10;
const PORT_BASE: u64 = 0x100;
const PORT_LEN: u64 = 0x80;

/// CAP: 64-bit addressing, AHCI only, Gen1, 32 command slots, 6 ports.
const CAP: u32 = 1 << 31 | 1 << 18 | 1 << 20 | 31 << 8 | (PORTS as u32 - 1);
/// GHC bits: HBA reset, interrupt enable, AHCI enable.
const GHC_HR: u32 = 1 << 0;
const GHC_IE: u32 = 1 << 1;
const GHC_AE: u32 = 1 << 31;
const VERSION_1_0: u32 = 0x0001_0000;

/// The controller's state, as a state image keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AhciState {
    ghc: u32,
    next_port: usize,
    ports: Vec<ahci_port::PortState>,
    interrupt: crate::vmm::virtio::interrupt::InterruptState,
    bar: u32,
    command: u32,
    irq_line: u8,
}

/// The host bus adapter's registers, shared by vCPUs and the worker.
pub struct Hba {
    ghc: u32,
    ports: Vec<Port>,
    /// Where the worker looks first, so that ports take turns.
    next_port: usize,
    mem: GuestMemory,
    irq: Arc<Interrupt>,
}

impl Hba {
    /// A controller with `drives` on its ports (index = port); `irq`
    /// carries the INTx level.
    pub fn new(drives: Vec<Option<PortDrive>>, mem: GuestMemory, irq: Arc<Interrupt>) -> Hba {
        let mut drives = drives.into_iter();
        Hba {
            ghc: GHC_AE,
            ports: (0..PORTS)
                .map(|_| Port::new(drives.next().flatten()))
                .collect(),
            next_port: 0,
            mem,
            irq,
        }
    }

    /// The ports asking for an interrupt.
    fn pending(&self) -> u32 {
        self.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| p.interrupt())
            .fold(0, |acc, (i, _)| acc | 1 << i)
    }

    /// Drives the INTx line from the ports' state.
    fn update_irq(&self) {
        // virtio's `Interrupt` without MSI-X vectors is a level INTx
        // line shared with the slot's GSI: a signal raises it, taking the
        // ISR lowers it; both may repeat.
        if self.ghc & GHC_IE != 0 && self.pending() != 0 {
            self.irq.signal_config();
        } else {
            self.irq.take_isr();
        }
    }

    /// Reads the register dword at `off`.
    pub fn read(&self, off: u64) -> u32 {
        match off {
            HOST_CAP => CAP,
            HOST_GHC => self.ghc,
            HOST_IS => self.pending(),
            HOST_PI => (1 << PORTS) - 1,
            HOST_VS => VERSION_1_0,
            _ => match port_register(off) {
                Some((p, reg)) => self.ports[p].read(reg),
                None => 0,
            },
        }
    }

    /// Writes the register dword at `off`; returns whether commands wait
    /// for the worker.
    pub fn write(&mut self, off: u64, v: u32) -> bool {
        let work = match off {
            HOST_GHC if v & GHC_HR != 0 => {
                self.ghc = GHC_AE;
                for p in &mut self.ports {
                    p.hba_reset(Some(&self.mem));
                }
                false
            }
            HOST_GHC => {
                self.ghc = GHC_AE | (v & GHC_IE);
                false
            }
            _ => match port_register(off) {
                Some((p, reg)) => self.ports[p].write(reg, v, &self.mem),
                None => false,
            },
        };
        self.update_irq();
        work
    }

    /// Takes the next issued command, ports in turn.
    pub fn take_job(&mut self) -> Option<(usize, ahci_port::Job)> {
        for i in 0..PORTS {
            let p = (self.next_port + i) % PORTS;
            if let Some(job) = self.ports[p].take_job() {
                self.next_port = (p + 1) % PORTS;
                return Some((p, job));
            }
        }
        None
    }

    /// The hard disks on the ports.
    pub fn disks(&self) -> Vec<Arc<Mutex<AtaDisk>>> {
        self.ports
            .iter()
            .filter_map(|p| match p.drive() {
                Some(PortDrive::Disk(d)) => Some(d.clone()),
                _ => None,
            })
            .collect()
    }

    /// Finishes a command the worker ran.
    pub fn complete(&mut self, port: usize, job: &ahci_port::Job, outcome: ahci_cmd::Outcome) {
        if let Some(p) = self.ports.get_mut(port) {
            p.complete(job, outcome, &self.mem);
        }
        self.update_irq();
    }
}

/// The port and port register of an ABAR offset.
fn port_register(off: u64) -> Option<(usize, u64)> {
    let rel = off.checked_sub(PORT_BASE)?;
    let port = usize::try_from(rel / PORT_LEN).ok()?;
    (port < PORTS).then_some((port, rel % PORT_LEN))
}

fn lock(hba: &Mutex<Hba>) -> std::sync::MutexGuard<'_, Hba> {
    hba.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs every issued command, one at a time, the drive's lock taken
/// without the HBA's.
pub fn run_pending(hba: &Mutex<Hba>, mem: &GuestMemory) {
    loop {
        // The HBA's lock is released before the command runs.
        let next = lock(hba).take_job();
        let Some((port, job)) = next else {
            return;
        };
        let outcome = ahci_cmd::execute(mem, job.header_at, job.drive.as_ref());
        lock(hba).complete(port, &job, outcome);
    }
}

struct AhciWorker {
    hba: Arc<Mutex<Hba>>,
    mem: GuestMemory,
    kick: EventFd,
}

impl Drop for AhciWorker {
    /// The worker stops at VMM exit: what the disks were written is made
    /// stable (and a qcow2 image's metadata written out), on this thread,
    /// whose seccomp filter allows it.
    fn drop(&mut self) {
        let disks = lock(&self.hba).disks();
        for d in disks {
            let d = d.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = d.flush() {
                tracing::warn!("AHCI disk: flush at exit failed: {e}");
            }
        }
    }
}

impl Handler for AhciWorker {
    fn register(&mut self, poll: &Poll) -> io::Result<()> {
        poll.add(self.kick.as_raw_fd(), 0)
    }

    fn event(&mut self, _token: u64, _poll: &Poll) {
        let _ = self.kick.read();
        run_pending(&self.hba, &self.mem);
    }
}

/// The PCI function.
pub struct Ahci {
    hba: Arc<Mutex<Hba>>,
    mem: GuestMemory,
    /// BAR 5's address (the ABAR).
    bar: u32,
    command: u32,
    irq_line: u8,
    /// Started with the first command.
    worker: LazyWorker,
}

impl Ahci {
    pub fn new(
        hba: Hba,
        mem: GuestMemory,
        bar: u32,
        irq_line: u8,
        label: String,
    ) -> io::Result<Ahci> {
        Ok(Ahci {
            hba: Arc::new(Mutex::new(hba)),
            mem,
            bar,
            // The VMM places the BAR and turns decoding on, so that the
            // controller works for a guest that leaves PCI alone.
            command: PCI_CMD_MEMORY | 1 << 2,
            irq_line,
            worker: LazyWorker::new(ThreadKind::BlockQueue, label)?,
        })
    }

    /// Stops the worker (at VMM exit, and for a state image: the command
    /// it runs finishes first).
    pub fn stop(&mut self) {
        self.worker.stop();
    }

    /// The controller's state; the worker is stopped.
    pub fn state(&self) -> AhciState {
        let hba = lock(&self.hba);
        AhciState {
            ghc: hba.ghc,
            next_port: hba.next_port,
            ports: hba.ports.iter().map(ahci_port::Port::state).collect(),
            interrupt: hba.irq.state(),
            bar: self.bar,
            command: self.command,
            irq_line: self.irq_line,
        }
    }

    /// Loads a saved state into a controller with the same drives, and
    /// runs the commands that were issued and not yet taken.
    pub fn restore(&mut self, s: &AhciState) -> Result<(), String> {
        {
            let mut hba = lock(&self.hba);
            if s.ports.len() != hba.ports.len() {
                return Err("the saved SATA controller has other ports".into());
            }
            for (p, st) in hba.ports.iter_mut().zip(&s.ports) {
                p.restore(st)?;
            }
            hba.ghc = s.ghc;
            hba.next_port = s.next_port % PORTS;
            hba.irq.restore(&s.interrupt)?;
        }
        self.bar = s.bar;
        self.command = s.command;
        self.irq_line = s.irq_line;
        self.resume();
        Ok(())
    }

    /// Starts the worker again if commands wait for it.
    pub fn resume(&mut self) {
        let waiting = lock(&self.hba).ports.iter().any(ahci_port::Port::has_work);
        if waiting {
            self.kick_worker();
        }
    }

    fn kick_worker(&mut self) {
        let (hba, mem) = (self.hba.clone(), self.mem.clone());
        self.worker.kick(|kick| Some(AhciWorker { hba, mem, kick }));
    }

    fn decoding(&self) -> bool {
        self.command & PCI_CMD_MEMORY != 0
    }
}

impl PciFunction for Ahci {
    fn read_config(&self, reg: u16) -> u32 {
        match reg {
            0x00 => DEVICE_ICH9_AHCI << 16 | VENDOR_INTEL,
            0x04 => self.command,
            0x08 => CLASS_REVISION,
            BAR5_REG => self.bar,
            0x2c => SUBSYSTEM,
            0x3c => 1 << 8 | u32::from(self.irq_line),
            _ => 0,
        }
    }

    fn write_config(&mut self, reg: u16, value: u32) {
        match reg {
            0x04 => self.command = value & PCI_CMD_MASK,
            // A 32-bit memory BAR of BAR_SIZE bytes: sizing reads back the mask.
            BAR5_REG => self.bar = value & !(BAR_SIZE as u32 - 1),
            0x3c => self.irq_line = value as u8,
            _ => {}
        }
    }

    fn bar_at(&self, addr: u64) -> Option<(usize, u64)> {
        let off = addr.checked_sub(u64::from(self.bar))?;
        (self.decoding() && self.bar != 0 && off < BAR_SIZE).then_some((5, off))
    }

    fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
        let aligned = offset & !3;
        let mut bytes = lock(&self.hba).read(aligned).to_le_bytes().to_vec();
        if (offset & 3) as usize + data.len() > 4 {
            bytes.extend_from_slice(&lock(&self.hba).read(aligned + 4).to_le_bytes());
        }
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get((offset & 3) as usize + i).copied().unwrap_or(0);
        }
    }

    fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
        // Registers take aligned dword writes (a qword is two).
        if offset & 3 != 0 {
            return;
        }
        let mut work = false;
        for (i, chunk) in data.chunks(4).enumerate() {
            let Ok(dword) = <[u8; 4]>::try_from(chunk) else {
                return;
            };
            let v = u32::from_le_bytes(dword);
            work |= lock(&self.hba).write(offset + 4 * i as u64, v);
        }
        if work {
            self.kick_worker();
        }
    }
}

impl Drop for Ahci {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
#[path = "ahci_tests.rs"]
mod tests;
