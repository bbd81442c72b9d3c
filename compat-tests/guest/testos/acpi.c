/* ACPI: RSDP -> XSDT -> FADT / MADT / DSDT / MCFG, plus small AML byte searches. */
#include "testos.h"

struct acpi_info acpi;

#define FADT_FLAG_RESET_REG_SUP (1u << 10)
#define FADT_FLAG_HW_REDUCED (1u << 20)

static u8 sum(const u8 *p, usize n)
{
	u8 s = 0;
	while (n--)
		s += *p++;
	return s;
}
static u32 rd32(const u8 *p) { u32 v; memcpy(&v, p, 4); return v; }
static u64 rd64(const u8 *p) { u64 v; memcpy(&v, p, 8); return v; }
static u16 rd16(const u8 *p) { u16 v; memcpy(&v, p, 2); return v; }

static void gas_read(const u8 *p, struct gas *g)
{
	g->space = p[0];
	g->bit_width = p[1];
	g->bit_offset = p[2];
	g->access_size = p[3];
	g->addr = rd64(p + 4);
}

static bool gas_valid(const struct gas *g)
{
	return g->addr != 0 && (g->space == 0 || g->space == 1) &&
	       (g->bit_width == 8 || g->bit_width == 16 || g->bit_width == 32);
}

void gas_write(const struct gas *g, u64 v)
{
	unsigned w = g->bit_width;
	if (g->space == 1) {
		u16 port = (u16)g->addr;
		if (w == 32) outl(port, (u32)v);
		else if (w == 16) outw(port, (u16)v);
		else outb(port, (u8)v);
	} else {
		if (w == 64) mmio_w64(g->addr, v);
		else if (w == 32) mmio_w32(g->addr, (u32)v);
		else if (w == 16) mmio_w16(g->addr, (u16)v);
		else mmio_w8(g->addr, (u8)v);
	}
}

static const char *gas_space(const struct gas *g)
{
	return g->space == 0 ? "mem" : g->space == 1 ? "io" : "other";
}

static u64 find_rsdp(u64 hint)
{
	if (hint)
		return hint;
	for (u64 a = 0xE0000; a < 0x100000; a += 16)
		if (memcmp((const void *)a, "RSD PTR ", 8) == 0)
			return a;
	return 0;
}

/* Table list from the XSDT (checked later in check_acpi). */
static const u8 *tables[32];
static int ntables;
static const u8 *xsdt;

static void parse_madt(const u8 *m)
{
	u32 len = rd32(m + 4);
	acpi.lapic_addr = rd32(m + 36);
	for (u32 off = 44; off + 2 <= len;) {
		u8 type = m[off], l = m[off + 1];
		if (l < 2 || off + l > len)
			break;
		const u8 *e = m + off;
		if (type == 0 && l >= 8 && (rd32(e + 4) & 3) && e[2] < MAX_CPUS) {
			acpi.uid_apic[e[2]] = e[3];   /* enabled, or online capable */
			if (e[2] + 1 > acpi.nuids)
				acpi.nuids = e[2] + 1;
		}
		if (type == 0 && l >= 8 && (rd32(e + 4) & 1)) {
			if (acpi.ncpus < MAX_CPUS)
				acpi.apic_ids[acpi.ncpus] = e[3];
			acpi.ncpus++;
		} else if (type == 9 && l >= 16 && (rd32(e + 8) & 1)) {
			if (acpi.ncpus < MAX_CPUS)
				acpi.apic_ids[acpi.ncpus] = rd32(e + 4);
			acpi.ncpus++;
		} else if (type == 1 && l >= 12 && acpi.nioapics < MAX_IOAPICS) {
			acpi.ioapic[acpi.nioapics].id = e[2];
			acpi.ioapic[acpi.nioapics].addr = rd32(e + 4);
			acpi.ioapic[acpi.nioapics].gsi_base = rd32(e + 8);
			acpi.nioapics++;
		} else if (type == 5 && l >= 12) {
			acpi.lapic_addr = rd64(e + 4);
		}
		off += l;
	}
}

