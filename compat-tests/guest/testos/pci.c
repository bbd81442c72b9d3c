/* PCI: configuration access (ECAM, else ports 0xCF8/0xCFC), a scan of bus 0 and of the
 * secondary buses of bridges that firmware numbered, BAR sizing and assignment, and the
 * `pci` check against the oxtest.devs expectations. */
#include "testos.h"

struct pci_dev pci_devs[MAX_PCI];
int pci_ndevs;
struct pci_expect pci_expect[MAX_PCI];
int pci_nexpect;

static u64 ecam;          /* 0: legacy port I/O */
static bool have_cf8;
static const char *ecam_how = "none";
static u64 win_base, win_end, win_next;   /* 32-bit memory window for BAR assignment */
static bool scanned;

static u64 cfg_addr(const struct pci_dev *d, u16 off)
{
	return ecam + ((u64)d->bus << 20) + ((u64)d->dev << 15) + ((u64)d->fn << 12) + off;
}

static void cf8_select(const struct pci_dev *d, u16 off)
{
	outl(0xCF8, 0x80000000u | (u32)d->bus << 16 | (u32)d->dev << 11 | (u32)d->fn << 8 |
			    (off & 0xFC));
}

u32 pci_read32(const struct pci_dev *d, u16 off)
{
	if (ecam)
		return mmio_r32(cfg_addr(d, off));
	if (!have_cf8)
		return 0xFFFFFFFFu;
	cf8_select(d, off);
	return inl(0xCFC);
}

u16 pci_read16(const struct pci_dev *d, u16 off)
{
	return (u16)(pci_read32(d, off & ~3) >> ((off & 2) * 8));
}

u8 pci_read8(const struct pci_dev *d, u16 off)
{
	return (u8)(pci_read32(d, off & ~3) >> ((off & 3) * 8));
}

void pci_write32(const struct pci_dev *d, u16 off, u32 v)
{
	if (ecam) {
		mmio_w32(cfg_addr(d, off), v);
	} else if (have_cf8) {
		cf8_select(d, off);
		outl(0xCFC, v);
	}
}

void pci_write16(const struct pci_dev *d, u16 off, u16 v)
{
	if (ecam) {
		mmio_w16(cfg_addr(d, off), v);
	} else if (have_cf8) {
		cf8_select(d, off);
		outw((u16)(0xCFC + (off & 2)), v);
	}
}

/* Any function 0 on bus 0 answering: the ECAM guess is plausible. */
static bool ecam_answers(u64 base)
{
	for (u32 dev = 0; dev < 32; dev++) {
		u32 id = mmio_r32(base + ((u64)dev << 15));
		if (id != 0xFFFFFFFFu && id != 0)
			return true;
	}
	return false;
}

static void find_config_space(void)
{
	u64 b[8], l[8];
	if (opt.ecam) {
		ecam = opt.ecam;
		ecam_how = "oxtest.ecam";
		return;
	}
	if (acpi.mcfg) {
		u64 base;
		memcpy(&base, acpi.mcfg + 44, 8);
		if (base && base < 0x100000000ull) {
			ecam = base;
			ecam_how = "MCFG";
			return;
		}
	}
	/* No MCFG (QEMU microvm): the host bridge's ECAM is the memory range of a PNP0C02
	 * (motherboard resources) device, 1 MiB aligned, a multiple of 1 MiB, below 4 GiB,
	 * where some bus-0 device answers. */
	for (int nth = 0; nth < 4; nth++) {
		int k = acpi_dev_mem("PNP0C02", nth, b, l, 8);
		for (int i = 0; i < k; i++) {
			if (!(b[i] & 0xFFFFF) && l[i] >= 0x100000 && !(l[i] & 0xFFFFF) &&
			    b[i] + l[i] <= 0x100000000ull && ecam_answers(b[i])) {
				ecam = b[i];
				ecam_how = "DSDT PNP0C02 _CRS";
				return;
			}
		}
	}
	u32 old = inl(0xCF8);
	outl(0xCF8, 0x80000000u);
	have_cf8 = inl(0xCF8) == 0x80000000u;
	outl(0xCF8, old);
	ecam_how = have_cf8 ? "port 0xCF8" : "none";
}

