/* virtio-net (device type 1) and a tiny network stack: answers ARP requests for
 * its address, ICMP echo requests to it and UDP datagrams to its port 7 (echoed back),
 * sends a gratuitous ARP, sends oxtest.netsend broadcast frames of ethertype 0x88b5
 * ("OXNET tx <n>") and counts received 0x88b5 frames. Queue 0 receives, 1 transmits;
 * every frame starts with the 12-byte virtio-net header (virtio 1.x always includes
 * num_buffers).
 *
 * The address is oxtest.ip (with its prefix and oxtest.gw), or with oxtest.ip=dhcp a
 * DHCPv4 lease (subnet mask, router). Traffic the guest starts itself (oxtest.netreach
 * echo requests, the udp netbench) goes to the destination's MAC when it is on the
 * subnet, else to the router's; both are found by ARP.
 *
 * When the device offers VIRTIO_NET_F_MQ (with CTRL_VQ) the driver sets up two queue
 * pairs (receive 2p, transmit 2p + 1) and the control queue (2 * max_virtqueue_pairs),
 * enables both pairs with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET and checks the answers (0 or
 * more pairs than the device has, and an RX-mode command it did not offer, must be
 * refused). Replies go out on the pair their request came in on; the test frames go
 * out on both pairs (pair 1's say "OXNET q1 tx <n>").
 *
 * The same stack runs on another NIC through a struct net_link (net_run_link): the
 * e1000 check hands over its MAC and its send and receive functions. */
#include "testos.h"

#define F_MAC (1ull << 5)
#define F_CTRL_VQ (1ull << 17)
#define F_CTRL_RX (1ull << 18)
#define F_MQ (1ull << 22)
#define F_STATUS (1ull << 16)
#define S_LINK_UP 1
#define VHDR 12
#define NRX 16
#define NRX1 8                  /* receive buffers of pair 1 */
#define BUFLEN 2048
#define ETH_TEST 0x88B5
#define NPAIRS 2                /* pairs the driver uses at most */

static struct vdev netdev[1];
static struct vdev *nd;
/* Another NIC under the stack (e1000.c), NULL for virtio-net. */
static const struct net_link *link;
/* The device's name in results: "net-08", "e1000-08". */
static const char *ifname = "net";
static u8 mac[6];
static u8 *txbuf;
static u32 rx_test, rx_arp, rx_icmp, rx_udp, rx_other;
static u32 rx_pair[NPAIRS], tx_pair[NPAIRS];
static int npairs = 1;          /* queue pairs in use */
static int ctrlq = -1;          /* control queue index, -1: none */
static bool up;
/* The address in use, its mask and router (network byte order in memory; 0: none). */
static u32 my_ip, my_mask, my_gw;
static u16 ip_id;
static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
/* ARP lookup in progress (resolve) */
static u32 arp_want;
static u8 arp_mac[6];
static bool arp_got;
/* echo request in flight (netreach): its destination and sequence number */
#define ECHO_ID 0x6f78
static u32 echo_dst;
static u16 echo_seq;
static bool echo_got;
/* DHCP client */
enum { DHCP_OFF, DHCP_SELECTING, DHCP_OFFERED, DHCP_REQUESTING, DHCP_BOUND, DHCP_NAK };
static int dhcp_state;
static u8 dhcp_xid[4];
static u32 dhcp_offer, dhcp_server, dhcp_mask, dhcp_router, dhcp_dns, dhcp_lease;
static bool reach_done;

static u16 be16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }

/* Internet checksum: sum16 adds n bytes to a running sum (an odd n only at the end),
 * fold finishes it. */
static u32 sum16(u32 s, const u8 *p, u32 n)
{
	for (u32 i = 0; i + 1 < n; i += 2)
		s += (u32)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	return s;
}

static u16 fold(u32 s)
{
	while (s >> 16)
		s = (s & 0xFFFF) + (s >> 16);
	return (u16)~s;
}

static u16 csum(const u8 *p, u32 n)
{
	return fold(sum16(0, p, n));
}