void acpi_init(u64 hint)
{
	acpi.lapic_addr = 0xFEE00000;
	acpi.rsdp = find_rsdp(hint);
	if (!acpi.rsdp)
		return;
	const u8 *r = (const u8 *)acpi.rsdp;
	if (memcmp(r, "RSD PTR ", 8) != 0) {
		println("INFO acpi rsdp_paddr 0x%llx has no \"RSD PTR \" signature", acpi.rsdp);
		return;
	}
	acpi.found = true;
	u64 x = r[15] >= 2 ? rd64(r + 24) : 0;
	if (x) {
		xsdt = (const u8 *)x;
		u32 len = rd32(xsdt + 4);
		for (u32 off = 36; off + 8 <= len && ntables < 32; off += 8)
			tables[ntables++] = (const u8 *)rd64(xsdt + off);
	} else if (rd32(r + 16)) {
		/* Revision 0/1: RSDT of 32-bit pointers, only to keep going (the check fails). */
		const u8 *rsdt = (const u8 *)(u64)rd32(r + 16);
		u32 len = rd32(rsdt + 4);
		for (u32 off = 36; off + 4 <= len && ntables < 32; off += 4)
			tables[ntables++] = (const u8 *)(u64)rd32(rsdt + off);
	}
	for (int i = 0; i < ntables; i++) {
		const u8 *t = tables[i];
		if (!t)
			continue;
		if (memcmp(t, "FACP", 4) == 0)
			acpi.fadt = t;
		else if (memcmp(t, "APIC", 4) == 0)
			acpi.madt = t;
		else if (memcmp(t, "MCFG", 4) == 0)
			acpi.mcfg = t;
	}
	if (acpi.fadt) {
		const u8 *f = acpi.fadt;
		u32 flen = rd32(f + 4);
		u64 d = flen >= 148 ? rd64(f + 140) : 0;
		if (!d)
			d = rd32(f + 40);
		if (d) {
			acpi.dsdt = (const u8 *)d;
			acpi.dsdt_len = rd32(acpi.dsdt + 4);
		}
		u32 flags = flen >= 116 ? rd32(f + 112) : 0;
		if (flen >= 129) {
			gas_read(f + 116, &acpi.reset_reg);
			acpi.reset_value = f[128];
			acpi.reset_ok = (flags & FADT_FLAG_RESET_REG_SUP) && gas_valid(&acpi.reset_reg);
		}
		/* Fixed-hardware fallback for poweroff on full (non-reduced) ACPI platforms. */
		if (flen >= 184 && rd64(f + 172 + 4)) {
			gas_read(f + 172, &acpi.pm1a_cnt);
		} else if (flen >= 68 && rd32(f + 64)) {
			acpi.pm1a_cnt.space = 1;
			acpi.pm1a_cnt.bit_width = 16;
			acpi.pm1a_cnt.addr = rd32(f + 64);
		}
		if (flen >= 268) {
			gas_read(f + 244, &acpi.sleep_ctl);
			gas_read(f + 256, &acpi.sleep_sts);
			acpi.sleep_ok = gas_valid(&acpi.sleep_ctl);
		}
	}
	if (acpi.madt)
		parse_madt(acpi.madt);
}

/* EISA id "PNP0501" -> the 4 bytes AML stores for EisaId(). */
static void eisa_bytes(const char *id, u8 out[4])
{
	u16 c = (u16)(((id[0] - '@') << 10) | ((id[1] - '@') << 5) | (id[2] - '@'));
	u8 hex[4];
	for (int i = 0; i < 4; i++) {
		char ch = id[3 + i];
		hex[i] = (u8)(ch <= '9' ? ch - '0' : ch - 'A' + 10);
	}
	out[0] = (u8)(c >> 8);
	out[1] = (u8)c;
	out[2] = (u8)(hex[0] << 4 | hex[1]);
	out[3] = (u8)(hex[2] << 4 | hex[3]);
}

