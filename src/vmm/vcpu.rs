//! vCPU threads: the KVM_RUN loop, exit dispatch, and parking for pause
//! and for as long as a vCPU is absent (CPU hotplug).
//!
//! A thread is kicked out of KVM_RUN by a real-time signal whose handler
//! sets `immediate_exit` in the thread's own `kvm_run` page, so a kick
//! that lands just before KVM_RUN is not lost.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vmm_sys_util::signal::{SIGRTMIN, register_signal_handler};

use super::bus::Bus;
use super::cpu::finish;
use super::exit::{ExitReason, ExitSignal};
use super::memory::GuestMemory;
use super::snapshot::VcpuState;

const KVM_SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const KVM_SYSTEM_EVENT_RESET: u32 = 2;
const KVM_SYSTEM_EVENT_CRASH: u32 = 3;

thread_local! {
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
}

/// The signal used to kick vCPU threads.
pub fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let p = KVM_RUN_PTR.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: p points at this thread's kvm_run mapping, which lives
        // as long as the thread's VcpuFd; writing one byte is async-signal-safe.
        unsafe { std::ptr::write_volatile(&raw mut (*p).immediate_exit, 1) };
    }
}

/// Installs the kick handler (once per process).
pub fn install_kick_handler() -> std::io::Result<()> {
    register_signal_handler(kick_signal(), kick_handler)
        .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))
}

/// Run state shared by the main loop and every vCPU thread.
pub struct RunControl {
    state: Mutex<RunState>,
    cond: Condvar,
    stop: AtomicBool,
    /// Kernel thread id of each vCPU (0 until the thread starts).
    pub tids: Vec<AtomicI32>,
}

#[derive(Default)]
struct RunState {
    pause: bool,
    /// vCPUs not plugged in (or ejected): parked until plugged in.
    absent: Vec<bool>,
    parked: usize,
    /// Raised to ask parked vCPUs for their state.
    capture_gen: u64,
    /// Each vCPU's answer to the latest request.
    captured: Vec<Option<Result<VcpuState, String>>>,
}

impl RunState {
    /// Whether vCPU `index` must stay parked: a pause is requested or it
    /// is absent.
    fn must_park(&self, index: usize) -> bool {
        self.pause || self.absent.get(index) == Some(&true)
    }
}

