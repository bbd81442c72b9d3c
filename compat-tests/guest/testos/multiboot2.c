/* Multiboot2 boot information (GRUB's `multiboot2` command): the memory map, command
 * line and RSDP that the PVH start info would carry otherwise.
 *
 * Layout: u32 total_size, u32 reserved, then tags (u32 type, u32 size, payload), each
 * starting 8-byte aligned, ending with a type-0 tag. Used tags: 1 command line (string),
 * 2 boot loader name (string), 6 memory map (u32 entry_size, u32 entry_version, entries
 * of u64 base, u64 length, u32 type, u32 zero; e820 types), 12 EFI 64-bit system table
 * (u64), 14 ACPI old and 15 ACPI new (a copy of the RSDP). */
#include "testos.h"

#define MB2_TAG_END 0
#define MB2_TAG_CMDLINE 1
#define MB2_TAG_LOADER 2
#define MB2_TAG_MMAP 6
#define MB2_TAG_EFI64 12
#define MB2_TAG_ACPI_OLD 14
#define MB2_TAG_ACPI_NEW 15

/* The loader's RSDP copy, used as the RSDP when the original cannot be found. */
static u8 rsdp_copy[64] __attribute__((aligned(16)));

static u32 rd32(const u8 *p)
{
	u32 v;
	memcpy(&v, p, 4);
	return v;
}

static u64 rd64(const u8 *p)
{
	u64 v;
	memcpy(&v, p, 8);
	return v;
}

static void fail_boot(const char *why, u32 mbi)
{
	println("INFO multiboot2 entry: %%eax 0x%x, information at 0x%x", boot_mb2_magic, mbi);
	println("FAIL boot: %s", why);
	println("DONE passed=0 failed=1");
	cli();
	for (;;)
		__asm__ volatile("hlt");
}

/* Is the RSDP at a the one the loader copied (first n bytes equal)? Only below 4 GiB:
 * nothing above is mapped. */
static bool same_rsdp(u64 a, const u8 *copy, u32 n)
{
	return a && a + n <= 0x100000000ull && memcmp((const void *)a, copy, n) == 0;
}

/* UEFI: the ACPI 2.0 (8868e871-e4f1-11d3-bc22-0080c73c8881), else ACPI 1.0
 * (eb9d2d30-2d88-11d3-9a16-0090273fc14d) entry of the system table's configuration
 * table whose RSDP equals the copy. The system table and the configuration table are
 * runtime memory, still there after ExitBootServices. */
static u64 rsdp_from_efi(u64 st, const u8 *copy, u32 n)
{
	static const u8 acpi20[16] = { 0x71, 0xe8, 0x68, 0x88, 0xf1, 0xe4, 0xd3, 0x11,
				       0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81 };
	static const u8 acpi10[16] = { 0x30, 0x2d, 0x9d, 0xeb, 0x88, 0x2d, 0xd3, 0x11,
				       0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d };
	if (!st || st + 120 > 0x100000000ull || memcmp((const void *)st, "IBI SYST", 8) != 0)
		return 0;
	const u8 *s = (const u8 *)st;
	u64 count = rd64(s + 104), table = rd64(s + 112);
	if (count > 256 || !table || table + count * 24 > 0x100000000ull)
		return 0;
	for (int pass = 0; pass < 2; pass++)
		for (u64 i = 0; i < count; i++) {
			const u8 *e = (const u8 *)(table + i * 24);
			if (memcmp(e, pass ? acpi10 : acpi20, 16) == 0 &&
			    same_rsdp(rd64(e + 16), copy, n))
				return rd64(e + 16);
		}
	return 0;
}

/* BIOS: where a BIOS keeps it (and GRUB looks): the EBDA's first KiB, 0xE0000–0xFFFFF. */
static u64 rsdp_from_bios_areas(const u8 *copy, u32 n)
{
	u64 bda = 0x40e;                /* BDA word: the EBDA's segment */
	__asm__("" : "+r"(bda));        /* a run-time address, not a 0-sized object */
	u64 ebda = (u64)mmio_r16(bda) << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000)
		for (u64 a = ebda; a < ebda + 1024; a += 16)
			if (same_rsdp(a, copy, n))
				return a;
	for (u64 a = 0xe0000; a < 0x100000; a += 16)
		if (same_rsdp(a, copy, n))
			return a;
	return 0;
}

