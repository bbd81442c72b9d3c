/* then=vinput: the first virtio-input device (1af4:1052) set up polled; prints its name
 * and kind, then every event the device delivers, forever:
 * INFO vinput type=1 code=30 value=1 (value signed, as evdev's). */
#include "testos.h"

#define VINPUT_TYPE 18
#define CFG_ID_NAME 1
#define CFG_EV_BITS 17
#define NBUF 16

struct __attribute__((packed)) vinput_event {
	u16 type, code;
	u32 value;
};

/* Selects select/subsel and returns the size the device answers. */
static u8 vinput_select(const struct vdev *d, u8 sel, u8 sub)
{
	mmio_w8(d->cfg + 0, sel);
	mmio_w8(d->cfg + 1, sub);
	return vcfg8(d, 2);
}

void vinput_loop(void)
{
	static struct vdev devs[4];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	pci_scan();
	if (!virtio_find(VINPUT_TYPE, devs, 4)) {
		println("FAIL vinput: no virtio-input device");
		return;
	}
	struct vdev *d = &devs[0];
	if (!vdev_start(d, 0, &w) || !vq_setup(d, 0, NBUF, &w) || !vq_setup(d, 1, 4, &w)) {
		println("FAIL %s-setup: %s", d->name, w.buf);
		return;
	}
	char name[64];
	u8 n = vinput_select(d, CFG_ID_NAME, 0);
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	for (u8 i = 0; i < n; i++)
		name[i] = (char)vcfg8(d, 8 + i);
	name[n] = 0;
	u8 keys = vinput_select(d, CFG_EV_BITS, 1);
	u8 rel = vinput_select(d, CFG_EV_BITS, 2);
	u8 abs = vinput_select(d, CFG_EV_BITS, 3);
	struct vinput_event *ev = dma_alloc(sizeof(*ev) * NBUF, 64);
	int slot_of[256];
	for (int i = 0; i < 256; i++)
		slot_of[i] = -1;
	for (int i = 0; i < NBUF; i++) {
		struct vbuf b = { &ev[i], sizeof(ev[i]) };
		int h = vq_add(&d->q[0], &b, 0, 1);
		if (h >= 0 && h < 256)
			slot_of[h] = i;
	}
	vdev_ready(d);
	vq_kick(&d->q[0]);
	println("INFO vinput %s \"%s\" key bitmap %u bytes, rel %u, abs %u", d->name, name,
		keys, rel, abs);
	println("INFO vinput ready");
	for (;;) {
		u32 len = 0;
		int h = vq_get(&d->q[0], &len);
		if (h < 0) {
			cpu_relax();
			continue;
		}
		int i = h < 256 ? slot_of[h] : -1;
		if (i < 0)
			continue;
		if (len >= sizeof(ev[i]))
			println("INFO vinput type=%u code=%u value=%d", ev[i].type, ev[i].code,
				(int)ev[i].value);
		struct vbuf b = { &ev[i], sizeof(ev[i]) };
		int again = vq_add(&d->q[0], &b, 0, 1);
		if (again >= 0 && again < 256)
			slot_of[again] = i;
		vq_kick(&d->q[0]);
	}
}
