/* oxtest.then=hotplug: serves ACPI PCI hotplug the way an OS does, without an AML
 * interpreter. On each hotplug interrupt it reads the registers the DSDT's methods
 * read (PCIU, slots given a device; PCID, slots the host wants back), rescans the bus,
 * runs the driver check of each new device's kind on it alone, and releases each
 * device asked for (resets it) before ejecting its slot through B0EJ, as the slot's
 * _EJ0 does. Two platforms: oxvirt's (\_SB_.PHPR, PNP0A06, registers in memory, the
 * GED's interrupt) and QEMU's PIIX4 (I/O ports 0xae00, bus selector at 0xae10, the
 * SCI on GPE0 bit 1), so that the same guest measures both.
 * On oxvirt's platform it serves ACPI CPU hotplug too (\_SB_.CPUS, ACPI0010, its
 * registers in the container's _CRS): each vCPU plugged in is started (INIT, SIPI,
 * its APIC ID from the MADT's online-capable entry of its UID) and runs a task;
 * each the host asks back is left halted and ejected, as an OS offlines it first. */
#include "testos.h"

#define PHPR_PCIU 0x0
#define PHPR_PCID 0x4
#define PHPR_B0EJ 0x8
#define PHPR_POST 0x10
#define OST_EJECT_REQUEST 3u
#define OST_DEVICE_BUSY 0x81u

#define PIIX_PCIHP_PORT 0xae00
#define PIIX_PCIHP_SEL 0x10
#define GPE_PCI_HOTPLUG 0x02

#define CPHP_CSEL 0x0
#define CPHP_CSTS 0x4
#define CPHP_CMAX 0x8
#define CPHP_PRESENT 1u
#define CPHP_INSERT 2u
#define CPHP_REMOVE 4u
#define CPHP_EJECT 8u

static volatile u32 ged_events;
static u16 gpe0_sts, gpe0_en;   /* QEMU: the GPE0 block's halves, 0: oxvirt's GED */

static void hotplug_irq(u8 v)
{
	(void)v;
	/* The SCI is level-triggered: the status bit is cleared before the EOI. */
	if (gpe0_sts)
		outb(gpe0_sts, inb(gpe0_sts));
	ged_events++;
}

/* The hotplug registers: memory at base, or QEMU's ports when base is 0. */
static u32 hp_read(u64 base, u32 off)
{
	return base ? mmio_r32(base + off) : inl((u16)(PIIX_PCIHP_PORT + off));
}

static void hp_write(u64 base, u32 off, u32 v)
{
	if (base)
		mmio_w32(base + off, v);
	else
		outl((u16)(PIIX_PCIHP_PORT + off), v);
}

/* QEMU's PIIX4: the SCI (FADT SCI_INT, level, active high) with GPE0 bit 1 enabled.
 * False if the FADT has no GPE0 block. */
static bool piix_route(void)
{
	const u8 *f = acpi.fadt;
	if (!f)
		return false;
	u16 sci;
	u32 gpe0;
	memcpy(&sci, f + 46, 2);
	memcpy(&gpe0, f + 80, 4);
	u8 len = f[92];
	if (!gpe0 || len < 2)
		return false;
	gpe0_sts = (u16)gpe0;
	gpe0_en = (u16)(gpe0 + len / 2);
	lapic_init();
	irq_set_handler(VEC_GED, hotplug_irq);
	ioapic_route(sci, VEC_GED, lapic_id(), true, false);
	outb(gpe0_sts, 0xff);
	outb(gpe0_en, inb(gpe0_en) | GPE_PCI_HOTPLUG);
	hp_write(0, PIIX_PCIHP_SEL, 0);   /* bus 0 */
	println("INFO hotplug through QEMU's PIIX4 registers, SCI %u, GPE0 0x%x", sci, gpe0);
	return true;
}

/* The virtio device type of d, or 0. */
static int virtio_type(const struct pci_dev *d)
{
	if (d->vendor != 0x1AF4 || d->device < 0x1041 || d->device > 0x107F)
		return 0;
	return d->device - 0x1040;
}

static void device_added(int slot)
{
	pci_rescan();
	struct pci_dev *d = pci_find(0, slot, 0);
	if (!d) {
		println("FAIL hotplug-%02x: no device in the slot after its event", slot);
		return;
	}
	println("INFO hotplug %02x: %04x:%04x class %06x bar0=0x%llx", slot, d->vendor, d->device,
		d->class, d->bar[0]);
	usize mark = dma_mark();
	virtio_only_slot = slot;
	switch (virtio_type(d)) {
	case 1: net_forget(); check_net(); net_forget(); break;
	case 2: check_blk(); break;
	case 3: check_console(); break;
	case 4: check_rng(); break;
	default: println("INFO hotplug %02x: no check for this device", slot); break;
	}
	virtio_only_slot = -1;
	/* Idle until its next event: nothing of the pool it used stays in use. */
	if (virtio_type(d) && !vdev_reset_pci(d))
		println("FAIL hotplug-%02x: the device did not reset", slot);
	dma_release(mark);
	println("INFO hotplug %02x added", slot);
}