/* True if the DSDT's AML names the device id, as DWordConst EisaId or as a string. */
static bool dsdt_has_id(const char *id)
{
	if (!acpi.dsdt)
		return false;
	const u8 *aml = acpi.dsdt + 36;
	usize n = acpi.dsdt_len > 36 ? acpi.dsdt_len - 36 : 0;
	if (memfind(aml, n, id, strlen(id)))
		return true;
	if (strlen(id) == 7) {
		u8 pat[5] = { 0x0C };
		eisa_bytes(id, pat + 1);
		return memfind(aml, n, pat, 5) != NULL;
	}
	return false;
}

/* AML PkgLength at p: returns the encoded length, *nbytes gets the size of the field. */
static u32 pkg_length(const u8 *p, int *nbytes)
{
	int follow = p[0] >> 6;
	u32 len = follow ? (p[0] & 0x0F) : (p[0] & 0x3F);
	for (int i = 0; i < follow; i++)
		len |= (u32)p[1 + i] << (4 + 8 * i);
	*nbytes = 1 + follow;
	return len;
}

int acpi_s5_slp_typ(void)
{
	if (!acpi.dsdt)
		return -1;
	const u8 *aml = acpi.dsdt + 36;
	usize n = acpi.dsdt_len > 36 ? acpi.dsdt_len - 36 : 0;
	for (usize off = 0; off < n;) {
		const u8 *p = memfind(aml + off, n - off, "_S5_", 4);
		if (!p)
			return -1;
		off = (usize)(p - aml) + 4;
		/* NameOp (0x08), optionally with the root prefix '\' before the name. */
		bool named = (p - aml >= 1 && p[-1] == 0x08) ||
			     (p - aml >= 2 && p[-1] == '\\' && p[-2] == 0x08);
		if (!named || off + 4 > n || p[4] != 0x12)
			continue;
		int pl;
		pkg_length(p + 5, &pl);
		const u8 *e = p + 5 + pl + 1;   /* skip NumElements */
		if ((usize)(e - aml) + 2 > n)
			return -1;
		switch (e[0]) {
		case 0x00: return 0;            /* ZeroOp */
		case 0x01: return 1;            /* OneOp */
		case 0x0A: return e[1];         /* ByteConst */
		case 0x0B: return rd16(e + 1);  /* WordConst */
		case 0x0C: return (int)rd32(e + 1);
		default: return -1;
		}
	}
	return -1;
}

/* The GED's interrupt. Heuristic: find the string "ACPI0013" (its _HID), walk back to
 * the nearest DeviceOp (0x5B 0x82) that encloses it, and within that device's bytes
 * find "_CRS" followed by a Buffer (0x11); walk the resource descriptors in the buffer
 * and take the first Extended Interrupt descriptor (large item 0x89). If the buffer
 * cannot be walked, take the first plausible 0x89 descriptor after the _HID inside the
 * device. */
u64 acpi_ged_events_reg(void)
{
	static const u8 pat[7] = { 0x5B, 0x80, 'G', 'D', 'S', 'T', 0x00 };
	if (!acpi.dsdt)
		return 0;
	const u8 *aml = acpi.dsdt + 36;
	usize n = acpi.dsdt_len > 36 ? acpi.dsdt_len - 36 : 0;
	const u8 *r = memfind(aml, n, pat, sizeof(pat));
	if (!r || r + 16 > aml + n)
		return 0;
	if (r[7] == 0x0C)   /* DWordConst */
		return rd32(r + 8);
	if (r[7] == 0x0E)   /* QWordConst */
		return rd64(r + 8);
	return 0;
}

