/* Throughput mode of virtio-blk (check `blkbench`, items in oxtest.blkbench):
 *
 *     oxtest.blkbench=MODE:SIZE:QD:MS[,MODE:SIZE:QD:MS...]
 *
 * MODE `read` or `write`, SIZE in bytes with an optional k/m suffix (multiple of 512),
 * QD requests kept in flight, MS how long to keep submitting. Requests are sequential
 * from sector 0 and wrap at oxtest.blkspan MiB (default: the whole disk). Each request
 * is the usual header / data / status chain; data buffers are QD separate areas of
 * SIZE bytes from 16 MiB up (never touched by the guest: only the device copies).
 * Completions are polled; after each sweep of the used ring every freed slot is
 * resubmitted and the device is notified once. Time is the TSC from the first
 * submission to the last completion. Per item, on the first virtio-blk device:
 *
 *     BENCH blk-03 read 64k qd32 MiB/s=812.3 iops=12997 reqs=12997 ms=1000 errors=0
 *
 * and `PASS blkbench-SS` at the end when every request completed with status 0. The
 * driver negotiates VIRTIO_BLK_F_FLUSH, so writes may stay in the host's cache (it never
 * flushes). */
#include "testos.h"

#define T_IN  0
#define T_OUT 1
#define MAX_QD 64
#define AREA_BASE 0x1000000ull            /* 16 MiB */
#define AREA_MAX (32ull << 20)

struct bhdr {
	u32 type, reserved;
	u64 sector;
	u8 status;
	u8 pad[7];
};

struct item {
	bool write;
	u32 size;
	int qd;
	u64 ms;
};

static bool parse_num(const char *s, u64 *out, const char **end)
{
	u64 v = 0;
	int nd = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (u64)(*s++ - '0');
		nd++;
	}
	if (!nd)
		return false;
	*out = v;
	*end = s;
	return true;
}

/* MODE:SIZE:QD:MS */
static bool parse_item(const char *s, struct item *it)
{
	if (strncmp(s, "read:", 5) == 0) {
		it->write = false;
		s += 5;
	} else if (strncmp(s, "write:", 6) == 0) {
		it->write = true;
		s += 6;
	} else {
		return false;
	}
	u64 size, qd, ms;
	if (!parse_num(s, &size, &s))
		return false;
	if (*s == 'k' || *s == 'K') {
		size <<= 10;
		s++;
	} else if (*s == 'm' || *s == 'M') {
		size <<= 20;
		s++;
	}
	if (*s++ != ':' || !parse_num(s, &qd, &s) || *s++ != ':' || !parse_num(s, &ms, &s) || *s)
		return false;
	if (!size || size % 512 || size > (4u << 20) || !qd || qd > MAX_QD || !ms)
		return false;
	it->size = (u32)size;
	it->qd = (int)qd;
	it->ms = ms;
	return true;
}

/* "64k", "4k", "1m", "512" */
static void size_name(char *b, usize n, u32 size)
{
	if (size % (1u << 20) == 0)
		snprintf(b, n, "%um", size >> 20);
	else if (size % 1024 == 0)
		snprintf(b, n, "%uk", size >> 10);
	else
		snprintf(b, n, "%u", size);
}

static struct bhdr *hdrs;
static int slot_of[1024];

/* One item's request loop; runs in ring 3 (see ring3.S), so it prints nothing. */
struct run {
	struct vq *q;
	const struct item *it;
	u64 span;                 /* sectors */
	u64 done, errors, t0, t1;
	bool ok;
};

static int submit(struct run *r, int s, u64 *next)
{
	const struct item *it = r->it;
	u32 nsec = it->size / 512;
	struct bhdr *h = &hdrs[s];
	h->type = it->write ? T_OUT : T_IN;
	h->reserved = 0;
	h->sector = *next;
	h->status = 0xFF;
	*next += nsec;
	if (*next + nsec > r->span)
		*next = 0;
	struct vbuf b[3] = {
		{ h, 16 },
		{ (void *)(usize)(AREA_BASE + (u64)s * it->size), it->size },
		{ &h->status, 1 },
	};
	int head = it->write ? vq_add(r->q, b, 2, 1) : vq_add(r->q, b, 1, 2);
	if (head >= 0)
		slot_of[head] = s;
	return head;
}

