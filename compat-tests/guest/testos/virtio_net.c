/* virtio-net (device type 1) and a tiny network stack: answers ARP requests for
 * oxtest.ip and ICMP echo requests to it, sends a gratuitous ARP, sends oxtest.netsend
 * broadcast frames of ethertype 0x88b5 ("OXNET tx <n>") and counts received 0x88b5
 * frames. Queue 0 receives, 1 transmits; every frame starts with the 12-byte
 * virtio-net header (virtio 1.x always includes num_buffers). */
#include "testos.h"

#define F_MAC (1ull << 5)
#define VHDR 12
#define NRX 16
#define BUFLEN 2048
#define ETH_TEST 0x88B5

static struct vdev netdev[1];
static struct vdev *nd;
static u8 mac[6];
static u8 *txbuf;
static u32 rx_test, rx_arp, rx_icmp, rx_other;
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

/* Sends the frame at txbuf + VHDR (len bytes, padded to 60). */
static bool send_frame(u32 len)
{
	if (len < 60) {
		memset(txbuf + VHDR + len, 0, 60 - len);
		len = 60;
	}
	memset(txbuf, 0, VHDR);
	struct vbuf b = { txbuf, VHDR + len };
	return vq_xfer(&nd->q[1], &b, 1, 0, NULL);
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
		    ip[9] != 1 || memcmp(ip + 16, &opt.ip, 4) != 0 || ip[ihl] != 8)
			return;
		if (14 + tot > BUFLEN - VHDR)
			return;
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
		u8 *icmp = oip + ihl;
		icmp[0] = 0;                   /* echo reply */
		put16(icmp + 2, 0);
		put16(icmp + 2, csum(icmp, tot - ihl));
		rx_icmp++;
		send_frame(14 + tot);
		return;
	}
	rx_other++;
}

/* Handles every received frame; returns how many. */
static int poll_rx(void)
{
	int n = 0;
	u32 l;
	int h;
	while ((h = vq_get(&nd->q[0], &l)) >= 0) {
		u8 *b = (u8 *)(usize)nd->q[0].desc[h].addr;
		if (l > VHDR && l <= BUFLEN)
			handle(b + VHDR, l - VHDR);
		struct vbuf rb = { b, BUFLEN };
		vq_add(&nd->q[0], &rb, 0, 1);
		n++;
	}
	if (n)
		vq_kick(&nd->q[0]);
	return n;
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
	if (!vdev_start(nd, F_MAC, w) || !vq_setup(nd, 0, NRX, w) || !vq_setup(nd, 1, opt.netbench[0] ? 256 : 8, w))
		return false;
	for (int i = 0; i < NRX; i++) {
		struct vbuf b = { dma_alloc(BUFLEN, 64), BUFLEN };
		vq_add(&nd->q[0], &b, 0, 1);
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
	vq_kick(&nd->q[0]);
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
	for (int i = 1; i <= opt.netsend; i++) {
		u8 *f = txbuf + VHDR;
		memcpy(f, bcast, 6);
		memcpy(f + 6, mac, 6);
		put16(f + 12, ETH_TEST);
		int n = snprintf((char *)f + 14, 64, "OXNET tx %d", i);
		if (send_frame(14 + (u32)n + 1))
			sent++;
		poll_rx();
	}
	snprintf(name, sizeof(name), "%s-tx", nd->name);
	if (sent != opt.netsend)
		why_add(&w, "%d of %d frames sent", sent, opt.netsend);
	println("INFO %s sent %d test frames", nd->name, sent);
	report(name, w.len == 0, &w);

	println("INFO %s ready, waiting for %d test frames and %d echo requests (%lld ms)",
		nd->name, opt.netrecv, opt.netping, opt.nettime_ms);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.nettime_ms);
	while (rdtsc() < end &&
	       ((int)rx_test < opt.netrecv || (int)rx_icmp < opt.netping))
		if (!poll_rx())
			cpu_relax();
	println("INFO %s rx %u test frames, %u arp requests and %u echo requests answered, %u other",
		nd->name, rx_test, rx_arp, rx_icmp, rx_other);
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
