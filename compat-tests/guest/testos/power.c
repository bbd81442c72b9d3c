/* Final actions: poweroff, reset, i8042-reset, triple-fault, halt, ticker, powerbutton,
 * memfill; input and display-loop (input.c, display.c). */
#include "testos.h"

extern void triple_fault(void);

static void __attribute__((noreturn)) halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

void poweroff(void)
{
	int slp = acpi_s5_slp_typ();
	if (slp < 0) {
		println("INFO no _S5_ package in the DSDT, using SLP_TYP 5");
		slp = 5;
	}
	if (acpi.sleep_ok) {
		/* HW-reduced sleep control register: SLP_TYP in bits 2-4, SLP_EN is bit 5. */
		gas_write(&acpi.sleep_ctl, (u64)(((slp & 7) << 2) | (1 << 5)));
	} else if (acpi.pm1a_cnt.addr) {
		/* Full ACPI: PM1a control, SLP_TYP in bits 10-12, SLP_EN is bit 13. */
		println("INFO poweroff: no sleep control register, using PM1a_CNT 0x%llx",
			acpi.pm1a_cnt.addr);
		struct gas g = acpi.pm1a_cnt;
		if (g.bit_width != 32)
			g.bit_width = 16;
		gas_write(&g, (u64)(((slp & 7) << 10) | (1 << 13)));
	} else {
		println("INFO poweroff: no valid FADT sleep control register");
		halt_forever();
	}
	delay_us(1000000);
	println("INFO poweroff: still running 1 s after writing the sleep control register");
	halt_forever();
}

static void reset(void)
{
	if (!acpi.reset_ok) {
		println("INFO reset: no valid FADT reset register");
		halt_forever();
	}
	gas_write(&acpi.reset_reg, acpi.reset_value);
	delay_us(1000000);
	println("INFO reset: still running 1 s after writing the reset register");
	halt_forever();
}

static void i8042_reset(void)
{
	for (int i = 0; i < 10000 && (inb(0x64) & 0x02); i++)
		cpu_relax();
	outb(0x64, 0xFE);
	delay_us(1000000);
	println("INFO i8042-reset: still running 1 s after the pulse command");
	halt_forever();
}

static void timer_irq(u8 v) { (void)v; }

static void wait_until(u64 t, bool deadline)
{
	while (rdtsc() < t) {
		if (deadline) {
			cli();
			lapic_arm_deadline(t);
			sti_hlt();
		} else {
			cpu_relax();
		}
	}
	cli();
}

/* oxtest.tickmem: a region from 32 MiB that the ticker checks and partly rewrites
 * every tick (in ring 3, which runs at native speed here), so that a guest saved
 * and restored shows whether its memory came back whole. */
#define TICKMEM_BASE (32ull << 20)
#define TICKMEM_PARTS 16

struct tickmem {
	u64 *words;
	u64 nwords;
	u64 sum;   /* what the region must add up to */
	u64 tick;
	u64 bad;   /* set when the region did not add up */
	u64 init;  /* the first step takes the region as it finds it */
};

static u64 tickmem_step(void *arg)
{
	struct tickmem *t = arg;
	u64 sum = 0;
	for (u64 i = 0; i < t->nwords; i++)
		sum += t->words[i];
	t->bad = !t->init && sum != t->sum;
	t->init = 0;
	u64 part = t->nwords / TICKMEM_PARTS;
	u64 *w = t->words + (t->tick % TICKMEM_PARTS) * part;
	for (u64 i = 0; i < part; i++) {
		u64 v = (t->tick + 1) * 0x9E3779B97F4A7C15ull ^ i;
		sum += v - w[i];
		w[i] = v;
	}
	t->sum = sum;
	return 0;
}

static struct tickmem tickmem;

static void ticker(void)
{
	bool deadline = lapic_tsc_deadline();
	lapic_init();
	irq_set_handler(VEC_TIMER, timer_irq);
	println("INFO ticker every 100 ms (%s)", deadline ? "tsc-deadline timer, hlt" : "tsc poll");
	if (opt.tickmem_mib) {
		tickmem.words = (u64 *)(usize)TICKMEM_BASE;
		tickmem.nwords = ((u64)opt.tickmem_mib << 20) / 8;
		tickmem.init = 1;
		println("INFO ticker keeps %u MiB at 0x%llx", opt.tickmem_mib, TICKMEM_BASE);
	}
	if (opt.tickdev)
		tickdev_init();
	u64 period = ms_to_tsc(100);
	u64 next = rdtsc() + period;
	for (u64 n = 1;; n++) {
		wait_until(next, deadline);
		if (opt.tickdev) {
			struct why w = { .len = 0 };
			w.buf[0] = 0;
			if (!tickdev_step(n, &w))
				println("FAIL tickdev at tick %llu: %s", n, w.buf);
		}
		if (opt.tickmem_mib) {
			tickmem.tick = n;
			run_user(tickmem_step, &tickmem);
			if (tickmem.bad)
				println("FAIL tickmem: the region does not add up at tick %llu", n);
			println("TICK %llu sum=%llx", n, tickmem.sum);
		} else {
			println("TICK %llu", n);
		}
		next += period;
		u64 now = rdtsc();
		if (now > next)           /* after a pause: carry on from now, never skip numbers */
			next = now + period;
	}
}

