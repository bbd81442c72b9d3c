//! CPU hotplug of the running machine: `set-vcpus` plugs absent vCPUs in
//! or asks the guest to give present ones back, announced through the GED;
//! the guest's eject (`devices/cpu_hotplug.rs`) ends with the vCPU's
//! thread parked and the event `vcpu-removed`.

use std::thread::JoinHandle;

use serde_json::json;

use super::{Vm, kick_all, lock};
use crate::vmm::control::{self, ControlServer};
use crate::vmm::devices::ged;

impl Vm {
    /// Makes the guest's vCPU count `count`: vCPUs plugged in can be
    /// started by the guest at once; those asked to go stay until the
    /// guest ejects them.
    pub(super) fn set_vcpus(&self, count: u32) -> Result<(), String> {
        let plugged = lock(&self.cpu_hotplug).set_count(count as usize)?;
        for &i in &plugged {
            self.ctl.set_present(i, true);
        }
        tracing::info!("vCPU count set to {count}, plugged in: {plugged:?}");
        lock(&self.ged)
            .notify(ged::EVENT_CPU_HOTPLUG)
            .map_err(|e| format!("cannot raise the GED interrupt: {e}"))
    }

    /// The vCPUs the guest ejected: their threads leave KVM_RUN and park.
    pub(super) fn finish_cpu_ejects(
        &self,
        threads: &[JoinHandle<()>],
        control: Option<&mut ControlServer>,
    ) {
        let ejected = lock(&self.cpu_hotplug).take_ejected();
        for &i in &ejected {
            self.ctl.set_present(i, false);
            if let Some(t) = threads.get(i) {
                kick_all(std::slice::from_ref(t));
            }
            tracing::info!("vCPU {i} ejected by the guest");
        }
        if let Some(c) = control {
            for i in ejected {
                c.broadcast(&control::event("vcpu-removed", Some(("index", json!(i)))));
            }
        }
    }
}
