//! A running guest's state as a stream: every vCPU, the in-kernel
//! interrupt controllers and PIT, the clock, every device, then guest RAM.
//! `oxvirt-vmm` writes it for `save` on a descriptor the daemon passes,
//! and reads it back with `--restore-fd` into a machine built from the
//! same configuration, before any vCPU runs.
//!
//! Stream layout (integers little-endian):
//!
//! ```text
//! "OXVMSTAT"  u32 format  u64 length  JSON MachineState (length bytes)
//! memory runs of guest RAM (memory.rs)
//! memory runs of the display adapter's video memory (none without one)
//! "OXVMEND\0"
//! ```

pub mod memory;
pub mod vcpu;

use std::io::{self, Read, Write};

use kvm_bindings::{kvm_irqchip, kvm_pit_state2};
use serde::{Deserialize, Serialize};

use super::devices::acpi_pm::AcpiPmState;
use super::devices::cmos::CmosState;
use super::devices::i8042::I8042State;
use super::devices::serial::SerialDeviceState;
use super::display::vga::VgaPciState;
use super::memory::GuestMemory;
use super::net::e1000::E1000State;
use super::storage::ahci::AhciState;
use super::usb::ich9::Usb2State;
use super::usb::xhci::XhciState;
use super::virtio::transport::VirtioPciState;
pub use vcpu::VcpuState;

/// The stream's format; a VMM reads only its own.
pub const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"OXVMSTAT";
const END_MAGIC: &[u8; 8] = b"OXVMEND\0";
/// A state description larger than this is not one of ours.
const MAX_STATE_LEN: u64 = 64 << 20;

/// What the machine was built from, checked on restore so that a state
/// never lands in a different machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineShape {
    pub memory_mib: u64,
    pub vcpus: u32,
    /// Each device's kind and PCI slot.
    pub devices: Vec<String>,
}

/// The in-kernel devices KVM keeps for the VM.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvmVmState {
    /// `KVM_GET_CLOCK` when the guest stopped.
    pub clock_ns: u64,
    /// The two 8259s and the IOAPIC.
    pub irqchips: Vec<kvm_irqchip>,
    pub pit: kvm_pit_state2,
}

/// The platform devices every machine has.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformState {
    pub serial: SerialDeviceState,
    pub cmos: CmosState,
    pub i8042: I8042State,
    pub acpi_pm: AcpiPmState,
    pub ged_pending: u8,
    pub pci_config_address: u32,
    /// Which vCPUs are present (absent from states of machines without
    /// CPU hotplug: all are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_hotplug: Option<crate::vmm::devices::cpu_hotplug::CpuHotplugState>,
}

/// Everything but RAM.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineState {
    pub format: u32,
    pub shape: MachineShape,
    pub kvm: KvmVmState,
    pub vcpus: Vec<VcpuState>,
    pub platform: PlatformState,
    /// The virtio functions, in the order the machine plugs them.
    pub virtio: Vec<VirtioPciState>,
    /// The VGA adapter, if the machine has one.
    pub vga: Option<VgaPciState>,
    /// The xHCI controllers, in configuration order.
    pub xhci: Vec<XhciState>,
    /// The SATA (AHCI) controllers, in configuration order.
    pub ahci: Vec<AhciState>,
    /// The e1000 NICs, in configuration order.
    pub e1000: Vec<E1000State>,
    /// The USB 2 sets (EHCI and companions), in configuration order.
    pub usb2: Vec<Usb2State>,
    /// Configuration registers of the PCI functions that keep them apart
    /// from their device's state: `(slot, function, registers)`.
    pub pci_configs: Vec<(u8, u8, serde_json::Value)>,
}

/// A writer that stops with an error once its cancel descriptor turns
/// readable (looked at every [`Cancellable::CHECK_EVERY`] bytes).
pub struct Cancellable<W> {
    inner: W,
    cancel: Option<std::os::fd::OwnedFd>,
    unchecked: usize,
}

impl<W> Cancellable<W> {
    const CHECK_EVERY: usize = 16 << 20;

    pub fn new(inner: W, cancel: Option<std::os::fd::OwnedFd>) -> Self {
        Cancellable {
            inner,
            cancel,
            unchecked: 0,
        }
    }

    fn cancelled(&self) -> bool {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.cancel else {
            return false;
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLIN | libc::POLLHUP) != 0
    }
}

impl<W: Write> Write for Cancellable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.unchecked >= Self::CHECK_EVERY {
            self.unchecked = 0;
            if self.cancelled() {
                // Not `Interrupted`: `write_all` would try again.
                return Err(io::Error::other("save aborted"));
            }
        }
        let n = self.inner.write(buf)?;
        self.unchecked += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Writes the state and RAM; returns the bytes of RAM data written.
pub fn write(
    state: &MachineState,
    mem: &GuestMemory,
    vram: Option<memory::Block>,
    pagemap: Option<&std::fs::File>,
    out: &mut impl Write,
) -> io::Result<u64> {
    let json = serde_json::to_vec(state).map_err(|e| invalid(e.to_string()))?;
    out.write_all(MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    let data = memory::write(mem, pagemap, out)?;
    let vram: Vec<memory::Block> = vram.into_iter().collect();
    memory::write_blocks(&vram, pagemap, out)?;
    out.write_all(END_MAGIC)?;
    out.flush()?;
    Ok(data)
}

/// Reads the state description; the caller checks it against its machine
/// and then reads RAM with [`read_memory`].
pub fn read_state(input: &mut impl Read) -> io::Result<MachineState> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid("not a guest state stream (bad magic)"));
    }
    let mut word = [0u8; 4];
    input.read_exact(&mut word)?;
    let format = u32::from_le_bytes(word);
    if format != FORMAT {
        return Err(invalid(format!(
            "guest state format {format} is not this VMM's format {FORMAT}"
        )));
    }
    let mut len = [0u8; 8];
    input.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_STATE_LEN {
        return Err(invalid(format!("guest state description of {len} bytes")));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    let state: MachineState =
        serde_json::from_slice(&json).map_err(|e| invalid(format!("guest state: {e}")))?;
    if state.format != FORMAT {
        return Err(invalid("guest state format mismatch"));
    }
    Ok(state)
}

/// Reads RAM (and video memory) into a fresh machine, and the closing
/// magic.
pub fn read_memory(
    mem: &GuestMemory,
    vram: Option<memory::Block>,
    input: &mut impl Read,
) -> io::Result<u64> {
    let data = memory::read(mem, input)?;
    let vram: Vec<memory::Block> = vram.into_iter().collect();
    memory::read_blocks(&vram, "video memory", input)?;
    let mut end = [0u8; 8];
    input.read_exact(&mut end)?;
    if &end != END_MAGIC {
        return Err(invalid("guest state stream does not end where it should"));
    }
    Ok(data)
}

/// What an unexpected end of the stream means to a user.
pub fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        "the image is truncated".into()
    } else {
        e.to_string()
    }
}