impl RunControl {
    /// `vcpus` threads, the first `present` of them plugged in.
    pub fn new(vcpus: usize, present: usize) -> Self {
        RunControl {
            state: Mutex::new(RunState {
                absent: (0..vcpus).map(|i| i >= present).collect(),
                ..Default::default()
            }),
            cond: Condvar::new(),
            stop: AtomicBool::new(false),
            tids: (0..vcpus).map(|_| AtomicI32::new(0)).collect(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RunState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Asks every vCPU to park; the caller kicks them, then waits with
    /// [`RunControl::wait_parked`].
    pub fn request_pause(&self) {
        self.lock().pause = true;
    }

    /// Waits until `n` vCPUs are parked or the timeout expires.
    pub fn wait_parked(&self, n: usize, timeout: Duration) -> bool {
        let g = self.lock();
        let res = self
            .cond
            .wait_timeout_while(g, timeout, |s| s.parked < n && !self.stopped());
        match res {
            Ok((g, _)) => g.parked >= n,
            Err(_) => false,
        }
    }

    /// Whether vCPU `index` must park: a pause is requested or it is
    /// absent (a vCPU about to park settles first).
    fn must_park(&self, index: usize) -> bool {
        self.lock().must_park(index)
    }

    /// Plugs vCPU `index` in (its thread goes on to KVM_RUN, where it waits
    /// for the guest's INIT and SIPI) or marks it absent (the caller kicks
    /// its thread out of KVM_RUN, and it parks).
    pub fn set_present(&self, index: usize, present: bool) {
        if let Some(a) = self.lock().absent.get_mut(index) {
            *a = !present;
        }
        self.cond.notify_all();
    }

    /// Asks the `n` parked vCPUs for their state and waits for it.
    pub fn capture_all(&self, n: usize, timeout: Duration) -> Result<Vec<VcpuState>, String> {
        let mut g = self.lock();
        if !g.pause || g.parked < n {
            return Err("the vCPUs are not paused".into());
        }
        g.capture_gen += 1;
        g.captured = (0..n).map(|_| None).collect();
        self.cond.notify_all();
        let (mut g, _) = self
            .cond
            .wait_timeout_while(g, timeout, |s| {
                s.captured.iter().any(Option::is_none) && !self.stopped()
            })
            .unwrap_or_else(|p| p.into_inner());
        let answers = std::mem::take(&mut g.captured);
        answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| match a {
                Some(Ok(s)) => Ok(s),
                Some(Err(e)) => Err(format!("vcpu{i}: {e}")),
                None => Err(format!("vcpu{i} did not report its state")),
            })
            .collect()
    }

    /// Lets parked vCPUs run again.
    pub fn resume(&self) {
        self.lock().pause = false;
        self.cond.notify_all();
    }

    /// Tells every vCPU to leave its loop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cond.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Parks the calling vCPU while a pause is requested, answering
    /// state requests with `capture` meanwhile (`served`: the last request
    /// this vCPU answered). Returns false when the vCPU must stop.
    fn park_if_paused(
        &self,
        index: usize,
        served: &mut u64,
        capture: impl Fn() -> Result<VcpuState, String>,
    ) -> bool {
        let mut g = self.lock();
        if g.must_park(index) {
            g.parked += 1;
            self.cond.notify_all();
            while g.must_park(index) && !self.stopped() {
                if g.capture_gen != *served {
                    *served = g.capture_gen;
                    drop(g);
                    let answer = capture();
                    g = self.lock();
                    if let Some(slot) = g.captured.get_mut(index) {
                        *slot = Some(answer);
                    }
                    self.cond.notify_all();
                    continue;
                }
                g = match self.cond.wait(g) {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
            }
            g.parked -= 1;
        }
        !self.stopped()
    }
}

/// One vCPU and what its exits need.
pub struct Vcpu {
    pub index: usize,
    pub fd: VcpuFd,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub exit: Arc<ExitSignal>,
    pub ctl: Arc<RunControl>,
    /// Guest RAM, for instructions finished here.
    pub mem: GuestMemory,
    /// The MSRs a state image keeps (KVM's list).
    pub msr_list: Arc<Vec<u32>>,
}

enum Step {
    Continue,
    Stop(ExitReason),
}

impl Vcpu {
    /// The thread body: runs until the guest stops or the VMM says so.
    pub fn run(mut self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        if let Some(t) = self.ctl.tids.get(self.index) {
            t.store(tid, Ordering::SeqCst);
        }
        let run_ptr: *mut kvm_run = self.fd.get_kvm_run();
        KVM_RUN_PTR.with(|c| c.set(run_ptr));
        let mut served = 0;
        loop {
            if self.ctl.must_park(self.index)
                && let Step::Stop(reason) = self.settle()
            {
                self.exit.request(reason);
                break;
            }
            let (fd, msrs) = (&self.fd, &self.msr_list);
            let capture = || VcpuState::capture(fd, msrs);
            if !self.ctl.park_if_paused(self.index, &mut served, capture) {
                break;
            }
            match self.step() {
                Step::Continue => {}
                Step::Stop(reason) => {
                    self.exit.request(reason);
                    break;
                }
            }
        }
        KVM_RUN_PTR.with(|c| c.set(std::ptr::null_mut()));
    }

    fn step(&mut self) -> Step {
        let index = self.index;
        let result = self.fd.run();
        match result {
            Ok(VcpuExit::IoIn(port, data)) => {
                self.pio.read(u64::from(port), data);
                Step::Continue
            }
            Ok(VcpuExit::IoOut(port, data)) => {
                self.pio.write(u64::from(port), data);
                Step::Continue
            }
            Ok(VcpuExit::MmioRead(addr, data)) => {
                if !self.mmio.read(addr, data) {
                    tracing::debug!("vcpu{index}: unhandled MMIO read at {addr:#x}");
                }
                Step::Continue
            }
            Ok(VcpuExit::MmioWrite(addr, data)) => {
                if !self.mmio.write(addr, data) {
                    tracing::debug!("vcpu{index}: unhandled MMIO write at {addr:#x}");
                }
                Step::Continue
            }
            Ok(VcpuExit::Hlt) => {
                // Only reached without an in-kernel LAPIC; never spin.
                std::thread::sleep(Duration::from_millis(1));
                Step::Continue
            }
            Ok(VcpuExit::Shutdown) => {
                tracing::warn!("vcpu{index}: triple fault");
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let regs = self.fd.get_regs().ok();
                    let sregs = self.fd.get_sregs().ok();
                    tracing::debug!("vcpu{index}: at the fault: {regs:?} {sregs:?}");
                }
                Step::Stop(ExitReason::TripleFault)
            }
            Ok(VcpuExit::SystemEvent(kind, _)) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => Step::Stop(ExitReason::Poweroff),
                KVM_SYSTEM_EVENT_RESET => Step::Stop(ExitReason::Reboot),
                KVM_SYSTEM_EVENT_CRASH => Step::Stop(ExitReason::Crash),
                other => {
                    tracing::warn!("vcpu{index}: ignoring system event {other}");
                    Step::Continue
                }
            },
            Ok(VcpuExit::InternalError) => {
                let (suberror, data) = self.internal_error();
                let why = if suberror == finish::SUBERROR_EMULATION {
                    match finish::finish(&self.fd, &self.mem, &data) {
                        Ok(what) => {
                            tracing::debug!("vcpu{index}: finished {what}");
                            return Step::Continue;
                        }
                        Err(why) => format!(" ({why})"),
                    }
                } else {
                    String::new()
                };
                let detail = self.internal_error_detail();
                eprintln!("oxvirt-vmm: error: vcpu{index}: KVM internal error: {detail}{why}");
                Step::Stop(ExitReason::InternalError)
            }
            Ok(VcpuExit::FailEntry(reason, cpu)) => {
                eprintln!(
                    "oxvirt-vmm: error: vcpu{index}: VM entry failed \
                     (hardware reason {reason:#x}, host cpu {cpu})"
                );
                Step::Stop(ExitReason::InternalError)
            }
            Ok(VcpuExit::IrqWindowOpen) | Ok(VcpuExit::Intr) => Step::Continue,
            Ok(other) => {
                let name = format!("{other:?}");
                eprintln!(
                    "oxvirt-vmm: error: vcpu{index}: unexpected KVM exit {name} ({})",
                    self.where_now()
                );
                Step::Stop(ExitReason::InternalError)
            }
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                if self.ctl.stopped() {
                    return Step::Stop(ExitReason::Quit);
                }
                Step::Continue
            }
            Err(e) => {
                eprintln!(
                    "oxvirt-vmm: error: vcpu{index}: KVM_RUN failed: {e} ({})",
                    self.where_now()
                );
                Step::Stop(ExitReason::InternalError)
            }
        }
    }

