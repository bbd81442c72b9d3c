//! Building the machine from a [`VmConfig`] and running its main loop.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kvm_bindings::{
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, KVM_PIT_SPEAKER_DUMMY, kvm_clock_data,
    kvm_mp_state, kvm_pit_config, kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, VmFd};
use serde_json::{Value, json};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use super::acpi::{self, AcpiParams};
use super::boot::{self, BootEntry};
use super::bus::{Bus, SharedDevice};
use super::config::{BootConfig, KernelBoot, VmConfig};
use super::config::{InputKind, UsbDeviceKind};
use super::control::{self, ClientInput, ControlServer, Line};
use super::cpu;
use super::devices::IrqLine;
use super::devices::acpi_pm::{self, AcpiPm};
use super::devices::cmos::Cmos;
use super::devices::cpu_hotplug::{self, CpuHotplug};
use super::devices::debugcon::{self, DebugCon};
use super::devices::fw_cfg;
use super::devices::ged::{self, Ged};
use super::devices::i8042::{I8042, I8042Port, Ps2Input};
use super::devices::pci::{PciBarSpace, PciConfigIo, PciEcam, PciRoot};
use super::devices::pci_hotplug::{self, PciHotplug};
use super::devices::serial::SerialDevice;
use super::display::console::{Console, InputRouter};
use super::display::vga;
use super::display::{DisplaySource, InputSink, NoDisplay};
use super::error::{Error, Result};
use super::exit::{ExitReason, ExitSignal};
use super::firmware;
use super::layout;
use super::memory::{self, GuestMemory};
use super::output_pump::{self, PumpHandle};
use super::protocol::{
    Command, MemoryStats, PROTOCOL_VERSION, ParseError, RunStatus, SendKey, Stats, Status,
    VcpuStats,
};
use super::sandbox::{self, ThreadKind};
use super::serial_backend::{self, SerialBackend};
use super::vcpu::{self, RunControl, Vcpu};
use super::virtio;
use super::virtio::input::{VirtioInputHandle, WhenActive};

mod hotplug;
mod state;
mod vcpu_hotplug;

/// A built machine, ready to run.
pub struct Vm {
    pub(super) cfg: VmConfig,
    // Keeps /dev/kvm open for the VM's lifetime.
    _kvm: Kvm,
    pub(super) vm: Arc<VmFd>,
    // Guest RAM must outlive every vCPU thread; it is only dropped at exit.
    pub(super) mem: GuestMemory,
    mem_bytes: u64,
    exit: Arc<ExitSignal>,
    pub(super) ctl: Arc<RunControl>,
    pub(super) serial: Arc<Mutex<SerialDevice>>,
    pub(super) ged: Arc<Mutex<Ged>>,
    /// The other platform devices whose state a state image keeps.
    pub(super) platform: Platform,
    /// The PCI root, whose functions a state image visits.
    pci: Arc<Mutex<PciRoot>>,
    /// The ACPI PCI hotplug registers.
    hotplug: Arc<Mutex<PciHotplug>>,
    /// The ACPI CPU hotplug registers.
    pub(super) cpu_hotplug: Arc<Mutex<CpuHotplug>>,
    backend: SerialBackend,
    /// Writer thread of COM1's output.
    serial_pump: PumpHandle,
    pub(super) vcpus: Vec<Vcpu>,
    pub(super) virtio: virtio::setup::Devices,
    /// The screen and input of a guest with a display adapter.
    console: Option<Console>,
    /// `/proc/self/statm`, opened before the VMM is jailed.
    statm: Option<std::fs::File>,
    /// `/proc/self/pagemap`, opened before the VMM is jailed: `save`
    /// skips the guest pages never touched.
    pagemap: Option<std::fs::File>,
    /// The guest clock of a restored state, set when the vCPUs start.
    pub(super) restored_clock: Option<u64>,
}

/// Platform devices kept for their state (they are also on the buses).
pub(super) struct Platform {
    pub cmos: Arc<Mutex<Cmos>>,
    pub i8042: Arc<Mutex<I8042>>,
    pub acpi_pm: Arc<Mutex<AcpiPm>>,
    pub pci_io: Arc<Mutex<PciConfigIo>>,
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn shared<T: super::bus::BusDevice + 'static>(d: T) -> Arc<Mutex<T>> {
    Arc::new(Mutex::new(d))
}

fn insert(bus: &mut Bus, dev: SharedDevice, start: u64, len: u64) -> Result<()> {
    bus.insert(dev, start, len).map_err(Error::Boot)
}

