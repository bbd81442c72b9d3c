//! One AHCI port (AHCI 1.3.1, 3.3): its registers, the command and FIS
//! receive engines, COMRESET through PxSCTL, and the hand-over of issued
//! command slots to the worker and back. The drive on a port is an ATAPI
//! CD-ROM, an ATA hard disk, or nothing.

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use super::ahci_cmd::{HEADER_LEN, Outcome, Registers};
use super::ata_disk::{self, AtaDisk};
use super::atapi;
use super::cdrom::Cdrom;
use crate::vmm::memory::GuestMemory;

/// Port register offsets.
const CLB: u64 = 0x00;
const CLBU: u64 = 0x04;
const FB: u64 = 0x08;
const FBU: u64 = 0x0c;
const IS: u64 = 0x10;
const IE: u64 = 0x14;
const CMD: u64 = 0x18;
const TFD: u64 = 0x20;
const SIG: u64 = 0x24;
const SSTS: u64 = 0x28;
const SCTL: u64 = 0x2c;
const SERR: u64 = 0x30;
const SACT: u64 = 0x34;
const CI: u64 = 0x38;

/// PxCMD bits.
const CMD_ST: u32 = 1 << 0;
const CMD_SUD: u32 = 1 << 1;
const CMD_POD: u32 = 1 << 2;
const CMD_CLO: u32 = 1 << 3;
const CMD_FRE: u32 = 1 << 4;
const CMD_FR: u32 = 1 << 14;
const CMD_CR: u32 = 1 << 15;
/// Bits software may set: ST, SUD, POD, FRE, ATAPI, DLAE, ALPE, ASP.
const CMD_WRITABLE: u32 = CMD_ST | CMD_SUD | CMD_POD | CMD_FRE | 0x0f00_0000;

/// PxIS bits.
pub const IS_DHRS: u32 = 1 << 0;
pub const IS_PSS: u32 = 1 << 1;
pub const IS_TFES: u32 = 1 << 30;
/// PxIE bits that exist.
const IE_WRITABLE: u32 = 0xfdc0_00ff;

/// PxSSTS with a device: present and communicating, Gen1, active.
const SSTS_DEVICE: u32 = 0x113;
/// PxSCTL.DET = 1: COMRESET held.
const SCTL_DET_MASK: u32 = 0xf;
const SCTL_DET_RESET: u32 = 1;

/// PxTFD and PxSIG before a device has answered.
const TFD_NO_DEVICE: u32 = 0x7f;
const SIG_NONE: u32 = 0xffff_ffff;

/// Offsets in the FIS receive area.
const RX_PIO_SETUP: u64 = 0x20;
const RX_D2H: u64 = 0x40;

/// The drive on a port.
#[derive(Clone)]
pub enum PortDrive {
    /// An ATAPI CD-ROM drive and its serial number (IDENTIFY PACKET
    /// DEVICE).
    Cdrom {
        unit: Arc<Mutex<Cdrom>>,
        serial: String,
    },
    /// An ATA hard disk.
    Disk(Arc<Mutex<AtaDisk>>),
}

impl PortDrive {
    /// The signature the drive shows after a reset.
    pub fn signature(&self) -> u32 {
        match self {
            PortDrive::Cdrom { .. } => atapi::SIGNATURE,
            PortDrive::Disk(_) => ata_disk::SIGNATURE,
        }
    }
}

/// A command slot handed to the worker.
pub struct Job {
    pub slot: u32,
    /// Guest address of the slot's command header.
    pub header_at: u64,
    pub drive: Option<PortDrive>,
    /// The port's generation when the slot was taken: a reset or a
    /// stopped engine meanwhile makes its completion void.
    generation: u64,
}

/// A drive's own state in a state image.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub enum DriveState {
    Cdrom(super::cdrom::CdromState),
    Disk(super::ata_disk::AtaDiskState),
}

/// A port's registers and its drive, as a state image keeps them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortState {
    clb: u64,
    fb: u64,
    is: u32,
    ie: u32,
    cmd: u32,
    tfd: u32,
    sig: u32,
    sctl: u32,
    serr: u32,
    sact: u32,
    ci: u32,
    signature_pending: bool,
    srst: bool,
    drive: Option<DriveState>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Port {
    drive: Option<PortDrive>,
    clb: u64,
    fb: u64,
    is: u32,
    ie: u32,
    cmd: u32,
    tfd: u32,
    sig: u32,
    sctl: u32,
    serr: u32,
    sact: u32,
    ci: u32,
    /// Issued slots the worker holds.
    busy: u32,
    generation: u64,
    /// The signature FIS of the last reset waits for FIS receive.
    signature_pending: bool,
    /// A device control FIS set SRST; clearing it resets the device.
    srst: bool,
}

