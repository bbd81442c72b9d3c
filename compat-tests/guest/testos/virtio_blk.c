/* virtio-blk: identity, pattern reads (start, middle, end), write + flush + read back,
 * and refusal of writes on a read-only disk.
 *
 * Disk pattern: the 8-byte little-endian word at byte offset B (B a multiple of 8) holds
 * (B / 8) ^ PATTERN_KEY. Sectors the write test wrote hold (B / 8) ^ WRITE_KEY. */
#include "testos.h"

#define PATTERN_KEY 0x6f78766972740000ull   /* "oxvirt" */
#define WRITE_KEY   0x6f78777269746521ull

#define F_SIZE_MAX  (1ull << 1)
#define F_SEG_MAX   (1ull << 2)
#define F_RO        (1ull << 5)
#define F_BLK_SIZE  (1ull << 6)
#define F_FLUSH     (1ull << 9)
#define F_WRITE_ZEROES (1ull << 14)

#define T_IN     0
#define T_OUT    1
#define T_FLUSH  4
#define T_GET_ID 8
#define T_WRITE_ZEROES 13

#define NSECT 8      /* sectors per test request: 4 KiB */

struct req_hdr {
	u32 type, reserved;
	u64 sector;
};

static struct req_hdr *hdr;
static u8 *status;
static u64 *buf;

/* One request; returns the status byte, or -1 on timeout. */
static int blk_req(struct vdev *d, u32 type, u64 sector, void *data, u32 len, bool dev_writes)
{
	hdr->type = type;
	hdr->reserved = 0;
	hdr->sector = sector;
	*status = 0xFF;
	struct vbuf b[3] = { { hdr, sizeof(*hdr) }, { data, len }, { status, 1 } };
	bool ok;
	if (!len) {
		b[1] = b[2];
		ok = vq_xfer(&d->q[0], b, 1, 1, NULL);
	} else if (dev_writes) {
		ok = vq_xfer(&d->q[0], b, 1, 2, NULL);
	} else {
		ok = vq_xfer(&d->q[0], b, 2, 1, NULL);
	}
	return ok ? *status : -1;
}

static void fill(u64 *p, u64 sector, u64 key)
{
	u64 w0 = sector * 64;
	for (u32 i = 0; i < NSECT * 64; i++)
		p[i] = (w0 + i) ^ key;
}

/* Compares NSECT sectors at sector with the pattern; adds the first mismatch to w. */
static bool verify(const u64 *p, u64 sector, u64 key, const char *what, struct why *w)
{
	u64 w0 = sector * 64;
	for (u32 i = 0; i < NSECT * 64; i++) {
		if (p[i] != ((w0 + i) ^ key)) {
			why_add(w, "%s: sector %llu word %u is 0x%llx, want 0x%llx", what,
				sector + i / 64, i % 64, p[i], (w0 + i) ^ key);
			return false;
		}
	}
	return true;
}

/* oxtest.blkzero=SECTOR: VIRTIO_BLK_T_WRITE_ZEROES over 8 sectors (if offered), then
 * they must read back as zeroes. */
static void write_zeroes(struct vdev *d, u64 cap)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[48];
	snprintf(name, sizeof(name), "%s-zeroes", d->name);
	u64 zs = (u64)opt.blkzero;
	if (!(d->features & F_WRITE_ZEROES)) {
		println("INFO %s VIRTIO_BLK_F_WRITE_ZEROES not offered, zeroes test skipped", d->name);
		return;
	}
	if (zs + NSECT > cap) {
		why_add(&w, "oxtest.blkzero=%llu beyond capacity %llu", zs, cap);
		report(name, false, &w);
		return;
	}
	/* one segment: sector, num_sectors, flags (unmap bit 0 clear) */
	struct __attribute__((packed)) { u64 sector; u32 num, flags; } *seg = (void *)buf;
	seg->sector = zs;
	seg->num = NSECT;
	seg->flags = 0;
	int st = blk_req(d, T_WRITE_ZEROES, 0, seg, sizeof(*seg), false);
	if (st != 0)
		why_add(&w, "write zeroes status %d", st);
	memset(buf, 0xA5, NSECT * 512);
	st = blk_req(d, T_IN, zs, buf, NSECT * 512, true);
	if (st != 0) {
		why_add(&w, "read back status %d", st);
	} else {
		for (u32 i = 0; i < NSECT * 64; i++) {
			if (buf[i]) {
				why_add(&w, "sector %llu word %u is 0x%llx after write zeroes",
					zs + i / 64, i % 64, buf[i]);
				break;
			}
		}
	}
	println("INFO %s zeroed sectors %llu-%llu", d->name, zs, zs + NSECT - 1);
	report(name, w.len == 0, &w);
}

