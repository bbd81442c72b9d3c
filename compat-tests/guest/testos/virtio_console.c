/* virtio-console, port 0 without MULTIPORT: queue 0 receives, queue 1 transmits.
 * Writes "OXCONSOLE hello <n>\n"; with oxtest.console=echo waits until the same line
 * comes back from the host. */
#include "testos.h"

#define NRX 4
#define RXLEN 128

static void one_console(struct vdev *d, int n)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	snprintf(name, sizeof(name), "%s-setup", d->name);
	if (!vdev_start(d, 0, &w) || !vq_setup(d, 0, 8, &w) || !vq_setup(d, 1, 8, &w)) {
		report(name, false, &w);
		return;
	}
	u8 *rx[NRX];
	for (int i = 0; i < NRX; i++) {
		rx[i] = dma_alloc(RXLEN, 64);
		struct vbuf b = { rx[i], RXLEN };
		vq_add(&d->q[0], &b, 0, 1);
	}
	vdev_ready(d);
	vq_kick(&d->q[0]);

	char *line = dma_alloc(64, 64);
	int len = snprintf(line, 64, "OXCONSOLE hello %d\n", n);
	struct vbuf tb = { line, (u32)len };
	snprintf(name, sizeof(name), "%s-tx", d->name);
	if (!vq_xfer(&d->q[1], &tb, 1, 0, NULL))
		why_add(&w, "transmit timeout");
	report(name, w.len == 0, &w);
	if (!opt.console_echo)
		return;

	w.len = 0;
	w.buf[0] = 0;
	char got[128];
	int have = 0;
	u64 end = rdtsc() + ms_to_tsc((u64)opt.timeout_ms);
	while (rdtsc() < end && (have < len || memcmp(got, line, (usize)len) != 0)) {
		u32 l = 0;
		int h = vq_get(&d->q[0], &l);
		if (h < 0) {
			cpu_relax();
			continue;
		}
		/* the chain head is the descriptor index; find its buffer by address */
		u8 *b = (u8 *)(usize)d->q[0].desc[h].addr;
		for (u32 i = 0; i < l && i < RXLEN && have < (int)sizeof(got) - 1; i++)
			got[have++] = (char)b[i];
		struct vbuf rb = { b, RXLEN };
		vq_add(&d->q[0], &rb, 0, 1);
		vq_kick(&d->q[0]);
		/* drop anything before our line (e.g. an earlier echo) */
		for (int s = 0; s < have; s++) {
			if (have - s >= 10 && memcmp(got + s, "OXCONSOLE ", 10) == 0) {
				memcpy(got, got + s, (usize)(have - s));
				have -= s;
				break;
			}
		}
	}
	got[have] = 0;
	bool same = have >= len && memcmp(got, line, (usize)len) == 0;
	for (int i = 0; i < have; i++)
		if (got[i] == '\n' || got[i] == '\r')
			got[i] = ' ';
	println("INFO %s rx \"%s\" (%d bytes)", d->name, got, have);
	if (have < len)
		why_add(&w, "%d of %d echoed bytes within %lld ms", have, len, opt.timeout_ms);
	else if (!same)
		why_add(&w, "echo differs");
	snprintf(name, sizeof(name), "%s-echo", d->name);
	report(name, w.len == 0, &w);
}

void check_console(void)
{
	static struct vdev devs[4];
	int n = virtio_find(3, devs, 4);
	if (!n) {
		struct why w = { .len = 0 };
		why_add(&w, "no virtio-console device");
		report("console", false, &w);
		return;
	}
	for (int i = 0; i < n; i++)
		one_console(&devs[i], i + 1);
}

/* The ticker's console (oxtest.tickdev=1, tickdev.c): port 0 of the first console
 * sends "CON <tick>\n" on every tick, once; whatever the host sends is printed, a line
 * at a time, as INFO console rx "<line>". */
static struct vdev tcon;
static char *tcon_out;
static char tcon_in[128];
static int tcon_inlen;

int console_tick_init(struct why *w)
{
	if (virtio_find(3, &tcon, 1) < 1)
		return 0;
	if (!vdev_start(&tcon, 0, w) || !vq_setup(&tcon, 0, 8, w) || !vq_setup(&tcon, 1, 8, w))
		return -1;
	for (int i = 0; i < NRX; i++) {
		struct vbuf b = { dma_alloc(RXLEN, 64), RXLEN };
		vq_add(&tcon.q[0], &b, 0, 1);
	}
	tcon_out = dma_alloc(32, 32);
	vdev_ready(&tcon);
	vq_kick(&tcon.q[0]);
	return 1;
}

void console_tick(u64 tick, struct why *w)
{
	int len = snprintf(tcon_out, 32, "CON %llu\n", tick);
	struct vbuf tb = { tcon_out, (u32)len };
	if (!vq_xfer(&tcon.q[1], &tb, 1, 0, NULL))
		why_add(w, "console: transmit timeout");
	bool reposted = false;
	u32 l = 0;
	int h;
	while ((h = vq_get(&tcon.q[0], &l)) >= 0) {
		u8 *b = (u8 *)(usize)tcon.q[0].desc[h].addr;
		for (u32 i = 0; i < l && i < RXLEN; i++) {
			char c = (char)b[i];
			if (c == '\n') {
				tcon_in[tcon_inlen] = 0;
				println("INFO console rx \"%s\"", tcon_in);
				tcon_inlen = 0;
			} else if (c != '\r' && tcon_inlen < (int)sizeof(tcon_in) - 1) {
				tcon_in[tcon_inlen++] = c;
			}
		}
		struct vbuf rb = { b, RXLEN };
		vq_add(&tcon.q[0], &rb, 0, 1);
		reposted = true;
	}
	if (reposted)
		vq_kick(&tcon.q[0]);
}
