//! One vCPU's architectural state as KVM holds it: read on the vCPU's own
//! thread while it is parked, written before its thread first runs.

use kvm_bindings::{
    Msrs, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs, kvm_sregs,
    kvm_vcpu_events, kvm_xcrs, kvm_xsave,
};
use kvm_ioctls::VcpuFd;
use serde::{Deserialize, Serialize};

/// MSR numbers whose order matters on restore.
const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;

/// Everything KVM keeps of one vCPU that a guest can observe.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VcpuState {
    pub mp_state: kvm_mp_state,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub xsave: kvm_xsave,
    pub xcrs: kvm_xcrs,
    pub debugregs: kvm_debugregs,
    pub lapic: kvm_lapic_state,
    pub msrs: Vec<kvm_msr_entry>,
    pub events: kvm_vcpu_events,
}

fn kvm_err(what: &'static str) -> impl Fn(kvm_ioctls::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Reads the MSRs of `list` that KVM lets this vCPU read. KVM stops at the
/// first MSR it refuses; that one is left out and the rest read again.
fn read_msrs(fd: &VcpuFd, list: &[u32]) -> Result<Vec<kvm_msr_entry>, String> {
    let mut want: Vec<u32> = list.to_vec();
    let mut out = Vec::with_capacity(want.len());
    while !want.is_empty() {
        let entries: Vec<kvm_msr_entry> = want
            .iter()
            .map(|&index| kvm_msr_entry {
                index,
                ..Default::default()
            })
            .collect();
        let mut msrs = Msrs::from_entries(&entries).map_err(|e| format!("MSR list: {e:?}"))?;
        let n = fd.get_msrs(&mut msrs).map_err(kvm_err("KVM_GET_MSRS"))?;
        out.extend_from_slice(&msrs.as_slice()[..n]);
        if n < want.len() {
            tracing::debug!("MSR {:#x} not readable, not saved", want[n]);
            want.drain(..=n);
        } else {
            break;
        }
    }
    Ok(out)
}

impl VcpuState {
    /// Reads the state of a vCPU that is not running. Pending port or MMIO
    /// I/O must have been completed first (a KVM_RUN with immediate_exit).
    pub fn capture(fd: &VcpuFd, msr_list: &[u32]) -> Result<VcpuState, String> {
        Ok(VcpuState {
            mp_state: fd.get_mp_state().map_err(kvm_err("KVM_GET_MP_STATE"))?,
            regs: fd.get_regs().map_err(kvm_err("KVM_GET_REGS"))?,
            sregs: fd.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?,
            xsave: fd.get_xsave().map_err(kvm_err("KVM_GET_XSAVE"))?,
            xcrs: fd.get_xcrs().map_err(kvm_err("KVM_GET_XCRS"))?,
            debugregs: fd.get_debug_regs().map_err(kvm_err("KVM_GET_DEBUGREGS"))?,
            lapic: fd.get_lapic().map_err(kvm_err("KVM_GET_LAPIC"))?,
            msrs: read_msrs(fd, msr_list)?,
            events: fd
                .get_vcpu_events()
                .map_err(kvm_err("KVM_GET_VCPU_EVENTS"))?,
        })
    }

    /// Loads the state into a vCPU that has not run yet. The order is
    /// KVM's: the LAPIC before MSRs (the TSC deadline needs the timer
    /// mode), the TSC before the deadline that counts in it, pending
    /// events last.
    pub fn apply(&self, fd: &VcpuFd) -> Result<(), String> {
        fd.set_mp_state(self.mp_state)
            .map_err(kvm_err("KVM_SET_MP_STATE"))?;
        fd.set_regs(&self.regs).map_err(kvm_err("KVM_SET_REGS"))?;
        fd.set_sregs(&self.sregs)
            .map_err(kvm_err("KVM_SET_SREGS"))?;
        // SAFETY: the structure was read from KVM_GET_XSAVE of a vCPU of
        // the same host kind and has the size KVM_SET_XSAVE expects.
        unsafe { fd.set_xsave(&self.xsave) }.map_err(kvm_err("KVM_SET_XSAVE"))?;
        fd.set_xcrs(&self.xcrs).map_err(kvm_err("KVM_SET_XCRS"))?;
        fd.set_debug_regs(&self.debugregs)
            .map_err(kvm_err("KVM_SET_DEBUGREGS"))?;
        fd.set_lapic(&self.lapic)
            .map_err(kvm_err("KVM_SET_LAPIC"))?;
        let mut ordered = self.msrs.clone();
        ordered.sort_by_key(|e| match e.index {
            MSR_IA32_TSC => 0,
            MSR_IA32_TSC_DEADLINE => 2,
            _ => 1,
        });
        let msrs = Msrs::from_entries(&ordered).map_err(|e| format!("MSR list: {e:?}"))?;
        let n = fd.set_msrs(&msrs).map_err(kvm_err("KVM_SET_MSRS"))?;
        if n != ordered.len() {
            return Err(format!(
                "KVM_SET_MSRS: MSR {:#x} refused ({n} of {} written)",
                ordered[n].index,
                ordered.len()
            ));
        }
        fd.set_vcpu_events(&self.events)
            .map_err(kvm_err("KVM_SET_VCPU_EVENTS"))?;
        Ok(())
    }
}