/* Waits with interrupts enabled for the queue's interrupt: MSI-X, irq_count[v] moves on
 * from `before`; INTx, the handler read the ISR with the queue bit (a delivery that
 * finds the ISR empty is not it). False on timeout. */
static bool wait_irq(struct vdev *d, u8 v, u32 before, u64 ms)
{
	u64 end = rdtsc() + ms_to_tsc(ms);
	bool ok = false;
	__asm__ volatile("sti" ::: "memory");
	while (rdtsc() < end) {
		if (d->irq_mode == IRQ_INTX ? (d->isr_seen & 1) != 0 : irq_count[v] != before) {
			ok = true;
			break;
		}
		cpu_relax();
	}
	cli();
	return ok;
}

/* oxtest.irq=msix|intx: reads whose completion must be announced by an interrupt on the
 * queue's vector before the driver looks at the used ring; for INTx also that the line
 * is level-triggered (an unread ISR keeps it asserted across the EOI). */
#define IRQ_READS 8
static void irq_check(struct vdev *d, u64 cap)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[48];
	const char *kind = d->irq_mode == IRQ_MSIX ? "msix" : "intx";
	snprintf(name, sizeof(name), "%s-%s", d->name, kind);
	struct vq *q = &d->q[0];
	u8 v = q->vector;
	/* interrupts still pending from the polled requests before */
	__asm__ volatile("sti" ::: "memory");
	delay_us(20000);
	cli();
	u32 cfg_before = d->irq_mode == IRQ_MSIX ? irq_count[d->vec_config] : 0;
	int got = 0;
	for (int k = 0; k < IRQ_READS && cap >= (u64)(k + 1) * NSECT; k++) {
		u32 before = irq_count[v];
		d->isr_seen = 0;
		hdr->type = T_IN;
		hdr->reserved = 0;
		hdr->sector = (u64)k * NSECT;
		*status = 0xFF;
		struct vbuf b[3] = { { hdr, sizeof(*hdr) }, { buf, NSECT * 512 }, { status, 1 } };
		int h = vq_add(q, b, 1, 2);
		vq_kick(q);
		if (!wait_irq(d, v, before, (u64)opt.timeout_ms)) {
			why_add(&w, "read %d: no interrupt on vector 0x%x", k, v);
			vq_wait(q, h, (u64)opt.timeout_ms, NULL);
			break;
		}
		int u = vq_get(q, NULL);
		if (u != h)
			why_add(&w, "read %d: used ring has %d after the interrupt, want %d", k, u, h);
		else if (*status != 0)
			why_add(&w, "read %d: status %u", k, *status);
		else
			got++;
		if (u != h && u < 0)
			vq_wait(q, h, (u64)opt.timeout_ms, NULL);
	}
	if (d->irq_mode == IRQ_MSIX && irq_count[d->vec_config] != cfg_before)
		why_add(&w, "%u configuration interrupts", irq_count[d->vec_config] - cfg_before);
	println("INFO %s %d of %d completions announced by %s vector 0x%x (%u deliveries in all)",
		d->name, got, IRQ_READS, kind, v, irq_count[v]);
	report(name, w.len == 0, &w);
	if (d->irq_mode != IRQ_INTX)
		return;

	/* level: leave the ISR unread once; the interrupt must come again, and stop once
	 * the ISR has been read. On this project's KVM host the in-kernel IOAPIC can queue
	 * the vector once more at the EOI of the unread delivery, so one extra delivery that
	 * reads an empty ISR is tolerated; a line left high repeats without end. */
	w.len = 0;
	w.buf[0] = 0;
	snprintf(name, sizeof(name), "%s-intx-level", d->name);
	u32 before = irq_count[v];
	d->isr_seen = 0;
	d->isr_n = 0;
	d->intx_hold = 1;
	hdr->type = T_IN;
	hdr->sector = 0;
	*status = 0xFF;
	struct vbuf b[3] = { { hdr, sizeof(*hdr) }, { buf, NSECT * 512 }, { status, 1 } };
	int h = vq_add(q, b, 1, 2);
	vq_kick(q);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.timeout_ms);
	__asm__ volatile("sti" ::: "memory");
	while (rdtsc() < end && irq_count[v] - before < 2)
		cpu_relax();
	delay_us(50000);                /* a line left high would keep interrupting */
	cli();
	u32 n = irq_count[v] - before, logged = d->isr_n < ISR_LOG ? d->isr_n : ISR_LOG;
	int first_read = -1;            /* the delivery that read the queue bit */
	char seq[64];
	usize sl = 0;
	seq[0] = 0;
	for (u32 i = 0; i < logged; i++) {
		u8 r = d->isr_log[i];
		if (first_read < 0 && r != 0xFF && (r & 1))
			first_read = (int)i;
		sl += (usize)snprintf(seq + sl, sizeof(seq) - sl, "%s%s", i ? "," : "",
				      r == 0xFF ? "unread" : r & 1 ? "queue" : "empty");
		if (sl >= sizeof(seq))
			break;
	}
	if (vq_wait(q, h, (u64)opt.timeout_ms, NULL) != h)
		why_add(&w, "request not completed");
	if (first_read < 1)
		why_add(&w, "delivered %u time(s) (%s): not again while the ISR was unread", n, seq);
	else if (n > (u32)first_read + 2)
		why_add(&w, "delivered %u times (%s): the line stays asserted after the ISR read",
			n, seq);
	println("INFO %s intx deliveries with the ISR unread once: %u (%s)", d->name, n, seq);
	d->intx_hold = 0;
	report(name, w.len == 0, &w);
}

