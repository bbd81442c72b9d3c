//! Saving a running machine's state to a descriptor and loading it into a
//! freshly built one (see `snapshot/`).

use std::io::{BufWriter, Read};
use std::os::fd::OwnedFd;
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::kvm_irqchip;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::lock;
use super::{LoopState, Vm};
use crate::vmm::config::VmConfig;
use crate::vmm::error::{Error, Result};
use crate::vmm::snapshot::{
    self, FORMAT, KvmVmState, MachineShape, MachineState, PlatformState, describe,
};

/// The in-kernel irqchips: the two 8259s and the IOAPIC.
const IRQCHIPS: [u32; 3] = [0, 1, 2];

/// What the machine is made of, which a restored state must match.
fn shape(cfg: &VmConfig) -> MachineShape {
    let slots = crate::vmm::virtio::setup::assign_slots(&cfg.devices);
    // In slot order: a device plugged in while the guest ran comes last in
    // the configuration it had, and wherever its kind goes in the one a
    // restore is given.
    let mut devices: Vec<(u8, String)> = cfg
        .devices
        .iter()
        .zip(slots)
        .map(|(d, slot)| (slot, format!("{}@{slot}", d.kind())))
        .collect();
    devices.sort();
    let devices = devices.into_iter().map(|(_, d)| d).collect();
    MachineShape {
        memory_mib: cfg.memory_mib,
        vcpus: cfg.cpus.max(),
        devices,
    }
}

/// Loads `states` into `devices`, one each in order; another number of
/// them than the machine has is an error naming `what`.
fn restore_each<D, S>(
    what: &str,
    devices: &[D],
    states: &[S],
    restore: impl Fn(&D, &S) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    if devices.len() != states.len() {
        return Err(format!("{what} differ from the state's"));
    }
    devices
        .iter()
        .zip(states)
        .try_for_each(|(d, s)| restore(d, s))
}

impl Vm {
    /// `save`: writes the whole guest to `out`. The guest is paused for
    /// it; afterwards it runs again if it ran before and either `resume`
    /// was asked or the save failed, and stays paused otherwise (the
    /// daemon then stops it).
    pub(super) fn save(
        &self,
        out: OwnedFd,
        cancel: Option<OwnedFd>,
        resume: bool,
        state: &mut LoopState,
        threads: &[JoinHandle<()>],
    ) -> std::result::Result<crate::vmm::protocol::Saved, String> {
        let started = std::time::Instant::now();
        let was_running = !state.paused;
        if was_running {
            self.pause_vcpus(state, threads)?;
        }
        self.virtio.quiesce();
        tracing::info!(
            "guest paused and devices stopped in {} ms",
            started.elapsed().as_millis()
        );
        let written = self.write_state(out, cancel, state);
        // The devices start again with the vCPUs.
        if was_running && (resume || written.is_err()) {
            self.resume_vcpus(state);
        }
        let data = written?;
        tracing::info!(
            "guest state written: {} MiB of RAM in {} ms",
            data >> 20,
            started.elapsed().as_millis()
        );
        Ok(crate::vmm::protocol::Saved {
            ram_bytes: data,
            paused: state.paused,
        })
    }

    fn write_state(
        &self,
        out: OwnedFd,
        cancel: Option<OwnedFd>,
        state: &LoopState,
    ) -> std::result::Result<u64, String> {
        let started = std::time::Instant::now();
        let vcpus = self
            .ctl
            .capture_all(self.vcpus_count(), Duration::from_secs(10))?;
        tracing::info!("vCPU state read in {} ms", started.elapsed().as_millis());
        let mut irqchips = Vec::with_capacity(IRQCHIPS.len());
        for chip_id in IRQCHIPS {
            let mut c = kvm_irqchip {
                chip_id,
                ..Default::default()
            };
            self.vm
                .get_irqchip(&mut c)
                .map_err(|e| format!("KVM_GET_IRQCHIP {chip_id}: {e}"))?;
            irqchips.push(c);
        }
        let pit = self
            .vm
            .get_pit2()
            .map_err(|e| format!("KVM_GET_PIT2: {e}"))?;
        let clock_ns = match state.saved_clock {
            Some(c) => c,
            None => {
                self.vm
                    .get_clock()
                    .map_err(|e| format!("KVM_GET_CLOCK: {e}"))?
                    .clock
            }
        };
        let machine = MachineState {
            format: FORMAT,
            shape: shape(&self.cfg),
            kvm: KvmVmState {
                clock_ns,
                irqchips,
                pit,
            },
            vcpus,
            platform: PlatformState {
                serial: lock(&self.serial).state(),
                cmos: lock(&self.platform.cmos).state(),
                i8042: lock(&self.platform.i8042).state(),
                acpi_pm: lock(&self.platform.acpi_pm).state(),
                ged_pending: lock(&self.ged).pending(),
                pci_config_address: lock(&self.platform.pci_io).address(),
                cpu_hotplug: (self.cfg.cpus.max.is_some()).then(|| lock(&self.cpu_hotplug).state()),
            },
            virtio: self
                .virtio
                .functions_by_slot()
                .iter()
                .map(|f| lock(f).state())
                .collect(),
            vga: self.virtio.vga.as_ref().map(|v| lock(&v.pci).state()),
            xhci: self.virtio.xhci.iter().map(|x| lock(x).state()).collect(),
            ahci: self.virtio.ahci.iter().map(|a| lock(a).state()).collect(),
            e1000: self
                .virtio
                .e1000
                .iter()
                .map(|(_, n)| lock(n).state())
                .collect(),
            usb2: self.virtio.usb2.iter().map(|u| u.state()).collect(),
            pci_configs: lock(&self.pci)
                .functions()
                .into_iter()
                .filter_map(|(slot, func, f)| Some((slot, func, lock(&f).config_state()?)))
                .collect(),
        };
        let file = std::fs::File::from(out);
        let mut w = BufWriter::with_capacity(1 << 20, snapshot::Cancellable::new(&file, cancel));
        let data = snapshot::write(
            &machine,
            &self.mem,
            self.vram_block(),
            self.pagemap.as_ref(),
            &mut w,
        )
        .map_err(|e| format!("cannot write the guest state: {e}"))?;
        w.into_inner()
            .map_err(|e| format!("cannot write the guest state: {}", e.error()))?;
        Ok(data)
    }

