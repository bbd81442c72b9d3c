//! virtio devices over PCI (virtio 1.x "modern" transport only).
//!
//! The transport (`transport.rs`) owns the PCI function: configuration
//! space, the capability list and the BAR holding the common, ISR, device
//! and notify regions. When the driver sets DRIVER_OK the transport builds
//! the queues and hands them to the device, which runs its own worker
//! thread (`worker.rs`) woken by the queues' ioeventfds and its backend's
//! fds; vCPU threads never do device work. A reset stops the worker.

pub mod balloon;
pub mod blk;
#[cfg(test)]
mod blk_batch_tests;
pub mod blk_merge;
pub mod blk_pool;
pub mod console;
pub mod disk;
pub mod fuzz;
#[cfg(test)]
mod fuzz_tests;
pub mod gpu;
pub mod input;
pub mod interrupt;
pub mod iov;
pub mod msix;
pub mod net;
pub mod net_ctrl;
pub mod options;
pub mod rng;
pub mod scsi;
pub mod scsi_req;
pub mod setup;
pub mod stats;
pub mod tap;
#[cfg(test)]
mod test_ring;
pub mod transport;
pub mod vsock;
pub mod worker;

use vmm_sys_util::eventfd::EventFd;

pub use interrupt::Interrupt;

use super::memory::GuestMemory;
use virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::Queue;

/// The mask of feature bit number `bit`. `virtio_bindings` gives feature
/// bits as numbers, as Linux's headers do; this is the one place where a
/// number becomes a mask.
pub const fn feature(bit: u32) -> u64 {
    1 << bit
}

/// Feature bits common to every device.
pub const F_VERSION_1: u64 = feature(VIRTIO_F_VERSION_1);
/// Descriptors may point at tables of descriptors (virtio-queue's chain
/// iterator follows them).
pub const F_INDIRECT_DESC: u64 = feature(VIRTIO_RING_F_INDIRECT_DESC);
/// Notification suppression through the used/avail event indices.
pub const F_EVENT_IDX: u64 = feature(VIRTIO_RING_F_EVENT_IDX);

/// What a device gets when the driver has finished setting it up.
pub struct Activation {
    pub mem: GuestMemory,
    /// Queues in index order, each with the eventfd the guest's notify
    /// writes signal.
    pub queues: Vec<(Queue, EventFd)>,
    pub interrupt: std::sync::Arc<Interrupt>,
    /// Features the driver accepted.
    pub features: u64,
}

/// Opens a disk image for [`DiskChange::Replace`].
pub type DiskOpener<'a> = Box<dyn FnOnce() -> std::io::Result<Box<dyn disk::Disk>> + 'a>;

/// What [`VirtioDevice::change_disk`] does to a disk device's image.
pub enum DiskChange<'a> {
    /// Another image: the old one is flushed first, then `open` makes the
    /// new one (which may read the old through its backing chain). Its
    /// size must be the old one's unless `resize`.
    Replace { open: DiskOpener<'a>, resize: bool },
    /// The open image given a new virtual size (qcow2's header and L1
    /// table, which only the holder of the open image may write).
    Resize(u64),
}

/// One kind of virtio device, independent of the transport.
pub trait VirtioDevice: Send {
    /// virtio device type (`virtio_bindings::virtio_ids::VIRTIO_ID_*`).
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length is the number of queues.
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// Feature bits offered, besides VERSION_1.
    fn features(&self) -> u64;
    /// Device configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// Starts processing the queues (on its own thread).
    fn activate(&mut self, act: Activation) -> std::result::Result<(), String>;
    /// Stops processing; the device must be ready for a new activation.
    fn reset(&mut self);
    /// Stops processing for a state image, keeping what the driver made
    /// (the guest's view of the device does not change); by default the
    /// same as [`VirtioDevice::reset`], for devices whose reset keeps it.
    fn quiesce(&mut self) {
        self.reset();
    }
    /// A disk device's image changed while quiesced; returns whether its
    /// size changed (the guest is then told by a configuration change).
    /// Other devices have no image.
    fn change_disk(&mut self, _change: DiskChange<'_>) -> std::result::Result<bool, String> {
        Err("the device has no disk image".into())
    }
    /// What the device keeps beyond the transport's registers (what the
    /// driver wrote to its configuration space), for a state image.
    fn save_state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Loads what [`VirtioDevice::save_state`] gave (`mem`: guest RAM,
    /// already restored).
    fn restore_state(
        &mut self,
        _state: &serde_json::Value,
        _mem: &GuestMemory,
    ) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Copies `data` out of a byte image of a configuration structure.
pub fn read_config_bytes(image: &[u8], offset: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| image.get(o))
            .copied()
            .unwrap_or(0);
    }
}
