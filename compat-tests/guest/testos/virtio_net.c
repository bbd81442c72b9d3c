/* virtio-net (device type 1) and a tiny network stack: answers ARP requests for
 * oxtest.ip, ICMP echo requests to it and UDP datagrams to its port 7 (echoed back),
 * sends a gratuitous ARP, sends oxtest.netsend broadcast frames of ethertype 0x88b5
 * ("OXNET tx <n>") and counts received 0x88b5 frames. Queue 0 receives, 1 transmits;
 * every frame starts with the 12-byte virtio-net header (virtio 1.x always includes
 * num_buffers).
 *
 * When the device offers VIRTIO_NET_F_MQ (with CTRL_VQ) the driver sets up two queue
 * pairs (receive 2p, transmit 2p + 1) and the control queue (2 * max_virtqueue_pairs),
 * enables both pairs with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET and checks the answers (0 or
 * more pairs than the device has, and an RX-mode command it did not offer, must be
 * refused). Replies go out on the pair their request came in on; the test frames go
 * out on both pairs (pair 1's say "OXNET q1 tx <n>"). */
#include "testos.h"

#define F_MAC (1ull << 5)
#define F_CTRL_VQ (1ull << 17)
#define F_CTRL_RX (1ull << 18)
#define F_MQ (1ull << 22)
#define VHDR 12
#define NRX 16
#define NRX1 8                  /* receive buffers of pair 1 */
#define BUFLEN 2048
#define ETH_TEST 0x88B5
#define NPAIRS 2                /* pairs the driver uses at most */

static struct vdev netdev[1];
static struct vdev *nd;
static u8 mac[6];
static u8 *txbuf;
static u32 rx_test, rx_arp, rx_icmp, rx_udp, rx_other;
static u32 rx_pair[NPAIRS], tx_pair[NPAIRS];
static int npairs = 1;          /* queue pairs in use */
static int ctrlq = -1;          /* control queue index, -1: none */
static bool up;

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }

static u16 csum(const u8 *p, u32 n)
{
	u32 s = 0;
	for (u32 i = 0; i + 1 < n; i += 2)
		s += (u32)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xFFFF) + (s >> 16);
	return (u16)~s;
}

/* Sends the frame at txbuf + VHDR (len bytes, padded to 60) on queue pair p. */
static bool send_frame_on(int p, u32 len)
{
	if (len < 60) {
		memset(txbuf + VHDR + len, 0, 60 - len);
		len = 60;
	}
	memset(txbuf, 0, VHDR);
	struct vbuf b = { txbuf, VHDR + len };
	bool ok = vq_xfer(&nd->q[2 * p + 1], &b, 1, 0, NULL);
	if (ok)
		tx_pair[p]++;
	return ok;
}

/* The pair the frame being handled came in on (replies go back there). */
static int cur_pair;

static bool send_frame(u32 len)
{
	return send_frame_on(cur_pair, len);
}

static void arp(const u8 *dst_mac, u16 op, const u8 *tha, const u8 *tpa)
{
	u8 *f = txbuf + VHDR;
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0806);
	u8 *a = f + 14;
	put16(a, 1);
	put16(a + 2, 0x0800);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, &opt.ip, 4);
	memcpy(a + 18, tha, 6);
	memcpy(a + 24, tpa, 4);
	send_frame(42);
}

/*
 * Copies the IPv4 frame f (IP total length tot, header length ihl) into
 * txbuf as its reply: MACs and IP addresses swapped, TTL 64, header
 * checksum redone. Returns the reply's IP payload, for the caller to turn
 * into its answer.
 */
static u8 *ip_reply(const u8 *f, u32 tot, u32 ihl)
{
	const u8 *ip = f + 14;
	u8 *o = txbuf + VHDR;
	memcpy(o, f + 6, 6);
	memcpy(o + 6, mac, 6);
	memcpy(o + 12, f + 12, 2 + tot);
	u8 *oip = o + 14;
	memcpy(oip + 12, ip + 16, 4);
	memcpy(oip + 16, ip + 12, 4);
	oip[8] = 64;
	put16(oip + 10, 0);
	put16(oip + 10, csum(oip, ihl));
	return oip + ihl;
}

