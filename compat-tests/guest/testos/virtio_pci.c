/* Modern (virtio 1.x) PCI transport: capability walk, common configuration, feature
 * negotiation, split virtqueues. Completion is found by polling the used ring with a
 * TSC timeout. By default no interrupts are enabled (avail flags ask the device not to
 * send any); a driver that called vdev_irq_setup gets MSI-X or INTx (virtio_irq.c).
 * Optional ring features: EVENT_IDX (oxtest.eventidx=1) and indirect descriptors
 * (oxtest.indirect=1). Notifications honour the device's suppression (used flags
 * NO_NOTIFY, or avail_event with EVENT_IDX). */
#include "testos.h"

/* common configuration structure offsets */
#define CC_DFSELECT   0
#define CC_DF         4
#define CC_GFSELECT   8
#define CC_GF         12
#define CC_MSIX       16
#define CC_NUMQ       18
#define CC_STATUS     20
#define CC_GEN        21
#define CC_QSELECT    22
#define CC_QSIZE      24
#define CC_QMSIX      26
#define CC_QENABLE    28
#define CC_QNOTIFYOFF 30
#define CC_QDESC      32
#define CC_QDRIVER    40
#define CC_QDEVICE    48

#define ST_ACK         1
#define ST_DRIVER      2
#define ST_DRIVER_OK   4
#define ST_FEATURES_OK 8
#define ST_FAILED      128

#define DESC_NEXT     1
#define DESC_WRITE    2
#define DESC_INDIRECT 4
#define ITAB_N        4      /* descriptors per indirect table */

/* Buffers the devices read and write: not part of .bss so boot does not clear it. */
static u8 pool[256 * 1024] __attribute__((section(".dma"), aligned(4096)));
static usize pool_used;

usize dma_mark(void) { return pool_used; }
void dma_release(usize mark) { if (mark <= pool_used) pool_used = mark; }

void *dma_alloc(usize size, usize align)
{
	usize a = (pool_used + align - 1) & ~(align - 1);
	if (a + size > sizeof(pool)) {
		println("INFO dma pool exhausted");
		return NULL;
	}
	pool_used = a + size;
	memset(pool + a, 0, size);
	return pool + a;
}

static void vw64(u64 a, u64 v)
{
	mmio_w32(a, (u32)v);
	mmio_w32(a + 4, (u32)(v >> 32));
}

u8 vcfg8(const struct vdev *d, u32 off) { return mmio_r8(d->cfg + off); }
u16 vcfg16(const struct vdev *d, u32 off) { return mmio_r16(d->cfg + off); }
u32 vcfg32(const struct vdev *d, u32 off) { return mmio_r32(d->cfg + off); }

u64 vcfg64(const struct vdev *d, u32 off)
{
	/* two halves; re-read while the configuration generation changes */
	for (int i = 0; i < 10; i++) {
		u8 g = mmio_r8(d->common + CC_GEN);
		u64 v = mmio_r32(d->cfg + off) | (u64)mmio_r32(d->cfg + off + 4) << 32;
		if (mmio_r8(d->common + CC_GEN) == g)
			return v;
	}
	return 0;
}

/* Fill a vdev from the function's virtio capabilities. */
static bool vdev_map(struct vdev *d, struct pci_dev *p)
{
	for (int i = 0; i < p->nvcaps; i++) {
		u8 c = p->vcap[i];
		u8 ct = pci_read8(p, (u16)(c + 3)), bar = pci_read8(p, (u16)(c + 4));
		u32 off = pci_read32(p, (u16)(c + 8)), len = pci_read32(p, (u16)(c + 12));
		if (bar > 5 || !p->bar[bar] || p->bar_io[bar])
			continue;
		u64 a = p->bar[bar] + off;
		if (ct == 1 && !d->common)
			d->common = a;
		else if (ct == 2 && !d->notify) {
			d->notify = a;
			d->notify_mult = pci_read32(p, (u16)(c + 16));
		} else if (ct == 3 && !d->isr)
			d->isr = a;
		else if (ct == 4 && !d->cfg) {
			d->cfg = a;
			d->cfg_len = len;
		}
	}
	return d->common && d->notify;
}

int virtio_only_slot = -1;

int virtio_find(int type, struct vdev *out, int max)
{
	int n = 0;
	for (int i = 0; i < pci_ndevs && n < max; i++) {
		struct pci_dev *p = &pci_devs[i];
		if (p->vendor != 0x1AF4 || p->device != 0x1040 + type)
			continue;
		if (virtio_only_slot >= 0 && (p->bus || p->dev != virtio_only_slot))
			continue;
		const struct pci_expect *e = NULL;
		for (int k = 0; k < pci_nexpect; k++)
			if (pci_expect[k].slot == p->dev && p->bus == 0 && p->fn == 0)
				e = &pci_expect[k];
		if (pci_nexpect && !e)
			continue;      /* an expectation list names the devices under test */
		struct vdev *d = &out[n];
		memset(d, 0, sizeof(*d));
		d->pci = p;
		d->type = type;
		d->exp = e;
		snprintf(d->name, sizeof(d->name), "%s-%02x", virtio_kind(type), p->dev);
		if (p->bus || p->fn)
			snprintf(d->name, sizeof(d->name), "%s-%02x.%02x.%u", virtio_kind(type),
				 p->bus, p->dev, p->fn);
		n++;
	}
	return n;
}

