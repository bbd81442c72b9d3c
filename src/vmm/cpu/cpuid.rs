//! CPUID presented to the guest: what KVM supports, filtered, with the
//! configured topology and the hypervisor leaves.

use kvm_bindings::{CpuId, kvm_cpuid_entry2};

use crate::vmm::config::Topology;

// Leaf 1.
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
const LEAF1_EDX_HTT: u32 = 1 << 28;
const LEAF1_ECX_VMX: u32 = 1 << 5;
// Leaf 0x8000_0001.
const EXT_ECX_SVM: u32 = 1 << 2;
// Leaf 7 subleaf 0: IA32_ARCH_CAPABILITIES is not offered (its MSR 0x10a
// is not usable on every host this runs on).
const LEAF7_EDX_ARCH_CAPABILITIES: u32 = 1 << 29;
// Leaf 0xB / 0x1F level types.
const LEVEL_TYPE_SMT: u32 = 1;
const LEVEL_TYPE_CORE: u32 = 2;
/// KVM's signature in leaf 0x4000_0000.
const KVM_SIGNATURE: &[u8; 12] = b"KVMKVMKVM\0\0\0";

/// Bits needed to number `n` items (ceil(log2(n))).
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Widths of the thread and core fields of an APIC ID.
fn field_widths(t: &Topology) -> (u32, u32) {
    (bits_for(t.threads), bits_for(t.cores))
}

/// APIC ID of vCPU `index` (packed socket/core/thread fields).
pub fn apic_id(t: &Topology, index: u32) -> u32 {
    let (tb, cb) = field_widths(t);
    let thread = index % t.threads;
    let core = (index / t.threads) % t.cores;
    let socket = index / (t.threads * t.cores);
    (socket << (tb + cb)) | (core << tb) | thread
}

/// Whether this host's KVM must emulate guest ring-0 code in software:
/// its CPU offers neither VMX nor SVM (a paravirtualised KVM such as
/// PVM). There the guest also reads the host's CPUID directly: the table
/// given with KVM_SET_CPUID2 does not hide features from it, so a guest
/// kernel is told on its command line what not to use (see the VMM's
/// README).
pub fn host_emulates_ring0() -> bool {
    let basic = std::arch::x86_64::__cpuid(1);
    let ext_max = std::arch::x86_64::__cpuid(0x8000_0000).eax;
    let svm =
        ext_max >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & EXT_ECX_SVM != 0;
    basic.ecx & LEAF1_ECX_VMX == 0 && !svm
}