    /// The VGA adapter's video memory, which the image holds after RAM.
    fn vram_block(&self) -> Option<snapshot::memory::Block> {
        self.virtio.vga.as_ref().map(|v| {
            let (host, len) = lock(&v.pci).vram_block();
            snapshot::memory::Block { base: 0, host, len }
        })
    }

    fn vcpus_count(&self) -> usize {
        self.cfg.cpus.max() as usize
    }

    /// Loads a state written by [`Vm::save`] into this machine, which was
    /// just built from the same configuration and has not run.
    pub fn restore(&mut self, input: &mut impl Read) -> Result<()> {
        let fail = |what: String| Error::Restore(what);
        let machine = snapshot::read_state(input).map_err(|e| fail(describe(&e)))?;
        let want = shape(&self.cfg);
        if machine.shape != want {
            return Err(fail(format!(
                "the state is of a different machine ({} MiB, {} vCPUs, devices {:?}; \
                 this one: {} MiB, {} vCPUs, devices {:?})",
                machine.shape.memory_mib,
                machine.shape.vcpus,
                machine.shape.devices,
                want.memory_mib,
                want.vcpus,
                want.devices
            )));
        }
        if machine.vcpus.len() != self.vcpus.len() {
            return Err(fail("vCPU count differs from the state".into()));
        }
        // What building the machine loaded (kernel, tables) goes: RAM is
        // exactly the saved pages, zero elsewhere.
        for region in self.mem.iter() {
            // SAFETY: the range is one anonymous private mapping of guest
            // RAM that nothing uses yet (no vCPU has run); MADV_DONTNEED
            // only drops its pages, which then read as zero.
            let r = unsafe {
                libc::madvise(
                    region.as_ptr().cast(),
                    region.len() as usize,
                    libc::MADV_DONTNEED,
                )
            };
            if r != 0 {
                return Err(fail(format!(
                    "clearing guest RAM: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        snapshot::read_memory(&self.mem, self.vram_block(), input)
            .map_err(|e| fail(describe(&e)))?;

        self.vm
            .set_pit2(&machine.kvm.pit)
            .map_err(|e| fail(format!("KVM_SET_PIT2: {e}")))?;
        for chip in &machine.kvm.irqchips {
            self.vm
                .set_irqchip(chip)
                .map_err(|e| fail(format!("KVM_SET_IRQCHIP {}: {e}", chip.chip_id)))?;
        }
        for (v, s) in self.vcpus.iter().zip(&machine.vcpus) {
            s.apply(&v.fd)
                .map_err(|e| fail(format!("vcpu{}: {e}", v.index)))?;
        }
        let p = &machine.platform;
        lock(&self.serial).restore(&p.serial).map_err(fail)?;
        lock(&self.platform.cmos).restore(&p.cmos).map_err(fail)?;
        lock(&self.platform.i8042).restore(&p.i8042);
        lock(&self.platform.acpi_pm).restore(&p.acpi_pm);
        lock(&self.ged).restore(p.ged_pending);
        lock(&self.platform.pci_io).set_address(p.pci_config_address);
        if let Some(s) = &p.cpu_hotplug {
            let mut h = lock(&self.cpu_hotplug);
            h.restore(s).map_err(fail)?;
            for i in 0..self.vcpus.len() {
                self.ctl.set_present(i, h.present(i));
            }
        }
        let d = &self.virtio;
        restore_each(
            "virtio devices",
            &d.functions_by_slot(),
            &machine.virtio,
            |f, s| lock(f).restore(s),
        )
        .map_err(fail)?;
        match (&self.virtio.vga, &machine.vga) {
            (Some(v), Some(s)) => lock(&v.pci).restore(s).map_err(fail)?,
            (None, None) => {}
            _ => return Err(fail("the display adapter differs from the state's".into())),
        }
        restore_each("USB controllers", &d.xhci, &machine.xhci, |x, s| {
            lock(x).restore(s)
        })
        .map_err(fail)?;
        restore_each("SATA controllers", &d.ahci, &machine.ahci, |a, s| {
            lock(a).restore(s)
        })
        .map_err(fail)?;
        restore_each("e1000 NICs", &d.e1000, &machine.e1000, |(_, n), s| {
            lock(n).restore(s)
        })
        .map_err(fail)?;
        let functions = lock(&self.pci).functions();
        for (slot, func, s) in &machine.pci_configs {
            let f = functions
                .iter()
                .find(|(sl, fu, _)| sl == slot && fu == func)
                .ok_or_else(|| fail(format!("no PCI function {slot:02x}.{func} to restore")))?;
            lock(&f.2).restore_config_state(s).map_err(fail)?;
        }
        restore_each("USB 2 controllers", &d.usb2, &machine.usb2, |u, s| {
            u.restore(s)
        })
        .map_err(fail)?;
        self.restored_clock = Some(machine.kvm.clock_ns);
        Ok(())
    }
}