/* Dotted quad of an address in network byte order (four rotating buffers). */
static const char *ip_s(u32 ip)
{
	static char buf[4][16];
	static int k;
	const u8 *b = (const u8 *)&ip;
	char *o = buf[k++ & 3];
	snprintf(o, 16, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
	return o;
}

static u32 prefix_mask(int prefix)
{
	return prefix <= 0 ? 0 : __builtin_bswap32(~0u << (32 - prefix));
}

static int mask_prefix(u32 mask)
{
	int n = 0;
	for (; mask; mask &= mask - 1)
		n++;
	return n;
}

/* Sends the frame at txbuf + VHDR (len bytes, padded to 60) on queue pair p. */
static bool send_frame_on(int p, u32 len)
{
	if (len < 60) {
		memset(txbuf + VHDR + len, 0, 60 - len);
		len = 60;
	}
	bool ok;
	if (link) {
		ok = link->send(txbuf + VHDR, len);
	} else {
		memset(txbuf, 0, VHDR);
		struct vbuf b = { txbuf, VHDR + len };
		ok = vq_xfer(&nd->q[2 * p + 1], &b, 1, 0, NULL);
	}
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
	memcpy(a + 14, &my_ip, 4);
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

/* Writes the Ethernet and IPv4 headers (20 bytes, DF, TTL 64) for a plen-byte
 * payload of protocol proto to f; returns the payload. */
static u8 *ip_build(u8 *f, const u8 *dmac, u8 proto, u32 src, u32 dst, u32 plen)
{
	memcpy(f, dmac, 6);
	memcpy(f + 6, mac, 6);
	put16(f + 12, 0x0800);
	u8 *ip = f + 14;
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (u16)(20 + plen));
	put16(ip + 4, ip_id++);
	put16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	memcpy(ip + 12, &src, 4);
	memcpy(ip + 16, &dst, 4);
	put16(ip + 10, csum(ip, 20));
	return ip + 20;
}

/* Puts the Ethernet, IPv4 and UDP headers in front of the plen bytes already at
 * f + 42 (UDP checksum over the pseudo header); returns the frame length. */
static u32 udp_build(u8 *f, const u8 *dmac, u32 src, u32 dst, u16 sport, u16 dport, u32 plen)
{
	u8 *u = ip_build(f, dmac, 17, src, dst, 8 + plen);
	put16(u, sport);
	put16(u + 2, dport);
	put16(u + 4, (u16)(8 + plen));
	put16(u + 6, 0);
	u8 ph[12];
	memcpy(ph, &src, 4);
	memcpy(ph + 4, &dst, 4);
	ph[8] = 0;
	ph[9] = 17;
	put16(ph + 10, (u16)(8 + plen));
	u16 c = fold(sum16(sum16(0, ph, 12), u, 8 + plen));
	put16(u + 6, c ? c : 0xFFFF);
	return 42 + plen;
}

static const u8 dhcp_cookie[4] = { 99, 130, 83, 99 };

/* DHCPDISCOVER (type 1) or DHCPREQUEST (3) from 0.0.0.0 to the broadcast address. */
static void dhcp_send(u8 type)
{
	u8 *f = txbuf + VHDR;
	u8 *d = f + 42;
	memset(d, 0, 300);
	d[0] = 1;                       /* BOOTREQUEST, Ethernet, 6-byte addresses */
	d[1] = 1;
	d[2] = 6;
	memcpy(d + 4, dhcp_xid, 4);
	put16(d + 10, 0x8000);          /* broadcast flag: we cannot take unicast IP yet */
	memcpy(d + 28, mac, 6);
	memcpy(d + 236, dhcp_cookie, 4);
	u8 *o = d + 240;
	*o++ = 53;
	*o++ = 1;
	*o++ = type;
	*o++ = 61;                      /* client identifier: hardware type 1 + MAC */
	*o++ = 7;
	*o++ = 1;
	memcpy(o, mac, 6);
	o += 6;
	u32 hl = (u32)strlen(opt.hostname);
	if (hl) {
		*o++ = 12;
		*o++ = (u8)hl;
		memcpy(o, opt.hostname, hl);
		o += hl;
	}
	if (type == 3) {
		*o++ = 50;              /* requested address, server identifier */
		*o++ = 4;
		memcpy(o, &dhcp_offer, 4);
		o += 4;
		*o++ = 54;
		*o++ = 4;
		memcpy(o, &dhcp_server, 4);
		o += 4;
	}
	*o++ = 55;                      /* parameters: mask, router, DNS, lease time */
	*o++ = 4;
	*o++ = 1;
	*o++ = 3;
	*o++ = 6;
	*o++ = 51;
	*o++ = 255;
	u32 plen = (u32)(o - d);
	if (plen < 300)                 /* the BOOTP minimum, which some servers expect */
		plen = 300;
	send_frame(udp_build(f, bcast, 0, 0xFFFFFFFFu, 68, 67, plen));
}

static u32 get32(const u8 *p)
{
	u32 v;
	memcpy(&v, p, 4);
	return v;
}

/* A BOOTREPLY (n bytes from UDP port 67, sent by src) for our transaction. */
static void dhcp_rx(const u8 *d, u32 n, u32 src)
{
	if (n < 240 || d[0] != 2 || memcmp(d + 4, dhcp_xid, 4) != 0 ||
	    memcmp(d + 28, mac, 6) != 0 || memcmp(d + 236, dhcp_cookie, 4) != 0)
		return;
	u8 type = 0;
	u32 server = 0, mask = 0, router = 0, dns = 0, lease = 0;
	for (u32 i = 240; i < n && d[i] != 255;) {
		if (d[i] == 0) {
			i++;
			continue;
		}
		if (i + 2 > n || i + 2 + d[i + 1] > n)
			break;
		u8 l = d[i + 1];
		const u8 *v = d + i + 2;
		if (d[i] == 53 && l >= 1)
			type = v[0];
		else if (d[i] == 54 && l >= 4)
			server = get32(v);
		else if (d[i] == 1 && l >= 4)
			mask = get32(v);
		else if (d[i] == 3 && l >= 4)
			router = get32(v);
		else if (d[i] == 6 && l >= 4)
			dns = get32(v);
		else if (d[i] == 51 && l >= 4)
			lease = (u32)v[0] << 24 | (u32)v[1] << 16 | (u32)v[2] << 8 | v[3];
		i += 2u + l;
	}
	if (!server)
		server = src;
	u32 yi = get32(d + 16);
	if (type == 2 && dhcp_state == DHCP_SELECTING && yi) {
		dhcp_offer = yi;
		dhcp_server = server;
		dhcp_state = DHCP_OFFERED;
	} else if (type == 5 && dhcp_state == DHCP_REQUESTING && server == dhcp_server && yi) {
		dhcp_offer = yi;
		dhcp_mask = mask ? mask : prefix_mask(opt.prefix);
		dhcp_router = router;
		dhcp_dns = dns;
		dhcp_lease = lease;
		dhcp_state = DHCP_BOUND;
	} else if (type == 6 && dhcp_state == DHCP_REQUESTING && server == dhcp_server) {
		dhcp_state = DHCP_NAK;
	}
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
		if (be16(a + 6) == 2 && arp_want && memcmp(a + 14, &arp_want, 4) == 0) {
			memcpy(arp_mac, a + 8, 6);
			arp_got = true;
		}
		if (be16(a + 6) == 1 && my_ip && memcmp(a + 24, &my_ip, 4) == 0) {
			rx_arp++;
			arp(a + 8, 2, a + 8, a + 14);
		}
		return;
	}
	if (type == 0x0800 && len >= 34) {
		const u8 *ip = f + 14;
		u32 ihl = (ip[0] & 0xF) * 4u, tot = be16(ip + 2);
		if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > len ||
		    14 + tot > BUFLEN - VHDR)
			return;
		/* DHCP replies come broadcast or to the offered address, before it is ours */
		if (ip[9] == 17 && be16(ip + ihl) == 67 && be16(ip + ihl + 2) == 68) {
			if (dhcp_state != DHCP_OFF)
				dhcp_rx(ip + ihl + 8, tot - ihl - 8, get32(ip + 12));
			return;
		}
		if (!my_ip || memcmp(ip + 16, &my_ip, 4) != 0)
			return;
		if (ip[9] == 1 && ip[ihl] == 0) {
			/* echo reply to the netreach request in flight */
			if (echo_seq && get32(ip + 12) == echo_dst && be16(ip + ihl + 4) == ECHO_ID &&
			    be16(ip + ihl + 6) == echo_seq)
				echo_got = true;
			return;
		}
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
	if (link) {
		total = link->poll(handle);
		rx_pair[0] += (u32)total;
		return total;
	}
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

/* Polls for up to ms milliseconds, or until *flag is set. */
static void poll_until(u64 ms, volatile bool *flag)
{
	u64 end = rdtsc() + ms_to_tsc(ms);
	while (!*flag && rdtsc() < end)
		if (!poll_rx())
			cpu_relax();
}

/* ARP for ip: up to 3 requests, 1 s apart; its MAC into out. */
static bool resolve(u32 ip, u8 *out)
{
	static const u8 zero[6] = { 0 };
	arp_want = ip;
	arp_got = false;
	for (int i = 0; i < 3 && !arp_got; i++) {
		arp(bcast, 1, zero, (const u8 *)&ip);
		poll_until(1000, &arp_got);
	}
	arp_want = 0;
	if (arp_got)
		memcpy(out, arp_mac, 6);
	return arp_got;
}

/* The next hop towards dst, found by ARP: dst itself on our subnet, else the router.
 * *via gets its address; false (with the reason in w) if there is none. */
static bool route(u32 dst, u8 *dmac, u32 *via, struct why *w)
{
	*via = 0;
	if (!my_ip) {
		why_add(w, "no address of our own");
		return false;
	}
	*via = ((dst ^ my_ip) & my_mask) == 0 ? dst : my_gw;
	if (!*via) {
		why_add(w, "%s is off %s/%d and there is no router", ip_s(dst), ip_s(my_ip),
			mask_prefix(my_mask));
		return false;
	}
	if (!resolve(*via, dmac)) {
		why_add(w, "no ARP reply from %s", ip_s(*via));
		return false;
	}
	return true;
}

/* DHCPv4: DISCOVER every second until an OFFER, then REQUEST (again each second, back
 * to DISCOVER after 4 unanswered) until ACK or NAK, within oxtest.nettime ms. Reports
 * <dev>-dhcp; on ACK the lease becomes the address in use. */
static void dhcp(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	snprintf(name, sizeof(name), "%s-dhcp", ifname);
	u64 t = rdtsc();
	for (int i = 0; i < 4; i++)
		dhcp_xid[i] = (u8)(t >> (8 * i)) ^ mac[2 + i];
	u64 now = t, end = t + ms_to_tsc((u64)opt.nettime_ms), next = t;
	int discovers = 0, requests = 0;
	bool offered = false;
	dhcp_state = DHCP_SELECTING;
	while (now < end && dhcp_state != DHCP_BOUND && dhcp_state != DHCP_NAK) {
		if (dhcp_state == DHCP_OFFERED) {
			println("INFO %s dhcp offer %s from %s", ifname, ip_s(dhcp_offer),
				ip_s(dhcp_server));
			offered = true;
			dhcp_state = DHCP_REQUESTING;
			requests = 0;
			next = now;
		}
		if (now >= next) {
			if (dhcp_state == DHCP_REQUESTING && requests == 4)
				dhcp_state = DHCP_SELECTING;
			if (dhcp_state == DHCP_SELECTING) {
				dhcp_send(1);
				discovers++;
			} else {
				dhcp_send(3);
				requests++;
			}
			next = now + ms_to_tsc(1000);
		}
		if (!poll_rx())
			cpu_relax();
		now = rdtsc();
	}
	if (dhcp_state == DHCP_BOUND) {
		my_ip = dhcp_offer;
		my_mask = dhcp_mask;
		my_gw = dhcp_router;
		println("INFO %s dhcp lease %s/%d router %s server %s lease %u", ifname,
			ip_s(my_ip), mask_prefix(my_mask), ip_s(my_gw), ip_s(dhcp_server), dhcp_lease);
		if (dhcp_dns)
			println("INFO %s dhcp dns %s", ifname, ip_s(dhcp_dns));
	} else if (dhcp_state == DHCP_NAK) {
		why_add(&w, "NAK from %s for %s", ip_s(dhcp_server), ip_s(dhcp_offer));
	} else if (!offered) {
		why_add(&w, "no offer in %lld ms (%d DISCOVERs)", opt.nettime_ms, discovers);
	} else {
		why_add(&w, "timeout after %lld ms: no ACK for %s from %s", opt.nettime_ms,
			ip_s(dhcp_offer), ip_s(dhcp_server));
	}
	report(name, dhcp_state == DHCP_BOUND, &w);
	dhcp_state = DHCP_OFF;
}

/* oxtest.netreach: oxtest.netreachcount echo requests to the address, each waiting up
 * to 1 s for its reply, through the router when it is off the subnet. Runs once. */
static void net_reach(void)
{
	if (!opt.netreach || reach_done)
		return;
	reach_done = true;
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	snprintf(name, sizeof(name), "%s-reach", ifname);
	u32 dst = opt.netreach, via = 0;
	int n = opt.netreachcount, k = 0;
	u8 dmac[6];
	if (route(dst, dmac, &via, &w)) {
		echo_dst = dst;
		for (int seq = 1; seq <= n; seq++) {
			u8 *f = txbuf + VHDR;
			u8 *icmp = ip_build(f, dmac, 1, my_ip, dst, 8 + 24);
			icmp[0] = 8;
			icmp[1] = 0;
			put16(icmp + 2, 0);
			put16(icmp + 4, ECHO_ID);
			put16(icmp + 6, (u16)seq);
			memset(icmp + 8, 0, 24);
			snprintf((char *)icmp + 8, 24, "oxtest reach %d", seq);
			put16(icmp + 2, csum(icmp, 8 + 24));
			echo_seq = (u16)seq;
			echo_got = false;
			send_frame(14 + 20 + 8 + 24);
			poll_until(1000, &echo_got);
			if (echo_got)
				k++;
		}
		echo_seq = 0;
		if (k < n)
			why_add(&w, "%d of %d echo replies from %s", k, n, ip_s(dst));
	}
	println("INFO %s reach %s via %s: %d of %d replies", ifname, ip_s(dst), ip_s(via), k, n);
	report(name, w.len == 0, &w);
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

static void net_configure(const char *mac_note);

static bool net_up(struct why *w)
{
	if (up)
		return true;
	if (!virtio_find(1, netdev, 1)) {
		why_add(w, "no virtio-net device");
		return false;
	}
	nd = &netdev[0];
	if (!vdev_start(nd, F_MAC | F_CTRL_VQ | F_MQ | F_STATUS, w))
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
	ifname = nd->name;
	net_configure(nd->features & F_MAC ? "" : " (no MAC feature)");
	return true;
}

/* The device is up: its address (static, or leased with DHCP), then a gratuitous
 * ARP. */
static void net_configure(const char *mac_note)
{
	up = true;
	char ipd[40];
	if (opt.dhcp)
		snprintf(ipd, sizeof(ipd), "dhcp");
	else
		snprintf(ipd, sizeof(ipd), "%s/%d%s%s", ip_s(opt.ip), opt.prefix,
			 opt.gw ? " gw " : "", opt.gw ? ip_s(opt.gw) : "");
	println("INFO %s mac %02x:%02x:%02x:%02x:%02x:%02x%s ip %s", ifname, mac[0],
		mac[1], mac[2], mac[3], mac[4], mac[5], mac_note, ipd);
	if (opt.dhcp) {
		dhcp();
	} else {
		my_ip = opt.ip;
		my_mask = prefix_mask(opt.prefix);
		my_gw = opt.gw;
	}
	static const u8 zero[6] = { 0 };
	if (my_ip)
		arp(bcast, 1, zero, (const u8 *)&my_ip);      /* gratuitous ARP */
}

/* The net check once the device is up: test frames out, then the host's frames,
 * echo requests and datagrams in, each reported. */
static void net_exchange(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
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
	snprintf(name, sizeof(name), "%s-tx", ifname);
	if (sent != opt.netsend * npairs)
		why_add(&w, "%d of %d frames sent", sent, opt.netsend * npairs);
	println("INFO %s sent %d test frames", ifname, sent);
	report(name, w.len == 0, &w);
	net_reach();

	println("INFO %s ready, waiting for %d test frames, %d echo requests and %d UDP datagrams (%lld ms)",
		ifname, opt.netrecv, opt.netping, opt.netudp, opt.nettime_ms);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.nettime_ms);
	while (rdtsc() < end &&
	       ((int)rx_test < opt.netrecv || (int)rx_icmp < opt.netping ||
		(int)rx_udp < opt.netudp))
		if (!poll_rx())
			cpu_relax();
	println("INFO %s rx %u test frames, %u arp requests, %u echo requests and %u UDP datagrams answered, %u other",
		ifname, rx_test, rx_arp, rx_icmp, rx_udp, rx_other);
	for (int p = 0; p < npairs; p++)
		println("INFO %s queue pair %d: %u frames received, %u sent", ifname, p,
			rx_pair[p], tx_pair[p]);
	if (opt.netudp > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-udp", ifname);
		if ((int)rx_udp < opt.netudp)
			why_add(&w, "%u of %d UDP datagrams", rx_udp, opt.netudp);
		report(name, w.len == 0, &w);
	}
	if (npairs > 1) {
		/* pair 1 both ways: frames the host's flows steered to its tap queue came in
		 * on receive queue 2 and their answers (and the q1 test frames) left on 3 */
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-pair1", ifname);
		if (!rx_pair[1])
			why_add(&w, "nothing received on queue pair 1");
		if ((int)tx_pair[1] < opt.netsend)
			why_add(&w, "%u frames sent on queue pair 1", tx_pair[1]);
		report(name, w.len == 0, &w);
	}
	if (opt.netrecv > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-rx", ifname);
		if ((int)rx_test < opt.netrecv)
			why_add(&w, "%u of %d test frames", rx_test, opt.netrecv);
		report(name, w.len == 0, &w);
	}
	if (opt.netping > 0) {
		w.len = 0;
		w.buf[0] = 0;
		snprintf(name, sizeof(name), "%s-ping", ifname);
		if ((int)rx_icmp < opt.netping)
			why_add(&w, "%u of %d echo requests", rx_icmp, opt.netping);
		report(name, w.len == 0, &w);
	}
}

void net_forget(void)
{
	up = false;
	npairs = 1;
	ctrlq = -1;
	nd = NULL;
	memset(rx_pair, 0, sizeof(rx_pair));
	memset(tx_pair, 0, sizeof(tx_pair));
	rx_test = rx_arp = rx_icmp = rx_udp = rx_other = 0;
}

void check_net(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	if (!net_up(&w)) {
		report(nd ? nd->name : "net", false, &w);
		return;
	}
	net_exchange();
}

void net_run_link(const struct net_link *l)
{
	link = l;
	ifname = l->name;
	memcpy(mac, l->mac, 6);
	if (!txbuf)
		txbuf = dma_alloc(BUFLEN, 64);
	net_configure("");
	net_exchange();
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
	net_reach();
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
 * and PASS netbench-SS when every frame completed. Items udp:MS:LEN:A.B.C.D:PORT send
 * UDP datagrams of LEN payload bytes to A.B.C.D:PORT the same way (to the next hop's
 * MAC, see route) and print
 *     BENCH net-08 udp 1472B pps=81234 frames=81234 bytes=119576448 MB/s=119.5 ms=1000 to 10.99.0.2:5001 via 192.168.150.1
 * for the host to compare with what arrived. */
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

/* Runs tx_loop for ms on the frame f (VHDR + len bytes); *us gets the time taken. */
static struct txrun bench_run(u8 *f, u32 len, u64 ms, u64 *us)
{
	struct vq *q = &nd->q[1];
	while (vq_get(q, NULL) >= 0)
		;
	struct txrun r = { .b = { f, VHDR + len }, .ms = ms };
	run_user(tx_loop, &r);
	*us = (r.t1 - r.t0) / (tsc_hz / 1000000);
	if (!*us)
		*us = 1;
	return r;
}

static bool bench_tx(u64 ms, u32 len)
{
	u8 *f = dma_alloc(VHDR + len, 64);
	if (!f)
		return false;
	memset(f, 0, VHDR);
	u8 *e = f + VHDR;
	memset(e, 0xff, 6);
	memcpy(e + 6, mac, 6);
	put16(e + 12, ETH_TEST);
	memcpy(e + 14, "OXNET bench", 12);
	u64 us;
	struct txrun r = bench_run(f, len, ms, &us);
	println("BENCH %s tx %uB pps=%llu frames=%llu ms=%llu%s", nd->name, len,
		r.sent * 1000000 / us, r.sent, us / 1000, r.ok ? "" : " (timed out)");
	return r.ok && r.sent > 0;
}

/* udp:MS:LEN:A.B.C.D:PORT; one datagram (source port 0x6f78, UDP checksum set) sent
 * over and over. */
static bool bench_udp(u64 ms, u32 len, u32 dst, u16 port, struct why *w)
{
	u8 dmac[6];
	u32 via;
	if (!route(dst, dmac, &via, w))
		return false;
	u32 flen = 42 + len < 60 ? 60 : 42 + len;
	u8 *f = dma_alloc(VHDR + flen, 64);
	if (!f) {
		why_add(w, "out of DMA memory");
		return false;
	}
	memset(f, 0, VHDR + flen);
	u8 *e = f + VHDR;
	memcpy(e + 42, "OXNET udp bench", len < 16 ? len : 16);
	udp_build(e, dmac, my_ip, dst, 0x6f78, port, len);
	u64 us;
	struct txrun r = bench_run(f, flen, ms, &us);
	u64 bytes = r.sent * len;
	/* MB/s (10^6 bytes of UDP payload) with one decimal */
	u64 mbs10 = bytes * 10 / us;
	println("BENCH %s udp %uB pps=%llu frames=%llu bytes=%llu MB/s=%llu.%llu ms=%llu to %s:%u via %s%s",
		nd->name, len, r.sent * 1000000 / us, r.sent, bytes, mbs10 / 10, mbs10 % 10,
		us / 1000, ip_s(dst), port, ip_s(via), r.ok ? "" : " (timed out)");
	if (!r.ok || !r.sent)
		why_add(w, "udp to %s:%u: frames did not complete", ip_s(dst), port);
	return r.ok && r.sent > 0;
}

/* Decimal digits at *s into *v; returns how many. */
static int num(const char **s, u64 *v)
{
	int n = 0;
	for (*v = 0; **s >= '0' && **s <= '9' && n < 19; (*s)++, n++)
		*v = *v * 10 + (u64)(**s - '0');
	return n;
}

void check_netbench(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	char name[40];
	if (link)
		why_add(&w, "the throughput modes need virtio-net, not %s", ifname);
	if (link || !net_up(&w)) {
		report("netbench", false, &w);
		return;
	}
	snprintf(name, sizeof(name), "netbench-%02x", nd->pci->dev);
	char item[64];
	for (const char *p = next_item(opt.netbench, item, sizeof(item)); p;
	     p = next_item(p, item, sizeof(item))) {
		if (!item[0])
			continue;
		u64 ms = 0, len = 60, port = 0;
		u32 dst = 0;
		const char *s = item + 4;
		if (strncmp(item, "udp:", 4) == 0) {
			/* udp:MS:LEN:A.B.C.D:PORT */
			bool good = num(&s, &ms) && ms && *s++ == ':' && num(&s, &len) &&
				    len <= 1472 && *s++ == ':';
			const char *a = s;
			while (good && *s && *s != ':')
				s++;
			good = good && parse_ipv4(a, (usize)(s - a), &dst) && *s++ == ':' &&
			       num(&s, &port) && !*s && port && port <= 0xFFFF;
			if (!good)
				why_add(&w, "bad item '%s'", item);
			else
				bench_udp(ms, (u32)len, dst, (u16)port, &w);
			continue;
		}
		s = item + 3;
		bool good = strncmp(item, "tx:", 3) == 0;
		if (good) {
			int nd_ = num(&s, &ms);
			if (*s == ':') {
				s++;
				num(&s, &len);
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

/* The ticker's NIC (oxtest.tickdev=1, tickdev.c): brought up once with oxtest.ip;
 * every tick answers what came in (ARP, ICMP echo, UDP echo on port 7) and, with
 * VIRTIO_NET_F_STATUS, prints INFO net link down|up at tick n when the link changes.
 * 0 when there is no virtio-net device, -1 (with why) when it fails. */
int net_tick_init(struct why *w)
{
	struct vdev probe;
	if (!virtio_find(1, &probe, 1))
		return 0;
	return net_up(w) ? 1 : -1;
}

void net_tick(u64 tick)
{
	static bool was_down;
	if (nd->features & F_STATUS) {
		bool down = !(vcfg16(nd, 6) & S_LINK_UP);
		if (down != was_down)
			println("INFO net link %s at tick %llu", down ? "down" : "up", tick);
		was_down = down;
	}
	while (poll_rx())
		;
}
