/* The `gpu` check: virtio-gpu (1af4:1050), 2D. The display information (and the EDID
 * when offered), a W x H B8G8R8X8 resource backed by guest memory from 16 MiB in 64 KiB
 * pieces, the display pattern (README, Display) drawn there, then SET_SCANOUT,
 * TRANSFER_TO_HOST_2D and RESOURCE_FLUSH (fenced), so the host's console shows it.
 * Two requests the device must refuse are tried on the way. */
#include "testos.h"

#define GPU_F_EDID (1ull << 1)

#define CMD_GET_DISPLAY_INFO 0x0100
#define CMD_RESOURCE_CREATE_2D 0x0101
#define CMD_SET_SCANOUT 0x0103
#define CMD_RESOURCE_FLUSH 0x0104
#define CMD_TRANSFER_TO_HOST_2D 0x0105
#define CMD_RESOURCE_ATTACH_BACKING 0x0106
#define CMD_GET_EDID 0x010a
#define RESP_OK_NODATA 0x1100
#define RESP_OK_DISPLAY_INFO 0x1101
#define RESP_OK_EDID 0x1104
#define RESP_ERR_INVALID_RESOURCE_ID 0x1203
#define RESP_ERR_INVALID_PARAMETER 0x1205
#define FLAG_FENCE 1
#define FORMAT_B8G8R8X8 2

#define FB_BASE 0x1000000ull      /* 16 MiB: the resource's backing */
#define PIECE 0x10000u            /* bytes per backing entry */
#define MAX_DIM 4096
#define RES_ID 1

struct gpu_hdr {
	u32 type, flags;
	u64 fence_id;
	u32 ctx_id;
	u8 ring_idx, pad[3];
};

struct gpu_rect { u32 x, y, w, h; };

/* Request and response buffers (DMA pool). */
static u8 *req, *resp;
#define REQ_LEN 64
#define RESP_LEN 1056

/* Sends the REQ_LEN-or-shorter request in `req` (plus `extra`, a second readable
 * buffer, if given) and waits for the response; returns its type, 0 on timeout. */
static u32 gpu_cmd(struct vdev *d, u32 len, void *extra, u32 extra_len, struct why *w)
{
	memset(resp, 0, RESP_LEN);
	struct vbuf b[3] = { { req, len } };
	int nout = 1;
	if (extra)
		b[nout++] = (struct vbuf){ extra, extra_len };
	b[nout] = (struct vbuf){ resp, RESP_LEN };
	u32 got = 0;
	if (!vq_xfer(&d->q[0], b, nout, 1, &got)) {
		why_add(w, "request 0x%x: timeout", ((struct gpu_hdr *)req)->type);
		return 0;
	}
	if (got < sizeof(struct gpu_hdr)) {
		why_add(w, "request 0x%x: response of %u bytes", ((struct gpu_hdr *)req)->type, got);
		return 0;
	}
	return ((struct gpu_hdr *)resp)->type;
}

/* Starts a request of `type` in `req`; returns a pointer to its body. */
static u32 *gpu_req(u32 type)
{
	memset(req, 0, REQ_LEN);
	((struct gpu_hdr *)req)->type = type;
	return (u32 *)(req + sizeof(struct gpu_hdr));
}

static bool expect(u32 got, u32 want, const char *what, struct why *w)
{
	if (got == want)
		return true;
	if (got)
		why_add(w, "%s: response 0x%x, want 0x%x", what, got, want);
	return false;
}

static void display_info(struct vdev *d, struct why *w)
{
	gpu_req(CMD_GET_DISPLAY_INFO);
	if (!expect(gpu_cmd(d, sizeof(struct gpu_hdr), NULL, 0, w), RESP_OK_DISPLAY_INFO,
		    "GET_DISPLAY_INFO", w))
		return;
	const u32 *m = (const u32 *)(resp + sizeof(struct gpu_hdr));
	println("INFO %s display info: scanout 0 %ux%u at %u,%u enabled %u", d->name, m[2],
		m[3], m[0], m[1], m[4]);
	if (!m[4] || !m[2] || !m[3])
		why_add(w, "GET_DISPLAY_INFO: scanout 0 not enabled with a size");
}

static void get_edid(struct vdev *d, struct why *w)
{
	gpu_req(CMD_GET_EDID)[0] = 0;
	if (!expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 8, NULL, 0, w), RESP_OK_EDID, "GET_EDID",
		    w))
		return;
	u32 size = *(const u32 *)(resp + sizeof(struct gpu_hdr));
	const u8 *e = resp + sizeof(struct gpu_hdr) + 8;
	static const u8 magic[8] = { 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0 };
	u8 sum = 0;
	for (int i = 0; i < 128; i++)
		sum = (u8)(sum + e[i]);
	if (size < 128 || size > 1024 || memcmp(e, magic, 8) || sum) {
		why_add(w, "GET_EDID: size %u, header %s, checksum %s", size,
			memcmp(e, magic, 8) ? "bad" : "ok", sum ? "bad" : "ok");
		return;
	}
	const u8 *t = e + 54;   /* the first detailed timing: the preferred mode */
	println("INFO %s EDID %u bytes, version %u.%u, preferred %ux%u", d->name, size, e[18],
		e[19], t[2] | (t[4] >> 4) << 8, t[5] | (t[7] >> 4) << 8);
}

/* Requests the device must refuse: a scanout of an unknown resource, a transfer
 * wider than the resource. */
