/* Ring 3 set-up: the TSS (ring-0 stack for interrupts and exceptions taken in user
 * mode) and a user stack. See ring3.S. */
#include "testos.h"

struct tss64 {
	u32 reserved0;
	u64 rsp0, rsp1, rsp2;
	u64 reserved1;
	u64 ist[7];
	u64 reserved2;
	u16 reserved3, iomap;
} __attribute__((packed));

extern u64 gdt_tss[2];
u64 user_call(u64 (*fn)(void *), void *arg, void *stack_top);
void user_return(void) __attribute__((noreturn));
extern char user_exit[];

static struct tss64 tss __attribute__((aligned(16)));
static u8 kstack[16384] __attribute__((aligned(16)));
static u8 ustack[65536] __attribute__((aligned(16)));
static bool ready;

/* Called by isr_dispatch for #UD: the user side's way back. */
void user_exception(u64 vector, u64 rip, u64 cs)
{
	if (ready && vector == 6 && rip == (u64)(usize)user_exit && (cs & 3) == 3)
		user_return();
}

u64 run_user(u64 (*fn)(void *), void *arg)
{
	if (!ready) {
		u64 base = (u64)(usize)&tss, limit = sizeof(tss) - 1;
		tss.rsp0 = (u64)(usize)(kstack + sizeof(kstack));
		tss.iomap = sizeof(tss);
		gdt_tss[0] = (limit & 0xFFFF) | (base & 0xFFFFFF) << 16 | 0x89ull << 40 |
			     ((limit >> 16) & 0xF) << 48 | ((base >> 24) & 0xFF) << 56;
		gdt_tss[1] = base >> 32;
		__asm__ volatile("ltr %w0" ::"r"(0x30) : "memory");
		ready = true;
	}
	return user_call(fn, arg, ustack + sizeof(ustack));
}