int acpi_ged_irq(u8 *flags)
{
	if (!acpi.dsdt)
		return -1;
	const u8 *aml = acpi.dsdt + 36;
	usize n = acpi.dsdt_len > 36 ? acpi.dsdt_len - 36 : 0;
	const u8 *hid = memfind(aml, n, "ACPI0013", 8);
	if (!hid)
		return -1;
	const u8 *dev_end = aml + n;
	for (const u8 *p = hid - 2; p >= aml; p--) {
		if (p[0] == 0x5B && p[1] == 0x82) {
			int pl;
			u32 len = pkg_length(p + 2, &pl);
			if (p + 2 + len <= aml + n && p + 2 + len > hid) {
				dev_end = p + 2 + len;
				break;
			}
		}
	}
	const u8 *crs = memfind(hid, (usize)(dev_end - hid), "_CRS", 4);
	if (crs && crs + 5 < dev_end && crs[4] == 0x11) {
		int pl;
		u32 blen = pkg_length(crs + 5, &pl);
		const u8 *b = crs + 5 + pl;
		const u8 *bend = crs + 5 + blen;
		/* BufferSize: a small integer term. */
		if (b[0] == 0x0A) b += 2;
		else if (b[0] == 0x0B) b += 3;
		else if (b[0] == 0x0C) b += 5;
		else if (b[0] == 0x00 || b[0] == 0x01) b += 1;
		while (b < bend && b < dev_end) {
			if (b[0] & 0x80) {
				u16 l = rd16(b + 1);
				if (b[0] == 0x89 && l >= 6 && b[4] >= 1) {
					*flags = b[3];
					return (int)rd32(b + 5);
				}
				b += 3 + l;
			} else {
				if (((b[0] >> 3) & 0xF) == 0xF)   /* end tag */
					break;
				b += 1 + (b[0] & 7);
			}
		}
	}
	for (const u8 *p = hid; p + 9 <= dev_end; p++) {
		u16 l = rd16(p + 1);
		if (p[0] == 0x89 && l >= 6 && l < 64 && p[4] >= 1 && l >= 2 + 4 * p[4] &&
		    rd32(p + 5) < 256) {
			*flags = p[3];
			return (int)rd32(p + 5);
		}
	}
	return -1;
}

static void check_table(struct why *w, const u8 *t, const char *what)
{
	u32 len = rd32(t + 4);
	if (len < 36 || len > (1u << 24))
		why_add(w, "%s: bad length %u", what, len);
	else if (sum(t, len) != 0)
		why_add(w, "%s: checksum", what);
}

