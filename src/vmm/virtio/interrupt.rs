//! Interrupts from a virtio-pci function: the ISR status byte plus a
//! legacy INTx line on an IOAPIC pin, or MSI-X vectors (irqfds).
//!
//! INTx is level-triggered: the line is high exactly while the function's
//! ISR byte has bits set. A signal sets the bit and raises the line, the
//! driver's ISR read clears the byte and lowers it, both under one lock
//! with `KVM_IRQ_LINE`, so the guest never sees a stale level. Functions
//! sharing a GSI are ORed ([`IntxLines`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;
use vmm_sys_util::eventfd::EventFd;

// The ISR bits stay here: `virtio_bindings` has no `virtio_pci` module
// (Linux's `VIRTIO_PCI_ISR_CONFIG`); its `VIRTIO_MMIO_INT_*` have the same
// values but belong to the MMIO transport's register.

/// ISR bit for a used-buffer notification.
pub const ISR_QUEUE: u8 = 1;
/// ISR bit for a configuration change.
pub const ISR_CONFIG: u8 = 2;
/// "No vector" in the MSI-X vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// The levels of the VM's INTx lines: per GSI, which functions (by
/// slot) hold it high. Also the lock that keeps a function's ISR byte and
/// its line in step.
pub struct IntxLines {
    vm: Option<Arc<VmFd>>,
    levels: Mutex<HashMap<u32, u32>>,
}

impl IntxLines {
    /// Lines driven through `KVM_IRQ_LINE` on `vm` (`None`: levels are
    /// only tracked, for tests).
    pub fn new(vm: Option<Arc<VmFd>>) -> Self {
        IntxLines {
            vm,
            levels: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `f` under the lock; `f` returns whether `slot` wants the line
    /// high, and the GSI follows the OR of its functions.
    fn update(&self, gsi: u32, slot: u8, f: impl FnOnce() -> bool) {
        let mut l = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        let before = l.get(&gsi).copied().unwrap_or(0);
        let bit = 1u32.checked_shl(u32::from(slot)).unwrap_or(0);
        let after = if f() { before | bit } else { before & !bit };
        l.insert(gsi, after);
        if (before != 0) != (after != 0)
            && let Some(vm) = &self.vm
            && let Err(e) = vm.set_irq_line(gsi, after != 0)
        {
            tracing::warn!("KVM_IRQ_LINE {gsi}: {e}");
        }
    }

    /// Whether `gsi` is high.
    pub fn level(&self, gsi: u32) -> bool {
        let l = self.levels.lock().unwrap_or_else(|p| p.into_inner());
        l.get(&gsi).is_some_and(|v| *v != 0)
    }
}

/// One function's INTx pin.
pub struct IntxLine {
    pub lines: Arc<IntxLines>,
    pub gsi: u32,
    pub slot: u8,
}

impl IntxLine {
    /// Drives the pin (a function that keeps its own level, not a virtio
    /// ISR byte); the GSI follows the OR of the functions sharing it.
    pub fn set(&self, high: bool) {
        self.lines.update(self.gsi, self.slot, || high);
    }
}

/// MSI-X message control: enable, and the function mask.
const MSIX_ENABLE: u16 = 0x8000;
const MSIX_FUNCTION_MASK: u16 = 0x4000;

/// Shared between the transport (vCPU side) and the device worker.
pub struct Interrupt {
    isr: AtomicU8,
    intx: IntxLine,
    /// One irqfd per MSI-X vector (signalled when MSI-X is enabled).
    msix: Mutex<MsixRoute>,
}

/// What a state image keeps of a function's interrupt state.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterruptState {
    pub isr: u8,
    pub vector_masked: Vec<bool>,
    pub pending: Vec<bool>,
}

/// Which vectors the driver chose, and whether MSI-X is on.
#[derive(Default)]
pub struct MsixRoute {
    pub enabled: bool,
    pub masked: bool,
    pub config_vector: u16,
    pub queue_vectors: Vec<u16>,
    pub vector_fds: Vec<EventFd>,
    pub vector_masked: Vec<bool>,
    pub pending: Vec<bool>,
}

impl MsixRoute {
    fn fire_pending(&mut self) {
        if !self.enabled || self.masked {
            return;
        }
        for i in 0..self.pending.len() {
            if self.pending[i] && !self.vector_masked.get(i).copied().unwrap_or(true) {
                self.pending[i] = false;
                if let Some(fd) = self.vector_fds.get(i) {
                    let _ = fd.write(1);
                }
            }
        }
    }
}

impl Interrupt {
    /// `vector_fds`: one irqfd per MSI-X vector (may be empty).
    pub fn new(intx: IntxLine, vector_fds: Vec<EventFd>) -> Self {
        let n = vector_fds.len();
        Interrupt {
            isr: AtomicU8::new(0),
            intx,
            msix: Mutex::new(MsixRoute {
                config_vector: NO_VECTOR,
                vector_fds,
                vector_masked: vec![true; n],
                pending: vec![false; n],
                ..Default::default()
            }),
        }
    }