/// Builds the CPUID of vCPU `index` from KVM's supported list.
pub fn for_vcpu(
    supported: &CpuId,
    topo: &Topology,
    index: u32,
    tsc_deadline: bool,
) -> std::result::Result<CpuId, String> {
    let id = apic_id(topo, index);
    let (tb, cb) = field_widths(topo);
    let per_socket = topo.cores * topo.threads;
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .copied()
        .filter(|e| e.function != 0x1f && e.function != 0xb)
        .collect();
    for e in entries.iter_mut() {
        match e.function {
            1 => {
                e.ebx = (e.ebx & 0x0000_ffff) | (id << 24) | ((per_socket.min(255)) << 16);
                e.ecx |= LEAF1_ECX_HYPERVISOR;
                if tsc_deadline {
                    e.ecx |= LEAF1_ECX_TSC_DEADLINE;
                } else {
                    e.ecx &= !LEAF1_ECX_TSC_DEADLINE;
                }
                if per_socket > 1 {
                    e.edx |= LEAF1_EDX_HTT;
                } else {
                    e.edx &= !LEAF1_EDX_HTT;
                }
            }
            4 => {
                // Cores per package - 1 in [31:26]; threads sharing this
                // cache - 1 in [25:14]: L1/L2 per core, L3 per package.
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { per_socket } else { topo.threads };
                e.eax = (e.eax & 0x3fff)
                    | ((sharing.saturating_sub(1) & 0xfff) << 14)
                    | ((topo.cores.saturating_sub(1) & 0x3f) << 26);
            }
            7 if e.index == 0 => {
                e.edx &= !LEAF7_EDX_ARCH_CAPABILITIES;
            }
            0x4000_0000 => {
                e.ebx = u32::from_le_bytes([
                    KVM_SIGNATURE[0],
                    KVM_SIGNATURE[1],
                    KVM_SIGNATURE[2],
                    KVM_SIGNATURE[3],
                ]);
                e.ecx = u32::from_le_bytes([
                    KVM_SIGNATURE[4],
                    KVM_SIGNATURE[5],
                    KVM_SIGNATURE[6],
                    KVM_SIGNATURE[7],
                ]);
                e.edx = u32::from_le_bytes([
                    KVM_SIGNATURE[8],
                    KVM_SIGNATURE[9],
                    KVM_SIGNATURE[10],
                    KVM_SIGNATURE[11],
                ]);
            }
            _ => {}
        }
    }
    // Extended topology (0xB and 0x1F): SMT level, then core level.
    for leaf in [0xbu32, 0x1f] {
        let levels = [
            (1u32 << tb, tb, LEVEL_TYPE_SMT),
            (per_socket, tb + cb, LEVEL_TYPE_CORE),
        ];
        for (sub, (count, shift, kind)) in levels.iter().enumerate() {
            entries.push(kvm_cpuid_entry2 {
                function: leaf,
                index: sub as u32,
                flags: kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                eax: *shift,
                ebx: if *kind == LEVEL_TYPE_SMT {
                    topo.threads
                } else {
                    *count
                },
                ecx: (kind << 8) | sub as u32,
                edx: id,
                ..Default::default()
            });
        }
        entries.push(kvm_cpuid_entry2 {
            function: leaf,
            index: 2,
            flags: kvm_bindings::KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
            ecx: 2,
            edx: id,
            ..Default::default()
        });
    }
    // Make sure leaf 0's maximum covers 0xB (0x1F only if already covered).
    let max_basic = entries
        .iter()
        .find(|e| e.function == 0)
        .map(|e| e.eax)
        .unwrap_or(0);
    if max_basic < 0x1f {
        entries.retain(|e| e.function != 0x1f);
    }
    if max_basic < 0xb {
        for e in entries.iter_mut().filter(|e| e.function == 0) {
            e.eax = 0xb;
        }
    }
    CpuId::from_entries(&entries).map_err(|e| format!("CPUID table: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(c: &CpuId, f: u32, i: u32) -> kvm_cpuid_entry2 {
        *c.as_slice()
            .iter()
            .find(|e| e.function == f && e.index == i)
            .unwrap()
    }

    fn supported() -> CpuId {
        CpuId::from_entries(&[
            kvm_cpuid_entry2 {
                function: 0,
                eax: 0xd,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 1,
                ebx: 0x0000_0800,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 7,
                edx: u32::MAX,
                ..Default::default()
            },
            kvm_cpuid_entry2 {
                function: 0x4000_0000,
                eax: 0x4000_0001,
                ..Default::default()
            },
        ])
        .unwrap()
    }

    #[test]
    fn apic_ids_follow_topology() {
        let t = Topology {
            sockets: 2,
            cores: 3,
            threads: 2,
        };
        assert_eq!(apic_id(&t, 0), 0);
        assert_eq!(apic_id(&t, 1), 1);
        assert_eq!(apic_id(&t, 2), 2);
        assert_eq!(apic_id(&t, 6), 8);
    }

    #[test]
    fn filters_and_sets_topology() {
        let t = Topology {
            sockets: 1,
            cores: 4,
            threads: 1,
        };
        let c = for_vcpu(&supported(), &t, 3, true).unwrap();
        let l1 = find(&c, 1, 0);
        assert_eq!(l1.ebx >> 24, 3);
        assert_eq!((l1.ebx >> 16) & 0xff, 4);
        assert_ne!(l1.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(find(&c, 7, 0).edx & LEAF7_EDX_ARCH_CAPABILITIES, 0);
        let core = find(&c, 0xb, 1);
        assert_eq!(core.ebx, 4);
        assert_eq!(core.eax, 2);
        assert_eq!(core.edx, 3);
        assert_eq!(find(&c, 0x4000_0000, 0).ebx, u32::from_le_bytes(*b"KVMK"));
        assert!(c.as_slice().iter().all(|e| e.function != 0x1f));
    }
}