impl Vm {
    /// Creates the VM, loads the guest and prepares every vCPU.
    pub fn build(cfg: VmConfig) -> Result<Vm> {
        cfg.validate()?;
        let mem_bytes = memory::check_size(cfg.memory_mib)?;
        let kvm = Kvm::new().map_err(Error::kvm("opening /dev/kvm"))?;
        for (cap, name) in [
            (Cap::Irqchip, "an in-kernel irqchip"),
            (Cap::Irqfd, "irqfd"),
            (Cap::ImmediateExit, "immediate_exit"),
            (Cap::UserMemory, "user memory regions"),
            (Cap::Pit2, "an in-kernel PIT"),
        ] {
            if !kvm.check_extension(cap) {
                return Err(Error::KvmMissing(name));
            }
        }
        let max = kvm.get_max_vcpus();
        if cfg.cpus.max() as usize > max {
            return Err(Error::Config(format!(
                "{} vCPUs requested; KVM allows at most {max}",
                cfg.cpus.max()
            )));
        }
        let vm = Arc::new(kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?);
        // Instructions KVM cannot emulate in guest user mode come to the
        // VMM too (by default KVM turns them into #UD there), so that it
        // can finish them (cpu/finish.rs); what it cannot finish there it
        // still answers with #UD.
        let exit_cap = kvm_bindings::KVM_CAP_EXIT_ON_EMULATION_FAILURE;
        if vm.check_extension_raw(u64::from(exit_cap)) > 0 {
            let cap = kvm_bindings::kvm_enable_cap {
                cap: exit_cap,
                args: [1, 0, 0, 0],
                ..Default::default()
            };
            if let Err(e) = vm.enable_cap(&cap) {
                tracing::debug!("KVM_CAP_EXIT_ON_EMULATION_FAILURE: {e}");
            }
        }
        // Guest RAM is registered before the irqchip and PIT exist: a memslot
        // added to a VM that already has them costs a few milliseconds more
        // (measured 5 ms vs 0.3 ms for 256 MiB), which dominates start-up.
        let rom = match &cfg.boot {
            BootConfig::Bios(f) => Some(firmware::Rom::read(&f.firmware)?),
            BootConfig::Kernel(_) | BootConfig::Uefi(_) => None,
        };
        let extra: Vec<(u64, u64)> = rom.iter().map(firmware::Rom::region).collect();
        let mem = memory::create(mem_bytes, &extra)?;
        for (slot, region) in mem.iter().enumerate() {
            let r = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the region is a live mapping owned by `mem`, which the
            // Vm keeps until the process exits, so KVM never sees it unmapped.
            unsafe { vm.set_user_memory_region(r) }
                .map_err(Error::kvm("KVM_SET_USER_MEMORY_REGION"))?;
        }
        vm.set_tss_address(layout::KVM_TSS_ADDRESS as usize)
            .map_err(Error::kvm("KVM_SET_TSS_ADDR"))?;
        vm.create_irq_chip()
            .map_err(Error::kvm("KVM_CREATE_IRQCHIP"))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        vm.create_pit2(pit).map_err(Error::kvm("KVM_CREATE_PIT2"))?;

        let topology = cfg.cpus.topology();
        let mmio64 = memory::pci_mmio64_window(mem_bytes);
        let acpi_params = AcpiParams {
            vcpus: cfg.cpus.count,
            max_vcpus: cfg.cpus.max(),
            topology,
            pci_mmio64_start: mmio64.0,
            pci_mmio64_size: mmio64.1,
        };
        // Direct boot: the VMM loads the kernel and writes the ACPI tables.
        // Firmware boot: the vCPUs start at the reset vector and the
        // firmware reads the tables and the rest through fw_cfg.
        let (entry, fw_cfg) = match (&cfg.boot, &rom) {
            (BootConfig::Kernel(k), _) => {
                let rsdp = acpi::write(&mem, &acpi_params)?;
                let entry = boot::load(&mem, mem_bytes, k, rsdp)?;
                tracing::info!(
                    "kernel {} loaded, entry {:#x} ({:?})",
                    k.kernel.display(),
                    entry.entry,
                    entry.mode
                );
                (Some(entry), None)
            }
            (BootConfig::Bios(f), Some(rom)) => {
                rom.install(&mem)?;
                let slots = virtio::setup::assign_slots(&cfg.devices);
                let machine = firmware::Machine {
                    boot: f,
                    mem_bytes,
                    vcpus: cfg.cpus.count,
                    max_vcpus: cfg.cpus.max(),
                    uuid: cfg.uuid.as_deref(),
                    acpi: &acpi_params,
                    boot_order: firmware::boot_order(&cfg.devices, &slots, f.strict),
                    option_roms: vga_bios(&cfg),
                };
                tracing::info!("firmware {} at {:#x}", f.firmware.display(), rom.base());
                (None, Some(firmware::fw_cfg(&mem, &machine)?))
            }
            (BootConfig::Uefi(f), _) => {
                let elf = std::fs::File::open(&f.firmware)
                    .and_then(|mut file| boot::detect(&mut file))
                    .map_err(|source| Error::FirmwareOpen {
                        path: f.firmware.clone(),
                        source,
                    })?;
                if elf != boot::KernelKind::Elf {
                    return Err(Error::Boot(format!(
                        "UEFI firmware {} is not an ELF with a PVH entry (edk2's CloudHv build)",
                        f.firmware.display()
                    )));
                }
                let rsdp = acpi::write(&mem, &acpi_params)?;
                let image = KernelBoot {
                    kernel: f.firmware.clone(),
                    initrd: None,
                    cmdline: String::new(),
                };
                let entry = boot::load(&mem, mem_bytes, &image, rsdp)?;
                if !matches!(entry.mode, boot::EntryMode::Pvh { .. }) {
                    return Err(Error::Boot(format!(
                        "UEFI firmware {} is not an ELF with a PVH entry",
                        f.firmware.display()
                    )));
                }
                tracing::info!("UEFI firmware {} loaded", f.firmware.display());
                (Some(entry), None)
            }
            (BootConfig::Bios(_), None) => unreachable!("the ROM is read above"),
        };

        let exit = Arc::new(ExitSignal::new().map_err(Error::io("eventfd"))?);
        let backend = SerialBackend::open(&cfg.serial)?;
        if let Some(p) = &backend.pty_path {
            eprintln!("char device redirected to {p} (label serial0)");
        }
        let serial_irq = IrqLine::new().map_err(Error::io("eventfd"))?;
        vm.register_irqfd(&serial_irq.0, layout::COM1_IRQ)
            .map_err(Error::kvm("KVM_IRQFD (COM1)"))?;
        let ged_irq = IrqLine::new().map_err(Error::io("eventfd"))?;
        vm.register_irqfd(&ged_irq.0, layout::GED_IRQ)
            .map_err(Error::kvm("KVM_IRQFD (GED)"))?;

        let mut backend = backend;
        let guest_out = std::mem::replace(&mut backend.out, Box::new(std::io::sink()));
        let (guest_out, serial_pump) = output_pump::new("serial-out", guest_out);
        let serial = shared(SerialDevice::new(serial_irq, Box::new(guest_out)));
        let ged = shared(Ged::new(ged_irq));
        let kbd_irq = IrqLine::new().map_err(Error::io("eventfd"))?;
        vm.register_irqfd(&kbd_irq.0, layout::I8042_KBD_IRQ)
            .map_err(Error::kvm("KVM_IRQFD (i8042 keyboard)"))?;
        let aux_irq = IrqLine::new().map_err(Error::io("eventfd"))?;
        vm.register_irqfd(&aux_irq.0, layout::I8042_AUX_IRQ)
            .map_err(Error::kvm("KVM_IRQFD (i8042 mouse)"))?;
        let i8042 = Arc::new(Mutex::new(I8042::with_irqs(exit.clone(), kbd_irq, aux_irq)));
        let ps2_input = Arc::new(Ps2Input::new(i8042.clone()));
        let pci = Arc::new(Mutex::new(PciRoot::default()));
        let virtio = virtio::setup::build(&cfg.devices, &vm, &mem, &pci, mmio64)?;
        let low_ram = memory::ram_regions(mem_bytes)[0].1;
        let high_ram = mem_bytes - low_ram;

        let platform = Platform {
            cmos: shared(Cmos::new(low_ram, high_ram)),
            i8042: i8042.clone(),
            acpi_pm: shared(AcpiPm::new(exit.clone())),
            pci_io: shared(PciConfigIo::new(pci.clone()).with_reset_control(exit.clone())),
        };
        let mut pio = Bus::default();
        insert(&mut pio, serial.clone(), u64::from(layout::COM1_PORT), 8)?;
        insert(
            &mut pio,
            shared(I8042Port {
                ctl: i8042.clone(),
                command: false,
            }),
            u64::from(layout::I8042_DATA_PORT),
            1,
        )?;
        insert(
            &mut pio,
            shared(I8042Port {
                ctl: i8042,
                command: true,
            }),
            u64::from(layout::I8042_CMD_PORT),
            1,
        )?;
        insert(
            &mut pio,
            platform.cmos.clone(),
            u64::from(layout::CMOS_PORT),
            2,
        )?;
        insert(
            &mut pio,
            platform.acpi_pm.clone(),
            u64::from(layout::ACPI_SLEEP_CTL_PORT),
            acpi_pm::PORT_COUNT,
        )?;
        insert(
            &mut pio,
            platform.pci_io.clone(),
            u64::from(layout::PCI_CONFIG_PORT),
            8,
        )?;
        // I/O BARs (the e1000's, the UHCIs') go wherever the guest puts
        // them in the root bridge's I/O window.
        insert(
            &mut pio,
            shared(PciBarSpace::io(
                pci.clone(),
                u64::from(layout::PCI_IO_START),
            )),
            u64::from(layout::PCI_IO_START),
            u64::from(layout::PCI_IO_END - layout::PCI_IO_START) + 1,
        )?;
        if let Some(fw_cfg) = fw_cfg {
            insert(
                &mut pio,
                shared(fw_cfg),
                u64::from(fw_cfg::PORT_BASE),
                fw_cfg::PORT_COUNT,
            )?;
            insert(
                &mut pio,
                shared(DebugCon::default()),
                u64::from(debugcon::PORT),
                1,
            )?;
        }
        let hotplug = {
            let mut h = PciHotplug::new(pci.clone()).map_err(Error::io("eventfd"))?;
            for slot in virtio.removable_slots() {
                h.set_removable(slot);
            }
            shared(h)
        };
        let cpu_hotplug = shared(
            CpuHotplug::new(cfg.cpus.max() as usize, cfg.cpus.count as usize)
                .map_err(Error::io("eventfd"))?,
        );
        let mut mmio = Bus::default();
        insert(&mut mmio, ged.clone(), layout::GED_START, layout::GED_SIZE)?;
        insert(
            &mut mmio,
            cpu_hotplug.clone(),
            layout::CPU_HOTPLUG_START,
            cpu_hotplug::SIZE,
        )?;
        insert(
            &mut mmio,
            hotplug.clone(),
            layout::PCI_HOTPLUG_START,
            pci_hotplug::SIZE,
        )?;
        insert(
            &mut mmio,
            shared(PciEcam::new(pci.clone())),
            layout::PCI_ECAM_START,
            layout::PCI_ECAM_SIZE,
        )?;
        for (start, len) in layout::PCI_MMIO32_WINDOWS.into_iter().chain([mmio64]) {
            insert(
                &mut mmio,
                shared(PciBarSpace::new(pci.clone(), start)),
                start,
                len,
            )?;
        }
        if let Some(vga) = &virtio.vga {
            insert(
                &mut pio,
                vga.ports.clone(),
                vga::LEGACY_PORTS.0,
                vga::LEGACY_PORTS.1,
            )?;
            insert(
                &mut pio,
                vga.dispi_ports.clone(),
                vga::DISPI_PORTS.0,
                vga::DISPI_PORTS.1,
            )?;
        }
        // What the console shows: the VGA adapter, else the virtio-gpu's
        // scanout, else, for a VNC server without an adapter (libvirt's
        // video 'none'), a black screen that still takes keys and pointer.
        let screen: Option<Arc<dyn DisplaySource>> = match (&virtio.vga, &virtio.gpu_display) {
            (Some(vga), _) => Some(vga.display.clone()),
            (None, Some(gpu)) => Some(gpu.clone()),
            (None, None) => cfg.vnc.is_some().then(|| Arc::new(NoDisplay) as _),
        };
        let console = screen
            .map(|screen| {
                let input =
                    input_router(ps2_input, virtio.usb_input.as_ref(), &virtio.virtio_inputs);
                Console::new(cfg.vnc.as_ref(), &cfg.name, screen, Arc::new(input))
            })
            .transpose()?;
        let (pio, mmio) = (Arc::new(pio), Arc::new(mmio));

        let ctl = Arc::new(RunControl::new(
            cfg.cpus.max() as usize,
            cfg.cpus.count as usize,
        ));
        let vcpus = create_vcpus(
            &kvm,
            &vm,
            &mem,
            &cfg,
            entry.as_ref(),
            &pio,
            &mmio,
            &exit,
            &ctl,
        )?;

        Ok(Vm {
            cfg,
            _kvm: kvm,
            vm,
            mem,
            mem_bytes,
            exit,
            ctl,
            serial,
            ged,
            platform,
            pci,
            hotplug,
            cpu_hotplug,
            backend,
            serial_pump,
            vcpus,
            virtio,
            console,
            statm: std::fs::File::open("/proc/self/statm").ok(),
            pagemap: std::fs::File::open("/proc/self/pagemap").ok(),
            restored_clock: None,
        })
    }