static void handle(const u8 *f, u32 len)
{
	if (len < 14)
		return;
	u16 type = be16(f + 12);
	if (type == ETH_TEST) {
		rx_test++;
		return;
	}
	if (type == 0x0806 && len >= 42) {
		const u8 *a = f + 14;
		if (be16(a + 6) == 1 && memcmp(a + 24, &opt.ip, 4) == 0) {
			rx_arp++;
			arp(a + 8, 2, a + 8, a + 14);
		}
		return;
	}
	if (type == 0x0800 && len >= 34) {
		const u8 *ip = f + 14;
		u32 ihl = (ip[0] & 0xF) * 4u, tot = be16(ip + 2);
		if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > len ||
		    memcmp(ip + 16, &opt.ip, 4) != 0 || 14 + tot > BUFLEN - VHDR)
			return;
		if (ip[9] == 17 && be16(ip + ihl + 2) == 7) {
			/* UDP echo: ports swapped, checksum 0 (none) */
			u8 *udp = ip_reply(f, tot, ihl);
			memcpy(udp, ip + ihl + 2, 2);
			memcpy(udp + 2, ip + ihl, 2);
			put16(udp + 6, 0);
			rx_udp++;
			send_frame(14 + tot);
			return;
		}
		if (ip[9] != 1 || ip[ihl] != 8)
			return;
		u8 *icmp = ip_reply(f, tot, ihl);
		icmp[0] = 0;                   /* echo reply */
		put16(icmp + 2, 0);
		put16(icmp + 2, csum(icmp, tot - ihl));
		rx_icmp++;
		send_frame(14 + tot);
		return;
	}
	rx_other++;
}

/* Handles every received frame of every pair in use; returns how many. */
static int poll_rx(void)
{
	int total = 0;
	for (int p = 0; p < npairs; p++) {
		struct vq *q = &nd->q[2 * p];
		int n = 0;
		u32 l;
		int h;
		cur_pair = p;
		while ((h = vq_get(q, &l)) >= 0) {
			u8 *b = (u8 *)(usize)q->desc[h].addr;
			if (l > VHDR && l <= BUFLEN)
				handle(b + VHDR, l - VHDR);
			struct vbuf rb = { b, BUFLEN };
			vq_add(q, &rb, 0, 1);
			n++;
		}
		if (n)
			vq_kick(q);
		rx_pair[p] += (u32)n;
		total += n;
	}
	cur_pair = 0;
	return total;
}

/* One control-queue command: class, command, data; returns the device's status byte,
 * or -1 when the command did not complete. */
static int ctrl_cmd(u8 class, u8 cmd, const void *data, u32 len)
{
	static u8 *buf;
	if (!buf)
		buf = dma_alloc(64, 64);
	if (!buf || len > 32)
		return -1;
	buf[0] = class;
	buf[1] = cmd;
	memcpy(buf + 2, data, len);
	buf[48] = 0xEE;
	struct vbuf b[3] = { { buf, 2 }, { buf + 2, len }, { buf + 48, 1 } };
	u32 got = 0;
	if (!vq_xfer(&nd->q[ctrlq], b, 2, 1, &got) || got != 1)
		return -1;
	return buf[48];
}

/* VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET and the refusals the device owes (an RX-mode command
 * only where the device does not offer CTRL_RX). Returns whether NPAIRS are in use. */
