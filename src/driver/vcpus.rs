//! `virDomainSetVcpusFlags`: the vCPU count of the persistent definition,
//! and of a running guest (ACPI CPU hotplug up to its maximum).

use std::sync::Arc;

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::xml::{Domain, FormatFlags, check_supported, parse_domain};

use super::domain::DomainObj;
use super::vmm::Vmm;
use super::{Driver, Inner};

/// `virDomainModificationImpact` and `virDomainVcpuFlags`.
pub const AFFECT_LIVE: u32 = 1;
pub const AFFECT_CONFIG: u32 = 2;
pub const VCPU_MAXIMUM: u32 = 4;
pub const VCPU_GUEST: u32 = 8;
pub const VCPU_HOTPLUGGABLE: u32 = 16;
const KNOWN: u32 = AFFECT_LIVE | AFFECT_CONFIG | VCPU_MAXIMUM | VCPU_GUEST | VCPU_HOTPLUGGABLE;

impl Driver {
    /// `virDomainSetVcpusFlags` (and `virDomainSetVcpus`, which is this
    /// with `AFFECT_LIVE`). The persistent definition takes any count up to
    /// its maximum, or a new maximum; a running guest is given vCPUs up to
    /// its maximum at once (ACPI CPU hotplug) or asked to give them back,
    /// each awaited as libvirt awaits QEMU's.
    pub async fn set_vcpus(&self, obj: &Arc<DomainObj>, nvcpus: u32, flags: u32) -> Result<()> {
        check_call(nvcpus, flags)?;
        let _job = obj.begin_job().await?;
        let (name, config_def, live) = {
            let d = obj.data();
            if d.removed {
                return Err(Error::no_domain_uuid(&obj.uuid.to_string()));
            }
            let (live, config) = match flags & (AFFECT_LIVE | AFFECT_CONFIG) {
                0 => (d.is_active(), !d.is_active()),
                f => (f & AFFECT_LIVE != 0, f & AFFECT_CONFIG != 0),
            };
            if (live || flags & VCPU_GUEST != 0) && !d.is_active() {
                return Err(Error::operation_invalid("domain is not running"));
            }
            if flags & VCPU_GUEST != 0 {
                return Err(Error::new(
                    ErrorCode::ArgumentUnsupported,
                    ErrorDomain::Qemu,
                    "QEMU guest agent is not configured",
                ));
            }
            let persistent = match config {
                false => None,
                true => Some(d.persistent.as_ref().ok_or_else(|| {
                    Error::operation_invalid("transient domains do not have any persistent config")
                })?),
            };
            let live = d.live.as_ref().filter(|_| live);
            if flags & VCPU_MAXIMUM != 0 {
                if live.is_some() {
                    return Err(Error::new(
                        ErrorCode::OperationUnsupported,
                        ErrorDomain::Qemu,
                        "maximum vcpu count of a live domain can't be modified",
                    ));
                }
            } else {
                if let Some(l) = live {
                    check_below_max(nvcpus, &l.def, "live")?;
                }
                if let Some(def) = persistent {
                    check_below_max(nvcpus, def, "persistent")?;
                }
            }
            let config_def = match persistent {
                None => None,
                Some(def) if flags & VCPU_MAXIMUM != 0 => Some(with_maximum(def, nvcpus)?),
                Some(def) => Some(with_current(def, nvcpus)),
            };
            let live = live.map(|l| (l.vmm.clone(), l.def.vcpu.online()));
            (d.name.clone(), config_def, live)
        };
        if let Some((vmm, from)) = live {
            self.set_live_vcpus(obj, &vmm, from, nvcpus).await?;
        }
        if let Some(def) = config_def {
            self.inner.store.save(&def)?;
            obj.data().persistent = Some(def);
            tracing::info!(
                domain = name,
                nvcpus,
                flags,
                "vCPUs of the persistent definition changed"
            );
        }
        Ok(())
    }