fn set_low(v: &mut u64, low: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(low);
}

fn set_high(v: &mut u64, high: u32) {
    *v = (*v & 0xffff_ffff) | u64::from(high) << 32;
}

impl Port {
    pub fn new(drive: Option<PortDrive>) -> Port {
        let mut p = Port {
            drive,
            clb: 0,
            fb: 0,
            is: 0,
            ie: 0,
            cmd: 0,
            tfd: TFD_NO_DEVICE,
            sig: SIG_NONE,
            sctl: 0,
            serr: 0,
            sact: 0,
            ci: 0,
            busy: 0,
            generation: 0,
            signature_pending: false,
            srst: false,
        };
        p.hba_reset(None);
        p
    }

    /// The port's state; its worker is stopped (no slot is busy).
    pub fn state(&self) -> PortState {
        PortState {
            clb: self.clb,
            fb: self.fb,
            is: self.is,
            ie: self.ie,
            cmd: self.cmd,
            tfd: self.tfd,
            sig: self.sig,
            sctl: self.sctl,
            serr: self.serr,
            sact: self.sact,
            ci: self.ci,
            signature_pending: self.signature_pending,
            srst: self.srst,
            drive: self.drive.as_ref().map(|d| match d {
                PortDrive::Cdrom { unit, .. } => DriveState::Cdrom(locked(unit).state()),
                PortDrive::Disk(d) => DriveState::Disk(locked(d).state()),
            }),
        }
    }

    /// Loads a saved state into a port with the same kind of drive.
    pub fn restore(&mut self, s: &PortState) -> Result<(), String> {
        match (&self.drive, &s.drive) {
            (None, None) => {}
            (Some(PortDrive::Cdrom { unit, .. }), Some(DriveState::Cdrom(c))) => {
                locked(unit).restore(c)
            }
            (Some(PortDrive::Disk(d)), Some(DriveState::Disk(st))) => locked(d).restore(st),
            _ => return Err("a SATA port's drive differs from the state's".into()),
        }
        self.clb = s.clb;
        self.fb = s.fb;
        self.is = s.is;
        self.ie = s.ie;
        self.cmd = s.cmd;
        self.tfd = s.tfd;
        self.sig = s.sig;
        self.sctl = s.sctl;
        self.serr = s.serr;
        self.sact = s.sact;
        self.ci = s.ci;
        self.busy = 0;
        self.signature_pending = s.signature_pending;
        self.srst = s.srst;
        Ok(())
    }

    /// The HBA was reset: registers to their power-on values (spun up,
    /// powered on), then the device resets.
    pub fn hba_reset(&mut self, mem: Option<&GuestMemory>) {
        self.is = 0;
        self.ie = 0;
        self.sctl = 0;
        self.cmd = CMD_SUD | CMD_POD;
        self.comreset(mem);
    }

    /// COMRESET: outstanding commands are dropped and the device shows
    /// its signature (delivered as a FIS once FIS receive is on).
    fn comreset(&mut self, mem: Option<&GuestMemory>) {
        self.ci = 0;
        self.sact = 0;
        self.busy = 0;
        self.serr = 0;
        self.srst = false;
        self.generation += 1;
        self.tfd = TFD_NO_DEVICE;
        self.sig = SIG_NONE;
        self.signature_pending = self.drive.is_some();
        if let Some(mem) = mem {
            self.deliver_signature(mem);
        }
    }

    /// Posts the pending reset signature if FIS receive is running.
    fn deliver_signature(&mut self, mem: &GuestMemory) {
        let Some(signature) = self.drive.as_ref().map(PortDrive::signature) else {
            return;
        };
        if self.signature_pending && self.cmd & CMD_FRE != 0 {
            self.signature_pending = false;
            let regs = Registers::signature(signature, atapi::STATUS_OK);
            self.sig = signature;
            self.post(mem, &regs, None);
        }
    }

    /// The drive on the port.
    pub fn drive(&self) -> Option<&PortDrive> {
        self.drive.as_ref()
    }

    /// Posts a D2H register FIS (after a PIO setup FIS for `pio_bytes`)
    /// and updates PxTFD and PxIS.
    fn post(&mut self, mem: &GuestMemory, regs: &Registers, pio_bytes: Option<u32>) {
        let receive = self.cmd & CMD_FRE != 0;
        if let Some(bytes) = pio_bytes {
            if receive {
                let _ = mem.write_slice(
                    &regs.pio_setup_fis(bytes),
                    GuestAddress(self.fb.wrapping_add(RX_PIO_SETUP)),
                );
            }
            self.is |= IS_PSS;
        }
        if receive {
            let _ = mem.write_slice(&regs.d2h_fis(), GuestAddress(self.fb.wrapping_add(RX_D2H)));
        }
        self.is |= IS_DHRS;
        if regs.status & atapi::STATUS_ERR != 0 {
            self.is |= IS_TFES;
        }
        self.tfd = regs.task_file();
    }