bool vdev_reset_pci(struct pci_dev *p)
{
	struct vdev d;
	memset(&d, 0, sizeof(d));
	if (!vdev_map(&d, p))
		return false;
	mmio_w8(d.common + CC_STATUS, 0);
	/* The reset is done when the status reads back as 0. */
	for (int i = 0; i < 1000000 && mmio_r8(d.common + CC_STATUS); i++)
		cpu_relax();
	return mmio_r8(d.common + CC_STATUS) == 0;
}

static void set_status(struct vdev *d, u8 s)
{
	mmio_w8(d->common + CC_STATUS, s);
}

/* Reset, acknowledge, negotiate VERSION_1 plus what the driver wants and the device
 * offers, and confirm FEATURES_OK. */
bool vdev_start(struct vdev *d, u64 wanted, struct why *w)
{
	if (!vdev_map(d, d->pci)) {
		why_add(w, "no common/notify capability");
		return false;
	}
	set_status(d, 0);
	u64 t = rdtsc() + ms_to_tsc(1000);
	while (mmio_r8(d->common + CC_STATUS) != 0) {
		if (rdtsc() > t) {
			why_add(w, "reset did not complete");
			return false;
		}
		cpu_relax();
	}
	set_status(d, ST_ACK);
	set_status(d, ST_ACK | ST_DRIVER);
	mmio_w32(d->common + CC_DFSELECT, 0);
	u64 offered = mmio_r32(d->common + CC_DF);
	mmio_w32(d->common + CC_DFSELECT, 1);
	offered |= (u64)mmio_r32(d->common + CC_DF) << 32;
	d->offered = offered;
	println("INFO %s features offered 0x%llx", d->name, offered);
	if (!(offered & VIRTIO_F_VERSION_1)) {
		why_add(w, "VIRTIO_F_VERSION_1 not offered");
		set_status(d, ST_FAILED);
		return false;
	}
	if (opt.event_idx)
		wanted |= VIRTIO_F_EVENT_IDX;
	if (opt.indirect)
		wanted |= VIRTIO_F_INDIRECT_DESC;
	d->features = offered & (wanted | VIRTIO_F_VERSION_1);
	mmio_w32(d->common + CC_GFSELECT, 0);
	mmio_w32(d->common + CC_GF, (u32)d->features);
	mmio_w32(d->common + CC_GFSELECT, 1);
	mmio_w32(d->common + CC_GF, (u32)(d->features >> 32));
	set_status(d, ST_ACK | ST_DRIVER | ST_FEATURES_OK);
	if (!(mmio_r8(d->common + CC_STATUS) & ST_FEATURES_OK)) {
		why_add(w, "FEATURES_OK not accepted (features 0x%llx)", d->features);
		set_status(d, ST_FAILED);
		return false;
	}
	mmio_w16(d->common + CC_MSIX, 0xFFFF);
	return true;
}

bool vq_setup(struct vdev *d, int qi, u16 max, struct why *w)
{
	struct vq *q = &d->q[qi];
	if (qi >= VDEV_MAXQ || qi >= mmio_r16(d->common + CC_NUMQ)) {
		why_add(w, "queue %d: device has %u queues", qi, mmio_r16(d->common + CC_NUMQ));
		return false;
	}
	mmio_w16(d->common + CC_QSELECT, (u16)qi);
	u16 size = mmio_r16(d->common + CC_QSIZE);
	if (!size) {
		why_add(w, "queue %d: size 0", qi);
		return false;
	}
	if (size > max)
		size = max;
	while (size & (size - 1))       /* split rings: a power of two */
		size &= (u16)(size - 1);
	q->size = size;
	q->index = (u16)qi;
	q->desc = dma_alloc(16u * size, 64);
	q->avail = dma_alloc(6u + 2u * size, 64);
	q->used = dma_alloc(6u + 8u * size, 64);
	q->event_idx = (d->features & VIRTIO_F_EVENT_IDX) != 0;
	q->indirect = (d->features & VIRTIO_F_INDIRECT_DESC) != 0;
	q->itab = q->indirect ? dma_alloc(16u * ITAB_N * size, 64) : NULL;
	if (!q->desc || !q->avail || !q->used || (q->indirect && !q->itab)) {
		why_add(w, "queue %d: out of DMA memory", qi);
		return false;
	}
	for (u16 i = 0; i < size; i++)
		q->desc[i].next = (u16)(i + 1);
	q->free_head = 0;
	q->nfree = size;
	q->last_used = 0;
	q->kicked = 0;
	q->vector = 0;
	/* VIRTQ_AVAIL_F_NO_INTERRUPT when polled; with EVENT_IDX used_event (0) rules */
	q->avail[0] = d->irq_mode == IRQ_POLL ? 1 : 0;
	mmio_w16(d->common + CC_QSIZE, size);
	u16 vec = d->irq_mode == IRQ_MSIX ? (u16)(1 + qi) : 0xFFFF;
	mmio_w16(d->common + CC_QMSIX, vec);
	if (mmio_r16(d->common + CC_QMSIX) != vec) {
		why_add(w, "queue %d: MSI-X vector %u not accepted", qi, vec);
		return false;
	}
	if (d->irq_mode == IRQ_MSIX)
		q->vector = (u8)(d->vec_base + qi);
	else if (d->irq_mode == IRQ_INTX)
		q->vector = d->vec_base;
	vw64(d->common + CC_QDESC, (u64)(usize)q->desc);
	vw64(d->common + CC_QDRIVER, (u64)(usize)q->avail);
	vw64(d->common + CC_QDEVICE, (u64)(usize)q->used);
	q->notify = d->notify + (u64)mmio_r16(d->common + CC_QNOTIFYOFF) * d->notify_mult;
	mmio_w16(d->common + CC_QENABLE, 1);
	return true;
}

