/* oxtest.then=hotplug: serves ACPI PCI hotplug the way an OS does, without an AML
 * interpreter. On each GED interrupt it reads the registers the DSDT's PCNT method
 * reads (\_SB_.PHPR: PCIU, slots given a device; PCID, slots the host wants back),
 * rescans the bus, runs the driver check of each new device's kind on it alone, and
 * releases each device asked for (resets it) before ejecting its slot through B0EJ,
 * as the slot's _EJ0 does. */
#include "testos.h"

#define PHPR_PCIU 0x0
#define PHPR_PCID 0x4
#define PHPR_B0EJ 0x8

static volatile u32 ged_events;

static void hotplug_irq(u8 v)
{
	(void)v;
	ged_events++;
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

static void device_removal(u64 regs, int slot)
{
	struct pci_dev *d = pci_find(0, slot, 0);
	if (d && virtio_type(d) && !vdev_reset_pci(d))
		println("INFO hotplug %02x: the device did not reset before its eject", slot);
	mmio_w32(regs + PHPR_B0EJ, 1u << slot);
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

void hotplug_loop(void)
{
	u64 base[4], len[4];
	if (acpi_dev_mem("PNP0A06", 0, base, len, 4) < 1 || len[0] < 12) {
		println("FAIL hotplug: no PCI hotplug registers (PNP0A06 _CRS) in the DSDT");
		return;
	}
	if (ged_route(hotplug_irq) < 0) {
		println("FAIL hotplug: no Extended Interrupt in the GED's _CRS and no oxtest.gedirq");
		return;
	}
	pci_scan();
	println("INFO hotplug ready, registers at 0x%llx", base[0]);
	u32 seen = 0;
	for (;;) {
		cli();
		while (ged_events == seen)
			sti_hlt();
		cli();
		seen = ged_events;
		u32 up = mmio_r32(base[0] + PHPR_PCIU), down = mmio_r32(base[0] + PHPR_PCID);
		for (int slot = 1; slot < 32; slot++)
			if (up & (1u << slot))
				device_added(slot);
		for (int slot = 1; slot < 32; slot++)
			if (down & (1u << slot))
				device_removal(base[0], slot);
	}
}