    /// The running guest's vCPUs from `from` to `to`: more are plugged in
    /// at once; fewer are asked of the guest, each it ejects leaving the
    /// live definition (`vcpu_removed`), each awaited as long as libvirt
    /// awaits QEMU's `DEVICE_DELETED` for a vCPU.
    async fn set_live_vcpus(
        &self,
        obj: &Arc<DomainObj>,
        vmm: &Arc<Vmm>,
        from: u32,
        to: u32,
    ) -> Result<()> {
        if to == from {
            return Ok(());
        }
        let mut removed = vmm.vcpus_removed.subscribe();
        vmm.set_vcpus(to).await?;
        if to > from {
            set_online(&self.inner, obj, vmm, to);
            tracing::info!(domain = obj.name(), from, to, "vCPUs plugged in");
            return Ok(());
        }
        loop {
            let now = obj.data().live.as_ref().map(|l| l.def.vcpu.online());
            match now {
                None => return Err(Error::operation_invalid("domain is not running")),
                Some(n) if n <= to => return Ok(()),
                Some(_) => {}
            }
            // Any removal (or a missed one) is a reason to count again.
            let next = super::vmm::next_announcement(&mut removed, |_| Some(()));
            if tokio::time::timeout(super::hotplug::RELEASE_WAIT, next)
                .await
                .is_err()
            {
                return Err(Error::new(
                    ErrorCode::OperationTimeout,
                    ErrorDomain::Qemu,
                    "vcpu unplug request timed out. Unplug result must be manually inspected in the domain",
                ));
            }
        }
    }
}

/// The live definition and the configuration a reboot's VMM starts from
/// with `n` vCPUs online (a guest keeps its plugged-in vCPUs across a
/// reboot, as QEMU's does).
fn set_online(inner: &Inner, obj: &Arc<DomainObj>, vmm: &Vmm, n: u32) {
    {
        let mut d = obj.data();
        let Some(live) = d.live.as_mut() else {
            return;
        };
        live.def.vcpu.set_online(n);
        vmm.config_mut().cpus.count = n;
    }
    super::supervise::write_status(inner, obj);
}

/// The guest ejected vCPU `index` (the VMM's `vcpu-removed`): one fewer
/// online in the live definition.
pub(super) fn vcpu_removed(
    inner: &Inner,
    obj: &Arc<DomainObj>,
    vmm: &Vmm,
    generation: u64,
    index: u32,
) {
    let now = {
        let d = obj.data();
        match d.live.as_ref().filter(|l| l.generation == generation) {
            Some(l) => l.def.vcpu.online(),
            None => return,
        }
    };
    set_online(inner, obj, vmm, now.saturating_sub(1).max(1));
    tracing::info!(domain = obj.name(), index, "vCPU ejected by the guest");
    let _ = vmm.vcpus_removed.send(index);
}

/// The checks libvirt's public API makes before any driver sees the call.
fn check_call(nvcpus: u32, flags: u32) -> Result<()> {
    if flags & !KNOWN != 0 {
        return Err(Error::invalid_arg(format!(
            "unsupported flags (0x{:x}) in function qemuDomainSetVcpusFlags",
            flags & !KNOWN
        )));
    }
    super::exclusive_flags(
        flags,
        (VCPU_MAXIMUM, "VIR_DOMAIN_VCPU_MAXIMUM"),
        (VCPU_GUEST, "VIR_DOMAIN_VCPU_GUEST"),
    )?;
    if nvcpus == 0 {
        return Err(Error::invalid_arg(
            "nvcpus in virDomainSetVcpusFlags must not be zero",
        ));
    }
    if flags & VCPU_HOTPLUGGABLE != 0 {
        // The definition would need per-vCPU `<vcpus>` entries, which the
        // domain model does not carry.
        return Err(Error::new(
            ErrorCode::ArgumentUnsupported,
            ErrorDomain::Qemu,
            "hotpluggable vCPUs are not supported",
        ));
    }
    Ok(())
}