    /// Whether the port asks for an interrupt.
    pub fn interrupt(&self) -> bool {
        self.is & self.ie != 0
    }

    pub fn read(&self, reg: u64) -> u32 {
        match reg {
            CLB => self.clb as u32,
            CLBU => (self.clb >> 32) as u32,
            FB => self.fb as u32,
            FBU => (self.fb >> 32) as u32,
            IS => self.is,
            IE => self.ie,
            CMD => {
                let mut v = self.cmd;
                // The engines follow their enables at once.
                if v & CMD_ST != 0 {
                    v |= CMD_CR;
                }
                if v & CMD_FRE != 0 {
                    v |= CMD_FR;
                }
                v
            }
            TFD => self.tfd,
            SIG => self.sig,
            SSTS if self.drive.is_some() => SSTS_DEVICE,
            SCTL => self.sctl,
            SERR => self.serr,
            SACT => self.sact,
            CI => self.ci,
            _ => 0,
        }
    }

    /// A register write; returns whether slots wait to be run.
    pub fn write(&mut self, reg: u64, v: u32, mem: &GuestMemory) -> bool {
        match reg {
            CLB => set_low(&mut self.clb, v & !0x3ff),
            CLBU => set_high(&mut self.clb, v),
            FB => set_low(&mut self.fb, v & !0xff),
            FBU => set_high(&mut self.fb, v),
            IS => self.is &= !v,
            IE => self.ie = v & IE_WRITABLE,
            CMD => self.write_cmd(v, mem),
            SCTL => {
                let held = self.sctl & SCTL_DET_MASK == SCTL_DET_RESET;
                self.sctl = v;
                if held && v & SCTL_DET_MASK == 0 {
                    self.comreset(Some(mem));
                }
            }
            SERR => self.serr &= !v,
            SACT => self.sact |= v,
            CI if self.cmd & CMD_ST != 0 => self.ci |= v,
            _ => {}
        }
        self.has_work()
    }

    fn write_cmd(&mut self, v: u32, mem: &GuestMemory) {
        let was_running = self.cmd & CMD_ST != 0;
        self.cmd = v & CMD_WRITABLE;
        if v & CMD_CLO != 0 {
            self.tfd &= !u32::from(atapi::STATUS_BSY | atapi::STATUS_DRQ);
        }
        if was_running && self.cmd & CMD_ST == 0 {
            // Stopping the command engine clears PxCI; what the worker
            // still runs completes into nothing.
            self.ci = 0;
            self.sact = 0;
            self.busy = 0;
            self.generation += 1;
        }
        self.deliver_signature(mem);
    }

    /// Whether an issued slot waits for the worker.
    pub fn has_work(&self) -> bool {
        self.cmd & CMD_ST != 0 && self.ci & !self.busy != 0
    }

    /// Hands the lowest waiting slot to the worker.
    pub fn take_job(&mut self) -> Option<Job> {
        if !self.has_work() {
            return None;
        }
        let slot = (self.ci & !self.busy).trailing_zeros();
        self.busy |= 1 << slot;
        Some(Job {
            slot,
            header_at: self.clb.wrapping_add(u64::from(slot) * HEADER_LEN),
            drive: self.drive.clone(),
            generation: self.generation,
        })
    }

    /// Finishes a slot the worker ran: PRDBC, FISes, PxTFD, PxIS, PxCI.
    /// A slot whose port was reset or stopped meanwhile is dropped.
    pub fn complete(&mut self, job: &Job, outcome: Outcome, mem: &GuestMemory) {
        let bit = 1u32 << job.slot;
        if job.generation != self.generation || self.busy & bit == 0 {
            return;
        }
        self.busy &= !bit;
        self.ci &= !bit;
        let bytes = match outcome {
            Outcome::Done { bytes, .. } => bytes,
            _ => 0,
        };
        // PRDBC: the bytes transferred, in the command header.
        let _ = mem.write_obj(bytes, GuestAddress(job.header_at.wrapping_add(4)));
        match outcome {
            Outcome::Control { srst: true } => self.srst = true,
            Outcome::Control { srst: false } => {
                if std::mem::take(&mut self.srst) {
                    self.device_reset(mem);
                }
            }
            Outcome::Reset => self.device_reset(mem),
            Outcome::Done {
                regs,
                bytes,
                pio_in,
            } => self.post(mem, &regs, pio_in.then_some(bytes)),
        }
    }

    /// A software reset or DEVICE RESET: the signature again.
    fn device_reset(&mut self, mem: &GuestMemory) {
        self.signature_pending = self.drive.is_some();
        self.deliver_signature(mem);
    }
}
