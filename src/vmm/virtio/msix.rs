//! MSI-X for virtio-pci functions: the vector table and PBA in BAR 0, and
//! the VM-wide GSI routing table (KVM_SET_GSI_ROUTING) that points each
//! vector's GSI at the address/data the guest programmed. Each vector's
//! interrupt is an irqfd on its GSI.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KvmIrqRouting, kvm_irq_routing_entry,
};
use kvm_ioctls::VmFd;

use super::Interrupt;

/// First GSI handed to MSI-X vectors (0..=23 are the IOAPIC's pins).
const FIRST_MSI_GSI: u32 = 24;
/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
const CTRL_MASKED: u32 = 1;

/// The VM's GSI routing: KVM's default irqchip routes plus one MSI route
/// per programmed vector.
pub struct GsiRouter {
    vm: Arc<VmFd>,
    next: AtomicU32,
    msi: Mutex<BTreeMap<u32, (u64, u32)>>,
    /// GSIs of unplugged functions, handed out again first.
    free: Mutex<Vec<u32>>,
}

fn irqchip(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    e
}

impl GsiRouter {
    pub fn new(vm: Arc<VmFd>) -> Self {
        GsiRouter {
            vm,
            next: AtomicU32::new(FIRST_MSI_GSI),
            msi: Mutex::new(BTreeMap::new()),
            free: Mutex::new(Vec::new()),
        }
    }

    /// A fresh GSI for one vector.
    pub fn alloc(&self) -> u32 {
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop();
        reused.unwrap_or_else(|| self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// Gives back the GSIs of an unplugged function (their irqfds already
    /// unregistered): their routes go, and later functions reuse them.
    pub fn release(&self, gsis: &[u32]) {
        let mut map = self.msi.lock().unwrap_or_else(|p| p.into_inner());
        let had_route = gsis.iter().filter(|g| map.remove(g).is_some()).count() > 0;
        if had_route {
            self.commit(&map);
        }
        drop(map);
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(gsis);
    }

    /// Points `gsi` at an MSI message, and commits the whole table.
    pub fn set_msi(&self, gsi: u32, addr: u64, data: u32) {
        let mut map = self.msi.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&gsi) == Some(&(addr, data)) {
            return;
        }
        map.insert(gsi, (addr, data));
        self.commit(&map);
    }

    /// Sets KVM's routing table to the irqchip routes and `map`'s.
    fn commit(&self, map: &BTreeMap<u32, (u64, u32)>) {
        // The same as KVM's built-in table: GSI 0-15 on the 8259s and
        // the IOAPIC, 16-23 on the IOAPIC only.
        let mut entries: Vec<kvm_irq_routing_entry> = Vec::new();
        for i in 0..24u32 {
            entries.push(irqchip(i, KVM_IRQCHIP_IOAPIC, i));
            if i < 16 {
                let chip = if i < 8 {
                    KVM_IRQCHIP_PIC_MASTER
                } else {
                    KVM_IRQCHIP_PIC_SLAVE
                };
                entries.push(irqchip(i, chip, i % 8));
            }
        }
        for (&g, &(a, d)) in map.iter() {
            let mut e = kvm_irq_routing_entry {
                gsi: g,
                type_: KVM_IRQ_ROUTING_MSI,
                ..Default::default()
            };
            e.u.msi.address_lo = a as u32;
            e.u.msi.address_hi = (a >> 32) as u32;
            e.u.msi.data = d;
            entries.push(e);
        }
        match KvmIrqRouting::from_entries(&entries) {
            Ok(r) => {
                if let Err(e) = self.vm.set_gsi_routing(&r) {
                    tracing::warn!("KVM_SET_GSI_ROUTING: {e}");
                }
            }
            Err(e) => tracing::warn!("GSI routing table: {e:?}"),
        }
    }
}

/// One function's MSI-X table.
pub struct MsixTable {
    entries: Vec<[u32; 4]>,
    gsis: Vec<u32>,
    router: Arc<GsiRouter>,
}

impl MsixTable {
    pub fn new(router: Arc<GsiRouter>, gsis: Vec<u32>) -> Self {
        MsixTable {
            entries: vec![[0, 0, 0, CTRL_MASKED]; gsis.len()],
            gsis,
            router,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The GSI of each vector.
    pub fn gsis(&self) -> &[u32] {
        &self.gsis
    }

    /// Gives the vectors' GSIs back to the router (hot unplug).
    pub fn release(&self) {
        self.router.release(&self.gsis);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The table's entries (address low, high, data, control).
    pub fn entries(&self) -> &[[u32; 4]] {
        &self.entries
    }

    /// Loads saved entries: routes for the programmed ones, and each
    /// vector's mask.
    pub fn restore(&mut self, entries: &[[u32; 4]], irq: &Interrupt) -> Result<(), String> {
        if entries.len() != self.entries.len() {
            return Err(format!(
                "{} MSI-X entries saved, the table has {}",
                entries.len(),
                self.entries.len()
            ));
        }
        self.entries = entries.to_vec();
        for (i, (e, &gsi)) in self.entries.iter().zip(&self.gsis).enumerate() {
            let addr = u64::from(e[0]) | u64::from(e[1]) << 32;
            if addr != 0 {
                self.router.set_msi(gsi, addr, e[2]);
            }
            irq.set_vector_mask(i, e[3] & CTRL_MASKED != 0);
        }
        Ok(())
    }

    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let mut img = Vec::with_capacity(self.entries.len() * 16);
        for e in &self.entries {
            for w in e {
                img.extend_from_slice(&w.to_le_bytes());
            }
        }
        super::read_config_bytes(&img, offset, data);
    }

    /// Writes dwords (or a qword) of the table; updates routes and masks.
    pub fn write(&mut self, offset: u64, data: &[u8], irq: &Interrupt) {
        if data.len() == 8 {
            self.write(offset, &data[..4], irq);
            self.write(offset + 4, &data[4..], irq);
            return;
        }
        if data.len() != 4 || !offset.is_multiple_of(4) {
            return;
        }
        let v = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        let i = (offset / ENTRY_SIZE) as usize;
        let w = ((offset % ENTRY_SIZE) / 4) as usize;
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        e[w] = v;
        let e = *e;
        if w == 3 {
            irq.set_vector_mask(i, e[3] & CTRL_MASKED != 0);
        } else if let Some(&gsi) = self.gsis.get(i) {
            let addr = u64::from(e[0]) | u64::from(e[1]) << 32;
            if addr != 0 {
                self.router.set_msi(gsi, addr, e[2]);
            }
        }
    }
}

/// Loads a function's saved interrupt state: the ISR, pending and mask
/// bits, its table's entries (routes set up again) and the message
/// control word.
pub fn restore_function(
    irq: &Interrupt,
    table: Option<&mut MsixTable>,
    state: &super::interrupt::InterruptState,
    entries: &[[u32; 4]],
    control: u16,
) -> Result<(), String> {
    irq.restore(state)?;
    match table {
        Some(t) => t.restore(entries, irq)?,
        None if !entries.is_empty() => {
            return Err("saved MSI-X table for a function without one".into());
        }
        None => {}
    }
    irq.set_msix_control_word(control);
    Ok(())
}