    /// The routing state, for the transport.
    pub fn route(&self) -> std::sync::MutexGuard<'_, MsixRoute> {
        self.msix.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Masks or unmasks one vector; an unmasked vector with a pending
    /// message fires now.
    pub fn set_vector_mask(&self, v: usize, masked: bool) {
        let mut r = self.route();
        if let Some(m) = r.vector_masked.get_mut(v) {
            *m = masked;
        }
        r.fire_pending();
    }

    /// Sets MSI-X enable and function mask from the capability's message
    /// control word.
    pub fn set_msix_control_word(&self, control: u16) {
        self.set_msix_control(
            control & MSIX_ENABLE != 0,
            control & MSIX_FUNCTION_MASK != 0,
        );
    }

    /// Sets MSI-X enable and function mask. With MSI-X on, INTx is
    /// silent.
    pub fn set_msix_control(&self, enabled: bool, masked: bool) {
        {
            let mut r = self.route();
            r.enabled = enabled;
            r.masked = masked;
            r.fire_pending();
        }
        let isr = &self.isr;
        self.intx.lines.update(self.intx.gsi, self.intx.slot, || {
            !enabled && isr.load(Ordering::Acquire) != 0
        });
    }

    /// Pending bits, one per vector (for the PBA).
    pub fn pending_bits(&self) -> u64 {
        let r = self.route();
        r.pending
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .fold(0u64, |acc, (i, _)| {
                acc | 1u64.checked_shl(i as u32).unwrap_or(0)
            })
    }

    /// The ISR byte and per-vector masks and pending bits, for a state
    /// image.
    pub fn state(&self) -> InterruptState {
        let r = self.route();
        InterruptState {
            isr: self.isr.load(Ordering::Acquire),
            vector_masked: r.vector_masked.clone(),
            pending: r.pending.clone(),
        }
    }

    /// Loads saved bits (the caller sets the vectors and MSI-X control);
    /// INTx goes high again if the ISR byte was set and MSI-X is off.
    pub fn restore(&self, s: &InterruptState) -> Result<(), String> {
        {
            let mut r = self.route();
            if s.vector_masked.len() != r.vector_fds.len() || s.pending.len() != r.vector_fds.len()
            {
                return Err(format!(
                    "{} MSI-X vectors saved, the device has {}",
                    s.vector_masked.len(),
                    r.vector_fds.len()
                ));
            }
            r.vector_masked = s.vector_masked.clone();
            r.pending = s.pending.clone();
        }
        let enabled = self.route().enabled;
        let isr = &self.isr;
        self.intx.lines.update(self.intx.gsi, self.intx.slot, || {
            isr.store(s.isr, Ordering::Release);
            !enabled && s.isr != 0
        });
        Ok(())
    }

    /// Reads and clears the ISR byte, lowering INTx.
    pub fn take_isr(&self) -> u8 {
        let mut v = 0;
        let isr = &self.isr;
        self.intx.lines.update(self.intx.gsi, self.intx.slot, || {
            v = isr.swap(0, Ordering::AcqRel);
            false
        });
        v
    }

