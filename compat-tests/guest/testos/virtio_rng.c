/* virtio-rng (entropy device): two 64-byte reads, neither all zero, not equal. */
#include "testos.h"

void check_rng(void)
{
	static struct vdev devs[4];
	int n = virtio_find(4, devs, 4);
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	if (!n) {
		why_add(&w, "no virtio-rng device");
		report("rng", false, &w);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct vdev *d = &devs[i];
		w.len = 0;
		w.buf[0] = 0;
		u8 *b = dma_alloc(128, 64);
		if (vdev_start(d, 0, &w) && vq_setup(d, 0, 8, &w)) {
			vdev_ready(d);
			for (int k = 0; k < 2; k++) {
				u32 got = 0, total = 0;
				/* the device may return fewer bytes than asked: ask again */
				for (int tries = 0; total < 64 && tries < 16; tries++) {
					struct vbuf v = { b + 64 * k + total, 64 - total };
					if (!vq_xfer(&d->q[0], &v, 0, 1, &got)) {
						why_add(&w, "read %d: timeout", k + 1);
						break;
					}
					total += got;
				}
				if (total < 64)
					why_add(&w, "read %d: %u bytes", k + 1, total);
			}
			bool z0 = true, z1 = true;
			for (int k = 0; k < 64; k++) {
				z0 = z0 && !b[k];
				z1 = z1 && !b[64 + k];
			}
			if (z0 || z1)
				why_add(&w, "all-zero data");
			if (!memcmp(b, b + 64, 64))
				why_add(&w, "two reads returned the same bytes");
			println("INFO %s %02x%02x%02x%02x%02x%02x%02x%02x... %02x%02x%02x%02x%02x%02x%02x%02x...",
				d->name, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[64], b[65],
				b[66], b[67], b[68], b[69], b[70], b[71]);
		}
		report(d->name, w.len == 0, &w);
	}
}
