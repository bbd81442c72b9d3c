/* virtio-vsock (device type 19): connects a stream from the guest's CID to
 * oxtest.vsockcid (default 2, the host) port oxtest.vsockport (default 1234), sends
 * "OXVSOCK ping\n", expects the same bytes back, then shuts the connection down.
 * Queues: 0 receive, 1 transmit, 2 events. Packets start with a 44-byte header. */
#include "testos.h"

#define OP_REQUEST   1
#define OP_RESPONSE  2
#define OP_RST       3
#define OP_SHUTDOWN  4
#define OP_RW        5
#define OP_CREDIT_UPDATE  6
#define OP_CREDIT_REQUEST 7
#define TYPE_STREAM  1

#define NRX 4
#define RXLEN 1024
#define OUR_BUF 65536u   /* receive space we advertise */

struct __attribute__((packed)) vs_hdr {
	u64 src_cid, dst_cid;
	u32 src_port, dst_port, len;
	u16 type, op;
	u32 flags, buf_alloc, fwd_cnt;
};

static struct vdev *vs;
static u64 our_cid;
static u32 our_port = 49152, fwd_cnt;
static u8 *txb;

static bool vs_send(u16 op, u32 flags, const void *data, u32 len)
{
	struct vs_hdr *h = (struct vs_hdr *)txb;
	memset(h, 0, sizeof(*h));
	h->src_cid = our_cid;
	h->dst_cid = opt.vsock_cid;
	h->src_port = our_port;
	h->dst_port = opt.vsock_port;
	h->len = len;
	h->type = TYPE_STREAM;
	h->op = op;
	h->flags = flags;
	h->buf_alloc = OUR_BUF;
	h->fwd_cnt = fwd_cnt;
	memcpy(txb + sizeof(*h), data, len);
	struct vbuf b = { txb, (u32)sizeof(*h) + len };
	return vq_xfer(&vs->q[1], &b, 1, 0, NULL);
}

/* Next packet for our connection (others are dropped), copied to out; false on timeout. */
static bool vs_recv(struct vs_hdr *out, u8 *data, u32 max, u32 *dlen, u64 timeout_ms)
{
	u64 end = rdtsc() + ms_to_tsc(timeout_ms);
	while (rdtsc() < end) {
		u32 l = 0;
		int hd = vq_get(&vs->q[0], &l);
		if (hd < 0) {
			u32 el;
			int e = vq_get(&vs->q[2], &el);   /* events (transport reset): re-post */
			if (e >= 0) {
				u8 *eb = (u8 *)(usize)vs->q[2].desc[e].addr;
				println("INFO %s event id %u", vs->name, *(u32 *)eb);
				struct vbuf b = { eb, 4 };
				vq_add(&vs->q[2], &b, 0, 1);
				vq_kick(&vs->q[2]);
			}
			cpu_relax();
			continue;
		}
		u8 *b = (u8 *)(usize)vs->q[0].desc[hd].addr;
		bool mine = false;
		if (l >= sizeof(struct vs_hdr)) {
			memcpy(out, b, sizeof(*out));
			mine = out->dst_port == our_port && out->src_port == opt.vsock_port &&
			       out->src_cid == opt.vsock_cid;
			u32 n = out->len;
			if (n > l - sizeof(*out))
				n = l - (u32)sizeof(*out);
			if (n > max)
				n = max;
			memcpy(data, b + sizeof(*out), n);
			*dlen = n;
		}
		struct vbuf rb = { b, RXLEN };
		vq_add(&vs->q[0], &rb, 0, 1);
		vq_kick(&vs->q[0]);
		if (mine)
			return true;
		println("INFO %s dropped a packet (%u bytes) not for port %u", vs->name, l, our_port);
	}
	return false;
}