    /// Silences the function for good (hot unplug): its INTx line goes
    /// low and its vectors' irqfds (on `gsis`) leave `vm`.
    pub fn detach(&self, vm: &VmFd, gsis: &[u32]) {
        self.take_isr();
        let r = self.route();
        for (fd, &gsi) in r.vector_fds.iter().zip(gsis) {
            if let Err(e) = vm.unregister_irqfd(fd, gsi) {
                tracing::warn!("KVM_IRQFD deassign of GSI {gsi}: {e}");
            }
        }
    }

    /// Signals a used-buffer notification for queue `q`.
    pub fn signal_queue(&self, q: usize) {
        let vector = {
            let r = self.route();
            if r.enabled {
                Some(r.queue_vectors.get(q).copied().unwrap_or(NO_VECTOR))
            } else {
                None
            }
        };
        self.signal(vector, ISR_QUEUE);
    }

    /// Signals a configuration change.
    pub fn signal_config(&self) {
        let vector = {
            let r = self.route();
            r.enabled.then_some(r.config_vector)
        };
        self.signal(vector, ISR_CONFIG);
    }

    fn signal(&self, vector: Option<u16>, isr: u8) {
        match vector {
            None => {
                let bits = &self.isr;
                self.intx.lines.update(self.intx.gsi, self.intx.slot, || {
                    bits.fetch_or(isr, Ordering::AcqRel);
                    true
                });
            }
            Some(NO_VECTOR) => {}
            Some(v) => {
                let mut r = self.route();
                let i = usize::from(v);
                if r.masked || r.vector_masked.get(i).copied().unwrap_or(true) {
                    if let Some(p) = r.pending.get_mut(i) {
                        *p = true;
                    }
                } else if let Some(fd) = r.vector_fds.get(i) {
                    let _ = fd.write(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> EventFd {
        EventFd::new(libc::EFD_NONBLOCK).unwrap()
    }

    fn line(lines: &Arc<IntxLines>, slot: u8) -> IntxLine {
        IntxLine {
            lines: lines.clone(),
            gsi: 20,
            slot,
        }
    }

    #[test]
    fn intx_is_a_level_shared_by_functions() {
        let lines = Arc::new(IntxLines::new(None));
        let a = Interrupt::new(line(&lines, 3), vec![]);
        let b = Interrupt::new(line(&lines, 10), vec![]);
        a.signal_queue(0);
        assert!(lines.level(20));
        // Still high after a second reason and until the ISR is read.
        a.signal_config();
        b.signal_queue(0);
        assert_eq!(a.take_isr(), ISR_QUEUE | ISR_CONFIG);
        assert!(lines.level(20), "b still holds the line");
        assert_eq!(b.take_isr(), ISR_QUEUE);
        assert!(!lines.level(20));
        assert_eq!(a.take_isr(), 0);
        // MSI-X on: the pending INTx reason no longer drives the line.
        a.signal_queue(0);
        a.set_msix_control(true, false);
        assert!(!lines.level(20));
    }

    #[test]
    fn intx_then_msix_with_masking() {
        let v0 = fd();
        let v0c = v0.try_clone().unwrap();
        let lines = Arc::new(IntxLines::new(None));
        let irq = Interrupt::new(line(&lines, 3), vec![v0, fd()]);
        // MSI-X off: INTx and the ISR byte.
        irq.signal_queue(0);
        assert!(lines.level(20));
        assert_eq!(irq.take_isr(), ISR_QUEUE);
        assert_eq!(irq.take_isr(), 0);
        assert!(!lines.level(20));
        // MSI-X on, queue 0 on vector 0, masked: pending until unmasked.
        irq.route().queue_vectors = vec![0];
        irq.set_msix_control(true, false);
        irq.signal_queue(0);
        assert!(v0c.read().is_err());
        assert_eq!(irq.pending_bits(), 1);
        irq.set_vector_mask(0, false);
        assert_eq!(v0c.read().unwrap(), 1);
        assert_eq!(irq.pending_bits(), 0);
        irq.signal_queue(0);
        assert_eq!(v0c.read().unwrap(), 1);
        // No vector: nothing at all.
        irq.route().queue_vectors = vec![NO_VECTOR];
        irq.signal_queue(0);
        assert!(v0c.read().is_err());
        assert!(!lines.level(20));
    }
}