    /// Completes the port or MMIO access of the last exit (KVM finishes
    /// it on the next KVM_RUN, which immediate_exit turns back before the
    /// guest runs), so that the registers are whole while parked.
    fn settle(&mut self) -> Step {
        for _ in 0..64 {
            self.fd.set_kvm_immediate_exit(1);
            match self.step() {
                // KVM_RUN gave EINTR: nothing is left pending.
                Step::Continue if self.fd.get_kvm_run().immediate_exit == 0 => {
                    return Step::Continue;
                }
                Step::Continue => {}
                stop => return stop,
            }
        }
        self.fd.set_kvm_immediate_exit(0);
        Step::Continue
    }

    fn where_now(&self) -> String {
        match self.fd.get_regs() {
            Ok(r) => format!("rip {:#x}", r.rip),
            Err(_) => "registers unavailable".into(),
        }
    }

    /// The suberror and data of a KVM_EXIT_INTERNAL_ERROR.
    fn internal_error(&mut self) -> (u32, Vec<u64>) {
        let run = self.fd.get_kvm_run();
        // SAFETY: after KVM_EXIT_INTERNAL_ERROR the kernel filled the
        // `internal` member of the exit union.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        (internal.suberror, internal.data[..n].to_vec())
    }

    fn internal_error_detail(&mut self) -> String {
        let run = self.fd.get_kvm_run();
        // SAFETY: after KVM_EXIT_INTERNAL_ERROR the kernel filled the
        // `internal` member of the exit union.
        let internal = unsafe { run.__bindgen_anon_1.internal };
        let n = (internal.ndata as usize).min(internal.data.len());
        let kind = match internal.suberror {
            1 => "emulation failure",
            2 => "simultaneous exception",
            3 => "delivery event",
            4 => "unexpected exit reason",
            _ => "unknown",
        };
        format!(
            "suberror {} ({kind}), data {:x?}, {}",
            internal.suberror,
            &internal.data[..n],
            self.where_now()
        )
    }
}
