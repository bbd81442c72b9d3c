/* CMOS RTC (ports 0x70/0x71) against the host's time given as oxtest.epoch. */
#include "testos.h"

static u8 cmos(u8 r)
{
	outb(0x70, r);
	return inb(0x71);
}

struct rtc_time {
	u8 sec, min, hour, day, mon, year, cent;
};

static void read_raw(struct rtc_time *t, u8 century_reg)
{
	for (int i = 0; i < 100000 && (cmos(0x0A) & 0x80); i++)
		cpu_relax();             /* update in progress */
	t->sec = cmos(0x00);
	t->min = cmos(0x02);
	t->hour = cmos(0x04);
	t->day = cmos(0x07);
	t->mon = cmos(0x08);
	t->year = cmos(0x09);
	t->cent = century_reg ? cmos(century_reg) : 0;
}

static u8 bcd(u8 v) { return (u8)((v >> 4) * 10 + (v & 0x0F)); }

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static i64 days_from_civil(i64 y, unsigned m, unsigned d)
{
	y -= m <= 2;
	i64 era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (i64)doe - 719468;
}

bool check_rtc(struct why *w)
{
	/* FADT CENTURY (offset 108) names the century register, if any. */
	u8 century_reg = 0;
	if (acpi.fadt && *(const u32 *)(acpi.fadt + 4) > 108)
		century_reg = acpi.fadt[108];
	struct rtc_time a, b;
	read_raw(&a, century_reg);
	for (int tries = 0; tries < 5; tries++) {
		read_raw(&b, century_reg);
		if (memcmp(&a, &b, sizeof(a)) == 0)
			break;
		a = b;
	}
	u8 regb = cmos(0x0B);
	bool binary = regb & 0x04, h24 = regb & 0x02;
	bool pm = !h24 && (a.hour & 0x80);
	a.hour &= 0x7F;
	if (!binary) {
		a.sec = bcd(a.sec);
		a.min = bcd(a.min);
		a.hour = bcd(a.hour);
		a.day = bcd(a.day);
		a.mon = bcd(a.mon);
		a.year = bcd(a.year);
		a.cent = bcd(a.cent);
	}
	if (!h24) {
		if (a.hour == 12)
			a.hour = 0;
		if (pm)
			a.hour += 12;
	}
	unsigned year = (a.cent >= 19 && a.cent <= 30) ? a.cent * 100u + a.year
			: (a.year < 70 ? 2000u + a.year : 1900u + a.year);
	println("INFO rtc %04u-%02u-%02uT%02u:%02u:%02uZ (register B 0x%x: %s, %s)", year, a.mon,
		a.day, a.hour, a.min, a.sec, regb, binary ? "binary" : "bcd", h24 ? "24h" : "12h");
	if (a.sec > 59 || a.min > 59 || a.hour > 23 || a.day < 1 || a.day > 31 || a.mon < 1 ||
	    a.mon > 12) {
		why_add(w, "fields out of range");
		return false;
	}
	i64 t = days_from_civil(year, a.mon, a.day) * 86400 + a.hour * 3600 + a.min * 60 + a.sec;
	if (opt.epoch < 0) {
		println("INFO rtc unix %lld (no oxtest.epoch to compare with)", t);
		return true;
	}
	i64 diff = t - opt.epoch;
	println("INFO rtc unix %lld, oxtest.epoch %lld, difference %lld s", t, opt.epoch, diff);
	if (diff > 120 || diff < -120)
		why_add(w, "%lld s away from oxtest.epoch", diff);
	return w->len == 0;
}
