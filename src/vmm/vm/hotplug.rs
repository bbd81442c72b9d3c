//! PCI hotplug of the running machine: `device-add` builds a device and
//! announces its slot through the GED, `device-del` asks the guest to
//! release one, and the guest's eject (`devices/pci_hotplug.rs`) ends
//! with the device freed and the event `device-deleted` (or its refusal,
//! through `_OST`, with `device-unplug-guest-error`).

use std::os::fd::{IntoRawFd, OwnedFd};

use serde_json::json;

use super::{Vm, lock};
use crate::vmm::config::DeviceConfig;
use crate::vmm::control::{self, ControlServer};
use crate::vmm::devices::ged;
use crate::vmm::virtio::setup;

impl Vm {
    /// Plugs `device` into a free (or its own) slot and tells the guest;
    /// `fds`: a disk's image, a NIC's taps, or a console's backend. The configuration gains
    /// the device, so that a state image records it.
    pub(super) fn device_add(
        &mut self,
        mut device: DeviceConfig,
        fds: Vec<OwnedFd>,
    ) -> Result<u8, String> {
        let given = match &mut device {
            DeviceConfig::Block(_) | DeviceConfig::Console(_) => {
                let mut fds = fds.into_iter();
                let given = fds.next();
                if fds.next().is_some() {
                    return Err(format!("a {} takes one file descriptor", device.kind()));
                }
                given
            }
            DeviceConfig::Net(n) => {
                if n.tap_name.is_some() || n.tap_fd.is_some() || !n.tap_fds.is_empty() {
                    return Err("a NIC's taps come as file descriptors".into());
                }
                // `stream-fd` set (to anything) asks for a stream backend
                // on the one descriptor, else each is a tap queue.
                match (n.stream_fd.is_some(), fds.len()) {
                    (_, 0) => return Err("a NIC needs its tap's file descriptor".into()),
                    (true, 2..) => return Err("a stream NIC takes one file descriptor".into()),
                    _ => {}
                }
                // The NIC takes the descriptors over.
                let raw: Vec<i32> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
                if n.stream_fd.is_some() {
                    n.stream_fd = raw.first().copied();
                } else {
                    n.tap_fds = raw;
                }
                None
            }
            _ if !fds.is_empty() => return Err("the device takes no file descriptor".into()),
            _ => None,
        };
        let slot = self.virtio.hotplug(&device, &self.pci, given)?;
        *device.pci_slot_mut() = Some(slot);
        device.forget_descriptors();
        self.cfg.devices.push(device);
        lock(&self.hotplug).plugged(slot, true);
        lock(&self.ged)
            .notify(ged::EVENT_PCI_HOTPLUG)
            .map_err(|e| format!("cannot raise the GED interrupt: {e}"))?;
        tracing::info!("device plugged into PCI slot {slot}");
        Ok(slot)
    }

    /// Asks the guest to release the device in `slot`.
    pub(super) fn device_del(&mut self, slot: u8) -> Result<(), String> {
        if !self.virtio.removable_slots().contains(&slot) {
            return Err(if lock(&self.pci).occupied(slot) {
                format!("the device in PCI slot {slot} cannot be unplugged")
            } else {
                format!("no device in PCI slot {slot}")
            });
        }
        lock(&self.hotplug).request_removal(slot);
        lock(&self.ged)
            .notify(ged::EVENT_PCI_HOTPLUG)
            .map_err(|e| format!("cannot raise the GED interrupt: {e}"))
    }

    /// Frees the devices the guest ejected and reports each, and each
    /// removal the guest refused (`device-unplug-guest-error`).
    pub(super) fn finish_ejects(&mut self, mut control: Option<&mut ControlServer>) {
        let (ejected, refused) = {
            let mut h = lock(&self.hotplug);
            (h.take_ejected(), h.take_refused())
        };
        for slot in refused {
            tracing::info!("the guest refused to release the device in PCI slot {slot}");
            if let Some(c) = control.as_mut() {
                c.broadcast(&control::event(
                    "device-unplug-guest-error",
                    Some(("slot", json!(slot))),
                ));
            }
        }
        if ejected.is_empty() {
            return;
        }
        // Pin every device to the slot it has, so that dropping one
        // leaves the others' (auto-assigned) slots as they are.
        let slots = setup::assign_slots(&self.cfg.devices);
        for (d, s) in self.cfg.devices.iter_mut().zip(slots) {
            *d.pci_slot_mut() = Some(s);
        }
        let mut events = Vec::new();
        for (slot, functions) in ejected {
            drop(functions);
            if self.virtio.unplugged(slot) {
                self.cfg.devices.retain(|d| d.pci_slot() != Some(slot));
                tracing::info!("device in PCI slot {slot} unplugged");
                events.push(control::event(
                    "device-deleted",
                    Some(("slot", json!(slot))),
                ));
            }
        }
        if let Some(c) = control {
            for e in &events {
                c.broadcast(e);
            }
        }
    }
}