    /// Path of the serial pty, when that backend is used.
    pub fn serial_pty(&self) -> Option<&str> {
        self.backend.pty_path.as_deref()
    }

    /// Runs the guest until it stops; returns why. The control socket, if
    /// any, is served meanwhile and removed before returning.
    /// Runs the guest until it stops; with `paused` the vCPUs wait for
    /// `cont` before their first instruction.
    pub fn run(mut self, mut control: Option<ControlServer>, paused: bool) -> Result<ExitReason> {
        vcpu::install_kick_handler().map_err(Error::io("installing the vCPU kick handler"))?;
        let sigfd = HostSignals::new().map_err(Error::io("signalfd"))?;
        let epoll = Epoll::new().map_err(Error::io("epoll"))?;
        let add = |fd: RawFd| {
            epoll
                .ctl(
                    ControlOperation::Add,
                    fd,
                    EpollEvent::new(EventSet::IN, fd as u64),
                )
                .map_err(Error::io("epoll_ctl"))
        };
        let exit_fd = self.exit.eventfd().as_raw_fd();
        add(exit_fd)?;
        add(sigfd.fd())?;
        if let Some(c) = &control {
            add(c.listener_fd())?;
        }
        let mut serial_in = self.backend.input;
        if let Some(fd) = serial_in
            && let Err(e) = add(fd)
        {
            // stdin may be a regular file or /dev/null, which epoll refuses.
            tracing::info!("serial input not polled: {e}");
            serial_in = None;
        }
        let serial_listener = self.backend.listener.as_ref().map(|(l, _)| l.as_raw_fd());
        if let Some(fd) = serial_listener {
            add(fd)?;
        }
        let balloon_fd = self.virtio.balloon().and_then(|b| b.changed_fd());
        if let Some(fd) = balloon_fd {
            add(fd)?;
        }
        let ejected_fd = lock(&self.hotplug).ejected_fd().as_raw_fd();
        add(ejected_fd)?;
        let cpu_ejected_fd = lock(&self.cpu_hotplug).ejected_fd().as_raw_fd();
        add(cpu_ejected_fd)?;

        // Everything is open: confine the process before any guest code
        // runs, then start the threads (each under its own filter).
        let confined = self.cfg.sandbox.enabled();
        sandbox::lock_down(&self.cfg.sandbox, &self.cfg.runtime_dirs())
            .map_err(Error::io("confining the VMM"))?;
        self.serial_pump
            .start()
            .map_err(Error::io("starting the serial output thread"))?;
        let n = self.vcpus.len();
        let start_clock = self.restored_clock.take();
        if paused {
            self.ctl.request_pause();
        } else if let Some(clock) = start_clock {
            self.set_clock(clock);
        }
        tracing::info!("starting {n} vCPUs");
        let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(n);
        for v in self.vcpus.drain(..) {
            let name = format!("vcpu{}", v.index);
            let handle = sandbox::spawn(ThreadKind::Vcpu, &name, None, move || v.run())
                .map_err(Error::io("spawning a vCPU thread"));
            match handle {
                Ok(h) => threads.push(h),
                Err(e) => {
                    self.ctl.stop();
                    kick_all(&threads);
                    return Err(e);
                }
            }
        }
        if let Some(c) = control.as_mut() {
            // Clients that connected while the machine was being built
            // see the `running` event too.
            for cfd in c.accept() {
                add(cfd)?;
            }
            let now = if paused { "paused" } else { "running" };
            c.broadcast(&control::event(now, None));
        }
        if let Err(e) = sandbox::confine_current(ThreadKind::Control) {
            self.ctl.stop();
            kick_all(&threads);
            return Err(Error::io("confining the main thread")(e));
        }

        if let Some(c) = self.console.as_mut()
            && let Err(e) = c.start()
        {
            self.ctl.stop();
            kick_all(&threads);
            return Err(Error::io("starting the VNC server")(e));
        }
        let saved_clock = match (paused, start_clock) {
            (false, _) => None,
            (true, Some(clock)) => Some(clock),
            (true, None) => self.vm.get_clock().ok().map(|c| c.clock),
        };
        let mut state = LoopState {
            paused,
            saved_clock,
            held_keys: None,
        };
        let mut events = vec![EpollEvent::default(); 32];
        let reason = 'main: loop {
            let timeout = match &state.held_keys {
                Some((at, _)) => {
                    let left = at.saturating_duration_since(std::time::Instant::now());
                    i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
                }
                None => -1,
            };
            let count = match epoll.wait(timeout, &mut events) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("oxvirt-vmm: error: epoll_wait: {e}");
                    break ExitReason::InternalError;
                }
            };
            if count == 0 {
                self.release_held_keys(&mut state);
            }
            for ev in &events[..count] {
                let fd = ev.data() as RawFd;
                if fd == exit_fd {
                    let _ = self.exit.eventfd().read();
                    if let Some(r) = self.exit.reason() {
                        break 'main r;
                    }
                } else if fd == sigfd.fd() {
                    if let Some(sig) = sigfd.read() {
                        tracing::info!("signal {sig} received, stopping the guest");
                        break 'main ExitReason::Quit;
                    }
                } else if Some(fd) == control.as_ref().map(|c| c.listener_fd()) {
                    if let Some(c) = control.as_mut() {
                        for cfd in c.accept() {
                            add(cfd)?;
                        }
                    }
                } else if Some(fd) == serial_listener {
                    if let Some(cfd) = self.backend.accept() {
                        if let Some(old) = serial_in.replace(cfd) {
                            let _ = epoll.ctl(ControlOperation::Delete, old, EpollEvent::default());
                        }
                        add(cfd)?;
                    }
                } else if Some(fd) == serial_in {
                    self.pump_serial_input(fd, &epoll, &mut serial_in);
                } else if fd == ejected_fd {
                    self.finish_ejects(control.as_mut());
                } else if fd == cpu_ejected_fd {
                    self.finish_cpu_ejects(&threads, control.as_mut());
                } else if Some(fd) == balloon_fd {
                    if let Some(b) = self.virtio.balloon() {
                        let pages = b.take_change();
                        if let Some(c) = control.as_mut() {
                            c.broadcast(&control::event(
                                "balloon-change",
                                Some(("actual-pages", json!(pages))),
                            ));
                        }
                    }
                } else if let Some(c) = control.as_mut() {
                    match c.read(fd) {
                        ClientInput::Closed => {}
                        ClientInput::Lines(lines) => {
                            for line in &lines {
                                let reply = self.handle_line(line, &mut state, &threads, c, fd);
                                c.send(fd, &reply);
                            }
                        }
                    }
                }
                if let Some(r) = self.exit.reason() {
                    break 'main r;
                }
            }
        };

        self.ctl.stop();
        self.ctl.resume();
        kick_all(&threads);
        if let Some(c) = control.as_mut() {
            c.broadcast(&control::event(
                "shutdown",
                Some(("reason", json!(reason.as_str()))),
            ));
            // A confined VMM may no longer reach its socket paths (nor
            // unlink anything); whoever started it removes them.
            if !confined {
                c.cleanup();
            }
        }
        if !confined {
            self.backend.cleanup();
        }
        self.serial_pump.drain();
        self.virtio.shutdown(!confined);
        // Give the vCPU threads a moment to leave KVM_RUN cleanly.
        for _ in 0..100 {
            if threads.iter().all(|t| t.is_finished()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(reason)
    }

    fn pump_serial_input(&self, fd: RawFd, epoll: &Epoll, serial_in: &mut Option<RawFd>) {
        let mut buf = [0u8; 64];
        match serial_backend::read_available(fd, &mut buf) {
            Ok(0) => {
                // EOF: stop polling this source.
                let _ = epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
                *serial_in = None;
            }
            Ok(n) => {
                if let Ok(mut s) = self.serial.lock() {
                    s.input(&buf[..n]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                let _ = epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default());
                *serial_in = None;
            }
        }
    }

    fn handle_line(
        &mut self,
        line: &Line,
        state: &mut LoopState,
        threads: &[JoinHandle<()>],
        ctl_server: &mut ControlServer,
        client: RawFd,
    ) -> String {
        let line = match line {
            Line::Request(text) => text,
            Line::TooLong => {
                return control::reply_err(&None, control::CLASS_GENERIC, "request line too long");
            }
        };
        let req = match control::parse_line(line) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        let id = &req.id;
        let ok = |v: Value| control::reply_ok(id, v);
        let err = |d: &str| control::reply_err(id, control::CLASS_GENERIC, d);
        let command = match Command::parse(&req.execute, req.arguments) {
            Ok(c) => c,
            Err(ParseError::UnknownCommand(name)) => {
                return control::reply_err(
                    id,
                    control::CLASS_NOT_FOUND,
                    &format!("the command {name} has not been found"),
                );
            }
            Err(ParseError::BadArguments(why)) => return err(&why),
        };
        match command {
            Command::QueryStatus => {
                ok(serde_json::to_value(self.status(state)).unwrap_or_default())
            }
            Command::Pause => {
                if state.paused {
                    return ok(json!({}));
                }
                if let Err(e) = self.pause_vcpus(state, threads) {
                    return err(&e);
                }
                ctl_server.broadcast(&control::event("paused", None));
                ok(json!({}))
            }
            Command::Resume => {
                if !state.paused {
                    return ok(json!({}));
                }
                self.resume_vcpus(state);
                ctl_server.broadcast(&control::event("resumed", None));
                ok(json!({}))
            }
            Command::Save(a) => {
                let Some(fd) = ctl_server.take_fd(client) else {
                    return err("save needs a file descriptor");
                };
                let cancel = match a.cancel {
                    false => None,
                    true => match ctl_server.take_fd(client) {
                        Some(c) => Some(c),
                        None => return err("save with cancel needs a second file descriptor"),
                    },
                };
                match self.save(fd, cancel, a.resume, state, threads) {
                    Ok(saved) => ok(serde_json::to_value(saved).unwrap_or_default()),
                    Err(e) => err(&e),
                }
            }
            Command::DiskReopen(a) => {
                let mut layers = Vec::with_capacity(a.formats.len());
                for format in &a.formats {
                    let Some(fd) = ctl_server.take_fd(client) else {
                        return err("disk-reopen needs one file descriptor per layer");
                    };
                    layers.push((std::fs::File::from(fd), *format));
                }
                match self
                    .virtio
                    .reopen_disk(a.slot, layers, a.internal, a.resize)
                {
                    Ok(()) => ok(json!({})),
                    Err(e) => err(&format!("disk-reopen: {e}")),
                }
            }
            Command::DeviceAdd(a) => {
                let mut fds = Vec::new();
                while let Some(fd) = ctl_server.take_fd(client) {
                    fds.push(fd);
                }
                match self.device_add(a.device, fds) {
                    Ok(slot) => ok(json!({ "slot": slot })),
                    Err(e) => err(&format!("device-add: {e}")),
                }
            }
            Command::SetVcpus(a) => match self.set_vcpus(a.count) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&format!("set-vcpus: {e}")),
            },
            Command::DeviceDel(a) => match self.device_del(a.slot) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&format!("device-del: {e}")),
            },
            Command::DiskResize(a) => match self.virtio.resize_disk(a.slot, a.size) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&format!("disk-resize: {e}")),
            },
            Command::SetLink(a) => match self.virtio.set_link(a.slot, a.up) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&e),
            },
            Command::Powerdown => {
                let r = match self.ged.lock() {
                    Ok(mut g) => g.notify(ged::EVENT_POWER_BUTTON),
                    Err(_) => Err(std::io::Error::other("device lock poisoned")),
                };
                match r {
                    Ok(()) => ok(json!({})),
                    Err(e) => err(&format!("cannot raise the GED interrupt: {e}")),
                }
            }
            Command::Reset => {
                self.exit.request(ExitReason::Reboot);
                ok(json!({}))
            }
            Command::Quit => {
                self.exit.request(ExitReason::Quit);
                ok(json!({}))
            }
            Command::QueryStats => {
                ok(serde_json::to_value(self.stats(threads)).unwrap_or_default())
            }
            Command::BalloonSet(a) => match self.virtio.balloon_set(&a, self.cfg.memory_mib) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&e),
            },
            // A path is opened here, on the main thread, which a seccomp
            // filter forbids: a confined VMM takes a descriptor instead.
            Command::ChangeMedia(a) => match self.virtio.change_media(
                a,
                !self.cfg.sandbox.seccomp,
                ctl_server.take_fd(client),
            ) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&e),
            },
            Command::Screendump(_) => match (self.console.as_ref(), ctl_server.take_fd(client)) {
                (None, _) => err("the guest has no display"),
                (Some(_), None) => err("screendump needs a file descriptor"),
                (Some(c), Some(fd)) => match c.screendump(fd) {
                    Ok(()) => ok(json!({})),
                    Err(e) => err(&format!("cannot write the screen: {e}")),
                },
            },
            Command::VncAddClient(a) => match (self.console.as_ref(), ctl_server.take_fd(client)) {
                (None, _) => err("the guest has no display"),
                (Some(_), None) => err("vnc-add-client needs a socket"),
                (Some(c), Some(fd)) => match c.add_client(fd, a.skipauth) {
                    Ok(()) => ok(json!({})),
                    Err(e) => err(&format!("cannot add the VNC client: {e}")),
                },
            },
            Command::SendKey(a) => match self.send_key(a, state) {
                Ok(()) => ok(json!({})),
                Err(e) => err(&e),
            },
            Command::SetVncPassword(a) => match self.console.as_ref() {
                Some(c) => {
                    c.set_password(a.password);
                    ok(json!({}))
                }
                None => err("the guest has no display"),
            },
            Command::ForbiddenSyscall => {
                // A call no thread's filter allows: with seccomp on, the
                // process dies of SIGSYS here (only test builds parse it).
                // SAFETY: getppid has no preconditions.
                let parent = unsafe { libc::syscall(libc::SYS_getppid) };
                ok(json!({ "parent": parent }))
            }
        }
    }

    /// Presses the keys of a `send-key` request, to be released after
    /// its hold time (keys still held from an earlier one go first).
    fn send_key(&self, a: SendKey, state: &mut LoopState) -> std::result::Result<(), String> {
        let console = self.console.as_ref().ok_or("the guest has no display")?;
        let keys = a.keys;
        if keys.is_empty() || keys.len() > 16 {
            return Err("send-key takes 1 to 16 keys".into());
        }
        let hold = a.hold_ms;
        self.release_held_keys(state);
        for &k in &keys {
            console.input().key(k, true);
        }
        let at = std::time::Instant::now() + Duration::from_millis(hold);
        state.held_keys = Some((at, keys));
        Ok(())
    }

    fn release_held_keys(&self, state: &mut LoopState) {
        if let (Some((_, keys)), Some(c)) = (state.held_keys.take(), self.console.as_ref()) {
            for &k in keys.iter().rev() {
                c.input().key(k, false);
            }
        }
    }

    /// Stops every vCPU (parked, its last exit completed), then every
    /// device worker (after the request it runs), and notes the guest
    /// clock: a paused guest does no I/O, so its images may be worked on.
    fn pause_vcpus(
        &self,
        state: &mut LoopState,
        threads: &[JoinHandle<()>],
    ) -> std::result::Result<(), String> {
        self.ctl.request_pause();
        kick_all(threads);
        if !self.ctl.wait_parked(threads.len(), Duration::from_secs(5)) {
            self.ctl.resume();
            return Err("vCPUs did not stop within 5 s".into());
        }
        self.virtio.quiesce();
        // Freeze the guest's kvmclock while paused.
        state.saved_clock = self.vm.get_clock().ok().map(|c| c.clock);
        state.paused = true;
        Ok(())
    }

    /// Lets the devices and the vCPUs run again, the guest clock carrying
    /// on from where it stopped.
    fn resume_vcpus(&self, state: &mut LoopState) {
        if let Some(clock) = state.saved_clock.take() {
            self.set_clock(clock);
        }
        self.virtio.resume();
        state.paused = false;
        self.ctl.resume();
    }

    pub(super) fn set_clock(&self, clock: u64) {
        let c = kvm_clock_data {
            clock,
            ..Default::default()
        };
        if let Err(e) = self.vm.set_clock(&c) {
            tracing::warn!("KVM_SET_CLOCK: {e}");
        }
    }

    fn status(&self, state: &LoopState) -> Status {
        Status {
            status: if state.paused {
                RunStatus::Paused
            } else {
                RunStatus::Running
            },
            running: !state.paused,
            name: self.cfg.name.clone(),
            vcpus: lock(&self.cpu_hotplug).online() as u32,
            memory_mib: self.cfg.memory_mib,
            pid: std::process::id(),
            protocol: PROTOCOL_VERSION,
            serial_pty: self.backend.pty_path.clone(),
            console_ptys: self.virtio.console_ptys(),
        }
    }

    fn stats(&self, threads: &[JoinHandle<()>]) -> Stats {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        let hotplug = lock(&self.cpu_hotplug);
        // Absent vCPUs (CPU hotplug) are not the guest's.
        let vcpus: Vec<VcpuStats> = self
            .ctl
            .tids
            .iter()
            .enumerate()
            .filter(|(i, _)| hotplug.present(*i))
            .map(|(i, t)| VcpuStats {
                id: i,
                tid: t.load(std::sync::atomic::Ordering::SeqCst),
                time_ns: threads.get(i).and_then(thread_cpu_ns).unwrap_or(0),
            })
            .collect();
        drop(hotplug);
        let rss = self
            .statm
            .as_ref()
            .and_then(|f| {
                use std::os::unix::fs::FileExt;
                let mut buf = [0u8; 128];
                let n = f.read_at(&mut buf, 0).ok()?;
                let text = std::str::from_utf8(&buf[..n]).ok()?;
                text.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(0)
            * page;
        Stats {
            vcpus,
            memory: MemoryStats {
                guest_bytes: self.mem_bytes,
                rss_bytes: rss,
            },
            devices: self.virtio.stats(),
            balloon: self.virtio.balloon().map(|b| b.json()),
            finished_instructions: super::cpu::finish::FINISHED.to_json(),
        }
    }
}

pub(super) struct LoopState {
    pub paused: bool,
    /// The guest clock (KVM_GET_CLOCK) when the vCPUs were paused.
    pub saved_clock: Option<u64>,
    /// Keys `send-key` pressed, released (in reverse order) at the instant.
    held_keys: Option<(std::time::Instant, Vec<u16>)>,
}

/// Where a console's keys and pointer go: to a virtio-input keyboard and
/// tablet or mouse while the guest's driver runs them, else to the USB
/// keyboard and the USB tablet or mouse when the guest has them (as QEMU
/// prefers the devices added last), else to the PS/2 keyboard and mouse.
fn input_router(
    ps2: Arc<Ps2Input>,
    usb: Option<&(Arc<dyn InputSink>, Vec<UsbDeviceKind>)>,
    virtio_inputs: &[(InputKind, VirtioInputHandle)],
) -> InputRouter {
    let usb_sink = |wanted: &[UsbDeviceKind]| -> Option<Arc<dyn InputSink>> {
        usb.filter(|(_, kinds)| kinds.iter().any(|k| wanted.contains(k)))
            .map(|(input, _)| input.clone())
    };
    let virtio_sink = |wanted: &[InputKind], otherwise: Arc<dyn InputSink>| match wanted
        .iter()
        .find_map(|w| virtio_inputs.iter().find(|(k, _)| k == w))
    {
        Some((_, h)) => Arc::new(WhenActive {
            device: h.clone(),
            otherwise,
        }) as Arc<dyn InputSink>,
        None => otherwise,
    };
    let keyboard = usb_sink(&[UsbDeviceKind::Keyboard]).unwrap_or_else(|| ps2.clone());
    let pointer = usb_sink(&[UsbDeviceKind::Tablet, UsbDeviceKind::Mouse]).unwrap_or(ps2);
    InputRouter {
        keyboard: virtio_sink(&[InputKind::Keyboard], keyboard),
        pointer: virtio_sink(&[InputKind::Tablet, InputKind::Mouse], pointer),
    }
}

/// The VGA BIOS for firmware to run, when the guest has the adapter; a
/// missing file leaves the adapter without one (Linux and the test guest
/// set modes themselves), with a warning.
fn vga_bios(cfg: &VmConfig) -> Vec<(&'static str, Vec<u8>)> {
    if !cfg
        .devices
        .iter()
        .any(|d| matches!(d, super::config::DeviceConfig::Vga(_)))
    {
        return Vec::new();
    }
    match std::fs::read(vga::VGABIOS_PATH) {
        Ok(rom) => vec![(vga::ROM_FILE, rom)],
        Err(e) => {
            tracing::warn!("no VGA BIOS ({}): {e}", vga::VGABIOS_PATH);
            Vec::new()
        }
    }
}

/// CPU time a running thread of this process has used, in ns (its
/// CPU-time clock, which needs no /proc a jailed VMM cannot see).
fn thread_cpu_ns(t: &JoinHandle<()>) -> Option<u64> {
    use std::os::unix::thread::JoinHandleExt;
    if t.is_finished() {
        return None;
    }
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the pthread_t belongs to a thread that has not been joined;
    // clock is a valid out-pointer.
    if unsafe { libc::pthread_getcpuclockid(t.as_pthread_t(), &mut clock) } != 0 {
        return None;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer for the call.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

fn kick_all(threads: &[JoinHandle<()>]) {
    use std::os::unix::thread::JoinHandleExt;
    for t in threads {
        if !t.is_finished() {
            // SAFETY: the pthread_t belongs to a thread that has not been
            // joined, so it is valid; the signal has a handler installed.
            unsafe { libc::pthread_kill(t.as_pthread_t(), vcpu::kick_signal()) };
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn create_vcpus(
    kvm: &Kvm,
    vm: &VmFd,
    mem: &GuestMemory,
    cfg: &VmConfig,
    entry: Option<&BootEntry>,
    pio: &Arc<Bus>,
    mmio: &Arc<Bus>,
    exit: &Arc<ExitSignal>,
    ctl: &Arc<RunControl>,
) -> Result<Vec<Vcpu>> {
    let supported = kvm
        .get_supported_cpuid(kvm_bindings::KVM_MAX_CPUID_ENTRIES)
        .map_err(Error::kvm("KVM_GET_SUPPORTED_CPUID"))?;
    let msr_list = kvm
        .get_msr_index_list()
        .map_err(Error::kvm("KVM_GET_MSR_INDEX_LIST"))?;
    let saved_msrs = Arc::new(msr_list.as_slice().to_vec());
    let tsc_deadline = kvm.check_extension(Cap::TscDeadlineTimer);
    if cpu::cpuid::host_emulates_ring0() {
        tracing::debug!(
            "this host's KVM emulates guest ring 0: instructions it lacks are finished here"
        );
    }
    let topo = cfg.cpus.topology();
    let mut out = Vec::new();
    for i in 0..cfg.cpus.max() {
        let apic_id = cpu::apic_id(&topo, i);
        let fd = vm
            .create_vcpu(u64::from(apic_id))
            .map_err(Error::kvm("KVM_CREATE_VCPU"))?;
        let cpuid =
            cpu::cpuid::for_vcpu(&supported, &topo, i, tsc_deadline).map_err(Error::Boot)?;
        fd.set_cpuid2(&cpuid)
            .map_err(Error::kvm("KVM_SET_CPUID2"))?;
        let msrs = cpu::msr::boot_msrs(msr_list.as_slice()).map_err(Error::Boot)?;
        let written = fd.set_msrs(&msrs).map_err(Error::kvm("KVM_SET_MSRS"))?;
        if written != msrs.as_slice().len() {
            tracing::warn!(
                "vcpu{i}: KVM accepted {written} of {} boot MSRs",
                msrs.as_slice().len()
            );
        }
        fd.set_fpu(&cpu::regs::boot_fpu())
            .map_err(Error::kvm("KVM_SET_FPU"))?;
        let mut lapic = fd.get_lapic().map_err(Error::kvm("KVM_GET_LAPIC"))?;
        cpu::lapic::set_lint(&mut lapic);
        fd.set_lapic(&lapic).map_err(Error::kvm("KVM_SET_LAPIC"))?;
        if i == 0
            && let Some(entry) = entry
        {
            let mut sregs = fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
            cpu::regs::setup_sregs(mem, entry, &mut sregs).map_err(Error::Boot)?;
            fd.set_sregs(&sregs).map_err(Error::kvm("KVM_SET_SREGS"))?;
            fd.set_regs(&cpu::regs::boot_regs(entry))
                .map_err(Error::kvm("KVM_SET_REGS"))?;
            fd.set_mp_state(kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            })
            .map_err(Error::kvm("KVM_SET_MP_STATE"))?;
        } else if i == 0 {
            let mut sregs = fd.get_sregs().map_err(Error::kvm("KVM_GET_SREGS"))?;
            cpu::regs::reset_sregs(&mut sregs);
            fd.set_sregs(&sregs).map_err(Error::kvm("KVM_SET_SREGS"))?;
            fd.set_regs(&cpu::regs::reset_regs())
                .map_err(Error::kvm("KVM_SET_REGS"))?;
        } else {
            fd.set_mp_state(kvm_mp_state {
                mp_state: KVM_MP_STATE_UNINITIALIZED,
            })
            .map_err(Error::kvm("KVM_SET_MP_STATE"))?;
        }
        out.push(Vcpu {
            index: i as usize,
            fd,
            pio: pio.clone(),
            mmio: mmio.clone(),
            exit: exit.clone(),
            ctl: ctl.clone(),
            mem: mem.clone(),
            msr_list: saved_msrs.clone(),
        });
    }
    Ok(out)
}

/// SIGTERM, SIGINT and SIGHUP delivered through a signalfd, so the main
/// loop handles them like any other event.
struct HostSignals {
    fd: std::os::fd::OwnedFd,
}

impl HostSignals {
    fn new() -> std::io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a valid sigset_t for all calls below; SIGPIPE is
        // ignored so writes to vanished peers fail with EPIPE instead.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: set is initialised; flags are valid.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(HostSignals {
            fd: unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) },
        })
    }

    fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    fn read(&self) -> Option<u32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: info is valid for `size` bytes of writes.
        let n = unsafe { libc::read(self.fd(), (&raw mut info).cast(), size) };
        (n as usize == size).then_some(info.ssi_signo)
    }
}