void vdev_ready(struct vdev *d)
{
	set_status(d, ST_ACK | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
}

/* Chains nout device-readable then nin device-writable buffers; returns the head. */
int vq_add(struct vq *q, const struct vbuf *b, int nout, int nin)
{
	int n = nout + nin;
	if (n <= 0 || n > q->nfree)
		return -1;
	u16 head = q->free_head, i = head, last = head;
	if (q->indirect && n > 1 && n <= ITAB_N) {
		/* one ring descriptor pointing at a table of n */
		struct vring_desc *t = &q->itab[(usize)head * ITAB_N];
		for (int k = 0; k < n; k++) {
			t[k].addr = (u64)(usize)b[k].addr;
			t[k].len = b[k].len;
			t[k].flags = (u16)((k >= nout ? DESC_WRITE : 0) | (k + 1 < n ? DESC_NEXT : 0));
			t[k].next = (u16)(k + 1);
		}
		q->desc[head].addr = (u64)(usize)t;
		q->desc[head].len = (u32)(16 * n);
		q->desc[head].flags = DESC_INDIRECT;
		n = 1;
	} else {
		for (int k = 0; k < n; k++) {
			struct vring_desc *dsc = &q->desc[i];
			dsc->addr = (u64)(usize)b[k].addr;
			dsc->len = b[k].len;
			dsc->flags = (u16)((k >= nout ? DESC_WRITE : 0) | (k + 1 < n ? DESC_NEXT : 0));
			last = i;
			i = dsc->next;
		}
	}
	q->free_head = q->desc[last].next;
	q->nfree = (u16)(q->nfree - n);
	u16 aidx = q->avail[1];
	q->avail[2 + (aidx & (q->size - 1))] = head;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	q->avail[1] = (u16)(aidx + 1);
	return head;
}

/* Notifies the device unless it asked not to be: used flags VIRTQ_USED_F_NO_NOTIFY, or
 * with EVENT_IDX, when avail_event is not among the entries added since the last kick. */
void vq_kick(struct vq *q)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	u16 now = q->avail[1];
	bool kick;
	if (q->event_idx) {
		u16 ev = *(volatile u16 *)(q->used + 4 + 8u * q->size);
		kick = (u16)(now - ev - 1) < (u16)(now - q->kicked);
	} else {
		kick = !(*(volatile u16 *)q->used & 1);
	}
	q->kicked = now;
	if (kick)
		mmio_w16(q->notify, q->index);
}

/* One completed chain, or -1: frees its descriptors, *len = bytes the device wrote. */
int vq_get(struct vq *q, u32 *len)
{
	u16 uidx = *(volatile u16 *)(q->used + 2);
	if (uidx == q->last_used)
		return -1;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	const volatile u8 *e = q->used + 4 + 8 * (q->last_used & (q->size - 1));
	u32 id = *(const volatile u32 *)e;
	if (len)
		*len = *(const volatile u32 *)(e + 4);
	q->last_used++;
	if (q->event_idx)
		q->avail[2 + q->size] = q->last_used;    /* used_event: interrupt on the next */
	if (id >= q->size)
		return -1;
	u16 i = (u16)id;
	int n = 1;
	while ((q->desc[i].flags & DESC_NEXT) && n < q->size) {
		i = q->desc[i].next;
		n++;
	}
	q->desc[i].next = q->free_head;
	q->free_head = (u16)id;
	q->nfree = (u16)(q->nfree + n);
	return (int)id;
}

/* Waits for chain head (or any chain if head < 0); -1 on timeout. */
int vq_wait(struct vq *q, int head, u64 timeout_ms, u32 *len)
{
	u64 end = rdtsc() + ms_to_tsc(timeout_ms);
	for (;;) {
		int h = vq_get(q, len);
		if (h >= 0 && (head < 0 || h == head))
			return h;
		if (h < 0 && rdtsc() > end)
			return -1;
		if (h < 0)
			cpu_relax();
	}
}

bool vq_xfer(struct vq *q, const struct vbuf *b, int nout, int nin, u32 *len)
{
	int h = vq_add(q, b, nout, nin);
	if (h < 0)
		return false;
	vq_kick(q);
	return vq_wait(q, h, (u64)opt.timeout_ms, len) == h;
}
