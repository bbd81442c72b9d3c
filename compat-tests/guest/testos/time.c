/* TSC frequency: hypervisor leaves and kvmclock first, then PIT channel 2, CPUID 0x15, the RTC. */
#include "testos.h"

u64 tsc_hz;

#define PIT_HZ 1193182u

/* Gate PIT channel 2 on (speaker off), count down in mode 0 and poll its output
 * (port 0x61 bit 5). Returns TSC ticks per second, or 0 if there is no working PIT. */
static u64 calibrate_pit(void)
{
	const u32 count = PIT_HZ / 40;   /* 25 ms */
	u8 ctl = inb(0x61);
	outb(0x61, (u8)((ctl & ~0x02) | 0x01));
	outb(0x43, 0xB0);                /* channel 2, lo/hi byte, mode 0, binary */
	outb(0x42, (u8)count);
	outb(0x42, (u8)(count >> 8));
	u64 t0 = rdtsc();
	if (inb(0x61) & 0x20)
		return 0;                /* output already high: no PIT behind the port */
	u64 t1;
	for (;;) {
		t1 = rdtsc();
		if (inb(0x61) & 0x20)
			break;
		if (t1 - t0 > 2000000000ull)
			return 0;        /* no terminal count within a very generous bound */
	}
	outb(0x61, ctl);
	return (t1 - t0) * 40;
}

static u8 cmos(u8 r)
{
	outb(0x70, r);
	return inb(0x71);
}

/* Measure one RTC second between two changes of the seconds register. */
static u64 calibrate_rtc(void)
{
	u8 s0 = cmos(0), s;
	u64 t0 = rdtsc(), t1 = 0;
	int edges = 0;
	while (edges < 2) {
		s = cmos(0);
		u64 t = rdtsc();
		if (s != s0) {
			s0 = s;
			if (edges++ == 0)
				t1 = t;
			else
				return t - t1;
		}
		if (t - t0 > 30000000000ull)
			return 0;
	}
	return 0;
}

/* KVM's paravirtual clock publishes the TSC-to-nanoseconds scale it uses:
 * ns = ((tsc shifted by tsc_shift) * tsc_to_system_mul) >> 32. Needs the KVM signature
 * and KVM_FEATURE_CLOCKSOURCE2 (CPUID 0x40000001 EAX bit 3). */
static struct {
	u32 version, pad0;
	u64 tsc_timestamp, system_time;
	u32 mul;
	signed char shift;
	u8 flags, pad[2];
} __attribute__((aligned(64))) pvclock;

static u64 calibrate_kvmclock(void)
{
	u32 a, b, c, d;
	cpuid(0x40000000, 0, &a, &b, &c, &d);
	if (b != 0x4b4d564b || c != 0x564b4d56 || d != 0x4d)   /* "KVMKVMKVM\0\0\0" */
		return 0;
	cpuid(0x40000001, 0, &a, &b, &c, &d);
	if (!(a & (1u << 3)))
		return 0;
	wrmsr(0x4b564d01, (u64)(usize)&pvclock | 1);
	u32 mul = 0;
	int shift = 0;
	for (int i = 0; i < 1000; i++) {
		u32 v = *(volatile u32 *)&pvclock.version;
		barrier();
		mul = *(volatile u32 *)&pvclock.mul;
		shift = *(volatile signed char *)&pvclock.shift;
		barrier();
		if (!(v & 1) && v == *(volatile u32 *)&pvclock.version && mul)
			break;
	}
	wrmsr(0x4b564d01, 0);
	if (!mul)
		return 0;
	u64 hz = (1000000000ull << 32) / mul;
	if (shift > 0)
		hz >>= shift;
	else if (shift < 0)
		hz <<= -shift;
	return hz;
}

static u64 calibrate_cpuid_hv(void)
{
	u32 a, b, c, d;
	cpuid(0x40000000, 0, &a, &b, &c, &d);
	if (a < 0x40000010 || a >= 0x40000100)
		return 0;
	cpuid(0x40000010, 0, &a, &b, &c, &d);
	return (u64)a * 1000;
}

static u64 calibrate_cpuid_15(void)
{
	u32 a, b, c, d;
	cpuid(0, 0, &a, &b, &c, &d);
	if (a < 0x15)
		return 0;
	cpuid(0x15, 0, &a, &b, &c, &d);
	return (a && b && c) ? (u64)c * b / a : 0;
}

/* Sources that answer at once come first: under an emulating hypervisor every
 * PIT poll is a VM exit, so the 25 ms PIT window costs far more than 25 ms. */
void tsc_calibrate(void)
{
	static const struct {
		const char *name;
		u64 (*measure)(void);
	} sources[] = {
		{ "cpuid 0x40000010", calibrate_cpuid_hv },
		{ "kvmclock", calibrate_kvmclock },
		{ "pit", calibrate_pit },
		{ "cpuid 0x15", calibrate_cpuid_15 },
		{ "rtc", calibrate_rtc },
	};
	const char *how = "none";
	tsc_hz = 0;
	for (unsigned i = 0; i < sizeof(sources) / sizeof(sources[0]) && !tsc_hz; i++) {
		tsc_hz = sources[i].measure();
		how = sources[i].name;
	}
	if (tsc_hz < 100000000ull || tsc_hz > 20000000000ull) {
		println("INFO tsc calibration failed (%llu Hz), assuming 2 GHz", tsc_hz);
		tsc_hz = 2000000000ull;
		how = "assumed";
	}
	println("INFO tsc %llu kHz (%s)", tsc_hz / 1000, how);
}

u64 ms_to_tsc(u64 ms)
{
	return tsc_hz / 1000 * ms;
}

void delay_us(u64 us)
{
	u64 end = rdtsc() + tsc_hz / 1000000 * us;
	while (rdtsc() < end)
		cpu_relax();
}