void check_vsock(void)
{
	static struct vdev devs[1];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	if (!virtio_find(19, devs, 1)) {
		why_add(&w, "no virtio-vsock device");
		report("vsock", false, &w);
		return;
	}
	vs = &devs[0];
	char name[40];
	snprintf(name, sizeof(name), "%s-echo", vs->name);
	if (!vdev_start(vs, 0, &w) || !vq_setup(vs, 0, 8, &w) || !vq_setup(vs, 1, 8, &w) ||
	    !vq_setup(vs, 2, 4, &w)) {
		report(name, false, &w);
		return;
	}
	for (int i = 0; i < NRX; i++) {
		struct vbuf b = { dma_alloc(RXLEN, 64), RXLEN };
		vq_add(&vs->q[0], &b, 0, 1);
	}
	for (int i = 0; i < 2; i++) {
		struct vbuf b = { dma_alloc(4, 8), 4 };
		vq_add(&vs->q[2], &b, 0, 1);
	}
	txb = dma_alloc(RXLEN, 64);
	vdev_ready(vs);
	vq_kick(&vs->q[0]);
	vq_kick(&vs->q[2]);
	our_cid = vcfg64(vs, 0);
	println("INFO %s guest cid %llu, connecting to cid %u port %u", vs->name, our_cid,
		opt.vsock_cid, opt.vsock_port);

	struct vs_hdr h;
	u8 data[256];
	u32 dl = 0;
	static const char ping[] = "OXVSOCK ping\n";
	const u32 plen = sizeof(ping) - 1;
	if (!vs_send(OP_REQUEST, 0, NULL, 0)) {
		why_add(&w, "request: transmit timeout");
		goto out;
	}
	for (;;) {
		if (!vs_recv(&h, data, sizeof(data), &dl, (u64)opt.timeout_ms)) {
			why_add(&w, "no response within %lld ms", opt.timeout_ms);
			goto out;
		}
		if (h.op == OP_RESPONSE)
			break;
		if (h.op == OP_RST) {
			why_add(&w, "connection refused (RST)");
			goto out;
		}
	}
	println("INFO %s connected, peer buf_alloc %u fwd_cnt %u", vs->name, h.buf_alloc,
		h.fwd_cnt);
	if (h.buf_alloc < plen) {
		why_add(&w, "peer credit %u too small", h.buf_alloc);
		goto out;
	}
	if (!vs_send(OP_RW, 0, ping, plen)) {
		why_add(&w, "send: transmit timeout");
		goto out;
	}
	char got[64];
	u32 have = 0;
	while (have < plen) {
		if (!vs_recv(&h, data, sizeof(data), &dl, (u64)opt.timeout_ms)) {
			why_add(&w, "echo: %u of %u bytes within %lld ms", have, plen, opt.timeout_ms);
			break;
		}
		if (h.op == OP_RW) {
			for (u32 i = 0; i < dl && have < sizeof(got) - 1; i++)
				got[have++] = (char)data[i];
			fwd_cnt += dl;
		} else if (h.op == OP_CREDIT_REQUEST) {
			vs_send(OP_CREDIT_UPDATE, 0, NULL, 0);
		} else if (h.op == OP_RST || h.op == OP_SHUTDOWN) {
			why_add(&w, "peer closed (op %u) after %u bytes", h.op, have);
			break;
		}
	}
	got[have] = 0;
	if (have >= plen) {
		if (memcmp(got, ping, plen) != 0)
			why_add(&w, "echo differs");
		got[plen - 1] = 0;
		println("INFO %s rx \"%s\"", vs->name, got);
	}
	/* orderly close: SHUTDOWN (no more sending or receiving), wait briefly for the
	 * peer's RST, then reset our side anyway */
	vs_send(OP_SHUTDOWN, 3, NULL, 0);
	for (int i = 0; i < 4; i++)
		if (vs_recv(&h, data, sizeof(data), &dl, 250) && h.op == OP_RST)
			break;
	vs_send(OP_RST, 0, NULL, 0);
out:
	report(name, w.len == 0, &w);
}
