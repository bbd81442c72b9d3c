//! Interrupts from a virtio-pci function: the ISR status byte plus a
//! legacy INTx line (an irqfd on an IOAPIC pin) or MSI-X vectors.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use vmm_sys_util::eventfd::EventFd;

/// ISR bit for a used-buffer notification.
pub const ISR_QUEUE: u8 = 1;
/// ISR bit for a configuration change.
pub const ISR_CONFIG: u8 = 2;
/// "No vector" in the MSI-X vector registers.
pub const NO_VECTOR: u16 = 0xffff;

/// Shared between the transport (vCPU side) and the device worker.
pub struct Interrupt {
    isr: AtomicU8,
    intx: EventFd,
    /// One irqfd per MSI-X vector (signalled when MSI-X is enabled).
    msix: Mutex<MsixRoute>,
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
    pub fn new(intx: EventFd, vector_fds: Vec<EventFd>) -> Self {
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

    /// Sets MSI-X enable and function mask.
    pub fn set_msix_control(&self, enabled: bool, masked: bool) {
        let mut r = self.route();
        r.enabled = enabled;
        r.masked = masked;
        r.fire_pending();
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

    /// Reads and clears the ISR byte.
    pub fn take_isr(&self) -> u8 {
        self.isr.swap(0, Ordering::AcqRel)
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
                self.isr.fetch_or(isr, Ordering::AcqRel);
                let _ = self.intx.write(1);
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

    #[test]
    fn intx_then_msix_with_masking() {
        let v0 = fd();
        let v0c = v0.try_clone().unwrap();
        let intx = fd();
        let intxc = intx.try_clone().unwrap();
        let irq = Interrupt::new(intx, vec![v0, fd()]);
        // MSI-X off: INTx and the ISR byte.
        irq.signal_queue(0);
        assert_eq!(intxc.read().unwrap(), 1);
        assert_eq!(irq.take_isr(), ISR_QUEUE);
        assert_eq!(irq.take_isr(), 0);
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
        assert!(intxc.read().is_err());
    }
}