bool check_acpi(struct why *w)
{
	if (!acpi.found) {
		why_add(w, acpi.rsdp ? "rsdp: bad signature" : "rsdp: not found");
		return false;
	}
	const u8 *r = (const u8 *)acpi.rsdp;
	println("INFO acpi rsdp at 0x%llx revision %u oem %c%c%c%c%c%c", acpi.rsdp, r[15], r[9],
		r[10], r[11], r[12], r[13], r[14]);
	if (sum(r, 20) != 0)
		why_add(w, "rsdp: checksum");
	if (r[15] != 2)
		why_add(w, "rsdp: revision %u, want 2", r[15]);
	if (r[15] >= 2) {
		u32 l = rd32(r + 20);
		if (l < 36 || l > 4096 || sum(r, l) != 0)
			why_add(w, "rsdp: extended checksum");
	}
	if (!xsdt) {
		why_add(w, "xsdt: missing");
	} else {
		if (memcmp(xsdt, "XSDT", 4) != 0)
			why_add(w, "xsdt: signature");
		check_table(w, xsdt, "xsdt");
	}
	for (int i = 0; i < ntables; i++) {
		const u8 *t = tables[i];
		char sig[5] = { 0 };
		if (!t) {
			why_add(w, "xsdt: null entry %d", i);
			continue;
		}
		memcpy(sig, t, 4);
		println("INFO acpi table %s at 0x%llx length %u", sig, (u64)(usize)t, rd32(t + 4));
		check_table(w, t, sig);
	}

	/* FADT */
	if (!acpi.fadt) {
		why_add(w, "fadt: missing");
	} else {
		const u8 *f = acpi.fadt;
		u32 flen = rd32(f + 4);
		u32 flags = flen >= 116 ? rd32(f + 112) : 0;
		println("INFO acpi fadt revision %u.%u length %u flags 0x%x", f[8],
			flen >= 132 ? f[131] : 0, flen, flags);
		if (!(flags & FADT_FLAG_HW_REDUCED))
			why_add(w, "fadt: HW_REDUCED_ACPI flag not set");
		if (flen < 268) {
			why_add(w, "fadt: length %u too short for sleep registers", flen);
		} else {
			if (!gas_valid(&acpi.sleep_ctl))
				why_add(w, "fadt: sleep control register invalid");
			if (!gas_valid(&acpi.sleep_sts))
				why_add(w, "fadt: sleep status register invalid");
			println("INFO acpi sleep control %s 0x%llx width %u, status %s 0x%llx width %u",
				gas_space(&acpi.sleep_ctl), acpi.sleep_ctl.addr,
				acpi.sleep_ctl.bit_width, gas_space(&acpi.sleep_sts),
				acpi.sleep_sts.addr, acpi.sleep_sts.bit_width);
		}
		if (!(flags & FADT_FLAG_RESET_REG_SUP))
			why_add(w, "fadt: RESET_REG_SUP flag not set");
		if (flen < 129 || !gas_valid(&acpi.reset_reg))
			why_add(w, "fadt: reset register invalid");
		else
			println("INFO acpi reset register %s 0x%llx width %u value 0x%x",
				gas_space(&acpi.reset_reg), acpi.reset_reg.addr,
				acpi.reset_reg.bit_width, acpi.reset_value);
	}

	/* MADT */
	if (!acpi.madt) {
		why_add(w, "madt: missing");
	} else {
		const u8 *m = acpi.madt;
		u32 len = rd32(m + 4);
		for (u32 off = 44; off + 2 <= len;) {
			const u8 *e = m + off;
			if (e[1] < 2 || off + e[1] > len) {
				why_add(w, "madt: malformed entry at offset %u", off);
				break;
			}
			if (e[0] == 2 && e[1] >= 10)
				println("INFO acpi madt override bus %u irq %u -> gsi %u flags 0x%x", e[2],
					e[3], rd32(e + 4), rd16(e + 8));
			off += e[1];
		}
		println("INFO acpi madt lapic 0x%llx cpus %d ioapics %d", acpi.lapic_addr, acpi.ncpus,
			acpi.nioapics);
		for (int i = 0; i < acpi.nioapics; i++)
			println("INFO acpi madt ioapic id %u at 0x%llx gsi base %u", acpi.ioapic[i].id,
				acpi.ioapic[i].addr, acpi.ioapic[i].gsi_base);
		if (opt.cpus >= 0 && acpi.ncpus != opt.cpus)
			why_add(w, "madt: %d enabled CPUs, want %d", acpi.ncpus, opt.cpus);
		if (acpi.ncpus == 0)
			why_add(w, "madt: no enabled CPU");
		if (acpi.nioapics == 0)
			why_add(w, "madt: no IOAPIC");
	}

	/* DSDT */
	if (!acpi.dsdt) {
		why_add(w, "dsdt: missing");
	} else {
		if (memcmp(acpi.dsdt, "DSDT", 4) != 0)
			why_add(w, "dsdt: signature");
		check_table(w, acpi.dsdt, "dsdt");
		println("INFO acpi dsdt at 0x%llx length %u", (u64)(usize)acpi.dsdt, acpi.dsdt_len);
		if (!dsdt_has_id("PNP0501"))
			why_add(w, "dsdt: no COM1 (PNP0501)");
		bool ged = dsdt_has_id("ACPI0013");
		if (!ged)
			why_add(w, "dsdt: no generic event device (ACPI0013)");
		if (dsdt_has_id("PNP0C0C"))
			println("INFO acpi power button device PNP0C0C");
		else if (ged)
			println("INFO acpi power button through the GED (ACPI0013)");
		else
			why_add(w, "dsdt: no power button (PNP0C0C or GED)");
		u8 fl = 0;
		int irq = acpi_ged_irq(&fl);
		if (irq >= 0)
			println("INFO acpi ged interrupt %d flags 0x%x", irq, fl);
		int s5 = acpi_s5_slp_typ();
		if (s5 >= 0)
			println("INFO acpi _S5_ SLP_TYP %d", s5);
		else
			println("INFO acpi no _S5_ package");
	}

	/* MCFG */
	if (acpi.mcfg) {
		u32 len = rd32(acpi.mcfg + 4);
		for (u32 off = 44; off + 16 <= len; off += 16)
			println("INFO acpi mcfg ecam 0x%llx segment %u buses %u-%u",
				rd64(acpi.mcfg + off), rd16(acpi.mcfg + off + 8), acpi.mcfg[off + 10],
				acpi.mcfg[off + 11]);
	} else if (opt.pci) {
		why_add(w, "mcfg: missing");
	}
	return w->len == 0;
}