static u64 run_loop(void *arg)
{
	struct run *r = arg;
	struct vq *q = r->q;
	u64 next = 0;
	int inflight = 0;
	r->t0 = rdtsc();
	u64 stop = r->t0 + ms_to_tsc(r->it->ms);
	u64 limit = stop + ms_to_tsc((u64)opt.timeout_ms);
	for (int s = 0; s < r->it->qd; s++) {
		if (submit(r, s, &next) < 0)
			return 0;
		inflight++;
	}
	vq_kick(q);
	u64 t = r->t0;
	r->ok = true;
	while (inflight) {
		int head = vq_get(q, NULL);
		t = rdtsc();
		if (head < 0) {
			if (t > limit) {
				r->ok = false;
				break;
			}
			cpu_relax();
			continue;
		}
		int s = slot_of[head];
		inflight--;
		r->done++;
		if (hdrs[s].status != 0)
			r->errors++;
		if (t < stop && submit(r, s, &next) >= 0)
			inflight++;
		/* notify once the used ring has nothing more to give */
		if (*(volatile u16 *)(q->used + 2) == q->last_used)
			vq_kick(q);
	}
	r->t1 = t;
	return 0;
}

/* Returns false if requests did not complete in time. */
static bool run_item(struct vdev *d, u64 span, const struct item *it, u64 *errors)
{
	struct run r = { .q = &d->q[0], .it = it, .span = span };
	run_user(run_loop, &r);
	u64 us = (r.t1 - r.t0) / (tsc_hz / 1000000);
	if (!us)
		us = 1;
	u64 bytes = r.done * it->size;
	/* MiB/s with one decimal: bytes * 10 / 2^20 / (us / 1e6); no overflow below 1 TB */
	u64 mibs10 = bytes * 10 / (1u << 10) * 1000000 / us / (1u << 10);
	u64 iops = r.done * 1000000 / us;
	char sz[16];
	size_name(sz, sizeof(sz), it->size);
	println("BENCH %s %s %s qd%d MiB/s=%llu.%llu iops=%llu reqs=%llu ms=%llu errors=%llu%s",
		d->name, it->write ? "write" : "read", sz, it->qd, mibs10 / 10, mibs10 % 10, iops,
		r.done, us / 1000, r.errors, r.ok ? "" : " (timed out)");
	*errors += r.errors;
	return r.ok;
}

void check_blkbench(void)
{
	static struct vdev devs[1];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	if (!virtio_find(2, devs, 1)) {
		why_add(&w, "no virtio-blk device");
		report("blkbench", false, &w);
		return;
	}
	struct vdev *d = &devs[0];
	snprintf(name, sizeof(name), "blkbench-%02x", d->pci->dev);
	/* FLUSH as Linux negotiates it: without it a device is write-through (QEMU and
	 * oxvirt-vmm then sync every write) */
	if (!vdev_start(d, 1ull << 9, &w) || !vq_setup(d, 0, 256, &w)) {
		report(name, false, &w);
		return;
	}
	vdev_ready(d);
	if (!hdrs)
		hdrs = dma_alloc(sizeof(*hdrs) * MAX_QD, 64);
	u64 cap = vcfg64(d, 0);
	u64 span = cap;
	if (opt.blkspan_mib > 0 && (u64)opt.blkspan_mib * 2048 < span)
		span = (u64)opt.blkspan_mib * 2048;
	println("INFO %s bench: capacity %llu sectors, span %llu sectors, queue size %u%s%s%s",
		d->name, cap, span, d->q[0].size,
		d->features & (1ull << 9) ? ", flush (write-back)" : ", write-through",
		d->features & VIRTIO_F_EVENT_IDX ? ", event-idx" : "",
		d->features & VIRTIO_F_INDIRECT_DESC ? ", indirect" : "");
	u64 errors = 0;
	char item[32];
	for (const char *p = next_item(opt.blkbench, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item))) {
		struct item it;
		if (!item[0])
			continue;
		if (!parse_item(item, &it)) {
			why_add(&w, "bad item '%s'", item);
			continue;
		}
		int chain = d->features & VIRTIO_F_INDIRECT_DESC ? 1 : 3;
		if (it.qd * chain > d->q[0].size) {
			why_add(&w, "%s: queue size %u too small", item, d->q[0].size);
			continue;
		}
		if ((u64)it.qd * it.size > AREA_MAX ||
		    !e820_is_ram(AREA_BASE, AREA_BASE + (u64)it.qd * it.size)) {
			why_add(&w, "%s: buffers beyond RAM", item);
			continue;
		}
		if (span < it.size / 512 * 2) {
			why_add(&w, "%s: disk too small", item);
			continue;
		}
		if (!run_item(d, span, &it, &errors))
			why_add(&w, "%s: requests did not complete", item);
	}
	if (errors)
		why_add(&w, "%llu requests failed", errors);
	report(name, w.len == 0, &w);
}
