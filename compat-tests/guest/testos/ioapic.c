/* IOAPIC redirection entries (IOREGSEL at +0, IOWIN at +0x10). */
#include "testos.h"

static u32 io_read(u64 base, u32 reg)
{
	mmio_w32(base, reg);
	return mmio_r32(base + 0x10);
}

static void io_write(u64 base, u32 reg, u32 v)
{
	mmio_w32(base, reg);
	mmio_w32(base + 0x10, v);
}

/* The IOAPIC serving a GSI (from the MADT; 0xFEC00000 with base 0 if none). */
static bool find(u32 gsi, u64 *base, u32 *pin)
{
	if (acpi.nioapics == 0) {
		*base = 0xFEC00000;
		*pin = gsi;
		return gsi <= ((io_read(*base, 1) >> 16) & 0xFF);
	}
	for (int i = 0; i < acpi.nioapics; i++) {
		u64 b = acpi.ioapic[i].addr;
		u32 max = (io_read(b, 1) >> 16) & 0xFF;
		if (gsi >= acpi.ioapic[i].gsi_base && gsi <= acpi.ioapic[i].gsi_base + max) {
			*base = b;
			*pin = gsi - acpi.ioapic[i].gsi_base;
			return true;
		}
	}
	return false;
}

void ioapic_route(u32 gsi, u8 vector, u32 dest, bool level, bool active_low)
{
	u64 base;
	u32 pin;
	if (!find(gsi, &base, &pin)) {
		println("INFO no IOAPIC serves gsi %u", gsi);
		return;
	}
	u32 lo = vector | (active_low ? 1u << 13 : 0) | (level ? 1u << 15 : 0);
	io_write(base, 0x10 + 2 * pin, 1u << 16);   /* masked while changing */
	io_write(base, 0x11 + 2 * pin, dest << 24);
	io_write(base, 0x10 + 2 * pin, lo);
	println("INFO ioapic 0x%llx pin %u <- gsi %u vector 0x%x %s %s", base, pin, gsi, vector,
		level ? "level" : "edge", active_low ? "low" : "high");
}

void ioapic_mask(u32 gsi)
{
	u64 base;
	u32 pin;
	if (find(gsi, &base, &pin))
		io_write(base, 0x10 + 2 * pin, io_read(base, 0x10 + 2 * pin) | (1u << 16));
}