static bool mq_setup(u16 maxp, struct why *w)
{
	u8 d[2];
	int st;
	d[0] = (u8)(maxp + 1);
	d[1] = (u8)((maxp + 1) >> 8);
	if ((st = ctrl_cmd(4, 0, d, 2)) != 1)
		why_add(w, "VQ_PAIRS_SET %u (more than max) answered %d, not ERR", maxp + 1, st);
	d[0] = 0;
	d[1] = 0;
	if ((st = ctrl_cmd(4, 0, d, 2)) != 1)
		why_add(w, "VQ_PAIRS_SET 0 answered %d, not ERR", st);
	u8 on = 1;
	if (!(nd->offered & F_CTRL_RX) && (st = ctrl_cmd(0, 0, &on, 1)) != 1)
		why_add(w, "RX PROMISC (CTRL_RX not offered) answered %d, not ERR", st);
	if ((st = ctrl_cmd(4, 0, d, 1)) != 1)
		why_add(w, "VQ_PAIRS_SET with 1 data byte answered %d, not ERR", st);
	d[0] = NPAIRS;
	d[1] = 0;
	if ((st = ctrl_cmd(4, 0, d, 2)) != 0) {
		why_add(w, "VQ_PAIRS_SET %d answered %d, not OK", NPAIRS, st);
		return false;
	}
	return true;
}

static bool net_up(struct why *w)
{
	if (up)
		return true;
	if (!virtio_find(1, netdev, 1)) {
		why_add(w, "no virtio-net device");
		return false;
	}
	nd = &netdev[0];
	if (!vdev_start(nd, F_MAC | F_CTRL_VQ | F_MQ, w))
		return false;
	u16 maxp = 1;
	bool mq = (nd->features & (F_MQ | F_CTRL_VQ)) == (F_MQ | F_CTRL_VQ);
	if (mq) {
		maxp = vcfg16(nd, 8);
		if (maxp < 1 || 2 * maxp + 1 > VDEV_MAXQ) {
			why_add(w, "max_virtqueue_pairs %u (this driver takes 1..%d)", maxp,
				(VDEV_MAXQ - 1) / 2);
			return false;
		}
		ctrlq = 2 * maxp;
	} else if (nd->features & F_CTRL_VQ) {
		ctrlq = 2;
	}
	int pairs = mq && maxp >= NPAIRS ? NPAIRS : 1;
	for (int p = 0; p < pairs; p++)
		if (!vq_setup(nd, 2 * p, p ? NRX1 : NRX, w) ||
		    !vq_setup(nd, 2 * p + 1, opt.netbench[0] && !p ? 256 : 8, w))
			return false;
	if (ctrlq >= 0 && !vq_setup(nd, ctrlq, 8, w))
		return false;
	for (int p = 0; p < pairs; p++)
		for (int i = 0; i < (p ? NRX1 : NRX); i++) {
			struct vbuf b = { dma_alloc(BUFLEN, 64), BUFLEN };
			if (!b.addr) {
				why_add(w, "out of DMA memory for receive buffers");
				return false;
			}
			vq_add(&nd->q[2 * p], &b, 0, 1);
		}
	txbuf = dma_alloc(BUFLEN, 64);
	if (nd->features & F_MAC) {
		for (int i = 0; i < 6; i++)
			mac[i] = vcfg8(nd, (u32)i);
	} else {
		static const u8 def[6] = { 0x52, 0x54, 0x00, 0x6f, 0x78, 0x01 };
		memcpy(mac, def, 6);
	}
	vdev_ready(nd);
	for (int p = 0; p < pairs; p++)
		vq_kick(&nd->q[2 * p]);
	if (pairs > 1) {
		struct why m = { .len = 0 };
		m.buf[0] = 0;
		if (mq_setup(maxp, &m))
			npairs = pairs;
		bool ok = m.len == 0;
		char name[40];
		snprintf(name, sizeof(name), "%s-mq", nd->name);
		println("INFO %s max_virtqueue_pairs %u, %d in use", nd->name, maxp, npairs);
		report(name, ok, &m);
	}
	up = true;
	const u8 *ip = (const u8 *)&opt.ip;
	println("INFO %s mac %02x:%02x:%02x:%02x:%02x:%02x%s ip %u.%u.%u.%u", nd->name, mac[0],
		mac[1], mac[2], mac[3], mac[4], mac[5], nd->features & F_MAC ? "" : " (no MAC feature)",
		ip[0], ip[1], ip[2], ip[3]);
	static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const u8 zero[6] = { 0 };
	arp(bcast, 1, zero, (const u8 *)&opt.ip);      /* gratuitous ARP */
	return true;
}

