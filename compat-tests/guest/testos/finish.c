/* Instructions a host KVM that emulates ring 0 in software may lack
 * (cmpxchg16b, int3 and int n, popcnt, clac/stac, fwait, rdrand): run
 * in ring 0 with their results checked,
 * whoever carries them out (the CPU, KVM's emulator or the VMM). */
#include "testos.h"

#define VEC_SOFT 0x81

static volatile u32 bp_hits, soft_hits;

static void on_bp(u8 v)
{
	(void)v;
	bp_hits++;
}

static void on_soft(u8 v)
{
	(void)v;
	soft_hits++;
}

static u64 rflags(void)
{
	u64 f;
	__asm__ volatile("pushfq; popq %0" : "=r"(f));
	return f;
}

static void check_cmpxchg16b(struct why *w)
{
	static volatile u64 m[2] __attribute__((aligned(16))) = { 1, 2 };
	u64 lo = 1, hi = 2;
	u8 zf;
	/* Equal: RCX:RBX stored, ZF set. */
	__asm__ volatile("lock cmpxchg16b (%[p]); setz %[zf]"
			 : [zf] "=q"(zf), "+a"(lo), "+d"(hi)
			 : [p] "r"(m), "b"(3ull), "c"(4ull)
			 : "memory", "cc");
	if (!zf || m[0] != 3 || m[1] != 4)
		why_add(w, "cmpxchg16b-equal");
	/* Different: memory loaded into RDX:RAX, ZF clear, memory kept. */
	lo = 1;
	hi = 2;
	__asm__ volatile("lock cmpxchg16b (%[p]); setz %[zf]"
			 : [zf] "=q"(zf), "+a"(lo), "+d"(hi)
			 : [p] "r"(m), "b"(5ull), "c"(6ull)
			 : "memory", "cc");
	if (zf || lo != 3 || hi != 4 || m[0] != 3 || m[1] != 4)
		why_add(w, "cmpxchg16b-different");
}

static void check_soft_interrupts(struct why *w)
{
	irq_set_handler(3, on_bp);
	irq_set_handler(VEC_SOFT, on_soft);
	u64 after = 0;
	/* The handler returns to the instruction after int3. */
	__asm__ volatile("int3; movq $0x5a, %0" : "=r"(after)::"memory");
	if (bp_hits != 1 || after != 0x5a)
		why_add(w, "int3");
	__asm__ volatile("int $0x81" ::: "memory");
	if (soft_hits != 1)
		why_add(w, "int-n");
	irq_set_handler(3, 0);
	irq_set_handler(VEC_SOFT, 0);
}

static void check_bits(struct why *w)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 23)))
		return; /* no popcnt */
	u64 n, zero = 0;
	__asm__ volatile("popcnt %1, %0" : "=r"(n) : "r"(0xf0f0f0f0f0f0f0f0ull) : "cc");
	if (n != 32)
		why_add(w, "popcnt");
	u8 zf;
	__asm__ volatile("popcnt %2, %0; setz %1" : "=r"(n), "=q"(zf) : "r"(zero) : "cc");
	if (n != 0 || !zf)
		why_add(w, "popcnt-zero");
}

static void check_smap_flags(struct why *w)
{
	u32 a, b, c, d;
	cpuid(7, 0, &a, &b, &c, &d);
	if (!(b & (1u << 20)))
		return; /* no SMAP: no stac/clac */
	__asm__ volatile("stac" ::: "cc");
	bool set = rflags() & (1u << 18);
	__asm__ volatile("clac" ::: "cc");
	bool clear = !(rflags() & (1u << 18));
	if (!set || !clear)
		why_add(w, "stac-clac");
}

static void check_fwait(struct why *w)
{
	/* Nothing pending after fninit: fwait goes on to the next instruction. */
	u64 after = 0;
	__asm__ volatile("fninit; fwait; movq $0x33, %0" : "=r"(after)::"memory");
	if (after != 0x33)
		why_add(w, "fwait");
}

static void check_random(struct why *w)
{
	u32 a, b, c, d;
	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 30)))
		return; /* no rdrand */
	for (int i = 0; i < 10; i++) {
		u64 v;
		u8 ok;
		__asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=q"(ok)::"cc");
		if (ok)
			return;
	}
	why_add(w, "rdrand");
}

bool check_finish(struct why *w)
{
	check_cmpxchg16b(w);
	check_soft_interrupts(w);
	check_bits(w);
	check_smap_flags(w);
	check_fwait(w);
	check_random(w);
	return w->len == 0;
}