fn check_below_max(nvcpus: u32, def: &Domain, which: &str) -> Result<()> {
    if nvcpus > def.vcpu.max {
        return Err(Error::invalid_arg(format!(
            "requested vcpus is greater than max allowable vcpus for the {which} domain: {nvcpus} > {}",
            def.vcpu.max
        )));
    }
    Ok(())
}

/// The definition with `nvcpus` online at boot (at most its maximum).
fn with_current(def: &Domain, nvcpus: u32) -> Domain {
    let mut def = def.clone();
    def.vcpu.set_online(nvcpus);
    def
}

/// The definition with a new maximum; the boot count shrinks with it.
fn with_maximum(def: &Domain, nvcpus: u32) -> Result<Domain> {
    if let Some(topology) = def.cpu.as_ref().and_then(|c| c.topology)
        && topology.vcpus() != Some(nvcpus)
    {
        return Err(Error::invalid_arg(
            "CPU topology doesn't match the desired vcpu count",
        ));
    }
    let mut new = def.clone();
    let online = def.vcpu.online().min(nvcpus);
    new.vcpu.max = nvcpus;
    new.vcpu.set_online(online);
    // What is saved must load again when the daemon starts: the new
    // definition goes through the same parser and checks as a define.
    let saved = new.to_xml(FormatFlags {
        secure: true,
        inactive: true,
        ..FormatFlags::default()
    });
    let new = parse_domain(&saved)?;
    check_supported(&new)?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(vcpu: &str, cpu: &str) -> Domain {
        parse_domain(&format!(
            "<domain type='kvm'><name>v</name><memory>65536</memory>{vcpu}<os><type>hvm</type></os>{cpu}</domain>"
        ))
        .unwrap()
    }

    #[test]
    fn current_count_drops_the_attribute_at_the_maximum() {
        let d = def("<vcpu current='1'>4</vcpu>", "");
        assert_eq!(with_current(&d, 2).vcpu.current, Some(2));
        assert_eq!(with_current(&d, 4).vcpu.current, None);
    }

    #[test]
    fn lower_maximum_takes_the_boot_count_down() {
        let d = def("<vcpu current='3'>4</vcpu>", "");
        let n = with_maximum(&d, 2).unwrap();
        assert_eq!((n.vcpu.max, n.vcpu.current), (2, None));
        let n = with_maximum(&d, 8).unwrap();
        assert_eq!((n.vcpu.max, n.vcpu.current), (8, Some(3)));
    }

    #[test]
    fn maximum_must_fit_topology_and_machine() {
        let d = def(
            "<vcpu>4</vcpu>",
            "<cpu><topology sockets='1' cores='4' threads='1'/></cpu>",
        );
        let e = with_maximum(&d, 2).unwrap_err();
        assert_eq!(
            e.message,
            "invalid argument: CPU topology doesn't match the desired vcpu count"
        );
        assert!(with_maximum(&d, 4).is_ok());
        let e = with_maximum(&def("<vcpu>1</vcpu>", ""), 1000).unwrap_err();
        assert_eq!(e.code, ErrorCode::ConfigUnsupported);
    }

    #[test]
    fn call_checks_come_first() {
        assert!(
            check_call(0, 0)
                .unwrap_err()
                .message
                .contains("must not be zero")
        );
        assert!(
            check_call(1, VCPU_MAXIMUM | VCPU_GUEST)
                .unwrap_err()
                .message
                .contains("mutually exclusive")
        );
        assert_eq!(
            check_call(1, 64).unwrap_err().message,
            "invalid argument: unsupported flags (0x40) in function qemuDomainSetVcpusFlags"
        );
        assert!(check_call(2, AFFECT_CONFIG | VCPU_MAXIMUM).is_ok());
    }

    #[test]
    fn live_count_stays_within_the_maximum() {
        let d = def("<vcpu current='2'>4</vcpu>", "");
        assert_eq!(d.vcpu.online(), 2);
        assert!(check_below_max(4, &d, "live").is_ok());
        assert!(
            check_below_max(5, &d, "live")
                .unwrap_err()
                .message
                .ends_with("for the live domain: 5 > 4")
        );
    }
}