static volatile u32 button_pressed;
static int ged_gsi = -1;
static u64 ged_events;   /* oxvirt's GED event byte, 0: any GED interrupt is the button */

static void ged_irq(u8 v)
{
	(void)v;
	/* Other events (a device or vCPU plugged in) are not the button, as an OS's
	 * _EVT tells them apart. */
	if (ged_events && !(mmio_r8(ged_events) & 1))
		return;
	button_pressed = 1;
	if (ged_gsi >= 0)
		ioapic_mask((u32)ged_gsi);
}

int ged_route(irq_handler h)
{
	u8 flags = 0;
	int from_dsdt = acpi_ged_irq(&flags);
	int gsi = opt.gedirq >= 0 ? opt.gedirq : from_dsdt;
	if (gsi < 0)
		return -1;
	if (from_dsdt != gsi)
		flags = 0x02;             /* given on the command line: edge, active high */
	lapic_init();
	irq_set_handler(VEC_GED, h);
	ioapic_route((u32)gsi, VEC_GED, lapic_id(), !(flags & 0x02), flags & 0x04);
	return gsi;
}

static void powerbutton(void)
{
	ged_events = acpi_ged_events_reg();
	ged_gsi = ged_route(ged_irq);
	if (ged_gsi < 0) {
		println("FAIL powerbutton: no Extended Interrupt in the GED's _CRS and no oxtest.gedirq");
		halt_forever();
	}
	println("INFO waiting for power button");
	cli();
	while (!button_pressed)
		sti_hlt();
	cli();
	println("PASS powerbutton");
	poweroff();
}

/* Writes one byte into every 4 KiB page of RAM above 16 MiB (the image
 * and its tables sit below) and under 4 GiB (the identity map), so that
 * the host backs all of it; then halts. For memory limits on the VMM. */
static void __attribute__((noreturn)) memfill(void)
{
	u64 touched = 0;
	for (u32 i = 0; i < e820_count; i++) {
		if (e820[i].type != 1)
			continue;
		u64 start = e820[i].addr, end = e820[i].addr + e820[i].size;
		if (start < (16ull << 20))
			start = 16ull << 20;
		if (end > (4ull << 30))
			end = 4ull << 30;
		for (u64 a = start; a + 4096 <= end; a += 4096) {
			if (opt.fill_mib && touched >= (u64)opt.fill_mib << 20)
				break;
			*(volatile u8 *)a = 0xa5;
			touched += 4096;
			if (touched % (16ull << 20) == 0)
				println("INFO memfill %u MiB", (u32)(touched >> 20));
		}
	}
	println("PASS memfill %u MiB", (u32)(touched >> 20));
	halt_forever();
}

void do_action(const char *a)
{
	if (strncmp(a, "poweroff", 9) == 0)
		poweroff();
	else if (strncmp(a, "reset", 6) == 0)
		reset();
	else if (strncmp(a, "i8042-reset", 12) == 0)
		i8042_reset();
	else if (strncmp(a, "triple-fault", 13) == 0)
		triple_fault();
	else if (strncmp(a, "ticker", 7) == 0)
		ticker();
	else if (strncmp(a, "powerbutton", 12) == 0)
		powerbutton();
	else if (strncmp(a, "net-serve", 10) == 0)
		net_serve();
	else if (strncmp(a, "hotplug", 8) == 0)
		hotplug_loop();
	else if (strncmp(a, "memfill", 8) == 0)
		memfill();
	else if (strncmp(a, "input", 6) == 0)
		input_loop();
	else if (strncmp(a, "display-loop", 13) == 0)
		display_loop();
	else if (strncmp(a, "vinput", 7) == 0)
		vinput_loop();
	else if (strncmp(a, "halt", 5) != 0)
		println("INFO unknown action \"%s\", halting", a);
	halt_forever();
}
