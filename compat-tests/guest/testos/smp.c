/* Application processors: INIT / SIPI / SIPI through the LAPIC, one AP at a time.
 * The trampoline (ap_trampoline.S) is copied to TRAMP_BASE; each AP lands in ap_main. */
#include "testos.h"

#define AP_STACK 8192
#define AP_START_TIMEOUT_MS 5000

extern char tramp_start[], tramp_end[], tramp_cr3[], tramp_stack[], tramp_entry[];
extern char ap_entry64[];

static u8 ap_stacks[MAX_CPUS][AP_STACK] __attribute__((section(".stack"), aligned(16)));
static volatile u32 ap_count;
static volatile u32 ap_started;
static bool tramp_ready;

/* Each AP's task: a sum the BSP checks, so the AP really ran code. */
#define AP_TASK_N 10000u
static volatile u32 ap_task_result;

static u32 ap_task(void)
{
	u32 sum = 0;
	for (u32 i = 0; i < AP_TASK_N; i++)
		sum += i * i;
	return sum;
}

static void *tramp_ptr(const char *sym)
{
	return (void *)(usize)(TRAMP_BASE + (usize)(sym - tramp_start));
}

void ap_main(void)
{
	idt_load_current();
	println("INFO ap %u up", lapic_id());
	ap_task_result = ap_task();
	__atomic_add_fetch(&ap_count, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ap_started, 1, __ATOMIC_RELEASE);
	for (;;)
		__asm__ volatile("cli; hlt");
}

static bool wait_started(u64 ms)
{
	u64 end = rdtsc() + ms_to_tsc(ms);
	while (!__atomic_load_n(&ap_started, __ATOMIC_ACQUIRE)) {
		if (rdtsc() > end)
			return false;
		cpu_relax();
	}
	return true;
}

static void tramp_setup(void)
{
	if (tramp_ready)
		return;
	memcpy((void *)(usize)TRAMP_BASE, tramp_start, (usize)(tramp_end - tramp_start));
	u64 cr3;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	*(volatile u32 *)tramp_ptr(tramp_cr3) = (u32)cr3;
	*(volatile u64 *)tramp_ptr(tramp_entry) = (u64)(usize)ap_entry64;
	tramp_ready = true;
}

bool smp_start_ap(int idx, u32 id)
{
	if (idx < 0 || idx >= MAX_CPUS)
		return false;
	lapic_init();
	tramp_setup();
	*(volatile u64 *)tramp_ptr(tramp_stack) = (u64)(usize)&ap_stacks[idx][AP_STACK];
	ap_task_result = 0;
	__atomic_store_n(&ap_started, 0, __ATOMIC_RELEASE);
	lapic_send_ipi(id, 0x00004500);                   /* INIT, assert */
	delay_us(10000);
	lapic_send_ipi(id, 0x00004600 | (TRAMP_BASE >> 12)); /* start-up */
	if (!wait_started(1)) {
		lapic_send_ipi(id, 0x00004600 | (TRAMP_BASE >> 12));
		if (!wait_started(AP_START_TIMEOUT_MS))
			return false;
	}
	return ap_task_result == ap_task();
}

bool check_smp(struct why *w)
{
	if (!acpi.madt) {
		why_add(w, "no MADT");
		return false;
	}
	int want = opt.cpus >= 0 ? opt.cpus : acpi.ncpus;
	if (acpi.ncpus > MAX_CPUS) {
		why_add(w, "%d CPUs, at most %d supported", acpi.ncpus, MAX_CPUS);
		return false;
	}
	lapic_init();
	u32 bsp = lapic_id();
	println("INFO smp bsp apic id %u, %s mode, %d CPUs in MADT", bsp,
		lapic_x2apic() ? "x2apic" : "xapic", acpi.ncpus);
	if (e820_count && !e820_is_ram(TRAMP_BASE, TRAMP_BASE + 0x1000))
		println("INFO smp trampoline page 0x%x is not RAM in the e820 map", TRAMP_BASE);

	u64 t0 = rdtsc();
	for (int i = 0; i < acpi.ncpus; i++) {
		u32 id = acpi.apic_ids[i];
		if (id == bsp)
			continue;
		if (!smp_start_ap(i, id))
			why_add(w, "AP %u did not start", id);
	}
	u64 end = rdtsc() + ms_to_tsc(1000);
	while ((int)ap_count < want - 1 && rdtsc() < end)
		cpu_relax();
	println("INFO smp %u APs up in %llu ms", ap_count, (rdtsc() - t0) / ms_to_tsc(1));
	if ((int)ap_count != want - 1)
		why_add(w, "%u APs up, want %d", ap_count, want - 1);
	return w->len == 0;
}