static void one_disk(struct vdev *d)
{
	char name[48];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	bool want_ro = d->exp && strncmp(d->exp->flag, "ro", 3) == 0;
	snprintf(name, sizeof(name), "%s-setup", d->name);
	if (!vdev_start(d, F_RO | F_BLK_SIZE | F_FLUSH | F_SEG_MAX | F_SIZE_MAX | F_WRITE_ZEROES, &w)) {
		report(name, false, &w);
		return;
	}
	if (opt.irq != IRQ_POLL && !vdev_irq_setup(d, opt.irq, 1, &w)) {
		snprintf(name, sizeof(name), "%s-%s", d->name, opt.irq == IRQ_MSIX ? "msix" : "intx");
		report(name, false, &w);
		return;
	}
	if (!vq_setup(d, 0, 16, &w)) {
		report(name, false, &w);
		return;
	}
	vdev_ready(d);
	if (d->features & (VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC))
		println("INFO %s ring features:%s%s", d->name,
			d->features & VIRTIO_F_EVENT_IDX ? " event-idx" : "",
			d->features & VIRTIO_F_INDIRECT_DESC ? " indirect" : "");
	u64 cap = vcfg64(d, 0);
	u32 bsz = d->features & F_BLK_SIZE ? vcfg32(d, 20) : 512;
	bool ro = d->features & F_RO;

	/* identity */
	char serial[21];
	memset(serial, 0, sizeof(serial));
	int st = blk_req(d, T_GET_ID, 0, serial, 20, true);
	for (int i = 0; i < 20; i++)
		if (serial[i] && (serial[i] < 0x20 || serial[i] > 0x7e))
			serial[i] = '?';
	println("INFO %s capacity %llu sectors (%llu KiB), blk_size %u, %s%s, serial \"%s\" (status %d)",
		d->name, cap, cap / 2, bsz, ro ? "read-only" : "writable",
		d->features & F_FLUSH ? ", flush" : "", serial, st);
	snprintf(name, sizeof(name), "%s-id", d->name);
	if (cap < 2 * NSECT)
		why_add(&w, "capacity %llu sectors too small", cap);
	if (st != 0)
		why_add(&w, "GET_ID status %d", st);
	if (want_ro && !ro)
		why_add(&w, "VIRTIO_BLK_F_RO not offered for a read-only disk");
	if (!want_ro && ro)
		why_add(&w, "VIRTIO_BLK_F_RO offered for a writable disk");
	report(name, w.len == 0, &w);
	if (cap < 2 * NSECT)
		return;

	/* pattern reads: start, middle, end */
	w.len = 0;
	w.buf[0] = 0;
	u64 at[3] = { 0, (cap / 2) & ~(u64)(NSECT - 1), cap - NSECT };
	for (int k = 0; k < 3; k++) {
		memset(buf, 0xA5, NSECT * 512);
		st = blk_req(d, T_IN, at[k], buf, NSECT * 512, true);
		if (st != 0) {
			why_add(&w, "read at %llu: status %d", at[k], st);
			continue;
		}
		char what[32];
		snprintf(what, sizeof(what), "read at %llu", at[k]);
		/* a sector written by an earlier write test carries the write key */
		u64 wsec = (u64)opt.blkwrite;
		u64 zsec = (u64)opt.blkzero;
		bool written = !ro && ((at[k] + NSECT > wsec && at[k] < wsec + NSECT) ||
				       (opt.blkzero >= 0 && at[k] + NSECT > zsec && at[k] < zsec + NSECT));
		if (!written)
			verify(buf, at[k], PATTERN_KEY, what, &w);
	}
	println("INFO %s read sectors %llu, %llu, %llu (%u each)", d->name, at[0], at[1], at[2],
		NSECT);
	snprintf(name, sizeof(name), "%s-read", d->name);
	report(name, w.len == 0, &w);

	/* write test: on a read-only disk the write must fail with IOERR (1) */
	w.len = 0;
	w.buf[0] = 0;
	u64 ws = (u64)opt.blkwrite;
	if (ws + NSECT > cap) {
		why_add(&w, "oxtest.blkwrite=%llu beyond capacity %llu", ws, cap);
		snprintf(name, sizeof(name), "%s-%s", d->name, ro ? "ro" : "write");
		report(name, false, &w);
		return;
	}
	fill(buf, ws, WRITE_KEY);
	st = blk_req(d, T_OUT, ws, buf, NSECT * 512, false);
	if (ro) {
		snprintf(name, sizeof(name), "%s-ro", d->name);
		println("INFO %s write to a read-only disk: status %d", d->name, st);
		if (st != 1)
			why_add(&w, "write status %d, want IOERR (1)", st);
		memset(buf, 0, NSECT * 512);
		st = blk_req(d, T_IN, ws, buf, NSECT * 512, true);
		if (st != 0)
			why_add(&w, "read back status %d", st);
		else
			verify(buf, ws, PATTERN_KEY, "unchanged after refused write", &w);
		report(name, w.len == 0, &w);
		if (d->irq_mode != IRQ_POLL)
			irq_check(d, cap);
		return;
	}
	snprintf(name, sizeof(name), "%s-write", d->name);
	if (st != 0)
		why_add(&w, "write at %llu: status %d", ws, st);
	if (d->features & F_FLUSH) {
		st = blk_req(d, T_FLUSH, 0, NULL, 0, false);
		if (st != 0)
			why_add(&w, "flush status %d", st);
	}
	memset(buf, 0, NSECT * 512);
	st = blk_req(d, T_IN, ws, buf, NSECT * 512, true);
	if (st != 0)
		why_add(&w, "read back status %d", st);
	else
		verify(buf, ws, WRITE_KEY, "read back", &w);
	println("INFO %s wrote sectors %llu-%llu%s", d->name, ws, ws + NSECT - 1,
		d->features & F_FLUSH ? ", flushed" : ", no flush feature");
	report(name, w.len == 0, &w);
	if (opt.blkzero >= 0)
		write_zeroes(d, cap);
	if (d->irq_mode != IRQ_POLL)
		irq_check(d, cap);
}

void check_blk(void)
{
	static struct vdev devs[8];
	int n = virtio_find(2, devs, 8);
	/* Outside the DMA pool, which a hotplug check gives back afterwards. */
	static u8 io[NSECT * 512 + 4096] __attribute__((section(".dma"), aligned(4096)));
	buf = (u64 *)io;
	hdr = (struct req_hdr *)(io + NSECT * 512);
	status = io + NSECT * 512 + 64;
	if (!n) {
		struct why w = { .len = 0 };
		why_add(&w, "no virtio-blk device");
		report("blk", false, &w);
		return;
	}
	for (int i = 0; i < n; i++)
		one_disk(&devs[i]);
}
