/* Interrupts of virtio-pci devices.
 *
 * MSI-X: the driver programs the function's MSI-X table (in the BAR named by the
 * capability's BIR) with one message per queue plus one for configuration changes:
 * address 0xFEE00000 | BSP APIC ID << 12, data = an IDT vector (fixed, edge); entry 0 is
 * the configuration vector, entry 1 + q belongs to queue q. It enables MSI-X in the
 * capability's message control (function mask held while the table is written), then
 * writes the vectors into the common configuration (checked by reading back).
 *
 * INTx: the function's interrupt line register (0x3C) names the GSI (or oxtest.intxgsi);
 * the IOAPIC pin is routed level-triggered, active high, to the BSP. The handler reads
 * the ISR status byte (which clears it) unless d->intx_hold asks it to leave one
 * delivery unread: a level-triggered line then stays asserted and the interrupt must
 * come again after the EOI. The handler logs what each delivery read.
 *
 * Every delivery is counted in irq_count[vector]. */
#include "testos.h"

#define VEC_FIRST 0x40
#define VEC_LAST  0xBF

volatile u32 irq_count[256];
static u8 next_vec = VEC_FIRST;
static struct vdev *intx_dev[256];

static void msix_irq(u8 v)
{
	irq_count[v]++;
}

static void intx_irq(u8 v)
{
	irq_count[v]++;
	struct vdev *d = intx_dev[v];
	if (!d)
		return;
	u8 isr = 0xFF;                  /* not read */
	if (d->intx_hold)
		d->intx_hold--;
	else
		d->isr_seen |= isr = mmio_r8(d->isr);
	d->isr_log[d->isr_n++ % ISR_LOG] = isr;
}

int irq_vectors(int n)
{
	if (next_vec + n - 1 > VEC_LAST)
		return -1;
	int v = next_vec;
	next_vec = (u8)(next_vec + n);
	return v;
}

static bool msix_setup(struct vdev *d, int nqueues, struct why *w)
{
	struct pci_dev *p = d->pci;
	if (!p->msix) {
		why_add(w, "no MSI-X capability");
		return false;
	}
	u16 ctl = pci_read16(p, (u16)(p->msix + 2));
	u32 entries = (ctl & 0x7FFu) + 1;
	u32 nvec = (u32)nqueues + 1;
	if (entries < nvec) {
		why_add(w, "MSI-X table has %u entries, need %u", entries, nvec);
		return false;
	}
	u32 tab = pci_read32(p, (u16)(p->msix + 4));
	u8 bir = tab & 7;
	if (bir > 5 || !p->bar[bir] || p->bar_io[bir] || p->bar[bir] >= 0x100000000ull) {
		why_add(w, "MSI-X table BAR %u not mapped", bir);
		return false;
	}
	u64 t = p->bar[bir] + (tab & ~7u);
	int vec = irq_vectors((int)nvec);
	if (vec < 0) {
		why_add(w, "out of IDT vectors");
		return false;
	}
	lapic_init();
	u32 dest = lapic_id();
	/* enable with the function masked while the table is written */
	pci_write16(p, (u16)(p->msix + 2), (u16)(ctl | 0xC000));
	for (u32 i = 0; i < nvec; i++) {
		u64 e = t + 16 * i;
		mmio_w32(e, 0xFEE00000u | (dest & 0xFF) << 12);
		mmio_w32(e + 4, 0);
		mmio_w32(e + 8, (u32)vec + i);
		mmio_w32(e + 12, 0);                  /* vector control: unmasked */
		irq_set_handler((u8)(vec + i), msix_irq);
	}
	pci_write16(p, (u16)(p->msix + 2), (u16)((ctl | 0x8000) & ~0x4000));
	d->vec_config = (u8)vec;
	d->vec_base = (u8)(vec + 1);
	/* entry 0 for configuration changes */
	mmio_w16(d->common + 16, 0);
	if (mmio_r16(d->common + 16) != 0) {
		why_add(w, "configuration MSI-X vector not accepted");
		return false;
	}
	println("INFO %s msix table at 0x%llx (BAR %u, %u entries): config vector 0x%x, "
		"queue vectors from 0x%x, apic %u", d->name, t, bir, entries, d->vec_config,
		d->vec_base, dest);
	return true;
}

static bool intx_setup(struct vdev *d, struct why *w)
{
	struct pci_dev *p = d->pci;
	u8 line = pci_read8(p, 0x3C), pin = pci_read8(p, 0x3D);
	int gsi = line && line != 0xFF ? line : opt.intx_gsi;
	if (!pin) {
		why_add(w, "no interrupt pin");
		return false;
	}
	if (gsi <= 0) {
		why_add(w, "no INTx line (interrupt line register %u, no oxtest.intxgsi)", line);
		return false;
	}
	if (!d->isr) {
		why_add(w, "no ISR capability");
		return false;
	}
	int vec = irq_vectors(1);
	if (vec < 0) {
		why_add(w, "out of IDT vectors");
		return false;
	}
	lapic_init();
	d->gsi = (u32)gsi;
	d->vec_base = (u8)vec;
	intx_dev[vec] = d;
	irq_set_handler((u8)vec, intx_irq);
	ioapic_route(d->gsi, (u8)vec, lapic_id(), true, false);
	/* the command register's INTx disable bit (10) must be clear */
	pci_write16(p, 0x04, (u16)(pci_read16(p, 0x04) & ~0x400));
	println("INFO %s intx pin %c gsi %u (line register %u) vector 0x%x level", d->name,
		'A' + pin - 1, d->gsi, line, vec);
	return true;
}

bool vdev_irq_setup(struct vdev *d, int mode, int nqueues, struct why *w)
{
	d->irq_mode = IRQ_POLL;
	bool ok = true;
	if (mode == IRQ_MSIX)
		ok = msix_setup(d, nqueues, w);
	else if (mode == IRQ_INTX)
		ok = intx_setup(d, w);
	if (ok)
		d->irq_mode = mode;
	return ok;
}

/* Stops the device's interrupts: queue vectors off, MSI-X disabled, INTx pin masked. */
void vdev_irq_off(struct vdev *d)
{
	if (d->irq_mode == IRQ_MSIX) {
		struct pci_dev *p = d->pci;
		u16 ctl = pci_read16(p, (u16)(p->msix + 2));
		pci_write16(p, (u16)(p->msix + 2), (u16)(ctl & ~0x8000));
	} else if (d->irq_mode == IRQ_INTX) {
		ioapic_mask(d->gsi);
		intx_dev[d->vec_base] = NULL;
	}
	d->irq_mode = IRQ_POLL;
}
