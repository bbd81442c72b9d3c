/* testos main: read hvm_start_info, run the selected checks, print DONE, act. */
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

void kmain(u32 start_info)
{
	serial_init();
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
	if (cmdline) {
		const char *c = (const char *)(usize)cmdline;
		usize i = 0;
		for (; i < sizeof(cmdline_copy) - 1 && c[i]; i++)
			cmdline_copy[i] = c[i];
		cmdline_copy[i] = 0;
	}
	println("INFO testos start_info=0x%x version=%u cmdline=\"%s\"", start_info, version,
		cmdline_copy);
	cmdline_parse(cmdline_copy);
	e820_capture(memmap, memmap_entries);
	idt_init();
	acpi_init(rsdp);
	tsc_calibrate();

	char item[32];
	for (const char *p = next_item(opt.checks, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item)))
		if (item[0])
			run_check(item);
	println("DONE passed=%d failed=%d", passed, failed);
	do_action(opt.then);
}