void check_net(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	if (!net_up(&w)) {
		report(nd ? nd->name : "net", false, &w);
		return;
	}
	static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	int sent = 0;
	for (int p = 0; p < npairs; p++)
		for (int i = 1; i <= opt.netsend; i++) {
			u8 *f = txbuf + VHDR;
			memcpy(f, bcast, 6);
			memcpy(f + 6, mac, 6);
			put16(f + 12, ETH_TEST);
			int n = p ? snprintf((char *)f + 14, 64, "OXNET q%d tx %d", p, i)
				  : snprintf((char *)f + 14, 64, "OXNET tx %d", i);
			if (send_frame_on(p, 14 + (u32)n + 1))
				sent++;
			poll_rx();
		}
	snprintf(name, sizeof(name), "%s-tx", nd->name);
	if (sent != opt.netsend * npairs)
		why_add(&w, "%d of %d frames sent", sent, opt.netsend * npairs);
	println("INFO %s sent %d test frames", nd->name, sent);
	report(name, w.len == 0, &w);

	println("INFO %s ready, waiting for %d test frames, %d echo requests and %d UDP datagrams (%lld ms)",
		nd->name, opt.netrecv, opt.netping, opt.netudp, opt.nettime_ms);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.nettime_ms);
	while (rdtsc() < end &&
	       ((int)rx_test < opt.netrecv || (int)rx_icmp < opt.netping ||
		(int)rx_udp < opt.netudp))
		if (!poll_rx())
			cpu_relax();
	println("INFO %s rx %u test frames, %u arp requests, %u echo requests and %u UDP datagrams answered, %u other",
		nd->name, rx_test, rx_arp, rx_icmp, rx_udp, rx_other);
	for (int p = 0; p < npairs; p++)
		println("INFO %s queue pair %d: %u frames received, %u sent", nd->name, p,
			rx_pair[p], tx_pair[p]);
	if (opt.netudp > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-udp", nd->name);
		if ((int)rx_udp < opt.netudp)
			why_add(&w, "%u of %d UDP datagrams", rx_udp, opt.netudp);
		report(name, w.len == 0, &w);
	}
	if (npairs > 1) {
		/* pair 1 both ways: frames the host's flows steered to its tap queue came in
		 * on receive queue 2 and their answers (and the q1 test frames) left on 3 */
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-pair1", nd->name);
		if (!rx_pair[1])
			why_add(&w, "nothing received on queue pair 1");
		if ((int)tx_pair[1] < opt.netsend)
			why_add(&w, "%u frames sent on queue pair 1", tx_pair[1]);
		report(name, w.len == 0, &w);
	}
	if (opt.netrecv > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-rx", nd->name);
		if ((int)rx_test < opt.netrecv)
			why_add(&w, "%u of %d test frames", rx_test, opt.netrecv);
		report(name, w.len == 0, &w);
	}
	if (opt.netping > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-ping", nd->name);
		if ((int)rx_icmp < opt.netping)
			why_add(&w, "%u of %d echo requests", rx_icmp, opt.netping);
		report(name, w.len == 0, &w);
	}
}

/* Final action net-serve: answer ARP and ICMP echo for oxtest.netserve seconds, then
 * power off. */
void net_serve(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	pci_scan();
	if (!net_up(&w)) {
		println("INFO net-serve: %s", w.buf);
		return;
	}
	println("INFO net-serve for %lld s", opt.netserve_s);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.netserve_s * 1000);
	u32 last = rx_icmp;
	while (rdtsc() < end) {
		if (!poll_rx())
			cpu_relax();
		if (rx_icmp != last) {
			last = rx_icmp;
			println("INFO net-serve echo %u answered", last);
		}
	}
	println("INFO net-serve done: %u arp, %u echo, %u test frames", rx_arp, rx_icmp, rx_test);
	poweroff();
}

