/* IDT: every vector goes to isr_dispatch. Exceptions are reported and stop the CPU;
 * interrupts call a registered handler and are acknowledged at the LAPIC. */
#include "testos.h"

struct frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vec, err, rip, cs, rflags, rsp, ss;
};

struct gate {
	u16 off0, sel;
	u8 ist, type;
	u16 off1;
	u32 off2, zero;
} __attribute__((packed));

extern char isr_stubs[];
static struct gate idt[256] __attribute__((aligned(16)));
static irq_handler handlers[256];
static struct {
	u16 limit;
	u64 base;
} __attribute__((packed)) idtr;

void idt_load_current(void)
{
	__asm__ volatile("lidt %0" ::"m"(idtr));
}

void idt_init(void)
{
	for (int v = 0; v < 256; v++) {
		u64 a = (u64)(usize)isr_stubs + 16 * v;
		idt[v].off0 = (u16)a;
		idt[v].sel = 0x18;
		idt[v].ist = 0;
		idt[v].type = 0x8E;       /* present, ring 0, 64-bit interrupt gate */
		idt[v].off1 = (u16)(a >> 16);
		idt[v].off2 = (u32)(a >> 32);
		idt[v].zero = 0;
	}
	idtr.limit = sizeof(idt) - 1;
	idtr.base = (u64)(usize)idt;
	idt_load_current();
}

void irq_set_handler(u8 vector, irq_handler h)
{
	handlers[vector] = h;
}

void isr_dispatch(struct frame *f);
void isr_dispatch(struct frame *f)
{
	if (f->vec < 32 && handlers[f->vec]) {
		/* An exception a check expects (int3): handled, no EOI. */
		handlers[f->vec]((u8)f->vec);
		return;
	}
	if (f->vec < 32) {
		user_exception(f->vec, f->rip, f->cs);
		u64 cr2;
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		println("FAIL exception: vector %llu error 0x%llx at rip 0x%llx cr2 0x%llx", f->vec,
			f->err, f->rip, cr2);
		for (;;)
			__asm__ volatile("cli; hlt");
	}
	if (handlers[f->vec])
		handlers[f->vec]((u8)f->vec);
	/* Software interrupts (int n, n >= 32) are not in service at the LAPIC. */
	if (f->vec != VEC_SPURIOUS && !(f->vec >= 0x80 && f->vec < 0x90))
		lapic_eoi();
}
