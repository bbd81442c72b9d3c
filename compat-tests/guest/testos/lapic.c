/* Local APIC: xAPIC through MMIO, or x2APIC through MSRs when the LAPIC is in x2APIC mode. */
#include "testos.h"

#define MSR_APIC_BASE 0x1B
#define MSR_TSC_DEADLINE 0x6E0
#define APIC_ID 0x20
#define APIC_TPR 0x80
#define APIC_EOI 0xB0
#define APIC_SVR 0xF0
#define APIC_ICR_LO 0x300
#define APIC_ICR_HI 0x310
#define APIC_LVT_TIMER 0x320

static u64 lapic_base = 0xFEE00000;

bool lapic_x2apic(void)
{
	return rdmsr(MSR_APIC_BASE) & (1u << 10);
}

static u32 lapic_read(u32 reg)
{
	if (lapic_x2apic())
		return (u32)rdmsr(0x800 + (reg >> 4));
	return mmio_r32(lapic_base + reg);
}

static void lapic_write(u32 reg, u32 v)
{
	if (lapic_x2apic())
		wrmsr(0x800 + (reg >> 4), v);
	else
		mmio_w32(lapic_base + reg, v);
}

void lapic_init(void)
{
	u64 base = rdmsr(MSR_APIC_BASE);
	if (!(base & (1u << 11)))
		wrmsr(MSR_APIC_BASE, base | (1u << 11));   /* globally enabled */
	lapic_base = base & 0x000FFFFFFFFFF000ull;
	if (opt.x2apic && !(base & (1u << 10))) {
		u32 a, b, c, d;
		cpuid(1, 0, &a, &b, &c, &d);
		if (c & (1u << 21))
			wrmsr(MSR_APIC_BASE, base | (1u << 11) | (1u << 10));
		else
			println("INFO x2apic requested but not offered by CPUID");
	}
	lapic_write(APIC_TPR, 0);
	lapic_write(APIC_SVR, 0x100 | VEC_SPURIOUS);       /* software enabled */
}

u32 lapic_id(void)
{
	u32 v = lapic_read(APIC_ID);
	return lapic_x2apic() ? v : v >> 24;
}

void lapic_eoi(void)
{
	lapic_write(APIC_EOI, 0);
}

void lapic_send_ipi(u32 dest, u32 icr_low)
{
	if (lapic_x2apic()) {
		wrmsr(0x830, ((u64)dest << 32) | icr_low);
		return;
	}
	lapic_write(APIC_ICR_HI, dest << 24);
	lapic_write(APIC_ICR_LO, icr_low);
	for (int i = 0; i < 100000 && (lapic_read(APIC_ICR_LO) & (1u << 12)); i++)
		cpu_relax();                               /* delivery pending */
}

bool lapic_tsc_deadline(void)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	return c & (1u << 24);
}

void lapic_arm_deadline(u64 tsc)
{
	lapic_write(APIC_LVT_TIMER, (2u << 17) | VEC_TIMER);
	__asm__ volatile("mfence" ::: "memory");
	wrmsr(MSR_TSC_DEADLINE, tsc);
}
