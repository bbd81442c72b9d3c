/* then=input: the i8042 set up the way Linux does (both ports off, flush, self-test,
 * command byte with translation, keyboard and mouse enabled), then polled forever; one
 * line per key (scan code set 1 after translation) and per 3-byte mouse packet. */
#include "testos.h"

#define KBC_DATA 0x60
#define KBC_STATUS 0x64
#define ST_OBF 0x01        /* a byte waits in the output buffer */
#define ST_IBF 0x02        /* the controller has not taken the last byte yet */
#define ST_AUX 0x20        /* the waiting byte comes from the mouse */
#define CTR_KBD_INT 0x01
#define CTR_AUX_INT 0x02
#define CTR_KBD_OFF 0x10
#define CTR_AUX_OFF 0x20
#define CTR_XLATE 0x40

static bool kbc_write_ready(void)
{
	u64 end = rdtsc() + ms_to_tsc(200);
	while (inb(KBC_STATUS) & ST_IBF)
		if (rdtsc() > end)
			return false;
	return true;
}

static bool kbc_command(u8 c)
{
	if (!kbc_write_ready())
		return false;
	outb(KBC_STATUS, c);
	return true;
}

static bool kbc_data(u8 v)
{
	if (!kbc_write_ready())
		return false;
	outb(KBC_DATA, v);
	return true;
}

/* The next byte within ms, or -1; *aux says whether the mouse sent it. */
static int kbc_read(u64 ms, bool *aux)
{
	u64 end = rdtsc() + ms_to_tsc(ms);
	for (;;) {
		u8 st = inb(KBC_STATUS);
		if (st & ST_OBF) {
			if (aux)
				*aux = st & ST_AUX;
			return inb(KBC_DATA);
		}
		if (rdtsc() > end)
			return -1;
		cpu_relax();
	}
}

static void kbc_flush(void)
{
	for (int i = 0; i < 64 && (inb(KBC_STATUS) & ST_OBF); i++)
		(void)inb(KBC_DATA);
}

/* Returns false (with the reason) if the controller does not answer as it should. */
static bool kbc_init(struct why *w)
{
	kbc_command(0xAD);          /* keyboard port off */
	kbc_command(0xA7);          /* aux port off */
	kbc_flush();
	if (!kbc_command(0xAA)) {
		why_add(w, "controller does not take commands");
		return false;
	}
	int r = kbc_read(500, NULL);
	if (r != 0x55) {
		why_add(w, "self-test answered 0x%x, want 0x55", r);
		return false;
	}
	kbc_command(0x20);
	int ctr = kbc_read(100, NULL);
	if (ctr < 0) {
		why_add(w, "no command byte");
		return false;
	}
	/* polled: no interrupts; both ports on, translation to set 1 */
	u8 nctr = (u8)((ctr & ~(CTR_KBD_INT | CTR_AUX_INT | CTR_KBD_OFF | CTR_AUX_OFF)) |
		       CTR_XLATE);
	kbc_command(0x60);
	kbc_data(nctr);
	kbc_command(0xAE);          /* keyboard port on */
	kbc_data(0xF4);             /* keyboard: enable scanning */
	bool aux = false;
	int kack = kbc_read(200, &aux);
	kbc_command(0xA8);          /* aux port on */
	kbc_command(0xD4);          /* next data byte to the mouse */
	kbc_data(0xF4);             /* mouse: enable data reporting */
	int mack = kbc_read(200, &aux);
	println("INFO input i8042 command byte 0x%x -> 0x%x, keyboard ack 0x%x, mouse ack 0x%x%s",
		ctr, nctr, kack, mack, aux ? "" : " (not from the aux port)");
	if (kack != 0xFA)
		why_add(w, "keyboard did not acknowledge 0xf4 (0x%x)", kack);
	if (mack != 0xFA || !aux)
		why_add(w, "mouse did not acknowledge 0xf4 (0x%x)", mack);
	return w->len == 0;
}

struct key_state {
	u8 prefix;      /* 0, 0xE0 or 0xE1 */
	u8 e1_first;    /* 0xE1 sequences: the first byte after the prefix */
	bool e1_have;
};

/* Returns true for a make code (the first one triggers the resize). */
static bool key_byte(struct key_state *k, u8 b)
{
	if (b == 0xE0 || b == 0xE1) {
		k->prefix = b;
		k->e1_have = false;
		return false;
	}
	u32 code;
	bool brk = b & 0x80;
	if (k->prefix == 0xE1) {
		/* pause: E1 1D 45 (make), E1 9D C5 (break) */
		if (!k->e1_have) {
			k->e1_first = b;
			k->e1_have = true;
			return false;
		}
		code = 0xE10000u | (u32)(k->e1_first & 0x7F) << 8 | (b & 0x7F);
	} else {
		code = (k->prefix == 0xE0 ? 0xE000u : 0) | (b & 0x7F);
	}
	k->prefix = 0;
	println("INFO key %s 0x%02x", brk ? "break" : "make", code);
	return !brk;
}

struct mouse_state {
	u8 pkt[3];
	int n;
};

static void mouse_byte(struct mouse_state *m, u8 b)
{
	/* byte 0 always has bit 3 set: anything else is out of step, dropped */
	if (m->n == 0 && !(b & 0x08))
		return;
	m->pkt[m->n++] = b;
	if (m->n < 3)
		return;
	m->n = 0;
	int dx = m->pkt[1] - (m->pkt[0] & 0x10 ? 256 : 0);
	int dy = m->pkt[2] - (m->pkt[0] & 0x20 ? 256 : 0);
	println("INFO mouse dx=%d dy=%d buttons=%u", dx, dy, m->pkt[0] & 7u);
}

void input_loop(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	if (!kbc_init(&w))
		println("FAIL input: %s", w.buf);
	println("INFO input ready%s", opt.resize_w ? ", resize after the first key" : "");
	struct key_state k = { 0 };
	struct mouse_state m = { .n = 0 };
	bool resize = opt.resize_w && opt.resize_h;
	for (;;) {
		u8 st = inb(KBC_STATUS);
		if (!(st & ST_OBF)) {
			cpu_relax();
			continue;
		}
		u8 b = inb(KBC_DATA);
		if (st & ST_AUX) {
			mouse_byte(&m, b);
		} else if (key_byte(&k, b) && resize) {
			resize = false;
			display_resize();
		}
	}
}
