/* testos main: read hvm_start_info (PVH) or the multiboot2 information, run the
 * selected checks, print DONE, act. */
#include "testos.h"

#define HVM_START_MAGIC 0x336ec578u

static char cmdline_copy[1024];
static int passed, failed;

void report(const char *name, bool ok, const struct why *w)
{
	if (ok && w->len == 0) {
		println("PASS %s", name);
		passed++;
	} else {
		println("FAIL %s: %s", name, w->len ? w->buf : "failed");
		failed++;
	}
}

/* Checks that report their own (per-device) results. */
static const struct {
	const char *name;
	void (*fn)(void);
} multi[] = {
	{ "pci", check_pci }, { "blk", check_blk }, { "rng", check_rng },
	{ "console", check_console }, { "balloon", check_balloon }, { "vsock", check_vsock },
	{ "net", check_net }, { "blkbench", check_blkbench }, { "netbench", check_netbench },
	{ "display", check_display }, { "gpu", check_gpu }, { "e1000", check_e1000 },
};

static void run_check(const char *name)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	bool ok;
	for (usize i = 0; i < sizeof(multi) / sizeof(multi[0]); i++) {
		if (strncmp(name, multi[i].name, strlen(multi[i].name) + 1) == 0) {
			pci_scan();
			multi[i].fn();
			return;
		}
	}
	if (strncmp(name, "e820", 5) == 0)
		ok = check_e820(&w);
	else if (strncmp(name, "acpi", 5) == 0)
		ok = check_acpi(&w);
	else if (strncmp(name, "smp", 4) == 0)
		ok = check_smp(&w);
	else if (strncmp(name, "rtc", 4) == 0)
		ok = check_rtc(&w);
	else if (strncmp(name, "finish", 7) == 0)
		ok = check_finish(&w);
	else {
		ok = false;
		why_add(&w, "unknown check");
	}
	report(name, ok, &w);
}

static void run_checks(void);

static void copy_cmdline(const char *c)
{
	usize i = 0;
	for (; c && i < sizeof(cmdline_copy) - 1 && c[i]; i++)
		cmdline_copy[i] = c[i];
	cmdline_copy[i] = 0;
}

/* Multiboot2 (GRUB, from firmware): the information's contents are copied before
 * anything can overwrite them (the AP trampoline page, DMA buffers). The firmware left
 * the 8259 PICs programmed (SeaBIOS: IRQ 0, the timer, on vector 8): both are masked so
 * that enabling interrupts only lets through what the checks route via the IOAPIC. */
static u64 boot_multiboot2(u32 mbi)
{
	struct boot_info bi;
	mb2_read(mbi, &bi);
	copy_cmdline(bi.cmdline);
	println("INFO testos mbi=0x%x size=%u cmdline=\"%s\"", mbi, bi.mbi_size, cmdline_copy);
	println("INFO boot multiboot2");
	println("INFO multiboot2 loader \"%s\", tags %s, %u memory map entries", bi.loader,
		bi.tags, bi.mmap_entries);
	if (bi.efi_st)
		println("INFO multiboot2 EFI system table at 0x%llx", bi.efi_st);
	if (bi.rsdp)
		println("INFO multiboot2 rsdp 0x%llx from tag %u: %s", bi.rsdp, bi.rsdp_tag,
			bi.rsdp_how);
	else
		println("INFO multiboot2 rsdp: %s", bi.rsdp_how);
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	return bi.rsdp;
}

void kmain(u32 start_info)
{
	serial_init();
	if (boot_protocol == BOOT_MULTIBOOT2) {
		u64 rsdp = boot_multiboot2(start_info);
		cmdline_parse(cmdline_copy);
		idt_init();
		acpi_init(rsdp);
		tsc_calibrate();
		run_checks();
		return;
	}
	const u8 *si = (const u8 *)(usize)start_info;
	u32 magic = 0, version = 0;
	u64 cmdline = 0, rsdp = 0, memmap = 0;
	u32 memmap_entries = 0;
	if (si) {
		memcpy(&magic, si, 4);
		memcpy(&version, si + 4, 4);
	}
	if (magic != HVM_START_MAGIC) {
		println("INFO bad hvm_start_info magic 0x%x at 0x%x", magic, start_info);
		println("FAIL boot: hvm_start_info magic");
		println("DONE passed=0 failed=1");
		cli();
		for (;;)
			__asm__ volatile("hlt");
	}
	memcpy(&cmdline, si + 24, 8);
	memcpy(&rsdp, si + 32, 8);
	if (version >= 1) {
		memcpy(&memmap, si + 40, 8);
		memcpy(&memmap_entries, si + 48, 4);
	}
	if (cmdline)
		copy_cmdline((const char *)(usize)cmdline);
	println("INFO testos start_info=0x%x version=%u cmdline=\"%s\"", start_info, version,
		cmdline_copy);
	println("INFO boot pvh");
	cmdline_parse(cmdline_copy);
	e820_capture(memmap, memmap_entries);
	idt_init();
	acpi_init(rsdp);
	tsc_calibrate();
	run_checks();
}

static void run_checks(void)
{
	char item[32];
	for (const char *p = next_item(opt.checks, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item)))
		if (item[0])
			run_check(item);
	println("DONE passed=%d failed=%d", passed, failed);
	do_action(opt.then);
}
