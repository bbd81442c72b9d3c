//! One AHCI command slot carried out (AHCI 1.3.1, 4.2): the command
//! header and table read from guest memory, the host-to-device register
//! FIS decoded, the ATA or ATAPI command run on the port's drive (a
//! CD-ROM here, a disk in `ata_disk.rs`) with its data moved through the
//! PRDT, and the registers the device answers with. Every address and
//! length comes from the guest and is checked by the guest-memory
//! accessors; nothing here trusts the tables.

use std::sync::Mutex;

use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use super::ahci_port::PortDrive;
use super::ata_disk::Taskfile;
use super::atapi;
use super::cdrom::{Cdrom, DataIn};
use crate::vmm::memory::GuestMemory;
use crate::vmm::virtio::iov::Slice;

/// Size of one command header in the command list.
pub const HEADER_LEN: u64 = 32;
/// Offsets in the command table.
const ACMD_OFF: u64 = 0x40;
const PRDT_OFF: u64 = 0x80;
const PRD_LEN: u64 = 16;
/// Register FIS, host to device.
const FIS_TYPE_H2D: u8 = 0x27;
/// Register FIS, device to host.
const FIS_TYPE_D2H: u8 = 0x34;
/// PIO setup FIS.
const FIS_TYPE_PIO_SETUP: u8 = 0x5f;
/// H2D FIS byte 1: the FIS carries a command (else a device control).
const FIS_COMMAND: u8 = 0x80;
/// Device control: software reset.
const CONTROL_SRST: u8 = 0x04;
/// FIS byte 1: interrupt bit; PIO setup direction device to host.
const FIS_INTERRUPT: u8 = 0x40;
const FIS_TO_HOST: u8 = 0x20;
/// ATAPI interrupt reason at completion: I/O and C/D set.
const REASON_COMPLETE: u8 = 0x03;
/// Most bytes one command moves (a PRDT can describe far more).
const MAX_TRANSFER: u64 = 64 << 20;

/// The task file registers a device answers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub status: u8,
    pub error: u8,
    pub count: u8,
    /// LBA low, mid, high.
    pub lba: [u8; 3],
}

impl Registers {
    pub fn ok() -> Registers {
        Registers {
            status: atapi::STATUS_OK,
            ..Default::default()
        }
    }

    /// An aborted command.
    pub fn aborted() -> Registers {
        Registers {
            status: atapi::STATUS_FAILED,
            error: atapi::ERROR_ABRT,
            ..Default::default()
        }
    }

    /// What a device shows after a reset: its signature (sector count,
    /// LBA low, mid, high from the low byte up).
    pub fn signature(signature: u32, status: u8) -> Registers {
        let s = signature.to_le_bytes();
        Registers {
            status,
            error: atapi::ERROR_DIAG_OK,
            count: s[0],
            lba: [s[1], s[2], s[3]],
        }
    }

    /// The PxTFD value: error in bits 15:8, status in 7:0.
    pub fn task_file(&self) -> u32 {
        u32::from(self.error) << 8 | u32::from(self.status)
    }

    /// A device-to-host register FIS with the interrupt bit.
    pub fn d2h_fis(&self) -> [u8; 20] {
        let mut f = [0u8; 20];
        f[0] = FIS_TYPE_D2H;
        f[1] = FIS_INTERRUPT;
        f[2] = self.status;
        f[3] = self.error;
        f[4..7].copy_from_slice(&self.lba);
        f[12] = self.count;
        f
    }

    /// A PIO setup FIS for a data-in transfer of `bytes`, ending with
    /// this status (software reads the result of PIO data-in commands
    /// from it).
    pub fn pio_setup_fis(&self, bytes: u32) -> [u8; 20] {
        let mut f = self.d2h_fis();
        f[0] = FIS_TYPE_PIO_SETUP;
        f[1] = FIS_INTERRUPT | FIS_TO_HOST;
        f[15] = self.status;
        let count = u16::try_from(bytes).unwrap_or(u16::MAX);
        f[16..18].copy_from_slice(&count.to_le_bytes());
        f
    }
}

/// How a command slot ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A device control FIS (no command) with SRST set or clear.
    Control { srst: bool },
    /// The command ended with `regs`; `bytes` went through the PRDT.
    /// `pio_in`: a PIO data-in command, announced by a PIO setup FIS.
    Done {
        regs: Registers,
        bytes: u32,
        pio_in: bool,
    },
    /// DEVICE RESET: the device reset itself.
    Reset,
}

impl Outcome {
    fn aborted() -> Outcome {
        Outcome::Done {
            regs: Registers::aborted(),
            bytes: 0,
            pio_in: false,
        }
    }
}

/// The data buffers a PRDT describes, as a command's output.
pub struct Prdt<'a> {
    mem: &'a GuestMemory,
    /// (guest address, length) of each region, in order.
    regions: Vec<(u64, u64)>,
    capacity: usize,
}