/* Throughput mode (check `netbench`, oxtest.netbench=tx:MS[:LEN],...): broadcast frames
 * of LEN bytes (default 60; ethertype 0x88b5, payload "OXNET bench") transmitted for MS
 * ms with the transmit ring kept full. All chains point at one buffer (the device only
 * reads it). After each sweep of the used ring the freed entries are refilled and the
 * device is notified once. Prints
 *     BENCH net-08 tx 60B pps=123456 frames=123456 ms=1000
 * and PASS netbench-SS when every frame completed. */
/* The transmit loop; runs in ring 3 (see ring3.S), so it prints nothing. */
struct txrun {
	struct vbuf b;
	u64 ms, sent, t0, t1;
	bool ok;
};

static u64 tx_loop(void *arg)
{
	struct txrun *r = arg;
	struct vq *q = &nd->q[1];
	int inflight = 0;
	r->t0 = rdtsc();
	u64 t = r->t0, stop = r->t0 + ms_to_tsc(r->ms);
	u64 limit = stop + ms_to_tsc((u64)opt.timeout_ms);
	while (q->nfree && vq_add(q, &r->b, 1, 0) >= 0)
		inflight++;
	vq_kick(q);
	r->ok = true;
	while (inflight) {
		int h = vq_get(q, NULL);
		t = rdtsc();
		if (h < 0) {
			if (t > limit) {
				r->ok = false;
				break;
			}
			cpu_relax();
			continue;
		}
		inflight--;
		r->sent++;
		if (t < stop && vq_add(q, &r->b, 1, 0) >= 0)
			inflight++;
		if (*(volatile u16 *)(q->used + 2) == q->last_used)
			vq_kick(q);
	}
	r->t1 = t;
	return 0;
}

static bool bench_tx(u64 ms, u32 len)
{
	struct vq *q = &nd->q[1];
	u8 *f = dma_alloc(VHDR + len, 64);
	if (!f)
		return false;
	u8 *e = f + VHDR;
	memset(e, 0xff, 6);
	memcpy(e + 6, mac, 6);
	put16(e + 12, ETH_TEST);
	memcpy(e + 14, "OXNET bench", 12);
	while (vq_get(q, NULL) >= 0)
		;
	struct txrun r = { .b = { f, VHDR + len }, .ms = ms };
	run_user(tx_loop, &r);
	u64 us = (r.t1 - r.t0) / (tsc_hz / 1000000);
	if (!us)
		us = 1;
	println("BENCH %s tx %uB pps=%llu frames=%llu ms=%llu%s", nd->name, len,
		r.sent * 1000000 / us, r.sent, us / 1000, r.ok ? "" : " (timed out)");
	return r.ok && r.sent > 0;
}

void check_netbench(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	if (!net_up(&w)) {
		report("netbench", false, &w);
		return;
	}
	snprintf(name, sizeof(name), "netbench-%02x", nd->pci->dev);
	char item[32];
	for (const char *p = next_item(opt.netbench, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item))) {
		if (!item[0])
			continue;
		u64 ms = 0, len = 60;
		const char *s = item;
		bool good = strncmp(s, "tx:", 3) == 0;
		s += 3;
		if (good) {
			int nd_ = 0;
			for (; *s >= '0' && *s <= '9'; s++, nd_++)
				ms = ms * 10 + (u64)(*s - '0');
			if (*s == ':') {
				len = 0;
				for (s++; *s >= '0' && *s <= '9'; s++)
					len = len * 10 + (u64)(*s - '0');
			}
			good = nd_ && !*s && ms && len >= 60 && len <= 1514;
		}
		if (!good) {
			why_add(&w, "bad item '%s'", item);
			continue;
		}
		if (!bench_tx(ms, (u32)len))
			why_add(&w, "%s: frames did not complete", item);
	}
	report(name, w.len == 0, &w);
}
