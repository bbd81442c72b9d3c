/* The memory map handed over in hvm_start_info (memmap_paddr/memmap_entries), or in the
 * multiboot2 memory map tag (same entry layout, e820 types). */
#include "testos.h"

extern char __kernel_start[], __kernel_end[];

struct e820_entry e820[MAX_E820];
u32 e820_count;
static u32 e820_given;

/* Entries of `stride` bytes (≥ 20) starting u64 addr, u64 size, u32 type:
 * hvm_memmap_table_entry (24 bytes, then u32 reserved) and multiboot2's mmap entry (the
 * tag's entry_size, 24 today, then u32 zero). */
void e820_capture_stride(u64 paddr, u32 entries, u32 stride)
{
	e820_given = entries;
	if (!paddr)
		return;
	const u8 *p = (const u8 *)paddr;
	for (u32 i = 0; i < entries && i < MAX_E820; i++) {
		memcpy(&e820[i].addr, p + i * stride, 8);
		memcpy(&e820[i].size, p + i * stride + 8, 8);
		memcpy(&e820[i].type, p + i * stride + 16, 4);
		e820_count++;
	}
}

void e820_capture(u64 paddr, u32 entries)
{
	e820_capture_stride(paddr, entries, 24);
}

static const char *type_name(u32 t)
{
	static char other[16];
	switch (t) {
	case 1: return "ram";
	case 2: return "reserved";
	case 3: return "acpi";
	case 4: return "nvs";
	case 5: return "unusable";
	case 7: return "pmem";
	default:
		snprintf(other, sizeof(other), "type%u", t);
		return other;
	}
}

bool e820_is_ram(u64 start, u64 end)
{
	for (u32 i = 0; i < e820_count; i++)
		if (e820[i].type == 1 && e820[i].addr <= start && end <= e820[i].addr + e820[i].size)
			return true;
	return false;
}

/* oxtest.e820=lax: drop empty entries and sort by address before checking, saying so
 * on INFO lines. QEMU's PVH boot hands over such a map (unsorted, one empty entry). */
static void lax_fixup(void)
{
	u32 n = 0;
	for (u32 i = 0; i < e820_count; i++) {
		if (e820[i].size == 0) {
			println("INFO e820 lax: dropped empty entry %u (type %u)", i, e820[i].type);
			continue;
		}
		e820[n++] = e820[i];
	}
	e820_count = n;
	bool moved = false;
	for (u32 i = 1; i < n; i++) {
		struct e820_entry k = e820[i];
		u32 j = i;
		for (; j > 0 && e820[j - 1].addr > k.addr; j--)
			e820[j] = e820[j - 1];
		if (j != i)
			moved = true;
		e820[j] = k;
	}
	if (moved)
		println("INFO e820 lax: map was not sorted by address; sorted it");
}

bool check_e820(struct why *w)
{
	u64 ram = 0;
	if (e820_count == 0) {
		why_add(w, boot_protocol == BOOT_MULTIBOOT2
			? "no memory map in the multiboot2 information (no mmap tag or no entries)"
			: "no memory map in start info (version < 1 or no entries)");
		return false;
	}
	if (e820_given > MAX_E820)
		why_add(w, "too many entries (%u)", e820_given);
	for (u32 i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820[i];
		println("INFO e820 0x%016llx-0x%016llx %s", e->addr, e->addr + e->size - 1,
			type_name(e->type));
	}
	if (opt.e820_lax)
		lax_fixup();
	for (u32 i = 0; i < e820_count; i++) {
		const struct e820_entry *e = &e820[i];
		u64 end = e->addr + e->size;
		if (e->size == 0)
			why_add(w, "entry %u: zero size", i);
		if (end < e->addr)
			why_add(w, "entry %u: wraps around", i);
		if (e->type == 0)
			why_add(w, "entry %u: type 0", i);
		if (i > 0) {
			const struct e820_entry *p = &e820[i - 1];
			if (e->addr < p->addr)
				why_add(w, "entry %u: not sorted", i);
			else if (e->addr < p->addr + p->size)
				why_add(w, "entry %u: overlaps entry %u", i, i - 1);
		}
		if (e->type == 1)
			ram += e->size;
	}
	if (!e820_is_ram(0, 0x1000))
		why_add(w, "no RAM at address 0");
	if (!e820_is_ram((u64)(usize)__kernel_start, (u64)(usize)__kernel_end))
		why_add(w, "no RAM entry covering the kernel at 0x%llx-0x%llx",
			(u64)(usize)__kernel_start, (u64)(usize)__kernel_end);
	println("INFO e820 usable RAM %llu KiB", ram >> 10);
	if (opt.mem_mib >= 0) {
		u64 hi = (u64)opt.mem_mib << 20;
		u64 lo = opt.mem_mib >= 2 ? hi - (2ull << 20) : 0;
		if (ram < lo || ram > hi)
			why_add(w, "usable RAM %llu KiB not within [%llu, %llu] KiB", ram >> 10,
				lo >> 10, hi >> 10);
	}
	return w->len == 0;
}