impl<'a> Prdt<'a> {
    /// Reads `entries` PRD entries from `table`; the regions end at
    /// [`MAX_TRANSFER`] bytes or at the first entry that cannot be read.
    pub fn read(mem: &'a GuestMemory, table: u64, entries: u16) -> Prdt<'a> {
        let mut regions = Vec::new();
        let mut total = 0u64;
        for i in 0..u64::from(entries) {
            let Some(at) = table.checked_add(i * PRD_LEN) else {
                break;
            };
            let Ok(e) = mem.read_obj::<[u32; 4]>(GuestAddress(at)) else {
                break;
            };
            // Data base (word aligned), upper half, reserved, byte count - 1.
            let addr = u64::from(e[0] & !1) | u64::from(e[1]) << 32;
            let len = u64::from(e[3] & 0x3f_ffff) + 1;
            let len = len.min(MAX_TRANSFER - total);
            regions.push((addr, len));
            total += len;
            if total == MAX_TRANSFER {
                break;
            }
        }
        Prdt {
            mem,
            regions,
            capacity: total as usize,
        }
    }

    /// The first `len` bytes of the regions as slices of guest memory, for
    /// disk I/O straight between the image and the guest; `None` when the
    /// regions hold less or one of them is not all guest memory.
    pub fn slices(&self, len: usize) -> Option<Vec<Slice<'a>>> {
        let mut out = Vec::new();
        let mut left = len as u64;
        for &(addr, region) in &self.regions {
            if left == 0 {
                break;
            }
            let n = region.min(left);
            for s in GuestMemoryBackend::get_slices(self.mem, GuestAddress(addr), n as usize) {
                out.push(s.ok()?);
            }
            left -= n;
        }
        (left == 0).then_some(out)
    }
}

impl DataIn for Prdt<'_> {
    fn capacity(&self) -> usize {
        self.capacity
    }

    fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let mut pos = 0u64; // start of the current region in the transfer
        let mut done = 0usize;
        let offset = offset as u64;
        for &(addr, len) in &self.regions {
            let end = pos + len;
            let want = offset + done as u64;
            if done == data.len() {
                break;
            }
            if want < end {
                let skip = want - pos;
                let n = ((len - skip) as usize).min(data.len() - done);
                let Some(at) = addr.checked_add(skip) else {
                    break;
                };
                if self
                    .mem
                    .write_slice(&data[done..done + n], GuestAddress(at))
                    .is_err()
                {
                    break;
                }
                done += n;
            }
            pos = end;
        }
        done
    }
}

fn lock<T>(unit: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    unit.lock().unwrap_or_else(|p| p.into_inner())
}

/// The task file a host-to-device register FIS carries.
pub fn taskfile(fis: &[u8; 20]) -> Taskfile {
    Taskfile {
        command: fis[2],
        features: fis[3],
        lba: [fis[4], fis[5], fis[6], fis[8], fis[9], fis[10]],
        device: fis[7],
        count: u16::from_le_bytes([fis[12], fis[13]]),
    }
}

/// Carries out the command whose header is at `header_at` for the drive
/// on the port (`None`: no device there).
pub fn execute(mem: &GuestMemory, header_at: u64, drive: Option<&PortDrive>) -> Outcome {
    let Ok(h) = mem.read_obj::<[u32; 4]>(GuestAddress(header_at)) else {
        return Outcome::aborted();
    };
    let prdtl = (h[0] >> 16) as u16;
    let table = u64::from(h[2] & !0x7f) | u64::from(h[3]) << 32;
    let Ok(fis) = mem.read_obj::<[u8; 20]>(GuestAddress(table)) else {
        return Outcome::aborted();
    };
    if fis[0] != FIS_TYPE_H2D {
        return Outcome::aborted();
    }
    if fis[1] & FIS_COMMAND == 0 {
        return Outcome::Control {
            srst: fis[15] & CONTROL_SRST != 0,
        };
    }
    let Some(drive) = drive else {
        return Outcome::aborted();
    };
    let mut data = Prdt::read(mem, table.saturating_add(PRDT_OFF), prdtl);
    match drive {
        PortDrive::Cdrom { unit, serial } => packet_device(mem, table, &fis, unit, serial, data),
        PortDrive::Disk(disk) => lock(disk).execute(&taskfile(&fis), &mut data),
    }
}

/// A command for a CD-ROM drive; `serial` is its serial number for
/// IDENTIFY PACKET DEVICE.
fn packet_device(
    mem: &GuestMemory,
    table: u64,
    fis: &[u8; 20],
    drive: &Mutex<Cdrom>,
    serial: &str,
    mut out: Prdt<'_>,
) -> Outcome {
    let done = |regs: Registers, bytes: usize, pio_in: bool| Outcome::Done {
        regs,
        bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
        pio_in,
    };
    match fis[2] {
        atapi::CMD_PACKET => {
            let Ok(cdb) = mem.read_obj::<[u8; 16]>(GuestAddress(table.saturating_add(ACMD_OFF)))
            else {
                return Outcome::aborted();
            };
            let c = lock(drive).execute(&cdb, &mut out);
            let mut regs = match c.sense {
                None => Registers::ok(),
                Some(s) => Registers {
                    status: atapi::STATUS_FAILED,
                    error: s.atapi_error(),
                    ..Default::default()
                },
            };
            regs.count = REASON_COMPLETE;
            done(regs, c.len, false)
        }
        atapi::CMD_IDENTIFY_PACKET_DEVICE => {
            let data = atapi::identify(serial);
            let n = data.len().min(out.capacity());
            let written = out.write_at(0, &data[..n]);
            done(Registers::ok(), written, true)
        }
        // A packet device aborts IDENTIFY DEVICE and shows its signature,
        // which is how software tells it from a disk.
        atapi::CMD_IDENTIFY_DEVICE => {
            let mut regs = Registers::signature(atapi::SIGNATURE, atapi::STATUS_FAILED);
            regs.error = atapi::ERROR_ABRT;
            done(regs, 0, false)
        }
        atapi::CMD_DEVICE_RESET => Outcome::Reset,
        atapi::CMD_SET_FEATURES | atapi::CMD_IDLE_IMMEDIATE | atapi::CMD_STANDBY_IMMEDIATE => {
            done(Registers::ok(), 0, false)
        }
        atapi::CMD_CHECK_POWER_MODE => {
            let mut regs = Registers::ok();
            regs.count = 0xff; // active or idle
            done(regs, 0, false)
        }
        // NOP, and anything a CD-ROM does not know.
        _ => Outcome::aborted(),
    }
}