static void device_removal(u64 base, int slot)
{
	/* oxtest.hprefuse: the first request for that slot is answered as a busy
	 * device's is, through the slot's _OST (oxvirt's platform only). */
	if (base && slot == opt.hprefuse) {
		opt.hprefuse = -1;
		hp_write(base, PHPR_POST, (u32)slot | OST_EJECT_REQUEST << 8 | OST_DEVICE_BUSY << 16);
		println("INFO hotplug %02x refused", slot);
		return;
	}
	struct pci_dev *d = pci_find(0, slot, 0);
	if (d && virtio_type(d) && !vdev_reset_pci(d))
		println("INFO hotplug %02x: the device did not reset before its eject", slot);
	hp_write(base, PHPR_B0EJ, 1u << slot);
	/* Looked at at once: the host may plug the next device into the slot soon after. */
	struct pci_dev probe = { .bus = 0, .dev = (u8)slot, .fn = 0 };
	u32 id = pci_read32(&probe, 0);
	if (id != 0xFFFFFFFFu)
		println("FAIL hotplug-%02x-eject: the slot still holds %04x:%04x", slot, id & 0xFFFF,
			id >> 16);
	else
		println("INFO hotplug %02x ejected", slot);
	pci_rescan();
}

static u32 cpu_status(u64 base, u32 i)
{
	mmio_w32(base + CPHP_CSEL, i);
	return mmio_r32(base + CPHP_CSTS);
}

/* The vCPUs plugged in since the last look are started, those asked for ejected
 * (highest first, as the DSDT's CSCN tells an OS). */
static void cpu_scan(u64 base)
{
	u32 n = mmio_r32(base + CPHP_CMAX);
	if (n > MAX_CPUS)
		n = MAX_CPUS;
	for (u32 i = 0; i < n; i++) {
		if (!(cpu_status(base, i) & CPHP_INSERT))
			continue;
		mmio_w32(base + CPHP_CSTS, CPHP_INSERT);
		if ((int)i >= acpi.nuids) {
			println("FAIL cpuhp-%u: no MADT entry for it", i);
			continue;
		}
		u32 apic = acpi.uid_apic[i];
		if (smp_start_ap((int)i, apic))
			println("INFO cpuhp %u online (apic %u), task done", i, apic);
		else
			println("FAIL cpuhp-%u: the vCPU (apic %u) did not start or run its task", i,
				apic);
	}
	for (u32 i = n; i-- > 0;) {
		if (!(cpu_status(base, i) & CPHP_REMOVE))
			continue;
		/* The vCPU sits halted with interrupts off since its task: offline. */
		mmio_w32(base + CPHP_CSTS, CPHP_EJECT);
		if (cpu_status(base, i) & CPHP_PRESENT)
			println("FAIL cpuhp-%u-eject: still present", i);
		else
			println("INFO cpuhp %u ejected", i);
	}
}

void hotplug_loop(void)
{
	u64 cbase[1] = { 0 }, clen[1] = { 0 };
	if (acpi_dev_mem("ACPI0010", 0, cbase, clen, 1) < 1 || clen[0] < 12)
		cbase[0] = 0;
	u64 base[4] = { 0 }, len[4] = { 0 };
	if (acpi_dev_mem("PNP0A06", 0, base, len, 4) >= 1 && len[0] >= 12) {
		if (ged_route(hotplug_irq) < 0) {
			println("FAIL hotplug: no Extended Interrupt in the GED's _CRS and no oxtest.gedirq");
			return;
		}
	} else if (base[0] = 0, !piix_route()) {
		println("FAIL hotplug: no PCI hotplug registers (PNP0A06 _CRS) and no GPE0 block");
		return;
	}
	/* Firmware may have left the 8259s programmed (SeaBIOS: the timer on vector 8):
	 * only what the IOAPIC routes comes through. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	pci_scan();
	println("INFO hotplug ready, registers at 0x%llx, CPU hotplug at 0x%llx",
		base[0] ? base[0] : PIIX_PCIHP_PORT, cbase[0]);
	u32 seen = 0;
	for (;;) {
		cli();
		while (ged_events == seen)
			sti_hlt();
		cli();
		seen = ged_events;
		u32 up = hp_read(base[0], PHPR_PCIU), down = hp_read(base[0], PHPR_PCID);
		for (int slot = 1; slot < 32; slot++)
			if (up & (1u << slot))
				device_added(slot);
		for (int slot = 1; slot < 32; slot++)
			if (down & (1u << slot))
				device_removal(base[0], slot);
		if (cbase[0])
			cpu_scan(cbase[0]);
	}
}