/* The 32-bit window BARs may be assigned from: oxtest.mmio32, else the largest memory
 * range below 4 GiB in the host bridge's (PNP0A08/PNP0A03) _CRS that is not the ECAM,
 * else the largest such range of at least 16 MiB in any _CRS of the DSDT. */
static void find_window(void)
{
	if (opt.mmio32_size) {
		win_base = opt.mmio32;
		win_end = opt.mmio32 + opt.mmio32_size;
		return;
	}
	u64 b[8], l[8];
	int k = acpi_dev_mem("PNP0A08", 0, b, l, 8);
	if (!k)
		k = acpi_dev_mem("PNP0A03", 0, b, l, 8);
	/* q35-style DSDTs declare the host bridge's _CRS in a later Scope: take the
	 * largest range of any _CRS then (at least 16 MiB, so not a device's own) */
	u64 min = 0x10000;
	if (!k) {
		k = acpi_dev_mem(NULL, 0, b, l, 8);
		min = 0x1000000;
	}
	for (int i = 0; i < k; i++) {
		if (b[i] + l[i] > 0x100000000ull || l[i] < min)
			continue;
		if (ecam && b[i] <= ecam && ecam < b[i] + l[i])
			continue;
		/* prefer a window at or above 3 GiB (mapped uncached), then the largest */
		bool hi = b[i] >= 0xC0000000ull, cur_hi = win_base >= 0xC0000000ull;
		if ((hi && !cur_hi) || (hi == cur_hi && l[i] > win_end - win_base)) {
			win_base = b[i];
			win_end = b[i] + l[i];
		}
	}
}

static void size_bars(struct pci_dev *d)
{
	int nbars = (d->hdr & 0x7F) == 1 ? 2 : 6;
	if ((d->hdr & 0x7F) > 1)
		return;
	u16 cmd = pci_read16(d, 0x04);
	pci_write16(d, 0x04, cmd & ~3);
	for (int i = 0; i < nbars; i++) {
		u16 off = (u16)(0x10 + 4 * i);
		u32 v = pci_read32(d, off);
		pci_write32(d, off, 0xFFFFFFFFu);
		u32 m = pci_read32(d, off);
		pci_write32(d, off, v);
		if (!m || m == 0xFFFFFFFFu)
			continue;
		if (v & 1) {
			d->bar_io[i] = true;
			d->bar[i] = v & ~3u;
			d->bar_size[i] = (u16)(~(m & ~3u) + 1);
			continue;
		}
		u64 base = v & ~0xFu, mask = 0xFFFFFFFF00000000ull | (m & ~0xFu);
		if (((v >> 1) & 3) == 2 && i + 1 < nbars) {
			d->bar64[i] = true;
			u32 hi = pci_read32(d, off + 4);
			pci_write32(d, off + 4, 0xFFFFFFFFu);
			u32 mh = pci_read32(d, off + 4);
			pci_write32(d, off + 4, hi);
			base |= (u64)hi << 32;
			mask = (u64)mh << 32 | (m & ~0xFu);
		}
		d->bar[i] = base;
		d->bar_size[i] = ~mask + 1;
		if (d->bar64[i])
			i++;
	}
	pci_write16(d, 0x04, cmd);
}

/* Whether [a, a + sz) overlaps a memory BAR some function already has. */
static bool bar_overlaps(u64 a, u64 sz)
{
	for (int i = 0; i < pci_ndevs; i++)
		for (int b = 0; b < 6; b++) {
			const struct pci_dev *o = &pci_devs[i];
			if (o->bar_size[b] && !o->bar_io[b] && o->bar[b] &&
			    a < o->bar[b] + o->bar_size[b] && o->bar[b] < a + sz)
				return true;
		}
	return false;
}

