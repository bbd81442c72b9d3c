//! virtio-scsi (device type 8): a controller whose targets are CD-ROM
//! drives, one per target at LUN 0 (`storage/cdrom.rs`). Queue 0 is the
//! control queue, 1 the event queue (its buffers are kept: no event is
//! reported; guests notice media changes by polling, as they do on
//! QEMU), 2 the single request queue. One worker thread serves them;
//! requests are parsed and answered in `scsi_req.rs`.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use virtio_bindings::virtio_ids::VIRTIO_ID_SCSI;
use virtio_bindings::virtio_scsi::{VIRTIO_SCSI_CDB_DEFAULT_SIZE, VIRTIO_SCSI_SENSE_DEFAULT_SIZE};
use virtio_queue::QueueT;

use super::scsi_req::{self, Sizes, Target};
use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice};
use crate::vmm::memory::GuestMemory;
use crate::vmm::sandbox::ThreadKind;

const QUEUE_SIZE: u16 = 128;
const CONTROL_QUEUE: usize = 0;
const REQUEST_QUEUE: usize = 2;
/// Segments per request the driver may use (two go to the headers).
const SEG_MAX: u32 = QUEUE_SIZE as u32 - 2;
/// Largest transfer per request, in 512-byte sectors.
const MAX_SECTORS: u32 = 0xffff;
const CMD_PER_LUN: u32 = 128;
const EVENT_INFO_SIZE: u32 = 16;
/// Largest CDB and sense sizes a driver may set.
const MAX_CDB_SIZE: u32 = 255;
const MAX_SENSE_SIZE: u32 = 255;

const DEFAULT_SIZES: Sizes = Sizes {
    cdb: VIRTIO_SCSI_CDB_DEFAULT_SIZE as usize,
    sense: VIRTIO_SCSI_SENSE_DEFAULT_SIZE as usize,
};

/// Offsets in the configuration structure the driver may write.
const CONFIG_SENSE_SIZE: u64 = 20;
const CONFIG_CDB_SIZE: u64 = 24;

/// What a state image keeps beyond the transport: the sizes the driver
/// set and each drive's state, in target order.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScsiSaved {
    sizes: Sizes,
    drives: Vec<(u16, crate::vmm::storage::cdrom::CdromState)>,
}

fn locked<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The device as the transport sees it.
pub struct Scsi {
    targets: Arc<[Target]>,
    sizes: Sizes,
    worker: Option<Worker>,
    label: String,
}

impl Scsi {
    pub fn new(targets: Vec<Target>, label: String) -> Self {
        Scsi {
            targets: targets.into(),
            sizes: DEFAULT_SIZES,
            worker: None,
            label,
        }
    }

    /// The configuration structure (36 bytes): one request queue, the
    /// transfer limits, the sizes in force, channel 0, the targets and
    /// LUN 0 only.
    fn config(&self) -> [u8; 36] {
        let max_target = self.targets.iter().map(|t| t.target).max().unwrap_or(0);
        let mut c = [0u8; 36];
        let words = [
            1,
            SEG_MAX,
            MAX_SECTORS,
            CMD_PER_LUN,
            EVENT_INFO_SIZE,
            self.sizes.sense as u32,
            self.sizes.cdb as u32,
        ];
        for (i, w) in words.iter().enumerate() {
            c[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        c[30..32].copy_from_slice(&max_target.to_le_bytes());
        c
    }
}

struct ScsiWorker {
    mem: GuestMemory,
    queues: Vec<WorkQueue>,
    irq: Arc<Interrupt>,
    targets: Arc<[Target]>,
    sizes: Sizes,
}

impl Handler for ScsiWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        for q in &self.queues {
            poll.add(q.event.as_raw_fd(), q.index as u64)?;
        }
        Ok(())
    }

    fn event(&mut self, token: u64, _poll: &Poll) {
        let Some(q) = self.queues.iter_mut().find(|q| q.index as u64 == token) else {
            return;
        };
        q.ack();
        if !q.queue.ready() {
            return;
        }
        let (mem, targets, sizes) = (&self.mem, &self.targets, self.sizes);
        match q.index {
            CONTROL_QUEUE => q.process(mem, &self.irq, |c| scsi_req::control(mem, c, targets)),
            REQUEST_QUEUE => q.process(mem, &self.irq, |c| {
                scsi_req::command(mem, c, sizes, targets)
            }),
            // The event queue: buffers wait for events that never come.
            _ => {}
        }
    }
}

