/* oxtest.tickdev=1: the ticker uses a virtio-rng and the first virtio-blk disk on
 * every tick, on queues set up once (MSI-X interrupts), so that a guest saved and
 * restored shows its devices carrying on where they stood: each tick reads 16 random
 * bytes (not all zero) and sector 0, which must read as it did at the first tick;
 * a new disk capacity is printed (INFO blk capacity N sectors at tick n).
 * When the machine has them, the first console, vsock, NIC and balloon take part too
 * (virtio_console.c, virtio_vsock.c, virtio_net.c, virtio_balloon.c: console_tick
 * and the others). */
#include "testos.h"

struct blk_hdr {
	u32 type, reserved;
	u64 sector;
};

static struct vdev rng, blk;
static bool have_rng, have_blk;
static u64 capacity;   /* of the disk, in sectors, as last seen */
static int have_con, have_vsock, have_net, have_bal;   /* 1 in use, 0 absent, -1 failed */
static u8 *rbuf, *status, *sect, *first;
static struct blk_hdr *hdr;

static bool start(struct vdev *d, int type, struct why *w)
{
	if (virtio_find(type, d, 1) < 1) {
		why_add(w, "no %s device", virtio_kind(type));
		return false;
	}
	if (!vdev_start(d, 0, w) || !vdev_irq_setup(d, IRQ_MSIX, 1, w) || !vq_setup(d, 0, 16, w))
		return false;
	vdev_ready(d);
	return true;
}

void tickdev_init(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	pci_scan();
	rbuf = dma_alloc(16, 16);
	status = dma_alloc(1, 16);
	hdr = dma_alloc(sizeof(*hdr), 16);
	sect = dma_alloc(512, 512);
	first = dma_alloc(512, 512);
	have_rng = start(&rng, 4, &w);
	have_blk = start(&blk, 2, &w);
	if (have_blk)
		capacity = vcfg64(&blk, 0);
	have_con = console_tick_init(&w);
	have_vsock = vsock_tick_init(&w);
	have_net = net_tick_init(&w);
	have_bal = balloon_tick_init(&w);
	println("INFO tickdev rng blk%s%s%s%s", have_con > 0 ? " console" : "",
		have_vsock > 0 ? " vsock" : "", have_net > 0 ? " net" : "",
		have_bal > 0 ? " balloon" : "");
	bool optional_ok = have_con >= 0 && have_vsock >= 0 && have_net >= 0 && have_bal >= 0;
	report("tickdev", have_rng && have_blk && optional_ok, &w);
}

static bool blk_read0(u8 *into)
{
	hdr->type = 0;
	hdr->reserved = 0;
	hdr->sector = 0;
	*status = 0xFF;
	struct vbuf b[3] = { { hdr, sizeof(*hdr) }, { into, 512 }, { status, 1 } };
	return vq_xfer(&blk.q[0], b, 1, 2, NULL) && *status == 0;
}

/* One tick's use of both devices; false (with why) if either failed. */
bool tickdev_step(u64 tick, struct why *w)
{
	if (have_rng) {
		u32 got = 0;
		for (int i = 0; i < 16; i++)
			rbuf[i] = 0;
		struct vbuf v = { rbuf, 16 };
		bool nonzero = false;
		if (!vq_xfer(&rng.q[0], &v, 0, 1, &got))
			why_add(w, "rng: timeout");
		for (u32 i = 0; i < got && i < 16; i++)
			nonzero = nonzero || rbuf[i];
		if (!got || !nonzero)
			why_add(w, "rng: %u bytes, all zero", got);
	}
	if (have_blk) {
		u64 now = vcfg64(&blk, 0);
		if (now != capacity)
			println("INFO blk capacity %llu sectors at tick %llu", now, tick);
		capacity = now;
		if (!blk_read0(tick == 1 ? first : sect)) {
			why_add(w, "blk: read of sector 0 failed");
		} else if (tick > 1) {
			for (int i = 0; i < 512; i++) {
				if (sect[i] != first[i]) {
					why_add(w, "blk: sector 0 byte %d changed", i);
					break;
				}
			}
		}
	}
	if (have_con > 0)
		console_tick(tick, w);
	if (have_vsock > 0)
		vsock_tick(tick, w);
	if (have_net > 0)
		net_tick(tick);
	if (have_bal > 0)
		balloon_tick(tick, w);
	return w->len == 0;
}
