//! `oxvirt-vmm --probe-host`: facts about the host that only KVM knows,
//! printed as one JSON line for the daemon, which never opens `/dev/kvm`
//! itself. The daemon puts them into its capabilities XML as libvirt does
//! (`<counter name='tsc' frequency='...' scaling='...'/>`).

use kvm_ioctls::{Cap, Kvm};
use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// What `--probe-host` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostProbe {
    /// The TSC frequency KVM gives a new vCPU, in kHz.
    pub tsc_khz: u32,
    /// Whether KVM can scale the TSC to another frequency per vCPU.
    pub tsc_scaling: bool,
}

/// Creates a throw-away VM with one vCPU and reads its TSC frequency.
pub fn probe_host() -> Result<HostProbe> {
    let kvm = Kvm::new().map_err(Error::kvm("opening /dev/kvm"))?;
    let vm = kvm.create_vm().map_err(Error::kvm("KVM_CREATE_VM"))?;
    let vcpu = vm.create_vcpu(0).map_err(Error::kvm("KVM_CREATE_VCPU"))?;
    let tsc_khz = vcpu.get_tsc_khz().map_err(Error::kvm("KVM_GET_TSC_KHZ"))?;
    Ok(HostProbe {
        tsc_khz,
        tsc_scaling: kvm.check_extension(Cap::TscControl),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_round_trips_as_json() {
        let p = HostProbe {
            tsc_khz: 2_445_428,
            tsc_scaling: false,
        };
        let line = serde_json::to_string(&p).unwrap();
        assert_eq!(line, r#"{"tsc_khz":2445428,"tsc_scaling":false}"#);
        assert_eq!(serde_json::from_str::<HostProbe>(&line).unwrap(), p);
    }
}