/* Finds the device whose _HID/_CID is id (EisaId DWordConst or string) and returns the
 * start of the id and the end of the enclosing DeviceOp, or NULL. The n-th match. */
static const u8 *dsdt_device(const char *id, int nth, const u8 **end)
{
	if (!acpi.dsdt)
		return NULL;
	const u8 *aml = acpi.dsdt + 36;
	usize n = acpi.dsdt_len > 36 ? acpi.dsdt_len - 36 : 0;
	u8 pat[5] = { 0x0C };
	eisa_bytes(id, pat + 1);
	const u8 *hid = NULL;
	for (usize off = 0; off < n && nth >= 0; nth--) {
		const u8 *a = memfind(aml + off, n - off, pat, 5);
		const u8 *b = memfind(aml + off, n - off, id, strlen(id));
		hid = a && (!b || a < b) ? a : b;
		if (!hid)
			return NULL;
		off = (usize)(hid - aml) + 5;
	}
	*end = aml + n;
	for (const u8 *p = hid - 2; p >= aml; p--) {
		if (p[0] == 0x5B && p[1] == 0x82) {
			int pl;
			u32 len = pkg_length(p + 2, &pl);
			if (p + 2 + len <= aml + n && p + 2 + len > hid) {
				*end = p + 2 + len;
				break;
			}
		}
	}
	return hid;
}

/* Memory ranges of a device (id NULL: of the whole DSDT): every Buffer named _CRS
 * inside the device (children included) is walked for Memory32Fixed (0x86), DWord (0x87) and QWord (0x8A) address
 * space descriptors of resource type memory. Returns the number stored. */
int acpi_dev_mem(const char *id, int nth, u64 *base, u64 *len, int max)
{
	const u8 *end = NULL;
	const u8 *p;
	if (id) {
		p = dsdt_device(id, nth, &end);
	} else {           /* every _CRS in the DSDT */
		if (!acpi.dsdt)
			return 0;
		p = acpi.dsdt + 36;
		end = acpi.dsdt + (acpi.dsdt_len > 36 ? acpi.dsdt_len : 36);
	}
	int k = 0;
	while (p && p < end && k < max) {
		const u8 *crs = memfind(p, (usize)(end - p), "_CRS", 4);
		if (!crs || crs + 6 >= end)
			break;
		p = crs + 4;
		if (crs[4] != 0x11)
			continue;
		int pl;
		u32 blen = pkg_length(crs + 5, &pl);
		const u8 *b = crs + 5 + pl;
		const u8 *bend = crs + 5 + blen;
		if (bend > end)
			bend = end;
		if (b[0] == 0x0A) b += 2;
		else if (b[0] == 0x0B) b += 3;
		else if (b[0] == 0x0C) b += 5;
		else b += 1;
		while (b + 3 <= bend && k < max) {
			if (!(b[0] & 0x80)) {
				if (((b[0] >> 3) & 0xF) == 0xF)
					break;
				b += 1 + (b[0] & 7);
				continue;
			}
			u16 l = rd16(b + 1);
			if (b[0] == 0x86 && l >= 9) {
				base[k] = rd32(b + 4);
				len[k++] = rd32(b + 8);
			} else if (b[0] == 0x87 && l >= 23 && b[3] == 0) {
				base[k] = rd32(b + 10);
				len[k++] = rd32(b + 22);
			} else if (b[0] == 0x8A && l >= 43 && b[3] == 0) {
				base[k] = rd64(b + 14);
				len[k++] = rd64(b + 38);
			}
			b += 3 + l;
		}
		p = bend;
	}
	return k;
}