/* An sz-aligned place for a BAR of sz bytes in the window: above every BAR
 * firmware placed if there is room, else the lowest free gap (firmware that
 * fills the window from its top, as SeaBIOS does, leaves room below). */
static u64 window_place(u64 sz)
{
	u64 a = (win_next + sz - 1) & ~(sz - 1);
	if (a + sz <= win_end)
		return a;
	for (a = (win_base + sz - 1) & ~(sz - 1); a + sz <= win_end; a += sz)
		if (!bar_overlaps(a, sz))
			return a;
	return 0;
}

static void assign_bars(struct pci_dev *d)
{
	bool changed = false;
	u16 cmd = pci_read16(d, 0x04);
	for (int i = 0; i < 6; i++) {
		u64 sz = d->bar_size[i];
		if (!sz || d->bar_io[i])
			continue;
		if (d->bar[i] && d->bar[i] + sz <= 0x100000000ull)
			continue;
		u64 a = win_base ? window_place(sz) : 0;
		if (!a) {
			d->bar_unassigned |= (u8)(1 << i);
			continue;
		}
		if (!changed)
			pci_write16(d, 0x04, cmd & ~3);
		changed = true;
		if (a + sz > win_next)
			win_next = a + sz;
		d->bar[i] = a;
		pci_write32(d, (u16)(0x10 + 4 * i), (u32)a);
		if (d->bar64[i])
			pci_write32(d, (u16)(0x14 + 4 * i), 0);
		d->bar_assigned |= (u8)(1 << i);
	}
	/* memory space and bus mastering on (I/O space left as firmware set it) */
	pci_write16(d, 0x04, (u16)(cmd | 0x06));
}

static void add_function(u8 bus, u8 dev, u8 fn, u32 id)
{
	if (pci_ndevs >= MAX_PCI)
		return;
	struct pci_dev *d = &pci_devs[pci_ndevs++];
	memset(d, 0, sizeof(*d));
	d->bus = bus;
	d->dev = dev;
	d->fn = fn;
	d->vendor = (u16)id;
	d->device = (u16)(id >> 16);
	d->class = pci_read32(d, 0x08) >> 8;
	d->hdr = pci_read8(d, 0x0E);
	if (pci_read16(d, 0x06) & 0x10) {
		u8 p = pci_read8(d, 0x34) & 0xFC;
		for (int n = 0; p && n < 48; n++) {
			u8 cid = pci_read8(d, p);
			if (cid == 0x11)
				d->msix = p;
			else if (cid == 0x09 && d->nvcaps < 8)
				d->vcap[d->nvcaps++] = p;
			p = pci_read8(d, (u16)(p + 1)) & 0xFC;
		}
	}
	size_bars(d);
}

static void scan_bus(u8 bus, int depth)
{
	for (u8 dev = 0; dev < 32; dev++) {
		for (u8 fn = 0; fn < 8; fn++) {
			struct pci_dev probe = { .bus = bus, .dev = dev, .fn = fn };
			u32 id = pci_read32(&probe, 0);
			if (id == 0xFFFFFFFFu || (u16)id == 0xFFFF || id == 0) {
				if (fn == 0)
					break;
				continue;
			}
			add_function(bus, dev, fn, id);
			u8 hdr = pci_read8(&probe, 0x0E);
			if ((hdr & 0x7F) == 1 && depth < 4) {
				u8 sec = pci_read8(&probe, 0x19);
				if (sec > bus)
					scan_bus(sec, depth + 1);
			}
			if (fn == 0 && !(hdr & 0x80))
				break;
		}
	}
}

static int kind_type(const char *k, usize n)
{
	static const struct { const char *name; int type; } kinds[] = {
		{ "net", 1 }, { "blk", 2 }, { "console", 3 }, { "rng", 4 },
		{ "balloon", 5 }, { "gpu", 16 }, { "vsock", 19 },
	};
	for (usize i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strlen(kinds[i].name) == n && memcmp(kinds[i].name, k, n) == 0)
			return kinds[i].type;
	return -1;
}