static void refusals(struct vdev *d, u32 wd, u32 ht, struct why *w)
{
	u32 *b = gpu_req(CMD_SET_SCANOUT);
	b[2] = wd;
	b[3] = ht;
	b[4] = 0;
	b[5] = 99;
	expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 24, NULL, 0, w),
	       RESP_ERR_INVALID_RESOURCE_ID, "SET_SCANOUT of resource 99", w);
	b = gpu_req(CMD_TRANSFER_TO_HOST_2D);
	b[2] = wd + 1;
	b[3] = ht;
	b[6] = RES_ID;
	expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 32, NULL, 0, w), RESP_ERR_INVALID_PARAMETER,
	       "TRANSFER_TO_HOST_2D wider than the resource", w);
}

static bool attach_backing(struct vdev *d, u32 bytes, struct why *w)
{
	u32 n = (bytes + PIECE - 1) / PIECE;
	struct { u64 addr; u32 len, pad; } *ents = dma_alloc(16u * n, 16);
	if (!ents) {
		why_add(w, "no DMA memory for %u backing entries", n);
		return false;
	}
	for (u32 i = 0; i < n; i++) {
		ents[i].addr = FB_BASE + (u64)i * PIECE;
		ents[i].len = i + 1 < n ? PIECE : bytes - i * PIECE;
		ents[i].pad = 0;
	}
	u32 *b = gpu_req(CMD_RESOURCE_ATTACH_BACKING);
	b[0] = RES_ID;
	b[1] = n;
	println("INFO %s backing: %u entries from 0x%llx", d->name, n, FB_BASE);
	return expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 8, ents, 16u * n, w), RESP_OK_NODATA,
		      "RESOURCE_ATTACH_BACKING", w);
}

/* SET_SCANOUT, TRANSFER_TO_HOST_2D, RESOURCE_FLUSH with a fence. */
static bool show(struct vdev *d, u32 wd, u32 ht, struct why *w)
{
	u32 *b = gpu_req(CMD_SET_SCANOUT);
	b[2] = wd;
	b[3] = ht;
	b[4] = 0;
	b[5] = RES_ID;
	if (!expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 24, NULL, 0, w), RESP_OK_NODATA,
		    "SET_SCANOUT", w))
		return false;
	b = gpu_req(CMD_TRANSFER_TO_HOST_2D);
	b[2] = wd;
	b[3] = ht;
	b[4] = 0;   /* offset, 64 bits */
	b[5] = 0;
	b[6] = RES_ID;
	if (!expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 32, NULL, 0, w), RESP_OK_NODATA,
		    "TRANSFER_TO_HOST_2D", w))
		return false;
	b = gpu_req(CMD_RESOURCE_FLUSH);
	struct gpu_hdr *h = (struct gpu_hdr *)req;
	h->flags = FLAG_FENCE;
	h->fence_id = 0x1234567890ull;
	b[2] = wd;
	b[3] = ht;
	b[4] = RES_ID;
	if (!expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 24, NULL, 0, w), RESP_OK_NODATA,
		    "RESOURCE_FLUSH", w))
		return false;
	const struct gpu_hdr *r = (const struct gpu_hdr *)resp;
	if (!(r->flags & FLAG_FENCE) || r->fence_id != 0x1234567890ull) {
		why_add(w, "RESOURCE_FLUSH: fence not echoed (flags 0x%x id 0x%llx)", r->flags,
			r->fence_id);
		return false;
	}
	return true;
}

void check_gpu(void)
{
	static struct vdev devs[1];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	u32 wd = opt.disp_w, ht = opt.disp_h, sum = 0;
	char name[64];
	snprintf(name, sizeof(name), "gpu");
	if (!virtio_find(16, devs, 1)) {
		why_add(&w, "no virtio-gpu device");
		report(name, false, &w);
		return;
	}
	struct vdev *d = &devs[0];
	if (!wd || !ht || wd > MAX_DIM || ht > MAX_DIM) {
		why_add(&w, "mode %ux%u out of range", wd, ht);
		report(name, false, &w);
		return;
	}
	req = dma_alloc(REQ_LEN, 64);
	resp = dma_alloc(RESP_LEN, 64);
	bool ok = req && resp && vdev_start(d, GPU_F_EDID, &w) && vq_setup(d, 0, 16, &w) &&
		  vq_setup(d, 1, 16, &w);
	if (ok) {
		vdev_ready(d);
		u32 scanouts = vcfg32(d, 8);
		println("INFO %s config: events_read 0x%x num_scanouts %u num_capsets %u",
			d->name, vcfg32(d, 0), scanouts, vcfg32(d, 12));
		if (!scanouts)
			why_add(&w, "num_scanouts 0");
		display_info(d, &w);
		if (d->features & GPU_F_EDID)
			get_edid(d, &w);
		u32 *b = gpu_req(CMD_RESOURCE_CREATE_2D);
		b[0] = RES_ID;
		b[1] = FORMAT_B8G8R8X8;
		b[2] = wd;
		b[3] = ht;
		ok = expect(gpu_cmd(d, sizeof(struct gpu_hdr) + 16, NULL, 0, &w), RESP_OK_NODATA,
			    "RESOURCE_CREATE_2D", &w);
	}
	if (ok) {
		ok = attach_backing(d, wd * ht * 4, &w);
		if (ok)
			refusals(d, wd, ht, &w);
		ok = ok && display_draw_into((volatile u32 *)(usize)FB_BASE, wd, ht, wd, &sum, &w) &&
		     show(d, wd, ht, &w);
	}
	if (ok && w.len == 0)
		snprintf(name, sizeof(name), "gpu %ux%u checksum=0x%08x", wd, ht, sum);
	report(name, ok, &w);
}