void mb2_read(u32 mbi, struct boot_info *bi)
{
	static char loader[64];
	memset(bi, 0, sizeof(*bi));
	if (boot_mb2_magic != MB2_BOOT_MAGIC)
		fail_boot("multiboot2 magic", mbi);
	if (!mbi || (mbi & 7))
		fail_boot("multiboot2 information address", mbi);
	const u8 *base = (const u8 *)(usize)mbi;
	u32 total = rd32(base);
	if (total < 16 || total > (1u << 20))
		fail_boot("multiboot2 information size", mbi);

	const u8 *acpi_new = NULL, *acpi_old = NULL;
	u32 acpi_new_len = 0, acpi_old_len = 0, mmap_entries = 0;
	u64 efi_st = 0;
	bool ended = false;
	static char tags[96];
	usize tl = 0;
	tags[0] = 0;
	for (u32 off = 8; off + 8 <= total;) {
		const u8 *t = base + off;
		u32 type = rd32(t), size = rd32(t + 4);
		if (type == MB2_TAG_END) {
			ended = true;
			break;
		}
		if (size < 8 || off + size > total)
			fail_boot("multiboot2 information: malformed tag", mbi);
		if (tl + 5 < sizeof(tags))
			tl += (usize)snprintf(tags + tl, sizeof(tags) - tl, "%s%u", tl ? "," : "",
					      type);
		switch (type) {
		case MB2_TAG_CMDLINE:
			bi->cmdline = (const char *)(t + 8);
			if (memfind(t + 8, size - 8, "", 1) == NULL)   /* no NUL inside the tag */
				bi->cmdline = NULL;
			break;
		case MB2_TAG_LOADER: {
			usize i = 0;
			for (; i < sizeof(loader) - 1 && i < size - 8 && t[8 + i]; i++)
				loader[i] = (char)t[8 + i];
			loader[i] = 0;
			break;
		}
		case MB2_TAG_MMAP: {
			u32 esz = size >= 16 ? rd32(t + 8) : 0;
			if (esz >= 20 && !mmap_entries) {      /* the first map only */
				mmap_entries = (size - 16) / esz;
				e820_capture_stride((u64)(usize)(t + 16), mmap_entries, esz);
			}
			break;
		}
		case MB2_TAG_EFI64:
			if (size >= 16)
				efi_st = rd64(t + 8);
			break;
		case MB2_TAG_ACPI_OLD:
			acpi_old = t + 8;
			acpi_old_len = size - 8;
			break;
		case MB2_TAG_ACPI_NEW:
			acpi_new = t + 8;
			acpi_new_len = size - 8;
			break;
		}
		off += (size + 7) & ~7u;
	}
	if (!ended)
		println("INFO multiboot2 information has no end tag within %u bytes", total);
	bi->mbi_size = total;
	bi->loader = loader;
	bi->tags = tags;
	bi->mmap_entries = mmap_entries;
	bi->efi_st = efi_st;

	/* The RSDP: the tags hold a copy (GRUB copies 20 bytes for revision 0, `length`
	 * bytes for revision 2). Point acpi_init at the firmware's original, whose address
	 * the tables' consumers see; only if it cannot be found, at a copy of the copy (the
	 * information itself may be overwritten later). */
	const u8 *copy = acpi_new ? acpi_new : acpi_old;
	u32 len = acpi_new ? acpi_new_len : acpi_old_len;
	u32 n = len < 36 ? len : 36;
	bi->rsdp_how = "no ACPI tag: scanning 0xE0000-0xFFFFF";
	if (copy && n >= 20 && memcmp(copy, "RSD PTR ", 8) == 0) {
		u64 a = rsdp_from_efi(efi_st, copy, n);
		bi->rsdp_how = "the original, found through the EFI system table";
		if (!a) {
			a = rsdp_from_bios_areas(copy, n);
			bi->rsdp_how = "the original, found in the BIOS areas";
		}
		if (!a) {
			memcpy(rsdp_copy, copy, len < sizeof(rsdp_copy) ? len : sizeof(rsdp_copy));
			a = (u64)(usize)rsdp_copy;
			bi->rsdp_how = "the original not found: a copy of the loader's copy";
		}
		bi->rsdp = a;
		bi->rsdp_tag = acpi_new ? MB2_TAG_ACPI_NEW : MB2_TAG_ACPI_OLD;
	} else if (copy) {
		bi->rsdp_how = "ACPI tag without an RSDP: scanning 0xE0000-0xFFFFF";
	}
}