const char *virtio_kind(int type)
{
	switch (type) {
	case 1: return "net";
	case 2: return "blk";
	case 3: return "console";
	case 4: return "rng";
	case 5: return "balloon";
	case 16: return "gpu";
	case 18: return "input";
	case 19: return "vsock";
	default: return "virtio";
	}
}

static int hexval(const char *s, usize n)
{
	int v = 0;
	if (!n || n > 2)
		return -1;
	for (usize i = 0; i < n; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* oxtest.devs=SLOT:KIND[:FLAG],... (SLOT in hex, bus 0 function 0). */
static void parse_expect(void)
{
	char item[32];
	for (const char *p = next_item(opt.devs, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item))) {
		if (!item[0] || pci_nexpect >= MAX_PCI)
			continue;
		struct pci_expect *e = &pci_expect[pci_nexpect];
		memset(e, 0, sizeof(*e));
		const char *c1 = item;
		while (*c1 && *c1 != ':')
			c1++;
		const char *k = *c1 ? c1 + 1 : c1;
		const char *c2 = k;
		while (*c2 && *c2 != ':')
			c2++;
		e->slot = hexval(item, (usize)(c1 - item));
		e->type = kind_type(k, (usize)(c2 - k));
		if (*c2)
			snprintf(e->flag, sizeof(e->flag), "%s", c2 + 1);
		snprintf(e->text, sizeof(e->text), "%s", item);
		pci_nexpect++;
	}
}

void pci_scan(void)
{
	if (scanned)
		return;
	scanned = true;
	parse_expect();
	find_config_space();
	if (!ecam && !have_cf8)
		return;
	find_window();
	scan_bus(0, 0);
	/* Allocate above every BAR firmware already placed in the window. */
	win_next = win_base;
	for (int i = 0; i < pci_ndevs; i++)
		for (int b = 0; b < 6; b++) {
			struct pci_dev *d = &pci_devs[i];
			u64 e = d->bar[b] + d->bar_size[b];
			if (!d->bar_io[b] && d->bar[b] >= win_base && e <= win_end && e > win_next)
				win_next = e;
		}
	for (int i = 0; i < pci_ndevs; i++)
		assign_bars(&pci_devs[i]);
}

void pci_rescan(void)
{
	scanned = false;
	pci_ndevs = 0;
	pci_scan();
}

struct pci_dev *pci_find(int bus, int dev, int fn)
{
	for (int i = 0; i < pci_ndevs; i++)
		if (pci_devs[i].bus == bus && pci_devs[i].dev == dev && pci_devs[i].fn == fn)
			return &pci_devs[i];
	return NULL;
}

static void print_dev(const struct pci_dev *d)
{
	char line[256];
	usize n = (usize)snprintf(line, sizeof(line), "INFO pci %02x:%02x.%u %04x:%04x class %06x",
				  d->bus, d->dev, d->fn, d->vendor, d->device, d->class);
	for (int b = 0; b < 6 && n < sizeof(line); b++) {
		if (!d->bar_size[b])
			continue;
		n += (usize)snprintf(line + n, sizeof(line) - n, " bar%d=%s0x%llx+0x%llx%s", b,
				     d->bar_io[b] ? "io:" : "", d->bar[b], d->bar_size[b],
				     d->bar_assigned & (1 << b) ? "(assigned)" :
				     d->bar_unassigned & (1 << b) ? "(unassigned)" : "");
	}
	if (n < sizeof(line))
		n += (usize)snprintf(line + n, sizeof(line) - n, "%s%s",
				     d->msix ? " msix" : "", d->nvcaps ? " virtio-caps" : "");
	println("%s", line);
}

/* Virtio vendor capabilities: type 1 common (>= 56 bytes), 2 notify (cap_len >= 20),
 * 3 ISR (>= 1), 4 device (needed unless the device has no config, e.g. rng); each
 * inside a sized, assigned memory BAR. */
bool virtio_caps_ok(const struct pci_dev *d, int type, struct why *w)
{
	bool seen[6] = { false };
	bool ok = true;
	for (int i = 0; i < d->nvcaps; i++) {
		u8 p = d->vcap[i];
		u8 clen = pci_read8(d, (u16)(p + 2)), ct = pci_read8(d, (u16)(p + 3));
		u8 bar = pci_read8(d, (u16)(p + 4));
		u32 off = pci_read32(d, (u16)(p + 8)), len = pci_read32(d, (u16)(p + 12));
		if (ct < 1 || ct > 4)
			continue;           /* PCI config access / shared memory: not needed */
		if (clen < 16 || (ct == 2 && clen < 20)) {
			why_add(w, "cap type %u length %u", ct, clen);
			ok = false;
			continue;
		}
		if (bar > 5 || !d->bar_size[bar] || d->bar_io[bar] || !d->bar[bar] ||
		    (u64)off + len > d->bar_size[bar]) {
			why_add(w, "cap type %u: bar %u offset 0x%x length 0x%x outside a memory BAR",
				ct, bar, off, len);
			ok = false;
			continue;
		}
		if ((ct == 1 && len < 56) || (ct == 3 && len < 1)) {
			why_add(w, "cap type %u: length 0x%x too small", ct, len);
			ok = false;
			continue;
		}
		if (!seen[ct])
			seen[ct] = true;
	}
	static const char *const names[] = { "", "common", "notify", "isr", "device" };
	for (int ct = 1; ct <= 4; ct++) {
		if (seen[ct] || (ct == 4 && type == 4))
			continue;
		why_add(w, "no %s cap", names[ct]);
		ok = false;
	}
	return ok;
}

void check_pci(void)
{
	pci_scan();
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	println("INFO pci config space: %s 0x%llx, bar window 0x%llx-0x%llx", ecam_how, ecam,
		win_base, win_end ? win_end - 1 : 0);
	if (!ecam && !have_cf8) {
		why_add(&w, "no configuration space (no MCFG, no PNP0C02 ECAM, no port 0xCF8)");
		report("pci", false, &w);
		return;
	}
	for (int i = 0; i < pci_ndevs; i++)
		print_dev(&pci_devs[i]);
	if (!pci_ndevs)
		why_add(&w, "no function on bus 0");
	report("pci", w.len == 0, &w);
	for (int i = 0; i < pci_nexpect; i++) {
		struct pci_expect *e = &pci_expect[i];
		char name[32];
		snprintf(name, sizeof(name), "pci-%02x-%s", e->slot & 0xFF, virtio_kind(e->type));
		w.len = 0;
		w.buf[0] = 0;
		struct pci_dev *d = e->slot >= 0 ? pci_find(0, e->slot, 0) : NULL;
		if (e->slot < 0 || e->type < 0) {
			why_add(&w, "bad oxtest.devs item \"%s\"", e->text);
		} else if (!d) {
			why_add(&w, "no device at 00:%02x.0", e->slot);
		} else {
			if (d->vendor != 0x1AF4)
				why_add(&w, "vendor 0x%04x, want 0x1af4", d->vendor);
			if (d->device != 0x1040 + e->type)
				why_add(&w, "device id 0x%04x, want 0x%04x", d->device, 0x1040 + e->type);
			virtio_caps_ok(d, e->type, &w);
			if (d->bar_unassigned)
				why_add(&w, "BARs 0x%x unassigned (no window)", d->bar_unassigned);
			println("INFO pci-%02x %s msix %s, %u virtio caps", e->slot,
				virtio_kind(e->type), d->msix ? "present" : "absent", d->nvcaps);
		}
		report(name, w.len == 0, &w);
	}
}
