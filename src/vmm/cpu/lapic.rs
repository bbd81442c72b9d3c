//! Local APIC LINT pins: LINT0 delivers ExtINT (the 8259), LINT1 NMI.

use kvm_bindings::kvm_lapic_state;

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const DELIVERY_MODE_EXTINT: u32 = 0x7;
const DELIVERY_MODE_NMI: u32 = 0x4;

fn get(l: &kvm_lapic_state, off: usize) -> u32 {
    let b = &l.regs[off..off + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set(l: &mut kvm_lapic_state, off: usize, v: u32) {
    for (i, b) in v.to_le_bytes().iter().enumerate() {
        l.regs[off + i] = *b as _;
    }
}

fn with_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Programs LINT0 as ExtINT and LINT1 as NMI.
pub fn set_lint(l: &mut kvm_lapic_state) {
    let lvt0 = get(l, APIC_LVT0);
    set(l, APIC_LVT0, with_mode(lvt0, DELIVERY_MODE_EXTINT));
    let lvt1 = get(l, APIC_LVT1);
    set(l, APIC_LVT1, with_mode(lvt1, DELIVERY_MODE_NMI));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_modes() {
        let mut l = kvm_lapic_state::default();
        set(&mut l, APIC_LVT0, 0x0001_0700);
        set_lint(&mut l);
        assert_eq!(get(&l, APIC_LVT0), 0x0001_0700);
        assert_eq!(get(&l, APIC_LVT1), 0x400);
    }
}
