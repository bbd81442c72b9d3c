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

/* Set when the device announced a transport reset (after a snapshot or a restore:
 * every connection is gone); the wait in progress gives up. */
static bool vs_reset;

/* Next packet for our connection (others are dropped), copied to out; false on
 * timeout or transport reset. */
static bool vs_recv(struct vs_hdr *out, u8 *data, u32 max, u32 *dlen, u64 timeout_ms)
{
	u64 end = rdtsc() + ms_to_tsc(timeout_ms);
	while (rdtsc() < end) {
		/* Events first (a device announces a reset before it answers for the
		 * connections it no longer has); their buffers are re-posted. */
		u32 el;
		int e = vq_get(&vs->q[2], &el);
		if (e >= 0) {
			u8 *eb = (u8 *)(usize)vs->q[2].desc[e].addr;
			u32 id = *(u32 *)eb;
			println("INFO %s event id %u", vs->name, id);
			struct vbuf b = { eb, 4 };
			vq_add(&vs->q[2], &b, 0, 1);
			vq_kick(&vs->q[2]);
			if (id == 0) {
				vs_reset = true;
				return false;
			}
		}
		u32 l = 0;
		int hd = vq_get(&vs->q[0], &l);
		if (hd < 0) {
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

/* Finds the first vsock device and sets it up: 0 when there is none, -1 (with why)
 * when it fails. */
static int vs_setup(struct vdev *d, struct why *w)
{
	if (!virtio_find(19, d, 1))
		return 0;
	if (!vdev_start(d, 0, w) || !vq_setup(d, 0, 8, w) || !vq_setup(d, 1, 8, w) ||
	    !vq_setup(d, 2, 4, w))
		return -1;
	vs = d;
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
	return 1;
}

/* One connection from our_port: connect, send msg (plen bytes, at most 63), expect
 * the same bytes back, shut down. Prints the echo when loud. */
static void vs_exchange(const char *msg, u32 plen, bool loud, struct why *w)
{
	struct vs_hdr h;
	u8 data[256];
	u32 dl = 0;
	fwd_cnt = 0;
	if (!vs_send(OP_REQUEST, 0, NULL, 0)) {
		why_add(w, "request: transmit timeout");
		return;
	}
	for (;;) {
		if (!vs_recv(&h, data, sizeof(data), &dl, (u64)opt.timeout_ms)) {
			why_add(w, "no response within %lld ms", opt.timeout_ms);
			return;
		}
		if (h.op == OP_RESPONSE)
			break;
		if (h.op == OP_RST) {
			why_add(w, "connection refused (RST)");
			return;
		}
	}
	if (loud)
		println("INFO %s connected, peer buf_alloc %u fwd_cnt %u", vs->name, h.buf_alloc,
			h.fwd_cnt);
	if (h.buf_alloc < plen) {
		why_add(w, "peer credit %u too small", h.buf_alloc);
		return;
	}
	if (!vs_send(OP_RW, 0, msg, plen)) {
		why_add(w, "send: transmit timeout");
		return;
	}
	char got[64];
	u32 have = 0;
	while (have < plen) {
		if (!vs_recv(&h, data, sizeof(data), &dl, (u64)opt.timeout_ms)) {
			why_add(w, "echo: %u of %u bytes within %lld ms", have, plen, opt.timeout_ms);
			break;
		}
		if (h.op == OP_RW) {
			for (u32 i = 0; i < dl && have < sizeof(got) - 1; i++)
				got[have++] = (char)data[i];
			fwd_cnt += dl;
		} else if (h.op == OP_CREDIT_REQUEST) {
			vs_send(OP_CREDIT_UPDATE, 0, NULL, 0);
		} else if (h.op == OP_RST || h.op == OP_SHUTDOWN) {
			why_add(w, "peer closed (op %u) after %u bytes", h.op, have);
			break;
		}
	}
	got[have] = 0;
	if (have >= plen) {
		if (memcmp(got, msg, plen) != 0)
			why_add(w, "echo differs");
		got[plen - 1] = 0;
		if (loud)
			println("INFO %s rx \"%s\"", vs->name, got);
	}
	if (vs_reset)
		return;
	/* orderly close: SHUTDOWN (no more sending or receiving), wait briefly for the
	 * peer's RST, then reset our side anyway */
	vs_send(OP_SHUTDOWN, 3, NULL, 0);
	for (int i = 0; i < 4; i++)
		if (vs_recv(&h, data, sizeof(data), &dl, 250) && h.op == OP_RST)
			break;
	vs_send(OP_RST, 0, NULL, 0);
}

void check_vsock(void)
{
	static struct vdev devs[1];
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	int found = vs_setup(&devs[0], &w);
	if (!found) {
		why_add(&w, "no virtio-vsock device");
		report("vsock", false, &w);
		return;
	}
	char name[40];
	snprintf(name, sizeof(name), "%s-echo", devs[0].name);
	if (found > 0) {
		static const char ping[] = "OXVSOCK ping\n";
		vs_exchange(ping, sizeof(ping) - 1, true, &w);
	}
	report(name, w.len == 0, &w);
}

/* The ticker's vsock (oxtest.tickdev=1, tickdev.c): one connection per tick from a
 * new port, echoing "V <tick>\n". A transport reset in the middle (the guest was
 * restored) is announced and the exchange tried once more, as a driver reconnects. */
int vsock_tick_init(struct why *w)
{
	static struct vdev dev;
	return vs_setup(&dev, w);
}

void vsock_tick(u64 tick, struct why *w)
{
	char msg[32];
	int len = snprintf(msg, sizeof(msg), "V %llu\n", tick);
	for (int attempt = 0; attempt < 2; attempt++) {
		struct why e = { .len = 0 };
		e.buf[0] = 0;
		our_port++;
		vs_reset = false;
		vs_exchange(msg, (u32)len, false, &e);
		if (!e.len)
			return;
		if (!vs_reset || attempt) {
			why_add(w, "vsock: %s", e.buf);
			return;
		}
		println("INFO vsock transport reset at tick %llu: connecting again", tick);
	}
}
