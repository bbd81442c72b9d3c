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

impl Interrupt {
    pub fn new(intx: EventFd) -> Self {
        Interrupt {
            isr: AtomicU8::new(0),
            intx,
            msix: Mutex::new(MsixRoute::default()),
        }
    }

    /// The routing state, for the transport.
    pub fn route(&self) -> std::sync::MutexGuard<'_, MsixRoute> {
        self.msix.lock().unwrap_or_else(|p| p.into_inner())
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