impl VirtioDevice for Scsi {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_SCSI
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE; 3]
    }

    fn features(&self) -> u64 {
        0
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        super::read_config_bytes(&self.config(), offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let v = u32::from_le_bytes(bytes);
        match offset {
            CONFIG_SENSE_SIZE if v <= MAX_SENSE_SIZE => self.sizes.sense = v as usize,
            CONFIG_CDB_SIZE if (1..=MAX_CDB_SIZE).contains(&v) => self.sizes.cdb = v as usize,
            _ => {}
        }
    }

    fn activate(&mut self, act: Activation) -> Result<(), String> {
        if act.queues.len() != 3 {
            return Err("virtio-scsi needs its three queues".into());
        }
        let queues = act
            .queues
            .into_iter()
            .enumerate()
            .map(|(i, (q, ev))| WorkQueue::new(i, q, ev))
            .collect();
        let w = ScsiWorker {
            mem: act.mem,
            queues,
            irq: act.interrupt,
            targets: self.targets.clone(),
            sizes: self.sizes,
        };
        self.worker =
            Some(Worker::spawn(ThreadKind::BlockQueue, &self.label, w).map_err(|e| e.to_string())?);
        Ok(())
    }

    fn quiesce(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }

    fn save_state(&self) -> serde_json::Value {
        let saved = ScsiSaved {
            sizes: self.sizes,
            drives: self
                .targets
                .iter()
                .map(|t| (t.target, locked(&t.unit).state()))
                .collect(),
        };
        serde_json::to_value(saved).unwrap_or_default()
    }

    fn restore_state(
        &mut self,
        state: &serde_json::Value,
        _mem: &crate::vmm::memory::GuestMemory,
    ) -> Result<(), String> {
        let saved: ScsiSaved =
            serde_json::from_value(state.clone()).map_err(|e| format!("virtio-scsi state: {e}"))?;
        if saved.drives.len() != self.targets.len()
            || saved
                .drives
                .iter()
                .zip(self.targets.iter())
                .any(|((t, _), x)| *t != x.target)
        {
            return Err("the saved virtio-scsi controller has other drives".into());
        }
        for ((_, st), t) in saved.drives.iter().zip(self.targets.iter()) {
            locked(&t.unit).restore(st);
        }
        self.sizes = saved.sizes;
        Ok(())
    }

    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        // A device reset puts the sizes back to their defaults.
        self.sizes = DEFAULT_SIZES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::storage::cdrom::Cdrom;
    use crate::vmm::storage::mmc::INTERFACE_SCSI;
    use std::sync::Mutex;

    fn target(n: u16) -> Target {
        Target {
            target: n,
            unit: Arc::new(Mutex::new(Cdrom::new("cd", INTERFACE_SCSI, None))),
        }
    }

    #[test]
    fn configuration_space() {
        let mut s = Scsi::new(vec![target(0), target(5)], "t".into());
        let mut c = [0u8; 36];
        s.read_config(0, &mut c);
        let word = |c: &[u8], at: usize| u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
        assert_eq!(word(&c, 0), 1, "one request queue");
        assert_eq!(word(&c, 20), 96);
        assert_eq!(word(&c, 24), 32);
        assert_eq!(u16::from_le_bytes([c[30], c[31]]), 5, "max_target");
        assert_eq!(word(&c, 32), 0, "max_lun");
        s.write_config(24, &16u32.to_le_bytes());
        s.write_config(20, &1000u32.to_le_bytes());
        s.write_config(24, &[1, 2]);
        s.read_config(0, &mut c);
        assert_eq!((word(&c, 20), word(&c, 24)), (96, 16));
        s.reset();
        s.read_config(24, &mut c[..4]);
        assert_eq!(word(&c, 0), 32);
        assert_eq!(s.queue_max_sizes(), vec![QUEUE_SIZE; 3]);
    }
}
