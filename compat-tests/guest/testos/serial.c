/* COM1 (I/O 0x3F8) polled 16550 output. Whole lines are written under a spinlock so
 * that lines from different CPUs never interleave. */
#include "testos.h"

#define COM1 0x3F8
#define LSR_THRE 0x20

static volatile u32 serial_lock;

void spin_lock(volatile u32 *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			cpu_relax();
}

void spin_unlock(volatile u32 *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

void serial_init(void)
{
	outb(COM1 + 1, 0x00);   /* no interrupts */
	outb(COM1 + 3, 0x80);   /* DLAB */
	outb(COM1 + 0, 0x01);   /* divisor 1: 115200 baud */
	outb(COM1 + 1, 0x00);
	outb(COM1 + 3, 0x03);   /* 8N1 */
	outb(COM1 + 2, 0x07);   /* FIFO on, cleared */
	outb(COM1 + 4, 0x03);   /* DTR | RTS */
}

static void serial_putc(char c)
{
	/* Bounded wait: a missing UART (reads 0xFF or never ready) must not hang us. */
	for (int i = 0; i < 100000; i++)
		if (inb(COM1 + 5) & LSR_THRE)
			break;
	outb(COM1, (u8)c);
}

void println(const char *fmt, ...)
{
	char line[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	spin_lock(&serial_lock);
	for (const char *p = line; *p; p++)
		serial_putc(*p);
	serial_putc('\n');
	spin_unlock(&serial_lock);
}
