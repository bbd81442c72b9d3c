/* virtio-balloon: negotiates VIRTIO_BALLOON_F_STATS_VQ, offers a statistics buffer on
 * queue 2 and passes once the device has consumed it (it returns the buffer when it
 * wants fresh numbers; QEMU does so once a stats polling interval is set). The buffer
 * is refilled and offered again each time it comes back. With oxtest.balloonpages=N
 * (N <= 32) it also waits for the device's num_pages to become N and inflates that
 * many pages (their page frame numbers on queue 0), then sets actual to N. */
#include "testos.h"

#define F_STATS_VQ (1ull << 1)

struct __attribute__((packed)) stat {
	u16 tag;
	u64 val;
};

enum { S_SWAP_IN, S_SWAP_OUT, S_MAJFLT, S_MINFLT, S_MEMFREE, S_MEMTOT, S_AVAIL, S_CACHES, NSTATS };

static struct stat *stats;
static struct vdev *bal;
static u32 rounds;

static void fill_stats(void)
{
	u64 total = 0;
	for (u32 i = 0; i < e820_count; i++)
		if (e820[i].type == 1)
			total += e820[i].size;
	extern char __kernel_start[], __kernel_end[];
	u64 used = (u64)(__kernel_end - __kernel_start);
	for (int i = 0; i < NSTATS; i++)
		stats[i].tag = (u16)i;
	stats[S_SWAP_IN].val = 0;
	stats[S_SWAP_OUT].val = 0;
	stats[S_MAJFLT].val = 0;
	stats[S_MINFLT].val = rounds;       /* changes each round, visible on the host */
	stats[S_MEMTOT].val = total;
	stats[S_MEMFREE].val = total - used;
	stats[S_AVAIL].val = total - used;
	stats[S_CACHES].val = 0;
}

static void offer(void)
{
	fill_stats();
	struct vbuf b = { stats, sizeof(struct stat) * NSTATS };
	vq_add(&bal->q[2], &b, 1, 0);
	vq_kick(&bal->q[2]);
}

#define MAX_INFLATE 32

static void inflate(struct vdev *d)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	snprintf(name, sizeof(name), "%s-inflate", d->name);
	u32 want = (u32)opt.balloon_pages, np = 0;
	u64 end = rdtsc() + ms_to_tsc((u64)opt.balloonwait_ms);
	while ((np = vcfg32(d, 0)) != want && rdtsc() < end)
		cpu_relax();
	if (np != want || want > MAX_INFLATE) {
		why_add(&w, "num_pages %u, want %u (at most %u)", np, want, MAX_INFLATE);
		report(name, false, &w);
		return;
	}
	/* pages handed to the device are never touched again */
	u32 *pfns = dma_alloc(4 * MAX_INFLATE, 64);
	for (u32 i = 0; i < want; i++) {
		u8 *page = dma_alloc(4096, 4096);
		if (!page) {
			why_add(&w, "out of pages");
			report(name, false, &w);
			return;
		}
		pfns[i] = (u32)((usize)page >> 12);
	}
	struct vbuf b = { pfns, 4 * want };
	if (!vq_xfer(&d->q[0], &b, 1, 0, NULL))
		why_add(&w, "inflate queue timeout");
	mmio_w32(d->cfg + 4, want);
	println("INFO %s inflated %u pages (pfn 0x%x..), actual %u", d->name, want, pfns[0],
		vcfg32(d, 4));
	report(name, w.len == 0, &w);
}

void check_balloon(void)
{
	static struct vdev devs[2];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	int n = virtio_find(5, devs, 2);
	if (!n) {
		why_add(&w, "no virtio-balloon device");
		report("balloon", false, &w);
		return;
	}
	struct vdev *d = &devs[0];
	char name[40];
	snprintf(name, sizeof(name), "%s-stats", d->name);
	if (!vdev_start(d, F_STATS_VQ, &w) || !vq_setup(d, 0, 8, &w) || !vq_setup(d, 1, 8, &w)) {
		report(name, false, &w);
		return;
	}
	if (!(d->features & F_STATS_VQ)) {
		why_add(&w, "VIRTIO_BALLOON_F_STATS_VQ not offered");
		report(name, false, &w);
		return;
	}
	if (!vq_setup(d, 2, 4, &w)) {
		report(name, false, &w);
		return;
	}
	bal = d;
	stats = dma_alloc(sizeof(struct stat) * NSTATS, 64);
	vdev_ready(d);
	println("INFO %s num_pages %u actual %u", d->name, vcfg32(d, 0), vcfg32(d, 4));
	offer();
	println("INFO %s stats queued (%u tags)", d->name, NSTATS);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.balloonwait_ms);
	int h = -1;
	while (h < 0 && rdtsc() < end)
		h = vq_get(&d->q[2], NULL);
	if (h < 0) {
		why_add(&w, "stats buffer not consumed within %lld ms", opt.balloonwait_ms);
	} else {
		rounds++;
		offer();
		println("INFO %s stats requested by the device, answered (round %u)", d->name, rounds);
	}
	report(name, w.len == 0, &w);
	if (opt.balloon_pages > 0)
		inflate(d);
}

/* The ticker's balloon (oxtest.tickdev=1, tickdev.c): on every tick it follows the
 * device's num_pages (at most MAX_INFLATE), inflating or deflating by page frame
 * numbers on queue 0 or 1, sets actual and prints INFO balloon actual N at tick T. */
static struct vdev tbal;
static u32 tbal_actual;
static u32 *tbal_pfns;
static u8 *tbal_pages[MAX_INFLATE];

int balloon_tick_init(struct why *w)
{
	if (virtio_find(5, &tbal, 1) < 1)
		return 0;
	if (!vdev_start(&tbal, 0, w) || !vq_setup(&tbal, 0, 8, w) || !vq_setup(&tbal, 1, 8, w))
		return -1;
	tbal_pfns = dma_alloc(4 * MAX_INFLATE, 64);
	for (int i = 0; i < MAX_INFLATE; i++) {
		tbal_pages[i] = dma_alloc(4096, 4096);
		if (!tbal_pages[i]) {
			why_add(w, "balloon: out of pages");
			return -1;
		}
	}
	vdev_ready(&tbal);
	return 1;
}

void balloon_tick(u64 tick, struct why *w)
{
	u32 want = vcfg32(&tbal, 0);
	if (want > MAX_INFLATE)
		want = MAX_INFLATE;
	if (want == tbal_actual)
		return;
	bool grow = want > tbal_actual;
	u32 from = grow ? tbal_actual : want, to = grow ? want : tbal_actual;
	for (u32 i = from; i < to; i++)
		tbal_pfns[i - from] = (u32)((usize)tbal_pages[i] >> 12);
	struct vbuf b = { tbal_pfns, 4 * (to - from) };
	if (!vq_xfer(&tbal.q[grow ? 0 : 1], &b, 1, 0, NULL)) {
		why_add(w, "balloon: %s queue timeout", grow ? "inflate" : "deflate");
		return;
	}
	tbal_actual = want;
	mmio_w32(tbal.cfg + 4, want);
	println("INFO balloon actual %u at tick %llu", want, tick);
}
